"""The benchmarks subpackage: one module per benchmark, reachable from the CLI and with ``python -m``."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from textinterest.apps import benchmarks, cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", benchmarks.NAMES)
def test_every_benchmark_is_a_module_with_main(name):
    module = importlib.import_module(f"textinterest.apps.benchmarks.{name}")
    assert callable(module.main)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0


def test_python_dash_m_runs_a_benchmark_without_path_tricks(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "textinterest.apps.benchmarks.embed", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "--repeats" in out.stdout


def test_cli_routes_to_the_benchmark_and_checks_its_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["benchmark", "embed", "--n", "-5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--n: expected an integer >= 1, got '-5'" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        cli.main(["benchmark", "no-such-benchmark"])
    assert exc.value.code == 2
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmarks.run("no-such-benchmark")


def test_no_sys_path_manipulation_anywhere():
    pattern = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*=")
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("textinterest", "benchmarks", "tests", "notebooks")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in (".py", ".ipynb")
        and ".ipynb_checkpoints" not in p.parts
        and pattern.search(p.read_text())
        and p.name != "test_benchmarks.py"
    ]
    assert offenders == []


def test_benchmarks_doc_sits_beside_the_results_and_links_resolve():
    doc = ROOT / "benchmarks" / "BENCHMARKS.md"
    assert doc.is_file() and not (ROOT / "BENCHMARKS.md").exists()
    for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
        if not target.startswith("http"):
            assert (doc.parent / target).exists(), target


def test_cache_verify_on_a_tiny_model(tmp_path, monkeypatch):
    from tiny_models import build_tiny_model

    monkeypatch.delenv("TEXTINTEREST_DATA", raising=False)
    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "record.json"
    argv = [
        "--model",
        str(model),
        "--n",
        "12",
        "--max-length",
        "32",
        "--large",
        "5000",
        "--repeats",
        "2",
        "--output",
        str(out),
    ]
    assert benchmarks.run("cache_verify", argv) == 0
    record = json.loads(out.read_text())
    assert record["warm_all_hits"] is True
    assert len(record["cold_s"]) == len(record["warm_s"]) == 2
    assert record["read_large_median_s"] > 0


def test_sasrec_states_times_both_paths_and_they_score_alike(tmp_path):
    from textinterest.apps.benchmarks.sasrec_states import compare
    from textinterest.datasets import load_dataset

    record = compare(
        "synthetic", hidden=(8,), epochs=1, repeats=2, dataset=load_dataset("synthetic", n_users=30, n_items=20)
    )
    width = record["widths"]["8"]
    assert record["batch_size"] == 256  # SASRec's own training settings, not TrainConfig's generic ones
    assert [len(width["seconds"][s]) for s in ("all", "last")] == [2, 2]
    assert all(s > 0 for s in width["seconds"]["all"] + width["seconds"]["last"])
    assert width["ratio_last_to_all"] == width["median_seconds"]["last"] / width["median_seconds"]["all"]
    assert width["max_score_difference"] < 1e-4  # the same function of the same weights
    assert 1 <= record["mean_example_length"] and 0 < record["real_step_share"] <= 1


def test_sasrec_states_padding_counts_real_steps_of_batches_padded_to_their_longest():
    from textinterest.apps.benchmarks.sasrec_states import padding

    # one batch of 4: lengths 1 + 2 + 3 + 10 = 16 real steps in 4 x 10 padded ones
    assert padding(np.array([1, 2, 3, 10]), batch_size=4) == {"mean_example_length": 4.0, "real_step_share": 0.4}
    # batches of 1 carry no padding
    assert padding(np.array([1, 2, 3, 10]), batch_size=1)["real_step_share"] == 1.0


def test_record_diff_pairs_rows_by_seed_and_keeps_expected_changes_apart():
    from textinterest.apps.benchmarks.record_diff import compare

    def record(sasrec, mf):
        runs = [{"model": "sasrec", "seed": s, "ndcg@10": v} for s, v in enumerate(sasrec)]
        runs += [{"model": "mf", "seed": s, "ndcg@10": v, "rmse": 1.0} for s, v in enumerate(mf)]
        return {"runs": runs[::-1], "environment": {"cpu": "x"}}

    diff = compare(record([0.1, 0.2], [0.3, 0.4]), record([0.1, 0.25], [0.3, 0.4 + 1e-7]), expect_changed=["sasrec"])
    sasrec = diff["models"]["sasrec"]["ndcg@10"]
    assert not sasrec["identical"] and sasrec["max_abs"] == pytest.approx(0.05)
    assert sasrec["mean_difference"] == pytest.approx(0.025) and sasrec["mean_abs"] == pytest.approx(0.025)
    assert diff["models"]["mf"]["rmse"]["identical"] and not diff["models"]["mf"]["ndcg@10"]["identical"]
    assert diff["unchanged_models"] == {"identical": [], "moved": {"mf": pytest.approx(1e-7)}}
    same = compare(record([0.1], [0.3]), record([0.1], [0.3]))
    assert same["unchanged_models"]["identical"] == ["mf", "sasrec"]
    with pytest.raises(ValueError, match="share no"):
        compare(record([0.1], []), {"runs": [{"model": "x", "seed": 0, "ndcg@10": 1.0}]})


def test_record_diff_lists_the_paired_tests_whose_verdict_changed():
    from textinterest.apps.benchmarks.record_diff import verdict_changes

    def test(low, high, p):
        return {"diff": (low + high) / 2, "ci_low": low, "ci_high": high, "p_wilcoxon": p, "best_other": "sasrec"}

    old = {
        "significance": {"ndcg@10": test(-0.03, -0.01, 0.001), "rmse": test(0.01, 0.02, 0.001)},
        "significance_ablations": {"interest-k1": {"mrr": test(-0.001, 0.008, 0.06)}},
    }
    new = {
        "significance": {"ndcg@10": test(-0.02, -0.005, 0.01), "rmse": test(-0.01, 0.02, 0.3)},
        "significance_ablations": {"interest-k1": {"mrr": test(0.0005, 0.01, 0.03)}},
    }
    out = verdict_changes(old, new)
    assert out["compared"] == 3
    changed = {(c["comparison"], c["metric"]): c["verdicts"] for c in out["changed"]}
    # NDCG@10 stays a loss; RMSE (lower is better) goes from a loss to a tie; the ablation's MRR from a tie to a win
    assert changed == {("main", "rmse"): ["loss", "tie"], ("interest-k1", "mrr"): ["tie", "win"]}


def test_stop_at_replays_the_patience_rule_on_a_curve():
    from textinterest.apps.benchmarks.early_stopping import stop_at

    curve = [0.10, 0.09, 0.08, 0.11, 0.12, 0.12, 0.11, 0.10]
    # two epochs without improvement after epoch 1: stops after epoch 3 keeping epoch 1
    assert stop_at(curve, 2) == {"best_epoch": 1, "best": 0.10, "epochs_run": 3, "stopped": True}
    # three: epoch 4 improves, then 0.12 ties (not an improvement), 0.11, 0.10 -> stops after epoch 8
    assert stop_at(curve, 3) == {"best_epoch": 5, "best": 0.12, "epochs_run": 8, "stopped": True}
    assert stop_at(curve, 4) == {"best_epoch": 5, "best": 0.12, "epochs_run": 8, "stopped": False}
    assert stop_at(curve, 0)["epochs_run"] == len(curve)  # 0 never stops
    # an improvement smaller than min_delta does not count, as in the trainer
    assert stop_at([0.10, 0.10005, 0.09], 1, min_delta=1e-4) == stop_at([0.10, 0.09, 0.09], 1)
    assert stop_at([0.10, 0.10005, 0.09], 1)["best_epoch"] == 2
    # as in the trainer, the first epoch is kept even when its metric is not a number (and nothing beats NaN)
    assert stop_at([float("nan"), 0.2, 0.3], 1)["best_epoch"] == 1
    with pytest.raises(ValueError, match="patience"):
        stop_at(curve, -1)


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_replay_matches_what_the_trainer_does_with_that_patience(patience):
    from textinterest.apps.benchmarks.early_stopping import curves
    from textinterest.datasets import load_dataset
    from textinterest.models import registry

    data = load_dataset("synthetic", n_users=40, n_items=25)
    record = curves("synthetic", ["seq-lstm"], seeds=[0], patience=[patience], epochs=12, dataset=data)
    run = record["models"]["seq-lstm"]["runs"][0]
    assert record["fit_patience"] == patience + 5 and len(run["curve"]) >= 1
    # the same fit with the patience itself stops where the replay says, keeping the same epoch and metric
    from textinterest.datasets.splits import split_interactions

    split = split_interactions(data.interactions, how="leave-last-out", seed=0)
    spec = registry.get("seq-lstm")
    config = spec.train_config(seed=0, progress=False, epochs=12, patience=patience)
    model = spec.build(registry.BuildContext(task="ranking", seed=0, train_config=config, params={}))
    model.fit(split.train, split.val)
    assert record["min_delta"] == config.min_delta > 0  # replayed with the trainer's own threshold
    replay = run["by_patience"][str(patience)]
    assert len(model.train_result_.history) == replay["epochs_run"]
    assert model.train_result_.best_epoch + 1 == replay["best_epoch"]
    assert model.train_result_.best_metric == replay["best"]
    assert [e["val"] for e in model.train_result_.history] == run["curve"][: replay["epochs_run"]]


def test_seq_lstm_default_patience_outlasts_the_plateau_measured_on_real_data():
    from textinterest.apps.benchmarks.early_stopping import stop_at
    from textinterest.models import registry

    # validation NDCG@10 of seq-lstm, Musical Instruments, seed 1 (its best setting): a peak at epoch 1, a
    # plateau, then a climb past it from epoch 10
    curve = [0.0487, 0.0462, 0.0444, 0.0448, 0.0457, 0.0479, 0.0465, 0.0451, 0.0455, 0.0487, 0.0531, 0.0537]
    patience = registry.get("seq-lstm").train_config().patience
    assert stop_at(curve, 3)["best_epoch"] == 1  # the patience before: stopped on the plateau
    assert stop_at(curve, patience)["best"] > max(curve[:10])  # now the run reaches the climb


def test_early_stopping_replays_a_saved_record_without_fitting(tmp_path):
    from textinterest.apps.benchmarks.early_stopping import main

    saved = {
        "dataset": "d",
        "command": "textinterest benchmark early_stopping d --seeds 0",
        "models": {"seq-lstm": {"params": {}, "runs": [{"seed": 0, "curve": [0.10, 0.10005, 0.09, 0.12]}]}},
    }  # no min_delta: made with the trainer's default (1e-4)
    source, out = tmp_path / "saved.json", tmp_path / "replayed.json"
    source.write_text(json.dumps(saved))
    assert main(["d", "--from-record", str(source), "--patience", "2,3", "--output", str(out)]) == 0
    record = json.loads(out.read_text())
    runs = record["models"]["seq-lstm"]["runs"][0]["by_patience"]
    assert runs["2"] == {"best_epoch": 1, "best": 0.10, "epochs_run": 3, "stopped": True}  # 0.10005 is no gain
    assert runs["3"]["best_epoch"] == 4 and record["min_delta"] == 1e-4
    assert record["fitted_by"] == saved["command"] and "--from-record" in record["command"]
