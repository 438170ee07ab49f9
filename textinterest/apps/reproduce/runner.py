"""Execute the notebooks with papermill, one record per notebook, and keep the index up to date.

:func:`reproduce` executes the notebooks in order with the parameters of a profile, keeps going
when one fails, and writes::

    <output>/<profile>/
        executed/<notebook>.ipynb   the executed notebooks (with outputs)
        html/<notebook>.html        a rendering of each
        metrics/<notebook>.json     what each notebook recorded
        figures/*.png               the figures the notebooks saved
        logs/<notebook>.kernel.log  what each notebook's kernel process wrote to its own stdout and stderr
        runs.json                   each notebook's record: status, inputs digest, metrics, output hashes
        run.json                    the current run: id, state, which notebooks it covers
        .file-hashes.json           content hashes of data files, by file identity (a cache)
        index.md, index.html        results, figures, statuses and the environment

A notebook's record is written when it starts (status "running", which voids its earlier result)
and again when it finishes, and the index is rebuilt each time, so a run stopped at any point
leaves a report that says what finished and what did not.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from textinterest.apps.reporting import FIGURES_ENV, METRICS_ENV, environment_info, load_metrics, to_plain
from textinterest.apps.reproduce.digest import FileHasher, notebook_inputs_digest
from textinterest.apps.reproduce.index import build_index
from textinterest.apps.reproduce.profiles import (
    find_notebooks_dir,
    gpu_available,
    list_notebooks,
    load_profile,
    notebook_parameters,
)
from textinterest.apps.reproduce.runs import NotebookRun, hash_outputs, load_runs, reusable, save_run, save_run_info
from textinterest.utils import atomic_write_text

# Quiet, offline kernels: no progress bars, no hub look-ups, no transformers chatter.
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}
# relative to the kernels' working directory (the report folder): the recorded parameters and the
# inputs digest then do not depend on where the report lives
# SCALE "as-set": the profile's settings are the run's, so a notebook's own scale-up on a GPU stays off
_INJECTED = {"METRICS_DIR": "metrics", "FIGURES_DIR": "figures", "SCALE": "as-set"}
EXIT_INTERRUPTED = 130


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class _Run:
    """Everything one reproduction needs, and the records it has written so far."""

    out: Path
    profile_path: Path
    notebooks: list[Path]
    existing: set[str]
    shared: dict[str, Any]
    per_notebook: dict[str, dict[str, Any]]
    adjustments: dict[str, Any]
    kernel_name: str
    gpu: bool
    execution_timeout: int
    reuse: bool
    hasher: FileHasher
    environment: dict[str, Any]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: str = field(default_factory=_now)
    state: str = "running"
    records: dict[str, NotebookRun] = field(default_factory=dict)
    current: str = ""

    def info(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "state": self.state,
            "started_at": self.started_at,
            "profile": self.profile_path.stem,
            "notebooks": [p.stem for p in self.notebooks],
        }

    def shown(self) -> list[NotebookRun]:
        """The index's rows: this run's records for its notebooks, earlier records for the others."""
        selected = {p.stem for p in self.notebooks}
        rows = []
        for name in sorted(selected | (set(self.records) & self.existing)):
            record = self.records.get(name)
            if name in selected and (record is None or record.run_id != self.run_id):
                record = NotebookRun(name, "pending")
            elif record is not None and record.status == "running" and record.run_id != self.run_id:
                record = replace(record, status="interrupted")  # a run that was killed while it ran
            rows.append(record)
        return rows

    def save(self, record: NotebookRun) -> None:
        self.records = save_run(self.out, record, self.existing)
        self.write_index()

    def write_index(self) -> None:
        build_index(
            self.out,
            self.shown(),
            profile=self.profile_path.stem,
            params_file=self.profile_path,
            environment=self.environment,
            adjustments=self.adjustments,
            run_state=self.state,
            current_run=self.run_id,
        )


@contextlib.contextmanager
def _environ(updates: Mapping[str, str], defaults: Mapping[str, str]) -> Iterator[None]:
    """Set ``updates`` (always) and ``defaults`` (where unset) in os.environ, restoring them afterwards."""
    saved = {key: os.environ.get(key) for key in {*updates, *defaults}}
    os.environ.update(updates)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _error_of(exc: BaseException) -> dict[str, Any]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return {"ename": exc.ename, "evalue": str(exc.evalue), "cell_index": exc.cell_index}
    return {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None}


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _render_html(executed: Path, target: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(executed))
    atomic_write_text(target, body)


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Identity of each file in a folder, to tell which ones a notebook wrote."""
    if not folder.is_dir():
        return {}
    return {f.name: (f.stat().st_size, f.stat().st_mtime_ns, f.stat().st_ino) for f in folder.iterdir() if f.is_file()}


