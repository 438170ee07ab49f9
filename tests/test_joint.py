"""Joint fine-tuning of the encoder with the interest model (tiny random BERT, no network)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_models import build_tiny_model  # noqa: E402

from textinterest.datasets.splits import split_interactions  # noqa: E402
from textinterest.models.interest import InterestConfig, TextFeatures  # noqa: E402
from textinterest.models.joint import JointInterestRecommender  # noqa: E402
from textinterest.text.features import (
    BertFeatureExtractor,  # noqa: E402
    freeze_all_but_last_layers,  # noqa: E402
)
from textinterest.training import TrainConfig  # noqa: E402

GOOD = ["good guitar", "great strings", "love this amp", "nice pedal tone", "best cable"]
BAD = ["bad guitar", "terrible strings", "hate this amp", "awful pedal tone", "worst cable"]


def review_world(n_users: int = 24, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        happy = u % 2 == 0
        for j in range(6):
            item = int(rng.integers(0, 12))
            text = str(rng.choice(GOOD if happy else BAD))
            rows.append((f"u{u}", f"i{item}_{j}", 5.0 if happy else 2.0, 1_000 + 86_400 * j, text, "", len(rows)))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "text", "summary", "source_order"])
    return df.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-joint"))
    df = review_world()
    split = split_interactions(df, "leave-last-out")
    extractor = BertFeatureExtractor(str(folder), use_cache=False, device="cpu", max_length=16)
    vectors = extractor.embed(split.train["text"].tolist())
    feats = TextFeatures(review_vectors=vectors, texts=split.train["text"].tolist())
    return folder, split, feats, vectors


def make(folder, **over):
    cfg = InterestConfig(hidden=16, n_components=2, mf_dim=4, dropout=0.0, max_history=6)
    return JointInterestRecommender(
        cfg,
        task="rating",
        train_config=TrainConfig(epochs=2, batch_size=8, lr=1e-2, progress=False, patience=0),
        encoder=str(folder),
        max_length=16,
        **over,
    )


def test_joint_training_updates_only_the_top_layer_and_refreshes_vectors(setting):
    folder, split, feats, vectors = setting
    model = make(folder, train_layers=1, encoder_lr=1e-2)
    encoder_before = {
        k: v.clone() for k, v in BertFeatureExtractor(str(folder), use_cache=False).model.state_dict().items()
    }
    model.fit(split.train, split.val, feats)
    after = model.module.text_encoder.state_dict()
    changed = {k for k, v in encoder_before.items() if not torch.equal(v, after[k])}
    assert changed, "the encoder did not change: gradients do not reach it"
    assert all(".layer.1." in k for k in changed), f"frozen parameters moved: {sorted(changed)[:3]}"
    tuned = model.review_vectors()
    assert tuned.shape == vectors.shape
    assert not np.allclose(tuned, vectors, atol=1e-4), "review vectors were not recomputed with the tuned encoder"
    pred = model.predict(split.test)
    assert pred.shape == (len(split.test),) and np.isfinite(pred).all()


def test_encoder_learning_rate_is_separate(setting):
    folder, split, feats, _ = setting
    model = make(folder, train_layers=1, encoder_lr=1e-7)
    model.fit(split.train, None, feats)
    groups = model.module.optimizer_groups(1e-2)
    assert [g["lr"] for g in groups] == [1e-2, 1e-7]
    encoder_ids = {id(p) for p in model.module.text_encoder.parameters()}
    assert not any(id(p) in encoder_ids for p in groups[0]["params"])


def test_joint_needs_texts_and_text_features(setting):
    folder, split, feats, _ = setting
    with pytest.raises(ValueError, match="texts"):
        make(folder).fit(split.train, None, TextFeatures(review_vectors=feats.review_vectors))
    with pytest.raises(ValueError, match="use_text"):
        JointInterestRecommender(InterestConfig(use_text=False))
    with pytest.raises(ValueError, match="train_layers"):
        make(folder, train_layers=-1)


def test_freeze_all_but_last_layers_counts(setting):
    folder = setting[0]
    model = BertFeatureExtractor(str(folder), use_cache=False).model
    total = sum(p.numel() for p in model.parameters())
    top = freeze_all_but_last_layers(model, 1)
    assert 0 < top < total
    assert all(not p.requires_grad for p in model.embeddings.parameters())
    with pytest.raises(ValueError, match="layers"):
        freeze_all_but_last_layers(model, 5)


def test_run_evaluation_trains_the_joint_model(setting, tmp_path):
    from textinterest.datasets import load_dataset
    from textinterest.protocol.experiments import run_evaluation

    folder = setting[0]
    data = load_dataset("synthetic", n_users=30, n_items=40, n_topics=3, seed=1, min_reviews=5, max_reviews=8)
    result = run_evaluation(
        "synthetic",
        dataset=data,
        encoder=str(folder),
        models=("interest", "interest+joint"),
        tasks=("rating",),
        extractor=BertFeatureExtractor(str(folder), use_cache=False, max_length=16),
        seeds=(0,),
        epochs=1,
        tune=False,
        joint_layers=1,
        joint_max_length=16,
        sentiment="none",
        device="cpu",
    )
    rows = {r["model"]: r for r in result["results"]}
    assert set(rows) == {"interest", "interest+joint"}
    assert np.isfinite(rows["interest+joint"]["rmse"]) and rows["interest+joint"]["rmse"] != rows["interest"]["rmse"]
    with pytest.raises(ValueError, match="joint_layers"):
        run_evaluation("synthetic", dataset=data, models=("interest+joint",), joint_layers=-2)


def test_frozen_block_cache_matches_the_full_encoder(setting):
    folder, split, feats, _ = setting
    model = make(folder, train_layers=1, encoder_lr=1e-2)
    model.fit(split.train, split.val, feats)
    assert model.frozen_cache_status_.startswith("on: 1 frozen blocks"), model.frozen_cache_status_
    encoder = model.module.text_encoder.eval()
    rows = torch.arange(len(split.train))
    with torch.no_grad():
        cached = model._encode_with(encoder, rows)
        prefix, model._prefix = model._prefix, None
        full = model._encode_with(encoder, rows)
        model._prefix = prefix
    # after training too: the cache holds only what the frozen blocks give, which did not move
    assert torch.allclose(cached, full, atol=1e-5)
    # the encoder is whole again after each shortcut pass
    assert len(encoder.encoder.layer) == 2 and not isinstance(encoder.embeddings, torch.nn.Identity)
    assert type(encoder.embeddings).__name__ != "_PassThrough"


@pytest.mark.parametrize(
    "options, status",
    [
        ({"train_layers": 1, "cache_frozen_layers": False}, "off"),
        ({"train_layers": 1, "frozen_cache_max_bytes": 1}, "skipped: it would take"),
        ({"train_layers": None}, "not used: every block trains"),
    ],
)
def test_joint_trains_without_the_frozen_block_cache(setting, options, status):
    folder, split, feats, _ = setting
    model = make(folder, encoder_lr=1e-2, **options).fit(split.train, split.val, feats)
    assert model.frozen_cache_status_.startswith(status)
    assert model._prefix is None
    assert np.isfinite(model.predict(split.test)).all()
