"""A seeded UDP relay between a JackTrip client and server: loss, delay, jitter, bursts.

The client sends to the relay's *listen* address; the relay forwards to the server from
its own *upstream* socket, so the P2P server (which answers the source address of the
first datagram) answers the relay, which passes the answer back to the client unchanged.
Only the client→server direction is impaired (that is the audio we record).

Loss is applied only while *armed*, and datagrams are counted from the arming point, so
two runs with the same seed drop the same datagrams relative to the audio:

* ``--arm on-audio``   — arm at the first datagram whose audio payload is not all zeros
  (JackTrip sends exact zeros until our player starts), the default;
* ``--arm immediately`` — arm at the first datagram;
* ``--arm after:N``     — arm after N datagrams.

``--armed-packets N`` disarms after N armed datagrams (so losses stop with the audio and
JackTrip's gap counter sees every one of them). Every dropped datagram is logged with its
armed index and JackTrip sequence number (``jackheader.parse_header``) to a JSON-lines log
(``--log``), ending with a ``summary`` line written on SIGTERM/SIGINT or ``--max-runtime-s``.

Safety: the relay only talks to loopback (127.0.0.0/8) or to NextBlock's own namespace
range (10.213.0.0/16, only ever assigned inside namespaces we create).
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import json
import select
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from nextblock.packetloss import GRAMMAR, loss_argument

from .impairments import DelayModel, LossModel, make_loss_model, rng_streams
from .jackheader import HEADER_SIZE_BYTES, parse_header, payload_is_silent

__all__ = ["ALLOWED_NETWORKS", "RelayStats", "UdpRelay", "check_allowed_address", "main"]

ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.213.0.0/16"))
_MAX_DATAGRAM_BYTES = 65536


def check_allowed_address(host: str) -> None:
    """Raise ``ValueError`` unless ``host`` is loopback or inside NextBlock's namespace range."""
    addr = ipaddress.ip_address(host)
    if not any(addr in net for net in ALLOWED_NETWORKS):
        raise ValueError(
            f"address {host} refused: the relay only uses loopback (127.0.0.0/8) or NextBlock's "
            "own namespace range (10.213.0.0/16)"
        )


