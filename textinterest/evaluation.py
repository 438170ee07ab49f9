"""Metrics and evaluation protocols.

Rating prediction: :func:`rmse`, :func:`mae`. Ranking: :func:`ranking_metrics` on a score
matrix and :func:`evaluate_ranking`, which batches users through a scoring function.
Sentiment: :func:`classification_metrics`.

Ranking is full ranking: a held-out item competes with every item of the item index except
those the user interacted with in training (no sampled negatives). Its rank is the number of
candidate items scored strictly higher, with ties resolved by their expectation under a
uniformly random order (see :func:`ranking_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from textinterest.constants import ITEM_COL, RANKING_KS, USER_COL

__all__ = [
    "rmse",
    "mae",
    "IdIndex",
    "ranking_metrics",
    "evaluate_ranking",
    "classification_metrics",
]

TIES = ("expected", "pessimistic")


# --------------------------------------------------------------------------- rating metrics


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("cannot compute an error metric on zero values")
    for name, values in (("y_true", t), ("y_pred", p)):
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN/inf value(s) (first at position {int(np.argmax(bad))}); "
                "drop unrated rows before computing rating metrics"
            )
    return t, p


def rmse(y_true, y_pred) -> float:
    """Root mean squared error.

    Args:
        y_true: true ratings (1-D, finite).
        y_pred: predicted ratings, same length.

    Raises:
        ValueError: length mismatch, empty input, or a NaN/inf value.
    """
    t, p = _check_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error. Same arguments and errors as :func:`rmse`."""
    t, p = _check_pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


# --------------------------------------------------------------------------- id index


class IdIndex:
    """Maps raw ids (users or items) to contiguous integers ``0..n-1`` and back.

    Ids are numbered in order of first appearance, so the same input gives the same index.

    Args:
        ids: raw ids; repeats are allowed (only the first occurrence counts).
    """

    def __init__(self, ids: Iterable):
        values = pd.unique(np.asarray(ids if hasattr(ids, "__len__") else list(ids), dtype=object).ravel())
        if pd.isna(values).any():
            raise ValueError("IdIndex: ids contain a missing value (NaN/None)")
        self._index = pd.Index(values, dtype=object)

    @property
    def ids(self) -> np.ndarray:
        """The raw ids, position ``k`` holding the id of index ``k``."""
        return self._index.to_numpy()

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, raw_id) -> bool:
        return raw_id in self._index

    def __repr__(self) -> str:
        return f"IdIndex(n={len(self)})"

    def index_of(self, ids, missing: int | None = -1) -> np.ndarray:
        """Integer positions of ``ids``.

        Args:
            ids: raw ids (sequence or array).
            missing: value returned for unknown ids; ``None`` raises ``KeyError`` instead.

        Returns:
            int64 array of the same length as ``ids``.
        """
        ids = np.asarray(ids, dtype=object).ravel()
        positions = self._index.get_indexer(ids).astype(np.int64)
        unknown = positions < 0
        if unknown.any():
            if missing is None:
                raise KeyError(f"{int(unknown.sum())} unknown id(s), e.g. {ids[unknown][:5].tolist()}")
            positions[unknown] = missing
        return positions

    def id_of(self, positions) -> np.ndarray:
        """Raw ids at integer ``positions``."""
        return self.ids[np.asarray(positions, dtype=np.int64)]


# --------------------------------------------------------------------------- ranking


