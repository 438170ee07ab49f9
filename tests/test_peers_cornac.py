"""Tests of the Cornac adapters (skipped when the optional extra is not installed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("cornac")

from textinterest.datasets.splits import split_interactions  # noqa: E402
from textinterest.evaluation import evaluate_ranking, rmse  # noqa: E402
from textinterest.models.peers.cornac import CORNAC_MODELS, CornacRecommender, cornac_available  # noqa: E402

WORDS = {0: "guitar string pick fret tuner", 1: "drum stick cymbal snare pedal"}


def _blocks(n_users=60, n_items=30, per_user=12, seed=0):
    """Two user groups x two item groups: matched items rated 5 and written about in the group's words."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        g = u % 2
        pool = [i for i in range(n_items) if i % 2 == g]
        chosen = rng.choice(pool, size=per_user - 2, replace=False).tolist()
        chosen += rng.choice([i for i in range(n_items) if i % 2 != g], size=2, replace=False).tolist()
        rng.shuffle(chosen)
        for j, i in enumerate(chosen):
            r = 5.0 if i % 2 == g else 1.0
            rows.append((u, f"i{i}", r, 1000 + j, len(rows), f"{WORDS[i % 2]} {rng.choice(['nice', 'ok', 'fine'])}"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "source_order", "text"])


def _ndcg(model, split):
    return evaluate_ranking(
        lambda u: model.score_items(model.user_index.ids[u]),
        split.train,
        split.test,
        model.user_index,
        model.item_index,
        ks=(10,),
    )["ndcg@10"]


def test_available():
    ok, version = cornac_available()
    assert ok and version[0].isdigit()


@pytest.mark.parametrize("name", ["bpr", "mf", "hft", "ctr"])
def test_ranking_beats_chance(name):
    split = split_interactions(_blocks(), "leave-last-out")
    model = CornacRecommender(name, "ranking", seed=0, max_iter=200 if name in ("bpr", "mf") else 50).fit(split.train)
    scores = model.score_items([0, 1, "nobody"])
    assert scores.shape == (3, len(model.item_index)) and np.isfinite(scores).all()
    # a constant scorer gets the expected value of a random ranking (ties count uniformly)
    chance = evaluate_ranking(
        lambda u: np.zeros((len(u), len(model.item_index))),
        split.train,
        split.test,
        model.user_index,
        model.item_index,
        ks=(10,),
    )["ndcg@10"]
    assert _ndcg(model, split) > 1.3 * chance


@pytest.mark.parametrize("name", ["mf", "hft"])
def test_rating_beats_the_mean(name):
    split = split_interactions(_blocks(), "leave-last-out")
    model = CornacRecommender(name, "rating", seed=0, max_iter=60).fit(split.train)
    pred = model.predict(split.test)
    truth = split.test["rating"].to_numpy(dtype=float)
    assert rmse(truth, pred) < rmse(truth, np.full_like(truth, split.train["rating"].mean()))
    assert model.n_fallback_ == 0
    unknown = pd.DataFrame({"user_id": ["nobody", 0], "item_id": ["i0", "nothing"]})
    np.testing.assert_allclose(model.predict(unknown), model.global_mean_)
    assert model.n_fallback_ == 2


def test_seed_repeats():
    split = split_interactions(_blocks(), "leave-last-out")
    a = CornacRecommender("bpr", seed=3).fit(split.train).score_items([0, 1])
    b = CornacRecommender("bpr", seed=3).fit(split.train).score_items([0, 1])
    np.testing.assert_array_equal(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown Cornac model"):
        CornacRecommender("narre")
    with pytest.raises(ValueError, match="serves"):
        CornacRecommender("bpr", "rating")
    with pytest.raises(ValueError, match="text"):
        CornacRecommender("hft", "rating").fit(_blocks().drop(columns="text"))
    with pytest.raises(RuntimeError, match="not fitted"):
        CornacRecommender("mf", "rating").predict(_blocks())
    assert set(CORNAC_MODELS) >= {"bpr", "mf", "hft"}
