"""The joint fine-tuning benchmark (frozen vs top layers vs LoRA) and its stage in the GPU check, on the CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
pytest.importorskip("peft")

from tiny_models import build_tiny_model  # noqa: E402

from textinterest.apps.benchmarks import gpu_check, joint_lora  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bench"))


def tiny_argv(folder, *extra: str) -> list[str]:
    return [
        "--dataset",
        "synthetic",
        "--users",
        "16",
        "--encoder",
        str(folder),
        "--max-length",
        "16",
        "--epochs",
        "1",
        "--seeds",
        "0",
        "--modes",
        "frozen,lora",
        "--lora-rank",
        "4",
        *extra,
    ]


def test_runs_are_measured_and_compared(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(tmp_path / "cache"))
    args = joint_lora.parse_args(tiny_argv(tiny))
    runs = [joint_lora.run_one(args, mode, 0) for mode in ("frozen", "lora")]
    frozen, lora = runs
    assert frozen["rating"]["encoder_trainable"] == 0
    # 2 blocks x (query, value) x rank 4 x (32 in + 32 out)
    assert lora["rating"]["encoder_trainable"] == lora["ranking"]["encoder_trainable"] == 2 * 2 * 4 * 64
    assert lora["rating"]["trainable"] == frozen["rating"]["trainable"] + 2 * 2 * 4 * 64
    for run in runs:
        assert run["peak_rss_mib"] >= run["rss_before_fit_mib"] > 0
        assert len(run["rating"]["epoch_seconds"]) == 1 and run["rating"]["epoch_seconds"][0] > 0
        assert 0.0 <= run["ranking"]["ndcg@10"] <= 1.0 and run["rating"]["rmse"] > 0
    assert frozen["per_user_ndcg"]["users"] == lora["per_user_ndcg"]["users"]

    # finished runs are read back from the runs file instead of being run again
    runs_file = tmp_path / "runs.jsonl"
    runs_file.write_text("".join(json.dumps(r) + "\n" for r in runs))

    def no_new_run(*_a, **_k):
        raise AssertionError("a finished run was started again")

    monkeypatch.setattr(joint_lora, "_worker", no_new_run)
    out = tmp_path / "record.json"
    assert joint_lora.main(tiny_argv(tiny, "--runs-file", str(runs_file), "--out", str(out))) == 0
    record = json.loads(out.read_text())
    assert record["per_mode"]["lora"]["encoder_trainable"] == 2 * 2 * 4 * 64
    test = record["paired_tests"]["lora vs frozen"]
    assert test["ndcg@10"]["a"] == pytest.approx(frozen["ranking"]["ndcg@10"])
    assert test["ndcg@10"]["b"] == pytest.approx(lora["ranking"]["ndcg@10"])
    assert test["rmse"]["b"] == pytest.approx(lora["rating"]["rmse"])
    assert "per_user_ndcg" not in record["runs"][0]


def test_unknown_mode_is_refused():
    with pytest.raises(SystemExit):
        joint_lora.parse_args(["--modes", "frozen,everything"])


def test_gpu_check_builds_the_lora_stage(tiny, tmp_path, monkeypatch):
    """The GPU check's LoRA stage: its options parse, and its models build on the CPU (no GPU here)."""
    assert "joint_lora" in gpu_check.parse_args([]).stages.split(",")
    gpu = joint_lora.parse_args(gpu_check.joint_lora_argv("enc", 3, [0, 1], None, "cuda", tmp_path / "x.json"))
    assert (gpu.device, gpu.max_length, gpu.train_layers, gpu.seeds, gpu.epochs) == ("cuda", 128, 0, "0,1", 3)
    assert gpu.users >= 10**6 and gpu.modes == "frozen,top-layers,lora"
    cpu = joint_lora.parse_args(gpu_check.joint_lora_argv(str(tiny), 1, [0], 12, "cpu", tmp_path / "x.json"))
    assert (cpu.device, cpu.max_length, cpu.train_layers, cpu.users) == ("cpu", 64, 1, 12)

    monkeypatch.setenv("TEXTINTEREST_CACHE", str(tmp_path / "cache"))
    cpu.dataset = "synthetic"
    data, split, features = joint_lora.prepare(cpu)
    for mode in joint_lora.MODES:
        model = joint_lora.make_model(cpu, mode, 0, "ranking", data, split, features)
        assert model.finetune == mode and model.train_config.device == "cpu" and model.max_length == 64
        assert model.lora.targets == ("query", "value") and model.train_layers == 1

    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        out = Path(argv[argv.index("--out") + 1])
        out.write_text(json.dumps({"per_mode": {}, "runs": [1]}))
        return 0

    monkeypatch.setattr(joint_lora, "main", fake_main)
    result = gpu_check.stage_joint_lora("enc", 2, [0], None, "cuda", tmp_path)
    assert "runs" not in result and result["wall_seconds"] >= 0
    assert seen["argv"][seen["argv"].index("--device") + 1] == "cuda"
