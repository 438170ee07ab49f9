"""No notebook states a result in its prose: metric values and rankings of models come from a cell.

A rerun on other data or another seed must not be able to contradict the text around it, so markdown may
explain how to read a number but may not state one. This is a grep-level guard, by sentence:

- a **metric value**: a metric's name (RMSE, MAE, HR@K, NDCG@K, MRR, accuracy, F1, AUC) and a decimal number
  or a percentage in the same sentence, outside LaTeX math (formulas may hold constants);
- a **ranking of models**: a model's name and a comparing phrase ("beats", "outperforms", "ranks best",
  "better than", "hard to beat", ...) in the same sentence.

Questions (sentences ending in "?") are exempt: exercises and predict-then-run questions ask, they do not
state. Interpretation that depends on numbers is rendered by a code cell (``display(Markdown(f"..."))``).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))

METRIC = r"(?:RMSE|MAE|HR@\s?(?:K|\d+)|NDCG@\s?(?:K|\d+)|MRR|accuracy|F1|AUC)"
NUMBER = r"(?<![\w.])(?:\d*\.\d+|\d+(?:\.\d+)?\s?%)"
MODELS = (
    r"(?:GlobalMean|Popularity|popularity|BaselineOnly|SVD\+\+|SVDpp|SVD|KNNBaseline|NMF|NormalPredictor|"
    r"seq-lstm|interest(?:-[\w-]+)?|cornac-\w+|SASRec|sasrec|GRU4Rec|gru4rec|text-profile|LSTM|TF-IDF|"
    r"fine-tuned|frozen|matrix factorisation)"
)
COMPARING = (
    r"(?:beats|beaten|outperforms?|wins?|won|loses|lost to|ranks? (?:first|best|last|second|highest|lowest)|"
    r"(?:is|was|are|were) (?:the )?(?:best|worst|strongest|weakest)|better than|worse than|hard to beat|"
    r"within a hair|is not what wins)"
)


def _sentences(markdown: str) -> list[str]:
    text = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)  # display math
    text = re.sub(r"\$[^$\n]*\$", " ", text)  # inline math
    text = re.sub(r"`[^`\n]*`", lambda m: m.group(0).strip("`"), text)  # code spans read as their text
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n\s*\n|\n\s*[-*\d]+[.)]?\s", text) if s.strip()]


def _claims(markdown: str) -> list[str]:
    found = []
    for sentence in _sentences(markdown):
        if sentence.endswith("?"):
            continue
        if re.search(rf"\b{METRIC}\b", sentence) and re.search(NUMBER, sentence):
            found.append(f"metric value: {sentence!r}")
        elif re.search(rf"\b{MODELS}\b", sentence) and re.search(rf"\b{COMPARING}\b", sentence, flags=re.I):
            found.append(f"ranking of models: {sentence!r}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_no_result_stated_in_markdown(path):
    nb = nbformat.read(path, as_version=4)
    claims = [
        f"cell {i}: {claim}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for claim in _claims(cell.source)
    ]
    assert not claims, f"{path.name} states results in markdown; render them from a cell:\n" + "\n".join(claims)


@pytest.mark.parametrize(
    "text",
    [
        "On this data SVD reaches an RMSE of 0.93.",
        "HR@10 rises to 12 % on the sticky world.",
        "In our runs `interest-no-lstm` ranks best.",
        "Popularity is hard to beat on long-tailed data.",
        "The fine-tuned classifier is better than the frozen one.",
    ],
)
def test_the_guard_catches_a_stated_result(text):
    assert _claims(text)


@pytest.mark.parametrize(
    "text",
    [
        "RMSE and MAE: lower is better.",
        "With $\\lambda = 0.02$ the RMSE is computed on the test split.",
        "Does SVD beat the global mean on RMSE by more than 0.01?",
        "A model that does not beat it has learned nothing.",
    ],
)
def test_the_guard_lets_explanations_and_questions_pass(text):
    assert not _claims(text)
