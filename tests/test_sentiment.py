"""Tests for textinterest.text.sentiment (tiny random BERT models; no network)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from textinterest.text.sentiment import (  # noqa: E402
    SentimentClassifier,
    TfidfLogisticBaseline,
    macro_f1,
    sentiment_labels,
)

WORDS = "good bad great awful the strings guitar cable amp pedal is was sound this it very really and".split()


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A tiny random BERT with a small WordPiece vocabulary, saved for ``from_pretrained``.

    Smaller than ``tiny_models.build_tiny_model``: the toy fine-tuning task below is calibrated on it.
    """
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz.,!"]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    arg = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    BertTokenizerFast(**{arg: str(folder / "vocab.txt")}).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def toy_task(n: int = 48, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts with "good"/"great" (label 1) or "bad"/"awful" (label 0) among neutral words."""
    rng = np.random.default_rng(seed)
    neutral = ["the strings", "this guitar", "the cable", "it", "the amp is", "this pedal was", "really", "very"]
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        word = rng.choice(["good", "great"] if y else ["bad", "awful"])
        parts = [rng.choice(neutral), word, rng.choice(neutral)]
        rng.shuffle(parts)
        texts.append(" ".join(parts))
        labels.append(y)
    return texts, np.array(labels)


# ------------------------------------------------------------------------------------------
# labels


def test_binary_labels():
    got = sentiment_labels([1, 2, 3, 4, 5, np.nan, 2.5, 4.0])
    assert got.tolist() == [0, 0, -1, 1, 1, -1, -1, 1]
    assert got.dtype == np.int64


def test_ternary_labels():
    got = sentiment_labels(np.array([1, 2, 3, 4, 5, np.nan]), scheme="ternary")
    assert got.tolist() == [0, 0, 1, 2, 2, -1]


def test_label_thresholds_and_errors():
    assert sentiment_labels([3, 5], positive_min=5, negative_max=3).tolist() == [0, 1]
    with pytest.raises(ValueError, match="scheme"):
        sentiment_labels([1], scheme="five")
    with pytest.raises(ValueError, match="below"):
        sentiment_labels([1], positive_min=3, negative_max=3)
    with pytest.raises(ValueError, match="numbers"):
        sentiment_labels(["great"])


# ------------------------------------------------------------------------------------------
# TF-IDF baseline


def test_tfidf_learns_and_roundtrips(tmp_path):
    x, y = toy_task(60)
    xv, yv = toy_task(30, seed=1)
    model = TfidfLogisticBaseline().fit(x, y, xv, yv)
    assert macro_f1(yv, model.predict(xv), 2) == 1.0
    assert len(model.history_) == len(model.grid)
    proba = model.predict_proba(xv)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    s = model.score(xv)
    assert ((s >= -1) & (s <= 1)).all()
    assert (s[yv == 1] > 0).all() and (s[yv == 0] < 0).all()
    again = TfidfLogisticBaseline.load(model.save(tmp_path / "tfidf"))
    np.testing.assert_allclose(again.predict_proba(xv), proba, atol=1e-12)


def test_tfidf_proba_matches_sklearn():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    x, y = toy_task(40)
    y3 = np.arange(40) % 3
    for labels, k in ((y, 2), (y3, 3)):
        model = TfidfLogisticBaseline(num_labels=k).fit(x, labels)
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        ref = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=42)
        ref.fit(vec.fit_transform(x), labels)
        np.testing.assert_allclose(model.predict_proba(x), ref.predict_proba(vec.transform(x)), atol=1e-6)


def test_left_out_labels_are_rejected():
    x, y = toy_task(10)
    y = y.copy()
    y[3] = -1
    with pytest.raises(ValueError, match="-1.*filter"):
        TfidfLogisticBaseline().fit(x, y)
    with pytest.raises(ValueError, match="outside"):
        TfidfLogisticBaseline().fit(x, np.full(10, 2))
    with pytest.raises(ValueError, match="one label per text"):
        TfidfLogisticBaseline().fit(x, y[:5])
    with pytest.raises(ValueError, match="no training examples"):
        TfidfLogisticBaseline().fit(x, np.zeros(10, dtype=int))
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        TfidfLogisticBaseline().fit(["good", None], [0, 1])
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfLogisticBaseline().predict(["good"])


# ------------------------------------------------------------------------------------------
# BERT classifier


def test_finetune_learns_toy_task_and_roundtrips(tiny_bert, tmp_path):
    x, y = toy_task(48)
    xv, yv = toy_task(24, seed=1)
    clf = SentimentClassifier(
        str(tiny_bert), mode="finetune", lr=3e-3, epochs=6, batch_size=8, patience=3, device="cpu", warmup_ratio=0.0
    )
    clf.fit(x, y, xv, yv)
    assert len(clf.history_) >= 1
    assert {"epoch", "train_loss", "val_macro_f1", "seconds"} <= set(clf.history_[0])
    best = max(h["val_macro_f1"] for h in clf.history_)
    assert clf.history_[clf.best_epoch_ - 1]["val_macro_f1"] == best
    assert macro_f1(yv, clf.predict(xv), 2) == pytest.approx(best)  # best weights restored
    assert best == 1.0
    proba = clf.predict_proba(xv)
    assert proba.shape == (24, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    s = clf.score(xv)
    np.testing.assert_allclose(s, proba[:, 1] - proba[:, 0])
    loaded = SentimentClassifier.load(clf.save(tmp_path / "ft"), device="cpu")
    assert (tmp_path / "ft" / "model" / "model.safetensors").is_file()
    np.testing.assert_allclose(loaded.predict_proba(xv), proba, atol=1e-6)
    assert loaded.history_ == clf.history_


def test_finetune_is_seeded(tiny_bert):
    x, y = toy_task(16)
    runs = [
        SentimentClassifier(str(tiny_bert), epochs=1, batch_size=8, device="cpu", seed=7).fit(x, y).predict_proba(x)
        for _ in range(2)
    ]
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-6)