def _tie_tables(ks: Sequence[int], n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums of the DCG gains 1/log2(r+2) (r < max K) and of 1/(r+1) (r <= n_max)."""
    kmax = max(ks)
    gains = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(kmax) + 2.0))])
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n_max + 2, dtype=np.float64))])
    return gains, harmonic


def _metrics_from_counts(higher: np.ndarray, tied: np.ndarray, ks: Sequence[int], ties: str) -> dict[str, np.ndarray]:
    """Per-case HR@K, NDCG@K and MRR from the number of items scored higher and tied.

    ``higher[j]``: candidate items scored strictly above the target; ``tied[j]``: other
    candidate items with exactly the target's score.
    """
    higher = higher.astype(np.int64)
    tied = tied.astype(np.int64)
    out: dict[str, np.ndarray] = {}
    if ties == "pessimistic":
        rank = higher + tied
        for k in ks:
            hit = rank < k
            out[f"hr@{k}"] = hit.astype(np.float64)
            out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
        out["mrr"] = 1.0 / (rank + 1.0)
        return out
    # Expected value when the target's place among the tied items is uniformly random:
    # its rank r is uniform on {higher, ..., higher + tied}.
    n = tied + 1.0
    n_max = int((higher + tied).max()) if higher.size else 0
    gains, harmonic = _tie_tables(ks, n_max)
    for k in ks:
        out[f"hr@{k}"] = np.clip(k - higher, 0, tied + 1) / n
        lo = np.minimum(higher, k)
        hi = np.minimum(higher + tied + 1, k)
        out[f"ndcg@{k}"] = (gains[hi] - gains[lo]) / n
    out["mrr"] = (harmonic[higher + tied + 1] - harmonic[higher]) / n
    return out


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks


def _case_counts(
    scores: np.ndarray, exclude: sp.csr_matrix | None, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Count candidates above / tied with each row's target. ``scores`` is modified in place."""
    n_rows, n_items = scores.shape
    rows = np.arange(n_rows)
    if not np.isfinite(scores).all():
        bad = np.argwhere(~np.isfinite(scores))[0]
        raise ValueError(f"scores contain NaN/inf (first at row {bad[0]}, item {bad[1]})")
    target_scores = scores[rows, targets].copy()
    if exclude is not None and exclude.nnz:
        excl_rows = np.repeat(rows, np.diff(exclude.indptr))
        scores[excl_rows, exclude.indices] = -np.inf
        scores[rows, targets] = target_scores  # the target itself always competes
    column = target_scores[:, None]
    higher = np.count_nonzero(scores > column, axis=1)
    tied = np.count_nonzero(scores == column, axis=1) - 1
    return higher, tied


def ranking_metrics(
    scores: np.ndarray,
    train_items: sp.spmatrix | None,
    target_items: np.ndarray,
    ks: Sequence[int] = RANKING_KS,
    *,
    ties: str = "expected",
) -> dict[str, float]:
    """HR@K, NDCG@K and MRR of one held-out item per row, by full ranking.

    The rank of the target is the number of candidate items scored strictly higher, where
    the candidates are all items except the row's training items (the target itself is
    never excluded, even if it also occurs in training). HR@K = 1 if rank < K;
    NDCG@K = 1/log2(rank + 2) if rank < K else 0; MRR = 1/(rank + 1) with no cutoff.

    Ties: with ``ties="expected"`` (default) each metric is its expected value when the
    target's position among the items with exactly its score is uniformly random, so a
    constant scorer gets the score of a random ranking. ``ties="pessimistic"`` places the
    target after every tied item.

    Args:
        scores: (n_rows, n_items) finite scores, higher = better. Not modified.
        train_items: (n_rows, n_items) sparse matrix, nonzero = excluded item; or ``None``.
        target_items: (n_rows,) item column of each row's held-out item; ``-1`` = unknown
            target, counted as a miss (all metrics 0).
        ks: cutoffs.
        ties: "expected" or "pessimistic".

    Returns:
        ``{"hr@5": ..., "ndcg@5": ..., ..., "mrr": ...}`` averaged over rows.
    """
    per_row = _ranking_per_row(scores, train_items, target_items, ks, ties)
    return {name: float(values.mean()) if values.size else float("nan") for name, values in per_row.items()}


def _ranking_per_row(scores, train_items, target_items, ks, ties) -> dict[str, np.ndarray]:
    ks = _check_ks(ks)
    if ties not in TIES:
        raise ValueError(f"unknown ties={ties!r}; valid values: {', '.join(TIES)}")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_rows, n_items), got shape {scores.shape}")
    n_rows, n_items = scores.shape
    targets = np.asarray(target_items, dtype=np.int64).ravel()
    if targets.shape != (n_rows,):
        raise ValueError(f"target_items has {targets.size} entries but scores has {n_rows} rows")
    if (targets >= n_items).any() or (targets < -1).any():
        raise ValueError(f"target_items must be in [-1, {n_items - 1}]")
    exclude = None
    if train_items is not None:
        exclude = sp.csr_matrix(train_items)
        if exclude.shape != scores.shape:
            raise ValueError(f"train_items has shape {exclude.shape} but scores has {scores.shape}")
        exclude.eliminate_zeros()
    known = targets >= 0
    out = {name: np.zeros(n_rows) for name in [m for k in ks for m in (f"hr@{k}", f"ndcg@{k}")] + ["mrr"]}
    if known.any():
        sub_exclude = exclude[known] if exclude is not None else None
        higher, tied = _case_counts(scores[known], sub_exclude, targets[known])
        for name, values in _metrics_from_counts(higher, tied, ks, ties).items():
            out[name][known] = values
    return out


