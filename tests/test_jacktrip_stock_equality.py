"""Without ``--nextblock`` the patched JackTrip plays exactly what stock JackTrip 2.7.2 plays.

Stock and patched (flag off) each receive the block-coded signal of tests/jacktrip_patch_jackio.py
(block i is the constant code(i), exact in 16 bit) over loopback, with the Regulator
(``--bufstrategy 3``, Burg concealment) and with the default JitterBuffer (``--bufstrategy 1``).
Every block a run delivered intact must be byte-identical in the other run, and the patched one
must not mention NextBlock.
(The ring buffer, ``--bufstrategy -1 -z``, is covered by tests/test_jacktrip_patch.py.)

Not compared there: the blocks JackTrip makes up on a timing underrun or mixes from two packets —
where they fall depends on the scheduling of that run, not on the binary.

**With loss** (the Regulator): JackTrip's ``--simloss`` draws from ``std::random_device``, so the
losses come from our seeded relay instead (``nextblock.jackio.e2e``: the same packets of the same
recording are dropped in every run), with SCHED_FIFO for JackTrip. Then stock JackTrip's whole
recording — Burg's concealments included — is the same, sample for sample, from run to run, and
the patched one (flag off) must match it. A busy machine spoils a pair of runs (drops that moved to
other audio, an alignment that landed elsewhere, a packet that came too late for its turn: an
underrun JackTrip counts beyond the lost packets, after which the Regulator's state and the whole
recording differ), and a player or recorder xrun changes a few blocks of one recording. So: a pair
without xruns and with as many underruns on both sides must match exactly; otherwise, over up to three pairs,
the concealments are compared where both runs lost the same block after the same two played
blocks (the Regulator's Burg trains on those alone), and nearly all of them must be identical. With
fewer than 20 such losses after the short pairs it goes on with up to two pairs of a 16-s recording
(four times the losses each); fewer than 20 after those fails under CI=true (and skips on a
developer's machine) with what went wrong. The
JitterBuffer is not deterministic under loss even stock against stock (its byte FIFO depends on
timing), so it is compared without loss only.
"""

from __future__ import annotations

import pytest

import jacktrip_patch_harness as H
import resources
from test_jacktrip_patch import bins  # noqa: F401  (fixture: builds or finds stock/patched JackTrip)

pytestmark = [pytest.mark.jacktrip, pytest.mark.slow]

# pairs of lossy runs (~20 s each, a 4-s recording) before the comparison turns to longer pairs: on a
# noisy afternoon here two CI runs found only 19 and 14 usable losses in 3 pairs (a busy sending
# JackTrip moves the drops)
MAX_ATTEMPTS = 3
SHORT_S = 4.0
# then up to this many pairs of a 16-s recording (~35 s each run, four times the losses of a short
# pair) until MIN_CONDITIONED losses after the same history are in; fewer is a failure in CI
LONG_ATTEMPTS = 2
LONG_S = 16.0
MIN_CONDITIONED = 20


def _intact_blocks(session) -> tuple[dict[int, bytes], int, int]:
    """({code: bytes of the first intact block with that code}, intact count, recorded count)."""
    by_code: dict[int, bytes] = {}
    intact = 0
    for block in session.recorded:
        kind, code = H.classify(block)
        if kind == "real":
            intact += 1
            by_code.setdefault(code, block.tobytes())
        assert kind != "marker", "a NextBlock replacement in a run without --nextblock"
    return by_code, intact, len(session.recorded)


@pytest.mark.parametrize("strategy", [3, 1], ids=["regulator", "jitterbuffer"])
def test_flag_off_plays_the_same_bytes_as_stock(bins, tmp_path, strategy):  # noqa: F811
    runs = {}
    for name in ("stock", "patched"):
        s = H.run_session(
            bins[name], bins["stock"], tmp_path / name, bufstrategy=strategy, simloss=0.0, nextblock=False, seconds=5.0
        )
        assert "NextBlock" not in s.server_log
        runs[name] = _intact_blocks(s)
    (stock, n_stock, len_stock), (patched, _, _) = runs["stock"], runs["patched"]
    if n_stock < 0.5 * len_stock:
        resources.machine_lacks(
            f"this machine delivered only {n_stock} of {len_stock} blocks intact with stock "
            f"JackTrip (--bufstrategy {strategy}): too loaded to compare"
        )
    common = set(stock) & set(patched)
    assert len(common) >= 0.8 * min(len(stock), len(patched)) and len(common) > 300
    different = [c for c in common if stock[c] != patched[c]]
    assert not different, f"{len(different)} blocks differ between stock and patched (codes {different[:10]})"
    # (how many blocks arrive intact is not compared: on a loaded machine it varies from run to run
    # with the scheduling, e.g. 88 % and 100 % in two runs of the same binary setup)


