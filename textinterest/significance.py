"""Per-user paired comparison of two models: bootstrap confidence interval and Wilcoxon signed-rank test.

Two models scored on the same test users give two arrays of per-user metric values (NDCG@10 of
each user's held-out item, or each user's squared rating error). The question "is A better than
B?" is about the *paired* differences: both models face the same users, so user difficulty cancels.

- :func:`per_user_ranking`: per-user HR / NDCG / MRR by full ranking, the same numbers
  :func:`textinterest.evaluation.evaluate_ranking` averages (same candidates, same ties, unknown
  users or items count as misses).
- :func:`per_user_squared_error`: each user's mean squared rating error.
- :func:`paired_test`: mean difference, a percentile bootstrap 95 % CI (users resampled with
  replacement, the same resample for both models), a two-sided bootstrap p-value and the
  Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``, zero differences dropped, as Wilcoxon
  defined it; 1.0 when every difference is zero). With ``statistic="rmse"`` the compared
  quantity is ``sqrt(mean(a)) - sqrt(mean(b))`` of per-user squared errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from textinterest.constants import ITEM_COL, RANKING_KS, USER_COL
from textinterest.evaluation import IdIndex, _ranking_per_row

__all__ = [
    "per_user_ranking",
    "per_user_squared_error",
    "paired_test",
    "PerUserStore",
    "compare_to_best",
    "format_significance",
]

STATISTICS = ("mean", "rmse")


def per_user_ranking(
    score_fn: Callable[[np.ndarray], np.ndarray],
    history: pd.DataFrame,
    test: pd.DataFrame,
    user_index: IdIndex,
    item_index: IdIndex,
    ks: Sequence[int] = RANKING_KS,
    batch_size: int = 1024,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Full-ranking metrics of every test user (a user's test rows averaged).

    Args:
        score_fn: user positions (B,) -> scores (B, len(item_index)), like ``evaluate_ranking``'s.
        history: interactions whose items are excluded from each user's candidates (the training
            rows; with the validation rows too under the standard leave-one-out protocol).
        test: held-out rows; a user's other test items are excluded as well.
        user_index: positions understood by ``score_fn``.
        item_index: candidate items in ``score_fn``'s column order.
        ks: cutoffs.
        batch_size: users per ``score_fn`` call.

    Returns:
        ``(users, metrics)``: the raw test user ids in order of first appearance in ``test``, and
        ``{"hr@K", "ndcg@K", "mrr"} -> (n_users,)`` float arrays aligned with them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_items = len(item_index)
    tu = user_index.index_of(test[USER_COL].to_numpy())
    ti = item_index.index_of(test[ITEM_COL].to_numpy())
    ru = user_index.index_of(history[USER_COL].to_numpy())
    ri = item_index.index_of(history[ITEM_COL].to_numpy())
    keep, ok = (ru >= 0) & (ri >= 0), (tu >= 0) & (ti >= 0)
    rows, cols = np.concatenate([ru[keep], tu[ok]]), np.concatenate([ri[keep], ti[ok]])
    seen = sp.csr_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(len(user_index), n_items))
    seen.sum_duplicates()
    seen.data[:] = 1
    values: dict[str, np.ndarray] = {}
    case_ids = np.flatnonzero(tu >= 0)
    order = case_ids[np.argsort(tu[case_ids], kind="stable")]
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        users, inverse = np.unique(tu[ids], return_inverse=True)
        scores = np.asarray(score_fn(users))
        if scores.shape != (len(users), n_items):
            raise ValueError(f"score_fn returned shape {scores.shape}, expected {(len(users), n_items)}")
        part = _ranking_per_row(scores[inverse], seen[tu[ids]], ti[ids], ks, "expected")
        for name, vals in part.items():
            values.setdefault(name, np.zeros(len(test)))[ids] = vals
    if not values:  # no known user: every metric is 0
        values = {
            name: np.zeros(len(test))
            for name in _ranking_per_row(np.zeros((0, n_items)), None, np.zeros(0), ks, "expected")
        }
    codes, uniques = pd.factorize(test[USER_COL], sort=False)
    counts = np.bincount(codes, minlength=len(uniques))
    per_user = {
        name: np.bincount(codes, weights=v, minlength=len(uniques)) / np.maximum(counts, 1)
        for name, v in values.items()
    }
    return np.asarray(uniques, dtype=object), per_user


def per_user_squared_error(
    users: Sequence[Any], truth: Sequence[float], pred: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's mean squared rating error.

    Args:
        users: (n,) raw user id of each rated row.
        truth: (n,) true ratings.
        pred: (n,) predicted ratings.

    Returns:
        ``(user_ids, mse)`` in order of first appearance.
    """
    truth, pred = np.asarray(truth, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if truth.shape != pred.shape or len(users) != len(truth):
        raise ValueError(f"users ({len(users)}), truth {truth.shape} and pred {pred.shape} must have one entry per row")
    if not (np.isfinite(truth).all() and np.isfinite(pred).all()):
        raise ValueError("truth and pred must be finite")
    codes, uniques = pd.factorize(pd.Series(list(users), dtype=object), sort=False)
    counts = np.bincount(codes, minlength=len(uniques))
    return np.asarray(uniques, dtype=object), np.bincount(
        codes, weights=(truth - pred) ** 2, minlength=len(uniques)
    ) / counts


def _stat(x: np.ndarray, statistic: str) -> np.ndarray:
    mean = x.mean(axis=-1)
    return np.sqrt(mean) if statistic == "rmse" else mean


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    statistic: str = "mean",
    n_boot: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Paired bootstrap CI and Wilcoxon p-value of ``stat(a) - stat(b)`` over the same users.

    Args:
        a: (n,) per-user values of model A (metric, or squared error with ``statistic="rmse"``).
        b: (n,) per-user values of model B, same users in the same order.
        statistic: "mean" (a metric averaged over users) or "rmse" (sqrt of mean squared errors).
        n_boot: bootstrap resamples.
        seed: seed of the resampling.
        alpha: 1 - confidence level of the interval.

    Returns:
        ``{"n", "a", "b", "diff", "ci_low", "ci_high", "p_bootstrap", "p_wilcoxon", "n_boot"}``.
    """
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D arrays over the same users; got shapes {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"a paired test needs at least 2 users, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b must be finite")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    if n_boot < 100 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need n_boot >= 100 and 0 < alpha < 1, got {n_boot}, {alpha}")
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for s in range(0, n_boot, 1000):  # bounded memory: 1,000 resamples at a time
        idx = rng.integers(0, a.size, size=(min(1000, n_boot - s), a.size))
        diffs[s : s + len(idx)] = _stat(a[idx], statistic) - _stat(b[idx], statistic)
    d = a - b
    p_wilcoxon = 1.0 if not np.any(d != 0) else float(wilcoxon(a, b, zero_method="wilcox").pvalue)
    p_boot = float(min(1.0, 2.0 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return {
        "n": int(a.size),
        "a": float(_stat(a, statistic)),
        "b": float(_stat(b, statistic)),
        "diff": float(_stat(a, statistic) - _stat(b, statistic)),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "p_bootstrap": p_boot,
        "p_wilcoxon": p_wilcoxon,
        "n_boot": int(n_boot),
    }


class PerUserStore:
    """Per-user test values of every (model, task), one entry per seed, averaged over seeds on demand."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], list[tuple[np.ndarray, dict[str, np.ndarray], int | None]]] = {}

    def add(
        self, model: str, task: str, users: Sequence[Any], values: dict[str, np.ndarray], seed: int | None = None
    ) -> None:
        """Record one seed's per-user values (``{"ndcg@10": (n,), ...}`` or ``{"se": (n,)}``) of a model on a task.

        ``seed`` labels the entry for :meth:`subset` (None: unlabelled).
        """
        users = np.asarray(users, dtype=object)
        for name, v in values.items():
            if np.shape(v) != users.shape:
                raise ValueError(f"{model}/{task}: {name} has {np.size(v)} values for {users.size} users")
        self._data.setdefault((model, task), []).append(
            (users, {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}, seed)
        )

    def extend(self, other: PerUserStore, seed: int | None = None) -> None:
        """Append every entry of ``other`` (e.g. the values a worker process recorded), in its order.

        ``seed``: the label of every appended entry (None: keep the entries' own labels).
        """
        for (model, task), entries in other._data.items():
            for users, values, own in entries:
                self.add(model, task, users, values, own if seed is None else seed)

    def subset(self, seeds: Sequence[int]) -> PerUserStore:
        """A store with only the entries labelled with one of ``seeds`` (pairs left without an entry are dropped)."""
        keep = {int(s) for s in seeds}
        out = PerUserStore()
        for (model, task), entries in self._data.items():
            for users, values, seed in entries:
                if seed is not None and seed in keep:
                    out.add(model, task, users, values, seed)
        return out

    def keys(self) -> list[tuple[str, str]]:
        """The recorded (model, task) pairs, in insertion order."""
        return list(self._data)

    def mean(self, model: str, task: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Seed-averaged per-user values, users in the first seed's order (every seed must have the same users)."""
        entries = self._data[(model, task)]
        users = entries[0][0]
        order = pd.Index(users)
        out: dict[str, list[np.ndarray]] = {}
        for seed_users, values, _ in entries:
            pos = order.get_indexer(seed_users)
            if len(seed_users) != len(users) or (pos < 0).any():
                raise ValueError(f"{model}/{task}: seeds were scored on different users")
            for name, v in values.items():
                aligned = np.empty(len(users))
                aligned[pos] = v
                out.setdefault(name, []).append(aligned)
        return users, {name: np.mean(vs, axis=0) for name, vs in out.items()}


def compare_to_best(
    store: PerUserStore,
    reference: str,
    metrics: Sequence[str] = ("ndcg@10", "hr@10", "mrr", "rmse"),
    exclude: Sequence[str] = (),
    n_boot: int = 10_000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Paired test of ``reference`` against the best other model of each metric (seed-averaged per-user values).

    Ranking metrics read the "ranking" entries (higher = better); ``"rmse"`` reads the "rating"
    entries' per-user squared errors ``"se"`` (lower = better). Models named in ``exclude`` (e.g. the
    reference's own ablations) are not candidates for "best other".

    Returns:
        ``{metric: {"reference", "best_other", **paired_test(reference, best_other)}}``; a metric the
        reference or every other model lacks is left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        task, key = ("rating", "se") if metric == "rmse" else ("ranking", metric)
        if (reference, task) not in store.keys():
            continue
        ref_users, ref_values = store.mean(reference, task)
        best = None
        for model, t in store.keys():
            if t != task or model == reference or model in exclude:
                continue
            users, values = store.mean(model, t)
            pos = pd.Index(users).get_indexer(ref_users)
            if key not in values or len(users) != len(ref_users) or (pos < 0).any():
                continue  # scored on other users: not comparable pairwise
            v = values[key][pos]
            score = -np.sqrt(v.mean()) if metric == "rmse" else v.mean()
            if best is None or score > best[0]:
                best = (score, model, v)
        if best is None:
            continue
        test = paired_test(
            ref_values[key], best[2], statistic="rmse" if metric == "rmse" else "mean", n_boot=n_boot, seed=seed
        )
        out[metric] = {"reference": reference, "best_other": best[1], **test}
    return out


def format_significance(result: dict[str, Any]) -> str:
    """Markdown table of ``result["significance"]`` (from :func:`textinterest.protocol.experiments.run_evaluation`)."""
    from textinterest.utils import markdown_table

    sig = result.get("significance") or {}
    if not sig:
        raise ValueError("result has no 'significance' entries (was 'interest' evaluated?)")
    rows = []
    for metric, s in sig.items():
        lower_better = metric == "rmse"
        better = (s["diff"] < 0) if lower_better else (s["diff"] > 0)
        verdict = "tie" if s["ci_low"] <= 0 <= s["ci_high"] else ("interest better" if better else "interest worse")
        rows.append(
            [
                metric.upper(),
                s["reference"],
                s["a"],
                s["best_other"],
                s["b"],
                s["diff"],
                f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}]",
                f"{s['p_wilcoxon']:.3g}",
                verdict,
            ]
        )
    header = ["metric", "model", "value", "best other", "value", "difference", "95 % CI", "Wilcoxon p", "verdict"]
    return markdown_table(header, rows)