def parse_hostport(text: str) -> tuple[str, int]:
    """``"127.0.0.1:4464"`` → ``("127.0.0.1", 4464)``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


class RelayStats:
    """Counters and the exact drop list of one relay run."""

    def __init__(self):
        self.up_received = 0
        self.up_forwarded = 0
        self.up_dropped = 0
        self.down_forwarded = 0
        self.armed_datagrams = 0
        self.armed_at_seq: int | None = None
        self.drops: list[dict] = []  # {"index": armed index, "seq": JackTrip seq or None, "t_s": ...}
        self.max_delay_ms = 0.0

    def as_dict(self) -> dict:
        return {
            "up_received": self.up_received,
            "up_forwarded": self.up_forwarded,
            "up_dropped": self.up_dropped,
            "down_forwarded": self.down_forwarded,
            "armed_datagrams": self.armed_datagrams,
            "armed_at_seq": self.armed_at_seq,
            "dropped_seqs": [d["seq"] for d in self.drops],
            "dropped_indices": [d["index"] for d in self.drops],
            "max_delay_ms": round(self.max_delay_ms, 3),
        }


class UdpRelay:
    """The relay itself; :meth:`run` blocks until :meth:`stop` or ``max_runtime_s``.

    Parameters
    ----------
    listen: (host, port) the client sends to; port 0 picks a free port (see :attr:`listen_port`).
    forward: (host, port) of the JackTrip server.
    loss: a :class:`LossModel` (applied while armed).
    delay: a :class:`DelayModel` or ``None``.
    arm: ``"on-audio"``, ``"immediately"`` or ``"after:N"``.
    armed_packets: disarm after this many armed datagrams (``None`` = never).
    log_path: JSON-lines event log, or ``None``.
    max_runtime_s: hard bound on the relay's lifetime.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        forward: tuple[str, int],
        loss: LossModel,
        delay: DelayModel | None = None,
        arm: str = "on-audio",
        armed_packets: int | None = None,
        log_path: str | Path | None = None,
        max_runtime_s: float = 600.0,
    ):
        check_allowed_address(listen[0])
        check_allowed_address(forward[0])
        self.forward = forward
        self.loss, self.delay = loss, delay
        self.arm_mode, self.arm_after = self._parse_arm(arm)
        self.armed_packets = armed_packets
        self.max_runtime_s = max_runtime_s
        self.stats = RelayStats()
        self._armed = self.arm_mode == "immediately"
        self._disarmed = False
        self._client_addr = None
        self._stop = threading.Event()
        self._pending: list = []  # heap of (due_s, n, payload)
        self._n = 0
        self._log = open(log_path, "w", buffering=1) if log_path else None
        self.listen_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen_sock.bind(listen)
        self.up_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up_sock.bind(("0.0.0.0", 0))  # any local address that routes to `forward` (checked above)
        self.listen_port = self.listen_sock.getsockname()[1]
        self._t0 = time.monotonic()
        self._event(
            "start",
            listen=f"{listen[0]}:{self.listen_port}",
            forward=f"{forward[0]}:{forward[1]}",
            loss=loss.spec,
            delay_ms=delay.delay_ms if delay else 0.0,
            jitter_ms=delay.jitter_ms if delay else 0.0,
            arm=arm,
            armed_packets=armed_packets,
        )

    @staticmethod
    def _parse_arm(arm: str) -> tuple[str, int]:
        if arm in ("on-audio", "immediately"):
            return arm, 0
        if arm.startswith("after:"):
            return "after", int(arm.split(":", 1)[1])
        raise ValueError(f"arm must be on-audio, immediately or after:N, not {arm!r}")

    def _event(self, kind: str, **fields) -> None:
        if self._log is not None:
            rec = {"event": kind, "t_s": round(time.monotonic() - self._t0, 6), **fields}
            self._log.write(json.dumps(rec) + "\n")

    # -- datagram handling -------------------------------------------------------------
    def _maybe_arm(self, datagram: bytes, seq: int | None) -> None:
        if self._armed or self._disarmed:
            return
        if self.arm_mode == "on-audio":
            go = parse_header(datagram) is not None and not payload_is_silent(datagram)
        else:  # after:N
            go = self.stats.up_received > self.arm_after
        if go:
            self._armed = True
            self.stats.armed_at_seq = seq
            self._event("armed", seq=seq)

    def _handle_upstream(self, datagram: bytes, now_s: float) -> None:
        self.stats.up_received += 1
        hdr = parse_header(datagram)
        seq = hdr.seq if hdr else None
        self._maybe_arm(datagram, seq)
        if self._armed and hdr is not None:
            index = self.stats.armed_datagrams
            self.stats.armed_datagrams += 1
            if self.loss.drop():
                self.stats.up_dropped += 1
                rec = {"index": index, "seq": seq, "t_s": round(now_s - self._t0, 6)}
                self.stats.drops.append(rec)
                self._event("drop", index=index, seq=seq, head=_payload_head(datagram, hdr))
                self._check_disarm(seq)
                return
            self._check_disarm(seq)
        if self.delay is not None and self.delay.active:
            due = self.delay.due_time_s(now_s)
            self.stats.max_delay_ms = max(self.stats.max_delay_ms, (due - now_s) * 1000.0)
            self._n += 1
            heapq.heappush(self._pending, (due, self._n, datagram))
        else:
            self._send_up(datagram)

    def _check_disarm(self, seq) -> None:
        if self.armed_packets is not None and self.stats.armed_datagrams >= self.armed_packets:
            self._armed = False
            self._disarmed = True
            self._event("disarmed", seq=seq, armed_datagrams=self.stats.armed_datagrams)

    def _send_up(self, datagram: bytes) -> None:
        self.up_sock.sendto(datagram, self.forward)
        self.stats.up_forwarded += 1

    def _flush_due(self, now_s: float) -> None:
        while self._pending and self._pending[0][0] <= now_s:
            _, _, datagram = heapq.heappop(self._pending)
            self._send_up(datagram)

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> RelayStats:
        """Relay until :meth:`stop` is called or ``max_runtime_s`` passes; returns the stats."""
        socks = [self.listen_sock, self.up_sock]
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now - self._t0 > self.max_runtime_s:
                    self._event("max_runtime_reached")
                    break
                timeout = 0.1
                if self._pending:
                    timeout = min(timeout, max(0.0, self._pending[0][0] - now))
                readable, _, _ = select.select(socks, [], [], timeout)
                now = time.monotonic()
                for sock in readable:
                    try:
                        datagram, addr = sock.recvfrom(_MAX_DATAGRAM_BYTES)
                    except OSError:
                        continue  # e.g. ICMP port unreachable surfaced as ECONNREFUSED
                    if sock is self.listen_sock:
                        self._client_addr = addr
                        self._handle_upstream(datagram, now)
                    elif self._client_addr is not None:
                        self.listen_sock.sendto(datagram, self._client_addr)
                        self.stats.down_forwarded += 1
                self._flush_due(time.monotonic())
        finally:
            self._event("summary", **self.stats.as_dict())
            self.close()
        return self.stats

    def stop(self) -> None:
        """Ask :meth:`run` to return (thread-safe)."""
        self._stop.set()

    def close(self) -> None:
        for s in (self.listen_sock, self.up_sock):
            try:
                s.close()
            except OSError:
                pass
        if self._log is not None and not self._log.closed:
            self._log.close()


