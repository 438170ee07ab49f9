"""The benchmarks subpackage: one module per benchmark, reachable from the CLI and with ``python -m``."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from textinterest.apps import benchmarks, cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", benchmarks.NAMES)
def test_every_benchmark_is_a_module_with_main(name):
    module = importlib.import_module(f"textinterest.apps.benchmarks.{name}")
    assert callable(module.main)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0


def test_python_dash_m_runs_a_benchmark_without_path_tricks(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "textinterest.apps.benchmarks.embed", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "--repeats" in out.stdout


def test_cli_routes_to_the_benchmark_and_checks_its_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["benchmark", "embed", "--n", "-5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--n: expected an integer >= 1, got '-5'" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        cli.main(["benchmark", "no-such-benchmark"])
    assert exc.value.code == 2
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmarks.run("no-such-benchmark")


def test_no_sys_path_manipulation_anywhere():
    pattern = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*=")
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("textinterest", "benchmarks", "tests", "notebooks")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in (".py", ".ipynb")
        and ".ipynb_checkpoints" not in p.parts
        and pattern.search(p.read_text())
        and p.name != "test_benchmarks.py"
    ]
    assert offenders == []


def test_benchmarks_doc_sits_beside_the_results_and_links_resolve():
    doc = ROOT / "benchmarks" / "BENCHMARKS.md"
    assert doc.is_file() and not (ROOT / "BENCHMARKS.md").exists()
    for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
        if not target.startswith("http"):
            assert (doc.parent / target).exists(), target


def test_cache_verify_on_a_tiny_model(tmp_path, monkeypatch):
    from tiny_models import build_tiny_model

    monkeypatch.delenv("TEXTINTEREST_DATA", raising=False)
    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "record.json"
    argv = [
        "--model",
        str(model),
        "--n",
        "12",
        "--max-length",
        "32",
        "--large",
        "5000",
        "--repeats",
        "2",
        "--output",
        str(out),
    ]
    assert benchmarks.run("cache_verify", argv) == 0
    record = json.loads(out.read_text())
    assert record["warm_all_hits"] is True
    assert len(record["cold_s"]) == len(record["warm_s"]) == 2
    assert record["read_large_median_s"] > 0
