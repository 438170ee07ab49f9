"""Embedding cache timing: cold and warm runs of the extractor, and reading a large cache.

Times, median of ``--repeats`` runs each:

* ``cold``: a new extractor (model already loaded once in this process) over an empty cache
  folder embeds ``--n`` texts: encoding plus writing the shards.
* ``warm``: a new extractor over the filled folder embeds the same texts: model identity
  (weights hashes from the index), reading and checking the shards, no encoding.
* ``read_large``: a new :class:`EmbeddingCache` over ``--large`` random 384-d vectors in shards
  of 4,096 looks all of them up (opening and checking every shard).

Only public names that every version of the package has are used, so the same file can time an
older checkout: ``PYTHONPATH=/path/to/old/checkout python textinterest/apps/benchmarks/cache_verify.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from textinterest.apps.cli_types import OneLineParser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options of ``textinterest benchmark cache_verify``."""
    p = OneLineParser(prog="textinterest benchmark cache_verify", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=512, help="texts embedded cold and warm")
    p.add_argument("--large", type=int, default=100_000, help="vectors in the large-cache read (0: skip)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="default")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--label", default="", help="stored in the record, e.g. the revision timed")
    p.add_argument("--output", default=None, help="also write the JSON record here")
    args = p.parse_args(argv)
    for name in ("n", "repeats", "max_length"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.large < 0:
        p.error(f"--large must be 0 or more, got {args.large}")
    return args


def _time(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Run the timings, print one JSON record and optionally write it to ``--output``."""
    args = parse_args(argv)
    import textinterest
    from textinterest.apps.benchmarks import benchmark_texts
    from textinterest.text.features import BertFeatureExtractor, EmbeddingCache, text_key

    texts, source = benchmark_texts(args.n)
    kwargs = {"device": "cpu", "progress": False, "max_length": args.max_length}
    loader = BertFeatureExtractor(args.model, use_cache=False, **kwargs)
    loader.embed(["load and warm up"])
    cold: list[float] = []
    warm: list[float] = []
    hits_ok = True
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="textinterest-cache-bench-") as tmp:
            ex = BertFeatureExtractor(args.model, cache_dir=tmp, **kwargs)
            ex.share_loaded(loader)  # time the cache, not loading
            cold.append(_time(lambda ex=ex: ex.embed(texts)))
            again = BertFeatureExtractor(args.model, cache_dir=tmp, **kwargs)
            warm.append(_time(lambda again=again: again.embed(texts)))
            hits_ok &= again.stats["cache_hits"] == len(texts) and again.stats["encoded"] == 0
    record: dict = {
        "benchmark": "embedding cache cold vs warm",
        "label": args.label,
        "textinterest_path": str(Path(textinterest.__file__).resolve().parent),
        "n": len(texts),
        "max_length": args.max_length,
        "source": source,
        "repeats": args.repeats,
        "cold_s": cold,
        "warm_s": warm,
        "cold_median_s": statistics.median(cold),
        "warm_median_s": statistics.median(warm),
        "warm_all_hits": hits_ok,
    }
    if args.large:
        rng = np.random.default_rng(0)
        dim, step = 384, 4096
        keys = [text_key(f"text {i}") for i in range(args.large)]
        reads: list[float] = []
        with tempfile.TemporaryDirectory(prefix="textinterest-cache-bench-") as tmp:
            cache = EmbeddingCache(Path(tmp), dim)
            cache.MAX_SHARDS = 10**6  # keep the shards as written
            for start in range(0, args.large, step):
                cache.add(keys[start : start + step], rng.standard_normal((len(keys[start : start + step]), dim)))
            for _ in range(args.repeats):
                fresh = EmbeddingCache(Path(tmp), dim)
                reads.append(_time(lambda fresh=fresh: fresh.lookup(keys)))
        record.update(large=args.large, read_large_s=reads, read_large_median_s=statistics.median(reads))
    try:
        record["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        pass
    text = json.dumps(record, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
