"""Default training settings of each torch model, by registry name: their single definition.

The registry's specs and a model built directly (``MFRecommender()``) both read this table, so a
model gets the same :class:`~textinterest.training.TrainConfig` either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TRAIN_DEFAULTS"]

# seq-lstm's validation NDCG@10 often sits on a plateau for several epochs before it climbs again; after
# 3 epochs without improvement its runs stopped on such a plateau at epoch 1 or 2, far below what the same
# run reaches later, so its seeds scattered. It waits 10 (its epochs cost seconds). The interest family keeps
# 3: a longer wait did not raise its figures and costs the default run its time budget. BENCHMARKS.md,
# "Early stopping", has the curves and both runs.
_INTEREST = {"epochs": 40, "batch_size": 64, "lr": 3e-3, "patience": 3}
# the reference training recipe of the next-item peers (RecBole's SASRec): Adam at 1e-3 (no weight decay),
# batches of 256 examples, at most 50 epochs, early stopping on validation NDCG@10 after 5 epochs without
# improvement, no gradient clipping
_NEXT_ITEM = {"epochs": 50, "batch_size": 256, "lr": 1e-3, "patience": 5, "weight_decay": 0.0, "grad_clip": None}

TRAIN_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "mf": {"epochs": 60, "batch_size": 256, "lr": 5e-3, "patience": 3},
    "seq-lstm": {"epochs": 60, "batch_size": 64, "lr": 3e-3, "patience": 10},
    "interest": _INTEREST,
    "interest+joint": {**_INTEREST, "batch_size": 32},
    "sasrec": _NEXT_ITEM,
    "gru4rec": _NEXT_ITEM,
    "sasrec-text": _NEXT_ITEM,
}
