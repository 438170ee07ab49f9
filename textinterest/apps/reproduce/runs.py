"""The run records of a report folder: ``runs.json`` (one entry per notebook) and ``run.json`` (the current run).

Both files are replaced atomically, and ``runs.json`` is rewritten as soon as a notebook starts and
again when it finishes, so that a run stopped at any point leaves records that say exactly what
finished. A record holds what its notebook recorded (its metrics), its inputs digest and the
sha256 of every output it wrote; an earlier result is only reused when all of these still match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from textinterest.utils import atomic_write_text

RUNS_FILE = "runs.json"
RUN_FILE = "run.json"


@dataclass
class NotebookRun:
    """What happened to one notebook in a reproduction.

    Args:
        notebook: the notebook's name (file name without ``.ipynb``).
        status: "ok", "failed", "running" (started; still going or stopped without a trace),
            "interrupted" (stopped by Ctrl-C) or "pending" (not started in the current run).
        duration_s: wall time of the execution in seconds.
        error: ``{"ename", "evalue", "cell_index"}`` when it failed.
        executed: the executed notebook, relative to the report folder.
        html: its HTML rendering, relative to the report folder ("" if rendering failed).
        metrics: its metrics file, relative to the report folder ("" if none was recorded).
        parameters: the parameters it was given.
        finished_at: when the run ended (UTC, ISO 8601).
        inputs: digest of everything the run depended on
            (see :func:`~textinterest.apps.reproduce.digest.notebook_inputs_digest`).
        reused: True when this entry was carried over from an earlier run with the same inputs
            instead of executing the notebook again (its duration is the earlier run's).
        run_id: the reproduction this entry belongs to (an executed or a reused notebook).
        values: the metrics the notebook recorded, as they were when it finished.
        figures: the figures it saved, relative to the report folder.
        outputs: sha256 of every output file (executed notebook, metrics, figures), by relative path.
    """

    notebook: str
    status: str
    duration_s: float = 0.0
    error: dict[str, Any] | None = None
    executed: str = ""
    html: str = ""
    metrics: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    finished_at: str = ""
    inputs: str = ""
    reused: bool = False
    run_id: str = ""
    values: dict[str, Any] | None = None
    figures: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


_FIELDS = {f.name for f in fields(NotebookRun)}


def file_sha256(path: Path) -> str:
    """sha256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_outputs(report: Path, relative: Iterable[str]) -> dict[str, str]:
    """sha256 of each existing file among ``relative`` (paths below ``report``)."""
    return {rel: file_sha256(report / rel) for rel in relative if rel and (report / rel).is_file()}


def load_runs(report: Path) -> dict[str, NotebookRun]:
    """The entries of ``runs.json`` by notebook name ({} when missing or unreadable)."""
    path = report / RUNS_FILE
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        runs = [NotebookRun(**{k: v for k, v in entry.items() if k in _FIELDS}) for entry in entries]
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # unreadable records only cost executing again
    return {run.notebook: run for run in runs}


def save_run(report: Path, run: NotebookRun, existing_notebooks: set[str]) -> dict[str, NotebookRun]:
    """Replace one notebook's entry in ``runs.json`` (atomically) and return all entries."""
    merged = {name: r for name, r in load_runs(report).items() if name in existing_notebooks}
    merged[run.notebook] = run
    ordered = [merged[k] for k in sorted(merged)]
    atomic_write_text(report / RUNS_FILE, json.dumps([asdict(r) for r in ordered], indent=2, allow_nan=False) + "\n")
    return merged


def load_run_info(report: Path) -> dict[str, Any]:
    """``run.json``: the current (or last) run's id, state, selection and start time ({} when missing)."""
    try:
        info = json.loads((report / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def save_run_info(report: Path, info: dict[str, Any]) -> None:
    """Replace ``run.json`` atomically."""
    atomic_write_text(report / RUN_FILE, json.dumps(info, indent=2) + "\n")


def reusable(previous: NotebookRun | None, inputs: str, report: Path) -> bool:
    """An earlier *successful* run with the same inputs whose recorded outputs are all unchanged."""
    if previous is None or previous.status != "ok" or not inputs or previous.inputs != inputs:
        return False
    if not previous.outputs or previous.executed not in previous.outputs:
        return False  # records from before outputs were hashed cannot be checked
    if previous.metrics and previous.metrics not in previous.outputs:
        return False
    for rel, sha in previous.outputs.items():
        path = report / rel
        if not path.is_file() or file_sha256(path) != sha:
            return False
    return True
