"""Tests for textinterest.apps.reporting: the metrics files and figure folders the notebooks write."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textinterest.apps import reporting
from textinterest.apps.reporting import load_metrics, record_metrics, to_plain

# ---------------------------------------------------------------------------------------------
# record_metrics / load_metrics
# ---------------------------------------------------------------------------------------------


def test_record_metrics_round_trip_converts_numpy_and_pandas(tmp_path):
    metrics = {
        "rmse": np.float32(0.875),
        "n_users": np.int64(12),
        "per_k": {"hr@10": np.float64(0.5), "ks": (5, 10)},
        "vector": np.arange(3),
        "nan": float("nan"),
        "table": pd.DataFrame({"model": ["svd", "pop"], "rmse": [0.9, np.nan]}),
        "flag": np.bool_(True),
    }
    path = record_metrics("03_cf_baselines", metrics, path=tmp_path / "m")
    assert path == tmp_path / "m" / "03_cf_baselines.json"
    raw = path.read_text()
    json.loads(raw, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))  # strict JSON
    payload = load_metrics(path)
    assert payload["notebook"] == "03_cf_baselines"
    got = payload["metrics"]
    assert got["rmse"] == pytest.approx(0.875) and isinstance(got["rmse"], float)
    assert got["n_users"] == 12 and isinstance(got["n_users"], int)
    assert got["per_k"] == {"hr@10": 0.5, "ks": [5, 10]}
    assert got["vector"] == [0, 1, 2]
    assert got["nan"] == "NaN"  # kept visible for the report, as text
    assert got["table"] == [{"model": "svd", "rmse": 0.9}, {"model": "pop", "rmse": "NaN"}]
    assert got["flag"] is True


def test_record_metrics_uses_env_var_when_no_path(tmp_path, monkeypatch):
    monkeypatch.setenv(reporting.METRICS_ENV, str(tmp_path / "from_env"))
    path = record_metrics("00_data_tour", {"n": 1})
    assert path == tmp_path / "from_env" / "00_data_tour.json"
    # an explicit folder wins over the environment
    explicit = record_metrics("00_data_tour", {"n": 2}, path=tmp_path / "explicit")
    assert explicit.parent == tmp_path / "explicit"


def test_record_metrics_default_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv(reporting.METRICS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    path = record_metrics("x", {"a": 1}, path="")
    assert path.resolve() == (tmp_path / "metrics" / "x.json").resolve()


def test_record_metrics_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="plain name"):
        record_metrics("../escape", {"a": 1}, path=tmp_path)
    with pytest.raises(TypeError, match="mapping"):
        record_metrics("x", [1, 2], path=tmp_path)  # type: ignore[arg-type]


def test_load_metrics_names_the_file_on_bad_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_metrics(bad)


def test_to_plain_handles_torch_like_scalars_and_infinities():
    class Scalar:
        def item(self):
            return 1.5

    assert to_plain(Scalar()) == 1.5
    assert to_plain(np.float64(math.inf)) is None
    assert to_plain([math.nan, -math.inf, math.inf], nonfinite="text") == ["NaN", "-Infinity", "Infinity"]
    with pytest.raises(ValueError, match="nonfinite"):
        to_plain(1.0, nonfinite="zero")
    assert to_plain({1: Path("a/b")}) == {"1": "a/b"}