def _execute(ctx: _Run, notebook: Path, params: dict[str, Any]) -> None:
    import papermill

    # A kernel that stops after a failed cell can leave a message on its channels that tornado logs as an
    # uncaught exception; the failure itself is recorded from papermill's error, so that log is only noise.
    logging.getLogger("tornado.general").setLevel(logging.CRITICAL + 1)
    log_path = kernel_log_path(ctx.out, notebook.stem)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        papermill.execute_notebook(
            str(notebook),
            str(ctx.out / "executed" / notebook.name),
            parameters=params,
            cwd=str(ctx.out),
            kernel_name=ctx.kernel_name,
            execution_timeout=ctx.execution_timeout,
            progress_bar=False,
            log_output=False,
            # the kernel's own start-up and shut-down messages (such as an interrupt after a failed
            # cell) would break the progress lines; figures go into the executed notebook even when the
            # environment picks a non-interactive backend (MPLBACKEND=Agg in CI would leave them out)
            extra_arguments=["--IPKernelApp.log_level=CRITICAL", "--IPKernelApp.matplotlib=inline"],
            kernel_manager_class=_kernel_manager_writing_to(log),
        )


def kernel_log_path(out: Path, name: str) -> Path:
    """Where the kernel process of notebook ``name`` writes its own stdout and stderr."""
    return out / "logs" / f"{name}.kernel.log"


