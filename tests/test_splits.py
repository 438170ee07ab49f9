"""Tests for textinterest.datasets.splits on small generated interaction tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textinterest.constants import ITEM_COL, ORDER_COL, RATING_COL, SPLITS, TIME_COL, USER_COL
from textinterest.datasets.splits import Split, kfold_splits, order_key, split_interactions


def make_interactions(n_users: int = 40, n_items: int = 30, seed: int = 0, day_resolution: bool = True) -> pd.DataFrame:
    """A canonical-schema table with varied history lengths and many same-day timestamps."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=n_users)
    users = np.repeat([f"u{k}" for k in range(n_users)], lengths)
    n = users.size
    ts = rng.integers(0, 20, size=n) * (86400 if day_resolution else 1)
    df = pd.DataFrame(
        {
            USER_COL: users,
            ITEM_COL: [f"i{k}" for k in rng.integers(0, n_items, size=n)],
            RATING_COL: rng.integers(1, 6, size=n).astype(float),
            TIME_COL: ts.astype(np.int64),
            "text": "",
            "summary": "",
            ORDER_COL: np.arange(n),
        }
    )
    df.loc[rng.random(n) < 0.1, RATING_COL] = np.nan
    # Shuffle rows so that row position differs from source order.
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)


def reference_leave_last_out(df: pd.DataFrame, min_interactions: int = 3) -> dict[int, str]:
    """Per-row part by an explicit per-user loop (the reference for the vectorized code)."""
    parts = {}
    for _, group in df.groupby(USER_COL):
        ordered = group.sort_values([TIME_COL, ORDER_COL])
        labels = list(ordered.index)
        if len(labels) < min_interactions:
            parts.update({label: "train" for label in labels})
            continue
        parts.update({label: "train" for label in labels[:-2]})
        parts[labels[-2]] = "val"
        parts[labels[-1]] = "test"
    return parts


def part_of(split: Split) -> dict:
    out = {label: "train" for label in split.train.index}
    out.update({label: "val" for label in split.val.index})
    out.update({label: "test" for label in split.test.index})
    return out


def test_leave_last_out_matches_reference_loop():
    df = make_interactions()
    split = split_interactions(df, "leave-last-out")
    assert part_of(split) == reference_leave_last_out(df)
    assert split.how == "leave-last-out" and split.seed is None


def test_leave_last_out_breaks_same_day_ties_by_source_order():
    # Both of u1's last two reviews are on day 5; the one later in the source file is "last",
    # even though it comes first in the table.
    df = pd.DataFrame(
        {
            USER_COL: ["u1", "u1", "u1", "u1"],
            ITEM_COL: ["a", "b", "c", "d"],
            RATING_COL: [5.0, 4.0, 3.0, 2.0],
            TIME_COL: [5 * 86400, 5 * 86400, 86400, 5 * 86400],
            ORDER_COL: [9, 7, 0, 8],
        }
    )
    split = split_interactions(df, "leave-last-out")
    assert split.test[ITEM_COL].tolist() == ["a"]
    assert split.val[ITEM_COL].tolist() == ["d"]
    assert sorted(split.train[ITEM_COL]) == ["b", "c"]


def test_leave_last_out_short_histories_stay_in_train_and_are_counted():
    df = make_interactions(seed=3)
    counts = df.groupby(USER_COL).size()
    short = counts[counts < 3]
    split = split_interactions(df, "leave-last-out")
    assert split.info["users_train_only"] == len(short)
    assert split.info["rows_train_only"] == int(short.sum())
    assert not set(short.index) & set(split.test[USER_COL])
    assert split.test[USER_COL].is_unique and split.val[USER_COL].is_unique
    assert set(split.test[USER_COL]) == set(counts[counts >= 3].index)


def test_leave_last_out_min_interactions_two_gives_test_without_val():
    df = pd.DataFrame(
        {USER_COL: ["a", "a"], ITEM_COL: ["x", "y"], RATING_COL: [1.0, 2.0], TIME_COL: [1, 2], ORDER_COL: [0, 1]}
    )
    split = split_interactions(df, "leave-last-out", min_interactions=2)
    assert split.test[ITEM_COL].tolist() == ["y"] and len(split.val) == 0 and len(split.train) == 1
    assert len(split_interactions(df, "leave-last-out").train) == 2


def test_parts_partition_the_table_and_keep_index_and_unrated_rows():
    df = make_interactions(seed=5)
    for how in SPLITS:
        split = split_interactions(df, how)
        labels = list(split.train.index) + list(split.val.index) + list(split.test.index)
        assert sorted(labels) == sorted(df.index), how
        for part in (split.train, split.val, split.test):
            assert part.index.is_monotonic_increasing  # original row order kept
            pd.testing.assert_frame_equal(part, df.loc[part.index])
        n_unrated = sum(int(p[RATING_COL].isna().sum()) for p in (split.train, split.val, split.test))
        assert n_unrated == int(df[RATING_COL].isna().sum())


