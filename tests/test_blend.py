"""The interest model on a CF base (models/blend.py): the weight search, the refit, the registry entries."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from textinterest.datasets.splits import split_interactions
from textinterest.evaluation import IdIndex, evaluate_ranking, rmse
from textinterest.models.base import Recommender
from textinterest.models.blend import BLEND_WEIGHTS, BlendRecommender, blend_ratings, blend_scores
from textinterest.models.cf import MFRecommender
from textinterest.protocol.protocols import fit_for_test
from textinterest.training import TrainConfig

N_ITEMS = 12


def _chain(n_users=40, n_items=N_ITEMS, length=8, seed=0):
    """Users walk a cycle of items (the next item follows from the last one); ratings vary by user."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start, level = rng.integers(n_items), float(rng.integers(1, 6))
        for j in range(length):
            rating = float(np.clip(level + rng.normal(0, 0.5), 1, 5))
            rows.append((f"u{u}", f"i{(start + j) % n_items}", rating, 1000 + j, len(rows)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "source_order"])


def _config(epochs, patience=3):
    return TrainConfig(epochs=epochs, lr=0.01, batch_size=16, patience=patience, progress=False)


def _mf(task, epochs=30, patience=3):
    return lambda params: MFRecommender(task, train_config=_config(epochs, patience), **params)


class NextInChain(Recommender):
    """Knows the walk: scores the item after the user's last training item highest (no training)."""

    def fit(self, train, val=None, **inputs):
        self.user_index, self.item_index = IdIndex(train["user_id"]), IdIndex(train["item_id"])
        self.last = train.sort_values("timestamp").groupby("user_id")["item_id"].last()
        self.n_fallback_ = 0
        return self

    def score_items(self, user_ids):
        out = np.zeros((len(user_ids), len(self.item_index)), dtype=np.float32)
        for row, user in enumerate(user_ids):
            following = f"i{(int(self.last[user][1:]) + 1) % N_ITEMS}"
            out[row, self.item_index.index_of([following])] = 1.0
        return out


def _ranking_blend(base_epochs=8, interest_epochs=8, patience=2, grid=({"dim": 8},), oracle=True):
    def interest():
        if oracle:
            return NextInChain()
        return MFRecommender("ranking", dim=4, train_config=_config(interest_epochs, patience))

    return BlendRecommender("ranking", _mf("ranking", base_epochs, patience), interest, base_grid=grid)


def _rating_blend(grid=({"dim": 8},)):
    def interest():
        return MFRecommender("rating", dim=4, l2=0.0, train_config=_config(10))

    return BlendRecommender("rating", _mf("rating", epochs=10), interest, base_grid=grid)


@pytest.fixture(scope="module")
def split():
    return split_interactions(_chain(), "leave-last-out")


@pytest.fixture(scope="module")
def ranking(split):
    return _ranking_blend().fit(split.train, split.val)


def test_blend_formulas_keep_the_base_at_weight_zero():
    rng = np.random.default_rng(0)
    base, other = rng.normal(size=(3, 7)).astype(np.float32), rng.normal(size=(3, 7))
    assert np.array_equal(blend_scores(base, other, 0.0), base)
    assert np.array_equal(blend_scores(base, other, 1.0), other.astype(np.float32))
    mixed = blend_scores(base, other, 0.3).astype(np.float64)
    z = lambda s: (s - s.mean(1, keepdims=True)) / s.std(1, keepdims=True)  # noqa: E731
    assert np.allclose(mixed, 0.7 * z(base.astype(np.float64)) + 0.3 * z(other), atol=1e-5)
    # only each part's per-user ranking matters: a positive affine change of the base changes nothing
    assert np.allclose(blend_scores(10 * base + 3, other, 0.3), mixed, atol=1e-5)
    assert np.array_equal(blend_ratings(base[0], other[0], 0.0, (1, 5)), base[0].astype(np.float64))
    assert np.allclose(blend_ratings(np.full(2, 3.0), np.array([4.0, 1.0]), 0.5, (2, 5)), [3.5, 2.0])


def test_weight_zero_reproduces_the_base(ranking, split):
    users = ranking.user_index.ids[:10]
    kept = ranking.weight_
    try:
        ranking.weight_ = 0.0
        assert np.array_equal(ranking.score_items(users), ranking.base_.score_items(users))
        ranking.weight_ = 0.5
        assert not np.array_equal(ranking.score_items(users), ranking.base_.score_items(users))
    finally:
        ranking.weight_ = kept
    rating = _rating_blend().fit(split.train, split.val)
    rating.weight_ = 0.0
    assert np.array_equal(rating.predict(split.test), rating.base_.predict(split.test))


