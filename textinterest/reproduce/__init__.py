"""Reproduce the report: execute the notebooks with a parameter profile and build ``reports/<profile>/``.

- :mod:`~textinterest.reproduce.profiles`: where the notebooks are and the profiles they run with;
- :mod:`~textinterest.reproduce.digest`: the inputs digest, data files judged by content;
- :mod:`~textinterest.reproduce.runs`: the per-notebook records, written atomically;
- :mod:`~textinterest.reproduce.runner`: execution with papermill;
- :mod:`~textinterest.reproduce.index`: ``index.md`` and ``index.html``.

The notebooks themselves only need :mod:`textinterest.reporting`.
"""

from textinterest.reproduce.digest import FileHasher, notebook_inputs_digest
from textinterest.reproduce.index import build_index
from textinterest.reproduce.profiles import (
    NOTEBOOKS_ENV,
    Profile,
    find_notebooks_dir,
    gpu_available,
    list_notebooks,
    load_params,
    load_profile,
)
from textinterest.reproduce.runner import EXIT_INTERRUPTED, QUIET_ENV, reproduce
from textinterest.reproduce.runs import NotebookRun

__all__ = [
    "EXIT_INTERRUPTED",
    "NOTEBOOKS_ENV",
    "QUIET_ENV",
    "FileHasher",
    "NotebookRun",
    "Profile",
    "build_index",
    "find_notebooks_dir",
    "gpu_available",
    "list_notebooks",
    "load_params",
    "load_profile",
    "notebook_inputs_digest",
    "reproduce",
]
