"""Inputs of the text models, built from training rows only: review texts, their vectors, sentiment.

:func:`build_text_features` embeds the training reviews (and item texts) once; the sentiment classifier
of :func:`fit_review_sentiment` (frozen or fine-tuned) is fitted on training reviews only. :func:`cold_start_counts` and
:func:`held_out_text_duplicates` describe what the split leaves unseen or repeated.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import ITEM_COL, ITEM_TEXT_COL, RATING_COL, SUMMARY_COL, TEXT_COL, USER_COL

__all__ = [
    "build_text_features",
    "cold_start_counts",
    "fit_review_sentiment",
    "held_out_text_duplicates",
    "review_texts",
    "score_review_sentiment",
]


def log(progress: Any, message: str) -> None:
    """Report one line of progress: to a callable, or to stderr when ``progress`` is true."""
    if callable(progress):
        progress(message)
    elif progress:
        print(f"[evaluate] {message}", file=sys.stderr, flush=True)


def review_texts(df: pd.DataFrame) -> list[str]:
    """The text embedded for each review: its body, or its summary when the body is blank."""
    body = df[TEXT_COL].fillna("").astype(str).tolist() if TEXT_COL in df else [""] * len(df)
    summary = df[SUMMARY_COL].fillna("").astype(str).tolist() if SUMMARY_COL in df else [""] * len(df)
    return [b if b.strip() else s for b, s in zip(body, summary)]


def fit_review_sentiment(
    train: pd.DataFrame,
    texts: list[str],
    *,
    mode: str = "frozen",
    encoder: str = "default",
    seed: int = 0,
    device: str = "auto",
    progress: Any = None,
    **options: Any,
) -> tuple[Any, np.ndarray | None, dict[str, Any]]:
    """Fit the sentiment classifier of ``mode`` on the rated training reviews and score every training review.

    Labels come from the ratings (binary: >= 4 positive, <= 2 negative, 3 and unrated left out); a seeded
    tenth of the labelled reviews is held out (early stopping of the fine-tuned mode, C of the frozen head,
    and ``info["val_accuracy"]``).

    Args:
        train: training interactions.
        texts: their review texts, aligned with ``train``.
        mode: "frozen" or "finetuned" (:data:`~textinterest.text.sentiment.SENTIMENT_MODES`).
        encoder: the encoder's name or folder.
        seed: seed of the held-out sample and of the classifier.
        device: where the encoder runs.
        progress: a callable or a flag for progress lines.
        **options: further :class:`~textinterest.text.sentiment.SentimentClassifier` arguments
            (``max_length``, ``cache_dir``...).

    Returns:
        ``(classifier, scores (len(train),) in [-1, 1], info)``; ``(None, None, info)`` when too few labelled
        reviews exist or the classifier fails (``info["status"]`` and ``info["reason"]`` say why).
    """
    try:
        from textinterest.text.sentiment import sentiment_classifier, sentiment_labels
    except ImportError as exc:  # sentiment module missing
        return None, None, {"status": "unavailable", "reason": f"import failed: {exc}"}
    ratings = (
        pd.to_numeric(train[RATING_COL], errors="coerce").to_numpy()
        if RATING_COL in train
        else np.full(len(train), np.nan)
    )
    labels = np.asarray(sentiment_labels(ratings, scheme="binary"))  # -1: unrated or neutral (left out)
    usable = np.flatnonzero(labels >= 0)
    if usable.size < 20 or len(np.unique(labels[usable])) < 2:
        return None, None, {"status": "skipped", "reason": "too few rated training reviews with both labels"}
    perm = np.random.default_rng(seed).permutation(usable)
    n_val = max(len(perm) // 10, 1)
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    start = time.perf_counter()
    log(progress, f"fitting the {mode} sentiment classifier on {fit_idx.size} training reviews")
    # fast=None: the same encoder path as the review features, so the embedding cache is shared; wrong
    # arguments (an unknown mode, a hashing encoder to fine-tune) raise here, before anything is fitted
    clf = sentiment_classifier(mode, encoder, fast=None, seed=seed, device=device, **options)
    try:
        clf.fit([texts[i] for i in fit_idx], labels[fit_idx], [texts[i] for i in val_idx], labels[val_idx])
        scores = np.clip(np.asarray(clf.score(texts), dtype=np.float32), -1.0, 1.0)
    except Exception as exc:  # noqa: BLE001 - a failing classifier must not sink the whole evaluation
        log(progress, f"sentiment classifier failed ({type(exc).__name__}: {exc}); using no sentiment")
        return None, None, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    info = {
        "status": "ok",
        "mode": mode,
        "n_fit": int(fit_idx.size),
        "n_val": int(val_idx.size),
        "seconds": time.perf_counter() - start,
        "val_accuracy": float(((scores[val_idx] > 0).astype(int) == labels[val_idx]).mean()),
    }
    return clf, scores, info


def score_review_sentiment(classifier: Any, texts: list[str]) -> np.ndarray:
    """Sentiment in [-1, 1] of ``texts`` by an already fitted classifier (e.g. the history's reviews)."""
    return np.clip(np.asarray(classifier.score(texts), dtype=np.float32), -1.0, 1.0)


def build_text_features(
    train: pd.DataFrame,
    extractor: Any,
    *,
    items: pd.DataFrame | None = None,
    sentiment: np.ndarray | None = None,
):
    """Text inputs of the interest model from the TRAINING rows only.

    Args:
        train: training interactions.
        extractor: object with ``embed(texts) -> (N, D)`` (e.g. a BertFeatureExtractor).
        items: optional item metadata with ``item_text``; its texts replace review means.
        sentiment: (len(train),) scores in [-1, 1], or None.

    Returns:
        :class:`~textinterest.models.interest.TextFeatures`.
    """
    from textinterest.models.interest import TextFeatures

    texts = review_texts(train)
    vectors = np.asarray(extractor.embed(texts), dtype=np.float32)
    item_ids = item_vectors = None
    if items is not None and ITEM_TEXT_COL in items.columns and ITEM_COL in items.columns:
        meta = items[[ITEM_COL, ITEM_TEXT_COL]].dropna()
        meta = meta[meta[ITEM_TEXT_COL].astype(str).str.strip() != ""].drop_duplicates(ITEM_COL)
        meta = meta[meta[ITEM_COL].isin(set(train[ITEM_COL]))]
        if len(meta):
            item_ids = meta[ITEM_COL].to_numpy(dtype=object)
            item_vectors = np.asarray(extractor.embed(meta[ITEM_TEXT_COL].astype(str).tolist()), dtype=np.float32)
    return TextFeatures(
        review_vectors=vectors, sentiment=sentiment, texts=texts, item_ids=item_ids, item_vectors=item_vectors
    )


def cold_start_counts(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame) -> dict[str, int]:
    """Users with 0 / 1 training reviews and items unseen in training, among validation and test rows."""
    n_train = train.groupby(USER_COL).size()
    items = set(train[ITEM_COL])
    out: dict[str, int] = {}
    for name, part in (("val", val), ("test", test)):
        hist = part[USER_COL].map(n_train).fillna(0).to_numpy()
        out[f"{name}_rows"] = int(len(part))
        out[f"{name}_users_no_history"] = int((hist == 0).sum())
        out[f"{name}_users_one_review"] = int((hist == 1).sum())
        out[f"{name}_users_le2_reviews"] = int((hist <= 2).sum())
        out[f"{name}_items_unseen"] = int((~part[ITEM_COL].isin(items)).sum())
    return out


def held_out_text_duplicates(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame) -> dict[str, int]:
    """Validation / test rows whose exact (non-blank) text the same user also wrote in training.

    Such rows (e.g. one review posted for several variants of a product) let any model that
    reads a user's past reviews or ratings copy the answer; results on them are not comparable.
    """

    def key(df: pd.DataFrame) -> pd.Series:
        texts = pd.Series(review_texts(df), index=df.index)
        return df[USER_COL].astype(str) + "\x1f" + texts

    texts = pd.Series(review_texts(train), index=train.index)
    seen = set(key(train)[texts.str.strip() != ""])
    return {
        f"{name}_same_user_text_in_train": int(key(part).isin(seen).sum())
        for name, part in (("val", val), ("test", test))
    }
