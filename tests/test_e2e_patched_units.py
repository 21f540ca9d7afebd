"""Fast checks of the patched e2e path's helpers (no JACK, no JackTrip run)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from nextblock.commands import build_jacktrip
from nextblock.jackio import patched_build as pb
from nextblock.jackio.align import locate_dropped_blocks


def _heads(audio, blocks, period=128):
    return [[int(v) for v in np.round(audio[b * period : b * period + 16] * 32767.0)] for b in blocks]


def test_locate_dropped_blocks_follows_a_drifting_sender():
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(48000)).astype(np.float32)
    indices = [10, 50, 120, 200, 300]
    true = [10, 51, 122, 205, 305]  # the sender skipped periods: later packets carry later audio
    blocks, matched = locate_dropped_blocks(audio, indices, _heads(audio, true))
    assert blocks == true and matched == len(true)


def test_locate_dropped_blocks_keeps_the_offset_for_silence_and_missing_heads():
    rng = np.random.default_rng(1)
    audio = (0.3 * rng.standard_normal(48000)).astype(np.float32)
    heads = _heads(audio, [22]) + [[0] * 16, None]
    blocks, matched = locate_dropped_blocks(audio, [20, 40, 60], heads)
    assert blocks == [22, 42, 62] and matched == 1


def test_env_override_wins_and_a_bad_one_is_reported(tmp_path, monkeypatch):
    fake = tmp_path / "jacktrip"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("NEXTBLOCK_JACKTRIP", str(fake))
    path, msg = pb.find_patched_jacktrip()
    assert path == str(fake) and "NEXTBLOCK_JACKTRIP" in msg
    monkeypatch.setenv("NEXTBLOCK_JACKTRIP", str(tmp_path / "missing"))
    path, msg = pb.find_patched_jacktrip()
    assert path is None and "not an executable" in msg


def test_no_source_no_build_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("NEXTBLOCK_JACKTRIP", raising=False)
    monkeypatch.delenv("NEXTBLOCK_JACKTRIP_PATCHED", raising=False)
    monkeypatch.delenv("JACKTRIP_SOURCE_DIR", raising=False)
    monkeypatch.setenv("NEXTBLOCK_CACHE", str(tmp_path))
    monkeypatch.setattr(pb, "REPO", tmp_path)  # no build/jacktrip either
    path, msg = pb.ensure_patched_jacktrip(build=True)
    assert path is None
    assert "JACKTRIP_SOURCE_DIR" in msg and str(tmp_path / "jacktrip" / "jacktrip-2.7.2") in msg
    stock, note = pb.find_stock_jacktrip(None)
    assert stock == "jacktrip" and "1.7.0" in note
    assert build_jacktrip.main(["--check"]) == 0 and build_jacktrip.main(["--check", "--strict"]) == 2


def test_cache_build_is_found_when_its_key_matches(tmp_path, monkeypatch):
    monkeypatch.delenv("NEXTBLOCK_JACKTRIP", raising=False)
    monkeypatch.delenv("NEXTBLOCK_JACKTRIP_PATCHED", raising=False)
    monkeypatch.delenv("JACKTRIP_SOURCE_DIR", raising=False)
    monkeypatch.setenv("NEXTBLOCK_CACHE", str(tmp_path))
    src = tmp_path / "jacktrip" / "jacktrip-2.7.2"
    (src / "src").mkdir(parents=True)
    (src / "src" / "Regulator.cpp").write_text("// stand-in\n")
    (src / "meson.build").write_text("project('x')\n")
    out = pb.build_dir()
    (out / "bin").mkdir(parents=True)
    for name in ("jacktrip", "jacktrip-stock"):
        (out / "bin" / name).write_text("#!/bin/sh\n")
        os.chmod(out / "bin" / name, 0o755)
    real_key = pb.build_key(src)  # hashes the stand-in source + our real patch files
    monkeypatch.setattr(pb, "build_key", lambda source: real_key)
    monkeypatch.setattr(pb, "REPO", tmp_path)  # no build/jacktrip fallback
    (out / "nextblock-build.key").write_text("stale")
    path, msg = pb.find_patched_jacktrip()
    assert path is None and "built yet" in msg and "patched_build" in msg
    (out / "nextblock-build.key").write_text(real_key)
    path, msg = pb.find_patched_jacktrip()
    assert path == str(out / "bin" / "jacktrip") and "build cache" in msg
    assert pb.find_stock_jacktrip(path)[0] == str(out / "bin" / "jacktrip-stock")


def test_segment_tap_counts_the_regulators_skip_glitches_as_concealments():
    from nextblock.jackio.segment_tap import SegmentTap

    tap = SegmentTap(pid=0)
    tap.events = [
        {"kind": "SKIP", "seq": 10, "outcome": "REPLACEMENT", "detail": 1},  # Regulator: newer packet queued
        {"kind": "UNDERRUN", "seq": 20, "outcome": "FALLBACK", "detail": 0},  # nothing posted: Burg played
        {"kind": "UNDERRUN", "seq": 21, "outcome": "REPLACEMENT", "detail": 0},
        {"kind": "LATE", "seq": 21, "outcome": "NONE", "detail": 0},  # not a concealment
        {"kind": "OVERFLOW", "seq": 30, "outcome": "NONE", "detail": 4},
        {"kind": "SKIP", "seq": 40, "outcome": "REPLACEMENT", "detail": 3},  # one block for 40, 41, 42
    ]
    s = tap.summary()
    assert s["concealments"] == 4 and s["replacements_used"] == 3
    assert s["concealed_seqs"] == [10, 20, 21, 40] and s["replaced_seqs"] == [10, 21, 40]
    assert s["skipped_over_seqs"] == [41, 42]
    assert s["underrun_seqs"] == [20, 21]
    assert s["counts"] == {
        "SKIP/REPLACEMENT": 2,
        "UNDERRUN/FALLBACK": 1,
        "UNDERRUN/REPLACEMENT": 1,
        "LATE": 1,
        "OVERFLOW": 1,
    }


def test_the_player_plays_with_the_collector_off_and_restores_it_after():
    """The player's JACK callback is Python in the harness process: a full collection there held the
    GIL for 76 ms mid-run (29 missed cycles of the sending server). Playing switches it off."""
    import gc

    from nextblock.runtime.collector import collections_off

    assert gc.isenabled()
    kept = [[i] for i in range(1000)]
    with collections_off():
        assert not gc.isenabled()
        assert gc.get_freeze_count() >= len(kept), "what existed before playing is frozen"
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), collections_off():
        raise RuntimeError("playback failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0, "restored after a failure too"
