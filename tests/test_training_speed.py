"""The speed-ups behind the scale benchmark compute what the straightforward code computes.

- negative sampling against a sorted code array draws exactly what the set-based version draws;
- the interest model's candidate scoring (one batched pass over N' items) equals pairwise scoring;
- the k-means start encodes only the windows holding a drawn step, yet returns the same keys;
- the frozen sentiment classifier's chunked features and probabilities equal the unchunked ones;
- per-item sums by sort and reduceat equal ``np.add.at`` to the last bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from textinterest.evaluation import IdIndex
from textinterest.models.interest import DynamicInterestModel, InterestConfig, InterestRecommender, TextFeatures
from textinterest.models.sequences import UserSequences, group_sums, sample_negatives, seen_codes
from textinterest.training import TrainConfig


def interactions(n_users: int = 40, n_items: int = 25, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for j, i in enumerate(rng.choice(n_items, size=int(rng.integers(3, 12)), replace=False)):
            rows.append(
                (f"u{u}", f"i{i}", float(rng.integers(1, 6)), 1_000 + 86_400 * j, f"text {u} {i}", "", len(rows))
            )
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "text", "summary", "source_order"])


def sequences(df: pd.DataFrame) -> UserSequences:
    return UserSequences(df, IdIndex(df["user_id"].to_numpy()), IdIndex(df["item_id"].to_numpy()))


# --------------------------------------------------------------------------- negative sampling


def test_sorted_codes_draw_what_the_set_draws():
    seq = sequences(interactions())
    codes = seen_codes(seq)
    as_set = set((seq.user.astype(np.int64) * seq.n_items + seq.item).tolist())
    assert codes.tolist() == sorted(as_set)
    users = np.random.default_rng(1).integers(0, seq.n_users, size=500)
    fast = sample_negatives(np.random.default_rng(7), users, codes, seq.n_items)
    slow = sample_negatives(np.random.default_rng(7), users, as_set, seq.n_items)
    np.testing.assert_array_equal(fast, slow)
    hits = np.isin(users.astype(np.int64) * seq.n_items + fast, codes)
    assert hits.mean() < 0.05  # redraws remove (almost) every seen item


def test_sample_negatives_with_nothing_seen():
    neg = sample_negatives(np.random.default_rng(0), np.arange(10), np.array([], dtype=np.int64), 5)
    assert neg.shape == (10,) and ((neg >= 0) & (neg < 5)).all()


# --------------------------------------------------------------------------- interest model scoring


@pytest.fixture(scope="module")
def module() -> DynamicInterestModel:
    torch.manual_seed(0)
    model = DynamicInterestModel(InterestConfig(n_users=9, n_items=30, text_dim=6, hidden=8, n_components=3))
    with torch.no_grad():  # non-zero CF terms, so a wrong item lookup shows
        for p in (model.user_bias.weight, model.item_bias.weight):
            p.normal_()
        model.item_text.normal_()
    return model.eval()


@pytest.mark.parametrize("use_cf", [True, False])
def test_candidate_scores_equal_pairwise_scores(module, use_cf):
    module.config.use_cf = use_cf
    try:
        g = torch.Generator().manual_seed(3)
        comps = torch.randn(5, module.config.n_slots, 8, generator=g)
        users = torch.tensor([1, 4, 0, 9, 2])
        cand = torch.tensor([3, 17, 1, 30, 8, 8])
        cand_text = torch.randn(len(cand), 6, generator=g)
        with torch.no_grad():
            batched, beta = module.score_candidates(comps, users, candidates=cand, candidate_text=cand_text)
            assert batched.shape == (5, 6) and beta.shape == (5, 6, module.config.n_slots)
            for n in range(len(cand)):
                items = cand[n].repeat(5)
                pair, pair_beta = module.score_pairs(comps, users, items, cand_text[n].expand(5, -1))
                torch.testing.assert_close(batched[:, n], pair, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(beta[:, n], pair_beta, rtol=1e-5, atol=1e-6)
            every, _ = module.score_candidates(comps, users)
            some, _ = module.score_candidates(comps, users, candidates=torch.arange(1, 31))
        assert every.shape == (5, 30)
        torch.testing.assert_close(every, some)
    finally:
        module.config.use_cf = True


def test_candidate_cf_term_reads_the_candidates(module):
    users, cand = torch.tensor([2, 5]), torch.tensor([7, 2, 7])
    with torch.no_grad():
        full = module.cf_term(users, None)
        torch.testing.assert_close(module.cf_term(users, None, cand), full[:, cand - 1])


# --------------------------------------------------------------------------- k-means start


def test_initial_keys_are_the_drawn_keys_of_all_windows():
    df = interactions(n_users=60, n_items=30, seed=2)
    vectors = np.random.default_rng(0).normal(size=(len(df), 6)).astype(np.float32)
    rec = InterestRecommender(
        InterestConfig(hidden=8, n_components=3, max_history=6),
        TextFeatures(review_vectors=vectors),
        task="ranking",
        train_config=TrainConfig(epochs=1, seed=5, device="cpu", progress=False),
    ).fit(df)
    module = rec.module
    # the straightforward way: every window's keys, concatenated, then the draw
    keys = []
    with torch.no_grad():
        for s in range(0, len(rec._windows), 256):
            batch, _, mask, _ = rec.history_batch(rec._windows[s : s + 256])
            z, h = module.steps(batch)
            keys.append(module.step_keys(h, z)[torch.as_tensor(mask)].numpy())
    every = np.concatenate(keys)
    assert len(every) > 40
    np.testing.assert_allclose(rec._initial_keys(module, max_steps=10**6), every, rtol=1e-5, atol=1e-6)
    drawn = every[np.random.default_rng(5).choice(len(every), 40, replace=False)]
    np.testing.assert_allclose(rec._initial_keys(module, max_steps=40), drawn, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- frozen sentiment, chunked


def test_frozen_sentiment_chunks_change_nothing(tmp_path, monkeypatch):
    import textinterest.text.sentiment as sentiment

    rng = np.random.default_rng(0)
    words = ["great", "awful", "fine", "broken", "love", "hate", "sound", "string", "cheap", "solid"]
    texts = [" ".join(rng.choice(words, size=6)) for _ in range(230)]
    labels = np.array([int(("great" in t or "love" in t) and "awful" not in t) for t in texts])
    clf = sentiment.SentimentClassifier("hashing:32", mode="frozen", cache_dir=tmp_path, device="cpu")
    clf.fit(texts, labels)
    whole = clf._features(texts, chunk=10**6)
    np.testing.assert_array_equal(clf._features(texts, chunk=7), whole)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, rtol=1e-5)
    proba = clf.predict_proba(texts)
    monkeypatch.setattr(sentiment, "FEATURE_CHUNK", 9)
    np.testing.assert_allclose(clf.predict_proba(texts), proba, rtol=1e-12, atol=1e-12)
    assert proba.shape == (230, 2) and ((proba.argmax(1) == labels).mean() > 0.8)


# --------------------------------------------------------------------------- per-item sums


@pytest.mark.parametrize("block", [1, 7, 65536])
def test_group_sums_equal_add_at_to_the_last_bit(block):
    rng = np.random.default_rng(4)
    values = rng.normal(size=(300, 5)).astype(np.float32) * 1e3
    groups = rng.integers(0, 40, size=300)
    groups[groups == 13] = 12  # an empty group
    expected = np.zeros((41, 5))
    np.add.at(expected, groups, values)
    got = group_sums(values, groups, 41, block=block)
    np.testing.assert_array_equal(got, expected)
    assert not got[13].any() and not got[40].any()
    with pytest.raises(ValueError, match="groups must lie"):
        group_sums(values, groups, 20)
