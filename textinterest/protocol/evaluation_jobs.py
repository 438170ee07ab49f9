"""One ``evaluate`` run as a graph of jobs: tuning trials, then each (model, seed, task) fit and its test.

:func:`execute` runs the graph through :func:`textinterest.job_pool.run_jobs` (in this process or in
worker processes) and returns the tuning record and one result row per fit;
:mod:`textinterest.protocol.experiments` prepares the run (:class:`EvaluationRun`) and puts the rows together.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import RATING_COL, USER_COL
from textinterest.models.fit_memo import FitMemo
from textinterest.protocol.protocols import fit_for_test, validation_score
from textinterest.protocol.text_inputs import log as _log

__all__ = ["EvaluationRun", "evaluate_model", "execute", "subsample_users"]


@dataclass
class EvaluationRun:
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
        reads = {name: self.chosen[name] for name in spec.reads_choice_of if name in self.chosen}
        return BuildContext(
            task=task,
            seed=seed,
            train_config=config,
            params=dict(params),
            features=self.history_features if refit else self.features,
            train=frame if refit else self.parts.train,
            dataset=self.dataset,
            options={**self.options, "chosen": reads} if reads else self.options,
        )


def _grid_of(name: str) -> tuple[dict[str, Any], ...]:
    from textinterest.models import registry

    return tuple(registry.get(name).grid)


def subsample_users(df: pd.DataFrame, max_users: int | None, seed: int) -> pd.DataFrame:
    """A seeded sample of ``max_users`` users (all rows of each); every user when None."""
    if max_users is None:
        return df
    if max_users < 1:
        raise ValueError(f"max_users must be >= 1 or None, got {max_users}")
    users = pd.unique(df[USER_COL])
    if len(users) <= max_users:
        return df
    keep = set(np.random.default_rng(seed).choice(users, size=max_users, replace=False).tolist())
    return df[df[USER_COL].isin(keep)]


def evaluate_model(
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


def _cost(spec: Any) -> int:
    """A rough rank of how long one fit takes (text models > other torch models > tuned > the rest)."""
    return 3 if spec.uses_text else 2 if spec.train_defaults is not None else 1 if spec.grid else 0


def _fit_tasks(spec: Any, tasks: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The task groups fitted as one job: all tasks together when one fit answers them all, else one each."""
    mine = tuple(t for t in tasks if t in spec.tasks)
    if not mine:
        return []
    return [mine] if spec.fit_once else [(t,) for t in mine]


def _jobs(run: EvaluationRun, seeds: tuple[int, ...], tune: bool) -> list[Any]:
    """The run's jobs, longest first: every tuning trial, then every (model, seed, task) fit.

    A fit waits for the tuning trials of the model whose choice it uses (its own, or ``tuned_by``'s); a trial or
    fit of a model that reads other models' choices (``reads_choice_of``) also waits for their trials.
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

    def read(spec: Any, tasks: Sequence[str]) -> tuple[Any, ...]:
        return tuple(k for name in spec.reads_choice_of for task in tasks for k in trials.get((name, task), []))

    jobs = [
        Job(key, read(spec, (task,)))
        for spec in by_cost
        for task in run.tasks
        for key in trials.get((spec.name, task), [])
    ]
    for spec in by_cost:
        source = spec.tuned_by or spec.name
        for seed in seeds:
            for group in _fit_tasks(spec, run.tasks):
                after = tuple(k for task in group for k in trials.get((source, task), [])) + read(spec, group)
                jobs.append(Job(("fit", spec.name, seed, group), after))
    return jobs


def _tune_trial(
    run: EvaluationRun, name: str, task: str, j: int, seed: int, chosen: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Fit candidate ``j`` of ``name``'s grid on train; its validation score (-RMSE or NDCG@10) and epochs.

    ``chosen``: the choices of the models ``name`` reads (``reads_choice_of``), ``{model: {task: params}}``.
    """
    from textinterest.models import fit_memo

    spec = run.spec(name)
    run = replace(run, chosen=dict(chosen or {}))
    with fit_memo.active(run.options.get("fit_memo")):
        model = spec.build(run.context(spec, task, seed, dict(spec.grid[j]))).fit(run.parts.train, run.parts.val)
    if hasattr(model, "refit_settings"):  # a blend: its weight, base parameters and each part's epochs
        settings = model.refit_settings()
        return {"metric": float(settings["val_metric"]), "settings": settings}
    result = getattr(model, "train_result_", None)
    if result is None:  # no early stopping (Cornac): score the fitted model on validation directly
        return {"metric": validation_score(model, run.parts.train, run.parts.val, task)}
    return {"metric": float(result.best_metric), "epochs": int(result.best_epoch + 1)}


