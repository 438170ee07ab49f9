"""Recommenders: one interface (:mod:`.base`), one registry (:mod:`.registry`), the torch models.

- :mod:`textinterest.models.base`: :class:`Recommender` and :class:`Capabilities`;
- :mod:`textinterest.models.registry`: model name -> factory, tasks, default training config, grid;
- :mod:`textinterest.models.torch_base` / :mod:`textinterest.models.sequences`: shared torch plumbing;
- :mod:`textinterest.models.cf` (ID-only MF and LSTM), :mod:`textinterest.models.interest`
  (the dynamic interest model), :mod:`textinterest.models.joint` (with its encoder fine-tuned).

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
    "measure_topic_recovery": "textinterest.models.topic_recovery",
    "component_names": "textinterest.models.interest",
    "MFConfig": "textinterest.models.cf",
    "MatrixFactorization": "textinterest.models.cf",
    "MFRecommender": "textinterest.models.cf",
    "SeqConfig": "textinterest.models.cf",
    "SequentialLSTM": "textinterest.models.cf",
    "SequentialRecommender": "textinterest.models.cf",
    "UserSequences": "textinterest.models.sequences",
    "TorchRecommender": "textinterest.models.torch_base",
    "Recommender": "textinterest.models.base",
    "Capabilities": "textinterest.models.base",
    "ModelSpec": "textinterest.models.registry",
    "register": "textinterest.models.registry",
}
_SUBMODULES = ("base", "registry", "sequences", "torch_base", "interest", "cf", "joint")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"textinterest.models.{name}")
    raise AttributeError(f"module 'textinterest.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__ + list(_SUBMODULES)
