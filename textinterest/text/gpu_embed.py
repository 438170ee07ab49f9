"""Embedding at the accelerator's pace: token-budget batches, tokenisation overlapped with the forward pass,
half precision with its own warm-up, and PyTorch's fused attention (SDPA).

:class:`OverlappedEmbedder` wraps the same encoder as :class:`~textinterest.text.features.BertFeatureExtractor`
(mean pooling over real tokens) and differs in how the work is fed to the device:

- **token-budget batching** (:func:`token_budget_batches`): texts are sorted by token length and
  grouped so that each batch holds at most ``max_tokens`` padded tokens (and at most ``max_batch``
  texts). Short reviews then travel in large batches and long ones in small batches, so every
  forward pass does about the same work and little of it is padding;
- **overlap**: a background thread tokenises and pads the next chunks while the device runs the
  current batch (the Rust tokenizer releases the GIL), through a bounded queue;
- **half precision**: ``dtype="bf16"`` or ``"fp16"`` loads the weights in that type (no autocast
  per call); the first calls of a new shape/dtype pay for kernel selection, so ``warmup`` batches
  run and are discarded before anything is timed or returned;
- **SDPA**: the model is loaded with ``attn_implementation="sdpa"`` (falls back to the default
  attention when a model does not support it).

Vectors are not written to the embedding cache: half-precision vectors differ slightly from the fp32
ones the cache holds. :func:`compare_throughput` measures reviews per second of the bare forward
pass (pre-tokenised, pre-padded batches already on the device) against the whole embedder, per
precision, which is what the GPU acceptance check asks for. On a CPU only fp32 makes sense; these
paths are tested there for correctness, and their speed has to be measured on a GPU.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

DTYPES = ("fp32", "bf16", "fp16")


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_batch: int = 1024) -> list[np.ndarray]:
    """Group positions into batches of at most ``max_tokens`` padded tokens, shortest texts first.

    Args:
        lengths: token count of each text.
        max_tokens: cap on ``len(batch) * longest length in batch`` (a single text longer than the
            budget gets a batch of its own).
        max_batch: cap on texts per batch.

    Returns:
        Arrays of positions into ``lengths``; every position appears exactly once.
    """
    if max_tokens < 1 or max_batch < 1:
        raise ValueError(f"max_tokens and max_batch must be >= 1, got {max_tokens}, {max_batch}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        # sorted ascending: the batch's padded length is the length of its last text
        while (
            end < len(order)
            and end - start < max_batch
            and (end - start + 1) * max(lengths[order[end]], 1) <= max_tokens
        ):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]


class OverlappedEmbedder:
    """Mean-pooled encoder vectors with token-budget batches and background tokenisation (see the module docstring).

    Args:
        model: "default" (packaged MiniLM), a local folder or a Hugging Face id.
        device: "auto", "cpu" or "cuda[:n]".
        dtype: "fp32", "bf16" or "fp16" (half precision only on CUDA).
        max_length: token limit per text.
        max_tokens: padded tokens per batch.
        max_batch: texts per batch at most.
        chunk: texts tokenised at a time by the background thread.
        prefetch: tokenised batches waiting in the queue at most.
        warmup: batches run and discarded before the first real one (per instance).
        attention: "sdpa" (fused attention) or "eager".
    """

    def __init__(
        self,
        model: str = "default",
        *,
        device: str = "auto",
        dtype: str = "fp32",
        max_length: int = 128,
        max_tokens: int = 16384,
        max_batch: int = 1024,
        chunk: int = 8192,
        prefetch: int = 4,
        warmup: int = 2,
        attention: str = "sdpa",
    ) -> None:
        from textinterest.text.features import BertFeatureExtractor

        _torch_dtype(dtype)
        if attention not in ("sdpa", "eager"):
            raise ValueError(f"attention must be 'sdpa' or 'eager', got {attention!r}")
        if min(max_length, max_tokens, max_batch, chunk, prefetch) < 1 or warmup < 0:
            raise ValueError("max_length, max_tokens, max_batch, chunk and prefetch must be >= 1, warmup >= 0")
        self.device = BertFeatureExtractor.resolve_device(device)
        if dtype != "fp32" and not self.device.startswith("cuda"):
            raise ValueError(f"dtype={dtype!r} needs a CUDA device (on a CPU half precision is slower); use 'fp32'")
        self.model_name, self.dtype, self.max_length = model, dtype, int(max_length)
        self.max_tokens, self.max_batch = int(max_tokens), int(max_batch)
        self.chunk, self.prefetch = int(chunk), int(prefetch)
        self.warmup, self.attention = int(warmup), attention
        self._base = BertFeatureExtractor(
            model, device=self.device, max_length=max_length, use_cache=False, progress=False
        )
        self._model: Any = None
        self._warm = False
        self.stats: dict[str, float] = {"warmup_seconds": 0.0, "batches": 0, "padded_tokens": 0, "real_tokens": 0}

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._base.dim

    @property
    def tokenizer(self) -> Any:
        """The encoder's tokenizer."""
        return self._base.tokenizer

    @property
    def model(self) -> Any:
        """The encoder, loaded in ``dtype`` with the chosen attention, in eval mode on ``device``."""
        if self._model is None:
            from transformers import AutoModel

            from textinterest.text.features import _resolve_model, quiet_transformers

            source, revision, _ = _resolve_model(self.model_name)
            with quiet_transformers():
                try:
                    model = AutoModel.from_pretrained(
                        source, revision=revision, attn_implementation=self.attention, dtype=_torch_dtype(self.dtype)
                    )
                except (ValueError, ImportError, TypeError):  # the model has no SDPA path: default attention
                    model = AutoModel.from_pretrained(source, revision=revision, dtype=_torch_dtype(self.dtype))
            self._model = model.eval().to(self.device)
        return self._model

    def token_batches(self, texts: list[str]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(positions, padded inputs) for every token-budget batch, chunk by chunk."""
        tok = self.tokenizer
        keep = ["input_ids", "attention_mask"]
        if "token_type_ids" in tok.model_input_names:
            keep.append("token_type_ids")
        for lo in range(0, len(texts), self.chunk):
            enc = tok(
                texts[lo : lo + self.chunk],
                truncation=True,
                max_length=self.max_length,
                padding=False,
                return_attention_mask=True,
            )
            lengths = [len(ids) for ids in enc["input_ids"]]
            for idx in token_budget_batches(lengths, self.max_tokens, self.max_batch):
                width = max(lengths[i] for i in idx)
                batch = {}
                for name in keep:
                    pad = tok.pad_token_id if name == "input_ids" else 0
                    arr = np.full((len(idx), width), pad, dtype=np.int64)
                    for row, i in enumerate(idx):
                        arr[row, : lengths[i]] = enc[name][i]
                    batch[name] = arr
                yield idx + lo, batch

    def _forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        inputs = {k: torch.from_numpy(v).to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1).float() / mask.sum(1).float().clamp(min=1.0)
        return pooled.cpu().numpy()

    def _warm_up(self, texts: list[str]) -> None:
        if self._warm or not self.warmup:
            self._warm = True
            return
        start = time.perf_counter()
        sample = texts[: min(len(texts), self.max_batch)]
        for n, (_, batch) in enumerate(self.token_batches(sample)):
            if n >= self.warmup:
                break
            self._forward(batch)
        self.synchronize()
        self.stats["warmup_seconds"] += time.perf_counter() - start
        self._warm = True

    def synchronize(self) -> None:
        """Wait for the GPU's queued work (nothing to wait for on a CPU)."""
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; tokenisation of later batches runs in a background thread meanwhile.

        Args:
            texts: sequence of ``str``.

        Returns:
            float32 array (len(texts), dim), row i for texts[i].
        """
        from textinterest.text.features import validate_texts

        items = validate_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        self._warm_up(items)
        pipe: queue.Queue = queue.Queue(maxsize=self.prefetch)
        failure: list[BaseException] = []
        stop = threading.Event()

        def produce() -> None:
            try:
                for part in self.token_batches(items):
                    while not stop.is_set():
                        try:
                            pipe.put(part, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)
            finally:
                pipe.put(None)

        worker = threading.Thread(target=produce, name="textinterest-tokenize", daemon=True)
        worker.start()
        try:
            while True:
                part = pipe.get()
                if part is None:
                    break
                idx, batch = part
                out[idx] = self._forward(batch)
                self.stats["batches"] += 1
                self.stats["padded_tokens"] += int(batch["attention_mask"].size)
                self.stats["real_tokens"] += int(batch["attention_mask"].sum())
        finally:
            stop.set()
            while worker.is_alive():
                try:
                    pipe.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.1)
        if failure:
            raise failure[0]
        return out


def compare_throughput(
    texts: Sequence[str],
    model: str = "default",
    *,
    device: str = "auto",
    dtypes: Sequence[str] = ("fp32", "bf16", "fp16"),
    max_tokens: int = 16384,
    max_length: int = 128,
    repeats: int = 2,
) -> dict[str, Any]:
    """Reviews per second of the bare forward pass and of the whole embedder, per precision.

    The bare forward pass gets the embedder's own batches, tokenised, padded and moved to the device
    before the clock starts; the embedder's figure includes tokenisation, padding, transfer and
    pooling. Each is timed after the embedder's warm-up, best of ``repeats``.

    Args:
        texts: the texts.
        model: encoder name.
        device: "auto", "cpu" or "cuda[:n]"; half precision is skipped off CUDA.
        dtypes: precisions to measure.
        max_tokens: token budget per batch.
        max_length: token limit per text.
        repeats: timed passes per measurement.

    Returns:
        ``{"device", "gpu", "n_texts", "results": {dtype: {"forward_per_s", "embedder_per_s", "ratio",
        "warmup_seconds"}}, "skipped": [...]}``.
    """
    import torch

    texts = list(texts)
    results: dict[str, Any] = {}
    skipped = []
    resolved = None
    for dtype in dtypes:
        try:
            emb = OverlappedEmbedder(model, device=device, dtype=dtype, max_tokens=max_tokens, max_length=max_length)
        except ValueError as exc:
            skipped.append(f"{dtype}: {exc}")
            continue
        resolved = emb.device
        emb.embed(texts[: min(len(texts), 64)])  # load and warm up
        batches = [
            (idx, {k: torch.from_numpy(v).to(emb.device) for k, v in b.items()}) for idx, b in emb.token_batches(texts)
        ]
        best_forward = best_embed = float("inf")
        for _ in range(max(1, repeats)):
            emb.synchronize()
            start = time.perf_counter()
            with torch.inference_mode():
                for _, inputs in batches:
                    emb.model(**inputs)
            emb.synchronize()
            best_forward = min(best_forward, time.perf_counter() - start)
            start = time.perf_counter()
            emb.embed(texts)
            emb.synchronize()
            best_embed = min(best_embed, time.perf_counter() - start)
        forward, full = len(texts) / best_forward, len(texts) / best_embed
        results[dtype] = {
            "forward_per_s": forward,
            "embedder_per_s": full,
            "ratio": full / forward,
            "warmup_seconds": emb.stats["warmup_seconds"],
        }
        del batches, emb
    gpu = torch.cuda.get_device_name(resolved) if resolved and resolved.startswith("cuda") else None
    return {"device": resolved, "gpu": gpu, "n_texts": len(texts), "results": results, "skipped": skipped}