def _fit_job(
    run: EvaluationRun, name: str, seed: int, tasks: tuple[str, ...], chosen: dict[str, Any], known: dict[str, Any]
) -> tuple[dict[str, Any], Any, dict[str, list[dict[str, Any]]]]:
    """One model, one seed, one task group, on a private copy of the run: (result row, per-user values, extras)."""
    from textinterest.models import fit_memo
    from textinterest.significance import PerUserStore

    mine = replace(run, chosen=chosen, store=PerUserStore(), extras={})
    with fit_memo.active(run.options.get("fit_memo")):
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


def execute(
    run: EvaluationRun,
    seeds: tuple[int, ...],
    tune: bool,
    workers: int,
    progress: Any,
    timings: dict[str, float],
    reuse_fits: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Tune (first seed) and fit every model for every seed, in this process or in worker processes.

    Fills ``run.chosen``, ``run.store`` and ``run.extras``; returns ``(tuning, runs, pool_info)``, where
    ``pool_info["fit_memo"]`` counts the torch fits trained and reused (None when ``reuse_fits`` is off:
    see :mod:`textinterest.models.fit_memo`; the memo lives in a temporary folder for this call).
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

    def read(name: str, results: dict[Any, Any]) -> dict[str, Any]:
        """The finished choices of the models ``name`` reads (``reads_choice_of``)."""
        out = {}
        for other in specs[name].reads_choice_of:
            if other in specs and (found := picks(other, results)):
                out[other] = {task: dict(specs[other].grid[j]) for task, j in found.items()}
        return out

    def prepare(job: Any, results: dict[Any, Any]) -> tuple[Any, tuple[Any, ...]]:
        if job.key[0] == "tune":
            _, name, task, j = job.key
            _log(progress, f"tuning {name} ({task}) on validation: {dict(specs[name].grid[j])}")
            return _tune_trial, (name, task, j, seeds[0], read(name, results))
        _, name, seed, tasks = job.key
        source = specs[name].tuned_by or name
        chosen_j = picks(source, results)
        chosen = {**read(name, results), source: {task: dict(specs[source].grid[j]) for task, j in chosen_j.items()}}
        known: dict[str, Any] = {}
        if run.protocol == "val-in-history" and seed == seeds[0] and source == name:
            for task in tasks:  # the first fit of this seed is the chosen tuning trial, already run
                trial = results.get(("tune", name, task, chosen_j.get(task)))
                if trial is not None and ("epochs" in trial.value or "settings" in trial.value):
                    known[task] = trial.value
        _log(progress, f"seed {seed}: {name} ({', '.join(tasks)})")
        return _fit_job, (name, seed, tasks, chosen, known)

    workers = resolve_workers(workers, device=str(resolve_device(run.device)), n_jobs=len(jobs))

    def done(job: Any, result: Any) -> None:
        if workers > 1:
            _log(progress, f"finished {job.key[0]} {' '.join(map(str, job.key[1:]))} in {result.seconds:.0f} s")

    info: dict[str, Any] = {}
    if workers > 1:
        _log(progress, f"running {len(jobs)} fits in {workers} worker processes")
    with tempfile.TemporaryDirectory(prefix="textinterest-fits-") as memo_dir:
        options = {**run.options, "fit_memo": memo_dir} if reuse_fits else run.options
        state = replace(run, store=None, extras={}, options=options)
        results = run_jobs(jobs, prepare, state=state, workers=workers, info=info, on_done=done)
        info["fit_memo"] = FitMemo(memo_dir).counts() if reuse_fits else None

    tuning = _tuning_record(run, results, timings)
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for spec in run.specs:
            row: dict[str, Any] = {"model": spec.name, "seed": seed}
            for group in _fit_tasks(spec, run.tasks):
                result = results[("fit", spec.name, seed, group)]
                part, store, extras = result.value
                row.update(part)
                run.store.extend(store, seed=seed)
                for key, records in extras.items():
                    run.extras.setdefault(key, []).extend(records)
                label = f"{spec.group or spec.name}_seconds"
                timings[label] = timings.get(label, 0.0) + result.seconds
            runs.append(row)
    info["cpu_seconds"] = sum(r.cpu_seconds for r in results.values())
    return tuning, runs, info


def _tuning_record(run: EvaluationRun, results: dict[Any, Any], timings: dict[str, float]) -> dict[str, Any]:
    """Each tuned model's grid, validation scores and choice (stored in ``run.chosen``); adds ``tuning_seconds``."""
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
    return {**first, "by_model": tuning_records} if tuning_records else first


def _fit_and_test(
    spec: Any, run: EvaluationRun, seed: int, tasks: tuple[str, ...], known: dict[str, dict[str, Any]] | None = None
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
            evaluate_model(
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
