"""Train one recommender on a named data set, end to end, and save it for later use.

:func:`train_pipeline` is what ``textinterest train NAME --output DIR`` runs:

1. load the data set and split it (leave-last-out by default);
2. for the interest model: embed the *training* reviews (cached), fit the frozen sentiment head on
   training reviews only (a tenth of them for its early stopping) and score them;
3. train the model with early stopping on the validation split (the settings of ``evaluate``:
   ``TUNING_GRID[0]``, K = number of planted topics on synthetic data, else 4);
4. evaluate it once on the test split (RMSE / MAE or HR / NDCG / MRR by full ranking);
5. save everything with :func:`~textinterest.models.artifact.save_recommender`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import SEED
from textinterest.models.train_defaults import TRAIN_DEFAULTS
from textinterest.protocol.text_inputs import fit_review_sentiment

__all__ = ["PIPELINE_MODELS", "fit_on_split", "fit_sentiment_head", "train_pipeline"]

PIPELINE_MODELS = ("interest", "mf", "seq-lstm")


def fit_sentiment_head(
    train: pd.DataFrame,
    texts: list[str],
    encoder: Any,
    seed: int = SEED,
    device: str = "cpu",
    mode: str = "frozen",
) -> tuple[Any, np.ndarray | None, dict[str, Any]]:
    """Fit the sentiment classifier of ``mode`` on the rated training reviews (binary labels), reading the
    texts as ``encoder`` does (same model, token limit and cache).

    Args:
        train: training interactions (ratings give the labels: >= 4 positive, <= 2 negative).
        texts: the training review texts, aligned with ``train``.
        encoder: the review encoder (its settings are reused so the head reads the same vectors).
        seed: seed of the held-out sample.
        device: where the encoder runs.
        mode: "frozen" or "finetuned".

    Returns:
        ``(classifier or None, scores (len(train),) in [-1, 1] or None, info)``; None when too few
        rated reviews (or only one class) exist.
    """
    return fit_review_sentiment(
        train,
        texts,
        mode=mode,
        encoder=encoder.model_name,
        seed=seed,
        device=device,
        max_length=encoder.max_length,
        cache_dir=encoder.cache_root,
    )


def train_pipeline(
    name: str,
    *,
    output: str | Path | None = None,
    model: str = "interest",
    task: str = "ranking",
    split: str = "leave-last-out",
    seed: int = 0,
    encoder: str = "default",
    max_length: int = 128,
    data_home: str | Path | None = None,
    max_users: int | None = None,
    epochs: int | None = None,
    device: str = "cpu",
    dataset: Any = None,
    interest_config: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train ``model`` on data set ``name`` and (when ``output`` is given) save it there.

    Args:
        name: data set name for :func:`textinterest.datasets.load_dataset` (e.g. "synthetic").
        output: artifact folder; None keeps the model in memory only.
        model: "interest", "mf" or "seq-lstm" (ranking only).
        task: "ranking" or "rating".
        split: "leave-last-out", "temporal" or "random".
        seed: training seed.
        encoder: text encoder ("default" = the packaged MiniLM, or a local folder).
        max_length: token limit per review text.
        data_home: data folder (default ``$TEXTINTEREST_DATA``).
        max_users: keep a seeded sample of this many users (quick runs).
        epochs: cap on training epochs.
        device: "cpu", "cuda" or "auto".
        dataset: an already loaded ``ReviewDataset`` (skips loading ``name``).
        interest_config: ``InterestConfig`` fields overriding the defaults (e.g. ``{"hidden": 16}``).
        progress: called with one line per stage.

    Returns:
        ``(fitted model, metadata)``; metadata holds the data set, split sizes, test metrics and timings.
    """
    from textinterest.datasets.splits import split_interactions
    from textinterest.protocol.evaluation_jobs import evaluate_model, subsample_users

    if model not in PIPELINE_MODELS:
        raise ValueError(f"model must be one of {PIPELINE_MODELS}, got {model!r}")
    if task not in ("rating", "ranking"):
        raise ValueError(f"task must be 'rating' or 'ranking', got {task!r}")
    if model == "seq-lstm" and task == "rating":
        raise ValueError("seq-lstm ranks items only; use --task ranking")
    say = progress or (lambda message: None)
    t0 = time.perf_counter()
    if dataset is None:
        from textinterest.datasets import load_dataset

        say(f"loading {name}")
        dataset = load_dataset(name, data_home=data_home)
    parts = split_interactions(subsample_users(dataset.interactions, max_users, SEED), how=split, seed=SEED)
    train, val = parts.train, parts.val
    say(f"split {split}: train {len(train)}, val {len(val)}, test {len(parts.test)}")
    meta: dict[str, Any] = {
        "dataset": name,
        "split": split,
        "seed": seed,
        "task": task,
        "model": model,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(parts.test),
        "max_users": max_users,
    }
    rec, fit_meta = fit_on_split(
        train,
        val,
        model=model,
        task=task,
        items=dataset.items,
        ground_truth=getattr(dataset, "ground_truth", None),
        seed=seed,
        encoder=encoder,
        max_length=max_length,
        epochs=epochs,
        device=device,
        interest_config=interest_config,
        progress=say,
    )
    meta.update(fit_meta)
    meta["metrics"] = evaluate_model(rec, parts, task, (5, 10, 20))
    say(f"test: {meta['metrics']}")
    meta["total_seconds"] = time.perf_counter() - t0
    if output is not None:
        rec.save(output, metadata=meta)
        say(f"saved to {output}")
    return rec, meta


