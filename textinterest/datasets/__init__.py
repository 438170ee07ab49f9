"""Review data sets: load, validate, deduplicate and describe them.

>>> from textinterest.datasets import load_dataset, dataset_summary
>>> ds = load_dataset("synthetic")                    # needs no files
>>> ds = load_dataset("amazon:Musical_Instruments")   # reads $TEXTINTEREST_DATA/amazon2014/...

Importing this package is cheap: the submodules (and pandas) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_dataset": "api",
    "known_datasets": "api",
    "dataset_summary": "summary",
    "format_summary": "summary",
    "ReviewDataset": "base",
    "CleaningReport": "base",
    "DataNotFoundError": "base",
    "DataFormatError": "base",
    "ChecksumMismatchError": "base",
    "UnknownDatasetError": "base",
    "fetch_file": "registry",
    "get_data_home": "registry",
    "REGISTRY": "registry",
    "make_synthetic": "synthetic",
}

_SUBMODULES = {
    "api",
    "base",
    "registry",
    "parsing",
    "cleaning",
    "amazon",
    "goodreads",
    "yelp",
    "movielens",
    "synthetic",
    "summary",
    "splits",
    "review_schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"textinterest.datasets.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'textinterest.datasets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"textinterest.datasets.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
