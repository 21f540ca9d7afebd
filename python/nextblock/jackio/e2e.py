"""One end-to-end run: two jackd, JackTrip client → lossy link → JackTrip server, play & record.

::

    jackd "c" ─ nbplay:out_1 → JackTrip(client):send_1 ──UDP──> lossy link ──> JackTrip(server)
    jackd "s" ─ JackTrip(server):receive_1 → nbrec:in_1                  (the receiving side)

The receiving JackTrip is the one whose concealment we measure. Two seams say how it runs and
what runs beside it (:class:`ReceiverSpec`):

* ``binary`` / ``extra_args`` — e.g. the patched build and ``["--nextblock"]``;
* ``attach_command`` — argv started beside the receiving JackTrip once it is connected,
  with ``{pid}`` replaced by its PID, e.g.
  ``[sys.executable, "-m", "nextblock.attach", "--jacktrip-pid", "{pid}"]``.

:func:`run_e2e` returns a JSON-able dict: link report (which path ran, exact drops),
JackTrip's receive counters, our own xruns, CPU seconds per process, lag, metrics and the
paths of ``sent.wav`` and ``recorded-<label>.wav``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from nextblock.netlab.link import LinkSpec, LossyLink

from .align import align_piecewise, locate_dropped_blocks, lost_sample_mask, score
from .jackd import JackdServer
from .jacktrip import JackTripProcess, jacktrip_version
from .patched_build import find_patched_jacktrip, find_stock_jacktrip
from .playrec import PlayRecord
from .procs import ManagedProcess, wait_until

__all__ = [
    "STOCK_FALLBACKS",
    "ReceiverSpec",
    "attach_child_env",
    "cpu_seconds",
    "find_patched_jacktrip",
    "find_stock_jacktrip",
    "nextblock_receiver",
    "patched_fallback_receiver",
    "run_e2e",
    "stock_receiver",
]

# JackTrip's own concealment choices on the receiving side. In 1.7.0 and 2.7.2 alike
# (JackTrip::setupRingBuffers) any --bufstrategy >= 0 forces underrun mode ZEROS; the
# "wavetable" (repeat) underrun mode only exists with the classic ring buffer, bufstrategy -1.
# Bufstrategy 3 (Regulator + Burg PLC) reads -q in milliseconds, not packets.
STOCK_FALLBACKS = {
    "default": [],  # whatever this JackTrip does by default
    "zeros": ["-z"],  # default jitter buffer (strategy 1): silence
    "wavetable": ["--bufstrategy", "-1"],  # ring buffer, repeat on underrun
    "regulator": ["--bufstrategy", "3"],  # Regulator with Burg PLC (-q in ms)
}
REGULATOR_QUEUE_MS = 11  # ≈ 4 packets of 128 samples at 48 kHz, like -q 4


@dataclass
class ReceiverSpec:
    """How the receiving JackTrip runs (the side whose concealment is measured)."""

    label: str = "stock-wavetable"
    binary: str = "jacktrip"
    extra_args: list[str] = field(default_factory=list)
    attach_command: list[str] | None = None
    #: seconds to let attach settle after it reports that it serves (slack measurement, first wake-ups)
    attach_warmup_s: float = 1.0
    #: at most this long for attach to start serving (imports and the model load; slow on a loaded machine)
    attach_start_timeout_s: float = 60.0
    attach_env: dict[str, str] | None = None
    queue: str | None = None  # -q override for this receiver (e.g. ms for the Regulator)


def stock_receiver(fallback: str = "wavetable", binary: str = "jacktrip") -> ReceiverSpec:
    """The receiving JackTrip with one of its own concealments (:data:`STOCK_FALLBACKS`)."""
    queue = str(REGULATOR_QUEUE_MS) if fallback == "regulator" else None
    return ReceiverSpec(
        label=f"stock-{fallback}", binary=binary, extra_args=list(STOCK_FALLBACKS[fallback]), queue=queue
    )


def attach_child_env() -> dict[str, str]:
    """Environment for a ``python -m nextblock.attach`` child that imports *this* tree.

    A stale scikit-build editable install (``pip install -e .`` before ``nextblock.runtime``
    existed) puts a finder first on ``sys.meta_path`` that turns newer subpackages into empty
    namespace packages, shadowing ``PYTHONPATH``; its finder steps aside for build paths listed in
    ``SKBUILD_EDITABLE_SKIP``. We list them and put this tree first on ``PYTHONPATH``.
    """
    import sys

    here = str(Path(__file__).resolve().parents[2])
    paths = [getattr(f, "path", None) for f in sys.meta_path if type(f).__name__.startswith("ScikitBuild")]
    skip = [p for p in os.environ.get("SKBUILD_EDITABLE_SKIP", "").split(os.pathsep) if p]
    skip += [p for p in paths if p and p not in skip]
    py = [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
    env = {"PYTHONPATH": os.pathsep.join(py)}
    if skip:
        env["SKBUILD_EDITABLE_SKIP"] = os.pathsep.join(skip)
    return env


def nextblock_receiver(
    binary: str,
    attach_json: str | os.PathLike,
    extra_attach_args=(),
    buffer_args=("--bufstrategy", "-1", "-z"),
    realtime: bool | None = None,
) -> ReceiverSpec:
    """The patched JackTrip with ``--nextblock`` and ``python -m nextblock.attach`` beside it.

    ``buffer_args``: JackTrip's buffer strategy, default the classic ring buffer with zeros as the
    fallback (``--bufstrategy -1 -z``): its UNDERRUN events carry the exact JackTrip seq of each
    lost packet and it costs next to no CPU. ``("--bufstrategy", "3")`` runs the Regulator (its Burg
    PLC as the fallback; pass ``-q`` in ms through ``ReceiverSpec.queue``): it reports a lost packet as
    a SKIP glitch or an UNDERRUN, both with the lost seq.
    ``realtime``: pass ``--realtime`` to attach (SCHED_FIFO); default: when root.
    """
    import sys

    if realtime is None:
        realtime = os.geteuid() == 0
    extra = list(extra_attach_args) + (["--realtime"] if realtime and "--realtime" not in extra_attach_args else [])
    return ReceiverSpec(
        label="nextblock",
        binary=binary,
        extra_args=["--nextblock", *buffer_args],
        attach_command=[
            sys.executable,
            "-m",
            "nextblock.attach",
            "--jacktrip-pid",
            "{pid}",
            "--json",
            str(attach_json),
            *extra,
        ],
        attach_warmup_s=1.0,
        attach_env=attach_child_env(),
    )


def patched_fallback_receiver(binary: str, buffer_args=("--bufstrategy", "-1", "-z")) -> ReceiverSpec:
    """The same patched JackTrip with ``--nextblock`` but no predictor attached: JackTrip's own
    fallback plays at every UNDERRUN (the events still tell which seqs were concealed)."""
    label = "patched-fallback-" + (
        "zeros"
        if "-z" in buffer_args
        else "wavetable"
        if "-1" in buffer_args
        else "regulator"
        if "3" in buffer_args
        else "other"
    )
    return ReceiverSpec(label=label, binary=binary, extra_args=["--nextblock", *buffer_args])


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds used so far by ``pid`` (from /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _write_wav(path: Path, audio: np.ndarray, rate_hz: int) -> str:
    import soundfile as sf

    sf.write(str(path), audio, rate_hz, subtype="FLOAT")
    return str(path)


def run_e2e(
    audio: np.ndarray,
    link: LinkSpec,
    receiver: ReceiverSpec,
    work_dir: str | os.PathLike,
    rate_hz: int = 48000,
    period_samples: int = 128,
    queue_packets: int = 4,
    sender_binary: str = "jacktrip",
    lead_s: float = 1.0,
    tail_s: float = 1.5,
    connect_timeout_s: float = 20.0,
    rt_priority: int | None = None,
) -> dict:
    """Run once; see the module docstring. Everything started is stopped before returning.

    ``rt_priority``: SCHED_FIFO priority for both JackTrips and the relay (root only; ``None`` =
    normal scheduling). Use it when something CPU-hungry (the predictor) runs beside JackTrip on a
    small machine: see docs/notes/e2e.md.
    """
    work = Path(work_dir)
    logs = work / f"logs-{receiver.label}"
    logs.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, dtype=np.float32)
    if link.armed_packets is None and link.arm == "on-audio":
        link = LinkSpec(**{**link.__dict__, "armed_packets": math.ceil(len(audio) / period_samples)})
    if rt_priority and link.rt_priority is None:
        link = LinkSpec(**{**link.__dict__, "rt_priority": rt_priority})
    result: dict = {
        "label": receiver.label,
        "receiver_binary": receiver.binary,
        "sender_binary": sender_binary,
        "rt_priority": rt_priority,
        "receiver_version": jacktrip_version(receiver.binary),
        "receiver_extra_args": list(receiver.extra_args),
        "attach_command": receiver.attach_command,
    }
    t_start = time.monotonic()
    with contextlib.ExitStack() as stack:
        jack_c = stack.enter_context(JackdServer("c", logs, rate_hz, period_samples))
        jack_s = stack.enter_context(JackdServer("s", logs, rate_hz, period_samples))
        lossy = stack.enter_context(LossyLink(link, logs))
        plan = lossy.plan
        server = stack.enter_context(
            JackTripProcess(
                "server",
                jack_s.client_env(),
                logs,
                bind_port=plan.server_bind_port,
                queue_packets=receiver.queue or queue_packets,
                binary=receiver.binary,
                extra_args=list(receiver.extra_args) + plan.server_extra_args,
                netns=plan.server_netns,
                rt_priority=rt_priority,
            )
        )
        time.sleep(0.3)  # let the server bind before the client's first datagram
        client = stack.enter_context(
            JackTripProcess(
                "client",
                jack_c.client_env(),
                logs,
                bind_port=plan.client_bind_port,
                peer_host=plan.client_peer_host,
                peer_port=plan.client_peer_port,
                queue_packets=queue_packets,
                binary=sender_binary,
                netns=plan.client_netns,
                rt_priority=rt_priority,
            )
        )
        server.wait_connected(connect_timeout_s)
        client.wait_connected(connect_timeout_s)
        wait_until(
            lambda: (
                set(server.receive_ports()) <= set(jack_s.ports()) and set(client.send_ports()) <= set(jack_c.ports())
            ),
            10.0,
            0.1,
            "JackTrip's JACK ports",
        )
        tap = None
        if "--nextblock" in receiver.extra_args:  # read-only view of the events JackTrip posts
            from .segment_tap import SegmentTap

            tap = stack.enter_context(SegmentTap(server.pid))
        attach = None
        if receiver.attach_command:
            argv = [a.replace("{pid}", str(server.pid)) for a in receiver.attach_command]
            attach = stack.enter_context(ManagedProcess(argv, logs / "attach.log", env=receiver.attach_env))
            # a fixed sleep was not enough on a loaded CI machine: the losses began before attach
            # served, and a quarter of them fell back
            wait_until(
                lambda: attach.check_alive("nextblock.attach") or "serving " in attach.log_text(),
                receiver.attach_start_timeout_s,
                0.05,
                "nextblock.attach to serve",
            )
            time.sleep(receiver.attach_warmup_s)
            attach.check_alive("nextblock.attach")
        # JackTrip zeroes its loss counter at its first -I line: start dropping after it
        wait_until(lambda: server.iostat().lines >= 2, 10.0, 0.1, "JackTrip's first IO-stat lines")
        lossy.arm()
        pr = PlayRecord(
            jack_c.name, jack_s.name, client.send_ports(), server.receive_ports(), audio, lead_s=lead_s, tail_s=tail_s
        ).run(rate_hz)
        lossy.disarm()
        time.sleep(1.5)  # one more -I line so JackTrip's counters include the whole run
        stat = server.iostat()
        if tap is not None:
            tap.stop()
            result["segment_events"] = tap.summary()
        pids = {
            "jackd_client": jack_c.pid,
            "jackd_server": jack_s.pid,
            "jacktrip_client": client.pid,
            "jacktrip_server": server.pid,
        }
        if lossy.relay is not None:
            pids["relay"] = lossy.relay.pid
        if attach is not None:
            pids["attach"] = attach.pid
        result["cpu_s"] = {k: cpu_seconds(v) for k, v in pids.items()}
        result["pids"] = pids
        result["jacktrip_server_pid"] = server.pid
    result["wall_s"] = round(time.monotonic() - t_start, 2)
    if receiver.attach_command and "--json" in receiver.attach_command:
        stats_path = Path(receiver.attach_command[receiver.attach_command.index("--json") + 1])
        try:
            result["attach_stats"] = json.loads(stats_path.read_text())
        except (OSError, ValueError) as exc:
            result["attach_stats"] = {"error": f"no attach stats at {stats_path}: {exc}"}
    result["link"] = lossy.report()
    result["jacktrip_receive"] = stat.__dict__
    result["xruns"] = {
        "player": pr.player_xruns,
        "recorder": pr.recorder_xruns,
        "player_missed_samples": pr.player_missed_samples,
        "recorder_missed_samples": pr.recorder_missed_samples,
    }
    # the share of the recording the harness itself lost to xruns (the player's periods never sent,
    # the recorder's never written): past a few per cent the host, not JackTrip, shaped the audio
    result["harness_missed_fraction"] = round(
        (pr.player_missed_samples + pr.recorder_missed_samples) / max(len(audio), 1), 4
    )
    # JackTrip's latency is milliseconds, never seconds: bounding the first lag keeps loop-based music
    # (a test recording repeats whole phrases) from matching a repetition seconds away, and voting on
    # it over several seconds (align.first_lag_samples) from matching the next beat (~0.5 s) when the
    # first second came through degraded; either made whole runs unscoreable
    aligned, lags = align_piecewise(
        audio, pr.recorded[:, 0], period_samples=period_samples, max_lag_samples=pr.play_offset_samples + 2 * rate_hz
    )
    lag = lags[0]
    result["lag_samples"] = lag
    result["latency_ms"] = round(1000.0 * (lag - pr.play_offset_samples) / rate_hz, 2)
    # JackTrip's jitter buffer can add/drop whole packets after underruns: count the slips.
    result["timing_slips"] = sum(1 for a, b in pairwise(lags) if a != b)
    result["lag_range_samples"] = [int(min(lags)), int(max(lags))]
    result["metrics"] = score(audio, aligned, rate_hz)
    dropped = result["link"].get("dropped_indices")
    if dropped:  # exact positions known (relay): score the lost packets alone too
        heads = result["link"].get("dropped_heads") or [None] * len(dropped)
        blocks, matched = locate_dropped_blocks(audio, dropped, heads, period_samples)
        result["dropped_audio_blocks"], result["dropped_blocks_matched"] = blocks, matched
        result["dropped_index_drift_blocks"] = max(
            (abs(b - i) for b, i in zip(blocks, dropped, strict=True)), default=0
        )
        mask = lost_sample_mask(blocks, len(audio), period_samples)
        result["metrics_lost_packets"] = score(audio, aligned, rate_hz, sample_mask=mask)
    result["sent_wav"] = _write_wav(work / "sent.wav", audio, rate_hz)
    result["recorded_wav"] = _write_wav(work / f"recorded-{receiver.label}.wav", aligned, rate_hz)
    result["rate_hz"], result["period_samples"], result["queue_packets"] = rate_hz, period_samples, queue_packets
    return result
