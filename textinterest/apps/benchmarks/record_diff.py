"""How far two ``evaluate`` records of the same command differ, per model and metric.

Made for one question: what moves a figure when the same command runs on another processor, another
thread count or another version of the code. For every model and metric both records hold, it pairs
the rows by seed and reports the largest and the mean absolute per-seed difference, the difference of
the seed means, and whether every seed agrees to the last bit. It also classifies every paired test
the two records share (the main model against the best other, and each ablation) as win, tie or loss
with :func:`textinterest.protocol.verdict.classify` and lists those whose verdict differs. Models whose
code differs between the two records can be named with ``--expect-changed`` so that the summary keeps
them apart.

    textinterest benchmark record_diff OLD.json NEW.json [--expect-changed sasrec] [--output FILE]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.apps.benchmarks import save_record
from textinterest.protocol.verdict import classify

METRICS = ("rmse", "mae", "hr@10", "ndcg@10", "mrr")


def _rows(record: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(row["model"], int(row["seed"])): row for row in record["runs"]}


def _paired_tests(record: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(comparison, metric): test}``: "main" (the main model against the best other) and each ablation."""
    out = {("main", m): t for m, t in (record.get("significance") or {}).items() if isinstance(t, dict) and "diff" in t}
    for ablation, tests in (record.get("significance_ablations") or {}).items():
        out.update({(ablation, m): t for m, t in tests.items() if isinstance(t, dict) and "diff" in t})
    return out


def verdict_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The paired tests both records hold whose verdict (win / tie / loss) differs between them."""
    a, b = _paired_tests(old), _paired_tests(new)
    shared = [k for k in a if k in b]
    changed = []
    for comparison, metric in shared:
        before, after = classify(a[comparison, metric], metric), classify(b[comparison, metric], metric)
        if before != after:
            changed.append(
                {
                    "comparison": comparison,
                    "metric": metric,
                    "against": [a[comparison, metric].get("best_other"), b[comparison, metric].get("best_other")],
                    "verdicts": [before, after],
                    "p_wilcoxon": [a[comparison, metric]["p_wilcoxon"], b[comparison, metric]["p_wilcoxon"]],
                }
            )
    return {"compared": len(shared), "changed": changed}


def compare(
    old: dict[str, Any], new: dict[str, Any], *, expect_changed: Sequence[str] = (), metrics: Sequence[str] = METRICS
) -> dict[str, Any]:
    """Per-model, per-metric differences between two evaluate records (``result["runs"]`` rows).

    Args:
        old, new: two results of ``run_evaluation`` (or their JSON records).
        expect_changed: models whose code differs between the two runs (kept out of ``unchanged_models``).
        metrics: metrics to compare.

    Returns:
        ``{"models": {model: {metric: {"seeds", "max_abs", "mean_abs", "mean_difference",
        "identical"}}}, "unchanged_models": {"identical": [...], "moved": {model: largest |diff|}},
        "verdicts": {"compared", "changed": [...]} (:func:`verdict_changes`), "seeds",
        "environments": [old, new]}``. ``mean_difference`` is new minus old.
    """
    a, b = _rows(old), _rows(new)
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two records share no (model, seed) row")
    models: dict[str, dict[str, Any]] = {}
    for model in dict.fromkeys(m for m, _ in common):
        seeds = [s for m, s in common if m == model]
        per_metric = {}
        for metric in metrics:
            pairs = [(a[model, s].get(metric), b[model, s].get(metric)) for s in seeds]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            if not pairs:
                continue
            x, y = np.array(pairs, dtype=float).T
            d = y - x
            per_metric[metric] = {
                "seeds": len(d),
                "max_abs": float(np.abs(d).max()),
                "mean_abs": float(np.abs(d).mean()),
                "mean_difference": float(d.mean()),
                "identical": bool((x == y).all()),
            }
        if per_metric:
            models[model] = per_metric
    unchanged = {m: v for m, v in models.items() if m not in set(expect_changed)}
    return {
        "models": models,
        "unchanged_models": {
            "identical": [m for m, v in unchanged.items() if all(r["identical"] for r in v.values())],
            "moved": {
                m: max(r["max_abs"] for r in v.values())
                for m, v in unchanged.items()
                if not all(r["identical"] for r in v.values())
            },
        },
        "verdicts": verdict_changes(old, new),
        "expect_changed": list(expect_changed),
        "seeds": sorted({s for _, s in common}),
        "environments": [old.get("environment"), new.get("environment")],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``textinterest benchmark record_diff OLD NEW [options]``."""
    from textinterest.apps.cli_types import OneLineParser

    p = OneLineParser(prog="textinterest benchmark record_diff", description=__doc__.split("\n\n")[0])
    p.add_argument("old", help="an evaluate record (JSON)")
    p.add_argument("new", help="the same command's record from another machine or version")
    p.add_argument("--expect-changed", default="", help="comma-separated models whose code differs")
    p.add_argument("--output", default=None)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    old, new = (json.loads(Path(f).read_text()) for f in (args.old, args.new))
    record = compare(old, new, expect_changed=[m for m in args.expect_changed.split(",") if m])
    record["files"] = [args.old, args.new]
    save_record(record, "record_diff", sys.argv[1:] if argv is None else argv, args.output)
    for model, per_metric in record["models"].items():
        cells = [
            f"{metric} identical"
            if r["identical"]
            else f"{metric} max {r['max_abs']:.4f} mean {r['mean_difference']:+.4f}"
            for metric, r in per_metric.items()
        ]
        print(f"{model}: {', '.join(cells)}")
    verdicts = record["verdicts"]
    print(f"paired tests with another verdict: {len(verdicts['changed'])} of {verdicts['compared']}")
    for c in verdicts["changed"]:
        print(f"  {c['comparison']} {c['metric']}: {c['verdicts'][0]} -> {c['verdicts'][1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
