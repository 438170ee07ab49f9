"""The ``evaluate`` pipeline: one data set, one split, every model side by side, several seeds.

:func:`run_evaluation` does, in this process (step 4 optionally in worker processes, ``workers``):

1. load the data set and split it (default leave-last-out: per user, last -> test, second last
   -> validation, the rest -> train; ties broken by source order);
2. embed the *training* review texts once with :class:`~textinterest.text.features.BertFeatureExtractor`
   (cached on disk) -- test texts are never embedded, so they cannot leak; under the standard
   ``protocol="val-in-history"`` the validation texts are embedded too, for the refits on train +
   validation that score the test split (see :mod:`textinterest.protocol.protocols`);
3. score the sentiment of the training reviews with a classifier (a frozen head, or the encoder's top layers
   fine-tuned) fitted on training reviews only (a slice of train for its early stopping);
4. train and evaluate, for every seed, every selected model of :mod:`textinterest.models.registry`
   (by default: the baselines, ID-only MF, the ID-only sequential LSTM, the dynamic interest model
   and its ablations -- no text, no sentiment, no LSTM, K = 1, no CF term); early stopping and each
   model's registered hyper-parameter grid look at the validation split only; a model whose
   optional extra is not installed is listed under ``"skipped"`` with the reason. Each tuning trial
   and each (model, seed, task) fit is one job of :func:`textinterest.job_pool.run_jobs`, assembled in
   registry and seed order; a torch fit the run already made is reused (``result["fit_memo"]``);
5. aggregate mean and standard deviation over seeds; a per-user paired test (bootstrap CI and
   Wilcoxon, :mod:`textinterest.significance`) of ``interest`` against the best other model per
   metric, and every model's metrics on the slices of :func:`textinterest.protocol.protocols.slice_masks`.

:func:`format_results_table` renders the result as a markdown table.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import (
    ITEM_COL,
    RANKING_KS,
    SEED,
    USER_COL,
)
from textinterest.models import registry as _registry
from textinterest.models.registry import INTEREST_GRID, INTEREST_VARIANTS
from textinterest.protocol.evaluation_jobs import EvaluationRun, execute, subsample_users
from textinterest.protocol.protocols import (
    DEFAULT_PROTOCOL,
    TEST_PROTOCOLS,
    slice_masks,
    slice_means,
)
from textinterest.protocol.text_inputs import (
    build_text_features,
    cold_start_counts,
    fit_review_sentiment,
    held_out_text_duplicates,
    review_texts,
    score_review_sentiment,
)
from textinterest.protocol.text_inputs import log as _log
from textinterest.utils import atomic_write_text, json_default, markdown_table

__all__ = [
    "INTEREST_VARIANTS",
    "DEFAULT_MODELS",
    "review_texts",
    "build_text_features",
    "cold_start_counts",
    "held_out_text_duplicates",
    "RunConfig",
    "run_evaluation",
    "format_results_table",
]

# Names kept for existing imports; the registry (textinterest.models.registry) is the source.
DEFAULT_MODELS = _registry.default_names()
JOINT_MODEL = "interest+joint"
#: the run's sentiment feature: a classifier of SENTIMENT_MODES fitted on training reviews, or none (zeros)
SENTIMENT_CHOICES = ("frozen", "finetuned", "none")
VALID_MODELS = _registry.valid_names()
TUNING_GRID = INTEREST_GRID
METRICS = ("rmse", "mae") + tuple(f"{m}@{k}" for k in RANKING_KS for m in ("hr", "ndcg")) + ("mrr",)


def _aggregate(runs: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds (ddof=1; 0 for a single seed) of each metric per model."""
    rows = []
    for name in order:
        mine = [r for r in runs if r["model"] == name]
        if not mine:
            continue
        row: dict[str, Any] = {"model": name, "n_seeds": len({r["seed"] for r in mine})}
        keys = sorted({k for r in mine for k, v in r.items() if isinstance(v, (int, float)) and k not in ("seed",)})
        for key in keys:
            values = np.array([r[key] for r in mine if key in r and r[key] is not None], dtype=np.float64)
            values = values[np.isfinite(values)]
            if not values.size:
                continue
            row[key] = float(values.mean())
            if key in METRICS or key.endswith("_seconds"):
                row[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        rows.append(row)
    return rows


def _check_arguments(cfg: RunConfig) -> None:
    """Raise ValueError on a bad field of ``cfg`` before any data is loaded."""
    from textinterest.job_pool import resolve_workers
    from textinterest.training import resolve_device

    bad = [t for t in cfg.tasks if t not in ("rating", "ranking")]
    if bad or not cfg.tasks:
        raise ValueError(f"tasks must be a non-empty subset of ('rating', 'ranking'), got {cfg.tasks}")
    if cfg.joint_layers is not None and cfg.joint_layers < 0:
        raise ValueError(f"joint_layers must be None (all layers) or >= 0, got {cfg.joint_layers}")
    if cfg.sentiment not in SENTIMENT_CHOICES:
        raise ValueError(f"sentiment must be one of {SENTIMENT_CHOICES}, got {cfg.sentiment!r}")
    if not cfg.seeds:
        raise ValueError("seeds must hold at least one seed")
    if cfg.protocol not in TEST_PROTOCOLS:
        raise ValueError(f"unknown protocol {cfg.protocol!r}; valid values: {', '.join(TEST_PROTOCOLS)}")
    resolve_workers(cfg.workers)
    resolve_device(cfg.device)
    if cfg.interest_config:
        from textinterest.models.interest import InterestConfig

        bad_fields = sorted(set(cfg.interest_config) - set(InterestConfig.__dataclass_fields__))
        if bad_fields:
            raise ValueError(f"interest_config has unknown InterestConfig field(s) {bad_fields}")


def _text_features(
    run: EvaluationRun, extractor: Any, encoder: str, sentiment: str, progress: Any, timings: dict[str, float]
) -> dict[str, Any]:
    """Embed the training reviews (and score their sentiment) when a selected model reads text."""
    if not any(spec.uses_text for spec in run.specs):
        return {"status": "not needed"}
    train = run.parts.train
    t = time.perf_counter()
    if extractor is None:
        from textinterest.text.hashing import make_extractor  # "hashing[:D]" or a BERT encoder

        extractor = make_extractor(
            encoder, device=run.device, progress=bool(progress) if progress is not None else None
        )
    _log(progress, f"embedding {len(train)} training reviews")
    run.features = build_text_features(train, extractor, items=run.dataset.items)
    timings["embed_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    info: dict[str, Any] = {"status": "not needed"}
    classifier = None
    if sentiment == "none":
        info = {"status": "off", "reason": "sentiment='none'"}
    elif any(spec.uses_sentiment for spec in run.specs):
        classifier, scores, info = fit_review_sentiment(
            train, run.features.texts, mode=sentiment, encoder=encoder, seed=SEED, device=run.device, progress=progress
        )
        run.features = replace(run.features, sentiment=scores)
    timings["sentiment_seconds"] = time.perf_counter() - t
    if run.protocol == "val-in-history" and len(run.parts.val):
        # the validation reviews join the history at test time (never the test reviews)
        t = time.perf_counter()
        history = pd.concat([train, run.parts.val], ignore_index=True)
        _log(progress, f"embedding {len(history)} train + validation reviews for the refits")
        run.history_features = build_text_features(history, extractor, items=run.dataset.items)
        if classifier is not None and sentiment == "frozen":  # a frozen head is refitted on the history (seconds)
            _, scores, _ = fit_review_sentiment(
                history, run.history_features.texts, mode=sentiment, encoder=encoder, seed=SEED, device=run.device
            )
            run.history_features = replace(run.history_features, sentiment=scores)
        elif classifier is not None:  # a fine-tuned one (minutes) scores the validation reviews as it is
            scores = score_review_sentiment(classifier, run.history_features.texts)
            run.history_features = replace(run.history_features, sentiment=scores)
        timings["history_features_seconds"] = time.perf_counter() - t
    return info


def _own_variants(run: EvaluationRun, main: str) -> set[str]:
    """``main`` and the models that are versions of it (its ablations and switches; for the interest model
    also the jointly fine-tuned one): the paired test against "the best other model" leaves them out."""
    if main == "interest":
        return set(INTEREST_VARIANTS) | {JOINT_MODEL}
    return {main} | {spec.name for spec in run.specs if spec.tuned_by == main}


def _compare(run: EvaluationRun, train: pd.DataFrame, main: str = "interest") -> dict[str, Any]:
    """Paired tests of ``main`` against the best other model, and every model's slices (seed-averaged per user)."""
    from textinterest.significance import compare_to_best

    own = _own_variants(run, main)
    out: dict[str, Any] = {"significance": compare_to_best(run.store, main, exclude=tuple(own)), "slices": {}}
    evaluated = {model for model, _ in run.store.keys()}
    # main against each of its own versions, pair by pair (is the text part of a win?)
    out["significance_ablations"] = {
        variant: compare_to_best(run.store, main, exclude=tuple(evaluated - {variant}))
        for variant in sorted(evaluated & own - {main})
    }
    for model, task in run.store.keys():
        users, values = run.store.mean(model, task)
        masks = slice_masks(train, users, run.parts.test)
        for key, vals in values.items():
            metric = "rmse" if key == "se" else key
            if metric in ("rmse", "ndcg@10", "hr@10"):
                statistic = "rmse" if key == "se" else "mean"
                out["slices"].setdefault(model, {})[metric] = slice_means(vals, masks, statistic)
    return out


def _seed_halves(run: EvaluationRun, main: str, seeds: Sequence[int]) -> dict[str, Any]:
    """The paired test of ``main`` against the best other model on each half of the seeds (4 seeds or more;
    else empty): ``{"seeds 0,1,2": {...}, "seeds 3,4,5": {...}}`` -- does the verdict hold on both halves?"""
    from textinterest.significance import compare_to_best

    if len(seeds) < 4:
        return {}
    own = tuple(_own_variants(run, main))
    half = len(seeds) // 2
    parts = (tuple(seeds[:half]), tuple(seeds[half:]))
    return {
        "seeds " + ",".join(map(str, part)): compare_to_best(run.store.subset(part), main, exclude=own)
        for part in parts
    }


def _result(
    run: EvaluationRun,
    cfg: RunConfig,
    df: pd.DataFrame,
    runs: list[dict[str, Any]],
    timings: dict[str, float],
    tuning: dict[str, Any],
    sentiment_info: dict[str, Any],
    skipped: dict[str, str],
    progress: Any,
) -> dict[str, Any]:
    """The result dict of :func:`run_evaluation` (see its docstring), with duplicate-text warnings."""
    from textinterest.models import registry
    from textinterest.training import run_environment  # torch loads on first use

    name, split, seeds, max_users = cfg.name, cfg.split, cfg.seeds, cfg.max_users
    parts, dataset, tasks, device = run.parts, run.dataset, run.tasks, run.device
    train, val = parts.train, parts.val
    encoder = run.options["encoder"]
    duplicates = held_out_text_duplicates(train, val, parts.test)
    warnings = []
    if len(parts.test) and duplicates["test_same_user_text_in_train"] > 0.01 * len(parts.test):
        warnings.append(
            f"{duplicates['test_same_user_text_in_train']} of {len(parts.test)} test rows repeat a training review "
            "of the same user word for word (e.g. one review posted for several product variants): models that "
            "read the user's history can copy the rating, so these results overstate them"
        )
        _log(progress, "warning: " + warnings[-1])
    # the hyper-parameters the interest model (else the first model with a grid) trained with, per task;
    # result["tuning"]["by_model"] holds every tuned model's choice
    tuned = [spec for spec in run.specs if spec.grid or spec.tuned_by]
    primary = next((spec for spec in tuned if spec.name == "interest"), tuned[0] if tuned else None)
    chosen = {task: run.context(primary, task, seeds[0]).params for task in tasks} if primary else {}
    return {
        "dataset": dataset.name if hasattr(dataset, "name") else name,
        "split": split,
        "n_train": int(len(train)),
        "n_val": int(len(val)),
        "n_test": int(len(parts.test)),
        "n_users": int(df[USER_COL].nunique()),
        "n_items": int(df[ITEM_COL].nunique()),
        "max_users": max_users,
        "seeds": list(seeds),
        "tasks": list(tasks),
        "results": _aggregate(runs, list(dict.fromkeys(r["model"] for r in runs))),
        "runs": runs,
        "timings": timings,
        "cold_start": {**cold_start_counts(train, val, parts.test), **parts.info},
        "duplicates": duplicates,
        "warnings": warnings,
        "skipped": skipped,
        "sentiment": sentiment_info,
        **run.extras,
        "tuning": tuning,
        "config": {
            "interest": asdict(registry.interest_base_config(train, dataset)),
            "chosen": chosen,
            "encoder": encoder,
        },
        "environment": run_environment(device),
    }


@dataclass
class RunConfig:
    """What one ``evaluate`` run is: built by the CLI, read by :func:`run_evaluation`, recorded in its JSON.

    Args:
        name: data set name for :func:`textinterest.datasets.load_dataset`.
        split: "leave-last-out" (default), "temporal" or "random".
        seeds: training seeds (>= 3 for headline numbers); each seed retrains every model.
        data_home: data folder (default: ``$TEXTINTEREST_DATA``).
        encoder: text encoder for :class:`~textinterest.text.features.BertFeatureExtractor`.
        models: model or group names of :mod:`textinterest.models.registry` (default: its default
            set; "baselines" = the Surprise / popularity set).
        main: the model under test: the paired tests compare it with the best other model (its own
            ablations left out) and with each of its ablations; None: ``"interest"`` (no tests when it
            is not selected).
        tasks: "rating" and/or "ranking".
        max_users: evaluate on a seeded sample of this many users (quick runs).
        device: "auto", "cpu" or "cuda" for the torch models.
        json_out: write the result here as JSON (atomically).
        ks: ranking cutoffs.
        tune: search each model's registered grid on validation RMSE (rating) / NDCG@10 (ranking),
            first seed; False uses each grid's first entry.
        epochs: cap on training epochs (default: each model's registered default).
        sentiment: "frozen" (a logistic head on the frozen encoder, fitted on training reviews), "finetuned"
            (the encoder's top layers fine-tuned on training reviews, :data:`~textinterest.text.sentiment.
            SENTIMENT_MODES`; it then scores the validation reviews of the refit history as they are) or "none"
            (sentiment inputs are zeros; the no-sentiment ablation then equals the full model).
        joint_layers: for ``"interest+joint"`` (asked for in ``models``): how many top encoder
            layers to fine-tune with the interest model; None = all of them (a GPU job).
        joint_max_length: token limit per review while fine-tuning jointly.
        interest_config: :class:`~textinterest.models.interest.InterestConfig` fields overriding the
            defaults and the tuned values (e.g. ``{"hidden": 16}``) for the interest model and its ablations.
        protocol: how test is scored after model selection on validation (see :mod:`textinterest.protocol.protocols`):
            "val-in-history" (standard leave-one-out: refit on train + validation, the validation item
            is history and not a candidate) or "train-history" (the earlier tables' protocol).
        workers: 1 fits every model in this process; N > 1 fits them in N worker processes with
            ``usable CPUs // N`` threads each (see :mod:`textinterest.job_pool`); "auto" picks one
            per CPU (at most 4; 1 on a GPU). The metrics do not depend on it, except for the
            rounding differences of a different torch thread count. Each worker holds a copy of
            the split and its text features.
        reuse_fits: reuse a torch fit the run already made with the same settings, seed and rows
            (:mod:`textinterest.models.fit_memo`: same figures, less time); False trains every fit.
    """

    name: str
    split: str = "leave-last-out"
    seeds: Sequence[int] = (0, 1, 2)
    data_home: str | Path | None = None
    encoder: str = "default"
    models: Sequence[str] | None = None
    main: str | None = None
    tasks: Sequence[str] = ("rating", "ranking")
    max_users: int | None = None
    device: str = "auto"
    json_out: str | Path | None = None
    ks: Sequence[int] = RANKING_KS
    tune: bool = True
    epochs: int | None = None
    sentiment: str = "frozen"
    joint_layers: int | None = None
    joint_max_length: int = 128
    interest_config: dict[str, Any] | None = None
    protocol: str = DEFAULT_PROTOCOL
    workers: int | str = 1
    reuse_fits: bool = True

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        self.tasks = tuple(self.tasks)
        self.ks = tuple(int(k) for k in self.ks)
        if self.models is not None:
            self.models = tuple(self.models)
        _check_arguments(self)

    def record(self) -> dict[str, Any]:
        """The JSON-able form stored in the result (``result["run_config"]``)."""
        out = asdict(self)
        for key in ("data_home", "json_out"):
            out[key] = None if out[key] is None else os.fspath(out[key])
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def run_evaluation(
    config: RunConfig | str,
    *,
    extractor: Any = None,
    dataset: Any = None,
    progress: bool | Callable[[str], None] | None = None,
    per_user: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    """Evaluate every selected model of the registry on one data set and one split, over several seeds.

    Args:
        config: the :class:`RunConfig`; or a data set name, with ``fields`` the other
            :class:`RunConfig` fields (``run_evaluation("synthetic", seeds=[0])``).
        extractor: an object with ``embed(texts)`` replacing the BERT extractor (tests).
        dataset: an already loaded ``ReviewDataset`` (skips loading ``config.name``).
        progress: True prints stage messages to stderr (a callable receives them instead); None is quiet.
        per_user: a :class:`~textinterest.significance.PerUserStore` that receives every model's per-user
            test values, seed by seed (for paired tests across runs); None keeps them inside the run.

    Returns:
        ``{"dataset", "split", "n_train", "n_val", "n_test", "seeds", "tasks", "results": [one row per model
        with metric means and ``<metric>_std``], "runs": [per seed rows], "timings": {...} (``<model>_seconds``
        and ``tuning_seconds`` add up each job's wall time, so with several workers they sum to more than
        ``total_seconds``; ``jobs_cpu_seconds`` is the jobs' CPU time), "cold_start", "sentiment", "tuning",
        "skipped", "config", "run_config", "environment", "fit_memo": {"fitted", "reused"} or None}``, plus
        ``"topic_recovery"`` (per seed and task, see
        :func:`~textinterest.models.topic_recovery.measure_topic_recovery`) on data with planted topics.
    """
    from textinterest.datasets.splits import split_interactions
    from textinterest.models import registry
    from textinterest.significance import PerUserStore

    if isinstance(config, str):
        config = RunConfig(config, **fields)
    elif fields:
        raise TypeError(f"give either a RunConfig or a name with fields, not both: {sorted(fields)}")
    cfg = config
    specs, skipped = _selected_specs(registry.resolve(cfg.models), progress)
    main = cfg.main or "interest"
    if cfg.main is not None and cfg.main not in {spec.name for spec in specs}:
        raise ValueError(f"main={cfg.main!r} is not among the selected models {[spec.name for spec in specs]}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if dataset is None:
        from textinterest.datasets import load_dataset

        _log(progress, f"loading {cfg.name}")
        dataset = load_dataset(cfg.name, data_home=cfg.data_home)
    df = subsample_users(dataset.interactions, cfg.max_users, SEED)
    parts = split_interactions(df, how=cfg.split, seed=SEED)
    timings["load_split_seconds"] = time.perf_counter() - t0
    _log(progress, f"split {cfg.split}: train {len(parts.train)}, val {len(parts.val)}, test {len(parts.test)}")
    options = {
        "encoder": cfg.encoder,
        "interest_config": cfg.interest_config,
        "joint_layers": cfg.joint_layers,
        "joint_max_length": cfg.joint_max_length,
    }
    run = EvaluationRun(
        parts, dataset, specs, cfg.tasks, cfg.ks, cfg.device, cfg.epochs, options, protocol=cfg.protocol,
        store=PerUserStore() if per_user is None else per_user,
    )  # fmt: skip
    sentiment_info = _text_features(run, extractor, cfg.encoder, cfg.sentiment, progress, timings)
    tune = cfg.tune and bool(len(parts.val))
    tuning, runs, pool = execute(run, cfg.seeds, tune, cfg.workers, progress, timings, cfg.reuse_fits)
    comparison = _compare(run, run.parts.train, main)
    comparison["significance_by_seed_half"] = _seed_halves(run, main, cfg.seeds)
    timings["total_seconds"] = time.perf_counter() - t0
    result = _result(run, cfg, df, runs, timings, tuning, sentiment_info, skipped, progress)
    result.update(protocol=cfg.protocol, main=main, run_config=cfg.record(), fit_memo=pool["fit_memo"], **comparison)
    result["environment"].update(workers=pool["workers"], threads_per_worker=pool.get("threads"))
    result["timings"]["jobs_cpu_seconds"] = pool["cpu_seconds"]
    if cfg.json_out is not None:
        atomic_write_text(cfg.json_out, json.dumps(result, indent=2, default=json_default))
    return result


def _selected_specs(specs: list[Any], progress: Any) -> tuple[list[Any], dict[str, str]]:
    """The specs that can run here, and the reason each other one is skipped."""
    skipped = {spec.name: spec.missing() for spec in specs if spec.missing()}
    for model_name, reason in skipped.items():
        _log(progress, f"skipped {model_name}: {reason}")
    return [spec for spec in specs if spec.name not in skipped], skipped


def format_results_table(
    result: dict[str, Any], metrics: Sequence[str] = ("rmse", "mae", "hr@10", "ndcg@10", "mrr")
) -> str:
    """A markdown table of ``result["results"]``: ``mean ± std`` over seeds, "–" where a metric does not apply.

    Args:
        result: the dict returned by :func:`run_evaluation`.
        metrics: columns to show.
    """
    if "results" not in result:
        raise ValueError("result has no 'results' field (is it the output of run_evaluation?)")
    title = (
        f"{result.get('dataset', '?')} · {result.get('split', '?')} · seeds {result.get('seeds')} · "
        f"train/val/test {result.get('n_train')}/{result.get('n_val')}/{result.get('n_test')}"
    )
    rows = []
    for row in result["results"]:
        cells = [str(row["model"])]
        for m in metrics:
            if m in row and row[m] is not None and np.isfinite(row[m]):
                std = row.get(f"{m}_std")
                cells.append(f"{row[m]:.4f} ± {std:.4f}" if std is not None else f"{row[m]:.4f}")
            else:
                cells.append("–")
        rows.append(cells)
    table = markdown_table(["model"] + [m.upper() for m in metrics], rows, align=["l"] + ["r"] * len(metrics))
    return title + "\n\n" + table
