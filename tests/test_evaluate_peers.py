"""The peers, the protocols, the paired test and the slices inside ``run_evaluation`` (tiny made-up data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_experiments import FakeExtractor, _dataset

from textinterest.models import registry
from textinterest.protocol.experiments import run_evaluation

PEERS = ("sasrec", "gru4rec", "text-profile")


@pytest.fixture(scope="module")
def peer_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "evaluate_peers.json"
    models = (
        ("mf", "interest", "interest-no-text")
        + PEERS
        + ("sasrec-text",)
        + (("cornac-bpr", "cornac-mf") if registry.get("cornac-bpr").missing() is None else ())
    )
    result = run_evaluation(
        "made-up",
        dataset=_dataset(),
        extractor=FakeExtractor(),
        seeds=(0, 1),
        epochs=2,
        models=models,
        json_out=path,
        sentiment="none",
        interest_config={"hidden": 16, "mf_dim": 8},
    )
    return result, path


def test_peers_are_registered_with_an_equal_budget():
    tuned = [registry.get(n) for n in registry.names() if registry.get(n).grid]
    assert {"interest", "mf", "seq-lstm", "sasrec", "gru4rec", "cornac-bpr", "cornac-mf", "cornac-hft"} <= {
        s.name for s in tuned
    }
    assert len({len(s.grid) for s in tuned}) == 1
    for name in PEERS + ("cornac-bpr", "cornac-mf", "cornac-hft", "cornac-ctr"):
        assert name in registry.default_names()


def test_peers_in_the_table_with_tuning_significance_and_slices(peer_result):
    result, path = peer_result
    rows = {r["model"]: r for r in result["results"]}
    for name in PEERS + ("sasrec-text",):
        assert np.isfinite(rows[name]["ndcg@10"]) and "rmse" not in rows[name]
    # the text-aware SASRec runs with sasrec's choice, scored from the history extended by validation
    assert "sasrec-text" not in result["tuning"]["by_model"]
    assert result["protocol"] == "val-in-history"
    by_model = result["tuning"]["by_model"]
    for name in ("interest", "mf", "sasrec", "gru4rec"):
        assert by_model[name]["trials"] == 4 and len(by_model[name]["scores"]) == 4 * len(
            [t for t in result["tasks"] if t in registry.get(name).tasks]
        )
    sig = result["significance"]
    assert sig["ndcg@10"]["reference"] == "interest" and sig["ndcg@10"]["best_other"] not in (
        "interest",
        "interest-no-text",
    )
    assert sig["ndcg@10"]["ci_low"] <= sig["ndcg@10"]["diff"] <= sig["ndcg@10"]["ci_high"]
    assert sig["rmse"]["best_other"] in ("mf", "cornac-mf")
    assert rows["interest"]["ndcg@10"] == pytest.approx(sig["ndcg@10"]["a"])
    slices = result["slices"]["sasrec"]["ndcg@10"]
    assert slices["users<=3"]["n"] + slices["users>=10"]["n"] <= 30 and slices["items=0"]["n"] >= 0
    saved = json.loads(path.read_text())
    assert saved["significance"]["ndcg@10"]["best_other"] == sig["ndcg@10"]["best_other"]
    # interest against its own text ablation, paired on the same users
    text = result["significance_ablations"]["interest-no-text"]
    assert set(result["significance_ablations"]) == {"interest-no-text"}
    assert text["ndcg@10"]["best_other"] == "interest-no-text" and text["rmse"]["best_other"] == "interest-no-text"
    assert text["ndcg@10"]["b"] == pytest.approx(rows["interest-no-text"]["ndcg@10"])
    from textinterest.protocol.verdict import dataset_verdicts

    verdicts = {r["metric"]: r for r in dataset_verdicts(saved)}
    assert verdicts["ndcg@10"]["best_other"] == sig["ndcg@10"]["best_other"]
    assert verdicts["ndcg@10"]["text_verdict"] in ("win", "tie", "loss")


def test_train_history_protocol_keeps_the_validation_item_a_candidate():
    kw = dict(
        dataset=_dataset(),
        extractor=FakeExtractor(),
        seeds=(0,),
        epochs=1,
        tune=False,
        models=("Popularity",),
        tasks=("ranking",),
        sentiment="none",
    )
    new = run_evaluation("made-up", **kw)
    old = run_evaluation("made-up", protocol="train-history", **kw)
    assert new["protocol"] == "val-in-history" and old["protocol"] == "train-history"
    assert new["results"][0]["ndcg@10"] != old["results"][0]["ndcg@10"]
    with pytest.raises(ValueError, match="protocol"):
        run_evaluation("made-up", protocol="peek", **kw)
