"""Per-user training histories and the small array helpers every torch recommender shares.

- :class:`UserSequences`: each training user's interactions in time order, as positions into
  sorted arrays, with training windows over long histories;
- :class:`HistoryUpdate`: score a fitted model from new histories (train + validation) without retraining;
- :func:`seen_mask`: which items each user has in training (for masking them out of rankings);
- :func:`sample_negatives`: one unobserved item per user (BPR-style negatives), with :func:`seen_codes`;
- :func:`group_sums`: per-group sums of vector rows (float64, in row order);
- :func:`check_frame`: the column check with which every ``fit`` / ``predict`` starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import ITEM_COL, RATING_COL, TIME_COL, USER_COL
from textinterest.datasets.splits import order_key
from textinterest.evaluation import IdIndex

__all__ = [
    "UserSequences",
    "HistoryUpdate",
    "seen_mask",
    "seen_codes",
    "sample_negatives",
    "group_sums",
    "check_frame",
    "shuffled_batches",
    "check_positive",
]


class UserSequences:
    """Each training user's interactions in time order, as positions into sorted arrays.

    The order key is ``(timestamp, source_order)`` (see :func:`textinterest.datasets.splits.order_key`).
    ``self.rows[j]`` is the position in the original ``train`` frame of sorted interaction ``j``;
    user ``u`` owns sorted interactions ``starts[u] .. starts[u] + lengths[u] - 1``.

    Args:
        train: the training interactions.
        user_index: user ids -> 0..n_users-1 (every train user must be in it).
        item_index: item ids -> 0..n_items-1 (every train item must be in it).
    """

    def __init__(self, train: pd.DataFrame, user_index: IdIndex, item_index: IdIndex) -> None:
        users = user_index.index_of(train[USER_COL].to_numpy())
        items = item_index.index_of(train[ITEM_COL].to_numpy())
        if (users < 0).any() or (items < 0).any():
            raise ValueError("UserSequences: every training user and item must be in the id indices")
        rank = order_key(train)
        order = np.lexsort((rank, users))  # by user, then time
        self.rows = order.astype(np.int64)  # (n,) position in `train`
        self.user = users[order]  # (n,)
        self.item = items[order]  # (n,)
        rating = (
            pd.to_numeric(train[RATING_COL], errors="coerce").to_numpy(dtype=np.float64)
            if RATING_COL in train
            else np.full(len(train), np.nan)
        )
        self.rating = rating[order]  # (n,) NaN = unrated
        ts = train[TIME_COL].to_numpy(dtype=np.int64)[order]
        n_users = len(user_index)
        self.lengths = np.bincount(self.user, minlength=n_users).astype(np.int64)  # (U,)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)  # (U,)
        first = np.zeros(len(order), dtype=bool)
        first[self.starts[self.lengths > 0]] = True
        gap = np.diff(ts, prepend=ts[:1]).astype(np.float64) / 86400.0
        gap[first] = 0.0
        self.log_gap = np.log1p(np.clip(gap, 0.0, None)).astype(np.float32)  # (n,) log(1 + days since previous)
        self.n_users, self.n_items = n_users, len(item_index)

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, max_len: int) -> np.ndarray:
        """Training windows covering every interaction once as a target.

        A history longer than ``max_len`` is cut into windows of ``max_len`` steps with stride
        ``max_len // 2``; in every window but the first, only the second half are targets, so each
        target keeps at least ``max_len // 2`` steps of context.

        Returns:
            int64 array (n_windows, 4): user, start, end (exclusive), first target position
            (all in sorted-interaction coordinates).
        """
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2, got {max_len}")
        out = []
        half = max_len // 2
        for u in np.flatnonzero(self.lengths):
            s, n = int(self.starts[u]), int(self.lengths[u])
            if n <= max_len:
                out.append((u, s, s + n, s))
                continue
            out.append((u, s, s + max_len, s))
            covered = s + max_len
            while covered < s + n:
                end = min(covered + (max_len - half), s + n)
                out.append((u, end - max_len, end, covered))
                covered = end
        return np.asarray(out, dtype=np.int64).reshape(-1, 4)

    def prefixes(self, max_len: int) -> np.ndarray:
        """Every prefix of every history as one next-item example.

        The prefix ending before interaction ``j`` (not a user's first) keeps its last ``max_len``
        steps as input; interaction ``j`` is its target.

        Returns:
            int64 array (n_examples, 4) like :meth:`windows`: user, start, end (exclusive), and
            the target position, which is ``end`` (the step after the input), in user then time order.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        per_user = np.maximum(self.lengths - 1, 0)  # (U,) targets per user
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), per_user)
        offset = np.arange(int(per_user.sum()), dtype=np.int64) - np.repeat(np.cumsum(per_user) - per_user, per_user)
        end = self.starts[users] + offset + 1  # (n,) the target's position
        start = np.maximum(self.starts[users], end - max_len)
        return np.stack([users, start, end, end], axis=1).reshape(-1, 4)

    def last_window(self, users: np.ndarray, max_len: int) -> np.ndarray:
        """Windows holding the last ``max_len`` steps of each user (users < 0: empty).

        Returns:
            int64 array (B, 4) like :meth:`windows`, with the first target at ``end`` (no targets).
        """
        users = np.asarray(users, dtype=np.int64)
        known = users >= 0
        n = np.where(known, self.lengths[np.where(known, users, 0)], 0)
        end = np.where(known, self.starts[np.where(known, users, 0)], 0) + n
        start = end - np.minimum(n, max_len)
        return np.stack([users, start, end, end], axis=1)

    @staticmethod
    def pad(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Right-padded positions of a batch of windows.

        Returns:
            pos (B, T) sorted-interaction positions (0 where padded), mask (B, T) valid steps,
            target (B, T) steps that are training targets. ``T >= 1``.
        """
        lengths = windows[:, 2] - windows[:, 1]
        t_max = max(int(lengths.max(initial=0)), 1)
        steps = np.arange(t_max)[None, :]  # (1, T)
        pos = windows[:, 1:2] + steps  # (B, T)
        mask = steps < lengths[:, None]
        target = mask & (pos >= windows[:, 3:4])
        return np.where(mask, pos, 0), mask, target

    def item_sets(self) -> list[np.ndarray]:
        """Each user's training items (sorted-interaction order)."""
        return [self.item[s : s + n] for s, n in zip(self.starts, self.lengths)]


class HistoryUpdate:
    """Mixin of a fitted sequence recommender: score from new histories without retraining.

    Needs ``user_index``, ``item_index`` and ``seq`` (a :class:`UserSequences`), as
    :class:`~textinterest.models.torch_base.TorchRecommender` sets them in ``fit``.
    """

    def set_history(self, history: pd.DataFrame) -> HistoryUpdate:
        """Replace the histories that scoring reads by those in ``history`` (e.g. train + validation).

        Rows of users or items the model never saw are dropped (it has no embedding for them).

        Returns:
            self
        """
        check_frame(history, "train")
        users = self.user_index.index_of(history[USER_COL].to_numpy())
        items = self.item_index.index_of(history[ITEM_COL].to_numpy())
        self.seq = UserSequences(history[(users >= 0) & (items >= 0)], self.user_index, self.item_index)
        return self


def seen_mask(seq: UserSequences, users: np.ndarray, n_items: int) -> np.ndarray:
    """Which items each user interacted with in training.

    Args:
        seq: the training histories.
        users: (B,) user positions (-1 = unknown user: no items).
        n_items: width of the mask.

    Returns:
        bool array (B, n_items).
    """
    users = np.asarray(users, dtype=np.int64)
    known = users >= 0
    lens = np.where(known, seq.lengths[np.maximum(users, 0)], 0)
    starts = seq.starts[np.maximum(users, 0)]
    total = int(lens.sum())
    mask = np.zeros((len(users), n_items), dtype=bool)
    if total:
        row = np.repeat(np.arange(len(users)), lens)
        offset = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)  # position within each user
        mask[row, seq.item[np.repeat(starts, lens) + offset]] = True
    return mask


