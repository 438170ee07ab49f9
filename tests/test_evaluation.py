"""Tests for textinterest.evaluation: rating, ranking and classification metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from textinterest.constants import ITEM_COL, USER_COL
from textinterest.evaluation import (
    IdIndex,
    classification_metrics,
    evaluate_ranking,
    mae,
    ranking_metrics,
    rmse,
)

# --------------------------------------------------------------------------- rating metrics


def test_rmse_and_mae_values():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)


@pytest.mark.parametrize("metric", [rmse, mae])
def test_rating_metrics_reject_bad_input(metric):
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        metric([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"y_true contains 1 NaN.*position 1"):
        metric([1, np.nan, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="y_pred"):
        metric([1, 2], [1, np.inf])
    with pytest.raises(ValueError, match="zero values"):
        metric([], [])


# --------------------------------------------------------------------------- IdIndex


def test_id_index_round_trip_and_missing():
    index = IdIndex(["b", "a", "b", "c"])
    assert index.ids.tolist() == ["b", "a", "c"] and len(index) == 3
    assert index.index_of(["c", "zz", "b"]).tolist() == [2, -1, 0]
    assert index.index_of(["zz"], missing=-7).tolist() == [-7]
    assert index.id_of([1, 2]).tolist() == ["a", "c"]
    assert "a" in index and "zz" not in index
    with pytest.raises(KeyError, match="zz"):
        index.index_of(["a", "zz"], missing=None)
    with pytest.raises(ValueError, match="missing"):
        IdIndex(["a", None])


# --------------------------------------------------------------------------- ranking


def naive_ranking(scores, exclude, targets, ks, ties):
    """Reference: one row at a time, enumerating the target's possible positions among ties."""
    n_rows, n_items = scores.shape
    out = {f"{m}@{k}": [] for k in ks for m in ("hr", "ndcg")}
    out["mrr"] = []
    for row in range(n_rows):
        t = targets[row]
        if t < 0:
            for name in out:
                out[name].append(0.0)
            continue
        candidates = np.ones(n_items, dtype=bool)
        candidates[list(exclude[row])] = False
        candidates[t] = False  # the target is compared against the other candidates
        others = scores[row][candidates]
        higher = int((others > scores[row, t]).sum())
        tied = int((others == scores[row, t]).sum())
        ranks = [higher + tied] if ties == "pessimistic" else list(range(higher, higher + tied + 1))
        for k in ks:
            out[f"hr@{k}"].append(np.mean([r < k for r in ranks]))
            out[f"ndcg@{k}"].append(np.mean([1 / math.log2(r + 2) if r < k else 0.0 for r in ranks]))
        out["mrr"].append(np.mean([1 / (r + 1) for r in ranks]))
    return {name: float(np.mean(values)) for name, values in out.items()}


def random_case(n_rows, n_items, seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=(n_rows, n_items)), 1)  # coarse values: many ties
    exclude_rows = [rng.choice(n_items, size=rng.integers(0, 50), replace=False) for _ in range(n_rows)]
    targets = rng.integers(0, n_items, size=n_rows)
    targets[rng.random(n_rows) < 0.05] = -1
    # Some targets also appear among the row's excluded items (re-consumption).
    for row in range(0, n_rows, 17):
        if targets[row] >= 0:
            exclude_rows[row] = np.append(exclude_rows[row], targets[row])
    indptr = np.concatenate([[0], np.cumsum([len(e) for e in exclude_rows])])
    indices = np.concatenate(exclude_rows).astype(np.int64)
    exclude = sp.csr_matrix((np.ones(indices.size), indices, indptr), shape=(n_rows, n_items))
    return scores, exclude, exclude_rows, targets


@pytest.mark.parametrize("ties", ["expected", "pessimistic"])
def test_ranking_metrics_match_naive_loop_on_2000_by_5000(ties):
    ks = (1, 5, 10, 20)
    scores, exclude, exclude_rows, targets = random_case(2000, 5000, seed=0)
    fast = ranking_metrics(scores, exclude, targets, ks, ties=ties)
    ref = naive_ranking(scores, exclude_rows, targets, ks, ties)
    assert set(fast) == set(ref)
    for name in ref:
        assert fast[name] == pytest.approx(ref[name], abs=1e-12), name
    assert 0.0 < fast["hr@20"] < 1.0 and fast["mrr"] > 0.0


