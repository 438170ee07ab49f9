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
from textinterest.models.joint import JointInterestRecommender, LoraSettings  # noqa: E402
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


# --------------------------------------------------------------------------- fine-tuning modes: LoRA, frozen


def lora_make(folder, **over):
    settings = over.pop("lora", LoraSettings(rank=4, alpha=8.0, dropout=0.0))
    return make(folder, finetune="lora", lora=settings, encoder_lr=1e-2, **over)


def lora_formula(folder, settings: LoraSettings) -> int:
    """r * (in + out) for every target linear map of the adapted blocks, counted on a fresh encoder."""
    encoder = BertFeatureExtractor(str(folder), use_cache=False).model
    n_blocks = len(encoder.encoder.layer)
    first = 0 if settings.layers is None else n_blocks - settings.layers
    total = 0
    for name, sub in encoder.named_modules():
        parts = name.split(".")
        if parts[-1] in settings.targets and isinstance(sub, torch.nn.Linear) and int(parts[2]) >= first:
            total += settings.rank * (sub.in_features + sub.out_features)
    return total


@pytest.mark.parametrize("layers", [None, 1])
def test_lora_trains_as_many_parameters_as_the_formula_says(setting, layers):
    folder, split, feats, _ = setting
    settings = LoraSettings(rank=3, alpha=6.0, dropout=0.0, layers=layers)
    model = lora_make(folder, lora=settings).fit(split.train, None, feats)
    encoder = model.module.text_encoder
    trainable = {n: p.numel() for n, p in encoder.named_parameters() if p.requires_grad}
    expected = lora_formula(folder, settings)
    assert expected == (2 if layers is None else 1) * 2 * 3 * (32 + 32)  # blocks x (query, value) x r(in + out)
    assert model.n_encoder_trainable_ == sum(trainable.values()) == expected
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable), sorted(trainable)[:3]
    if layers == 1:  # the block without adapters runs once per text
        assert model.frozen_cache_status_.startswith("on: 1 frozen blocks"), model.frozen_cache_status_
    else:
        assert model.frozen_cache_status_.startswith("not used"), model.frozen_cache_status_


def test_lora_training_moves_only_the_adapters_and_the_interest_model(setting):
    folder, split, feats, vectors = setting
    model = lora_make(folder)
    initial: dict[str, torch.Tensor] = {}
    build = model._build

    def build_and_remember(train):
        module = build(train)
        initial.update({k: v.detach().clone() for k, v in module.state_dict().items()})
        return module

    model._build = build_and_remember
    model.fit(split.train, None, feats)
    after = model.module.state_dict()
    changed = {k for k, v in initial.items() if not torch.equal(v, after[k])}
    encoder_changed = {k for k in changed if k.startswith("text_encoder.")}
    assert encoder_changed and all(".lora_" in k for k in encoder_changed), sorted(encoder_changed)[:3]
    assert all(k in encoder_changed for k in initial if ".lora_B." in k), "an adapter did not train"
    assert any(not k.startswith("text_encoder.") for k in changed), "the interest model did not train"
    # the encoder's own weights are still the pretrained ones
    pretrained = BertFeatureExtractor(str(folder), use_cache=False).model.state_dict()
    base = {k.removeprefix("text_encoder.").replace(".base_layer", ""): v for k, v in after.items()}
    shared = [k for k in pretrained if k in base]
    assert len(shared) == len(pretrained)
    assert all(torch.equal(pretrained[k], base[k]) for k in shared)
    assert not np.allclose(model.review_vectors(), vectors, atol=1e-4), "the adapters did not change the vectors"


@pytest.mark.parametrize("finetune", ["lora", "top-layers", "frozen"])
def test_saved_joint_model_loads_back_with_the_same_scores(setting, tmp_path, finetune):
    from safetensors import safe_open

    from textinterest.models.artifact import read_manifest

    folder, split, feats, _ = setting
    model = lora_make(folder) if finetune == "lora" else make(folder, finetune=finetune, encoder_lr=1e-2)
    model.fit(split.train, split.val, feats)
    extractor = BertFeatureExtractor(str(folder), use_cache=False, max_length=16)
    model.save(tmp_path / "m", encoder=extractor)
    assert read_manifest(tmp_path / "m")["own_settings"]["finetune"] == finetune
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as fh:
        saved = set(fh.keys())
    encoder_saved = {k for k in saved if k.startswith("text_encoder.")}
    if finetune == "lora":  # the adapters, and none of the frozen encoder weights
        assert encoder_saved and all(".lora_" in k for k in encoder_saved)
    elif finetune == "top-layers":
        assert encoder_saved and all(".layer.1." in k for k in encoder_saved)
    else:
        assert not encoder_saved

    loaded = JointInterestRecommender.load(tmp_path / "m")
    assert type(loaded) is JointInterestRecommender and loaded.finetune == finetune
    np.testing.assert_array_equal(loaded.predict(split.test), model.predict(split.test))
    users = split.test["user_id"].unique()[:5]
    np.testing.assert_array_equal(loaded.score_items(users), model.score_items(users))
    if finetune != "frozen":
        want = model.module.text_encoder.state_dict()
        got = loaded.module.text_encoder.state_dict()
        assert all(torch.equal(want[k], got[k]) for k in want)


def test_joint_state_with_a_weight_missing_is_refused(setting):
    folder, split, feats, _ = setting
    model = lora_make(folder).fit(split.train, None, feats)
    state, _ = model.artifact_state()
    adapter = next(k for k in state if ".lora_A." in k)
    with pytest.raises(RuntimeError, match="missing"):
        model.load_artifact_state({k: v for k, v in state.items() if k != adapter})


def test_frozen_mode_is_the_plain_interest_model(setting):
    from textinterest.models.interest import InterestRecommender

    folder, split, feats, vectors = setting
    joint = make(folder, finetune="frozen").fit(split.train, split.val, feats)
    plain = InterestRecommender(joint.config, task="rating", train_config=joint.train_config)
    plain.fit(split.train, split.val, feats)
    assert not hasattr(joint.module, "text_encoder") and joint.n_encoder_trainable_ == 0
    np.testing.assert_array_equal(joint.review_vectors(), vectors)
    np.testing.assert_array_equal(joint.predict(split.test), plain.predict(split.test))


def test_lora_without_peft_names_the_extra(setting, monkeypatch):
    import sys

    from textinterest.text.encoder_layers import add_lora_adapters

    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'textinterest\[lora\]'"):
        lora_make(setting[0])
    with pytest.raises(ImportError, match=r"textinterest\[lora\]"):
        add_lora_adapters(BertFeatureExtractor(str(setting[0]), use_cache=False).model, LoraSettings())
    make(setting[0])  # the other modes do not need peft


def test_finetune_settings_are_checked(setting):
    folder = setting[0]
    with pytest.raises(ValueError, match="finetune"):
        make(folder, finetune="everything")
    with pytest.raises(ValueError, match="rank"):
        LoraSettings(rank=0)
    with pytest.raises(ValueError, match="targets"):
        LoraSettings(targets=())
    assert make(folder, finetune="lora").encoder_lr == 5e-4 and make(folder).encoder_lr == 2e-5
    with pytest.raises(ValueError, match="last 3 layers"):
        from textinterest.text.encoder_layers import add_lora_adapters

        add_lora_adapters(BertFeatureExtractor(str(folder), use_cache=False).model, LoraSettings(layers=3))
