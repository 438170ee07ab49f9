"""Joint fine-tuning with and without the frozen-block cache: time per fit, and the result.

`JointInterestRecommender` fine-tunes the top `--train-layers` blocks of the encoder together
with the interest model. With `cache_frozen_layers=True` (the default) the frozen lower blocks
run once per text; without it they run again in every step and every refresh. This script fits
both variants on the same users, alternating them `--repeats` times in one process, and reports
the median seconds per fit, their ratio, and the validation/test RMSE of each (the cached
variant runs the frozen blocks without dropout, so the numbers may differ a little).

Usage (real data through TEXTINTEREST_DATA; "synthetic" needs nothing):

    textinterest benchmark joint_frozen_cache --dataset amazon:Musical_Instruments --users 150 \
        --max-length 128 --epochs 2 --repeats 3 --out benchmarks/results/joint_frozen_cache.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from textinterest.apps.cli_types import OneLineParser
from textinterest.constants import RATING_COL, USER_COL


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="textinterest benchmark joint_frozen_cache", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--users", type=int, default=150, help="a seeded sample of this many users")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--train-layers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON record to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fit both variants, print the JSON record and optionally write it to ``--out``."""
    args = parse_args(argv)
    import torch

    from textinterest.datasets import load_dataset
    from textinterest.datasets.splits import split_interactions
    from textinterest.evaluation import rmse
    from textinterest.models.interest import InterestConfig
    from textinterest.models.joint import JointInterestRecommender
    from textinterest.protocol.experiments import build_text_features
    from textinterest.text.features import BertFeatureExtractor
    from textinterest.training import TrainConfig

    data = load_dataset(args.dataset)
    interactions = data.interactions
    users = pd.Series(interactions[USER_COL].unique())
    if len(users) > args.users:
        users = users.sample(args.users, random_state=args.seed)
    interactions = interactions[interactions[USER_COL].isin(set(users))]
    split = split_interactions(interactions, "leave-last-out", seed=args.seed)
    extractor = BertFeatureExtractor("default", max_length=args.max_length, device=args.device)
    features = build_text_features(split.train, extractor, items=data.items)
    features.sentiment = np.zeros(len(split.train), dtype=np.float32)  # sentiment is not what is timed

    seconds: dict[str, list[float]] = {"cached": [], "uncached": []}
    quality: dict[str, dict[str, float]] = {}
    status = ""
    for repeat in range(args.repeats):
        for variant in ("cached", "uncached") if repeat % 2 == 0 else ("uncached", "cached"):
            model = JointInterestRecommender(
                InterestConfig(),
                features,
                task="rating",
                train_config=TrainConfig(
                    epochs=args.epochs, batch_size=16, seed=args.seed, device=args.device, patience=0, progress=False
                ),
                train_layers=args.train_layers,
                max_length=args.max_length,
                cache_frozen_layers=variant == "cached",
            )
            start = time.perf_counter()
            model.fit(split.train, split.val)
            seconds[variant].append(time.perf_counter() - start)
            if variant == "cached":
                status = model.frozen_cache_status_
            test = split.test[split.test[RATING_COL].notna()]
            quality[variant] = {
                "val_rmse": float(rmse(split.val[RATING_COL], model.predict(split.val))),
                "test_rmse": float(rmse(test[RATING_COL], model.predict(test))),
            }
            print(f"repeat {repeat} {variant}: {seconds[variant][-1]:.1f} s", file=sys.stderr)

    medians = {k: statistics.median(v) for k, v in seconds.items()}
    record = {
        "benchmark": "joint fine-tuning, frozen-block cache on vs off",
        "command": "textinterest benchmark joint_frozen_cache " + " ".join(argv if argv is not None else sys.argv[1:]),
        "dataset": args.dataset,
        "users": int(interactions[USER_COL].nunique()),
        "train_texts": len(split.train),
        "max_length": args.max_length,
        "train_layers": args.train_layers,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "seconds": seconds,
        "median_seconds": medians,
        "speedup_median": medians["uncached"] / medians["cached"],
        "cache_status": status,
        "quality_last_repeat": quality,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": args.device,
            "threads": torch.get_num_threads(),
        },
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
