"""reproduce never reports stale or mixed results: records per notebook, content-hashed data, Ctrl-C.

The notebooks here are tiny and written by the tests: each reads one data file per data set
(``<DATA_HOME>/<name>.txt``, whitespace-separated integers) and records the data set's name and a
total of the file, so every number in a report can be traced to the data set it came from.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from textinterest.apps.reproduce import reproduce
from textinterest.apps.reproduce.digest import FileHasher

ROOT = Path(__file__).resolve().parents[1]

PARAMS = 'DATASET = "amazon:a"\nDATA_HOME = None\nMETRICS_DIR = None\nFIGURES_DIR = None\nSTOP_ON = ""\nSLEEP = 0.0'


def data_notebook(name: str, factor: int, extra: str = "") -> nbformat.NotebookNode:
    """A notebook recording ``dataset`` and ``total`` (factor × the sum of the data set's file)."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}))
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import os, signal, time\nfrom pathlib import Path\n"
            "from textinterest.apps.reporting import record_metrics\n"
            'numbers = Path(DATA_HOME, DATASET.split(":")[1] + ".txt").read_text().split()\n'
            "time.sleep(SLEEP)"
        )
    )
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "if STOP_ON and STOP_ON == DATASET:  # Ctrl-C, as a user would press it while this runs\n"
            "    os.kill(os.getppid(), signal.SIGINT)\n    time.sleep(60)"
        )
    )
    nb.cells.append(
        nbformat.v4.new_code_cell(
            f'record_metrics("{name}", {{"dataset": DATASET, "total": {factor} * sum(map(int, numbers))}}, '
            "path=METRICS_DIR)" + (f"\n{extra}" if extra else "")
        )
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def make_project(root: Path, n_notebooks: int = 2, stop_on: str = "", sleep: float = 0.0) -> tuple[Path, Path]:
    """Notebooks ``00_n`` ... with a profile, and a data home with data sets a, b and c. Returns (notebooks, data).

    Args:
        root: an empty folder.
        n_notebooks: how many notebooks.
        stop_on: a data set on which the last notebook sends its runner SIGINT (a Ctrl-C).
        sleep: seconds each notebook waits, to give a killer something to interrupt.
    """
    notebooks, data = root / "nbs", root / "data"
    (notebooks / "params").mkdir(parents=True)
    data.mkdir()
    for position in range(n_notebooks):
        nbformat.write(data_notebook(f"{position:02d}_n", position + 1), notebooks / f"{position:02d}_n.ipynb")
    for name, numbers in {"a": "1 2 3", "b": "40 50 60", "c": "700 800 900"}.items():
        (data / f"{name}.txt").write_text(numbers)
    profile = f"shared:\n  DATA_HOME: {str(data)!r}\n  SLEEP: {sleep}\n"
    if stop_on:  # the last notebook presses Ctrl-C when it runs on that data set
        profile += f"notebooks:\n  {n_notebooks - 1:02d}_n:\n    STOP_ON: {stop_on!r}\n"
    (notebooks / "params" / "tiny.yaml").write_text(profile)
    return notebooks, data


def expected_total(data: Path, dataset: str, notebook: str) -> int:
    """What ``notebook`` must report for ``dataset`` given the data files as they are now."""
    factor = int(notebook.split("_")[0]) + 1
    return factor * sum(map(int, (data / f"{dataset.split(':')[1]}.txt").read_text().split()))


def cli_command(notebooks: Path, output: Path, dataset: str) -> list[str]:
    """``textinterest reproduce`` on the tiny project, as a separate process."""
    return [
        sys.executable,
        "-m",
        "textinterest",
        "reproduce",
        "--profile",
        "tiny",
        "--notebooks-dir",
        str(notebooks),
        "--output",
        str(output),
        "--dataset",
        dataset,
        "--settings",
        "cpu",
    ]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_cli(notebooks: Path, output: Path, dataset: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(notebooks, output, dataset),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| Notebook"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def parse_index(index_md: str) -> tuple[list[list[str]], dict[str, list[str]]]:
    """(headline rows [notebook, metric, value], status rows by notebook [notebook, status, time, dataset, ...])."""
    headline = index_md.split("## Headline results", 1)[1].split("\n## ", 1)[0]
    notebooks = index_md.split("## Notebooks", 1)[1].split("\n## ", 1)[0]
    return _rows(headline), {row[0]: row for row in _rows(notebooks)}


def assert_index_consistent(report: Path, data: Path) -> dict[str, list[str]]:
    """Every headline number belongs to the data set its notebook's row names, with today's data."""
    headline, status = parse_index((report / "index.md").read_text(encoding="utf-8"))
    for notebook, metric, value in headline:
        row = status[notebook]
        assert row[1] == "ok", f"{notebook} has headline numbers but status {row[1]}"
        if metric == "dataset":
            assert value == row[3], f"{notebook} shows {value}'s numbers in a row for {row[3]}"
        if metric == "total":
            assert int(value.replace(",", "")) == expected_total(data, row[3], notebook), (notebook, row)
    return status


def _runs(report: Path) -> dict[str, dict]:
    return {r["notebook"]: r for r in json.loads((report / "runs.json").read_text(encoding="utf-8"))}


# ---------------------------------------------------------------------------------------------
# The scenario: data set A, B interrupted, A again
# ---------------------------------------------------------------------------------------------


def test_interrupted_run_of_another_data_set_is_neither_shown_nor_reused(tmp_path, capfd):
    notebooks, data = make_project(tmp_path, stop_on="amazon:b")
    out = tmp_path / "reports"
    report = out / "tiny"
    assert reproduce("tiny", dataset="amazon:a", output=out, notebooks_dir=notebooks, gpu=False) == 0

    # B: 00 finishes, Ctrl-C arrives while 01 runs
    interrupted = run_cli(notebooks, out, "amazon:b")
    assert interrupted.returncode == 130, interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    last = interrupted.stderr.strip().splitlines()[-1]
    assert last.startswith("textinterest: interrupted during 01_n; finished: 00_n")
    runs = _runs(report)
    assert runs["00_n"]["status"] == "ok" and runs["00_n"]["parameters"]["DATASET"] == "amazon:b"
    assert runs["01_n"]["status"] == "interrupted"
    index = (report / "index.md").read_text(encoding="utf-8")
    assert "This run was interrupted" in index and "Not finished: 01_n (interrupted)" in index
    status = assert_index_consistent(report, data)
    assert status["00_n"][1] == "ok" and status["01_n"][1] == "interrupted"

    # A again: B's 00 is not A's, so it is executed again, and nothing of B's is shown
    capfd.readouterr()
    assert reproduce("tiny", dataset="amazon:a", output=out, notebooks_dir=notebooks, gpu=False) == 0
    err = capfd.readouterr().err
    assert "[1/2] 00_n ... ok" in err and "[2/2] 01_n ... ok" in err
    status = assert_index_consistent(report, data)
    assert {row[3] for row in status.values()} == {"amazon:a"}
    assert "amazon:b" not in (report / "index.md").read_text(encoding="utf-8")
    assert {r["parameters"]["DATASET"] for r in _runs(report).values()} == {"amazon:a"}


def test_earlier_result_is_not_reused_when_its_outputs_changed(tmp_path, capfd):
    notebooks, data = make_project(tmp_path, n_notebooks=1)
    out = tmp_path / "reports"
    assert reproduce("tiny", dataset="amazon:a", output=out, notebooks_dir=notebooks, gpu=False) == 0
    metrics_file = out / "tiny" / "metrics" / "00_n.json"
    metrics_file.write_text(metrics_file.read_text().replace('"total": 6', '"total": 7'))
    capfd.readouterr()
    assert reproduce("tiny", dataset="amazon:a", output=out, notebooks_dir=notebooks, gpu=False) == 0
    assert "[1/1] 00_n ... ok" in capfd.readouterr().err
    assert_index_consistent(out / "tiny", data)


# ---------------------------------------------------------------------------------------------
# Data judged by content
# ---------------------------------------------------------------------------------------------


def test_data_edit_with_size_and_mtime_restored_is_not_reused(tmp_path, capfd):
    notebooks, data = make_project(tmp_path, n_notebooks=1)
    out = tmp_path / "reports"
    assert reproduce("tiny", dataset="amazon:a", output=out, notebooks_dir=notebooks, gpu=False) == 0
    assert reproduce("tiny", dataset="amazon:a", output=out, notebooks_dir=notebooks, gpu=False) == 0
    assert "[1/1] 00_n ... reused" in capfd.readouterr().err  # unchanged data: reused

    file = data / "a.txt"
    before = file.stat()
    file.write_text("3 2 9")  # same size
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (file.stat().st_size, file.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert reproduce("tiny", dataset="amazon:a", output=out, notebooks_dir=notebooks, gpu=False) == 0
    assert "[1/1] 00_n ... ok" in capfd.readouterr().err
    headline, _ = parse_index((out / "tiny" / "index.md").read_text(encoding="utf-8"))
    assert ["00_n", "total", "14"] in headline
    assert (out / "tiny" / ".file-hashes.json").is_file()


def test_file_hasher_uses_its_cache_until_told_to_verify(tmp_path):
    file = tmp_path / "d.txt"
    file.write_text("abc")
    cache = tmp_path / "hashes.json"
    real = FileHasher(cache).sha256(file)
    hasher = FileHasher(cache)
    hasher.sha256(file)
    hasher.save()
    entries = json.loads(cache.read_text())
    entries[str(file.resolve())]["sha256"] = "0" * 64  # a cache that lies
    cache.write_text(json.dumps(entries))
    assert FileHasher(cache).sha256(file) == "0" * 64  # the identity matches: the cache is trusted
    assert FileHasher(cache, verify=True).sha256(file) == real  # --verify-data rehashes
    cache.write_text("{broken")
    assert FileHasher(cache).sha256(file) == real  # a damaged cache only costs rehashing


def test_cli_verify_data_reaches_reproduce(monkeypatch):
    from textinterest.apps import cli
    from textinterest.apps import reproduce as reproduce_pkg

    seen = {}
    monkeypatch.setattr(reproduce_pkg, "reproduce", lambda **kwargs: seen.update(kwargs) or 0)
    assert cli.main(["reproduce", "--verify-data"]) == 0
    assert seen["verify_data"] is True


# ---------------------------------------------------------------------------------------------
# What the index shows of failed notebooks and of NaN
# ---------------------------------------------------------------------------------------------


def test_failed_notebook_metrics_are_not_headlines_and_nan_is_shown(tmp_path):
    notebooks, data = make_project(tmp_path, n_notebooks=0)
    nan = data_notebook("00_nan", 1)
    nan.cells.append(
        nbformat.v4.new_code_cell('record_metrics("00_nan", {"rmse": float("nan"), "n": 3}, path=METRICS_DIR)')
    )
    nbformat.write(nan, notebooks / "00_nan.ipynb")
    partial = data_notebook("01_partial", 1, extra='raise RuntimeError("diverged after recording")')
    nbformat.write(partial, notebooks / "01_partial.ipynb")
    out = tmp_path / "reports"
    assert reproduce("tiny", dataset="amazon:b", output=out, notebooks_dir=notebooks, gpu=False) == 1
    index = (out / "tiny" / "index.md").read_text(encoding="utf-8")
    headline, status = parse_index(index)
    assert ["00_nan", "rmse", "NaN"] in headline
    assert status["01_partial"][1] == "failed"
    assert not [row for row in headline if row[0] == "01_partial"]
    not_results = index.split("## Recorded by notebooks that did not succeed (not results)", 1)[1]
    assert "| 01_partial | failed | total | 150 |" in not_results
    assert "RuntimeError: diverged after recording" in index


# ---------------------------------------------------------------------------------------------
# Fault injection: kill reproduce at random points, then look at what it left
# ---------------------------------------------------------------------------------------------


def _edit_keeping_size_and_mtime(file: Path) -> None:
    """Change a data file's total without changing its size or modification time."""
    before = file.stat()
    text = file.read_text()
    file.write_text(str(int(text[0]) % 9 + 1) + text[1:])
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))


def _check_report(report: Path, data: Path) -> dict[str, list[str]]:
    """The report left behind is readable and never mixes data sets or stale numbers."""
    if not (report / "index.md").exists():
        return {}
    if (report / "runs.json").exists():  # absent only when killed before the first notebook started
        json.loads((report / "runs.json").read_text(encoding="utf-8"))  # never half-written
    status = assert_index_consistent(report, data)
    shown = {row[3] for row in status.values() if row[1] == "ok"}
    assert len(shown) <= 1, f"one index shows results of several data sets: {shown}"
    return status


@pytest.mark.slow
def test_killed_at_random_points_never_leaves_a_mixed_or_stale_report(tmp_path):
    rng = random.Random(13)
    notebooks, data = make_project(tmp_path, n_notebooks=2)
    out = tmp_path / "reports"
    report = out / "tiny"
    kills = completed = 0
    while kills < 20:
        dataset = f"amazon:{rng.choice('abc')}"
        if rng.random() < 0.2:
            _edit_keeping_size_and_mtime(data / f"{rng.choice('abc')}.txt")
        if kills and rng.random() < 0.25:  # the run after a kill, left alone
            result = run_cli(notebooks, out, dataset)
            assert result.returncode == 0, result.stderr
            status = _check_report(report, data)
            assert {(row[1], row[3]) for row in status.values()} == {("ok", dataset)}
            completed += 1
            continue
        sig = rng.choice([signal.SIGKILL, signal.SIGINT])
        process = subprocess.Popen(
            cli_command(notebooks, out, dataset),
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            process.wait(timeout=rng.uniform(0.1, 2.5))
        except subprocess.TimeoutExpired:
            process.send_signal(sig)
            kills += 1
        _, err = process.communicate(timeout=60)
        if process.returncode in (1, -signal.SIGINT) and sig == signal.SIGINT:
            # Python was still starting (nothing ran), or the signal hit the exit of a run that had already
            # closed its report (finished, or interrupted and said so in its one line)
            assert "[1/" not in err or "report:" in err or "textinterest: interrupted" in err, err
            assert "Traceback" not in err, err
        elif process.returncode == 130:
            assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("textinterest: interrupted"), err
            if "[1/" in err:  # the run had started: its report says it was interrupted
                assert "This run was interrupted" in (report / "index.md").read_text(), err
        else:
            assert process.returncode in (0, -signal.SIGKILL), (process.returncode, err)
        _check_report(report, data)
    assert completed >= 3

    # after all that, a run that is left alone reports exactly this data set, reused or executed
    result = run_cli(notebooks, out, "amazon:b")
    assert result.returncode == 0, result.stderr
    status = _check_report(report, data)
    assert {(row[1], row[3]) for row in status.values()} == {("ok", "amazon:b")}


def test_the_source_digest_covers_the_whole_package_not_only_the_apps():
    # a change to a model must make `reproduce` run the notebooks again, as a change to the apps does
    from textinterest.utils import package_root

    root = package_root()
    assert root.name == "textinterest"
    assert (root / "models" / "registry.py").is_file() and (root / "apps" / "reproduce" / "digest.py").is_file()


# a kernel that writes to its own stderr as it exits, past every cell, as libzmq's assertion lines and tornado's
# uncaught-exception logs do from a kernel that is shutting down
EXIT_NOISE = 'import atexit\natexit.register(os.write, 2, b"kernel noise at exit\\n")'


def _reproduce_one_notebook(tmp_path: Path, capfd: pytest.CaptureFixture[str], extra: str) -> tuple[int, Path, str]:
    """Reproduce a one-notebook project whose last cell runs ``extra``: (exit status, kernel log, captured output)."""
    notebooks, _ = make_project(tmp_path, n_notebooks=1)
    nbformat.write(data_notebook("00_n", 1, extra=extra), notebooks / "00_n.ipynb")
    out = tmp_path / "reports"
    capfd.readouterr()
    status = reproduce("tiny", dataset="amazon:a", output=out, notebooks_dir=notebooks, gpu=False)
    captured = capfd.readouterr()
    return status, out / "tiny" / "logs" / "00_n.kernel.log", captured.err + captured.out


def test_what_a_kernel_writes_outside_its_cells_goes_to_its_log_not_between_the_progress_lines(tmp_path, capfd):
    status, log, printed = _reproduce_one_notebook(tmp_path, capfd, EXIT_NOISE)
    assert status == 0 and "[1/1] 00_n ... ok" in printed
    assert "kernel noise" not in printed and "kernel noise at exit" in log.read_text()


def test_a_failure_points_at_the_kernel_log_when_the_kernel_wrote_one(tmp_path, capfd):
    status, log, printed = _reproduce_one_notebook(tmp_path, capfd, EXIT_NOISE + '\nraise ValueError("broken")')
    assert status == 1
    assert "[1/1] 00_n ... FAILED" in printed and f"ValueError: broken (the kernel's own output: {log})" in printed
    assert "kernel noise" not in printed and "kernel noise at exit" in log.read_text()
