"""Joint fine-tuning of the encoder: frozen vs top layers vs LoRA adapters (trainable parameters,
time per epoch, peak memory, NDCG@10 and RMSE).

`JointInterestRecommender` trains the interest model with its text encoder ``--modes``:
``frozen`` (the review vectors are fixed inputs), ``top-layers`` (the top ``--train-layers``
blocks train whole) and ``lora`` (rank-``--lora-rank`` adapters on ``--lora-targets`` of every
block, or of the top ``--lora-layers``). Every (seed, mode) runs in its own process, so that its
peak resident memory (``ru_maxrss``) is its own; the modes run in a rotated order per seed so
that load drift on a shared machine does not always fall on the same mode.

What one run is: a seeded sample of ``--users`` users, the leave-last-out split, review vectors
from the same encoder at ``--max-length`` tokens (sentiment inputs are zeros: sentiment is not
what is compared), a rating model and a ranking model per mode, each trained ``--epochs`` epochs
(the epoch with the best validation score is kept), and the test split scored from the training
history (the "train-history" protocol: the validation item stays a candidate). NDCG@10 ranks
every item. Paired tests compare the modes on the per-user metrics averaged over the seeds.

Usage (real data through TEXTINTEREST_DATA; "synthetic" needs nothing):

    textinterest benchmark joint_lora --dataset amazon:Musical_Instruments --users 300 --max-length 64 \
        --epochs 2 --seeds 0,1,2 --out benchmarks/results/joint_lora.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textinterest.apps.cli_types import OneLineParser
from textinterest.constants import RATING_COL, USER_COL

MODES = ("frozen", "top-layers", "lora")
TASKS = ("rating", "ranking")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="textinterest benchmark joint_lora", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--users", type=int, default=300, help="a seeded sample of this many users")
    p.add_argument("--encoder", default="default")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--train-layers", type=int, default=1, help="top blocks of 'top-layers' (0: every block)")
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-dropout", type=float, default=0.1)
    p.add_argument("--lora-targets", default="query,value")
    p.add_argument("--lora-layers", type=int, default=None, help="adapt only the top N blocks (default: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="also write the JSON record to this file")
    p.add_argument(
        "--runs-file",
        default=None,
        help="JSON lines of finished (mode, seed) runs: each new run is appended, and runs already there are reused",
    )
    p.add_argument("--worker", nargs=2, metavar=("MODE", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        p.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    return args


# --------------------------------------------------------------------------- one (mode, seed)


def prepare(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The data set, its split on the user sample, and the text features of the training rows."""
    from textinterest.datasets import load_dataset
    from textinterest.datasets.splits import split_interactions
    from textinterest.protocol.experiments import build_text_features
    from textinterest.text.features import BertFeatureExtractor

    data = load_dataset(args.dataset)
    interactions = data.interactions
    users = pd.Series(interactions[USER_COL].unique())
    if len(users) > args.users:
        users = users.sample(args.users, random_state=0)  # one sample for every seed and mode
    interactions = interactions[interactions[USER_COL].isin(set(users))]
    split = split_interactions(interactions, "leave-last-out", seed=0)
    extractor = BertFeatureExtractor(args.encoder, max_length=args.max_length, device=args.device, progress=False)
    features = build_text_features(split.train, extractor, items=data.items)
    features.sentiment = np.zeros(len(split.train), dtype=np.float32)
    return data, split, features


