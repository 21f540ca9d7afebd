"""Two network namespaces joined by a veth pair (``ip netns`` / iproute2), always removed.

Layout created by :class:`NetnsPair` (``k`` is chosen per instance so concurrent pairs
never collide)::

    namespace nb<pid>-<k>-c            namespace nb<pid>-<k>-s
    veth "c0"  10.213.K.1/30  <-veth->  veth "s0"  10.213.K.2/30

The 10.213.K.0/30 addresses exist only on those two veth ends inside our own namespaces;
no route leads anywhere else, so traffic can only stay inside the pair (or on each
namespace's own loopback, which ``lo up`` enables). Deleting a namespace deletes its veth
end, so teardown is ``ip netns del`` of both, run even when the body raised.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

__all__ = ["NetnsPair", "NetnsUnavailable", "list_our_namespaces", "netns_available", "run_in_netns"]

_counter = itertools.count()
SUBNET_PREFIX = "10.213"


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be used here (message says why: root, iproute2, kernel)."""


def _ip(*args: str, check: bool = True, timeout_s: float = 10.0) -> subprocess.CompletedProcess:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout_s)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {out.stderr.strip()}")
    return out


def netns_available() -> tuple[bool, str]:
    """(usable, reason). Needs root and iproute2's ``ip``."""
    if shutil.which("ip") is None:
        return False, "iproute2 'ip' not found (apt-get install iproute2)"
    if os.geteuid() != 0:
        return False, "needs root for network namespaces"
    return True, "ok"


def run_in_netns(netns: str, args, timeout_s: float = 10.0, check: bool = True) -> subprocess.CompletedProcess:
    """Run a short command inside ``netns`` and return its completed process."""
    out = subprocess.run(["ip", "netns", "exec", netns, *args], capture_output=True, text=True, timeout=timeout_s)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} in {netns} failed: {out.stderr.strip() or out.stdout.strip()}")
    return out


def list_our_namespaces(prefix: str | None = None) -> list[str]:
    """Namespaces whose name starts with ``prefix`` (default: this process's ``nb<pid>-``)."""
    prefix = prefix or f"nb{os.getpid()}-"
    out = _ip("netns", "list", check=False)
    return [line.split()[0] for line in out.stdout.splitlines() if line.startswith(prefix)]


class NetnsPair:
    """Client and server namespaces joined by veth (context manager).

    Attributes after ``__enter__``: ``client_ns``, ``server_ns``, ``client_ip``,
    ``server_ip``, ``client_dev`` (``c0``), ``server_dev`` (``s0``).
    """

    def __init__(self, index: int | None = None):
        ok, why = netns_available()
        if not ok:
            raise NetnsUnavailable(why)
        self.k = (os.getpid() * 7 + next(_counter)) % 250 + 1 if index is None else index
        base = f"nb{os.getpid()}-{next(_counter)}"
        self.client_ns, self.server_ns = f"{base}-c", f"{base}-s"
        self.client_dev, self.server_dev = "c0", "s0"
        self.client_ip, self.server_ip = f"{SUBNET_PREFIX}.{self.k}.1", f"{SUBNET_PREFIX}.{self.k}.2"
        self._created: list[str] = []

    def __enter__(self) -> NetnsPair:
        try:
            for ns in (self.client_ns, self.server_ns):
                _ip("netns", "add", ns)
                self._created.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            # Create the pair directly with each end inside its namespace.
            _ip(
                "-n",
                self.client_ns,
                "link",
                "add",
                self.client_dev,
                "type",
                "veth",
                "peer",
                "name",
                self.server_dev,
                "netns",
                self.server_ns,
            )
            for ns, dev, ip in (
                (self.client_ns, self.client_dev, self.client_ip),
                (self.server_ns, self.server_dev, self.server_ip),
            ):
                _ip("-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
        except BaseException as exc:
            self.close()
            if isinstance(exc, RuntimeError):
                raise NetnsUnavailable(f"cannot create network namespaces: {exc}") from exc
            raise
        return self

    def ping_ok(self, count: int = 1, timeout_s: float = 3.0) -> bool:
        """One bounded ping from client to server namespace (sanity check)."""
        if shutil.which("ping") is None:
            return True
        out = run_in_netns(
            self.client_ns, ["ping", "-c", str(count), "-W", "1", self.server_ip], timeout_s=timeout_s, check=False
        )
        return out.returncode == 0

    def close(self) -> None:
        """Delete both namespaces (and with them the veth pair). Idempotent."""
        for ns in reversed(self._created):
            _ip("netns", "del", ns, check=False)
        self._created.clear()

    def __exit__(self, *exc) -> None:
        self.close()
