"""Every notebook's exercises come with a self-check cell a student can run.

The cell tagged ``self-check`` lists ``SELF_CHECKS``: (variable, rule, check) for each of the three exercises.
Run with no answer it says so; with an answer of the wrong shape it says "check again" instead of crashing;
a right answer passes and a wrong one does not (checked here on the exercises whose rule is an identity).
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _self_check(path: Path) -> tuple[nbformat.NotebookNode, int]:
    nb = nbformat.read(path, as_version=4)
    found = [i for i, c in enumerate(nb.cells) if "self-check" in c.get("metadata", {}).get("tags", [])]
    assert len(found) == 1, f"{path.name}: expected one cell tagged 'self-check', found {len(found)}"
    return nb, found[0]


def _run(source: str, **namespace) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "self-check", "exec"), namespace)  # noqa: S102 - the notebook's own cell
    return out.getvalue().splitlines()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_self_check_follows_the_exercises_and_names_their_answers(path):
    nb, index = _self_check(path)
    exercises = nb.cells[index - 1]
    assert "## Exercises" in exercises.source, f"{path.name}: the self-check cell must follow the exercises"
    names = [entry[0] for entry in _namespace_after(nb.cells[index].source)["SELF_CHECKS"]]
    assert len(names) == 3, f"{path.name}: one self-check per exercise"
    for name in names:
        assert f"`{name}`" in exercises.source, f"{path.name}: the exercises must tell the student to define {name}"


def _namespace_after(source: str, **namespace) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, "self-check", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_unanswered_and_malformed_answers_are_reported_not_raised(path):
    nb, index = _self_check(path)
    source = nb.cells[index].source
    lines = _run(source)
    assert len(lines) == 3 and all(line.startswith("not answered yet") for line in lines)
    names = [entry[0] for entry in _namespace_after(source)["SELF_CHECKS"]]
    lines = _run(source, **{name: object() for name in names})
    assert all(line.startswith("check again") for line in lines)


def _status(stem: str, **namespace) -> list[str]:
    nb, index = _self_check(next(p for p in NOTEBOOKS if p.stem == stem))
    return [line.split()[0] for line in _run(nb.cells[index].source, np=np, math=math, **namespace)]


def test_identity_checks_accept_the_right_answer_and_reject_a_wrong_one():
    results = pd.DataFrame({"rmse": [1.0, 0.9, 0.8]}, index=["GlobalMean", "BaselineOnly", "SVD"])
    assert _status("03_cf_baselines", results=results, bias_share=0.5)[0] == "ok"
    assert _status("03_cf_baselines", results=results, bias_share=0.6)[0] == "check"
    assert _status("04_lstm_dynamic_interest", K=3, gamma_entropy={0.1: 0.2, 1.0: 1.0})[0] == "ok"
    assert _status("04_lstm_dynamic_interest", K=3, gamma_entropy={0.1: 1.0, 1.0: 0.2})[0] == "check"
    explanations = {"top-scored item": {"score": 3.5}}
    terms = dict(zip("abcdefg", [3.0, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]))
    assert _status("04_lstm_dynamic_interest", K=3, explanations=explanations, score_terms=terms)[2] == "ok"
    terms["g"] = 0.5
    assert _status("04_lstm_dynamic_interest", K=3, explanations=explanations, score_terms=terms)[2] == "check"