def test_ranking_metrics_hand_example():
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 1]]))
    targets = np.array([1, 0])
    m = ranking_metrics(scores, train, targets, ks=(1, 2))
    # row 0: item 0 excluded -> target is first (rank 0); row 1: item 3 excluded -> rank 2
    assert m["hr@1"] == pytest.approx(0.5)
    assert m["hr@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx((1.0 + 1 / 3) / 2)
    # Without exclusion, row 0's target is second.
    assert ranking_metrics(scores, None, targets, ks=(1,))["hr@1"] == 0.0


def test_constant_scores_give_random_level_with_expected_ties():
    n_items = 100
    scores = np.zeros((50, n_items))
    targets = np.arange(50)
    expected = ranking_metrics(scores, None, targets, ks=(10,))
    assert expected["hr@10"] == pytest.approx(10 / n_items)
    assert expected["mrr"] == pytest.approx(sum(1 / r for r in range(1, n_items + 1)) / n_items)
    assert ranking_metrics(scores, None, targets, ks=(10,), ties="pessimistic")["hr@10"] == 0.0


def test_ranking_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="non-finite|NaN"):
        ranking_metrics(np.array([[np.nan, 1.0]]), None, np.array([0]))
    with pytest.raises(ValueError, match="rows"):
        ranking_metrics(np.zeros((2, 3)), None, np.array([0]))
    with pytest.raises(ValueError, match="ties"):
        ranking_metrics(np.zeros((1, 3)), None, np.array([0]), ties="optimistic")
    with pytest.raises(ValueError, match="shape"):
        ranking_metrics(np.zeros((1, 3)), sp.csr_matrix((1, 4)), np.array([0]))


def _frames(rows):
    return pd.DataFrame(rows, columns=[USER_COL, ITEM_COL])


def test_evaluate_ranking_matches_ranking_metrics_and_batches():
    rng = np.random.default_rng(1)
    n_users, n_items = 300, 120
    table = rng.normal(size=(n_users, n_items))
    users = [f"u{k}" for k in range(n_users)]
    items = [f"i{k}" for k in range(n_items)]
    train_pairs = [(users[u], items[i]) for u in range(n_users) for i in rng.choice(n_items, 5, replace=False)]
    train = _frames(train_pairs)
    test_items = rng.integers(0, n_items, n_users)
    test = _frames([(users[u], items[test_items[u]]) for u in range(n_users)])
    user_index, item_index = IdIndex(users), IdIndex(items)
    exclude = sp.csr_matrix(
        (np.ones(len(train)), (user_index.index_of(train[USER_COL]), item_index.index_of(train[ITEM_COL]))),
        shape=(n_users, n_items),
    )
    reference = ranking_metrics(table, exclude, test_items)
    calls = []

    def score_fn(positions):
        calls.append(len(positions))
        return table[positions]

    for batch_size in (1, 64, 1000):
        calls.clear()
        result = evaluate_ranking(score_fn, train, test, user_index, item_index, batch_size=batch_size)
        for name, value in reference.items():
            assert result[name] == pytest.approx(value, abs=1e-12), (batch_size, name)
        assert max(calls) <= batch_size and sum(calls) == n_users
    assert result["n_users"] == n_users and result["n_cases"] == n_users
    assert result["n_unknown_user"] == 0 and result["n_unknown_target"] == 0


def test_evaluate_ranking_unknown_ids_are_counted_misses():
    user_index, item_index = IdIndex(["a", "b"]), IdIndex(["x", "y", "z"])
    train = _frames([("a", "x"), ("b", "y")])
    test = _frames([("a", "y"), ("b", "new-item"), ("new-user", "x")])

    def score_fn(positions):
        return np.tile([1.0, 3.0, 2.0], (len(positions), 1))

    result = evaluate_ranking(score_fn, train, test, user_index, item_index, ks=(1,))
    assert result["n_unknown_target"] == 1 and result["n_unknown_user"] == 1
    assert result["hr@1"] == pytest.approx(1 / 3)  # only user a hits; 3 users count
    assert result["n_users"] == 3


def test_evaluate_ranking_several_test_items_per_user():
    user_index, item_index = IdIndex(["a", "b"]), IdIndex(["w", "x", "y", "z"])
    train = _frames([("a", "w"), ("b", "w")])
    # a has two test items; each is ranked without the other competing.
    test = _frames([("a", "x"), ("a", "y"), ("b", "z")])
    table = np.array([[9.0, 1.0, 2.0, 0.0], [9.0, 5.0, 5.0, 1.0]])
    result = evaluate_ranking(lambda p: table[p], train, test, user_index, item_index, ks=(1,))
    # user a: x is rank 0 once y is excluded; y is rank 0 too -> HR 1. user b: z is rank 2 -> 0.
    assert result["hr@1"] == pytest.approx(0.5)
    assert result["n_cases"] == 3 and result["n_users"] == 2


def test_evaluate_ranking_checks_score_shape():
    user_index, item_index = IdIndex(["a"]), IdIndex(["x", "y"])
    with pytest.raises(ValueError, match="shape"):
        evaluate_ranking(
            lambda p: np.zeros((len(p), 3)), _frames([("a", "x")]), _frames([("a", "y")]), user_index, item_index
        )


# --------------------------------------------------------------------------- classification


def test_classification_metrics():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    m = classification_metrics(y_true, y_pred, target_names=["neg", "neu", "pos"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) * 1 / (2 / 3 + 1), 2 * 1 * 0.5 / 1.5]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["report"]["pos"]["recall"] == pytest.approx(0.5)
    assert m["labels"] == [0, 1, 2] and m["n"] == 6
    with pytest.raises(ValueError, match="6 labels but y_pred has 5"):
        classification_metrics(y_true, y_pred[:5])
