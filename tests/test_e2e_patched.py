"""Patched end-to-end path: the patched JackTrip 2.7.2 on both ends, a seeded lossy link (our relay),
the receiving JackTrip with ``--nextblock --bufstrategy -1 -z`` and ``python -m nextblock.attach``
beside it, a real recording played in and recorded out.

Two runs with the same seed (same lost audio packets): the same patched binary *without* attach
(JackTrip's own fallback, zeros) and *with* attach (NextBlock's replacements). A read-only
:class:`~nextblock.jackio.segment_tap.SegmentTap` records the segment's events in both.

Asserted:
* the segment's UNDERRUN seqs cover the relay's dropped JackTrip seqs (16-bit on the wire,
  64-bit unwrapped in the segment: compared mod 65536); extra UNDERRUNs (JACK xruns on this
  box, jitter-buffer underruns) stay few;
* with attach, NextBlock's replacements are played at those positions: every one posted in time
  (attach explains each fallback: too late, skipped, never known missing in time), at least half
  of the drops on the loaded machine (the share itself is bench/e2e.py's);
* the NextBlock recording scores better than the fallback run on the lost packets (lsd_db and
  snr_db on exactly the dropped positions);
* no process of ours (``NEXTBLOCK_OWNER`` marker) and no namespace of ours is left, also when a
  start fails; JackTrip's segment is removed.

Needs: root (namespaces and SCHED_FIFO for JackTrip/relay/attach: on a loaded 2-core machine the
predictor otherwise starves JackTrip's UDP receive thread, see docs/notes/e2e.md), jackd2,
JACK-Client, the patched build (built once from JackTrip's source if it is there — otherwise skipped
with the reason), the LiteRT model runner, the test recording. ~20 s per run, ~60 s in all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import helpers_attach as h
from helpers_e2e import assert_recording_is_the_music
from nextblock.jackio.e2e import (
    REGULATOR_QUEUE_MS,
    ReceiverSpec,
    nextblock_receiver,
    patched_fallback_receiver,
    run_e2e,
)
from nextblock.jackio.patched_build import ensure_patched_jacktrip
from nextblock.jackio.playrec import jack_client_available
from nextblock.jackio.procs import ProcessStartError, leftover_processes
from nextblock.netlab.link import LinkSpec
from nextblock.netlab.netns import list_our_namespaces, netns_available

pytestmark = [pytest.mark.slow, pytest.mark.jacktrip]

for _tool, _pkg in (("jackd", "jackd2"), ("jack_lsp", "jackd2"), ("chrt", "util-linux")):
    if shutil.which(_tool) is None:
        pytest.skip(f"{_tool} not installed (apt-get install {_pkg})", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("needs root: network namespaces and SCHED_FIFO for JackTrip/relay/attach", allow_module_level=True)
_ok, _why = jack_client_available()
if not _ok:
    pytest.skip(_why, allow_module_level=True)
try:
    import ai_edge_litert  # noqa: F401
except ImportError as _err:
    pytest.skip(
        f"the LiteRT model runner is not installed ({_err}): nextblock.attach cannot run the model",
        allow_module_level=True,
    )

NETNS_OK, NETNS_WHY = netns_available()
TOPOLOGY = "netns" if NETNS_OK else "loopback"
DURATION_S = 5.0
PERIOD = 128
SEED = 3
LOSS = "bernoulli:0.05"
RT = 20  # SCHED_FIFO priority of both JackTrips and the relay; attach --realtime goes below JackTrip's callback
#: the share of drops NextBlock's replacements must conceal here, whatever the machine's timing (see
#: _assert_replacements_played; 0.62 in the slowest Regulator run on this machine, 0.95-0.99 in quiet ones)
MIN_SHARE = 0.5


@pytest.fixture(scope="module")
def patched():
    path, message = ensure_patched_jacktrip(build=True)
    if path is None:
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def audio():
    from nextblock.jackio.recording import load_test_recording

    try:
        a, _ = load_test_recording(DURATION_S)
    except Exception as exc:  # noqa: BLE001  (no apt, no network, no cache)
        pytest.skip(f"test recording unavailable: {exc}")
    return a


def _no_leftovers():
    assert leftover_processes() == [], f"a process of ours survived: {leftover_processes()}"
    assert list_our_namespaces() == [], "a network namespace of ours survived"


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    _no_leftovers()


def _link():
    return LinkSpec(loss=LOSS, method="relay", topology=TOPOLOGY, seed=SEED)


@pytest.fixture(scope="module")
def runs(patched, audio, tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e-patched")
    out = {}
    try:
        out["fallback"] = run_e2e(
            audio, _link(), patched_fallback_receiver(patched), work, sender_binary=patched, rt_priority=RT
        )
        out["nextblock"] = run_e2e(
            audio,
            _link(),
            nextblock_receiver(patched, work / "attach.json", realtime=True),
            work,
            sender_binary=patched,
            rt_priority=RT,
        )
    finally:
        _no_leftovers()
    for k, r in out.items():  # shown with -s / on failure: what the assertions looked at
        print(
            k,
            {
                "dropped": r["link"]["dropped_packets"],
                "events": r["segment_events"]["counts"],
                "xruns": r["xruns"],
                "lost": r["metrics_lost_packets"],
                "all": r["metrics"],
                "attach": {x: r.get("attach_stats", {}).get(x) for x in ("underruns", "replacements_used")},
            },
        )
    return out


def _mod(seqs):
    return {int(s) % 65536 for s in seqs}


def _extra_allowance(r) -> int:
    """UNDERRUNs not caused by the link: JACK xruns on this loaded box (a late period can empty
    the ring once) — a few, plus one per xrun our player/recorder saw."""
    x = r["xruns"]
    return 5 + int(0.1 * r["link"]["dropped_packets"]) + x["player"] + x["recorder"]


@pytest.mark.parametrize("which", ["fallback", "nextblock"])
def test_underrun_events_match_the_relays_drops(runs, which):
    r = runs[which]
    assert r["link"]["method"] == "relay"
    dropped = _mod(r["link"]["dropped_seqs"])
    expected = 0.05 * DURATION_S * 48000 / PERIOD
    assert 0.4 * expected < len(dropped) < 1.8 * expected
    # JackTrip's own gap counter agrees with the relay exactly
    assert r["jacktrip_receive"]["lost_packets"] == len(dropped)
    ev = r["segment_events"]
    assert ev["error"] is None, ev["error"]
    underruns = _mod(ev["underrun_seqs"])
    missing = sorted(dropped - underruns)
    # a lost packet can vanish without an UNDERRUN only when an overflow reset dropped the queue
    # holding its hole (an OVERFLOW event then says so)
    assert len(missing) <= ev["counts"].get("OVERFLOW", 0), f"drops without UNDERRUN: {missing[:20]}"
    extra = underruns - dropped
    assert len(extra) <= _extra_allowance(r), (
        f"{len(extra)} UNDERRUNs at seqs the link did not drop (xruns {r['xruns']}): {sorted(extra)[:20]}"
    )


def test_fallback_run_plays_jacktrips_fallback(runs):
    ev = runs["fallback"]["segment_events"]
    assert ev["counts"].get("UNDERRUN/REPLACEMENT", 0) == 0
    assert ev["counts"].get("UNDERRUN/FALLBACK", 0) >= len(_mod(runs["fallback"]["link"]["dropped_seqs"])) - 2


def _why(stats: dict) -> dict:
    return {
        k: stats.get(k)
        for k in (
            "underruns",
            "replacements_used",
            "fallbacks",
            "fallbacks_late",
            "fallbacks_skipped",
            "fallbacks_unseen",
            "fallbacks_after_post",
            "deadline_misses",
            "modes",
            "infer_us_median",
            "infer_us_p99",
            "cold_infer_us_at_start",
        )
    }


def _assert_replacements_played(r, share: float) -> None:
    """What NextBlock controls, strictly; what the machine's timing decides, loosely.

    Every replacement attach posted in time is played (``fallbacks_after_post`` about 0: the
    deadline it computes from the producer's clock is right), and attach accounts for every fallback. How
    many drops it predicted in time depends on how fast this shared 2-core machine runs a cold
    prediction (its p99 went from 0.8 to 2.6 ms between two runs here, and one in ten drops came
    too late in the slow ones); that share is a benchmark number (bench/e2e.py,
    ``replacement_share``). Here it only has to show that NextBlock conceals (``MIN_SHARE``)."""
    stats = r["attach_stats"]
    assert "error" not in stats, stats
    why = _why(stats)
    h.assert_fallbacks_explained(stats, stats["underruns"], why)
    assert share >= MIN_SHARE, (
        f"only {share:.0%} of the dropped packets were concealed by NextBlock: {r['segment_events']['counts']}, {why}"
    )


def test_nextblock_replacements_are_played_at_the_lost_positions(runs):
    r = runs["nextblock"]
    dropped = _mod(r["link"]["dropped_seqs"])
    replaced = _mod(r["segment_events"]["replaced_seqs"])
    stats = r["attach_stats"]
    assert stats["underruns"] >= 0.9 * len(dropped), _why(stats)
    _assert_replacements_played(r, len(dropped & replaced) / len(dropped))


def test_same_losses_and_nextblock_scores_better_than_the_fallback(runs):
    fb, nb = runs["fallback"], runs["nextblock"]
    # the relay arms on the first audio packet: identical lost audio packets in both runs
    assert fb["link"]["dropped_indices"] == nb["link"]["dropped_indices"]
    f, n = fb["metrics_lost_packets"], nb["metrics_lost_packets"]
    # zeros have a log-spectral distance of ~12 dB on the lost blocks; predictions far less
    assert n["lsd_db"] < f["lsd_db"] - 2.0, (f, n)
    assert n["snr_db"] > f["snr_db"], (f, n)
    # the whole recording is still the music, aligned
    assert_recording_is_the_music(nb)
    assert_recording_is_the_music(fb)
    for r in (fb, nb):
        assert Path(r["recorded_wav"]).stat().st_size > 0


def test_segments_are_removed(runs):
    for r in runs.values():
        assert not Path(f"/dev/shm/nextblock-{r['jacktrip_server_pid']}").exists()


def test_failed_attach_start_cleans_up_everything(patched, audio, tmp_path):
    """attach dies at once (bad argument): run_e2e raises, everything it started is stopped,
    the namespaces are removed (checked by ``nothing_left_behind``)."""
    spec = nextblock_receiver(patched, tmp_path / "a.json", extra_attach_args=["--no-such-option"], realtime=False)
    spec.attach_warmup_s = 1.0
    with pytest.raises(ProcessStartError):
        run_e2e(audio[:48000], _link(), spec, tmp_path, sender_binary=patched, rt_priority=RT)


def test_failed_jacktrip_start_cleans_up_everything(patched, audio, tmp_path):
    with pytest.raises(ProcessStartError):
        run_e2e(
            audio[:48000],
            _link(),
            ReceiverSpec(label="broken", binary="/bin/false"),
            tmp_path,
            sender_binary=patched,
            rt_priority=RT,
        )


@pytest.fixture(scope="module")
def regulator_run(patched, audio, tmp_path_factory):
    """The receiving JackTrip on its Regulator (``--bufstrategy 3``, Burg as the fallback) with attach."""
    work = tmp_path_factory.mktemp("e2e-regulator")
    spec = nextblock_receiver(patched, work / "attach.json", buffer_args=("--bufstrategy", "3"), realtime=True)
    spec.queue = str(REGULATOR_QUEUE_MS)
    try:
        r = run_e2e(audio, _link(), spec, work, sender_binary=patched, rt_priority=RT)
    finally:
        _no_leftovers()
    print(
        "regulator",
        {
            "dropped": r["link"]["dropped_packets"],
            "events": r["segment_events"]["counts"],
            "xruns": r["xruns"],
            "lost": r["metrics_lost_packets"],
            "attach": r.get("attach_stats"),
        },
    )
    return r


def test_regulator_conceals_every_drop_with_nextblocks_replacement(regulator_run):
    """The Regulator reports a dropped packet as a SKIP glitch (a newer packet is already queued)
    or an UNDERRUN (none is): either way at the dropped seq, and it plays the block we posted.
    When the audio callback runs late (a loaded machine) it may skip several blocks in one glitch to
    catch up, the dropped one among them: one block plays for all, at the first one's seq."""
    r = regulator_run
    dropped = _mod(r["link"]["dropped_seqs"])
    ev = r["segment_events"]
    assert ev["error"] is None, ev["error"]
    concealed = _mod(ev["concealed_seqs"]) | _mod(ev["skipped_over_seqs"])
    missing = sorted(dropped - concealed)
    near = {m: sorted(c for c in concealed if abs(c - m) <= 3) for m in missing[:20]}
    assert len(missing) <= 2, f"drops the Regulator did not report as concealed (concealments near them): {near}"
    replaced = _mod(ev["replaced_seqs"])
    stats = r["attach_stats"]
    assert stats["underruns"] == ev["concealments"], "attach counts the Regulator's SKIP glitches too"
    _assert_replacements_played(r, len(dropped & replaced) / len(dropped))
