"""The HTTP API, through FastAPI's TestClient, on a model trained on a small synthetic world."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient
from serving_world import root, trained

from textinterest.apps.serve import Limits, create_app
from textinterest.models.interest import InterestRecommender

REVIEW = {"text": "great guitar strings, the tuner holds", "timestamp": 1_600_000_000, "rating": 5}


@pytest.fixture(scope="module")
def model():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
        yield InterestRecommender.load(trained()[2])


@pytest.fixture(scope="module")
def client(model):
    return TestClient(create_app(model), raise_server_exceptions=False)


def test_health(client, model):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["n_users"] == len(model.user_index) and body["format_version"] == 1
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
        ({"k": 3}, 422, "exactly one of"),
        ({"user_id": "u0000", "history": [REVIEW]}, 422, "exactly one of"),
        ({"history": [{"text": "no time"}]}, 422, "timestamp"),
        ({"history": [{**REVIEW, "text": "   "}]}, 422, "'text' is empty"),
        ({"history": [REVIEW], "k": 10, "extra": 1}, 422, "extra"),
    ],
)
def test_bad_requests_get_clear_4xx(client, body, status, words):
    r = client.post("/recommend", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_size_limits(model):
    huge = {"history": [{**REVIEW, "text": "a" * 10_000_000}], "k": 3}
    r = TestClient(create_app(model)).post("/recommend", json=huge)
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    roomy = TestClient(create_app(model, Limits(max_body_bytes=20_000_000)))
    r = roomy.post("/recommend", json=huge)
    assert r.status_code == 422 and "text" in r.json()["error"]
    assert len(r.content) < 5_000  # the text is not echoed back
    r = roomy.post("/recommend", json={"history": [REVIEW] * 201, "k": 3})
    assert r.status_code == 422 and "history" in r.json()["error"]
    r = roomy.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


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
