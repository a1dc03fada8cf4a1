"""``faceprior-compare``: the command line of :mod:`faceprior.compare` (methods side by side) and
:mod:`faceprior.compare_sweep` (``--sweep MULTIRUN_DIR``: the trials of a sweep).

Examples::

    faceprior-compare runs/gfpgan14 runs/gpen512 --names GFPGAN,GPEN --out compare/celeba_test
    faceprior-compare --sweep logs/train/multiruns/<sweep> --out compare/sweep

Errors are one line on stderr (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from faceprior.clitools import add_debug_flag, run_cli
from faceprior.compare import CompareError, compare, split_list, to_markdown, write_outputs
from faceprior.compare_sweep import main as sweep_main

PROG = "faceprior-compare"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2: an input that cannot be compared)."""
    parser = argparse.ArgumentParser(
        prog="faceprior-compare",
        description="Compare evaluated runs: Markdown/LaTeX/CSV tables and an HTML page.",
    )
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("inputs", nargs="*", default=[], metavar="RESULT_OR_RUN")
    given.add_argument("--sweep", metavar="MULTIRUN_DIR", help="one row per job of a multirun")
    parser.add_argument("--names", help="comma-separated method names, one per input")
    parser.add_argument("--out", default="compare", help="output folder (default ./compare)")
    parser.add_argument("--metrics", help="comma-separated metrics and their order")
    parser.add_argument("--benchmarks", help="comma-separated benchmarks and their order")
    parser.add_argument("--crops", type=int, default=4, help="faces per benchmark in the page")
    args = add_debug_flag(parser).parse_args(argv)
    if args.sweep:
        if args.names or args.metrics or args.benchmarks:
            parser.error("--names, --metrics and --benchmarks do not apply to --sweep")
        return run_cli(PROG, lambda: int(sweep_main(args.sweep, args.out)), args)
    return run_cli(PROG, lambda: _compare(args), args, codes=((CompareError, 2),))


def _compare(args: argparse.Namespace) -> int:
    table = compare(
        args.inputs,
        split_list(args.names),
        split_list(args.metrics),
        split_list(args.benchmarks),
    )
    paths = write_outputs(table, args.out, args.crops)
    print(to_markdown(table), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
