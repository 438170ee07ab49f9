"""Where the notebooks are, which of them to run, and the parameter profiles they run with.

A profile file (``<profile>.yaml`` in a notebooks folder's ``params/``, else in this package's ``params/``,
where ``smoke`` and ``full`` ship, so that a notebook opened alone, e.g. on Colab, can read them) is a
mapping with up to three keys::

    shared:                 # given to every notebook that declares the parameter
      DATASET: synthetic
    notebooks:              # per-notebook overrides, by notebook name (file name without .ipynb)
      01_sentiment_finetuning:
        EPOCHS: 1
    without_gpu:            # the same two layers again, applied on top when no CUDA GPU is present
      shared: {MAX_LENGTH: 64}
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOTEBOOKS_ENV = "TEXTINTEREST_NOTEBOOKS"  # a notebooks folder to use when none is passed
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # textinterest/
PROFILES_DIR = Path(__file__).resolve().parent / "params"  # the shipped profiles: smoke.yaml, full.yaml


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
        candidates += [_PACKAGE_ROOT.parent / "notebooks", Path.cwd() / "notebooks"]
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
        raise ValueError(
            f"{path}: unknown keys {sorted(unknown)} in {where or 'the top level'} (expected 'shared', 'notebooks')"
        )
    prefix = f"{where}." if where else ""
    shared = raw.get("shared") or {}
    per_notebook = raw.get("notebooks") or {}
    if not isinstance(shared, dict):
        raise ValueError(f"{path}: field '{prefix}shared' must be a mapping of PARAMETER: value")
    if not isinstance(per_notebook, dict) or not all(isinstance(v, dict) or v is None for v in per_notebook.values()):
        raise ValueError(f"{path}: field '{prefix}notebooks' must map notebook names to mappings of PARAMETER: value")
    layers = [(f"{prefix}shared", shared)] + [(f"{prefix}notebooks.{k}", v or {}) for k, v in per_notebook.items()]
    for layer, mapping in layers:
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
    """Read a parameter profile: a name (``notebooks_dir/params/<name>.yaml``, else the shipped
    :data:`PROFILES_DIR`) or a path to a YAML file.

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
            path = PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():
        folders = (notebooks_dir / "params", PROFILES_DIR)
        available = sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})
        raise FileNotFoundError(f"parameter profile {str(profile)!r} not found at {path} (available: {available})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with keys 'shared', 'notebooks' and optionally 'without_gpu'")
    unknown = set(raw) - {"shared", "notebooks", "without_gpu"}
    if unknown:
        raise ValueError(
            f"{path}: unknown top-level keys {sorted(unknown)} (expected 'shared', 'notebooks', 'without_gpu')"
        )
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
        notebooks_dir: a notebooks folder whose ``params/`` may hold the named profile (else the shipped one).
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
    from textinterest.apps.reporting import gpu_driver_absent

    if gpu_driver_absent():  # spares importing torch (seconds) on machines without a GPU driver
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


#: a notebook's ``SCALE`` parameter: "auto" (the ``full`` settings on a machine with a CUDA GPU, e.g. Colab
#: with a GPU runtime; the defaults elsewhere), "full" (the ``full`` settings anywhere) or "as-set" (the
#: parameters cell as it stands; what ``reproduce`` and papermill runs use)
SCALES = ("auto", "full", "as-set")


def session_settings(
    notebook: str, scale: str = "auto", declared: Mapping[str, Any] | None = None, gpu: bool | None = None
) -> dict[str, Any]:
    """The parameters a notebook run by hand switches to for its ``SCALE``: the shipped ``full`` profile's
    GPU settings (real data, fine-tuned sentiment, every user, 3 seeds; its ``DATA_HOME`` left out) and
    ``DOWNLOAD=True`` (fetch the data set from its publisher, hash-checked, when the data home lacks it) --
    or nothing.

    Args:
        notebook: the notebook's name (file name without ``.ipynb``).
        scale: one of :data:`SCALES`.
        declared: the notebook's parameters (e.g. ``globals()``); only names it declares are returned, and
            only those whose value changes. None: every setting of the profile.
        gpu: whether a CUDA GPU is present (None: ask torch).

    Returns:
        ``{name: value}`` to apply on top of the parameters cell (empty: keep them).

    Raises:
        ValueError: an unknown scale.
    """
    if scale not in SCALES:
        raise ValueError(f"SCALE must be one of {SCALES}, got {scale!r}")
    if scale == "as-set" or (scale == "auto" and not (gpu_available() if gpu is None else gpu)):
        return {}
    shared, per_notebook, _ = load_profile("full", PROFILES_DIR).resolve(gpu=True)
    settings = {**shared, **per_notebook.get(notebook, {}), "DOWNLOAD": True}
    settings.pop("DATA_HOME", None)  # where the data lives is the session's own choice
    if declared is None:
        return settings
    return {k: v for k, v in settings.items() if k in declared and declared[k] != v}


def notebook_parameters(
    notebook: Path, shared: Mapping[str, Any], overrides: Mapping[str, Any], injected: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Parameters for one notebook: shared and injected ones it declares, then its own overrides.

    Args:
        notebook: the ``.ipynb`` file.
        shared: the profile's shared layer.
        overrides: the profile's layer for this notebook.
        injected: parameters the runner sets (METRICS_DIR, FIGURES_DIR).
    Returns:
        ``(parameters, undeclared)``: the parameters to pass and the overrides the notebook does not declare.
    """
    import papermill

    declared = set(papermill.inspect_notebook(str(notebook)))
    params = {k: v for k, v in {**shared, **injected}.items() if k in declared}
    undeclared = sorted(k for k in overrides if k not in declared)
    params.update({k: v for k, v in overrides.items() if k in declared})
    return params, undeclared
