"""Test-time protocols, tuning on validation, and the slices where text should matter.

**Protocols** (``TEST_PROTOCOLS``), applied to every model alike after model selection on validation:

- ``"val-in-history"`` (standard leave-one-out, the default): the model is refitted on train +
  validation with the chosen hyper-parameters and the number of epochs early stopping picked on
  validation, then ranks the test item with the validation interaction in the user's history
  (and so excluded from the candidates, like every training item). This is the protocol of
  SASRec, RecBole and most published next-item tables.
- ``"train-history"`` (the protocol of the project's earlier tables): the model fitted on train
  scores the test item from the training history alone, i.e. two steps ahead, and the user's
  validation item stays a ranking candidate.

Under both, a test item never seen in the fitted data cannot be ranked and counts as a miss.

**Tuning** (:func:`grid_search`): every model with hyper-parameters gets the same number of
trials on the validation split only (NDCG@10 by full ranking, or RMSE); every trial is returned
so the JSON records the budget.

**Slices** (:func:`slice_masks`): users with <= 3 and >= 10 training reviews; test items with 0,
1-4 and >= 5 training interactions (a user's first test row decides the item slice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import ITEM_COL, RATING_COL, USER_COL

__all__ = [
    "TEST_PROTOCOLS",
    "DEFAULT_PROTOCOL",
    "fit_for_test",
    "validation_score",
    "grid_search",
    "slice_masks",
    "slice_means",
    "format_slices",
]

TEST_PROTOCOLS = ("val-in-history", "train-history")
DEFAULT_PROTOCOL = "val-in-history"
USER_SLICES = {"users<=3": (0, 3), "users>=10": (10, None)}
ITEM_SLICES = {"items=0": (0, 0), "items1-4": (1, 4), "items>=5": (5, None)}


def _check_protocol(protocol: str) -> None:
    if protocol not in TEST_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid values: {', '.join(TEST_PROTOCOLS)}")


def fit_for_test(
    factory: Callable[[pd.DataFrame], Any],
    train: pd.DataFrame,
    val: pd.DataFrame,
    protocol: str = DEFAULT_PROTOCOL,
    known: dict[str, Any] | None = None,
) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """Fit a model for the test split under ``protocol``.

    Args:
        factory: ``factory(frame)`` -> a fresh, unfitted model that will be fitted on ``frame``
            (a text model may build its inputs from ``frame``).
        train: training rows.
        val: validation rows (early stopping of the first fit; joins the history under "val-in-history").
        protocol: one of ``TEST_PROTOCOLS``.
        known: ``{"epochs", "metric"}`` of an identical early-stopped fit on ``train`` that already
            ran (a tuning trial with the same seed and settings). Under "val-in-history" the
            first fit is then skipped; it is ignored under "train-history", which tests that fit.
            A model that chooses more than an epoch count on validation (a blend: its weight and
            each part's epochs) has ``refit_settings()`` / ``use_settings(settings)``: ``known``
            then needs ``"settings"`` to skip the first fit, and the refit uses those settings.

    Returns:
        ``(model, history, info)``: the model to score test with, the rows whose items are its
        users' history (exclude them from the candidates), and ``{"protocol", "refit", "epochs",
        "val_metric"}`` (epochs / val_metric when the model early-stops on validation). A model
        without a ``train_config`` (no early stopping) is fitted once, directly on the history.
    """
    _check_protocol(protocol)
    model = factory(train)
    chooses = hasattr(model, "refit_settings")  # chooses more than an epoch count on validation
    learns_on_val = hasattr(model, "train_config") or chooses
    if protocol == "val-in-history" and val is not None and len(val) and not learns_on_val:
        # nothing is chosen on validation while fitting (no early stopping): fit once, on the whole history
        history = pd.concat([train, val], ignore_index=True)
        return factory(history).fit(history), history, {"protocol": protocol, "refit": True}
    info: dict[str, Any] = {"protocol": protocol, "refit": False}
    if protocol == "val-in-history" and val is not None and len(val) and not getattr(model, "refit_for_test", True):
        # the fit early-stopped on validation scores test from the history extended by validation
        model.fit(train, val)
        history = pd.concat([train, val], ignore_index=True)
        result = getattr(model, "train_result_", None)
        if result is not None and result.best_epoch >= 0:
            info.update(epochs=int(result.best_epoch + 1), val_metric=float(result.best_metric))
        model.set_history(history)
        return model, history, {**info, "history": "train+validation"}
    reuse = known is not None and protocol == "val-in-history" and val is not None and len(val)
    if reuse and chooses and known.get("settings") is not None:
        info.update(settings=known["settings"], val_metric=float(known["metric"]))
    elif reuse and not chooses and hasattr(model, "train_config") and known.get("epochs") is not None:
        info.update(epochs=int(known["epochs"]), val_metric=float(known["metric"]))
    else:
        model.fit(train, val)
        result = getattr(model, "train_result_", None)
        if result is not None and result.best_epoch >= 0:
            info.update(epochs=int(result.best_epoch + 1), val_metric=float(result.best_metric))
        if chooses:
            info.update(settings=model.refit_settings(), val_metric=model.refit_settings()["val_metric"])
    if protocol == "train-history" or val is None or not len(val):
        return model, train, info
    history = pd.concat([train, val], ignore_index=True)
    again = factory(history)
    if "settings" in info:
        again.use_settings(info["settings"])
    elif "epochs" in info and hasattr(again, "train_config"):
        again.train_config = replace(again.train_config, epochs=info["epochs"], patience=0)
    again.fit(history)
    info["refit"] = True
    return again, history, info


def validation_score(model: Any, train: pd.DataFrame, val: pd.DataFrame, task: str) -> float:
    """Validation score of a fitted model, higher = better: NDCG@10 (ranking) or -RMSE (rating)."""
    from textinterest.evaluation import evaluate_ranking, rmse

    if task == "ranking":
        ids = model.user_index.ids
        return float(
            evaluate_ranking(
                lambda u: model.score_items(ids[u]), train, val, model.user_index, model.item_index, ks=(10,)
            )["ndcg@10"]
        )
    if task != "rating":
        raise ValueError(f"task must be 'rating' or 'ranking', got {task!r}")
    rated = val[pd.to_numeric(val[RATING_COL], errors="coerce").notna()]
    if not len(rated):
        raise ValueError("no rated validation rows to tune on")
    return -rmse(rated[RATING_COL].to_numpy(dtype=np.float64), model.predict(rated))


def grid_search(
    make: Callable[[dict[str, Any]], Any],
    grid: Sequence[dict[str, Any]],
    train: pd.DataFrame,
    val: pd.DataFrame,
    task: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Try every entry of ``grid`` on the validation split; keep the best.

    Args:
        make: ``make(params)`` -> an unfitted model with those hyper-parameters.
        grid: the declared search (one dict per trial).
        train: training rows.
        val: validation rows (the only data scored).
        task: "ranking" (NDCG@10) or "rating" (RMSE).

    Returns:
        ``(best_params, trials)``; each trial is ``{"params", "score", "seconds"}`` (score: higher = better).
    """
    if not grid:
        raise ValueError("grid must hold at least one entry")
    trials = []
    for params in grid:
        t = time.perf_counter()
        model = make(dict(params)).fit(train, val)
        trials.append(
            {
                "params": dict(params),
                "score": validation_score(model, train, val, task),
                "seconds": time.perf_counter() - t,
            }
        )
    best = max(range(len(trials)), key=lambda j: trials[j]["score"])
    return dict(grid[best]), trials


