"""``tc netem`` on our veth, used only when the kernel has the netem qdisc.

:func:`netem_available` probes inside a namespace of ours (``tc qdisc add dev lo root
netem``, then deletes it); kernels without ``sch_netem`` answer "qdisc kind is unknown"
and the lossy link falls back to nftables + the UDP relay (see ``link.py``).
"""

from __future__ import annotations

import shutil

from .netns import run_in_netns

__all__ = ["NetemQdisc", "netem_available"]


def netem_available(netns: str) -> tuple[bool, str]:
    """(available, reason) — probes netem on ``lo`` inside ``netns`` (which we own)."""
    if shutil.which("tc") is None:
        return False, "iproute2 'tc' not found"
    out = run_in_netns(netns, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"], check=False)
    if out.returncode != 0:
        return False, f"kernel has no netem: {out.stderr.strip() or out.stdout.strip()}"
    run_in_netns(netns, ["tc", "qdisc", "del", "dev", "lo", "root"], check=False)
    return True, "ok"


class NetemQdisc:
    """``tc qdisc add dev DEV root netem loss X% delay D jitter J`` inside ``netns`` (context manager).

    ``burst_p``/``burst_r`` select netem's Gilbert-Elliott model (``loss gemodel p r``)
    instead of independent loss. ``seed`` is passed where this tc supports it.
    """

    def __init__(
        self,
        netns: str,
        dev: str,
        loss_percent: float = 0.0,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        burst_p: float | None = None,
        burst_r: float | None = None,
        seed: int | None = None,
    ):
        self.netns, self.dev = netns, dev
        args = ["tc", "qdisc", "add", "dev", dev, "root", "netem"]
        if delay_ms or jitter_ms:
            args += ["delay", f"{delay_ms}ms"] + ([f"{jitter_ms}ms"] if jitter_ms else [])
        if burst_p is not None and burst_r is not None:
            args += ["loss", "gemodel", f"{burst_p * 100}%", f"{burst_r * 100}%"]
        elif loss_percent:
            args += ["loss", f"{loss_percent}%"]
        if seed is not None:
            args += ["seed", str(seed)]
        self.args = args

    def __enter__(self) -> NetemQdisc:
        out = run_in_netns(self.netns, self.args, check=False)
        if out.returncode != 0 and "seed" in self.args:  # older tc without 'seed'
            i = self.args.index("seed")
            self.args = self.args[:i] + self.args[i + 2 :]
            out = run_in_netns(self.netns, self.args, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(self.args)} failed: {out.stderr.strip()}")
        return self

    def close(self) -> None:
        run_in_netns(self.netns, ["tc", "qdisc", "del", "dev", self.dev, "root"], check=False)

    def __exit__(self, *exc) -> None:
        self.close()
