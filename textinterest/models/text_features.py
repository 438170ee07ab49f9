"""The interest model's text inputs, aligned with the training rows (what saved models store too)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TextFeatures"]


@dataclass
class TextFeatures:
    """Text inputs of the interest model, aligned by position with the training frame.

    Args:
        review_vectors: (len(train), D) float32, row j = vector of training row j.
        sentiment: (len(train),) scores in [-1, 1]; None = zeros.
        texts: training review texts (for :meth:`InterestRecommender.explain`); optional.
        item_ids: ids of items with metadata text vectors (optional).
        item_vectors: (len(item_ids), D) metadata vectors; used instead of the mean of the
            item's training reviews. Items without one use that mean.
    """

    review_vectors: np.ndarray
    sentiment: np.ndarray | None = None
    texts: Sequence[str] | None = None
    item_ids: Sequence[Any] | None = None
    item_vectors: np.ndarray | None = None

    def check(self, n_rows: int) -> None:
        """Raise ValueError naming the field when a shape does not fit ``n_rows`` training rows."""
        vec = np.asarray(self.review_vectors)
        if vec.ndim != 2 or vec.shape[0] != n_rows:
            raise ValueError(f"TextFeatures.review_vectors must have shape ({n_rows}, D), got {vec.shape}")
        if not np.isfinite(vec).all():
            raise ValueError("TextFeatures.review_vectors contains NaN/inf")
        if self.sentiment is not None:
            s = np.asarray(self.sentiment, dtype=np.float64)
            if s.shape != (n_rows,):
                raise ValueError(f"TextFeatures.sentiment must have shape ({n_rows},), got {s.shape}")
            if not np.isfinite(s).all() or (np.abs(s) > 1.0 + 1e-6).any():
                raise ValueError("TextFeatures.sentiment must be finite and in [-1, 1]")
        if self.texts is not None and len(self.texts) != n_rows:
            raise ValueError(f"TextFeatures.texts has {len(self.texts)} entries, expected {n_rows}")
        if (self.item_ids is None) != (self.item_vectors is None):
            raise ValueError("TextFeatures.item_ids and item_vectors must be given together")
        if self.item_vectors is not None:
            iv = np.asarray(self.item_vectors)
            if iv.shape != (len(self.item_ids), vec.shape[1]):
                raise ValueError(
                    f"TextFeatures.item_vectors must have shape ({len(self.item_ids)}, {vec.shape[1]}), got {iv.shape}"
                )
