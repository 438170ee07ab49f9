"""``index.md`` and ``index.html`` of a report folder, written from the notebooks' run records.

Only the records are read: a notebook's numbers come from the metrics it had recorded when its run
finished (kept in its record), never from whatever file happens to lie in ``metrics/``. Headline
results come from notebooks that succeeded; what a failed or interrupted notebook recorded is
listed separately, marked as not being results.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textinterest.apps.reporting import environment_info, load_metrics
from textinterest.apps.reproduce.runs import NotebookRun
from textinterest.utils import atomic_write_text, markdown_table

_UNFINISHED_NOTE = {
    "running": "This run has not finished: it is still going, or it was stopped without a chance to say so.",
    "interrupted": "This run was interrupted.",
}


def _first_line(text: str, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cell(value: Any) -> str:
    """A value as table cell text (floats with 4 significant digits; None as "–")."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, (Mapping, list)):
        return json.dumps(value)
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return markdown_table(list(header), [[_cell(v) for v in row] for row in rows]).splitlines()


def _flatten_scalars(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar metrics (None included) with nested dict keys joined by "/"; lists go to the tables section."""
    out: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _flatten_scalars(value, prefix=f"{name}/")
        elif value is None or isinstance(value, (int, float, str, bool)):
            out.append((name, value))
    return out


def _record_tables(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, list[dict[str, Any]]]]:
    """Lists of dicts (result tables) anywhere in the metrics, with their key paths."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _record_tables(value, prefix=f"{name}/")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            out.append((name, [dict(v) for v in value]))
    return out


def _metrics_of(report_dir: Path, run: NotebookRun) -> dict[str, Any]:
    """What a run recorded: its record's copy, else (records written by hand) its metrics file."""
    if run.values is not None:
        return dict(run.values)
    if run.metrics and (report_dir / run.metrics).is_file():
        try:
            return load_metrics(report_dir / run.metrics)["metrics"]
        except ValueError as err:
            return {"unreadable metrics file": str(err)}
    return {}


def _display_path(path: str | os.PathLike[str]) -> str:
    """A path relative to the current directory when it lies below it (reports get committed)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _summary(runs: Sequence[NotebookRun], run_state: str, params_file: Any, adjustments: Any) -> list[str]:
    n_ok = sum(r.status == "ok" for r in runs)
    lines = [
        f"{n_ok} of {len(runs)} notebooks ran successfully"
        f" (total execution time {sum(r.duration_s for r in runs):.1f} s)."
        + (f" Parameters: `{_display_path(params_file)}`." if params_file else "")
    ]
    if run_state in _UNFINISHED_NOTE:
        done = [r.notebook for r in runs if r.status in ("ok", "failed")]
        not_done = [f"{r.notebook} ({r.status})" for r in runs if r.status not in ("ok", "failed")]
        lines += [
            "",
            f"**{_UNFINISHED_NOTE[run_state]}** Finished: {', '.join(done) or 'none'}. "
            f"Not finished: {', '.join(not_done) or 'none'}.",
        ]
    n_reused = sum(r.reused for r in runs)
    if n_reused:
        lines += [
            "",
            f"{n_reused} of them were not executed again: an earlier run had exactly the same inputs "
            "(notebook, parameters, package source and versions, data file contents), its outputs are "
            "unchanged, and they are shown with its date and duration. `textinterest reproduce --force` "
            "executes everything.",
        ]
    if adjustments:
        lines += ["", "This machine has no GPU, so the profile's `without_gpu` settings were applied on top of it:", ""]
        for key, value in (adjustments.get("shared") or {}).items():
            lines.append(f"- every notebook: `{key} = {value!r}`")
        for name, overrides in (adjustments.get("notebooks") or {}).items():
            lines.append(f"- {name}: " + ", ".join(f"`{k} = {v!r}`" for k, v in overrides.items()))
    return lines


def _results(runs: Sequence[NotebookRun], metrics: Mapping[str, dict[str, Any]]) -> list[str]:
    headline, details, unfinished = [], [], []
    for run in runs:
        for key, value in _flatten_scalars(metrics.get(run.notebook, {})):
            if run.status != "ok":
                unfinished.append((run.notebook, run.status, key, value))
            else:
                (details if "/" in key else headline).append((run.notebook, key, value))
    lines = ["", "## Headline results", ""]
    lines += _table(["Notebook", "Metric", "Value"], headline) if headline else ["No metrics were recorded."]
    ok = {r.notebook for r in runs if r.status == "ok"}
    for notebook in [r.notebook for r in runs if r.notebook in ok]:
        for key, records in _record_tables(metrics.get(notebook, {})):
            columns: list[str] = []
            for record in records:
                columns += [c for c in record if c not in columns]
            lines += ["", f"### {notebook}: {key}", ""]
            lines += _table(columns, [[r.get(c) for c in columns] for r in records])
    if details:
        lines += ["", "## Details", ""] + _table(["Notebook", "Metric", "Value"], details)
    if unfinished:
        lines += ["", "## Recorded by notebooks that did not succeed (not results)", ""]
        lines += _table(["Notebook", "Status", "Metric", "Value"], unfinished)
    return lines


def _status_rows(runs: Sequence[NotebookRun], current_run: str) -> list[tuple[Any, ...]]:
    rows = []
    for run in runs:
        links = " · ".join(
            f"[{label}]({target})" for label, target in (("html", run.html), ("ipynb", run.executed)) if target
        )
        error = f"{run.error['ename']}: {_first_line(run.error['evalue'])}" if run.error else ""
        if run.error and run.error.get("cell_index") is not None:
            error += f" (cell {run.error['cell_index']})"
        finished = run.finished_at + (" (reused)" if run.reused else "")
        if current_run and run.run_id != current_run:
            finished += " (earlier run)"
        dataset = run.parameters.get("DATASET", "")
        rows.append((run.notebook, run.status, f"{run.duration_s:.1f}", dataset, links, error, finished))
    return rows


def build_index(
    report_dir: str | os.PathLike[str],
    runs: Sequence[NotebookRun],
    profile: str = "",
    params_file: str | os.PathLike[str] | None = None,
    environment: Mapping[str, Any] | None = None,
    adjustments: Mapping[str, Any] | None = None,
    run_state: str = "finished",
    current_run: str = "",
) -> tuple[Path, Path]:
    """Write ``index.md`` and ``index.html`` for a report folder and return their paths.

    Args:
        report_dir: the report folder (links in the index are relative to it).
        runs: one record per notebook, in order; status "ok", "failed", "running", "interrupted" or "pending".
        profile: the profile's name, for the title.
        params_file: the parameter file used, stated in the index.
        environment: what :func:`~textinterest.apps.reporting.environment_info` returns (computed when None).
        adjustments: the profile's ``without_gpu`` layer when it was applied, stated in the index.
        run_state: "finished", "running" or "interrupted"; an unfinished run says what finished and what did not.
        current_run: the id of the run writing the index; records of other runs are marked "(earlier run)".
    """
    report_dir = Path(report_dir)
    env = dict(environment) if environment is not None else environment_info()
    metrics = {run.notebook: _metrics_of(report_dir, run) for run in runs}
    lines = [f"# textinterest report — {profile or report_dir.name}", ""]
    lines += _summary(runs, run_state, params_file, adjustments)
    lines += _results(runs, metrics)

    lines += ["", "## Figures", ""]
    figures = [(run.notebook, rel) for run in runs if run.status == "ok" for rel in run.figures]
    for notebook in dict.fromkeys(name for name, _ in figures):
        links = ", ".join(f"[{Path(rel).stem}]({rel})" for name, rel in figures if name == notebook)
        lines.append(f"- **{notebook}**: {links}")
    if not figures:
        lines.append("No figures were saved.")

    lines += ["", "## Notebooks", ""]
    header = ["Notebook", "Status", "Time (s)", "Dataset", "Output", "Error", "Finished (UTC)"]
    lines += _table(header, _status_rows(runs, current_run))
    lines += ["", "## Environment", ""] + _table(["", ""], list(env.items())) + [""]
    markdown_text = "\n".join(lines)

    md_path = atomic_write_text(report_dir / "index.md", markdown_text)
    html_path = atomic_write_text(
        report_dir / "index.html", _markdown_to_html(markdown_text, title=f"textinterest report {profile}")
    )
    return md_path, html_path


def _markdown_to_html(markdown_text: str, title: str) -> str:
    try:
        import mistune

        body = mistune.create_markdown(plugins=["table"])(markdown_text)
    except Exception:  # noqa: BLE001 - mistune comes with nbconvert; fall back to preformatted text
        body = f"<pre>{html.escape(markdown_text)}</pre>"
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;}"
        "table{border-collapse:collapse;margin:0.5em 0;}td,th{border:1px solid #ccc;padding:3px 8px;}"
        "th{background:#f3f3f3;}code{background:#f3f3f3;}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )
