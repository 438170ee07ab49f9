"""The run's memo of torch fits: keys, reuse, and the same figures with it as without."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from textinterest.models import fit_memo
from textinterest.models.fit_memo import FitMemo, model_settings
from textinterest.models.peers.sequential import SASRecRecommender
from textinterest.training import TrainConfig


def _frame(n_users: int = 12, n_items: int = 9, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"user_id": f"u{u}", "item_id": f"i{rng.integers(n_items)}", "rating": float(rng.integers(1, 6))}
        | {"timestamp": t}
        for u in range(n_users)
        for t in range(5)
    ]
    return pd.DataFrame(rows)


def _sasrec(seed: int = 0, epochs: int = 2) -> SASRecRecommender:
    return SASRecRecommender(hidden=8, inner=16, train_config=TrainConfig(epochs=epochs, seed=seed, device="cpu"))


def test_the_key_follows_settings_seed_and_rows(tmp_path):
    memo = FitMemo(tmp_path)
    train = _frame()
    key = memo.key(_sasrec(), train, None)
    assert key == memo.key(_sasrec(), train.copy(), None)
    assert key != memo.key(_sasrec(seed=1), train, None)
    assert key != memo.key(_sasrec(epochs=3), train, None)
    assert key != memo.key(_sasrec(), _frame(seed=1), None)
    assert key != memo.key(_sasrec(), train, train.iloc[:3])
    changed = train.copy()
    changed.loc[0, "rating"] = 5.5
    assert key != memo.key(_sasrec(), changed, None)
    # arrays count by their contents; a model holding any other object is never memoised
    holding, other = _sasrec(), _sasrec()
    holding.vectors, other.vectors = np.zeros(3), np.zeros(3)
    assert memo.key(holding, train, None) == memo.key(other, train, None)
    other.vectors[1] = 1e-9
    assert memo.key(holding, train, None) != memo.key(other, train, None)
    holding.encoder = object()
    assert model_settings(holding) is None and memo.key(holding, train, None) is None


def test_a_second_identical_fit_is_taken_from_the_memo(tmp_path, monkeypatch):
    train = _frame()
    with fit_memo.active(tmp_path) as memo:
        first = _sasrec().fit(train)
        # the second fit must not train: make training fail if it does
        monkeypatch.setattr(SASRecRecommender, "_fit", lambda *a: pytest.fail("trained again"))
        again = _sasrec().fit(train)
        assert memo.counts() == {"fitted": 1, "reused": 1, "unstored": 0}
    users = list(first.user_index.ids)
    np.testing.assert_array_equal(first.score_items(users), again.score_items(users))
    assert again.train_result_.best_epoch == first.train_result_.best_epoch
    assert fit_memo.current() is None  # the memo is active only inside the block


def test_without_an_active_memo_nothing_is_stored(tmp_path):
    _sasrec().fit(_frame())
    assert not list(tmp_path.iterdir())


def test_evaluate_reuses_the_blends_sasrec_fits_and_reports_the_same_figures():
    from tests.test_experiments import FakeExtractor, _dataset
    from textinterest.apps.benchmarks.fit_memo import compare

    record = compare(
        "made-up",
        dataset=_dataset(n_users=20, items=True),
        extractor=FakeExtractor(),
        seeds=(0, 1),
        epochs=2,
        tasks=("ranking",),
        sentiment="none",
        interest_config={"hidden": 16, "mf_dim": 8},
    )
    off, on = record["runs"]
    assert record["identical_metrics"] and len(record["metrics"]) == 6
    assert all(np.isfinite(row["ndcg@10"]) for row in record["metrics"])
    assert off["fit_memo"] is None
    # per seed, SASRec is fitted early-stopping on train and refitted on train + validation, and the blend's
    # interest part likewise: the blend takes both SASRec fits from `sasrec`'s, and its ablation both again
    assert on["fit_memo"]["reused"] >= 8, on["fit_memo"]


def test_a_process_waits_for_another_live_processs_fit_of_the_same_key(tmp_path, monkeypatch):
    monkeypatch.setattr(fit_memo, "POLL_SECONDS", 0.05)
    memo = FitMemo(tmp_path)
    model, train = _sasrec(), _frame()
    key = memo.key(model, train, None)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f"{key}.lock").write_text(str(other.pid))  # a live process is fitting this key
        fitted = _sasrec().fit(train)
        timer = threading.Timer(0.5, lambda: FitMemo(tmp_path).store(key, dict(vars(fitted))))
        timer.start()
        state = memo.load(key)  # waits for that process's entry instead of claiming the key
        timer.join()
    finally:
        other.kill()
        other.wait()
    assert state is not None and state["train_result_"].best_epoch == fitted.train_result_.best_epoch
    assert memo.counts() == {"fitted": 1, "reused": 1, "unstored": 0}


def test_a_fit_that_cannot_be_pickled_stands_and_is_not_stored(tmp_path):
    train = _frame()
    with fit_memo.active(tmp_path) as memo:
        model = _sasrec()
        key = memo.key(model, train, None)
        model.fit(train)
        assert memo.store(key, {**vars(model), "hook": lambda: None}) is False  # a local function: unpicklable
        assert memo.counts() == {"fitted": 1, "reused": 0, "unstored": 1}
        assert not (tmp_path / f"{key}.lock").exists() and not list(tmp_path.glob("*.tmp"))
        assert memo.load(key) is not None  # the first, picklable fit is still the entry


def test_the_claim_of_a_process_that_stopped_is_taken_over(tmp_path):
    memo = FitMemo(tmp_path)
    key = memo.key(_sasrec(), _frame(), None)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f"{key}.lock").write_text(gone.stdout.strip())
    assert memo.load(key) is None  # nothing stored: this process now holds the claim and fits
    assert (tmp_path / f"{key}.lock").read_text() == str(os.getpid())
    memo.release(key)
    assert not (tmp_path / f"{key}.lock").exists()
