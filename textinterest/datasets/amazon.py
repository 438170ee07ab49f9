"""Amazon review data: the 2014 release ("amazon:<Category>") and the 2018 release ("amazon2018:<Category>").

Both are 5-core files, one JSON object per line, gzipped as the publisher serves them:
``amazon2014/reviews_<Category>_5.json.gz`` and ``amazon2018/<Category>_5.json.gz`` in the data home.

Columns: the canonical ones (``summary`` from the source ``summary``), plus ``reviewer_name`` and
- 2014: ``helpful_votes``, ``total_votes`` (from ``helpful`` = [helpful, total]);
- 2018: ``helpful_votes`` (from ``vote``, a string such as "1,234"; 0 when absent), ``verified``
  (nullable boolean) and ``style`` (the product variant as a key-sorted JSON string, "" when absent).
  ``image`` (photo URLs) is dropped. ``reviewTime`` is dropped: it repeats ``unixReviewTime``.
"""

from __future__ import annotations

import re
from pathlib import Path

from textinterest.constants import (
    ITEM_COL,
    ORDER_COL,
    RATING_COL,
    SUMMARY_COL,
    TEXT_COL,
    TIME_COL,
    USER_COL,
)
from textinterest.datasets.base import CleaningReport, DataNotFoundError, ReviewDataset, UnknownDatasetError
from textinterest.datasets.cleaning import finalize
from textinterest.datasets.parsing import (
    Field,
    check_errors_option,
    rating_converter,
    read_json_lines_frame,
    to_bool,
    to_helpful,
    to_id,
    to_json_string,
    to_str,
    to_vote_count,
    unix_seconds,
)
from textinterest.datasets.registry import REGISTRY, candidate_paths, fetch_file, not_found_message

_RATING = rating_converter(1.0, 5.0)

_SHARED_FIELDS = [  # the same in both releases
    Field("reviewerID", (USER_COL,), to_id, required=True),
    Field("asin", (ITEM_COL,), to_id, required=True),
    Field("overall", (RATING_COL,), _RATING, required=True),
    Field("unixReviewTime", (TIME_COL,), unix_seconds, required=True),
    Field("reviewText", (TEXT_COL,), to_str, default="", flag_missing=True),
    Field("summary", (SUMMARY_COL,), to_str, default="", flag_missing=True),
    Field("reviewerName", ("reviewer_name",), to_str, default="", flag_missing=True),
]

FIELDS_2014 = [
    *_SHARED_FIELDS,
    Field("helpful", ("helpful_votes", "total_votes"), to_helpful, default=(0, 0), flag_missing=True),
]

FIELDS_2018 = [
    *_SHARED_FIELDS,
    Field("vote", ("helpful_votes",), to_vote_count, default=0),
    Field("verified", ("verified",), to_bool, default=None, flag_missing=True),
    Field("style", ("style",), to_json_string, default=""),
]

_DTYPES = {
    "reviewer_name": "str",
    "helpful_votes": "int64",
    "total_votes": "int64",
    "verified": "boolean",
    "style": "str",
}
_TEXT_COLUMNS = (TEXT_COL, SUMMARY_COL, "reviewer_name")
_CATEGORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")

RELEASES = {
    # family -> (folder/file pattern, manual-download hint)
    "amazon": (
        "amazon2014/reviews_{}_5.json.gz",
        "The 2014 5-core files are listed at https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html "
        "(e.g. http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/reviews_<Category>_5.json.gz).",
    ),
    "amazon2018": (
        "amazon2018/{}_5.json.gz",
        "The 2018 5-core files are listed at https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/ "
        "(e.g. https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/categoryFilesSmall/<Category>_5.json.gz).",
    ),
}


def known_categories(family: str) -> list[str]:
    """Categories of a release ("amazon" or "amazon2018") that the registry knows (with URL and hash)."""
    prefix, suffix = RELEASES[family][0].split("{}")
    return sorted(k[len(prefix) : -len(suffix)] for k in REGISTRY if k.startswith(prefix) and k.endswith(suffix))


def resolve_category(family: str, category: str) -> str:
    """Validate a category name; registered categories also match case-insensitively."""
    if not _CATEGORY.fullmatch(category or ""):
        raise UnknownDatasetError(
            f"{family}:{category!r} is not a valid category name (letters, digits and underscores); "
            f"known categories: {', '.join(known_categories(family))}"
        )
    for known in known_categories(family):
        if known.lower() == category.lower():
            return known
    return category


def locate(family: str, category: str, data_home: str | Path | None, download: bool, verify: bool) -> Path:
    """The local file of a category (downloaded when asked and registered)."""
    key = RELEASES[family][0].format(category)
    if key in REGISTRY:
        return fetch_file(key, data_home, download, verify=verify)
    for path in candidate_paths(key, data_home):
        if path.is_file():
            return path  # a category the registry does not know: no hash to check
    known = known_categories(family)
    raise DataNotFoundError(
        not_found_message(
            [key],
            data_home,
            what=f"{family}:{category} (file {key!r})",
            extra=(
                f"{category!r} is not a registered category (known: {', '.join(known)}), so download=True "
                f"cannot fetch it. {RELEASES[family][1]} Place the file at the path above to use it."
            ),
        )
    )


def load_amazon(
    family: str,
    category: str,
    data_home: str | Path | None = None,
    *,
    download: bool = False,
    kcore: int | None = None,
    errors: str = "raise",
    verify: bool = True,
    drop_copies: bool | None = None,
) -> ReviewDataset:
    """Load one Amazon 5-core category.

    Args:
        family: "amazon" (2014 release) or "amazon2018".
        category: e.g. "Musical_Instruments" (2014) or "All_Beauty" (2018).
        data_home: see ``registry.get_data_home``.
        download: fetch a missing registered file from the publisher.
        kcore: keep only the k-core after deduplication.
        errors: "raise" (stop at the first bad line) or "drop" (drop and count bad lines).
        verify: check the file's hash against the registry.
        drop_copies: drop a user's reviews that repeat one of their earlier reviews (same text, same
            time) under another item id, counted in ``report.dropped["copied_review"]``. Default: on
            for "amazon2018", whose 5-core files repeat each review under every sibling variant of a
            product (All_Beauty: 2,812 of 4,092 cleaned rows are such copies, AMAZON_FASHION 2,604
            of 3,042); off for the 2014 release (2 copies in Musical Instruments).
    """
    check_errors_option(errors)
    category = resolve_category(family, category)
    path = locate(family, category, data_home, download, verify)
    report = CleaningReport(source=str(path))
    fields = FIELDS_2014 if family == "amazon" else FIELDS_2018
    df = read_json_lines_frame(path, fields, report, errors, _DTYPES)
    if drop_copies is None:
        drop_copies = family == "amazon2018"
    df = finalize(df, report, kcore=kcore, text_columns=_TEXT_COLUMNS, drop_copies=bool(drop_copies))
    assert df[ORDER_COL].is_monotonic_increasing
    return ReviewDataset(name=f"{family}:{category}", interactions=df, items=None, report=report)
