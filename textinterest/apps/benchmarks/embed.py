"""Embedding benchmark: naive fp32 against the faster paths of :class:`BertFeatureExtractor`.

Everything runs in one process on the same texts: Musical Instruments review texts when
``$TEXTINTEREST_DATA`` is set, else texts of the "synthetic" data set. Paths:

* ``naive``: PyTorch fp32, every batch padded to ``max_length``, input order, no dedupe.
* ``sorted``: PyTorch fp32, length-sorted batches with dynamic padding (``fast=None``).
* ``int8``: ``sorted`` + PyTorch per-channel int8 dynamic quantization.
* ``onnx``: ``sorted`` on ONNX Runtime fp32 (when onnxruntime and onnx are installed).
* ``onnx-int8``: ``onnx`` with per-channel int8 weights.

Each path is timed ``repeats`` times, the paths taking turns so that load from other processes
hits all of them alike; the median (and the best) is reported with the ratio of medians to ``naive``, the mean and
minimum cosine agreement with ``naive`` and the process's peak RSS so far. The cache is timed
cold (empty folder, default fast path) and warm (a new extractor over the same folder).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.apps.cli_types import OneLineParser, positive_int, writable_file
from textinterest.constants import DATA_ENV, SEED, TEXT_COL
from textinterest.utils import atomic_write_text, cpu_model, json_default, peak_rss_mb

DATASET = "amazon:Musical_Instruments"


def load_reviews(data_home: str | Path | None = None, name: str = DATASET) -> Any:
    """Interactions of a review data set (default Musical Instruments) as a DataFrame.

    Args:
        data_home: data folder (default ``$TEXTINTEREST_DATA``).
        name: data set name for :func:`textinterest.datasets.load_dataset`.

    Returns:
        The cleaned interaction table.
    """
    from textinterest.datasets import load_dataset

    return load_dataset(name, data_home=data_home).interactions


def benchmark_texts(n: int, seed: int = SEED) -> tuple[list[str], str]:
    """``n`` texts for the benchmark and where they came from.

    Musical Instruments review texts (non-empty, sampled without replacement) when
    ``$TEXTINTEREST_DATA`` is set, else "synthetic" review texts.
    """
    rng = np.random.default_rng(seed)
    if os.environ.get(DATA_ENV):
        df = load_reviews()
        texts = df.loc[df[TEXT_COL].str.len() > 0, TEXT_COL].tolist()
        source = f"{DATASET} review texts"
    else:
        from textinterest.datasets import load_dataset

        texts = load_dataset("synthetic").interactions[TEXT_COL].tolist()
        source = "synthetic review texts"
    texts = list(dict.fromkeys(texts))  # distinct texts, so dedupe does not flatter any path
    if n > len(texts):
        raise ValueError(f"n={n} but only {len(texts)} distinct texts are available ({source})")
    pick = rng.choice(len(texts), size=n, replace=False)
    return [texts[i] for i in pick], source


def machine_info() -> dict:
    """CPU model, core count, load average and library versions for benchmark records."""
    import torch
    import transformers

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        pass
    return info


def _naive_embed(extractor: Any, texts: Sequence[str], max_length: int, batch_size: int) -> np.ndarray:
    """fp32, each batch padded to ``max_length``, input order, no dedupe, mean pooling."""
    import torch

    from textinterest.text.features import _pool

    tok, model = extractor.tokenizer, extractor.model
    out = np.empty((len(texts), extractor.dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tok(
                list(texts[start : start + batch_size]),
                padding="max_length",
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            out[start : start + batch_size] = _pool(hidden, enc["attention_mask"], "mean").numpy()
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def format_embed_table(result: dict) -> str:
    """Plain-text table of a :func:`run_embed_benchmark` result."""
    lines = [
        f"texts: {result['n']} ({result['source']}), max_length {result['max_length']}, "
        f"batch {result['batch_size']}, median of {result['repeats']}",
        f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"torch {result['machine']['torch']}, onnxruntime {result['machine'].get('onnxruntime')}",
        "",
        f"{'path':<11} {'reviews/s':>10} {'best/s':>8} {'x naive':>8} {'cos mean':>9} {'cos min':>8} {'setup s':>8} "
        f"{'peak RSS MB':>12}",
    ]
    for row in result["paths"]:
        lines.append(
            f"{row['path']:<11} {row['reviews_per_s']:>10.1f} {row['best_reviews_per_s']:>8.1f} "
            f"{row['speedup_vs_naive']:>8.2f} "
            f"{row['cos_mean']:>9.4f} {row['cos_min']:>8.4f} {row['setup_s']:>8.2f} {row['peak_rss_mb']:>12.0f}"
        )
    for row in result.get("skipped", []):
        lines.append(f"{row['path']:<11} skipped: {row['reason']}")
    c = result["cache"]
    lines += [
        "",
        f"cache ({c['fast']}): cold {c['cold_s']:.2f} s, warm {c['warm_s']:.3f} s "
        f"({100 * c['warm_over_cold']:.2f} % of cold), hits {c['warm_hits']}/{c['n']}",
        f"best path meeting mean cosine >= 0.99: {result['best']['path']} "
        f"({result['best']['speedup_vs_naive']:.2f}x naive)",
    ]
    return "\n".join(lines)


def _time_cache(model: str, cache_texts: Sequence[str], max_length: int, batch_size: int, say: Any) -> dict:
    """Cache timing: cold (empty folder) vs warm (new extractor, same folder), default fast path."""
    from textinterest.text.features import BertFeatureExtractor

    with tempfile.TemporaryDirectory(prefix="textinterest-bench-cache-") as tmp:

        def extractor() -> BertFeatureExtractor:  # the default fast path, caching in tmp
            return BertFeatureExtractor(
                model,
                max_length=max_length,
                batch_size=batch_size,
                device="cpu",
                cache_dir=tmp,
                fast="auto",
                progress=False,
            )

        cold_ex = extractor()
        cold_ex.embed(["warm-up text that is not in the set"])
        say(f"  cache: cold run over {len(cache_texts)} texts", flush=True)
        t0 = time.perf_counter()
        cold_vectors = cold_ex.embed(cache_texts)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm_ex = extractor()
        warm_vectors = warm_ex.embed(cache_texts)
        warm = time.perf_counter() - t0
        cache = {
            "n": len(cache_texts),
            "fast": cold_ex.fast_mode,
            "cold_s": cold,
            "warm_s": warm,
            "warm_over_cold": warm / cold,
            "warm_hits": warm_ex.stats["cache_hits"],
            "warm_encoded": warm_ex.stats["encoded"],
            "warm_equal_cold": bool(np.array_equal(warm_vectors, cold_vectors)),
            "note": "cold includes encoding all texts (model already loaded); warm includes building a "
            "new extractor (config + weights hash lookup) and reading the cache",
        }
    return cache


def _prepare_paths(
    model: str, texts: Sequence[str], wanted: Sequence[str], max_length: int, batch_size: int
) -> tuple[dict[str, Any], dict[str, float], list[dict]]:
    """Load (and warm up) the naive path and each wanted path that can run here.

    Returns:
        ``(runners, setup, skipped)``: path -> a call that embeds ``texts``, path -> setup seconds, and
        the paths that cannot run here with the reason.
    """
    from textinterest.text.features import BertFeatureExtractor, _onnx_available

    runners: dict[str, Any] = {}
    setup: dict[str, float] = {}
    skipped: list[dict] = []
    t0 = time.perf_counter()
    naive_ex = BertFeatureExtractor(model, max_length=max_length, batch_size=batch_size, device="cpu", use_cache=False)
    _naive_embed(naive_ex, texts[:4], max_length, batch_size)  # load + warm up
    setup["naive"] = time.perf_counter() - t0
    runners["naive"] = lambda: _naive_embed(naive_ex, texts, max_length, batch_size)
    for path in wanted:
        fast = None if path == "sorted" else path
        if path in ("onnx", "onnx-int8") and not _onnx_available():
            skipped.append({"path": path, "reason": "onnxruntime/onnx not installed"})
            continue
        t0 = time.perf_counter()
        try:
            ex = BertFeatureExtractor(
                model,
                max_length=max_length,
                batch_size=batch_size,
                device="cpu",
                use_cache=False,
                fast=fast,
                progress=False,
            )
            ex.embed(texts[:4])  # load, export/quantize, warm up
        except Exception as exc:  # a path that cannot run here is reported, not fatal
            skipped.append({"path": path, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        setup[path] = time.perf_counter() - t0
        runners[path] = functools.partial(ex.embed, texts)
    return runners, setup, skipped


def _time_paths(
    runners: dict[str, Any], repeats: int, n: int, say: Any
) -> tuple[dict[str, list[float]], dict[str, np.ndarray], dict[str, float]]:
    """Run every path ``repeats`` times, the paths taking turns.

    Returns:
        ``(times, outputs, rss)``: path -> seconds of each run, path -> its last vectors, path -> the
        process's peak RSS (MB) after its last run.
    """
    times: dict[str, list[float]] = {p: [] for p in runners}
    outputs: dict[str, np.ndarray] = {}
    rss: dict[str, float] = {}
    for r in range(repeats):
        for path, fn in runners.items():
            t0 = time.perf_counter()
            outputs[path] = fn()
            times[path].append(time.perf_counter() - t0)
            rss[path] = peak_rss_mb()
            say(f"  repeat {r + 1}/{repeats} {path:<10} {n / times[path][-1]:8.1f} reviews/s", flush=True)
    return times, outputs, rss


def _path_rows(
    times: dict[str, list[float]],
    outputs: dict[str, np.ndarray],
    setup: dict[str, float],
    rss: dict[str, float],
    n: int,
) -> list[dict]:
    """One result row per path: throughput (median and best), ratio to naive, cosine agreement with naive."""
    ref = outputs["naive"]
    naive_rate = n / statistics.median(times["naive"])
    rows = []
    for path in times:
        med = statistics.median(times[path])
        cos = _cosines(outputs[path], ref)
        rows.append(
            {
                "path": path,
                "reviews_per_s": n / med,
                "best_reviews_per_s": n / min(times[path]),
                "median_s": med,
                "seconds": times[path],
                "speedup_vs_naive": (n / med) / naive_rate,
                "cos_mean": float(cos.mean()),
                "cos_min": float(cos.min()),
                "setup_s": setup[path],
                "peak_rss_mb": rss[path],
            }
        )
    return rows


def run_embed_benchmark(
    n: int = 512,
    max_length: int = 128,
    batch_size: int = 32,
    repeats: int = 3,
    texts: Sequence[str] | None = None,
    json_out: str | Path | None = None,
    verbose: bool = True,
    paths: Sequence[str] | None = None,
    model: str = "default",
    cache_n: int | None = None,
) -> dict:
    """Measure embedding throughput of the naive path and each faster path, and the cache.

    Args:
        n: number of texts (ignored when ``texts`` is given).
        max_length: token limit for every path.
        batch_size: texts per forward pass for every path.
        repeats: timed runs per path (median reported).
        texts: texts to embed (default: see :func:`benchmark_texts`).
        json_out: also write the result as JSON to this file.
        verbose: print the table (and progress lines) to stdout.
        paths: subset of ("sorted", "int8", "onnx", "onnx-int8"); default all available.
        model: encoder ("default" = packaged all-MiniLM-L6-v2).
        cache_n: number of texts for the cold/warm cache timing (default ``n``; with
            ``$TEXTINTEREST_DATA`` set, e.g. 10000 times a whole-corpus rerun).

    Returns:
        ``{"n", "source", "max_length", "batch_size", "repeats", "machine", "paths": [...],
        "skipped": [...], "cache": {...}, "best": {...}}``; each path row has ``reviews_per_s``,
        ``seconds`` (all repeats), ``speedup_vs_naive``, ``cos_mean``, ``cos_min``,
        ``setup_s`` and ``peak_rss_mb``.
    """
    from textinterest.text.features import configure_threads

    configure_threads()
    if texts is None:
        texts, source = benchmark_texts(n)
    else:
        from textinterest.text.features import validate_texts

        texts, source = validate_texts(texts), "given texts"
    n = len(texts)
    if n == 0:
        raise ValueError("no texts to benchmark")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    wanted = list(paths) if paths is not None else ["sorted", "int8", "onnx", "onnx-int8"]
    say = print if verbose else (lambda *a, **k: None)

    runners, setup, skipped = _prepare_paths(model, texts, wanted, max_length, batch_size)
    times, outputs, rss = _time_paths(runners, repeats, n, say)
    rows = _path_rows(times, outputs, setup, rss, n)

    cache = _time_cache(
        model, texts if not cache_n or cache_n == n else benchmark_texts(cache_n)[0], max_length, batch_size, say
    )

    ok = [r for r in rows if r["path"] != "naive" and r["cos_mean"] >= 0.99]
    best = max(ok, key=lambda r: r["reviews_per_s"]) if ok else rows[0]
    result = {
        "n": n,
        "source": source,
        "max_length": max_length,
        "batch_size": batch_size,
        "repeats": repeats,
        "machine": machine_info(),
        "paths": rows,
        "skipped": skipped,
        "cache": cache,
        "best": {k: best[k] for k in ("path", "reviews_per_s", "speedup_vs_naive", "cos_mean", "cos_min")},
    }
    if verbose:
        print(format_embed_table(result))
    if json_out is not None:
        atomic_write_text(Path(json_out), json.dumps(result, indent=2, default=json_default) + "\n")
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options of ``textinterest benchmark embed``."""
    p = OneLineParser(prog="textinterest benchmark embed", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=positive_int, default=512, help="number of texts")
    p.add_argument("--max-length", type=positive_int, default=128)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument(
        "--cache-n", type=positive_int, default=None, help="texts for the cold/warm cache timing (default: --n)"
    )
    p.add_argument("--output", type=writable_file, default=None, help="also write the JSON result here")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``textinterest benchmark embed [--n N] [--repeats R] [--output FILE] [--json]``."""
    args = parse_args(argv)
    result = run_embed_benchmark(
        n=args.n,
        max_length=args.max_length,
        batch_size=args.batch_size,
        repeats=args.repeats,
        json_out=args.output,
        verbose=not args.json,
        cache_n=args.cache_n,
    )
    if args.json:
        print(json.dumps(result, indent=2, default=json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
