"""CPU fast paths of the encoder: ONNX Runtime (fp32 or int8 weights) and PyTorch int8.

:class:`~textinterest.text.features.BertFeatureExtractor` uses these when ``fast=`` asks for them:
the encoder is exported once to ONNX (cached beside the embeddings), optionally quantized to
per-channel int8, and run by ONNX Runtime; pooling then happens in NumPy so that no torch
threads wake up. See the module doc of :mod:`textinterest.text.features` for speed and accuracy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["export_onnx", "onnx_available", "ort_session", "pool_numpy", "quantize_int8_torch", "quantize_onnx"]


def onnx_available() -> bool:
    """True when both ``onnxruntime`` and ``onnx`` can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def quantize_int8_torch(model: Any) -> Any:
    """PyTorch dynamic int8 quantization of every Linear layer, per output channel."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def export_onnx(model: Any, tokenizer: Any, path: Path) -> None:
    """Export ``model``'s last hidden state to ONNX (dynamic batch and sequence axes).

    Args:
        model: a Hugging Face encoder in eval mode.
        tokenizer: its tokenizer (decides whether ``token_type_ids`` is an input).
        path: the ``.onnx`` file to write (atomically).
    """
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


def quantize_onnx(src: Path, dst: Path) -> None:
    """Per-channel int8 dynamic quantization of an ONNX model's weights (written atomically to ``dst``)."""
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


def ort_session(folder: Path, model: Any, tokenizer: Any, int8: bool, threads: int) -> Any:
    """An ONNX Runtime CPU session for the encoder, exporting (and quantizing) it on first use.

    Args:
        folder: where ``model.onnx`` (and ``model-int8-per-channel.onnx``) live.
        model: a zero-argument callable returning the PyTorch encoder (called only to export).
        tokenizer: the encoder's tokenizer.
        int8: run the per-channel int8 quantized graph.
        threads: intra-op threads.

    Returns:
        An ``onnxruntime.InferenceSession``.
    """
    import onnxruntime as ort

    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        export_onnx(model(), tokenizer, fp32)
    path = fp32
    if int8:
        path = folder / "model-int8-per-channel.onnx"
        if not path.is_file():
            quantize_onnx(fp32, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # no busy-waiting between runs: on few cores spinning threads slow everything else
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def pool_numpy(hidden: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Pool token states (B, L, H) with an attention mask (B, L) -> (B, H) float32, in NumPy.

    The NumPy twin of :func:`textinterest.text.features._pool` (used with ONNX Runtime).
    """
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
