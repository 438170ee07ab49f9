"""The one review schema of history files, the CLI and the HTTP API: what it refuses; it agrees with the loaders."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textinterest.datasets.parsing import TIME_MAX, TIME_MIN, unix_seconds
from textinterest.datasets.review_schema import OverLimitError, RequestLimits, ReviewError, ReviewSchema

SCHEMA = ReviewSchema(rating_range=(1.0, 5.0), need_text=True)
GOOD = {"text": "warm bright strings", "timestamp": 1_600_000_000, "rating": 4, "item_id": "i0001"}


def test_a_valid_review_is_normalised():
    out = SCHEMA.history([GOOD, {"text": "ok", "timestamp": "2021-03-04T10:00:00Z"}])
    assert out[0] == {"text": "warm bright strings", "timestamp": 1_600_000_000, "rating": 4.0, "item_id": "i0001"}
    assert out[1]["timestamp"] == 1_614_852_000 and out[1]["rating"] is None and out[1]["item_id"] is None
    assert SCHEMA.review({**GOOD, "timestamp": "2021-03-04"}, "r")["timestamp"] == 1_614_816_000  # naive = UTC


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("timestamp", 1e20, "outside 1990-2100"),
        ("timestamp", 10**30, "whole number"),  # the loaders say so too
        ("timestamp", 10**400, "finite"),
        ("timestamp", 0, "outside 1990-2100"),
        ("timestamp", 1_600_000_000_000, "milliseconds"),
        ("timestamp", 1_600_000_000.5, "whole number"),
        ("timestamp", True, "expected a number"),
        ("timestamp", "now", "ISO 8601"),
        ("timestamp", "", "ISO 8601"),
        ("timestamp", "1600000000", "ISO 8601"),
        ("timestamp", "2200-01-01", "outside 1990-2100"),
        ("timestamp", "x" * 10_000, "characters"),
        ("timestamp", None, "required"),
        ("timestamp", [1], "expected a number"),
        ("rating", 1e300, "outside 1-5"),
        ("rating", -7, "outside 1-5"),
        ("rating", 1e30, "outside 1-5"),
        ("rating", float("nan"), "finite"),
        ("rating", True, "expected a number"),
        ("rating", "5", "string"),
        ("text", "   \n\t ", "empty"),
        ("text", "\x00\x01", "empty"),
        ("text", 5, "expected a string"),
        ("text", None, "expected a string"),
        ("text", "bad \udfff", "UTF-8"),
        ("item_id", "\udfff", "UTF-8"),
        ("item_id", "  ", "blank"),
        ("item_id", True, "string or an integer"),
        ("item_id", 1.5, "string or an integer"),
        ("item_id", 2**70, "64-bit"),
        ("item_id", "x" * 1001, "limit"),
    ],
)
def test_hostile_values_are_refused_naming_the_field(field, value, words):
    with pytest.raises(ReviewError, match=field) as info:
        SCHEMA.history([GOOD, {**GOOD, field: value}])
    assert words in str(info.value) and "review 1" in str(info.value) and "\n" not in str(info.value)


def test_reviews_lists_and_fields():
    for bad, words in [
        ([], "empty"),
        ("text", "list"),
        ({"text": "a"}, "list"),
        ([5], "object"),
        ([{**GOOD, "stars": 5}], "unknown field 'stars'"),
    ]:
        with pytest.raises(ReviewError, match=words):
            SCHEMA.history(bad)
    with pytest.raises(OverLimitError, match="max_reviews"):
        ReviewSchema(limits=RequestLimits(max_reviews=3)).history([GOOD] * 4)
    with pytest.raises(OverLimitError, match="max_text_chars"):
        SCHEMA.history([{**GOOD, "text": "a" * 20_001}])
    # an ID-only model reads no text: it may be missing
    assert ReviewSchema(need_text=False).review({"timestamp": 1_600_000_000}, "r")["text"] == ""


@pytest.mark.parametrize("value", ["5", 5.0, True, None, [5], 0, -1, 1001])
def test_k_is_a_strict_integer_in_range(value):
    with pytest.raises(ReviewError, match="k must be"):
        SCHEMA.k(value)
    assert SCHEMA.k(1) == 1 and SCHEMA.k(1000) == 1000


def test_new_items_refuse_catalogue_ids_blank_texts_and_too_many():
    catalogue = {"i0001", "i0002"}
    assert SCHEMA.new_items({"n1": "a capo", "n2": ["a", "b"]}, catalogue.__contains__) == {
        "n1": ["a capo"],
        "n2": ["a", "b"],
    }
    for bad, words in [
        ({"i0001": "a capo"}, "already in the catalogue"),
        ({"n1": " "}, "empty"),
        ({"n1": []}, "non-empty"),
        ({"n1": [" ok", 5]}, "expected a string"),
        ({"\udfff": "x"}, "UTF-8"),
        (["n1"], "object"),
    ]:
        with pytest.raises(ReviewError, match=words):
            SCHEMA.new_items(bad, catalogue.__contains__)
    with pytest.raises(OverLimitError, match="max_new_items"):
        SCHEMA.new_items({f"n{j}": "x" for j in range(17)}, catalogue.__contains__)


def test_work_limits_count_texts_and_characters():
    schema = ReviewSchema(limits=RequestLimits(max_texts=3, max_chars=10))
    schema.check_work(["abc", "def", "ghij"])
    with pytest.raises(OverLimitError, match="max_texts"):
        schema.check_work(["a"] * 4)
    with pytest.raises(OverLimitError, match="max_chars"):
        schema.check_work(["abcdef", "ghijk"])


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=30)))
def test_timestamps_agree_with_the_loaders(value):
    """A number is accepted exactly when the data loaders' converter accepts it, with the same seconds."""
    try:
        got = SCHEMA.timestamp(value, "t")
    except ReviewError:
        got = None
    if isinstance(value, str):
        assert got is None or TIME_MIN <= got < TIME_MAX
        return
    try:
        want = unix_seconds(value)
    except ValueError:
        want = None
    assert got == want
    if got is not None:
        assert TIME_MIN <= got < TIME_MAX and not isinstance(value, bool)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.text(max_size=5)))
def test_ratings_are_finite_and_in_range(value):
    try:
        got = SCHEMA.rating(value, "r")
    except ReviewError:
        return
    assert isinstance(got, float) and math.isfinite(got) and 1.0 <= got <= 5.0
    assert not isinstance(value, (bool, str))
