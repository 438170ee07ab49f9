"""The ``textinterest`` command line.

Sub-commands::

    textinterest data summary NAME [--json] [--data-home DIR] [--download]
    textinterest baselines NAME [--split leave-last-out|temporal|random] [--seed N] [--json]
    textinterest evaluate NAME [--split ...] [--seeds 3] [--json]
    textinterest benchmark embed [--n N] [--json]
    textinterest reproduce [--profile smoke|full] [--dataset NAME] [--output DIR] [--force]

Each handler imports what it needs when it runs, so ``textinterest --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from textinterest.constants import SEED, SPLITS


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=False, default=_json_default))


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, Paths
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def results_markdown(results: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Render a list of result rows (``{"model": ..., metric: value}``) as a Markdown table.

    Metrics that do not apply to a model are shown as ``–``. A ``<metric>_std`` key, when
    present, is shown as ``mean ± std``.
    """
    if columns is None:
        seen: list[str] = []
        for row in results:
            for key in row:
                if key != "model" and not key.endswith("_std") and key not in seen:
                    seen.append(key)
        columns = seen
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in results:
        cells = []
        for col in columns:
            if col not in row or row[col] is None:
                cells.append("–")
            elif f"{col}_std" in row and row[f"{col}_std"] is not None:
                cells.append(f"{_fmt(row[col])} ± {_fmt(row[col + '_std'])}")
            else:
                cells.append(_fmt(row[col]))
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="data set name, e.g. amazon:Musical_Instruments, synthetic")
    parser.add_argument("--data-home", default=None, help="folder laid out like the shared data folder (default: $TEXTINTEREST_DATA, else the user cache)")
    parser.add_argument("--download", action="store_true", help="download a missing file from its publisher (hash-checked)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _cmd_data_summary(args: argparse.Namespace) -> int:
    from textinterest.datasets import dataset_summary, load_dataset
    from textinterest.datasets.summary import format_summary

    ds = load_dataset(args.name, args.data_home, download=args.download, kcore=args.kcore)
    summary = dataset_summary(ds)
    if args.json:
        _print_json(summary)
    else:
        print(format_summary(summary))
    return 0


BASELINE_COLUMNS = ("rmse", "mae", "hr@10", "ndcg@10", "mrr", "n_fallback", "fit_seconds")


def _cmd_baselines(args: argparse.Namespace) -> int:
    from textinterest.baselines import run_baselines
    from textinterest.datasets import load_dataset
    from textinterest.datasets.splits import split_interactions

    ds = load_dataset(args.name, args.data_home, download=args.download)
    split = split_interactions(ds.interactions, args.split, seed=args.seed)
    models = args.models.split(",") if args.models else None
    results = run_baselines(split, models=models, seed=args.seed)
    payload = {
        "dataset": args.name,
        "split": args.split,
        "seed": args.seed,
        "n_train": len(split.train),
        "n_val": len(split.val),
        "n_test": len(split.test),
        "results": results,
    }
    if args.json:
        _print_json(payload)
    else:
        print(f"{args.name} · {args.split} · train {payload['n_train']:,} · val {payload['n_val']:,} · test {payload['n_test']:,}")
        columns = [c for c in BASELINE_COLUMNS if any(c in r for r in results)]
        print(results_markdown(results, columns))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from textinterest.experiments import format_results_table, run_evaluation

    seeds = tuple(range(args.seeds)) if args.seed_list is None else tuple(int(s) for s in args.seed_list.split(","))
    result = run_evaluation(
        args.name,
        split=args.split,
        seeds=seeds,
        data_home=args.data_home,
        encoder=args.encoder,
        device=args.device,
        max_users=args.max_users,
        json_out=args.output,
        models=args.models.split(",") if args.models else None,
        tasks=tuple(args.tasks.split(",")),
        epochs=args.epochs,
        progress=None if args.json else True,
    )
    if args.json:
        _print_json(result)
    else:
        print(format_results_table(result))
    return 0


def _cmd_benchmark_embed(args: argparse.Namespace) -> int:
    from textinterest.benchmarks import run_embed_benchmark

    result = run_embed_benchmark(n=args.n, max_length=args.max_length, batch_size=args.batch_size,
                                 repeats=args.repeats, json_out=args.output, verbose=not args.json,
                                 cache_n=args.cache_n)
    if args.json:
        _print_json(result)
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from textinterest.reporting import reproduce

    gpu = {"auto": None, "gpu": True, "cpu": False}[args.settings]
    return reproduce(profile=args.profile, dataset=args.dataset, output=args.output,
                     notebooks_dir=args.notebooks_dir, only=args.only, reuse=not args.force, gpu=gpu)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textinterest", description="Recommendations from what users write.")
    from textinterest import __version__

    parser.add_argument("--version", action="version", version=f"textinterest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="inspect data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    summary = data_commands.add_parser("summary", help="counts, time span, ratings and the cleaning report")
    _add_data_arguments(summary)
    summary.add_argument("--kcore", type=int, default=None, help="re-apply a k-core filter after cleaning")
    summary.set_defaults(handler=_cmd_data_summary)

    baselines = commands.add_parser("baselines", help="train and evaluate the CF baselines on one split")
    _add_data_arguments(baselines)
    baselines.add_argument("--split", choices=SPLITS, default="leave-last-out")
    baselines.add_argument("--seed", type=int, default=SEED)
    baselines.add_argument("--models", default=None, help="comma-separated subset, e.g. SVD,BaselineOnly")
    baselines.set_defaults(handler=_cmd_baselines)

    evaluate = commands.add_parser("evaluate", help="the interest model, its ablations and all baselines, over seeds")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--split", choices=SPLITS, default="leave-last-out")
    evaluate.add_argument("--seeds", type=int, default=3, help="run seeds 0..N-1")
    evaluate.add_argument("--seed-list", default=None, help="explicit comma-separated seeds (overrides --seeds)")
    evaluate.add_argument("--encoder", default="default", help="'default' (packaged MiniLM), a Hugging Face id or a local folder")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--max-users", type=int, default=None, help="subsample users (quick runs)")
    evaluate.add_argument("--models", default=None, help="comma-separated subset (default: all but interest+joint), e.g. baselines,mf,interest,interest+joint")
    evaluate.add_argument("--tasks", default="rating,ranking", help="rating and/or ranking")
    evaluate.add_argument("--epochs", type=int, default=None, help="cap on training epochs")
    evaluate.add_argument("--output", default=None, help="also write the JSON result here")
    evaluate.set_defaults(handler=_cmd_evaluate)

    benchmark = commands.add_parser("benchmark", help="performance benchmarks")
    bench_commands = benchmark.add_subparsers(dest="benchmark_command", required=True, metavar="WHAT")
    embed = bench_commands.add_parser("embed", help="embedding throughput: naive fp32 vs the fast paths, and the cache")
    embed.add_argument("--n", type=int, default=512, help="number of texts")
    embed.add_argument("--max-length", type=int, default=128)
    embed.add_argument("--batch-size", type=int, default=32)
    embed.add_argument("--repeats", type=int, default=3)
    embed.add_argument("--cache-n", type=int, default=None, help="texts for the cold/warm cache timing (default: --n)")
    embed.add_argument("--output", default=None, help="also write the JSON result here")
    embed.add_argument("--json", action="store_true")
    embed.set_defaults(handler=_cmd_benchmark_embed)
    from textinterest.scale import add_parser as add_scale_parser

    add_scale_parser(bench_commands)

    from textinterest.distributed import add_parser as add_embed_parser

    add_embed_parser(commands)

    reproduce = commands.add_parser("reproduce", help="run every notebook with papermill and build reports/")
    reproduce.add_argument("--profile", default="smoke", help="parameter preset in notebooks/params/ (smoke or full)")
    reproduce.add_argument("--dataset", default=None, help="override the DATASET parameter of every notebook")
    reproduce.add_argument("--output", default="reports", help="reports folder (a sub-folder per profile)")
    reproduce.add_argument("--notebooks-dir", default=None)
    reproduce.add_argument("--only", default=None, help="comma-separated notebook name prefixes, e.g. 00,03")
    reproduce.add_argument("--force", action="store_true",
                           help="execute every notebook, even those whose last run had the same inputs")
    reproduce.add_argument("--settings", choices=("auto", "gpu", "cpu"), default="auto",
                           help="the profile's GPU settings or its 'without_gpu' ones (auto: GPU settings when CUDA is available)")
    reproduce.set_defaults(handler=_cmd_reproduce)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textinterest`` console command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as error:
        # Data and parameter errors are the user's to fix: one clear line, no traceback.
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"textinterest: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
