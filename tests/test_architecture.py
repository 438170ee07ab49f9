"""The one-way data flow of the README's Architecture section, checked on the source.

A module may import (at top level or inside a function) only modules of its own stage or of an
earlier one; a new module must be given a stage here, next to the README's table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "textinterest"

# Stage of each part of the package: a top-level module or a folder (the longest matching prefix wins).
# The tree is the architecture: one folder per stage, and lower stages never import higher ones.
STAGES: dict[str, int] = {
    # 0 foundation: names, small helpers, metrics and id vocabularies, significance, the one trainer, jobs
    "textinterest.constants": 0,
    "textinterest.utils": 0,
    "textinterest.evaluation": 0,
    "textinterest.significance": 0,
    "textinterest.job_pool": 0,
    "textinterest.training": 0,
    # 1 data: loaders, cleaning, splits, synthetic worlds
    "textinterest.datasets": 1,
    # 2 text: encoders, embedding cache and fast paths, item vectors, sentiment
    "textinterest.text": 2,
    # 3 models: the registry, the interest model, CF, baselines, peers, save/load, recommend
    "textinterest.models": 3,
    # 4 the evaluation protocol: evaluate, protocols, verdict, serving measurements
    "textinterest.protocol": 4,
    # 5 applications: command line, HTTP service, reproduce, benchmarks, reporting
    "textinterest.apps": 5,
    "textinterest.__main__": 5,
    "textinterest": 5,
}
# Top-level modules besides the stage folders (the foundation and the package's entry points).
TOP_LEVEL = {"__init__", "__main__", "constants", "utils", "evaluation", "significance", "job_pool", "training"}


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
            # "from textinterest.text import features" imports the submodule
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
    fake.write_text("def f():\n    from textinterest.protocol.experiments import run_evaluation\n")
    assert "textinterest.protocol.experiments" in imported_modules(fake)
    assert stage_of("textinterest.protocol.experiments") > stage_of("textinterest.models.interest")


def import_graph(package: Path) -> dict[str, set[str]]:
    """Edges module -> module of the package, function-level imports included."""
    modules = {module_name_in(p, package): p for p in sorted(package.rglob("*.py"))}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target in imported_modules_in(path, package):
            # "from a.b import c" may name the submodule a.b.c or an attribute of a.b
            for candidate in (target, target.rsplit(".", 1)[0]):
                if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                    edges[name].add(candidate)
                    break
    return edges


def module_name_in(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules_in(path: Path, package: Path) -> set[str]:
    root = package.name
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == root or node.module.startswith(root + "."):
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == root or a.name.startswith(root + "."))
    return found


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles():
    cycles = import_cycles(import_graph(PACKAGE))
    assert not cycles, "import cycles (function-level imports count): " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_catches_a_function_level_cycle(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub.b import g\n")
    (package / "sub" / "b.py").write_text("def g():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text("import pkg.a\n")
    assert import_cycles(import_graph(package)) == [["pkg.a", "pkg.sub.b"]]
    (package / "sub" / "b.py").write_text("def g():\n    return 1\n")
    assert import_cycles(import_graph(package)) == []


def test_few_modules_at_the_top_and_every_one_is_foundation():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL, f"put these modules into a stage folder: {sorted(top - TOP_LEVEL)}"
    assert len(top) <= 10
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {"datasets", "text", "models", "protocol", "apps"}


MODULE_LINES = 500


def long_modules_without_a_reason(package: Path) -> list[str]:
    """Modules over MODULE_LINES lines whose docstring does not say why ("Above 500 lines on purpose: ...")."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MODULE_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if f"Above {MODULE_LINES} lines on purpose:" not in doc:
                found.append(f"{path.relative_to(package.parent)} ({len(text.splitlines())} lines)")
    return found


def test_long_modules_say_why():
    assert not long_modules_without_a_reason(PACKAGE), "split these modules or say why in their docstring"


def test_the_module_size_check_catches_a_long_module(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    body = "x = 1\n" * (MODULE_LINES + 1)
    (package / "long.py").write_text('"""A long module."""\n' + body)
    (package / "explained.py").write_text(
        f'"""A long module.\n\n(Above {MODULE_LINES} lines on purpose: a table.)\n"""\n' + body
    )
    assert long_modules_without_a_reason(package) == [f"pkg/long.py ({MODULE_LINES + 2} lines)"]


MAX_FUNCTION_LINES = 100


def long_functions(package: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions and methods (nested ones too) longer than ``limit`` lines, from the ``def`` line to the last.

    Decorators are not counted; the docstring is.
    """
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(package)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_over_100_lines():
    too_long = long_functions(PACKAGE)
    assert not too_long, f"split these into functions of at most {MAX_FUNCTION_LINES} lines: " + "; ".join(too_long)


def test_the_length_check_catches_a_long_function(tmp_path):
    def function(name: str, body_lines: int, indent: str = "") -> str:
        body = "".join(f"{indent}    x{i} = {i}\n" for i in range(body_lines - 1))
        return f"{indent}def {name}():\n{indent}    '''Doc.'''\n{body}"

    (tmp_path / "sub").mkdir()
    # 100 lines in all (def + docstring + 98 statements): allowed
    (tmp_path / "ok.py").write_text("@staticmethod\n" + function("fits", 99))
    assert long_functions(tmp_path) == []
    (tmp_path / "sub" / "long.py").write_text(
        "class C:\n" + function("method", 100, indent="    ") + "\n\n" + function("short", 3)
    )
    assert long_functions(tmp_path) == ["sub/long.py:2 method (101 lines)"]
    (tmp_path / "sub" / "long.py").write_text(function("outer", 2) + function("inner", 100, indent="    "))
    assert long_functions(tmp_path) == ["sub/long.py:1 outer (104 lines)", "sub/long.py:4 inner (101 lines)"]
