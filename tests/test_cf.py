"""Tests of the ID-only torch models (MF, sequential LSTM) and the history utilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textinterest.datasets.splits import split_interactions
from textinterest.evaluation import IdIndex, evaluate_ranking, rmse
from textinterest.models.cf import MFRecommender, SequentialRecommender, UserSequences
from textinterest.training import TrainConfig


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "source_order"])


def _block_ratings(n_users=60, n_items=30, per_user=12, seed=0):
    """Two user groups x two item groups: group-matched items are rated 5, others 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        for j, i in enumerate(items):
            r = 5.0 if (u % 2) == (i % 2) else 1.0
            rows.append((f"u{u}", f"i{i}", r, 1000 + j, len(rows)))
    return _frame(rows)


def _chain(n_users=40, n_items=12, length=8, seed=0):
    """Every user walks items k, k+1, k+2, ... (mod n_items) from a random start."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        for j in range(length):
            rows.append((f"u{u}", f"i{(start + j) % n_items}", np.nan, 1000 + j, len(rows)))
    return _frame(rows)


def _fast(**kw):
    base = dict(epochs=30, progress=False, patience=5, seed=0)
    base.update(kw)
    return TrainConfig(**base)


# --------------------------------------------------------------------------- UserSequences


def test_user_sequences_order_and_gaps():
    df = _frame(
        [
            ("a", "x", 5.0, 200, 2),
            ("b", "y", 3.0, 100, 0),
            ("a", "y", 4.0, 100, 5),
            ("a", "z", 1.0, 100, 1),
            ("b", "x", np.nan, 100 + 86400 * 3, 9),
        ]
    )
    users, items = IdIndex(df.user_id), IdIndex(df.item_id)
    seq = UserSequences(df, users, items)
    a = users.index_of(["a"])[0]
    s, n = seq.starts[a], seq.lengths[a]
    # ties at t=100 broken by source_order: z (1) before y (5); then x at 200
    assert items.id_of(seq.item[s : s + n]).tolist() == ["z", "y", "x"]
    assert seq.rows[s : s + n].tolist() == [3, 2, 0]
    b = users.index_of(["b"])[0]
    sb = seq.starts[b]
    np.testing.assert_allclose(seq.log_gap[sb : sb + 2], [0.0, np.log1p(3.0)], rtol=1e-6)
    assert np.isnan(seq.rating[sb + 1])


def test_user_sequences_rejects_unknown_ids():
    df = _frame([("a", "x", 5.0, 1, 0)])
    with pytest.raises(ValueError, match="id indices"):
        UserSequences(df, IdIndex(["b"]), IdIndex(["x"]))


@pytest.mark.parametrize("length,max_len", [(3, 4), (10, 4), (11, 5), (40, 8)])
def test_windows_cover_every_target_once_with_context(length, max_len):
    df = _frame([("a", f"i{j}", 1.0, j, j) for j in range(length)])
    seq = UserSequences(df, IdIndex(df.user_id), IdIndex(df.item_id))
    win = seq.windows(max_len)
    targets = []
    for _u, start, end, first in win:
        assert end - start <= max_len
        for p in range(first, end):
            targets.append(p)
            if start > 0:  # not the first window: at least max_len // 2 steps of context
                assert p - start >= max_len // 2
    assert sorted(targets) == list(range(length))
    pos, mask, target = seq.pad(win)
    assert pos.shape == mask.shape == target.shape and target.sum() == length
    with pytest.raises(ValueError, match="max_len"):
        seq.windows(1)


def test_last_window_handles_unknown_and_long_users():
    df = _frame([("a", f"i{j}", 1.0, j, j) for j in range(7)])
    seq = UserSequences(df, IdIndex(df.user_id), IdIndex(df.item_id))
    win = seq.last_window(np.array([0, -1]), 5)
    assert win[0].tolist() == [0, 2, 7, 7] and win[1, 2] - win[1, 1] == 0
    pos, mask, target = seq.pad(win)
    assert mask.sum(1).tolist() == [5, 0] and not target.any()


# --------------------------------------------------------------------------- MF


def test_mf_rating_learns_block_structure_and_counts_fallback():
    df = _block_ratings()
    split = split_interactions(df, "random", seed=0)
    mf = MFRecommender("rating", dim=8, l2=1e-5, train_config=_fast(lr=0.02, batch_size=64)).fit(split.train, split.val)
    pred = mf.predict(split.test)
    truth = split.test.rating.to_numpy()
    baseline = rmse(truth, np.full(len(truth), split.train.rating.mean()))
    assert rmse(truth, pred) < 0.6 * baseline
    assert pred.min() >= 1.0 and pred.max() <= 5.0
    unknown = pd.DataFrame({"user_id": ["nobody", "u0"], "item_id": ["i0", "no-item"]})
    out = mf.predict(unknown)
    assert out.shape == (2,) and np.isfinite(out).all() and mf.n_fallback_ == 2
    scores = mf.score_items(["u0", "u1", "nobody"])
    assert scores.shape == (3, len(mf.item_index))


def test_mf_is_deterministic_given_the_seed():
    df = _block_ratings(n_users=20, n_items=10, per_user=6)
    a = MFRecommender("rating", train_config=_fast(epochs=3)).fit(df).predict(df)
    b = MFRecommender("rating", train_config=_fast(epochs=3)).fit(df).predict(df)
    c = MFRecommender("rating", train_config=_fast(epochs=3, seed=1)).fit(df).predict(df)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_mf_bpr_ranks_better_than_chance():
    df = _block_ratings(n_users=80, n_items=40, per_user=10, seed=1)
    df = df[df.rating == 5.0]  # implicit feedback: only the liked (group-matched) items
    split = split_interactions(df, "leave-last-out")
    mf = MFRecommender("ranking", dim=8, train_config=_fast(lr=0.02, batch_size=64)).fit(split.train, split.val)
    res = evaluate_ranking(
        lambda u: mf.score_items(mf.user_index.ids[u]), split.train, split.test, mf.user_index, mf.item_index
    )
    # ~37 candidates, ~17 of them in the user's group: chance ~ 10/37 = 0.27, perfect group model ~ 10/17 = 0.59
    assert res["hr@10"] > 0.4
    with pytest.raises(ValueError, match="task='rating'"):
        mf.predict(split.test)


def test_mf_bad_inputs():
    with pytest.raises(ValueError, match="task"):
        MFRecommender("clustering")
    with pytest.raises(ValueError, match="empty"):
        MFRecommender().fit(_frame([]))
    with pytest.raises(ValueError, match="lacks column"):
        MFRecommender().fit(pd.DataFrame({"user_id": ["a"], "item_id": ["b"]}))
    with pytest.raises(ValueError, match="rated"):
        MFRecommender("rating").fit(_chain(n_users=2))
    with pytest.raises(RuntimeError, match="not fitted"):
        MFRecommender().predict(_frame([]))


# --------------------------------------------------------------------------- sequential LSTM


def test_sequential_lstm_learns_a_chain():
    df = _chain()
    split = split_interactions(df, "leave-last-out")
    seq = SequentialRecommender(hidden=32, dropout=0.0, train_config=_fast(epochs=60, lr=0.01, batch_size=16)).fit(
        split.train, split.val
    )
    # the validation item is the next step after the training history (the test item is two
    # steps ahead: test predictions use the training history only)
    res = evaluate_ranking(
        lambda u: seq.score_items(seq.user_index.ids[u]),
        split.train,
        split.val,
        seq.user_index,
        seq.item_index,
        ks=(1, 5),
    )
    assert res["hr@1"] > 0.8  # chance: 1 / 6 candidates left
    assert seq.score_items(["u0", "unknown"]).shape == (2, len(seq.item_index))


def test_sequential_rejects_rating_task():
    with pytest.raises(ValueError, match="ranking"):
        SequentialRecommender("rating")
