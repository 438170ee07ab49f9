"""The interest model's switches: time-safe item text, sequence encoders, the residual on frozen
biases and the rare-item gate (tiny generated data, no network)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_interest import D, _model, _random_batch, features_for, tiny, topic_world
from textinterest.datasets.splits import split_interactions
from textinterest.models.interest import InterestConfig, InterestRecommender
from textinterest.models.item_text import ItemTextHistory
from textinterest.models.residual import fit_biases
from textinterest.models.sequence_encoders import make_sequence_encoder, run_sequence_encoder


@pytest.fixture(scope="module")
def world():
    df, vectors, topics = topic_world()
    return df, vectors, split_interactions(df)


# --------------------------------------------------------------------------- ItemTextHistory


def _brute_mean(vectors, items, times, item, t):
    sel = (items == item) & (times < t)
    if sel.any():
        return vectors[sel].mean(0)
    earlier = times < t
    return vectors[earlier].mean(0) if earlier.any() else np.zeros(vectors.shape[1])


def test_item_text_history_matches_brute_force():
    rng = np.random.default_rng(0)
    R, n_items = 200, 15
    vectors = rng.normal(size=(R, 4)).astype(np.float32)
    items = rng.integers(0, n_items, R)
    times = rng.integers(0, 30, R) * 10  # many ties
    hist = ItemTextHistory(vectors, items, times, n_items)
    q_items = rng.integers(0, n_items, 300)
    q_times = rng.integers(-5, 320, 300)
    got = hist.mean_before(q_items, q_times)
    want = np.stack([_brute_mean(vectors, items, times, i, t) for i, t in zip(q_items, q_times)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    counts = hist.count_before(q_items, q_times)
    np.testing.assert_array_equal(counts, [((items == i) & (times < t)).sum() for i, t in zip(q_items, q_times)])
    # a review of the same timestamp counts as later: never part of the vector at its own time
    assert hist.count_before(items[:1], times[:1])[0] == ((items == items[0]) & (times < times[0])).sum()
    for queries, table in hist.tables(np.array([50, 50, 120])):
        t = [50, 50, 120][queries[0]]
        np.testing.assert_allclose(table[1:], hist.mean_before(np.arange(n_items), t), atol=1e-6)
        np.testing.assert_allclose(table[0], vectors[times < t].mean(0), atol=1e-5)


@pytest.mark.parametrize("sum_block, fallback_block", [(7, 4), (16384, 64), (1, 1)])
def test_item_text_history_block_boundaries(monkeypatch, sum_block, fallback_block):
    """Running sums and fallback anchors give the brute-force means whatever the block sizes."""
    import textinterest.models.item_text as item_text

    monkeypatch.setattr(item_text, "SUM_BLOCK", sum_block)
    monkeypatch.setattr(item_text, "FALLBACK_BLOCK", fallback_block)
    monkeypatch.setattr(item_text, "QUERY_BLOCK", 5)
    rng = np.random.default_rng(1)
    R, n_items = 90, 4  # few items: segments cross many blocks
    vectors = rng.normal(size=(R, 3)).astype(np.float32)
    items, times = rng.integers(0, n_items, R), rng.integers(0, 40, R)
    hist = item_text.ItemTextHistory(vectors, items, times, n_items)
    q_items, q_times = rng.integers(0, n_items, 120), rng.integers(-2, 45, 120)
    want = np.stack([_brute_mean(vectors, items, times, i, t) for i, t in zip(q_items, q_times)])
    np.testing.assert_allclose(hist.mean_before(q_items, q_times), want, atol=1e-5)


def test_item_text_history_keeps_float64_precision_on_long_histories():
    """One item with 200k reviews sharing a large common direction (as encoder vectors do): the means read
    from the float32 running sums stay within float32 rounding of a float64 reference."""
    rng = np.random.default_rng(2)
    R = 200_000
    vectors = (5.0 + rng.normal(scale=0.1, size=(R, 8))).astype(np.float32)
    times = np.arange(R)
    hist = ItemTextHistory(vectors, np.zeros(R, int), times, 1)
    q_times = np.array([1, 2, 1000, 65_537, 150_001, R])
    want = np.stack([vectors[:t].astype(np.float64).mean(0) for t in q_times])
    got = hist.mean_before(np.zeros(len(q_times), int), q_times)
    np.testing.assert_allclose(got, want, rtol=2e-7)  # a plain float32 cumsum is off by about 1e-5 here
    np.testing.assert_allclose(hist.fallback_before(q_times), want, rtol=2e-7)


def test_item_text_history_fixed_vectors_and_bad_input():
    vectors = np.eye(3, dtype=np.float32)
    fixed = np.array([False, True])
    meta = np.full((2, 3), 7.0, np.float32)
    hist = ItemTextHistory(vectors, np.array([0, 1, 1]), np.array([1, 2, 3]), 2, fixed, meta)
    np.testing.assert_allclose(hist.mean_before(np.array([1, 1]), np.array([0, 99])), meta[[1, 1]])
    with pytest.raises(ValueError, match="must agree"):
        ItemTextHistory(vectors, np.array([0, 1]), np.array([1, 2, 3]), 2)
    with pytest.raises(ValueError, match="item positions"):
        ItemTextHistory(vectors, np.array([0, 1, 5]), np.array([1, 2, 3]), 2)
    with pytest.raises(ValueError, match="item positions"):
        hist.mean_before(np.array([2]), 5)
    with pytest.raises(ValueError, match="fallback must be"):
        ItemTextHistory(vectors, np.array([0, 1, 1]), np.array([1, 2, 3]), 2, fallback="median")
    # every item fixed: answered from the fixed vectors, no running sums kept
    every = ItemTextHistory(vectors, np.array([0, 1, 1]), np.array([1, 2, 3]), 2, np.ones(2, bool), meta)
    assert every.running.size == 0
    np.testing.assert_allclose(every.mean_before(np.array([0, 1]), 99), meta)
    # an item without any review: the mean of earlier reviews, or zeros on request
    three = ItemTextHistory(vectors, np.array([0, 1, 1]), np.array([1, 2, 3]), 3)
    np.testing.assert_allclose(three.mean_before(np.array([2]), 3), vectors[:2].mean(0, keepdims=True))
    zeros = ItemTextHistory(vectors, np.array([0, 1, 1]), np.array([1, 2, 3]), 3, fallback="zeros")
    np.testing.assert_allclose(zeros.every_review()[2], 0.0)
    np.testing.assert_allclose(zeros.every_review()[1], vectors[1:].mean(0))


# --------------------------------------------------------------------------- time-safe item text in the model


def test_training_targets_and_negatives_use_only_earlier_reviews(world):
    df, vectors, split = world
    train = split.train
    rec = InterestRecommender(features=features_for(train, vectors), **tiny("ranking", epochs=1)).fit(train)
    times = train.timestamp.to_numpy()[rec.seq.rows]
    review = vectors[train.index.to_numpy()[rec.seq.rows]]
    for r in range(0, len(rec.seq), 37):
        want = _brute_mean(review, rec.seq.item, times, rec.seq.item[r], times[r])
        np.testing.assert_allclose(rec._loo[r], want, atol=1e-5)
    batch = next(rec._batches(0, np.random.default_rng(0)))
    bounds, when = batch["buckets"].numpy(), batch["target_time"].numpy()
    cand = batch["cand"].numpy() - 1
    assert batch["cand_text"].shape == (len(bounds) - 1, len(cand), D)
    assert (np.diff(when) >= 0).all() and bounds[-1] == len(when)  # targets in time order
    for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        assert when[lo] == when[lo:hi].min()  # a bucket's negatives never read a review after any of its targets
        want = np.stack([_brute_mean(review, rec.seq.item, times, i, when[lo]) for i in cand[:10]])
        np.testing.assert_allclose(batch["cand_text"][g, :10].numpy(), want, atol=1e-5)


def _fit_timed(world, task, **over):
    df, vectors, split = world
    rec = InterestRecommender(features=features_for(split.train, vectors), **tiny(task, epochs=2, **over))
    return rec.fit(split.train, split.val).set_prediction_times(split.test)


def _user_with_reviews_around_test_time(split):
    """A user, and two training rows of other users of an item that user's test answer reads (the test item or
    a history item): one written at or after the user's test time, one before it."""
    train = split.train
    for user, t_test in split.test.groupby("user_id").timestamp.min().sort_values().items():
        mine = set(train.item_id[train.user_id == user]) | set(split.test.item_id[split.test.user_id == user])
        others = train[(train.user_id != user) & train.item_id.isin(mine)]
        later, earlier = others.index[others.timestamp >= t_test], others.index[others.timestamp < t_test]
        if len(later) and len(earlier):
            return user, int(later[0]), int(earlier[0])
    raise AssertionError("no user fits")


