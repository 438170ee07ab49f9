"""Shared pytest fixtures.

- ``shared_data``: the real data folder from $TEXTINTEREST_DATA (tests using it skip when unset).
- ``write_lines``: write text/bytes/dict lines to a file, gzipped when the name ends in ".gz".
- ``make_review``: made-up review records in each source schema (no real data is copied here).
- ``tiny_home``: a data home holding small made-up files in every source format.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def shared_data() -> Path:
    """The shared real-data folder, or skip the test."""
    value = os.environ.get("TEXTINTEREST_DATA")
    if not value:
        pytest.skip("TEXTINTEREST_DATA is not set: real-data test skipped")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"TEXTINTEREST_DATA={value} is not a folder: real-data test skipped")
    return path


def _write_lines(path: Path, lines: list[Any], *, trailing_newline: bool = True) -> Path:
    """Write lines (dict -> JSON, str -> UTF-8, bytes as is) joined by "\\n"; gzip when path ends in .gz."""
    parts = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        parts.append(line.encode("utf-8") if isinstance(line, str) else line)
    data = b"\n".join(parts) + (b"\n" if trailing_newline and parts else b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


@pytest.fixture
def write_lines() -> Callable[..., Path]:
    """``write_lines(path, lines, trailing_newline=True) -> path``."""
    return _write_lines


def _amazon2014(i: int = 0, **overrides: Any) -> dict:
    record = {
        "reviewerID": f"AUSER{i % 3}",
        "asin": f"B00ITEM{i % 4}",
        "reviewerName": f"Tester {i}",
        "helpful": [i % 2, 2],
        "reviewText": f"Made-up review number {i}. The widget works as described.",
        "overall": float(1 + i % 5),
        "summary": f"Summary {i}",
        "unixReviewTime": 1300000000 + 86400 * i,
        "reviewTime": "01 1, 2011",
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not _DELETE}


def _amazon2018(i: int = 0, **overrides: Any) -> dict:
    record = {
        "overall": float(1 + i % 5),
        "vote": str(i),
        "verified": bool(i % 2),
        "reviewTime": "01 1, 2015",
        "reviewerID": f"AUSER{i % 3}",
        "asin": f"B00ITEM{i % 4}",
        "style": {"Size:": " Small"},
        "reviewerName": f"Tester {i}",
        "reviewText": f"Made-up 2018 review {i}.",
        "summary": f"Title {i}",
        "unixReviewTime": 1420070400 + 86400 * i,
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not _DELETE}


def _goodreads(i: int = 0, **overrides: Any) -> dict:
    record = {
        "user_id": f"{i % 3:032x}",
        "book_id": str(1000 + i % 4),
        "review_id": f"{1000 + i:032x}",
        "rating": 1 + i % 5,
        "review_text": f"Invented book review {i}. \n Second paragraph.",
        "date_added": "Wed Jan 13 13:38:25 -0800 2010",
        "date_updated": "Wed Jan 13 13:38:25 -0800 2010",
        "read_at": "",
        "started_at": "",
        "n_votes": i,
        "n_comments": 0,
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not _DELETE}


_DELETE = object()


class _ReviewFactory:
    """``make_review.amazon2014(i, **overrides)`` etc.; ``make_review.DELETE`` removes a key."""

    DELETE = _DELETE
    amazon2014 = staticmethod(_amazon2014)
    amazon2018 = staticmethod(_amazon2018)
    goodreads = staticmethod(_goodreads)


@pytest.fixture
def make_review() -> _ReviewFactory:
    """Factories of made-up records in each source schema."""
    return _ReviewFactory()


YELP_HEADER = "business_id,date,review_id,stars,text,type,user_id,cool,useful,funny"


def yelp_csv(rows: list[str], header: str = YELP_HEADER) -> bytes:
    """CSV bytes from a header and raw CSV row strings."""
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


def write_yelp_zip(path: Path, csv_bytes: bytes) -> Path:
    """Write ``csv_bytes`` as member yelp.csv of a zip archive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("yelp.csv", csv_bytes)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def yelp_files() -> Any:
    """Helpers: ``.csv(rows, header=...) -> bytes``, ``.write_zip(path, bytes)``, ``.HEADER``."""

    class _Yelp:
        HEADER = YELP_HEADER
        csv = staticmethod(yelp_csv)
        write_zip = staticmethod(write_yelp_zip)

    return _Yelp()


ML_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def movielens_files(n_users: int = 4, n_items: int = 3) -> dict[str, bytes]:
    """Made-up ml-100k style files: u.data (every user rates every item), u.item (Latin-1), u.genre."""
    data_lines = []
    for u in range(1, n_users + 1):
        for i in range(1, n_items + 1):
            data_lines.append(f"{u}\t{i}\t{1 + (u + i) % 5}\t{880000000 + 1000 * u + i}")
    item_lines = []
    for i in range(1, n_items + 1):
        flags = ["0"] * 19
        flags[(i % 18) + 1] = "1"
        flags[5] = "1"  # Comedy
        title = f"Caf\xe9 Movie {i} (1995)" if i == 1 else f"Movie {i} (1996)"
        item_lines.append("|".join([str(i), title, "01-Jan-1995", "", "http://example.org/m", *flags]))
    genre = "\n".join(f"{g}|{k}" for k, g in enumerate(ML_GENRES)) + "\n\n"
    return {
        "u.data": ("\n".join(data_lines) + "\n").encode("ascii"),
        "u.item": ("\n".join(item_lines) + "\n").encode("latin-1"),
        "u.genre": genre.encode("ascii"),
    }


@pytest.fixture
def ml_files() -> Callable[..., dict[str, bytes]]:
    """``ml_files(n_users=4, n_items=3) -> {"u.data": bytes, "u.item": bytes, "u.genre": bytes}``."""
    return movielens_files


@pytest.fixture
def tiny_home(tmp_path: Path) -> Path:
    """A data home with small made-up files in every source format (hashes do not match the registry:
    load them with ``verify=False``)."""
    home = tmp_path / "home"
    _write_lines(home / "amazon2014/reviews_Musical_Instruments_5.json.gz", [_amazon2014(i) for i in range(12)])
    _write_lines(home / "amazon2018/All_Beauty_5.json.gz", [_amazon2018(i) for i in range(12)])
    _write_lines(home / "goodreads/young_adult_10000.json.gz", [_goodreads(i) for i in range(12)])
    rows = [
        f'b{i % 4},2012-03-0{1 + i % 9},r{i},{1 + i % 5},"Text {i}\nwith a second line",review,u{i % 3},0,1,2'
        for i in range(12)
    ]
    write_yelp_zip(home / "yelp/yelp.csv.zip", yelp_csv(rows))
    for name, data in movielens_files().items():
        target = home / "movielens/ml-100k" / f"{name}.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(data, mtime=0))
    return home
