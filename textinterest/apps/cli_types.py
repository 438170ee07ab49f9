"""Argument types of the ``textinterest`` command line: each checks one value and says what is wrong.

Each function is an argparse ``type=``: it returns the converted value or raises
``argparse.ArgumentTypeError`` with a message that argparse prefixes with the argument's name, so
``--epochs 0`` fails before any work starts with ``argument --epochs: expected an integer >= 1, got '0'``.
Checks that touch the disk (``writable_file``, ``writable_dir``, ``encoder_name``) only look; they
create nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are unsigned 32-bit


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``textinterest evaluate: error: argument --epochs: ...``.

    ``--debug`` is accepted anywhere before ``--`` (``textinterest evaluate NAME --debug`` as well as
    ``textinterest --debug evaluate NAME``) and sets ``debug=True``.
    """

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        debug = "--debug" in args[:end]
        args = [a for a in args[:end] if a != "--debug"] + args[end:]
        parsed, rest = super().parse_known_args(args, namespace)
        if debug:
            parsed.debug = True
        return parsed, rest

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A type for an integer in ``[minimum, maximum]`` (no upper bound when ``maximum`` is None)."""

    def convert(text: str) -> int:
        value = _integer(text)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {text!r}")
        return value

    convert.__name__ = f"int_at_least_{minimum}"  # argparse names the type in some messages
    return convert


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
seed = int_at_least(0, MAX_SEED)


def workers(text: str) -> int | str:
    """``auto`` or a positive number of worker processes."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {text!r}") from None


def probability(text: str) -> float:
    """A float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def seed_list(text: str) -> tuple[int, ...]:
    """Comma-separated, distinct seeds (each 0..2**32-1), e.g. ``"0,1,2"``."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as '0,1,2', got {text!r}")
    seeds = []
    for part in parts:
        try:
            seeds.append(seed(part))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers between 0 and {MAX_SEED} such as '0,1,2', got {text!r} "
                f"({part!r} is not one)"
            ) from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}; each seed must appear once")
    return tuple(seeds)


def name_list(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """A type for a comma-separated, non-empty subset of ``allowed``."""

    def convert(text: str) -> list[str]:
        names = [p.strip() for p in text.split(",")]
        unknown = [n for n in names if n not in allowed]
        if not text.strip() or unknown:
            what = f"unknown {unknown}" if text.strip() else "nothing given"
            raise argparse.ArgumentTypeError(f"{what}; choose comma-separated names from {list(allowed)}")
        return names

    convert.__name__ = "name_list"
    return convert


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device(text: str) -> str:
    """A torch device name: auto, cpu, mps, cuda or cuda:N."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_can_write_in(folder: Path, target: str) -> None:
    """Raise ArgumentTypeError unless a file can be created in ``folder`` (or in the folder it would go under)."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {target!r}: {str(existing)!r} is not a folder")
    try:  # os.access says yes to root even on a read-only file system: try for real
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"cannot write {target!r}: {str(existing)!r} is not writable ({exc.strerror})"
        ) from None


def writable_file(text: str) -> str:
    """A file path that can be written: not a folder, and its folder exists or can be created."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    path = Path(text).expanduser()
    if path.is_dir():
        example = str(path / "result.json")
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file path such as {example!r}")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: the file is read-only")
    _check_can_write_in(path.parent, text)
    return text


def writable_dir(text: str) -> str:
    """A folder that exists and is writable, or that can be created."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty string")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    _check_can_write_in(path, text)
    return text


def existing_dir(text: str) -> str:
    """A folder that exists."""
    if not Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not an existing folder")
    return text


def encoder_name(text: str) -> str:
    """'default', 'hashing[:D]', an existing local model folder, or a hub id cached by Hugging Face.

    Nothing is downloaded at run time, so a hub id that is not cached would only fail later, after
    the data is loaded; it is refused here instead.
    """
    if text == "default":
        return text
    if text == "hashing" or text.startswith("hashing:"):
        dim = text.partition(":")[2]
        if dim and not (dim.isdigit() and int(dim) > 0):
            raise argparse.ArgumentTypeError(
                f"expected 'hashing' or 'hashing:D' with D a positive integer, got {text!r}"
            )
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise argparse.ArgumentTypeError(f"model folder {text!r} has no config.json")
        return text
    if path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} is a file; give the model folder that holds config.json")
    repo_id, _, revision = text.partition("@")
    looks_like_id = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo_id) is not None and not text.startswith((".", "~"))
    if looks_like_id:
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(repo_id, "config.json", revision=revision or None)
        except ValueError:  # huggingface_hub rejects malformed ids
            cached = None
        if isinstance(cached, str):
            return text
        hint = (
            f"{text!r} is neither 'default', a local folder, nor a model id in the local Hugging Face cache "
            f"({_hf_cache()}); models are not downloaded at run time"
        )
    else:
        hint = f"model folder {text!r} does not exist"
    raise argparse.ArgumentTypeError(hint)


def _hf_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
