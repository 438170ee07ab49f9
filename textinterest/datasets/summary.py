"""``dataset_summary``: the numbers that describe a loaded data set, as plain JSON-ready values."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import numpy as np

from textinterest.constants import ITEM_COL, RATING_COL, RATING_SCALE, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets.base import ReviewDataset


def _iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dataset_summary(ds: ReviewDataset) -> dict[str, Any]:
    """Describe a dataset with plain ints, floats, strings, lists and dicts (JSON-serializable).

    Args:
        ds: a loaded dataset.

    Returns:
        ``name``, ``n_reviews``, ``n_users``, ``n_items``, ``n_items_with_metadata`` (None without an
        item table), ``n_rated``, ``n_unrated``, ``time_min``/``time_max`` (Unix seconds) and
        ``date_min``/``date_max`` (ISO 8601, UTC), ``rating_histogram`` (keys "1.0" ... "5.0", any other
        rating value seen, and "unrated"), ``mean_rating``, ``n_empty_text``, ``mean_text_length``
        (characters), ``reviews_per_user`` (min/median/max) and ``report`` (the cleaning report).
        Statistics of an empty table are None.
    """
    df = ds.interactions
    n = len(df)
    ratings = df[RATING_COL].to_numpy(dtype=float)
    rated = ~np.isnan(ratings)
    values, counts = np.unique(ratings[rated], return_counts=True)
    histogram = {str(float(v)): 0 for v in np.arange(RATING_SCALE[0], RATING_SCALE[1] + 1)}
    histogram.update({str(float(v)): int(c) for v, c in zip(values, counts)})
    histogram = dict(sorted(histogram.items(), key=lambda kv: float(kv[0])))
    histogram["unrated"] = int((~rated).sum())
    times = df[TIME_COL].to_numpy()
    text_len = df[TEXT_COL].str.len().to_numpy(dtype=float) if n else np.array([])
    per_user = df.groupby(USER_COL).size().to_numpy() if n else np.array([], dtype=int)
    t_min = int(times.min()) if n else None
    t_max = int(times.max()) if n else None
    summary = {
        "name": ds.name,
        "n_reviews": int(n),
        "n_users": int(df[USER_COL].nunique()),
        "n_items": int(df[ITEM_COL].nunique()),
        "n_items_with_metadata": None if ds.items is None else int(len(ds.items)),
        "n_rated": int(rated.sum()),
        "n_unrated": int((~rated).sum()),
        "time_min": t_min,
        "time_max": t_max,
        "date_min": _iso(t_min),
        "date_max": _iso(t_max),
        "rating_histogram": histogram,
        "mean_rating": float(ratings[rated].mean()) if rated.any() else None,
        "n_empty_text": int((df[TEXT_COL] == "").sum()),
        "mean_text_length": float(text_len.mean()) if n else None,
        "reviews_per_user": {
            "min": int(per_user.min()) if n else None,
            "median": float(np.median(per_user)) if n else None,
            "max": int(per_user.max()) if n else None,
        },
        "report": ds.report.to_dict(),
    }
    for key in ("mean_rating", "mean_text_length"):
        if summary[key] is not None and not math.isfinite(summary[key]):
            summary[key] = None
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A readable multi-line rendering of ``dataset_summary``'s result."""
    lines = [
        f"{summary['name']}: {summary['n_reviews']:,} reviews, {summary['n_users']:,} users, "
        f"{summary['n_items']:,} items",
        f"time: {summary['date_min']} .. {summary['date_max']}",
        "ratings: " + ", ".join(f"{k}: {v:,}" for k, v in summary["rating_histogram"].items()),
        f"empty texts: {summary['n_empty_text']:,}; mean text length: "
        + ("n/a" if summary["mean_text_length"] is None else f"{summary['mean_text_length']:.1f} characters"),
        "cleaning report:",
    ]
    report = summary["report"]
    lines.append(f"  read {report['n_read']:,}, kept {report['n_kept']:,}")
    for kind in ("dropped", "changed", "flagged"):
        for reason, count in report[kind].items():
            lines.append(f"  {kind} {reason}: {count:,}")
    return "\n".join(lines)


def cmd_data_summary(args: Any) -> int:
    """CLI: ``textinterest data summary NAME [--json] [--data-home DIR] [--download] [--kcore K]``.

    Args:
        args: an argparse namespace with ``name`` and optionally ``json``, ``data_home``,
            ``download``, ``kcore``, ``errors``.

    Returns:
        0 on success, 2 when the data is missing, unknown or malformed (the message goes to stderr).
    """
    import sys

    from textinterest.datasets.api import load_dataset
    from textinterest.datasets.base import ChecksumMismatchError, DataFormatError, DataNotFoundError

    options = {}
    if getattr(args, "errors", None):
        options["errors"] = args.errors
    try:
        ds = load_dataset(
            args.name,
            getattr(args, "data_home", None),
            download=bool(getattr(args, "download", False)),
            kcore=getattr(args, "kcore", None),
            **options,
        )
    except (DataNotFoundError, DataFormatError, ChecksumMismatchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = dataset_summary(ds)
    print(json.dumps(summary, indent=2) if getattr(args, "json", False) else format_summary(summary))
    return 0
