"""Third source kind: render ``music21`` corpus scores through a General MIDI soundfont.

The scores (Bach chorales, Palestrina, folk tunes – DEVELOPERS.md's "rendered scores") are
read with ``music21`` (pip), their notes turned into timed MIDI events, and synthesised
with ``tinysoundfont`` (pip) using the ``fluid-soundfont-gm`` soundfont from Debian
(fetched like every Debian source, :mod:`nextblock.dataset.debian`). Renders are written
as 48 kHz FLAC to ``<cache>/rendered/music21/<program>/<piece>.flac`` and skipped when
present (idempotent). ``sort`` lists them as stems of kind ``rendered`` (label ``mix``,
one song per piece).

Timing: a note's start and length come from its quarter-length offset at a fixed
``tempo_bpm`` (quarter notes per minute); metronome marks are ignored. Ties are merged
(``stripTies``); chords sound every pitch.

Optional dependencies: ``pip install music21`` and ``pip install --no-deps tinysoundfont``
(its ``pyaudio`` dependency is only for live playback and is not needed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .debian import DebianFetchError, ensure_package

RENDER_RATE_HZ = 48000
"""Sample rate of the renders."""

SOUNDFONT_PACKAGE = "fluid-soundfont-gm"
"""Debian package that provides the General MIDI soundfont (FluidR3_GM.sf2)."""

DEFAULT_PIECES = (
    "bach/bwv66.6",
    "bach/bwv269",
    "bach/bwv153.1",
    "bach/bwv84.5",
    "palestrina/Agnus_01",
    "essenFolksong/altdeu10#1",
    "essenFolksong/altdeu10#2",
)
"""A handful of pieces: four Bach chorales, a Palestrina Agnus Dei, two German folk tunes.
``name#N`` picks tune N of a multi-tune corpus file."""

GM_PROGRAMS = {"choir": 52, "strings": 48, "organ": 19, "piano": 0, "flute": 73, "brass": 61}
"""General MIDI programs (0-based) by name."""

_TAIL_S = 1.5  # let the last notes ring


class RenderError(Exception):
    """A piece cannot be rendered (unknown, unreadable, no notes)."""


class RenderSetupError(RenderError):
    """Nothing can be rendered: music21/tinysoundfont missing or the soundfont unavailable."""


@dataclass(frozen=True)
class NoteEvent:
    """One note: start/end in seconds, MIDI channel (part index) and key."""

    start_s: float
    end_s: float
    channel: int
    key: int


def rendered_dir(cache: Path) -> Path:
    """Folder of renders (``<cache>/rendered/music21``)."""
    return cache / "rendered" / "music21"


def find_soundfont(cache: Path) -> Path:
    """Fetch ``fluid-soundfont-gm`` into the cache if needed and return its ``.sf2`` file."""
    try:
        folder = ensure_package(cache, SOUNDFONT_PACKAGE)
    except DebianFetchError as error:
        raise RenderSetupError(f"cannot fetch the soundfont: {error}") from None
    fonts = sorted(folder.rglob("*.sf2"), key=lambda p: p.stat().st_size, reverse=True)
    if not fonts:
        raise RenderSetupError(f"no .sf2 file in {folder}")
    return fonts[0]


def load_score(piece: str):
    """Parse a corpus piece (``"bach/bwv66.6"`` or ``"essenFolksong/altdeu10#1"``)."""
    try:
        from music21 import corpus
    except ImportError:
        raise RenderSetupError("music21 is not installed (pip install music21)") from None
    name, _, number = piece.partition("#")
    try:
        return corpus.parse(name, number=int(number)) if number else corpus.parse(name)
    except Exception as error:  # music21 raises many kinds for unknown/odd files
        raise RenderError(f"cannot read {piece!r} from the music21 corpus: {error}") from None


def score_events(score, tempo_bpm: float) -> list[NoteEvent]:
    """Timed notes of every part (channel = part index, at most 15 parts; channel 9 skipped).

    Returns
    -------
    Events sorted by start time.
    """
    seconds_per_quarter = 60.0 / tempo_bpm
    parts = list(score.parts) or [score]
    channels = [c for c in range(16) if c != 9]
    events = []
    for part, channel in zip(parts, channels, strict=False):  # 15 melodic channels: parts beyond them are not rendered
        for element in part.stripTies().flatten().notes:
            start_s = float(element.offset) * seconds_per_quarter
            end_s = start_s + float(element.quarterLength) * seconds_per_quarter
            for pitch in element.pitches:
                if 0 <= pitch.midi <= 127 and end_s > start_s:
                    events.append(NoteEvent(start_s, end_s, channel, int(pitch.midi)))
    return sorted(events, key=lambda e: (e.start_s, e.channel, e.key))


