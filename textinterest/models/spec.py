"""What the registry holds for each model: :class:`ModelSpec`, and what its factory and report hooks get.

Kept apart from :mod:`textinterest.models.registry` (which fills the catalogue) so that the peers'
own entries (:mod:`textinterest.models.peers.specs`) can build specs without importing the catalogue.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from textinterest.models.base import TASKS, Recommender

__all__ = ["BuildContext", "ReportContext", "ModelSpec"]


@dataclass
class BuildContext:
    """What a factory gets to build one model for one task and seed.

    Args:
        task: "rating" or "ranking".
        seed: the training seed.
        train_config: the :class:`~textinterest.training.TrainConfig` (None for models without one).
        params: hyper-parameters chosen from the spec's grid (or its first entry).
        features: text inputs of the training rows (``TextFeatures``) when the spec uses text.
        train: the training interactions (for data-dependent settings).
        dataset: the loaded data set (ground truth of generated data, item metadata).
        options: run-wide options (e.g. ``encoder``, ``interest_config``, ``joint_layers``); ``"chosen"``:
            the validation choices of the specs named in :attr:`ModelSpec.reads_choice_of`, ``{name: {task: params}}``.
    """

    task: str
    seed: int
    train_config: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    features: Any = None
    train: Any = None
    dataset: Any = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportContext:
    """What a spec's ``report`` hook gets after a model was fitted and tested.

    Args:
        task: the task the model was trained for.
        seed: the training seed.
        split: the :class:`~textinterest.datasets.splits.Split` (train / val / test).
        dataset: the loaded data set.
        extras: lists of extra result records by key; a hook appends to them
            (e.g. ``extras.setdefault("topic_recovery", []).append({...})``).
    """

    task: str
    seed: int
    split: Any
    dataset: Any
    extras: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """How to build, train and tune one model.

    Args:
        name: the name used on the command line and in result tables.
        factory: ``factory(ctx: BuildContext) -> Recommender`` (unfitted).
        tasks: the tasks it serves ("rating", "ranking").
        train_defaults: default :class:`~textinterest.training.TrainConfig` fields (torch models);
            None for models that do not train with :class:`~textinterest.training.Trainer`.
        grid: hyper-parameter candidates searched on the validation split (first seed); the first
            entry is used when tuning is off. Empty: no tuning.
        tuned_by: reuse the choice made for another spec's grid (the ablations reuse the full model's).
        extra: the optional dependency group (``pip install 'textinterest[extra]'``) it needs.
        requires: importable modules the extra provides; a missing one skips the model with a reason.
        group: a name that selects several specs at once (e.g. "baselines").
        default: part of the default ``evaluate`` run.
        fit_once: one fitted model answers every task (no validation-driven training); otherwise
            the model is fitted per task with the validation split for early stopping.
        uses_text: needs review embeddings of the training rows (``ctx.features``).
        uses_sentiment: reads the sentiment scores inside those features.
        report: ``report(model, ctx: ReportContext) -> dict`` extra figures for the result row.
        description: one line for listings.
        saved_class: ``saved_class()`` -> the class that saves and loads this model (its
            ``artifact_kind`` is this spec's name); None: the model is not saved.
        reads_choice_of: other specs whose validation choice the factory reads (``ctx.options["chosen"]``) when
            they are tuned in the same run; their tuning trials then run before this model's jobs.
    """

    name: str
    factory: Callable[[BuildContext], Recommender]
    tasks: tuple[str, ...] = TASKS
    train_defaults: Mapping[str, Any] | None = None
    grid: tuple[Mapping[str, Any], ...] = ()
    tuned_by: str | None = None
    extra: str | None = None
    requires: tuple[str, ...] = ()
    group: str | None = None
    default: bool = True
    fit_once: bool = False
    uses_text: bool = False
    uses_sentiment: bool = False
    report: Callable[[Recommender, ReportContext], dict[str, Any]] | None = None
    description: str = ""
    saved_class: Callable[[], type] | None = None
    reads_choice_of: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"ModelSpec.name must be a non-empty string, got {self.name!r}")
        if not self.tasks or any(t not in TASKS for t in self.tasks):
            raise ValueError(f"ModelSpec({self.name!r}).tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        if not callable(self.factory):
            raise ValueError(f"ModelSpec({self.name!r}).factory must be callable")

    def train_config(self, **overrides: Any) -> Any:
        """The default :class:`~textinterest.training.TrainConfig` with ``overrides`` applied.

        Raises:
            ValueError: the spec has no training settings (not a torch model).
        """
        if self.train_defaults is None:
            raise ValueError(f"model {self.name!r} is not trained with a TrainConfig")
        from textinterest.training import TrainConfig

        return TrainConfig(**{**self.train_defaults, **overrides})

    def missing(self) -> str | None:
        """Why the model cannot run here (e.g. "extra 'cornac' not installed"), or None."""
        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not absent:
            return None
        hint = f"extra {self.extra!r} not installed (pip install 'textinterest[{self.extra}]')" if self.extra else ""
        return hint or f"module(s) {absent} not installed"

    def build(self, ctx: BuildContext) -> Recommender:
        """``factory(ctx)``, after checking that the task is served and the extra installed."""
        if ctx.task not in self.tasks:
            raise ValueError(f"model {self.name!r} serves {self.tasks}, not task={ctx.task!r}")
        reason = self.missing()
        if reason:
            raise ImportError(f"model {self.name!r} cannot run: {reason}")
        return self.factory(ctx)
