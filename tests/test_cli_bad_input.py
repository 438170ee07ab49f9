"""Every bad input the command line can meet, run for real; docs/BAD_INPUT.md's table is built from these runs.

Each case writes its files into a fresh data home, runs ``textinterest.apps.cli.main`` in this process and
checks the exit status and the message. The table in docs/BAD_INPUT.md (between the ``bad-input-table``
markers) must equal the one rendered from the runs; ``TEXTINTEREST_UPDATE_DOCS=1`` rewrites it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from textinterest.apps import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "BAD_INPUT.md"
START, END = "<!-- bad-input-table:start -->", "<!-- bad-input-table:end -->"
TOY = "amazon:Toys_and_Games"  # not in the registry: no hash check, so the file's content is what is tested
TOY_FILE = "amazon2014/reviews_Toys_and_Games_5.json.gz"
MI_FILE = "amazon2014/reviews_Musical_Instruments_5.json.gz"


def review(i: int, **overrides) -> dict:
    record = {
        "reviewerID": f"U{i % 3}",
        "asin": f"I{i % 4}",
        "overall": 4.0,
        "unixReviewTime": 1_300_000_000 + 86_400 * i,
        "reviewText": f"review {i}",
        "summary": "s",
    }
    record.update(overrides)
    return record


def write_reviews(home: Path, relpath: str, records: list[dict], *, raw: bytes | None = None) -> None:
    path = home / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    data = raw if raw is not None else "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if relpath.endswith(".gz") else data)


def with_bad(**bad) -> Callable[[Path], None]:
    """Setup: four good reviews and a bad one on line 3."""
    return lambda home: write_reviews(home, TOY_FILE, [review(0), review(1), review(2, **bad), review(3), review(4)])


@dataclass
class Case:
    """One bad input: how to make it, the command, and what must happen."""

    name: str
    argv: list[str]
    rc: int
    expect: tuple[str, ...]  # substrings of what the user sees
    setup: Callable[[Path], None] = field(default=lambda home: None)


def _gz_of_random_bytes(home: Path) -> None:
    path = home / TOY_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(7, 250)) * 3)


def _wrong_mi_file(home: Path) -> None:
    write_reviews(home, MI_FILE, [review(i) for i in range(5)])


def _output_under_a_file(home: Path) -> None:
    (home / "a_file").write_text("x")


CASES = [
    Case("`--epochs 0`", ["evaluate", "synthetic", "--epochs", "0"], 2, ("argument --epochs", ">= 1", "'0'")),
    Case("`--seeds 0`", ["evaluate", "synthetic", "--seeds", "0"], 2, ("argument --seeds", ">= 1")),
    Case("`--seed-list a`", ["evaluate", "synthetic", "--seed-list", "a"], 2, ("argument --seed-list", "'a'")),
    Case("`--seed-list 1,1`", ["evaluate", "synthetic", "--seed-list", "1,1"], 2, ("argument --seed-list", "repeat")),
    Case("`--max-users -1`", ["evaluate", "synthetic", "--max-users", "-1"], 2, ("argument --max-users", "'-1'")),
    Case("unknown `--tasks`", ["evaluate", "synthetic", "--tasks", "rating,speed"], 2, ("argument --tasks", "'speed'")),
    Case("`benchmark embed --n -5`", ["benchmark", "embed", "--n", "-5"], 2, ("argument --n", "'-5'")),
    Case("`--batch-size 1.5`", ["benchmark", "embed", "--batch-size", "1.5"], 2, ("argument --batch-size", "'1.5'")),
    Case("`baselines --seed -1`", ["baselines", "synthetic", "--seed", "-1"], 2, ("argument --seed", "'-1'")),
    Case(
        "`--output` under a file",
        ["evaluate", "synthetic", "--output", "{home}/a_file/result.json"],
        2,
        ("argument --output", "is not a folder"),
        _output_under_a_file,
    ),
    Case(
        "`--output` is a folder", ["benchmark", "embed", "--output", "{home}"], 2, ("argument --output", "is a folder")
    ),
    Case(
        "unknown `--encoder`",
        ["evaluate", "synthetic", "--encoder", "nobody/no-such-model"],
        2,
        ("argument --encoder", "not downloaded"),
    ),
    Case(
        "`--encoder` folder missing",
        ["evaluate", "synthetic", "--encoder", "./no/such/folder"],
        2,
        ("argument --encoder", "does not exist"),
    ),
    Case(
        "`--data-home` missing",
        ["data", "summary", TOY, "--data-home", "{home}/nope"],
        2,
        ("argument --data-home", "not an existing folder"),
    ),
    Case("unknown data set", ["data", "summary", "amazon-2014:Toys"], 2, ("unknown dataset", "Known names")),
    Case("data file missing", ["data", "summary", TOY], 2, ("was not found", "Looked for")),
    Case(
        "`unixReviewTime` 1e20",
        ["data", "summary", TOY],
        2,
        ("line 3", "'unixReviewTime'", "outside 1990-2100"),
        with_bad(unixReviewTime=1e20),
    ),
    Case(
        "timestamp in milliseconds",
        ["data", "summary", TOY],
        2,
        ("line 3", "'unixReviewTime'", "milliseconds"),
        with_bad(unixReviewTime=1_300_000_000_000),
    ),
    Case(
        "timestamp in 1970",
        ["data", "summary", TOY],
        2,
        ("line 3", "outside 1990-2100"),
        with_bad(unixReviewTime=86_400),
    ),
    Case(
        "bad timestamp, `--errors drop`",
        ["data", "summary", TOY, "--errors", "drop"],
        0,
        ("dropped bad_value:unixReviewTime: 1",),
        with_bad(unixReviewTime=1e20),
    ),
    Case("rating out of range", ["data", "summary", TOY], 2, ("line 3", "'overall'"), with_bad(overall=7)),
    Case(
        "required field null",
        ["data", "summary", TOY],
        2,
        ("line 3", "'reviewerID'", "null"),
        with_bad(reviewerID=None),
    ),
    Case("text is not a string", ["data", "summary", TOY], 2, ("line 3", "'reviewText'"), with_bad(reviewText=["a"])),
    Case(
        "line not JSON",
        ["data", "summary", TOY],
        2,
        ("line 2", "not valid JSON"),
        lambda home: write_reviews(home, TOY_FILE, [], raw=json.dumps(review(0)).encode() + b"\n{oops\n"),
    ),
    Case(
        "bytes not UTF-8",
        ["data", "summary", TOY],
        2,
        ("line 1", "not UTF-8"),
        lambda home: write_reviews(home, TOY_FILE, [], raw=json.dumps(review(0)).encode()[:-2] + b'\xff"}\n'),
    ),
    Case(
        "empty file",
        ["data", "summary", TOY],
        2,
        ("the file is empty",),
        lambda home: write_reviews(home, TOY_FILE, [], raw=b""),
    ),
    Case("random bytes as `.gz`", ["data", "summary", TOY], 2, ("not a gzip file",), _gz_of_random_bytes),
    Case(
        "sha256 mismatch",
        ["data", "summary", "amazon:Musical_Instruments"],
        2,
        ("sha256", "--download", "--no-verify"),
        _wrong_mi_file,
    ),
    Case(
        "sha256 mismatch, `--no-verify`",
        ["data", "summary", "amazon:Musical_Instruments", "--no-verify"],
        0,
        ("read 5, kept 5",),
        _wrong_mi_file,
    ),
    Case(
        "`--debug`",
        ["--debug", "data", "summary", TOY],
        1,
        ("Traceback", "DataFormatError", "line 3"),
        with_bad(unixReviewTime=1e20),
    ),
]


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str


def run_cli(argv: list[str]) -> Outcome:
    """Run the command line in this process, as the console script would (an escaping exception prints a traceback)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # what Python does with an uncaught exception: traceback, status 1
            traceback.print_exc()
            rc = 1
    return Outcome(rc, out.getvalue(), err.getvalue())


