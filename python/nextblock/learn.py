"""``python -m nextblock.learn``: on-line learning next to a JackTrip server (see ``--help``).

Reads the blocks a (patched) JackTrip receives from its shared-memory segment as a second,
non-posting reader, fine-tunes the model the clients run on that live audio at low priority, and
publishes a new version to a watched directory whenever it predicts the most recent, held-back
audio better (``docs/model_publishing.md``; clients pick it up with
``python -m nextblock.attach --model-dir DIR``). See :mod:`nextblock.learning`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see ``--help``)."""
    from .learning.publish import default_model_dir

    p = argparse.ArgumentParser(
        prog="python -m nextblock.learn",
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
    args = p.parse_args(argv)
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


class _StatusPrinter:
    """One status line: rewritten in place on a terminal, a new line every 10 s otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self._last_plain = -1e9

    def __call__(self, line: str) -> None:
        import time

        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
        elif time.monotonic() - self._last_plain >= 10:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_plain = time.monotonic()

    def log(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        self.stream.flush()


def expand_pids(pids: list[int]) -> list[int | str]:
    """Every stream segment of each PID (a hub server has one per client); a PID without any stays
    a PID, so that the stream reader reports what is wrong with it."""
    from .capture import stream_segments

    out: list[int | str] = []
    for pid in pids:
        out += stream_segments(pid) or [pid]
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .capture import SegmentError
    from .learning.priority import limit_threads, lower_priority
    from .learning.stream import SharedMemoryStream

    printer = _StatusPrinter()
    lower_priority(args.nice)
    streams = []
    try:
        for source in [*expand_pids(args.jacktrip_pid), *args.segment]:
            streams.append(SharedMemoryStream(source, start=args.start))
    except (SegmentError, ValueError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        for s in streams:
            s.close()
        return 2

    limit_threads(args.threads, 1)
    from .learning.finetune import FineTuner
    from .learning.learner import LearnerSettings, OnlineLearner, version_label
    from .learning.model_io import (
        StartingModelError,
        TFLiteExporter,
        build_keras_model,
        resolve_baseline,
        resolve_starting_point,
    )
    from .learning.publish import Publisher

    try:
        start = resolve_starting_point(args.model_dir, args.model, args.init_weights)
        from .model.stream import stream_support

        for s in streams:
            if (reason := stream_support(start.metadata, s.frames_per_block, s.sample_rate_hz)) is not None:
                raise StartingModelError(
                    f"{s.name} streams {s.frames_per_block}-frame blocks at {s.sample_rate_hz} Hz; the model {reason}"
                )
        model = build_keras_model(start.features, start.architecture, start.weights)
        baseline = None if args.no_fallback else resolve_baseline(start, args.model_dir, args.model, args.init_weights)
    except StartingModelError as err:
        print(f"error: {err}", file=sys.stderr)
        for s in streams:
            s.close()
        return 2
    settings = LearnerSettings(
        replay_seconds=args.replay_seconds,
        holdout_seconds=args.holdout_seconds,
        batch_size=args.batch_size,
        validate_every_s=args.validate_every_s,
        min_gain_db=args.min_gain_db,
        max_validation_windows=args.validation_windows,
        max_cpu=args.max_cpu,
        fallback_margin_db=None if args.no_fallback else args.fallback_margin_db,
    )
    learner = OnlineLearner(
        streams,
        FineTuner(model, start.features, learning_rate=args.learning_rate),
        start.features,
        start.current,
        Publisher(args.model_dir, keep=args.keep),
        TFLiteExporter(
            start.features,
            start.architecture,
            sample_rates_hz=start.metadata.get("sample_rates_hz") or (),
            guess_weight=start.metadata.get("guess_weight", 0.0),
        ),
        settings,
        log=printer.log,
        update_log_path=args.update_log,
        seed=args.seed,
        baseline=baseline[0] if baseline else None,
        baseline_weights=baseline[1] if baseline else None,
        sample_rates_hz=tuple(start.metadata.get("sample_rates_hz") or ()),
    )
    printer.log(
        f"learn: {', '.join(s.name for s in streams)} -> {args.model_dir}; starting from "
        f"{start.current.path} ({version_label(start.current.version)}), weights {start.weights}; "
        f"fallback {baseline[0] if baseline else 'off'}"
    )

    def on_signal(signum, _frame):
        learner.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for s in streams:
        s.rewind(args.start)  # loading the model took a while: start from the ring as it is now
    learner.start_ingest_thread()
    try:
        stats = learner.run(
            max_seconds=args.max_seconds, status=None if args.quiet else printer, status_every_s=args.status_every_s
        )
    finally:
        learner.close()
    printer.log(
        f"learn: stopped after {stats.steps} steps, {stats.validations} validations, {stats.published} published "
        f"(clients run {version_label(learner.current.version)}); skipped {stats.blocks_skipped} blocks"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
