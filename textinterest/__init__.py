"""textinterest: recommendations from what users write.

Importing the package is cheap: submodules (and torch, transformers, Surprise) load on first
use, so ``import textinterest`` touches no disk and starts no heavy work.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    # foundation
    "constants",
    "utils",
    "evaluation",
    "significance",
    "training",
    "job_pool",
    # stages, in the order data flows through them
    "datasets",
    "text",
    "models",
    "protocol",
    "apps",
}

# Public names re-exported lazily: name -> (module, attribute)
_EXPORTS = {
    "load_dataset": ("textinterest.datasets", "load_dataset"),
    "split_interactions": ("textinterest.datasets.splits", "split_interactions"),
    "BertFeatureExtractor": ("textinterest.text.features", "BertFeatureExtractor"),
    "SentimentClassifier": ("textinterest.text.sentiment", "SentimentClassifier"),
}

__all__ = sorted(_SUBMODULES | set(_EXPORTS) | {"__version__"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"textinterest.{name}")
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'textinterest' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
