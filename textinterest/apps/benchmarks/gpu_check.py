"""The GPU path in one run: embedding throughput (fp32 vs AMP), the full sentiment fine-tune,
and joint fine-tuning of the encoder with the interest model, on Amazon Musical Instruments:
the whole encoder against frozen features (``joint``), and frozen vs top layers vs LoRA adapters
(``joint_lora``, through :mod:`textinterest.apps.benchmarks.joint_lora`; needs the ``lora`` extra).

Every stage writes its figures into one JSON file (``--out``) as soon as it finishes, so a run
stopped by a time limit still reports what it measured. Usage on a CUDA machine::

    TEXTINTEREST_DATA=/path/to/data textinterest benchmark gpu_check --out gpu_results.json

``--encoder`` takes a model folder (default: the packaged all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from textinterest.apps.cli_types import OneLineParser
from textinterest.constants import TEXT_COL

DATASET = "amazon:Musical_Instruments"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="textinterest benchmark gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--encoder", default="default")
    p.add_argument("--out", default="gpu_results.json")
    p.add_argument("--stages", default="env,embed,sentiment,joint,joint_lora", help="comma-separated subset")
    p.add_argument("--sentiment-epochs", type=int, default=3)
    p.add_argument("--joint-epochs", type=int, default=8)
    p.add_argument("--seeds", default="0,1,2", help="seeds of the joint vs frozen comparison")
    p.add_argument("--max-users", type=int, default=None, help="joint stage on a user sample (dry runs)")
    p.add_argument("--dry-run-cpu", action="store_true", help="run the joint stage on the CPU to check the script")
    return p.parse_args(argv)


class Recorder:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.data: dict = {}

    def __setitem__(self, key: str, value: object) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=2, default=float))
        print(f"== {key}: {json.dumps(value, default=float)[:2000]}", flush=True)


def stage_env() -> dict:
    props = torch.cuda.get_device_properties(0)
    return {
        "device": torch.cuda.get_device_name(0),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "bf16": torch.cuda.is_bf16_supported(),
    }


def stage_embed(encoder: str, texts: list[str]) -> dict:
    """Reviews/s of the encoder on every review: fp32 vs bf16 autocast, plus the library's extractor."""
    from transformers import AutoModel, AutoTokenizer

    from textinterest.text.features import BertFeatureExtractor, default_model_path

    folder = default_model_path() if encoder == "default" else encoder
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).float().cuda().eval()
    order = np.argsort([len(t) for t in texts])
    result = {"n_texts": len(texts), "max_length": 128, "batch_size": 128}

    def run(amp: bool) -> tuple[float, np.ndarray]:
        out = np.empty((len(texts), model.config.hidden_size), np.float32)
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            for s in range(0, len(order), 128):
                idx = order[s : s + 128]
                enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt")
                enc = enc.to("cuda")
                hidden = model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out[idx] = ((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy()
        torch.cuda.synchronize()
        return len(texts) / (time.perf_counter() - start), out

    run(False)  # warm-up (kernels, allocator)
    fp32_rate, fp32 = run(False)
    amp_rate, amp = run(True)
    cos = (fp32 * amp).sum(1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(amp, axis=1))
    result.update(
        fp32_reviews_per_s=fp32_rate,
        bf16_reviews_per_s=amp_rate,
        bf16_speedup=amp_rate / fp32_rate,
        bf16_cosine_mean=float(cos.mean()),
        bf16_cosine_min=float(cos.min()),
    )
    extractor = BertFeatureExtractor(encoder, device="cuda", batch_size=128, use_cache=False, progress=False)
    extractor.embed(texts[:256])
    start = time.perf_counter()
    extractor.embed(texts)
    result["extractor_reviews_per_s"] = len(texts) / (time.perf_counter() - start)
    return result


def stage_sentiment(encoder: str, epochs: int, out_dir: Path) -> dict:
    """The full fine-tune of the sentiment classifier (all layers, AMP) and the TF-IDF baseline."""
    out = out_dir / "sentiment_finetune.json"
    cmd = [
        sys.executable,
        "-m",
        "textinterest.apps.benchmarks.sentiment",
        "--mode",
        "finetune",
        "--device",
        "cuda",
        "--epochs",
        str(epochs),
        "--model",
        encoder,
        "--json-out",
        str(out),
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    result["wall_seconds"] = time.perf_counter() - start
    return result


def stage_joint(encoder: str, epochs: int, seeds: list[int], max_users: int | None, device: str) -> dict:
    """Interest model on frozen features vs the same model with the encoder fine-tuned jointly."""
    from textinterest.protocol.experiments import run_evaluation

    start = time.perf_counter()
    result = run_evaluation(
        DATASET,
        seeds=seeds,
        encoder=encoder,
        device=device,
        tasks=("rating",),
        models=("interest", "interest+joint"),
        epochs=epochs,
        tune=False,
        max_users=max_users,
        joint_layers=1 if device == "cpu" else None,
        joint_max_length=64 if device == "cpu" else 128,
    )
    return {"results": result["results"], "timings": result.get("timings"), "seconds": time.perf_counter() - start}


def joint_lora_argv(
    encoder: str, epochs: int, seeds: list[int], max_users: int | None, device: str, out: Path
) -> list[str]:
    """Options of the ``joint_lora`` benchmark for this check: on a GPU every user, 128 tokens and the
    whole encoder as "top layers" (the full fine-tune against LoRA); on the CPU the CPU benchmark's
    setting (a user sample, 64 tokens, the top block)."""
    on_gpu = device != "cpu"
    users = max_users if max_users is not None else (10**9 if on_gpu else 200)
    return [
        "--dataset",
        DATASET,
        "--encoder",
        encoder,
        "--device",
        device,
        "--users",
        str(users),
        "--max-length",
        "128" if on_gpu else "64",
        "--epochs",
        str(epochs),
        "--seeds",
        ",".join(str(s) for s in seeds),
        "--train-layers",
        "0" if on_gpu else "1",
        "--out",
        str(out),
    ]


def stage_joint_lora(
    encoder: str, epochs: int, seeds: list[int], max_users: int | None, device: str, out_dir: Path
) -> dict:
    """Frozen vs top-layer vs LoRA joint fine-tuning (trainable parameters, time per epoch, memory, metrics)."""
    from textinterest.apps.benchmarks import joint_lora

    out = out_dir / "joint_lora.json"
    start = time.perf_counter()
    joint_lora.main(joint_lora_argv(encoder, epochs, seeds, max_users, device, out))
    result = json.loads(out.read_text(encoding="utf-8"))
    result["wall_seconds"] = time.perf_counter() - start
    return {k: v for k, v in result.items() if k != "runs"}


def main(argv: list[str] | None = None) -> int:
    """Run the selected stages on the GPU; returns 2 when there is no CUDA device."""
    args = parse_args(argv)
    if args.dry_run_cpu:
        rec = Recorder(args.out)
        seeds = [int(s) for s in args.seeds.split(",")]
        stages = args.stages.split(",")
        if "joint" in stages:
            rec["joint"] = stage_joint(args.encoder, args.joint_epochs, seeds, args.max_users, "cpu")
        if "joint_lora" in stages:
            out_dir = Path(args.out).resolve().parent
            rec["joint_lora"] = stage_joint_lora(args.encoder, args.joint_epochs, seeds, args.max_users, "cpu", out_dir)
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: this script measures the GPU path", file=sys.stderr)
        return 2
    rec = Recorder(args.out)
    stages = args.stages.split(",")
    if "env" in stages:
        rec["env"] = stage_env()
    if "embed" in stages:
        from textinterest.datasets import load_dataset

        texts = load_dataset(DATASET).interactions[TEXT_COL].tolist()
        rec["embed"] = stage_embed(args.encoder, texts)
    if "sentiment" in stages:
        rec["sentiment"] = stage_sentiment(args.encoder, args.sentiment_epochs, Path(args.out).resolve().parent)
    if "joint" in stages:
        seeds = [int(s) for s in args.seeds.split(",")]
        rec["joint"] = stage_joint(args.encoder, args.joint_epochs, seeds, args.max_users, "cuda")
    if "joint_lora" in stages:
        seeds = [int(s) for s in args.seeds.split(",")]
        out_dir = Path(args.out).resolve().parent
        rec["joint_lora"] = stage_joint_lora(args.encoder, args.joint_epochs, seeds, args.max_users, "cuda", out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
