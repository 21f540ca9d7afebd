#!/usr/bin/env python3
"""Adaptation curve of the online learner on a changing stream, and the client's swap pause.

Plays a stream of real audio whose character changes (default: speech 20 s → guitar 40 s →
drums 30 s → speech 20 s, from the allowed Debian packages, see nextblock.learning.scenario) to
the online learner (nextblock.learning.OnlineLearner) in simulated time: every training step
consumes ``1 / --steps-per-audio-second`` s of audio, so the curve does not depend on how busy the
machine is. Every ``--validate-every-audio-s`` the learner validates on its held-back window
(the newest ``--holdout-seconds``) and publishes if better; the starting model is scored on the
same windows, so the curve shows

* ``snr_db_start``    – the starting model (what clients would run without learning),
* ``snr_db_clients``  – the model the clients run at that moment (after any publication),
* ``snr_db_candidate``– the learner's candidate,

all through LiteRT, pooled snr_db (the evaluation harness's metric), over stream time.

Meanwhile a client-side ModelWatcher (nextblock.runtime.modelwatch, the hot-swap of
``nextblock.attach``) watches the publishing directory; for every published version the bench
measures publish → ready (verified, loaded, warmed, µs) and the pause on the hot path: the
watcher's ``take()`` plus ``HubLoop.swap_model`` (µs), plus the first ``predict`` after the
swap against the steady-state median.

Writes ``<out>/adaptation.json`` and ``<out>/adaptation.png``; prints a summary and, as the last
line, one JSON object.

Starting model (first that applies): ``--model M.tflite --init-weights W.weights.h5``;
``--run-dir RUN`` (a ``nextblock.train`` run: its best weights, exported here); else a tiny
network (``--tiny-width``/``--tiny-blocks``) trained ``--pretrain-steps`` on speech.

examples:
  nice python bench/adaptation.py                                  # tiny speech model, ~2 min
  nice python bench/adaptation.py --run-dir runs/default --steps-per-audio-second 2
  nice python bench/adaptation.py --segments speech:10,guitar:30 --out /tmp/adapt
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

RATE = 48000


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--segments",
        default="speech:20,guitar:40,drums:30,speech:20",
        help="KIND:SECONDS,... with KIND in speech/guitar/drums (default %(default)s)",
    )
    p.add_argument("--model", help="starting .tflite (needs --init-weights)")
    p.add_argument("--init-weights", help="Keras weights matching --model")
    p.add_argument("--run-dir", help="a nextblock.train run to start from (best.weights.h5 + config.json)")
    p.add_argument("--tiny-width", type=int, default=16, help="tiny starting network's width (default %(default)s)")
    p.add_argument("--tiny-blocks", type=int, default=2, help="tiny starting network's blocks (default %(default)s)")
    p.add_argument(
        "--pretrain-steps", type=int, default=300, help="speech steps for the tiny network (default %(default)s)"
    )
    p.add_argument("--learning-rate", type=float, default=1e-3, help="fine-tuning learning rate (default %(default)s)")
    p.add_argument(
        "--steps-per-audio-second",
        type=float,
        default=6.0,
        help="training steps per second of stream (the learner's speed vs real time) (default %(default)s)",
    )
    p.add_argument(
        "--validate-every-audio-s",
        type=float,
        default=5.0,
        help="stream seconds between validations (default %(default)s)",
    )
    p.add_argument("--replay-seconds", type=float, default=20.0, help="replay buffer per channel (default %(default)s)")
    p.add_argument("--holdout-seconds", type=float, default=3.0, help="held-back window (default %(default)s)")
    p.add_argument(
        "--validation-windows", type=int, default=300, help="held-back windows per score (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    p.add_argument("--out", default="out/bench-adaptation", help="output folder (default %(default)s)")
    p.add_argument(
        "--fallback-margin-db",
        type=float,
        default=0.5,
        help="re-publish the starting model when better by this many dB, as the CLI (default %(default)s)",
    )
    p.add_argument("--no-fallback", action="store_true", help="never re-publish the starting model")
    p.add_argument("--no-swap", action="store_true", help="skip the client hot-swap measurement")
    return p.parse_args(argv)


def starting_model(args, folder: Path, features):
    """``(tflite_path, weights_path, architecture dict)`` of the starting model."""
    from nextblock.learning import scenario
    from nextblock.learning.examples import LiveExampleBuilder
    from nextblock.learning.finetune import FineTuner
    from nextblock.learning.model_io import TFLiteExporter, build_keras_model
    from nextblock.learning.replay import ReplayBuffer
    from nextblock.model.metadata import read_metadata

    if args.model:
        if not args.init_weights:
            raise SystemExit("error: --model needs --init-weights (the Keras weights it was exported from)")
        return Path(args.model), Path(args.init_weights), read_metadata(args.model)["architecture"]
    if args.run_dir:
        config = json.loads((Path(args.run_dir) / "config.json").read_text())
        arch, weights = config["architecture"], Path(args.run_dir) / "best.weights.h5"
        model = build_keras_model(features, arch, weights)
        TFLiteExporter(features, arch, name="bench-start")(model, folder / "start.tflite")
        return folder / "start.tflite", weights, arch
    arch = {"width": args.tiny_width, "blocks": args.tiny_blocks}
    model = build_keras_model(features, arch)
    tuner = FineTuner(model, features, learning_rate=1e-3)
    speech = scenario.load_kind("speech", 30, RATE, seed=args.seed + 1)
    buffer = ReplayBuffer(
        speech.shape[0], RATE, features.context_samples + features.output_samples, features.context_samples
    )
    buffer.add("speech", speech)
    builder = LiveExampleBuilder(buffer, features, seed=args.seed)
    t0 = time.monotonic()
    for _ in range(args.pretrain_steps):
        tuner.train_step(*builder.batch(32))
    print(
        f"pretrained a tiny network ({model.count_params()} parameters) on speech: {args.pretrain_steps} steps "
        f"in {time.monotonic() - t0:.0f} s",
        flush=True,
    )
    TFLiteExporter(features, arch, name="bench-start")(model, folder / "start.tflite")
    model.save_weights(str(folder / "start.weights.h5"))
    return folder / "start.tflite", folder / "start.weights.h5", arch


class SwapProbe:
    """A client next to the learner: ModelWatcher + the live loop (HubLoop, as ``nextblock.attach``
    runs it) on a dummy segment; times the swaps."""

    def __init__(self, model_dir: Path, start_model: Path):
        from nextblock.capture import Producer
        from nextblock.runtime.discovery import NamedSegment
        from nextblock.runtime.hub import HubConfig, HubLoop
        from nextblock.runtime.modelwatch import ModelWatcher
        from nextblock.runtime.predictors import load_model_predictor

        self.producer = Producer(f"/nextblock-bench-adapt-{os.getpid()}", RATE, 128, 1)
        self.loop = HubLoop(NamedSegment(self.producer.name), load_model_predictor(start_model), HubConfig())
        self.watcher = ModelWatcher(model_dir, load_model_predictor, 128, RATE, 1, 64 * 128, poll_s=0.05)
        self.watcher.start()
        self.context = (
            0.1 * np.random.default_rng(0).standard_normal((1, self.loop.predictor.context_samples))
        ).astype(np.float32)
        self.swaps = []

    def after_publish(self, version: int, published_at: float, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.watcher._handoff and time.monotonic() < deadline:
            time.sleep(0.001)
        ready_s = time.monotonic() - published_at
        t0 = time.perf_counter_ns()
        ready = self.watcher.take()
        if ready is not None:
            self.loop.swap_model(ready.predictor, ready.label)
        pause_us = (time.perf_counter_ns() - t0) / 1e3
        if ready is None:
            self.swaps.append({"version": version, "error": "not ready within the timeout"})
            return
        t1 = time.perf_counter_ns()
        self.loop.predictor.predict(self.context)
        first_us = (time.perf_counter_ns() - t1) / 1e3
        steady = []
        for _ in range(200):
            t2 = time.perf_counter_ns()
            self.loop.predictor.predict(self.context)
            steady.append((time.perf_counter_ns() - t2) / 1e3)
        self.swaps.append(
            {
                "version": ready.version,
                "publish_to_ready_ms": round(ready_s * 1e3, 1),
                "swap_pause_us": round(pause_us, 1),
                "first_predict_us": round(first_us, 1),
                "steady_predict_median_us": round(float(np.median(steady)), 1),
            }
        )

    def close(self):
        self.watcher.stop()
        self.producer.close()


def plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    t = [c["stream_s"] for c in curve]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colors = {"speech": "#dde8f5", "guitar": "#f5ecd8", "drums": "#e4f2df"}
    for span in result["segments"]:
        ax.axvspan(span["start_s"], span["end_s"], color=colors.get(span["kind"], "#eee"), zorder=0)
        ax.text(
            (span["start_s"] + span["end_s"]) / 2,
            0.98,
            span["kind"],
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=9,
            color="#555",
        )
    ax.plot(t, [c["snr_db_start"] for c in curve], "o-", color="#888", label="starting model (no learning)")
    ax.plot(t, [c["snr_db_clients"] for c in curve], "o-", color="#c0392b", label="model the clients run")
    ax.plot(t, [c["snr_db_candidate"] for c in curve], ".:", color="#2c7fb8", label="learner's candidate")
    for c in curve:
        if c["published"]:
            ax.annotate(
                f"v{c['version']}",
                (c["stream_s"], c["snr_db_clients"]),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
                color="#c0392b",
            )
    ax.set_xlabel("stream time (s)")
    ax.set_ylabel("held-back snr_db (dB, LiteRT)")
    ax.set_title(
        "Online adaptation on a changing stream (held-back window = newest "
        f"{result['settings']['holdout_seconds']:.0f} s)"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.nice(5)
    from nextblock.learning.priority import limit_threads

    limit_threads(1, 1)
    import keras

    from nextblock.features.config import FeatureConfig
    from nextblock.learning import scenario
    from nextblock.learning.finetune import FineTuner
    from nextblock.learning.learner import CurrentModel, LearnerSettings, OnlineLearner
    from nextblock.learning.model_io import TFLiteExporter, build_keras_model
    from nextblock.learning.publish import Publisher
    from nextblock.learning.stream import ArrayStream

    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    segments = [(kind, float(sec)) for kind, sec in (item.split(":") for item in args.segments.split(","))]
    features = FeatureConfig()
    work = Path(tempfile.mkdtemp(prefix="nextblock-bench-adapt-"))
    try:
        audio, spans = scenario.changing_stream(segments, RATE, seed=args.seed)
    except scenario.MaterialMissing as err:
        print(f"error: {err}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        return 2
    start_path, weights, arch = starting_model(args, work, features)
    model = build_keras_model(features, arch, weights)
    chunk = int(RATE / args.steps_per_audio_second)
    validate_every_steps = max(1, round(args.validate_every_audio_s * args.steps_per_audio_second))
    settings = LearnerSettings(
        replay_seconds=args.replay_seconds,
        holdout_seconds=args.holdout_seconds,
        batch_size=32,
        validate_every_s=None,
        validate_every_steps=validate_every_steps,
        max_cpu=1.0,
        max_chunks_per_ingest=1,
        max_validation_windows=args.validation_windows,
        fallback_margin_db=None if args.no_fallback else args.fallback_margin_db,
    )
    model_dir = work / "live"
    probe = None if args.no_swap else SwapProbe(model_dir, start_path)
    learner = OnlineLearner(
        [ArrayStream(audio, RATE, chunk_samples=chunk, name="bench")],
        FineTuner(model, features, learning_rate=args.learning_rate),
        features,
        CurrentModel(start_path, None),
        Publisher(model_dir),
        TFLiteExporter(features, arch),
        settings,
        log=lambda line: print(line, flush=True),
        baseline=start_path,
        seed=args.seed,
        baseline_weights=[w.copy() for w in model.get_weights()],
    )
    if probe is not None:
        original_validate = learner.validate

        def validate_and_swap():
            record = original_validate()
            if record is not None and record.published:
                probe.after_publish(record.version, time.monotonic())
            return record

        learner.validate = validate_and_swap
    t0 = time.monotonic()
    stats = learner.run()
    wall_s = time.monotonic() - t0
    if probe is not None:
        probe.close()
    shutil.rmtree(work, ignore_errors=True)

    curve = []
    for r in stats.updates:
        clients = r.snr_db_candidate if r.published else r.snr_db_previous
        curve.append(
            {
                "stream_s": round(r.stream_seconds, 2),
                "steps": r.steps,
                "snr_db_start": r.snr_db_baseline,
                "snr_db_clients": clients,
                "snr_db_candidate": r.snr_db_candidate,
                "gain_db": r.gain_db,
                "published": r.published,
                "version": r.version,
            }
        )
    per_segment = []
    for span in spans:
        inside = [c for c in curve if span["start_s"] + args.holdout_seconds <= c["stream_s"] <= span["end_s"] + 1e-6]
        if inside:
            per_segment.append(
                {
                    "kind": span["kind"],
                    "start_s": span["start_s"],
                    "end_s": span["end_s"],
                    "mean_snr_db_start": float(np.mean([c["snr_db_start"] for c in inside])),
                    "mean_snr_db_clients": float(np.mean([c["snr_db_clients"] for c in inside])),
                    "validations": len(inside),
                }
            )
    swaps = probe.swaps if probe is not None else []
    ok_swaps = [s for s in swaps if "swap_pause_us" in s]
    result = {
        "benchmark": "adaptation",
        "segments": spans,
        "starting_model": {
            "path": str(start_path),
            "architecture": arch,
            "source": "model" if args.model else "run-dir" if args.run_dir else "tiny speech pretrain",
        },
        "settings": {
            "steps_per_audio_second": args.steps_per_audio_second,
            "validate_every_audio_s": args.validate_every_audio_s,
            "replay_seconds": args.replay_seconds,
            "holdout_seconds": args.holdout_seconds,
            "learning_rate": args.learning_rate,
            "validation_windows": args.validation_windows,
            "fallback_margin_db": None if args.no_fallback else args.fallback_margin_db,
            "metric": "pooled snr_db over both predicted blocks, LiteRT (nextblock.model.runner)",
        },
        "curve": curve,
        "per_segment": per_segment,
        "summary": {
            "steps": stats.steps,
            "validations": stats.validations,
            "published": stats.published,
            "fallbacks": stats.fallbacks,
            "wall_s": round(wall_s, 1),
            "mean_snr_db_start": float(np.mean([c["snr_db_start"] for c in curve])) if curve else None,
            "mean_snr_db_clients": float(np.mean([c["snr_db_clients"] for c in curve])) if curve else None,
            "mean_validation_s": float(np.mean([r.seconds_taken for r in stats.updates])) if stats.updates else None,
        },
        "swap": {
            "client": "nextblock.runtime.modelwatch.ModelWatcher + HubLoop.swap_model",
            "swaps": swaps,
            "swap_pause_us_median": float(np.median([s["swap_pause_us"] for s in ok_swaps])) if ok_swaps else None,
            "swap_pause_us_max": float(np.max([s["swap_pause_us"] for s in ok_swaps])) if ok_swaps else None,
            "publish_to_ready_ms_median": float(np.median([s["publish_to_ready_ms"] for s in ok_swaps]))
            if ok_swaps
            else None,
        },
    }
    (out / "adaptation.json").write_text(json.dumps(result, indent=1))
    plot(out / "adaptation.png", result)
    for seg in per_segment:
        print(
            f"{seg['kind']:>7} {seg['start_s']:5.0f}-{seg['end_s']:<5.0f}s  start {seg['mean_snr_db_start']:6.2f} dB  "
            f"clients {seg['mean_snr_db_clients']:6.2f} dB  ({seg['validations']} validations)"
        )
    if ok_swaps:
        print(
            f"swap pause: median {result['swap']['swap_pause_us_median']:.1f} us, max {result['swap']['swap_pause_us_max']:.1f} us; "
            f"publish->ready median {result['swap']['publish_to_ready_ms_median']:.0f} ms"
        )
    print(f"wrote {out / 'adaptation.json'} and {out / 'adaptation.png'}")
    print(
        json.dumps(
            {
                "summary": result["summary"],
                "swap_pause_us_median": result["swap"]["swap_pause_us_median"],
                "per_segment": per_segment,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
