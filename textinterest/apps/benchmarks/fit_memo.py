"""What reusing identical fits saves an ``evaluate`` run, and that it changes no figure.

Runs the same ``evaluate`` command ``--repeats`` times with the memo of fits off and on, alternating
(off, on, off, on, ...) in one process so that both see the same machine load, and records each run's
wall and CPU seconds, the memo's counts (fits trained and stored, fits taken from it) and whether every
seed's metrics agree between the two modes to the last bit. Default models: SASRec and the interest model
on a SASRec base with its no-text ablation, the case where one SASRec fit recurs most.

    textinterest benchmark fit_memo amazon:Musical_Instruments --max-users 300 --seeds 2 --repeats 2 \\
        --output benchmarks/results/fit_memo_amazon_Musical_Instruments.json
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from textinterest.apps.benchmarks import save_record
from textinterest.protocol.experiments import run_evaluation

DEFAULT_MODELS = ("sasrec", "interest+sasrec", "interest+sasrec-no-text")
METRICS = ("rmse", "mae", "hr@10", "ndcg@10", "mrr")


def _metrics(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (model, seed) row's test metrics, in the run's order."""
    return [
        {"model": row["model"], "seed": row["seed"], **{m: row[m] for m in METRICS if m in row}}
        for row in result["runs"]
    ]


def compare(
    name: str,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    repeats: int = 1,
    progress: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    """Evaluate ``models`` with the memo off and on, ``repeats`` times each, alternating.

    Args:
        name: data set name.
        models: the models of every run; the first blend among them (else the first model) is ``main``.
        repeats: runs per mode.
        progress: passed on to :func:`~textinterest.protocol.experiments.run_evaluation`.
        **fields: further :class:`~textinterest.protocol.experiments.RunConfig` fields (``seeds``,
            ``workers``, ``max_users``, ``tasks``, ``dataset`` / ``extractor`` for tests...).

    Returns:
        ``{"dataset", "models", "runs": [{"reuse_fits", "seconds", "cpu_seconds", "fit_memo"}],
        "median_seconds": {"off", "on"}, "ratio_on_to_off", "identical_metrics", "metrics"}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    main = next((m for m in models if "+" in m), models[0])
    runs: list[dict[str, Any]] = []
    seen: dict[bool, list[dict[str, Any]]] = {}
    for _ in range(repeats):
        for reuse in (False, True):
            wall, cpu = time.perf_counter(), time.process_time()
            result = run_evaluation(
                name, models=tuple(models), main=main, reuse_fits=reuse, progress=progress, **fields
            )  # fmt: skip
            runs.append(
                {
                    "reuse_fits": reuse,
                    "seconds": time.perf_counter() - wall,
                    "cpu_seconds_this_process": time.process_time() - cpu,
                    "jobs_cpu_seconds": result["timings"].get("jobs_cpu_seconds"),
                    "fit_memo": result["fit_memo"],
                }
            )
            metrics = _metrics(result)
            seen.setdefault(reuse, metrics)
            if metrics != seen[reuse]:
                raise RuntimeError("a repeat of the same mode gave other metrics: the runs are not reproducible here")
    median = {
        label: statistics.median(r["seconds"] for r in runs if r["reuse_fits"] is reuse)
        for label, reuse in (("off", False), ("on", True))
    }
    return {
        "dataset": name,
        "models": list(models),
        "runs": runs,
        "median_seconds": median,
        "ratio_on_to_off": median["on"] / median["off"],
        "identical_metrics": seen[True] == seen[False],
        "metrics": seen[True],
        "environment": result["environment"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``textinterest benchmark fit_memo NAME [options]``."""
    from textinterest.apps.cli_types import OneLineParser

    p = OneLineParser(prog="textinterest benchmark fit_memo", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="data set, e.g. amazon:Musical_Instruments")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--max-users", type=int, default=None)
    p.add_argument("--tasks", default="ranking")
    p.add_argument("--workers", default="1", help="worker processes of each run ('auto' or N)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--output", default=None)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    workers: int | str = args.workers if args.workers == "auto" else int(args.workers)
    record = compare(
        args.name,
        models=tuple(args.models.split(",")),
        repeats=args.repeats,
        seeds=tuple(range(args.seeds)),
        max_users=args.max_users,
        tasks=tuple(args.tasks.split(",")),
        workers=workers,
    )
    save_record(record, "fit_memo", sys.argv[1:] if argv is None else argv, args.output)
    print(
        f"median wall: off {record['median_seconds']['off']:.0f} s, on {record['median_seconds']['on']:.0f} s "
        f"(ratio {record['ratio_on_to_off']:.2f}); identical metrics: {record['identical_metrics']}; "
        f"memo: {record['runs'][-1]['fit_memo']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
