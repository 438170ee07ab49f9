"""Yelp reviews, the 10,000-review teaching sample ("yelp:sample").

File: ``yelp/yelp.csv.zip`` (member ``yelp.csv``) or a plain ``yelp/yelp.csv`` in the data home.
There is no official download for this sample: obtain it yourself (see the registry note).

CSV with a header; texts contain newlines inside quoted fields, so it is read with a real CSV
parser. ``date`` (YYYY-MM-DD) becomes UTC midnight in seconds. Extras: ``review_id``, ``cool``,
``useful``, ``funny`` (vote counts; "" counts as 0). ``type`` (always "review") is dropped.
"""

from __future__ import annotations

from pathlib import Path

from textinterest.constants import ITEM_COL, RATING_COL, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets.base import CleaningReport, ReviewDataset, UnknownDatasetError
from textinterest.datasets.cleaning import finalize
from textinterest.datasets.parsing import (
    ErrorPolicy,
    Field,
    check_errors_option,
    check_not_empty,
    datetime_converter,
    int_converter,
    iter_csv_records,
    make_frame,
    parse_records,
    rating_converter,
    read_bytes,
    to_id,
    to_str,
)
from textinterest.datasets.registry import fetch_file

KEY = "yelp/yelp.csv.zip"
MEMBER = "yelp.csv"

_COUNT = int_converter(strings=True)
FIELDS = [
    Field("user_id", (USER_COL,), to_id, required=True),
    Field("business_id", (ITEM_COL,), to_id, required=True),
    Field("stars", (RATING_COL,), rating_converter(1.0, 5.0, strings=True, integral=True), required=True),
    Field("date", (TIME_COL,), datetime_converter("%Y-%m-%d"), required=True),
    Field("text", (TEXT_COL,), to_str, default="", flag_missing=True),
    Field("review_id", ("review_id",), to_str, default="", flag_missing=True),
    Field("cool", ("cool",), lambda v: _COUNT(v) if v.strip() else 0, default=0),
    Field("useful", ("useful",), lambda v: _COUNT(v) if v.strip() else 0, default=0),
    Field("funny", ("funny",), lambda v: _COUNT(v) if v.strip() else 0, default=0),
]
REQUIRED_COLUMNS = ("user_id", "business_id", "stars", "date")
_DTYPES = {"review_id": "str", "cool": "int64", "useful": "int64", "funny": "int64"}


def load_yelp(
    variant: str = "sample",
    data_home: str | Path | None = None,
    *,
    download: bool = False,
    kcore: int | None = None,
    errors: str = "raise",
    verify: bool = True,
) -> ReviewDataset:
    """Load the Yelp 10,000-review sample.

    Args:
        variant: only "sample".
        data_home: see ``registry.get_data_home``.
        download: accepted for symmetry; there is no URL, so a missing file raises ``DataNotFoundError``.
        kcore: keep only the k-core.
        errors: "raise" or "drop" (see ``parsing``).
        verify: check the file's hash against the registry.
    """
    check_errors_option(errors)
    if variant != "sample":
        raise UnknownDatasetError(f"unknown Yelp variant {variant!r}; known: ('sample',)")
    path = fetch_file(KEY, data_home, download, verify=verify)
    source = f"{path}:{MEMBER}" if path.suffix == ".zip" else str(path)
    report = CleaningReport(source=source)
    policy = ErrorPolicy(source, errors, report)
    data = read_bytes(path, MEMBER if path.suffix == ".zip" else None)
    check_not_empty(data, source)
    columns = parse_records(iter_csv_records(data, policy, REQUIRED_COLUMNS), FIELDS, policy, "source_order")
    df = finalize(make_frame(columns, _DTYPES), report, kcore=kcore, text_columns=(TEXT_COL,))
    return ReviewDataset(name=f"yelp:{variant}", interactions=df, items=None, report=report)
