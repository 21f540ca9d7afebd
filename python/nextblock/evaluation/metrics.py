"""Objective metrics of concealed audio against the clean reference.

All signals are one channel, shape ``(n_samples,)``, in full-scale units (±1). Results are in
dB unless said otherwise. Functions return ``float('inf')``/``nan`` where the ratio is
undefined (a perfect estimate, a silent reference); the harness writes those as ``null``.

Where the metrics look (for a loss mask of shape ``(n_blocks,)``):

* :func:`concealed_sample_mask` – the lost blocks **and the block after each run of losses**
  (where the cross-fade back into real audio happens);
* :func:`frames_touching` – STFT frames whose window overlaps that mask.

The perceptual scores (ViSQOL, PLCMOS) are in :mod:`nextblock.evaluation.perceptual` and
re-exported here.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from .perceptual import plcmos_mos, visqol_mos  # noqa: F401  (re-export)

#: power floor of :func:`lsd_frames_db` (-100 dB re full scale), librosa's ``amin`` default
LSD_POWER_FLOOR = 1e-10


def concealed_block_mask(lost_mask: np.ndarray, include_recovery: bool = True) -> np.ndarray:
    """Blocks whose played audio was (partly) made up: lost blocks plus, with
    ``include_recovery``, the first block after each run of losses (the cross-fade block).

    Parameters
    ----------
    lost_mask:
        Shape ``(n_blocks,)``, bool, ``True`` = lost.

    Returns
    -------
    np.ndarray, shape ``(n_blocks,)``, bool

    Examples
    --------
    >>> concealed_block_mask(np.array([0, 1, 1, 0, 0, 1], bool)).astype(int)
    array([0, 1, 1, 1, 0, 1])
    """
    lost = np.asarray(lost_mask, dtype=bool)
    out = lost.copy()
    if include_recovery and lost.size > 1:
        out[1:] |= lost[:-1]
    return out


def concealed_sample_mask(
    lost_mask: np.ndarray, frames_per_block: int, n_samples: int, include_recovery: bool = True
) -> np.ndarray:
    """:func:`concealed_block_mask` expanded to samples.

    Returns
    -------
    np.ndarray, shape ``(n_samples,)``, bool
    """
    blocks = concealed_block_mask(lost_mask, include_recovery)
    return np.repeat(blocks, int(frames_per_block))[: int(n_samples)]


def energy_sums(reference: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """``(sum(reference**2), sum((reference - estimate)**2))`` over ``mask`` (all samples if
    ``None``) – add these up over files to pool an SNR (see :func:`snr_from_energies`)."""
    reference, estimate = _pair(reference, estimate)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != reference.shape:
            raise ValueError(f"mask has shape {mask.shape}, expected {reference.shape}")
        reference, estimate = reference[mask], estimate[mask]
    return float(np.sum(reference**2)), float(np.sum((reference - estimate) ** 2))


def snr_from_energies(signal_energy: float, error_energy: float) -> float:
    """``10 log10(signal_energy / error_energy)`` in dB (``inf`` for zero error, ``nan`` when
    both are zero)."""
    if error_energy == 0.0:
        return float("nan") if signal_energy == 0.0 else float("inf")
    if signal_energy == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal_energy / error_energy))


def snr_db(reference: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference`` in dB, over ``mask``.

    Parameters
    ----------
    reference, estimate:
        Shape ``(n_samples,)``.
    mask:
        Shape ``(n_samples,)``, bool – e.g. :func:`concealed_sample_mask`; ``None`` = all.

    Returns
    -------
    float
        ``10 log10(sum ref² / sum (ref - est)²)``. Silence for a lost block gives exactly 0 dB
        on that block.
    """
    return snr_from_energies(*energy_sums(reference, estimate, mask))


