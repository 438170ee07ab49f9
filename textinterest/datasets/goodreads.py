"""Goodreads Young Adult reviews, the 10,000-review course sample ("goodreads:young_adult_10000").

File: ``goodreads/young_adult_10000.json.gz``, one JSON object per line (UCSD Book Graph schema).

- ``rating`` 0 means "no star rating given": the row is kept as a text-only review with a NaN
  rating and counted in ``report.changed["rating_0_as_unrated"]``; ratings must be whole numbers 0-5.
- ``timestamp`` is ``date_added`` (e.g. "Wed Jan 13 13:38:25 -0800 2010") in UTC seconds.
- Extras: ``review_id``, ``n_votes``, ``n_comments``. There is no summary (""), and no item metadata.
- The file is grouped by user, not sorted by time: never use ``source_order`` as a time order
  (it only breaks timestamp ties).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from textinterest.constants import ITEM_COL, RATING_COL, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets.base import CleaningReport, ReviewDataset, UnknownDatasetError
from textinterest.datasets.cleaning import finalize
from textinterest.datasets.parsing import (
    Field,
    check_errors_option,
    datetime_converter,
    int_converter,
    rating_converter,
    read_json_lines_frame,
    to_id,
    to_str,
)
from textinterest.datasets.registry import fetch_file

KEY = "goodreads/young_adult_10000.json.gz"
DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"

FIELDS = [
    Field("user_id", (USER_COL,), to_id, required=True),
    Field("book_id", (ITEM_COL,), to_id, required=True),
    Field("rating", (RATING_COL,), rating_converter(0.0, 5.0, integral=True), required=True),
    Field("date_added", (TIME_COL,), datetime_converter(DATE_FORMAT), required=True),
    Field("review_text", (TEXT_COL,), to_str, default="", flag_missing=True),
    Field("review_id", ("review_id",), to_str, default="", flag_missing=True),
    Field("n_votes", ("n_votes",), int_converter(), default=0, flag_missing=True),
    Field("n_comments", ("n_comments",), int_converter(), default=0, flag_missing=True),
]
_DTYPES = {"review_id": "str", "n_votes": "int64", "n_comments": "int64"}
VARIANTS = ("young_adult_10000",)


def load_goodreads(
    variant: str = "young_adult_10000",
    data_home: str | Path | None = None,
    *,
    download: bool = False,
    kcore: int | None = None,
    errors: str = "raise",
    verify: bool = True,
) -> ReviewDataset:
    """Load the Goodreads Young Adult 10,000-review sample.

    Args:
        variant: only "young_adult_10000".
        data_home: see ``registry.get_data_home``.
        download: fetch the file when missing (the course URL is inferred; the sha256 still guards it).
        kcore: keep only the k-core (unrated rows count as interactions).
        errors: "raise" or "drop" (see ``parsing``).
        verify: check the file's hash against the registry.
    """
    check_errors_option(errors)
    if variant not in VARIANTS:
        raise UnknownDatasetError(f"unknown Goodreads variant {variant!r}; known: {VARIANTS}")
    path = fetch_file(KEY, data_home, download, verify=verify)
    report = CleaningReport(source=str(path))
    df = read_json_lines_frame(path, FIELDS, report, errors, _DTYPES)
    df = finalize(df, report, kcore=kcore, text_columns=(TEXT_COL,))
    unrated = df[RATING_COL].to_numpy() == 0.0
    report.add("changed", "rating_0_as_unrated", int(unrated.sum()))
    df[RATING_COL] = np.where(unrated, np.nan, df[RATING_COL].to_numpy())
    return ReviewDataset(name=f"goodreads:{variant}", interactions=df, items=None, report=report)
