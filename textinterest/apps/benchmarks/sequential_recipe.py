"""Which training-recipe differences move the next-item peers: fixed settings, no tuning.

For each variant (the reference recipe of :mod:`textinterest.models.peers.sequential`, or the
reference with one difference put back), fit the model on train with early stopping on validation
NDCG@10, score the test split under the ``val-in-history`` protocol through
:func:`textinterest.protocol.protocols.fit_for_test` (the same path as ``textinterest evaluate``),
and record validation and test NDCG@10 / HR@10 per seed.

    textinterest benchmark sequential_recipe amazon:Musical_Instruments --model sasrec \\
        --variants reference,refit,window --seeds 0 --output benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from textinterest.constants import SEED
from textinterest.datasets import load_dataset
from textinterest.datasets.splits import split_interactions
from textinterest.evaluation import evaluate_ranking
from textinterest.models import registry
from textinterest.models.peers import sequential
from textinterest.protocol.protocols import fit_for_test

# the reference recipe (RecBole's SASRec: no refit), then one difference from it each (model arguments and
# TrainConfig fields); "refit" is this package's default under the val-in-history protocol
_OLD_TRAIN = {"batch_size": 128, "epochs": 100, "weight_decay": 1e-5, "grad_clip": 5.0}
VARIANTS: dict[str, dict[str, Any]] = {
    "reference": {"model": {"refit": False}},
    "refit": {"model": {"refit": True}},
    "states-all": {"model": {"refit": False, "states": "all"}},  # every step's state (before: the only path)
    "window": {"model": {"refit": False, "examples": "window"}},
    "pre-ln": {"model": {"refit": False, "norm": "pre"}},
    "inner64": {"model": {"refit": False, "inner": 64}},
    "dropout0.2": {"model": {"refit": False, "dropout": 0.2}},
    "dropout0.5": {"model": {"refit": False, "dropout": 0.5}},
    "old-train": {"model": {"refit": False}, "train": _OLD_TRAIN},
    "torch-init": {"model": {"refit": False}, "init": "torch"},
    "all-old": {
        "model": {"refit": True, "examples": "window", "norm": "pre", "inner": 64, "dropout": 0.2},
        "train": _OLD_TRAIN,
    },
}


def _torch_init(module: Any, std: float = 0.02) -> None:
    """The initialisation before the reference recipe: PyTorch's defaults (positions N(0, 1), linear
    layers Kaiming-uniform), only the item table N(0, 0.02)."""
    for m in module.modules():
        if isinstance(m, torch.nn.Embedding) and m.padding_idx == 0:
            torch.nn.init.normal_(m.weight, std=std)


def run(name: str, model: str, variants: list[str], seeds: list[int], encoder: str = "default") -> dict[str, Any]:
    """Fit every variant for every seed; one record each."""
    data = load_dataset(name)
    split = split_interactions(data.interactions, how="leave-last-out", seed=SEED)
    spec = registry.get(model)
    default_init = sequential.init_weights
    features = {}  # rows -> text inputs of those rows (the training rows, or train + validation for a refit)
    if spec.uses_text:  # the item text of the interest model (cached MiniLM); test reviews are never read
        from textinterest.protocol.text_inputs import build_text_features
        from textinterest.text.hashing import make_extractor

        extractor = make_extractor(encoder, device="cpu")
        history = pd.concat([split.train, split.val], ignore_index=True)
        for frame in (split.train, history):
            features[len(frame)] = build_text_features(frame, extractor, items=data.items)
    records = []
    for variant in variants:
        over = VARIANTS[variant]
        for seed in seeds:
            t = time.perf_counter()
            # a variant may swap the initialisation the modules call when they are built
            sequential.init_weights = _torch_init if over.get("init") == "torch" else default_init
            config = spec.train_config(seed=seed, progress=False, **over.get("train", {}))

            params = over.get("model", {})

            def factory(frame: Any, config: Any = config, params: dict[str, Any] = params, seed: int = seed) -> Any:
                context = registry.BuildContext(
                    task="ranking", seed=seed, train_config=config, params=params, features=features.get(len(frame))
                )
                return spec.build(context)

            fitted, history, info = fit_for_test(factory, split.train, split.val, "val-in-history")
            if hasattr(fitted, "set_prediction_times"):
                fitted.set_prediction_times(split.test)  # time-safe item text, as evaluate does
            ids = fitted.user_index.ids
            test = evaluate_ranking(
                lambda u, fitted=fitted, ids=ids: fitted.score_items(ids[u]),
                history,
                split.test,
                fitted.user_index,
                fitted.item_index,
                ks=(10,),
            )
            rec = {
                "variant": variant,
                "seed": seed,
                "val_ndcg@10": info.get("val_metric"),
                "epochs": info.get("epochs"),
                "refit": info.get("refit"),
                "test_ndcg@10": test["ndcg@10"],
                "test_hr@10": test["hr@10"],
                "seconds": time.perf_counter() - t,
            }
            print(json.dumps(rec), flush=True)
            records.append(rec)
    summary = {}
    for variant in variants:
        vals = np.array([r["test_ndcg@10"] for r in records if r["variant"] == variant])
        summary[variant] = {
            "test_ndcg@10_mean": float(vals.mean()),
            "test_ndcg@10_std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            "n_seeds": int(len(vals)),
        }
    sequential.init_weights = default_init
    return {
        "dataset": name,
        "model": model,
        "variants": {v: VARIANTS[v] for v in variants},
        "records": records,
        "summary": summary,
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
    }


def main(argv: list[str] | None = None) -> int:
    """Run the variants, print one JSON line per fit and the summary, write the record."""
    parser = argparse.ArgumentParser(
        prog="textinterest benchmark sequential_recipe", description=__doc__.splitlines()[0]
    )
    parser.add_argument("name")
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--variants", default="reference")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--encoder", default="default", help="text encoder of a text model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(args.name, args.model, args.variants.split(","), [int(s) for s in args.seeds.split(",")], args.encoder)
    print(json.dumps(result["summary"], indent=1))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
