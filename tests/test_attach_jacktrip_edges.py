"""``nextblock attach`` on the real patched JackTrip at the edges: other rates and
block sizes, clients coming and going on a hub, a sending peer that restarts, redundancy.

Each test runs attach as an operator does (``--realtime``, its default schedule and look-ahead,
the ``repeat`` stand-in predictor: plumbing and scheduling, not inference speed) and asserts every
stream was served, every fallback has its reason (:func:`helpers_attach.assert_fallbacks_explained`)
and a share of the concealments was replaced (``served_share``: replacements used / concealments
while attach served the stream). The bounds are what this 2-core shared host gave, less a margin;
the measurements are in each bound's comment: below the 0.99 the project aims for, on this loaded host, each
fallback with its reason. About 2 minutes in all (four p2p geometries ~14 s each, the others
~16-21 s).
"""

from __future__ import annotations

import json
import os
import re
import threading

import pytest

import helpers_attach as h
import jacktrip_patch_harness as H
from nextblock.runtime.stats import FALLBACK_REASONS
from resources import machine_lacks
from test_attach_jacktrip_live import attach_process, hub_attach, stop_attach
from test_jacktrip_patch import bins  # noqa: F401  (the patched/stock build fixture)

pytestmark = [pytest.mark.jacktrip, pytest.mark.slow]

#: what every check prints when it fails: the reasons, the schedule, the host's load
WHY_KEYS = h.FALLBACK_KEYS + (
    "served_share",
    "frames_per_block",
    "sample_rate_hz",
    "mode",
    "slack_low_us",
    "clock_jumps",
    "clock_retimes",
    "cover_posts",
    "cover_used",
    "reattaches",
)


def serving_consumer(tmp_path, *extra: str):
    """A run_session consumer: ``nextblock attach`` on the receiving JackTrip for the whole session,
    ``result["ready"]`` once it serves the stream (run_session then starts the signal: attach takes
    seconds to start on a busy host, more than a whole session at 16 frames)."""

    def run(seg_name, stop, result):
        pid = int(seg_name.rsplit("-", 1)[1])
        json_path, log_path = tmp_path / "attach.json", tmp_path / "attach.log"
        proc = attach_process(pid, json_path, log_path, *extra)
        # and a read-only reader of the segment: every block's seq and every event, as JackTrip wrote them
        reader = threading.Thread(target=H._consume, args=(seg_name, False, 0, stop, result, None), daemon=True)
        reader.start()
        while not stop.is_set() and proc.poll() is None and not result.get("ready"):
            result["ready"] = "serving /nextblock-" in log_path.read_text(errors="replace")
            stop.wait(0.1)
        stop.wait()
        result["attach"] = stop_attach(proc, json_path, log_path)
        result["attach_log"] = log_path.read_text()
        reader.join(timeout=10)

    return run


def served_p2p_session(bins, tmp_path, **session) -> H.Session:
    """``run_session`` between two patched JackTrips, the receiver's Regulator (``--bufstrategy 3``)
    with 5 % ``--simloss``, and ``nextblock attach --realtime`` serving it for the whole session
    (:func:`serving_consumer`); ``session``: the rest of ``run_session``'s options (length, rate,
    period, extra JackTrip arguments, a restart)."""
    return H.run_session(
        bins["patched"],
        bins["patched"],
        tmp_path,
        bufstrategy=3,
        simloss=0.05,
        nextblock=True,
        consumer=serving_consumer(tmp_path, "--realtime"),
        consumer_ready_timeout_s=60,
        **session,
    )


def why(st: dict, **more) -> str:
    out = {k: st.get(k) for k in WHY_KEYS}
    out.update(more, load=os.getloadavg())
    return json.dumps(out)


def record(record_property, st: dict, prefix: str = "") -> None:
    """The numbers a run measured, for the bounds (``pytest --junitxml``: its properties)."""
    reasons = {r: st[f"fallbacks_{r}"] for r in FALLBACK_REASONS if st[f"fallbacks_{r}"]}
    record_property(f"{prefix}served_share", st["served_share"])
    record_property(f"{prefix}concealed", st["underruns"])
    record_property(f"{prefix}fallbacks", json.dumps(reasons))
    record_property("load", os.getloadavg()[0])