def check_frame(df: pd.DataFrame, what: str, need_rating: bool = False) -> None:
    """Raise a clear error unless ``df`` is a DataFrame with the columns ``what`` ("train", "val", "df") needs.

    Args:
        df: the table.
        what: its name in the message; "train" also needs the timestamp column.
        need_rating: require the rating column.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    need = [USER_COL, ITEM_COL] + ([RATING_COL] if need_rating else [])
    if what == "train":
        need.append(TIME_COL)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def seen_codes(seq: UserSequences) -> np.ndarray:
    """Sorted unique ``user * n_items + item`` codes of the training interactions (for :func:`sample_negatives`)."""
    codes = np.sort(seq.user.astype(np.int64) * seq.n_items + seq.item)
    return codes[np.concatenate([[True], codes[1:] != codes[:-1]])] if codes.size else codes


def _is_seen(seen: set[int] | np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Membership of ``codes`` in ``seen`` (a set, or a sorted int64 array as from :func:`seen_codes`)."""
    if isinstance(seen, np.ndarray):
        if seen.size == 0:
            return np.zeros(len(codes), dtype=bool)
        pos = np.minimum(np.searchsorted(seen, codes), seen.size - 1)
        return seen[pos] == codes
    return np.fromiter((int(c) in seen for c in codes), dtype=bool, count=len(codes))


