"""A stand-in for patched JackTrip: one or many received streams, each in its own segment.

For tests, the benchmark and the demo, when no patched JackTrip runs. One process plays JackTrip's
roles in real time (:func:`run_streams`), for every stream (a point-to-point JackTrip has one,
segment ``/nextblock-<pid>``; a hub server one per client, ``/nextblock-<pid>-<port>``):

* **network** – block ``k`` arrives at its nominal time plus a seeded jitter (exponential, mean
  ``--jitter-us``), unless the loss pattern drops it, and is published (``publish_block``, with its
  arrival time); streams are out of phase with each other;
* **audio callback** – once per block period, for all streams together (a hub's JACK callback),
  the block due ``--headroom-blocks`` after its nominal arrival is played: if it is there it plays
  (cross-faded from the replacement's second block after a concealment, JackTrip's
  ``futurePredictedPacket``, except where that block equals the packet: a two-sided replacement,
  whose splice is an identity); if not (dropped, or arriving after its play-out) the replacement posted
  for exactly its seq is taken (UNDERRUN, outcome REPLACEMENT, or REFUSED for a non-finite or
  |x| > 1 sample) or JackTrip's fallback plays (here: silence; outcome FALLBACK). Then the play-out
  clock is written: ``note_playout(seq, queued_blocks)``.

With no headroom and no jitter (the defaults) a block is due in the period it arrives, so the
replacement for ``k`` must be visible within one period after block ``k - 1`` arrived; with
headroom, NextBlock can wait and predict only the blocks that do not come. Streams can join and
leave (``--stream PORT:START_S[:END_S]``; a port can be reused by a later client), like clients of
a hub.

Run ``python -m nextblock.lab.emulator --help``. The summary (one JSON line) has per-stream and
total counts; ``--out`` writes the first stream's arrays to an ``.npz``: ``seq`` ``(n,)``, ``lost``
``(n,)`` bool (concealed: dropped or late), ``dropped`` ``(n,)``, ``outcome`` ``(n,)`` (0 received,
1 replacement, 2 fallback, 3 refused), ``identity_splice`` ``(n,)`` (a received block after a
replacement whose second block was exactly that block: played as it came, no recovery fade), ``taken`` ``(n, 2, frames, channels)`` (zeros where nothing
was taken), ``played`` ``(n * frames, channels)``, ``sent`` ``(n * frames, channels)`` (the clean
stream), ``late_arrivals`` ``(n,)`` and ``tick_late_us`` (how late each callback ran).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from nextblock.paths import cache_root

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
    root = str(cache_root() / "debian" / "extracted")
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


def arrival_jitter_ns(n_blocks: int, mean_us: float, seed: int) -> np.ndarray:
    """Seeded network jitter: how much later than its nominal time each block arrives, ``(n,)``
    int64 ns. Exponential with mean ``mean_us`` (most packets early, a tail of late ones, as on a
    real path); zeros when ``mean_us`` is 0."""
    if mean_us <= 0:
        return np.zeros(n_blocks, np.int64)
    rng = np.random.default_rng(seed + 7919)
    return (rng.exponential(mean_us * 1000.0, n_blocks)).astype(np.int64)


@dataclass
class StreamPlan:
    """One received stream of the stand-in: when it exists, what it carries, what the network does.

    Attributes
    ----------
    port : int
        Its local UDP port (segment ``/nextblock-<pid>-<port>``; 0: ``/nextblock-<pid>``, or
        ``segment`` when given).
    start_tick : int
        Global play-out tick (block period) at which the stream's first block is due.
    audio : np.ndarray, ``(n_blocks * frames, channels)`` float32
        What the peer sends.
    dropped : np.ndarray, ``(n_blocks,)`` bool
        Blocks the network loses.
    jitter_ns : np.ndarray, ``(n_blocks,)`` int64
        How late each block arrives after its nominal time; a block that arrives after its
        play-out time is concealed like a lost one (and still published when it arrives, as
        JackTrip's receive thread does).
    phase_ns : int
        How long before its play-out tick (minus the headroom) a block nominally arrives, in
        [0, period): streams of a hub are not in phase with the server's audio callback.
    segment : str | None
        Explicit segment name (overrides ``port``).
    name, peer : str
        Identity written into the segment header.
    """

    port: int
    start_tick: int
    audio: np.ndarray
    dropped: np.ndarray
    jitter_ns: np.ndarray
    phase_ns: int = 0
    segment: str | None = None
    name: str = ""
    peer: str = ""


def run_streams(
    plans: list[StreamPlan],
    make_producer,
    frames: int,
    sample_rate_hz: int,
    headroom_blocks: int = 0,
    first_seq: int = 1000,
    speed: float = 1.0,
    keep_audio: bool = True,
    wait_consumer_s: float = 0.0,
    on_created=None,
) -> list[dict]:
    """Play JackTrip's two roles for every stream of ``plans`` in real time (one thread).

    * **network** – block ``k`` of a stream arrives at its nominal time ``(start_tick + k) *
      period - phase_ns`` plus its jitter, unless dropped, and is published (stamped with the time it
      actually was, as JackTrip's receive thread does);
    * **audio callback** – every period (one tick for all streams, like a hub's JACK callback),
      block ``k = tick - start_tick - headroom_blocks`` of each stream is due: played if it has
      arrived, else the replacement posted for exactly its seq is taken (UNDERRUN, outcome
      REPLACEMENT / REFUSED) or JackTrip's fallback (silence) plays (outcome FALLBACK); a block
      that follows a replacement is cross-faded from its second block. Then the play-out clock
      is written: ``note_playout(seq, queued_blocks)`` with the number of later blocks already
      received.

    ``make_producer(plan)`` creates a stream's segment (called when the stream starts; the segment
    is closed after its last block, so its ``producer_closed`` turns true). ``wait_consumer_s`` >
    0 waits (before the clock starts) until a consumer posts to every stream that starts at tick
    0. Returns one dict per plan: ``seq``, ``lost`` (concealed: dropped or late), ``dropped``,
    ``outcome`` (0 played, 1 replacement, 2 fallback, 3 refused), ``late_arrivals``,
    ``tick_late_us``, ``counters``, ``segment``, and with ``keep_audio`` also ``taken``,
    ``played`` and ``sent`` (see the module docstring).
    """
    import heapq

    from ..capture import EventKind, Outcome, monotonic_ns
    from ..splice import crossfade

    period_ns = int(1e9 * frames / sample_rate_hz / speed)
    states = []
    for plan in plans:
        n = len(plan.dropped)
        channels = plan.audio.shape[1]
        st = dict(
            plan=plan,
            n=n,
            channels=channels,
            producer=None,
            arrived=np.zeros(n, bool),
            blocks=plan.audio[: n * frames].reshape(n, frames, channels),
            outcome=np.zeros(n, np.int8),
            lost=np.zeros(n, bool),
            late=np.zeros(n, bool),
            identity=np.zeros(n, bool),
            next_arrival=0,
            previous=None,
            counters={},
            segment=None,
        )
        if keep_audio:
            st["taken"] = np.zeros((n, 2, frames, channels), np.float32)
            st["played"] = np.zeros((n, frames, channels), np.float32)
        states.append(st)

    def start(st) -> None:
        st["producer"] = make_producer(st["plan"])
        st["segment"] = st["producer"].name
        if on_created is not None:
            on_created(st["producer"])

    for st in states:
        if st["plan"].start_tick <= 0:
            start(st)
    if wait_consumer_s > 0:
        deadline = time.monotonic() + wait_consumer_s
        while not all(st["producer"].consumer_alive() for st in states if st["producer"] is not None):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no consumer attached within {wait_consumer_s} s")
            time.sleep(0.01)
    t0 = monotonic_ns() + 2 * period_ns
    last_tick = max(st["plan"].start_tick + st["n"] + headroom_blocks for st in states)
    tick_late_us = np.zeros(last_tick + 1, np.float64)

    def arrival_time(i: int, k: int) -> int:
        plan = states[i]["plan"]
        return t0 + (plan.start_tick + k) * period_ns - plan.phase_ns + int(plan.jitter_ns[k] / speed)

    heap: list[tuple[int, int]] = []  # (arrival time of the stream's next block, stream index)
    for i, st in enumerate(states):
        if st["n"]:
            heapq.heappush(heap, (arrival_time(i, 0), i))
    for tick in range(last_tick + 1):
        play_ns = t0 + tick * period_ns
        # the network: every block that arrives before this callback (publish with its arrival time)
        while heap and heap[0][0] <= play_ns:
            at, i = heap[0]
            now = monotonic_ns()
            if at > now + 150_000:  # sleep until it (arrivals within 150 µs are published together)
                _sleep_until(at - 100_000, monotonic_ns)
            heapq.heappop(heap)
            st = states[i]
            k = st["next_arrival"]
            st["next_arrival"] = k + 1
            if k + 1 < st["n"]:
                heapq.heappush(heap, (arrival_time(i, k + 1), i))
            if st["producer"] is None or st["plan"].dropped[k]:
                continue
            st["producer"].publish_block(
                first_seq + k, st["blocks"][k]
            )  # stamped now, as JackTrip's receive thread does
            st["arrived"][k] = True
        tick_late_us[tick] = _sleep_until(play_ns, monotonic_ns) / 1000.0
        # the audio callback: one block due per stream
        for st in states:
            plan = st["plan"]
            if st["producer"] is None and tick == plan.start_tick - 1:
                start(st)  # created one period before its first block arrives
            k = tick - plan.start_tick - headroom_blocks
            if not 0 <= k < st["n"] or st["producer"] is None:
                continue
            producer = st["producer"]
            seq = first_seq + k
            if st["arrived"][k]:
                previous = st["previous"]
                if previous is not None and np.array_equal(previous[1], st["blocks"][k]):
                    st["identity"][k] = True  # a two-sided replacement: its second block is this packet
                if keep_audio:
                    if previous is not None:  # cross-fade from the guess into the real block
                        for c in range(st["channels"]):
                            real = st["blocks"][k, :, c]
                            faded = crossfade(previous[1, :, c], real, "recovery", sample_rate_hz)
                            # where the guess's second block is this packet the splice is an identity:
                            # the packet plays as it came (JackTrip's patch compares the same way)
                            st["played"][k, :, c] = np.where(previous[1, :, c] == real, real, faded)
                    else:
                        st["played"][k] = st["blocks"][k]
                st["previous"] = None
            else:
                st["lost"][k] = True
                st["late"][k] = not plan.dropped[k]
                status, replacement = producer.take(seq)
                if status == "taken":
                    st["outcome"][k] = 1
                    if keep_audio:
                        st["taken"][k] = replacement
                        st["played"][k] = replacement[0]
                    st["previous"] = replacement
                    producer.post_event(EventKind.UNDERRUN, seq, Outcome.REPLACEMENT)
                else:
                    st["outcome"][k] = 3 if status == "refused" else 2
                    st["previous"] = None
                    producer.post_event(
                        EventKind.UNDERRUN, seq, Outcome.REFUSED if status == "refused" else Outcome.FALLBACK
                    )
            queued = int(st["arrived"][k + 1 : k + 1 + 64].sum())
            producer.note_playout(seq, queued)  # stamped now: when it was actually played
            if k == st["n"] - 1:  # the stream ends: its segment goes (a client leaving a hub)
                st["counters"] = producer.counters()
                producer.close()
                st["producer"] = None
    results = []
    for st in states:
        if st["producer"] is not None:
            st["counters"] = st["producer"].counters()
            st["producer"].close()
        plan, n = st["plan"], st["n"]
        out = dict(
            seq=np.arange(first_seq, first_seq + n, dtype=np.int64),
            lost=st["lost"],
            dropped=plan.dropped.copy(),
            outcome=st["outcome"],
            late_arrivals=st["late"],
            counters=st["counters"],
            segment=st["segment"],
            tick_late_us=tick_late_us,
            identity_splice=st["identity"],
        )
        if keep_audio:
            out.update(
                taken=st["taken"],
                played=st["played"].reshape(-1, st["channels"]),
                sent=st["blocks"].reshape(-1, st["channels"]),
            )
        results.append(out)
    return results


def stream(
    producer,
    audio: np.ndarray,
    lost: np.ndarray,
    first_seq: int = 1000,
    speed: float = 1.0,
    headroom_blocks: int = 0,
) -> dict:
    """Stream ``audio`` ``(n_blocks * frames, channels)`` through one existing ``producer`` in
    real time, with no jitter and ``headroom_blocks`` of headroom (default none: block ``k``
    arrives and is due in the same period, JackTrip at its minimum latency; with ``h`` the block
    after a lost one arrives ``h`` periods before the lost one plays). ``lost`` ``(n_blocks,)``
    marks dropped blocks. Returns the arrays described in the module docstring."""
    plan = StreamPlan(
        port=0, start_tick=0, audio=audio, dropped=np.asarray(lost, bool), jitter_ns=np.zeros(len(lost), np.int64)
    )
    (result,) = run_streams(
        [plan],
        lambda _plan: _Borrowed(producer),
        producer.frames_per_block,
        producer.sample_rate_hz,
        headroom_blocks,
        first_seq,
        speed,
    )
    result["lost"] = np.asarray(lost, bool)
    return result


class _Borrowed:
    """A producer the caller owns: :func:`run_streams` must not close it."""

    def __init__(self, producer):
        self._p = producer

    def __getattr__(self, name):
        return getattr(self._p, name)

    def close(self) -> None:
        pass


def _stream_spec(text: str) -> tuple[int, float, float | None]:
    """``PORT:START_S[:END_S]`` → (port, start, end or None)."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        port, start = int(parts[0]), float(parts[1])
        end = float(parts[2]) if len(parts) == 3 and parts[2] else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PORT:START_S[:END_S] like 61002:0:5, got {text!r}") from None
    if port <= 0 or port > 65535 or start < 0 or (end is not None and end <= start):
        raise argparse.ArgumentTypeError(f"need 0 < PORT <= 65535 and 0 <= START_S < END_S, got {text!r}")
    return port, start, end


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nextblock.lab.emulator",
        description="Stand-in for patched JackTrip: stream recordings into NextBlock segments in real time (one per "
        "received stream, like a hub server), drop seeded blocks, delay the others by seeded jitter, play each block "
        "a configurable headroom after it arrives, take NextBlock's replacements for the missing ones, report "
        "underrun events and write the play-out clock.",
        epilog="examples:\n"
        "  # one stream (segment /nextblock-<PID>), minimum latency, as JackTrip p2p at --bufstrategy 3 -q 1\n"
        "  python -m nextblock.lab.emulator --seconds 10 --loss-rate 0.05 --out /tmp/run.npz &\n"
        "  python -m nextblock.attach --jacktrip-pid $! --predictor repeat --stats 1\n\n"
        "  # a hub: 4 stereo clients (/nextblock-<PID>-61002 ...), 2 blocks of headroom, 300 us mean jitter\n"
        "  python -m nextblock.lab.emulator --streams 4 --headroom-blocks 2 --jitter-us 300 --seconds 20 &\n\n"
        "  # clients joining and leaving: port 61002 for the whole run, 61003 from 2 s to 6 s, then a new\n"
        "  # client on the same port from 7 s\n"
        "  python -m nextblock.lab.emulator --stream 61002:0 --stream 61003:2:6 --stream 61003:7 --seconds 10 &\n\n"
        "output: one JSON line (per-stream lost/replaced/fallback counts and totals); --out writes the\n"
        "arrays of the first stream (.npz, see the module docstring).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--segment", help="segment name of a single stream (default: /nextblock-<this PID>, like JackTrip)"
    )
    parser.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (default 48000)")
    parser.add_argument("--frames", type=int, default=128, help="frames per block (default 128)")
    parser.add_argument("--channels", type=int, default=2, help="channels per stream (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="run length (default 10)")
    parser.add_argument(
        "--streams",
        type=int,
        default=1,
        help="number of streams, each its own segment /nextblock-<PID>-<PORT> when more than one "
        "(default 1: /nextblock-<PID>)",
    )
    parser.add_argument(
        "--stream",
        type=_stream_spec,
        action="append",
        default=[],
        metavar="PORT:START_S[:END_S]",
        help="a stream on this local port from START_S to END_S (default: the end); repeat it; a port "
        "may be reused after its previous stream ended (replaces --streams)",
    )
    parser.add_argument("--first-port", type=int, default=61002, help="local port of the first stream (default 61002)")
    parser.add_argument(
        "--headroom-blocks",
        type=int,
        default=0,
        help="blocks between a block's nominal arrival and its play-out (default 0: due as it arrives, "
        "JackTrip's minimum latency; 2 or more is what the just-in-time mode needs)",
    )
    parser.add_argument(
        "--jitter-us",
        type=float,
        default=0.0,
        help="mean arrival jitter (exponential, seeded) in microseconds; a block arriving after its "
        "play-out time is concealed like a lost one (default 0)",
    )
    parser.add_argument("--loss-rate", type=float, default=0.02, help="share of blocks lost (default 0.02)")
    parser.add_argument("--burst-max", type=int, default=3, help="longest burst of consecutive losses (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="loss / jitter seed; stream i uses seed + i (default 1)")
    parser.add_argument("--lead-in-s", type=float, default=0.2, help="loss-free start of every stream (default 0.2 s)")
    parser.add_argument("--first-seq", type=int, default=1000, help="sequence number of the first block")
    parser.add_argument("--audio", help="a .npy (samples, channels) float32 to stream instead of the cached recording")
    parser.add_argument(
        "--wait-consumer-s",
        type=float,
        default=30.0,
        help="wait this long for NextBlock to attach to the first streams before streaming (0: do not wait)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="run this many times faster than real time")
    parser.add_argument("--out", help="write the first stream's results (.npz) here")
    parser.add_argument("--ready-file", help="write the first segment's name into this file once it exists")
    parser.add_argument(
        "--realtime",
        type=int,
        nargs="?",
        const=20,
        default=None,
        metavar="PRIORITY",
        help="run with SCHED_FIFO at PRIORITY (default 20), like JackTrip's audio thread",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.streams < 1:
        parser.error("--streams must be at least 1")
    if args.headroom_blocks < 0 or args.jitter_us < 0 or not 0 <= args.loss_rate < 1:
        parser.error("--headroom-blocks and --jitter-us must be >= 0 and --loss-rate in [0, 1)")
    from ..capture import Producer, segment_name_for_pid, segment_name_for_stream

    period_s = args.frames / args.rate
    specs = args.stream or [(args.first_port + i, 0.0, None) for i in range(args.streams)]
    per_port = len(specs) > 1 or bool(args.stream)
    if args.segment and per_port:
        parser.error("--segment names a single stream: drop --streams/--stream")
    total_blocks = int(args.seconds / period_s)
    if args.audio:
        source = np.load(args.audio).astype(np.float32)
        description = f"file {args.audio}"
    else:
        source, description = load_stream_audio(
            args.seconds + 0.1 + 1.3 * min(len(specs), 16), args.rate, args.channels, args.seed
        )
    rng = np.random.default_rng(args.seed)
    plans = []
    lead_in = int(args.lead_in_s / period_s)
    for i, (port, start_s, end_s) in enumerate(specs):
        start_tick = int(round(start_s / period_s))
        end_tick = total_blocks if end_s is None else min(total_blocks, int(round(end_s / period_s)))
        n = max(1, end_tick - start_tick)
        offset = int(1.3 * i * args.rate) % max(1, len(source) - args.frames)
        audio = np.roll(source, -offset, axis=0)
        if len(audio) < n * args.frames:
            audio = np.tile(audio, (-(-n * args.frames // len(audio)), 1))
        plans.append(
            StreamPlan(
                port=port if per_port else 0,
                start_tick=start_tick,
                audio=audio[: n * args.frames],
                dropped=loss_pattern(n, args.loss_rate, args.burst_max, args.seed + i, lead_in),
                jitter_ns=arrival_jitter_ns(n, args.jitter_us, args.seed + i),
                phase_ns=int(rng.uniform(0, period_s * 1e9)) if per_port else 0,
                name=f"client{i + 1}" if per_port else "",
                peer=f"192.0.2.{i + 1}:{port}" if per_port else "",
            )
        )
    if args.realtime is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
        except OSError as err:
            print(f"emulator: cannot use SCHED_FIFO ({err.strerror}); normal priority", file=sys.stderr)
    pid = os.getpid()
    ready = {"written": False}

    def make_producer(plan: StreamPlan):
        name = args.segment or (segment_name_for_stream(pid, plan.port) if plan.port else segment_name_for_pid(pid))
        return Producer(
            name,
            args.rate,
            args.frames,
            args.channels,
            stream_name=plan.name,
            peer_address=plan.peer,
            local_port=plan.port,
        )

    def on_created(producer) -> None:
        if args.ready_file and not ready["written"]:
            with open(args.ready_file, "w") as f:
                f.write(producer.name)
            ready["written"] = True

    try:
        results = run_streams(
            plans,
            make_producer,
            args.frames,
            args.rate,
            args.headroom_blocks,
            args.first_seq,
            args.speed,
            keep_audio=bool(args.out),
            wait_consumer_s=args.wait_consumer_s,
            on_created=on_created,
        )
    except TimeoutError as err:
        print(f"emulator: {err}", file=sys.stderr)
        return 2
    streams = []
    for plan, r in zip(plans, results, strict=True):
        lost = int(r["lost"].sum())
        used = int((r["outcome"] == 1).sum())
        streams.append(
            {
                "segment": r["segment"],
                "port": plan.port,
                "name": plan.name,
                "blocks": len(r["lost"]),
                "lost": lost,
                "dropped": int(r["dropped"].sum()),
                "late_arrivals": int(r["late_arrivals"].sum()),
                "replaced": used,
                "fallbacks": int((r["outcome"] == 2).sum()),
                "refused": int((r["outcome"] == 3).sum()),
                "replacement_share": used / lost if lost else None,
                # packets after a replacement whose second block was that packet (two-sided): played as they came
                "identity_splices": int(r["identity_splice"].sum()),
                # where the misses were (block index from the stream's start; the first 20): diagnosis
                "fallback_blocks": np.flatnonzero(r["outcome"] == 2)[:20].tolist(),
            }
        )
    lost = sum(s["lost"] for s in streams)
    used = sum(s["replaced"] for s in streams)
    first = results[0]
    summary = {
        "blocks": sum(s["blocks"] for s in streams),
        "lost": lost,
        "replaced": used,
        "identity_splices": sum(s["identity_splices"] for s in streams),
        "replacement_share": used / lost if lost else None,
        "tick_late_us_p99": float(np.percentile(first["tick_late_us"], 99)),
        "tick_late_us_max": float(np.max(first["tick_late_us"])),
        # which block the first stream played at that worst callback (compare with fallback_blocks)
        "tick_late_us_max_block": int(np.argmax(first["tick_late_us"])) - plans[0].start_tick - args.headroom_blocks,
        "headroom_blocks": args.headroom_blocks,
        "jitter_us": args.jitter_us,
        "audio": description,
        "streams": streams,
        **{k: v for k, v in first["counters"].items() if isinstance(v, (int, bool))},
    }
    if args.out:
        arrays = {k: v for k, v in first.items() if isinstance(v, np.ndarray)}
        np.savez(args.out, **arrays, summary=json.dumps(summary))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
