"""A reproducible "changing stream" of real audio for tests and the adaptation benchmark.

Material comes only from the allowed Debian packages of ``DEVELOPERS.md``, unpacked in the cache
(``$NEXTBLOCK_CACHE/debian/extracted/<package>/``, default cache ``~/.cache/nextblock``):

* ``speech``  – ``klettres-data``: spoken syllables in many languages (concatenated);
* ``guitar``  – ``sonic-pi-samples``: the ``guit_*`` recordings (sustained, tonal);
* ``drums``   – ``sonic-pi-samples``: the ``loop_*`` drum loops (percussive).

Each kind has a *stream* set (played to the learner) and a disjoint *test* set (never streamed),
so "the learner got better at guitar" can be checked on guitar it never heard.

Fetch what is missing (about 76 MB unpacked)::

    cd $NEXTBLOCK_CACHE/debian/debs && apt-get download klettres-data sonic-pi-samples
    for p in klettres-data sonic-pi-samples; do dpkg-deb -x $p_*.deb ../extracted/$p; done
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from nextblock.paths import cache_root

_SONIC = "sonic-pi-samples/usr/share/sonic-pi/samples/"
#: kind → (stream files, test files); globs relative to ``<cache>/debian/extracted``.
MATERIAL: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "speech": (
        ("klettres-data/usr/share/klettres/[a-m]*/syllab/*.ogg",),
        ("klettres-data/usr/share/klettres/[n-z]*/syllab/*.ogg",),
    ),
    "guitar": (
        (_SONIC + "guit_em9.flac", _SONIC + "guit_e_fifths.flac"),
        (_SONIC + "guit_e_slide.flac", _SONIC + "guit_harmonics.flac"),
    ),
    "drums": (
        (_SONIC + "loop_amen_full.flac", _SONIC + "loop_compus.flac", _SONIC + "loop_safari.flac"),
        (_SONIC + "loop_tabla.flac", _SONIC + "loop_garzul.flac"),
    ),
}
#: packages :data:`MATERIAL` needs.
PACKAGES = ("klettres-data", "sonic-pi-samples")


class MaterialMissing(FileNotFoundError):
    """The cache lacks the recordings of a kind (the message says how to fetch them)."""


def extracted_dir() -> Path:
    """``$NEXTBLOCK_CACHE/debian/extracted`` (default cache ``~/.cache/nextblock``)."""
    return cache_root() / "debian" / "extracted"


def material_files(kind: str, part: str = "stream") -> list[Path]:
    """Sorted files of ``kind`` (``speech``/``guitar``/``drums``), ``part`` ``"stream"`` or ``"test"``.

    Raises :class:`MaterialMissing` when none is in the cache.
    """
    if kind not in MATERIAL:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(MATERIAL)}")
    patterns = MATERIAL[kind][0 if part == "stream" else 1]
    files = sorted({Path(p) for pattern in patterns for p in glob.glob(str(extracted_dir() / pattern))})
    if not files:
        raise MaterialMissing(
            f"no {kind} recordings in {extracted_dir()} (need Debian packages {', '.join(PACKAGES)}: "
            "apt-get download + dpkg-deb -x into that folder, see nextblock.learning.scenario)"
        )
    return files


def load_kind(
    kind: str, seconds: float, sample_rate_hz: int, part: str = "stream", seed: int = 0, peak: float = 0.5
) -> np.ndarray:
    """``seconds`` of ``kind`` as one mono signal ``(n,)`` float32, files concatenated (shuffled with
    ``seed``, looped if needed), each file peak-normalised to ``peak``."""
    from ..evaluation.audio import load_audio

    files = material_files(kind, part)
    order = np.random.default_rng(seed).permutation(len(files))
    wanted = int(seconds * sample_rate_hz)
    parts, have, i = [], 0, 0
    while have < wanted:
        audio = load_audio(files[order[i % len(files)]], sample_rate_hz)[0]
        audio = audio / max(1e-6, float(np.max(np.abs(audio)))) * peak
        parts.append(audio)
        have += audio.shape[0]
        i += 1
        if i > 10 * len(files) and have == 0:
            raise MaterialMissing(f"the {kind} recordings are empty")
    return np.concatenate(parts)[:wanted].astype(np.float32)


def changing_stream(
    segments: list[tuple[str, float]], sample_rate_hz: int, seed: int = 0
) -> tuple[np.ndarray, list[dict]]:
    """A mono stream whose character changes: ``[("speech", 10), ("guitar", 30)]`` → 40 s.

    Returns ``(audio (1, n) float32, [{"kind", "start_s", "end_s"}, ...])``.
    """
    parts, spans, start = [], [], 0.0
    for kind, seconds in segments:
        parts.append(load_kind(kind, seconds, sample_rate_hz, "stream", seed))
        spans.append({"kind": kind, "start_s": start, "end_s": start + seconds})
        start += seconds
    return np.concatenate(parts)[None, :], spans
