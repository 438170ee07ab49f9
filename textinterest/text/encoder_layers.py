"""Transformer block helpers for fine-tuning: find an encoder's blocks and freeze all but the top ones.

Used by the sentiment classifier and the joint interest model; importable from
:mod:`textinterest.text.features` as well.
"""

from __future__ import annotations

from typing import Any

__all__ = ["freeze_all_but_last_layers"]


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
