"""What the notebooks call: record metrics, save figures, describe the environment.

Every notebook ends with :func:`record_metrics`, which writes one JSON file of plain numbers, and
saves its plots with :func:`save_figure`. The runner that executes the notebooks and builds the
report lives in :mod:`textinterest.apps.reproduce`; its main names are still importable from here.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from textinterest.utils import atomic_write_text, cpu_model, memory_gib

METRICS_ENV = "TEXTINTEREST_METRICS_DIR"  # where record_metrics writes when no path is given
FIGURES_ENV = "TEXTINTEREST_FIGURES_DIR"  # where save_figure writes when no path is given
DEFAULT_METRICS_DIR = "metrics"  # relative to the current directory (the notebook's folder)
DEFAULT_FIGURES_DIR = "figures"

# Packages whose versions the report states.
VERSIONED_PACKAGES = (
    "textinterest",
    "torch",
    "transformers",
    "pandas",
    "numpy",
    "scikit-surprise",
    "scikit-learn",
    "papermill",
)

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


def to_plain(value: Any, nonfinite: str = "none") -> Any:
    """Convert ``value`` into JSON-ready Python: numpy/pandas scalars and arrays, tuples, Paths.

    DataFrames become lists of records, Series become dicts. Anything else unknown becomes its ``str``.

    Args:
        value: what to convert.
        nonfinite: what NaN and infinities become (strict JSON has neither): "none" → None,
            "text" → the strings "NaN", "Infinity", "-Infinity" (so a report can show them).
    """
    if nonfinite not in ("none", "text"):
        raise ValueError(f"to_plain: nonfinite must be 'none' or 'text', got {nonfinite!r}")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if nonfinite == "none":
            return None
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v, nonfinite) for v in value]
    # numpy and pandas, without importing them here
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        if hasattr(value, "tolist"):
            return to_plain(value.tolist(), nonfinite)
        return to_plain(value.item(), nonfinite)
    if module == "pandas":
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return to_plain(value.to_dict(orient="records"), nonfinite)
        if hasattr(value, "to_dict"):
            return to_plain(value.to_dict(), nonfinite)
        if hasattr(value, "isoformat"):
            return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # torch scalars and the like
        try:
            return to_plain(value.item(), nonfinite)
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return str(value)


def record_metrics(notebook: str, metrics: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Write a notebook's metrics as ``<dir>/<notebook>.json`` and return the file's path.

    Top-level scalars are the notebook's headline results in the report index; nested dicts
    are flattened with "/" into its details section, and a list of dicts (e.g. a results
    table) is shown as a table of its own. NaN and infinite values are written as the strings
    "NaN", "Infinity" and "-Infinity", so that the report shows them instead of leaving them out.

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
        "metrics": to_plain(metrics, nonfinite="text"),
    }
    atomic_write_text(target, json.dumps(payload, indent=2, allow_nan=False) + "\n")
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


def gpu_driver_absent() -> bool:
    """True when this is Linux without an NVIDIA or ROCm driver, so CUDA cannot be available.

    Lets callers skip importing torch (seconds) just to hear "no GPU"; False means "ask torch".
    """
    if platform.system() != "Linux" or "torch" in sys.modules:
        return False
    return not any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd"))


def environment_info() -> dict[str, Any]:
    """Versions, device and machine facts for a report (imports torch to ask about CUDA when a driver is present)."""
    info: dict[str, Any] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    device = "cpu"
    try:
        if gpu_driver_absent():
            raise ImportError("no GPU driver: torch need not be asked")
        import torch

        if torch.cuda.is_available():
            device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU)"
    except Exception:  # pragma: no cover - torch missing or broken
        pass
    info["device"] = device
    info["cpu"] = cpu_model()
    info["cpu_count"] = os.cpu_count()
    info["memory_gib"] = memory_gib()
    info["platform"] = platform.platform()
    info["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return info


def describe_environment() -> str:
    """One line: device, CPU count and the main versions (what each notebook prints first)."""
    info = environment_info()
    return (
        f"device: {info['device']} | CPUs: {info['cpu_count']} | python {info['python']} | "
        f"torch {info['torch']} | transformers {info['transformers']} | textinterest {info['textinterest']}"
    )


# The runner moved to textinterest.apps.reproduce; these names keep working from here.
_RUNNER_NAMES = {
    "NotebookRun": "runs",
    "reproduce": "runner",
    "EXIT_INTERRUPTED": "runner",
    "QUIET_ENV": "runner",
    "build_index": "index",
    "notebook_inputs_digest": "digest",
    "find_notebooks_dir": "profiles",
    "list_notebooks": "profiles",
    "load_params": "profiles",
    "load_profile": "profiles",
    "gpu_available": "profiles",
    "Profile": "profiles",
    "NOTEBOOKS_ENV": "profiles",
}


def __getattr__(name: str) -> Any:
    """Forward the runner's names to :mod:`textinterest.apps.reproduce` (imported on first use)."""
    module = _RUNNER_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"textinterest.apps.reproduce.{module}"), name)
