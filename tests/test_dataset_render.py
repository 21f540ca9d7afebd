"""Optional third source kind: music21 scores rendered through the fluid-soundfont-gm soundfont."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("music21", reason="music21 not installed (optional: pip install music21)")
pytest.importorskip(
    "tinysoundfont", reason="tinysoundfont not installed (optional: pip install --no-deps tinysoundfont)"
)

from nextblock.dataset.cache import cache_root  # noqa: E402
from nextblock.dataset.debian import apt_available  # noqa: E402
from nextblock.dataset.render import (  # noqa: E402
    GM_PROGRAMS,
    RENDER_RATE_HZ,
    NoteEvent,
    RenderSetupError,
    corpus_sample,
    find_soundfont,
    load_score,
    render_pieces,
    score_events,
    synthesise,
)
from nextblock.dataset.sort_stems import probe_rows, sort_rendered  # noqa: E402


@pytest.fixture(scope="module")
def soundfont():
    if not apt_available():
        pytest.skip("apt-get/dpkg-deb not available: cannot fetch fluid-soundfont-gm")
    try:
        return find_soundfont(cache_root())
    except RenderSetupError as error:
        pytest.skip(f"fluid-soundfont-gm unavailable: {error}")


def test_chorale_events_follow_the_score():
    score = load_score("bach/bwv66.6")
    events = score_events(score, tempo_bpm=120.0)
    assert {e.channel for e in events} == {0, 1, 2, 3}  # SATB
    assert all(a.start_s <= b.start_s for a, b in pairwise(events))
    assert max(e.end_s for e in events) == pytest.approx(float(score.highestTime) * 0.5)
    soprano = [e.key for e in events if e.channel == 0]
    assert soprano[0] == score.parts[0].stripTies().flatten().notes[0].pitch.midi


def test_one_note_sounds_at_its_pitch(soundfont):
    audio = synthesise([NoteEvent(0.0, 1.0, 0, 69)], soundfont, GM_PROGRAMS["flute"])
    assert audio.shape[1] == 2 and audio.shape[0] == pytest.approx(2.5 * RENDER_RATE_HZ, abs=2)
    mono = audio[:RENDER_RATE_HZ, 0]
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    peak_hz = np.argmax(spectrum) * RENDER_RATE_HZ / mono.size
    assert peak_hz == pytest.approx(440.0, abs=3.0)
    assert np.abs(audio[int(2.4 * RENDER_RATE_HZ) :]).max() < np.abs(mono).max() / 10  # released


def test_render_is_idempotent_and_sorted_as_mix(tmp_path, soundfont):
    first = render_pieces(
        tmp_path, ["bach/bwv66.6", "bach/no-such-chorale"], tempo_bpm=240.0, show_progress=False, soundfont=soundfont
    )
    assert [r.status for r in first] == ["rendered", "failed"]
    info = sf.info(first[0].path)
    assert info.samplerate == 48000 and 5 < info.duration < 20
    again = render_pieces(tmp_path, ["bach/bwv66.6"], tempo_bpm=240.0, show_progress=False, soundfont=soundfont)
    assert again[0].status == "cached"
    (row,) = probe_rows(sort_rendered(tmp_path), show_progress=False)
    assert (row.label, row.genre, row.source_kind, row.sample_rate_hz) == ("mix", "rendered", "rendered", 48000)
    assert row.duration_s == pytest.approx(info.duration)


def test_corpus_sample_is_seeded_balanced_and_loadable():
    sample = corpus_sample(bach=12, palestrina=6, seed=3)
    assert sample == corpus_sample(bach=12, palestrina=6, seed=3)
    assert sample != corpus_sample(bach=12, palestrina=6, seed=4)
    assert [p for p, _ in sample[:12]] == [p for p, _ in sample[:12] if p.startswith("bach/")]
    assert all(p.startswith("palestrina/") for p, _ in sample[12:])
    counts = {program: sum(prog == program for _, prog in sample) for program in GM_PROGRAMS}
    assert set(counts.values()) == {3}, counts  # round robin over the six programs
    assert score_events(load_score(sample[0][0]), tempo_bpm=80.0), "a sampled piece loads and has notes"
