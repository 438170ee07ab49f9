"""One text vector per item, from its metadata text or the mean of its training reviews.

Importable from :mod:`textinterest.text.features` as well.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from textinterest.constants import ITEM_COL, ITEM_TEXT_COL

__all__ = ["TextEncoder", "item_text_vectors"]


class TextEncoder(Protocol):
    """What item vectors need of an encoder (``BertFeatureExtractor`` and the hashing encoder qualify)."""

    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def item_text_vectors(
    train_df: Any,
    review_vectors: np.ndarray,
    items_df: Any = None,
    extractor: TextEncoder | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One text vector per item: its metadata text if it has one, else its reviews' mean.

    Pass the TRAINING rows only (and their vectors): the mean over an item's reviews must not
    see validation or test reviews, or later evaluation leaks the held-out text.

    Args:
        train_df: training interactions with an ``item_id`` column; row i matches
            ``review_vectors[i]``.
        review_vectors: (len(train_df), D) vectors of the training reviews.
        items_df: optional item table with ``item_id`` and ``item_text``; a non-blank
            ``item_text`` is embedded and used instead of the review mean.
        extractor: encoder for item texts (a :class:`~textinterest.text.features.BertFeatureExtractor`
            or anything with ``dim`` and ``embed(texts)``), required when item texts exist;
            its ``dim`` must equal D.

    Returns:
        ``(item_ids, vectors)``: item ids (training items first in order of first appearance,
        then items known only from ``items_df`` that have a text) and a float32 array
        (n_items, D). Items with neither a text nor a training review are left out.

    Raises:
        ValueError: on mismatched lengths/dimensions or a missing ``item_id`` column.
    """
    import pandas as pd

    vecs = np.asarray(review_vectors, dtype=np.float32)
    if vecs.ndim != 2:
        raise ValueError(f"review_vectors must be 2-D, got shape {vecs.shape}")
    if ITEM_COL not in train_df.columns:
        raise ValueError(f"train_df has no {ITEM_COL!r} column")
    if len(train_df) != len(vecs):
        raise ValueError(f"review_vectors has {len(vecs)} rows but train_df has {len(train_df)}")
    dim = vecs.shape[1]
    codes, uniques = pd.factorize(train_df[ITEM_COL], sort=False)
    if (codes < 0).any():
        raise ValueError(f"train_df[{ITEM_COL!r}] has missing ids at rows {np.nonzero(codes < 0)[0][:5].tolist()}")
    sums = np.zeros((len(uniques), dim), dtype=np.float64)
    np.add.at(sums, codes, vecs)
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
    means = (sums / counts[:, None]).astype(np.float32)
    ids = list(uniques)
    position = {item: i for i, item in enumerate(ids)}
    result = means

    if items_df is not None and ITEM_TEXT_COL in items_df.columns and len(items_df):
        if ITEM_COL not in items_df.columns:
            raise ValueError(f"items_df has no {ITEM_COL!r} column")
        texts = items_df[ITEM_TEXT_COL]
        has_text = texts.map(lambda t: isinstance(t, str) and t.strip() != "").to_numpy(dtype=bool)
        meta = items_df.loc[has_text, [ITEM_COL, ITEM_TEXT_COL]].drop_duplicates(ITEM_COL, keep="first")
        if len(meta):
            if extractor is None:
                raise ValueError("items_df has item texts: pass extractor= (the encoder that embedded review_vectors)")
            if extractor.dim != dim:
                raise ValueError(f"extractor.dim={extractor.dim} but review_vectors have dimension {dim}")
            meta_vecs = extractor.embed(meta[ITEM_TEXT_COL].tolist())
            extra = [item for item in meta[ITEM_COL] if item not in position]
            for item in extra:
                position[item] = len(ids)
                ids.append(item)
            result = np.vstack([means, np.zeros((len(extra), dim), dtype=np.float32)])
            rows = np.fromiter((position[i] for i in meta[ITEM_COL]), dtype=np.int64, count=len(meta))
            result[rows] = meta_vecs
    return np.asarray(ids, dtype=object), result
