"""Torch recommenders: the text-aware dynamic interest model and ID-only CF baselines.

Submodules load lazily, so ``import textinterest.models`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InterestConfig": "textinterest.models.interest",
    "DynamicInterestModel": "textinterest.models.interest",
    "InterestRecommender": "textinterest.models.interest",
    "TextFeatures": "textinterest.models.interest",
    "measure_topic_recovery": "textinterest.models.interest",
    "component_names": "textinterest.models.interest",
    "MFConfig": "textinterest.models.cf",
    "MatrixFactorization": "textinterest.models.cf",
    "MFRecommender": "textinterest.models.cf",
    "SeqConfig": "textinterest.models.cf",
    "SequentialLSTM": "textinterest.models.cf",
    "SequentialRecommender": "textinterest.models.cf",
    "UserSequences": "textinterest.models.cf",
    "TorchRecommender": "textinterest.models.cf",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in ("interest", "cf"):
        return importlib.import_module(f"textinterest.models.{name}")
    raise AttributeError(f"module 'textinterest.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__ + ["interest", "cf"]
