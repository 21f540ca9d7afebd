"""``nextblock jacktrip``: the command line of :mod:`nextblock.live` (whose docstring is the help's description).

Every argument goes to JackTrip except the ``--nb-*`` ones (:func:`split_args`), so argparse does
not parse them: :func:`build_parser` gives the parser for ``--help`` (the text of :func:`usage`).
"""

from __future__ import annotations

import argparse
import sys

from nextblock import live

EPILOG = """\
examples:
  nextblock jacktrip -s --bufstrategy 3                 # a p2p server with the Regulator (Burg when a guess is late)
  nextblock jacktrip -c server.example.org --bufstrategy 3 -q 11 --nb-stats 2
  nextblock jacktrip -S --nb-realtime                   # hub server
"""

_NB_OPTIONS = {"--nb-model": "--model", "--nb-stats": "--stats", "--nb-json": "--json"}
_NB_FLAGS = {"--nb-realtime": "--realtime"}


def usage(prog: str) -> str:
    return (
        f"usage: {prog} [JACKTRIP ARGS...] [--nb-model PATH] [--nb-stats S] [--nb-json FILE] [--nb-realtime]\n\n"
        + live.__doc__.split("\n", 1)[1]
        + "\n"
        + EPILOG
    )


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(JackTrip's arguments, ``nextblock attach``'s arguments). Raises ``ValueError`` for an
    ``--nb-*`` option without its value or an unknown ``--nb-*`` option."""
    jacktrip, attach = [], []
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name in _NB_OPTIONS:
            if not eq:
                value = next(it, None)
                if value is None or value.startswith("--"):
                    raise ValueError(f"{name} needs a value")
            attach += [_NB_OPTIONS[name], value]
        elif name in _NB_FLAGS and not eq:
            attach.append(_NB_FLAGS[name])
        elif name.startswith("--nb-"):
            raise ValueError(f"unknown option {name} (NextBlock's are {', '.join([*_NB_OPTIONS, *_NB_FLAGS])})")
        else:
            jacktrip.append(arg)
    return jacktrip, attach


class _PassThroughParser(argparse.ArgumentParser):
    """Help only: JackTrip's own options pass through (:func:`split_args` splits the arguments)."""

    def format_help(self) -> str:
        return usage(self.prog)


def build_parser(prog: str = "nextblock jacktrip") -> argparse.ArgumentParser:
    """The parser whose ``format_help`` is the command's ``--help`` (:func:`usage`)."""
    return _PassThroughParser(prog=prog, add_help=False)


def main(argv: list[str] | None = None, prog: str = "nextblock jacktrip") -> int:
    """Entry point; returns the exit status (JackTrip's, 0 after Ctrl-C, 2 for a usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(build_parser(prog).format_help())
        return 0
    try:
        jacktrip_args, attach_args = split_args(argv)
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return live.run(jacktrip_args, attach_args, prog)
