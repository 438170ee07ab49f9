"""One small trainer for every torch model in textinterest.

What it does, and nothing more:

- seeding (``random``, ``numpy``, ``torch``) so the same seed gives the same run on CPU;
- a loop over epochs with AdamW (optionally with caller-given parameter groups and a per-step
  learning-rate schedule), gradient clipping and tqdm progress (``TQDM_DISABLE=1`` silences it);
- CUDA when present, with ``torch.autocast`` (bf16 where the card supports it, else fp16 with a
  ``GradScaler``); plain fp32 on CPU, where bf16 autocast is slower;
- early stopping on a validation metric, restoring the best weights at the end;
- checkpoints as ``model.safetensors`` + ``config.json`` (:func:`save_model` / :func:`load_model`).

A model plugs in with three callables: ``batches(epoch, rng)`` yields dicts of tensors,
``loss(module, batch)`` returns a scalar tensor, ``validate(module)`` returns a float. The
recommenders (:mod:`textinterest.models`) and the sentiment fine-tune
(:class:`textinterest.text.sentiment.SentimentClassifier`) all train through :class:`Trainer`.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import math
import os
import platform
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textinterest.utils import cpu_model, package_source_digest

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "set_seed",
    "resolve_device",
    "run_environment",
    "autocast_dtype",
    "save_model",
    "load_model",
]


@dataclass
class TrainConfig:
    """Settings of one training run.

    Args:
        epochs: maximum number of passes over the training batches.
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        batch_size: sequences (or rows) per optimisation step; the model's batch builder reads it.
        patience: epochs without improvement of the validation metric before stopping
            (0 disables early stopping; the last epoch is then kept).
        seed: seed for ``random``, ``numpy`` and ``torch``.
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
        amp: mixed precision on CUDA (ignored on CPU).
        grad_clip: max global gradient norm; ``None`` or 0 disables clipping.
        checkpoint_dir: where the best weights are written (safetensors + config JSON); None: memory only.
        progress: show a tqdm bar; None follows ``TQDM_DISABLE``.
        min_delta: smallest change of the validation metric that counts as an improvement.
    """

    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 1e-5
    batch_size: int = 64
    patience: int = 3
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    grad_clip: float | None = 5.0
    checkpoint_dir: str | None = None
    progress: bool | None = None
    min_delta: float = 1e-4

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"TrainConfig.epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if self.batch_size < 1:
            raise ValueError(f"TrainConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.patience < 0:
            raise ValueError(f"TrainConfig.patience must be >= 0, got {self.patience}")
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ValueError(f"TrainConfig.grad_clip must be >= 0 or None, got {self.grad_clip}")
        resolve_device(self.device, check_available=False)


@dataclass
class TrainResult:
    """What a run did: per-epoch history, the best epoch and metric, wall time."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_metric: float = float("nan")
    seconds: float = 0.0
    device: str = "cpu"
    amp_dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (CPU and CUDA).

    Args:
        seed: the seed.
        deterministic: ask cuDNN for deterministic kernels (CPU kernels used here already are).
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def run_environment(device: str | torch.device = "auto") -> dict[str, Any]:
    """What a result record says about where it was made: Python, torch, device, threads, processor
    (floats can differ between processors: their vector kernels sum in other orders) and the sha256 of
    the package's source (the code that made the figures)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(resolve_device(device)),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "package_source_sha256": package_source_digest(),
    }


def resolve_device(device: str | torch.device = "auto", *, check_available: bool = True) -> torch.device:
    """Turn "auto" / "cpu" / "cuda[:N]" into a ``torch.device``.

    Args:
        device: the requested device.
        check_available: raise when CUDA is asked for and absent.

    Raises:
        ValueError: unknown device string, or CUDA requested but not available.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if check_available and name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} requested but CUDA is not available")
        return torch.device(name)
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype used on ``device``: bf16 / fp16 on CUDA, None (fp32) on CPU or amp off."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in {"1", "true", "yes"}


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


