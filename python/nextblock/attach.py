"""``python -m nextblock.attach``: keep a NextBlock prediction ready for every JackTrip channel.

Attaches to the shared-memory segment ``/nextblock-<PID>`` of a running patched JackTrip (or to a
segment made with :class:`nextblock.capture.Producer`), and after every received block predicts
the next two blocks of every channel with the TFLite model (LiteRT) and posts them for the next
sequence number before JackTrip could need them. See ``--help`` and ``docs/notes/attach.md``.

Exit status: 0 after SIGINT/SIGTERM or ``--duration``; 2 for a user error (bad option, no such
process, not a patched JackTrip, protocol mismatch, incompatible or unreadable model) with a
one-line message; 3 when JackTrip went away and ``--once`` was given (or it did not come back
within ``--reattach-timeout``).
"""

from __future__ import annotations

import os

# Before numpy is imported anywhere: one BLAS thread, a second busy thread wrecks tails on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import logging
import signal
import sys
import threading
import time

log = logging.getLogger("nextblock.attach")

EPILOG = """\
examples:
  # attach to a running patched JackTrip, print a status line every 2 s
  python -m nextblock.attach --jacktrip-pid $(pgrep -n jacktrip) --stats 2

  # a published, online-learned model, hot-swapped as new versions appear; final stats as JSON
  python -m nextblock.attach --jacktrip-pid 4242 --model-dir ~/.cache/nextblock/models/live --json stats.json

  # without JackTrip: the stand-in streams a recording with seeded losses (see its --help)
  python -m nextblock.runtime.emulator --seconds 20 --loss-rate 0.05 &
  python -m nextblock.attach --jacktrip-pid $! --stats 1 --once

status line (--stats):
  blocks      blocks received        underruns  blocks JackTrip had to conceal
  replaced    ...with our block      fallback   ...with its own concealment
  late        predictions that missed their deadline (not posted: the fallback played)
  skipped     predictions not started because the deadline was too close (CPU overload)
  infer_us    model time median/p99  e2e_us     block arrival -> replacement posted, median/p99

exit status: 0 stopped (signal or --duration), 2 usage or setup error, 3 JackTrip went away (--once)
"""


