"""The model registry: one place that says, for each model name, how to build it and how to train it.

A :class:`ModelSpec` holds a model's factory, the tasks it serves, its default training settings
(the single definition of each torch model's default :class:`~textinterest.training.TrainConfig`),
its hyper-parameter grid (searched on the validation split), and the optional extra it needs.
``textinterest evaluate`` (:func:`textinterest.protocol.experiments.run_evaluation`), the CLI and the
model classes' own defaults all read it.

Adding a model is one call::

    from textinterest.models.registry import ModelSpec, register

    register(ModelSpec(
        name="bpr",
        factory=lambda ctx: MyBPR(task=ctx.task, train_config=ctx.train_config, **ctx.params),
        tasks=("ranking",),
        train_defaults={"epochs": 50, "batch_size": 256, "lr": 1e-3, "patience": 3},
        grid=({"dim": 32}, {"dim": 64}),
        extra="cornac", requires=("cornac",),       # skipped, with the reason, when not installed
    ))

The built-in models are registered below in the order of the result tables: the baselines
(GlobalMean, Popularity and the Surprise algorithms; group ``"baselines"``), ID-only MF, the
ID-only sequential LSTM, the interest model and its ablations, and the jointly fine-tuned
interest model (not in the default set: a GPU job).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from textinterest.models.base import TASKS, Recommender

__all__ = [
    "BuildContext",
    "ReportContext",
    "ModelSpec",
    "register",
    "unregister",
    "get",
    "names",
    "groups",
    "default_names",
    "resolve",
    "INTEREST_VARIANTS",
    "interest_base_config",
]


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
        options: run-wide options (e.g. ``encoder``, ``interest_config``, ``joint_layers``).
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


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, *, replace_existing: bool = False) -> ModelSpec:
    """Add ``spec`` to the registry (after the ones already there).

    Args:
        spec: the model's :class:`ModelSpec`.
        replace_existing: allow replacing a spec of the same name (keeps its position).

    Raises:
        ValueError: the name is taken (and ``replace_existing`` is False) or is a group name.
    """
    if spec.name in _REGISTRY and not replace_existing:
        raise ValueError(f"model {spec.name!r} is already registered (replace_existing=True to replace it)")
    if spec.name in groups():
        raise ValueError(f"{spec.name!r} is a group name; pick another model name")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a model (e.g. one a test registered)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> ModelSpec:
    """The spec of ``name``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid values: {', '.join(valid_names())}") from None


def names() -> tuple[str, ...]:
    """Every registered model name, in registration order."""
    return tuple(_REGISTRY)


def groups() -> dict[str, tuple[str, ...]]:
    """Group name -> its member models (e.g. ``"baselines"``)."""
    out: dict[str, list[str]] = {}
    for spec in _REGISTRY.values():
        if spec.group:
            out.setdefault(spec.group, []).append(spec.name)
    return {k: tuple(v) for k, v in out.items()}


def valid_names() -> tuple[str, ...]:
    """Model and group names accepted by :func:`resolve`."""
    return tuple(groups()) + names()


def default_names() -> tuple[str, ...]:
    """The models of a default ``evaluate`` run, groups collapsed to their name (as the CLI spells them)."""
    out: list[str] = []
    for spec in _REGISTRY.values():
        if spec.default:
            label = spec.group or spec.name
            if label not in out:
                out.append(label)
    return tuple(out)


