"""The ``textinterest`` command line.

Sub-commands::

    textinterest data summary NAME [--json] [--data-home DIR] [--download]
    textinterest baselines NAME [--split leave-last-out|temporal|random] [--seed N] [--json]
    textinterest evaluate NAME [--split ...] [--seeds 3] [--json]
    textinterest benchmark NAME [options]   (embed, cache_verify, joint_frozen_cache, ...)
    textinterest reproduce [--profile smoke|full] [--dataset NAME] [--output DIR] [--force] [--verify-data]

Each handler imports what it needs when it runs, so ``textinterest --help`` stays instant.

Errors: every argument is checked when parsed (``textinterest.apps.cli_types``), so a bad value, an
unwritable ``--output`` or an unknown ``--encoder`` stops the command before any work. A user error
met later (bad data, a missing or unreadable file, an unknown data set) ends the command with exit
status 2 and one line on stderr; ``textinterest --debug ...`` shows the traceback instead. Anything
else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textinterest.apps import cli_types as types
from textinterest.constants import SEED, SPLITS


def _print_json(payload: Any) -> None:
    from textinterest.utils import json_default

    print(json.dumps(payload, indent=2, sort_keys=False, default=json_default))


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
    parser.add_argument(
        "--data-home",
        default=None,
        type=types.existing_dir,
        help="folder laid out like the shared data folder (default: $TEXTINTEREST_DATA, else the user cache)",
    )
    parser.add_argument(
        "--download", action="store_true", help="download a missing file from its publisher (hash-checked)"
    )
    parser.add_argument(
        "--errors",
        choices=("raise", "drop"),
        default="raise",
        help="a bad record stops the command (raise) or is dropped and counted in the cleaning report",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="use data files even when their hash differs from the registry's"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    """``load_dataset`` options from ``--errors`` / ``--no-verify`` (synthetic data takes neither)."""
    if args.name.strip() == "synthetic":
        return {}
    return {"errors": args.errors, "verify": not args.no_verify}


def _cmd_data_summary(args: argparse.Namespace) -> int:
    from textinterest.datasets import dataset_summary, load_dataset
    from textinterest.datasets.summary import format_summary

    ds = load_dataset(args.name, args.data_home, download=args.download, kcore=args.kcore, **_load_options(args))
    summary = dataset_summary(ds)
    if args.json:
        _print_json(summary)
    else:
        print(format_summary(summary))
    return 0


BASELINE_COLUMNS = ("rmse", "mae", "hr@10", "ndcg@10", "mrr", "n_fallback", "fit_seconds")


def _cmd_baselines(args: argparse.Namespace) -> int:
    from textinterest.datasets import load_dataset
    from textinterest.datasets.splits import split_interactions
    from textinterest.models.baselines import run_baselines

    ds = load_dataset(args.name, args.data_home, download=args.download, **_load_options(args))
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
        print(
            f"{args.name} · {args.split} · train {payload['n_train']:,} · val {payload['n_val']:,} "
            f"· test {payload['n_test']:,}"
        )
        columns = [c for c in BASELINE_COLUMNS if any(c in r for r in results)]
        print(results_markdown(results, columns))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from textinterest.protocol.experiments import RunConfig, format_results_table, run_evaluation

    seeds = tuple(range(args.seeds)) if args.seed_list is None else args.seed_list
    config = RunConfig(
        args.name,
        split=args.split,
        seeds=seeds,
        data_home=args.data_home,
        encoder=args.encoder,
        device=args.device,
        max_users=args.max_users,
        json_out=args.output,
        models=args.models.split(",") if args.models else None,
        main=args.main,
        tasks=tuple(args.tasks),
        epochs=args.epochs,
        protocol=args.protocol,
        workers=args.workers,
        sentiment=args.sentiment,
        reuse_fits=not args.no_reuse_fits,
    )
    dataset = None
    if args.errors != "raise" or args.no_verify or args.download:  # options run_evaluation's own loading lacks
        from textinterest.datasets import load_dataset

        dataset = load_dataset(args.name, args.data_home, download=args.download, **_load_options(args))
    result = run_evaluation(config, dataset=dataset, progress=None if args.json else True)
    if args.json:
        _print_json(result)
    else:
        print(format_results_table(result))
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from textinterest.apps.benchmarks import run

    return run(args.benchmark_name, args.benchmark_args)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from textinterest.apps import reproduce

    gpu = {"auto": None, "gpu": True, "cpu": False}[args.settings]
    try:
        return reproduce.reproduce(
            profile=args.profile,
            dataset=args.dataset,
            output=args.output,
            notebooks_dir=args.notebooks_dir,
            only=args.only,
            reuse=not args.force,
            gpu=gpu,
            verify_data=args.verify_data,
        )
    except KeyboardInterrupt:  # before the run could record anything (reproduce handles it once running)
        print("\ntextinterest: interrupted", file=sys.stderr)
        return reproduce.EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """The ``textinterest`` argument parser: global options and one sub-parser per command."""
    parser = _Parser(prog="textinterest", description="Recommendations from what users write.")
    from textinterest import __version__

    parser.add_argument("--version", action="version", version=f"textinterest {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_command(commands)
    _add_baselines_command(commands)
    _add_evaluate_command(commands)
    _add_benchmark_command(commands)

    from textinterest.apps.distributed import add_parser as add_embed_parser

    add_embed_parser(commands)
    _add_reproduce_command(commands)

    from textinterest.apps.cli_serving import add_serving_commands

    add_serving_commands(commands)
    return parser


def _add_data_command(commands: Any) -> None:
    """``textinterest data summary``."""
    data = commands.add_parser("data", help="inspect data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    summary = data_commands.add_parser("summary", help="counts, time span, ratings and the cleaning report")
    _add_data_arguments(summary)
    summary.add_argument(
        "--kcore", type=types.positive_int, default=None, help="re-apply a k-core filter after cleaning"
    )
    summary.set_defaults(handler=_cmd_data_summary)


def _add_baselines_command(commands: Any) -> None:
    """``textinterest baselines``."""
    from textinterest.models import registry

    baselines = commands.add_parser("baselines", help="train and evaluate the CF baselines on one split")
    _add_data_arguments(baselines)
    baselines.add_argument("--split", choices=SPLITS, default="leave-last-out")
    baselines.add_argument("--seed", type=types.seed, default=SEED)
    baselines.add_argument(
        "--models", default=None, help=f"comma-separated subset of {','.join(registry.groups()['baselines'])}"
    )
    baselines.set_defaults(handler=_cmd_baselines)


def _add_evaluate_command(commands: Any) -> None:
    """``textinterest evaluate``."""
    from textinterest.models import registry

    evaluate = commands.add_parser("evaluate", help="the interest model, its ablations and all baselines, over seeds")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--split", choices=SPLITS, default="leave-last-out")
    evaluate.add_argument("--seeds", type=types.positive_int, default=3, help="run seeds 0..N-1")
    evaluate.add_argument(
        "--seed-list", type=types.seed_list, default=None, help="explicit comma-separated seeds (overrides --seeds)"
    )
    evaluate.add_argument(
        "--encoder",
        type=types.encoder_name,
        default="default",
        help="'default' (packaged MiniLM), a Hugging Face id or a local folder",
    )
    evaluate.add_argument("--device", type=types.device, default="auto")
    evaluate.add_argument("--max-users", type=types.positive_int, default=None, help="subsample users (quick runs)")
    evaluate.add_argument(
        "--models",
        default=None,
        help=f"comma-separated models or groups of the model registry (default: "
        f"{','.join(registry.default_names())}); valid: {', '.join(registry.valid_names())}",
    )
    evaluate.add_argument(
        "--main",
        default=None,
        help="the model under test in the paired tests (default: interest); it must be among --models",
    )
    evaluate.add_argument(
        "--tasks", type=types.name_list(("rating", "ranking")), default="rating,ranking", help="rating and/or ranking"
    )
    evaluate.add_argument("--epochs", type=types.positive_int, default=None, help="cap on training epochs")
    evaluate.add_argument("--output", type=types.writable_file, default=None, help="also write the JSON result here")
    evaluate.add_argument(
        "--protocol",
        choices=("val-in-history", "train-history"),
        default="val-in-history",
        help="test scoring after model selection: standard leave-one-out (refit on train + "
        "validation) or the earlier train-history protocol",
    )
    evaluate.add_argument(
        "--sentiment",
        choices=("frozen", "finetuned", "none"),
        default="frozen",
        help="the reviews' sentiment feature: a head on the frozen encoder (default), the encoder's top layers "
        "fine-tuned on training reviews (minutes on a CPU), or none",
    )
    evaluate.add_argument(
        "--workers",
        type=types.workers,
        default="auto",
        help="fit the models in N worker processes, each with CPUs // N threads; 'auto' (default): one per "
        "CPU, at most 4, and 1 on a GPU; 1 fits everything in this process",
    )
    evaluate.add_argument(
        "--no-reuse-fits",
        action="store_true",
        help="fit every torch model afresh, even when the run already fitted the same settings, seed and rows "
        "(by default such a fit is reused: same figures, less time)",
    )
    evaluate.set_defaults(handler=_cmd_evaluate)


def _add_benchmark_command(commands: Any) -> None:
    """``textinterest benchmark NAME ...`` (the benchmark parses its own options)."""
    from textinterest.apps.benchmarks import NAMES as BENCHMARKS

    benchmark = commands.add_parser(
        "benchmark",
        help="performance benchmarks (textinterest benchmark NAME --help)",
        description="Run one benchmark; its options follow its name (textinterest benchmark NAME --help).",
    )
    benchmark.add_argument("benchmark_name", metavar="NAME", choices=BENCHMARKS, help=", ".join(BENCHMARKS))
    benchmark.add_argument("benchmark_args", nargs=argparse.REMAINDER, metavar="...", help="the benchmark's options")
    benchmark.set_defaults(handler=_cmd_benchmark)


def _add_reproduce_command(commands: Any) -> None:
    """``textinterest reproduce``."""
    reproduce = commands.add_parser("reproduce", help="run every notebook with papermill and build reports/")
    reproduce.add_argument(
        "--profile",
        default="smoke",
        help="parameter profile: smoke or full (shipped in textinterest/apps/reproduce/params/), or a .yaml path",
    )
    reproduce.add_argument("--dataset", default=None, help="override the DATASET parameter of every notebook")
    reproduce.add_argument(
        "--output", type=types.writable_dir, default="reports", help="reports folder (a sub-folder per profile)"
    )
    reproduce.add_argument("--notebooks-dir", type=types.existing_dir, default=None)
    reproduce.add_argument("--only", default=None, help="comma-separated notebook name prefixes, e.g. 00,03")
    reproduce.add_argument(
        "--force", action="store_true", help="execute every notebook, even those whose last run had the same inputs"
    )
    reproduce.add_argument(
        "--verify-data",
        action="store_true",
        help="rehash every data file instead of trusting the cached content hashes",
    )
    reproduce.add_argument(
        "--settings",
        choices=("auto", "gpu", "cpu"),
        default="auto",
        help="the profile's GPU settings or its 'without_gpu' ones (auto: GPU settings when CUDA is available)",
    )
    reproduce.set_defaults(handler=_cmd_reproduce)


def _user_error(error: BaseException) -> bool:
    """True for an error the user can fix from its message alone (bad data, a file, a name); False for a bug."""
    from textinterest.datasets.base import (
        ChecksumMismatchError,
        DataFormatError,
        DataNotFoundError,
        UnknownDatasetError,
    )

    if isinstance(error, (DataFormatError, DataNotFoundError, ChecksumMismatchError, UnknownDatasetError)):
        return True
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return error.filename is not None or bool(error.args and isinstance(error.args[0], str))
    if isinstance(error, (ValueError, KeyError)) and error.__traceback__ is not None:
        # The package checks its inputs with ValueError/KeyError and a message saying what is wrong; the
        # same classes raised inside numpy, pandas or torch are bugs of ours and keep their traceback.
        package = Path(__file__).resolve().parents[1]  # textinterest/, not apps/
        innermost = traceback.extract_tb(error.__traceback__)[-1]
        return package in Path(innermost.filename).resolve().parents
    return False


def _one_line(error: BaseException) -> str:
    """The error's message on one line (multi-line messages are joined with ' | ')."""
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    elif isinstance(error, OSError) and error.filename is not None and error.strerror:
        message = f"{error.filename}: {error.strerror}"
    else:
        message = str(error) or type(error).__name__
    return " | ".join(part.strip() for part in message.splitlines() if part.strip())


_Parser = types.OneLineParser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textinterest`` console command; returns the exit status.

    Exit status: 0 success, 2 a user error (one line on stderr, or the traceback with ``--debug``),
    130 interrupted; a bug raises with its traceback.
    """
    try:  # building the parser imports the model registry: a Ctrl-C can land there too
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("textinterest: interrupted", file=sys.stderr)
        return 130
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("textinterest: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug or not _user_error(error):
            raise
        print(f"textinterest: error: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
