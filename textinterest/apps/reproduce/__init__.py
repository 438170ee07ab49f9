"""Reproduce the report: execute the notebooks with a parameter profile and build ``reports/<profile>/``.

- :mod:`~textinterest.apps.reproduce.profiles`: where the notebooks are and the profiles they run with;
- :mod:`~textinterest.apps.reproduce.digest`: the inputs digest, data files judged by content;
- :mod:`~textinterest.apps.reproduce.runs`: the per-notebook records, written atomically;
- :mod:`~textinterest.apps.reproduce.runner`: execution with papermill;
- :mod:`~textinterest.apps.reproduce.index`: ``index.md`` and ``index.html``.

The notebooks themselves only need :mod:`textinterest.apps.reporting`.
"""

from textinterest.apps.reproduce.digest import FileHasher, notebook_inputs_digest
from textinterest.apps.reproduce.index import build_index
from textinterest.apps.reproduce.profiles import (
    NOTEBOOKS_ENV,
    Profile,
    find_notebooks_dir,
    gpu_available,
    list_notebooks,
    load_params,
    load_profile,
    session_settings,
)
from textinterest.apps.reproduce.runner import EXIT_INTERRUPTED, QUIET_ENV, reproduce
from textinterest.apps.reproduce.runs import NotebookRun

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
    "session_settings",
]
