"""The static text profile: the text-only baseline every dynamic-interest claim must beat.

A user's profile is the mean of the vectors of their training reviews; an item's text vector is
the mean of the vectors of its training reviews (by anyone); the score of item ``i`` for user
``u`` is ``cos(profile_u, item_i)``. No order, no sentiment, no collaborative term: if the
interest model does not beat this, its dynamics add nothing over "what does this user write about".

Time-safe item text (``time_safe=True``, the default): leave-last-out is per user, so another
user's training review of item ``i`` may have been written *after* the review being predicted.
With :meth:`TextProfileRecommender.set_prediction_times` given each user's prediction time, an
item's vector then averages only reviews written strictly before that time (reviews of the same
day count as later: Amazon timestamps have day resolution). Without prediction times, or with
``time_safe=False``, every training review counts. An item with no earlier review scores 0.

Review vectors are given, aligned with the training rows (e.g. ``TextFeatures.review_vectors`` of
:func:`textinterest.protocol.experiments.build_text_features`, or ``extractor.embed(texts)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import ITEM_COL, TIME_COL, USER_COL
from textinterest.evaluation import IdIndex
from textinterest.models.base import Capabilities, Recommender
from textinterest.models.item_text import ItemTextHistory

__all__ = ["TextProfileRecommender"]


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


class TextProfileRecommender(Recommender):
    """Static text profile: ``score(u, i) = cos(mean of u's review vectors, item i's text vector)``; ranking only.

    Args:
        time_safe: item text from reviews written before each user's prediction time (see the module docstring).
        task: must be "ranking".
        vectors: (len(train), D) review vectors of the frame :meth:`fit` gets (e.g. ``TextFeatures.review_vectors``).
    """

    name = "text-profile"
    capabilities = Capabilities(rating=False, ranking=True, uses_text=True)

    def __init__(self, *, time_safe: bool = True, task: str = "ranking", vectors: np.ndarray | None = None) -> None:
        if task != "ranking":
            raise ValueError(f"text-profile only ranks items; task must be 'ranking', got {task!r}")
        self.time_safe, self.task, self.vectors = bool(time_safe), task, vectors
        self.prediction_times_: dict[Any, int] = {}
        self.n_fallback_ = 0
        self._items: ItemTextHistory | None = None

    def fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None = None, *, vectors: np.ndarray | None = None, **inputs: Any
    ) -> TextProfileRecommender:
        """Build the user profiles and the item text from ``train``.

        Args:
            train: training interactions (user, item, timestamp, text / summary).
            val: ignored (nothing to tune).
            vectors: (len(train), D) review vectors aligned with ``train``; default: the constructor's.
            **inputs: other side information (ignored).

        Returns:
            self
        """
        missing = [c for c in (USER_COL, ITEM_COL, TIME_COL) if c not in train.columns]
        if missing:
            raise ValueError(f"train lacks column(s) {missing}; it has {list(train.columns)}")
        if len(train) == 0:
            raise ValueError("cannot fit on an empty training table")
        vectors = self.vectors if vectors is None else vectors
        if vectors is None:
            raise ValueError(
                "text-profile needs the review vectors of the training rows: TextProfileRecommender(vectors=...) "
                "or fit(train, vectors=...)"
            )
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(train):
            raise ValueError(f"vectors must have shape ({len(train)}, D), got {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("review vectors contain NaN/inf")
        self.user_index = IdIndex(train[USER_COL].to_numpy())
        self.item_index = IdIndex(train[ITEM_COL].to_numpy())
        users = self.user_index.index_of(train[USER_COL].to_numpy())
        items = self.item_index.index_of(train[ITEM_COL].to_numpy())
        sums = np.zeros((len(self.user_index), vectors.shape[1]), dtype=np.float64)
        np.add.at(sums, users, vectors)
        self.profiles_ = _unit(sums)  # the mean's direction = the sum's direction
        times = train[TIME_COL].to_numpy(dtype=np.int64)
        self._items = ItemTextHistory(vectors, items, times, len(self.item_index), fallback="zeros")
        self._all_items = _unit(self._items.every_review())
        return self

    def set_prediction_times(self, df: pd.DataFrame) -> TextProfileRecommender:
        """Record each user's prediction time: the earliest timestamp of their rows in ``df`` (e.g. the test split)."""
        missing = [c for c in (USER_COL, TIME_COL) if c not in df.columns]
        if missing:
            raise ValueError(f"df lacks column(s) {missing}")
        self.prediction_times_ = df.groupby(USER_COL, sort=False)[TIME_COL].min().astype(np.int64).to_dict()
        return self

    def score_items(self, user_ids: Sequence[Any]) -> np.ndarray:
        """Cosine scores of every item of ``self.item_index`` for each user (unknown user: zeros).

        Returns:
            float32 array (len(user_ids), n_items).
        """
        if self._items is None:
            raise RuntimeError("text-profile is not fitted; call fit(train) first")
        user_ids = list(user_ids)
        pos = self.user_index.index_of(np.asarray(user_ids, dtype=object))
        self.n_fallback_ = int((pos < 0).sum())
        prof = np.where((pos >= 0)[:, None], self.profiles_[np.maximum(pos, 0)], 0.0).astype(np.float32)  # (B, D)
        timed = [u in self.prediction_times_ for u in user_ids]
        if not (self.time_safe and any(timed)):
            return prof @ self._all_items.T
        out = prof @ self._all_items.T
        rows = np.flatnonzero(timed)
        for queries, table in self._items.tables(np.array([self.prediction_times_[user_ids[r]] for r in rows])):
            sel = rows[queries]
            out[sel] = prof[sel] @ _unit(table[1:]).T  # row 0 is the fallback row
        return out
