"""The HTTP API, through FastAPI's TestClient, on a model trained on a small synthetic world."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import serving_fixtures
from fastapi.testclient import TestClient

from textinterest.apps.serve import Limits, create_app

model, client = serving_fixtures.model, serving_fixtures.client  # the shared module-scoped fixtures

REVIEW = {"text": "great guitar strings, the tuner holds", "timestamp": 1_600_000_000, "rating": 5}


def test_health(client, model):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["n_users"] == len(model.user_index) and body["format_version"] == 2
    assert body["encoder"]["content_hash"] == model.artifact_["encoder"]["content_hash"]


def test_recommend_known_user_and_new_user(client, model):
    user = model.user_index.ids[0]
    r = client.post("/recommend", json={"user_id": user, "k": 4})
    assert r.status_code == 200, r.text
    assert [x["item_id"] for x in r.json()["items"]] == [x["item_id"] for x in model.recommend(user, k=4)]
    r = client.post("/recommend", json={"history": [REVIEW], "k": 3, "new_items": {"n1": "a guitar capo"}})
    assert r.status_code == 200, r.text
    assert [x["item_id"] for x in r.json()["items"]] == [
        x["item_id"] for x in model.recommend_for_history([REVIEW], k=3, new_items={"n1": "a guitar capo"})
    ]


def test_explain(client, model):
    user, item = model.user_index.ids[1], model.item_index.ids[2]
    r = client.post("/explain", json={"user_id": user, "item_id": item, "top_n": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["score"] == pytest.approx(model.explain(user, item)["score"]) and len(body["top_reviews"]) == 2
    r = client.post("/explain", json={"history": [REVIEW], "item_id": "new", "item_text": "guitar strings"})
    assert r.status_code == 200 and r.json()["known_item"] is False
    r = client.post("/explain", json={"user_id": user, "item_id": "no-such-item"})
    assert r.status_code == 404 and "not in the catalogue" in r.json()["error"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"user_id": "nobody", "k": 3}, 404, "not in the training data"),
        ({"history": [], "k": 3}, 422, "history"),
        ({"user_id": "u0000", "k": 0}, 422, "k"),
        ({"user_id": "u0000", "k": -5}, 422, "k"),
        ({"user_id": "u0000", "k": "5"}, 422, "k must be an integer"),
        ({"user_id": "u0000", "k": True}, 422, "k must be an integer"),
        ({"user_id": "u0000", "k": 5.0}, 422, "k must be an integer"),
        ({"user_id": "u0000", "exclude_seen": "no"}, 422, "exclude_seen"),
        ({"k": 3}, 422, "exactly one of"),
        ({"user_id": "u0000", "history": [REVIEW]}, 422, "exactly one of"),
        ({"user_id": "\udfff"}, 422, "UTF-8"),
        ({"user_id": 2**70}, 422, "64-bit"),
        ({"user_id": True}, 422, "user_id"),
        ({"history": [{"text": "no time"}]}, 422, "timestamp"),
        ({"history": [{**REVIEW, "text": "   "}]}, 422, "'text' is empty"),
        ({"history": [{**REVIEW, "timestamp": 1e20}]}, 422, "outside 1990-2100"),
        ({"history": [{**REVIEW, "timestamp": 10**30}]}, 422, "timestamp"),
        ({"history": [{**REVIEW, "timestamp": 1_600_000_000_000}]}, 422, "milliseconds"),
        ({"history": [{**REVIEW, "timestamp": 0}]}, 422, "outside 1990-2100"),
        ({"history": [{**REVIEW, "timestamp": True}]}, 422, "timestamp"),
        ({"history": [{**REVIEW, "timestamp": "now"}]}, 422, "ISO 8601"),
        ({"history": [{**REVIEW, "timestamp": ""}]}, 422, "ISO 8601"),
        ({"history": [{**REVIEW, "rating": 1e300}]}, 422, "rating"),
        ({"history": [{**REVIEW, "rating": -7}]}, 422, "rating"),
        ({"history": [{**REVIEW, "rating": 1e30}]}, 422, "rating"),
        ({"history": [{**REVIEW, "rating": True}]}, 422, "rating"),
        ({"history": [{**REVIEW, "item_id": "\udfff"}]}, 422, "UTF-8"),
        ({"history": [REVIEW], "new_items": {"i0001": "a capo"}}, 422, "already in the catalogue"),
        ({"history": [REVIEW], "new_items": {"n1": " "}}, 422, "empty"),
        ({"history": [REVIEW], "k": 10, "extra": 1}, 422, "unknown field 'extra'"),
        ([REVIEW], 422, "JSON object"),
    ],
)
def test_bad_requests_get_clear_4xx(client, body, status, words):
    r = client.post("/recommend", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and set(r.json()) == {"error"}


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"user_id": "u0000", "item_id": "i0001", "top_n": "3"}, 422, "top_n"),
        ({"user_id": "u0000", "item_id": "i0001", "item_text": "a capo"}, 422, "in the catalogue"),
        ({"user_id": "u0000", "item_id": "new", "item_text": "  "}, 422, "empty"),
        ({"user_id": "u0000", "item_id": "\udfff"}, 422, "UTF-8"),
        ({"user_id": "u0000"}, 422, "item_id is required"),
        ({"history": [{**REVIEW, "rating": 1e300}], "item_id": "i0001"}, 422, "rating"),
    ],
)
def test_bad_explain_requests_get_clear_4xx(client, body, status, words):
    r = client.post("/explain", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_framework_errors_have_the_same_body_shape(client):
    for method, path, status in [
        ("GET", "/nope", 404),
        ("GET", "/recommend", 405),
        ("POST", "/health", 405),
        ("DELETE", "/explain", 405),
    ]:
        r = client.request(method, path)
        assert r.status_code == status and set(r.json()) == {"error"}, (method, path, r.text)
    assert "POST" in client.get("/recommend").headers["allow"]
    for raw in [b"{not json", b"", b'{"user_id": NaN}', b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe"]:
        r = client.post("/recommend", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "JSON" in r.json()["error"], (raw[:20], r.text)


def test_size_limits(model):
    huge = {"history": [{**REVIEW, "text": "a" * 10_000_000}], "k": 3}
    r = TestClient(create_app(model)).post("/recommend", json=huge)
    assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]
    roomy = TestClient(create_app(model, Limits(max_body_bytes=20_000_000)))
    r = roomy.post("/recommend", json=huge)
    assert r.status_code == 413 and "max_text_chars" in r.json()["error"]
    assert len(r.content) < 5_000  # the text is not echoed back
    r = roomy.post("/recommend", json={"history": [REVIEW] * 201, "k": 3})
    assert r.status_code == 413 and "max_reviews" in r.json()["error"]


def test_a_chunked_body_over_the_limit_gets_413(model):
    client = TestClient(create_app(model, Limits(max_body_bytes=10_000)))

    def chunks():
        yield b'{"history": [{"text": "'
        for _ in range(100):
            yield b"a" * 1000
        yield b'", "timestamp": 1600000000}]}'

    r = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]


def test_work_per_request_is_bounded(client, model):
    """The issue's pattern (100 items x 100 texts in an 89 KB body) and its variants are refused by a named limit."""
    many = {f"n{j}": ["a fine guitar strap"] * 100 for j in range(100)}
    r = client.post("/recommend", json={"history": [REVIEW], "new_items": many})
    assert r.status_code == 413 and "max_new_items" in r.json()["error"]
    few_long = {f"n{j}": ["a fine guitar strap"] * 40 for j in range(3)}
    r = client.post("/recommend", json={"user_id": model.user_index.ids[0], "new_items": few_long})
    assert r.status_code == 413 and "max_texts" in r.json()["error"]
    wide = {f"n{j}": "strap " * 3_000 for j in range(12)}
    r = client.post("/recommend", json={"history": [REVIEW], "new_items": wide})
    assert r.status_code == 413 and "max_chars" in r.json()["error"]
    window = model.config.max_history  # only the last max_history reviews are read: a long history is fine
    history = [{**REVIEW, "timestamp": REVIEW["timestamp"] + j} for j in range(window + 20)]
    assert client.post("/recommend", json={"history": history, "k": 3}).status_code == 200


