"""Tests for textinterest.apps.reproduce: profiles, the index, and reproduce() on tiny notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from textinterest.apps import reproduce as reproduce_pkg
from textinterest.apps.reporting import load_metrics, record_metrics
from textinterest.apps.reproduce import NotebookRun, build_index, list_notebooks, load_params, reproduce
from textinterest.apps.reproduce.digest import notebook_inputs_digest

# ---------------------------------------------------------------------------------------------
# Parameters and notebook selection
# ---------------------------------------------------------------------------------------------


def _write_params(folder: Path, text: str, name: str = "tiny") -> Path:
    (folder / "params").mkdir(parents=True, exist_ok=True)
    path = folder / "params" / f"{name}.yaml"
    path.write_text(text)
    return path


def test_load_params_reads_shared_and_per_notebook(tmp_path):
    _write_params(tmp_path, "shared:\n  DATASET: synthetic\nnotebooks:\n  00_a:\n    EPOCHS: 2\n")
    path, shared, per_notebook = load_params("tiny", tmp_path)
    assert path.name == "tiny.yaml"
    assert shared == {"DATASET": "synthetic"}
    assert per_notebook == {"00_a": {"EPOCHS": 2}}


@pytest.mark.parametrize(
    "text, message",
    [
        ("- 1\n- 2\n", "expected a mapping"),
        ("shared:\n  dataset: x\n", "shared.dataset"),
        ("sharde:\n  X: 1\n", "unknown top-level keys"),
        ("notebooks:\n  00_a: 3\n", "'notebooks' must map"),
    ],
)
def test_load_params_errors_name_the_field(tmp_path, text, message):
    _write_params(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        load_params("tiny", tmp_path)


def test_load_params_missing_profile_lists_available(tmp_path):
    _write_params(tmp_path, "shared: {}\n", name="smoke")
    with pytest.raises(FileNotFoundError, match="smoke"):
        load_params("nope", tmp_path)


def test_list_notebooks_only_by_prefix(tmp_path):
    for name in ("00_a", "01_b", "02_c"):
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / f"{name}.ipynb")
    assert [p.stem for p in list_notebooks(tmp_path, ["02", "00_a"])] == ["00_a", "02_c"]
    assert [p.stem for p in list_notebooks(tmp_path, "01, 02")] == ["01_b", "02_c"]
    with pytest.raises(ValueError, match="matches 0"):
        list_notebooks(tmp_path, ["9"])


def test_find_notebooks_dir_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebooks found"):
        reproduce_pkg.find_notebooks_dir(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# build_index on hand-made runs (no kernels)
# ---------------------------------------------------------------------------------------------


def test_build_index_contents(tmp_path):
    record_metrics(
        "00_a",
        {"rmse": 0.91234, "split": {"n_test": 10}, "rows": [{"model": "svd", "rmse": 0.9}]},
        path=tmp_path / "metrics",
    )
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "00_ratings.png").write_bytes(b"png")
    runs = [
        NotebookRun(
            "00_a",
            "ok",
            1.25,
            html="html/00_a.html",
            executed="executed/00_a.ipynb",
            metrics="metrics/00_a.json",
            figures=["figures/00_ratings.png"],
        ),
        NotebookRun("01_b", "failed", 2.0, error={"ename": "KeyError", "evalue": "'x' | y", "cell_index": 4}),
    ]
    md, html_path = build_index(tmp_path, runs, profile="tiny", environment={"python": "3.11", "device": "cpu"})
    text = md.read_text()
    assert "| 00_a | rmse | 0.9123 |" in text
    assert "| 00_a | split/n_test | 10 |" in text.split("## Details")[1]  # nested numbers are details
    assert "split/n_test" not in text.split("## Details")[0]
    assert "### 00_a: rows" in text and "| svd | 0.9 |" in text
    assert "[00_ratings](figures/00_ratings.png)" in text
    assert "| 01_b | failed | 2.0 |" in text
    assert "KeyError: 'x' \\| y (cell 4)" in text
    assert "1 of 2 notebooks ran successfully" in text
    assert "| device | cpu |" in text
    page = html_path.read_text()
    assert "<table>" in page and "figures/00_ratings.png" in page


# ---------------------------------------------------------------------------------------------
# reproduce() end to end on two tiny notebooks (one good, one failing)
# ---------------------------------------------------------------------------------------------


def _notebook(params_source: str, body: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# tiny"))
    nb.cells.append(nbformat.v4.new_code_cell(params_source, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(src) for src in body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture()
def tiny_notebooks(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    good = _notebook(
        'VALUE = 1\nNAME = "x"\nDATASET = "synthetic"\nMETRICS_DIR = None\nFIGURES_DIR = None',
        [
            "import os\nfrom pathlib import Path\nfrom textinterest.apps.reporting import figures_dir, record_metrics",
            'Path(figures_dir(FIGURES_DIR), "00_good_plot.png").write_bytes(b"png")\n'
            'assert os.environ["TQDM_DISABLE"] == "1"',
            'record_metrics("00_good", {"answer": VALUE * 2, "name": NAME, "dataset": DATASET}, path=METRICS_DIR)',
        ],
    )
    bad = _notebook(
        "VALUE = 1\nMETRICS_DIR = None",
        ['raise ValueError(f"boom {VALUE}")', 'print("never reached")'],
    )
    nbformat.write(good, folder / "00_good.ipynb")
    nbformat.write(bad, folder / "01_bad.ipynb")
    _write_params(folder, "shared:\n  VALUE: 21\n  UNUSED_ELSEWHERE: 1\nnotebooks:\n  00_good:\n    NAME: y\n")
    return folder


def test_reproduce_records_failure_and_keeps_going(tiny_notebooks, tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    out = tmp_path / "reports"
    code = reproduce("tiny", output=out, notebooks_dir=tiny_notebooks, execution_timeout=120)
    assert code != 0
    report = out / "tiny"
    index = (report / "index.md").read_text()
    # the failure, with its error, is in the index
    assert "| 01_bad | failed |" in index
    assert "ValueError: boom 21" in index
    # the good notebook ran with shared + per-notebook parameters and its metrics landed
    assert "| 00_good | ok |" in index
    assert "| 00_good | answer | 42 |" in index
    assert "| 00_good | name | y |" in index
    expected = {"answer": 42, "name": "y", "dataset": "synthetic"}
    assert load_metrics(report / "metrics" / "00_good.json")["metrics"] == expected
    assert not (report / "metrics" / "01_bad.json").exists()
    assert "[00_good_plot](figures/00_good_plot.png)" in index
    for sub in ("executed/00_good.ipynb", "executed/01_bad.ipynb", "html/00_good.html", "html/01_bad.html"):
        assert (report / sub).exists(), sub
    assert (report / "index.html").exists()
    for key in ("python", "torch", "transformers", "pandas", "numpy", "scikit-surprise", "device", "cpu_count", "date"):
        assert f"| {key} |" in index
    err = capfd.readouterr().err
    assert "[1/2] 00_good ... ok (" in err
    assert "IPKernelApp" not in err  # kernel start-up chatter stays out of the progress lines
    assert "[2/2] 01_bad ... FAILED (" in err and "boom 21" in err
    # the environment is restored afterwards
    assert "TQDM_DISABLE" not in __import__("os").environ
    runs = json.loads((report / "runs.json").read_text())
    assert [r["status"] for r in runs] == ["ok", "failed"]

    # rerunning only the good one, with a dataset override and the profile given as a file,
    # keeps the other's earlier status in the index
    code = reproduce(
        str(tiny_notebooks / "params" / "tiny.yaml"),
        dataset="movielens:100k",
        output=out,
        notebooks_dir=tiny_notebooks,
        only=["00"],
        execution_timeout=120,
    )
    assert code == 0
    index = (report / "index.md").read_text()
    assert "| 01_bad | failed |" in index and "| 00_good | ok |" in index
    assert "| 00_good | dataset | movielens:100k |" in index
    assert "| movielens:100k | [html](html/00_good.html)" in index  # the status table names the data set


def test_reproduce_rejects_override_the_notebook_does_not_declare(tiny_notebooks, tmp_path):
    _write_params(tiny_notebooks, "notebooks:\n  00_good:\n    TYPO: 1\n", name="typo")
    code = reproduce("typo", output=tmp_path / "r", notebooks_dir=tiny_notebooks, only=["00_good"])
    assert code == 1
    index = (tmp_path / "r" / "typo" / "index.md").read_text()
    assert "TYPO" in index and "does not declare" in index


def test_reproduce_unknown_notebook_in_params_is_an_error(tiny_notebooks, tmp_path):
    _write_params(tiny_notebooks, "notebooks:\n  99_missing:\n    X: 1\n", name="ghost")
    with pytest.raises(ValueError, match="99_missing"):
        reproduce("ghost", output=tmp_path / "r", notebooks_dir=tiny_notebooks)


# ---------------------------------------------------------------------------------------------
# The without_gpu layer of a profile
# ---------------------------------------------------------------------------------------------

_LAYERED = """
shared:
  MAX_LENGTH: 128
  EPOCHS: 9
