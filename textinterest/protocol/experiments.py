"""The ``evaluate`` pipeline: one data set, one split, every model side by side, several seeds.

:func:`run_evaluation` does, in this process (step 4 optionally in worker processes, ``workers``):

1. load the data set and split it (default leave-last-out: per user, last -> test, second last
   -> validation, the rest -> train; ties broken by source order);
2. embed the *training* review texts once with :class:`~textinterest.text.features.BertFeatureExtractor`
   (cached on disk) -- test texts are never embedded, so they cannot leak; under the standard
   ``protocol="val-in-history"`` the validation texts are embedded too, for the refits on train +
   validation that score the test split (see :mod:`textinterest.protocol.protocols`);
3. score the sentiment of the training reviews with ``SentimentClassifier(mode="frozen")``
   fitted on training reviews only (a slice of train for its early stopping);
4. train and evaluate, for every seed, every selected model of :mod:`textinterest.models.registry`
   (by default: the baselines, ID-only MF, the ID-only sequential LSTM, the dynamic interest model
   and its ablations -- no text, no sentiment, no LSTM, K = 1, no CF term); early stopping and each
   model's registered hyper-parameter grid look at the validation split only; a model whose
   optional extra is not installed is listed under ``"skipped"`` with the reason. Each tuning
   trial and each (model, seed, task) fit is one job of :func:`textinterest.job_pool.run_jobs`;
   the rows are assembled in registry and seed order, whatever order the jobs ran in;
5. aggregate mean and standard deviation over seeds; a per-user paired test (bootstrap CI and
   Wilcoxon, :mod:`textinterest.significance`) of ``interest`` against the best other model per
   metric, and every model's metrics on the slices of :func:`textinterest.protocol.protocols.slice_masks`.

:func:`format_results_table` renders the result as a markdown table.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import (
    ITEM_COL,
    RANKING_KS,
    RATING_COL,
    SEED,
    USER_COL,
)
from textinterest.models import registry as _registry
from textinterest.models.registry import INTEREST_GRID, INTEREST_VARIANTS
from textinterest.protocol.protocols import (
    DEFAULT_PROTOCOL,
    TEST_PROTOCOLS,
    fit_for_test,
    slice_masks,
    slice_means,
    validation_score,
)
from textinterest.protocol.text_inputs import (
    build_text_features,
    cold_start_counts,
    held_out_text_duplicates,
    review_texts,
)
from textinterest.protocol.text_inputs import log as _log
from textinterest.protocol.text_inputs import sentiment_scores as _sentiment_scores
from textinterest.utils import atomic_write_text, json_default, markdown_table

__all__ = [
    "INTEREST_VARIANTS",
    "DEFAULT_MODELS",
    "review_texts",
    "build_text_features",
    "cold_start_counts",
    "held_out_text_duplicates",
    "run_evaluation",
    "format_results_table",
]

# Names kept for existing imports; the registry (textinterest.models.registry) is the source.
DEFAULT_MODELS = _registry.default_names()
JOINT_MODEL = "interest+joint"
VALID_MODELS = _registry.valid_names()
TUNING_GRID = INTEREST_GRID
METRICS = ("rmse", "mae") + tuple(f"{m}@{k}" for k in RANKING_KS for m in ("hr", "ndcg")) + ("mrr",)


def _subsample_users(df: pd.DataFrame, max_users: int | None, seed: int) -> pd.DataFrame:
    if max_users is None:
        return df
    if max_users < 1:
        raise ValueError(f"max_users must be >= 1 or None, got {max_users}")
    users = pd.unique(df[USER_COL])
    if len(users) <= max_users:
        return df
    keep = set(np.random.default_rng(seed).choice(users, size=max_users, replace=False).tolist())
    return df[df[USER_COL].isin(keep)]


def _evaluate_model(
    model: Any, split: Any, task: str, ks: Sequence[int], store: Any = None, name: str = ""
) -> dict[str, float]:
    """Test metrics of a fitted model for one task (empty when the model or the data cannot answer it).

    ``split.train`` is the history whose items are not candidates; ``store`` (a
    :class:`~textinterest.significance.PerUserStore`) receives the per-user values under ``name``.
    """
    from textinterest.evaluation import evaluate_ranking, mae, rmse
    from textinterest.significance import per_user_ranking, per_user_squared_error

    test = split.test
    if not model.capabilities.serves(task):
        return {}
    if task == "rating":
        rated = test[pd.to_numeric(test[RATING_COL], errors="coerce").notna()] if RATING_COL in test else test.iloc[:0]
        if not len(rated):
            return {}
        pred = model.predict(rated)
        truth = rated[RATING_COL].to_numpy(dtype=np.float64)
        if store is not None:
            users, se = per_user_squared_error(rated[USER_COL].to_numpy(), truth, pred)
            store.add(name, task, users, {"se": se})
        return {
            "rmse": rmse(truth, pred),
            "mae": mae(truth, pred),
            "n_rated": int(len(rated)),
            "n_fallback": int(model.n_fallback_),
        }
    if not len(test):
        return {}
    ids = model.user_index.ids
    score = lambda u: model.score_items(ids[u])  # noqa: E731
    if store is not None:
        users, per_user = per_user_ranking(score, split.train, test, model.user_index, model.item_index, ks=ks)
        store.add(name, task, users, per_user)
    result = evaluate_ranking(score, split.train, test, model.user_index, model.item_index, ks=ks)
    return {k: v for k, v in result.items() if k not in ("n_users", "n_items")}


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


@dataclass
class _Run:
    """Everything one evaluation run shares between its stages."""

    parts: Any
    dataset: Any
    specs: list[Any]
    tasks: tuple[str, ...]
    ks: tuple[int, ...]
    device: str
    epochs: int | None
    options: dict[str, Any]
    features: Any = None
    chosen: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # model -> task -> params
    extras: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    protocol: str = "val-in-history"
    history_features: Any = None  # text inputs of train + validation rows (refits under "val-in-history")
    store: Any = None  # per-user test values for the paired tests and the slices

    def spec(self, name: str) -> Any:
        """The selected spec called ``name``."""
        return next(spec for spec in self.specs if spec.name == name)

    def context(self, spec: Any, task: str, seed: int, params: dict[str, Any] | None = None, frame: Any = None) -> Any:
        from textinterest.models.registry import BuildContext

        config = None
        if spec.train_defaults is not None:
            over = {"seed": seed, "device": self.device, "progress": False}
            if self.epochs is not None:
                over["epochs"] = self.epochs
            config = spec.train_config(**over)
        if params is None:
            source = spec.tuned_by or spec.name
            params = self.chosen.get(source, {}).get(task, dict(_grid_of(source)[0]) if _grid_of(source) else {})
        refit = frame is not None and len(frame) != len(self.parts.train)  # the history: train + validation
        return BuildContext(
            task=task,
            seed=seed,
            train_config=config,
            params=dict(params),
            features=self.history_features if refit else self.features,
            train=frame if refit else self.parts.train,
            dataset=self.dataset,
            options=self.options,
        )


def _grid_of(name: str) -> tuple[dict[str, Any], ...]:
    from textinterest.models import registry

    return tuple(registry.get(name).grid)


def _check_arguments(
    tasks: tuple[str, ...],
    seeds: tuple[int, ...],
    sentiment: str,
    joint_layers: int | None,
    interest_config: dict[str, Any] | None,
    workers: int | str = 1,
) -> None:
    bad = [t for t in tasks if t not in ("rating", "ranking")]
    if bad or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of ('rating', 'ranking'), got {tasks}")
    if joint_layers is not None and joint_layers < 0:
        raise ValueError(f"joint_layers must be None (all layers) or >= 0, got {joint_layers}")
    if sentiment not in ("frozen", "none"):
        raise ValueError(f"sentiment must be 'frozen' or 'none', got {sentiment!r}")
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    from textinterest.job_pool import resolve_workers

    resolve_workers(workers)  # raises on a bad value, before any data is loaded
    if interest_config:
        from textinterest.models.interest import InterestConfig

        bad_fields = sorted(set(interest_config) - set(InterestConfig.__dataclass_fields__))
        if bad_fields:
            raise ValueError(f"interest_config has unknown InterestConfig field(s) {bad_fields}")


def _text_features(
    run: _Run, extractor: Any, encoder: str, sentiment: str, progress: Any, timings: dict[str, float]
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
    if sentiment == "none":
        info = {"status": "off", "reason": "sentiment='none'"}
    elif any(spec.uses_sentiment for spec in run.specs):
        _log(progress, "fitting the frozen sentiment classifier on training reviews")
        scores, info = _sentiment_scores(train, run.features.texts, SEED, progress, encoder, run.device)
        run.features = replace(run.features, sentiment=scores)
    timings["sentiment_seconds"] = time.perf_counter() - t
    if run.protocol == "val-in-history" and len(run.parts.val):
        # the validation reviews join the history at test time (never the test reviews)
        t = time.perf_counter()
        history = pd.concat([train, run.parts.val], ignore_index=True)
        _log(progress, f"embedding {len(history)} train + validation reviews for the refits")
        run.history_features = build_text_features(history, extractor, items=run.dataset.items)
        if run.features.sentiment is not None:
            scores, _ = _sentiment_scores(history, run.history_features.texts, SEED, progress, encoder, run.device)
            run.history_features = replace(run.history_features, sentiment=scores)
        timings["history_features_seconds"] = time.perf_counter() - t
    return info


def _cost(spec: Any) -> int:
    """A rough rank of how long one fit takes (text models > other torch models > tuned > the rest)."""
    return 3 if spec.uses_text else 2 if spec.train_defaults is not None else 1 if spec.grid else 0


def _fit_tasks(spec: Any, tasks: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The task groups fitted as one job: all tasks together when one fit answers them all, else one each."""
    mine = tuple(t for t in tasks if t in spec.tasks)
    if not mine:
        return []
    return [mine] if spec.fit_once else [(t,) for t in mine]


