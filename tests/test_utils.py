import json
import math

import numpy as np
import pytest

from textinterest.utils import (
    atomic_write_bytes,
    atomic_write_text,
    format_number,
    json_default,
    markdown_table,
    memory_gib,
    peak_rss_mb,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_atomic_write_failure_keeps_old_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_json_default_converts_numpy():
    tmp = object()
    payload = {"i": np.int64(3), "f": np.float32(0.5), "a": np.arange(3), "p": tmp}
    out = json.loads(json.dumps(payload, default=json_default))
    assert out["i"] == 3 and out["f"] == 0.5 and out["a"] == [0, 1, 2] and out["p"] == str(tmp)


def test_format_number_and_table():
    assert format_number(float("nan")) == "NaN"
    assert format_number(None) == "–"
    assert format_number(np.float64(0.123456)) == "0.1235"
    table = markdown_table(["model", "rmse"], [["a|b", 1.0], ["c", None]], align=["l", "r"])
    assert table.splitlines() == ["| model | rmse |", "|---|---:|", "| a\\|b | 1.0000 |", "| c | – |"]
    with pytest.raises(ValueError, match="2 columns"):
        markdown_table(["a", "b"], [[1]])


def test_machine_facts():
    assert peak_rss_mb() > 1 or math.isnan(peak_rss_mb())
    assert memory_gib() is None or memory_gib() > 0


def test_package_source_digest_follows_every_files_content_and_name(tmp_path, monkeypatch):
    from textinterest import utils

    monkeypatch.setattr(utils, "package_root", lambda: tmp_path)
    digest = utils.package_source_digest.__wrapped__  # the uncached function
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"compiled")
    first = digest()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"recompiled")
    assert digest() == first  # compiled files do not count
    (tmp_path / "a.py").write_text("x = 2\n")
    second = digest()
    assert second != first
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    assert digest() not in (first, second)
