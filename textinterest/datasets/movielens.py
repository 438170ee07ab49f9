"""MovieLens 100K ("movielens:100k"): ratings only (no review text) plus movie titles and genres.

Accepted layouts in the data home, tried in this order:

1. ``movielens/ml-100k/u.data.gz`` and ``u.item.gz`` (each file gzipped on its own);
2. ``movielens/ml-100k/u.data`` and ``u.item`` (the publisher's zip, extracted);
3. ``movielens/ml-100k.zip`` (the publisher's archive, members ``ml-100k/u.data`` ...).

Every file read is checked against the sha256 of the original file (or of its ``.gz``), and the zip
against the publisher's md5. ``download=True`` fetches the zip from GroupLens.

``u.data`` is tab-separated (user, item, rating 1-5, timestamp); ``u.item`` is ``|``-separated and
encoded in Latin-1. Interactions have text "" and summary "". The item table has ``item_id``,
``item_text`` ("Toy Story (1995). Genres: Animation, Children's, Comedy"), ``title``, ``genres``
(comma-separated) and ``release_date`` (as written, e.g. "01-Jan-1995"; "" when unknown).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from textinterest.constants import ITEM_COL, ITEM_TEXT_COL, ORDER_COL, RATING_COL, TIME_COL, USER_COL
from textinterest.datasets.base import (
    ChecksumMismatchError,
    CleaningReport,
    DataFormatError,
    DataNotFoundError,
    ReviewDataset,
    UnknownDatasetError,
)
from textinterest.datasets.cleaning import finalize
from textinterest.datasets.parsing import (
    ErrorPolicy,
    check_errors_option,
    check_not_empty,
    check_time_range,
    int_converter,
    make_frame,
    rating_converter,
    read_bytes,
    to_id,
)
from textinterest.datasets.registry import (
    REGISTRY,
    candidate_paths,
    fetch_file,
    find_local,
    get_data_home,
    not_found_message,
    verify_file,
)

FOLDER = "movielens/ml-100k"
ZIP_KEY = "movielens/ml-100k.zip"
GENRES = (
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
)
_RATING = rating_converter(1.0, 5.0, strings=True, integral=True)
_SECONDS = int_converter(strings=True)


def _to_timestamp(value: str) -> int:
    """Unix seconds between 1990 and 2100, written as digits."""
    return check_time_range(_SECONDS(value), value)


def _sources(data_home: str | Path | None, download: bool, verify: bool) -> tuple[Callable[[str], bytes], str]:
    """A reader ``name -> decompressed bytes`` for the first layout found, and a description of it."""
    gz_keys = [f"{FOLDER}/{name}.gz" for name in ("u.data", "u.item")]
    if all(find_local(k, data_home) is not None for k in gz_keys):

        def read_folder(name: str) -> bytes:
            return read_bytes(fetch_file(f"{FOLDER}/{name}.gz", data_home, verify=verify))

        return read_folder, str(get_data_home(data_home) / FOLDER)

    zip_path = find_local(ZIP_KEY, data_home)
    if zip_path is None and download:
        zip_path = fetch_file(ZIP_KEY, data_home, download=True)
    if zip_path is not None and zip_path.is_file():
        if verify:
            verify_file(zip_path, REGISTRY[ZIP_KEY])

        def read_zip(name: str) -> bytes:
            member = f"ml-100k/{name}"
            with zipfile.ZipFile(zip_path) as zf:
                if member not in zf.namelist():
                    raise DataFormatError(f"{zip_path}: the archive has no member {member!r}", path=str(zip_path))
                data = zf.read(member)
            expected = REGISTRY[f"{FOLDER}/{name}.gz"].content_sha256
            if verify and hashlib.sha256(data).hexdigest() != expected:
                raise ChecksumMismatchError(
                    f"{zip_path}: member {member} does not match the registry's sha256 {expected}; "
                    "delete the archive and download it again (download=True, or --download on the command "
                    "line), or use it anyway with verify=False (--no-verify on the command line)."
                )
            return data

        return read_zip, str(zip_path)

    looked = [p for k in gz_keys for p in candidate_paths(k, data_home)] + [get_data_home(data_home) / ZIP_KEY]
    raise DataNotFoundError(
        not_found_message(
            [ZIP_KEY],
            data_home,
            what="MovieLens 100K (u.data and u.item)",
            looked=looked,
            extra="Any of these layouts works: the .gz files, the plain files, or the publisher's zip.",
        )
    )


def _parse_ratings(data: bytes, source: str, policy: ErrorPolicy) -> dict[str, list]:
    check_not_empty(data, source)
    columns: dict[str, list] = {USER_COL: [], ITEM_COL: [], RATING_COL: [], TIME_COL: [], ORDER_COL: []}
    names = (USER_COL, ITEM_COL, RATING_COL, TIME_COL)
    converters = (to_id, to_id, _RATING, _to_timestamp)
    index = -1
    for line, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        index += 1
        policy.report.n_read += 1
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            policy.bad(line, "non_utf8", "non-ASCII bytes in a numeric file")
            continue
        parts = text.strip().split("\t")
        if len(parts) != 4:
            policy.bad(line, "malformed_line", f"expected 4 tab-separated fields, found {len(parts)}")
            continue
        values = []
        for name, convert, value in zip(names, converters, parts):
            try:
                values.append(convert(value))
            except ValueError as exc:
                policy.bad(line, f"bad_value:{name}", str(exc), name)
                break
        else:
            for name, value in zip(names, values):
                columns[name].append(value)
            columns[ORDER_COL].append(index)
    if not columns[ORDER_COL]:
        raise DataFormatError(f"{source}: no valid rating among {policy.report.n_read:,} lines", path=source)
    return columns


def _parse_items(data: bytes, source: str, genre_names: tuple[str, ...]) -> pd.DataFrame:
    check_not_empty(data, source)
    rows = []
    n_fields = 5 + len(genre_names)
    for line, raw in enumerate(data.decode("latin-1").split("\n"), start=1):
        if not raw.strip():
            continue
        parts = raw.rstrip("\r").split("|")
        if len(parts) != n_fields or not parts[0].strip().isdigit():
            raise DataFormatError(
                f"{source}, line {line}: expected {n_fields} '|'-separated fields starting with the item id, "
                f"found {len(parts)}",
                path=source,
                line=line,
                reason="malformed_line",
            )
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataFormatError(
                f"{source}, line {line}: genre flags must be 0 or 1",
                path=source,
                line=line,
                field="genres",
                reason="bad_value:genres",
            )
        title = parts[1].strip()
        genres = [g for g, f in zip(genre_names, flags) if f == "1"]
        rows.append(
            {
                ITEM_COL: parts[0].strip(),
                ITEM_TEXT_COL: f"{title}. Genres: {', '.join(genres) if genres else 'unknown'}",
                "title": title,
                "genres": ", ".join(genres),
                "release_date": parts[2].strip(),
            }
        )
    items = pd.DataFrame(rows, columns=[ITEM_COL, ITEM_TEXT_COL, "title", "genres", "release_date"]).astype("str")
    if items[ITEM_COL].duplicated().any():
        dup = items.loc[items[ITEM_COL].duplicated(), ITEM_COL].iloc[0]
        raise DataFormatError(f"{source}: item id {dup} occurs twice", path=source, field="item id")
    return items


def _genre_names(read: Callable[[str], bytes]) -> tuple[str, ...]:
    """Genre names from u.genre (name|index lines) when readable, else the published list."""
    try:
        text = read("u.genre").decode("latin-1")
    except (DataNotFoundError, DataFormatError, KeyError):
        return GENRES
    pairs = [line.split("|") for line in text.split("\n") if line.strip()]
    try:
        names = {int(i): n for n, i in pairs}
        return tuple(names[i] for i in range(len(names)))
    except (ValueError, KeyError):
        raise DataFormatError("u.genre: expected 'name|index' lines") from None


def load_movielens(
    variant: str = "100k",
    data_home: str | Path | None = None,
    *,
    download: bool = False,
    kcore: int | None = None,
    errors: str = "raise",
    verify: bool = True,
) -> ReviewDataset:
    """Load MovieLens 100K ratings and the movie table.

    Args:
        variant: only "100k".
        data_home: see ``registry.get_data_home``.
        download: fetch the publisher's zip when no layout is found.
        kcore: keep only the k-core (the item table then keeps only the remaining items).
        errors: "raise" or "drop" for bad lines of ``u.data`` (``u.item`` must be well formed).
        verify: check every file against the registry's hashes.
    """
    check_errors_option(errors)
    if variant != "100k":
        raise UnknownDatasetError(f"unknown MovieLens variant {variant!r}; known: ('100k',)")
    read, where = _sources(data_home, download, verify)
    source = f"{where} (u.data, u.item)"
    report = CleaningReport(source=source)
    policy = ErrorPolicy(f"{where}/u.data", errors, report)
    columns = _parse_ratings(read("u.data"), f"{where}/u.data", policy)
    df = finalize(make_frame(columns), report, kcore=kcore, text_columns=(), flag_empty_text=False)
    items = _parse_items(read("u.item"), f"{where}/u.item", _genre_names(read))
    unknown = ~df[ITEM_COL].isin(items[ITEM_COL])
    if unknown.any():
        report.add("flagged", "item_not_in_u.item", int(unknown.sum()))
    if kcore is not None:
        items = items.loc[items[ITEM_COL].isin(df[ITEM_COL])].reset_index(drop=True)
    return ReviewDataset(name=f"movielens:{variant}", interactions=df, items=items, report=report)
