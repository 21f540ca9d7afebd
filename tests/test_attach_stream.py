"""End-to-end against the JackTrip stand-in: a real recording, seeded losses, real time.

The live loop runs in this process; the stand-in (``nextblock.lab.emulator``) runs in a
subprocess, takes the replacement for every lost block exactly as patched JackTrip does and
records what it took. The tests rebuild, offline, the context the loop must have used for every
lost block (received blocks, with earlier concealed ones filled by what was played) and check that
the replacement taken for that seq is exactly the predictor's output for it.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

import helpers_attach as h
from nextblock.runtime import (
    HubConfig,
    HubLoop,
    ProducerGone,
    RepeatPredictor,
    SampleGuard,
)
from nextblock.runtime.discovery import NamedSegment


def serve_in_thread(segment: str, predictor, config: HubConfig | None = None, watcher=None):
    """Serve the segment with the live loop (``HubLoop``, as ``nextblock.attach --segment`` does) on a
    thread until the producer goes away. Returns (thread, loop, stop); ``loop.posted`` maps each seq
    to the replacements posted for it."""
    sys.setswitchinterval(0.0005)  # as python -m nextblock.attach does: other threads hand the GIL back fast
    stop = threading.Event()
    posted: dict[int, list[np.ndarray]] = {}

    def remember(seq: int, replacement: np.ndarray) -> None:
        posted.setdefault(seq, []).append(replacement.copy())

    # the causal predictions are what most tests here check: two-sided re-posts only where asked for
    loop = HubLoop(
        NamedSegment(segment),
        predictor,
        config or HubConfig(scan_interval_s=0.05, lookahead="off"),
        watcher=watcher,
        stop=stop,
        exit_when_gone=True,
        post_hook=remember,
    )
    loop.posted = posted
    errors: list[BaseException] = []

    def body():
        try:
            loop.run(max_wall_s=60)
        except ProducerGone:
            pass
        except BaseException as err:  # surfaced by the test
            errors.append(err)
        finally:
            loop.close()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    loop.errors = errors
    return thread, loop, stop


def finish(proc, thread, loop, timeout_s: float = 30.0) -> None:
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err
    thread.join(timeout_s)
    assert not thread.is_alive(), "the loop did not notice that the producer went away"
    assert not loop.errors, loop.errors


def test_posted_replacements_are_the_predictions_for_the_lost_seqs(tmp_path, segment_name):
    proc, ready, out = h.start_emulator(
        tmp_path, segment=segment_name, seconds=3.0, loss_rate=0.08, burst_max=3, seed=7
    )
    h.wait_ready(ready, proc)
    gain = 0.5  # a "model" whose every output is recognisable: half the newest block of its context
    thread, loop, stop = serve_in_thread(segment_name, RepeatPredictor(128, 48000, gain=gain, version="half"))
    finish(proc, thread, loop)
    result = dict(np.load(out))
    lost, outcome, taken = result["lost"], result["outcome"], result["taken"]
    blocks, known = h.played_source(result)
    replaced = np.flatnonzero(outcome == 1)
    assert lost.sum() >= 20 and len(replaced) >= 5, f"only {len(replaced)} of {lost.sum()} losses replaced"
    assert_taken_were_posted_for_that_seq(result, loop.posted)
    checked = matched = chained = 0
    for k in replaced:
        if not known[k - 1]:
            continue  # the block before fell back: JackTrip's concealment is not in the segment
        checked += 1
        if np.array_equal(taken[k, 0], gain * blocks[k - 1]):
            matched += 1
            chained += bool(lost[k - 1])
        np.testing.assert_array_equal(taken[k, 1], taken[k, 0])
    assert checked >= 5 and matched >= 0.8 * checked, f"{matched} of {checked} replacements continue the right context"
    assert chained >= 2, "bursts must be concealed by predictions chained on the previous guess"
    stats = loop.stats.to_dict()
    assert stats["blocks"] == (~lost).sum()
    assert stats["underruns"] == lost.sum() and stats["replacements_used"] == len(replaced)
    # blocks are due the period they arrive (no headroom): the stream is served speculatively, one
    # prediction per received block (+ chained ones)
    assert stats["modes"] == ["speculative"] and stats["posts"] >= stats["blocks"] - 5


def test_posted_replacements_are_the_model_predictions(tmp_path, segment_name):
    """Same check with the real LiteRT runner and a (small, random-weight) NextBlock model."""
    model_path = h.tiny_model(1)
    from nextblock.runtime import load_model_predictor

    predictor = load_model_predictor(model_path)
    reference = load_model_predictor(model_path)  # a second interpreter to recompute offline
    proc, ready, out = h.start_emulator(
        tmp_path, segment=segment_name, seconds=2.5, loss_rate=0.08, burst_max=2, seed=3
    )
    h.wait_ready(ready, proc)
    thread, loop, stop = serve_in_thread(segment_name, predictor)
    finish(proc, thread, loop)
    result = dict(np.load(out))
    blocks, known = h.played_source(result)
    replaced = np.flatnonzero(result["outcome"] == 1)
    assert len(replaced) >= 5, f"only {len(replaced)} of {result['lost'].sum()} losses replaced"
    assert_taken_were_posted_for_that_seq(result, loop.posted)
    ctx_len = reference.context_samples
    n_ctx_blocks = ctx_len // 128
    guard = SampleGuard()
    checked = matched = 0
    for k in replaced:
        if not known[max(0, k - n_ctx_blocks) : k].all():
            continue
        ctx = h.expected_context(blocks, k, ctx_len)
        expected = reference.predict(ctx).copy()
        assert guard.check(expected, ctx)
        checked += 1
        matched += np.allclose(result["taken"][k], expected.transpose(1, 2, 0), atol=2e-5)
    assert checked >= 5 and matched >= 0.8 * checked, f"{matched} of {checked} replacements are the model's prediction"


def test_a_loss_whose_next_block_arrived_in_time_is_refilled_from_both_sides_and_the_splice_is_an_identity(
    tmp_path, segment_name, monkeypatch
):
    """--lookahead auto with 4 blocks of headroom: the block after a loss arrives three periods
    before the loss plays, so its replacement is re-posted filled from both sides; the stand-in
    plays the packet after it exactly as it came (its second block is that packet)."""
    fill = h.twosided_fill(monkeypatch)
    proc, ready, out = h.start_emulator(
        tmp_path,
        segment=segment_name,
        seconds=3.0,
        loss_rate=0.06,
        burst_max=2,
        seed=5,
        extra=("--headroom-blocks", "4", "--jitter-us", "100"),
    )
    h.wait_ready(ready, proc)
    fills: list[tuple[int, int]] = []

    def recording_fill(past, future, gap_samples, prior=None, sample_rate_hz=48000, **options):
        # options: the fast fill (when the full one would be late) passes its order and weights
        fills.append((past.shape[1], gap_samples))
        return fill(past, future, gap_samples, prior, sample_rate_hz=sample_rate_hz, **options)

    monkeypatch.setattr(sys.modules["nextblock.features.twosided"], "fill_gap", recording_fill)
    thread, loop, stop = serve_in_thread(
        segment_name, RepeatPredictor(128, 48000, gain=0.5), HubConfig(scan_interval_s=0.05, lookahead="auto")
    )
    finish(proc, thread, loop)
    result = dict(np.load(out))
    assert_taken_were_posted_for_that_seq(result, loop.posted)
    outcome, taken, sent = result["outcome"], result["taken"], result["sent"].reshape(-1, 128, 2)
    played = result["played"].reshape(-1, 128, 2)
    stats = loop.stats.to_dict()
    (st,) = stats["streams"]
    used = stats["replacements_used"]
    assert used >= 10 and stats["lookahead"] == "auto" and st["lookahead"] == "auto"
    assert (
        stats["two_sided"]
        + stats["one_sided_no_later_block"]
        + stats["one_sided_burst_too_long"]
        + stats["one_sided_too_late"]
        == used
    ), "every replacement is two-sided or one-sided for a reason"
    # the share depends on the host: a fill (LSAR, ~0.5-1 ms cold per block here) that would end
    # after the pull is not started or not posted; 2026-12-07 on a busy 2-core host 0.19-0.44
    assert stats["two_sided"] >= max(5, 0.15 * used), str({k: v for k, v in st.items() if "sided" in k})
    assert stats["two_sided_share"] == stats["two_sided"] / stats["underruns"]
    assert fills, "the two-sided fills did not go through features.twosided.fill_gap"
    assert all(past >= 1024 and gap % 128 == 0 and 128 <= gap <= 4 * 128 for past, gap in fills)
    # the packet after a two-sided replacement: taken[k - 1][1] is that packet, and it played as it came
    after = [k for k in np.flatnonzero(outcome[:-1] == 1) + 1 if outcome[k] == 0]
    identical = [k for k in after if np.array_equal(taken[k - 1, 1], sent[k])]
    assert len(identical) >= 5, (len(identical), len(after))
    assert np.flatnonzero(result["identity_splice"]).tolist() == identical
    for k in identical:
        assert played[k].tobytes() == sent[k].tobytes(), f"block {k} after a two-sided replacement was changed"


def assert_taken_were_posted_for_that_seq(result: dict, posted: dict) -> None:
    """Every replacement JackTrip took for block k is bit-identical to one NextBlock posted for k.

    (A block can get two posts: one chained on a presumed loss when its predecessor was late, then
    one from the real predecessor once it arrived; which one JackTrip took depends on timing. The
    offline checks therefore require most, not all, to match the context of received blocks.)"""
    first_seq = int(result["seq"][0])
    for k in np.flatnonzero(result["outcome"] == 1):
        candidates = posted.get(first_seq + int(k), [])
        assert any(np.array_equal(result["taken"][k], c) for c in candidates), (
            f"block {k}: taken but never posted for it"
        )
