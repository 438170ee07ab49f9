"""Time and peak memory per pipeline stage from 10k to 1M reviews (``textinterest benchmark scale``).

The work lives in :mod:`textinterest.apps.scale`; this module gives it the benchmark command line.
"""

from __future__ import annotations

from collections.abc import Sequence

from textinterest.apps.cli_types import OneLineParser


def main(argv: Sequence[str] | None = None) -> int:
    """``textinterest benchmark scale [--sizes 10000,100000,1000000] [--encoder hashing] [--output FILE]``."""
    from textinterest.apps.scale import add_arguments, cmd_benchmark_scale

    parser = OneLineParser(prog="textinterest benchmark scale", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return int(cmd_benchmark_scale(parser.parse_args(argv)) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
