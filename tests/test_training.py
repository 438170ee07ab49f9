"""Tests of the shared trainer: config checks, seeding, early stopping, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from textinterest.models.cf import MatrixFactorization, MFConfig
from textinterest.models.interest import DynamicInterestModel, InterestConfig
from textinterest.training import (
    TrainConfig,
    Trainer,
    autocast_dtype,
    load_model,
    resolve_device,
    save_model,
    set_seed,
)


def _regression_task(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256, generator=g)

    def batches(epoch, rng):
        order = rng.permutation(len(x))
        for s in range(0, len(x), 32):
            idx = torch.as_tensor(order[s : s + 32])
            yield {"x": x[idx], "y": y[idx]}

    def loss(module, batch):
        return nn.functional.mse_loss(module(batch["x"])[:, 0], batch["y"])

    return batches, loss, x, y


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 0),
        ("lr", 0.0),
        ("weight_decay", -1.0),
        ("batch_size", 0),
        ("patience", -1),
        ("grad_clip", -1.0),
        ("device", "tpu"),
    ],
)
def test_train_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field if field != "device" else "device"):
        TrainConfig(**{field: value})


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")
    assert autocast_dtype(torch.device("cpu"), amp=True) is None


def test_set_seed_reproduces_draws():
    set_seed(3)
    a = (torch.rand(3), np.random.rand(3))
    set_seed(3)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_trainer_learns_and_is_deterministic():
    batches, loss, x, y = _regression_task()
    outs = []
    for _ in range(2):
        set_seed(7)
        model = nn.Linear(4, 1)
        result = Trainer(TrainConfig(epochs=15, lr=0.05, seed=7, progress=False, patience=0)).fit(model, batches, loss)
        outs.append(model(x).detach())
        assert result.history[-1]["loss"] < 0.1 * result.history[0]["loss"]
        assert result.best_epoch == 14
    assert torch.equal(outs[0], outs[1])


def test_early_stopping_restores_best_weights():
    batches, loss, x, y = _regression_task()
    metrics = iter([1.0, 3.0, 2.0, 2.5, 2.9, 0.0, 0.0])
    snapshots = []

    def validate(module):
        snapshots.append({k: v.clone() for k, v in module.state_dict().items()})
        return next(metrics)

    model = nn.Linear(4, 1)
    result = Trainer(TrainConfig(epochs=7, lr=0.05, patience=3, progress=False)).fit(
        model, batches, loss, validate, maximize=True
    )
    assert result.best_epoch == 1 and result.best_metric == 3.0
    assert len(result.history) == 5  # epochs 2, 3, 4 did not improve -> stop
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])


def test_minimize_mode_and_checkpoint(tmp_path):
    batches, loss, x, y = _regression_task()
    model = MatrixFactorization(MFConfig(n_users=3, n_items=4, dim=2))

    def mf_batches(epoch, rng):
        yield {"u": torch.tensor([1, 2, 3]), "i": torch.tensor([1, 2, 3]), "r": torch.tensor([1.0, 2.0, 3.0])}

    def mf_loss(module, batch):
        return nn.functional.mse_loss(module(batch["u"], batch["i"]), batch["r"])

    values = iter([5.0, 4.0, 6.0, 7.0])
    cfg = TrainConfig(epochs=4, patience=2, progress=False, checkpoint_dir=str(tmp_path / "ckpt"))
    result = Trainer(cfg).fit(model, mf_batches, mf_loss, lambda m: next(values), maximize=False)
    assert result.best_epoch == 1
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["extra"]["epoch"] == 1 and meta["class"].endswith("MatrixFactorization")
    loaded = load_model(tmp_path / "ckpt")
    u, i = torch.tensor([1, 2, 3]), torch.tensor([3, 2, 1])
    assert torch.allclose(loaded(u, i), model(u, i))


def test_non_finite_loss_raises():
    model = nn.Linear(2, 1)

    def batches(epoch, rng):
        yield {"x": torch.ones(2, 2)}

    with pytest.raises(FloatingPointError, match="non-finite"):
        Trainer(TrainConfig(epochs=1, progress=False)).fit(model, batches, lambda m, b: m(b["x"]).sum() * float("nan"))


def test_no_trainable_parameters_is_an_error():
    model = nn.Linear(2, 1)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        Trainer(TrainConfig(epochs=1, progress=False)).fit(model, lambda e, r: iter([]), lambda m, b: None)


def test_save_load_round_trip_interest_model(tmp_path):
    cfg = InterestConfig(n_users=5, n_items=7, text_dim=6, hidden=8, n_components=2, mf_dim=4, dropout=0.0)
    torch.manual_seed(0)
    model = DynamicInterestModel(cfg).eval()
    with torch.no_grad():
        model.item_text.normal_()
    save_model(model, tmp_path / "m", extra={"note": "x"})
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, DynamicInterestModel) and loaded.config == cfg
    comps = torch.randn(3, cfg.n_slots, cfg.hidden)
    users = torch.tensor([0, 1, 5])
    a, _ = model.score_candidates(comps, users)
    b, _ = loaded.score_candidates(comps, users)
    assert torch.equal(a, b)
    assert torch.equal(loaded.item_text, model.item_text)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    save_model(MatrixFactorization(MFConfig()), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["class"] = "os.system"
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="class"):
        load_model(tmp_path)


def test_progress_bar_respects_tqdm_disable(monkeypatch, capsys):
    batches, loss, x, y = _regression_task()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    Trainer(TrainConfig(epochs=2, progress=None)).fit(nn.Linear(4, 1), batches, loss)
    assert "Linear" not in capsys.readouterr().err