class Trainer:
    """Train a module with early stopping on a validation metric.

    Args:
        config: the :class:`TrainConfig`.

    Example:
        >>> trainer = Trainer(TrainConfig(epochs=5))
        >>> result = trainer.fit(module, batches, loss, validate, maximize=True)  # doctest: +SKIP
    """

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig()
        self.device = resolve_device(self.config.device)
        self.amp_dtype = autocast_dtype(self.device, self.config.amp)

    def autocast(self) -> Any:
        """Context manager for the forward pass (a no-op on CPU)."""
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )

    def fit(
        self,
        module: nn.Module,
        batches: Callable[[int, np.random.Generator], Iterable[Mapping[str, Any]]],
        loss: Callable[[nn.Module, Mapping[str, Any]], torch.Tensor],
        validate: Callable[[nn.Module], float] | None = None,
        *,
        maximize: bool = True,
        checkpoint_extra: dict[str, Any] | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        batch_weight: Callable[[Mapping[str, Any]], float] | None = None,
        reseed: bool = True,
    ) -> TrainResult:
        """Run the loop; on return ``module`` holds the best weights (by ``validate``).

        Args:
            module: the model; it is moved to the trainer's device.
            batches: ``batches(epoch, rng)`` yields dicts of tensors for one epoch.
            loss: ``loss(module, batch)`` -> scalar tensor (called under autocast).
            validate: ``validate(module)`` -> metric, called in eval mode under ``torch.no_grad``
                after every epoch; None trains for ``epochs`` and keeps the last weights.
            maximize: whether a larger metric is better.
            checkpoint_extra: extra JSON-able fields written next to the checkpoint.
            param_groups: AdamW parameter groups (e.g. no weight decay on biases and norms); default:
                ``module.optimizer_groups(lr)`` when the module defines it, else all trainable parameters.
            scheduler: ``scheduler(optimizer)`` -> a learning-rate scheduler stepped after every
                optimisation step (e.g. linear warm-up and decay).
            batch_weight: ``batch_weight(batch)`` -> the batch's weight in the epoch's mean loss
                (e.g. its number of rows); default: every batch counts once.
            reseed: seed ``random`` / ``numpy`` / ``torch`` with ``config.seed`` first; False keeps
                the caller's generator state (a caller that seeded before building the module).

        Returns:
            A :class:`TrainResult`.
        """
        cfg = self.config
        if reseed:
            set_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        module.to(self.device)
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{type(module).__name__} has no trainable parameters")
        optimizer = self._optimizer(module, params, param_groups)
        schedule = scheduler(optimizer) if scheduler is not None else None
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        result = TrainResult(device=str(self.device), amp_dtype=str(self.amp_dtype) if self.amp_dtype else None)
        best_state: dict[str, torch.Tensor] | None = None
        best = -math.inf if maximize else math.inf
        bad_epochs = 0
        start = time.perf_counter()
        bar = self._progress_bar(module)
        try:
            for epoch in range(cfg.epochs):
                epoch_start = time.perf_counter()
                module.train()
                total, count = self._train_epoch(
                    module, batches(epoch, rng), loss, epoch, optimizer, params, scaler, schedule, batch_weight
                )
                record = {"epoch": float(epoch), "loss": total / count if count else 0.0}
                if validate is not None:
                    module.eval()
                    with torch.no_grad(), self.autocast():
                        metric = float(validate(module))
                    record["val"] = metric
                    improved = (metric > best + cfg.min_delta) if maximize else (metric < best - cfg.min_delta)
                    if improved or best_state is None:
                        best, bad_epochs = metric, 0
                        result.best_epoch, result.best_metric = epoch, metric
                        best_state = copy.deepcopy({k: v.detach().clone() for k, v in module.state_dict().items()})
                        if cfg.checkpoint_dir:
                            save_model(
                                module,
                                cfg.checkpoint_dir,
                                extra={**(checkpoint_extra or {}), "epoch": epoch, "val": metric},
                            )
                    else:
                        bad_epochs += 1
                record["seconds"] = time.perf_counter() - epoch_start
                result.history.append(record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: round(v, 4) for k, v in record.items() if k not in ("epoch", "seconds")})
                if validate is not None and cfg.patience and bad_epochs >= cfg.patience:
                    break
        finally:
            if bar is not None:
                bar.close()
        self._keep_final_weights(module, best_state, result, checkpoint_extra)
        result.seconds = time.perf_counter() - start
        return result

    def _optimizer(
        self, module: nn.Module, params: list[nn.Parameter], param_groups: list[dict[str, Any]] | None
    ) -> torch.optim.Optimizer:
        """AdamW over ``param_groups``, else the module's own ``optimizer_groups(lr)``, else ``params``."""
        cfg = self.config
        # a module may split its parameters into groups with their own learning rates
        groups = param_groups
        if groups is None:
            groups = module.optimizer_groups(cfg.lr) if callable(getattr(module, "optimizer_groups", None)) else params
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _progress_bar(self, module: nn.Module) -> Any:
        """A tqdm bar over the epochs when progress is shown, else None."""
        if not _progress_enabled(self.config.progress):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.epochs, desc=type(module).__name__, leave=False)

    def _train_epoch(
        self,
        module: nn.Module,
        epoch_batches: Iterable[Mapping[str, Any]],
        loss: Callable[[nn.Module, Mapping[str, Any]], torch.Tensor],
        epoch: int,
        optimizer: torch.optim.Optimizer,
        params: list[nn.Parameter],
        scaler: torch.amp.GradScaler,
        schedule: Any,
        batch_weight: Callable[[Mapping[str, Any]], float] | None,
    ) -> tuple[float, float]:
        """One optimisation step per batch of the epoch.

        Returns:
            ``(weighted loss sum, weight sum)`` over the epoch's batches.

        Raises:
            FloatingPointError: a batch's loss is not finite.
        """
        total, count = 0.0, 0.0
        for batch in epoch_batches:
            batch = _to_device(batch, self.device)
            optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                value = loss(module, batch)
            if not torch.isfinite(value):
                raise FloatingPointError(f"non-finite training loss {value.item()} at epoch {epoch}")
            scaler.scale(value).backward()
            if self.config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if schedule is not None:
                schedule.step()
            weight = float(batch_weight(batch)) if batch_weight is not None else 1.0
            total += float(value.detach()) * weight
            count += weight
        return total, count

    def _keep_final_weights(
        self,
        module: nn.Module,
        best_state: dict[str, torch.Tensor] | None,
        result: TrainResult,
        checkpoint_extra: dict[str, Any] | None,
    ) -> None:
        """Load the best weights (or keep the last ones, checkpointed when asked) and switch to eval mode."""
        if best_state is not None:
            module.load_state_dict(best_state)
        else:
            result.best_epoch = len(result.history) - 1
            if self.config.checkpoint_dir:
                save_model(module, self.config.checkpoint_dir, extra=checkpoint_extra)
        module.eval()


