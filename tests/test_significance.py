"""Tests of the per-user paired comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textinterest.evaluation import IdIndex, evaluate_ranking
from textinterest.significance import paired_test, per_user_ranking, per_user_squared_error


def _data(n_users=50, n_items=20, seed=0):
    rng = np.random.default_rng(seed)
    train = pd.DataFrame(
        [(f"u{u}", f"i{i}") for u in range(n_users) for i in rng.choice(n_items, 5, replace=False)],
        columns=["user_id", "item_id"],
    )
    test = pd.DataFrame(
        [(f"u{u}", f"i{rng.integers(n_items)}") for u in range(n_users)]
        + [("u0", "i3"), ("ghost", "i1"), ("u1", "new")],
        columns=["user_id", "item_id"],
    )
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
    truth, pred_a, pred_b = (
        np.array([5.0, 3.0, 4.0, 1.0]),
        np.array([4.0, 3.0, 4.0, 2.0]),
        np.array([3.0, 3.0, 1.0, 2.0]),
    )
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


def test_store_and_compare_to_best():
    from textinterest.significance import PerUserStore, compare_to_best

    rng = np.random.default_rng(0)
    users = np.array([f"u{i}" for i in range(300)], dtype=object)
    store = PerUserStore()
    base = rng.uniform(size=300)
    for seed in range(2):
        perm = rng.permutation(300)  # seeds may list users in another order
        store.add("ours", "ranking", users[perm], {"ndcg@10": (base + 0.2)[perm]})
        store.add("strong", "ranking", users[perm], {"ndcg@10": (base + 0.1 * seed)[perm]})
        store.add("weak", "ranking", users, {"ndcg@10": base - 0.3})
        store.add("other-users", "ranking", users[:10], {"ndcg@10": np.ones(10)})
        store.add("ours-ablation", "ranking", users, {"ndcg@10": base + 0.5})
        store.add("ours", "rating", users, {"se": np.full(300, 1.0)})
        store.add("mf", "rating", users, {"se": np.full(300, 0.81) + rng.normal(scale=0.01, size=300)})
    order, mean = store.mean("strong", "ranking")
    np.testing.assert_allclose(mean["ndcg@10"], (base + 0.05)[[int(u[1:]) for u in order]])
    res = compare_to_best(store, "ours", exclude=("ours-ablation",), n_boot=500)
    assert res["ndcg@10"]["best_other"] == "strong" and res["ndcg@10"]["diff"] == pytest.approx(0.15)
    assert res["ndcg@10"]["p_wilcoxon"] < 1e-6
    weak_only = compare_to_best(store, "ours", exclude=("ours-ablation", "strong"), n_boot=500)
    assert weak_only["ndcg@10"]["best_other"] == "weak" and weak_only["ndcg@10"]["diff"] == pytest.approx(0.5)
    assert res["rmse"]["best_other"] == "mf" and res["rmse"]["diff"] > 0.09  # ours is worse on RMSE
    assert "mrr" not in res
    with pytest.raises(ValueError, match="values for"):
        store.add("x", "ranking", users, {"ndcg@10": np.zeros(3)})


def test_store_subset_keeps_the_named_seeds_only():
    from textinterest.significance import PerUserStore, compare_to_best

    users = np.array([f"u{i}" for i in range(50)], dtype=object)
    store = PerUserStore()
    for seed in range(4):
        # "ours" beats "peer" on seeds 0-1 and loses on seeds 2-3: the halves must tell different verdicts
        store.add("ours", "ranking", users, {"ndcg@10": np.full(50, 0.5 if seed < 2 else 0.1)}, seed=seed)
        store.add("peer", "ranking", users, {"ndcg@10": np.full(50, 0.3)}, seed=seed)
    first, second = store.subset([0, 1]), store.subset([2, 3])
    assert first.mean("ours", "ranking")[1]["ndcg@10"] == pytest.approx(np.full(50, 0.5))
    assert second.mean("ours", "ranking")[1]["ndcg@10"] == pytest.approx(np.full(50, 0.1))
    assert compare_to_best(first, "ours", n_boot=100)["ndcg@10"]["diff"] == pytest.approx(0.2)
    assert compare_to_best(second, "ours", n_boot=100)["ndcg@10"]["diff"] == pytest.approx(-0.2)
    moved = PerUserStore()
    moved.extend(first, seed=7)  # a worker's entries take the seed they were fitted with
    assert moved.subset([7]).keys() == [("ours", "ranking"), ("peer", "ranking")]
    assert not store.subset([9]).keys()


def test_format_significance():
    from textinterest.significance import format_significance

    sig = {
        "ndcg@10": {
            "reference": "interest",
            "a": 0.05,
            "best_other": "sasrec",
            "b": 0.06,
            "diff": -0.01,
            "ci_low": -0.02,
            "ci_high": -0.001,
            "p_wilcoxon": 0.01,
        },
        "rmse": {
            "reference": "interest",
            "a": 0.95,
            "best_other": "mf",
            "b": 0.96,
            "diff": -0.01,
            "ci_low": -0.03,
            "ci_high": 0.01,
            "p_wilcoxon": 0.4,
        },
    }
    lines = format_significance({"significance": sig}).splitlines()
    assert lines[0].startswith("| metric | model |") and len(lines) == 4
    assert "sasrec" in lines[2] and lines[2].rstrip(" |").endswith("interest worse")
    assert lines[3].rstrip(" |").endswith("tie")
    with pytest.raises(ValueError, match="significance"):
        format_significance({})
