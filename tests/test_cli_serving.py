"""The command-line sequence train -> recommend (known user, new user) -> explain on the synthetic world."""

from __future__ import annotations

import json

import pytest
from serving_world import MAX_LENGTH, root

from textinterest.apps.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    encoder = root() / "encoder"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
        code = main(
            [
                "train",
                "synthetic",
                "--output",
                str(folder / "model"),
                "--task",
                "ranking",
                "--max-users",
                "40",
                "--epochs",
                "2",
                "--encoder",
                str(encoder),
                "--max-length",
                str(MAX_LENGTH),
                "--json",
            ]
        )
        assert code == 0
        yield folder


def run_json(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_train_writes_metrics_and_artifact(trained):
    manifest = json.loads((trained / "model" / "textinterest_artifact.json").read_text())
    assert manifest["training"]["dataset"] == "synthetic" and manifest["training"]["n_train"] > 0
    assert 0.0 <= manifest["training"]["metrics"]["hr@10"] <= 1.0


def test_recommend_known_user_then_new_user_then_explain(trained, capsys):
    model = str(trained / "model")
    users = json.loads((trained / "model" / "vocab.json").read_text())["users"]
    code, out, err = run_json(capsys, ["recommend", model, "--user", users[0], "--k", "5", "--json"])
    assert code == 0, err
    assert out["user_id"] == users[0] and len(out["items"]) == 5
    history = trained / "history.jsonl"
    history.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"text": "the guitar strings sound bright", "timestamp": 1_600_000_000, "rating": 5},
                {"text": "this drum kit is fine", "timestamp": "2021-01-01", "item_id": out["items"][0]["item_id"]},
            ]
        )
        + "\n"
    )
    code, new, err = run_json(capsys, ["recommend", model, "--history", str(history), "--k", "3", "--json"])
    assert code == 0, err
    assert len(new["items"]) == 3 and out["items"][0]["item_id"] not in {r["item_id"] for r in new["items"]}
    item = out["items"][1]["item_id"]
    code, why, err = run_json(capsys, ["explain", model, "--user", users[0], "--item", item, "--json"])
    assert code == 0, err
    assert why["item_id"] == item and why["score"] == pytest.approx(out["items"][1]["score"], abs=1e-5)
    assert why["top_reviews"] and set(why["composition"]) >= {"long_term", "short_term"}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--user", "nobody"], "not in the training data"),
        (["--user", "u0000", "--k", "0"], "k must be a positive int"),
    ],
)
def test_cli_errors_are_one_clear_line(trained, capsys, extra, message):
    code = main(["recommend", str(trained / "model"), *extra, "--json"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_empty_history_file_is_refused(trained, capsys, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code = main(["recommend", str(trained / "model"), "--history", str(empty)])
    assert code == 2 and "history is empty" in capsys.readouterr().err
