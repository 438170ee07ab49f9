"""A tiny trained pipeline for the save / recommend / serve tests: a small synthetic world and a tiny random encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiny_models import build_tiny_model

MAX_LENGTH = 32  # the tiny encoder has 64 positions


def small_world(seed: int = 1) -> Any:
    """40 users, 30 items, 3 topics, 4-8 reviews each."""
    from textinterest.datasets.synthetic import make_synthetic

    return make_synthetic(n_users=40, n_items=30, n_topics=3, min_reviews=4, max_reviews=8, seed=seed)


def train_small(
    folder: Path, model: str = "interest", task: str = "ranking", encoder: Path | None = None
) -> tuple[Any, dict]:
    """Train ``model`` on :func:`small_world` (2 epochs) and save it to ``folder / 'artifact'``.

    Returns:
        (fitted model, training metadata); the encoder is ``folder / 'encoder'`` unless given.
    """
    from textinterest.pipeline import train_pipeline

    if encoder is None:
        encoder = build_tiny_model(folder / "encoder")
    return train_pipeline(
        "synthetic",
        output=folder / "artifact",
        dataset=small_world(),
        model=model,
        task=task,
        encoder=str(encoder),
        max_length=MAX_LENGTH,
        epochs=2,
        interest_config={"hidden": 16, "mf_dim": 8},
    )