def _jobs(run: _Run, seeds: tuple[int, ...], tune: bool) -> list[Any]:
    """The run's jobs, longest first: every tuning trial, then every (model, seed, task) fit.

    A fit waits for the tuning trials of the model whose choice it uses (its own, or ``tuned_by``'s).
    """
    from textinterest.job_pool import Job

    by_cost = sorted(run.specs, key=_cost, reverse=True)  # stable: registry order within a cost
    tuned = {spec.name for spec in run.specs if spec.grid} if tune else set()
    trials = {
        (spec.name, task): [("tune", spec.name, task, j) for j in range(len(spec.grid))]
        for spec in run.specs
        if spec.name in tuned
        for task in run.tasks
        if task in spec.tasks
    }
    jobs = [Job(key) for spec in by_cost for task in run.tasks for key in trials.get((spec.name, task), [])]
    for spec in by_cost:
        source = spec.tuned_by or spec.name
        for seed in seeds:
            for group in _fit_tasks(spec, run.tasks):
                after = tuple(k for task in group for k in trials.get((source, task), []))
                jobs.append(Job(("fit", spec.name, seed, group), after))
    return jobs


def _tune_trial(run: _Run, name: str, task: str, j: int, seed: int) -> dict[str, Any]:
    """Fit candidate ``j`` of ``name``'s grid on train; its validation score (-RMSE or NDCG@10) and epochs."""
    spec = run.spec(name)
    model = spec.build(run.context(spec, task, seed, dict(spec.grid[j]))).fit(run.parts.train, run.parts.val)
    result = getattr(model, "train_result_", None)
    if result is None:  # no early stopping (Cornac): score the fitted model on validation directly
        return {"metric": validation_score(model, run.parts.train, run.parts.val, task)}
    return {"metric": float(result.best_metric), "epochs": int(result.best_epoch + 1)}


