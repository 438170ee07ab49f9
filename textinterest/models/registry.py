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
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from textinterest.models.base import TASKS, Recommender
from textinterest.models.peers.specs import register_peers
from textinterest.models.spec import BuildContext, ModelSpec, ReportContext
from textinterest.models.train_defaults import TRAIN_DEFAULTS

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
    "load_recommender",
]


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


def load_recommender(directory: Any, *, encoder: Any = None, device: str = "cpu") -> Recommender:
    """Load a model saved by ``model.save(folder)``, whatever its kind.

    The manifest's kind is a registry name; its spec's ``saved_class`` is the class that reads it back
    (see :func:`textinterest.models.artifact.load_recommender`).

    Raises:
        textinterest.models.artifact.ArtifactError: not a saved model, a kind no spec loads, changed files.
    """
    from textinterest.models.artifact import ArtifactError, read_manifest
    from textinterest.models.artifact import load_recommender as load_into

    kind = read_manifest(directory)["kind"]
    spec = _REGISTRY.get(kind)
    if spec is None or spec.saved_class is None:
        raise ArtifactError(f"{directory}: no registered model loads a saved {kind!r} model")
    return load_into(directory, spec.saved_class(), encoder=encoder, device=device)


# --------------------------------------------------------------------------- built-in models


def _build_baseline(name: str, ctx: BuildContext) -> Recommender:
    from textinterest.models.baselines import make_model

    return make_model(name, seed=ctx.seed, **ctx.params)


def _baseline_factory(name: str) -> Callable[[BuildContext], Recommender]:
    # a partial of a module-level function, so that a spec pickles (worker processes receive specs)
    return functools.partial(_build_baseline, name)


def _mf_class() -> type:
    from textinterest.models.cf import MFRecommender

    return MFRecommender


def _seq_lstm_class() -> type:
    from textinterest.models.cf import SequentialRecommender

    return SequentialRecommender


def _interest_class() -> type:
    from textinterest.models.interest import InterestRecommender

    return InterestRecommender


def _joint_class() -> type:
    from textinterest.models.joint import JointInterestRecommender

    return JointInterestRecommender


def _mf(ctx: BuildContext) -> Recommender:
    return _mf_class()(ctx.task, train_config=ctx.train_config, **ctx.params)


def _seq_lstm(ctx: BuildContext) -> Recommender:
    return _seq_lstm_class()(ctx.task, train_config=ctx.train_config, **ctx.params)


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
        from textinterest.models.topic_recovery import measure_topic_recovery

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


def _build_base(name: str, ctx: BuildContext, params: dict[str, Any]) -> Recommender:
    spec = get(name)
    config, own = None, ctx.train_config
    if spec.train_defaults is not None:
        over: dict[str, Any] = {"seed": ctx.seed}
        if own is not None:
            over.update(device=own.device, progress=own.progress)
            if own.epochs != TRAIN_DEFAULTS["interest"]["epochs"]:  # the run's own epoch cap
                over["epochs"] = own.epochs
        config = spec.train_config(**over)
    return spec.build(replace(ctx, train_config=config, params=dict(params)))


def _build_blend(variant: str, ctx: BuildContext) -> Recommender:
    from textinterest.models.blend import BLEND_FAMILIES, BLEND_VARIANTS, BlendRecommender

    family, part = BLEND_VARIANTS[variant]
    bases, candidates = BLEND_FAMILIES[family]
    if ctx.task not in bases:
        raise ValueError(f"{variant} serves {sorted(bases)}, not {ctx.task!r}")
    base = bases[ctx.task]
    grid = get(base).grid
    if candidates == "tuned":  # the base's own validated choice when the run tuned it, else its reference recipe
        chosen = (ctx.options or {}).get("chosen", {}).get(base, {}).get(ctx.task)
        grid = (dict(chosen),) if chosen is not None else grid[:1]
    return BlendRecommender(
        ctx.task,
        functools.partial(_build_base, base, ctx),
        functools.partial(_build_interest, part, ctx),
        base_grid=grid,
        name=variant,
    )


def _blend_report(model: Any, ctx: ReportContext) -> dict[str, Any]:
    """The weight validation chose, and each part's epochs."""
    settings = model.refit_settings()
    out = {f"{ctx.task}_blend_weight": settings["weight"], f"{ctx.task}_base_params": settings["base_params"]}
    for part in ("base", "interest"):
        if settings[f"{part}_epochs"] is not None:
            out[f"{ctx.task}_{part}_epochs"] = settings[f"{part}_epochs"]
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
            saved_class=_mf_class,
            train_defaults=TRAIN_DEFAULTS["mf"],
            grid=MF_GRID,
            description="ID-only biased matrix factorisation (MSE / BPR)",
        )
    )
    register(
        ModelSpec(
            "seq-lstm",
            _seq_lstm,
            saved_class=_seq_lstm_class,
            tasks=("ranking",),
            train_defaults=TRAIN_DEFAULTS["seq-lstm"],
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
                saved_class=_interest_class if full else None,
                tasks=INTEREST_VARIANT_TASKS.get(variant, TASKS),
                default=variant not in INTEREST_SWITCHES,
                train_defaults=TRAIN_DEFAULTS["interest"],
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
            saved_class=_joint_class,
            train_defaults=TRAIN_DEFAULTS["interest+joint"],
            tuned_by="interest",
            uses_text=True,
            uses_sentiment=True,
            default=False,
            description="interest model with its text encoder fine-tuned jointly (a GPU job)",
        )
    )
    _register_blends()


def _register_blends() -> None:
    """The interest model on a base (``interest+cf``, ``interest+sasrec``) and their ablations."""
    from textinterest.models.blend import BLEND_FAMILIES, BLEND_VARIANTS

    for variant, (family, part) in BLEND_VARIANTS.items():
        bases, candidates = BLEND_FAMILIES[family]
        cornac = "cornac-bpr" in bases.values()
        register(
            ModelSpec(
                variant,
                functools.partial(_build_blend, variant),
                tasks=tuple(task for task in TASKS if task in bases),
                train_defaults=TRAIN_DEFAULTS["interest"],
                grid=INTEREST_GRID if variant == family else (),
                tuned_by=None if variant == family else family,
                uses_text=INTEREST_VARIANTS[part].get("use_text", True),
                uses_sentiment=INTEREST_VARIANTS[part].get("use_sentiment", True),
                extra="peers" if cornac else None,
                requires=("cornac",) if cornac else (),
                default=False,
                report=_blend_report,
                reads_choice_of=tuple(bases.values()) if candidates == "tuned" else (),
                description=f"{part} blended with {' / '.join(f'{b} ({t})' for t, b in bases.items())}"
                f"{' as the run tuned it' if candidates == 'tuned' else ''}, weight chosen on validation",
            )
        )


_register_builtins()
# the peers of the field (SASRec, GRU4Rec, the text profile; Cornac's models with the extra "peers")
register_peers(register, names)