def make_model(args: argparse.Namespace, mode: str, seed: int, task: str, data: Any, split: Any, features: Any) -> Any:
    """The joint model of one mode, with the registry's interest settings and a bounded epoch count."""
    from textinterest.models.cf import MFRecommender
    from textinterest.models.joint import JointInterestRecommender, LoraSettings
    from textinterest.models.registry import interest_base_config
    from textinterest.training import TrainConfig

    l2, bias_l2 = MFRecommender.DEFAULT_REG[task]
    config = replace(interest_base_config(split.train, data), l2=l2, bias_l2=bias_l2)
    lora = LoraSettings(
        rank=args.lora_rank,
        alpha=args.lora_alpha,
        dropout=args.lora_dropout,
        targets=tuple(args.lora_targets.split(",")),
        layers=args.lora_layers,
    )
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=3e-3,
        patience=0,
        seed=seed,
        device=args.device,
        progress=False,
    )
    return JointInterestRecommender(
        config,
        features,
        task=task,
        train_config=train_config,
        encoder=args.encoder,
        finetune=mode,
        train_layers=args.train_layers,
        lora=lora,
        max_length=args.max_length,
        name=f"joint:{mode}",
    )


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_one(args: argparse.Namespace, mode: str, seed: int) -> dict[str, Any]:
    """Fit the rating and ranking models of one mode and seed; figures plus per-user test values."""
    import torch

    from textinterest.significance import per_user_ranking, per_user_squared_error

    data, split, features = prepare(args)
    out: dict[str, Any] = {"mode": mode, "seed": seed, "rss_before_fit_mib": _rss_mib()}
    for task in TASKS:
        model = make_model(args, mode, seed, task, data, split, features)
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(split.train, split.val)
        fit_seconds, fit_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        history = model.train_result_.history
        total = sum(p.numel() for p in model.module.parameters())
        trainable = sum(p.numel() for p in model.module.parameters() if p.requires_grad)
        rec = {
            "fit_seconds": fit_seconds,
            "fit_cpu_seconds": fit_cpu_seconds,  # every thread of the process; less moved by other jobs than wall time
            "epoch_seconds": [h["seconds"] for h in history],
            "best_epoch": model.train_result_.best_epoch,
            "encoder_trainable": int(model.n_encoder_trainable_),
            "trainable": int(trainable),
            "parameters": int(total),
            "frozen_cache": model.frozen_cache_status_,
        }
        if task == "rating":
            test = split.test[split.test[RATING_COL].notna()]
            users, sq = per_user_squared_error(test[USER_COL].to_numpy(), test[RATING_COL], model.predict(test))
            rec["rmse"] = float(np.sqrt(sq.mean()))
            out["per_user_sq"] = {"users": [str(u) for u in users], "values": sq.tolist()}
        else:
            ids = model.user_index.ids
            users, per_user = per_user_ranking(
                lambda u, m=model, i=ids: m.score_items(i[u]),
                split.train,
                split.test,
                model.user_index,
                model.item_index,
                ks=(10,),
            )
            rec["ndcg@10"] = float(per_user["ndcg@10"].mean())
            out["per_user_ndcg"] = {"users": [str(u) for u in users], "values": per_user["ndcg@10"].tolist()}
        out[task] = rec
        del model
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if args.device != "cpu" and torch.cuda.is_available():
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    out["threads"] = torch.get_num_threads()
    out["n"] = {"users": int(split.train[USER_COL].nunique()), "train_texts": len(split.train)}
    return out


# --------------------------------------------------------------------------- the whole comparison


