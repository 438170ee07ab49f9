"""Tests of the SASRec and GRU4Rec peers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from textinterest.datasets.splits import split_interactions
from textinterest.evaluation import evaluate_ranking
from textinterest.models.peers.sequential import GRU4Rec, GRU4RecRecommender, NextItemConfig, SASRec, SASRecRecommender
from textinterest.training import TrainConfig


def _chain(n_users=40, n_items=12, length=8, seed=0):
    """Every user walks items k, k+1, k+2, ... (mod n_items) from a random start."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        for j in range(length):
            rows.append((f"u{u}", f"i{(start + j) % n_items}", np.nan, 1000 + j, len(rows)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "source_order"])


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_state_is_causal(cls):
    torch.manual_seed(0)
    model = cls(NextItemConfig(n_items=10, hidden=16, n_layers=2, n_heads=2, dropout=0.0, max_len=6)).eval()
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = torch.tensor([[1, 2, 3, 9, 8, 7]])  # same prefix, different future
    with torch.no_grad():
        ha, hb = model(a), model(b)
    assert ha.shape == (1, 6, 16)
    torch.testing.assert_close(ha[:, :3], hb[:, :3])
    assert not torch.allclose(ha[:, 3], hb[:, 3])


def test_sasrec_right_padding_does_not_change_valid_states():
    torch.manual_seed(0)
    model = SASRec(NextItemConfig(n_items=10, hidden=16, n_layers=2, dropout=0.0, max_len=6)).eval()
    with torch.no_grad():
        short = model(torch.tensor([[3, 4, 5]]))
        padded = model(torch.tensor([[3, 4, 5, 0, 0, 0]]))
        empty = model(torch.tensor([[0, 0]]))
    torch.testing.assert_close(short, padded[:, :3])
    assert torch.isfinite(empty).all()


@pytest.mark.parametrize(
    "cls,loss", [(SASRecRecommender, "ce"), (SASRecRecommender, "bce"), (GRU4RecRecommender, "ce")]
)
def test_learns_a_chain(cls, loss):
    split = split_interactions(_chain(), "leave-last-out")
    config = TrainConfig(epochs=80, lr=0.01, batch_size=16, patience=10, seed=0, progress=False)
    model = cls(hidden=32, n_layers=1, dropout=0.0, max_len=8, loss=loss, train_config=config).fit(
        split.train, split.val
    )
    res = evaluate_ranking(
        lambda u: model.score_items(model.user_index.ids[u]),
        split.train,
        split.val,
        model.user_index,
        model.item_index,
        ks=(1, 5),
    )
    assert res["hr@1"] > 0.7  # chance: 1 / 6 candidates left
    scores = model.score_items(["u0", "unknown"])
    assert scores.shape == (2, len(model.item_index)) and np.isfinite(scores).all()


def test_long_histories_use_the_last_window():
    split = split_interactions(_chain(n_users=10, n_items=30, length=25), "leave-last-out")
    config = TrainConfig(epochs=2, batch_size=8, seed=0, progress=False, patience=0)
    model = SASRecRecommender(hidden=16, n_layers=1, max_len=6, train_config=config).fit(split.train)
    assert model.score_items(model.user_index.ids).shape == (10, len(model.item_index))


def test_bad_arguments():
    with pytest.raises(ValueError, match="ranking"):
        SASRecRecommender("rating")
    with pytest.raises(ValueError, match="loss"):
        GRU4RecRecommender(loss="bpr")
    with pytest.raises(ValueError, match="divisible"):
        SASRecRecommender(hidden=10, n_heads=3)
    one_step = _chain(n_users=3, length=1)
    with pytest.raises(ValueError, match="two or more"):
        SASRecRecommender(train_config=TrainConfig(epochs=1, progress=False)).fit(one_step)
