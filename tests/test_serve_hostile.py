"""Generated hostile requests through the HTTP client: no 5xx; a 200 only for a valid request, with a full answer."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import serving_fixtures
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from textinterest.datasets.review_schema import ReviewError, ReviewSchema

model, client = serving_fixtures.model, serving_fixtures.client  # the shared module-scoped fixtures

ITEMS = ["i0001", "i0002", "i0003"]
CONSTRAINT = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


hostile_numbers = st.sampled_from([0, -1, True, False, 1e20, 10**30, 1e300, -7, 1e30, 2**63, "now", "", "5", None])
good_texts = st.sampled_from(["bright guitar strings", "the drum kit broke", "a fine strap"])
good_times = st.integers(631_152_000, 4_000_000_000)
# valid values drawn several times as often as each hostile family, so that a fair share of requests is valid
texts = st.one_of(
    good_texts,
    good_texts,
    good_texts,
    st.sampled_from(["", "   ", "\udfff", "\x00", 5, None]),
    st.text(max_size=40),
)
timestamps = st.one_of(
    good_times,
    good_times,
    good_times,
    st.sampled_from(["2021-03-04", "2021-03-04T10:00:00+02:00", 1_600_000_000_000, 1.6e9, 1.6e9 + 0.5]),
    hostile_numbers,
    st.text(max_size=12),
)
ratings = st.one_of(st.none(), st.integers(1, 5), st.floats(1, 5), st.integers(1, 5), hostile_numbers, st.floats())
item_ids = st.one_of(
    st.none(), st.sampled_from(ITEMS), st.none(), st.sampled_from(["\udfff", "", " ", 1.5, True, 2**70])
)
review = st.fixed_dictionaries(
    {"text": texts, "timestamp": timestamps}, optional={"rating": ratings, "item_id": item_ids}
)
valid_review = st.fixed_dictionaries(
    {"text": good_texts, "timestamp": good_times},
    optional={"rating": st.integers(1, 5), "item_id": st.sampled_from(ITEMS)},
)
any_review = st.one_of(valid_review, review)
ks = st.one_of(st.integers(1, 12), st.sampled_from([0, -3, "5", True, 5.0, None, 10**6]))


def _send(client, path, body):
    raw = json.dumps(body)  # lone surrogates travel as \\udfff escapes, NaN as NaN: both are the server's to refuse
    return client.post(path, content=raw.encode(), headers={"content-type": "application/json"})


def _valid(schema, body):
    try:
        schema.history(body["history"])
        if "k" in body:
            schema.k(body["k"])
        return True
    except ReviewError:
        return False


@CONSTRAINT
@given(history=st.lists(any_review, min_size=0, max_size=3), k=ks, with_k=st.booleans())
def test_recommend_for_generated_histories(client, model, history, k, with_k):
    body = {"history": history, **({"k": k} if with_k else {})}
    r = _send(client, "/recommend", body)
    event(f"status {r.status_code}")
    assert r.status_code < 500, r.text
    valid = _valid(ReviewSchema.for_model(model), body)
    if r.status_code != 200:
        assert set(r.json()) == {"error"} and r.json()["error"]
        assert not valid or r.status_code == 400, r.text  # 400: a NaN the JSON encoder wrote
        return
    assert valid, body
    items = r.json()["items"]
    seen = {x["item_id"] for x in history if isinstance(x.get("item_id"), str) and x["item_id"] in ITEMS}
    assert len(items) == min(body.get("k", 10), len(model.item_index) - len(seen))
    assert len({x["item_id"] for x in items}) == len(items)
    assert all(math.isfinite(x["score"]) for x in items) and not seen & {x["item_id"] for x in items}


@CONSTRAINT
@given(
    history=st.lists(any_review, min_size=1, max_size=3),
    item=st.one_of(st.sampled_from(ITEMS), st.sampled_from(["new", "\udfff", 7, True])),
    item_text=st.one_of(st.none(), texts),
    top_n=st.one_of(st.integers(0, 4), st.sampled_from(["3", True, -1, 51])),
)
def test_explain_for_generated_requests(client, model, history, item, item_text, top_n):
    body = {"history": history, "item_id": item, "top_n": top_n}
    if item_text is not None:
        body["item_text"] = item_text
    r = _send(client, "/explain", body)
    event(f"status {r.status_code}")
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        out = r.json()
        assert math.isfinite(out["score"]) and len(out["top_reviews"]) == min(top_n, out["history_length"])
        assert _valid(ReviewSchema.for_model(model), body) and not isinstance(top_n, bool)
    else:
        assert set(r.json()) == {"error"}


@CONSTRAINT
@given(
    new_items=st.dictionaries(
        st.one_of(st.sampled_from(ITEMS), st.text(min_size=1, max_size=6)),
        st.one_of(texts, st.lists(texts, max_size=3)),
        max_size=4,
    )
)
def test_new_items_for_a_known_user(client, model, new_items):
    user = model.user_index.ids[0]
    r = _send(client, "/recommend", {"user_id": user, "k": 50, "new_items": new_items})
    event(f"status {r.status_code}")
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        ids = [x["item_id"] for x in r.json()["items"]]
        assert len(ids) == len(set(ids))  # a new item never repeats a catalogue id
        assert not set(new_items) & set(model.item_index.ids)
        assert set(new_items) <= set(ids) or len(ids) == 50
