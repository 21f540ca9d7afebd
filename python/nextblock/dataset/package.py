"""``package``: turn verified stems into training shards (``nextblock-shards/1``).

Steps
-----
1. **Select** usable rows (status ``ok``/``kept``) of a stem manifest.
2. **Split by song** (:func:`split_songs`): every stem of a song (a multitrack
   session, or one Debian file) lands in the same split, never divided.
3. **Plan**: each recording yields ``floor(region / example)`` consecutive,
   non-overlapping examples per active region (``active_regions_s`` from
   ``verify``; the whole file when unverified). Recordings with no whole example
   are skipped with a reason. Examples are grouped into shards of about
   ``examples_per_shard``.
4. **Cut**: decode (soundfile), mix to mono, resample to 48 kHz
   (:func:`librosa.resample`, soxr), clip to [-1, 1], cut, drop examples whose
   RMS is below ``min_example_dbfs``, write each shard atomically.
5. **Manifest**: ``manifest.json`` with checksums (:mod:`nextblock.dataset.shards`).

Resume: every finished shard has a ``shard-NNNNN.json`` record of the plan it
was cut from and its checksum; a rerun with the same plan skips it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from tqdm import tqdm

from .manifest import USABLE_STATUSES, StemRow
from .shards import FORMAT, MANIFEST_FILE_NAME, SPLITS, load_shard, write_shard

TRAINING_RATE_HZ = 48000
"""Sample rate of every packaged example."""


@dataclass(frozen=True)
class PackageSettings:
    """Options of :func:`package_dataset` (CLI flags of the same names).

    Attributes
    ----------
    example_s:
        Example length in seconds (``example_samples = round(example_s * 48000)``).
    validation_fraction:
        Fraction of songs in the validation split.
    examples_per_shard:
        Target examples per shard (256 × 1 s ≈ 49 MB).
    min_example_dbfs:
        Examples whose RMS is below this are dropped (digital/near silence).
    """

    example_s: float = 1.0
    validation_fraction: float = 0.1
    examples_per_shard: int = 256
    min_example_dbfs: float = -60.0

    @property
    def example_samples(self) -> int:
        """Samples per example at 48 kHz."""
        return int(round(self.example_s * TRAINING_RATE_HZ))


@dataclass
class PackageResult:
    """What :func:`package_dataset` did.

    Attributes
    ----------
    manifest_path:
        The written ``manifest.json``.
    examples:
        ``{split: examples written}``.
    shards_written, shards_reused:
        Shards cut in this run / kept from an earlier run (resume).
    skipped:
        ``[(stem_id, reason)]`` recordings that produced nothing.
    input_audio_s:
        Duration of the recordings decoded in this run.
    wall_s:
        Wall-clock time of this run.
    """

    manifest_path: Path
    examples: dict[str, int]
    shards_written: int
    shards_reused: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    input_audio_s: float = 0.0
    wall_s: float = 0.0


def split_songs(song_ids: list[str], validation_fraction: float) -> dict[str, str]:
    """Assign each song to ``train`` or ``validation``, deterministically.

    Songs are ordered by the SHA-1 of their id and the first
    ``round(fraction * songs)`` go to validation (at least one when there are
    two or more songs and the fraction is positive), so the split does not
    depend on manifest order or on a random seed.

    Returns
    -------
    ``{song_id: split}``.
    """
    unique = sorted(set(song_ids), key=lambda song: hashlib.sha1(song.encode("utf-8")).hexdigest())
    count = int(round(validation_fraction * len(unique)))
    if validation_fraction > 0 and len(unique) >= 2:
        count = min(max(count, 1), len(unique) - 1)
    return {song: ("validation" if position < count else "train") for position, song in enumerate(unique)}


def example_starts(length_samples: int, rate_hz: int, regions_s: list | None, example_samples: int) -> np.ndarray:
    """Start samples of the examples cut from a recording.

    Parameters
    ----------
    length_samples:
        Recording length at ``rate_hz``.
    rate_hz:
        Rate the start samples refer to.
    regions_s:
        ``[[start_s, end_s], ...]`` active regions, or ``None`` for the whole
        recording.
    example_samples:
        Example length in samples at ``rate_hz``.

    Returns
    -------
    int64 ``[examples]`` start samples, increasing, examples non-overlapping.
    """
    spans = (
        [(0, length_samples)]
        if regions_s is None
        else [
            (max(0, int(round(start * rate_hz))), min(length_samples, int(round(end * rate_hz))))
            for start, end in regions_s
        ]
    )
    starts = [
        np.arange(begin, end - example_samples + 1, example_samples)
        for begin, end in spans
        if end - begin >= example_samples
    ]
    return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class _Piece:
    recording_id: int
    first: int
    stop: int


def _plan_shards(counts: list[tuple[int, int]], per_shard: int) -> list[list[_Piece]]:
    """Group ``(recording_id, examples)`` into shards of at most ``per_shard`` examples."""
    shards: list[list[_Piece]] = []
    current: list[_Piece] = []
    filled = 0
    for recording_id, examples in counts:
        first = 0
        while first < examples:
            take = min(examples - first, per_shard - filled)
            current.append(_Piece(recording_id, first, first + take))
            filled += take
            first += take
            if filled == per_shard:
                shards.append(current)
                current, filled = [], 0
    if current:
        shards.append(current)
    return shards


def decode_for_training(path: str | Path) -> np.ndarray:
    """Decode a file to mono float32 ``[samples]`` at 48 kHz, clipped to [-1, 1]."""
    audio, rate_hz = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate_hz != TRAINING_RATE_HZ:
        mono = librosa.resample(mono, orig_sr=rate_hz, target_sr=TRAINING_RATE_HZ, res_type="soxr_hq")
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def _cut(audio: np.ndarray, regions_s: list | None, example_samples: int) -> np.ndarray:
    starts = example_starts(audio.size, TRAINING_RATE_HZ, regions_s, example_samples)
    if starts.size == 0:
        return np.zeros((0, example_samples), dtype=np.float32)
    return audio[starts[:, None] + np.arange(example_samples)[None, :]]


def _recording_record(row: StemRow, split: str) -> dict:
    return {
        "stem_id": row.stem_id,
        "song_id": row.song_id,
        "source_kind": row.source_kind,
        "source": row.source,
        "relative_path": row.relative_path,
        "label": row.label,
        "genre": row.genre,
        "title": row.title,
        "artist": row.artist,
        "split": split,
        "native_sample_rate_hz": row.sample_rate_hz,
        "duration_s": row.duration_s,
    }


def package_dataset(
    rows: list[StemRow], out_dir: str | Path, settings: PackageSettings = PackageSettings(), show_progress: bool = True
) -> PackageResult:
    """Package usable rows into ``out_dir`` (see module docstring). Resumable.

    Parameters
    ----------
    rows:
        Stem manifest rows (``sort`` or ``verify`` output); rows not ``ok``/``kept`` are ignored.
    out_dir:
        Dataset folder (created).
    settings:
        Example length, split fraction, shard size, silence floor.
    show_progress:
        Draw a tqdm bar over planned examples.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    example_samples = settings.example_samples
    usable = [row for row in rows if row.status in USABLE_STATUSES]
    split_of_song = split_songs([row.song_id for row in usable], settings.validation_fraction)
    ordered = sorted(usable, key=lambda row: (SPLITS.index(split_of_song[row.song_id]), row.song_id, row.stem_id))

    skipped: list[tuple[str, str]] = []
    counts: dict[str, list[tuple[int, int]]] = {split: [] for split in SPLITS}
    recordings: dict[str, dict] = {}
    for recording_id, row in enumerate(ordered):
        planned_samples = int(row.duration_s * TRAINING_RATE_HZ)
        planned = example_starts(planned_samples, TRAINING_RATE_HZ, row.active_regions_s, example_samples).size
        if planned == 0:
            what = "active audio" if row.active_regions_s is not None else "audio"
            skipped.append((row.stem_id, f"shorter than one example: less than {settings.example_s} s of {what}"))
            continue
        split = split_of_song[row.song_id]
        counts[split].append((recording_id, planned))
        recordings[str(recording_id)] = _recording_record(row, split)

    plan = {split: _plan_shards(counts[split], settings.examples_per_shard) for split in SPLITS}
    total_planned = sum(n for split in SPLITS for _, n in counts[split])
    decoded: tuple[int, np.ndarray] | None = None
    input_audio_s = 0.0
    shards_written = shards_reused = 0
    splits_manifest: dict[str, list[dict]] = {split: [] for split in SPLITS}
    floor_rms = 10 ** (settings.min_example_dbfs / 20)

    with tqdm(total=total_planned, unit="ex", desc="package", disable=not show_progress) as progress:
        for split in SPLITS:
            for shard_index, pieces in enumerate(plan[split]):
                relative = f"{split}/shard-{shard_index:05d}.npz"
                shard_path = out_dir / relative
                record_path = shard_path.with_suffix(".json")
                plan_key = hashlib.sha256(
                    json.dumps(
                        {
                            "pieces": [[ordered[p.recording_id].stem_id, p.first, p.stop] for p in pieces],
                            "example_samples": example_samples,
                            "min_example_dbfs": settings.min_example_dbfs,
                            "regions": [ordered[p.recording_id].active_regions_s for p in pieces],
                        },
                        sort_keys=True,
                    ).encode()
                ).hexdigest()
                planned_here = sum(p.stop - p.first for p in pieces)
                if record_path.is_file() and shard_path.is_file():
                    record = json.loads(record_path.read_text())
                    if record.get("plan_key") == plan_key:
                        try:
                            load_shard(shard_path, record["sha256"])
                        except Exception:  # noqa: BLE001 - any damage means: cut again
                            pass
                        else:
                            splits_manifest[split].append(
                                {"path": relative, "sha256": record["sha256"], "examples": record["examples"]}
                            )
                            shards_reused += 1
                            progress.update(planned_here)
                            continue
                audio_parts, id_parts = [], []
                for piece in pieces:
                    row = ordered[piece.recording_id]
                    if decoded is None or decoded[0] != piece.recording_id:
                        try:
                            decoded = (piece.recording_id, decode_for_training(row.path))
                        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as error:
                            skipped.append((row.stem_id, f"unreadable audio: {(str(error).splitlines() or ['?'])[0]}"))
                            decoded = (piece.recording_id, np.zeros(0, dtype=np.float32))
                        input_audio_s += decoded[1].size / TRAINING_RATE_HZ
                    examples = _cut(decoded[1], row.active_regions_s, example_samples)[piece.first : piece.stop]
                    if examples.size:
                        loud = np.sqrt(np.mean(examples.astype(np.float64) ** 2, axis=1)) >= floor_rms
                        examples = examples[loud]
                    audio_parts.append(examples)
                    id_parts.append(np.full(examples.shape[0], piece.recording_id, dtype=np.int32))
                    progress.update(piece.stop - piece.first)
                audio = np.concatenate(audio_parts) if audio_parts else np.zeros((0, example_samples), np.float32)
                ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int32)
                digest = write_shard(shard_path, audio, ids)
                record_path.write_text(
                    json.dumps({"plan_key": plan_key, "sha256": digest, "examples": int(audio.shape[0])})
                )
                splits_manifest[split].append({"path": relative, "sha256": digest, "examples": int(audio.shape[0])})
                shards_written += 1

    skipped = list(dict.fromkeys(skipped))  # a recording spanning shards is reported once
    manifest = {
        "format": FORMAT,
        "sample_rate_hz": TRAINING_RATE_HZ,
        "example_samples": example_samples,
        "splits": splits_manifest,
        "recordings": recordings,
        "skipped": [{"stem_id": stem_id, "reason": reason} for stem_id, reason in skipped],
        "settings": asdict(settings),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST_FILE_NAME
    tmp = manifest_path.with_name(MANIFEST_FILE_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(manifest_path)
    return PackageResult(
        manifest_path=manifest_path,
        examples={split: sum(s["examples"] for s in splits_manifest[split]) for split in SPLITS},
        shards_written=shards_written,
        shards_reused=shards_reused,
        skipped=skipped,
        input_audio_s=input_audio_s,
        wall_s=time.perf_counter() - started,
    )