def fit_on_split(
    train: pd.DataFrame,
    val: pd.DataFrame | None,
    *,
    model: str = "interest",
    task: str = "ranking",
    items: pd.DataFrame | None = None,
    ground_truth: dict | None = None,
    seed: int = 0,
    encoder: str = "default",
    max_length: int = 128,
    epochs: int | None = None,
    device: str = "cpu",
    interest_config: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit one model on given training / validation rows (text features and sentiment head included).

    Args:
        train, val: training and validation interactions.
        model, task, seed, encoder, max_length, epochs, device, interest_config: see :func:`train_pipeline`.
        items: item metadata (``item_text`` replaces review means as item text when present).
        ground_truth: the synthetic world's ground truth (K = its number of topics).
        progress: called with one line per stage.

    Returns:
        ``(fitted model, {"fit_seconds", "sentiment"})``; a text model carries ``text_encoder_`` and
        ``sentiment_model_`` so it can answer new users and be saved.
    """
    from textinterest.models.cf import MFRecommender, SequentialRecommender
    from textinterest.models.interest import InterestRecommender
    from textinterest.models.registry import interest_base_config
    from textinterest.protocol.experiments import TUNING_GRID, build_text_features
    from textinterest.training import TrainConfig

    say = progress or (lambda message: None)
    meta: dict[str, Any] = {}
    base = {"seed": seed, "device": device, "progress": False}
    if epochs is not None:
        base["epochs"] = epochs
    text_encoder = clf = None
    if model == "interest":
        from textinterest.text.features import BertFeatureExtractor

        text_encoder = BertFeatureExtractor(encoder, max_length=max_length, device=device)
        say(f"embedding {len(train)} training reviews")
        features = build_text_features(train, text_encoder, items=items)
        say("fitting the frozen sentiment head on training reviews")
        clf, scores, meta["sentiment"] = fit_sentiment_head(train, features.texts, text_encoder, SEED, device)
        features = replace(features, sentiment=scores)
        l2, bias_l2 = MFRecommender.DEFAULT_REG[task]  # as in evaluate: the CF term is regularised like MF
        world = SimpleNamespace(ground_truth=ground_truth)  # K = the planted topics, as evaluate reads them
        cfg = replace(interest_base_config(train, world), l2=l2, bias_l2=bias_l2, **TUNING_GRID[0])
        cfg = replace(cfg, **(interest_config or {}))
        tc = TrainConfig(**{**TRAIN_DEFAULTS["interest"], **base})
        rec: Any = InterestRecommender(cfg, features, task=task, train_config=tc)
    elif model == "mf":
        rec = MFRecommender(task, train_config=TrainConfig(**{**TRAIN_DEFAULTS["mf"], **base}))
    else:
        rec = SequentialRecommender(task, train_config=TrainConfig(**{**TRAIN_DEFAULTS["seq-lstm"], **base}))
    say(f"training {model} ({task})")
    t = time.perf_counter()
    rec.fit(train, val)
    meta["fit_seconds"] = time.perf_counter() - t
    rec.text_encoder_, rec.sentiment_model_ = text_encoder, clf
    return rec, meta