def sample_negatives(
    rng: np.random.Generator, users: np.ndarray, seen: set[int] | np.ndarray, n_items: int, tries: int = 5
) -> np.ndarray:
    """One item per user, uniformly among items the user did not interact with (approximately).

    Args:
        rng: the random generator.
        users: (B,) user positions.
        seen: ``user * n_items + item`` codes of the training interactions: a set, or (faster) the
            sorted array of :func:`seen_codes`; both give the same draws.
        n_items: number of items.
        tries: redraw rounds for draws that hit a seen item (a few may remain after the last).

    Returns:
        int array (B,) of item positions.
    """
    users = np.asarray(users, dtype=np.int64)
    neg = rng.integers(0, n_items, size=len(users))
    for _ in range(tries):
        clash = _is_seen(seen, users * n_items + neg)
        if not clash.any():
            break
        neg[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    return neg


def group_sums(values: np.ndarray, groups: np.ndarray, n_groups: int, block: int = 65536) -> np.ndarray:
    """Float64 sums of the rows of ``values`` per group: what ``np.add.at(out, groups, values)`` gives.

    Rows are added in their order within each group, as ``np.add.at`` adds them, so the sums are the
    same to the last bit; the work is a sort and block-wise ``np.add.reduceat`` instead of one
    unbuffered scatter per row, and only about ``block`` rows are copied at a time.

    Args:
        values: (n, D) rows.
        groups: (n,) group of each row, in ``0 .. n_groups - 1``.
        n_groups: number of groups.
        block: rows gathered per step (whole groups at a time).

    Returns:
        float64 array (n_groups, D); zero rows for empty groups.
    """
    groups = np.asarray(groups, dtype=np.int64)
    out = np.zeros((n_groups, values.shape[1]), dtype=np.float64)
    if groups.size == 0:
        return out
    if groups.min() < 0 or groups.max() >= n_groups:
        raise ValueError(f"group_sums: groups must lie in 0..{n_groups - 1}")
    order = np.argsort(groups, kind="stable")
    counts = np.bincount(groups, minlength=n_groups)
    filled = np.flatnonzero(counts)  # groups with rows, in order
    ends = np.cumsum(counts[filled])
    starts = ends - counts[filled]
    i = 0
    while i < len(filled):
        j = max(int(np.searchsorted(ends, starts[i] + block, side="right")), i + 1)
        rows = order[starts[i] : ends[j - 1]]
        out[filled[i:j]] = np.add.reduceat(values[rows], starts[i:j] - starts[i], axis=0, dtype=np.float64)
        i = j
    return out


def shuffled_batches(windows: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The rows of ``windows`` in a random order, ``batch_size`` at a time (the last batch may be smaller)."""
    order = rng.permutation(len(windows))
    for start in range(0, len(order), batch_size):
        yield windows[order[start : start + batch_size]]


def check_positive(config: Any, names: Sequence[str]) -> None:
    """Raise ValueError naming the field when one of ``names`` of a config dataclass is below 1."""
    for name in names:
        if int(getattr(config, name)) < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be >= 1, got {getattr(config, name)}")
