"""``load_dataset``: one entry point for every data set, by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textinterest.datasets.base import ReviewDataset, UnknownDatasetError

#: family -> (variants shown in messages, loader module, loader function)
_FAMILIES: dict[str, tuple[str, str, str]] = {
    "amazon": ("<Category> (2014 5-core, e.g. Musical_Instruments)", "amazon", "load_amazon"),
    "amazon2018": ("<Category> (2018 5-core, e.g. All_Beauty, AMAZON_FASHION)", "amazon", "load_amazon"),
    "goodreads": ("young_adult_10000", "goodreads", "load_goodreads"),
    "yelp": ("sample", "yelp", "load_yelp"),
    "movielens": ("100k", "movielens", "load_movielens"),
    "synthetic": ("", "synthetic", "make_synthetic"),
}


def known_datasets() -> list[str]:
    """Every dataset name with a registered file, plus "synthetic" (needs no file)."""
    from textinterest.datasets.amazon import known_categories

    names = [f"amazon:{c}" for c in known_categories("amazon")]
    names += [f"amazon2018:{c}" for c in known_categories("amazon2018")]
    names += ["goodreads:young_adult_10000", "yelp:sample", "movielens:100k", "synthetic"]
    return names


def _unknown(name: str) -> UnknownDatasetError:
    patterns = [f"{family}:{variants}" if variants else family for family, (variants, _, _) in _FAMILIES.items()]
    return UnknownDatasetError(
        f"unknown dataset {name!r}. Known names: {', '.join(known_datasets())}. Name patterns: {'; '.join(patterns)}."
    )


def _loader(module: str, function: str) -> Callable[..., ReviewDataset]:
    import importlib

    return getattr(importlib.import_module(f"textinterest.datasets.{module}"), function)


def load_dataset(
    name: str,
    data_home: str | Path | None = None,
    *,
    download: bool = False,
    kcore: int | None = None,
    **options: Any,
) -> ReviewDataset:
    """Load, validate and clean a review data set by name.

    Args:
        name: "amazon:<Category>", "amazon2018:<Category>", "goodreads:young_adult_10000",
            "yelp:sample", "movielens:100k", "synthetic" or "synthetic:USERSxITEMS" (e.g.
            "synthetic:50000x2000", about a million reviews).
        data_home: folder laid out like the shared data folder; default ``$TEXTINTEREST_DATA``, then
            a checkout's ``data/``, then ``$TEXTINTEREST_CACHE/data``, then the user cache folder
            (see ``registry.get_data_home``).
        download: fetch a missing registered file from its publisher (checked by hash).
        kcore: keep only the k-core (every user and item with at least ``kcore`` interactions).
        **options: for files: ``errors`` ("raise" or "drop" bad records, default "raise") and
            ``verify`` (check hashes, default True); for Amazon files also ``drop_copies`` (see
            :func:`~textinterest.datasets.amazon.load_amazon`; on by default for "amazon2018").
            For "synthetic": ``n_users``, ``n_items``, ``n_topics``, ``seed``, ``min_reviews``,
            ``max_reviews``, ``stay_prob``, ``on_topic_prob``, ``vectorised``.

    Returns:
        A ``ReviewDataset``: interactions in source order, item metadata where the source has it,
        and the cleaning report.

    Raises:
        UnknownDatasetError: the name is not known (the message lists the known names).
        DataNotFoundError: the file is missing (the message says where it looked and how to get it).
        DataFormatError: a bad record with ``errors="raise"``, or an empty file.
        ChecksumMismatchError: a file differs from the registered one.
        TypeError: an option the loader does not take.
    """
    if not isinstance(name, str):
        raise _unknown(repr(name))
    family, sep, variant = name.strip().partition(":")
    if family == "synthetic" and sep:  # "synthetic:USERSxITEMS"
        from textinterest.datasets.synthetic import parse_size

        try:
            sized = parse_size(variant)
        except ValueError as exc:
            raise _unknown(name) from exc
        clash = sorted(set(sized) & set(options))
        if clash:
            raise TypeError(f"{name!r} already sets {clash}; pass them either in the name or as options")
        options, sep = {**options, **sized}, ""
    if family not in _FAMILIES or (family == "synthetic") == bool(sep):
        raise _unknown(name)
    _, module, function = _FAMILIES[family]
    loader = _loader(module, function)
    accepted = [
        p
        for p in inspect.signature(loader).parameters
        if p not in ("family", "category", "variant", "data_home", "download", "kcore")
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"{family} does not take option(s) {unknown}; accepted: {sorted(accepted)}")
    if family == "synthetic":
        return loader(kcore=kcore, **options)
    if family in ("amazon", "amazon2018"):
        return loader(family, variant, data_home, download=download, kcore=kcore, **options)
    return loader(variant, data_home, download=download, kcore=kcore, **options)
