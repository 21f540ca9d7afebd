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

**The README's claim** (its results table, ``scripts/results.sh --quick``): on the Regulator
(``--bufstrategy 3``), NextBlock against the *stock* Regulator's Burg on the same losses, through
bench/e2e.py's own receivers and figures (10-s test-split recording, relay seed 1, 5 % random
loss): NextBlock's lost-packet SNR is higher and its LSD lower, pooled over the lost blocks, and it
replaces the share of the concealments (while it served the stream) the results page states. Runs
with more xruns than the results page allows, with a dropped packet not located in the recording,
or where attach lost more concealments to time (late or skipped) than the share lets go to
Burg, are run again (each receiver up to five times); none usable fails under CI=true. The same
NextBlock run shows that the Regulator conceals every drop with NextBlock's replacement.

Needs: root (namespaces and SCHED_FIFO for JackTrip/relay/attach: on a loaded 2-core machine the
predictor otherwise starves JackTrip's UDP receive thread, see docs/notes/e2e.md), jackd2,
JACK-Client, the patched build (built once from JackTrip's source if it is there — otherwise skipped
with the reason), the LiteRT model runner, the test recording. ~15 s per ring-buffer run, ~22 s per
Regulator run; ~90 s in all on a quiet machine, up to ~4 min when the Regulator runs are re-run (five of each at most).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import helpers_attach as h
import resources
from helpers_e2e import assert_recording_is_the_music
from nextblock.jackio.e2e import (
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
from nextblock.runtime.stats import FALLBACK_REASONS

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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from results_page import Tolerance, flag_reasons  # noqa: E402  (bench/: the results page's tolerance)

# NextBlock on the Regulator against the stock Regulator, as the README's table has it
# (scripts/results.sh --quick: bench/e2e.py, 10-s test-split recording, relay seed 1)
CLAIM_PATTERN = "bernoulli-5"
CLAIM_SECONDS = 10.0
CLAIM_SEED = 1
#: the harness's xruns (player + recorder) a usable run may have: docs/results.md's tolerance
#: (MAX_XRUNS=5). Timing slips are not held against a run here: they are the Regulator's own
#: latency changes (7 in a stock run on the quiet CI machine, scoring 1.57 / 3.82 dB like the runs
#: without), and the recording is aligned piecewise around them; what a slip could spoil, the
#: lost-packet mask, is checked instead: every dropped packet must be located in the recording.
CLAIM_MAX_XRUNS = 5
#: runs of each receiver (~22 s each) before the comparison gives up on this machine's timing
CLAIM_MAX_RUNS = 5
#: NextBlock's lost-packet SNR above stock's and LSD below it, pooled over the lost blocks: half the
#: page's gains (+3.0 dB, -0.59 dB); the two clean comparisons here +4.2 / -0.71 dB and +5.2 / -0.88 dB
#: (stock 1.3-1.5 dB / 3.75-3.85 dB, NextBlock 5.7-6.5 dB / 2.97-3.04 dB); busier runs: NextBlock
#: 4.0-7.4 dB / 3.0-4.3 dB, stock 1.4-3.5 dB / 3.7-6.2 dB
CLAIM_SNR_GAIN_DB = 1.5
CLAIM_LSD_GAIN_DB = 0.3
#: the share of the Regulator's concealments while attach served the stream that NextBlock replaced
#: (JackTrip's start-up glitches before attach joined are not counted: attach's
#: ``fallbacks_before_attach``): the results page states 1.00 (one quiet run, rounded); quiet runs
#: here give 0.989-1.000 (0-2 of ~187 not replaced: a Regulator concealment of a packet it had
#: received and dropped, one never known missing in time), busier ones 0.85-0.99. The bound lets 2
#: of ~187 go to Burg, not 3
CLAIM_SHARE_STATED = 1.00
CLAIM_SHARE = 0.985
#: the concealments attach lost to time a run may have and still measure the share: its ``late``
#: (predicted, finished after the deadline) and ``skipped`` (too little time left to start)
#: fallbacks. A run where the machine took more of them than the share bound lets go to Burg
#: measures the machine, not NextBlock (0 in quiet runs here; 2-23 with a busy loop beside it or
#: with the VM's host busy: attach's inference then peaks at 4-11 ms against a 0.6 ms median).
#: The other reasons (unseen, after_post, dropped_received) count against the share in full
CLAIM_MAX_TIMING_FALLBACKS = 2


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


def _bench_e2e():
    """bench/e2e.py, the benchmark behind the README's table: its receivers and its figures."""
    spec = importlib.util.spec_from_file_location("bench_e2e", REPO / "bench" / "e2e.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unclean(row: dict, r: dict) -> list[str]:
    """Why a run (its bench row and ``run_e2e`` result) does not count, or ``[]``: more xruns
    than docs/results.md allows, dropped packets not located in its recording, or (with attach)
    more of attach's fallbacks lost to time (late, skipped) than
    :data:`CLAIM_MAX_TIMING_FALLBACKS`."""
    reasons = flag_reasons(row, Tolerance(max_slips=10**9, max_xruns=CLAIM_MAX_XRUNS))
    located, dropped = r.get("dropped_blocks_matched", 0), len(r.get("dropped_audio_blocks") or [])
    if located < dropped:
        reasons.append(f"{dropped - located} of {dropped} dropped packets not located in the recording")
    att = row.get("attach_stats") or {}
    timing = int(att.get("fallbacks_late") or 0) + int(att.get("fallbacks_skipped") or 0)
    if timing > CLAIM_MAX_TIMING_FALLBACKS:
        reasons.append(
            f"attach lost {timing} concealments to time (late or skipped; {att.get('deadline_misses')} deadline "
            f"misses, inference median {att.get('infer_us_median')} us, max {att.get('infer_us_max')} us)"
        )
    return reasons


@pytest.fixture(scope="module")
def regulator_runs(patched, tmp_path_factory):
    """The README's comparison, as ``bench/e2e.py --fallback regulator --patched nextblock-regulator``
    makes it (``scripts/results.sh --quick``'s recording, length and seed): the stock Regulator
    (``--bufstrategy 3``, Burg) and NextBlock on the patched one over the seeded relay, which drops
    the same packets in every run. Each receiver runs again (up to :data:`CLAIM_MAX_RUNS` times)
    until one of its runs is usable (:func:`_unclean`: the page's xrun tolerance, every dropped
    packet located):
    ``{label: [(row, run_e2e result), ...]}``."""
    from nextblock.jackio.patched_build import find_stock_jacktrip
    from nextblock.jackio.recording import load_test_recording

    bench = _bench_e2e()
    try:
        audio, _ = load_test_recording(CLAIM_SECONDS, split="test")
    except Exception as exc:  # noqa: BLE001  (no apt, no network, no cache)
        pytest.skip(f"test recording unavailable: {exc}")
    stock_bin, _ = find_stock_jacktrip(patched)
    work = tmp_path_factory.mktemp("e2e-regulator")
    runs: dict[str, list] = {"stock-regulator": [], "nextblock-regulator": []}
    try:
        for attempt in range(CLAIM_MAX_RUNS):
            out = work / f"run{attempt}"
            for spec, sender in bench.receivers(patched, stock_bin, out, True, ("regulator",), tuple(runs)):
                if any(not _unclean(row, r) for row, r in runs[spec.label]):
                    continue  # this receiver has its clean run
                row, r = bench.measure(
                    CLAIM_PATTERN,
                    bench.PATTERNS[CLAIM_PATTERN],
                    spec,
                    sender,
                    audio,
                    out,
                    CLAIM_SEED,
                    TOPOLOGY,
                    RT,
                    visqol=False,
                )
                runs[spec.label].append((row, r))
                print(f"{spec.label} run {attempt}", _figures(row), _unclean(row, r))
    finally:
        _no_leftovers()
    return runs


def _figures(row: dict) -> dict:
    keys = (
        "dropped_packets",
        "underruns",
        "underruns_while_attached",
        "snr_lost_db",
        "lsd_lost_db",
        "nextblock_concealed_share",
    )
    att = row.get("attach_stats") or {}
    fallbacks = {r: att[f"fallbacks_{r}"] for r in FALLBACK_REASONS if att.get(f"fallbacks_{r}")}
    return {
        **{k: row.get(k) for k in keys},
        "slips": row["timing_slips"],
        "xruns": row["xruns"],
        **({"deadline_misses": att.get("deadline_misses"), "fallbacks": fallbacks} if att else {}),
    }


def _pooled_lost(runs: list[dict]) -> dict:
    """Lost-packet SNR and LSD over the lost blocks of all ``runs`` together (``run_e2e`` results)."""
    import soundfile as sf

    from nextblock.jackio.align import lost_sample_mask, score

    ref, rec, mask = [], [], []
    for r in runs:
        sent, rate_hz = sf.read(r["sent_wav"], dtype="float32")
        got, _ = sf.read(r["recorded_wav"], dtype="float32")
        n = min(len(sent), len(got))
        ref.append(sent[:n])
        rec.append(got[:n])
        mask.append(lost_sample_mask(r["dropped_audio_blocks"], n, r["period_samples"]))
    return score(np.concatenate(ref), np.concatenate(rec), rate_hz, sample_mask=np.concatenate(mask))


def test_nextblock_beats_the_stock_regulator_on_the_same_losses(regulator_runs):
    """The README's table, guarded: on the same lost packets NextBlock on the Regulator scores a
    higher lost-packet SNR and a lower LSD than the stock Regulator's Burg, pooled over the lost
    blocks, and replaces the share of the concealments (while attach served the stream) the results
    page states. Runs that :func:`_unclean` turns down do not count; a receiver without a usable
    run fails under CI=true (skips elsewhere)."""
    every = [r for label in regulator_runs for _, r in regulator_runs[label]]
    # the relay arms on the first audio packet: the same lost audio packets in every run
    assert all(r["link"]["dropped_indices"] == every[0]["link"]["dropped_indices"] for r in every)
    clean = {label: [(row, r) for row, r in got if not _unclean(row, r)] for label, got in regulator_runs.items()}
    seen = {label: [(_figures(row), _unclean(row, r)) for row, r in got] for label, got in regulator_runs.items()}
    if not all(clean.values()):
        resources.too_busy(
            f"a receiver had no run with at most {CLAIM_MAX_XRUNS} xruns and every dropped packet located "
            f"in {CLAIM_MAX_RUNS}: {seen}"
        )
    stock = _pooled_lost([r for _, r in clean["stock-regulator"]])
    nb = _pooled_lost([r for _, r in clean["nextblock-regulator"]])
    print("pooled lost-packet", {"stock": stock, "nextblock": nb, "seen": seen})
    assert nb["snr_db"] > stock["snr_db"] + CLAIM_SNR_GAIN_DB, (stock, nb, seen)
    assert nb["lsd_db"] < stock["lsd_db"] - CLAIM_LSD_GAIN_DB, (stock, nb, seen)
    replaced = sum(row["nextblock_replacements_used"] for row, _ in clean["nextblock-regulator"])
    concealed = sum(row["underruns_while_attached"] for row, _ in clean["nextblock-regulator"])
    assert replaced >= CLAIM_SHARE * concealed, (
        f"NextBlock replaced {replaced} of {concealed} concealments ({replaced / concealed:.3f}), "
        f"the results page states {CLAIM_SHARE_STATED}: {seen}"
    )


def test_regulator_conceals_every_drop_with_nextblocks_replacement(regulator_runs):
    """The Regulator reports a dropped packet as a SKIP glitch (a newer packet is already queued)
    or an UNDERRUN (none is): either way at the dropped seq, and it plays the block we posted.
    When the audio callback runs late (a loaded machine) it may skip several blocks in one glitch to
    catch up, the dropped one among them: one block plays for all, at the first one's seq."""
    _, r = regulator_runs["nextblock-regulator"][-1]
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
