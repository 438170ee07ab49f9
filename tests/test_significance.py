"""Tests of the per-user paired comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textinterest.evaluation import IdIndex, evaluate_ranking
from textinterest.significance import paired_test, per_user_ranking, per_user_squared_error


def _data(n_users=50, n_items=20, seed=0):
    rng = np.random.default_rng(seed)
    train = pd.DataFrame([(f"u{u}", f"i{i}") for u in range(n_users) for i in rng.choice(n_items, 5, replace=False)],
                         columns=["user_id", "item_id"])
    test = pd.DataFrame([(f"u{u}", f"i{rng.integers(n_items)}") for u in range(n_users)] + [("u0", "i3"), ("ghost", "i1"), ("u1", "new")],
                        columns=["user_id", "item_id"])
    return train, test


def test_per_user_ranking_averages_to_evaluate_ranking():
    train, test = _data()
    users, items = IdIndex(train.user_id), IdIndex(train.item_id)
    rng = np.random.default_rng(1)
    table = rng.normal(size=(len(users), len(items)))
    table[:, :3] = 0.0  # ties too
    fn = lambda u: table[u]  # noqa: E731
    ids, per_user = per_user_ranking(fn, train, test, users, items, ks=(5, 10), batch_size=7)
    expected = evaluate_ranking(fn, train, test, users, items, ks=(5, 10))
    assert list(ids) == list(pd.unique(test.user_id))
    for name in ("hr@5", "ndcg@10", "mrr"):
        assert per_user[name].mean() == pytest.approx(expected[name])
    assert per_user["mrr"][list(ids).index("ghost")] == 0.0


def test_paired_test_finds_a_real_gap_and_not_a_null_one():
    rng = np.random.default_rng(0)
    base = rng.uniform(size=500)
    better = base + 0.05 + rng.normal(scale=0.05, size=500)
    res = paired_test(better, base, seed=1)
    assert res["ci_low"] > 0 and res["p_wilcoxon"] < 1e-6 and res["p_bootstrap"] < 0.01
    assert res["diff"] == pytest.approx(better.mean() - base.mean())
    noise = base + rng.normal(scale=0.05, size=500)
    null = paired_test(noise, base, seed=1)
    assert null["ci_low"] < 0 < null["ci_high"] and null["p_wilcoxon"] > 0.01
    same = paired_test(base, base.copy(), n_boot=200)
    assert same["p_wilcoxon"] == 1.0 and same["diff"] == 0.0


def test_rmse_statistic_and_squared_errors():
    users = ["a", "a", "b", "c"]
    truth, pred_a, pred_b = np.array([5.0, 3.0, 4.0, 1.0]), np.array([4.0, 3.0, 4.0, 2.0]), np.array([3.0, 3.0, 1.0, 2.0])
    ids, se_a = per_user_squared_error(users, truth, pred_a)
    _, se_b = per_user_squared_error(users, truth, pred_b)
    assert list(ids) == ["a", "b", "c"]
    np.testing.assert_allclose(se_a, [0.5, 0.0, 1.0])
    res = paired_test(se_a, se_b, statistic="rmse", n_boot=500)
    assert res["a"] == pytest.approx(np.sqrt(se_a.mean())) and res["diff"] < 0


def test_bad_input():
    with pytest.raises(ValueError, match="same users"):
        paired_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 2"):
        paired_test([1.0], [1.0])
    with pytest.raises(ValueError, match="statistic"):
        paired_test([1.0, 2.0], [1.0, 2.0], statistic="median")
    with pytest.raises(ValueError, match="finite"):
        paired_test([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="one entry per row"):
        per_user_squared_error(["a"], [1.0, 2.0], [1.0, 2.0])
