"""Saved recommenders: train -> save -> load (in a fresh process too) gives the same scores; bad folders are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from serving_world import root, trained
from tiny_models import build_tiny_model

from textinterest.models.artifact import MANIFEST, ArtifactError, read_manifest
from textinterest.models.cf import MFRecommender, SequentialRecommender
from textinterest.models.interest import InterestRecommender
from textinterest.models.registry import load_recommender

HISTORY = [
    {"text": "great guitar strings, the tuner works", "timestamp": 1_600_000_000, "rating": 5},
    {"text": "the drum kit broke after a week", "timestamp": 1_600_100_000, "rating": 1, "item_id": "i0003"},
]


@pytest.fixture
def interest(monkeypatch):
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
    model, meta, folder = trained()
    return folder, model, meta


def test_saved_folder_holds_json_and_safetensors_only(interest):
    folder, _, _ = interest
    names = sorted(p.relative_to(folder).as_posix() for p in (folder).rglob("*") if p.is_file())
    assert MANIFEST in names and "model.safetensors" in names and "history.safetensors" in names
    assert all(n.endswith((".json", ".safetensors")) for n in names), names
    manifest = read_manifest(folder)
    assert manifest["format_version"] == 2 and manifest["kind"] == "interest"
    assert manifest["encoder"]["content_hash"] and manifest["sentiment"]["mode"] == "frozen"
    assert "hr@10" in manifest["training"]["metrics"] and manifest["n_users"] == 40


def test_load_in_a_fresh_process_gives_identical_scores(interest, tmp_path):
    folder, model, _ = interest
    users = list(model.user_index.ids)
    expected = model.score_items(users)
    expected_new = model.recommend_for_history(HISTORY, k=30, exclude_seen=False)
    script = (
        "import json, sys, numpy as np\n"
        "from textinterest.models.interest import InterestRecommender\n"
        f"m = InterestRecommender.load({str(folder)!r})\n"
        "np.save(sys.argv[1], m.score_items(list(m.user_index.ids)))\n"
        f"json.dump(m.recommend_for_history({HISTORY!r}, k=30, exclude_seen=False), open(sys.argv[2], 'w'))\n"
    )
    env = {**os.environ, "TEXTINTEREST_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s.npy"), str(tmp_path / "n.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = np.load(tmp_path / "s.npy")
    assert loaded.shape == expected.shape
    assert np.array_equal(loaded, expected)
    fresh = json.loads((tmp_path / "n.json").read_text())
    assert [r["item_id"] for r in fresh] == [r["item_id"] for r in expected_new]
    assert [r["score"] for r in fresh] == [r["score"] for r in expected_new]


def test_loaded_model_explains_like_the_trained_one(interest):
    folder, model, _ = interest
    loaded = InterestRecommender.load(folder)
    user, item = model.user_index.ids[3], model.item_index.ids[5]
    a, b = model.explain(user, item), loaded.explain(user, item)
    assert a["score"] == b["score"] and a["composition"] == b["composition"]
    assert [r["text"] for r in a["top_reviews"]] == [r["text"] for r in b["top_reviews"]]
    assert b["top_reviews"][0]["text"]  # the training texts travel with the model


def test_another_encoder_is_refused(interest, tmp_path):
    folder, _, _ = interest
    other = build_tiny_model(tmp_path / "other", seed=7)
    with pytest.raises(ArtifactError, match="not the one this model was trained with"):
        load_recommender(folder, encoder=str(other))


def test_newer_format_is_refused(interest, tmp_path):
    folder, _, _ = interest
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(folder, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["format_version"] = 99
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format 99 is newer"):
        load_recommender(copy)


def test_changed_file_and_missing_folder_are_reported(interest, tmp_path):
    folder, _, _ = interest
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    data = bytearray((copy / "history.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "history.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its recorded sha256"):
        load_recommender(copy)
    with pytest.raises(ArtifactError, match="not a saved recommender"):
        load_recommender(tmp_path / "nothing-here")
    with pytest.raises(ArtifactError, match="not a MFRecommender"):
        MFRecommender.load(folder)


def test_unfitted_or_encoderless_models_are_not_saved(interest, tmp_path):
    _, model, _ = interest
    with pytest.raises(ArtifactError, match="not fitted"):
        InterestRecommender().save(tmp_path / "a")
    encoder, model.text_encoder_ = model.text_encoder_, None
    try:
        with pytest.raises(ArtifactError, match="needs its encoder"):
            model.save(tmp_path / "b")
    finally:
        model.text_encoder_ = encoder


@pytest.mark.parametrize("kind, task", [("mf", "rating"), ("mf", "ranking"), ("seq-lstm", "ranking")])
def test_id_only_models_round_trip(kind, task):
    model, _, folder = trained(kind, task)
    cls = MFRecommender if kind == "mf" else SequentialRecommender
    loaded = cls.load(folder)
    users = list(model.user_index.ids)
    assert np.array_equal(loaded.score_items(users), model.score_items(users))
    assert loaded.recommend(users[0], k=5) == model.recommend(users[0], k=5)
    if task == "rating":
        import pandas as pd

        pairs = pd.DataFrame({"user_id": users[:10], "item_id": list(model.item_index.ids[:10])})
        assert np.array_equal(loaded.predict(pairs), model.predict(pairs))
    assert read_manifest(folder)["encoder"] is None