def synthesise(
    events: list[NoteEvent], soundfont: Path, program: int, rate_hz: int = RENDER_RATE_HZ, gain_db: float = -6.0
) -> np.ndarray:
    """Render note events with tinysoundfont. Returns float32 ``[samples, 2]`` in [-1, 1]."""
    try:
        import tinysoundfont
    except ImportError:
        raise RenderSetupError("tinysoundfont is not installed (pip install --no-deps tinysoundfont)") from None
    synth = tinysoundfont.Synth(gain=gain_db, samplerate=rate_hz)
    font = synth.sfload(str(soundfont))
    for channel in sorted({e.channel for e in events}):
        synth.program_select(channel, font, 0, program)
    changes = sorted(
        [(e.start_s, 1, e) for e in events] + [(e.end_s, 0, e) for e in events], key=lambda c: (c[0], c[1])
    )
    blocks = []
    now_samples = 0
    for time_s, is_on, event in changes:
        target = int(round(time_s * rate_hz))
        if target > now_samples:
            blocks.append(np.frombuffer(synth.generate(target - now_samples), dtype=np.float32).reshape(-1, 2))
            now_samples = target
        if is_on:
            synth.noteon(event.channel, event.key, 90)
        else:
            synth.noteoff(event.channel, event.key)
    blocks.append(np.frombuffer(synth.generate(int(_TAIL_S * rate_hz)), dtype=np.float32).reshape(-1, 2))
    return np.clip(np.concatenate(blocks), -1.0, 1.0)


def piece_file_name(piece: str) -> str:
    """File name of a render: the piece id with unsafe characters replaced (``bach_bwv66.6.flac``)."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", piece) + ".flac"


@dataclass(frozen=True)
class RenderResult:
    """Outcome for one piece: ``status`` is ``"rendered"``, ``"cached"`` or ``"failed"``."""

    piece: str
    status: str
    path: Path | None
    message: str = ""


def corpus_sample(bach: int = 48, palestrina: int = 24, seed: int = 0) -> list[tuple[str, str]]:
    """A seeded random choice of music21 corpus pieces, each with a GM program (round robin).

    Returns ``[(piece, program), ...]``: ``bach`` chorales (``.mxl``) then ``palestrina`` masses,
    piece ``j`` rendered with ``list(GM_PROGRAMS)[(j + 1) % 6]`` – the training corpus of the
    shipped model (``scripts/train_default_model.sh``).
    """
    import random

    import music21.corpus

    def names(composer: str, suffix: str = "") -> list[str]:
        paths = sorted(str(p) for p in music21.corpus.getComposer(composer) if str(p).endswith(suffix))
        return [p.split("/corpus/")[1].rsplit(".", 1)[0] for p in paths]

    rng = random.Random(seed)
    pieces = rng.sample(names("bach", ".mxl"), bach) + rng.sample(names("palestrina"), palestrina)
    programs = list(GM_PROGRAMS)
    return [(piece, programs[(j + 1) % len(programs)]) for j, piece in enumerate(pieces)]


def render_pieces(
    cache: Path,
    pieces: tuple[str, ...] | list[str] = DEFAULT_PIECES,
    program: str = "choir",
    tempo_bpm: float = 80.0,
    show_progress: bool = True,
    soundfont: Path | None = None,
) -> list[RenderResult]:
    """Render pieces to ``<cache>/rendered/music21/<program>/``; existing renders are kept.

    ``soundfont`` defaults to :func:`find_soundfont` of the same cache.

    Raises
    ------
    RenderSetupError
        Missing optional dependencies or soundfont (nothing can be rendered at all);
        per-piece problems are returned as ``failed`` results instead.
    """
    if program not in GM_PROGRAMS:
        raise RenderError(f"unknown program {program!r}; choose from {', '.join(GM_PROGRAMS)}")
    folder = rendered_dir(cache) / program
    folder.mkdir(parents=True, exist_ok=True)
    soundfont = None
    results = []
    for piece in tqdm(list(pieces), desc="render", unit="piece", disable=not show_progress):
        target = folder / piece_file_name(piece)
        if target.is_file():
            results.append(RenderResult(piece, "cached", target))
            continue
        try:
            events = score_events(load_score(piece), tempo_bpm)
            if not events:
                raise RenderError(f"{piece!r} has no notes")
            if soundfont is None:
                soundfont = find_soundfont(cache)
            audio = synthesise(events, soundfont, GM_PROGRAMS[program])
        except RenderSetupError:
            raise
        except RenderError as error:
            results.append(RenderResult(piece, "failed", None, str(error)))
            continue
        tmp = target.with_name(".tmp-" + target.name)
        sf.write(tmp, audio, RENDER_RATE_HZ, format="FLAC", subtype="PCM_24")
        tmp.replace(target)
        results.append(RenderResult(piece, "rendered", target))
    return results
