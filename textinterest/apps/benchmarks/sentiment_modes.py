"""What fine-tuning the sentiment classifier buys the recommender: frozen head vs fine-tuned top layers.

Runs ``textinterest evaluate`` twice on the same split and seeds -- once with ``--sentiment frozen``, once
with ``--sentiment finetuned`` (:data:`textinterest.text.sentiment.SENTIMENT_MODES`) -- for the interest
model (each run tunes it on validation as usual), and pairs the two runs user by user: bootstrap CI and
Wilcoxon test of the fine-tuned minus the frozen NDCG@10, HR@10 and RMSE (seed-averaged per user).

    textinterest benchmark sentiment_modes amazon:Musical_Instruments --seeds 3 --workers 2 \\
        --output benchmarks/results/sentiment_modes_amazon_Musical_Instruments.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from textinterest.apps.benchmarks import save_record
from textinterest.protocol.experiments import run_evaluation
from textinterest.significance import PerUserStore, paired_test
from textinterest.utils import json_default

MODES = ("frozen", "finetuned")


def compare_modes(
    name: str,
    *,
    models: Sequence[str] = ("interest",),
    seeds: Sequence[int] = (0, 1, 2),
    n_boot: int = 10_000,
    progress: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    """Evaluate ``models`` with each sentiment mode and pair the runs per user.

    Args:
        name: data set name.
        models: the models evaluated in both runs (the first is the one the paired tests read).
        seeds: training seeds (the same in both runs).
        n_boot: bootstrap resamples of each paired test.
        progress: passed on to :func:`~textinterest.protocol.experiments.run_evaluation`.
        **fields: further :class:`~textinterest.protocol.experiments.RunConfig` fields (``workers``,
            ``max_users``, ``epochs``, ``dataset`` / ``extractor`` for tests...).

    Returns:
        ``{"dataset", "model", "seeds", "runs": {mode: {"results", "per_seed", "sentiment", "tuning", "timings",
        "environment"}},
        "paired": {metric: paired_test(finetuned, frozen)}}``.
    """
    inputs = {key: fields.pop(key) for key in ("dataset", "extractor") if key in fields}
    model = models[0]
    stores = {mode: PerUserStore() for mode in MODES}
    runs: dict[str, Any] = {}
    for mode in MODES:
        result = run_evaluation(
            name, models=tuple(models), main=model, seeds=tuple(seeds), sentiment=mode,
            per_user=stores[mode], progress=progress, **inputs, **fields,
        )  # fmt: skip
        runs[mode] = {key: result.get(key) for key in ("results", "sentiment", "tuning", "timings", "environment")}
        runs[mode]["per_seed"] = result["runs"]
    paired: dict[str, Any] = {}
    for metric, task, key, statistic in (
        ("ndcg@10", "ranking", "ndcg@10", "mean"),
        ("hr@10", "ranking", "hr@10", "mean"),
        ("rmse", "rating", "se", "rmse"),
    ):
        if all((model, task) in store.keys() for store in stores.values()):
            users, tuned = stores["finetuned"].mean(model, task)
            frozen_users, frozen = stores["frozen"].mean(model, task)
            if list(users) != list(frozen_users):
                raise ValueError(f"the two runs scored different {task} users")
            paired[metric] = paired_test(tuned[key], frozen[key], statistic=statistic, n_boot=n_boot)
    return {"dataset": name, "model": model, "seeds": list(seeds), "runs": runs, "paired": paired}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="textinterest benchmark sentiment_modes", description=__doc__.split("\n")[0])
    p.add_argument("name", help="data set name, e.g. amazon:Musical_Instruments")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    p.add_argument("--models", default="interest", help="comma-separated; the first is tested")
    p.add_argument("--workers", default="auto")
    p.add_argument("--max-users", type=int, default=None)
    p.add_argument("--tasks", default="rating,ranking", help="comma-separated: rating and/or ranking")
    p.add_argument(
        "--fixed",
        default=None,
        help='JSON InterestConfig fields used in both runs instead of tuning, e.g. \'{"hidden": 32, "dropout": 0.1}\' '
        "(separates the sentiment from a different validation choice)",
    )
    p.add_argument("--output", default=None, help="write the JSON record here")
    args = p.parse_args(argv)
    workers = args.workers if args.workers == "auto" else int(args.workers)
    record = compare_modes(
        args.name,
        models=args.models.split(","),
        seeds=range(args.seeds),
        workers=workers,
        max_users=args.max_users,
        tasks=tuple(args.tasks.split(",")),
        progress=True,
        **({"tune": False, "interest_config": json.loads(args.fixed)} if args.fixed else {}),
    )
    save_record(record, "sentiment_modes", sys.argv[1:] if argv is None else argv, args.output)
    print(json.dumps(record["paired"], indent=2, default=json_default))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
