"""The data card (data/README.md) lists every registered file with the checksums the loaders check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from textinterest.datasets.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
CARD = ROOT / "data" / "README.md"


def test_card_lists_every_registered_file_and_its_hashes():
    card = CARD.read_text(encoding="utf-8")
    for relpath, entry in REGISTRY.items():
        assert f"`{relpath}`" in card, f"data/README.md: {relpath} is not listed"
        for digest in (entry.sha256, entry.content_sha256, entry.md5):
            if digest:
                assert digest in card, f"data/README.md: {relpath}: checksum {digest[:12]}... differs from the registry"


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_only_the_card_is_tracked_in_data():
    probe = ["data/reviews_Musical_Instruments_5.json.gz", "data/amazon2014/x.json.gz", "data/README.md"]
    out = subprocess.run(["git", "check-ignore", "--no-index", *probe], cwd=ROOT, capture_output=True, text=True).stdout
    assert out.split() == probe[:2], f"git must ignore the data files and track data/README.md, got {out!r}"
