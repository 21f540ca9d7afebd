"""``nextblock learn``: the command line of :mod:`nextblock.learn` (options, help, exit status)."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  # learn from the JackTrip server with PID 4242, publish to ~/.cache/nextblock/models/live
  python -m nextblock.learn --jacktrip-pid 4242 --init-weights runs/default/best.weights.h5

  # a hub: several JackTrip processes (or segments), one model for all of them
  python -m nextblock.learn --jacktrip-pid 4242 4243 --segment /nextblock-hub-client3

  # tighter budget: 25% of one core, 30 s of replay, validate every minute, log every update
  python -m nextblock.learn --jacktrip-pid 4242 --max-cpu 0.25 --replay-seconds 30 \\
      --validate-every-s 60 --update-log /var/log/nextblock-learn.jsonl

  # clients follow the published versions:
  python -m nextblock.attach --jacktrip-pid 4242 --model-dir ~/.cache/nextblock/models/live

How it works: every channel of every source fills a replay buffer (--replay-seconds per channel);
the newest --holdout-seconds are never trained on. Every --validate-every-s the candidate and the
model the clients run are both scored through LiteRT on that held-back audio (pooled snr_db, the
evaluation harness's metric); only a candidate better by --min-gain-db is exported and published
(model-v<N>.tflite + current.json, written with fsync + rename). The first run starts from
--model (default: the shipped model) and needs its Keras weights (--init-weights, or
<model>.weights.h5 next to it); later runs continue from the last published version. The
starting model is re-published as a new version when it predicts the held-back audio
--fallback-margin-db better than both the current version and the candidate (the stream changed
character and the specialised model lost its generality; --no-fallback: never).
Exit status: 0 on a clean stop (Ctrl-C / SIGTERM / --max-seconds / producer gone), 2 on a usage error.
"""


def build_parser(prog: str = "nextblock learn") -> argparse.ArgumentParser:
    """The command line (see ``--help``)."""
    from nextblock.learning.publish import default_model_dir

    p = argparse.ArgumentParser(
        prog=prog,
        description="Fine-tune the NextBlock model on live JackTrip audio and publish better versions to the clients.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("sources")
    src.add_argument(
        "--jacktrip-pid",
        type=int,
        nargs="+",
        default=[],
        metavar="PID",
        help="PID(s) of patched JackTrip processes: every stream each one receives is learned from "
        "(/nextblock-<PID>, and on a hub server /nextblock-<PID>-<PORT> per client present at start)",
    )
    src.add_argument(
        "--segment", action="append", default=[], metavar="NAME", help="a segment by name instead of PID (repeatable)"
    )
    src.add_argument(
        "--start",
        choices=("now", "oldest"),
        default="oldest",
        help="begin with the oldest block still in the ring, or with the next one (default %(default)s)",
    )
    mdl = p.add_argument_group("models")
    mdl.add_argument(
        "--model-dir", default=str(default_model_dir()), help="watched directory the clients read (default %(default)s)"
    )
    mdl.add_argument(
        "--model", default=None, help="starting .tflite when --model-dir has no publication (default: shipped model)"
    )
    mdl.add_argument(
        "--init-weights",
        default=None,
        help="Keras .weights.h5 matching the starting model (default: found next to it / in learner-state)",
    )
    mdl.add_argument("--keep", type=int, default=5, help="published versions kept on disk (default %(default)s)")
    lrn = p.add_argument_group("learning")
    lrn.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate (default %(default)s)")
    lrn.add_argument("--batch-size", type=int, default=32, help="windows per step (default %(default)s)")
    lrn.add_argument(
        "--replay-seconds",
        type=float,
        default=60.0,
        help="audio kept per channel; bounds memory at 192 kB/s per channel (default %(default)s)",
    )
    lrn.add_argument(
        "--holdout-seconds",
        type=float,
        default=5.0,
        help="newest audio per channel held back for validation (default %(default)s)",
    )
    lrn.add_argument(
        "--validate-every-s", type=float, default=30.0, help="seconds between validations (default %(default)s)"
    )
    lrn.add_argument(
        "--min-gain-db",
        type=float,
        default=0.1,
        help="publish only when the candidate is better by this many dB (default %(default)s)",
    )
    lrn.add_argument(
        "--fallback-margin-db",
        type=float,
        default=0.5,
        help="re-publish the starting model when it beats the current version and the candidate by this "
        "many dB on the held-back audio (default %(default)s)",
    )
    lrn.add_argument("--no-fallback", action="store_true", help="never re-publish the starting model")
    lrn.add_argument(
        "--validation-windows", type=int, default=400, help="held-back windows scored per model (default %(default)s)"
    )
    cpu = p.add_argument_group("resources")
    cpu.add_argument(
        "--max-cpu",
        type=float,
        default=0.5,
        help="average fraction of one core (duty cycle: sleeps between steps) (default %(default)s)",
    )
    cpu.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads (default %(default)s)")
    cpu.add_argument("--nice", type=int, default=10, help="increase the nice level by this much (default %(default)s)")
    cpu.add_argument(
        "--max-seconds", type=float, default=None, help="stop after this many seconds (default: run until stopped)"
    )
    out = p.add_argument_group("output")
    out.add_argument("--update-log", default=None, help="append one JSON line per validation to this file")
    out.add_argument("--status-every-s", type=float, default=1.0, help="status line interval (default %(default)s)")
    out.add_argument("--quiet", action="store_true", help="no status line (updates are still logged)")
    out.add_argument("--seed", type=int, default=0, help="seed of the example positions (default %(default)s)")
    return p


def _checked(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """``args``, after the checks argparse cannot make (``p.error``: exit status 2)."""
    if not args.jacktrip_pid and not args.segment:
        p.error("give at least one --jacktrip-pid PID or --segment NAME")
    for name in (
        "learning_rate",
        "batch_size",
        "replay_seconds",
        "holdout_seconds",
        "validate_every_s",
        "threads",
        "validation_windows",
    ):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 < args.max_cpu <= 1:
        p.error("--max-cpu must be in (0, 1]")
    if args.replay_seconds < args.holdout_seconds + 1:
        p.error("--replay-seconds must exceed --holdout-seconds by at least 1 s")
    return args


def main(argv: list[str] | None = None, prog: str = "nextblock learn") -> int:
    """Entry point; returns the exit status (0 on a clean stop, 2 on a usage error)."""
    p = build_parser(prog)
    args = _checked(p, p.parse_args(argv))
    from nextblock import learn

    return learn.run(args)
