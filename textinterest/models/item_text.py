"""Time-safe item text for the interest model: an item's text vector at time ``t`` averages only the
item's training reviews written strictly before ``t``.

Leave-last-out is per user, so other users' training reviews of an item may be written after the
review being predicted; an item vector averaging them looks into the future. :class:`ItemTextHistory`
answers "mean of item ``i``'s reviews before ``t``" for any (item, time) pairs from one table of running
sums: reviews are sorted by (item, time), each item's running sum restarts at its first review, a
query's cut is a ``searchsorted`` on the combined key, and the mean is the running sum just before
the cut divided by the count. The sums are accumulated in float64 and stored in float32 (one
rounding, no cancellation), so the table costs what one float32 copy of the review vectors costs:
at a million reviews of 256 dimensions about 0.9 GB, where float64 prefix sums of both orders
took about 3.7 GB. Reviews of
the same timestamp as the query count as later (Amazon timestamps have day resolution), so a
training review never enters its own item vector. An item with no earlier review gets the fallback
vector at that time: the mean of *all* training reviews written before it (zeros before the first
review), so that not even the fallback reads a later review; with ``fallback="zeros"`` it gets zeros
(the static text profile scores such an item 0).

The interest model (per-(item, time) pairs in training, one table per prediction time in scoring)
and the text-profile baseline (tables) share this one class.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from textinterest.constants import TIME_COL, USER_COL

__all__ = ["ItemTextHistory", "TimeSafeScoring"]

FALLBACK_BLOCK = 64  # rows between the fallback's float64 anchor sums
QUERY_BLOCK = 65536  # queries answered per block (bounds the temporaries)
USER_BLOCK = 128  # users scored together against their own time's item table
# at most this many distinct prediction times per block: the item side is (times, items, H), and
# small blocks of it stay in cache through the layer norm, the linear maps and the products
TIME_BLOCK = 8
SUM_BLOCK = 16384  # rows accumulated in float64 per block when building the running sums


def _running_sums(vectors: np.ndarray, order: np.ndarray, segment_starts: np.ndarray) -> np.ndarray:
    """(R, D) float32: row k is the sum of ``vectors[order[s..k]]``, ``s = segment_starts[k]`` (sorted order).

    Accumulated in float64 one block at a time, so each stored value carries one float32 rounding and
    long segments lose nothing to accumulation.
    """
    R, D = len(order), vectors.shape[1]
    out = np.empty((R, D), np.float32)
    carry = np.zeros(D, np.float64)  # running sum of the segment still open at the block's start
    for lo in range(0, R, SUM_BLOCK):
        hi = min(lo + SUM_BLOCK, R)
        block = np.cumsum(vectors[order[lo:hi]], axis=0, dtype=np.float64)  # (b, D) from the block's start
        seg = segment_starts[lo:hi] - lo  # (b,) segment start relative to the block; < 0: began earlier
        inside = seg > 0
        base = np.zeros_like(block)
        base[inside] = block[seg[inside] - 1]  # a segment that starts in the block: subtract what came before it
        base[seg < 0] -= carry  # one that began in an earlier block: add its sum so far
        block -= base
        out[lo:hi] = block
        carry = block[-1]
    return out


class ItemTextHistory:
    """Mean review vector of items using only reviews written before a query time.

    Args:
        vectors: (R, D) review vectors.
        items: (R,) item positions in 0..n_items-1.
        times: (R,) integer review timestamps.
        n_items: number of items.
        fixed: optional (n_items,) bool: items whose vector does not depend on time (metadata
            vectors), answered from ``fixed_vectors`` at every time.
        fixed_vectors: (n_items, D) vectors of the ``fixed`` items (other rows ignored).
        fallback: vector of an item without an earlier review: ``"mean"`` of all earlier reviews, or ``"zeros"``.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        items: np.ndarray,
        times: np.ndarray,
        n_items: int,
        fixed: np.ndarray | None = None,
        fixed_vectors: np.ndarray | None = None,
        fallback: str = "mean",
    ) -> None:
        if fallback not in ("mean", "zeros"):
            raise ValueError(f"fallback must be 'mean' or 'zeros', got {fallback!r}")
        self.fallback = fallback
        vectors = np.asarray(vectors, dtype=np.float32)
        items = np.asarray(items, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        if vectors.ndim != 2 or not len(vectors) == len(items) == len(times):
            raise ValueError(
                f"vectors (R, D), items (R,), times (R,) must agree; got {vectors.shape}, {items.shape}, {times.shape}"
            )
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"item positions must be in [0, {n_items - 1}]")
        self.n_items, self.dim = int(n_items), vectors.shape[1]
        self.vectors = vectors  # kept (no copy when already float32) for the fallback's partial blocks
        self.projection: np.ndarray | None = None  # (D', D) linear map applied to every vector (see projected)
        # fallback: reviews in time order, float64 sums at every FALLBACK_BLOCK-th row (tiny), the rest summed on demand
        self.by_time = np.argsort(times, kind="stable")
        self.all_times = times[self.by_time]  # (R,) ascending
        n_anchors = len(times) // FALLBACK_BLOCK + 1
        self.anchors = np.zeros((n_anchors, self.dim), dtype=np.float64)
        step = max(1, SUM_BLOCK // FALLBACK_BLOCK) * FALLBACK_BLOCK
        for lo in range(0, (n_anchors - 1) * FALLBACK_BLOCK, step):
            hi = min(lo + step, (n_anchors - 1) * FALLBACK_BLOCK)
            blocks = vectors[self.by_time[lo:hi]].reshape(-1, FALLBACK_BLOCK, self.dim).sum(1, dtype=np.float64)
            a = lo // FALLBACK_BLOCK
            self.anchors[a + 1 : a + 1 + len(blocks)] = self.anchors[a] + np.cumsum(blocks, axis=0)
        self.t0 = int(times.min()) if len(times) else 0
        self.span = (int(times.max()) - self.t0 + 2) if len(times) else 2
        order = np.lexsort((times, items))  # by item, then time
        self.keys = items[order] * self.span + (times[order] - self.t0)  # (R,) ascending
        counts = np.bincount(items, minlength=self.n_items)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)  # (n_items,)
        self.fixed = np.zeros(self.n_items, bool) if fixed is None else np.asarray(fixed, bool)
        self.fixed_vectors = fixed_vectors if self.fixed.any() else None
        if self.fixed.all():  # every item answered from its fixed vector: no running sums to keep
            self.running = np.zeros((0, self.dim), np.float32)
        else:
            self.running = _running_sums(vectors, order, self.starts[items[order]])  # (R, D) float32

    def count_before(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        """(Q,) number of reviews of ``items[q]`` written strictly before ``times[q]``."""
        return self._cut(items, times)[0] - self.starts[np.asarray(items, dtype=np.int64)]

    def fallback_before(self, times: np.ndarray | int) -> np.ndarray:
        """(Q, D) float32 mean of all reviews (any item) strictly before each time; zeros when there is none
        (always zeros with ``fallback="zeros"``)."""
        times = np.atleast_1d(np.asarray(times, dtype=np.int64))
        if self.fallback == "zeros":
            return np.zeros((len(times), self.dim), np.float32)
        distinct, which = np.unique(times, return_inverse=True)
        n = np.searchsorted(self.all_times, distinct, side="left")
        sums = self.anchors[n // FALLBACK_BLOCK].copy()  # (U, D) float64
        for j, (lo, hi) in enumerate(zip(n // FALLBACK_BLOCK * FALLBACK_BLOCK, n)):
            if hi > lo:
                rows = self.vectors[self.by_time[lo:hi]]
                sums[j] += (rows if self.projection is None else rows @ self.projection.T).sum(0, dtype=np.float64)
        return (sums / np.maximum(n, 1)[:, None]).astype(np.float32)[which.reshape(-1)]

    def mean_before(self, items: np.ndarray, times: np.ndarray | int) -> np.ndarray:
        """(Q, D) float32 mean of each item's reviews strictly before its query time (fallback if none).

        Args:
            items: (Q,) item positions.
            times: (Q,) query timestamps, or one timestamp for every item.
        """
        items = np.asarray(items, dtype=np.int64)
        cut, start = self._cut(items, times)
        n = cut - start
        out = np.zeros((len(items), self.dim), np.float32)
        fixed = self.fixed[items]
        some = np.flatnonzero((n > 0) & ~fixed)
        for s in range(0, len(some), QUERY_BLOCK):  # (block, D) temporaries, not (Q, D)
            q = some[s : s + QUERY_BLOCK]
            out[q] = self.running[cut[q] - 1] / n[q, None].astype(np.float32)
        empty = (n == 0) & ~fixed
        if empty.any():
            if self.fallback == "mean":
                when = np.broadcast_to(np.asarray(times, dtype=np.int64), items.shape)[empty]
                distinct, which = np.unique(when, return_inverse=True)
                out[empty] = self.fallback_before(distinct)[which]
        if fixed.any():
            out[fixed] = self.fixed_vectors[items[fixed]]
        return out

    def projected(self, weight: np.ndarray) -> ItemTextHistory:
        """The same history with every review vector mapped by the linear map ``weight`` ((D', D)).

        A mean commutes with a linear map, so ``projected(W).mean_before(i, t) == W @ mean_before(i, t)``
        (up to float rounding), answered at D' dimensions: the interest model projects the running sums
        once per scoring pass instead of each item table of each prediction time.
        """
        weight = np.asarray(weight, dtype=np.float32)
        if weight.ndim != 2 or weight.shape[1] != self.dim:
            raise ValueError(f"weight must have shape (D', {self.dim}), got {weight.shape}")
        out = copy.copy(self)
        out.dim = weight.shape[0]
        out.running = self.running @ weight.T
        out.anchors = self.anchors @ weight.T.astype(np.float64)
        out.projection = weight if self.projection is None else weight @ self.projection
        if self.fixed_vectors is not None:
            out.fixed_vectors = np.asarray(self.fixed_vectors, np.float32) @ weight.T
        return out

    def every_review(self) -> np.ndarray:
        """(n_items, D) float32 mean of every review of each item (the fallback for an item without any)."""
        return self.mean_before(np.arange(self.n_items), self.t0 + self.span)

    def tables(self, times: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every item's vector at each distinct query time, one (1 + n_items, D) table at a time, ascending.

        Yields:
            ``(queries, table)``: positions in ``times`` sharing one time, and the table at that time;
            row 0 is the fallback (for unknown items), row 1 + i item i.
        """
        distinct, which = np.unique(np.asarray(times, dtype=np.int64), return_inverse=True)
        everything = np.arange(self.n_items)
        for j, t in enumerate(distinct):
            table = np.concatenate([self.fallback_before(int(t)), self.mean_before(everything, int(t))])
            yield np.flatnonzero(which == j), table

    def _cut(self, items: np.ndarray, times: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"item positions must be in [0, {self.n_items - 1}]")
        rel = np.clip(np.asarray(times, dtype=np.int64) - self.t0, 0, self.span - 1)
        cut = np.searchsorted(self.keys, items * self.span + rel, side="left")
        return cut, self.starts[items]


class TimeSafeScoring:
    """Prediction-time item text for a torch recommender whose module keeps item vectors in ``module.item_text``
    ((1 + n_items, D), row 0 the fallback) and that sets ``_item_history`` (an :class:`ItemTextHistory`, or None
    when the switch is off) and implements ``_score_now(users, items)``.
    """

    prediction_times_: dict[Any, int]
    _item_history: ItemTextHistory | None

    def _at_prediction_times(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """Scores with time-safe item text for users with a prediction time (all items, or ``items``).

        The history of every timed user is encoded once, its items' text taken at the user's time;
        a pair (user, item) reads the item's text at that time too. Scoring all items groups the
        users by time and scores each group against the item table of its time.
        """
        hist, times = self._item_history, self.prediction_times_
        timed = np.zeros(len(users), bool)
        if hist is not None and times:
            ids = self.user_index.ids[np.maximum(users, 0)]
            timed = (users >= 0) & np.array([u in times for u in ids], dtype=bool)
        if not timed.any():
            return self._score_now(users, items)
        out = np.empty((len(users), len(self.item_index)) if items is None else len(users), np.float32)
        rest, sel = np.flatnonzero(~timed), np.flatnonzero(timed)
        if len(rest):
            out[rest] = self._score_now(users[rest], None if items is None else items[rest])
        when = np.array([times[u] for u in ids[sel]], dtype=np.int64)  # (S,)
        comps, _ = self.final_state(users[sel], when)
        user_t = torch.as_tensor(users[sel] + 1, device=comps.device)
        if items is not None:
            known = items[sel] >= 0
            text = hist.fallback_before(when)  # unknown items: the fallback, as row 0 of a table
            text[known] = hist.mean_before(items[sel][known], when[known])
            item_t = torch.as_tensor(items[sel] + 1, device=comps.device)
            scores, _ = self.module.score_pairs(comps, user_t, item_t, torch.as_tensor(text, device=comps.device))
            out[sel] = scores.float().cpu().numpy()
            return out
        # every timed user against all items at the user's time: the item text enters the model only through
        # the linear map item_text_proj, so the history is projected once (H dims instead of D); users are
        # scored in blocks, the item side computed once per distinct time of the block, each row reading its own
        proj = self.module.item_text_proj
        history = hist.projected(proj.weight.detach().cpu().numpy())
        everything = np.arange(hist.n_items)
        by_time = np.argsort(when, kind="stable")
        sorted_when = when[by_time]
        time_rank = np.cumsum(np.r_[True, sorted_when[1:] != sorted_when[:-1]]) - 1  # (S,) nondecreasing
        lo = 0
        while lo < len(by_time):
            # users sharing a time stay together (one item table for all of them), up to USER_BLOCK
            hi = min(lo + USER_BLOCK, int(np.searchsorted(time_rank, time_rank[lo] + TIME_BLOCK)))
            q, lo = by_time[lo:hi], hi
            distinct, which = np.unique(when[q], return_inverse=True)
            tables = history.mean_before(np.tile(everything, len(distinct)), np.repeat(distinct, hist.n_items))
            text_proj = torch.as_tensor(tables.reshape(len(distinct), hist.n_items, -1), device=comps.device)
            # times are sorted and q follows them: when all differ, row r's table is table r
            row_table = None if len(distinct) == len(q) else torch.as_tensor(which.reshape(-1), device=comps.device)
            scores, _ = self.module.score_candidates(
                comps[q], user_t[q], candidate_text_proj=text_proj, row_table=row_table
            )
            out[sel[q]] = scores.float().cpu().numpy()
        return out

    def set_prediction_times(self, df: pd.DataFrame) -> TimeSafeScoring:
        """Record each user's prediction time, the earliest timestamp of their rows in ``df`` (e.g. the test split).

        With ``time_safe_text`` the scores of these users then use item text vectors averaging only
        training reviews written before that time (items without one: the mean vector). An empty
        ``df`` clears the times (every training review counts again).

        Raises:
            ValueError: ``df`` lacks the user or time column.
        """
        missing = [c for c in (USER_COL, TIME_COL) if c not in df.columns]
        if missing:
            raise ValueError(f"set_prediction_times: df lacks column(s) {missing}; it has {list(df.columns)}")
        self.prediction_times_ = df.groupby(USER_COL, sort=False)[TIME_COL].min().astype(np.int64).to_dict()
        return self
