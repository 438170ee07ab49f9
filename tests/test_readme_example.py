"""The README's Python example runs as written: load, train and save, load back, recommend, explain.

The block under "## In Python" is executed as it stands, with one change so that the run takes
seconds: the packaged MiniLM (``encoder="default"``) is replaced by a tiny random BERT, and training
stops after 3 epochs. Its results are then checked against each other (explain() must score the
item as recommend() did, and recommend() must leave out the user's training items).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## In Python"
DEFAULT_ENCODER = 'encoder="default"'


def readme_example() -> str:
    """The one ```python block of the README's "In Python" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"expected one python block in {SECTION!r}, found {len(blocks)}"
    return blocks[0]


def test_the_example_is_short_and_does_the_four_steps():
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    for step in ("load_dataset(", "train_pipeline(", ".load(", ".recommend(", ".explain("):
        assert step in code, f"the README example no longer shows {step}"
    assert code.count(DEFAULT_ENCODER) == 1, f"the example must pass {DEFAULT_ENCODER} once (the test swaps it)"


def test_readme_example_runs(tmp_path, monkeypatch):
    from tiny_models import build_tiny_model

    from textinterest.constants import ITEM_COL, SEED, USER_COL
    from textinterest.datasets.splits import split_interactions

    encoder = build_tiny_model(tmp_path / "tiny-encoder")
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    # the tiny encoder has 64 positions, hence the shorter token limit
    code = readme_example().replace(DEFAULT_ENCODER, f"encoder={str(encoder)!r}, max_length=32, epochs=3")
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md (In Python)", "exec"), namespace)  # noqa: S102 - the README's own code

    meta, data, user, top, why = (namespace[k] for k in ("meta", "data", "user", "top", "why"))
    assert (tmp_path / "models" / "small").is_dir()
    assert 0.0 <= meta["metrics"]["ndcg@10"] <= 1.0 and meta["metrics"]["n_cases"] > 0

    assert [r["rank"] for r in top] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in top]
    assert scores == sorted(scores, reverse=True)
    # the user's own training items are left out (train_pipeline splits leave-last-out with SEED)
    train = split_interactions(data.interactions, how="leave-last-out", seed=SEED).train
    training_items = set(train.loc[train[USER_COL] == user, ITEM_COL])
    assert training_items and not training_items & {r["item_id"] for r in top}

    assert why["score"] == pytest.approx(top[0]["score"], abs=1e-4)
    assert why["cf_term"] + why["text_term"] == pytest.approx(why["score"], abs=1e-4)
    assert sum(why["composition"].values()) == pytest.approx(1.0, abs=1e-4)
    assert why["top_reviews"] and isinstance(why["top_reviews"][0]["text"], str)