def _fit_job(
    run: _Run, name: str, seed: int, tasks: tuple[str, ...], chosen: dict[str, Any], known: dict[str, Any]
) -> tuple[dict[str, Any], Any, dict[str, list[dict[str, Any]]]]:
    """One model, one seed, one task group, on a private copy of the run: (result row, per-user values, extras)."""
    from textinterest.significance import PerUserStore

    mine = replace(run, chosen=chosen, store=PerUserStore(), extras={})
    row = _fit_and_test(run.spec(name), mine, seed, tasks, known)
    return row, mine.store, mine.extras


def _trial_scores(results: dict[Any, Any], spec: Any, task: str) -> list[float] | None:
    """Validation scores of ``spec``'s grid for ``task``, in grid order; None until every trial has finished."""
    keys = [("tune", spec.name, task, j) for j in range(len(spec.grid))]
    if not keys or any(k not in results for k in keys):
        return None
    return [results[k].value["metric"] for k in keys]


def _best(scores: list[float]) -> int:
    """The grid position with the best validation score (the first one among equals)."""
    return max(range(len(scores)), key=lambda j: (scores[j], -j))


def _execute(
    run: _Run, seeds: tuple[int, ...], tune: bool, workers: int, progress: Any, timings: dict[str, float]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Tune (first seed) and fit every model for every seed, in this process or in worker processes.

    Fills ``run.chosen``, ``run.store`` and ``run.extras``; returns ``(tuning, runs, pool_info)``.
    The results are assembled in registry and seed order, whatever order the jobs finished in.
    Under ``val-in-history`` the early-stopping fit of the chosen candidate on the first seed is the
    tuning trial itself, so that fit reuses the trial's epochs instead of training again.
    """
    from textinterest.job_pool import resolve_workers, run_jobs
    from textinterest.training import resolve_device

    jobs = _jobs(run, seeds, tune)
    specs = {spec.name: spec for spec in run.specs}

    def picks(source: str, results: dict[Any, Any]) -> dict[str, int]:
        """Per task, the grid position ``source``'s finished tuning chose."""
        out = {}
        for task in run.tasks:
            scores = _trial_scores(results, specs[source], task) if source in specs else None
            if scores is not None:
                out[task] = _best(scores)
        return out

    def prepare(job: Any, results: dict[Any, Any]) -> tuple[Any, tuple[Any, ...]]:
        if job.key[0] == "tune":
            _, name, task, j = job.key
            _log(progress, f"tuning {name} ({task}) on validation: {dict(specs[name].grid[j])}")
            return _tune_trial, (name, task, j, seeds[0])
        _, name, seed, tasks = job.key
        source = specs[name].tuned_by or name
        chosen_j = picks(source, results)
        chosen = {source: {task: dict(specs[source].grid[j]) for task, j in chosen_j.items()}}
        known: dict[str, Any] = {}
        if run.protocol == "val-in-history" and seed == seeds[0] and source == name:
            for task in tasks:  # the first fit of this seed is the chosen tuning trial, already run
                trial = results.get(("tune", name, task, chosen_j.get(task)))
                if trial is not None and "epochs" in trial.value:
                    known[task] = trial.value
        _log(progress, f"seed {seed}: {name} ({', '.join(tasks)})")
        return _fit_job, (name, seed, tasks, chosen, known)

    workers = resolve_workers(workers, device=str(resolve_device(run.device)), n_jobs=len(jobs))

    def done(job: Any, result: Any) -> None:
        if workers > 1:
            _log(progress, f"finished {job.key[0]} {' '.join(map(str, job.key[1:]))} in {result.seconds:.0f} s")

    state = replace(run, store=None, extras={})
    info: dict[str, Any] = {}
    if workers > 1:
        _log(progress, f"running {len(jobs)} fits in {workers} worker processes")
    results = run_jobs(jobs, prepare, state=state, workers=workers, info=info, on_done=done)

    tuning_records: dict[str, Any] = {}
    for spec in run.specs:
        scores = {task: _trial_scores(results, spec, task) for task in run.tasks}
        scores = {task: values for task, values in scores.items() if values is not None}
        if not scores:
            continue
        record = {
            "model": spec.name,
            "grid": [dict(g) for g in spec.grid],
            "chosen": {task: dict(spec.grid[_best(values)]) for task, values in scores.items()},
            "scores": {f"{task}:{j}": v for task, values in scores.items() for j, v in enumerate(values)},
            "trials": len(spec.grid),
        }
        tuning_records[spec.name] = record
        run.chosen[spec.name] = record["chosen"]
        seconds = sum(r.seconds for k, r in results.items() if k[0] == "tune" and k[1] == spec.name)
        timings["tuning_seconds"] = timings.get("tuning_seconds", 0.0) + seconds
    first = next(iter(tuning_records.values()), {"grid": [], "chosen": {}, "scores": {}})
    tuning = {**first, "by_model": tuning_records} if tuning_records else first

    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for spec in run.specs:
            row: dict[str, Any] = {"model": spec.name, "seed": seed}
            for group in _fit_tasks(spec, run.tasks):
                result = results[("fit", spec.name, seed, group)]
                part, store, extras = result.value
                row.update(part)
                run.store.extend(store)
                for key, records in extras.items():
                    run.extras.setdefault(key, []).extend(records)
                label = f"{spec.group or spec.name}_seconds"
                timings[label] = timings.get(label, 0.0) + result.seconds
            runs.append(row)
    info["cpu_seconds"] = sum(r.cpu_seconds for r in results.values())
    return tuning, runs, info


def _fit_and_test(
    spec: Any, run: _Run, seed: int, tasks: tuple[str, ...], known: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One model, one seed: fit (once, or per task with validation) and test; the result row.

    ``known``: per task, the epochs and validation score of a first fit already run (a tuning trial).
    """
    row: dict[str, Any] = {}
    model = None
    for task in tasks:
        t = time.perf_counter()
        if model is None or not spec.fit_once:
            model, history, info = fit_for_test(
                lambda frame, task=task: spec.build(run.context(spec, task, seed, frame=frame)),
                run.parts.train,
                run.parts.val,
                run.protocol,
                known=(known or {}).get(task),
            )
            if hasattr(model, "set_prediction_times"):
                model.set_prediction_times(run.parts.test)  # time-safe item text
        row.update(
            _evaluate_model(
                model,
                SimpleNamespace(train=history, test=run.parts.test),
                task,
                run.ks,
                store=run.store,
                name=spec.name,
            )
        )
        result = getattr(model, "train_result_", None)
        if result is not None:
            row[f"{task}_epochs"] = int(result.best_epoch + 1)
        if info.get("val_metric") is not None:  # the early-stopping score on validation (-RMSE or NDCG@10)
            row[f"{task}_val_metric"] = info["val_metric"]
        if spec.report is not None:
            from textinterest.models.registry import ReportContext

            row.update(spec.report(model, ReportContext(task, seed, run.parts, run.dataset, run.extras)))
        row[f"{task}_seconds"] = time.perf_counter() - t
    return row


def _compare(run: _Run, train: pd.DataFrame) -> dict[str, Any]:
    """Paired tests of ``interest`` against the best other model, and every model's slices (seed-averaged per user)."""
    from textinterest.significance import compare_to_best

    own = tuple(INTEREST_VARIANTS) + (JOINT_MODEL,)
    out: dict[str, Any] = {"significance": compare_to_best(run.store, "interest", exclude=own), "slices": {}}
    evaluated = {model for model, _ in run.store.keys()}
    # interest against each of its own ablations, pair by pair (is the text part of a win?)
    out["significance_ablations"] = {
        variant: compare_to_best(run.store, "interest", exclude=tuple(evaluated - {variant}))
        for variant in sorted(evaluated & set(own) - {"interest"})
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


def _environment(device: str) -> dict[str, Any]:
    import torch

    from textinterest.training import resolve_device

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(resolve_device(device)),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def _result(
    run: _Run,
    name: str,
    split: str,
    df: pd.DataFrame,
    seeds: tuple[int, ...],
    runs: list[dict[str, Any]],
    timings: dict[str, float],
    tuning: dict[str, Any],
    sentiment_info: dict[str, Any],
    skipped: dict[str, str],
    max_users: int | None,
    progress: Any,
) -> dict[str, Any]:
    """The result dict of :func:`run_evaluation` (see its docstring), with duplicate-text warnings."""
    from textinterest.models import registry

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
        "environment": _environment(device),
    }


def run_evaluation(
    name: str,
    *,
    split: str = "leave-last-out",
    seeds: Sequence[int] = (0, 1, 2),
    data_home: str | Path | None = None,
    encoder: str = "default",
    models: Sequence[str] | None = None,
    tasks: Sequence[str] = ("rating", "ranking"),
    max_users: int | None = None,
    device: str = "auto",
    json_out: str | Path | None = None,
    progress: bool | Callable[[str], None] | None = None,
    ks: Sequence[int] = RANKING_KS,
    tune: bool = True,
    epochs: int | None = None,
    extractor: Any = None,
    dataset: Any = None,
    sentiment: str = "frozen",
    joint_layers: int | None = None,
    joint_max_length: int = 128,
    interest_config: dict[str, Any] | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    workers: int | str = 1,
) -> dict[str, Any]:
    """Evaluate every selected model of the registry on one data set and one split, over several seeds.

    Args:
        name: data set name for :func:`textinterest.datasets.load_dataset`.
        split: "leave-last-out" (default), "temporal" or "random".
        seeds: training seeds (>= 3 for headline numbers); each seed retrains every model.
        data_home: data folder (default: ``$TEXTINTEREST_DATA``).
        encoder: text encoder for :class:`~textinterest.text.features.BertFeatureExtractor`.
        models: model or group names of :mod:`textinterest.models.registry` (default: its default
            set; "baselines" = the Surprise / popularity set).
        tasks: "rating" and/or "ranking".
        max_users: evaluate on a seeded sample of this many users (quick runs).
        device: "auto", "cpu" or "cuda" for the torch models.
        json_out: write the result here as JSON (atomically).
        progress: True prints stage messages to stderr (a callable receives them instead);
            None is quiet.
        ks: ranking cutoffs.
        tune: search each model's registered grid on validation RMSE (rating) / NDCG@10 (ranking),
            first seed; False uses each grid's first entry.
        epochs: cap on training epochs (default: each model's registered default).
        extractor: an object with ``embed(texts)`` replacing the BERT extractor (tests).
        dataset: an already loaded ``ReviewDataset`` (skips loading ``name``).
        sentiment: "frozen" (``SentimentClassifier(mode="frozen")`` fitted on training reviews)
            or "none" (sentiment inputs are zeros; the no-sentiment ablation then equals the full model).
        interest_config: :class:`~textinterest.models.interest.InterestConfig` fields overriding the
            defaults and the tuned values (e.g. ``{"hidden": 16}``) for the interest model and its ablations.
        joint_layers: for ``"interest+joint"`` (asked for in ``models``): how many top encoder
            layers to fine-tune with the interest model; None = all of them (a GPU job).
        joint_max_length: token limit per review while fine-tuning jointly.
        protocol: how test is scored after model selection on validation (see :mod:`textinterest.protocol.protocols`):
            "val-in-history" (standard leave-one-out: refit on train + validation, the validation item
            is history and not a candidate) or "train-history" (the earlier tables' protocol).
        workers: 1 fits every model in this process; N > 1 fits them in N worker processes with
            ``usable CPUs // N`` threads each (see :mod:`textinterest.job_pool`); "auto" picks one
            per CPU (at most 4; 1 on a GPU). The metrics do not depend on it, except for the
            rounding differences of a different torch thread count. Each worker holds a copy of
            the split and its text features.

    Returns:
        ``{"dataset", "split", "n_train", "n_val", "n_test", "seeds", "tasks", "results": [one
        row per model with metric means and ``<metric>_std``], "runs": [per seed rows],
        "timings": {...} (``<model>_seconds`` and ``tuning_seconds`` add up each job's wall time, so with
        several workers they sum to more than ``total_seconds``; ``jobs_cpu_seconds`` is the jobs' CPU
        time), "cold_start": {...}, "sentiment": {...}, "tuning": {...}, "skipped": {...},
        "config": {...}, "environment": {...}}``, plus ``"topic_recovery"`` (per seed and task,
        see :func:`~textinterest.models.interest.measure_topic_recovery`) on data with planted topics.
    """
    from textinterest.datasets.splits import split_interactions
    from textinterest.models import registry
    from textinterest.training import resolve_device

    tasks, seeds = tuple(tasks), tuple(int(s) for s in seeds)
    specs = registry.resolve(models)
    _check_arguments(tasks, seeds, sentiment, joint_layers, interest_config, workers)
    resolve_device(device)
    skipped = {spec.name: spec.missing() for spec in specs if spec.missing()}
    specs = [spec for spec in specs if spec.name not in skipped]
    for model_name, reason in skipped.items():
        _log(progress, f"skipped {model_name}: {reason}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if dataset is None:
        from textinterest.datasets import load_dataset

        _log(progress, f"loading {name}")
        dataset = load_dataset(name, data_home=data_home)
    df = _subsample_users(dataset.interactions, max_users, SEED)
    parts = split_interactions(df, how=split, seed=SEED)
    timings["load_split_seconds"] = time.perf_counter() - t0
    train, val = parts.train, parts.val
    _log(progress, f"split {split}: train {len(train)}, val {len(val)}, test {len(parts.test)}")
    options = {
        "encoder": encoder,
        "interest_config": interest_config,
        "joint_layers": joint_layers,
        "joint_max_length": joint_max_length,
    }
    if protocol not in TEST_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid values: {', '.join(TEST_PROTOCOLS)}")
    from textinterest.significance import PerUserStore

    run = _Run(
        parts, dataset, specs, tasks, tuple(ks), device, epochs, options, protocol=protocol, store=PerUserStore()
    )
    sentiment_info = _text_features(run, extractor, encoder, sentiment, progress, timings)

    tuning, runs, pool = _execute(run, seeds, tune and bool(len(val)), workers, progress, timings)
    comparison = _compare(run, run.parts.train)
    timings["total_seconds"] = time.perf_counter() - t0
    result = _result(run, name, split, df, seeds, runs, timings, tuning, sentiment_info, skipped, max_users, progress)
    result.update(protocol=protocol, **comparison)
    result["environment"].update(workers=pool["workers"], threads_per_worker=pool.get("threads"))
    result["timings"]["jobs_cpu_seconds"] = pool["cpu_seconds"]
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=2, default=json_default))
    return result


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