@pytest.mark.parametrize("task", ["ranking", "rating"])
def test_a_review_written_after_the_test_time_never_changes_the_test_score(world, task):
    df, vectors, split = world
    train = split.train
    user, later, earlier = _user_with_reviews_around_test_time(split)
    test_rows = split.test[split.test.user_id == user]

    def answer(rec):
        return rec.score_items([user])[0] if task == "ranking" else rec.predict(test_rows)

    def perturbed(row):
        v = vectors.copy()
        v[row] += 25.0
        return features_for(train, v)

    safe = _fit_timed(world, task)
    before = answer(safe)
    safe._set_features(perturbed(later))
    np.testing.assert_allclose(answer(safe), before, atol=1e-6)
    safe._set_features(perturbed(earlier))  # control: a review before the test time does count
    assert np.abs(answer(safe) - before).max() > 1e-5
    future = _fit_timed(world, task, time_safe_text=False)  # the old behaviour reads the later review
    before = answer(future)
    future._set_features(perturbed(later))
    assert np.abs(answer(future) - before).max() > 1e-5


def test_prediction_times_only_apply_where_set_and_restore_the_table(world):
    df, vectors, split = world
    rec = _fit_timed(world, "ranking")
    stored = rec.module.item_text.clone()
    users = list(pd.unique(split.test.user_id))[:20]
    timed = rec.score_items(users)
    assert torch.equal(rec.module.item_text, stored)
    rec.set_prediction_times(split.test.iloc[:0])
    untimed = rec.score_items(users)
    assert np.abs(timed - untimed).max() > 1e-5
    with pytest.raises(ValueError, match="lacks column"):
        rec.set_prediction_times(split.test.drop(columns="timestamp"))


