"""Train / validation / test splits of an interaction table.

Every split orders interactions by the same deterministic key, ``(timestamp, source_order)``:
timestamps first, and interactions with equal timestamps in the order they appear in the
source file (``ORDER_COL``). Amazon timestamps have day resolution, so ties are common (631 of
the 1,429 Musical Instruments users wrote their last two reviews on the same day); breaking
them by source order makes "the last interaction" well defined and the split reproducible.

Each part keeps the original row labels (the index of the input frame) and the original
row order, so any row can be traced back to the data set it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from textinterest.constants import ITEM_COL, ORDER_COL, RATING_COL, SEED, SPLITS, TIME_COL, USER_COL

__all__ = ["Split", "split_interactions", "kfold_splits", "order_key"]


@dataclass
class Split:
    """A train / validation / test partition of one interaction table.

    Args:
        train: rows to fit on.
        val: rows for model selection and early stopping (may be empty).
        test: held-out rows to report on.
        how: the protocol that produced the split ("leave-last-out", "temporal", "random", "kfold").
        seed: the random seed used, or ``None`` for a deterministic protocol.
        info: counts describing the split (users kept in train only, cold users/items in
            validation and test, ...).
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    how: str
    seed: int | None
    info: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        """Sizes of the three parts plus ``info``.

        Returns:
            ``{"how", "seed", "n_train", "n_val", "n_test", "users_train", "items_train",
            "users_val", "users_test", "rated_train", "rated_val", "rated_test", **info}``.
        """
        out: dict = {"how": self.how, "seed": self.seed}
        for name, part in (("train", self.train), ("val", self.val), ("test", self.test)):
            out[f"n_{name}"] = int(len(part))
        for name, part in (("train", self.train), ("val", self.val), ("test", self.test)):
            out[f"users_{name}"] = int(part[USER_COL].nunique())
            out[f"items_{name}"] = int(part[ITEM_COL].nunique())
            if RATING_COL in part.columns:
                out[f"rated_{name}"] = int(part[RATING_COL].notna().sum())
        out.update(self.info)
        return out


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], how: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"split_interactions(how={how!r}): the interaction table lacks column(s) {missing}; "
            f"it has {list(df.columns)}"
        )


def order_key(df: pd.DataFrame) -> np.ndarray:
    """Positions ``0..n-1`` giving each row's rank under the order ``(timestamp, source_order)``.

    Rows with equal timestamps are ordered by ``ORDER_COL`` (the position in the source file);
    when the table has no ``ORDER_COL``, by their position in ``df``. The result is a total,
    deterministic order.

    Args:
        df: interaction table with ``TIME_COL`` (and usually ``ORDER_COL``).

    Returns:
        int64 array, ``rank[j]`` is the place of row ``j`` (by position) in the global order.
    """
    if TIME_COL not in df.columns:
        raise ValueError(f"ordering interactions needs column {TIME_COL!r}; the table has {list(df.columns)}")
    ts = df[TIME_COL]
    if ts.isna().any():
        bad = ts.index[ts.isna()]
        raise ValueError(f"column {TIME_COL!r} has {len(bad)} missing value(s) (first at row label {bad[0]!r})")
    ts_values = ts.to_numpy(dtype=np.int64)
    if ORDER_COL in df.columns:
        src = df[ORDER_COL]
        if src.isna().any():
            bad = src.index[src.isna()]
            raise ValueError(f"column {ORDER_COL!r} has {len(bad)} missing value(s) (first at row label {bad[0]!r})")
        src_values = src.to_numpy(dtype=np.int64)
    else:
        src_values = np.arange(len(df), dtype=np.int64)
    # np.lexsort sorts by the last key first; the positional key makes the order total.
    perm = np.lexsort((np.arange(len(df)), src_values, ts_values))
    rank = np.empty(len(df), dtype=np.int64)
    rank[perm] = np.arange(len(df), dtype=np.int64)
    return rank


def _cold_counts(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame) -> dict[str, int]:
    users = pd.Index(train[USER_COL].unique())
    items = pd.Index(train[ITEM_COL].unique())
    out = {}
    for name, part in (("val", val), ("test", test)):
        out[f"{name}_cold_users"] = int((~part[USER_COL].isin(users)).sum())
        out[f"{name}_cold_items"] = int((~part[ITEM_COL].isin(items)).sum())
    return out


def _fraction_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    return n - n_val - n_test, n_val, n_test


