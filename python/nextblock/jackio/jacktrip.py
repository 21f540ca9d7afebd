"""Lifecycle of one JackTrip process (P2P server or client) and its IO-stat log.

NextBlock runs JackTrip in P2P mode: the *server* (``-s``) binds a UDP port and learns its
peer from the first datagram's source address; the *client* (``-c HOST -P PORT``) sends to
it. Each talks to its own ``jackd`` through ``JACK_DEFAULT_SERVER``. We always pass
``-D`` (no automatic JACK connections: our player/recorder wires the ports) and
``-I 1`` (one IO-stat line per second, parsed by :func:`parse_iostat`).

Two seams for the patched build:

* ``binary`` — path of the JackTrip executable (stock ``jacktrip`` or the patched build);
* ``extra_args`` — extra flags, e.g. ``["--nextblock"]`` or ``["--bufstrategy", "3"]``.

``netns`` runs the process inside a network namespace (``ip netns exec NS ...``; ``ip``
exec()s the command, so :attr:`JackTripProcess.pid` is JackTrip's own PID, the value
``python -m nextblock.attach --jacktrip-pid PID`` needs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .procs import ManagedProcess, ProcessStartError, wait_until

__all__ = ["IOStat", "JackTripProcess", "jacktrip_version", "parse_iostat"]

CONNECTED_MARKER = "Received Connection from Peer!"


def jacktrip_version(binary: str = "jacktrip") -> str | None:
    """``"1.7.0"``-style version of ``binary`` or ``None`` when it cannot run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"VERSION:\s*([0-9][0-9A-Za-z.\-]*)", out.stdout + out.stderr)
    return m.group(1) if m else None


@dataclass
class IOStat:
    """Cumulative counters from the last ``-I`` line JackTrip printed.

    ``recv_underruns``: receive-buffer underruns (packets JackTrip had to conceal);
    ``lost_packets``: sequence-number gaps seen by the UDP receiver (``prot:`` lost);
    ``out_of_order``/``revived``: the other two ``prot:`` counters;
    ``total_packets``: ``tot:``; ``glitches``: bufstrategy 3/4's ``Glitches:`` summed over
    lines (1.7.0 prints them per interval; underruns concealed by the Regulator/Burg PLC;
    that mode prints no ``recv:``/``prot:`` counters); ``lines``: how many stat lines were seen.
    """

    recv_underruns: int = 0
    recv_overflows: int = 0
    lost_packets: int = 0
    out_of_order: int = 0
    revived: int = 0
    total_packets: int = 0
    glitches: int | None = None
    lines: int = 0


_RECV = re.compile(r"recv:\s*(-?\d+)/(-?\d+)")
_PROT = re.compile(r"prot:\s*(-?\d+)/(-?\d+)/(-?\d+)")
_TOT = re.compile(r"tot:\s*(-?\d+)")
_GLITCH = re.compile(r"Glitches:\s*(-?\d+)")


def parse_iostat(text: str) -> IOStat:
    """Parse JackTrip 1.7/2.x ``-I`` output; the counters are cumulative, the last line wins."""
    stat = IOStat()
    for line in text.splitlines():
        recv, prot, tot, glitch = _RECV.search(line), _PROT.search(line), _TOT.search(line), _GLITCH.search(line)
        if not (recv or glitch):
            continue
        stat.lines += 1
        if recv:
            stat.recv_underruns, stat.recv_overflows = int(recv.group(1)), int(recv.group(2))
        if prot:
            stat.lost_packets, stat.out_of_order, stat.revived = (int(g) for g in prot.groups())
        if tot:
            stat.total_packets = int(tot.group(1))
        if glitch:
            stat.glitches = (stat.glitches or 0) + int(glitch.group(1))
    return stat


