"""A stand-in for patched JackTrip: streams a recording into a segment with seeded losses.

For tests, the benchmark and the demo, when no patched JackTrip runs. One process plays both of
JackTrip's roles, in real time, one block period per tick:

* **network thread** – at tick ``k`` block ``k`` "arrives": unless the loss pattern drops it, it is
  published (``publish_block``, with its arrival time);
* **audio thread** – at the same tick block ``k`` is played: if it was dropped, the replacement
  posted for exactly ``k`` is taken (``take_replacement``; its block 0 is played) and an UNDERRUN
  event with outcome REPLACEMENT is posted, otherwise JackTrip's fallback plays (here: silence)
  with outcome FALLBACK. A block that arrives right after a concealed one is cross-faded from the
  replacement's second block (JackTrip's ``futurePredictedPacket``).

So the replacement for ``k`` must be visible within one period after block ``k - 1`` arrived:
the deadline NextBlock is designed for.

Run ``python -m nextblock.runtime.emulator --help``. Results go to an ``.npz`` (``--out``):
``seq`` ``(n,)``, ``lost`` ``(n,)`` bool, ``outcome`` ``(n,)`` (0 received, 1 replacement,
2 fallback), ``taken`` ``(n, 2, frames, channels)`` (zeros where nothing was taken),
``played`` ``(n * frames, channels)``, ``sent`` ``(n * frames, channels)`` (the clean stream),
``tick_late_us`` ``(n,)`` (how late each tick ran) and the segment's counters.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

SYNTHETIC_NOTE = "synthetic signal (no allowed recording found in the cache)"


def loss_pattern(n_blocks: int, loss_rate: float, burst_max: int, seed: int, lead_in_blocks: int) -> np.ndarray:
    """Seeded losses: each block starts a burst with probability ``loss_rate / mean_burst``; burst
    lengths are uniform in ``1..burst_max``. No losses in the first ``lead_in_blocks`` nor in the
    last block. Returns ``(n_blocks,)`` bool."""
    rng = np.random.default_rng(seed)
    lost = np.zeros(n_blocks, bool)
    mean_burst = (1 + burst_max) / 2
    k = lead_in_blocks
    while k < n_blocks - 1:
        if rng.random() < loss_rate / mean_burst:
            length = int(rng.integers(1, burst_max + 1))
            lost[k : min(k + length, n_blocks - 1)] = True
            k += length + 1  # at least one received block between bursts
        else:
            k += 1
    return lost


def cache_root() -> str:
    return os.environ.get("NEXTBLOCK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nextblock")


def load_stream_audio(seconds: float, sample_rate_hz: int, channels: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """A real recording from the allowed Debian packages in the cache, ``(samples, channels)``
    float32, and a description of what it is.

    Tries, in order: music (``singularity-music``, Ogg, needs ``soundfile``), then game sounds
    (``colobot-common-sounds``, WAV, read with scipy) concatenated; resampled to
    ``sample_rate_hz``; channel ``c`` of a mono source is the source delayed by ``c * 0.37 s`` so
    channels differ. Falls back to a synthetic signal (tones + noise bursts) when the cache has
    neither (fetch with ``apt-get download <pkg> && dpkg-deb -x <deb> $NEXTBLOCK_CACHE/debian/extracted/<pkg>``).
    """
    import scipy.signal

    n = int(seconds * sample_rate_hz)
    root = os.path.join(cache_root(), "debian", "extracted")
    pieces: list[np.ndarray] = []
    description = ""
    try:
        import soundfile

        files = sorted(glob.glob(os.path.join(root, "singularity-music", "**", "*.ogg"), recursive=True))
        for path in files:
            data, rate = soundfile.read(path, dtype="float32", always_2d=True)
            if rate != sample_rate_hz:
                data = scipy.signal.resample_poly(data, sample_rate_hz, rate, axis=0).astype(np.float32)
            pieces.append(data)
            description = f"music: singularity-music ({os.path.basename(path)}...)"
            if sum(len(p) for p in pieces) >= n:
                break
    except ImportError:
        pass
    if not pieces:
        import warnings

        import scipy.io.wavfile

        files = sorted(glob.glob(os.path.join(root, "colobot-common-sounds", "**", "*.wav"), recursive=True))
        for path in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rate, data = scipy.io.wavfile.read(path)
            except (ValueError, OSError):
                continue
            data = np.asarray(data)
            if data.dtype.kind == "i":
                data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
            data = data.astype(np.float32).reshape(len(data), -1).mean(axis=1, keepdims=True)
            if rate != sample_rate_hz:
                data = scipy.signal.resample_poly(data, sample_rate_hz, rate, axis=0).astype(np.float32)
            pieces.append(data)
            if sum(len(p) for p in pieces) >= n + channels * sample_rate_hz:
                break
        if pieces:
            description = "game sounds: colobot-common-sounds (WAV, concatenated)"
    if not pieces:
        rng = np.random.default_rng(seed)
        t = np.arange(n + channels * sample_rate_hz) / sample_rate_hz
        mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 331 * t * (1 + 0.01 * np.sin(t)))
        mono += 0.05 * rng.standard_normal(t.shape) * (np.sin(2 * np.pi * 0.5 * t) > 0.7)
        pieces = [mono[:, None].astype(np.float32)]
        description = SYNTHETIC_NOTE
    audio = np.concatenate(pieces, axis=0)
    while len(audio) < n + channels * sample_rate_hz:
        audio = np.concatenate([audio, audio], axis=0)
    if audio.shape[1] >= channels:
        out = audio[:n, :channels]
    else:
        delay = int(0.37 * sample_rate_hz)
        out = np.stack([audio[c * delay : c * delay + n, 0] for c in range(channels)], axis=1)
    peak = float(np.max(np.abs(out))) or 1.0
    return np.ascontiguousarray(out * min(1.0, 0.9 / peak), dtype=np.float32), description


def _sleep_until(target_ns: int, monotonic_ns) -> int:
    """Sleep (then spin the last 200 µs) until ``target_ns``; returns how late we are (ns)."""
    while True:
        left = target_ns - monotonic_ns()
        if left <= 0:
            return -left
        if left > 300_000:
            time.sleep((left - 200_000) / 1e9)


def stream(
    producer,
    audio: np.ndarray,
    lost: np.ndarray,
    first_seq: int = 1000,
    speed: float = 1.0,
) -> dict:
    """Stream ``audio`` ``(n_blocks * frames, channels)`` through ``producer`` in real time.

    ``lost`` ``(n_blocks,)`` marks dropped blocks. ``speed`` > 1 runs faster than real time.
    Returns the arrays described in the module docstring.
    """
    from ..capture import EventKind, Outcome, monotonic_ns
    from ..splice import crossfade

    frames, channels = producer.frames_per_block, producer.channels
    n_blocks = len(lost)
    blocks = audio[: n_blocks * frames].reshape(n_blocks, frames, channels)
    period_ns = int(1e9 * frames / producer.sample_rate_hz / speed)
    outcome = np.zeros(n_blocks, np.int8)
    taken = np.zeros((n_blocks, 2, frames, channels), np.float32)
    played = np.zeros((n_blocks, frames, channels), np.float32)
    tick_late_us = np.zeros(n_blocks, np.float64)
    previous_replacement: np.ndarray | None = None
    t0 = monotonic_ns() + 2 * period_ns
    for k in range(n_blocks):
        tick_late_us[k] = _sleep_until(t0 + k * period_ns, monotonic_ns) / 1000.0
        seq = first_seq + k
        if not lost[k]:
            producer.publish_block(seq, blocks[k])
            if previous_replacement is not None:  # cross-fade from the guess into the real block
                for c in range(channels):
                    played[k, :, c] = crossfade(previous_replacement[1, :, c], blocks[k, :, c])
            else:
                played[k] = blocks[k]
            previous_replacement = None
            continue
        replacement = producer.take_replacement(seq)
        if replacement is not None:
            outcome[k] = 1
            taken[k] = replacement
            played[k] = replacement[0]
            previous_replacement = replacement
            producer.post_event(EventKind.UNDERRUN, seq, Outcome.REPLACEMENT)
        else:
            outcome[k] = 2
            previous_replacement = None
            producer.post_event(EventKind.UNDERRUN, seq, Outcome.FALLBACK)
    return dict(
        seq=np.arange(first_seq, first_seq + n_blocks, dtype=np.int64),
        lost=lost,
        outcome=outcome,
        taken=taken,
        played=played.reshape(-1, channels),
        sent=blocks.reshape(-1, channels),
        tick_late_us=tick_late_us,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nextblock.runtime.emulator",
        description="Stand-in for patched JackTrip: stream a recording into a NextBlock segment in real time, drop "
        "seeded blocks, take NextBlock's replacements for them and report underrun events.",
        epilog="Example:\n  python -m nextblock.runtime.emulator --seconds 10 --loss-rate 0.05 --out /tmp/run.npz &\n"
        "  python -m nextblock.attach --jacktrip-pid $! --predictor repeat --stats 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--segment", help="segment name (default: /nextblock-<this PID>, like JackTrip)")
    parser.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (default 48000)")
    parser.add_argument("--frames", type=int, default=128, help="frames per block (default 128)")
    parser.add_argument("--channels", type=int, default=2, help="channels (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stream length (default 10)")
    parser.add_argument("--loss-rate", type=float, default=0.02, help="share of blocks lost (default 0.02)")
    parser.add_argument("--burst-max", type=int, default=3, help="longest burst of consecutive losses (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="loss pattern seed (default 1)")
    parser.add_argument("--lead-in-s", type=float, default=0.2, help="loss-free start (default 0.2 s)")
    parser.add_argument("--first-seq", type=int, default=1000, help="sequence number of the first block")
    parser.add_argument("--audio", help="a .npy (samples, channels) float32 to stream instead of the cached recording")
    parser.add_argument("--wait-consumer-s", type=float, default=30.0,
                        help="wait this long for NextBlock to attach before streaming (0: do not wait)")
    parser.add_argument("--speed", type=float, default=1.0, help="run this many times faster than real time")
    parser.add_argument("--out", help="write the results (.npz) here")
    parser.add_argument("--ready-file", help="touch this file once the segment exists")
    parser.add_argument("--realtime", type=int, nargs="?", const=20, default=None, metavar="PRIORITY",
                        help="run with SCHED_FIFO at PRIORITY (default 20), like JackTrip's audio thread")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ..capture import Producer

    n_blocks = int(args.seconds * args.rate / args.frames)
    if args.audio:
        audio = np.load(args.audio).astype(np.float32)
        description = f"file {args.audio}"
    else:
        audio, description = load_stream_audio(args.seconds + 0.1, args.rate, args.channels, args.seed)
    if len(audio) < n_blocks * args.frames:
        reps = -(-n_blocks * args.frames // len(audio))
        audio = np.tile(audio, (reps, 1))
    lost = loss_pattern(n_blocks, args.loss_rate, args.burst_max, args.seed, int(args.lead_in_s * args.rate / args.frames))
    if args.realtime is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
        except OSError as err:
            print(f"emulator: cannot use SCHED_FIFO ({err.strerror}); normal priority", file=sys.stderr)
    name = args.segment or os.getpid()
    with Producer(name, args.rate, args.frames, args.channels) as producer:
        if args.ready_file:
            with open(args.ready_file, "w") as f:
                f.write(producer.name)
        if args.wait_consumer_s > 0:
            deadline = time.monotonic() + args.wait_consumer_s
            while not producer.consumer_alive():
                if time.monotonic() > deadline:
                    print(f"emulator: no consumer attached to {producer.name} within {args.wait_consumer_s} s", file=sys.stderr)
                    return 2
                time.sleep(0.01)
        result = stream(producer, audio, lost, args.first_seq, args.speed)
        counters = producer.counters()
    n_lost = int(lost.sum())
    used = int((result["outcome"] == 1).sum())
    summary = {
        "blocks": n_blocks, "lost": n_lost, "replaced": used,
        "replacement_share": used / n_lost if n_lost else None,
        "tick_late_us_p99": float(np.percentile(result["tick_late_us"], 99)),
        "audio": description, **{k: v for k, v in counters.items() if isinstance(v, (int, bool))},
    }
    if args.out:
        np.savez(args.out, **result, summary=json.dumps(summary))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
