"""The cross-data-set verdict: win / tie / loss from recorded paired tests, and its command line."""

from __future__ import annotations

import json

import pytest

from textinterest.protocol.verdict import classify, dataset_verdicts, format_verdict, main


def _test(diff, low, high, p, a=0.1, b=0.1, other="bpr"):
    return {"reference": "interest", "best_other": other, "n": 100, "a": a, "b": b, "diff": diff,
            "ci_low": low, "ci_high": high, "p_wilcoxon": p}  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "low", "high", "p", "expected"),
    [
        ("ndcg@10", 0.01, 0.03, 0.01, "win"),
        ("ndcg@10", 0.01, 0.03, 0.2, "tie"),  # CI clear of 0 but Wilcoxon not significant
        ("ndcg@10", -0.01, 0.03, 0.001, "tie"),  # CI straddles 0
        ("ndcg@10", -0.03, -0.01, 0.01, "loss"),
        ("rmse", -0.03, -0.01, 0.01, "win"),  # lower RMSE than the other model
        ("rmse", 0.01, 0.03, 0.01, "loss"),
    ],
)
def test_classify(metric, low, high, p, expected):
    assert classify(_test((low + high) / 2, low, high, p), metric) == expected


def test_classify_rejects_an_incomplete_record():
    with pytest.raises(ValueError, match="p_wilcoxon"):
        classify({"ci_low": 0, "ci_high": 1}, "ndcg@10")


def _record(name, ndcg_test, text_test=None, std=0.001):
    results = [
        {"model": "interest", "ndcg@10": ndcg_test["a"], "ndcg@10_std": std},
        {"model": "bpr", "ndcg@10": ndcg_test["b"], "ndcg@10_std": std},
    ]
    record = {"dataset": name, "protocol": "val-in-history", "results": results, "significance": {"ndcg@10": ndcg_test}}
    if text_test is not None:
        record["significance_ablations"] = {"interest-no-text": {"ndcg@10": text_test}}
    return record


def test_dataset_verdicts_and_table(tmp_path, capsys):
    win = _record("A", _test(0.02, 0.01, 0.03, 0.001, a=0.07, b=0.05), text_test=_test(0.01, 0.005, 0.02, 0.01))
    tie = _record("B", _test(0.0, -0.01, 0.01, 0.5, a=0.06, b=0.06), std=0.01)
    rows = dataset_verdicts(win)
    assert [(r["metric"], r["verdict"], r["text_verdict"], r["gap_over_2std"]) for r in rows] == [
        ("ndcg@10", "win", "win", True)
    ]
    assert dataset_verdicts(tie)[0]["text_verdict"] is None and dataset_verdicts(tie)[0]["gap_over_2std"] is False
    table = format_verdict([win, tie], metrics=("ndcg@10",))
    assert "| A | NDCG@10 | 100 |" in table and "- NDCG@10: 1 win(s), 1 tie(s), 0 loss(es) over 2 data set(s)" in table
    files = []
    for record in (win, tie):
        files.append(tmp_path / f"{record['dataset']}.json")
        files[-1].write_text(json.dumps(record))
    assert main([str(f) for f in files] + ["--metrics", "ndcg@10"]) == 0
    assert capsys.readouterr().out.strip() == table.strip()


def test_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="no 'significance'"):
        dataset_verdicts({"dataset": "X", "results": []})
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    for argv in ([str(bad)], [str(tmp_path / "missing.json")], [str(bad), "--metrics", "auc"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert "unknown metric" in capsys.readouterr().err