def test_the_weight_is_the_validation_argmax_over_the_declared_grid(ranking, split):
    base, interest = ranking.base_, ranking.interest_
    cols = interest.item_index.index_of(base.item_index.ids)
    ids = base.user_index.ids
    expected = {}
    for w in BLEND_WEIGHTS:

        def score(u, w=w):
            return blend_scores(base.score_items(ids[u]), interest.score_items(ids[u])[:, cols], w)

        expected[w] = evaluate_ranking(score, split.train, split.val, base.user_index, base.item_index, ks=(10,))[
            "ndcg@10"
        ]
    assert set(ranking.val_by_weight_) == {str(w) for w in BLEND_WEIGHTS}
    assert all(np.isclose(ranking.val_by_weight_[str(w)], v) for w, v in expected.items())
    best = max(expected.values())
    assert ranking.weight_ == min(w for w, v in expected.items() if v == best)
    # the interest part knows the walk, the MF base hardly does: the search leaves w = 0
    assert ranking.weight_ > 0 and expected[ranking.weight_] > expected[0.0]
    assert ranking.val_by_weight_[str(ranking.weight_)] >= ranking.val_by_weight_["0.0"]


def test_rating_blend_is_never_worse_than_its_base_on_validation(split):
    model = _rating_blend(grid=({"dim": 8}, {"dim": 4})).fit(split.train, split.val)
    truth = split.val["rating"].to_numpy(dtype=np.float64)
    base_rmse = rmse(truth, model.base_.predict(split.val))
    assert -model.val_by_weight_["0.0"] == pytest.approx(base_rmse)
    assert rmse(truth, model.predict(split.val)) <= base_rmse + 1e-12
    # the base's parameters were chosen on validation too
    assert len(model.val_by_base_) == 2
    assert model.val_by_base_[repr(model.base_params_)] == max(model.val_by_base_.values())


def test_no_validation_and_no_settings_is_an_error(split):
    with pytest.raises(ValueError, match="chooses its weight on validation"):
        _ranking_blend().fit(split.train)
    with pytest.raises(ValueError, match="contain 0"):
        BlendRecommender("ranking", _mf("ranking"), lambda: None, weights=(0.5, 1.0))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        BlendRecommender("ranking", _mf("ranking"), lambda: None, weights=(0.0, 2.0))


def test_refit_keeps_the_weight_and_each_parts_epochs(split):
    # patience 0: each part trains its full, different budget, so their epoch counts are known and differ
    built = []

    def factory(frame):
        built.append(_ranking_blend(base_epochs=2, interest_epochs=5, patience=0, oracle=False))
        return built[-1]

    model, history, info = fit_for_test(factory, split.train, split.val)
    first = built[0]
    assert info["refit"] and len(history) == len(split.train) + len(split.val)
    assert info["settings"]["base_epochs"] == 2 and info["settings"]["interest_epochs"] == 5
    assert model is built[1] and model.weight_ == first.weight_ == info["settings"]["weight"]
    assert model.base_.train_config.epochs == 2 and len(model.base_.train_result_.history) == 2
    assert model.interest_.train_config.epochs == 5 and len(model.interest_.train_result_.history) == 5
    assert model.base_.train_config.patience == model.interest_.train_config.patience == 0
    assert info["val_metric"] == first.val_by_weight_[str(first.weight_)]


def test_refit_reuses_known_settings_without_a_first_fit(split):
    built = []

    def factory(frame):
        built.append(_ranking_blend(oracle=False))
        return built[-1]

    settings = {"weight": 0.7, "base_params": {"dim": 8}, "base_epochs": 3, "interest_epochs": 4, "val_metric": 0.5}
    model, _, info = fit_for_test(factory, split.train, split.val, known={"metric": 0.5, "settings": settings})
    assert built[0].base_ is None  # the first fit was skipped
    assert model.weight_ == 0.7 and model.base_.train_config.epochs == 3 and model.interest_.train_config.epochs == 4
    assert info["val_metric"] == 0.5


def test_round_trip_through_run_evaluation():
    pytest.importorskip("cornac")
    result = _evaluate_tiny(("interest+cf", "interest+cf-no-text"), "interest+cf", tune=True)
    rows = [r for r in result["runs"] if r["model"] == "interest+cf"]
    assert len(rows) == 1
    for row in rows:
        assert np.isfinite(row["ndcg@10"]) and np.isfinite(row["rmse"])
        assert row["ranking_blend_weight"] in BLEND_WEIGHTS and row["rating_blend_weight"] in BLEND_WEIGHTS
        assert row["rating_base_epochs"] <= 2 and row["rating_interest_epochs"] <= 2
    assert "interest+cf" in result["tuning"]["by_model"]
    assert "interest+cf-no-text" in result["significance_ablations"]


