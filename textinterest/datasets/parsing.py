"""Reading records from source files and validating their fields.
(Above 500 lines on purpose: one field schema and one error policy, the same for every source format.)

A loader describes its source schema as a list of ``Field``s; ``parse_records`` turns records into
columns, applying the error policy: ``errors="raise"`` stops at the first bad record with a
``DataFormatError`` naming the file, the 1-based line and the field; ``errors="drop"`` drops the
record and counts it in ``CleaningReport.dropped`` under its reason. Reasons:

- ``"non_utf8"``: the record's bytes are not valid UTF-8;
- ``"malformed_json"`` / ``"malformed_csv"`` / ``"malformed_line"``: the record cannot be parsed;
- ``"missing_field:<name>"``: a required field is absent, null or empty;
- ``"bad_value:<name>"``: a field has the wrong type or is out of range (timestamps must lie in
  1990-2100: milliseconds and absurd values are bad values, not dates centuries away).

An empty file (no records at all) and a file where no record survives raise in both modes.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textinterest.datasets.base import CleaningReport, DataFormatError

ERRORS = ("raise", "drop")
MISSING_PREFIX = "_missing:"  # boolean helper columns: the optional field was absent in the source
_MISSING = object()

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def check_errors_option(errors: str) -> str:
    """Validate the ``errors`` option ("raise" or "drop")."""
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, got {errors!r}")
    return errors


class ErrorPolicy:
    """Raise or count a bad record, per the ``errors`` option.

    Args:
        source: file name shown in messages.
        errors: "raise" or "drop".
        report: the report whose ``dropped`` counter receives dropped records.
    """

    def __init__(self, source: str, errors: str, report: CleaningReport) -> None:
        self.source = source
        self.errors = check_errors_option(errors)
        self.report = report

    def bad(self, line: int, reason: str, detail: str, field: str | None = None) -> None:
        """Handle one bad record at 1-based ``line``: raise, or count it under ``reason``."""
        if self.errors == "raise":
            where = f"{self.source}, line {line}" + (f", field {field!r}" if field else "")
            raise DataFormatError(
                f"{where}: {detail} (errors='drop', or --errors drop on the command line, drops such records "
                "and counts them)",
                path=self.source,
                line=line,
                field=field,
                reason=reason,
            )
        self.report.add("dropped", reason)


# ---------------------------------------------------------------------------------------------
# Reading bytes


def read_bytes(path: str | Path, member: str | None = None) -> bytes:
    """The decompressed bytes of a file: gzip is detected by its magic number, a zip needs ``member``.

    Args:
        path: the file.
        member: for a zip archive, the member to read (e.g. ``"yelp.csv"``); when None and the
            archive holds exactly one file, that file.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if path.suffix == ".gz" and magic[:2] != b"\x1f\x8b":
        raise DataFormatError(
            f"{path}: not a gzip file (it does not start with the gzip signature 1f 8b); "
            "the file is corrupted or was saved under the wrong name",
            path=str(path),
            reason="not_gzip",
        )
    try:
        if magic[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        if magic == b"PK\x03\x04":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                if member is None:
                    if len(names) != 1:
                        raise DataFormatError(
                            f"{path}: expected one file in the zip archive, found {names}", path=str(path)
                        )
                    member = names[0]
                if member not in names:
                    raise DataFormatError(
                        f"{path}: the zip archive has no member {member!r} (it has {names})", path=str(path)
                    )
                return zf.read(member)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"{path}: cannot decompress: {exc}", path=str(path)) from exc
    with open(path, "rb") as fh:
        return fh.read()


def check_not_empty(data: bytes, source: str) -> None:
    """Raise ``DataFormatError`` when the (decompressed) content holds no record at all."""
    if not data.strip():
        raise DataFormatError(f"{source}: the file is empty (no records)", path=source, reason="empty_file")


