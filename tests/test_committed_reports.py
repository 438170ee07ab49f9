"""The committed full report and benchmarks/RESULTS.md agree, and the report holds no licensed data.

``reports/full/`` is written by ``textinterest reproduce --profile full --dataset
amazon:Musical_Instruments``; benchmarks/RESULTS.md quotes its headline table. These checks fail when one is
regenerated without the other, or when build output that prints review texts gets committed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "full"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_SECTION = "## The full report"

pytestmark = pytest.mark.skipif(not (REPORT / "index.md").exists(), reason="no committed full report")


def _results_rows() -> list[str]:
    text = RESULTS.read_text(encoding="utf-8")
    assert RESULTS_SECTION in text, f"benchmarks/RESULTS.md has no section {RESULTS_SECTION!r}"
    section = text.split(RESULTS_SECTION, 1)[1].split("\n#", 1)[0]
    rows = [
        line.strip() for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Notebook")
    ]
    assert rows, "the full-report section of benchmarks/RESULTS.md has no table rows"
    return rows


def test_results_headline_rows_are_the_reports():
    index = (REPORT / "index.md").read_text(encoding="utf-8")
    headline = index.split("## Headline results", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    missing = [row for row in _results_rows() if row not in headline]
    assert not missing, f"benchmarks/RESULTS.md rows not in reports/full/index.md's headline table: {missing}"


def test_report_index_agrees_with_its_metrics_files():
    index = (REPORT / "index.md").read_text(encoding="utf-8")
    files = sorted((REPORT / "metrics").glob("*.json"))
    assert len(files) == 7
    for file in files:
        metrics = json.loads(file.read_text(encoding="utf-8"))["metrics"]
        for key, value in metrics.items():
            if isinstance(value, float):
                assert f"| {file.stem} | {key} | {value:.4g} |" in index, (file.stem, key)


def test_report_is_a_completed_full_run_on_real_data():
    runs = json.loads((REPORT / "runs.json").read_text(encoding="utf-8"))
    assert [r["status"] for r in runs] == ["ok"] * 7
    assert {r["parameters"]["DATASET"] for r in runs} == {"amazon:Musical_Instruments"}
    for run in runs:
        assert not Path(run["parameters"].get("METRICS_DIR", "metrics")).is_absolute()


def test_no_executed_notebooks_or_review_texts_are_committed():
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=ROOT, capture_output=True, text=True, check=False)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    files = tracked.stdout.split()
    assert not [f for f in files if re.search(r"/(executed|html)/", f) or f.endswith(".ipynb")]
    # machine-local state of a run: absolute data paths and inode identities, the run's live state
    assert not [f for f in files if f.endswith(("/.file-hashes.json", "/run.json"))]