def stop_work(monkeypatch) -> None:
    """The work behind evaluate/benchmark must never start for a bad argument."""
    import textinterest.apps.benchmarks
    import textinterest.protocol.experiments

    def must_not_run(*args, **kwargs):
        raise AssertionError("the command started its work despite a bad argument")

    monkeypatch.setattr(textinterest.protocol.experiments, "run_evaluation", must_not_run)
    monkeypatch.setattr(textinterest.apps.benchmarks, "run_embed_benchmark", must_not_run)


@pytest.fixture
def case_env(tmp_path, monkeypatch):
    """A fresh data home (also the working folder)."""
    stop_work(monkeypatch)
    monkeypatch.setenv("TEXTINTEREST_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_case(case: Case, home: Path) -> Outcome:
    case.setup(home)
    return run_cli([a.replace("{home}", str(home)) for a in case.argv])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, case_env):
    outcome = run_case(case, case_env)
    seen = outcome.stderr if case.rc else outcome.stdout
    assert outcome.rc == case.rc, (outcome.rc, outcome.stderr[-2000:])
    for text in case.expect:
        assert text in seen, (text, seen)
    if case.rc == 2:  # a user error: one line, no traceback
        assert len(outcome.stderr.strip().splitlines()) == 1, outcome.stderr
        assert "Traceback" not in outcome.stderr


