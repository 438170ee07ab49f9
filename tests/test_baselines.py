"""Tests for textinterest.models.baselines on tiny generated ratings (and one real-data check)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from surprise.prediction_algorithms.predictions import PredictionImpossible

from textinterest.constants import DATA_ENV, ITEM_COL, ORDER_COL, RATING_COL, TIME_COL, USER_COL
from textinterest.datasets.splits import split_interactions
from textinterest.models.baselines import (
    DEFAULT_MODELS,
    GlobalMean,
    Popularity,
    SurpriseModel,
    cross_validate_ratings,
    make_model,
    run_baselines,
)


def make_ratings(n_users: int = 50, n_items: int = 30, n: int = 700, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user_bias = rng.normal(0, 0.7, n_users)
    item_bias = rng.normal(0, 0.7, n_items)
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    r = np.clip(np.round(3.5 + user_bias[u] + item_bias[i] + rng.normal(0, 0.5, n)), 1, 5)
    df = pd.DataFrame(
        {
            USER_COL: [f"u{x}" for x in u],
            ITEM_COL: [f"i{x}" for x in i],
            RATING_COL: r,
            TIME_COL: rng.integers(0, 1000, n),
            ORDER_COL: np.arange(n),
        }
    )
    return df.drop_duplicates([USER_COL, ITEM_COL]).reset_index(drop=True)


def surprise_reference(model: SurpriseModel, users, items) -> np.ndarray:
    """Surprise's own ``estimate`` (default prediction when impossible), one pair at a time."""
    algo, ts = model.algo_, model.trainset_
    out = np.empty((len(users), len(items)))
    for a, user in enumerate(users):
        for b, item in enumerate(items):
            try:
                inner_u = ts.to_inner_uid(user)
            except ValueError:
                inner_u = "UKN__" + user
            try:
                inner_i = ts.to_inner_iid(item)
            except ValueError:
                inner_i = "UKN__" + item
            try:
                est = algo.estimate(inner_u, inner_i)
            except PredictionImpossible:
                est = algo.default_prediction()
            out[a, b] = est[0] if isinstance(est, tuple) else est
    return out


@pytest.mark.parametrize(
    "name,params",
    [
        ("BaselineOnly", {}),
        ("SVD", {"n_factors": 8}),
        ("SVD", {"n_factors": 8, "biased": False}),
        ("SVDpp", {"n_factors": 5, "n_epochs": 5}),
        ("NMF", {"n_factors": 5}),
        ("NMF", {"n_factors": 5, "biased": True}),
        ("KNNBaseline", {}),  # every item has <= k raters
        ("KNNBaseline", {"k": 3, "min_k": 2}),  # neighbour selection with ties in similarity
        ("KNNBaseline", {"k": 4, "sim_options": {"name": "pearson_baseline", "user_based": False}}),
    ],
)
def test_score_items_matches_surprise_estimate(name, params):
    df = make_ratings()
    model = SurpriseModel(name, **params).fit(df)
    users = list(model.user_index.ids)
    scores = model.score_items(users)
    assert scores.shape == (len(users), len(model.item_index))
    np.testing.assert_allclose(scores, surprise_reference(model, users, model.item_index.ids), atol=1e-10)


@pytest.mark.parametrize("name", ["SVDpp", "KNNBaseline"])
def test_refitting_a_model_forgets_the_previous_data(name):
    first, second = make_ratings(seed=1), make_ratings(seed=2)
    model = SurpriseModel(name, k=3) if name == "KNNBaseline" else SurpriseModel(name, n_factors=4)
    model.fit(first).score_items(["u1"])
    users = list(model.fit(second).user_index.ids)
    np.testing.assert_allclose(
        model.score_items(users), surprise_reference(model, users, model.item_index.ids), atol=1e-10
    )


def test_score_items_for_users_and_items_surprise_never_saw():
    df = make_ratings()
    extra = pd.DataFrame({USER_COL: ["ghost", "u1"], ITEM_COL: ["i1", "only-unrated"], RATING_COL: [np.nan, np.nan]})
    train = pd.concat([df, extra], ignore_index=True)
    svd = SurpriseModel("SVD", n_factors=4).fit(train)
    assert svd.n_unrated_dropped_ == 2
    scores = svd.score_items(["ghost", "u1", "never-seen"])
    items = svd.item_index.ids
    np.testing.assert_allclose(scores, surprise_reference(svd, ["ghost", "u1", "never-seen"], items), atol=1e-10)
    # Unbiased NMF cannot score an unknown user: that row ranks by training popularity.
    nmf = SurpriseModel("NMF", n_factors=4).fit(train)
    np.testing.assert_array_equal(nmf.score_items(["ghost"])[0], nmf.item_counts_)


