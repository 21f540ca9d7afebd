"""``package``: 48 kHz examples, train/validation by song, checksummed shards, resume.

Recordings are real: words from ``klettres-data`` and loops from ``sonic-pi-samples``
(allowed Debian packages, fetched into the shared cache by the tool's own code).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from nextblock.dataset.cache import cache_root
from nextblock.dataset.debian import DebianFetchError, apt_available, ensure_package
from nextblock.dataset.manifest import StemRow
from nextblock.dataset.package import (
    TRAINING_RATE_HZ,
    PackageSettings,
    decode_for_training,
    example_starts,
    package_dataset,
    split_songs,
)
from nextblock.dataset.shards import (
    FORMAT,
    ShardChecksumError,
    iter_examples,
    load_split,
    load_split_with_ids,
    read_manifest,
)


def _package(name: str) -> Path:
    if not apt_available():
        pytest.skip(f"apt-get/dpkg-deb not available: cannot fetch the real recordings ({name})")
    try:
        return ensure_package(cache_root(), name)
    except DebianFetchError as error:
        pytest.skip(f"cannot fetch {name} from the Debian mirror: {error}")


def stem(path: Path, song: str, label: str, **extra) -> StemRow:
    info = sf.info(path)
    return StemRow(
        stem_id=f"{song}/{path.name}",
        source_kind="test",
        source="test",
        song_id=song,
        path=str(path),
        relative_path=path.name,
        label=label,
        duration_s=info.duration,
        sample_rate_hz=info.samplerate,
        channels=info.channels,
        **extra,
    )


@pytest.fixture(scope="module")
def rows() -> list[StemRow]:
    """Six songs of two stems each (a vocal take and a loop), plus a stem too short for one example."""
    words = sorted((_package("klettres-data") / "usr/share/klettres/en_GB/syllab").glob("*.ogg"))
    samples = _package("sonic-pi-samples") / "usr/share/sonic-pi/samples"
    loops = ["loop_amen_full", "loop_compus", "drum_roll", "loop_perc1", "loop_breakbeat", "loop_industrial"]
    result = []
    for index, loop in enumerate(loops):
        song = f"Song {index}"
        result.append(stem(words[index], song, "vocals"))
        result.append(stem(samples / f"{loop}.flac", song, "drums"))
    result.append(stem(samples / "bd_haus.flac", "Song 0", "drums"))  # a single kick: < 1 example
    result.append(stem(samples / "loop_amen.flac", "Song 9", "drums", status="rejected", reason="mel profile ..."))
    return result


def test_shards_follow_the_format_and_split_by_song(tmp_path, rows):
    settings = PackageSettings(example_s=0.5, validation_fraction=0.34, examples_per_shard=8)
    result = package_dataset(rows, tmp_path / "ds", settings, show_progress=False)
    manifest = read_manifest(tmp_path / "ds")
    assert manifest["format"] == FORMAT == "nextblock-shards/1"
    assert manifest["sample_rate_hz"] == TRAINING_RATE_HZ == 48000
    assert manifest["example_samples"] == 24000

    # the rejected row is ignored, the short kick is skipped with a reason
    assert [s["stem_id"] for s in manifest["skipped"]] == ["Song 0/bd_haus.flac"]
    assert "shorter than one example" in manifest["skipped"][0]["reason"]
    assert "Song 9" not in {r["song_id"] for r in manifest["recordings"].values()}

    songs_in = {split: set() for split in ("train", "validation")}
    expected = {"train": 0, "validation": 0}
    for record in manifest["recordings"].values():
        songs_in[record["split"]].add(record["song_id"])
        expected[record["split"]] += int(record["duration_s"] * 48000) // 24000
    assert not songs_in["train"] & songs_in["validation"]  # never split a song
    assert len(songs_in["validation"]) == 2 and len(songs_in["train"]) == 4

    for split in ("train", "validation"):
        audio, ids = load_split_with_ids(tmp_path / "ds", split)
        assert audio.dtype == np.float32 and ids.dtype == np.int32
        assert audio.shape == (result.examples[split], 24000) and ids.shape == (audio.shape[0],)
        assert np.abs(audio).max() <= 1.0
        assert audio.shape[0] <= expected[split] and audio.shape[0] >= expected[split] - 4  # a few silent ones dropped
        assert {manifest["recordings"][str(i)]["split"] for i in ids} == {split}
        assert all(s["examples"] <= 8 for s in manifest["splits"][split])
        assert sum(1 for _ in iter_examples(tmp_path / "ds", split)) == audio.shape[0]

    # examples are the 48 kHz recording cut at whole-example boundaries
    train, ids = load_split_with_ids(tmp_path / "ds", "train")
    first_id = int(ids[0])
    source = decode_for_training(
        rows[[r.stem_id for r in rows].index(manifest["recordings"][str(first_id)]["stem_id"])].path
    )
    np.testing.assert_array_equal(train[0], source[:24000])


def test_resume_skips_finished_shards_and_checksums_catch_damage(tmp_path, rows):
    settings = PackageSettings(example_s=1.0, validation_fraction=0.2, examples_per_shard=4)
    first = package_dataset(rows, tmp_path / "ds", settings, show_progress=False)
    assert first.shards_written >= 3 and first.shards_reused == 0
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    shard_paths = [tmp_path / "ds" / s["path"] for s in manifest["splits"]["train"]]
    stamps = [p.stat().st_mtime_ns for p in shard_paths]

    again = package_dataset(rows, tmp_path / "ds", settings, show_progress=False)
    assert (again.shards_written, again.shards_reused) == (0, first.shards_written)
    assert [p.stat().st_mtime_ns for p in shard_paths] == stamps
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["splits"] == manifest["splits"]

    shard_paths[0].unlink()  # an interrupted run: one shard missing
    resumed = package_dataset(rows, tmp_path / "ds", settings, show_progress=False)
    assert (resumed.shards_written, resumed.shards_reused) == (1, first.shards_written - 1)

    damaged = bytearray(shard_paths[1].read_bytes())
    damaged[-100] ^= 0xFF
    shard_paths[1].write_bytes(bytes(damaged))
    with pytest.raises(ShardChecksumError):
        load_split(tmp_path / "ds", "train")
    repaired = package_dataset(rows, tmp_path / "ds", settings, show_progress=False)
    assert repaired.shards_written == 1
    assert load_split(tmp_path / "ds", "train").shape[1] == 48000


def test_active_regions_from_verify_decide_where_examples_come_from(tmp_path, rows):
    loop = next(r for r in rows if r.relative_path == "loop_compus.flac")
    only_middle = loop.replace(active_regions_s=[[2.0, 4.5]])
    package_dataset([only_middle], tmp_path / "ds", PackageSettings(validation_fraction=0.0), show_progress=False)
    audio = load_split(tmp_path / "ds", "train")
    source = decode_for_training(loop.path)
    assert audio.shape == (2, 48000)
    np.testing.assert_array_equal(audio[0], source[96000:144000])
    np.testing.assert_array_equal(audio[1], source[144000:192000])


@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=40, unique=True),
    st.floats(min_value=0.01, max_value=0.9),
)
@hypothesis_settings(max_examples=50, deadline=None)
def test_split_is_deterministic_and_never_empty(songs, fraction):
    split = split_songs(songs, fraction)
    assert split == split_songs(list(reversed(songs)), fraction)
    assert set(split) == set(songs)
    assert 1 <= sum(v == "validation" for v in split.values()) <= len(songs) - 1


@given(
    st.integers(0, 500_000),
    st.integers(100, 48_000),
    st.lists(st.tuples(st.floats(0, 10), st.floats(0, 3)), max_size=5),
)
@hypothesis_settings(max_examples=100, deadline=None)
def test_examples_fit_inside_regions_and_never_overlap(length, example, spans):
    regions = sorted([start, start + width] for start, width in spans)
    merged = []
    for start, end in regions:  # verify hands over disjoint regions
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    starts = example_starts(length, 48000, merged or None, example)
    assert np.all(np.diff(starts) >= example)
    assert np.all(starts >= 0) and np.all(starts + example <= length)
    for begin in starts:
        assert any(round(s * 48000) <= begin and begin + example <= round(e * 48000) for s, e in merged) or not merged