def split_interactions(
    df: pd.DataFrame,
    how: str = "leave-last-out",
    *,
    seed: int | None = SEED,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    min_interactions: int = 3,
    min_train: int = 1,
) -> Split:
    """Split an interaction table into train, validation and test.

    All protocols order interactions by ``(timestamp, source_order)``: equal timestamps are
    broken by the position in the source file (``ORDER_COL``; the row position in ``df``
    when that column is absent). Amazon timestamps have day resolution, so this tie-break
    decides which of two same-day reviews is "the last".

    Protocols:

    - ``"leave-last-out"``: per user, the last interaction goes to test, the second last to
      validation, the rest to train. Users with fewer than ``min_interactions`` interactions
      go entirely to train (``info["users_train_only"]``, ``info["rows_train_only"]``); an
      eligible user always keeps at least ``min_train`` training rows (a user with exactly
      ``min_train + 1`` rows gives a test row but no validation row).
      ``val_fraction``/``test_fraction`` are not used.
    - ``"temporal"``: one global cut: the first ``1 - val_fraction - test_fraction`` of the
      interactions (by the order key) train, the next ``val_fraction`` validate, the last
      ``test_fraction`` test.
    - ``"random"``: a seeded random permutation cut into the same proportions.

    Validation and test rows whose user or item never appears in train are kept and counted
    (``info["val_cold_users"]``, ``info["val_cold_items"]``, ``info["test_cold_users"]``,
    ``info["test_cold_items"]``). Rows with a missing rating are kept: ranking uses them.

    Args:
        df: canonical interaction table (``USER_COL``, ``ITEM_COL``, ``TIME_COL``,
            ``ORDER_COL``, ...).
        how: one of ``SPLITS``.
        seed: seed of the random protocol (recorded as ``None`` by the deterministic ones).
        val_fraction: share of interactions for validation (temporal, random).
        test_fraction: share of interactions for test (temporal, random).
        min_interactions: leave-last-out: users with fewer interactions stay in train.
        min_train: leave-last-out: training rows an eligible user keeps at least (>= 1).

    Returns:
        A :class:`Split`; each part keeps the input's index labels and row order.

    Raises:
        ValueError: unknown ``how``, missing columns, missing timestamps, bad fractions.
    """
    if how not in SPLITS:
        raise ValueError(f"unknown split {how!r}; valid values: {', '.join(SPLITS)}")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"split_interactions expects a pandas DataFrame, got {type(df).__name__}")
    n = len(df)
    info: dict[str, int] = {"n_rows": int(n)}

    if how == "leave-last-out":
        _require_columns(df, (USER_COL, ITEM_COL, TIME_COL), how)
        if min_train < 1:
            raise ValueError(f"min_train must be >= 1, got {min_train}")
        rank = order_key(df)
        users = df[USER_COL].to_numpy()
        # Position of each row within its user's history, counted from the end (0 = last).
        frame = pd.DataFrame({"u": users, "rank": rank})
        from_end = frame.groupby("u", sort=False)["rank"].rank(method="first", ascending=False).to_numpy() - 1
        count = frame.groupby("u", sort=False)["u"].transform("size").to_numpy()
        eligible = count >= max(min_interactions, min_train + 1)
        is_test = eligible & (from_end == 0)
        is_val = eligible & (from_end == 1) & (count >= min_train + 2)
        part = np.where(is_test, 2, np.where(is_val, 1, 0))
        train_only = ~eligible
        info["users_train_only"] = int(pd.unique(users[train_only]).size)
        info["rows_train_only"] = int(train_only.sum())
        seed_used: int | None = None
    elif how == "temporal":
        _require_columns(df, (USER_COL, ITEM_COL, TIME_COL), how)
        n_train, n_val, _ = _fraction_sizes(n, val_fraction, test_fraction)
        rank = order_key(df)
        part = np.where(rank < n_train, 0, np.where(rank < n_train + n_val, 1, 2))
        seed_used = None
    else:  # random
        _require_columns(df, (USER_COL, ITEM_COL), how)
        n_train, n_val, _ = _fraction_sizes(n, val_fraction, test_fraction)
        perm = np.random.default_rng(seed).permutation(n)
        part = np.empty(n, dtype=np.int64)
        part[perm[:n_train]] = 0
        part[perm[n_train : n_train + n_val]] = 1
        part[perm[n_train + n_val :]] = 2
        seed_used = seed

    train, val, test = (df[part == k] for k in (0, 1, 2))
    info.update(_cold_counts(train, val, test))
    return Split(train=train, val=val, test=test, how=how, seed=seed_used, info=info)


def kfold_splits(df: pd.DataFrame, n_splits: int = 5, *, seed: int | None = SEED) -> Iterator[Split]:
    """K-fold cross-validation folds with the same row assignment as Surprise's ``KFold``.

    ``surprise.model_selection.KFold(n_splits, random_state=seed).split(data)`` on a data set
    built from ``df`` (``Dataset.load_from_df``) tests on exactly the rows of fold ``k`` here:
    row positions are shuffled with ``numpy.random.RandomState(seed)`` and cut into
    ``n_splits`` consecutive blocks, the first ``n % n_splits`` one row larger. Unlike the
    other splits, the rows of each part come in Surprise's (shuffled) order, so a Surprise
    model fitted on ``train`` here sees its ratings in the same order as under
    ``surprise.model_selection.cross_validate`` and, with the same ``random_state``, gives
    identical predictions.

    Args:
        df: interaction table.
        n_splits: number of folds (2 <= n_splits <= len(df)).
        seed: integer seed (``None`` uses numpy's global random state, as Surprise does).

    Yields:
        ``Split`` objects with an empty ``val`` and ``how="kfold"``; ``info["fold"]`` is the
        fold number.
    """
    n = len(df)
    if n_splits < 2 or n_splits > n:
        raise ValueError(f"n_splits must be in [2, {n}] (number of rows), got {n_splits}")
    indices = np.arange(n)
    rng = np.random.RandomState(seed)  # seed None: fresh entropy from the OS
    rng.shuffle(indices)
    stop = 0
    for fold in range(n_splits):
        start = stop
        stop += n // n_splits + (1 if fold < n % n_splits else 0)
        train = df.iloc[np.concatenate([indices[:start], indices[stop:]])]
        test = df.iloc[indices[start:stop]]
        info = {"fold": fold, "n_rows": n, **_cold_counts(train, df.iloc[:0], test)}
        yield Split(train=train, val=df.iloc[:0], test=test, how="kfold", seed=seed, info=info)
