"""The one interface every recommender of textinterest speaks, and what a model says it can do.

A recommender is fitted on a table of training interactions (canonical columns, see
:mod:`textinterest.constants`) and then answers one or both of two questions:

- **rating**: ``predict(df) -> (len(df),) float64`` predicted ratings of the (user, item) rows of ``df``;
- **ranking**: ``score_items(user_ids) -> (n_users, n_items)`` a score of every item of
  ``model.item_index`` for each user, higher = better (full-ranking evaluation).

Shape of the interface (Cornac-like)::

    model = SomeRecommender(...)                      # hyper-parameters only; no data yet
    model.fit(train, val=None, **inputs)              # -> model; val (optional) drives early stopping
    model.capabilities                                # Capabilities(rating=..., ranking=..., ...)
    model.predict(test)                               # if capabilities.rating
    model.score_items(["u1", "u2"])                   # if capabilities.ranking

After ``fit`` every model exposes ``user_index`` / ``item_index``
(:class:`textinterest.evaluation.IdIndex` of the training ids) and ``n_fallback_`` (rows of the
last ``predict`` call whose user or item was unknown). ``inputs`` carries side information a
model may use (e.g. ``features=TextFeatures`` for the interest model); models that need none
ignore it.

``capabilities`` may differ between instances of one class (a Surprise algorithm without a
ranking formula, a KNN model too large to rank densely, an interest model without text), so
read it from the instance, after ``fit`` when it matters.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Capabilities", "Recommender", "TASKS"]

TASKS = ("rating", "ranking")


@dataclass(frozen=True)
class Capabilities:
    """What a recommender can do.

    Args:
        rating: ``predict(df)`` returns ratings.
        ranking: ``score_items(user_ids)`` scores every item for full ranking.
        uses_text: reads review / item texts (through ``fit(..., features=...)``).
        sequential: conditions on the order of each user's history.
        trains_with_torch: trained by :class:`textinterest.training.Trainer` (seeded, device-aware).
    """

    rating: bool = True
    ranking: bool = True
    uses_text: bool = False
    sequential: bool = False
    trains_with_torch: bool = False

    def serves(self, task: str) -> bool:
        """Whether the model answers ``task`` ("rating" or "ranking")."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        return self.rating if task == "rating" else self.ranking


class Recommender(abc.ABC):
    """Base class of every recommender: ``fit`` / ``predict`` / ``score_items`` / ``capabilities``.

    Subclasses implement :meth:`fit` and whichever of :meth:`predict` / :meth:`score_items` their
    ``capabilities`` declare; the defaults raise ``NotImplementedError`` naming the model.

    Attributes:
        name: label used in result tables.
        capabilities: a :class:`Capabilities` (class default, replaced per instance where needed).
    """

    name: str = "recommender"
    capabilities: Capabilities = Capabilities()

    @abc.abstractmethod
    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, **inputs: Any) -> Recommender:
        """Train on ``train``.

        Args:
            train: training interactions (user, item, rating, timestamp, ...).
            val: validation interactions for early stopping / model choice; models that do
                not use it ignore it.
            **inputs: side information (e.g. ``features=``); ignored by models that need none.

        Returns:
            self
        """

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted ratings, shape ``(len(df),)``, for the (user, item) rows of ``df``."""
        raise NotImplementedError(f"{self.name} does not predict ratings")

    def score_items(self, user_ids: Sequence[Any]) -> np.ndarray:
        """Scores ``(len(user_ids), len(self.item_index))`` of every training item, higher = better."""
        raise NotImplementedError(f"{self.name} does not rank items")
