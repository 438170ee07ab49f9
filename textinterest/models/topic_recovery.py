"""Does the learned decomposition find planted topics? Figures on the synthetic world, whose reviews carry
the topic their writer was following (``ground_truth["review_topic"]``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from textinterest.constants import USER_COL
from textinterest.models.interest import InterestRecommender

__all__ = ["measure_topic_recovery"]


def _hungarian_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    from scipy.optimize import linear_sum_assignment

    p_codes, p = np.unique(pred, return_inverse=True)
    t_codes, t = np.unique(truth, return_inverse=True)
    table = np.zeros((len(p_codes), len(t_codes)), np.int64)
    np.add.at(table, (p, t), 1)
    r, c = linear_sum_assignment(-table)
    return float(table[r, c].sum() / max(len(pred), 1))


def measure_topic_recovery(
    model: InterestRecommender,
    data: Any,
    next_df: pd.DataFrame | None = None,
    n_shuffles: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """How well the learned decomposition matches planted topics (synthetic data).

    Decomposition: each training step's argmax component (gamma) against the planted
    ``review_topic`` of that review: best-match (Hungarian) accuracy and NMI, with the same
    figures for randomly permuted assignments as the chance level.

    Short-term component: topic centroids are the mean step values ``v_j`` of all steps of each
    topic except users' last steps; each user's short-term component (= value of the last step)
    is assigned the nearest centroid (cosine) and compared with the topic of that last review
    (the user's current topic), and, when ``next_df`` is given, with the topic of the user's
    next (held-out) review. The long-term component goes through the same test for comparison;
    chance is the best constant guess (the most frequent topic).

    Args:
        model: a fitted :class:`InterestRecommender`.
        data: a ``ReviewDataset`` with ``ground_truth["review_topic"]`` aligned with
            ``data.interactions`` rows (or that dict itself / the array).
        next_df: e.g. the validation rows (one per user), rows of ``data.interactions``.
        n_shuffles: permutations for the chance level.
        seed: seed of the permutations.

    Returns:
        dict of figures (see keys).
    """
    from sklearn.metrics import normalized_mutual_info_score

    model.check_fitted()
    truth_all = _review_topics(data)
    train = model.training_frame
    labels = np.asarray(train.index)
    if labels.max(initial=-1) >= len(truth_all) or labels.min(initial=0) < 0:
        raise ValueError("training rows' index labels must be positions in data.interactions")
    rows, gamma = model.assignments()
    truth = truth_all[labels[rows]]
    pred = gamma.argmax(1)
    rng = np.random.default_rng(seed)
    shuffled = [rng.permutation(pred) for _ in range(n_shuffles)]
    out: dict[str, Any] = {
        "n_steps": int(len(pred)),
        "n_topics": int(len(np.unique(truth))),
        "n_components": int(model.config.n_components),
        "components_used": int(len(np.unique(pred))),
        "hungarian_accuracy": _hungarian_accuracy(pred, truth),
        "nmi": float(normalized_mutual_info_score(truth, pred)),
        "chance_hungarian_accuracy": float(np.mean([_hungarian_accuracy(s, truth) for s in shuffled])),
        "chance_nmi": float(np.mean([normalized_mutual_info_score(truth, s) for s in shuffled])),
        "majority_share": float(np.bincount(truth).max() / len(truth)),
    }
    if model.config.use_long_short:
        out.update(_short_long_term_recovery(model, truth_all, labels, next_df))
    return out


def _step_values(model: InterestRecommender) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step values v_j (S, H) of every user's last ``max_history`` steps, their positions in ``seq`` and
    whether each is its user's last step."""
    users = np.arange(len(model.user_index))
    win = model.seq.last_window(users, model.config.max_history)
    vals, spos, last = [], [], []
    model.module.eval()
    with torch.no_grad():
        for s in range(0, len(users), model.eval_batch_size):
            batch, pos, mask, _ = model.history_batch(win[s : s + model.eval_batch_size])
            v, _, _ = model.module.encode({k: t.to(model.device) for k, t in batch.items()})
            vals.append(v.float().cpu().numpy()[mask])
            spos.append(pos[mask])
            n = mask.sum(1)
            is_last = np.zeros_like(mask)
            is_last[np.flatnonzero(n > 0), n[n > 0] - 1] = True
            last.append(is_last[mask])
    return np.concatenate(vals), np.concatenate(spos), np.concatenate(last)


def _short_long_term_recovery(
    model: InterestRecommender, truth_all: np.ndarray, labels: np.ndarray, next_df: pd.DataFrame | None
) -> dict[str, Any]:
    """Nearest-topic accuracy of the short- and long-term components (see :func:`measure_topic_recovery`)."""
    vals, spos, last = _step_values(model)
    topic = truth_all[labels[model.seq.rows[spos]]]
    topics = np.unique(truth_all)
    cent = np.zeros((len(topics), vals.shape[1]))
    for j, k in enumerate(topics):
        sel = (topic == k) & ~last
        if sel.any():
            cent[j] = vals[sel].mean(0)
    cent /= np.linalg.norm(cent, axis=1, keepdims=True) + 1e-12

    def nearest(x: np.ndarray) -> np.ndarray:
        return topics[np.argmax((x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)) @ cent.T, axis=1)]

    user_of_last = model.seq.user[spos[last]]  # (U,) 0-based users with a history
    comps = model.final_components(model.user_index.ids[user_of_last])  # (U, C, H)
    current = topic[last]
    short_pred, long_pred = nearest(comps[:, -1]), nearest(comps[:, -2])
    out: dict[str, Any] = dict(
        short_term_current_accuracy=float((short_pred == current).mean()),
        long_term_current_accuracy=float((long_pred == current).mean()),
        current_majority_share=float(np.bincount(current).max() / len(current)),
        n_users=int(len(current)),
    )
    if next_df is not None and len(next_df):
        uid = model.user_index.index_of(next_df[USER_COL].to_numpy())
        known = uid >= 0
        nxt = truth_all[np.asarray(next_df.index)[known]]
        pos_of = {int(u): j for j, u in enumerate(user_of_last)}
        sel = np.array([pos_of.get(int(u), -1) for u in uid[known]])
        ok = sel >= 0
        out.update(
            short_term_next_accuracy=float((short_pred[sel[ok]] == nxt[ok]).mean()),
            long_term_next_accuracy=float((long_pred[sel[ok]] == nxt[ok]).mean()),
            next_majority_share=float(np.bincount(nxt[ok]).max() / max(ok.sum(), 1)),
            last_equals_next_share=float((current[sel[ok]] == nxt[ok]).mean()),
        )
    return out


def _review_topics(data: Any) -> np.ndarray:
    gt = getattr(data, "ground_truth", data)
    if isinstance(gt, dict):
        if "review_topic" not in gt:
            raise ValueError("ground truth has no 'review_topic' (is this the synthetic data set?)")
        gt = gt["review_topic"]
    if gt is None:
        raise ValueError("the data set has no ground truth (only load_dataset('synthetic') has one)")
    arr = np.asarray(gt)
    if arr.ndim != 1:
        raise ValueError(f"review_topic must be 1-D, got shape {arr.shape}")
    return arr.astype(np.int64)
