"""The lossy link between the JackTrip client and server, and a report of which path ran.

:class:`LinkSpec` says *what* impairment is wanted; :class:`LossyLink` decides *how*
(``method``) and sets it up around one JackTrip pair:

=========  ===========================================================================
method     what runs
=========  ===========================================================================
netem      ``tc qdisc ... netem`` on the client's veth (only if the kernel has netem)
relay      our seeded UDP relay (``python -m nextblock.netlab.relay``): loss (Bernoulli,
           Gilbert-Elliott bursts, exact list), delay, jitter; logs every drop by
           JackTrip sequence number. Runs in the client namespace (or on loopback).
nft        nftables ``numgen random`` drop rule in the server namespace (loss only,
           unseeded; the rule counter gives the number dropped)
simloss    JackTrip's own ``--simloss``/``--simjitter`` on the receiving JackTrip
none       a clean link
=========  ===========================================================================

``method="auto"`` picks netem when available, else the relay (seeded, exact positions:
what the stock-vs-NextBlock comparison needs). Topology ``netns`` (root) puts the client
and server in two namespaces joined by veth; ``loopback`` keeps everything on 127.0.0.1
(relay, simloss and none only).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nextblock.jackio.procs import ManagedProcess, ProcessStartError, wait_until
from nextblock.packetloss import LossSpec, parse_loss_spec

from .netem import NetemQdisc, netem_available
from .netns import NetnsPair, netns_available
from .nft_loss import NftLoss
from .relay import read_relay_log

__all__ = ["JACKTRIP_PORT", "LinkSpec", "LossyLink", "free_udp_port"]

JACKTRIP_PORT = 4464
RELAY_PORT_IN_NETNS = 4470
METHODS = ("auto", "relay", "nft", "netem", "simloss", "none")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free right now (used for loopback topologies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LinkSpec:
    """The impairment wanted on the client→server direction.

    loss: a ``--loss`` spec (:mod:`nextblock.packetloss`) — ``none``, ``bernoulli:P`` (0 to 1),
        ``gilbert:P,R[,LB[,LG]]``, ``trace:PATH``, ``periodic:EVERY[,BURST]``, ``list:I,..``.
    delay_ms / jitter_ms: one-way delay and extra uniform jitter.
    seed: seeds the relay (and netem where tc supports it).
    method: auto | relay | nft | netem | simloss | none.
    topology: auto | netns | loopback (auto = netns when root).
    arm: relay arming (``on-audio`` makes the same seed drop the same audio packets).
    armed_packets: relay stops dropping after this many armed datagrams.
    rt_priority: run the relay with SCHED_FIFO at this priority (``chrt -f``; root only). The relay
        stands in for the *network*, which must not lose packets because this box's CPUs are busy
        (e.g. with the predictor beside JackTrip); ``None`` = normal scheduling.
    """

    loss: str = "bernoulli:0.05"
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    seed: int = 1
    method: str = "auto"
    topology: str = "auto"
    arm: str = "on-audio"
    armed_packets: int | None = None
    rt_priority: int | None = None

    def parsed_loss(self) -> LossSpec:
        """:attr:`loss` parsed (``ValueError`` with what to write for a bad spec)."""
        return parse_loss_spec(self.loss)

    def loss_kind(self) -> str:
        return self.parsed_loss().kind

    def bernoulli_percent(self) -> float:
        """Loss percentage for paths that only know independent loss (nft, simloss, netem)."""
        spec = self.parsed_loss()
        if spec.kind == "none":
            return 0.0
        if spec.kind != "bernoulli":
            raise ValueError(f"method needs loss 'bernoulli:P' or 'none', not {self.loss!r}")
        return round(100.0 * spec.params[0], 10)


@dataclass
class LinkPlan:
    """Where JackTrip must bind/send once the link is up."""

    method: str
    reason: str
    topology: str
    server_netns: str | None
    client_netns: str | None
    server_bind_port: int
    client_bind_port: int
    client_peer_host: str
    client_peer_port: int
    server_extra_args: list[str] = field(default_factory=list)


class LossyLink:
    """Sets up the link (namespaces, rules, relay) as a context manager; see the module docstring."""

    def __init__(self, spec: LinkSpec, log_dir: str | os.PathLike):
        if spec.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {spec.method!r}")
        self.spec = spec
        self.log_dir = Path(log_dir)
        self.pair: NetnsPair | None = None
        self.relay: ManagedProcess | None = None
        self.nft: NftLoss | None = None
        self.netem: NetemQdisc | None = None
        self.plan: LinkPlan | None = None
        self._relay_log = self.log_dir / "relay.jsonl"

    # -- decisions ---------------------------------------------------------------------
    def _topology(self) -> str:
        ok, why = netns_available()
        if self.spec.topology == "netns" and not ok:
            raise ProcessStartError(f"topology 'netns' unavailable: {why}")
        if self.spec.topology == "auto":
            return "netns" if ok else "loopback"
        return self.spec.topology

    def _method(self, topology: str) -> tuple[str, str]:
        m = self.spec.method
        if m in ("nft", "netem") and topology != "netns":
            raise ProcessStartError(f"method {m!r} needs network namespaces (root); use relay or simloss")
        if m == "netem":
            ok, why = netem_available(self.pair.client_ns)
            if not ok:
                raise ProcessStartError(f"method 'netem' unavailable: {why}")
            return m, "requested"
        if m != "auto":
            return m, "requested"
        if self.spec.loss_kind() == "none" and not (self.spec.delay_ms or self.spec.jitter_ms):
            return "none", "auto: no impairment requested"
        if topology == "netns":
            ok, why = netem_available(self.pair.client_ns)
            loss = self.spec.parsed_loss()
            simple_bursts = loss.kind == "gilbert" and loss.params[2:] == (1.0, 0.0)
            if ok and (loss.kind in ("bernoulli", "none") or simple_bursts):
                return "netem", "auto: kernel has netem"
            return "relay", f"auto: {why}; seeded UDP relay used for loss/delay/jitter/bursts"
        return "relay", "auto: loopback topology; seeded UDP relay"

    # -- setup -------------------------------------------------------------------------
    def __enter__(self) -> LossyLink:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _setup(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        topology = self._topology()
        if topology == "netns":
            self.pair = NetnsPair().__enter__()
        method, reason = self._method(topology)
        s = self.spec
        if topology == "netns":
            p = self.pair
            plan = LinkPlan(
                method,
                reason,
                topology,
                p.server_ns,
                p.client_ns,
                JACKTRIP_PORT,
                JACKTRIP_PORT,
                p.server_ip,
                JACKTRIP_PORT,
            )
        else:
            server_port, client_port = free_udp_port(), free_udp_port()
            while client_port == server_port:
                client_port = free_udp_port()
            plan = LinkPlan(method, reason, topology, None, None, server_port, client_port, "127.0.0.1", server_port)

        if method == "relay":
            listen_port = RELAY_PORT_IN_NETNS if topology == "netns" else 0
            args = [
                sys.executable,
                "-m",
                "nextblock.netlab.relay",
                "--listen",
                f"127.0.0.1:{listen_port}",
                "--forward",
                f"{plan.client_peer_host}:{plan.server_bind_port}",
                "--loss",
                s.loss,
                "--delay-ms",
                str(s.delay_ms),
                "--jitter-ms",
                str(s.jitter_ms),
                "--seed",
                str(s.seed),
                "--arm",
                s.arm,
                "--log",
                str(self._relay_log),
                "--max-runtime-s",
                "900",
            ]
            if s.armed_packets is not None:
                args += ["--armed-packets", str(s.armed_packets)]
            if s.rt_priority and os.geteuid() == 0 and shutil.which("chrt"):
                args = ["chrt", "-f", str(int(s.rt_priority))] + args
            if topology == "netns":
                args = ["ip", "netns", "exec", plan.client_netns] + args
            env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            self._relay_log.unlink(missing_ok=True)  # never read a previous run's "start" line
            self.relay = ManagedProcess(args, self.log_dir / "relay.log", env=env, stop_timeout_s=5.0).start()

            def started():
                self.relay.check_alive("relay")
                return read_relay_log(self._relay_log)["start"] if self._relay_log.exists() else None

            start = wait_until(started, 15.0, poll_s=0.05, what="relay to bind")
            plan.client_peer_host = "127.0.0.1"
            plan.client_peer_port = int(start["listen"].rpartition(":")[2])
        elif method == "nft":
            # the rule goes in at arm(): drops before JackTrip connects would not be counted by it
            self.nft = NftLoss(plan.server_netns, plan.server_bind_port, s.bernoulli_percent())
        elif method == "netem":
            loss = s.parsed_loss()
            kind = loss.kind
            kw = {}
            if kind == "gilbert":
                if loss.params[2:] != (1.0, 0.0):
                    raise ValueError(
                        f"netem's bursts lose every packet of a burst and none between: {s.loss!r} needs method 'relay'"
                    )
                kw = {"burst_p": loss.params[0], "burst_r": loss.params[1]}
            elif kind == "bernoulli":
                kw = {"loss_percent": s.bernoulli_percent()}
            self.netem = NetemQdisc(
                plan.client_netns, self.pair.client_dev, delay_ms=s.delay_ms, jitter_ms=s.jitter_ms, seed=s.seed, **kw
            ).__enter__()
        elif method == "simloss":
            rate = s.bernoulli_percent() / 100.0
            plan.server_extra_args += ["--simloss", f"{rate:g}"]
            if s.jitter_ms:
                # JackTrip's --simjitter takes "rate,max_delay_packets"; map jitter onto 2.67 ms packets.
                plan.server_extra_args += ["--simjitter", f"0.1,{max(1, round(s.jitter_ms / 2.667))}"]
        self.plan = plan

    # -- arming (kernel paths; the relay arms itself on the first audio datagram) ----------
    def arm(self) -> None:
        """Start dropping now (nft: insert the rule). Call once JackTrip is connected."""
        if self.nft is not None and not self._nft_armed:
            self.nft.__enter__()
            self._nft_armed = True

    def disarm(self) -> None:
        """Stop dropping now (nft: read the counter, delete the rule)."""
        if self.nft is not None and self._nft_armed:
            self._nft_dropped = self.nft.dropped_packets()
            self.nft.close()
            self._nft_armed = False

    _nft_armed = False

    # -- results -----------------------------------------------------------------------
    def report(self) -> dict:
        """Which path ran and what it dropped (call after :meth:`close` for the relay's summary)."""
        plan = self.plan
        out = {
            "method": plan.method if plan else None,
            "reason": plan.reason if plan else None,
            "topology": plan.topology if plan else None,
            "spec": self.spec.__dict__.copy(),
        }
        if plan and plan.method == "relay" and self._relay_log.exists():
            log = read_relay_log(self._relay_log)
            out["dropped_packets"] = len(log["drops"])
            out["dropped_seqs"] = [d["seq"] for d in log["drops"]]
            out["dropped_indices"] = [d["index"] for d in log["drops"]]
            out["dropped_heads"] = [d.get("head") for d in log["drops"]]
            out["armed_at_seq"] = (log["armed"] or {}).get("seq")
            out["relay_summary"] = log["summary"]
        if self._nft_dropped is not None:
            out["dropped_packets"] = self._nft_dropped
        return out

    _nft_dropped: int | None = None

    def close(self) -> None:
        """Stop the relay, remove rules/qdiscs, delete the namespaces. Idempotent."""
        try:
            if self.relay is not None:
                self.relay.stop()
            if self.nft is not None:
                try:
                    self.disarm()
                except Exception:
                    pass
                self.nft.close()
                self.nft = None
            if self.netem is not None:
                self.netem.close()
                self.netem = None
        finally:
            if self.pair is not None:
                self.pair.close()

    def __exit__(self, *exc) -> None:
        self.close()
