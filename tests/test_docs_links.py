"""The front door stays a front door, and every relative link of the project's documents resolves.

A link to another file must name a file or folder that exists; a link with ``#anchor`` must name a
heading of its target (GitHub's anchors: lower case, punctuation dropped, spaces to hyphens).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    "README.md",
    "benchmarks/RESULTS.md",
    "benchmarks/BENCHMARKS.md",
    "docs/BAD_INPUT.md",
    "docs/SCALE.md",
    "docs/SERVING.md",
    "notebooks/README.md",
    "reports/README.md",
]
MAX_README_LINES = 300

_FENCE = re.compile(r"^```.*?^```", flags=re.M | re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown`` (repeats get -1, -2, ...)."""
    seen: Counter[str] = Counter()
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _FENCE.sub("", markdown), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return anchors


def broken_links(doc: Path) -> list[str]:
    """Relative links of ``doc`` (outside code blocks) whose file or heading does not exist."""
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(_FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked here
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in github_anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with that anchor")
    return broken


@pytest.mark.parametrize("name", DOCUMENTS)
def test_relative_links_resolve(name):
    doc = ROOT / name
    assert doc.is_file(), f"{name} is missing"
    assert broken_links(doc) == []


def test_the_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Data sets (`summary --json`)\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md) [ok](other.md#data-sets-summary---json) [ok](#here) [web](https://example.org/x)\n"
        "# Here\n```\n[inside a code block](gone.md)\n```\n"
        "[gone](gone.md) [bad anchor](other.md#nothing)\n"
    )
    assert broken_links(doc) == ["gone.md: no such file", "other.md#nothing: no heading with that anchor"]


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; results belong in benchmarks/RESULTS.md"
    top = "\n".join(lines[:40])
    assert "## Headline" in top, "the honest headline belongs near the top of the README"