def test_temporal_cuts_by_time_then_source_order():
    df = make_interactions(seed=7)
    split = split_interactions(df, "temporal", val_fraction=0.1, test_fraction=0.2)
    n = len(df)
    assert len(split.test) == round(0.2 * n) and len(split.val) == round(0.1 * n)
    key = lambda part: list(zip(part[TIME_COL], part[ORDER_COL]))  # noqa: E731
    assert max(key(split.train)) < min(key(split.val))
    assert max(key(split.val)) < min(key(split.test))


def test_order_key_is_total_and_uses_source_order():
    df = pd.DataFrame({TIME_COL: [3, 1, 3, 1], ORDER_COL: [2, 3, 0, 1]})
    assert order_key(df).tolist() == [3, 1, 2, 0]


def test_random_split_is_seeded():
    df = make_interactions(seed=9)
    a = split_interactions(df, "random", seed=1)
    b = split_interactions(df, "random", seed=1)
    c = split_interactions(df, "random", seed=2)
    assert a.test.index.equals(b.test.index)
    assert not a.test.index.equals(c.test.index)
    assert a.seed == 1
    n = len(df)
    assert len(a.test) == round(0.1 * n) and len(a.val) == round(0.1 * n)


def test_cold_users_and_items_are_kept_and_counted():
    df = pd.DataFrame(
        {
            USER_COL: ["a", "a", "a", "b", "c"],
            ITEM_COL: ["x", "y", "z", "x", "w"],
            RATING_COL: [1.0, 2.0, 3.0, 4.0, 5.0],
            TIME_COL: [1, 2, 3, 4, 5],
            ORDER_COL: [0, 1, 2, 3, 4],
        }
    )
    split = split_interactions(df, "temporal", val_fraction=0.2, test_fraction=0.2)
    # train: a-x, a-y, a-z; val: b-x (cold user); test: c-w (cold user and item)
    assert split.info["val_cold_users"] == 1 and split.info["val_cold_items"] == 0
    assert split.info["test_cold_users"] == 1 and split.info["test_cold_items"] == 1
    assert len(split.test) == 1


def test_unknown_protocol_lists_valid_values():
    with pytest.raises(ValueError, match="leave-last-out, temporal, random"):
        split_interactions(make_interactions(), "by-magic")


def test_missing_columns_and_timestamps_are_clear_errors():
    df = make_interactions()
    with pytest.raises(ValueError, match=TIME_COL):
        split_interactions(df.drop(columns=[TIME_COL]), "leave-last-out")
    bad = df.astype({TIME_COL: float})
    bad.loc[3, TIME_COL] = np.nan
    with pytest.raises(ValueError, match="missing value"):
        split_interactions(bad, "temporal")
    with pytest.raises(ValueError, match="val_fraction"):
        split_interactions(df, "random", val_fraction=0.6, test_fraction=0.5)


def test_missing_source_order_falls_back_to_row_position():
    df = pd.DataFrame({USER_COL: ["a"] * 3, ITEM_COL: ["x", "y", "z"], TIME_COL: [1, 1, 1]})
    split = split_interactions(df, "leave-last-out")
    assert split.test[ITEM_COL].tolist() == ["z"] and split.val[ITEM_COL].tolist() == ["y"]


def test_summary_reports_sizes():
    df = make_interactions()
    split = split_interactions(df, "leave-last-out")
    summary = split.summary()
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == len(df)
    assert summary["users_test"] == len(split.test)
    assert summary["rated_train"] == int(split.train[RATING_COL].notna().sum())
    assert summary["users_train_only"] == split.info["users_train_only"]


def test_kfold_matches_surprise_kfold():
    from surprise import Dataset, Reader
    from surprise.model_selection import KFold

    df = make_interactions(seed=11).drop_duplicates([USER_COL, ITEM_COL]).dropna(subset=[RATING_COL])
    data = Dataset.load_from_df(df[[USER_COL, ITEM_COL, RATING_COL]], Reader(rating_scale=(1, 5)))
    ours = list(kfold_splits(df, 5, seed=42))
    theirs = list(KFold(n_splits=5, random_state=42).split(data))
    assert len(ours) == len(theirs) == 5
    for split, (_, testset) in zip(ours, theirs):
        assert list(zip(split.test[USER_COL], split.test[ITEM_COL], split.test[RATING_COL])) == testset
        assert len(split.train) + len(split.test) == len(df)
        assert not set(split.train.index) & set(split.test.index)