def test_train_last_layers_freezes_the_rest(tiny_bert):
    x, y = toy_task(16)
    clf = SentimentClassifier(str(tiny_bert), epochs=1, batch_size=8, device="cpu", train_last_layers=1, lr=1e-2)
    clf._load_finetune_model()
    before = {k: v.clone() for k, v in clf._model.state_dict().items()}
    clf.fit(x, y)
    after = clf._model.state_dict()
    assert torch.equal(
        before["bert.embeddings.word_embeddings.weight"], after["bert.embeddings.word_embeddings.weight"]
    )
    assert torch.equal(
        before["bert.encoder.layer.0.output.dense.weight"], after["bert.encoder.layer.0.output.dense.weight"]
    )
    assert not torch.equal(
        before["bert.encoder.layer.1.output.dense.weight"], after["bert.encoder.layer.1.output.dense.weight"]
    )
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    with pytest.raises(ValueError, match="layers"):
        SentimentClassifier(str(tiny_bert), epochs=1, device="cpu", train_last_layers=5).fit(x, y)


def test_early_stopping_respects_patience(tiny_bert):
    x, y = toy_task(16)
    # a negligible lr: validation F1 never improves after epoch 1, so patience=1 stops after epoch 2
    clf = SentimentClassifier(str(tiny_bert), epochs=5, batch_size=8, device="cpu", lr=1e-12, patience=1)
    clf.fit(x, y, x, y)
    assert len(clf.history_) == 2
    assert clf.best_epoch_ == 1


def test_learning_rate_must_be_positive():
    with pytest.raises(ValueError, match="lr"):
        SentimentClassifier("unused", lr=0.0)


def test_frozen_mode_learns_and_roundtrips(tiny_bert, tmp_path):
    x, y = toy_task(60)
    xv, yv = toy_task(30, seed=1)
    clf = SentimentClassifier(str(tiny_bert), mode="frozen", device="cpu", cache_dir=tmp_path / "cache", fast=None)
    clf.fit(x, y, xv, yv)
    assert [h["C"] for h in clf.history_] == list(clf.grid)
    f1 = macro_f1(yv, clf.predict(xv), 2)
    assert f1 >= 0.9
    proba = clf.predict_proba(xv)
    loaded = SentimentClassifier.load(clf.save(tmp_path / "frozen"), device="cpu", cache_dir=tmp_path / "cache")
    assert (tmp_path / "frozen" / "head.safetensors").is_file()
    np.testing.assert_allclose(loaded.predict_proba(xv), proba, atol=1e-9)
    assert loaded.extractor._model is None  # embeddings came from the cache


def test_ternary_classifier_scores(tiny_bert, tmp_path):
    x, _ = toy_task(30)
    y = np.arange(30) % 3
    clf = SentimentClassifier(
        str(tiny_bert), num_labels=3, mode="frozen", device="cpu", cache_dir=tmp_path / "cache", fast=None
    ).fit(x, y)
    proba = clf.predict_proba(x)
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(clf.score(x), proba[:, 2] - proba[:, 0])


def test_classifier_argument_errors(tiny_bert, tmp_path):
    x, y = toy_task(10)
    with pytest.raises(ValueError, match="mode"):
        SentimentClassifier(str(tiny_bert), mode="zero-shot")
    with pytest.raises(ValueError, match="train_last_layers"):
        SentimentClassifier(str(tiny_bert), mode="frozen", train_last_layers=1)
    bad = y.copy()
    bad[0] = -1
    with pytest.raises(ValueError, match="filter them out"):
        SentimentClassifier(str(tiny_bert), device="cpu").fit(x, bad)
    with pytest.raises(ValueError, match="both"):
        SentimentClassifier(str(tiny_bert), device="cpu").fit(x, y, val_texts=x)
    with pytest.raises(RuntimeError, match="not fitted"):
        SentimentClassifier(str(tiny_bert), device="cpu").predict(["good"])
    with pytest.raises(FileNotFoundError):
        SentimentClassifier.load(tmp_path / "nothing-here")


@pytest.mark.gpu
def test_finetune_on_cuda_with_amp(tiny_bert, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, y = toy_task(48)
    clf = SentimentClassifier(
        str(tiny_bert), lr=3e-3, epochs=6, batch_size=8, patience=3, device="cuda", amp=True, warmup_ratio=0.0
    ).fit(x, y, x, y)
    assert max(h["val_macro_f1"] for h in clf.history_) == 1.0
    loaded = SentimentClassifier.load(clf.save(tmp_path / "ft"), device="cuda")
    np.testing.assert_allclose(loaded.predict_proba(x), clf.predict_proba(x), atol=1e-3)
