"""``nextblock``: one command for everything, subcommands mirroring the modules.

Each subcommand is a module of :mod:`nextblock.commands` (``nextblock build-jacktrip`` is
``nextblock.commands.build_jacktrip``), all of one shape: ``build_parser(prog)`` and
``main(argv, prog) -> exit status``. ``nextblock attach ...`` is also ``python -m
nextblock.attach ...`` (same options, same exit status); ``nextblock SUBCOMMAND --help`` shows its
options. Only the chosen command's module is imported, so ``nextblock doctor`` does not load
TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

# name -> (its module in nextblock.commands, one line for the overview). Every command module has
# build_parser(prog) and main(argv, prog) -> exit status (nextblock/commands/__init__.py).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("nextblock.commands.demo", "hear NextBlock vs JackTrip's own concealment on a lossy link (a few minutes)"),
    "jacktrip": (
        "nextblock.commands.jacktrip",
        "run the patched JackTrip with NextBlock enabled and attached: nextblock jacktrip -c HOST",
    ),
    "doctor": (
        "nextblock.commands.doctor",
        "check JACK, the patched JackTrip, the model, real-time privileges, shared memory; print fixes",
    ),
    "attach": ("nextblock.commands.attach", "attach NextBlock to a running patched JackTrip (--jacktrip-pid PID)"),
    "learn": ("nextblock.commands.learn", "learn online on the server and publish better models to clients"),
    "evaluate": ("nextblock.commands.evaluate", "score concealers (zeros, repeat, burg, nextblock) on your audio"),
    "dataset": ("nextblock.commands.dataset", "fetch, sort, verify and package training audio"),
    "train": ("nextblock.commands.train", "train a model (needs the train extra: TensorFlow)"),
    "export": ("nextblock.commands.export", "export a trained run to a LiteRT .tflite with metadata"),
    "build-jacktrip": (
        "nextblock.commands.build_jacktrip",
        "build the patched JackTrip 2.7.2 from its release tarball or source (~10 min)",
    ),
}

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
    return USAGE.format(rows="\n".join(f"  {n:<{width}}  {line}" for n, (_, line) in SUBCOMMANDS.items()))


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
    command = importlib.import_module(SUBCOMMANDS[name][0])
    try:
        code = command.main(rest, prog=f"nextblock {name}")
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
