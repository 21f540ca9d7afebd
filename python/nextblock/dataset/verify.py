"""``verify``: the seed project's timbral verification, with librosa.

Two checks per stem, each rejection written into the manifest's ``reason``:

1. **Amplitude thresholding** – frames whose RMS is below
   ``threshold_dbfs`` (absolute, re full scale) are silent
   (:func:`librosa.effects.split` with ``ref=1.0``). Non-silent regions closer
   than ``merge_gap_s`` are merged, regions shorter than ``min_region_s`` are
   dropped; what is left goes to ``active_regions_s`` (``package`` cuts
   examples only from it). A stem with less than ``min_active_s`` of active
   audio is rejected as silent/near-silent.
2. **Mel-spectrum profiling** – a stem's *profile* (:func:`mel_profile`)
   summarises the log-mel spectrogram of its active frames: per-band mean,
   spread over time and frame-to-frame change, each loudness-free and unit
   norm. Its distance to a reference is the
   cosine distance ``1 - <p, r>`` (0 = same shape, 2 = opposite). A stem is
   kept when the nearest reference **of its own label** is within
   ``max_mel_distance``; with ``require_nearest_label`` it must also not be
   clearly (``nearest_label_margin``) closer to another label's references
   (a drum loop named ``vox`` is).

References come from a folder with one sub-folder per label
(``refs/vocals/*.wav``, ``refs/drums/*.flac`` …, see
:func:`reference_profiles_from_folder`). A label without references uses a
sample of its own stems (leave-one-out) when it has at least
``min_self_references`` of them; otherwise only the amplitude check applies
and the row's ``mel_distance`` stays empty.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from tqdm import tqdm

from .manifest import STATUS_KEPT, STATUS_REJECTED, StemRow
from .sort_stems import is_audio_file


@dataclass(frozen=True)
class VerifySettings:
    """Tunable thresholds of :func:`verify_rows` (CLI flags of the same names).

    Attributes
    ----------
    analysis_rate_hz:
        Rate audio is resampled to for analysis (22.05 kHz: profiles of 22 kHz
        and 48 kHz recordings stay comparable).
    threshold_dbfs:
        Frame RMS below this level (dB re full scale) is silence.
    min_region_s, merge_gap_s:
        Drop active regions shorter than this / merge regions closer than this.
    min_active_s:
        Reject a stem with less active audio than this (near-silent).
    n_mels:
        Mel bands of the profile.
    max_mel_distance:
        Largest cosine distance to the own-label references that is kept.
    require_nearest_label:
        Also reject a stem whose nearest reference has another label (by more
        than ``nearest_label_margin``).
    nearest_label_margin:
        How much closer another label's reference must be before that rule
        rejects (keeps near-ties, e.g. a sibilant word next to a hi-hat sample).
    min_self_references:
        Stems of a label needed before the label's own stems serve as its references.
    max_self_references:
        How many of a label's own stems serve as references at most.
    """

    analysis_rate_hz: int = 22050
    threshold_dbfs: float = -50.0
    min_region_s: float = 0.1
    merge_gap_s: float = 0.3
    min_active_s: float = 0.5
    n_mels: int = 64
    max_mel_distance: float = 0.4
    require_nearest_label: bool = True
    nearest_label_margin: float = 0.05
    min_self_references: int = 5
    max_self_references: int = 64


_FRAME_SAMPLES = 2048
_HOP_SAMPLES = 512


def load_mono(path: str | Path, rate_hz: int) -> np.ndarray:
    """Decode a file (soundfile), mix to mono and resample (soxr). Returns float32 ``[samples]``."""
    audio, native_rate_hz = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if native_rate_hz != rate_hz:
        mono = librosa.resample(mono, orig_sr=native_rate_hz, target_sr=rate_hz, res_type="soxr_hq")
    return mono.astype(np.float32, copy=False)


def active_regions_s(audio: np.ndarray, rate_hz: int, settings: VerifySettings = VerifySettings()) -> np.ndarray:
    """Non-silent regions of a mono signal.

    Parameters
    ----------
    audio:
        ``[samples]`` mono float signal in [-1, 1].
    rate_hz:
        Its sample rate.
    settings:
        ``threshold_dbfs``, ``min_region_s`` and ``merge_gap_s`` are used.

    Returns
    -------
    ``[regions, 2]`` float array of ``(start_s, end_s)``, sorted, disjoint.
    """
    if audio.size == 0:
        return np.zeros((0, 2))
    intervals = librosa.effects.split(
        audio, top_db=-settings.threshold_dbfs, ref=1.0, frame_length=_FRAME_SAMPLES, hop_length=_HOP_SAMPLES
    ) / float(rate_hz)
    merged: list[list[float]] = []
    for start_s, end_s in intervals:
        if merged and start_s - merged[-1][1] < settings.merge_gap_s:
            merged[-1][1] = end_s
        else:
            merged.append([start_s, end_s])
    kept = [region for region in merged if region[1] - region[0] >= settings.min_region_s]
    return np.asarray(kept, dtype=float).reshape(-1, 2)


def _unit_shape(values: np.ndarray) -> np.ndarray:
    """Centre a per-band vector and scale it to unit norm (zeros when flat)."""
    centred = values - values.mean()
    norm = np.linalg.norm(centred)
    return centred / norm if norm > 0 else np.zeros_like(centred)


def mel_profile(
    audio: np.ndarray, rate_hz: int, regions_s: np.ndarray | None = None, n_mels: int = 64
) -> np.ndarray | None:
    """Timbre profile of the active frames of a signal, from its log-mel spectrogram.

    Three per-band statistics of the log-mel spectrogram (dB) over the active
    frames, each centred and scaled to unit norm (so the profile ignores
    loudness), concatenated and scaled to unit norm again:

    * mean level per band – the spectral envelope;
    * standard deviation over time per band – how much each band moves;
    * mean absolute frame-to-frame change per band – how percussive it moves
      (drum hits change fast, sung/spoken partials glide).

    Parameters
    ----------
    audio:
        ``[samples]`` mono signal.
    rate_hz:
        Its sample rate.
    regions_s:
        ``[regions, 2]`` active regions; ``None`` = the whole signal.
    n_mels:
        Number of mel bands.

    Returns
    -------
    ``[3 * n_mels]`` float64 unit-norm profile, or ``None`` when there is no
    active frame.
    """
    mel_power = librosa.feature.melspectrogram(
        y=audio, sr=rate_hz, n_fft=_FRAME_SAMPLES, hop_length=_HOP_SAMPLES, n_mels=n_mels
    )
    if mel_power.shape[1] == 0:
        return None
    if regions_s is not None:
        times_s = librosa.frames_to_time(np.arange(mel_power.shape[1]), sr=rate_hz, hop_length=_HOP_SAMPLES)
        active = np.zeros(mel_power.shape[1], dtype=bool)
        for start_s, end_s in regions_s:
            active |= (times_s >= start_s) & (times_s < end_s)
        if not active.any():
            return None
        mel_power = mel_power[:, active]
    log_mel = librosa.power_to_db(mel_power, ref=np.max, amin=1e-12, top_db=80.0)  # relative: loudness-free
    change = np.abs(np.diff(log_mel, axis=1)).mean(axis=1) if log_mel.shape[1] > 1 else np.zeros(n_mels)
    profile = np.concatenate([_unit_shape(log_mel.mean(axis=1)), _unit_shape(log_mel.std(axis=1)), _unit_shape(change)])
    norm = np.linalg.norm(profile)
    return profile / norm if norm > 0 else None


def cosine_distance(profile: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Cosine distances ``1 - <profile, r>`` to each unit-norm reference.

    ``profile`` is ``[features]``, ``references`` ``[refs, features]``; returns ``[refs]``.
    """
    return 1.0 - references @ profile