def _decode_lines(data: bytes, policy: ErrorPolicy) -> Iterator[tuple[int, str | None]]:
    """Yield (1-based line, text or None when not UTF-8) for each line; records never span lines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for i, raw in enumerate(data.split(b"\n"), start=1):
            try:
                yield i, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                policy.bad(
                    i, "non_utf8", f"bytes that are not UTF-8 at offset {exc.start}: {raw[exc.start : exc.start + 8]!r}"
                )
                yield i, None
        return
    # split on "\n" only: str.splitlines would also break on \x1c-\x1e, \x85 and \u2028 inside texts
    yield from enumerate(text.split("\n"), start=1)


def iter_json_lines(data: bytes, policy: ErrorPolicy) -> Iterator[tuple[int, int, dict]]:
    """Yield (0-based record index, 1-based line, object) from JSON-lines bytes.

    Blank lines are not records: those before the last record are counted in
    ``dropped["blank_line"]``; the final newline is expected. The record index counts every
    non-blank line, bad ones included, so it equals the position in the source file.
    """
    index = -1
    pending_blank = 0
    for line, text in _decode_lines(data, policy):
        if text is None:
            index += 1
            policy.report.n_read += 1
            continue
        if not text.strip():
            pending_blank += 1
            continue
        policy.report.add("dropped", "blank_line", pending_blank)
        pending_blank = 0
        index += 1
        policy.report.n_read += 1
        try:
            obj = json.loads(text)
        except ValueError as exc:
            policy.bad(line, "malformed_json", f"not valid JSON ({exc})")
            continue
        if not isinstance(obj, dict):
            policy.bad(line, "malformed_json", f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield index, line, obj


_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by "surrogateescape"


def iter_csv_records(
    data: bytes, policy: ErrorPolicy, required_columns: Iterable[str]
) -> Iterator[tuple[int, int, dict]]:
    """Yield (0-based record index, 1-based first line, row dict) from CSV bytes with a header.

    Quoted fields may span lines; the line reported is the record's first physical line.
    """
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        header = []
    missing = [c for c in required_columns if c not in header]
    if missing:
        raise DataFormatError(
            f"{policy.source}, line 1: the header lacks column(s) {missing} (header: {header})",
            path=policy.source,
            line=1,
            field=missing[0],
            reason=f"missing_field:{missing[0]}",
        )
    n_cols = len(header)
    index = -1
    last_line = reader.line_num
    while True:
        first_line = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            last_line = reader.line_num
            index += 1
            policy.report.n_read += 1
            policy.bad(first_line, "malformed_csv", f"cannot parse the CSV record ({exc})")
            continue
        last_line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            policy.report.add("dropped", "blank_line")
            continue
        index += 1
        policy.report.n_read += 1
        if any(_SURROGATE.search(value) for value in row):
            policy.bad(first_line, "non_utf8", "bytes that are not UTF-8")
            continue
        if len(row) != n_cols:
            policy.bad(first_line, "malformed_csv", f"expected {n_cols} fields, found {len(row)}")
            continue
        yield index, first_line, dict(zip(header, row))


# ---------------------------------------------------------------------------------------------
# Field schema and converters (each converter raises ValueError with a short explanation)


@dataclass(frozen=True)
class Field:
    """One source field and how it becomes column(s).

    Args:
        key: name in the source record.
        columns: target column name(s); a converter returning a tuple fills several columns.
        convert: value -> converted value (raises ValueError when the value is bad).
        required: a record without it (absent, null or "") is bad ("missing_field:<key>").
        default: value(s) used when an optional field is absent.
        flag_missing: mark rows lacking this optional field in a boolean column ``"_missing:<key>"``;
            cleaning counts the kept ones in ``report.flagged["missing:<key>"]`` and removes the column.
    """

    key: str
    columns: tuple[str, ...]
    convert: Callable[[Any], Any]
    required: bool = False
    default: Any = None
    flag_missing: bool = False


def to_id(value: Any) -> str:
    """An identifier: a non-empty string (stripped) or an integer, returned as str."""
    if isinstance(value, str):
        value = value.strip()
        if value:
            return value
        raise ValueError("empty identifier")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string identifier, got {value!r}")


def _number(value: Any, *, integral: bool = False) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float range
        finite = False
    if not finite:
        raise ValueError(
            "expected a finite number, got "
            + ("an integer too large for a float" if isinstance(value, int) else repr(value))
        )
    if integral and float(value) != int(value):
        raise ValueError(f"expected a whole number, got {value!r}")
    return float(value)


def rating_converter(
    low: float, high: float, *, strings: bool = False, integral: bool = False
) -> Callable[[Any], float]:
    """A converter to a float rating in [low, high].

    Args:
        low, high: inclusive range.
        strings: accept numbers written as strings (CSV sources); JSON sources must give numbers.
        integral: require a whole number.
    """

    def convert(value: Any) -> float:
        if isinstance(value, str) and not strings:
            raise ValueError(f"expected a number, got the string {value!r}")
        x = _number(value, integral=integral)
        if not low <= x <= high:
            raise ValueError(f"rating {value!r} is outside {low:g}-{high:g}")
        return x

    return convert


def int_converter(*, strings: bool = False, minimum: int | None = 0) -> Callable[[Any], int]:
    """A converter to int (whole numbers only; strings allowed when ``strings``)."""

    def convert(value: Any) -> int:
        if isinstance(value, str) and not strings:
            raise ValueError(f"expected an integer, got the string {value!r}")
        x = int(_number(value, integral=True))
        if minimum is not None and x < minimum:
            raise ValueError(f"expected an integer >= {minimum}, got {value!r}")
        return x

    return convert


def to_str(value: Any) -> str:
    """A text field: must be a string."""
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__} {value!r:.40}")


def to_bool(value: Any) -> bool:
    """A JSON boolean."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


