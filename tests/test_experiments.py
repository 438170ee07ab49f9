"""Tests of the evaluate pipeline on tiny made-up data (a fake text encoder, no BERT, no network)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from textinterest.datasets.base import CleaningReport, ReviewDataset
from textinterest.datasets.splits import split_interactions
from textinterest.models.registry import INTEREST_GRID
from textinterest.protocol.experiments import (
    DEFAULT_MODELS,
    RunConfig,
    build_text_features,
    cold_start_counts,
    format_results_table,
    review_texts,
    run_evaluation,
)


class FakeExtractor:
    """Deterministic hash vectors; records every text it is asked to embed."""

    dim = 8

    def __init__(self):
        self.seen: list[str] = []

    def embed(self, texts):
        self.seen.extend(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for j, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            out[j] = np.random.default_rng(seed).normal(size=self.dim)
        return out


def _dataset(n_users=30, n_items=15, per_user=6, seed=0, items=False):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for j, i in enumerate(rng.choice(n_items, size=per_user, replace=False)):
            rating = float(rng.integers(1, 6))
            text = f"user {u} says item {i} is {'good' if rating > 3 else 'bad'}" if j % 5 else ""
            rows.append(
                dict(
                    user_id=f"u{u}",
                    item_id=f"i{i}",
                    rating=rating,
                    timestamp=1000 + 10 * j,
                    text=text,
                    summary=f"summary {u}-{j}",
                    source_order=len(rows),
                )
            )
    df = pd.DataFrame(rows)
    meta = (
        pd.DataFrame(
            {"item_id": [f"i{i}" for i in range(n_items)], "item_text": [f"item {i} text" for i in range(n_items)]}
        )
        if items
        else None
    )
    return ReviewDataset(
        name="made-up",
        interactions=df,
        items=meta,
        report=CleaningReport(source="test", n_read=len(df), n_kept=len(df)),
    )


def test_review_texts_fall_back_to_summary():
    df = pd.DataFrame({"text": ["body", "  ", None], "summary": ["s1", "s2", "s3"]})
    assert review_texts(df) == ["body", "s2", "s3"]


def test_text_features_use_training_rows_only():
    ds = _dataset(items=True)
    split = split_interactions(ds.interactions)
    ex = FakeExtractor()
    feats = build_text_features(split.train, ex, items=ds.items)
    assert feats.review_vectors.shape == (len(split.train), FakeExtractor.dim)
    held_out = set(review_texts(split.val)) | set(review_texts(split.test))
    train_texts = set(review_texts(split.train))
    assert held_out - train_texts  # there are held-out texts to leak
    assert not (set(ex.seen) & (held_out - train_texts))
    assert set(feats.item_ids) <= set(split.train.item_id)


def _with_held_out_changed(ds: ReviewDataset, what: str) -> ReviewDataset:
    """The same data set with the text, summary and (for "held-out") rating of some rows replaced.

    "held-out": every validation and test row; "test": every test row; "train": one training review (a control).
    """
    split = split_interactions(ds.interactions)
    df = ds.interactions.copy()
    rows = {"held-out": np.concatenate([split.val.index, split.test.index]), "test": split.test.index}.get(
        what, split.train.index[:1]
    )
    df.loc[rows, "text"] = [f"HELDOUT changed review {j}" for j in range(len(rows))]
    df.loc[rows, "summary"] = "HELDOUT changed summary"
    if what == "held-out":
        df.loc[split.val.index, "rating"] = 6.0 - df.loc[split.val.index, "rating"]
    return ReviewDataset(name=ds.name, interactions=df, items=ds.items, report=ds.report)


def test_test_reviews_never_reach_the_standard_protocol():
    ds = _dataset(n_users=20, items=True)
    kw = dict(
        seeds=(0,),
        epochs=1,
        tune=False,
        models=("interest",),
        sentiment="none",
        interest_config={"hidden": 16, "mf_dim": 8},
    )
    runs = {}
    for what in ("original", "test"):
        ex = FakeExtractor()
        data = ds if what == "original" else _with_held_out_changed(ds, what)
        runs[what] = (run_evaluation("made-up", dataset=data, extractor=ex, **kw), ex.seen)
    assert not [t for t in runs["test"][1] if "HELDOUT" in t]
    rows = {what: next(r for r in runs[what][0]["runs"] if r["model"] == "interest") for what in runs}
    for metric in ("rmse", "mae", "hr@10", "ndcg@10", "mrr"):
        assert rows["test"][metric] == rows["original"][metric], metric


def test_held_out_reviews_never_reach_the_pipeline():
    # The perturbed data set goes through the whole pipeline (split, text features, sentiment, tuning on
    # validation, training, testing): held-out texts must never be embedded, and nothing learned or
    # reported on the test split may change. Test ratings are the targets, so they stay as they are;
    # validation ratings only drive early stopping, which one epoch leaves no choice for.
    ds = _dataset(n_users=20, items=True)
    # the protocol that scores test from the training history; under the default one the validation
    # reviews are history at test time (see test_test_reviews_never_reach_the_standard_protocol)
    kw = dict(
        seeds=(0,),
        epochs=1,
        tune=False,
        models=("interest",),
        sentiment="none",
        interest_config={"hidden": 16, "mf_dim": 8},
        protocol="train-history",
    )
    runs = {}
    for what in ("original", "held-out", "train"):
        ex = FakeExtractor()
        data = ds if what == "original" else _with_held_out_changed(ds, what)
        runs[what] = (run_evaluation("made-up", dataset=data, extractor=ex, **kw), ex.seen)
    assert not [t for t in runs["held-out"][1] if "HELDOUT" in t]  # never embedded
    assert any("HELDOUT" in t for t in runs["train"][1])  # control: a changed training review is
    metrics = ("rmse", "mae", "hr@10", "ndcg@10", "mrr")

    def interest_row(what):
        return next(r for r in runs[what][0]["runs"] if r["model"] == "interest")

    for metric in metrics:
        assert interest_row("held-out")[metric] == interest_row("original")[metric], metric
    # control: the same change on one training review does move the interest model's test figures
    assert any(interest_row("train")[m] != interest_row("original")[m] for m in metrics)


def test_cold_start_counts():
    train = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"]})
    test = pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["z", "y", "x"]})
    out = cold_start_counts(train, test.iloc[:0], test)
    assert out["test_users_no_history"] == 1 and out["test_users_one_review"] == 1
    assert out["test_users_le2_reviews"] == 3 and out["test_items_unseen"] == 1 and out["val_rows"] == 0


@pytest.fixture(scope="module")
def small_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "evaluate_made-up.json"
    result = run_evaluation(
        "made-up",
        dataset=_dataset(),
        extractor=FakeExtractor(),
        seeds=(0, 1),
        epochs=2,
        tune=False,
        models=("baselines", "mf", "seq-lstm", "interest", "interest-no-text", "interest-k1"),
        json_out=path,
        sentiment="none",
        interest_config={"hidden": 16, "mf_dim": 8},
    )
    return result, path


def test_run_evaluation_output_shape(small_result):
    result, path = small_result
    for key in ("dataset", "split", "n_train", "n_val", "n_test", "seeds", "results", "timings", "cold_start", "runs"):
        assert key in result
    assert result["seeds"] == [0, 1] and result["split"] == "leave-last-out"
    assert result["n_train"] + result["n_val"] + result["n_test"] == 30 * 6
    rows = {r["model"]: r for r in result["results"]}
    for name in ("interest", "interest-no-text", "interest-k1", "mf", "GlobalMean", "SVD"):
        assert name in rows, name
    for name in ("interest", "mf"):
        for metric in ("rmse", "mae", "hr@10", "ndcg@10", "mrr"):
            assert np.isfinite(rows[name][metric]) and rows[name][f"{metric}_std"] >= 0
        assert rows[name]["n_seeds"] == 2
    assert "rmse" not in rows["seq-lstm"] and "ndcg@10" in rows["seq-lstm"]
    assert len([r for r in result["runs"] if r["model"] == "interest"]) == 2
    saved = json.loads(path.read_text())
    assert saved["results"] == json.loads(json.dumps(result["results"]))
    assert result["sentiment"]["status"] == "off"
    assert result["timings"]["total_seconds"] > 0


def test_the_run_config_is_recorded_and_reruns_the_same_evaluation(small_result, tmp_path):
    result, _ = small_result
    recorded = result["run_config"]
    assert recorded["name"] == "made-up" and recorded["seeds"] == [0, 1] and recorded["epochs"] == 2
    assert result["main"] == "interest"
    config = RunConfig(**{**recorded, "json_out": None})
    assert config.seeds == (0, 1) and config.models == tuple(recorded["models"])
    again = run_evaluation(config, dataset=_dataset(), extractor=FakeExtractor())

    def metrics(rows):
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in rows]

    assert metrics(again["results"]) == metrics(result["results"])


def test_main_names_the_model_under_test():
    kw = dict(dataset=_dataset(), extractor=FakeExtractor(), seeds=(0,), epochs=1, tune=False, tasks=("ranking",))
    res = run_evaluation("made-up", models=("Popularity", "mf", "seq-lstm"), main="mf", sentiment="none", **kw)
    assert res["main"] == "mf"
    ndcg = res["significance"]["ndcg@10"]
    assert ndcg["reference"] == "mf" and ndcg["best_other"] in ("Popularity", "seq-lstm")
    with pytest.raises(ValueError, match="main='sasrec' is not among the selected models"):
        run_evaluation("made-up", models=("mf",), main="sasrec", **kw)
    with pytest.raises(TypeError, match="either a RunConfig"):
        run_evaluation(RunConfig("made-up"), seeds=(0,))


def test_seed_spread_is_the_std_of_the_runs(small_result):
    result, _ = small_result
    runs = [r["rmse"] for r in result["runs"] if r["model"] == "interest"]
    row = next(r for r in result["results"] if r["model"] == "interest")
    assert row["rmse"] == pytest.approx(np.mean(runs))
    assert row["rmse_std"] == pytest.approx(np.std(runs, ddof=1))


def test_format_results_table(small_result):
    result, _ = small_result
    table = format_results_table(result)
    lines = table.splitlines()
    assert lines[2].startswith("| model | RMSE | MAE | HR@10 | NDCG@10 | MRR |")
    assert any(line.startswith("| interest |") and "±" in line for line in lines)
    assert any(line.startswith("| Popularity |") and "–" in line for line in lines)  # no RMSE for popularity
    with pytest.raises(ValueError, match="results"):
        format_results_table({})


def test_sentiment_classifier_sees_training_reviews_only(monkeypatch):
    import textinterest.text.sentiment as sentiment_module

    seen = {}

    class FakeClassifier:
        def __init__(self, *args, **kwargs):
            seen["kwargs"] = kwargs

        def fit(self, texts, labels, val_texts, val_labels):
            seen["fit"] = list(texts) + list(val_texts)
            assert set(np.unique(labels)) <= {0, 1}
            return self

        def score(self, texts):
            seen["score"] = list(texts)
            return np.linspace(-1, 1, len(texts))

    monkeypatch.setattr(sentiment_module, "SentimentClassifier", FakeClassifier)
    ds = _dataset(n_users=20)
    split = split_interactions(ds.interactions)
    res = run_evaluation(
        "made-up",
        dataset=ds,
        extractor=FakeExtractor(),
        seeds=(0,),
        epochs=1,
        tune=False,
        models=("interest",),
        tasks=("rating",),
        protocol="train-history",
    )
    assert res["sentiment"]["status"] == "ok" and seen["kwargs"]["mode"] == "frozen"
    train_texts = set(review_texts(split.train))
    assert set(seen["fit"]) <= train_texts and seen["score"] == review_texts(split.train)
    # the standard protocol refits on train + validation: the validation reviews join, the test reviews never do
    run_evaluation(
        "made-up",
        dataset=ds,
        extractor=FakeExtractor(),
        seeds=(0,),
        epochs=1,
        tune=False,
        models=("interest",),
        tasks=("rating",),
    )
    history_texts = set(review_texts(split.train)) | set(review_texts(split.val))
    assert set(seen["fit"]) <= history_texts and seen["score"] == review_texts(split.train) + review_texts(split.val)


def test_run_evaluation_is_deterministic():
    kw = dict(
        dataset=_dataset(n_users=15),
        seeds=(3,),
        epochs=1,
        tune=False,
        models=("interest",),
        tasks=("rating",),
        sentiment="none",
        interest_config={"hidden": 16},
    )
    a = run_evaluation("made-up", extractor=FakeExtractor(), **kw)
    b = run_evaluation("made-up", extractor=FakeExtractor(), **kw)
    assert a["results"][0]["rmse"] == b["results"][0]["rmse"]


def test_tuning_uses_validation_only(monkeypatch):
    import textinterest.protocol.evaluation_jobs as jobs

    calls = []
    real = jobs.evaluate_model

    def spy(model, split, task, ks, **kw):
        calls.append(task)
        return real(model, split, task, ks, **kw)

    monkeypatch.setattr(jobs, "evaluate_model", spy)
    res = run_evaluation(
        "made-up",
        dataset=_dataset(n_users=15),
        extractor=FakeExtractor(),
        seeds=(0,),
        epochs=1,
        models=("interest",),
        tasks=("rating",),
        sentiment="none",
    )
    assert len(res["tuning"]["scores"]) == len(INTEREST_GRID)
    assert calls == ["rating"]  # the test split is evaluated once, after the choice


def test_bad_arguments():
    ds = _dataset(n_users=5)
    with pytest.raises(ValueError, match="unknown model"):
        run_evaluation("x", dataset=ds, models=("interest", "gpt"))
    with pytest.raises(ValueError, match="tasks"):
        run_evaluation("x", dataset=ds, tasks=("clustering",))
    with pytest.raises(ValueError, match="seeds"):
        run_evaluation("x", dataset=ds, seeds=())
    with pytest.raises(ValueError, match="sentiment"):
        run_evaluation("x", dataset=ds, sentiment="vader")
    with pytest.raises(ValueError, match="n_layers"):
        run_evaluation("x", dataset=ds, interest_config={"n_layers": 2})
    with pytest.raises(ValueError, match="max_users"):
        run_evaluation("x", dataset=ds, max_users=0, extractor=FakeExtractor())
    assert "interest" in DEFAULT_MODELS and "baselines" in DEFAULT_MODELS


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_smoke(shared_data):
    res = run_evaluation(
        "amazon:Musical_Instruments",
        data_home=shared_data,
        seeds=(0,),
        max_users=60,
        epochs=1,
        tune=False,
        models=("mf", "interest"),
        extractor=FakeExtractor(),
    )
    assert {r["model"] for r in res["results"]} == {"mf", "interest"}


def test_held_out_text_duplicates_are_counted():
    from textinterest.protocol.experiments import held_out_text_duplicates

    train = pd.DataFrame({"user_id": ["a", "a", "b"], "text": ["same words", "", "other"], "summary": ["", "", ""]})
    test = pd.DataFrame({"user_id": ["a", "b", "a"], "text": ["same words", "same words", ""], "summary": ["", "", ""]})
    out = held_out_text_duplicates(train, test.iloc[:0], test)
    assert out == {"val_same_user_text_in_train": 0, "test_same_user_text_in_train": 1}


def test_registry_adds_a_model_with_one_call_and_skips_missing_extras():
    from textinterest.models import registry
    from textinterest.models.base import Capabilities
    from textinterest.models.baselines import Popularity

    class Reversed(Popularity):
        name = "reverse-popularity"

        def score_items(self, user_ids):
            return -super().score_items(user_ids)

    registry.register(registry.ModelSpec("reverse-popularity", lambda ctx: Reversed(), tasks=("ranking",)))
    registry.register(
        registry.ModelSpec(
            "needs-extra",
            lambda ctx: Reversed(),
            tasks=("ranking",),
            extra="nonexistent",
            requires=("textinterest_no_such_module",),
        )
    )
    try:
        with pytest.raises(ValueError, match="already registered"):
            registry.register(registry.ModelSpec("reverse-popularity", lambda ctx: Reversed()))
        res = run_evaluation(
            "made-up",
            dataset=_dataset(n_users=15),
            seeds=(0,),
            tune=False,
            models=("Popularity", "reverse-popularity", "needs-extra"),
        )
        rows = {r["model"]: r for r in res["results"]}
        assert set(rows) == {"Popularity", "reverse-popularity"}
        assert rows["reverse-popularity"]["ndcg@10"] != rows["Popularity"]["ndcg@10"]
        assert "rmse" not in rows["reverse-popularity"]  # it serves ranking only
        assert "nonexistent" in res["skipped"]["needs-extra"]
    finally:
        registry.unregister("reverse-popularity")
        registry.unregister("needs-extra")
    assert Capabilities(rating=False).serves("ranking") and not Capabilities(rating=False).serves("rating")
    with pytest.raises(ValueError, match="tasks"):
        registry.ModelSpec("bad", lambda ctx: None, tasks=("clustering",))


def test_registry_holds_the_default_training_settings_once():
    from textinterest.models import registry
    from textinterest.models.cf import MFRecommender, SequentialRecommender
    from textinterest.models.interest import InterestRecommender

    for cls, name in ((MFRecommender, "mf"), (SequentialRecommender, "seq-lstm"), (InterestRecommender, "interest")):
        task = "ranking" if name == "seq-lstm" else "rating"
        assert cls(task=task).train_config == registry.get(name).train_config(), name
    assert registry.get("mf").train_config(epochs=2).epochs == 2
    with pytest.raises(ValueError, match="not trained"):
        registry.get("SVD").train_config()


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the worker processes below run with one thread each: same sums
    yield
    torch.set_num_threads(before)


WORKER_MODELS = ("Popularity", "SVD", "mf", "interest", "interest-no-text")


def _small_run(**kw):
    return run_evaluation(
        "made-up",
        dataset=_dataset(n_users=24, n_items=12),
        extractor=FakeExtractor(),
        epochs=2,
        sentiment="none",
        interest_config={"hidden": 8, "mf_dim": 4, "n_components": 2},
        **{"models": WORKER_MODELS, "seeds": (0, 1), **kw},
    )


def test_worker_processes_give_the_same_results_as_one_process(one_torch_thread):
    here = _small_run(workers=1)
    there = _small_run(workers=2)
    assert there["environment"]["workers"] == 2 and there["environment"]["threads_per_worker"] >= 1
    assert here["environment"]["workers"] == 1

    def strip(rows):  # everything but the wall-clock fields
        return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]

    assert [r["model"] for r in there["runs"]] == [r["model"] for r in here["runs"]]
    assert strip(there["runs"]) == strip(here["runs"])
    assert there["tuning"]["by_model"] == here["tuning"]["by_model"]
    for key in ("significance", "significance_ablations", "slices"):  # NaN-aware: compare the JSON text
        assert json.dumps(there[key], sort_keys=True) == json.dumps(here[key], sort_keys=True), key


def test_the_first_seeds_early_stopping_fit_reuses_its_tuning_trial(one_torch_thread, monkeypatch):
    import textinterest.protocol.evaluation_jobs as evaluation_jobs
    from textinterest.models.interest import InterestRecommender

    fits = []
    original_fit = InterestRecommender.fit

    def counting_fit(self, train, val=None, **kw):
        fits.append((self.name, val is not None and len(val) > 0))
        return original_fit(self, train, val, **kw)

    monkeypatch.setattr(InterestRecommender, "fit", counting_fit)
    reused = _small_run(models=("interest", "interest-no-text"))
    with_val = [name for name, val in fits if val]
    # 4 trials x 2 tasks; then per task one early-stopped fit for seed 1 only (seed 0's is the chosen trial)
    assert with_val.count("interest") == 8 + 2
    # the ablation reuses the full model's choice, not its fits: early-stopped for both seeds
    assert with_val.count("interest-no-text") == 2 * 2

    # control: the same run without reuse gives the same figures, with one more early-stopped fit per task
    fits.clear()
    original = evaluation_jobs.fit_for_test
    monkeypatch.setattr(evaluation_jobs, "fit_for_test", lambda *a, known=None, **kw: original(*a, **kw))
    again = _small_run(models=("interest", "interest-no-text"))
    assert [name for name, val in fits if val].count("interest") == 8 + 2 + 2

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]

    assert strip(again["runs"]) == strip(reused["runs"])


def test_tuning_chooses_the_best_validation_score_of_each_task(one_torch_thread):
    result = _small_run(models=("mf", "interest"), seeds=(0,))
    for name, record in result["tuning"]["by_model"].items():
        for task, chosen in record["chosen"].items():
            scores = [record["scores"][f"{task}:{j}"] for j in range(record["trials"])]
            assert len(set(scores)) > 1, (name, task)  # the grid gives a choice to make
            assert chosen == record["grid"][int(np.argmax(scores))], (name, task)
