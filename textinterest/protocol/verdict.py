"""One verdict over several data sets: wins, ties and losses of ``interest`` against the best peer.

Reads the JSON records that ``textinterest evaluate NAME --json --output FILE`` writes (one per data
set) and puts their paired tests side by side. For each data set and metric:

- **win**: the 95 % bootstrap CI of the per-user difference (interest minus the best other model;
  for RMSE the other way round) lies above 0 *and* the Wilcoxon p-value is below 0.05;
- **loss**: the CI lies below 0 and p < 0.05;
- **tie**: anything else.

Two further columns answer the questions an issue of this project asks of a win: is the gap larger
than two seed standard deviations (the larger of the two models'), and is the text part of it
(``interest`` against ``interest-no-text`` by the same rule, when that ablation was run).

Run ``python -m textinterest.protocol.verdict FILE [FILE ...]`` for the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ALPHA", "classify", "dataset_verdicts", "format_verdict", "main"]

ALPHA = 0.05
METRICS = ("ndcg@10", "hr@10", "mrr", "rmse")
TEXT_ABLATION = "interest-no-text"
_TEXT_WORDS = {"win": "yes", "loss": "no (ablation better)", "tie": "no (tie)", None: "not recorded"}


def classify(test: dict[str, Any], metric: str, alpha: float = ALPHA) -> str:
    """ "win", "loss" or "tie" for one paired test (``diff`` = reference minus other, as recorded).

    Args:
        test: a paired-test record with ``ci_low``, ``ci_high`` and ``p_wilcoxon``.
        metric: the metric's name; for ``"rmse"`` lower is better.
        alpha: significance level of the Wilcoxon test.
    """
    for key in ("ci_low", "ci_high", "p_wilcoxon"):
        if key not in test:
            raise ValueError(f"paired test for {metric} has no {key!r}: {sorted(test)}")
    sign = -1.0 if metric == "rmse" else 1.0
    low, high = sorted((sign * test["ci_low"], sign * test["ci_high"]))
    significant = test["p_wilcoxon"] < alpha
    if low > 0 and significant:
        return "win"
    if high < 0 and significant:
        return "loss"
    return "tie"


def _mean_std(result: dict[str, Any], model: str, metric: str) -> tuple[float, float]:
    for row in result.get("results", []):
        if row.get("model") == model and metric in row:
            return float(row[metric]), float(row.get(f"{metric}_std", math.nan))
    return math.nan, math.nan


def dataset_verdicts(result: dict[str, Any], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """One row per metric of one ``evaluate`` record.

    Args:
        result: the record (``results``, ``significance`` and, when the text ablation ran,
            ``significance_ablations``).
        alpha: significance level.

    Returns:
        Rows with ``dataset, metric, n, interest, best_other, other, diff, ci_low, ci_high,
        p_wilcoxon, verdict, gap_over_2std, text_verdict`` (``text_verdict`` is None without the
        ablation).

    Raises:
        ValueError: the record has no paired tests (``interest`` was not evaluated).
    """
    sig = result.get("significance") or {}
    if not sig:
        raise ValueError(f"{result.get('dataset', '?')}: no 'significance' entries (was 'interest' evaluated?)")
    ablations = (result.get("significance_ablations") or {}).get(TEXT_ABLATION, {})
    rows = []
    for metric in (m for m in METRICS if m in sig):
        test = sig[metric]
        a, a_std = _mean_std(result, test["reference"], metric)
        b, b_std = _mean_std(result, test["best_other"], metric)
        gap = (b - a) if metric == "rmse" else (a - b)
        spread = 2 * max(a_std, b_std)
        text = ablations.get(metric)
        rows.append(
            {
                "dataset": result.get("dataset", "?"),
                "protocol": result.get("protocol", "?"),
                "split": result.get("split", "?"),
                "metric": metric,
                "n": int(test["n"]),
                "interest": test["a"],
                "best_other": test["best_other"],
                "other": test["b"],
                "diff": test["diff"],
                "ci_low": test["ci_low"],
                "ci_high": test["ci_high"],
                "p_wilcoxon": test["p_wilcoxon"],
                "verdict": classify(test, metric, alpha),
                "gap_over_2std": bool(gap > spread) if math.isfinite(spread) else None,
                "text_verdict": classify(text, metric, alpha) if text else None,
            }
        )
    return rows


def format_verdict(results: Sequence[dict[str, Any]], metrics: Sequence[str] = ("ndcg@10", "rmse")) -> str:
    """Markdown table of :func:`dataset_verdicts` over several records, and a wins/ties/losses line per metric."""
    from textinterest.utils import markdown_table

    rows, tally = [], {}
    for result in results:
        for r in dataset_verdicts(result):
            if r["metric"] not in metrics:
                continue
            tally.setdefault(r["metric"], []).append(r["verdict"])
            text = _TEXT_WORDS[r["text_verdict"]]
            rows.append(
                [
                    r["dataset"],
                    r["metric"].upper(),
                    r["n"],
                    f"{r['interest']:.4f}",
                    f"{r['best_other']} {r['other']:.4f}",
                    f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
                    f"{r['p_wilcoxon']:.3g}",
                    r["verdict"],
                    {True: "yes", False: "no", None: "–"}[r["gap_over_2std"]],
                    text,
                ]
            )
    header = [
        "data set",
        "metric",
        "test users",
        "interest",
        "best other",
        "difference [95 % CI]",
        "Wilcoxon p",
        "verdict",
        "gap > 2 seed-std",
        "interest beats its no-text ablation",
    ]
    lines = [markdown_table(header, rows), ""]
    for metric, verdicts in tally.items():
        counts = {v: verdicts.count(v) for v in ("win", "tie", "loss")}
        lines.append(
            f"- {metric.upper()}: {counts['win']} win(s), {counts['tie']} tie(s), {counts['loss']} loss(es) "
            f"over {len(verdicts)} data set(s)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m textinterest.protocol.verdict FILE [FILE ...] [--metrics ndcg@10,rmse]``: print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m textinterest.protocol.verdict", description=__doc__.splitlines()[0]
    )
    parser.add_argument("files", nargs="+", type=Path, help="JSON records of textinterest evaluate")
    parser.add_argument("--metrics", default="ndcg@10,rmse", help=f"comma-separated, from {', '.join(METRICS)}")
    args = parser.parse_args(argv)
    metrics = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        parser.error(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}")
    results = []
    for path in args.files:
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            parser.error(f"cannot read {path}: {exc}")
    try:
        print(format_verdict(results, metrics))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