notebooks:
  00_a:
    MAX_LENGTH: 256
    LAYERS: null
  01_b:
    EPOCHS: 20
without_gpu:
  shared:
    MAX_LENGTH: 64
  notebooks:
    00_a:
      LAYERS: 1
    02_c:
      USERS: 300
"""


def test_without_gpu_layer_wins_only_without_a_gpu(tmp_path):
    _write_params(tmp_path, _LAYERED)
    profile = reproduce_pkg.load_profile("tiny", tmp_path)

    shared, per_notebook, applied = profile.resolve(gpu=True)
    assert shared == {"MAX_LENGTH": 128, "EPOCHS": 9}
    assert per_notebook == {"00_a": {"MAX_LENGTH": 256, "LAYERS": None}, "01_b": {"EPOCHS": 20}}
    assert applied == {}

    shared, per_notebook, applied = profile.resolve(gpu=False)
    assert shared == {"MAX_LENGTH": 64, "EPOCHS": 9}
    # a shared CPU value beats the GPU layer's per-notebook value; other GPU overrides stay
    assert per_notebook == {"00_a": {"LAYERS": 1}, "01_b": {"EPOCHS": 20}, "02_c": {"USERS": 300}}
    assert applied["notebooks"]["02_c"] == {"USERS": 300}
    # load_params keeps answering with the GPU layer unless asked
    assert load_params("tiny", tmp_path)[1]["MAX_LENGTH"] == 128
    assert load_params("tiny", tmp_path, gpu=False)[1]["MAX_LENGTH"] == 64


@pytest.mark.parametrize(
    "text, message",
    [
        ("without_gpu: 3\n", "without_gpu must be a mapping"),
        ("without_gpu:\n  share:\n    X: 1\n", "unknown keys \\['share'\\] in without_gpu"),
        ("without_gpu:\n  notebooks:\n    00_a:\n      epochs: 1\n", "without_gpu.notebooks.00_a.epochs"),
    ],
)
def test_without_gpu_layer_errors_name_the_field(tmp_path, text, message):
    _write_params(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        reproduce_pkg.load_profile("tiny", tmp_path)


def test_reproduce_without_gpu_applies_the_layer_and_says_so(tiny_notebooks, tmp_path):
    _write_params(tiny_notebooks, "shared:\n  VALUE: 2\nwithout_gpu:\n  shared:\n    VALUE: 5\n", name="layered")
    out = tmp_path / "r"
    assert reproduce("layered", output=out, notebooks_dir=tiny_notebooks, only=["00"], gpu=False) == 0
    index = (out / "layered" / "index.md").read_text()
    assert "| 00_good | answer | 10 |" in index
    assert "no GPU" in index and "`VALUE = 5`" in index
    assert reproduce("layered", output=out, notebooks_dir=tiny_notebooks, only=["00"], gpu=True) == 0
    index = (out / "layered" / "index.md").read_text()
    assert "| 00_good | answer | 4 |" in index
    assert "no GPU" not in index


# ---------------------------------------------------------------------------------------------
# Reusing runs whose inputs did not change
# ---------------------------------------------------------------------------------------------


def _runs(report: Path) -> dict[str, dict]:
    return {r["notebook"]: r for r in json.loads((report / "runs.json").read_text())}


def test_reproduce_reuses_unchanged_runs_and_reexecutes_changed_ones(tiny_notebooks, tmp_path, capfd):
    out = tmp_path / "reports"
    report = out / "tiny"
    reproduce("tiny", output=out, notebooks_dir=tiny_notebooks, execution_timeout=120)
    first = _runs(report)
    assert first["00_good"]["inputs"] and not first["00_good"]["reused"]
    assert first["01_bad"]["status"] == "failed"  # a failed run is never reused
    capfd.readouterr()

    # unchanged: the good notebook is reused (same entry, marked), the failed one runs again
    code = reproduce("tiny", output=out, notebooks_dir=tiny_notebooks, execution_timeout=120)
    assert code == 1
    err = capfd.readouterr().err
    assert "[1/2] 00_good ... reused (inputs unchanged" in err
    assert "[2/2] 01_bad ... FAILED" in err
    assert "(1 reused from earlier runs with the same inputs)" in err
    second = _runs(report)
    assert second["00_good"]["reused"] is True
    assert second["00_good"]["finished_at"] == first["00_good"]["finished_at"]
    assert second["00_good"]["duration_s"] == first["00_good"]["duration_s"]
    index = (report / "index.md").read_text()
    assert "(reused)" in index and "1 of them were not executed again" in index
    assert "| 00_good | answer | 42 |" in index  # its metrics are still reported

    # a changed parameter, a changed notebook, a missing output or --force: executed again
    _write_params(tiny_notebooks, "shared:\n  VALUE: 22\nnotebooks:\n  00_good:\n    NAME: y\n")
    reproduce("tiny", output=out, notebooks_dir=tiny_notebooks, only=["00"], execution_timeout=120)
    assert _runs(report)["00_good"]["reused"] is False
    assert load_metrics(report / "metrics" / "00_good.json")["metrics"]["answer"] == 44

    nb = nbformat.read(tiny_notebooks / "00_good.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, tiny_notebooks / "00_good.ipynb")
    reproduce("tiny", output=out, notebooks_dir=tiny_notebooks, only=["00"], execution_timeout=120)
    assert _runs(report)["00_good"]["reused"] is False

    reproduce("tiny", output=out, notebooks_dir=tiny_notebooks, only=["00"], execution_timeout=120)
    assert _runs(report)["00_good"]["reused"] is True
    (report / "metrics" / "00_good.json").unlink()
    reproduce("tiny", output=out, notebooks_dir=tiny_notebooks, only=["00"], execution_timeout=120)
    assert _runs(report)["00_good"]["reused"] is False
    assert (report / "metrics" / "00_good.json").exists()

    reproduce("tiny", output=out, notebooks_dir=tiny_notebooks, only=["00"], reuse=False, execution_timeout=120)
    assert _runs(report)["00_good"]["reused"] is False


def test_inputs_digest_follows_parameters_gpu_and_data_files(tmp_path, monkeypatch):
    notebook = tmp_path / "00_a.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    data = tmp_path / "data"
    (data / "amazon").mkdir(parents=True)
    reviews = data / "amazon" / "reviews.json.gz"
    reviews.write_bytes(b"one")
    monkeypatch.setenv("TEXTINTEREST_DATA", str(data))
    real = {"DATASET": "amazon:Musical_Instruments"}

    def digest(params, gpu=False):
        return notebook_inputs_digest(notebook, params, kernel_name="python3", gpu=gpu)

    base = digest(real)
    assert digest(real) == base
    assert digest({**real, "EPOCHS": 2}) != base
    assert digest(real, gpu=True) != base
    reviews.write_bytes(b"other")  # a changed data file (size) changes the digest
    assert digest(real) != base
    # new weights in a local model folder named by a parameter change it too
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"1")
    with_model = digest({**real, "ENCODER": str(model)})
    (model / "weights.bin").write_bytes(b"22")
    assert digest({**real, "ENCODER": str(model)}) != with_model
    # the synthetic data set is made by the package's code: data files do not matter
    synthetic = digest({"DATASET": "synthetic"})
    (data / "extra.txt").write_text("x")
    assert digest({"DATASET": "synthetic"}) == synthetic


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], {"profile": "smoke", "reuse": True, "gpu": None, "dataset": None}),
        (
            ["--profile", "full", "--force", "--settings", "cpu", "--dataset", "movielens:100k"],
            {"profile": "full", "reuse": False, "gpu": False, "dataset": "movielens:100k"},
        ),
        (["--settings", "gpu"], {"gpu": True}),
    ],
)
def test_cli_reproduce_passes_its_options(monkeypatch, argv, expected):
    from textinterest.apps import cli

    seen = {}
    monkeypatch.setattr(reproduce_pkg, "reproduce", lambda **kwargs: seen.update(kwargs) or 0)
    assert cli.main(["reproduce", *argv]) == 0
    assert {k: seen[k] for k in expected} == expected
