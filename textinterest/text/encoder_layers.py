"""Transformer block helpers for fine-tuning: find an encoder's blocks, freeze all but the top ones,
or add LoRA adapters (the optional ``lora`` extra: the ``peft`` library).

Used by the sentiment classifier and the joint interest model; importable from
:mod:`textinterest.text.features` as well.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

__all__ = ["LoraSettings", "add_lora_adapters", "freeze_all_but_last_layers", "require_peft"]

PEFT_HINT = "LoRA fine-tuning needs the optional 'peft' package: pip install 'textinterest[lora]'"


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


@dataclasses.dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters of an encoder: each target linear map W (out x in) becomes W + (alpha / rank) B A,
    with A (rank x in) and B (out x rank) trained and W frozen.

    Args:
        rank: the rank of each adapter (``r``).
        alpha: the scale numerator; the update is scaled by ``alpha / rank``.
        dropout: dropout on the adapter's input while training.
        targets: names of the linear maps that get adapters; ``("query", "value")`` are the
            attention projections of BERT-family encoders (MiniLM included), as in the LoRA paper.
        layers: adapt only the top ``layers`` transformer blocks (None: every block). The blocks
            below then stay frozen, and the joint model can run them once per text.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    targets: tuple[str, ...] = ("query", "value")
    layers: int | None = None

    def __post_init__(self) -> None:
        if self.rank < 1 or not self.alpha > 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA needs rank >= 1, alpha > 0 and 0 <= dropout < 1, got {self}")
        if not self.targets or any(not isinstance(t, str) or not t for t in self.targets):
            raise ValueError(f"LoRA targets must be non-empty module names, got {self.targets!r}")
        if self.layers is not None and self.layers < 1:
            raise ValueError(f"LoRA layers must be None (every block) or >= 1, got {self.layers}")
        object.__setattr__(self, "targets", tuple(self.targets))  # a list from JSON becomes a tuple


def require_peft() -> Any:
    """The ``peft`` module, or an ImportError that names the extra to install."""
    try:
        import peft
    except ImportError as exc:
        raise ImportError(f"{PEFT_HINT} ({type(exc).__name__}: {exc})") from exc
    return peft


def add_lora_adapters(model: Any, settings: LoraSettings) -> Any:
    """Freeze ``model`` and add trainable LoRA adapters to its ``settings.targets`` (in place).

    Args:
        model: a Hugging Face encoder (e.g. ``BertModel``).
        settings: rank, alpha, dropout, target modules and how many top blocks get adapters.

    Returns:
        The same model object, its target ``nn.Linear`` maps replaced by LoRA layers; only the
        adapters' A and B matrices require gradients. It runs like the original model.

    Raises:
        ImportError: peft is not installed (the message names the ``lora`` extra).
        ValueError: no module of the model matches the targets, or ``layers`` exceeds its blocks.
    """
    peft = require_peft()
    layers_to_transform = None
    if settings.layers is not None:
        n_blocks = len(_transformer_layers(getattr(model, "base_model", model)))
        if settings.layers > n_blocks:
            raise ValueError(f"cannot adapt the last {settings.layers} layers: the encoder has {n_blocks} layers")
        layers_to_transform = list(range(n_blocks - settings.layers, n_blocks))
    config = peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.targets),
        layers_to_transform=layers_to_transform,
        bias="none",
    )
    for p in model.parameters():
        p.requires_grad_(False)
    with warnings.catch_warnings():  # peft asks transformers about gradient checkpointing by a deprecated name
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        wrapped = peft.get_peft_model(model, config)
    # the PeftModel wrapper is not kept: its base model already holds the adapters
    return wrapped.get_base_model()