@pytest.mark.parametrize("task", ["ranking", "rating"])
def test_time_safe_scores_equal_scoring_with_the_whole_table_at_that_time(world, task):
    # the fast path (history encoded once with per-step text) against the plain one: every item vector,
    # row 0 included, replaced by its value at the user's time
    df, vectors, split = world
    rec = _fit_timed(world, task)
    stored = rec.module.item_text.clone()
    for user in list(pd.unique(split.test.user_id))[:4]:
        rows = split.test[split.test.user_id == user]
        t = int(rows.timestamp.min())
        fast = rec.score_items([user])[0] if task == "ranking" else rec.predict(rows)
        table = next(rec._item_history.tables(np.array([t])))[1]
        with torch.no_grad():
            rec.module.item_text.copy_(torch.as_tensor(table))
        rec.set_prediction_times(split.test.iloc[:0])
        plain = rec.score_items([user])[0] if task == "ranking" else rec.predict(rows)
        with torch.no_grad():
            rec.module.item_text.copy_(stored)
        rec.set_prediction_times(split.test)
        np.testing.assert_allclose(fast, plain, atol=1e-5)


@pytest.mark.parametrize("block, time_block", [(1, 8), (3, 8), (128, 1), (128, 2), (128, 8), (128, 1000)])
def test_time_safe_scores_of_many_users_equal_each_user_alone(world, monkeypatch, block, time_block):
    """Users of different times scored in blocks (each row against its own time's projected item table) give
    the scores each user gets alone, and the pairwise scores of the same (user, item) pairs."""
    import textinterest.models.item_text as item_text

    df, vectors, split = world
    rec = _fit_timed(world, "ranking")
    users = list(pd.unique(split.test.user_id))[:12]
    assert split.test[split.test.user_id.isin(users)].groupby("user_id").timestamp.min().nunique() > 3
    monkeypatch.setattr(item_text, "USER_BLOCK", block)
    monkeypatch.setattr(item_text, "TIME_BLOCK", time_block)
    together = rec.score_items(users)
    alone = np.stack([rec.score_items([u])[0] for u in users])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    pos = rec.user_index.index_of(np.asarray(users, dtype=object))
    items = np.arange(len(users)) % len(rec.item_index)
    with torch.no_grad():
        pairwise = rec._at_prediction_times(pos, items)
    np.testing.assert_allclose(pairwise, together[np.arange(len(users)), items], atol=1e-5)


