"""Small helpers every layer shares: atomic writes, JSON conversion, machine facts, markdown tables.

This module imports nothing heavy (no torch, no pandas) so that any module may use it.
Device resolution and seeding live in :mod:`textinterest.training` (they need torch).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "cpu_model",
    "format_number",
    "json_default",
    "markdown_table",
    "package_root",
    "package_source_digest",
    "memory_gib",
    "peak_rss_mb",
]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    A reader sees either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the mode an ordinary open() would (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy scalars and arrays become Python values, the rest ``str``."""
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if hasattr(value, "item") and callable(value.item):
        with contextlib.suppress(TypeError, ValueError):
            return value.item()
    return str(value)


def cpu_model() -> str:
    """The processor's name (Linux: /proc/cpuinfo; elsewhere what :mod:`platform` reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_gib() -> float | None:
    """Total memory in GiB (Linux and macOS), None when the system does not say."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (NaN where the platform does not report it)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, AttributeError):  # pragma: no cover - non-Unix
        return float("nan")
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024.0


def format_number(value: Any, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` decimals, NaN as "NaN", None as "–", the rest ``str``."""
    if value is None:
        return "–"
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        value = float(value)
        return "NaN" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None, digits: int = 4
) -> str:
    """Render a markdown table; cells go through :func:`format_number` and ``|`` is escaped.

    Args:
        header: column titles.
        rows: one sequence of cells per row, as long as ``header``.
        align: per column "l" or "r" (default: all left).
        digits: decimals for float cells.
    """
    align = list(align) if align is not None else ["l"] * len(header)
    if len(align) != len(header):
        raise ValueError(f"align has {len(align)} entries for {len(header)} columns")

    def cell(value: Any) -> str:
        text = value if isinstance(value, str) else format_number(value, digits)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)!r} has {len(row)} cells for {len(header)} columns")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def package_root() -> Path:
    """The folder of the installed ``textinterest`` package (this file is ``textinterest/utils.py``)."""
    return Path(__file__).resolve().parent


@functools.cache
def package_source_digest() -> str:
    """sha256 over the files of the installed textinterest package (code and packaged data).

    Results records carry it, so that a figure can be traced to the code that made it.
    """
    root = package_root()
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()
