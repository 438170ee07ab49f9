"""Core types of the data layer: the dataset container, the cleaning report and the errors.

Everything here is light (pandas only as a type); loaders, cleaning and the registry build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class DataNotFoundError(FileNotFoundError):
    """A data file is not on disk (and was not, or could not be, downloaded).

    The message names the file, every place looked, the publisher's URL and how to get it.
    """


class DataFormatError(ValueError):
    """A source file does not have the expected format.

    Args:
        message: human-readable explanation.
        path: the file that was read.
        line: 1-based line number of the offending record (None when it concerns the whole file).
        field: the offending field (None when it concerns the whole record or file).
        reason: short machine-readable reason, the key used in ``CleaningReport.dropped``
            when ``errors="drop"`` (e.g. ``"malformed_json"``, ``"bad_value:overall"``).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field
        self.reason = reason


class ChecksumMismatchError(ValueError):
    """A data file's hash differs from the one in the registry (truncated, corrupted or another version)."""


class UnknownDatasetError(ValueError):
    """A dataset name that ``load_dataset`` does not know; the message lists the known names."""


@dataclass
class CleaningReport:
    """What a loader read, dropped and changed; nothing is removed or modified without a count here.

    Args:
        source: the file path(s) read (or a description, for generated data).
        n_read: records read from the source (blank lines are not records).
        dropped: reason -> rows dropped ("exact_duplicate", "duplicate_user_item", "kcore",
            "malformed_json", "missing_field:<name>", "bad_value:<name>", "non_utf8", ...).
        changed: reason -> kept rows modified ("html_unescaped", "control_chars_stripped",
            "whitespace_normalized", "rating_0_as_unrated", ...).
        n_kept: rows in the final interaction table.
        flagged: reason -> kept rows left as they are but worth knowing about ("empty_text",
            "missing:<field>" for an optional field the source left out, ...).
    """

    source: str
    n_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    n_kept: int = 0
    flagged: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, reason: str, n: int = 1) -> None:
        """Add ``n`` to counter ``reason`` of ``kind`` ("dropped", "changed" or "flagged"); zeros are not stored."""
        if n <= 0:
            return
        counter: dict[str, int] = getattr(self, kind)
        counter[reason] = counter.get(reason, 0) + int(n)

    @property
    def n_dropped(self) -> int:
        """Total rows dropped, over all reasons."""
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy (plain str/int only)."""
        return {
            "source": self.source,
            "n_read": int(self.n_read),
            "dropped": {k: int(v) for k, v in sorted(self.dropped.items())},
            "changed": {k: int(v) for k, v in sorted(self.changed.items())},
            "flagged": {k: int(v) for k, v in sorted(self.flagged.items())},
            "n_kept": int(self.n_kept),
        }

    def __str__(self) -> str:
        lines = [f"source: {self.source}", f"read:   {self.n_read:,} records"]
        for title, counter in (("dropped", self.dropped), ("changed", self.changed), ("flagged", self.flagged)):
            if counter:
                lines.append(f"{title}:")
                width = max(len(k) for k in counter)
                lines.extend(f"  {k:<{width}}  {v:>8,}" for k, v in sorted(counter.items()))
            else:
                lines.append(f"{title}: none")
        lines.append(f"kept:   {self.n_kept:,} rows")
        return "\n".join(lines)


@dataclass(eq=False)
class ReviewDataset:
    """A loaded, validated and cleaned review data set.

    Args:
        name: canonical dataset name, e.g. ``"amazon:Musical_Instruments"``.
        interactions: one row per review/rating with the columns of
            ``textinterest.constants.CANONICAL_COLUMNS`` plus source extras, in source order
            (index 0..n-1; ``source_order`` keeps each row's position in the source file).
        items: item metadata (``item_id``, ``item_text``, extras) when the source has any, else None.
        report: the cleaning report.
        ground_truth: generated data only: the latent structure (see ``synthetic.make_synthetic``).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame | None
    report: CleaningReport
    ground_truth: dict | None = None

    def __repr__(self) -> str:
        from textinterest.constants import ITEM_COL, USER_COL

        df = self.interactions
        n_items_meta = "none" if self.items is None else f"{len(self.items):,} rows"
        return (
            f"ReviewDataset(name={self.name!r}, reviews={len(df):,}, users={df[USER_COL].nunique():,}, "
            f"items={df[ITEM_COL].nunique():,}, item_metadata={n_items_meta}, "
            f"ground_truth={'yes' if self.ground_truth is not None else 'no'})"
        )
