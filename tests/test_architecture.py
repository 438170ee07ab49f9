"""The one-way data flow of the README's Architecture section, checked on the source.

A module may import (at top level or inside a function) only modules of its own stage or of an
earlier one; a new module must be given a stage here, next to the README's table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "textinterest"

# Stage of each module (by prefix: the longest matching prefix wins). Lower stages never import higher ones.
STAGES: dict[str, int] = {
    # 0 foundation: names, small helpers, metrics and id vocabularies, the torch trainer
    "textinterest.constants": 0,
    "textinterest.utils": 0,
    "textinterest.evaluation": 0,
    "textinterest.significance": 0,
    "textinterest.job_pool": 0,
    "textinterest.training": 0,
    # 1 data
    "textinterest.datasets": 1,
    # 2 text: encoder, its cache and fast path, sentiment
    "textinterest.features": 2,
    "textinterest.embedding_cache": 2,
    "textinterest.fastpath": 2,
    "textinterest.item_vectors": 2,
    "textinterest.encoder_layers": 2,
    "textinterest.sentiment": 2,
    "textinterest.hashing": 2,
    "textinterest.gpu_embed": 2,
    # 3 models
    "textinterest.models": 3,
    "textinterest.baselines": 3,
    "textinterest.recommend": 3,
    # 4 the evaluation protocol
    "textinterest.experiments": 4,
    "textinterest.text_inputs": 4,
    "textinterest.pipeline": 4,
    "textinterest.serving_eval": 4,
    "textinterest.scale": 4,
    "textinterest.distributed": 4,
    "textinterest.protocols": 4,
    "textinterest.verdict": 4,
    # 5 reporting
    "textinterest.reporting": 5,
    "textinterest.reproduce": 5,
    # applications on top of everything
    "textinterest.cli": 9,
    "textinterest.cli_types": 9,
    "textinterest.cli_serving": 9,
    "textinterest.serve": 9,
    "textinterest.benchmarks": 9,
    "textinterest.__main__": 9,
    "textinterest": 9,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stage_of(module: str) -> int | None:
    best = None
    for prefix, stage in STAGES.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, stage)
    return None if best is None else best[1]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # "from textinterest import features" imports the submodule
            if node.module == "textinterest":
                found.update(
                    f"textinterest.{a.name}"
                    for a in node.names
                    if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                )
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "textinterest" or m.startswith("textinterest.")}


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_stage():
    missing = [module_name(p) for p in SOURCES if stage_of(module_name(p)) is None]
    assert not missing, f"give these modules a stage in tests/test_architecture.py and the README: {missing}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_flow_one_way(path):
    here = module_name(path)
    mine = stage_of(here)
    wrong = []
    for target in imported_modules(path):
        theirs = stage_of(target)
        if theirs is not None and mine is not None and theirs > mine and target != "textinterest":
            wrong.append(f"{target} (stage {theirs})")
    assert not wrong, f"{here} (stage {mine}) imports later stages: {wrong}"


def test_the_check_catches_a_backward_import(tmp_path):
    fake = tmp_path / "mod.py"
    fake.write_text("def f():\n    from textinterest.experiments import run_evaluation\n")
    assert "textinterest.experiments" in imported_modules(fake)
    assert stage_of("textinterest.experiments") > stage_of("textinterest.models.interest")