class JackTripProcess:
    """A JackTrip P2P server or client (context manager).

    Parameters
    ----------
    role: ``"server"`` or ``"client"``.
    jack_env: environment selecting the JACK server (:meth:`JackdServer.client_env`).
    log_dir: directory for ``jacktrip-<role>.log``.
    bind_port: local UDP port (``-B``).
    peer_host, peer_port: where a client sends (``-c HOST -P PORT``); ignored for servers.
    channels: audio channels each way (``-n``).
    queue_packets: jitter-buffer length (``-q``).
    binary: JackTrip executable (stock or patched).
    extra_args: appended verbatim (concealment flags: ``-z``, ``--bufstrategy 3``,
        ``--nextblock``, ``--simloss 0.05`` ...).
    netns: network namespace to run in (needs root), or ``None``.
    client_name: JACK client name (``-J``), default ``JackTrip``.
    rt_priority: SCHED_FIFO priority for the whole process (root only), or ``None``.
    """

    def __init__(
        self,
        role: str,
        jack_env: dict[str, str],
        log_dir: str | os.PathLike,
        bind_port: int,
        peer_host: str | None = None,
        peer_port: int | None = None,
        channels: int = 1,
        queue_packets: int | str = 4,
        binary: str = "jacktrip",
        extra_args: Sequence[str] = (),
        netns: str | None = None,
        client_name: str = "JackTrip",
        iostat_interval_s: int = 1,
        rt_priority: int | None = None,
    ):
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        if shutil.which(binary) is None and not Path(binary).is_file():
            raise ProcessStartError(f"JackTrip binary {binary!r} not found (apt-get install jacktrip)")
        self.role = role
        self.client_name = client_name
        self.channels = channels
        args = [binary]
        if role == "server":
            args += ["-s"]
        else:
            if peer_host is None or peer_port is None:
                raise ValueError("a JackTrip client needs peer_host and peer_port")
            args += ["-c", peer_host, "-P", str(peer_port)]
        args += [
            "-B",
            str(bind_port),
            "-n",
            str(channels),
            "-q",
            str(queue_packets),
            "-J",
            client_name,
            "-D",
            "-I",
            str(iostat_interval_s),
        ]
        args += list(extra_args)
        if rt_priority and os.geteuid() == 0 and shutil.which("chrt"):
            # SCHED_FIFO for all of JackTrip's threads (chrt exec()s: the PID stays JackTrip's),
            # as a musician's JACK setup runs it; its UDP receive thread otherwise competes with
            # everything else on a busy machine and the jitter buffer runs dry.
            args = ["chrt", "-f", str(int(rt_priority))] + args
        if netns:
            args = ["ip", "netns", "exec", netns] + args
        self.args = args
        self.process = ManagedProcess(args, Path(log_dir) / f"jacktrip-{role}.log", env=jack_env, stop_timeout_s=5.0)

    @property
    def pid(self) -> int:
        """JackTrip's PID (what ``nextblock.attach --jacktrip-pid`` takes)."""
        return self.process.pid

    def send_ports(self) -> list[str]:
        """JACK ports carrying audio *to* the network (``<name>:send_N``)."""
        return [f"{self.client_name}:send_{i + 1}" for i in range(self.channels)]

    def receive_ports(self) -> list[str]:
        """JACK ports carrying audio *from* the network (``<name>:receive_N``)."""
        return [f"{self.client_name}:receive_{i + 1}" for i in range(self.channels)]

    def connected(self) -> bool:
        """True once JackTrip logged that its peer is connected."""
        return CONNECTED_MARKER in self.process.log_text()

    def wait_connected(self, timeout_s: float = 20.0) -> None:
        """Block until the peer connection is up; raise with the log tail otherwise."""

        def ok():
            self.process.check_alive(f"jacktrip {self.role}")
            return self.connected()

        try:
            wait_until(ok, timeout_s, poll_s=0.1, what=f"jacktrip {self.role} to connect")
        except TimeoutError as exc:
            raise ProcessStartError(f"{exc}; log:\n{self.process.log_tail()}") from None

    def iostat(self) -> IOStat:
        """Counters from the latest ``-I`` line."""
        return parse_iostat(self.process.log_text())

    def start(self) -> JackTripProcess:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> JackTripProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
