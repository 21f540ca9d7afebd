"""``nextblock``: one command for everything, subcommands mirroring the modules.

Each subcommand is the module of the same name (``nextblock attach ...`` is
``python -m nextblock.attach ...``, same options, same exit status); ``nextblock SUBCOMMAND
--help`` shows its options. Only the argument parsing of the chosen module is imported, so
``nextblock doctor`` does not load TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, function, one line for the overview). The module's function takes argv.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("nextblock.demo", "main", "hear NextBlock vs JackTrip's own concealment on a lossy link (a few minutes)"),
    "jacktrip": (
        "nextblock.live",
        "main",
        "run the patched JackTrip with NextBlock enabled and attached: nextblock jacktrip -c HOST",
    ),
    "doctor": (
        "nextblock.doctor",
        "main",
        "check JACK, the patched JackTrip, the model, real-time privileges, shared memory; print fixes",
    ),
    "attach": ("nextblock.attach", "main", "attach NextBlock to a running patched JackTrip (--jacktrip-pid PID)"),
    "learn": ("nextblock.learn", "main", "learn online on the server and publish better models to clients"),
    "evaluate": ("nextblock.evaluate", "main", "score concealers (zeros, repeat, burg, nextblock) on your audio"),
    "dataset": ("nextblock.dataset.cli", "main", "fetch, sort, verify and package training audio"),
    "train": ("nextblock.train", "main", "train a model (needs the train extra: TensorFlow)"),
    "export": ("nextblock.export", "main", "export a trained run to a LiteRT .tflite with metadata"),
    "build-jacktrip": (
        "nextblock.jackio.patched_build",
        "main",
        "build the patched JackTrip 2.7.2 from its release tarball or source (~10 min)",
    ),
}

# Subcommands whose main() takes a ``prog`` argument (so their --help names `nextblock X`).
_TAKES_PROG = {"demo", "jacktrip", "doctor", "build-jacktrip"}

USAGE = """\
usage: nextblock SUBCOMMAND [ARGS...]        (nextblock SUBCOMMAND --help for its options)

NextBlock: neural packet-loss concealment for JackTrip. It predicts the next audio block of every
received channel so that a patched JackTrip can play the prediction when a packet is late or lost.

subcommands:
{rows}

first steps:
  nextblock doctor                       # what is missing on this machine, and how to fix it
  nextblock demo                         # hear it: JackTrip default vs Regulator + Burg vs NextBlock
  nextblock build-jacktrip               # build the patched JackTrip (once, ~10 min on 2 cores)
  nextblock jacktrip -c SERVER --bufstrategy 3   # play live with NextBlock (Ctrl-C stops both)
"""


def usage() -> str:
    width = max(len(n) for n in SUBCOMMANDS)
    return USAGE.format(rows="\n".join(f"  {n:<{width}}  {line}" for n, (_, _, line) in SUBCOMMANDS.items()))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from nextblock import __version__

        print(f"nextblock {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"nextblock: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = SUBCOMMANDS[name]
    entry = getattr(importlib.import_module(module), func)
    try:
        code = entry(rest, prog=f"nextblock {name}") if name in _TAKES_PROG else entry(rest)
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