# --------------------------------------------------------------------------- sequence encoders


@pytest.mark.parametrize("kind", ["lstm", "gru", "attention"])
def test_sequence_encoders_are_causal(kind):
    torch.manual_seed(0)
    enc = make_sequence_encoder(kind, 8, max_len=10, dropout=0.0).eval()
    z = torch.randn(3, 7, 8)
    h = run_sequence_encoder(enc, z)
    assert h.shape == (3, 7, 8)
    z2 = z.clone()
    z2[:, 4] += 5.0
    h2 = run_sequence_encoder(enc, z2)
    torch.testing.assert_close(h2[:, :4], h[:, :4])
    assert (h2[:, 4:] - h[:, 4:]).abs().max() > 1e-3


def test_sequence_encoder_bad_values():
    with pytest.raises(ValueError, match="sequence_encoder"):
        InterestConfig(sequence_encoder="transformer-xl")
    with pytest.raises(ValueError, match="sequence_encoder"):
        make_sequence_encoder("rnn", 8, 10)
    enc = make_sequence_encoder("attention", 8, max_len=4)
    with pytest.raises(ValueError, match="max_len"):
        enc(torch.zeros(1, 5, 8))


@pytest.mark.parametrize("kind", ["gru", "attention"])
def test_interest_model_with_other_encoders_trains_and_differs(world, kind):
    df, vectors, split = world
    m = _model(sequence_encoder=kind, max_history=8)
    batch = _random_batch(m.config, [3, 5, 1])
    comps, gamma, den = m.final_components(batch)
    assert comps.shape == (3, m.config.n_slots, 8) and torch.isfinite(comps).all()
    rec = InterestRecommender(features=features_for(split.train, vectors), **tiny("ranking", sequence_encoder=kind))
    rec.fit(split.train, split.val)
    scores = rec.score_items(list(pd.unique(split.test.user_id))[:5])
    assert np.isfinite(scores).all()
    lstm = InterestRecommender(features=features_for(split.train, vectors), **tiny("ranking")).fit(
        split.train, split.val
    )
    assert np.abs(lstm.score_items(list(pd.unique(split.test.user_id))[:5]) - scores).max() > 1e-4


# --------------------------------------------------------------------------- residual on frozen biases


def test_fit_biases_matches_surprise_baselineonly():
    surprise = pytest.importorskip("surprise")
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 20, 300), rng.integers(0, 15, 300)
    ratings = rng.integers(1, 6, 300).astype(float)
    mu, bu, bi = fit_biases(users, items, ratings, 20, 15)
    frame = pd.DataFrame({"u": users, "i": items, "r": ratings})
    data = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5)))
    algo = surprise.BaselineOnly(verbose=False).fit(data.build_full_trainset())
    pairs = [(3, 4), (0, 0), (19, 14), (7, 2)]
    for u, i in pairs:
        want = algo.predict(u, i, clip=False).est
        assert mu + bu[u] + bi[i] == pytest.approx(want, abs=1e-6)


def test_fit_biases_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        fit_biases(np.array([0]), np.array([0]), np.array([np.nan]), 1, 1)
    with pytest.raises(ValueError, match="out of range"):
        fit_biases(np.array([3]), np.array([0]), np.array([4.0]), 1, 1)
    with pytest.raises(ValueError, match="at least one"):
        fit_biases(np.array([], int), np.array([], int), np.array([]), 1, 1)


