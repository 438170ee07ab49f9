"""The command line's error path: user errors are one line with exit status 2, bugs keep their traceback."""

from __future__ import annotations

import argparse
import re

import pytest
from test_cli_bad_input import run_cli

from textinterest.apps import cli, cli_types
from textinterest.datasets.base import ChecksumMismatchError, DataFormatError
from textinterest.datasets.registry import REGISTRY, verify_file


def _options_of(argv: list[str]) -> set[str]:
    """Every option string of the sub-command reached by ``argv``."""
    parser = cli.build_parser()
    for word in argv:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return {s for action in parser._actions for s in action.option_strings}


def test_checksum_message_suggests_only_existing_options(tmp_path):
    entry = REGISTRY["amazon2014/reviews_Musical_Instruments_5.json.gz"]
    path = tmp_path / "reviews_Musical_Instruments_5.json.gz"
    path.write_bytes(b"not the file")
    with pytest.raises(ChecksumMismatchError) as info:
        verify_file(path, entry)
    suggested = set(re.findall(r"--[a-z][a-z-]*", str(info.value)))
    assert suggested, "the message should say which option fixes it"
    for command in (["data", "summary"], ["baselines"], ["evaluate"]):
        assert suggested <= _options_of(command), (command, suggested)


def test_format_error_hint_names_an_existing_option(tmp_path):
    from textinterest.datasets.base import CleaningReport
    from textinterest.datasets.parsing import ErrorPolicy

    with pytest.raises(DataFormatError) as info:
        ErrorPolicy("f.json", "raise", CleaningReport("f.json")).bad(3, "bad_value:x", "bad", "x")
    assert set(re.findall(r"--[a-z][a-z-]*", str(info.value))) <= _options_of(["data", "summary"])


def _raise_in_handler(monkeypatch, error: BaseException) -> None:
    def handler(args):
        raise error

    monkeypatch.setattr(cli, "_cmd_data_summary", handler)


def test_bug_keeps_its_traceback(monkeypatch):
    _raise_in_handler(monkeypatch, ZeroDivisionError("division by zero"))
    outcome = run_cli(["data", "summary", "synthetic"])
    assert outcome.rc == 1 and outcome.stderr.startswith("Traceback") and "ZeroDivisionError" in outcome.stderr


def test_value_error_from_a_library_is_a_bug(monkeypatch):
    import numpy as np

    def handler(args):
        np.zeros(3).reshape(2, 2)  # numpy raises ValueError deep inside itself

    monkeypatch.setattr(cli, "_cmd_data_summary", handler)
    outcome = run_cli(["data", "summary", "synthetic"])
    assert outcome.rc == 1 and "Traceback" in outcome.stderr


def test_user_error_is_one_line_and_debug_shows_the_traceback(monkeypatch):
    error = DataFormatError("f.json.gz, line 7, field 'overall': rating 9 is outside 1-5", path="f.json.gz", line=7)
    _raise_in_handler(monkeypatch, error)
    quiet = run_cli(["data", "summary", "synthetic"])
    assert quiet.rc == 2 and quiet.stderr == f"textinterest: error: {error}\n"
    loud = run_cli(["--debug", "data", "summary", "synthetic"])
    assert loud.rc == 1 and loud.stderr.startswith("Traceback") and "line 7" in loud.stderr


def test_unreadable_file_is_a_user_error(monkeypatch, tmp_path):
    _raise_in_handler(monkeypatch, PermissionError(13, "Permission denied", str(tmp_path / "x.json")))
    outcome = run_cli(["data", "summary", "synthetic"])
    expected = f"textinterest: error: {tmp_path / 'x.json'}: Permission denied"
    assert outcome.rc == 2 and outcome.stderr.strip() == expected


def test_interrupt_is_one_line(monkeypatch):
    _raise_in_handler(monkeypatch, KeyboardInterrupt())
    outcome = run_cli(["data", "summary", "synthetic"])
    assert outcome.rc == 130 and outcome.stderr == "textinterest: interrupted\n"


def test_epochs_and_seed_list_reach_the_evaluation_converted(monkeypatch):
    import textinterest.protocol.experiments

    seen = {}

    def fake_run_evaluation(config, **kwargs):
        seen.update(vars(config))
        return {}

    monkeypatch.setattr(textinterest.protocol.experiments, "run_evaluation", fake_run_evaluation)
    monkeypatch.setattr(textinterest.protocol.experiments, "format_results_table", lambda result: "table")
    argv = ["evaluate", "synthetic", "--epochs", "2", "--seed-list", "3, 5", "--tasks", "ranking", "--main", "mf"]
    outcome = run_cli(argv)
    assert outcome.rc == 0, outcome.stderr
    assert seen["epochs"] == 2 and seen["seeds"] == (3, 5) and seen["tasks"] == ("ranking",)
    assert seen["main"] == "mf" and seen["name"] == "synthetic"


@pytest.mark.parametrize("text, ok", [("1", True), ("0", False), ("-3", False), ("2.0", False), ("x", False)])
def test_positive_int(text, ok):
    if ok:
        assert cli_types.positive_int(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(text))):
            cli_types.positive_int(text)


@pytest.mark.parametrize("text", ["-0.1", "1.5", "nan", "x"])
def test_probability_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cli_types.probability(text)


def test_probability_accepts_bounds():
    assert cli_types.probability("0") == 0.0 and cli_types.probability("1") == 1.0


def test_encoder_accepts_default_and_a_model_folder(tmp_path):
    assert cli_types.encoder_name("default") == "default"
    (tmp_path / "config.json").write_text("{}")
    assert cli_types.encoder_name(str(tmp_path)) == str(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(argparse.ArgumentTypeError, match="config.json"):
        cli_types.encoder_name(str(tmp_path / "empty"))


@pytest.mark.parametrize(
    "argv", [["--debug", "data", "summary", "synthetic"], ["data", "summary", "synthetic", "--debug"]]
)
def test_debug_before_or_after_the_command(monkeypatch, argv):
    _raise_in_handler(monkeypatch, DataFormatError("f.json, line 2: bad"))
    outcome = run_cli(argv)
    assert outcome.rc == 1 and outcome.stderr.startswith("Traceback")


def test_evaluate_loads_with_errors_drop(monkeypatch, tmp_path):
    from test_cli_bad_input import TOY, TOY_FILE, review, write_reviews

    import textinterest.protocol.experiments

    write_reviews(tmp_path, TOY_FILE, [review(0), review(1, unixReviewTime=1e20), review(2)])
    seen = {}
    monkeypatch.setattr(textinterest.protocol.experiments, "run_evaluation", lambda name, **kw: seen.update(kw) or {})
    monkeypatch.setattr(textinterest.protocol.experiments, "format_results_table", lambda result: "table")
    assert run_cli(["evaluate", TOY, "--data-home", str(tmp_path)]).rc == 0 and seen["dataset"] is None
    outcome = run_cli(["evaluate", TOY, "--data-home", str(tmp_path), "--errors", "drop"])
    assert outcome.rc == 0, outcome.stderr
    assert seen["dataset"].report.dropped == {"bad_value:unixReviewTime": 1}


def test_ctrl_c_while_the_parser_is_built_is_one_line(monkeypatch, capsys):
    import textinterest.apps.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["data", "summary", "synthetic"]) == 130
    assert capsys.readouterr().err == "textinterest: interrupted\n"
