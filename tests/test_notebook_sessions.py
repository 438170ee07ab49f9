"""A notebook opened by hand scales itself up on a GPU (SCALE) and can fetch its data set (DOWNLOAD)."""

from __future__ import annotations

import ast
import hashlib
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from textinterest.apps.reproduce import profiles
from textinterest.apps.reproduce.profiles import PROFILES_DIR, SCALES, load_profile, session_settings

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
MI_KEY = "amazon2014/reviews_Musical_Instruments_5.json.gz"


def _cells(path: Path) -> list:
    return nbformat.read(path, as_version=4).cells


def _parameters(cells: list) -> tuple[int, dict]:
    at = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    body = ast.parse(cells[at].source).body
    return at, {stmt.targets[0].id: ast.literal_eval(stmt.value) for stmt in body}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_declares_scale_and_download_and_uses_them(path):
    cells = _cells(path)
    at, declared = _parameters(cells)
    assert declared["SCALE"] == "auto" and declared["DOWNLOAD"] is False
    session = cells[at + 1].source
    assert f'session_settings("{path.stem}", SCALE, declared=globals())' in session and "globals().update" in session
    loads = [c.source for c in cells if c.cell_type == "code" and "load_dataset(DATASET" in c.source]
    assert loads and all("download=DOWNLOAD" in src for src in loads)
    # reproduce hands every notebook SCALE = "as-set": a profile alone decides what a run uses
    from textinterest.apps.reproduce.runner import _INJECTED

    params, _ = profiles.notebook_parameters(path, {}, {}, _INJECTED)
    assert params["SCALE"] == "as-set"


def test_session_settings_follow_the_scale_and_the_gpu():
    declared = {"DATASET": "synthetic", "SENTIMENT_MODE": "frozen", "SEEDS": [42], "DATA_HOME": "/mine", "X": 1}
    assert session_settings("06_results_and_explanations", "as-set", declared, gpu=True) == {}
    assert session_settings("06_results_and_explanations", "auto", declared, gpu=False) == {}
    on_gpu = session_settings("06_results_and_explanations", "auto", declared, gpu=True)
    assert on_gpu == session_settings("06_results_and_explanations", "full", declared, gpu=False)
    shared, per_notebook, _ = load_profile("full", PROFILES_DIR).resolve(gpu=True)
    assert on_gpu == {
        "DATASET": shared["DATASET"],
        "SENTIMENT_MODE": "finetuned",
        "SEEDS": per_notebook["06_results_and_explanations"]["SEEDS"],
    }  # only declared names that change; DATA_HOME stays the session's; DOWNLOAD is not declared here
    assert session_settings("04_lstm_dynamic_interest", "full")["DOWNLOAD"] is True
    with pytest.raises(ValueError, match="SCALE must be one of"):
        session_settings("04_lstm_dynamic_interest", "big")
    assert SCALES == ("auto", "full", "as-set")


def _run_until_loaded(path: Path, namespace: dict, data_home: Path) -> None:
    """Run the notebook's code cells in order up to its data loading, as a session would, with DATA_HOME set."""
    cells = _cells(path)
    at, _ = _parameters(cells)
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or "%pip" in cell.source:
            continue
        exec(compile(cell.source, f"{path.name}[{index}]", "exec"), namespace)  # noqa: S102 - our own notebook
        if index == at:
            namespace["DATA_HOME"] = str(data_home)
        if "load_dataset(DATASET" in cell.source:
            return


def test_a_gpu_session_fetches_the_real_data_set_hash_checked(tmp_path, monkeypatch, shared_data):
    from textinterest.datasets import ChecksumMismatchError
    from textinterest.datasets.registry import REGISTRY

    source = shared_data / MI_KEY
    if not source.is_file():
        pytest.skip(f"{source} is missing")
    # the publisher is a local file here (no network in tests); the registry's real hash is checked
    monkeypatch.setitem(REGISTRY, MI_KEY, replace(REGISTRY[MI_KEY], url=source.as_uri()))
    monkeypatch.setattr(profiles, "gpu_available", lambda: True)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {}
    _run_until_loaded(ROOT / "notebooks" / "00_data_tour.ipynb", namespace, tmp_path / "home")
    assert namespace["DOWNLOAD"] is True and namespace["DATASET"] == "amazon:Musical_Instruments"
    fetched = tmp_path / "home" / MI_KEY
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()
    assert namespace["ds"].interactions["user_id"].nunique() > 1000

    tampered = tmp_path / "tampered.json.gz"
    tampered.write_bytes(source.read_bytes()[:-10])
    monkeypatch.setitem(REGISTRY, MI_KEY, replace(REGISTRY[MI_KEY], url=tampered.as_uri()))
    with pytest.raises(ChecksumMismatchError):
        _run_until_loaded(ROOT / "notebooks" / "00_data_tour.ipynb", {}, tmp_path / "other")
    assert not (tmp_path / "other" / MI_KEY).exists()