def assert_served(st: dict, min_share: float, min_concealed: int, **more) -> None:
    """One stream: enough concealments to measure, each fallback explained, the share replaced."""
    assert st["underruns"] >= min_concealed, why(st, **more)
    h.assert_fallbacks_explained(st, st["underruns"], why(st, **more))
    assert st["served_share"] is not None and st["served_share"] >= min_share, why(st, **more)


def assert_clean_log(log: str) -> None:
    """attach logged no error and no traceback."""
    bad = [line for line in log.splitlines() if "Traceback" in line or re.search(r": (ERROR|CRITICAL):|error:", line)]
    assert not bad, "\n".join(bad[:10]) + "\n" + log[-3000:]


# ------------------------------------------------------------------------------------------
# point to point at other rates and block sizes

#: (rate, frames per block) -> the least served share. The target is 0.99; measured
#: 2026-12-07 on the shared 2-core host (other agents compiling and training), six runs each, the
#: first four at load 2.3-6.6, the last two at 5.4-10: 44.1k x 128: 0.68-0.78 (then 0.53, 0.94);
#: 96k x 256: 0.37-0.89 (0.63, 0.68; the low runs at the load peaks, JackTrip's own concealments
#: 12-14 % of the blocks against 6-8 % in the others, late, skipped, unseen and dropped-received
#: fallbacks alike); 48k x 1024: 0.93-1.0 (0.95, 0.94; 22-34 concealments, one fallback is 3-4 %).
#: 48k x 16: skipped in every run, the link itself fails here (see skip_unless_the_link_carried);
#: never measured, so its bound is the 128-frame one.
P2P_GEOMETRIES = {
    (44100, 128): 0.5,
    (96000, 256): 0.3,
    (48000, 16): 0.5,
    (48000, 1024): 0.8,
}
#: seconds of audio per geometry: enough concealments at 1024 frames (47 blocks a second)
P2P_SECONDS = {16: 6, 1024: 14}
#: more of JackTrip's concealments than this share of the blocks it received: the link itself
#: failed (the host cannot run it), there is no stream to judge attach on
LINK_MAX_CONCEALED_SHARE = 0.5


