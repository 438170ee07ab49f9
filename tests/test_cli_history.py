"""``recommend --history`` and ``explain --history`` check a history file with the HTTP API's review schema."""

from __future__ import annotations

import json

import pytest
from serving_world import root, trained

from textinterest.apps.cli import main

GOOD = {"text": "bright guitar strings", "timestamp": 1_600_000_000, "rating": 5}


@pytest.fixture
def folder(monkeypatch):
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
    return str(trained()[2])


def _history(tmp_path, *reviews, raw: str | None = None):
    path = tmp_path / "history.jsonl"
    path.write_text(raw if raw is not None else "\n".join(json.dumps(r) for r in reviews) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"timestamp": 1e20}, "outside 1990-2100"),
        ({"timestamp": 1_600_000_000_000}, "milliseconds"),
        ({"timestamp": "now"}, "ISO 8601"),
        ({"timestamp": True}, "timestamp"),
        ({"rating": 1e300}, "rating"),
        ({"rating": -7}, "rating"),
        ({"text": " "}, "empty"),
        ({"item_id": "\udfff"}, "UTF-8"),
        ({"stars": 4}, "unknown field 'stars'"),
    ],
)
@pytest.mark.parametrize("command", ["recommend", "explain"])
def test_a_bad_history_line_is_one_line_naming_the_file_and_field(folder, tmp_path, capsys, command, bad, words):
    path = _history(tmp_path, GOOD, {**GOOD, **bad})
    extra = ["--item", "i0001"] if command == "explain" else []
    code = main([command, folder, "--history", path, *extra, "--json"])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "review 1" in err and path in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_good_history_file_gives_what_the_api_gives(folder, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from textinterest.apps.serve import create_app
    from textinterest.models.registry import load_recommender

    reviews = [GOOD, {"text": "the drum kit broke", "timestamp": "2021-01-01", "rating": 1, "item_id": "i0002"}]
    code = main(["recommend", folder, "--history", _history(tmp_path, *reviews), "--k", "5", "--json"])
    assert code == 0
    cli = [r["item_id"] for r in json.loads(capsys.readouterr().out)["items"]]
    api = TestClient(create_app(load_recommender(folder))).post("/recommend", json={"history": reviews, "k": 5})
    assert api.status_code == 200 and [r["item_id"] for r in api.json()["items"]] == cli


def test_ids_on_the_command_line_are_checked(folder, capsys):
    code = main(["recommend", folder, "--user", "\udcff", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "--user" in err and "UTF-8" in err