def _channels(text: str) -> tuple[int, ...] | None:
    """``all`` or a comma list of channel indices / ranges (``0,1`` ``0-3``)."""
    if text.strip().lower() == "all":
        return None
    out: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                out.update(range(lo, hi + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or channel numbers like 0,1 or 0-3, got {text!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"channel numbers must be >= 0, got {text!r}")
    return tuple(sorted(out))


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command line (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m nextblock.attach",
        description="Attach to a running patched JackTrip and keep NextBlock's prediction of the next block ready for "
        "every received channel, so that every underrun is concealed by the model instead of JackTrip's fallback.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_argument_group("what to attach to (one of)")
    target = where.add_mutually_exclusive_group(required=True)
    target.add_argument("--jacktrip-pid", type=_positive(int), metavar="PID",
                        help="process id of the patched JackTrip (its segment is /nextblock-PID)")
    target.add_argument("--segment", metavar="NAME",
                        help="segment name, for producers made with nextblock.capture.Producer (tests, demo)")
    model = p.add_argument_group("model")
    model.add_argument("--model", metavar="PATH", help="TFLite model (default: the shipped model)")
    model.add_argument("--model-dir", metavar="DIR",
                       help="watch this publishing directory (docs/model_publishing.md) and hot-swap each new "
                       "version; its current model is used from the start when there is one")
    model.add_argument("--threads", type=_positive(int), default=1, metavar="N",
                       help="LiteRT inference threads (default 1: on 2 cores a second busy thread hurts tails)")
    model.add_argument("--predictor", choices=("model", "repeat"), default="model",
                       help="'model' (default) or 'repeat': repeat the newest block, no model needed (tests, demo)")
    run = p.add_argument_group("behaviour")
    run.add_argument("--channels", type=_channels, default=None, metavar="LIST",
                     help="channels the model predicts, e.g. 0,1 or 0-3 (default: all); the others repeat their "
                     "newest block")
    run.add_argument("--deadline-us", type=_positive(float), metavar="US",
                     help="post a replacement within this long after the previous block arrived, else skip it "
                     "(default: one block period, 2667 us at 128 frames / 48 kHz)")
    run.add_argument("--max-chain", type=int, default=8, metavar="BLOCKS",
                     help="predict up to this many blocks into a burst of losses, each from the previous guess "
                     "(default 8; 0 disables)")
    run.add_argument("--once", action="store_true",
                     help="stop (exit 3) when JackTrip exits instead of waiting for it to restart")
    run.add_argument("--reattach-timeout", type=_positive(float), metavar="SECONDS",
                     help="give up (exit 3) if JackTrip is not back within this long (default: wait forever)")
    run.add_argument("--duration", type=_positive(float), metavar="SECONDS", help="stop after this long")
    run.add_argument("--realtime", type=int, nargs="?", const=10, default=None, metavar="PRIORITY",
                     help="run the hot path with SCHED_FIFO at PRIORITY (default 10) when permitted")
    out = p.add_argument_group("reporting")
    out.add_argument("--stats", type=_positive(float), metavar="SECONDS", help="print a status line this often")
    out.add_argument("--json", metavar="FILE", help="write the final statistics as JSON to FILE ('-': stdout)")
    out.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                     help="log verbosity (default info)")
    return p


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum, _frame):
        if stop.is_set():  # second signal: stop waiting politely
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        log.info("%s received: stopping (JackTrip keeps playing its own concealment)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _set_realtime(priority: int) -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        log.info("hot path runs with SCHED_FIFO priority %d", priority)
    except (PermissionError, OSError) as err:
        log.warning("cannot use SCHED_FIFO (%s); running with normal priority", err.strerror or err)


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    """Attach and serve until stopped. Returns the exit status; raises AttachError."""
    from .runtime import (
        AttachError,
        AttachLoop,
        LoopConfig,
        ModelWatcher,
        RepeatPredictor,
        RuntimeStats,
        Target,
        choose_shipped_model,
        fit_to_stream,
        load_model_predictor,
        serve,
        warm_up,
    )
    from .runtime.session import EXIT_PRODUCER_GONE  # noqa: F401  (documented exit status)

    if args.predictor == "repeat" and (args.model or args.model_dir):
        raise AttachError("--predictor repeat uses no model: drop --model/--model-dir")
    if args.model_dir and not os.path.isdir(args.model_dir):
        raise AttachError(f"--model-dir {args.model_dir} is not a directory")
    # Load the model before attaching: a bad model is reported even without JackTrip.
    predictor = None
    if args.predictor == "model" and not (args.model_dir and os.path.exists(os.path.join(args.model_dir, "current.json"))):
        predictor = load_model_predictor(args.model, args.threads)
    target = Target.for_pid(args.jacktrip_pid) if args.jacktrip_pid else Target.for_segment(args.segment)
    stats = RuntimeStats()
    state = {"predictor": predictor, "watcher": None, "warm_channels": None}
    if args.realtime is not None:
        _set_realtime(args.realtime)
    deadline = time.monotonic() + args.duration if args.duration else None
    config = LoopConfig(
        channels=args.channels, deadline_us=args.deadline_us, max_chain_blocks=max(0, args.max_chain),
        stats_interval_s=args.stats,
    )

    def status(line: str) -> None:
        print(f"nextblock.attach: {line}", file=sys.stderr, flush=True)

    def run_attached(consumer) -> None:
        frames, rate = consumer.frames_per_block, consumer.sample_rate_hz
        n_predicted = consumer.channels if args.channels is None else len(args.channels)
        if args.predictor == "repeat" and (state["predictor"] is None or state["predictor"].frames_per_block != frames):
            state["predictor"] = RepeatPredictor(frames, rate, channels_hint=n_predicted)
        if args.model_dir and state["watcher"] is None:
            factory = lambda path: fit_to_stream(load_model_predictor(path, args.threads), frames, rate)
            watcher = ModelWatcher(args.model_dir, factory, frames, rate, n_predicted, config.ring_slots * frames)
            published = watcher.load_current()
            if published is not None:
                state["predictor"] = published.predictor
                state["label"] = published.label
                state["warm_channels"] = n_predicted
            elif state["predictor"] is None:
                reason = watcher.last_error or "nothing published yet"
                log.warning("no usable published model in %s (%s); starting with the shipped/--model one", args.model_dir, reason)
                state["predictor"] = load_model_predictor(args.model, args.threads)
            watcher.start()
            state["watcher"] = watcher
        if args.predictor == "model" and args.model is None and not args.model_dir and "chosen" not in state:
            # no --model: the shipped model that serves this block size and rate best
            path, why = choose_shipped_model(frames, rate)
            state["chosen"] = why
            current = getattr(getattr(state["predictor"], "model", state["predictor"]), "model_path", None)
            if current is None or os.fspath(current) != path:
                state["predictor"] = load_model_predictor(path, args.threads)
            log.info("chose %s", why)
        state["predictor"] = fit_to_stream(state["predictor"], frames, rate)
        stats.model_choice = state["predictor"].describe() if hasattr(state["predictor"], "describe") else ""
        if state["warm_channels"] != n_predicted:
            warm_up(state["predictor"], n_predicted)
            state["warm_channels"] = n_predicted
        if channels_bad := [c for c in (args.channels or ()) if c >= consumer.channels]:
            raise AttachError(f"--channels {channels_bad} do not exist: the stream has channels 0..{consumer.channels - 1}")
        loop = AttachLoop(consumer, state["predictor"], stats, config, watcher=state["watcher"], stop=stop, status=status)
        if "label" in state:
            stats.model_version = state.pop("label")
        log.info("serving %d channel(s) with model %s (context %d samples, deadline %.0f us)", n_predicted,
                 stats.model_version, state["predictor"].context_samples, loop.deadline_ns / 1000)
        try:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            loop.run(max_wall_s=remaining)
            if deadline is not None and time.monotonic() >= deadline:
                stop.set()
        finally:
            state["predictor"] = loop.predictor  # keep a hot-swapped model across re-attaches

    def count_reattach() -> None:
        stats.reattaches += 1

    try:
        code = serve(target, run_attached, stop, once=args.once, reattach_timeout_s=args.reattach_timeout,
                     on_reattach=count_reattach)
    finally:
        if state["watcher"] is not None:
            state["watcher"].stop()
    final = stats.to_dict()
    status("final: " + stats.status_line())
    if args.json:
        text = json.dumps(final, indent=2, sort_keys=True)
        if args.json == "-":
            print(text, flush=True)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="nextblock.attach: %(levelname)s: %(message)s", stream=sys.stderr)
    sys.setswitchinterval(0.0005)  # the loader thread must hand the GIL back quickly
    stop = threading.Event()
    _install_signal_handlers(stop)
    from .runtime.errors import AttachError

    try:
        return run(args, stop)
    except AttachError as err:
        print(f"nextblock.attach: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