def skip_unless_the_link_carried(result: dict, what: str) -> None:
    """Skip (machine lacks) when the two JackTrips could not carry the stream on this host: at 16
    frames each JackTrip took ~1.4 cores of this 2-core host, the JACK clients' graph errored
    thousands of times and JackTrip concealed 19x more blocks than it received (2026-12-07)."""
    received = len(result["seq"])
    concealed = sum(e.is_concealment for e in result["events"])
    if concealed > LINK_MAX_CONCEALED_SHARE * max(1, received):
        machine_lacks(
            f"the CPU to carry {what} between two JackTrips: {concealed} blocks concealed by JackTrip, "
            f"{received} received (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )


@pytest.mark.parametrize("rate_hz, frames", list(P2P_GEOMETRIES), ids=[f"{r // 1000}k-{f}" for r, f in P2P_GEOMETRIES])
def test_p2p_served_at_each_rate_and_block_size(bins, tmp_path, record_property, rate_hz, frames):  # noqa: F811
    """Both ``jackd`` at the rate and period, the Regulator (``--bufstrategy 3``) with 5 %
    ``--simloss`` on the receiver: attach serves the stream at its geometry."""
    s = served_p2p_session(
        bins,
        tmp_path,
        seconds=P2P_SECONDS.get(frames, 10),
        rate_hz=rate_hz,
        period_samples=frames,
    )
    att = s.consumer_result["attach"]
    (st,) = att["streams"]
    assert (st["sample_rate_hz"], st["frames_per_block"], st["channels"]) == (rate_hz, frames, 2), st
    assert_clean_log(s.consumer_result["attach_log"])
    record(record_property, st)
    skip_unless_the_link_carried(s.consumer_result, f"{frames} frames at {rate_hz} Hz")
    assert_served(st, P2P_GEOMETRIES[rate_hz, frames], 10)


# ------------------------------------------------------------------------------------------
# redundancy

#: the served share with ``-r 2`` is bimodal (2026-12-07, load 3.2-7): 0.95 and 1.0 in two of
#: ten runs, 0.01-0.39 in the others. JackTrip concealed 5-9 % of the blocks either way, ~80 % of
#: them the Regulator's SKIP of a block that had arrived (a single lost datagram's block comes
#: again in the next one, so hardly a block is lost). Where attach served them (the Regulator's
#: 1st-percentile slack ~0.5 ms) the block came after attach's decision, so it was predicted and
#: the SKIP took the replacement. Where it did not (slack 1.4-2.4 ms): block q's datagram was lost,
#: q came with q + 1 in the next one 1.4-2.1 ms before q's SKIP event, before attach's decision, so
#: nothing was predicted, and the Regulator dropped q all the same (too late by its own timing):
#: fallbacks "dropped_received" and "unseen" (the same case, the block not yet in attach's ring
#: when it read the event). Serving it needs a prediction for a block that comes a period late
#: (open): below this bound the test xfails with the numbers, and still asserts the
#: stream served and every fallback explained.
REDUNDANCY_MIN_SHARE = 0.15


def test_p2p_served_with_redundancy(bins, tmp_path, record_property):  # noqa: F811
    """``-r 2`` on both sides (each packet carries the previous one too): ``--simloss`` drops
    datagrams, a single loss is recovered from the next packet; JackTrip's concealments are then
    mostly its Regulator's, and attach serves them where it can (see REDUNDANCY_MIN_SHARE)."""
    s = served_p2p_session(
        bins,
        tmp_path,
        seconds=12,
        extra_args=("-r", "2"),
    )
    att = s.consumer_result["attach"]
    (st,) = att["streams"]
    assert_clean_log(s.consumer_result["attach_log"])
    record(record_property, st)
    record_property("slack_low_us", st["slack_low_us"])
    assert_served(st, 0.0, 5)
    if st["served_share"] < REDUNDANCY_MIN_SHARE:
        pytest.xfail(f"known gap: -r 2, the Regulator's SKIPs of arrived blocks not covered: {why(st)}")


# ------------------------------------------------------------------------------------------
# a sending peer that restarts

#: the least served share across a restart of the sending JackTrip (whole run: 0.63-0.84 in four
#: runs, 2026-12-07, load 3.8-5.9; 0.81 and 0.58 at 6.0 and 6.8) and of JackTrip's concealments
#: from 0.5 s after it (0.74-1.0: 142/192, 147/160, 176/206, 178/178; then 172/196, 143/237)
RESTART_MIN_SHARE = 0.5
RESTART_MIN_SHARE_AFTER = 0.5


def test_p2p_served_again_after_the_sending_peer_restarts(bins, tmp_path, record_property):  # noqa: F811
    """The client JackTrip is killed (SIGKILL: no exit packet) 5 s in and started again while
    attach runs. The receiving JackTrip keeps its segment; the new peer's sequence numbers start
    at 0 again, which the patch's 64-bit seq unwraps as the next 16-bit wrap (a jump of ~65536).
    attach serves the stream on: concealments after the restart are its replacements (JackTrip's
    own events, read alongside), no errors, no second stream."""
    s = served_p2p_session(
        bins,
        tmp_path,
        seconds=14,
        restart_client_at_s=5.0,
    )
    result = s.consumer_result
    assert "client_restarted_ns" in result, s.client_log[-2000:]
    assert s.server_alive_at_end, s.server_log[-2000:]
    log = result["attach_log"]
    assert_clean_log(log)
    (st,) = result["attach"]["streams"]
    h.assert_fallbacks_explained(st, st["underruns"], why(st))
    assert st["served_share"] is not None and st["served_share"] >= RESTART_MIN_SHARE, why(st)
    # after the restart (from 0.5 s after the new sender ran): JackTrip's concealments, ours
    after_ns = result["client_restarted_ns"] + 500_000_000
    after = [e for e in result["events"] if e.is_concealment and e.time_ns >= after_ns]
    replaced = sum(e.outcome.name == "REPLACEMENT" for e in after)
    record(record_property, st)
    record_property("after_restart", f"{replaced}/{len(after)}")
    assert len(after) >= 20, (len(after), why(st))
    assert replaced >= RESTART_MIN_SHARE_AFTER * len(after), (replaced, len(after), why(st))


# ------------------------------------------------------------------------------------------
# a hub whose clients come and go

#: the least served share of the hub streams that lived long enough, clients joining and leaving,
#: all of them together and each: 0.40-0.76 together, 0.24-0.63 the worst stream, in four runs of
#: six streams (2026-12-07, load 3.7-6.2; then 0.73 and 0.32 (worst 0.41, 0.19) at 6.2 and 6.5):
#: "skipped" and "unseen" the most, the first streams worst, while the churn's jackd and
#: JackTrip starts competed for the two cores. The static hub test's bound is 0.6
HUB_CHURN_MIN_SHARE = 0.35
HUB_CHURN_MIN_STREAM_SHARE = 0.15
#: a stream is judged when attach served it this many blocks (~2.7 s at 128 frames)
HUB_CHURN_MIN_BLOCKS = 1000


def test_hub_clients_join_and_leave_every_few_seconds(bins, tmp_path, record_property):  # noqa: F811
    """A hub at 5 % ``--simloss`` with three clients; every 3 s the oldest leaves and a new one
    joins. One attach serves the new streams, lets go of the gone ones and reports each; no
    errors."""
    out: dict = {}
    start = hub_attach(tmp_path, out, "--realtime")

    s = H.run_hub_session(
        bins["patched"],
        tmp_path,
        n_clients=3,
        seconds=15.0,
        simloss=0.05,
        churn=False,
        churn_every_s=3.0,
        on_hub_start=start,
        record=False,  # the streams' events are what is judged: no recorders in the hub's JACK graph
    )
    assert s.hub_alive_at_end, s.hub_log[-2000:]
    assert "attach" in out, "attach did not report"
    log = out["log"]
    assert_clean_log(log)
    att = out["attach"]
    by_key: dict = {}  # a hub reuses a gone client's segment name: the stream name tells them apart
    for st in att["streams"]:
        by_key.setdefault((st["segment"], st["name"]), []).append(st)
    lived = [x for x in s.streams if len(x["seq"]) >= HUB_CHURN_MIN_BLOCKS]
    assert len(lived) >= 5, [(x["segment"], len(x["seq"])) for x in s.streams]
    assert att["streams_left"] >= 3, (att["streams_joined"], att["streams_left"], log[-3000:])
    # the gone clients' streams were let go of when JackTrip closed their segments, before attach stopped
    gone = [st for st in att["streams"] if st["left_reason"] != "NextBlock stopped"]
    assert len(gone) >= 3 and all(st["left_reason"] == "its producer closed the segment" for st in gone), [
        (st["name"], st["left_reason"]) for st in att["streams"]
    ]
    totals = [0, 0]  # replaced, concealed while served: every stream that lived long enough
    for x in lived:
        mine = [st for st in by_key.get((x["segment"], x["stream_name"]), []) if st["blocks"] > 0]
        for st in mine:
            record(record_property, st, f"{st['name']}.")
        assert mine, f"attach did not serve {x['segment']} ({len(x['seq'])} blocks): {sorted(by_key)}\n{log[-3000:]}"
        for st in mine:
            h.assert_fallbacks_explained(st, st["underruns"], why(st))
        served = sum(st["underruns"] - st["fallbacks_before_attach"] for st in mine)
        used = sum(st["replacements_used"] for st in mine)
        assert served >= 5 and used >= HUB_CHURN_MIN_STREAM_SHARE * served, [why(st) for st in mine]
        totals[0] += used
        totals[1] += served
    assert totals[0] >= HUB_CHURN_MIN_SHARE * totals[1], (totals, [why(st) for st in att["streams"]])
