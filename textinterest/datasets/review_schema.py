"""One schema for the reviews a user hands in: history files (``recommend --history``), ``explain`` and the HTTP API.

The data loaders refuse a record whose rating is out of range, whose timestamp is not a Unix time
in seconds between 1990 and 2100 (milliseconds get their own message), whose text is not a string
or whose id is empty. A review handed to a fitted model is checked by the same converters
(:mod:`textinterest.datasets.parsing`), plus what a request needs on top:

- ``text``: a string that encodes as UTF-8 (no lone surrogates), at most ``max_text_chars``
  characters, and not blank once cleaned like the loaders clean texts (text models);
- ``timestamp``: whole Unix seconds as a JSON number, or an ISO 8601 date string (naive = UTC),
  in 1990-2100; booleans, ``"now"``, ``0``, milliseconds and numbers beyond int64 are refused;
- ``rating`` (optional): a number within the model's rating range (strings and booleans refused);
- ``item_id`` (optional) and every other id: a non-blank string that encodes as UTF-8, or an int
  within int64;
- ``k`` and ``top_n``: strict integers (``"5"``, ``5.0`` and ``true`` are refused);
- new items offered by their text may not reuse a catalogue id.

Work per request is bounded as well (:class:`RequestLimits`): reviews per history, and the number
and total length of the texts the encoder reads in one request (:meth:`ReviewSchema.check_work`).
Errors are :class:`ReviewError` (a ``ValueError``; :class:`OverLimitError` for a size limit), one
line naming the review and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from textinterest.datasets.cleaning import clean_text
from textinterest.datasets.parsing import check_time_range, rating_converter, to_str, unix_seconds

__all__ = ["REVIEW_FIELDS", "OverLimitError", "RequestLimits", "ReviewError", "ReviewSchema"]

REVIEW_FIELDS = ("text", "timestamp", "rating", "item_id")
_INT64 = (-(2**63), 2**63 - 1)
_MAX_DATE_CHARS = 64


class ReviewError(ValueError):
    """An input that breaks the review schema (the message names the review and the field)."""


class OverLimitError(ReviewError):
    """A request over one of the size limits (the message names the limit)."""


@dataclass(frozen=True)
class RequestLimits:
    """How much one request may ask of the model.

    The encoder reads at most ``max_length`` tokens of a text, so the cost of a request grows with the
    number of texts it embeds; their characters cost tokenization time. The defaults keep the slowest
    allowed request of a MiniLM model (128 tokens) near one second on two CPU cores (see
    ``benchmarks/BENCHMARKS.md``, "Serving under load").

    Args:
        max_reviews: reviews per history.
        max_text_chars: characters per review or item text.
        max_texts: texts embedded in one request (the history's kept reviews, new items' texts, an item text).
        max_chars: characters of all the texts embedded in one request.
        max_new_items: items offered by their text in one request (each is one pass of the encoder).
        max_k: largest ``k``.
        max_top_n: largest ``top_n`` of ``explain``.
        max_id_chars: longest string id.
    """

    max_reviews: int = 200
    max_text_chars: int = 20_000
    max_texts: int = 64
    max_chars: int = 200_000
    max_new_items: int = 16
    max_k: int = 1000
    max_top_n: int = 50
    max_id_chars: int = 1000


@dataclass(frozen=True)
class ReviewSchema:
    """Validation of reviews, ids and request numbers for one fitted model.

    Args:
        rating_range: inclusive (low, high) of accepted ratings; None accepts any finite number.
        need_text: texts must be non-blank (models that read the text).
        limits: size limits.
    """

    rating_range: tuple[float, float] | None = None
    need_text: bool = True
    limits: RequestLimits = field(default_factory=RequestLimits)

    @classmethod
    def for_model(cls, model: Any, limits: RequestLimits | None = None) -> ReviewSchema:
        """The schema of a fitted recommender: its training rating range, text required when it reads text."""
        low, high = getattr(model, "rating_range_", (None, None))
        config = getattr(model, "config", None)
        return cls(
            rating_range=None if low is None else (float(low), float(high)),
            need_text=bool(getattr(config, "use_text", False)),
            limits=limits or RequestLimits(),
        )

    # ------------------------------------------------------------------ single values

    def identifier(self, value: Any, name: str) -> str | int:
        """An id: a non-blank string that encodes as UTF-8 (at most ``max_id_chars``), or an int within int64."""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ReviewError(f"{name} must be a string or an integer, got {_kind(value)}")
        if isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise ReviewError(f"{name} is an integer beyond the 64-bit range")
            return value
        if not value.strip():
            raise ReviewError(f"{name} is blank")
        if len(value) > self.limits.max_id_chars:
            raise ReviewError(f"{name} has {len(value):,} characters; the limit is {self.limits.max_id_chars:,}")
        _utf8(value, name)
        return value

    def text(self, value: Any, name: str, *, required: bool | None = None) -> str:
        """A text: a UTF-8-encodable string within ``max_text_chars``; not blank when ``required``
        (default: ``need_text``)."""
        required = self.need_text if required is None else required
        if value is None and not required:
            return ""
        try:
            value = to_str(value)
        except ValueError as exc:
            raise ReviewError(f"{name}: {exc}") from None
        if len(value) > self.limits.max_text_chars:
            raise OverLimitError(
                f"{name} has {len(value):,} characters; the limit is {self.limits.max_text_chars:,} (max_text_chars)"
            )
        _utf8(value, name)
        if required and not clean_text(value)[0]:
            raise ReviewError(f"{name} is empty; this model reads the review text")
        return value

    def timestamp(self, value: Any, name: str) -> int:
        """Unix seconds (whole, 1990-2100) from a JSON number or an ISO 8601 date string."""
        if value is None:
            raise ReviewError(f"{name} is required (Unix seconds or an ISO 8601 date)")
        try:
            if isinstance(value, str):
                return _iso_seconds(value)
            return unix_seconds(value)
        except ValueError as exc:
            raise ReviewError(f"{name}: {exc}") from None

    def rating(self, value: Any, name: str) -> float | None:
        """A rating within ``rating_range`` (None stays None)."""
        if value is None:
            return None
        low, high = self.rating_range or (-float("inf"), float("inf"))
        try:
            return rating_converter(low, high)(value)
        except ValueError as exc:
            raise ReviewError(f"{name}: {exc}") from None

    def integer(self, value: Any, name: str, low: int, high: int) -> int:
        """A strict JSON integer in [low, high] (no strings, floats or booleans)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReviewError(f"{name} must be an integer, got {_kind(value)}")
        if not low <= value <= high:
            raise ReviewError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def k(self, value: Any) -> int:
        """The number of items asked for: a strict integer in 1..``max_k``."""
        return self.integer(value, "k", 1, self.limits.max_k)

    # ------------------------------------------------------------------ reviews

    def review(self, value: Any, where: str) -> dict[str, Any]:
        """One review as ``{"text", "timestamp" (int seconds), "rating" (float or None), "item_id" (or None)}``."""
        if not isinstance(value, Mapping):
            raise ReviewError(f"{where}: must be an object with 'text' and 'timestamp', got {_kind(value)}")
        unknown = [str(key) for key in value if key not in REVIEW_FIELDS]
        if unknown:
            raise ReviewError(f"{where}: unknown field {unknown[0][:40]!r}; a review has {', '.join(REVIEW_FIELDS)}")
        item = value.get("item_id")
        return {
            "text": self.text(value.get("text"), f"{where}: 'text'"),
            "timestamp": self.timestamp(value.get("timestamp"), f"{where}: 'timestamp'"),
            "rating": self.rating(value.get("rating"), f"{where}: 'rating'"),
            "item_id": None if item is None else self.identifier(item, f"{where}: 'item_id'"),
        }

    def history(self, value: Any) -> list[dict[str, Any]]:
        """A new user's reviews, checked one by one (the given order is kept)."""
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise ReviewError(f"history must be a list of reviews, got {_kind(value)}")
        if not value:
            raise ReviewError("history is empty: give at least one review (text, timestamp, rating?, item_id?)")
        if len(value) > self.limits.max_reviews:
            raise OverLimitError(
                f"history has {len(value):,} reviews; the limit is {self.limits.max_reviews:,} (max_reviews)"
            )
        return [self.review(review, f"review {j}") for j, review in enumerate(value)]

    def new_items(self, value: Any, in_catalogue: Callable[[Any], bool]) -> dict[Any, list[str]]:
        """Items offered by their text: ``{id: text or [texts]}`` to ``{id: [texts]}``; catalogue ids are refused."""
        if not isinstance(value, Mapping):
            raise ReviewError(f"new_items must be an object {{item id: text or [texts]}}, got {_kind(value)}")
        if len(value) > self.limits.max_new_items:
            raise OverLimitError(
                f"new_items holds {len(value):,} items; the limit is {self.limits.max_new_items:,} (max_new_items)"
            )
        out: dict[Any, list[str]] = {}
        for key, texts in value.items():
            item = self.identifier(key, "new_items: an item id")
            where = f"new item {str(item)[:40]!r}"
            if in_catalogue(item):
                raise ReviewError(f"{where} is already in the catalogue; ask for catalogue items by id, not by text")
            texts = [texts] if isinstance(texts, str) else texts
            if isinstance(texts, (bytes, Mapping)) or not isinstance(texts, Sequence) or not texts:
                raise ReviewError(f"{where}: give a non-empty text or a non-empty list of texts")
            out[item] = [self.text(t, f"{where}: text {j}", required=True) for j, t in enumerate(texts)]
        return out

    def check_work(self, texts: Iterable[str]) -> None:
        """Refuse a request whose embedded texts exceed ``max_texts`` or ``max_chars`` (:class:`OverLimitError`)."""
        n = chars = 0
        for text in texts:
            n += 1
            chars += len(text)
        if n > self.limits.max_texts:
            raise OverLimitError(
                f"the request asks to read {n:,} texts; the limit is {self.limits.max_texts:,} per request (max_texts)"
            )
        if chars > self.limits.max_chars:
            raise OverLimitError(
                f"the request's texts hold {chars:,} characters; the limit is {self.limits.max_chars:,} (max_chars)"
            )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value!r:.40}"
    return type(value).__name__


def _utf8(value: str, name: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ReviewError(f"{name} holds characters that are not valid UTF-8 (a lone surrogate)") from None


def _iso_seconds(value: str) -> int:
    """Unix seconds of an ISO 8601 date or date-time (naive = UTC), 1990-2100."""
    text = value.strip()
    if len(text) > _MAX_DATE_CHARS:
        raise ValueError(f"expected an ISO 8601 date, got a string of {len(text):,} characters")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected Unix seconds or an ISO 8601 date like '2021-03-04', got {value[:40]!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return check_time_range(stamp.timestamp(), value)