_VOTE = re.compile(r"\d{1,3}(,\d{3})+|\d+")


def to_vote_count(value: Any) -> int:
    """A vote count given as an int or as a string with optional thousands separators ("1,234")."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"negative vote count {value!r}")
        return value
    if isinstance(value, str) and _VOTE.fullmatch(value.strip()):
        return int(value.strip().replace(",", ""))
    raise ValueError(f'expected a vote count such as "12" or "1,234", got {value!r}')


def to_helpful(value: Any) -> tuple[int, int]:
    """Amazon 2014 ``helpful``: [helpful votes, total votes], both non-negative integers."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return value[0], value[1]
    raise ValueError(f"expected [helpful votes, total votes], got {value!r}")


def to_json_string(value: Any) -> str:
    """A JSON object kept as a compact, key-sorted JSON string."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    raise ValueError(f"expected a JSON object, got {value!r:.40}")


#: timestamps (UTC seconds) outside [TIME_MIN, TIME_MAX) are not review times: 1990-01-01 to 2100-12-31
TIME_MIN = int(datetime(1990, 1, 1, tzinfo=timezone.utc).timestamp())
TIME_MAX = int(datetime(2101, 1, 1, tzinfo=timezone.utc).timestamp())


def check_time_range(seconds: float, value: Any) -> int:
    """Return ``seconds`` as int when it lies in 1990-2100; else raise ValueError saying why.

    Milliseconds (a value 1000 times too large for the range) and absurd magnitudes (which would
    overflow a date) get their own explanation.

    Args:
        seconds: the timestamp in UTC seconds.
        value: the source value, quoted in the message.
    """
    if TIME_MIN <= seconds < TIME_MAX:
        return int(seconds)
    if TIME_MIN <= seconds / 1000 < TIME_MAX:
        raise ValueError(f"timestamp {value!r} looks like milliseconds; expected Unix seconds between 1990 and 2100")
    unit = "" if isinstance(value, str) else " (expected Unix seconds)"
    raise ValueError(f"timestamp {value!r} is outside 1990-2100{unit}")


def unix_seconds(value: Any) -> int:
    """A Unix timestamp in whole seconds (int, or a float with no fraction) between 1990 and 2100."""
    if isinstance(value, str):
        raise ValueError(f"expected an integer timestamp, got the string {value!r}")
    return check_time_range(_number(value, integral=True), value)


def datetime_converter(fmt: str) -> Callable[[Any], int]:
    """A converter from a date string in ``fmt`` to UTC Unix seconds (naive dates are taken as UTC), 1990-2100."""

    def convert(value: Any) -> int:
        if not isinstance(value, str):
            raise ValueError(f"expected a date string, got {value!r}")
        try:
            dt = datetime.strptime(value.strip(), fmt)
        except ValueError:
            raise ValueError(f"expected a date like {fmt!r}, got {value!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return check_time_range(dt.timestamp(), value)

    return convert


def parse_records(
    records: Iterable[tuple[int, int, dict]],
    fields: list[Field],
    policy: ErrorPolicy,
    order_column: str,
) -> dict[str, list]:
    """Convert records to columns, applying the error policy.

    Args:
        records: (0-based record index, 1-based line, mapping) triples.
        fields: the schema.
        policy: what to do with a bad record.
        order_column: column that receives the record index.

    Returns:
        Column name -> list of values, one per valid record, plus a boolean column
        ``"_missing:<key>"`` for each optional field with ``flag_missing``.
    """
    columns: dict[str, list] = {c: [] for f in fields for c in f.columns}
    columns[order_column] = []
    flagged_keys = [f.key for f in fields if f.flag_missing and not f.required]
    for key in flagged_keys:
        columns[f"{MISSING_PREFIX}{key}"] = []
    for index, line, record in records:
        values: list[tuple[Field, Any]] = []
        missing_flags: list[str] = []
        ok = True
        for f in fields:
            raw = record.get(f.key, _MISSING)
            if raw is _MISSING or raw is None or (f.required and isinstance(raw, str) and not raw.strip()):
                if f.required:
                    what = "absent" if raw is _MISSING else ("null" if raw is None else "empty")
                    policy.bad(line, f"missing_field:{f.key}", f"required field {f.key!r} is {what}", f.key)
                    ok = False
                    break
                if f.flag_missing:
                    missing_flags.append(f.key)
                values.append((f, f.default))
                continue
            try:
                values.append((f, f.convert(raw)))
            except ValueError as exc:
                policy.bad(line, f"bad_value:{f.key}", str(exc), f.key)
                ok = False
                break
        if not ok:
            continue
        for f, value in values:
            if len(f.columns) == 1:
                columns[f.columns[0]].append(value)
            else:
                for column, v in zip(f.columns, value):
                    columns[column].append(v)
        columns[order_column].append(index)
        for key in flagged_keys:
            columns[f"{MISSING_PREFIX}{key}"].append(key in missing_flags)
    if not columns[order_column]:
        raise DataFormatError(
            f"{policy.source}: no valid record among {policy.report.n_read:,} read "
            f"(dropped: {dict(policy.report.dropped)})",
            path=policy.source,
            reason="no_valid_records",
        )
    return columns


#: dtypes of the canonical columns
CANONICAL_DTYPES = {
    "user_id": "str",
    "item_id": "str",
    "rating": "float64",
    "timestamp": "int64",
    "text": "str",
    "summary": "str",
    "source_order": "int64",
}


def make_frame(columns: dict[str, list], dtypes: dict[str, str] | None = None) -> pd.DataFrame:
    """Build a DataFrame from parsed columns: canonical columns first (with their dtypes), then extras.

    Args:
        columns: column name -> values. Missing canonical ``text``/``summary`` columns are added as "".
        dtypes: dtypes of extra columns (others are inferred).
    """
    import pandas as pd

    n = len(columns["source_order"])
    dtypes = {**CANONICAL_DTYPES, **(dtypes or {})}
    data = dict(columns)
    for column in ("text", "summary"):
        data.setdefault(column, [""] * n)
    order = [c for c in CANONICAL_DTYPES if c in data] + [c for c in data if c not in CANONICAL_DTYPES]
    return pd.DataFrame({c: pd.Series(data[c], dtype=dtypes.get(c)) for c in order})


def read_json_lines_frame(
    path: str | Path,
    fields: list[Field],
    report: CleaningReport,
    errors: str = "raise",
    dtypes: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read a (gzipped) JSON-lines file into a DataFrame, validating each record against ``fields``.

    Args:
        path: the file (gzip detected by content).
        fields: the schema.
        report: receives ``n_read`` and drops.
        errors: "raise" or "drop".
        dtypes: dtypes of extra columns.
    """
    source = str(path)
    policy = ErrorPolicy(source, errors, report)
    data = read_bytes(path)
    check_not_empty(data, source)
    columns = parse_records(iter_json_lines(data, policy), fields, policy, "source_order")
    return make_frame(columns, dtypes)