def test_residual_stays_near_the_frozen_base_when_pulled_hard(world):
    df, vectors, split = world
    train = split.train
    rec = InterestRecommender(
        features=features_for(train, vectors), **tiny("rating", residual_base="biases", residual_l2=1e4)
    ).fit(train, split.val)
    seq = rec.seq
    mu, bu, bi = fit_biases(seq.user, seq.item, seq.rating, len(rec.user_index), len(rec.item_index))
    np.testing.assert_allclose(rec.module.base_item_bias[1:].numpy(), bi, atol=1e-5)  # frozen: not trained
    users = rec.user_index.index_of(split.test.user_id.to_numpy())
    items = rec.item_index.index_of(split.test.item_id.to_numpy())
    base = mu + np.where(users >= 0, bu[users], 0) + np.where(items >= 0, bi[np.maximum(items, 0)], 0)
    base = np.clip(base, *rec.rating_range_)
    free = InterestRecommender(features=features_for(train, vectors), **tiny("rating", residual_base="biases")).fit(
        train, split.val
    )
    assert np.abs(rec.predict(split.test) - base).max() < 0.05
    assert np.abs(free.predict(split.test) - base).max() > 0.05  # control: a free residual moves away


def test_residual_is_rating_only(world):
    df, vectors, split = world
    rec = InterestRecommender(features=features_for(split.train, vectors), **tiny("ranking", residual_base="biases"))
    with pytest.raises(ValueError, match="rating task"):
        rec.fit(split.train)
    with pytest.raises(ValueError, match="residual_base"):
        InterestConfig(residual_base="svd")


# --------------------------------------------------------------------------- rare-item gate


def test_rare_item_gate_scales_the_id_embedding_by_count():
    m = _model(rare_item_gate=True)
    with torch.no_grad():
        m.item_log_count[1:] = torch.log1p(torch.arange(9, dtype=torch.float32) * 5)
    items = torch.arange(1, 10)
    a, b = m.rare_gate
    gate = torch.sigmoid(a * m.item_log_count[items] + b)
    want = m.item_norm(gate[:, None] * m.item_id(items) + m.item_text_proj(m.item_text[items]))
    torch.testing.assert_close(m.item_repr(items), want)
    assert (gate[1:] > gate[:-1]).all()  # more interactions, more weight on the ID embedding


def test_rare_item_gate_counts_and_training(world):
    df, vectors, split = world
    train = split.train
    rec = InterestRecommender(features=features_for(train, vectors), **tiny("ranking", rare_item_gate=True))
    start = torch.tensor([1.0, -1.0])
    rec.fit(train, split.val)
    counts = train.item_id.value_counts()
    got = rec.module.item_log_count[1 + rec.item_index.index_of(counts.index.to_numpy())].numpy()
    np.testing.assert_allclose(got, np.log1p(counts.to_numpy()), rtol=1e-6)
    assert not torch.allclose(rec.module.rare_gate.detach(), start)  # the gate is learned


# --------------------------------------------------------------------------- registry rows


def test_switch_rows_are_registered():
    from textinterest.models import registry

    for name, field, value in [
        ("interest-future-text", "time_safe_text", False),
        ("interest-residual", "residual_base", "biases"),
        ("interest-gru", "sequence_encoder", "gru"),
        ("interest-attention", "sequence_encoder", "attention"),
        ("interest-text-rare", "rare_item_gate", True),
    ]:
        spec = registry.get(name)
        assert registry.INTEREST_VARIANTS[name][field] == value
        # a switch is another model: it searches the same grid as the interest model itself
        assert spec.tuned_by is None and spec.grid == registry.INTEREST_GRID and not spec.default
        assert name not in registry.default_names()
    # an ablation measures the part it removes, with the full model's choice
    assert registry.get("interest-no-text").tuned_by == "interest" and not registry.get("interest-no-text").grid
    assert registry.get("interest-residual").tasks == ("rating",)
    assert InterestConfig().time_safe_text and InterestConfig().sequence_encoder == "lstm"
