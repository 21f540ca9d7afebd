"""Lifecycle of a headless ``jackd`` dummy server with a unique name.

``jackd -n NAME -d dummy -r RATE -p PERIOD`` runs without sound hardware, in real-time
mode, clocked by the system timer. Each :class:`JackdServer` gets a name containing our
PID (``nb<pid>-<role>-<n>``) so several engineers' servers never collide, and clients are
pointed at it through ``JACK_DEFAULT_SERVER`` (see :meth:`JackdServer.client_env`).
``JACK_NO_START_SERVER=1`` is always set so no client silently auto-starts a server.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

from .procs import ManagedProcess, ProcessStartError, wait_until

__all__ = ["JackdServer", "jack_ports", "unique_server_name"]

_counter = itertools.count()


def unique_server_name(role: str) -> str:
    """A JACK server name unique to this process: ``nb<pid>-<role>-<n>``."""
    return f"nb{os.getpid()}-{role}-{next(_counter)}"


def jack_ports(server_name: str, connections: bool = False, timeout_s: float = 5.0) -> list[str] | None:
    """Port names on ``server_name`` via ``jack_lsp`` (``None`` if the server is not reachable).

    With ``connections=True`` the raw ``jack_lsp -c`` lines are returned (connected ports
    are indented by three spaces under their port).
    """
    args = ["jack_lsp", "-s", server_name] + (["-c"] if connections else [])
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    try:
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    return [line for line in out.stdout.splitlines() if line.strip()]


class JackdServer:
    """A running ``jackd`` dummy server (context manager).

    Parameters
    ----------
    role: short label put into the server name (``"client"``, ``"server"``).
    rate_hz: sample rate.
    period_samples: JACK period (one JackTrip packet carries one period).
    log_dir: where ``jackd-<name>.log`` goes.
    ready_timeout_s: how long to wait for the server to accept clients.
    client_timeout_ms: ``jackd -t``; by default jackd waits two periods for a client and
        twenty to activate one (6.7 ms at 16 frames and 48 kHz: less than a busy host's
        scheduling delay, so a client's activation fails); a fixed timeout lifts that.
    """

    def __init__(
        self,
        role: str,
        log_dir: str | os.PathLike,
        rate_hz: int = 48000,
        period_samples: int = 128,
        ready_timeout_s: float = 15.0,
        jackd_binary: str = "jackd",
        client_timeout_ms: int | None = None,
    ):
        if shutil.which(jackd_binary) is None:
            raise ProcessStartError(f"{jackd_binary!r} not found: apt-get install jackd2")
        self.name = unique_server_name(role)
        self.rate_hz = rate_hz
        self.period_samples = period_samples
        self.ready_timeout_s = ready_timeout_s
        self.process = ManagedProcess(
            [jackd_binary, "-n", self.name]
            + (["-t", str(int(client_timeout_ms))] if client_timeout_ms else [])
            + ["-d", "dummy", "-r", str(rate_hz), "-p", str(period_samples)],
            log_path=Path(log_dir) / f"jackd-{self.name}.log",
            env={"JACK_NO_START_SERVER": "1"},
        )

    def client_env(self) -> dict[str, str]:
        """Environment that points JACK clients (jacktrip, jack_lsp) at this server."""
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}

    @property
    def pid(self) -> int:
        return self.process.pid

    def ports(self, connections: bool = False) -> list[str]:
        """Current ports of this server (``jack_lsp``)."""
        return jack_ports(self.name, connections=connections) or []

    def start(self) -> JackdServer:
        """Start jackd and wait until ``jack_lsp`` can talk to it."""
        self.process.start()

        def ready():
            self.process.check_alive(f"jackd {self.name}")
            return jack_ports(self.name) is not None

        try:
            wait_until(ready, self.ready_timeout_s, poll_s=0.2, what=f"jackd {self.name} to accept clients")
        except BaseException:
            self.process.stop()
            raise
        return self

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> JackdServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