def _worker(args: argparse.Namespace, argv: list[str], mode: str, seed: int) -> dict[str, Any]:
    """Run one (mode, seed) in a fresh process and read back its record."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "record.json"
        cmd = [sys.executable, "-m", "textinterest.apps.benchmarks.joint_lora", *argv]
        cmd += ["--worker", mode, str(seed), "--worker-out", str(path)]
        subprocess.run(cmd, check=True)
        return json.loads(path.read_text(encoding="utf-8"))


def _without_runs_file(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--runs-file":
            skip = True
        elif not arg.startswith("--runs-file="):
            out.append(arg)
    return out


def _aligned(records: list[dict[str, Any]], key: str) -> tuple[list[str], np.ndarray]:
    """Per-user values of several runs on the same users, averaged over the runs."""
    users = records[0][key]["users"]
    if any(r[key]["users"] != users for r in records):
        raise RuntimeError(f"{key}: runs were scored on different users")
    return users, np.mean([r[key]["values"] for r in records], axis=0)


def summarize(runs: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    """Medians per mode over seeds, and paired tests between the modes (per-user values averaged over seeds)."""
    from textinterest.significance import paired_test

    summary: dict[str, Any] = {}
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        summary[mode] = {
            "seeds": [r["seed"] for r in mine],
            "encoder_trainable": mine[0]["rating"]["encoder_trainable"],
            "trainable": mine[0]["rating"]["trainable"],
            "median_epoch_seconds": {
                t: statistics.median(s for r in mine for s in r[t]["epoch_seconds"]) for t in TASKS
            },
            "median_fit_seconds": {t: statistics.median(r[t]["fit_seconds"] for r in mine) for t in TASKS},
            "median_fit_cpu_seconds": {t: statistics.median(r[t]["fit_cpu_seconds"] for r in mine) for t in TASKS}
            if all("fit_cpu_seconds" in r["rating"] for r in mine)
            else None,
            "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in mine),
            "median_rss_before_fit_mib": statistics.median(r["rss_before_fit_mib"] for r in mine),
            "median_peak_gpu_mib": (
                statistics.median(r["peak_gpu_mib"] for r in mine) if "peak_gpu_mib" in mine[0] else None
            ),
            "rmse": [r["rating"]["rmse"] for r in mine],
            "ndcg@10": [r["ranking"]["ndcg@10"] for r in mine],
            "median_rmse": statistics.median(r["rating"]["rmse"] for r in mine),
            "median_ndcg@10": statistics.median(r["ranking"]["ndcg@10"] for r in mine),
            "frozen_cache": mine[0]["rating"]["frozen_cache"],
        }
    tests: dict[str, Any] = {}
    for i, a in enumerate(modes):
        for b in modes[i + 1 :]:
            ra = [r for r in runs if r["mode"] == a]
            rb = [r for r in runs if r["mode"] == b]
            pair: dict[str, Any] = {}
            for key, metric, statistic in (("per_user_ndcg", "ndcg@10", "mean"), ("per_user_sq", "rmse", "rmse")):
                ua, va = _aligned(ra, key)
                ub, vb = _aligned(rb, key)
                if ua != ub:
                    raise RuntimeError(f"{a} and {b} were scored on different users")
                pair[metric] = paired_test(va, vb, statistic=statistic)
            tests[f"{b} vs {a}"] = {m: {**v, "a_mode": a, "b_mode": b} for m, v in pair.items()}
    return {"per_mode": summary, "paired_tests": tests}


def main(argv: list[str] | None = None) -> int:
    """Run every (seed, mode) in its own process, print the JSON record and optionally write it to ``--out``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        record = run_one(args, args.worker[0], int(args.worker[1]))
        Path(args.worker_out).write_text(json.dumps(record), encoding="utf-8")
        return 0
    from importlib.metadata import version

    from textinterest.apps.benchmarks.embed import machine_info
    from textinterest.utils import atomic_write_text

    modes = args.modes.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if args.runs_file and Path(args.runs_file).is_file():
        for line in Path(args.runs_file).read_text(encoding="utf-8").splitlines():
            if line.strip():
                run = json.loads(line)
                done[(run["mode"], run["seed"])] = run
    runs = []
    start = time.perf_counter()
    for k, seed in enumerate(seeds):
        for mode in modes[k % len(modes) :] + modes[: k % len(modes)]:  # rotated order per seed
            if (mode, seed) in done:
                runs.append(done[(mode, seed)])
                continue
            run = _worker(args, _without_runs_file(argv), mode, seed)
            runs.append(run)
            if args.runs_file:
                with open(args.runs_file, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(run) + "\n")
            print(
                f"seed {seed} {mode}: rmse {run['rating']['rmse']:.4f} ndcg@10 {run['ranking']['ndcg@10']:.4f} "
                f"epoch {statistics.median(run['rating']['epoch_seconds']):.1f} s, peak {run['peak_rss_mib']:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
    record = {
        "benchmark": "joint fine-tuning of the encoder: frozen vs top layers vs LoRA",
        "command": "textinterest benchmark joint_lora " + " ".join(argv),
        "dataset": args.dataset,
        "users": runs[0]["n"]["users"],
        "train_texts": runs[0]["n"]["train_texts"],
        "settings": {
            k: getattr(args, k)
            for k in (
                "encoder",
                "max_length",
                "epochs",
                "batch_size",
                "train_layers",
                "lora_rank",
                "lora_alpha",
                "lora_dropout",
                "lora_targets",
                "lora_layers",
            )
        },
        "protocol": "leave-last-out, train-history (test scored from the training history), sentiment inputs zero",
        **summarize(runs, modes),
        "runs": [{k: v for k, v in r.items() if not k.startswith("per_user")} for r in runs],
        "total_seconds": time.perf_counter() - start,
        "environment": {
            **machine_info(),
            "device": args.device,
            "worker_threads": runs[0]["threads"],
            "peft": version("peft"),
            "load_average_at_start": load_at_start,
        },
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
