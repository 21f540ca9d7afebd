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


def run(args: argparse.Namespace) -> int:
    """Learn from the streams ``args`` (:func:`nextblock.commands.learn.build_parser`) name until stopped; returns the exit status."""
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
    from nextblock.commands.learn import main

    sys.exit(main(prog="python -m nextblock.learn"))
