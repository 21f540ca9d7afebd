"""``python -m nextblock.attach``: a NextBlock prediction for every block JackTrip may have to conceal.

Serves every stream of a running patched JackTrip (segments ``/nextblock-<PID>`` and, on a hub
server, ``/nextblock-<PID>-<PORT>`` per client, as clients join and leave), or one segment made
with :class:`nextblock.capture.Producer`. Per stream it predicts just in time (only a block that
has not arrived shortly before JackTrip plays it, from JackTrip's play-out clock) or, without
headroom, speculatively after every block; predictions due together go through the TFLite model
(LiteRT) as one batch, and are posted for their sequence numbers. See ``--help`` and
``docs/notes/attach.md``.

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


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum, _frame):
        if stop.is_set():  # second signal: stop waiting politely
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        log.info("%s received: stopping (JackTrip keeps playing its own concealment)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _set_realtime(producer_pid: int, requested: int | None) -> None:
    """SCHED_FIFO for this thread (the hot path), below every real-time thread of the producer."""
    from .runtime.priority import priority_below

    priority, why = priority_below(producer_pid, requested)
    if priority is None:
        log.warning("--realtime: %s", why)
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        log.info("hot path runs with %s", why)
    except (PermissionError, OSError) as err:
        log.warning("cannot use SCHED_FIFO (%s); running with normal priority", err.strerror or err)


def serve(args: argparse.Namespace, stop: threading.Event) -> int:
    """Attach and serve until stopped. Returns the exit status; raises AttachError."""
    from .runtime import AttachError, ModelWatcher, ProducerGone, choose_shipped_model
    from .runtime.discovery import NamedSegment, ProcessStreams
    from .runtime.hub import HubConfig, HubLoop
    from .runtime.predictors import load_model_predictor
    from .runtime.schedule import ScheduleConfig
    from .runtime.session import EXIT_PRODUCER_GONE
    from .runtime.stack import build_stream_stack
    from .runtime.stats import HubStats

    if args.predictor == "repeat" and (args.model or args.model_dir):
        raise AttachError("--predictor repeat uses no model: drop --model/--model-dir")
    if args.model_dir and not os.path.isdir(args.model_dir):
        raise AttachError(f"--model-dir {args.model_dir} is not a directory")
    stats = HubStats()

    def on_restart(_pid: int) -> None:
        stats.reattaches += 1

    source = (
        ProcessStreams(args.jacktrip_pid, on_restart=on_restart) if args.jacktrip_pid else NamedSegment(args.segment)
    )
    source.check()

    def model(path, frames, rate):  # one interpreter per batch size, fitted to the stream, all warmed
        stack = build_stream_stack(
            frames, rate, 2, model_path=path, kind=args.predictor, threads=args.threads, max_rows=args.max_batch_rows
        )
        if stack.description:  # how the model serves the stream (block size, rate, model calls)
            stats.model_choice = (
                stack.description if not stats.model_choice else f"{stats.model_choice}; {stack.description}"
            )
        return stack.predictor

    serving = {}  # "loop": the HubLoop, once made (its predictor is the newest model)

    def other_geometry(frames, rate):  # a stream at another block size or rate (a background thread)
        path = args.model
        if args.model_dir and "loop" in serving:  # the model running now (published or not)
            path = getattr(serving["loop"].predictor, "model_path", None) or path
        return model(path, frames, rate)

    # A bad --model is reported before attaching, even without JackTrip.
    if args.predictor == "model" and args.model is not None:
        load_model_predictor(args.model, args.threads)
    # the first streams: wait a moment for them (a segment is created when JackTrip's stream starts)
    waited_until = time.monotonic() + (1e9 if args.wait_for_streams else 1.0)
    while not source.segments():
        if stop.is_set():
            return 0
        if time.monotonic() > waited_until:
            if isinstance(source, ProcessStreams):
                source.check()
                raise source.no_streams_error()
            source.check()
        time.sleep(0.05)
    # the first stream's block size and rate are built now (the model watcher's); streams of other
    # geometries get their own predictor when they join (HubLoop's predictor_for)
    frames, rate = 128, 48000
    producer_pid = args.jacktrip_pid or 0
    from .capture import SegmentError
    from .runtime.session import consumer_once_published

    try:
        with consumer_once_published(source.segments()[0]) as first:
            frames, rate = first.frames_per_block, first.sample_rate_hz
            producer_pid = args.jacktrip_pid or first.producer_pid
    except SegmentError:
        pass
    predictor, label, watcher = None, None, None
    if args.predictor == "repeat":  # the stand-in predicts at the stream's own block size
        predictor = model(None, frames, rate)
    else:
        path = args.model
        if path is None:  # the shipped model that serves this block size and rate best
            path, why = choose_shipped_model(frames, rate)
            stats.model_choice = why
            log.info("chose %s", why)
        if not (args.model_dir and os.path.exists(os.path.join(args.model_dir, "current.json"))):
            predictor = model(path, frames, rate)
    if args.model_dir:
        watcher = ModelWatcher(args.model_dir, lambda p: model(p, frames, rate), frames, rate, 2, 64 * 128)
        published = watcher.load_current()
        if published is not None:
            predictor, label = published.predictor, published.label
        elif predictor is None:
            reason = watcher.last_error or "nothing published yet"
            log.warning(
                "no usable published model in %s (%s); starting with the shipped/--model one", args.model_dir, reason
            )
            predictor = model(path, frames, rate)
        watcher.start()
    if args.realtime is not None:
        _set_realtime(producer_pid, args.realtime or None)
    schedule = ScheduleConfig(
        deadline_us=args.deadline_us,
        max_chain_blocks=max(0, args.max_chain),
        force_mode=None if args.mode == "auto" else args.mode,
    )
    config = HubConfig(
        schedule=schedule,
        batch_window_us=args.batch_window_us,
        stats_interval_s=args.stats,
        jit_wake=args.jit_wake,
        freeze_gc=not args.no_gc_freeze,
        keep_warm=args.keep_warm,
        keep_warm_interval_ms=args.keep_warm_ms,
        lookahead=args.lookahead,
    )

    def status(line: str) -> None:
        print(f"nextblock.attach: {line}", file=sys.stderr, flush=True)

    loop = HubLoop(
        source,
        predictor,
        config,
        stats,
        watcher=watcher,
        stop=stop,
        status=status,
        channels=args.channels,
        exit_when_gone=args.once,
        gone_timeout_s=args.reattach_timeout,
        predictor_for=other_geometry,
    )
    serving["loop"] = loop
    if label:
        stats.model_version = label
    log.info(
        "serving %s with model %s (context %d samples; cold inference at start %.0f us)",
        source.describe(),
        stats.model_version,
        predictor.context_samples,
        stats.cold_infer_us_at_start or 0,
    )
    code = 0
    try:
        remaining = args.duration
        loop.run(max_wall_s=remaining)
    except ProducerGone as gone:
        if args.once:
            log.warning("%s; --once given, stopping (JackTrip plays its own concealment)", gone)
        else:
            log.warning("%s and did not come back within %.1f s; stopping", gone, args.reattach_timeout or 0)
        code = EXIT_PRODUCER_GONE
    finally:
        loop.close()
        if watcher is not None:
            watcher.stop()
    final = stats.to_dict()
    status("final: " + stats.status_line())
    for d in final["streams"]:
        status(
            f"final: {d['name']:<22} {d['mode']:<12} blocks={d['blocks']} underruns={d['underruns']} "
            f"replaced={d['replacements_used']} fallback={d['fallbacks']} (late {d['fallbacks_late']}, "
            f"skipped {d['fallbacks_skipped']}, unseen {d['fallbacks_unseen']}, after post {d['fallbacks_after_post']}, "
            f"before attach {d['fallbacks_before_attach']}, outage {d['fallbacks_outage']}, "
            f"dropped received {d['fallbacks_dropped_received']}) "
            f"late={d['late']} skipped={d['overload_skips']} predictions={d['predictions']}"
        )
    if args.json:
        text = json.dumps(final, indent=2, sort_keys=True)
        if args.json == "-":
            print(text, flush=True)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return code


def run(args: argparse.Namespace) -> int:
    """Serve as ``args`` (:func:`nextblock.commands.attach.build_parser`) say, until stopped;
    returns the exit status."""
    logging.basicConfig(
        level=args.log_level.upper(), format="nextblock.attach: %(levelname)s: %(message)s", stream=sys.stderr
    )
    sys.setswitchinterval(0.0005)  # the loader thread must hand the GIL back quickly
    stop = threading.Event()
    _install_signal_handlers(stop)
    from .runtime.errors import AttachError

    try:
        return serve(args, stop)
    except AttachError as err:
        print(f"nextblock.attach: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from nextblock.commands.attach import main

    sys.exit(main(prog="python -m nextblock.attach"))
