"""The question API: recommend, recommend_for_history (new users, new items) and explain, with their input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from serving_world import root, trained

from textinterest.models.interest import InterestRecommender
from textinterest.models.recommend import (
    RequestError,
    UnknownUserError,
    explain,
    history_scores,
    recommend,
    recommend_for_history,
    validate_history,
)


@pytest.fixture(scope="module")
def model():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
        yield InterestRecommender.load(trained()[2])


def own_history(model, user):
    """A training user's reviews, as a new-user history."""
    seq = model.seq
    u = int(model.user_index.index_of([user])[0])
    rows = range(int(seq.starts[u]), int(seq.starts[u] + seq.lengths[u]))
    times = model._train_df["timestamp"].to_numpy()
    return [
        {
            "text": model._texts[r],
            "timestamp": int(times[r]),
            "rating": float(seq.rating[r]),
            "item_id": model.item_index.ids[seq.item[r]],
        }
        for r in rows
    ]


def test_recommend_known_user_ranks_by_score_and_leaves_out_seen(model):
    user = model.user_index.ids[0]
    out = recommend(model, user, k=5)
    scores = model.score_items([user])[0]
    seen = {h["item_id"] for h in own_history(model, user)}
    assert len(out) == 5 and [r["rank"] for r in out] == [1, 2, 3, 4, 5]
    assert not seen & {r["item_id"] for r in out}
    best_unseen = [
        model.item_index.ids[j] for j in np.argsort(-scores, kind="stable") if model.item_index.ids[j] not in seen
    ]
    assert [r["item_id"] for r in out] == best_unseen[:5]
    with_seen = recommend(model, user, k=len(model.item_index), exclude_seen=False)
    assert seen <= {r["item_id"] for r in with_seen}


def test_bad_requests_get_clear_errors(model):
    with pytest.raises(UnknownUserError, match="not in the training data"):
        recommend(model, "nobody", k=5)
    for k in (0, -3, True, 2.5):
        with pytest.raises(RequestError, match="k must be a positive int"):
            recommend(model, model.user_index.ids[0], k=k)
    with pytest.raises(RequestError, match="history is empty"):
        recommend_for_history(model, [], k=5)
    with pytest.raises(RequestError, match="review 0: 'text' has 10,000,000 characters"):
        recommend_for_history(model, [{"text": "a" * 10_000_000, "timestamp": 0}], k=5)
    with pytest.raises(RequestError, match="review 1: 'timestamp' is required"):
        recommend_for_history(model, [{"text": "ok", "timestamp": 0}, {"text": "ok"}], k=5)
    with pytest.raises(RequestError, match="review 0: 'rating' must be a finite number"):
        recommend_for_history(model, [{"text": "ok", "timestamp": 0, "rating": float("nan")}], k=5)
    with pytest.raises(RequestError, match="review 0: 'text' is empty"):
        recommend_for_history(model, [{"text": "  ", "timestamp": 0}], k=5)
    with pytest.raises(RequestError, match="must be a list"):
        recommend_for_history(model, "great strings", k=5)


def test_history_is_sorted_by_time_and_dates_are_read():
    out = validate_history([{"text": "b", "timestamp": "2020-01-02"}, {"text": "a", "timestamp": 1577836800}])
    assert [r["text"] for r in out] == ["a", "b"] and out[1]["timestamp"] == 1577836800 + 86400


def test_new_user_with_a_training_users_reviews_gets_that_users_text_scores(model):
    """Same reviews -> same components; the scores differ from the known user's by the CF user terms only."""
    user = model.user_index.ids[2]
    scores, info = history_scores(model, own_history(model, user))
    u = torch.tensor([int(model.user_index.index_of([user])[0]) + 1])
    m = model.module
    with torch.no_grad():
        user_terms = (m.user_bias(u)[:, 0][:, None] + m.user_emb(u) @ m.item_emb.weight[1:].T)[0].numpy()
    np.testing.assert_allclose(scores + user_terms, model.score_items([user])[0], atol=1e-4)
    assert set(model.item_index.ids[info["exclude"]]) == {h["item_id"] for h in own_history(model, user)}