def test_sasrec_family_blends_the_reference_sasrec_and_reports_seed_halves():
    from textinterest.models import registry
    from textinterest.models.spec import BuildContext

    spec = registry.get("interest+sasrec")
    assert spec.tasks == ("ranking",) and registry.get("interest+sasrec-no-text").tuned_by == "interest+sasrec"
    models = ("sasrec", "interest+sasrec", "interest+sasrec-no-text")
    result = _evaluate_tiny(models, "interest+sasrec", seeds=(0, 1, 2, 3))
    rows = [r for r in result["runs"] if r["model"] == "interest+sasrec"]
    assert len(rows) == 4 and all(np.isfinite(r["ndcg@10"]) and "rmse" not in r for r in rows)
    assert all(r["ranking_blend_weight"] in BLEND_WEIGHTS for r in rows)
    assert "interest+sasrec-no-text" in result["significance_ablations"]
    halves = result["significance_by_seed_half"]
    assert list(halves) == ["seeds 0,1", "seeds 2,3"]
    assert all(half["ndcg@10"]["best_other"] == "sasrec" for half in halves.values())
    with pytest.raises(ValueError, match="serves"):
        spec.build(BuildContext(task="rating", seed=0))
    # without a choice of SASRec's in the run, the base is its reference recipe alone (its grid's first entry)
    grid = registry.get("sasrec").grid
    assert spec.build(BuildContext(task="ranking", seed=0)).base_grid == (dict(grid[0]),)
    # with one, the base is SASRec as the run tuned it
    chosen = BuildContext(task="ranking", seed=0, options={"chosen": {"sasrec": {"ranking": dict(grid[3])}}})
    assert spec.build(chosen).base_grid == (dict(grid[3]),)


def test_the_sasrec_blend_waits_for_and_uses_sasrecs_own_validated_choice():
    from textinterest.models import registry
    from textinterest.protocol.evaluation_jobs import _jobs

    run = SimpleNamespace(specs=[registry.get(n) for n in ("sasrec", "interest+sasrec")], tasks=("ranking",))
    jobs = {job.key: job.after for job in _jobs(run, (0,), tune=True)}
    sasrec_trials = {("tune", "sasrec", "ranking", j) for j in range(len(registry.get("sasrec").grid))}
    assert sasrec_trials <= set(jobs[("tune", "interest+sasrec", "ranking", 0)])
    assert sasrec_trials <= set(jobs[("fit", "interest+sasrec", 0, ("ranking",))])
    assert not jobs[("tune", "sasrec", "ranking", 0)]

    result = _evaluate_tiny(("sasrec", "interest+sasrec"), "interest+sasrec", tune=True)
    chosen = result["tuning"]["by_model"]["sasrec"]["chosen"]["ranking"]
    row = next(r for r in result["runs"] if r["model"] == "interest+sasrec")
    assert row["ranking_base_params"] == chosen
    # the blend's SASRec fits are the run's own `sasrec` fits, taken from the memo
    assert result["fit_memo"]["reused"] >= 4


def test_a_rerun_with_workers_gives_identical_metrics():
    # the same command on the same machine: every seed's metrics of the next-item peer and the blend are equal
    # to the last bit, whether the fits run in this process or in worker processes with the same thread count
    first, again = (
        _evaluate_tiny(("sasrec", "interest+sasrec"), "interest+sasrec", seeds=(0, 1), workers=2) for _ in range(2)
    )
    metrics = ("ndcg@10", "hr@10", "mrr")
    rows = [[{m: row[m] for m in metrics} for row in result["runs"]] for result in (first, again)]
    assert rows[0] == rows[1] and len(rows[0]) == 4
    assert first["environment"]["cpu"] and first["environment"]["threads_per_worker"] >= 1
    # the record names the code that made it
    from textinterest.utils import package_source_digest

    assert first["environment"]["package_source_sha256"] == package_source_digest()
    assert len(package_source_digest()) == 64


def test_a_run_hands_the_blend_sasrecs_choice_and_no_other_models():
    from textinterest.models import registry
    from textinterest.protocol.evaluation_jobs import EvaluationRun

    specs = [registry.get(n) for n in ("sasrec", "interest", "interest+sasrec")]
    run = EvaluationRun(SimpleNamespace(train=pd.DataFrame()), None, specs, ("ranking",), (10,), "cpu", None, {})
    choice = dict(registry.get("sasrec").grid[3])
    run.chosen = {"sasrec": {"ranking": choice}, "interest": {"ranking": {"hidden": 32}}}
    blend = run.context(specs[2], "ranking", 0)
    assert blend.options["chosen"] == {"sasrec": {"ranking": choice}}  # what it reads, nothing else
    assert "chosen" not in run.context(specs[0], "ranking", 0).options  # a model that reads none gets none
    assert specs[2].build(blend).base_grid == (choice,)


def _evaluate_tiny(models, main, seeds=(0,), tune=False, **over):
    """run_evaluation on 20 made-up users with text, 2 epochs, no sentiment, a small interest model."""
    from tests.test_experiments import FakeExtractor, _dataset
    from textinterest.protocol.experiments import run_evaluation

    return run_evaluation(
        "made-up",
        dataset=_dataset(n_users=20, items=True),
        extractor=FakeExtractor(),
        seeds=seeds,
        epochs=2,
        tune=tune,
        models=models,
        main=main,
        sentiment="none",
        interest_config={"hidden": 16, "mf_dim": 8},
        **over,
    )
