"""NextBlock on a JackTrip hub server (``jacktrip -S``): one segment per client, streams never cross.

A patched hub server (``--nextblock --simloss``, Regulator) on its own ``jackd`` receives from three
hub clients, each on its own ``jackd`` playing the block-coded signal. For every client stream the
hub's worker creates ``/nextblock-<hub PID>-<port>`` (the header names the client); a test consumer
per segment posts *markers that encode the stream* (stream k, seq s -> constant -(250 k + s % 250 + 1)
/ 2048). The hub's received audio of every client is recorded. Mid-run one client leaves and a new
one joins (the hub may reuse the worker and port). Checks: the hub is alive at the end, every marker
in a client's recording is that client's own and a replacement that client's stream reported for the
seq the marker encodes, each stream had replacements played, and no segment is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import jacktrip_patch_harness as H
from test_jacktrip_patch import bins  # noqa: F401  (the patched/stock build fixture)

pytestmark = [pytest.mark.jacktrip, pytest.mark.slow]

SECONDS = 12.0
STREAM_CODES = 250  # markers of stream k use codes 250 k + 1 .. 250 (k + 1)


def stream_markers(k: int):
    def make(seq: int, frames: int, channels: int) -> np.ndarray:
        out = np.empty((2, frames, channels), np.float32)
        for b in range(2):
            v = -(STREAM_CODES * k + (seq + b) % STREAM_CODES + 1) / 2048.0
            out[b, :, 0] = v
            out[b, :, 1:] = v / 2
        return out

    return make


def marker_stream(block: np.ndarray) -> int | None:
    kind, code = H.classify(block)
    return code // STREAM_CODES if kind == "marker" else None


def _hub_ports(server_name: str) -> dict[str, str]:
    """JACK client name -> ports prefix of the hub's per-client receive ports."""
    from nextblock.jackio.jackd import jack_ports

    ports = jack_ports(server_name) or []
    return {p.split(":")[0]: p.split(":")[0] + ":receive_" for p in ports if p.endswith(":receive_1")}


class SegmentWatcher:
    """Attaches a marker-posting test consumer to every segment of the hub as it appears (a
    reused name gets a fresh consumer when its segment is new)."""

    def __init__(self, pid: int, stop: threading.Event):
        self.pid, self.stop = pid, stop
        self.seen: dict[tuple[str, int], dict] = {}  # (segment, created_unix_ns) -> consumer result
        self.threads: list[threading.Thread] = []
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
                result = {"posted": 0, "lag": [], "seq": [], "idx": [], "arr": [], "events": [], "counters": {},
                          "stream_name": stream_name, "segment": name, "k": k}
                self.seen[key] = result
                t = threading.Thread(target=H._consume, args=(name, True, 3, self.stop, result, None, stream_markers(k)),
                                     daemon=True)
                t.start()
                self.threads.append(t)
            time.sleep(0.1)


