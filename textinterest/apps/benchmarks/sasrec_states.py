"""SASRec's training time when it computes only the states it reads, against every step of the batch.

For each width, fits SASRec (the reference recipe otherwise) for a fixed number of epochs on the
training split with ``states="all"`` (every step of each right-padded batch, then the last one picked)
and ``states="last"`` (examples grouped by length, the last block at the last step only: see
:meth:`textinterest.models.peers.sequential.SASRec.last_states`), alternating ``all, last, all, last,
...`` in one process so that both see the same machine load. Records each fit's seconds, the medians
and their ratio, and how far apart the two paths score the users from the same fitted weights (they
compute the same function; only float rounding differs). It also records how much of the padded
batches is real steps (the average example length, and the share of real steps in one epoch of
random batches padded to their longest example): the work the full path spends on padding.

    textinterest benchmark sasrec_states goodreads:young_adult_10000 --hidden 64,128 --epochs 2 \\
        --repeats 3 --output benchmarks/results/sasrec_states_goodreads_young_adult.json
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from textinterest.apps.benchmarks import save_record
from textinterest.constants import ITEM_COL, SEED, USER_COL
from textinterest.datasets import load_dataset
from textinterest.datasets.splits import split_interactions
from textinterest.evaluation import IdIndex
from textinterest.models.peers.sequential import SASRecRecommender
from textinterest.models.sequences import UserSequences
from textinterest.models.train_defaults import TRAIN_DEFAULTS
from textinterest.training import TrainConfig

STATES = ("all", "last")


def padding(lengths: np.ndarray, batch_size: int, seed: int = SEED) -> dict[str, float]:
    """Example lengths -> their mean and the share of real steps in one epoch of random batches, each
    batch padded to its longest example (as :meth:`UserSequences.pad` pads them)."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    batches = [lengths[order[s : s + batch_size]] for s in range(0, len(order), batch_size)]
    padded = sum(len(b) * int(b.max()) for b in batches)
    return {"mean_example_length": float(lengths.mean()), "real_step_share": float(lengths.sum() / padded)}


def compare(
    name: str,
    *,
    hidden: Sequence[int] = (64, 128),
    epochs: int = 2,
    repeats: int = 3,
    dataset: Any = None,
) -> dict[str, Any]:
    """Time ``epochs`` of SASRec training per path and width, ``repeats`` times each, alternating.

    Training settings are SASRec's registered defaults (batches of 256 examples), ``epochs`` fixed.

    Args:
        name: data set name (ignored for loading when ``dataset`` is given).
        hidden: model widths to time (the other settings are the reference recipe's).
        epochs: epochs per fit (no early stopping).
        repeats: fits per path and width.
        dataset: a loaded data set to use instead of loading ``name`` (tests).

    Returns:
        ``{"dataset", "n_train", "mean_example_length", "real_step_share", "epochs", "widths": {H:
        {"seconds": {"all": [...], "last": [...]}, "median_seconds", "ratio_last_to_all",
        "max_score_difference"}}, "torch_threads"}``.
    """
    if repeats < 1 or epochs < 1 or not hidden:
        raise ValueError(f"repeats and epochs must be >= 1 and hidden not empty, got {repeats}, {epochs}, {hidden}")
    data = dataset if dataset is not None else load_dataset(name)
    split = split_interactions(data.interactions, how="leave-last-out", seed=SEED)
    settings = {**TRAIN_DEFAULTS["sasrec"], "epochs": epochs, "patience": 0, "seed": SEED, "progress": False}
    train = split.train
    seq = UserSequences(train, IdIndex(train[USER_COL].to_numpy()), IdIndex(train[ITEM_COL].to_numpy()))
    examples = seq.prefixes(SASRecRecommender().shape["max_len"])  # the examples every fit below trains on
    steps = padding(examples[:, 2] - examples[:, 1], settings["batch_size"])
    widths: dict[str, Any] = {}
    for h in hidden:
        seconds: dict[str, list[float]] = {s: [] for s in STATES}
        fitted = None
        for _ in range(repeats):
            for states in STATES:
                model = SASRecRecommender(hidden=h, states=states, train_config=TrainConfig(**settings))
                t = time.perf_counter()
                model.fit(split.train)
                seconds[states].append(time.perf_counter() - t)
                fitted = model
        assert fitted is not None
        users = fitted.user_index.ids[: min(512, len(fitted.user_index))]
        fitted.states = "last"
        last = fitted.score_items(users)
        fitted.states = "all"
        every = fitted.score_items(users)
        median = {s: statistics.median(v) for s, v in seconds.items()}
        widths[str(h)] = {
            "seconds": seconds,
            "median_seconds": median,
            "ratio_last_to_all": median["last"] / median["all"],
            "max_score_difference": float(np.abs(last - every).max()),
        }
    return {
        "dataset": name,
        "n_train": len(split.train),
        **steps,
        "epochs": epochs,
        "batch_size": fitted.train_config.batch_size,  # what the timed fits trained with
        "repeats": repeats,
        "widths": widths,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``textinterest benchmark sasrec_states NAME [options]``."""
    from textinterest.apps.cli_types import OneLineParser

    p = OneLineParser(prog="textinterest benchmark sasrec_states", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="data set, e.g. goodreads:young_adult_10000")
    p.add_argument("--hidden", default="64,128", help="comma-separated widths")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--output", default=None)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    record = compare(
        args.name, hidden=[int(h) for h in args.hidden.split(",")], epochs=args.epochs, repeats=args.repeats
    )
    save_record(record, "sasrec_states", sys.argv[1:] if argv is None else argv, args.output)
    for h, w in record["widths"].items():
        print(
            f"hidden {h}: all {w['median_seconds']['all']:.1f} s, last {w['median_seconds']['last']:.1f} s "
            f"(ratio {w['ratio_last_to_all']:.2f}); largest score difference {w['max_score_difference']:.1e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