def evaluate_ranking(
    score_fn: Callable[[np.ndarray], np.ndarray],
    train: pd.DataFrame,
    test: pd.DataFrame,
    user_index: IdIndex,
    item_index: IdIndex,
    ks: Sequence[int] = RANKING_KS,
    batch_size: int = 1024,
    *,
    ties: str = "expected",
    max_cells: int = 2**24,
) -> dict:
    """Full-ranking evaluation of every test row, batching users through ``score_fn``.

    Each test row (user, item) is one case: the item competes with every item of
    ``item_index`` except the user's training items and the user's *other* test items
    (held-out positives are not negatives). Metrics are averaged over a user's cases, then
    over users (each test user weighs the same; with leave-last-out there is one case per
    user).

    Test rows whose user is not in ``user_index`` or whose item is not in ``item_index``
    cannot be ranked; they count as misses (0 for every metric) and are reported as
    ``n_unknown_user`` / ``n_unknown_target``.

    Args:
        score_fn: maps an int array of user positions (B,) to scores (B, len(item_index)),
            higher = better, finite.
        train: training interactions (defines the excluded items per user).
        test: held-out interactions.
        user_index: positions of the users ``score_fn`` understands.
        item_index: the candidate items, in ``score_fn``'s column order.
        ks: cutoffs.
        batch_size: users scored per call to ``score_fn``.
        ties: see :func:`ranking_metrics`.
        max_cells: cap on users x items scored at once: with many items the batch shrinks to
            ``max_cells // n_items`` users (at least 1), so memory stays bounded by the catalogue size,
            never by users x items. The metrics do not depend on the batch size.

    Returns:
        ``{"hr@K", "ndcg@K" for K in ks, "mrr", "n_users", "n_cases", "n_unknown_user",
        "n_unknown_target", "n_items"}``.
    """
    ks = _check_ks(ks)
    if ties not in TIES:
        raise ValueError(f"unknown ties={ties!r}; valid values: {', '.join(TIES)}")
    if batch_size < 1 or max_cells < 1:
        raise ValueError(f"batch_size and max_cells must be >= 1, got {batch_size}, {max_cells}")
    n_items = len(item_index)
    batch_size = max(1, min(int(batch_size), int(max_cells) // max(n_items, 1)))
    names = [m for k in ks for m in (f"hr@{k}", f"ndcg@{k}")] + ["mrr"]

    tu = user_index.index_of(test[USER_COL].to_numpy())
    ti = item_index.index_of(test[ITEM_COL].to_numpy())
    n_cases = len(test)
    values = {name: np.zeros(n_cases) for name in names}
    ok = (tu >= 0) & (ti >= 0)

    seen = _excluded_items(train, tu[ok], ti[ok], user_index, item_index)

    case_ids = np.flatnonzero(ok)
    case_ids = case_ids[np.argsort(tu[case_ids], kind="stable")]
    case_users = tu[case_ids]
    batch_users_all = np.unique(case_users)
    for start in range(0, batch_users_all.size, batch_size):
        users = batch_users_all[start : start + batch_size]
        lo, hi = np.searchsorted(case_users, [users[0], users[-1] + 1])
        ids = case_ids[lo:hi]
        batch = np.asarray(score_fn(users))
        if batch.shape != (users.size, n_items):
            raise ValueError(f"score_fn returned shape {batch.shape}, expected {(users.size, n_items)}")
        row_of_case = np.searchsorted(users, tu[ids])
        scores = batch[row_of_case]  # (cases, n_items), a copy
        higher, tied = _case_counts(scores, seen[tu[ids]], ti[ids])
        for name, vals in _metrics_from_counts(higher, tied, ks, ties).items():
            values[name][ids] = vals

    result, n_test_users = _mean_over_users(test[USER_COL], values)
    result.update(
        n_users=int(n_test_users),
        n_cases=int(n_cases),
        n_unknown_user=int((tu < 0).sum()),
        n_unknown_target=int(((tu >= 0) & (ti < 0)).sum()),
        n_items=int(n_items),
    )
    return result


def _excluded_items(
    train: pd.DataFrame, test_users: np.ndarray, test_items: np.ndarray, user_index: IdIndex, item_index: IdIndex
) -> sp.csr_matrix:
    """Items each user must not be credited for: training items plus the user's test items.

    Args:
        train: training interactions (rows outside the indexes are skipped).
        test_users, test_items: positions of the rankable test rows.
        user_index, item_index: the positions ``score_fn`` understands.

    Returns:
        A 0/1 matrix (users x items) with one stored entry per excluded (user, item).
    """
    ru = user_index.index_of(train[USER_COL].to_numpy())
    ri = item_index.index_of(train[ITEM_COL].to_numpy())
    keep = (ru >= 0) & (ri >= 0)
    rows = np.concatenate([ru[keep], test_users])
    cols = np.concatenate([ri[keep], test_items])
    seen = sp.csr_matrix((np.ones(rows.size, dtype=np.int32), (rows, cols)), shape=(len(user_index), len(item_index)))
    seen.sum_duplicates()
    seen.data[:] = 1
    return seen


def _mean_over_users(case_users: pd.Series, values: dict[str, np.ndarray]) -> tuple[dict, int]:
    """Average each metric within each user, then over users (NaN when there is no user).

    Args:
        case_users: the user of each case.
        values: metric name -> one value per case.

    Returns:
        ``(metric name -> mean, number of users)``.
    """
    user_codes, uniques = pd.factorize(case_users, sort=False)
    n_users = len(uniques)
    counts = np.bincount(user_codes, minlength=n_users)
    result: dict = {}
    for name, per_case in values.items():
        if n_users:
            per_user = np.bincount(user_codes, weights=per_case, minlength=n_users) / counts
            result[name] = float(per_user.mean())
        else:
            result[name] = float("nan")
    return result, n_users


# --------------------------------------------------------------------------- classification


def classification_metrics(y_true, y_pred, labels=None, target_names=None) -> dict:
    """Accuracy, macro-F1, the per-class report and the confusion matrix.

    Args:
        y_true: true labels.
        y_pred: predicted labels, same length.
        labels: label values to report, in order (default: sorted union of both).
        target_names: display names of ``labels`` for the report.

    Returns:
        ``{"accuracy", "macro_f1", "report" (sklearn's output_dict), "confusion" (nested
        lists, rows = true label, columns = predicted, in ``labels`` order), "labels", "n"}``.
    """
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("cannot compute classification metrics on zero labels")
    if labels is None:
        labels = np.unique(np.concatenate([t, p]))
    labels = list(np.asarray(labels).tolist())
    if target_names is not None and len(target_names) != len(labels):
        raise ValueError(f"{len(target_names)} target_names for {len(labels)} labels")
    return {
        "accuracy": float(accuracy_score(t, p)),
        "macro_f1": float(f1_score(t, p, labels=labels, average="macro", zero_division=0)),
        "report": classification_report(
            t, p, labels=labels, target_names=target_names, output_dict=True, zero_division=0
        ),
        "confusion": confusion_matrix(t, p, labels=labels).tolist(),
        "labels": labels,
        "n": int(t.size),
    }