def test_predict_uses_surprise_predict_and_counts_fallbacks():
    df = make_ratings()
    model = SurpriseModel("SVD", n_factors=4).fit(df)
    query = pd.DataFrame({USER_COL: ["u1", "u2", "nobody", "u3"], ITEM_COL: ["i1", "nothing", "i2", "i4"]})
    pred = model.predict(query)
    expected = [model.algo_.predict(u, i).est for u, i in zip(query[USER_COL], query[ITEM_COL])]
    np.testing.assert_allclose(pred, expected)
    assert model.n_fallback_ == 2 and model.n_impossible_ == 0
    assert ((pred >= 1) & (pred <= 5)).all()
    nmf = SurpriseModel("NMF", n_factors=4).fit(df)
    nmf.predict(query)
    assert nmf.n_fallback_ == 2 and nmf.n_impossible_ == 2


def test_seeded_models_are_reproducible_and_normal_predictor_leaves_global_rng_alone():
    df = make_ratings()
    a = SurpriseModel("SVD", n_factors=4, seed=3).fit(df).predict(df)
    b = SurpriseModel("SVD", n_factors=4, seed=3).fit(df).predict(df)
    c = SurpriseModel("SVD", n_factors=4, seed=4).fit(df).predict(df)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    normal = SurpriseModel("NormalPredictor", seed=3).fit(df)
    first = normal.predict(df)
    np.testing.assert_array_equal(first, normal.predict(df))
    assert np.random.random() == before


def test_global_mean_and_popularity():
    df = make_ratings()
    df.loc[0, RATING_COL] = np.nan
    gm = GlobalMean().fit(df)
    np.testing.assert_allclose(gm.predict(df.head(3)), df[RATING_COL].mean())
    assert gm.n_unrated_dropped_ == 1 and not gm.capabilities.ranking and gm.capabilities.rating
    pop = Popularity().fit(df)
    counts = df[ITEM_COL].value_counts()
    row = pop.score_items(["u1"])[0]
    assert dict(zip(pop.item_index.ids, row)) == {item: float(c) for item, c in counts.items()}
    with pytest.raises(NotImplementedError):
        pop.predict(df)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown Surprise algorithm 'SVDD'"):
        SurpriseModel("SVDD")
    with pytest.raises(ValueError, match="unknown baseline"):
        make_model("Magic")
    df = make_ratings()
    df.loc[5, RATING_COL] = 7.0
    with pytest.raises(ValueError, match=r"outside rating_scale.*7\.0"):
        SurpriseModel("SVD").fit(df)
    with pytest.raises(ValueError, match="no rated"):
        GlobalMean().fit(df.assign(**{RATING_COL: np.nan}))
    with pytest.raises(RuntimeError, match="fit"):
        SurpriseModel("SVD").predict(df)


def test_run_baselines_reports_applicable_metrics():
    df = make_ratings(n=900)
    split = split_interactions(df, "leave-last-out")
    rows = run_baselines(split, ks=(5, 10))
    by_name = {row["model"]: row for row in rows}
    assert list(by_name) == list(DEFAULT_MODELS)
    assert "hr@10" not in by_name["GlobalMean"] and "rmse" in by_name["GlobalMean"]
    assert "rmse" not in by_name["Popularity"] and "hr@10" in by_name["Popularity"]
    for name in DEFAULT_MODELS[2:]:
        row = by_name[name]
        for key in ("rmse", "mae", "hr@5", "ndcg@10", "mrr", "n_fallback", "fit_seconds"):
            assert key in row, (name, key)
        assert 0.0 <= row["hr@5"] <= row["hr@10"] <= 1.0
        assert row["n_cases"] == len(split.test)
    # The bias model must beat predicting the global mean on data generated from biases.
    assert by_name["BaselineOnly"]["rmse"] < by_name["GlobalMean"]["rmse"]
    assert by_name["NormalPredictor"]["rmse"] > by_name["BaselineOnly"]["rmse"]


def test_cross_validate_ratings_equals_surprise_cross_validate():
    from surprise import SVD, Dataset, Reader
    from surprise.model_selection import KFold, cross_validate

    df = make_ratings(n=600)
    ours = cross_validate_ratings(df, ["SVD"], n_splits=3, seed=7)
    data = Dataset.load_from_df(df[[USER_COL, ITEM_COL, RATING_COL]], Reader(rating_scale=(1, 5)))
    theirs = cross_validate(SVD(random_state=7), data, measures=["rmse", "mae"], cv=KFold(3, random_state=7))
    np.testing.assert_allclose(ours["SVD"]["rmse"], theirs["test_rmse"], rtol=1e-12)
    np.testing.assert_allclose(ours["SVD"]["mae"], theirs["test_mae"], rtol=1e-12)


# --------------------------------------------------------------------------- real data

SURPRISE_REFERENCE = {"SVD": 0.934, "BaselineOnly": 0.944}


@pytest.mark.slow
@pytest.mark.realdata
def test_ml100k_five_fold_matches_surprise_published_rmse():
    if not os.environ.get(DATA_ENV):
        pytest.skip(f"set {DATA_ENV} to the shared data folder to run the MovieLens 100K check")
    from textinterest.datasets import load_dataset

    ratings = load_dataset("movielens:100k").interactions
    assert len(ratings) == 100_000
    result = cross_validate_ratings(ratings, list(SURPRISE_REFERENCE), n_splits=5)
    for name, reference in SURPRISE_REFERENCE.items():
        assert np.mean(result[name]["rmse"]) == pytest.approx(reference, abs=0.01), name