def _kernel_manager_writing_to(log: IO[bytes]) -> type:
    """A kernel manager whose kernel process writes its stdout and stderr to ``log``.

    The kernel inherits the terminal otherwise, and what it prints there outside any cell (tornado's
    "Uncaught exception in ZMQStream callback", libzmq's assertion lines from a kernel that is shutting
    down) lands in the middle of the progress lines; in the log it is kept where a failure can be read.
    """
    from jupyter_client.manager import AsyncKernelManager

    class KernelWritingToLog(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

    return KernelWritingToLog


def _parameters_and_digest(ctx: _Run, notebook: Path) -> tuple[dict[str, Any], str]:
    params, undeclared = notebook_parameters(notebook, ctx.shared, ctx.per_notebook.get(notebook.stem, {}), _INJECTED)
    if undeclared:
        raise ValueError(
            f"{ctx.profile_path}: field 'notebooks.{notebook.stem}' sets {undeclared}, "
            f"which {notebook.name} does not declare in its parameters cell"
        )
    inputs = notebook_inputs_digest(notebook, params, kernel_name=ctx.kernel_name, gpu=ctx.gpu, hasher=ctx.hasher)
    ctx.hasher.save()
    return params, inputs


def _collect_outputs(ctx: _Run, notebook: Path, before: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
    """What an executed notebook left: file paths, its metrics, the figures it wrote, their hashes."""
    name = notebook.stem
    executed, metrics_file = ctx.out / "executed" / notebook.name, ctx.out / "metrics" / f"{name}.json"
    after = _snapshot(ctx.out / "figures")
    figures = sorted(f"figures/{n}" for n, ident in after.items() if before.get(n) != ident)
    values = None
    if metrics_file.is_file():
        try:
            values = to_plain(load_metrics(metrics_file)["metrics"], nonfinite="text")
        except ValueError as err:
            values = {"unreadable metrics file": str(err)}
    html_rel = ""
    if executed.exists():
        try:
            _render_html(executed, ctx.out / "html" / f"{name}.html")
            html_rel = f"html/{name}.html"
        except Exception as exc:  # noqa: BLE001 - a rendering problem must not hide the run
            print(f"(HTML rendering failed: {type(exc).__name__}: {exc})", end=" ", file=sys.stderr)
    rel_executed = f"executed/{notebook.name}" if executed.exists() else ""
    rel_metrics = f"metrics/{name}.json" if metrics_file.exists() else ""
    return {
        "executed": rel_executed,
        "html": html_rel,
        "metrics": rel_metrics,
        "values": values,
        "figures": figures,
        "outputs": hash_outputs(ctx.out, [rel_executed, rel_metrics, *figures]),
    }


def _run_notebook(ctx: _Run, notebook: Path) -> NotebookRun:
    """Reuse or execute one notebook; its record is saved when it starts and when it ends."""
    name = notebook.stem
    executed, metrics_file = ctx.out / "executed" / notebook.name, ctx.out / "metrics" / f"{name}.json"
    params: dict[str, Any] = {}
    inputs, error, started = "", None, False
    before = _snapshot(ctx.out / "figures")
    start = time.perf_counter()
    try:
        params, inputs = _parameters_and_digest(ctx, notebook)
        earlier = ctx.records.get(name)
        if ctx.reuse and earlier is not None and reusable(earlier, inputs, ctx.out):
            record = replace(earlier, reused=True, run_id=ctx.run_id, parameters=to_plain(params))
            ctx.save(record)
            print(
                f"reused (inputs unchanged since the run that finished {earlier.finished_at}, "
                f"{earlier.duration_s:.1f} s; --force executes it again)",
                file=sys.stderr,
            )
            return record
        ctx.save(NotebookRun(name, "running", parameters=to_plain(params), inputs=inputs, run_id=ctx.run_id))
        # what an earlier run left must not pass for this run's results
        stale = [executed, metrics_file, ctx.out / "html" / f"{name}.html", kernel_log_path(ctx.out, name)]
        stale += [ctx.out / rel for rel in (earlier.figures if earlier else [])]
        for path in stale:
            path.unlink(missing_ok=True)
        before, started = _snapshot(ctx.out / "figures"), True
        _execute(ctx, notebook, params)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and the run goes on
        error = _error_of(exc)
    duration = time.perf_counter() - start
    outputs = _collect_outputs(ctx, notebook, before) if started else {}
    record = NotebookRun(
        notebook=name,
        status="failed" if error else "ok",
        duration_s=round(duration, 1),
        error=error,
        parameters=to_plain(params),
        finished_at=_now(),
        inputs=inputs,
        run_id=ctx.run_id,
        **outputs,
    )
    ctx.save(record)
    if error:
        log = kernel_log_path(ctx.out, name)
        where = f" (the kernel's own output: {log})" if log.is_file() and log.stat().st_size else ""
        print(f"FAILED ({duration:.1f} s): {error['ename']}: {_first_line(error['evalue'])}{where}", file=sys.stderr)
    else:
        print(f"ok ({duration:.1f} s)", file=sys.stderr)
    return record


def _prepare(
    profile: str | os.PathLike[str],
    dataset: str | None,
    output: str | os.PathLike[str],
    notebooks_dir: str | os.PathLike[str] | None,
    only: Sequence[str] | None,
    gpu: bool | None,
    verify_data: bool,
    **options: Any,
) -> _Run:
    nb_dir = find_notebooks_dir(notebooks_dir)
    loaded = load_profile(profile, nb_dir)
    gpu = gpu_available() if gpu is None else bool(gpu)
    shared, per_notebook, adjustments = loaded.resolve(gpu)
    existing = {p.stem for p in nb_dir.glob("*.ipynb")}
    unknown = sorted(set(per_notebook) - existing)
    if unknown:
        raise ValueError(f"{loaded.path}: field 'notebooks' names notebooks that do not exist: {unknown}")
    if dataset is not None:
        shared = {**shared, "DATASET": dataset}
    out = Path(output).expanduser().resolve() / loaded.path.stem
    for name in ("executed", "html", "metrics", "figures"):
        (out / name).mkdir(parents=True, exist_ok=True)
    return _Run(
        out=out,
        profile_path=loaded.path,
        notebooks=list_notebooks(nb_dir, only),
        existing=existing,
        shared=shared,
        per_notebook=per_notebook,
        adjustments=adjustments,
        gpu=gpu,
        hasher=FileHasher(out / ".file-hashes.json", verify=verify_data),
        environment=environment_info(),
        records=load_runs(out),
        **options,
    )


def _on_sigint(signum: int, frame: Any) -> None:
    """Ctrl-C: quiet the libraries that would log the dying kernel's tasks, then stop as Python would."""
    for name in ("asyncio", "nbclient", "papermill", "traitlets", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _quiet_interrupts() -> Iterator[None]:
    """Install :func:`_on_sigint` while the notebooks run (main thread only), restoring the old handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted(ctx: _Run) -> int:
    """Close the records of a run stopped by Ctrl-C and say so in one line."""
    ctx.state = "interrupted"
    record = ctx.records.get(ctx.current)
    if record is not None and record.status == "running" and record.run_id == ctx.run_id:
        ctx.records = save_run(ctx.out, replace(record, status="interrupted", finished_at=_now()), ctx.existing)
    save_run_info(ctx.out, ctx.info())
    ctx.write_index()
    done = [r.notebook for r in ctx.records.values() if r.run_id == ctx.run_id and r.status in ("ok", "failed")]
    where = f"during {ctx.current}" if ctx.current else "before the first notebook"
    print(
        f"\ntextinterest: interrupted {where}; finished: {', '.join(done) or 'none'}; "
        f"the report says what did not: {ctx.out / 'index.md'}",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def reproduce(
    profile: str = "smoke",
    dataset: str | None = None,
    output: str | os.PathLike[str] = "reports",
    notebooks_dir: str | os.PathLike[str] | None = None,
    kernel_name: str = "python3",
    execution_timeout: int = 3600,
    only: Sequence[str] | None = None,
    reuse: bool = True,
    gpu: bool | None = None,
    verify_data: bool = False,
) -> int:
    """Execute every notebook in order with a parameter profile and build the report.

    A failing notebook is recorded (status, duration, error) and the next one still runs. One
    progress line per notebook goes to stderr. A notebook whose last run in this report folder
    succeeded with the same inputs (:func:`~textinterest.apps.reproduce.digest.notebook_inputs_digest`)
    and whose outputs are unchanged since is not executed again unless ``reuse=False``; the index
    marks it as reused. Ctrl-C stops the run, leaves records and an index that say what finished,
    and returns 130.

    Args:
        profile: "smoke", "full", or a path to a profile YAML file (see :mod:`textinterest.apps.reproduce.profiles`).
        dataset: overrides the DATASET parameter of every notebook (e.g. ``"movielens:100k"``).
        output: the reports folder; results go to ``<output>/<profile name>/``.
        notebooks_dir: where the notebooks are (default: found by :func:`find_notebooks_dir`).
        kernel_name: the Jupyter kernel to execute with.
        execution_timeout: seconds one cell may run before it counts as failed.
        only: run just these notebooks (names or prefixes such as ``"03"``); others keep their
            earlier records, marked as such in the index.
        reuse: carry over earlier successful runs whose inputs are unchanged (False: execute all).
        gpu: whether to use the profile's GPU settings; None asks torch. Without a GPU the
            profile's ``without_gpu`` layer is applied and the index says so.
        verify_data: rehash every data file instead of trusting the content-hash cache.
    Returns:
        0 when every notebook ran, 1 when any failed, 130 when interrupted.
    """
    ctx = _prepare(
        profile,
        dataset,
        output,
        notebooks_dir,
        only,
        gpu,
        verify_data,
        kernel_name=kernel_name,
        execution_timeout=execution_timeout,
        reuse=reuse,
    )
    if ctx.adjustments:
        print(f"no GPU: applying the 'without_gpu' settings of {ctx.profile_path.name}", file=sys.stderr)
    wall_start = time.perf_counter()
    try:
        save_run_info(ctx.out, ctx.info())
        ctx.write_index()
        with (
            _quiet_interrupts(),
            tempfile.TemporaryDirectory(prefix="textinterest-surprise-") as surprise_home,
            _environ(
                {METRICS_ENV: _INJECTED["METRICS_DIR"], FIGURES_ENV: _INJECTED["FIGURES_DIR"]},
                {**QUIET_ENV, "SURPRISE_DATA_FOLDER": surprise_home},
            ),
        ):
            for position, notebook in enumerate(ctx.notebooks, start=1):
                ctx.current = notebook.stem
                print(f"[{position}/{len(ctx.notebooks)}] {notebook.stem} ...", end=" ", file=sys.stderr, flush=True)
                _run_notebook(ctx, notebook)
            ctx.current = ""
        ctx.state = "finished"
        save_run_info(ctx.out, ctx.info())
        ctx.write_index()
    except KeyboardInterrupt:
        return _interrupted(ctx)
    runs = [ctx.records[p.stem] for p in ctx.notebooks]
    failed = [r.notebook for r in runs if r.status != "ok"]
    n_reused = sum(r.reused for r in runs)
    summary = (
        f"{len(runs) - len(failed)}/{len(runs)} notebooks ok in {time.perf_counter() - wall_start:.1f} s"
        + (f" ({n_reused} reused from earlier runs with the same inputs)" if n_reused else "")
        + f"; report: {ctx.out / 'index.md'}"
    )
    print(summary + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0