def _config_dict(module: nn.Module) -> dict[str, Any]:
    config = getattr(module, "config", None)
    if config is None:
        return {}
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{type(module).__name__}.config must be a dataclass to be saved")
    return dataclasses.asdict(config)


def save_model(module: nn.Module, directory: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``module`` as ``model.safetensors`` plus ``config.json`` into ``directory``.

    The module must be built as ``cls(config)`` from a dataclass ``module.config`` (every model of
    this package is), so :func:`load_model` can rebuild it.

    Args:
        module: the model.
        directory: target folder (created).
        extra: extra JSON-able fields stored under ``"extra"``.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    tmp = directory / "model.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, directory / "model.safetensors")
    meta = {
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
        "config": _config_dict(module),
        "extra": extra or {},
    }
    tmp_json = directory / "config.json.tmp"
    tmp_json.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    os.replace(tmp_json, directory / "config.json")
    return directory


def load_model(directory: str | Path, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a module written by :func:`save_model`.

    Args:
        directory: the folder holding ``model.safetensors`` and ``config.json``.
        map_location: device for the weights.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: the config names a class outside ``textinterest`` or lacks ``config_class``.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file missing: {path}")
    meta = json.loads(config_path.read_text())
    qualname = str(meta.get("class", ""))
    module_name, _, class_name = qualname.rpartition(".")
    if not module_name.startswith("textinterest."):
        raise ValueError(f"{config_path}: field 'class' must name a textinterest model, got {qualname!r}")
    cls = getattr(importlib.import_module(module_name), class_name)
    config_cls = getattr(cls, "config_class", None)
    if config_cls is None:
        raise ValueError(f"{config_path}: {qualname} has no 'config_class' attribute")
    module = cls(config_cls(**meta.get("config", {})))
    state = load_file(str(weights_path), device=str(map_location))
    module.load_state_dict(state)
    module.eval()
    return module