def _between(counts: np.ndarray, lo: int, hi: int | None) -> np.ndarray:
    return (counts >= lo) & (counts <= (np.inf if hi is None else hi))


def slice_masks(train: pd.DataFrame, test_users: Sequence[Any], test: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks over ``test_users`` for each slice.

    Args:
        train: the training rows (counts come from them only).
        test_users: raw user ids, e.g. the order returned by :func:`textinterest.significance.per_user_ranking`.
        test: the test rows (a user's first row gives the item slice).

    Returns:
        ``{"users<=3", "users>=10", "items=0", "items1-4", "items>=5"} -> (len(test_users),) bool``.
    """
    users = pd.Index(list(test_users), dtype=object)
    n_reviews = train.groupby(USER_COL).size().reindex(users).fillna(0).to_numpy()
    first_item = test.drop_duplicates(USER_COL).set_index(USER_COL)[ITEM_COL].reindex(users)
    if first_item.isna().any():
        raise ValueError(f"{int(first_item.isna().sum())} of test_users have no test row")
    n_item = first_item.map(train.groupby(ITEM_COL).size()).fillna(0).to_numpy()
    out = {name: _between(n_reviews, lo, hi) for name, (lo, hi) in USER_SLICES.items()}
    out.update({name: _between(n_item, lo, hi) for name, (lo, hi) in ITEM_SLICES.items()})
    return out


def slice_means(
    values: np.ndarray, masks: dict[str, np.ndarray], statistic: str = "mean"
) -> dict[str, dict[str, float]]:
    """Mean (or RMSE of per-user squared errors) of ``values`` in each slice, with its size.

    Returns:
        ``{slice: {"value": float (NaN when empty), "n": int}}``.
    """
    values = np.asarray(values, dtype=np.float64)
    out = {}
    for name, mask in masks.items():
        if mask.shape != values.shape:
            raise ValueError(f"slice {name!r} has {mask.size} entries for {values.size} values")
        sel = values[mask]
        value = float("nan") if not sel.size else float(np.sqrt(sel.mean()) if statistic == "rmse" else sel.mean())
        out[name] = {"value": value, "n": int(mask.sum())}
    return out


def format_slices(result: dict[str, Any], metric: str = "ndcg@10") -> str:
    """Markdown table of one metric per slice and model (``result["slices"]`` of ``run_evaluation``)."""
    from textinterest.utils import markdown_table

    slices = result.get("slices") or {}
    models = [m for m, per in slices.items() if metric in per]
    if not models:
        raise ValueError(f"result has no slices of {metric!r}")
    names = list(slices[models[0]][metric])
    header = ["model"] + [f"{n} (n={slices[models[0]][metric][n]['n']})" for n in names]
    return markdown_table(header, [[m] + [slices[m][metric][n]["value"] for n in names] for m in models])
