"""Where early stopping with each patience would stop, from one long validation curve per fit.

Fits each model on the training split for up to ``--epochs`` epochs with a long patience and records
its validation NDCG@10 after every epoch. Training does not depend on the patience until the run
stops (the same batches, the same dropout draws), so the curve of one long fit also says where a
shorter patience would have stopped and which epoch it would have kept: :func:`stop_at` replays
:class:`~textinterest.training.Trainer`'s rule on the curve. The record lists, per model, seed and
patience, the epoch kept and its validation NDCG@10.

    textinterest benchmark early_stopping amazon:Musical_Instruments --models seq-lstm,interest-no-text \\
        --patience 3,5,10 --seeds 0,1,2 --output benchmarks/results/early_stopping_amazon_Musical_Instruments.json
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from textinterest.apps.benchmarks import save_record
from textinterest.constants import SEED
from textinterest.datasets import load_dataset
from textinterest.datasets.splits import split_interactions


def stop_at(curve: Sequence[float], patience: int, *, min_delta: float = 0.0) -> dict[str, Any]:
    """Where a run with ``patience`` stops on a validation ``curve`` (higher is better), by the trainer's rule.

    Args:
        curve: the validation metric after each epoch of a run that did not stop earlier.
        patience: epochs without improvement before stopping (0: never stop).
        min_delta: the improvement that counts.

    Returns:
        ``{"best_epoch", "best", "epochs_run", "stopped"}``: the 1-based epoch kept, its metric, how
        many epochs the run trains, and whether the rule stopped it within the curve (False: the
        curve ends first, so a longer curve could still move the answer).
    """
    if patience < 0:
        raise ValueError(f"patience must be >= 0, got {patience}")
    if not len(curve):
        raise ValueError("the curve is empty")
    best, best_epoch, bad = -math.inf, 0, 0
    for epoch, metric in enumerate(curve, start=1):
        if metric > best + min_delta or epoch == 1:
            best, best_epoch, bad = metric, epoch, 0
        else:
            bad += 1
        if patience and bad >= patience:
            return {"best_epoch": best_epoch, "best": best, "epochs_run": epoch, "stopped": True}
    return {"best_epoch": best_epoch, "best": best, "epochs_run": len(curve), "stopped": False}


def _features(spec: Any, data: Any, train: Any, encoder: str) -> Any:
    """The training rows' text inputs (with the frozen sentiment head's scores), as ``evaluate`` builds them."""
    from textinterest.protocol.text_inputs import build_text_features, fit_review_sentiment
    from textinterest.text.hashing import make_extractor

    features = build_text_features(train, make_extractor(encoder, device="cpu"), items=data.items)
    if spec.uses_sentiment:
        _, scores, _ = fit_review_sentiment(train, features.texts, mode="frozen", encoder=encoder, seed=SEED)
        features = replace(features, sentiment=scores)
    return features


def curves(
    name: str,
    models: Sequence[str],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    patience: Sequence[int] = (3, 5, 10),
    epochs: int = 60,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    encoder: str = "default",
    dataset: Any = None,
) -> dict[str, Any]:
    """One long fit per model and seed; where each patience would stop on its validation curve.

    Args:
        name: data set name (ignored for loading when ``dataset`` is given).
        models: registry names of models that early-stop on validation (ranking task).
        seeds: training seeds.
        patience: the patience values to replay.
        epochs: the longest run; each fit runs with patience ``max(patience) + 5`` (or to ``epochs``).
        params: per model, the settings to build it with (e.g. the choice of an ``evaluate`` run's
            search); a model not named gets its defaults.
        encoder: the text encoder of a text model.
        dataset: a loaded data set to use instead of loading ``name`` (tests).

    Returns:
        ``{"dataset", "epochs", "fit_patience", "min_delta", "models": {model: {"params", "runs": [{"seed",
        "curve", "seconds", "by_patience": {p: stop_at(...)}}], "median_best": {p: ...}}}, "torch_threads"}``.
    """
    from textinterest.models import registry

    if not models or not seeds or not patience or epochs < 1:
        raise ValueError(f"models, seeds and patience must not be empty and epochs >= 1: {models}, {seeds}, {patience}")
    data = dataset if dataset is not None else load_dataset(name)
    split = split_interactions(data.interactions, how="leave-last-out", seed=SEED)
    fit_patience = max(patience) + 5
    params = dict(params or {})
    out: dict[str, Any] = {}
    for model in models:
        spec = registry.get(model)
        features = _features(spec, data, split.train, encoder) if spec.uses_text else None
        chosen = dict(params.get(model, {}))
        runs = []
        for seed in seeds:
            config = spec.train_config(seed=seed, progress=False, epochs=epochs, patience=fit_patience)
            context = registry.BuildContext(
                task="ranking", seed=seed, train_config=config, params=chosen, features=features,
                train=split.train, dataset=data,
            )  # fmt: skip
            fitted = spec.build(context)
            t = time.perf_counter()
            fitted.fit(split.train, split.val)
            curve = [float(e["val"]) for e in fitted.train_result_.history]
            runs.append({"seed": seed, "curve": curve, "seconds": time.perf_counter() - t})
            min_delta = config.min_delta
            print(json.dumps({"model": model, "seed": seed, "curve": curve}), flush=True)
        out[model] = {"params": chosen, "runs": runs}
    record = {
        "dataset": name,
        "epochs": epochs,
        "fit_patience": fit_patience,
        "min_delta": min_delta,
        "models": out,
        "torch_threads": torch.get_num_threads(),
    }
    return replay(record, patience)


def replay(record: dict[str, Any], patience: Sequence[int]) -> dict[str, Any]:
    """Fill in ``by_patience`` of every run and ``median_best`` of every model, from the recorded curves.

    The rule is the trainer's, with the ``min_delta`` the fits trained with (``record["min_delta"]``; a
    record without it was made with :class:`~textinterest.training.TrainConfig`'s default).
    """
    from textinterest.training import TrainConfig

    record["min_delta"] = min_delta = float(record.get("min_delta", TrainConfig().min_delta))
    for m in record["models"].values():
        for run in m["runs"]:
            run["by_patience"] = {str(p): stop_at(run["curve"], p, min_delta=min_delta) for p in patience}
        kept = {str(p): [r["by_patience"][str(p)]["best"] for r in m["runs"]] for p in patience}
        m["median_best"] = {p: statistics.median(v) for p, v in kept.items()}
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``textinterest benchmark early_stopping NAME [options]``."""
    from textinterest.apps.cli_types import OneLineParser

    p = OneLineParser(prog="textinterest benchmark early_stopping", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="data set, e.g. amazon:Musical_Instruments")
    p.add_argument("--from-record", default=None, help="replay the curves of this record instead of fitting")
    p.add_argument("--models", default="seq-lstm,interest-no-text", help="comma-separated registry names")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--patience", default="3,5,10", help="comma-separated patience values to replay")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--params", default="{}", help='JSON: {"model": {setting: value}} (default: each model\'s own)')
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--output", default=None)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    patience = [int(v) for v in args.patience.split(",")]
    if args.from_record:
        with open(args.from_record, encoding="utf-8") as f:
            record = replay(json.load(f), patience)
        record["fitted_by"] = record.get("fitted_by") or record.get("command")  # the command that made the curves
    else:
        record = curves(
            args.name,
            args.models.split(","),
            seeds=[int(s) for s in args.seeds.split(",")],
            patience=patience,
            epochs=args.epochs,
            params=json.loads(args.params),
        )
    save_record(record, "early_stopping", sys.argv[1:] if argv is None else argv, args.output)
    for model, m in record["models"].items():
        for run in m["runs"]:
            stops = ", ".join(
                f"patience {p}: epoch {s['best_epoch']} ({s['best']:.4f})" for p, s in run["by_patience"].items()
            )
            print(f"{model} seed {run['seed']}: {stops}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
