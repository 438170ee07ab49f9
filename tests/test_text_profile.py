"""Tests of the static text-profile baseline and its time-safe item text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textinterest.models.item_text import ItemTextHistory
from textinterest.models.text_profile import TextProfileRecommender


class _TopicEmbed:
    """Texts about guitars point one way, about drums the other."""

    def embed(self, texts):
        return np.array([[1.0, 0.1] if "guitar" in t else [0.1, 1.0] for t in texts], dtype=np.float32)


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "text"])


def test_time_safe_means_use_only_earlier_reviews():
    vec = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]], dtype=np.float32)
    text = ItemTextHistory(vec, items=np.array([0, 0, 1]), times=np.array([10, 20, 5]), n_items=2, fallback="zeros")
    np.testing.assert_allclose(text.every_review(), [[0.5, 0.5], [3.0, 0.0]])
    tables = dict((int(q[0]), t[1:]) for q, t in text.tables(np.array([20, 5, 21])))
    np.testing.assert_allclose(tables[1], [[0.0, 0.0], [0.0, 0.0]])  # nothing strictly before t=5
    np.testing.assert_allclose(tables[0], [[1.0, 0.0], [3.0, 0.0]])  # t=20: the review at 20 is not earlier
    np.testing.assert_allclose(tables[2], [[0.5, 0.5], [3.0, 0.0]])


def test_profile_ranks_items_written_about_like_the_user():
    train = _frame(
        [
            ("a", "g1", 1, "guitar strings"),
            ("a", "g2", 2, "guitar tuner"),
            ("b", "d1", 1, "drum sticks"),
            ("b", "d2", 2, "drum pedal"),
            ("c", "g3", 1, "guitar pick"),
            ("c", "d3", 1, "drum head"),
        ]
    )
    model = TextProfileRecommender(time_safe=False).fit(train, vectors=_TopicEmbed().embed(train.text))
    scores = model.score_items(["a", "b", "nobody"])
    items = list(model.item_index.ids)
    assert scores[0, items.index("g3")] > scores[0, items.index("d3")]
    assert scores[1, items.index("d3")] > scores[1, items.index("g3")]
    np.testing.assert_array_equal(scores[2], 0.0)
    assert model.n_fallback_ == 1


def test_time_safe_hides_item_text_from_the_future():
    train = _frame([("a", "g1", 1, "guitar strings"), ("b", "x", 50, "guitar again")])
    test = _frame([("a", "x", 10, "?")])
    vectors = _TopicEmbed().embed(train.text)
    safe = TextProfileRecommender(vectors=vectors).fit(train).set_prediction_times(test)
    leaky = TextProfileRecommender(time_safe=False).fit(train, vectors=vectors).set_prediction_times(test)
    x = list(safe.item_index.ids).index("x")
    assert safe.score_items(["a"])[0, x] == 0.0  # x's only review was written after a's test time
    assert leaky.score_items(["a"])[0, x] > 0.9
    assert safe.score_items(["b"])[0, x] == pytest.approx(leaky.score_items(["b"])[0, x])  # b has no prediction time


def test_bad_input():
    with pytest.raises(ValueError, match="ranking"):
        TextProfileRecommender(task="rating")
    with pytest.raises(ValueError, match="review vectors"):
        TextProfileRecommender().fit(_frame([("a", "i", 1, "t")]))
    with pytest.raises(ValueError, match="shape"):
        TextProfileRecommender().fit(_frame([("a", "i", 1, "t")]), vectors=np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="not fitted"):
        TextProfileRecommender().score_items(["a"])