def test_health_answers_while_a_slow_request_is_scored(model, monkeypatch):
    import threading
    import time

    import textinterest.apps.serve as serve

    real = serve.recommend

    def slow(*args, **kwargs):
        time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(serve, "recommend", slow)
    with TestClient(create_app(model)) as client:
        done = {}
        worker = threading.Thread(
            target=lambda: done.setdefault("r", client.post("/recommend", json={"user_id": model.user_index.ids[0]}))
        )
        worker.start()
        time.sleep(0.3)
        waits = []
        for _ in range(5):
            start = time.perf_counter()
            assert client.get("/health").status_code == 200
            waits.append(time.perf_counter() - start)
        assert "r" not in done  # the slow request was still being scored
        worker.join()
    assert done["r"].status_code == 200 and max(waits) < 0.1, waits


def test_unexpected_errors_hide_their_details(model, monkeypatch):
    app = create_app(model)

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(model, "score_items", boom)
    r = TestClient(app, raise_server_exceptions=False).post("/recommend", json={"user_id": model.user_index.ids[0]})
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text and r.json()["error"].startswith("internal error")


def test_serve_binds_to_localhost_by_default():
    from textinterest.apps.cli import build_parser

    args = build_parser().parse_args(["serve", "some-dir"])
    assert args.host == "127.0.0.1" and json.dumps(args.port) == "8000"
