"""Default training settings of each torch model, by registry name: their single definition.

The registry's specs and a model built directly (``MFRecommender()``) both read this table, so a
model gets the same :class:`~textinterest.training.TrainConfig` either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TRAIN_DEFAULTS"]

_INTEREST = {"epochs": 40, "batch_size": 64, "lr": 3e-3, "patience": 3}
_NEXT_ITEM = {"epochs": 100, "batch_size": 128, "lr": 1e-3, "patience": 5}

TRAIN_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "mf": {"epochs": 60, "batch_size": 256, "lr": 5e-3, "patience": 3},
    "seq-lstm": {"epochs": 40, "batch_size": 64, "lr": 3e-3, "patience": 3},
    "interest": _INTEREST,
    "interest+joint": {**_INTEREST, "batch_size": 32},
    "sasrec": _NEXT_ITEM,
    "gru4rec": _NEXT_ITEM,
}
