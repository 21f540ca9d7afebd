"""Helpers for the JackTrip patch tests and benchmark (tests/test_jacktrip_patch*.py,
bench/jacktrip_patch.py).

* :func:`build_jacktrip` builds stock and/or patched JackTrip once into a cache directory keyed
  by the hash of JackTrip's source, our patch and bridge files and the shm header, and reuses it.
* :func:`run_session` runs a JackTrip p2p server (the receiver under test, optional ``--simloss``)
  and a JackTrip client on two named ``jackd`` dummy servers, sends a block-coded signal through
  them (tests/jacktrip_patch_jackio.py), records the server's output and, for a patched server,
  reads the shared-memory segment with :class:`nextblock.capture.Consumer` while optionally
  posting marked replacement blocks.
* :func:`classify` decodes a recorded block: a real block (its sender index), a marker (the seq
  of the replacement it came from), or something else (concealment, cross-fade, silence).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Finding/building JackTrip lives in the package (one source of truth for tests, demo, bench and
# scripts/setup.sh); re-exported here for the tests and bench/jacktrip_patch.py.
from nextblock.jackio.patched_build import (  # noqa: F401
    build_jacktrip,
    build_key,
    cache_root,
    find_jacktrip_source,
)

REPO = Path(__file__).resolve().parents[1]
PATCH_DIR = REPO / "third_party" / "jacktrip_patch"
JACKTRIP_VERSION = "2.7.2"
CODE_PERIOD = 1000  # must match tests/jacktrip_patch_jackio.py (codes stay below 0.5: exact in 16 bit)


# ------------------------------------------------------------------------------------------
# decoding the coded signal


def classify(block: np.ndarray) -> tuple[str, int]:
    """('real', sender index mod CODE_PERIOD) | ('marker', seq mod CODE_PERIOD) | ('zero', 0) | ('other', 0)."""
    ch0 = block[:, 0]
    if not np.any(block):
        return "zero", 0
    if np.all(ch0 == ch0[0]) and np.all(block[:, 1:] == ch0[0] / 2):
        k = ch0[0] * 2048.0
        kr = int(round(abs(k)))
        if abs(abs(k) - kr) < 0.25 and 1 <= kr <= CODE_PERIOD:
            return ("real" if k > 0 else "marker"), kr - 1
    return "other", 0


def marker_blocks(seq: int, frames: int, channels: int) -> np.ndarray:
    """The replacement the test consumer posts for ``seq``: constant -code(seq), -code(seq+1)."""
    out = np.empty((2, frames, channels), np.float32)
    for b in range(2):
        v = -((seq + b) % CODE_PERIOD + 1) / 2048.0
        out[b, :, 0] = v
        out[b, :, 1:] = v / 2
    return out


# ------------------------------------------------------------------------------------------
# one session


@dataclass
class Session:
    recorded: np.ndarray  # [n, frames, channels]
    published_seq: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    published_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sender index mod CODE_PERIOD
    arrival_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    events: list = field(default_factory=list)
    posted: int = 0
    post_lag_ns: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    segment_name: str | None = None
    segment_gone_after_exit: bool | None = None
    server_log: str = ""
    client_log: str = ""
    server_alive_at_end: bool | None = None  # the receiving JackTrip still ran when recording ended
    server_returncode: int | None = None
    consumer_result: dict = field(default_factory=dict)  # what the consumer thread recorded


def _free_port_pair() -> tuple[int, int]:
    import socket

    for _ in range(50):
        a = random.randrange(20000, 60000, 2)
        ok = True
        for p in (a, a + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return a, a + 1
    raise RuntimeError("no free UDP port pair")


def _wait_ports(server, names, timeout_s):
    from nextblock.jackio.jackd import jack_ports

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ports = jack_ports(server.name) or []
        if all(n in ports for n in names):
            return True
        time.sleep(0.2)
    return False


def run_session(
    server_bin: Path,
    client_bin: Path,
    workdir: Path,
    bufstrategy: int = 3,
    simloss: float = 0.0,
    nextblock: bool = False,
    post_replacements: bool = False,
    post_ahead: int = 3,
    seconds: float = 6.0,
    extra_server_args: tuple = (),
    queue: str | None = None,
    stop_consumer_after_s: float | None = None,
    consumer=None,
    replacement_fn=None,
    client_period_samples: int | None = None,
    repost_fn=None,
    rate_hz: int = 48000,
    period_samples: int = 128,
    extra_args: tuple = (),
    restart_client_at_s: float | None = None,
    consumer_ready_timeout_s: float | None = None,
) -> Session:
    """Runs one loopback session; see module docstring. The server is the receiver under test.

    ``consumer``: a function ``(segment_name, stop_event, result_dict)`` run in a thread instead
    of the test consumer (e.g. :func:`scribbler`); ``replacement_fn(seq, frames, channels)``: what
    the test consumer posts (default :func:`marker_blocks`); ``repost_fn(seq, frames, channels)``:
    posted for the same seq right after it (a re-post, as a two-sided replacement is);
    ``client_period_samples``: the sending side's JACK period, i.e. the peer's block size
    (default: the receiver's, ``period_samples``); ``rate_hz``: both ``jackd``'s sample rate;
    ``extra_args``: passed to both JackTrips (``-r 2``); ``restart_client_at_s``: that many
    seconds into the recording the sending JackTrip is killed (SIGKILL: no exit packet) and
    started again with the same command line, and a new sender with it (its block codes start
    at 0 again); ``consumer_result["client_restarted_ns"]`` says when it ran again
    (``time.monotonic_ns``); ``consumer_ready_timeout_s``: wait that long at most for the
    ``consumer`` to set ``result["ready"]`` before the signal is sent and recorded (a consumer
    process that takes seconds to start on a busy host)."""
    from nextblock.jackio.jackd import JackdServer
    from nextblock.jackio.procs import ManagedProcess

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port_s, port_c = _free_port_pair()
    if client_period_samples is None:
        client_period_samples = period_samples
    common = ["--bufstrategy", str(bufstrategy), "-D", *extra_args]
    if queue is not None:
        common += ["-q", str(queue)]
    srv_args = [str(server_bin), "-s", "-B", str(port_s), "-P", str(port_c), "-J", "jts", *common]
    if simloss > 0:
        srv_args += ["--simloss", str(simloss)]
    if nextblock:
        srv_args += ["--nextblock"]
    srv_args += list(extra_server_args)
    cli_args = [str(client_bin), "-c", "127.0.0.1", "-B", str(port_c), "-P", str(port_s), "-J", "jtc", *common]

    # below 64 frames jackd's default timeouts (in periods) fail a client's activation on a busy host
    timeout_ms = 500 if min(period_samples, client_period_samples) < 64 else None
    with (
        JackdServer("jts", workdir, rate_hz=rate_hz, period_samples=period_samples, client_timeout_ms=timeout_ms) as js,
        JackdServer(
            "jtc", workdir, rate_hz=rate_hz, period_samples=client_period_samples, client_timeout_ms=timeout_ms
        ) as jc,
    ):
        srv = ManagedProcess(srv_args, workdir / "jacktrip-server.log", env=js.client_env(), stop_signal=2)
        cli = ManagedProcess(cli_args, workdir / "jacktrip-client.log", env=jc.client_env(), stop_signal=2)
        io = None
        consumer_thread = None
        stop = threading.Event()
        result: dict = {"posted": 0, "lag": [], "seq": [], "idx": [], "arr": [], "events": [], "counters": {}}
        try:
            srv.start()
            time.sleep(0.5)
            cli.start()
            if not _wait_ports(js, ["jts:receive_1", "jts:receive_2"], 20) or not _wait_ports(
                jc, ["jtc:send_1", "jtc:send_2"], 20
            ):
                raise RuntimeError(
                    f"JackTrip ports did not appear.\nserver:\n{srv.log_tail()}\nclient:\n{cli.log_tail()}"
                )
            seg_name = f"/nextblock-{srv.pid}"
            if nextblock and consumer is not None:
                consumer_thread = threading.Thread(target=consumer, args=(seg_name, stop, result), daemon=True)
                consumer_thread.start()
            elif nextblock:
                consumer_thread = threading.Thread(
                    target=_consume,
                    args=(
                        seg_name,
                        post_replacements,
                        post_ahead,
                        stop,
                        result,
                        stop_consumer_after_s,
                        replacement_fn or marker_blocks,
                        client_period_samples != period_samples,
                        repost_fn,
                    ),
                    daemon=True,
                )
                consumer_thread.start()
            if consumer_ready_timeout_s is not None:
                deadline = time.monotonic() + consumer_ready_timeout_s
                while consumer_thread is not None and consumer_thread.is_alive() and not result.get("ready"):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
            out_npy = workdir / "recorded.npy"
            jackio = [sys.executable, str(Path(__file__).with_name("jacktrip_patch_jackio.py"))]
            send_cmd = [*jackio, "send", "--server", jc.name, "--ports", "jtc:send_", "--seconds", str(seconds + 30)]
            sender = ManagedProcess(send_cmd, workdir / "sender.log", env={"JACK_NO_START_SERVER": "1"})
            sender.start()
            restarter = None
            if restart_client_at_s is not None:

                def restart():
                    nonlocal cli, sender
                    if stop.wait(restart_client_at_s):
                        return
                    os.kill(cli.pid, signal.SIGKILL)
                    cli.proc.wait(timeout=10)
                    cli.stop()
                    sender.stop()
                    cli = start_again(cli)
                    if _wait_ports(jc, ["jtc:send_1", "jtc:send_2"], 20):
                        sender = ManagedProcess(
                            send_cmd, workdir / "sender-2.log", env={"JACK_NO_START_SERVER": "1"}
                        ).start()
                        result["client_restarted_ns"] = time.monotonic_ns()

                restarter = threading.Thread(target=restart, daemon=True)
            try:
                if restarter is not None:
                    restarter.start()
                io = subprocess.run(
                    [
                        *jackio,
                        "rec",
                        "--server",
                        js.name,
                        "--ports",
                        "jts:receive_",
                        "--seconds",
                        str(seconds),
                        "--out",
                        str(out_npy),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=seconds + 60,
                    env=dict(os.environ, JACK_NO_START_SERVER="1"),
                )
            finally:
                if restarter is not None:
                    stop.set()
                    restarter.join(timeout=30)
                sender.stop()
            if io.returncode != 0:
                raise RuntimeError(
                    f"recorder failed (rc={io.returncode}): {io.stdout}\n{io.stderr}\nsender: {sender.log_tail()}"
                )
            stop.set()
            if consumer_thread is not None:
                consumer_thread.join(timeout=10)
            recorded = np.load(out_npy)
            server_alive = srv.proc.poll() is None
        finally:
            stop.set()
            cli.stop()
            srv.stop()
        sess = Session(recorded=recorded)
        sess.server_alive_at_end = server_alive
        sess.server_returncode = srv.proc.returncode
        sess.consumer_result = result
        sess.server_log = srv.log_text()
        sess.client_log = cli.log_text()
        if nextblock:
            sess.segment_name = seg_name
            sess.segment_gone_after_exit = not os.path.exists("/dev/shm" + seg_name)
            sess.published_seq = np.asarray(result["seq"], np.uint64)
            sess.published_idx = np.asarray(result["idx"], np.int64)
            sess.arrival_ns = np.asarray(result["arr"], np.uint64)
            sess.events = result["events"]
            sess.posted = result["posted"]
            sess.post_lag_ns = result["lag"]
            sess.counters = result["counters"]
        return sess


def _consume(
    seg_name, post, ahead, stop, result, stop_after_s, replacement_fn=marker_blocks, reattach=False, repost_fn=None
):
    """Test consumer: reads every block and event; posts ``replacement_fn(seq, frames, channels)``
    for the next ``ahead`` seqs after every received block (until ``stop_after_s``, if given), and
    ``repost_fn``'s version of each right after it, if given.
    With ``reattach``, when the producer closes the segment and makes a new one of the same name
    (JackTrip does when the peer's block size differs from its own), it attaches to that one."""
    from nextblock.capture import Consumer, SegmentError

    t0 = time.monotonic()
    posted_upto = -1
    created = None
    while not stop.is_set():
        deadline = time.monotonic() + 20
        c = None
        while c is None and not stop.is_set():
            try:
                c = Consumer(seg_name, post_replacements=post)
                if c.geometry["created_unix_ns"] == created:  # still the closed one
                    c.close()
                    c = None
                    raise SegmentError("old segment")
            except SegmentError:
                if time.monotonic() > deadline:
                    result.setdefault("error", f"segment {seg_name} never appeared")
                    return
                time.sleep(0.02)
        if c is None:
            return
        created = c.geometry["created_unix_ns"]
        result.setdefault("frames", []).append(c.frames_per_block)
        posted_upto = _consume_one(
            c, post, ahead, stop, result, stop_after_s, replacement_fn, t0, posted_upto, repost_fn
        )
        if not reattach:
            return


def _consume_one(c, post, ahead, stop, result, stop_after_s, replacement_fn, t0, posted_upto, repost_fn=None):
    from nextblock.capture import EventKind, monotonic_ns

    frames, channels = c.frames_per_block, c.channels
    count = 0
    ev_count = 0
    with c:
        while True:
            n = c.wait_for_blocks(count, 0.002)
            if n > count:
                batch = c.read_blocks(count, n - count)
                count = batch.first_index + len(batch.seq)
                for j in range(len(batch.seq)):
                    s = int(batch.seq[j])
                    v = float(batch.samples[j, 0, 0])
                    result["seq"].append(s)
                    result["idx"].append(int(round(v * 2048)) - 1 if v > 0 else -1)
                    result["arr"].append(int(batch.arrival_ns[j]))
                if post and (stop_after_s is None or time.monotonic() - t0 < stop_after_s):
                    top = int(batch.seq[-1])
                    for s in range(max(top + 1, posted_upto + 1), top + 1 + ahead):
                        c.post_replacement(s, replacement_fn(s, frames, channels))
                        result["posted"] += 1
                        if repost_fn is not None:
                            c.post_replacement(s, repost_fn(s, frames, channels))
                    posted_upto = max(posted_upto, top + ahead)
                    result["lag"].append(monotonic_ns() - int(batch.arrival_ns[-1]))
            evs, skipped = c.read_events(ev_count, 1024)
            result["events"].extend(evs)
            ev_count += len(evs) + skipped
            # overwritten before this reader got to them (its thread starved on a loaded host)
            result["events_skipped"] = result.get("events_skipped", 0) + skipped
            if post and evs and (stop_after_s is None or time.monotonic() - t0 < stop_after_s):
                # a stalled stream: keep predicting past the blocks JackTrip is concealing now
                top = max((e.seq for e in evs if e.kind in (EventKind.UNDERRUN, EventKind.SKIP)), default=-1)
                for s in range(max(top + 1, posted_upto + 1), top + 1 + ahead):
                    c.post_replacement(s, replacement_fn(s, frames, channels))
                    result["posted"] += 1
                    if repost_fn is not None:
                        c.post_replacement(s, repost_fn(s, frames, channels))
                posted_upto = max(posted_upto, top + ahead)
            if stop.is_set() or c.producer_closed:
                while True:
                    evs, skipped = c.read_events(ev_count, 1024)
                    if not evs and not skipped:
                        break
                    result["events"].extend(evs)
                    ev_count += len(evs) + skipped
                    result["events_skipped"] = result.get("events_skipped", 0) + skipped
                result["counters"] = c.counters()
                return posted_upto


def scribbler(seed: int):
    """A hostile consumer: maps the whole segment read-write and writes random bytes at random
    offsets (header, rings, control page, replacement slots) until stopped. Seeded. Counts its
    writes in ``result["scribbles"]``."""

    def run(seg_name, stop, result):
        import mmap

        rng = random.Random(seed)
        path = "/dev/shm" + seg_name
        deadline = time.monotonic() + 20
        while not os.path.exists(path) or os.path.getsize(path) < 8192:
            if stop.is_set() or time.monotonic() > deadline:
                result["error"] = f"segment {seg_name} never appeared"
                return
            time.sleep(0.02)
        time.sleep(0.3)  # let the producer finish creating it
        with open(path, "r+b") as f:
            m = mmap.mmap(f.fileno(), 0)
            size = len(m)
            n = 0
            while not stop.is_set():
                for _ in range(64):
                    off = rng.randrange(size)
                    data = rng.randbytes(rng.randint(1, 16))[: size - off]
                    m[off : off + len(data)] = data
                n += 64
                time.sleep(0.001)
            m.close()
        result["scribbles"] = n

    return run


POISONS = ("nan", "inf", "-inf", "1e9", "denormal")


def poisoned_blocks(seq: int, frames: int, channels: int) -> np.ndarray:
    """A replacement JackTrip must never play as it is: by ``seq % 5``, NaN, +Inf or -Inf in one
    sample of an otherwise valid marker, 1e9 everywhere, or denormals (valid once flushed)."""
    kind = POISONS[seq % len(POISONS)]
    out = marker_blocks(seq, frames, channels)
    if kind == "nan":
        out[0, frames // 2, 0] = np.nan
    elif kind == "inf":
        out[1, 3, channels - 1] = np.inf
    elif kind == "-inf":
        out[0, 0, 0] = -np.inf
    elif kind == "1e9":
        out[:] = 1e9
    else:
        out[:] = np.float32(1e-41)
    return out


# ------------------------------------------------------------------------------------------
# analysis


CONCEAL = ("UNDERRUN", "SKIP")
STALLED = 1  # NextBlockBridge::DetailStalled (UNDERRUN events only; SKIP detail = blocks skipped)


@dataclass
class Analysis:
    offset: int  # seq - sender index (mod CODE_PERIOD)
    lo: int  # analysed seq window [lo, hi]
    hi: int
    lost: list  # seqs never published in the window
    conceal: list  # UNDERRUN/SKIP events (not stalls) in the window
    late: set  # seqs with a LATE event
    arrival: dict  # seq -> arrival_ns
    timeline: list  # per recorded block: (kind, unwrapped seq or None)
    overflowed: set  # seqs an OVERFLOW may have dropped
    ambiguous: set  # seqs whose sent code also came with a neighbouring seq (sender-side xrun)

    @property
    def recorded_range(self) -> tuple[int, int]:
        """First and last seq seen in the recording (the recorder starts after JackTrip)."""
        qs = [q for _, q in self.timeline if q is not None]
        return (min(qs), max(qs)) if qs else (0, -1)

    def conceal_recorded(self) -> list:
        first, last = self.recorded_range
        return [e for e in self.conceal if first <= e.seq <= last]


def analyse(s: Session, margin_start: int = 50, margin_end: int = 8) -> Analysis:
    """Decodes a session. The first ``margin_start`` blocks (start-up transients) and the last
    ``margin_end`` are not analysed."""
    seqs = s.published_seq.astype(np.int64)
    assert len(seqs) > 100, "too few blocks published"
    ok = s.published_idx >= 0
    offs = (seqs[ok] - s.published_idx[ok]) % CODE_PERIOD
    vals, counts = np.unique(offs, return_counts=True)
    offset = int(vals[np.argmax(counts)])  # the sender side may slip a block under load
    by_code: dict[int, list[int]] = {}
    for q, c in zip(seqs[ok].tolist(), s.published_idx[ok].tolist(), strict=True):
        by_code.setdefault(int(c) % CODE_PERIOD, []).append(int(q))
    lo, hi = int(seqs.min()) + margin_start, int(seqs.max()) - margin_end
    pub = set(seqs.tolist())
    lost = [q for q in range(lo, hi + 1) if q not in pub]
    conceal = [
        e
        for e in s.events
        if e.kind.name in CONCEAL
        and lo <= e.seq <= hi
        and not (e.kind.name == "UNDERRUN" and e.detail == STALLED)  # a silent peer, reported once
    ]
    late = {e.seq for e in s.events if e.kind.name == "LATE"}
    # an overflow drops blocks that already arrived (the ring buffer's half-reset)
    overflowed = {q for e in s.events if e.kind.name == "OVERFLOW" for q in range(e.seq - 16, e.seq + 1)}
    arrival = dict(zip(seqs.tolist(), s.arrival_ns.astype(np.int64).tolist(), strict=True))
    timeline = []
    prev = None
    for blk in s.recorded:
        kind, code = classify(blk)
        if kind not in ("real", "marker"):
            timeline.append((kind, None))
            continue
        if kind == "real":
            cands = by_code.get(code)
            if not cands:
                timeline.append(("real", None))
                continue
            ref = prev if prev is not None else int(seqs.min())
            q = min(cands, key=lambda x: abs(x - ref))
        else:
            ref = prev if prev is not None else int(seqs.min())
            d = (code - ref) % CODE_PERIOD
            if d > CODE_PERIOD // 2:
                d -= CODE_PERIOD
            q = ref + d
        prev = q
        timeline.append((kind, q))
    ambiguous = {q for qs in by_code.values() for q in qs if any(0 < abs(q - r) <= 5 for r in qs)}
    return Analysis(offset, lo, hi, lost, conceal, late, arrival, timeline, overflowed, ambiguous)


def wait_for(predicate, timeout_s: float, what: str):
    from nextblock.jackio.procs import wait_until

    return wait_until(predicate, timeout_s, poll_s=0.05, what=what)


def start_again(proc):
    """A new ManagedProcess with the same command line and environment (already started)."""
    from nextblock.jackio.procs import ManagedProcess

    p = ManagedProcess(proc.args, Path(str(proc.log_path) + ".2"), env=proc.env, stop_signal=proc.stop_signal)
    p.start()
    return p


# ------------------------------------------------------------------------------------------
# a hub server with several clients


STREAM_CODES = 250  # markers of hub stream k use codes 250 k + 1 .. 250 (k + 1)


def stream_markers(k: int):
    """Replacements for hub stream ``k``: constant -(250 k + seq % 250 + 1) / 2048 (ch0; half on
    the others), so a recorded marker says which stream and which seq (mod 250) it came from."""

    def make(seq: int, frames: int, channels: int) -> np.ndarray:
        out = np.empty((2, frames, channels), np.float32)
        for b in range(2):
            v = -(STREAM_CODES * k + (seq + b) % STREAM_CODES + 1) / 2048.0
            out[b, :, 0] = v
            out[b, :, 1:] = v / 2
        return out

    return make


def marker_stream(block: np.ndarray) -> int | None:
    """The hub stream a recorded marker block came from (``None`` for other blocks)."""
    kind, code = classify(block)
    return code // STREAM_CODES if kind == "marker" else None


def _hub_ports(server_name: str) -> dict[str, str]:
    """JACK client name -> ports prefix of the hub's per-client receive ports."""
    from nextblock.jackio.jackd import jack_ports

    ports = jack_ports(server_name) or []
    return {p.split(":")[0]: p.split(":")[0] + ":receive_" for p in ports if p.endswith(":receive_1")}


class SegmentWatcher:
    """Attaches a marker-posting test consumer (stream ``k`` in order of appearance) to every
    segment of a process as it appears; a reused name gets a fresh consumer when its segment is
    new. ``seen``: (segment, created_unix_ns) -> that consumer's result dict."""

    def __init__(self, pid: int, stop: threading.Event, post: bool = True):
        self.pid, self.stop, self.post = pid, stop, post
        self.seen: dict[tuple[str, int], dict] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from nextblock.capture import Consumer, SegmentError, stream_segments

        while not self.stop.is_set():
            for name in stream_segments(self.pid):
                try:
                    with Consumer(name) as c:
                        key = (name, c.geometry["created_unix_ns"])
                        stream_name = c.stream_name
                except SegmentError:
                    continue
                if key in self.seen:
                    continue
                k = len(self.seen)
                result = {
                    "posted": 0,
                    "lag": [],
                    "seq": [],
                    "idx": [],
                    "arr": [],
                    "events": [],
                    "counters": {},
                    "stream_name": stream_name,
                    "segment": name,
                    "k": k,
                }
                self.seen[key] = result
                threading.Thread(
                    target=_consume, args=(name, self.post, 3, self.stop, result, None, stream_markers(k)), daemon=True
                ).start()
            time.sleep(0.1)


@dataclass
class HubSession:
    hub_pid: int
    hub_alive_at_end: bool
    hub_log: str
    streams: list  # one consumer result dict per segment seen (events, seq, stream_name, segment, k, ...)
    recordings: dict  # hub JACK client name -> recorded float32[n, frames, channels]
    segments_left: list  # the hub's segments still in /dev/shm after it exited


def run_hub_session(
    patched: Path,
    workdir: Path,
    n_clients: int = 3,
    seconds: float = 12.0,
    simloss: float = 0.03,
    churn: bool = True,
    post_replacements: bool = True,
    bufstrategy: int = 3,
    on_hub_start=None,
    client_periods: list[int] | None = None,
    churn_every_s: float | None = None,
    record: bool = True,
) -> HubSession:
    """A patched hub server (``-S --nextblock --simloss``, no auto patching) on its own ``jackd``
    and ``n_clients`` hub clients, each on its own ``jackd`` sending the block-coded signal; a
    :class:`SegmentWatcher` consumer per segment; every client's received audio on the hub is
    recorded. With ``churn``, a third of the way in the last client leaves and a new one joins.
    ``on_hub_start(hub_pid, stop_event)``: called once the hub runs (e.g. to start
    ``nextblock.attach``; it may return a thread, joined at the end); the watcher's consumers then
    only read (the poster role is left to it). ``client_periods``: each client's JACK period
    (block size; default 128 each), clients of one period sharing a ``jackd``; the hub runs at 128
    and its Regulator converts (each client's segment has the client's block size).
    ``churn_every_s``: every that many seconds the oldest client leaves (SIGINT: JackTrip's exit
    packet) and a new one joins, each on its own ``jackd`` (not with ``client_periods``); only the
    first clients are recorded. ``record=False``: no recorders (the hub's JACK graph waits for
    every client in it each period: four Python recorders there made the hub conceal 12-40 % on a
    2-core machine; a test that reads only the segments' events does not need them)."""
    from nextblock.capture import stream_segments
    from nextblock.jackio.jackd import JackdServer
    from nextblock.jackio.procs import ManagedProcess

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tcp_port, _ = _free_port_pair()
    jackio = [sys.executable, str(Path(__file__).with_name("jacktrip_patch_jackio.py"))]
    stop = threading.Event()
    procs: list = []
    servers: list = []
    client_jacks: dict = {}  # period -> the jackd the clients of that period share
    recs: dict = {}
    with JackdServer("hub", workdir) as hub_jack:
        hub = ManagedProcess(
            [
                str(patched),
                "-S",
                "-p",
                "5",
                "-B",
                str(tcp_port),
                "-U",
                str(tcp_port + 100),
                "--bufstrategy",
                str(bufstrategy),
                "--simloss",
                str(simloss),
                "--nextblock",
                "-D",
            ],
            workdir / "hub.log",
            env=hub_jack.client_env(),
            stop_signal=2,
        )
        hub.start()
        procs.append(hub)
        watcher = SegmentWatcher(hub.pid, stop, post_replacements and on_hub_start is None)
        watcher.thread.start()
        extra = on_hub_start(hub.pid, stop) if on_hub_start is not None else None

        def start_client(i: int):
            period = client_periods[i] if client_periods else None
            js = client_jacks.get(period) if period else None
            if js is None:
                js = JackdServer(f"c{i}", workdir, period_samples=period or 128).start()
                servers.append(js)
                if period:
                    client_jacks[period] = js
            cli = ManagedProcess(
                [
                    str(patched),
                    "-C",
                    "127.0.0.1",
                    "-P",
                    str(tcp_port),
                    "-B",
                    str(tcp_port + 10 + i),
                    "-K",
                    f"client{i}",
                    "-J",
                    f"jtc{i}",
                    "--bufstrategy",
                    str(bufstrategy),
                    "-D",
                ],
                workdir / f"client{i}.log",
                env=js.client_env(),
                stop_signal=2,
            )
            cli.start()
            if not _wait_ports(js, [f"jtc{i}:send_1", f"jtc{i}:send_2"], 20):
                raise RuntimeError(f"hub client {i} did not start:\n{cli.log_tail()}")
            snd = ManagedProcess(
                [*jackio, "send", "--server", js.name, "--ports", f"jtc{i}:send_", "--seconds", str(seconds + 30)],
                workdir / f"sender{i}.log",
                env={"JACK_NO_START_SERVER": "1"},
            )
            snd.start()
            procs.extend([snd, cli])
            return (cli, snd) if period else (cli, snd, js)

        def rec(name: str, prefix: str, secs: float):
            out = workdir / f"rec-{name}.npy"
            proc = subprocess.Popen(
                [
                    *jackio,
                    "rec",
                    "--server",
                    hub_jack.name,
                    "--ports",
                    prefix,
                    "--seconds",
                    str(secs),
                    "--out",
                    str(out),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, JACK_NO_START_SERVER="1"),
            )
            recs[name] = (proc, out)

        try:
            time.sleep(0.5)
            clients = {i: start_client(i) for i in range(n_clients)}
            wait_for(lambda: len(_hub_ports(hub_jack.name)) >= n_clients, 30, f"{n_clients} clients on the hub")
            session_end = time.monotonic() + seconds
            if record:
                for name, prefix in _hub_ports(hub_jack.name).items():
                    rec(name, prefix, seconds)
            if churn_every_s:
                oldest = 0
                while time.monotonic() + churn_every_s < session_end:
                    time.sleep(churn_every_s)
                    for p in clients.pop(oldest):
                        p.stop()
                    oldest += 1
                    clients[len(clients) + oldest] = start_client(len(clients) + oldest)
            if churn:
                time.sleep(seconds / 3)
                for p in clients[n_clients - 1]:  # the last client leaves, a new one joins
                    p.stop()
                clients[n_clients] = start_client(n_clients)
                wait_for(lambda: any(n not in recs for n in _hub_ports(hub_jack.name)), 30, "the new client on the hub")
                for name, prefix in _hub_ports(hub_jack.name).items():
                    if record and name not in recs:
                        rec(name, prefix, seconds / 2)
            for proc, _ in recs.values():
                proc.wait(timeout=seconds + 60)
            time.sleep(max(0.0, session_end - time.monotonic()))
            hub_alive = hub.running()
        finally:
            stop.set()
            if isinstance(extra, threading.Thread):
                extra.join(timeout=30)
            for p in reversed(procs):
                p.stop()
            for js in servers:
                js.stop()
    recordings = {name: np.load(path) for name, (_, path) in recs.items() if path.exists()}
    return HubSession(
        hub.pid, hub_alive, hub.log_text(), list(watcher.seen.values()), recordings, stream_segments(hub.pid)
    )
