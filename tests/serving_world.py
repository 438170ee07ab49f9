"""A tiny trained pipeline for the save / recommend / serve tests: a small synthetic world and a tiny random encoder.

Training takes seconds but happens once per test process: :func:`trained` remembers each (model, task).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tiny_models import build_tiny_model

MAX_LENGTH = 32  # the tiny encoder has 64 positions
_ROOT: Path | None = None
_TRAINED: dict[tuple[str, str], tuple[Any, dict, Path]] = {}


def small_world(seed: int = 1) -> Any:
    """40 users, 30 items, 3 topics, 4-8 reviews each."""
    from textinterest.datasets.synthetic import make_synthetic

    return make_synthetic(n_users=40, n_items=30, n_topics=3, min_reviews=4, max_reviews=8, seed=seed)


def root() -> Path:
    """A folder for this test process (removed at exit) holding the tiny encoder, the cache and the models."""
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="textinterest-serving-tests-"))
        atexit.register(shutil.rmtree, _ROOT, True)
        build_tiny_model(_ROOT / "encoder")
    return _ROOT


def trained(model: str = "interest", task: str = "ranking") -> tuple[Any, dict, Path]:
    """``model`` trained on :func:`small_world` (2 epochs) and saved; the same objects on every call.

    Returns:
        (fitted model, training metadata, artifact folder).
    """
    from textinterest.protocol.pipeline import train_pipeline

    if (model, task) not in _TRAINED:
        folder = root() / f"{model}-{task}"
        old = os.environ.get("TEXTINTEREST_CACHE")
        os.environ["TEXTINTEREST_CACHE"] = str(root() / "cache")
        try:
            fitted, meta = train_pipeline(
                "synthetic",
                output=folder,
                dataset=small_world(),
                model=model,
                task=task,
                encoder=str(root() / "encoder"),
                max_length=MAX_LENGTH,
                epochs=2,
                interest_config={"hidden": 16, "mf_dim": 8},
            )
        finally:
            if old is None:
                os.environ.pop("TEXTINTEREST_CACHE", None)
            else:
                os.environ["TEXTINTEREST_CACHE"] = old
        _TRAINED[(model, task)] = (fitted, meta, folder)
    return _TRAINED[(model, task)]