def log_power_spectrogram_db(
    x: np.ndarray, n_fft: int = 512, hop_length: int = 128, power_floor: float = LSD_POWER_FLOOR
) -> np.ndarray:
    """Hann-windowed power spectrogram in dB, frames not centred (frame ``t`` covers samples
    ``[t * hop_length, t * hop_length + n_fft)``); the power is normalised by ``sum(window)²``
    so a full-scale sine peaks near 0 dB, and floored at ``power_floor``.

    Returns
    -------
    np.ndarray, shape ``(n_fft // 2 + 1, n_frames)``, float64
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    window = scipy.signal.get_window("hann", n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length]
    spectrum = np.fft.rfft(frames * window, axis=-1).T
    power = np.abs(spectrum) ** 2 / np.sum(window) ** 2
    return 10.0 * np.log10(np.maximum(power, power_floor))


def frames_touching(sample_mask: np.ndarray, n_fft: int = 512, hop_length: int = 128) -> np.ndarray:
    """Which frames of :func:`log_power_spectrogram_db` overlap a ``True`` sample.

    Returns
    -------
    np.ndarray, shape ``(n_frames,)``, bool
    """
    sample_mask = np.asarray(sample_mask, dtype=bool)
    if sample_mask.shape[0] < n_fft:
        sample_mask = np.pad(sample_mask, (0, n_fft - sample_mask.shape[0]))
    counts = np.concatenate([[0], np.cumsum(sample_mask)])
    starts = np.arange(0, sample_mask.shape[0] - n_fft + 1, hop_length)
    return (counts[starts + n_fft] - counts[starts]) > 0


def lsd_frames_db(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_mask: np.ndarray | None = None,
    n_fft: int = 512,
    hop_length: int = 128,
    power_floor: float = LSD_POWER_FLOOR,
) -> np.ndarray:
    """Log-spectral distance per frame, in dB: ``sqrt(mean_f (P_ref_dB - P_est_dB)²)``.

    Parameters
    ----------
    reference, estimate:
        Shape ``(n_samples,)``.
    sample_mask:
        Shape ``(n_samples,)``, bool; only frames touching it are returned (all if ``None``).
    n_fft, hop_length:
        Frame length and hop in samples (512/128 = 10.7/2.7 ms at 48 kHz: short enough that a
        single lost block of 128 is not diluted).
    power_floor:
        Power floor before the log (bins quieter than -100 dBFS compare as -100 dB).

    Returns
    -------
    np.ndarray, shape ``(n_selected_frames,)``
        Average them (over files too) for one LSD.
    """
    reference, estimate = _pair(reference, estimate)
    ref_db = log_power_spectrogram_db(reference, n_fft, hop_length, power_floor)
    est_db = log_power_spectrogram_db(estimate, n_fft, hop_length, power_floor)
    per_frame = np.sqrt(np.mean((ref_db - est_db) ** 2, axis=0))
    if sample_mask is None:
        return per_frame
    return per_frame[frames_touching(sample_mask, n_fft, hop_length)]


def lsd_db(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_mask: np.ndarray | None = None,
    n_fft: int = 512,
    hop_length: int = 128,
    power_floor: float = LSD_POWER_FLOOR,
) -> float:
    """Mean of :func:`lsd_frames_db` (``nan`` when no frame is selected)."""
    frames = lsd_frames_db(reference, estimate, sample_mask, n_fft, hop_length, power_floor)
    return float(np.mean(frames)) if frames.size else float("nan")


def thd_n_db(reference: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None) -> float:
    """THD+N of ``estimate`` relative to a clean test signal ``reference`` (a sine or sweep).

    The part of ``estimate`` that is the test signal is its least-squares projection
    ``g * reference`` (``g = <est, ref> / <ref, ref>``); everything else – harmonics, noise,
    concealment artefacts – is the residual. This is a tracking notch filter that follows the
    sweep exactly, since the clean sweep is known.

    Returns
    -------
    float
        ``10 log10(|est - g ref|² / |g ref|²)`` in dB (more negative is cleaner; an estimate
        with 1 % of an unrelated tone added reads -40 dB).
    """
    reference, estimate = _pair(reference, estimate)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        reference, estimate = reference[mask], estimate[mask]
    ref_energy = float(np.dot(reference, reference))
    if ref_energy == 0.0:
        return float("nan")
    gain = float(np.dot(estimate, reference)) / ref_energy
    residual = estimate - gain * reference
    return snr_from_energies(float(np.dot(residual, residual)), gain * gain * ref_energy)


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    estimate = np.asarray(estimate, dtype=np.float64).reshape(-1)
    if reference.shape != estimate.shape:
        raise ValueError(f"reference and estimate differ in length: {reference.shape} vs {estimate.shape}")
    return reference, estimate
