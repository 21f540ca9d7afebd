"""The live loop against the real patched JackTrip: its recorded output holds our replacements.

A patched JackTrip p2p server (``--nextblock``, ``--simloss``) receives a block-coded signal from
a JackTrip client (tests/jacktrip_patch_harness.py runs both on ``jackd`` dummy servers and
records the server's output). NextBlock's loop attaches to the server's segment, as
``python -m nextblock.attach --jacktrip-pid`` does, and remembers everything it posts. Every
UNDERRUN or SKIP that JackTrip reports as concealed by a REPLACEMENT must be for a seq we posted, and show
up in the recording as one of the blocks we posted for that seq, to JackTrip's 16-bit resolution
(a repeat of a block cross-faded after an earlier concealment is not exact in 16 bit) — except
replacements played while an overloaded machine stalled JackTrip's receive thread (see the test),
and at most 10 % more.

Skipped (with the reason; a failure in CI) when JackTrip's source or the build tools are not
available; the first run builds JackTrip (~10 min), later runs reuse the build.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import helpers_attach  # noqa: F401  (import path fix for stale editable installs)
import jacktrip_patch_harness as H
from nextblock.capture import nextblock_segments
from nextblock.runtime import HubConfig, HubLoop, ProducerGone, RepeatPredictor
from nextblock.runtime.discovery import ProcessStreams
from nextblock.runtime.session import process_comm
from test_jacktrip_patch import bins  # noqa: F401  (fixture: builds or finds stock/patched JackTrip)

pytestmark = [pytest.mark.jacktrip, pytest.mark.slow]

LSB_16BIT = 1.0 / 32768  # JackTrip's default bit resolution


def _attach_when_jacktrip_appears(before: set[str], stop: threading.Event, out: dict) -> None:
    """Find the server's new segment, attach and serve until stopped; fill ``out``."""
    while not stop.is_set():
        for _, pid, _ in (s for s in nextblock_segments() if s.name not in before):
            if "jacktrip" not in process_comm(pid):
                continue
            posted: dict[int, list[np.ndarray]] = {}
            loop = HubLoop(
                ProcessStreams(pid),
                RepeatPredictor(128, 48000, gain=0.5),
                HubConfig(scan_interval_s=0.05),
                stop=stop,
                post_hook=lambda seq, r, posted=posted: posted.setdefault(seq, []).append(r[0].copy()),
            )
            out.update(loop=loop, posted=posted, pid=pid)
            try:
                loop.run(max_wall_s=120)
            except ProducerGone:
                pass
            except Exception as err:  # surfaced by the test
                out["attach_error"] = f"{type(err).__name__}: {err}"
            finally:
                loop.close()
            return
        time.sleep(0.05)


def test_recorded_output_contains_our_replacements_at_the_lost_positions(bins, tmp_path):  # noqa: F811
    before = {s.name for s in nextblock_segments()}
    stop = threading.Event()
    out: dict = {}
    attach = threading.Thread(target=_attach_when_jacktrip_appears, args=(before, stop, out), daemon=True)
    attach.start()
    try:
        session = H.run_session(
            bins["patched"],
            bins["patched"],
            tmp_path,
            nextblock=True,
            post_replacements=False,
            simloss=0.08,
            seconds=6.0,
        )
    finally:
        stop.set()
        attach.join(10)
    assert "loop" in out, f"NextBlock never attached to JackTrip's segment ({out.get('attach_error')})"
    assert "attach_error" not in out, out["attach_error"]
    stats, posted = out["loop"].stats.to_dict(), out["posted"]
    assert stats["streams_joined"] == 1, stats
    recorded = session.recorded  # [n, frames, channels]

    def in_recording(block) -> bool:  # JackTrip plays a replacement in its bit depth (16 by default)
        return bool((np.abs(recorded - block).max(axis=(1, 2)) <= LSB_16BIT).any())

    analysis = H.analyse(session)
    # most losses reach JackTrip's receive side as SKIPs (a newer packet is already queued when the
    # lost one is due), the rest as UNDERRUNs: both carry the lost seq and how it was concealed
    # (counting UNDERRUNs alone left 5-19 per run, and a CI run failed the ">= 8" below)
    replaced = [
        e.seq
        for e in analysis.conceal_recorded()
        if e.kind.name in ("UNDERRUN", "SKIP") and e.outcome.name == "REPLACEMENT"
    ]
    assert len(replaced) >= 8, f"too few replacements used ({len(replaced)}); stats: {out['loop'].stats.status_line()}"
    for seq in replaced:
        assert seq in posted, f"JackTrip played a replacement for seq {seq} that NextBlock never posted"
    found = [seq for seq in replaced if any(in_recording(b) for b in posted[seq])]
    missing = sorted(set(replaced) - set(found))
    # Where the missing ones go: on a quiet machine every replacement
    # is in the recording. When the machine is overloaded, JackTrip's receive thread stalls: packets
    # arrive tens to hundreds of ms after JackTrip concealed them (its LATE events), and the JACK
    # periods around such a stall - replacements included - can be lost from the recording (the
    # recorder is a Python JACK client starved by the same load). A concealment is "stalled" when its
    # packet arrived more than two periods after JackTrip played the replacement for it.
    period_ns = 2 * 128 / 48000 * 1e9
    when = {e.seq: e.time_ns for e in analysis.conceal_recorded() if e.kind.name in ("UNDERRUN", "SKIP")}
    stalled = {seq for seq in replaced if seq in analysis.arrival and analysis.arrival[seq] - when[seq] > period_ns}
    unexplained = [seq for seq in missing if seq not in stalled]
    assert len(unexplained) <= max(2, 0.1 * len(replaced)), (
        f"{len(found)} of {len(replaced)} replacements found in the recording; missing {missing[:20]}, of which "
        f"{len(unexplained)} were not played during a receive stall: {unexplained[:20]}"
    )
    assert stats["underruns"] >= len(replaced) and stats["replacements_used"] >= len(replaced)
