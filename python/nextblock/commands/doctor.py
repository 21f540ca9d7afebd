"""``nextblock doctor``: the command line of :mod:`nextblock.doctor` (whose docstring is the help's description)."""

from __future__ import annotations

import argparse

from nextblock import doctor

EPILOG = """\
examples:
  nextblock doctor              # one line per check, a fix under each problem
  nextblock doctor --json       # machine-readable
"""


def build_parser(prog: str = "nextblock doctor") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=doctor.__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return p


def main(argv: list[str] | None = None, prog: str = "nextblock doctor") -> int:
    """Entry point; returns the exit status (0 ready, 1 something is missing)."""
    return doctor.run(build_parser(prog).parse_args(argv))