def resolve(selection: Sequence[str] | None = None) -> list[ModelSpec]:
    """Specs for model / group names (default: :func:`default_names`), groups expanded, no duplicates.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    selection = default_names() if selection is None else tuple(selection)
    unknown = [s for s in selection if s not in _REGISTRY and s not in groups()]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; valid values: {', '.join(valid_names())}")
    out: list[ModelSpec] = []
    for item in selection:
        for name in groups().get(item, (item,)):
            if _REGISTRY[name] not in out:
                out.append(_REGISTRY[name])
    return out


# --------------------------------------------------------------------------- built-in models


def _build_baseline(name: str, ctx: BuildContext) -> Recommender:
    from textinterest.models.baselines import make_model

    return make_model(name, seed=ctx.seed, **ctx.params)


def _baseline_factory(name: str) -> Callable[[BuildContext], Recommender]:
    # a partial of a module-level function, so that a spec pickles (worker processes receive specs)
    return functools.partial(_build_baseline, name)


def _mf(ctx: BuildContext) -> Recommender:
    from textinterest.models.cf import MFRecommender

    return MFRecommender(ctx.task, train_config=ctx.train_config, **ctx.params)


def _seq_lstm(ctx: BuildContext) -> Recommender:
    from textinterest.models.cf import SequentialRecommender

    return SequentialRecommender(ctx.task, train_config=ctx.train_config, **ctx.params)


# name -> InterestConfig overrides (the ablations of the full model)
INTEREST_VARIANTS: dict[str, dict[str, Any]] = {
    "interest": {},
    "interest-no-text": {"use_text": False},
    "interest-no-sentiment": {"use_sentiment": False},
    "interest-no-lstm": {"use_lstm": False},
    "interest-k1": {"n_components": 1},
    "interest-no-cf": {"use_cf": False},
    # switches of the model (not in the default run; see the README's "Interest model switches")
    "interest-future-text": {"time_safe_text": False},
    "interest-residual": {"residual_base": "biases"},
    "interest-gru": {"sequence_encoder": "gru"},
    "interest-attention": {"sequence_encoder": "attention"},
    "interest-text-rare": {"rare_item_gate": True},
}
INTEREST_SWITCHES = (
    "interest-future-text",
    "interest-residual",
    "interest-gru",
    "interest-attention",
    "interest-text-rare",
)
INTEREST_VARIANT_TASKS = {"interest-residual": ("rating",)}  # a rating base: the residual serves ratings only
# dropout / hidden size of the interest model and of each switch, searched on validation (seed 0); the ablations
# reuse the interest model's choice
INTEREST_GRID: tuple[dict[str, Any], ...] = (
    {"dropout": 0.1, "hidden": 64},
    {"dropout": 0.5, "hidden": 32},
    {"dropout": 0.3, "hidden": 64},
    {"dropout": 0.1, "hidden": 32},
)
# the ID-only house models get a search of the same size (every tuned model: 4 validation trials)
MF_GRID: tuple[dict[str, Any], ...] = ({"dim": 32}, {"dim": 64}, {"dim": 16}, {"dim": 64, "bias_l2": 1.0})
SEQ_GRID: tuple[dict[str, Any], ...] = (
    {"hidden": 64, "dropout": 0.1},
    {"hidden": 32, "dropout": 0.5},
    {"hidden": 64, "dropout": 0.3},
    {"hidden": 128, "dropout": 0.3},
)
_INTEREST_TRAIN = {"epochs": 40, "batch_size": 64, "lr": 3e-3, "patience": 3}


def interest_base_config(train: Any, dataset: Any = None) -> Any:
    """The interest model's data-dependent defaults.

    K = number of planted topics on generated data (else 4); full softmax on catalogues of at most
    512 training items, else 256 sampled negatives.

    Args:
        train: training interactions.
        dataset: the loaded data set (its ``ground_truth["topics"]``, if any).

    Returns:
        an :class:`~textinterest.models.interest.InterestConfig`.
    """
    from textinterest.constants import ITEM_COL
    from textinterest.models.interest import InterestConfig

    gt = getattr(dataset, "ground_truth", None) or {}
    n_items = train[ITEM_COL].nunique()
    return InterestConfig(
        n_components=len(gt["topics"]) if "topics" in gt else 4, n_negatives=0 if n_items <= 512 else 256
    )


def _interest_config(variant: str, ctx: BuildContext) -> Any:
    from textinterest.models.cf import MFRecommender

    l2, bias_l2 = MFRecommender.DEFAULT_REG[ctx.task]  # the CF term is regularised like ID-only MF
    cfg = replace(interest_base_config(ctx.train, ctx.dataset), l2=l2, bias_l2=bias_l2, **ctx.params)
    cfg = replace(cfg, **(ctx.options.get("interest_config") or {}))
    return replace(cfg, **INTEREST_VARIANTS.get(variant, {}))


def _build_interest(variant: str, ctx: BuildContext) -> Recommender:
    from textinterest.models.interest import InterestRecommender

    cfg = _interest_config(variant, ctx)
    features = ctx.features if cfg.use_text else None
    return InterestRecommender(cfg, features, task=ctx.task, train_config=ctx.train_config, name=variant)


def _interest_factory(variant: str) -> Callable[[BuildContext], Recommender]:
    return functools.partial(_build_interest, variant)


def _joint(ctx: BuildContext) -> Recommender:
    from textinterest.models.joint import JointInterestRecommender

    return JointInterestRecommender(
        _interest_config("interest+joint", ctx),
        ctx.features,
        task=ctx.task,
        train_config=ctx.train_config,
        encoder=ctx.options.get("encoder", "default"),
        train_layers=ctx.options.get("joint_layers"),
        max_length=ctx.options.get("joint_max_length", 128),
        name="interest+joint",
    )


def _interest_report(model: Any, ctx: ReportContext) -> dict[str, Any]:
    """Test RMSE by history length (rating task); topic recovery on data with planted topics."""
    out: dict[str, Any] = {}
    if ctx.task == "rating":
        out.update(_cold_rmse(model, ctx.split))
    gt = getattr(ctx.dataset, "ground_truth", None) or {}
    if "review_topic" in gt:
        from textinterest.models.interest import measure_topic_recovery

        figures = measure_topic_recovery(model, ctx.dataset, next_df=ctx.split.val)
        ctx.extras.setdefault("topic_recovery", []).append({"seed": ctx.seed, "task": ctx.task, **figures})
    return out


def _cold_rmse(model: Any, split: Any) -> dict[str, float]:
    """Test RMSE of users with <= 2 training reviews and of the others."""
    import numpy as np
    import pandas as pd

    from textinterest.constants import RATING_COL, USER_COL
    from textinterest.evaluation import rmse

    test = split.test[pd.to_numeric(split.test[RATING_COL], errors="coerce").notna()]
    if not len(test):
        return {}
    hist = model.history_length(test[USER_COL].to_numpy())
    pred = model.predict(test)
    truth = test[RATING_COL].to_numpy(dtype=np.float64)
    out = {}
    for key, sel in (("rmse_short_history", hist <= 2), ("rmse_long_history", hist > 2)):
        if sel.any():
            out[key] = rmse(truth[sel], pred[sel])
    return out


def _register_builtins() -> None:
    from textinterest.models.baselines import DEFAULT_MODELS as BASELINES
    from textinterest.models.baselines import GlobalMean, Popularity

    for name in BASELINES:
        tasks = {"GlobalMean": ("rating",), "Popularity": ("ranking",)}.get(name, TASKS)
        register(
            ModelSpec(
                name,
                _baseline_factory(name),
                tasks=tasks,
                group="baselines",
                fit_once=True,
                description="constant mean"
                if name == GlobalMean.name
                else "training popularity"
                if name == Popularity.name
                else f"Surprise {name}",
            )
        )
    register(
        ModelSpec(
            "mf",
            _mf,
            train_defaults={"epochs": 60, "batch_size": 256, "lr": 5e-3, "patience": 3},
            grid=MF_GRID,
            description="ID-only biased matrix factorisation (MSE / BPR)",
        )
    )
    register(
        ModelSpec(
            "seq-lstm",
            _seq_lstm,
            tasks=("ranking",),
            train_defaults={"epochs": 40, "batch_size": 64, "lr": 3e-3, "patience": 3},
            grid=SEQ_GRID,
            description="ID-only next-item LSTM",
        )
    )
    for variant, over in INTEREST_VARIANTS.items():
        full = variant == "interest"
        # a switch is an alternative model and searches the grid itself; an ablation removes one part and
        # reuses the full model's choice, so that it measures that part alone
        own_search = full or variant in INTEREST_SWITCHES
        register(
            ModelSpec(
                variant,
                _interest_factory(variant),
                tasks=INTEREST_VARIANT_TASKS.get(variant, TASKS),
                default=variant not in INTEREST_SWITCHES,
                train_defaults=_INTEREST_TRAIN,
                grid=INTEREST_GRID if own_search else (),
                tuned_by=None if own_search else "interest",
                uses_text=over.get("use_text", True),
                uses_sentiment=over.get("use_sentiment", True),
                report=_interest_report if full else None,
                description="dynamic interest model"
                if full
                else f"switch: {over}"
                if variant in INTEREST_SWITCHES
                else f"ablation: {over}",
            )
        )
    register(
        ModelSpec(
            "interest+joint",
            _joint,
            train_defaults={**_INTEREST_TRAIN, "batch_size": 32},
            tuned_by="interest",
            uses_text=True,
            uses_sentiment=True,
            default=False,
            description="interest model with its text encoder fine-tuned jointly (a GPU job)",
        )
    )


_register_builtins()

# the peers of the field (SASRec, GRU4Rec, the text profile; Cornac's models with the extra "peers")
from textinterest.models.peers.specs import register_peers  # noqa: E402 - they register after the built-ins

register_peers()