def _payload_head(datagram: bytes, hdr, n: int = 16) -> list[int] | None:
    """The first ``n`` 16-bit samples of channel 0 of a dropped packet (JackTrip's payload is
    non-interleaved little-endian): lets the caller find *which audio* was lost even when the
    sender skipped periods (then armed index ≠ audio block). None for other bit depths."""
    if getattr(hdr, "bit_resolution", None) != 16 or len(datagram) < HEADER_SIZE_BYTES + 2 * n:
        return None
    return list(struct.unpack_from(f"<{n}h", datagram, HEADER_SIZE_BYTES))


def read_relay_log(path: str | Path) -> dict:
    """Parse a relay JSON-lines log: ``{"start": {...}, "armed": {...}|None, "drops": [...], "summary": {...}|None}``."""
    out = {"start": None, "armed": None, "drops": [], "summary": None, "disarmed": None}
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        kind = rec.get("event")
        if kind == "drop":
            out["drops"].append(rec)
        elif kind in out:
            out[kind] = rec
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nextblock.netlab.relay",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "example (client sends to 127.0.0.1:15000, server on 127.0.0.1:4464, bursty loss, ≈6 %):\n"
            "  python -m nextblock.netlab.relay --listen 127.0.0.1:15000 --forward 127.0.0.1:4464 \\\n"
            "      --loss gilbert:0.02,0.4 --delay-ms 5 --jitter-ms 2 --seed 7 --log relay.jsonl"
        ),
    )
    p.add_argument("--listen", required=True, help="HOST:PORT the JackTrip client sends to (port 0 = any free port)")
    p.add_argument("--forward", required=True, help="HOST:PORT of the JackTrip server")
    p.add_argument(
        "--loss", default="none", type=loss_argument, help=f"{GRAMMAR} (probabilities from 0 to 1; default none)"
    )
    p.add_argument("--delay-ms", type=float, default=0.0, help="fixed one-way delay added to every datagram")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="extra uniform delay in [0, jitter-ms]")
    p.add_argument("--reorder", action="store_true", help="let jitter reorder datagrams (default: keep order)")
    p.add_argument("--seed", type=int, default=0, help="seed for loss and jitter (same seed = same drops)")
    p.add_argument("--arm", default="on-audio", help="on-audio | immediately | after:N (when loss starts)")
    p.add_argument("--armed-packets", type=int, default=None, help="stop dropping after this many armed datagrams")
    p.add_argument("--log", default=None, help="JSON-lines log of start/armed/drop/summary events")
    p.add_argument("--max-runtime-s", type=float, default=600.0, help="exit after this many seconds (safety bound)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    loss_rng, delay_rng = rng_streams(args.seed, 2)
    try:
        relay = UdpRelay(
            listen=parse_hostport(args.listen),
            forward=parse_hostport(args.forward),
            loss=make_loss_model(args.loss, loss_rng),
            delay=DelayModel(args.delay_ms, args.jitter_ms, delay_rng, keep_order=not args.reorder),
            arm=args.arm,
            armed_packets=args.armed_packets,
            log_path=args.log,
            max_runtime_s=args.max_runtime_s,
        )
    except (ValueError, OSError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: relay.stop())
    print(f"relay listening on {args.listen.rpartition(':')[0]}:{relay.listen_port}", flush=True)
    stats = relay.run()
    print(json.dumps(stats.as_dict() | {"dropped_seqs": len(stats.drops)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