def profile_of_file(path: str | Path, settings: VerifySettings = VerifySettings()) -> np.ndarray | None:
    """Load a clip and return its mel profile over active frames (``None`` if silent)."""
    audio = load_mono(path, settings.analysis_rate_hz)
    regions = active_regions_s(audio, settings.analysis_rate_hz, settings)
    return mel_profile(audio, settings.analysis_rate_hz, regions, settings.n_mels)


def reference_profiles_from_folder(
    folder: str | Path, settings: VerifySettings = VerifySettings()
) -> dict[str, np.ndarray]:
    """Profiles of reference clips in ``folder/<label>/*``.

    Returns
    -------
    ``{label: [clips, 3 * n_mels] array}`` (labels with no usable clip are left out).
    """
    profiles: dict[str, list[np.ndarray]] = {}
    for label_folder in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        for clip in sorted(label_folder.rglob("*")):
            if not (clip.is_file() and is_audio_file(clip.relative_to(label_folder))):
                continue
            try:
                profile = profile_of_file(clip, settings)
            except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
                continue
            if profile is not None:
                profiles.setdefault(label_folder.name, []).append(profile)
    return {label: np.stack(items) for label, items in profiles.items()}


@dataclass
class _Analysis:
    row: StemRow
    profile: np.ndarray | None


def _amplitude_check(row: StemRow, settings: VerifySettings) -> _Analysis:
    try:
        audio = load_mono(row.path, settings.analysis_rate_hz)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, EOFError) as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        return _Analysis(row.replace(status=STATUS_REJECTED, reason=f"unreadable audio: {first_line}"), None)
    duration_s = audio.size / settings.analysis_rate_hz
    regions = active_regions_s(audio, settings.analysis_rate_hz, settings)
    active_s = float((regions[:, 1] - regions[:, 0]).sum())
    row = row.replace(
        active_s=active_s,
        kept_fraction=active_s / duration_s if duration_s > 0 else 0.0,
        active_regions_s=regions.tolist(),
    )
    if duration_s < settings.min_active_s:
        reason = f"too short: {duration_s:.2f} s (< {settings.min_active_s} s)"
        return _Analysis(row.replace(status=STATUS_REJECTED, reason=reason), None)
    if active_s < settings.min_active_s:
        peak_dbfs = 20 * np.log10(max(float(np.abs(audio).max(initial=0.0)), 1e-12))
        kind = "silent" if peak_dbfs < settings.threshold_dbfs else "near-silent"
        return _Analysis(
            row.replace(
                status=STATUS_REJECTED,
                reason=f"{kind}: {active_s:.2f} s above {settings.threshold_dbfs:.0f} dBFS "
                f"(< {settings.min_active_s} s, peak {peak_dbfs:.0f} dBFS)",
            ),
            None,
        )
    return _Analysis(row, mel_profile(audio, settings.analysis_rate_hz, regions, settings.n_mels))


