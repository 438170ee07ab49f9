"""The sentiment feature's two modes (frozen head, fine-tuned top layers) in the evaluation (tiny random BERT)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.test_experiments import FakeExtractor, _dataset  # noqa: E402
from tests.test_sentiment import build_tiny_bert  # noqa: E402
from textinterest.protocol.experiments import run_evaluation  # noqa: E402
from textinterest.protocol.text_inputs import fit_review_sentiment  # noqa: E402
from textinterest.text import sentiment as sentiment_module  # noqa: E402
from textinterest.text.sentiment import SENTIMENT_MODES, sentiment_classifier  # noqa: E402


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-modes"))


def test_modes_build_the_classifier_they_name(tiny_bert):
    frozen = sentiment_classifier("frozen", str(tiny_bert))
    tuned = sentiment_classifier("finetuned", str(tiny_bert), max_length=32)
    assert frozen.mode == "frozen" and frozen.train_last_layers == 0
    assert tuned.mode == "finetune" and tuned.train_last_layers == SENTIMENT_MODES["finetuned"]["train_last_layers"]
    assert tuned.max_length == 32  # the caller's options override the mode's
    with pytest.raises(ValueError, match="sentiment mode must be one of"):
        sentiment_classifier("finetune", str(tiny_bert))
    with pytest.raises(ValueError, match="no weights to fine-tune"):
        fit_review_sentiment(_dataset(n_users=10).interactions, ["good"] * 60, mode="finetuned", encoder="hashing")


def _count_fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    fits: list[str] = []
    original = sentiment_module.SentimentClassifier.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(self.mode)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sentiment_module.SentimentClassifier, "fit", counting_fit)
    return fits


@pytest.mark.parametrize("mode", ["frozen", "finetuned"])
def test_evaluate_fits_the_chosen_sentiment_mode(tiny_bert, monkeypatch, mode):
    fits = _count_fits(monkeypatch)
    result = run_evaluation(
        "made-up",
        dataset=_dataset(n_users=24),
        extractor=FakeExtractor(),
        encoder=str(tiny_bert),
        seeds=(0,),
        epochs=1,
        tune=False,
        models=("interest",),
        sentiment=mode,
        interest_config={"hidden": 8, "mf_dim": 4},
    )
    info = result["sentiment"]
    assert info["status"] == "ok" and info["mode"] == mode and 0 <= info["val_accuracy"] <= 1
    assert result["run_config"]["sentiment"] == mode
    # the frozen head (seconds) is refitted on train + validation for the refit; the fine-tuned classifier
    # (minutes) is fitted once and scores the validation reviews as it is
    assert fits == (["frozen", "frozen"] if mode == "frozen" else ["finetune"])
    assert all(np.isfinite(row["ndcg@10"]) for row in result["runs"])


def test_fine_tuning_moves_the_sentiment_scores(tiny_bert):
    train = _dataset(n_users=24).interactions
    texts = [f"{'good great' if r > 3 else 'bad awful'} the guitar" for r in train["rating"]]
    _, frozen, _ = fit_review_sentiment(train, texts, mode="frozen", encoder=str(tiny_bert), max_length=16)
    clf, tuned, info = fit_review_sentiment(train, texts, mode="finetuned", encoder=str(tiny_bert), max_length=16)
    assert clf.mode == "finetune" and info["n_fit"] + info["n_val"] == int((train["rating"] != 3).sum())
    assert tuned.shape == frozen.shape == (len(train),) and np.all(np.abs(tuned) <= 1)
    assert not np.allclose(tuned, frozen)  # a different classifier, not the frozen head under another name


def test_unknown_sentiment_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="sentiment must be one of"):
        run_evaluation("made-up", dataset=_dataset(n_users=10), sentiment="fine-tuned")


def test_benchmark_pairs_the_two_modes_user_by_user(tiny_bert):
    from textinterest.apps.benchmarks.sentiment_modes import compare_modes

    record = compare_modes(
        "made-up",
        dataset=_dataset(n_users=24),
        extractor=FakeExtractor(),
        encoder=str(tiny_bert),
        seeds=(0, 1),
        epochs=1,
        tune=False,
        n_boot=200,
        interest_config={"hidden": 8, "mf_dim": 4},
    )
    assert {mode: run["sentiment"]["mode"] for mode, run in record["runs"].items()} == {
        "frozen": "frozen",
        "finetuned": "finetuned",
    }
    for metric in ("ndcg@10", "rmse"):
        test = record["paired"][metric]
        # the pairs are the two runs' own per-user values: seed-averaged, they give back each run's figures
        # (NDCG@10: the mean over seeds; RMSE: the root of the mean squared error over seeds and users)
        for mode, side in (("finetuned", "a"), ("frozen", "b")):
            per_seed = np.array([row[metric] for row in record["runs"][mode]["per_seed"] if row["model"] == "interest"])
            expected = np.sqrt(np.mean(per_seed**2)) if metric == "rmse" else per_seed.mean()
            assert test[side] == pytest.approx(expected)
        assert test["diff"] == pytest.approx(test["a"] - test["b"]) and test["n"] == 24
