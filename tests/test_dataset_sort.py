"""``sort``: safe unpacking and one manifest row per stem, from real recordings.

Clips come from the allowed Debian packages ``klettres-data`` (speech) and
``sonic-pi-samples`` (instrument samples), fetched into the shared cache by the tool's own code.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

from nextblock.dataset.cache import cache_root
from nextblock.dataset.catalog import CatalogEntry
from nextblock.dataset.debian import DebianFetchError, apt_available, ensure_package
from nextblock.dataset.download import fetch_entries
from nextblock.dataset.manifest import read_manifest, write_manifest
from nextblock.dataset.sort_stems import probe_rows, sort_archives, sort_debian
from nextblock.dataset.unpack import CorruptArchiveError, UnpackLimits, UnsafeArchiveError, unpack_archive


def _package(name: str) -> Path:
    if not apt_available():
        pytest.skip(f"apt-get/dpkg-deb not available: cannot fetch the real recordings ({name})")
    try:
        return ensure_package(cache_root(), name)
    except DebianFetchError as error:
        pytest.skip(f"cannot fetch {name} from the Debian mirror: {error}")


@pytest.fixture(scope="module")
def clips() -> dict[str, Path]:
    speech = _package("klettres-data") / "usr/share/klettres/en_GB/syllab"
    samples = _package("sonic-pi-samples") / "usr/share/sonic-pi/samples"
    words = sorted(speech.glob("*.ogg"))
    return {
        "vox": words[0],
        "vox2": words[1],
        "kick": samples / "bd_haus.flac",
        "amen": samples / "loop_amen.flac",
        "bass": samples / "bass_hit_c.flac",
    }


def wav_bytes(clip: Path) -> bytes:
    audio, rate = sf.read(clip, dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def test_path_traversal_is_rejected_before_writing(tmp_path, clips):
    archive = make_zip(
        tmp_path / "evil.zip",
        {"Song/01_LeadVox.wav": wav_bytes(clips["vox"]), "../escaped.wav": wav_bytes(clips["vox2"])},
    )
    with pytest.raises(UnsafeArchiveError, match="traversal"):
        unpack_archive(archive, tmp_path / "out" / "evil")
    assert not (tmp_path / "out" / "escaped.wav").exists()
    assert not (tmp_path / "escaped.wav").exists()
    assert not (tmp_path / "out" / "evil").exists()


def test_absolute_paths_and_tar_links_are_rejected(tmp_path, clips):
    absolute = make_zip(tmp_path / "abs.zip", {"/etc/LeadVox.wav": wav_bytes(clips["vox"])})
    with pytest.raises(UnsafeArchiveError, match="absolute"):
        unpack_archive(absolute, tmp_path / "abs")
    linked = tmp_path / "link.tar.gz"
    with tarfile.open(linked, "w:gz") as bundle:
        data = wav_bytes(clips["vox"])
        info = tarfile.TarInfo("Song/Vox.wav")
        info.size = len(data)
        bundle.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("Song/passwd.wav")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        bundle.addfile(link)
    with pytest.raises(UnsafeArchiveError, match="link"):
        unpack_archive(linked, tmp_path / "link")


def test_zip_bomb_is_rejected_by_ratio_and_by_total_size(tmp_path, clips):
    bomb = make_zip(
        tmp_path / "bomb.zip", {"Song/Vox.wav": wav_bytes(clips["vox"]), "Song/pad.wav": bytes(20 * 1024 * 1024)}
    )
    with pytest.raises(UnsafeArchiveError, match="bomb"):
        unpack_archive(bomb, tmp_path / "bomb")
    honest = make_zip(tmp_path / "big.zip", {"Song/Vox.wav": wav_bytes(clips["vox"])})
    with pytest.raises(UnsafeArchiveError, match="bomb"):
        unpack_archive(honest, tmp_path / "big", UnpackLimits(max_total_bytes=1000))
    folder, fresh = unpack_archive(honest, tmp_path / "big")
    assert fresh and (folder / "Song" / "Vox.wav").read_bytes() == wav_bytes(clips["vox"])
    assert unpack_archive(honest, tmp_path / "big") == (folder, False)  # idempotent


def test_truncated_archive_is_reported_as_corrupt(tmp_path, clips):
    whole = make_zip(tmp_path / "whole.zip", {"Song/Vox.wav": wav_bytes(clips["vox"])}).read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptArchiveError):
        unpack_archive(truncated, tmp_path / "truncated")


def test_sort_lists_every_stem_and_goes_on_after_bad_input(tmp_path, clips):
    """Archives go through fetch (local files) then sort; bad archives/files don't stop the run."""
    sources = tmp_path / "sources"
    sources.mkdir()
    make_zip(
        sources / "Lament.zip",
        {
            "Lament/01_LeadVox.wav": wav_bytes(clips["vox"]),
            "Lament/Drums/Kick_In.wav": wav_bytes(clips["kick"]),
            "Lament/Bass_DI.wav": wav_bytes(clips["bass"]),
            "Lament/Notes.txt": b"not audio",
            "Lament/Broken_Gtr.wav": b"RIFF\x00\x00\x00\x00WAVEjunkjunk",
            "__MACOSX/Lament/._01_LeadVox.wav": b"resource fork",
        },
    )
    make_zip(sources / "Evil.zip", {"Evil/../../Vox.wav": wav_bytes(clips["vox2"])})
    (sources / "Cut.zip").write_bytes((sources / "Lament.zip").read_bytes()[:3000])
    with tarfile.open(sources / "Breaks.tar.gz", "w:gz") as bundle:
        bundle.add(clips["amen"], arcname="Breaks/Amen_Loop.flac")
    cache = tmp_path / "cache"
    entries = [
        CatalogEntry(title=name, artist="Band", genre=genre, url=str(sources / file))
        for name, genre, file in [
            ("Lament", "Folk", "Lament.zip"),
            ("Evil", "Rock", "Evil.zip"),
            ("Cut", "Rock", "Cut.zip"),
            ("Breaks", "Funk", "Breaks.tar.gz"),
        ]
    ]
    assert all(r.ok for r in fetch_entries(entries, cache, show_progress=False))

    rows, problems = sort_archives(cache, show_progress=False)
    rows = probe_rows(rows, show_progress=False)
    problem_text = {p.source.split("_", 1)[1]: p.reason for p in problems}
    assert set(problem_text) == {"Evil.zip", "Cut.zip"}
    assert "traversal" in problem_text["Evil.zip"]
    assert "truncated" in problem_text["Cut.zip"] or "corrupt" in problem_text["Cut.zip"]

    by_path = {row.relative_path: row for row in rows}
    assert set(by_path) == {
        "Lament/01_LeadVox.wav",
        "Lament/Drums/Kick_In.wav",
        "Lament/Bass_DI.wav",
        "Lament/Broken_Gtr.wav",
        "Breaks/Amen_Loop.flac",
    }
    assert {p: r.label for p, r in by_path.items()} == {
        "Lament/01_LeadVox.wav": "vocals",
        "Lament/Drums/Kick_In.wav": "drums",
        "Lament/Bass_DI.wav": "bass",
        "Lament/Broken_Gtr.wav": "guitars",
        "Breaks/Amen_Loop.flac": "drums",
    }
    lead = by_path["Lament/01_LeadVox.wav"]
    info = sf.info(clips["vox"])
    assert (lead.genre, lead.title, lead.song_id, lead.status) == ("Folk", "Lament", "Lament", "ok")
    assert lead.duration_s == pytest.approx(info.duration, abs=1e-3)
    assert (lead.sample_rate_hz, lead.channels) == (info.samplerate, info.channels)
    amen = by_path["Breaks/Amen_Loop.flac"]
    assert (amen.genre, amen.channels, amen.sample_rate_hz) == ("Funk", 2, 44100)
    broken = by_path["Lament/Broken_Gtr.wav"]
    assert broken.status == "rejected" and broken.reason.startswith("unreadable audio")

    manifest = write_manifest(rows, tmp_path / "stems.csv")
    assert read_manifest(manifest) == rows  # the CSV round-trips every field


def test_debian_packages_become_stems(clips):
    rows, problems = sort_debian(cache_root(), ["klettres-data", "sonic-pi-samples", "no-such-package"])
    assert [p.source for p in problems] == ["no-such-package"]
    speech = [r for r in rows if r.source == "klettres-data"]
    samples = {Path(r.relative_path).name: r for r in rows if r.source == "sonic-pi-samples"}
    assert len(speech) > 1000 and {r.label for r in speech} == {"vocals"} and {r.genre for r in speech} == {"speech"}
    assert all(r.song_id == r.stem_id for r in speech)  # a song is one source file
    assert samples["bd_haus.flac"].label == "drums"
    assert samples["bass_hit_c.flac"].label == "bass"
    assert not any(name.endswith((".md", ".txt")) for name in samples)
