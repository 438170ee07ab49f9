"""A saved model verifies everything it loads: any changed byte or configuration value is refused with one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from serving_world import root, trained

from textinterest.models.artifact import MANIFEST, ArtifactError, _manifest_hash
from textinterest.models.registry import load_recommender


@pytest.fixture
def saved(monkeypatch):
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
    return trained()[2]


def _copy(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def _refused(folder, *words):
    with pytest.raises(ArtifactError) as info:
        load_recommender(folder)
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    return message


def _rewrite(copy, change, rehash=False):
    manifest = json.loads((copy / MANIFEST).read_text())
    change(manifest)
    if rehash:  # what a careless tool that "fixes" the hash would leave: the consistency checks must catch it
        manifest["manifest_sha256"] = _manifest_hash(manifest)
    (copy / MANIFEST).write_text(json.dumps(manifest))


def test_every_file_is_hashed_the_sentiment_head_included(saved):
    manifest = json.loads((saved / MANIFEST).read_text())
    on_disk = {p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(manifest["files"]) == on_disk and any(name.startswith("sentiment/") for name in on_disk)
    assert manifest["format_version"] == 2 and len(manifest["manifest_sha256"]) == 64


def test_one_changed_byte_in_any_file_is_refused(saved, tmp_path):
    names = sorted(json.loads((saved / MANIFEST).read_text())["files"])
    for name in names:
        copy = _copy(saved, tmp_path / name.replace("/", "_"))
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
        _refused(copy, name.split("/")[-1], "sha256")
        (copy / name).write_bytes(bytes(data[: len(data) // 2]))  # truncated
        _refused(copy, name.split("/")[-1])


@pytest.mark.parametrize(
    "path, value",
    [
        (("config", "max_history"), 3),
        (("config", "assign_temperature"), 0.5),
        (("n_items",), 29),
        (("n_users",), 41),
        (("task",), "rating"),
        (("global_mean",), 9.0),
        (("rating_range",), [0, 10]),
        (("kind",), "mf"),
        (("uses_text",), False),
        (("encoder", "max_length"), 16),
        (("sentiment", "mode"), "finetune"),
        (("eval_batch_size",), 1),
    ],
)
def test_an_edited_configuration_value_is_refused(saved, tmp_path, path, value):
    copy = _copy(saved, tmp_path)

    def change(manifest):
        target = manifest
        for key in path[:-1]:
            target = target[key]
        assert target[path[-1]] != value
        target[path[-1]] = value

    _rewrite(copy, change)
    _refused(copy, MANIFEST, "manifest_sha256")


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda m: m.update(n_items=29), "vocab.json"),
        (lambda m: m.update(n_users=39), "vocab.json"),
        (lambda m: m.update(n_history_rows=5), "history.safetensors"),
        (lambda m: m.update(kind="mf"), "reads no text"),
        (lambda m: m.update(uses_text=False), "uses_text"),
        (lambda m: m["config"].update(hidden=32), "model.safetensors"),
        (lambda m: m["config"].update(text_dim=8), "history.safetensors"),
        (lambda m: m["config"].update(no_such_option=1), MANIFEST),
        (lambda m: m.update(config=[1, 2]), "'config' must be dict"),
        (lambda m: m.update(n_items="30"), "'n_items' must be int"),
        (lambda m: m.update(uses_text=1), "'uses_text' must be bool"),
        (lambda m: m.pop("files"), "'files' is missing"),
        (lambda m: m["files"].pop("sentiment/head.safetensors"), "not covered by the manifest's hashes"),
        (lambda m: m.update(sentiment=None), "no sentiment head"),
        (lambda m: m.update(sentiment=None, sentiment_input="zeros"), "does not use"),
        (lambda m: m["files"].update({"../x": "0" * 64}), "../x"),
        (lambda m: m.update(rating_range=[1]), "rating_range"),
        (lambda m: m.update(task="both"), "'task'"),
    ],
)
def test_inconsistent_manifests_are_refused_even_with_a_matching_hash(saved, tmp_path, change, words):
    copy = _copy(saved, tmp_path)
    _rewrite(copy, change, rehash=True)
    _refused(copy, words)


def test_the_sentiment_head_is_checked_against_the_encoder(saved, tmp_path):
    from safetensors.numpy import load_file, save_file

    copy = _copy(saved, tmp_path)
    head = copy / "sentiment" / "head.safetensors"
    arrays = load_file(str(head))
    save_file({**arrays, "coef": np.ascontiguousarray(arrays["coef"][..., :3])}, str(head))

    def rehash_head(manifest):
        from textinterest.models.artifact import _file_sha256

        manifest["files"]["sentiment/head.safetensors"] = _file_sha256(head)

    _rewrite(copy, rehash_head, rehash=True)
    _refused(copy, "sentiment")


def test_wrong_shaped_json_and_old_formats_are_one_line(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    (copy / MANIFEST).write_text("[1, 2, 3]")
    _refused(copy, MANIFEST, "JSON object")
    (copy / MANIFEST).write_text("{")
    _refused(copy, MANIFEST, "not valid JSON")
    copy = _copy(saved, tmp_path / "v1")
    _rewrite(copy, lambda m: m.update(format_version=1))
    _refused(copy, "format 1", "train and save the model again")


def test_vocab_with_the_right_hash_but_wrong_shape_is_refused(saved, tmp_path):
    from textinterest.models.artifact import _file_sha256

    copy = _copy(saved, tmp_path)
    for bad, words in [('{"users": 5, "items": []}', "must hold"), ('{"users": [], "items": []}', "lists 0 users")]:
        (copy / "vocab.json").write_text(bad)
        _rewrite(copy, lambda m: m["files"].update({"vocab.json": _file_sha256(copy / "vocab.json")}), rehash=True)
        _refused(copy, "vocab.json", words)


def test_an_unlisted_file_in_the_sentiment_folder_is_refused(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    (copy / "sentiment" / "extra.json").write_text("{}")
    _refused(copy, "extra.json", "not covered")
