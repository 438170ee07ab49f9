"""``textinterest benchmark scale``: how time and memory grow from ten thousand to a million reviews.
(Above 500 lines on purpose: one benchmark, stage by stage, with the process that isolates each size.)

For each size (reviews of the vectorised synthetic world, a fixed catalogue of ``n_items`` items) the
whole pipeline runs once, stage by stage:

==================  =============================================================================
generate            ``load_dataset("synthetic", n_users=size / 19, n_items=..., vectorised=True)``
split               leave-last-out (train / validation / test)
embed               training reviews and item texts with the chosen encoder (default "hashing"),
                    written to a numpy memmap (``.npy``) in a scratch folder and read from there
sentiment           the frozen sentiment classifier fitted on the training reviews, then scored
train_mf            one epoch of ``MFRecommender`` (ranking task)
train_interest      one epoch of ``InterestRecommender`` (ranking task, text + sentiment)
evaluate_mf         full-ranking evaluation of the test rows (every item is a candidate)
evaluate_interest   the same for the interest model
==================  =============================================================================

Each size runs in a fresh Python process, so its peak resident memory (``peak_rss_mb``: the
process's high-water mark when the stage ends) belongs to that size alone. The embedding cache of
a size lives in a scratch folder that is removed afterwards.

The growth exponent of a stage between sizes a < b is ``log(t_b / t_a) / log(b / a)``: 1 means
linear; ``exponent_fit`` is the least-squares slope on log-log axes over the sizes from ``fit_from``
(default 100,000) up. The catalogue is fixed on purpose: full ranking costs users x items, so with a
catalogue that grew with the data the evaluation could not be linear in the number of reviews.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.constants import RATING_COL, SEED

STAGES = ("generate", "split", "embed", "sentiment", "train_mf", "train_interest", "evaluate_mf", "evaluate_interest")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
MEAN_REVIEWS_PER_USER = 19  # the synthetic world's default: 8 to 30 reviews per user
# One training epoch of each model (ranking task); recorded in the result's "config". Batches are counted
# in interactions for "mf" and in users' history windows for "interest" (each holds up to 50 interactions).
TRAINING: dict[str, dict[str, Any]] = {
    "mf": {"batch_size": 4096, "lr": 1e-2},
    # the model's default time-safe item text, built from the training reviews (see ITEM_TEXT)
    "interest": {"batch_size": 64, "lr": 3e-3, "n_negatives": 256, "time_safe_text": True},
}
# Item text vectors come from the items' training reviews, as in every real review data set the package
# loads; the synthetic items' metadata sentences are not embedded, since a metadata vector is fixed in time
# and would leave the time-safe path (the costly one) unmeasured.
ITEM_TEXT = "training reviews (time-safe); item metadata not used"


def _rss_now_mb() -> float:
    """Current resident memory in MiB (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _training() -> dict[str, dict[str, Any]]:
    """The training settings of the benchmark, as recorded in its result."""
    return {name: {"epochs": 1, **settings} for name, settings in TRAINING.items()}


def embed_to_memmap(extractor: Any, texts: Sequence[str], path: str | Path, chunk: int = 100_000) -> np.ndarray:
    """Embed ``texts`` chunk by chunk into an ``.npy`` file and return it memory-mapped (read-only).

    Only one chunk of vectors is held in memory while embedding; the returned array is backed by the
    file, so the operating system can drop its pages under memory pressure.

    Args:
        extractor: object with ``embed(texts) -> (n, dim)`` and ``dim``.
        texts: the texts.
        path: the ``.npy`` file to write.
        chunk: texts per call to ``embed``.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(texts), int(extractor.dim)))
    for start in range(0, len(texts), chunk):
        out[start : start + chunk] = extractor.embed(texts[start : start + chunk])
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def _sentiment(train: Any, texts: list[str], encoder: str) -> tuple[np.ndarray | None, dict]:
    """Frozen sentiment classifier on 90% of the rated training reviews, checked on the other 10%."""
    from textinterest.text.sentiment import SentimentClassifier, sentiment_labels

    labels = np.asarray(sentiment_labels(train[RATING_COL].to_numpy(dtype=np.float64), scheme="binary"))
    usable = np.flatnonzero(labels >= 0)
    if usable.size < 20 or len(np.unique(labels[usable])) < 2:
        return None, {"status": "skipped"}
    perm = np.random.default_rng(SEED).permutation(usable)
    n_val = max(len(perm) // 10, 1)
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    clf = SentimentClassifier(encoder, mode="frozen", fast=None, seed=SEED, device="cpu")
    clf.fit([texts[i] for i in fit_idx], labels[fit_idx], [texts[i] for i in val_idx], labels[val_idx])
    scores = np.clip(np.asarray(clf.score(texts), dtype=np.float32), -1.0, 1.0)
    accuracy = float(((scores[val_idx] > 0).astype(int) == labels[val_idx]).mean())
    return scores, {"status": "ok", "val_accuracy": accuracy}


class _StageClock:
    """Times the stages of one size: wall and CPU seconds since the previous stage, and memory.

    Args:
        n_reviews: the size (for the progress lines).
        progress: receives a line per finished stage.
        partial: append each finished stage to this JSON-lines file as it ends.
    """

    def __init__(self, n_reviews: int, progress: Callable[[str], None] | None, partial: str | Path | None) -> None:
        self.n_reviews = n_reviews
        self.progress = progress
        self.partial = partial
        self.stages: dict[str, dict[str, float]] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def done(self, stage: str) -> None:
        """Record ``stage`` as finished now and restart the clocks."""
        from textinterest.utils import peak_rss_mb

        now = time.perf_counter()
        self.stages[stage] = {
            "seconds": now - self._wall,
            "cpu_seconds": time.process_time() - self._cpu,
            "peak_rss_mb": peak_rss_mb(),
            "rss_mb": _rss_now_mb(),
        }
        if self.progress is not None:
            self.progress(
                f"{self.n_reviews:>9,} reviews  {stage:<18} {now - self._wall:8.1f} s  "
                f"(cpu {self.stages[stage]['cpu_seconds']:7.1f} s)  peak {peak_rss_mb():7.0f} MiB"
            )
        if self.partial is not None:
            with open(self.partial, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"stage": stage, **self.stages[stage]}) + "\n")
        self._wall, self._cpu = time.perf_counter(), time.process_time()


def _train_models(
    train: Any, vectors: np.ndarray, scores: np.ndarray | None, n_topics: int, clock: _StageClock
) -> dict[str, Any]:
    """One epoch of ``MFRecommender`` and of ``InterestRecommender`` (ranking task), each a stage."""
    from dataclasses import replace

    from textinterest.models.cf import MFRecommender
    from textinterest.models.interest import InterestConfig, InterestRecommender, TextFeatures
    from textinterest.training import TrainConfig

    one_epoch = TrainConfig(epochs=1, patience=0, seed=SEED, device="cpu", progress=False)
    mf = MFRecommender("ranking", train_config=replace(one_epoch, **TRAINING["mf"])).fit(train)
    clock.done("train_mf")
    features = TextFeatures(
        review_vectors=vectors,
        sentiment=scores,
        texts=None,
        item_ids=None,
        item_vectors=None,
    )
    model_keys = ("n_negatives", "time_safe_text")
    config = InterestConfig(n_components=n_topics, **{k: TRAINING["interest"][k] for k in model_keys})
    settings = {k: v for k, v in TRAINING["interest"].items() if k not in model_keys}
    interest = InterestRecommender(config, features, task="ranking", train_config=replace(one_epoch, **settings)).fit(
        train
    )
    clock.done("train_interest")
    return {"mf": mf, "interest": interest}


def _evaluate_models(models: dict[str, Any], train: Any, test: Any, clock: _StageClock) -> dict[str, dict]:
    """Full-ranking evaluation of each model on the test rows, each a stage (``evaluate_NAME``)."""
    from textinterest.evaluation import evaluate_ranking

    metrics = {}
    for name, model in models.items():
        ids = model.user_index.ids
        result = evaluate_ranking(
            lambda u, m=model, i=ids: m.score_items(i[u]), train, test, model.user_index, model.item_index
        )
        metrics[name] = {k: result[k] for k in ("hr@10", "ndcg@10", "mrr", "n_cases", "n_items")}
        clock.done(f"evaluate_{name}")
    return metrics


def _import_stage_modules() -> None:
    """Import what the training and evaluation stages use before the clock starts, so no stage times an import."""
    for module in (
        "textinterest.evaluation",
        "textinterest.models.cf",
        "textinterest.models.interest",
        "textinterest.training",
        "textinterest.utils",
    ):
        importlib.import_module(module)


def run_one_size(
    n_reviews: int,
    *,
    n_items: int = 2000,
    encoder: str = "hashing",
    scratch: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    partial: str | Path | None = None,
) -> dict[str, Any]:
    """Run every stage once for one size in this process (see the module docstring).

    Args:
        n_reviews: target number of reviews (the world has ``n_reviews / 19`` users).
        n_items: catalogue size.
        encoder: text encoder name ("hashing", "hashing:D" or a BERT encoder).
        scratch: folder for the vector memmaps (default: a temporary folder).
        progress: receives a line per finished stage.
        partial: append each finished stage to this JSON-lines file as it ends (what a killed run leaves).

    Returns:
        ``{"n_reviews", "n_users", "n_items", "n_train", "n_test", "stages": {stage: {"seconds",
        "peak_rss_mb", "rss_mb"}}, "sentiment", "metrics"}``.
    """
    from textinterest.datasets import load_dataset
    from textinterest.datasets.splits import split_interactions
    from textinterest.protocol.experiments import review_texts
    from textinterest.text.hashing import make_extractor

    if n_reviews < MEAN_REVIEWS_PER_USER or n_items < 10:
        raise ValueError(f"need n_reviews >= {MEAN_REVIEWS_PER_USER} and n_items >= 10, got {n_reviews}, {n_items}")
    _import_stage_modules()
    tmp = tempfile.TemporaryDirectory(prefix="textinterest-scale-") if scratch is None else None
    folder = Path(tmp.name if tmp is not None else scratch)
    clock = _StageClock(n_reviews, progress, partial)
    try:
        data = load_dataset(
            "synthetic", n_users=max(1, round(n_reviews / MEAN_REVIEWS_PER_USER)), n_items=n_items, vectorised=True
        )
        clock.done("generate")
        parts = split_interactions(data.interactions, how="leave-last-out", seed=SEED)
        train, val, test = parts.train, parts.val, parts.test
        del data.interactions
        clock.done("split")
        extractor = make_extractor(encoder, device="cpu", progress=False)
        texts = review_texts(train)
        vectors = embed_to_memmap(extractor, texts, folder / "review_vectors.npy")
        clock.done("embed")
        scores, sentiment_info = _sentiment(train, texts, encoder)
        clock.done("sentiment")
        models = _train_models(train, vectors, scores, len(data.ground_truth["topics"]), clock)
        metrics = _evaluate_models(models, train, test, clock)
        return {
            "n_reviews_target": int(n_reviews),
            "n_reviews": int(len(train) + len(val) + len(test)),
            "n_users": int(train["user_id"].nunique()),
            "n_items": int(n_items),
            "n_train": int(len(train)),
            "n_test": int(len(test)),
            "encoder": encoder,
            "stages": clock.stages,
            "sentiment": sentiment_info,
            "metrics": metrics,
        }
    finally:
        if tmp is not None:
            tmp.cleanup()


def growth_exponents(sizes: Sequence[float], seconds: Sequence[float], fit_from: float = 100_000) -> dict[str, Any]:
    """Growth exponents of one stage: between consecutive sizes, and the log-log slope from ``fit_from`` up.

    Args:
        sizes: the sizes (ascending).
        seconds: the measured value at each size (time or memory).
        fit_from: smallest size included in the fitted slope (all sizes when fewer than two reach it).

    Returns:
        ``{"pairs": {"a->b": exponent}, "fit": slope or None, "fit_sizes": [...]}``.
    """
    pts = [(float(n), float(t)) for n, t in zip(sizes, seconds) if n > 0 and t > 0 and math.isfinite(t)]
    pairs = {
        f"{int(a)}->{int(b)}": math.log(tb / ta) / math.log(b / a) for (a, ta), (b, tb) in zip(pts, pts[1:]) if b > a
    }
    chosen = [p for p in pts if p[0] >= fit_from]
    if len(chosen) < 2:
        chosen = pts
    fit = None
    if len(chosen) >= 2 and len({p[0] for p in chosen}) >= 2:
        x = np.log([p[0] for p in chosen])
        y = np.log([p[1] for p in chosen])
        fit = float(np.polyfit(x, y, 1)[0])
    return {"pairs": pairs, "fit": fit, "fit_sizes": [int(p[0]) for p in chosen]}


def _child(
    n_reviews: int, n_items: int, encoder: str, verbose: bool, timeout: float | None, threads: int = 1
) -> dict[str, Any]:
    """Run one size in a fresh interpreter and return its result (the child prints JSON last).

    The child's torch, OpenMP and BLAS libraries use ``threads`` threads.

    A size that fails or runs past ``timeout`` seconds returns the stages it finished, with
    ``"complete": False`` and the reason.
    """
    with tempfile.TemporaryDirectory(prefix="textinterest-scale-cache-") as scratch:
        partial = Path(scratch) / "stages.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "textinterest.apps.scale",
            "--one",
            str(n_reviews),
            "--items",
            str(n_items),
            "--encoder",
            encoder,
            "--partial",
            str(partial),
            "--threads",
            str(threads),
        ]
        env = {**os.environ, "TEXTINTEREST_CACHE": scratch, "TQDM_DISABLE": "1"}
        env.update({name: str(threads) for name in THREAD_VARIABLES})
        reason = None
        try:
            proc = subprocess.run(
                cmd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=None if verbose else subprocess.PIPE,
                text=True,
                check=False,
                timeout=timeout,
            )
            if proc.returncode == 0:
                return {**json.loads(proc.stdout.strip().splitlines()[-1]), "complete": True}
            reason = f"exit status {proc.returncode}: {(proc.stderr or '')[-1500:]}"
        except subprocess.TimeoutExpired:
            reason = f"stopped after the {timeout:.0f} s time limit"
        lines = partial.read_text(encoding="utf-8").splitlines() if partial.is_file() else []
    stages = {row.pop("stage"): row for row in map(json.loads, lines)}
    return {
        "n_reviews_target": n_reviews,
        "n_reviews": n_reviews,
        "n_items": n_items,
        "encoder": encoder,
        "stages": stages,
        "complete": False,
        "reason": reason,
    }


def _reusable_runs(reuse: str | Path | None, n_items: int, encoder: str, threads: int) -> dict[int, dict[str, Any]]:
    """The complete sizes of an earlier result run with the same items, encoder, training and threads.

    Args:
        reuse: the earlier result JSON (nothing is reused when it is None or not a file).
        n_items, encoder, threads: the settings of this run.

    Returns:
        Target review count -> that size's earlier result.
    """
    if reuse is None or not Path(reuse).is_file():
        return {}
    old = json.loads(Path(reuse).read_text(encoding="utf-8"))
    same = {
        "n_items": n_items,
        "encoder": encoder,
        "training": json.loads(json.dumps(_training())),
        "threads": threads,
        "item_text": ITEM_TEXT,
    }
    if not all(old.get("config", {}).get(key) == value for key, value in same.items()):
        return {}
    return {r["n_reviews_target"]: r for r in old.get("sizes", []) if r.get("complete")}


def _all_exponents(runs: list[dict[str, Any]], fit_from: float) -> dict[str, Any]:
    """Growth exponents of every stage (time, CPU time, peak memory) and of the complete runs' totals."""
    exponents: dict[str, Any] = {}
    for stage in STAGES:
        have = [r for r in runs if stage in r["stages"]]
        xs = [r["n_reviews"] for r in have]
        exponents[stage] = {
            key: growth_exponents(xs, [r["stages"][stage][key] for r in have], fit_from)
            for key in ("seconds", "cpu_seconds", "peak_rss_mb")
        }
    done = [r for r in runs if r.get("complete")]
    exponents["total"] = {
        key: growth_exponents(
            [r["n_reviews"] for r in done], [sum(s[key] for s in r["stages"].values()) for r in done], fit_from
        )
        for key in ("seconds", "cpu_seconds")
    }
    return exponents


def run_scale_benchmark(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    n_items: int = 2000,
    encoder: str = "hashing",
    json_out: str | Path | None = None,
    verbose: bool = True,
    fit_from: int = 100_000,
    timeout: float | None = None,
    reuse: str | Path | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Measure every stage at every size, each size in its own process (see the module docstring).

    Args:
        sizes: target review counts, e.g. (10_000, 100_000, 1_000_000).
        n_items: catalogue size (the same for every size).
        encoder: text encoder name.
        json_out: also write the result here.
        verbose: print a line per stage to stderr.
        fit_from: smallest size in the fitted growth exponent.
        timeout: seconds allowed per size (a size past it keeps the stages it finished).
        reuse: an earlier result JSON: its complete sizes (same items, encoder and training settings) are
            kept, not rerun.
        threads: threads of torch, OpenMP and BLAS in each size's process. One by default: on a machine
            shared with other busy processes, a second thread mostly waits at barriers for a descheduled
            partner (measured: several times the CPU seconds of one thread for the same steps).

    Returns:
        ``{"sizes": [per-size results], "exponents": {stage: {"seconds": ..., "peak_rss_mb": ...}},
        "machine": {...}, "loadavg": {...}, "config": {...}}``.
    """
    from textinterest.utils import atomic_write_text, cpu_model, json_default, memory_gib

    sizes = sorted(int(s) for s in sizes)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not sizes or sizes[0] < MEAN_REVIEWS_PER_USER:
        raise ValueError(f"sizes must be review counts >= {MEAN_REVIEWS_PER_USER}, got {sizes}")
    earlier = _reusable_runs(reuse, n_items, encoder, threads)
    runs = []
    for size in sizes:
        if size in earlier:
            runs.append(earlier[size])
            continue
        before = os.getloadavg()
        start = time.perf_counter()
        run = _child(size, n_items, encoder, verbose, timeout, threads=threads)
        run["wall_seconds"] = time.perf_counter() - start
        run["loadavg_before"], run["loadavg_after"] = list(before), list(os.getloadavg())
        runs.append(run)
    result = {
        "sizes": runs,
        "exponents": _all_exponents(runs, fit_from),
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "memory_gib": memory_gib(),
            "python": sys.version.split()[0],
        },
        "loadavg_note": "loadavg_before / loadavg_after of each size: os.getloadavg() (1, 5, 15 min); the machine "
        "was shared with other busy processes, so wall seconds exceed CPU seconds",
        "config": {
            "n_items": n_items,
            "encoder": encoder,
            "fit_from": fit_from,
            "stages": list(STAGES),
            "training": _training(),
            "threads": threads,
            "item_text": ITEM_TEXT,
        },
    }
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=1, default=json_default) + "\n")
    return result


def _cell(run: dict[str, Any], stage: str, key: str) -> Any:
    value = run["stages"].get(stage, {}).get(key)
    return "–" if value is None else round(value, 1) if key != "peak_rss_mb" else round(value)


def format_scale_table(result: dict[str, Any]) -> str:
    """Markdown table: wall seconds, CPU seconds and peak RSS per stage and size, then the fitted exponents."""
    from textinterest.utils import markdown_table

    runs = result["sizes"]
    header = ["stage"]
    for r in runs:
        n = f"{r['n_reviews']:,}" + ("" if r.get("complete", True) else " (incomplete)")
        header += [f"{n}: wall s", "CPU s", "peak MiB"]
    header += ["exponent CPU", "exponent wall"]

    def fit(stage: str, key: str) -> str:
        entry = result["exponents"][stage][key]
        if entry["fit"] is None:
            return "–"
        text = f"{entry['fit']:.2f}"
        if entry["fit_sizes"] and entry["fit_sizes"][0] < result["config"]["fit_from"]:
            text += f" ({entry['fit_sizes'][0]:,}–{entry['fit_sizes'][-1]:,})"  # the larger sizes are missing
        return text

    rows = []
    for stage in STAGES:
        row: list[Any] = [stage]
        for r in runs:
            row += [_cell(r, stage, "seconds"), _cell(r, stage, "cpu_seconds"), _cell(r, stage, "peak_rss_mb")]
        rows.append(row + [fit(stage, "cpu_seconds"), fit(stage, "seconds")])
    row = ["**total**"]
    for r in runs:
        st = r["stages"].values()
        row += [
            round(sum(s["seconds"] for s in st), 1),
            round(sum(s["cpu_seconds"] for s in st), 1),
            round(max((s["peak_rss_mb"] for s in st), default=float("nan"))),
        ]
    rows.append(row + [fit("total", "cpu_seconds"), fit("total", "seconds")])
    return markdown_table(header, rows, align=["l"] + ["r"] * (len(header) - 1), digits=1)


def plot_scale(result: dict[str, Any], path: str | Path) -> Path:
    """Log-log plot of CPU seconds (left) and peak RSS (right) per stage against reviews; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["sizes"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for stage in STAGES:
        pts = [(r["n_reviews"], max(r["stages"][stage]["cpu_seconds"], 1e-3)) for r in runs if stage in r["stages"]]
        if pts:
            left.plot(*zip(*pts), marker="o", label=stage)
    pts = [(r["n_reviews"], max(s["peak_rss_mb"] for s in r["stages"].values())) for r in runs if r["stages"]]
    right.plot(*zip(*pts), marker="o", color="k", label="peak RSS")
    xs = np.array([runs[0]["n_reviews"], runs[-1]["n_reviews"]], dtype=float)
    base = sum(s["cpu_seconds"] for s in runs[0]["stages"].values())
    left.plot(xs, base * xs / xs[0], ls="--", color="grey", label="linear from the smallest total")
    for ax, title, ylabel in ((left, "CPU time per stage", "CPU seconds"), (right, "peak resident memory", "MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("reviews")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cmd_benchmark_scale(args: argparse.Namespace) -> int:
    """``textinterest benchmark scale``: run, print a table or JSON, write JSON and plot when asked."""
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    result = run_scale_benchmark(
        sizes,
        n_items=args.items,
        encoder=args.encoder,
        json_out=args.output,
        verbose=not args.json,
        timeout=args.timeout,
        reuse=args.reuse,
        threads=args.threads,
    )
    if args.plot:
        plot_scale(result, args.plot)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print(format_scale_table(result))
    return 0


def add_arguments(scale: argparse.ArgumentParser) -> None:
    """The options of ``textinterest benchmark scale``."""
    scale.add_argument(
        "--sizes", default=",".join(str(s) for s in DEFAULT_SIZES), help="review counts, comma-separated"
    )
    scale.add_argument("--items", type=int, default=2000, help="catalogue size (the same at every size)")
    scale.add_argument("--encoder", default="hashing", help="text encoder: hashing, hashing:D or a BERT encoder")
    scale.add_argument("--output", default=None, help="write the JSON result here (e.g. benchmarks/results/scale.json)")
    scale.add_argument("--plot", default=None, help="write the log-log plot here (PNG)")
    scale.add_argument("--timeout", type=float, default=None, help="seconds allowed per size")
    scale.add_argument("--reuse", default=None, help="keep the complete sizes of this earlier result JSON")
    scale.add_argument("--threads", type=int, default=1, help="torch / OpenMP / BLAS threads per size (default 1)")
    scale.add_argument("--json", action="store_true", help="print the JSON result instead of the table")


def _main(argv: Sequence[str] | None = None) -> int:
    """One size in this process: ``python -m textinterest.apps.scale --one N`` prints its JSON as the last line."""
    parser = argparse.ArgumentParser(prog="python -m textinterest.apps.scale")
    parser.add_argument("--one", type=int, required=True)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--encoder", default="hashing")
    parser.add_argument("--partial", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    result = run_one_size(
        args.one,
        n_items=args.items,
        encoder=args.encoder,
        partial=args.partial,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