def test_new_user_recommendations_follow_the_history(model):
    a = recommend_for_history(model, [{"text": "great guitar strings and tuner", "timestamp": 0, "rating": 5}], k=30)
    b = recommend_for_history(
        model, [{"text": "terrible drum sticks, the snare broke", "timestamp": 0, "rating": 1}], k=30
    )
    assert [r["score"] for r in a] != [r["score"] for r in b]
    named = recommend_for_history(model, [{"text": "fine", "timestamp": 0, "item_id": "i0004"}], k=30)
    assert "i0004" not in {r["item_id"] for r in named} and len(named) == len(model.item_index) - 1


def test_unseen_items_are_scored_from_their_text(model):
    user = model.user_index.ids[0]
    plain = recommend(model, user, k=len(model.item_index))
    new = {"brand-new-1": "guitar strings with a bright tone", "brand-new-2": "a heavy cast iron skillet"}
    mixed = recommend(model, user, k=len(model.item_index) + 2, new_items=new)
    by_id = {r["item_id"]: r for r in mixed}
    assert not by_id["brand-new-1"]["known_item"] and by_id["brand-new-1"]["score"] != by_id["brand-new-2"]["score"]
    assert all(by_id[r["item_id"]]["score"] == r["score"] for r in plain)  # the catalogue is scored as before
    for_history = recommend_for_history(model, [{"text": "guitar", "timestamp": 0}], k=50, new_items=new)
    assert {"brand-new-1", "brand-new-2"} <= {r["item_id"] for r in for_history}


def test_explained_score_is_the_score_the_model_ranks_by(model):
    user, item = model.user_index.ids[1], model.item_index.ids[7]
    out = model.explain(user, item, top_n=10)
    assert set(out) >= {"user_id", "item_id", "score", "cf_term", "text_term", "composition", "top_reviews"}
    assert out["user_id"] == user and out["item_id"] == item
    ranked = model.score_items([user])[0][model.item_index.index_of([item])[0]]
    assert out["score"] == pytest.approx(float(ranked), abs=1e-4)
    assert out["cf_term"] + out["text_term"] == pytest.approx(out["score"], abs=1e-4)


def test_explain_weights_and_prior_account_for_the_whole_interest(model):
    history = own_history(model, model.user_index.ids[4])[:4]
    out = explain(model, item_id=model.item_index.ids[0], history=history, top_n=4)
    prior = sum(out["composition"][c] * out["prior_share"][c] for c in out["composition"])
    assert sum(out["weights"]) + prior == pytest.approx(1.0, abs=1e-5)
    assert sorted(r["position"] for r in out["top_reviews"]) == [0, 1, 2, 3]
    assert out["known_user"] is False and out["history_length"] == 4
    unseen = explain(model, item_id="nope", item_text="guitar pickup", history=history)
    assert unseen["known_item"] is False
    with pytest.raises(RequestError, match="not in the catalogue"):
        explain(model, model.user_index.ids[0], "nope")
    with pytest.raises(UnknownUserError):
        explain(model, "nobody", model.item_index.ids[0])


def test_id_only_models_answer_new_users_from_their_items():
    seq_model = trained("seq-lstm")[0]
    user = seq_model.user_index.ids[5]
    s, e = int(seq_model.seq.starts[5]), int(seq_model.seq.starts[5] + seq_model.seq.lengths[5])
    history = [
        {"item_id": seq_model.item_index.ids[i], "timestamp": t, "text": ""}
        for t, i in enumerate(seq_model.seq.item[s:e])
    ]
    scores, _ = history_scores(seq_model, history)
    np.testing.assert_allclose(scores, seq_model.score_items([user])[0], atol=1e-6)
    with pytest.raises(RequestError, match="needs the interest model"):
        explain(seq_model, user, seq_model.item_index.ids[0])