def test_hub_streams_each_get_their_own_replacements(bins, tmp_path):  # noqa: F811
    from nextblock.capture import stream_segments
    from nextblock.jackio.jackd import JackdServer
    from nextblock.jackio.procs import ManagedProcess

    tcp_port, _ = H._free_port_pair()
    udp_base = tcp_port + 100
    jackio = [sys.executable, str(Path(__file__).with_name("jacktrip_patch_jackio.py"))]
    stop = threading.Event()
    procs: list = []
    servers: list = []
    with JackdServer("hub", tmp_path) as hub_jack:
        hub = ManagedProcess([str(bins["patched"]), "-S", "-p", "5", "-B", str(tcp_port), "-U", str(udp_base),
                              "--bufstrategy", "3", "--simloss", "0.03", "--nextblock", "-D"],
                             tmp_path / "hub.log", env=hub_jack.client_env(), stop_signal=2)
        hub.start()
        procs.append(hub)
        watcher = SegmentWatcher(hub.pid, stop)
        watcher.thread.start()

        def start_client(i: int):
            js = JackdServer(f"c{i}", tmp_path).start()
            servers.append(js)
            cli = ManagedProcess([str(bins["patched"]), "-C", "127.0.0.1", "-P", str(tcp_port), "-B", str(tcp_port + 10 + i),
                                  "-K", f"client{i}", "-J", f"jtc{i}", "--bufstrategy", "3", "-D"],
                                 tmp_path / f"client{i}.log", env=js.client_env(), stop_signal=2)
            cli.start()
            assert H._wait_ports(js, [f"jtc{i}:send_1", f"jtc{i}:send_2"], 20), cli.log_tail()
            snd = ManagedProcess([*jackio, "send", "--server", js.name, "--ports", f"jtc{i}:send_",
                                  "--seconds", str(SECONDS + 30)], tmp_path / f"sender{i}.log",
                                 env={"JACK_NO_START_SERVER": "1"})
            snd.start()
            procs.extend([snd, cli])
            return cli, snd

        def record(prefix: str, seconds: float, out: Path):
            return subprocess.Popen([*jackio, "rec", "--server", hub_jack.name, "--ports", prefix, "--seconds",
                                     str(seconds), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, JACK_NO_START_SERVER="1"))

        try:
            time.sleep(0.5)
            clients = {i: start_client(i) for i in range(3)}
            H.wait_for(lambda: len(_hub_ports(hub_jack.name)) >= 3, 30, "three clients on the hub")
            recs = {name: (record(prefix, SECONDS, tmp_path / f"rec-{name}.npy"), tmp_path / f"rec-{name}.npy")
                    for name, prefix in _hub_ports(hub_jack.name).items()}
            time.sleep(SECONDS / 3)
            # client 2 leaves, client 3 joins (the hub may give it the freed worker and port)
            for p in clients[2]:
                p.stop()
            clients[3] = start_client(3)
            H.wait_for(lambda: any(n not in recs for n in _hub_ports(hub_jack.name)), 30, "the new client on the hub")
            for name, prefix in _hub_ports(hub_jack.name).items():
                if name not in recs:
                    recs[name] = (record(prefix, SECONDS / 2, tmp_path / f"rec-{name}.npy"), tmp_path / f"rec-{name}.npy")
            for proc, _ in recs.values():
                proc.wait(timeout=SECONDS + 60)
            hub_alive = hub.running()
        finally:
            stop.set()
            for p in reversed(procs):
                p.stop()
            for js in servers:
                js.stop()
        hub_log = hub.log_text()

    assert hub_alive, f"the hub server died:\n{hub_log[-3000:]}"
    assert stream_segments(hub.pid) == [], "segments left behind after the hub exited"
    segments = list(watcher.seen.values())
    assert len(segments) >= 4, f"expected a segment per client (4 clients), got {[(s['segment'], s['stream_name']) for s in segments]}"
    assert all(s["segment"].startswith(f"/nextblock-{hub.pid}-") for s in segments)
    by_name = {s["stream_name"]: s for s in segments}
    checked = 0
    for name, (_, path) in recs.items():
        if not path.exists():
            continue
        rec = np.load(path)
        assert name in by_name, f"no segment names the hub's JACK client {name}: {sorted(by_name)}"
        mine = by_name[name]
        streams = {marker_stream(b) for b in rec} - {None}
        assert streams <= {mine["k"]}, f"{name}: markers of other streams {streams - {mine['k']}} in its audio"
        rep = [e for e in mine["events"] if e.is_concealment and e.outcome.name == "REPLACEMENT"]
        assert rep, f"{name}: no replacement was played ({len(mine['events'])} events)"
        # every marker in the recording is a replacement this stream reported for the seq it
        # encodes (the Regulator may stretch or shrink the timeline around a loss, so positions
        # are checked by seq, not by counting blocks)
        marker_seqs = [code % STREAM_CODES for kind, code in map(H.classify, rec) if kind == "marker"]
        reported = {e.seq % STREAM_CODES for e in rep}
        assert marker_seqs, f"{name}: no marker in the recording although {len(rep)} replacements were played"
        foreign = [q for q in marker_seqs if q not in reported]
        assert len(foreign) <= 0.02 * len(marker_seqs), (
            f"{name}: {len(foreign)} of {len(marker_seqs)} markers are for seqs this stream did not conceal: {foreign[:10]}")
        checked += 1
    assert checked >= 3, f"only {checked} client recordings to check"
