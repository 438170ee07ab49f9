"""Tests of the test-time protocols, validation tuning and slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textinterest.datasets.splits import split_interactions
from textinterest.evaluation import evaluate_ranking
from textinterest.models.cf import MFRecommender, SequentialRecommender
from textinterest.protocol.protocols import fit_for_test, grid_search, slice_masks, slice_means, validation_score
from textinterest.training import TrainConfig


def _chain(n_users=40, n_items=12, length=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        for j in range(length):
            rows.append((f"u{u}", f"i{(start + j) % n_items}", 4.0, 1000 + j, len(rows)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "source_order"])


def _seq(frame, refit=True):
    return SequentialRecommender(
        hidden=32,
        dropout=0.0,
        refit=refit,
        train_config=TrainConfig(epochs=40, lr=0.01, batch_size=16, patience=5, progress=False),
    )


def test_val_in_history_scores_the_next_step():
    split = split_interactions(_chain(), "leave-last-out")
    hits = {}
    for protocol in ("val-in-history", "train-history"):
        model, history, info = fit_for_test(_seq, split.train, split.val, protocol)
        assert info["protocol"] == protocol and info["refit"] == (protocol == "val-in-history")
        assert len(history) == len(split.train) + (len(split.val) if info["refit"] else 0)
        hits[protocol] = evaluate_ranking(
            lambda u, m=model: m.score_items(m.user_index.ids[u]),
            history,
            split.test,
            model.user_index,
            model.item_index,
            ks=(1,),
        )["hr@1"]
    # with the validation step in the history the test item is the very next step of the chain
    assert hits["val-in-history"] > 0.8
    assert hits["val-in-history"] > hits["train-history"] + 0.3


def test_without_refit_the_early_stopped_fit_reads_the_validation_step():
    split = split_interactions(_chain(), "leave-last-out")
    frames = []

    def factory(frame):
        frames.append(len(frame))
        return _seq(frame, refit=False)

    model, history, info = fit_for_test(factory, split.train, split.val, known={"epochs": 3, "metric": 0.5})
    assert frames == [len(split.train)] and not info["refit"] and info["history"] == "train+validation"
    assert len(history) == len(split.train) + len(split.val) and int(model.seq.lengths.sum()) == len(history)
    assert info["epochs"] == model.train_result_.best_epoch + 1  # its own early stopping, not the known count
    assert validation_score(model, history, split.test, "ranking") > 0.8  # NDCG@10 of the chain's next step


def test_refit_keeps_the_validated_epoch_count():
    split = split_interactions(_chain(), "leave-last-out")
    model, _, info = fit_for_test(_seq, split.train, split.val)
    assert model.train_config.epochs == info["epochs"] and len(model.train_result_.history) == info["epochs"]


def test_grid_search_uses_validation_only():
    split = split_interactions(_chain(), "leave-last-out")

    def make(p):
        return SequentialRecommender(train_config=TrainConfig(progress=False, batch_size=16, lr=0.01, patience=3, **p))

    best, trials = grid_search(make, [{"epochs": 1}, {"epochs": 30}], split.train, split.val, "ranking")
    assert best == {"epochs": 30} and len(trials) == 2
    assert trials[1]["score"] > trials[0]["score"]
    rating = MFRecommender("rating", train_config=TrainConfig(epochs=3, progress=False)).fit(split.train)
    assert validation_score(rating, split.train, split.val, "rating") <= 0


def test_slices():
    train = pd.DataFrame(
        {"user_id": ["a"] * 10 + ["b", "b", "c"], "item_id": ["x"] * 5 + list("pqrst") + ["x", "p", "x"]}
    )
    test = pd.DataFrame({"user_id": ["a", "b", "c", "c"], "item_id": ["new", "p", "x", "new"]})
    masks = slice_masks(train, ["a", "b", "c"], test)
    assert masks["users<=3"].tolist() == [False, True, True] and masks["users>=10"].tolist() == [True, False, False]
    assert masks["items=0"].tolist() == [True, False, False]
    assert masks["items1-4"].tolist() == [False, True, False] and masks["items>=5"].tolist() == [False, False, True]
    means = slice_means(np.array([1.0, 0.0, 0.5]), masks)
    assert means["users<=3"] == {"value": 0.25, "n": 2}
    assert slice_means(np.array([4.0, 0.0, 0.0]), masks, "rmse")["users>=10"]["value"] == 2.0
    with pytest.raises(ValueError, match="no test row"):
        slice_masks(train, ["zed"], test)
    with pytest.raises(ValueError, match="protocol"):
        fit_for_test(_seq, train, test, "cheat")


def test_a_model_without_early_stopping_is_fitted_once_on_the_history():
    from textinterest.models.text_profile import TextProfileRecommender

    split = split_interactions(_chain(), "leave-last-out")
    frames = []

    def factory(frame):
        frames.append(len(frame))
        return TextProfileRecommender(vectors=np.ones((len(frame), 2), dtype=np.float32))

    model, history, info = fit_for_test(factory, split.train, split.val)
    assert frames == [len(split.train), len(split.train) + len(split.val)] and info["refit"]
    assert len(model.user_index) == split.train["user_id"].nunique() and len(history) == frames[-1]


def test_format_slices():
    from textinterest.protocol.protocols import format_slices

    result = {
        "slices": {
            "a": {"ndcg@10": {"users<=3": {"value": 0.1, "n": 5}, "items=0": {"value": 0.0, "n": 2}}},
            "b": {"rmse": {"users<=3": {"value": 1.0, "n": 5}}},
        }
    }
    lines = format_slices(result).splitlines()
    assert lines[0].startswith("| model | users<=3 (n=5) | items=0 (n=2) |") and len(lines) == 3
    assert lines[2].startswith("| a | 0.1000 | 0.0000 |")
    with pytest.raises(ValueError, match="slices"):
        format_slices(result, "mrr")
