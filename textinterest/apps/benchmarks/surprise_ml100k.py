"""Reproduce Surprise's published MovieLens 100K table through textinterest's adapters.

Protocol (Surprise README, "Movielens 100k"): 5-fold cross-validation with default
parameters. The folds are those of ``surprise.model_selection.KFold(n_splits=5,
random_state=SEED)``; each algorithm is trained through ``textinterest.models.baselines`` on the
other four folds (which gives the same predictions as ``surprise.model_selection.cross_validate``
on those folds). An adapter is accepted when its mean RMSE and MAE lie within ±0.01 of the
published values.

Usage::

    TEXTINTEREST_DATA=/path/to/data textinterest benchmark surprise_ml100k [--skip-svdpp]

Writes ``benchmarks/results/surprise_ml100k.json`` (relative to the working folder; ``--output``
changes it) and prints a table; exits 1 if a model
misses the tolerance.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from textinterest.apps.cli_types import OneLineParser
from textinterest.constants import SEED
from textinterest.datasets import load_dataset
from textinterest.models.baselines import cross_validate_ratings

# Surprise README, "Movielens 100k" table (5-fold CV, default parameters).
REFERENCE = {
    "SVD": {"rmse": 0.934, "mae": 0.737},
    "SVDpp": {"rmse": 0.919, "mae": 0.721},
    "NMF": {"rmse": 0.963, "mae": 0.758},
    "KNNBaseline": {"rmse": 0.931, "mae": 0.733},
    "BaselineOnly": {"rmse": 0.944, "mae": 0.748},
    "NormalPredictor": {"rmse": 1.518, "mae": 1.219},
}
DEFAULT_MODELS = ("SVD", "BaselineOnly", "SVDpp", "KNNBaseline", "NMF", "NormalPredictor")
TOLERANCE = 0.01
OUTPUT = Path("benchmarks") / "results" / "surprise_ml100k.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="textinterest benchmark surprise_ml100k", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None, help="data folder (default: $TEXTINTEREST_DATA)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated Surprise algorithms")
    parser.add_argument("--skip-svdpp", action="store_true", help="leave out SVD++ (the slow one)")
    parser.add_argument("--n-splits", type=int, default=5)
    parser.add_argument("--seed", type=int, default=SEED, help="fold shuffling and algorithm random_state")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    parser.add_argument("--output", default=str(OUTPUT), help="JSON results file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Cross-validate each model, write the JSON record, print the table; 1 if a model misses."""
    args = parse_args(argv)
    models = [m for m in args.models.split(",") if m and not (args.skip_svdpp and m == "SVDpp")]
    start = time.perf_counter()
    ratings = load_dataset("movielens:100k", args.data_home).interactions
    per_fold = cross_validate_ratings(ratings, models, n_splits=args.n_splits, seed=args.seed)
    elapsed = time.perf_counter() - start

    results = {}
    for name in models:
        folds = per_fold[name]
        row: dict = {}
        for metric in ("rmse", "mae"):
            values = np.asarray(folds[metric])
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std())  # population std over folds, as Surprise prints
            row[f"{metric}_folds"] = [float(v) for v in values]
            if name in REFERENCE:
                diff = row[f"{metric}_mean"] - REFERENCE[name][metric]
                row[f"{metric}_diff"] = float(diff)
                row[f"{metric}_pass"] = bool(abs(diff) <= args.tolerance)
        row["fit_seconds_mean"] = float(np.mean(folds["fit_seconds"]))
        row["n_fallback_folds"] = folds["n_fallback"]
        row["pass"] = all(row.get(f"{m}_pass", True) for m in ("rmse", "mae"))
        results[name] = row

    import surprise

    payload = {
        "dataset": "movielens:100k",
        "n_ratings": len(ratings),
        "protocol": {
            "cv": f"surprise.model_selection.KFold(n_splits={args.n_splits}, random_state={args.seed})",
            "params": "Surprise defaults; random_state=seed for SVD, SVDpp, NMF; NormalPredictor seeded",
            "std": "population standard deviation over folds",
        },
        "reference": {name: REFERENCE[name] for name in models if name in REFERENCE},
        "reference_source": "Surprise README, Movielens 100k table (5-fold CV, default parameters)",
        "tolerance": args.tolerance,
        "results": results,
        "all_pass": all(row["pass"] for row in results.values()),
        "seconds": round(elapsed, 1),
        "environment": {
            "python": platform.python_version(),
            "surprise": surprise.__version__,
            "numpy": np.__version__,
            "machine": platform.machine(),
        },
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2) + "\n")

    print(f"MovieLens 100K, {args.n_splits}-fold CV (seed {args.seed}), tolerance ±{args.tolerance}")
    print("| model | RMSE | ref | MAE | ref | fit s/fold | pass |\n|---|---|---|---|---|---|---|")
    for name, row in results.items():
        ref = REFERENCE.get(name, {})
        print(
            f"| {name} | {row['rmse_mean']:.4f} ± {row['rmse_std']:.4f} | {ref.get('rmse', '–')} "
            f"| {row['mae_mean']:.4f} ± {row['mae_std']:.4f} | {ref.get('mae', '–')} "
            f"| {row['fit_seconds_mean']:.1f} | {'yes' if row['pass'] else 'NO'} |"
        )
    print(f"wrote {output} ({elapsed:.0f} s)")
    return 0 if payload["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
