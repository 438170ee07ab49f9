"""The serving measurements: tie-aware hits, deletion effects, and the whole run on a tiny world."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from serving_world import MAX_LENGTH, root, small_world, trained

from textinterest.protocol.serving_eval import deletion_effects, hit_at_k, run_serving_evaluation


def test_hit_at_k_counts_ties_in_expectation():
    assert hit_at_k(np.array([3.0, 2.0, 1.0]), 2, k=2) == 0.0
    assert hit_at_k(np.array([3.0, 2.0, 1.0]), 1, k=2) == 1.0
    assert hit_at_k(np.array([1.0, 1.0, 1.0, 1.0]), 0, k=2) == pytest.approx(0.5)
    assert hit_at_k(np.array([5.0, -np.inf, 1.0, 1.0]), 3, k=2) == pytest.approx(0.5)


def test_deleting_the_last_review_equals_scoring_the_shorter_history():
    model = trained()[0]
    user, item = model.user_index.ids[6], model.item_index.ids[2]
    weights, effect, full = deletion_effects(model, user, item)
    u = 6
    n = int(model.seq.lengths[u])
    assert weights.shape == effect.shape == (min(n, model.config.max_history),)
    s = int(model.seq.starts[u])
    window = np.array([[u, s, s + n - 1, s + n - 1]])  # all but the last review
    batch, _, _, _ = model.history_batch(window)
    with torch.no_grad():
        comps, _, _ = model.module.final_components(batch)
        shorter, _ = model.module.score_pairs(comps, model.as_tensor([u + 1]), model.as_tensor([2 + 1]))
    assert effect[-1] == pytest.approx(abs(float(shorter[0]) - full), abs=1e-5)
    assert (effect >= 0).all() and effect.max() > 0


def test_run_on_a_tiny_world(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
    out = run_serving_evaluation(
        "synthetic",
        dataset=small_world(),
        encoder=str(root() / "encoder"),
        max_length=MAX_LENGTH,
        epochs=1,
        latency_repeats=3,
        interest_config={"hidden": 16, "mf_dim": 8},
        json_out=tmp_path / "out.json",
    )
    assert (tmp_path / "out.json").is_file()
    assert out["sizes"]["cold_users"] == 8 and out["unseen_items"]["item_text_source"] == "description"
    for m in (1, 2, 3):
        assert out["cold_start"][f"history_{m}"]["interest"]["n"] > 0
    assert out["faithfulness"]["n_users"] > 0 and out["faithfulness"]["mean_abs_change_top"] >= 0
    assert 0 < out["latency"]["known_user_ms"]["p50"] <= out["latency"]["known_user_ms"]["p95"]


def test_tables_render_every_case():
    from textinterest.protocol.serving_eval import format_tables

    summary = {"n": 4, "mean": 0.25, "ci95": [0.0, 0.5]}
    per = {"interest": summary, "popularity": {"n": 4, "mean": 0.0}, "text_profile": {"n": 4, "mean": None}}
    faith = {
        "n_users": 200,
        "mean_abs_change_top": 0.2,
        "mean_abs_change_random": 0.05,
        "ratio": 4.0,
        "ratio_ci95": [3.0, 5.0],
        "mean_abs_change_best_single": 0.3,
        "share_top_is_most_influential": 0.5,
        "mean_spearman_weight_vs_effect": 0.4,
    }
    times = {"p50": 10.0, "p95": 20.0}
    result = {
        "dataset": "toy",
        "cold_start": {f"history_{m}": per for m in (1, 2, 3)},
        "unseen_items": per,
        "faithfulness": faith,
        "latency": {"known_user_ms": times, "new_user_5_reviews_ms": times},
    }
    text = format_tables([result])
    assert "| toy | cold user, 2 review(s) | 4 | 0.250 | 0.000 | – |" in text
    assert "4.00 (3.00–5.00)" in text and "| toy | known user | 10 / 20 | – |" in text