def _lossy_run(binary: str, sender: str, work, label: str, seconds: float):
    import soundfile as sf

    from nextblock.jackio.e2e import run_e2e, stock_receiver
    from nextblock.jackio.recording import load_test_recording
    from nextblock.netlab.link import LinkSpec

    audio, _ = load_test_recording(seconds, split="test")
    receiver = stock_receiver("regulator", binary=binary)
    receiver.label = label
    r = run_e2e(audio, LinkSpec(loss="bernoulli:0.05", seed=3), receiver, work, sender_binary=sender, rt_priority=20)
    recorded, _ = sf.read(r["recorded_wav"], dtype="float32")
    # what makes a run unfit for a sample-exact comparison (a busy machine, not the binary): a player
    # or recorder xrun, an alignment that landed elsewhere (see the whole-file SNR)
    run = {
        "xruns": r["xruns"]["player"] + r["xruns"]["recorder"],
        "snr_db": round(r["metrics"]["snr_db"], 2),
        "glitches": r["jacktrip_receive"].get("glitches"),
    }
    return recorded, r["dropped_audio_blocks"], run, r["link"]["dropped_packets"]


def test_flag_off_conceals_losses_with_the_same_bytes_as_stock_on_the_regulator(bins, tmp_path):  # noqa: F811
    import os
    import shutil

    import numpy as np

    if os.geteuid() != 0 or shutil.which("chrt") is None:
        resources.machine_lacks(
            "needs root (and chrt) to run JackTrip with SCHED_FIFO: without it the Regulator's "
            "output depends on this machine's scheduling"
        )
    attempts = []
    conditioned = identical_given_history = 0
    plan = [SHORT_S] * MAX_ATTEMPTS + [LONG_S] * LONG_ATTEMPTS
    for attempt, seconds in enumerate(plan):
        if seconds == LONG_S and conditioned >= MIN_CONDITIONED:
            break  # enough from the short pairs
        stock, lost_s, run_s, dropped = _lossy_run(
            str(bins["stock"]), str(bins["stock"]), tmp_path / f"{attempt}", f"stock-{attempt}", seconds
        )
        patched, lost_p, run_p, _ = _lossy_run(
            str(bins["patched"]), str(bins["stock"]), tmp_path / f"{attempt}", f"patched-{attempt}", seconds
        )
        assert dropped >= 20
        n = min(len(stock), len(patched))
        common = sorted(set(lost_s) & set(lost_p))
        same_lost = sum(
            np.array_equal(stock[k * 128 : (k + 2) * 128], patched[k * 128 : (k + 2) * 128]) for k in common
        )
        # The Regulator's Burg concealment of a lost packet is a function of the two packets it
        # played before it (mPacketsInThePast = 2 at 128 frames: it trains on those 256 samples),
        # whatever happened elsewhere in the run. So wherever both runs lost the same audio block
        # after the same 256 played samples, both binaries must play the same concealment.
        given = [
            k
            for k in common
            if k >= 2
            and k * 128 + 128 <= n
            and np.any(stock[(k - 2) * 128 : k * 128] != 0)
            and np.array_equal(stock[(k - 2) * 128 : k * 128], patched[(k - 2) * 128 : k * 128])
        ]
        same_given = sum(
            np.array_equal(stock[k * 128 : (k + 1) * 128], patched[k * 128 : (k + 1) * 128]) for k in given
        )
        conditioned, identical_given_history = conditioned + len(given), identical_given_history + same_given
        attempts.append(
            {
                "seconds": seconds,
                "stock": run_s,
                "patched": run_p,
                "same_drops": lost_s == lost_p,
                "identical_lost": same_lost,
                "common_lost": len(common),
                "same_history": len(given),
                "identical_given_history": same_given,
                "identical_share": round(float(np.mean(stock[:n] == patched[:n])), 4),
            }
        )
        # a comparable pair: the relay's drops hit the same audio in both runs (a busy sending
        # JackTrip can skip periods), both recordings were aligned alike (equal whole-file SNR;
        # on a busy machine one alignment can land elsewhere) and JackTrip underran as often in both
        # (a CI run: 62 against 67 underruns for 62 common losses, 0.5 % of the samples equal; a
        # late packet is the machine's doing, not the binary's)
        print(f"pair {attempt} ({seconds:g} s)", attempts[-1], "conditioned so far", conditioned)
        comparable = (
            lost_s == lost_p and abs(run_s["snr_db"] - run_p["snr_db"]) < 0.5 and run_s["glitches"] == run_p["glitches"]
        )
        if comparable and np.array_equal(stock[:n], patched[:n]):
            return  # the same samples, xruns or not
        # a clean pair (no xrun either side) must be identical
        assert not (comparable and run_s["xruns"] == run_p["xruns"] == 0), (
            f"stock and patched (flag off) differ under the same losses: {attempts[-1]}"
        )
        if conditioned >= 2 * MIN_CONDITIONED:
            break
    # No identical pair (CI's class of machine gives 1-66 player or recorder xruns per 4-s run, and
    # a busy sending JackTrip moves the drops to other audio): the concealments after the same
    # history. A recorder or player xrun can still spoil a few of them; a binary that concealed
    # differently would change nearly all.
    if conditioned < MIN_CONDITIONED:
        resources.too_busy(
            f"only {conditioned} losses after the same history in both runs (at least {MIN_CONDITIONED} needed) "
            f"in {len(attempts)} pairs, short and long (this machine is too busy for a sample-exact "
            f"comparison, so 'byte for byte' went unchecked): {attempts}"
        )
    assert identical_given_history >= 0.9 * conditioned, (
        f"stock and patched (flag off) concealed {conditioned - identical_given_history} of {conditioned} losses "
        f"differently after the same history: {attempts}"
    )
