"""The synthetic review world: determinism, structure, ground truth, speed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textinterest.constants import CANONICAL_COLUMNS, ITEM_COL, RATING_COL, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets import dataset_summary, load_dataset
from textinterest.datasets.synthetic import TOPICS


@pytest.fixture(scope="module")
def world():
    return load_dataset("synthetic")


def test_defaults_without_files(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTINTEREST_DATA", str(tmp_path / "does-not-exist"))
    ds = load_dataset("synthetic")
    assert ds.name == "synthetic" and not (tmp_path / "does-not-exist").exists()
    assert ds.interactions[USER_COL].nunique() == 400 and len(ds.items) == 300


def test_deterministic_per_seed():
    a = load_dataset("synthetic", seed=7, n_users=50, n_items=60)
    b = load_dataset("synthetic", seed=7, n_users=50, n_items=60)
    c = load_dataset("synthetic", seed=8, n_users=50, n_items=60)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    np.testing.assert_array_equal(a.ground_truth["review_topic"], b.ground_truth["review_topic"])
    assert a.ground_truth["user_topics"] == b.ground_truth["user_topics"]
    assert not a.interactions[[ITEM_COL, RATING_COL, TEXT_COL]].equals(c.interactions[[ITEM_COL, RATING_COL, TEXT_COL]])


def test_structure(world):
    df, items, gt = world.interactions, world.items, world.ground_truth
    assert list(df.columns) == list(CANONICAL_COLUMNS)
    assert set(df[RATING_COL].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    per_user = df.groupby(USER_COL).size()
    assert per_user.min() >= 8 and per_user.max() <= 30
    assert not df.duplicated([USER_COL, ITEM_COL]).any()
    assert df.groupby(USER_COL)[TIME_COL].apply(lambda t: t.is_monotonic_increasing and t.is_unique).all()
    assert (df[TEXT_COL].str.len() > 20).all() and (df["summary"] != "").all()
    assert set(df[ITEM_COL]) <= set(items[ITEM_COL]) and items["item_text"].str.len().min() > 20
    assert gt["topics"] == list(TOPICS)[:6]
    assert len(gt["review_topic"]) == len(df)
    assert all(2 <= len(t) <= 3 for t in gt["user_topics"].values())
    assert world.report.n_read == world.report.n_kept == len(df) and world.report.dropped == {}


def test_items_are_described_by_their_topic_words(world):
    gt = world.ground_truth
    for row in world.items.head(50).itertuples():
        words = TOPICS[gt["topics"][gt["item_topic"][row.item_id]]]
        assert sum(w in row.item_text for w in words) >= 2
        assert row.topic == gt["topics"][gt["item_topic"][row.item_id]]


def test_reviews_follow_active_interest_and_interests_switch(world):
    df, gt = world.interactions, world.ground_truth
    item_topic = df[ITEM_COL].map(gt["item_topic"]).to_numpy()
    assert (item_topic == gt["review_topic"]).mean() > 0.85  # items mostly from the active topic
    for user, topics in list(gt["user_topics"].items())[:50]:
        active = gt["review_topic"][(df[USER_COL] == user).to_numpy()]
        assert set(active) <= set(topics)
    n_switching = sum(len(set(gt["review_topic"][idx])) > 1 for idx in df.groupby(USER_COL).indices.values())
    assert n_switching > 0.8 * len(gt["user_topics"])
    # a switch is rare (stay probability 0.8): runs are longer than one review on average
    changes = np.mean([np.mean(np.diff(gt["review_topic"][idx]) != 0) for idx in df.groupby(USER_COL).indices.values()])
    assert 0.1 < changes < 0.35


def test_text_sentiment_matches_rating(world):
    df = world.interactions
    positive = df[TEXT_COL].str.contains(
        "love it|Highly recommended|Worth every penny|I would buy it again|Five stars|Very happy"
    )
    negative = df[TEXT_COL].str.contains(
        "not buy it again|waste of money|returned it|Avoid this|unhappy|Not recommended"
    )
    assert positive[df[RATING_COL] >= 4].all() and not positive[df[RATING_COL] <= 3].any()
    assert negative[df[RATING_COL] <= 2].all() and not negative[df[RATING_COL] >= 3].any()
    topic_words = set(w for words in TOPICS.values() for w in words)
    assert all(any(w in text for w in topic_words) for text in df[TEXT_COL].head(100))


def test_rating_reflects_bias_and_quality(world):
    df, gt = world.interactions, world.ground_truth
    quality = df[ITEM_COL].map(gt["item_quality"])
    bias = df[USER_COL].map(gt["user_bias"])
    assert np.corrcoef(quality, df[RATING_COL])[0, 1] > 0.2
    assert np.corrcoef(bias, df[RATING_COL])[0, 1] > 0.2


def test_options_and_kcore_alignment():
    ds = load_dataset("synthetic", n_users=30, n_items=40, n_topics=3, seed=1, min_reviews=3, max_reviews=5, kcore=3)
    df, gt = ds.interactions, ds.ground_truth
    assert len(gt["review_topic"]) == len(df) and ds.report.dropped.get("kcore", 0) > 0
    assert df.groupby(ITEM_COL).size().min() >= 3 and df.groupby(USER_COL).size().min() >= 3
    assert set(ds.items[ITEM_COL]) == set(df[ITEM_COL])
    assert (df[ITEM_COL].map(gt["item_topic"]).to_numpy() == gt["review_topic"]).mean() > 0.7
    with pytest.raises(ValueError, match="n_topics"):
        load_dataset("synthetic", n_topics=11)
    with pytest.raises(ValueError, match="min_reviews"):
        load_dataset("synthetic", min_reviews=5, max_reviews=4)


def test_summary_of_synthetic(world):
    summary = dataset_summary(world)
    assert summary["n_users"] == 400 and summary["n_items"] <= 300 and summary["n_unrated"] == 0
    assert sum(v for k, v in summary["rating_histogram"].items()) == summary["n_reviews"]