def summary_of(outcome: Outcome, home: Path) -> str:
    """What the user sees, on one table cell: the error line, the matching output line, or the traceback's end."""
    if outcome.rc == 0:
        lines = [line.strip() for line in outcome.stdout.splitlines()]
        dropped = [line for line in lines if line.startswith("dropped")]
        text = "; ".join(dropped or [line for line in lines if "read " in line])
    elif outcome.stderr.startswith("Traceback"):
        text = "traceback, ending: " + outcome.stderr.strip().splitlines()[-1]
    else:
        text = outcome.stderr.strip()
    text = text.replace(str(home), "$DATA")
    from huggingface_hub import constants

    text = text.replace(str(constants.HF_HUB_CACHE), "$HF_HUB_CACHE")
    text = re.sub(r" \(see '[^']*--help'\)$", "", text)
    text = re.sub(r"\b([0-9a-f]{8})[0-9a-f]{56}\b", r"\1…", text)  # sha256 digests
    if len(text) > 240:
        text = text[:239] + "…"
    return text.replace("|", "\\|")


def render_table(rows: list[tuple[Case, Outcome, Path]]) -> str:
    lines = ["| case | command | exit | what you see |", "|---|---|---|---|"]
    for case, outcome, home in rows:
        command = " ".join(["textinterest", *case.argv]).replace("{home}", "$DATA").replace("|", "\\|")
        lines.append(f"| {case.name} | `{command}` | {outcome.rc} | {summary_of(outcome, home)} |")
    return "\n".join(lines)


def test_bad_input_doc_table(tmp_path, monkeypatch):
    stop_work(monkeypatch)
    rows = []
    for i, case in enumerate(CASES):
        home = tmp_path / f"case{i}"
        home.mkdir()
        monkeypatch.setenv("TEXTINTEREST_DATA", str(home))
        monkeypatch.chdir(home)
        rows.append((case, run_case(case, home), home))
    table = render_table(rows)
    doc = DOC.read_text(encoding="utf-8")
    assert START in doc and END in doc, f"docs/BAD_INPUT.md lacks the markers {START} / {END}"
    head, rest = doc.split(START, 1)
    current, tail = rest.split(END, 1)
    if os.environ.get("TEXTINTEREST_UPDATE_DOCS") == "1":
        DOC.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")
        return
    assert current.strip() == table, (
        "docs/BAD_INPUT.md's table differs from what the commands do now; "
        "rerun this test with TEXTINTEREST_UPDATE_DOCS=1 to rewrite it"
    )
