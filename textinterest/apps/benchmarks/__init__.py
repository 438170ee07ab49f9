"""Benchmarks behind the figures in ``benchmarks/BENCHMARKS.md``, one module each.

Every benchmark runs as ``textinterest benchmark NAME [options]`` or
``python -m textinterest.apps.benchmarks.NAME [options]`` (``--help`` lists the options); raw records
go to ``benchmarks/results/``.

* ``embed``: embedding throughput, naive fp32 against the fast paths, and the cache cold vs warm.
* ``cache_verify``: cold and warm embedding with the checksummed cache (compare two checkouts).
* ``joint_frozen_cache``: joint fine-tuning with and without the frozen-block cache.
* ``joint_lora``: joint fine-tuning frozen vs top layers vs LoRA adapters (parameters, time, memory, metrics).
* ``surprise_ml100k``: Surprise's published MovieLens 100K table through our adapters.
* ``sentiment``: TF-IDF + logistic regression vs a BERT classifier on Musical Instruments.
* ``sentiment_modes``: the recommender with the frozen vs the fine-tuned sentiment classifier (paired test).
* ``scale``: time and peak memory per pipeline stage from 10k to 1M reviews (:mod:`textinterest.apps.scale`).
* ``sequential_recipe``: the next-item peers' training recipe, one difference from the reference at a time.
* ``fit_memo``: an ``evaluate`` run with and without reusing identical fits (time saved, figures unchanged).
* ``sasrec_states``: SASRec's training time computing only the states it reads vs every step.
* ``early_stopping``: where each patience would stop, replayed on one long validation curve per fit.
* ``record_diff``: how far two ``evaluate`` records of one command differ (another CPU, threads or code).
* ``gpu_check``: the GPU path in one run (embedding, sentiment fine-tune, joint fine-tuning).
* ``serve_load``: the HTTP service under load (known and new users, concurrency 1-32) and its slowest allowed request.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from typing import Any

NAMES = (
    "embed",
    "cache_verify",
    "joint_frozen_cache",
    "joint_lora",
    "surprise_ml100k",
    "sentiment",
    "sentiment_modes",
    "gpu_check",
    "scale",
    "serve_load",
    "sequential_recipe",
    "fit_memo",
    "sasrec_states",
    "early_stopping",
    "record_diff",
)

__all__ = [
    "NAMES",
    "benchmark_texts",
    "format_embed_table",
    "load_reviews",
    "machine_info",
    "run",
    "run_embed_benchmark",
    "save_record",
]


def run(name: str, argv: Sequence[str] = ()) -> int:
    """Run benchmark ``name`` with command-line arguments ``argv``.

    Args:
        name: one of :data:`NAMES`.
        argv: its options, as on the command line.

    Returns:
        The benchmark's exit status.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in NAMES:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(NAMES)}")
    module = importlib.import_module(f"textinterest.apps.benchmarks.{name}")
    return int(module.main(list(argv)) or 0)


def save_record(record: dict[str, Any], name: str, argv: Sequence[str], output: str | None) -> None:
    """Add the command line that made ``record`` (``textinterest benchmark NAME ...``) and write it to ``output``."""
    from textinterest.utils import atomic_write_text, json_default

    record["command"] = f"textinterest benchmark {name} " + " ".join(argv)
    if output:
        atomic_write_text(output, json.dumps(record, indent=2, default=json_default))


_EMBED_NAMES = ("benchmark_texts", "format_embed_table", "load_reviews", "machine_info", "run_embed_benchmark")


def __getattr__(name: str) -> Any:
    # imported on first use, so that listing the benchmarks (``textinterest --help``) stays instant
    if name in _EMBED_NAMES:
        from textinterest.apps.benchmarks import embed

        return getattr(embed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