def _mel_check(
    analysis: _Analysis,
    references: dict[str, np.ndarray],
    settings: VerifySettings,
    exclude: dict[str, int] | None = None,
) -> StemRow:
    """Compare a profile with the references; ``exclude[label]`` = row of that label's references to skip (itself)."""
    row = analysis.row
    if row.label not in references or analysis.profile is None:
        return row.replace(status=STATUS_KEPT, reason="")
    distances: dict[str, float] = {}
    for label, profiles in references.items():
        values = cosine_distance(analysis.profile, profiles)
        if exclude and label in exclude:
            values = np.delete(values, exclude[label])
        if values.size:
            distances[label] = float(values.min())
    if row.label not in distances:
        return row.replace(status=STATUS_KEPT, reason="")
    own_distance = distances[row.label]
    nearest_label = min(distances, key=lambda label: (distances[label], label != row.label))
    clearly_nearer = distances[nearest_label] < own_distance - settings.nearest_label_margin
    row = row.replace(mel_distance=own_distance, nearest_label=nearest_label)
    if own_distance > settings.max_mel_distance:
        return row.replace(
            status=STATUS_REJECTED,
            reason=(
                f"mel profile {own_distance:.3f} from {row.label} references (> {settings.max_mel_distance}); "
                f"nearest: {nearest_label}"
            ),
        )
    if settings.require_nearest_label and nearest_label != row.label and clearly_nearer:
        return row.replace(
            status=STATUS_REJECTED,
            reason=(
                f"mel profile closer to {nearest_label} ({distances[nearest_label]:.3f}) "
                f"than to {row.label} ({own_distance:.3f}) references"
            ),
        )
    return row.replace(status=STATUS_KEPT, reason="")


SELF_REFERENCE_EXCLUDED_LABELS = ("other",)
"""Labels too heterogeneous to serve as their own references."""


def _analyse(row: StemRow, settings: VerifySettings) -> _Analysis:
    """Amplitude check of one row (rows already rejected pass through); picklable for process pools."""
    return _Analysis(row, None) if row.status == STATUS_REJECTED else _amplitude_check(row, settings)


def verify_rows(
    rows: list[StemRow],
    references: dict[str, np.ndarray] | None = None,
    settings: VerifySettings = VerifySettings(),
    show_progress: bool = True,
    jobs: int = 1,
) -> list[StemRow]:
    """Run both checks on every row that is not already rejected.

    Parameters
    ----------
    rows:
        Manifest rows from ``sort`` (rows already ``rejected`` are passed through).
    references:
        ``{label: [clips, 3 * n_mels]}`` profiles (:func:`reference_profiles_from_folder`).
        A label missing here, with at least ``settings.min_self_references``
        stems, uses up to ``settings.max_self_references`` of its own stems
        (evenly spaced in manifest order) as references; a stem is never
        compared with itself. ``other`` never references itself.
    settings:
        Thresholds.
    show_progress:
        Draw a tqdm bar.
    jobs:
        Worker processes for decoding and analysis (1 = in this process).

    Returns
    -------
    Rows in the same order with ``status`` ``kept``/``rejected``, ``reason``
    and the verification columns filled.
    """
    references = dict(references or {})
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            mapped = pool.map(_analyse, rows, repeat(settings), chunksize=8)
            analyses = list(tqdm(mapped, total=len(rows), desc="verify", unit="stem", disable=not show_progress))
    else:
        analyses = [
            _analyse(row, settings) for row in tqdm(rows, desc="verify", unit="stem", disable=not show_progress)
        ]
    by_label: dict[str, list[int]] = {}
    for position, analysis in enumerate(analyses):
        if analysis.row.status != STATUS_REJECTED and analysis.profile is not None:
            by_label.setdefault(analysis.row.label, []).append(position)
    self_reference_row: dict[int, tuple[str, int]] = {}  # analysis position -> (label, row in references[label])
    for label, positions in by_label.items():
        if (
            label in references
            or label in SELF_REFERENCE_EXCLUDED_LABELS
            or len(positions) < settings.min_self_references
        ):
            continue
        picks = np.linspace(0, len(positions) - 1, min(len(positions), settings.max_self_references)).astype(int)
        chosen = list(dict.fromkeys(positions[i] for i in picks))
        references[label] = np.stack([analyses[p].profile for p in chosen])
        self_reference_row.update({p: (label, i) for i, p in enumerate(chosen)})
    verified = []
    for position, analysis in enumerate(analyses):
        if analysis.row.status == STATUS_REJECTED:
            verified.append(analysis.row)
            continue
        own = self_reference_row.get(position)
        verified.append(_mel_check(analysis, references, settings, {own[0]: own[1]} if own else None))
    return verified
