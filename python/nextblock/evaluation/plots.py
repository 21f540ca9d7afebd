"""Pictures around a few losses: waveforms and spectrograms of every concealer's output.

>>> plot_losses(reference, {"burg": played}, lost, 128, 48000, "out/clip")   # doctest: +SKIP
['out/clip_waveform.png', 'out/clip_spectrogram.png']
"""

from __future__ import annotations

import os

import numpy as np


def loss_events(
    lost_mask: np.ndarray, reference: np.ndarray, frames_per_block: int, max_events: int = 3
) -> list[tuple[int, int]]:
    """Pick the runs of lost blocks worth looking at: the loudest (reference energy) ones,
    in time order.

    Parameters
    ----------
    lost_mask:
        Shape ``(n_blocks,)``, bool.
    reference:
        Shape ``(n_samples,)``.

    Returns
    -------
    list of ``(first_lost_block, n_lost_blocks)``
    """
    lost = np.asarray(lost_mask, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], lost, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    energy = [
        float(np.sum(reference[s * frames_per_block : e * frames_per_block] ** 2))
        for s, e in zip(starts, ends, strict=True)
    ]
    loudest = sorted(np.argsort(energy)[::-1][:max_events])
    return [(int(starts[i]), int(ends[i] - starts[i])) for i in loudest]


def plot_losses(
    reference: np.ndarray,
    played: dict[str, np.ndarray],
    lost_mask: np.ndarray,
    frames_per_block: int,
    sample_rate_hz: int,
    out_prefix: str,
    max_events: int = 3,
    context_blocks: int = 6,
    title: str | None = None,
) -> list[str]:
    """Write ``<out_prefix>_waveform.png`` and ``<out_prefix>_spectrogram.png``.

    Parameters
    ----------
    reference:
        The clean channel, shape ``(n_samples,)``.
    played:
        Concealer name -> what it played, each shape ``(n_samples,)``.
    lost_mask:
        Shape ``(n_blocks,)``, bool.
    frames_per_block, sample_rate_hz:
        Stream format.
    out_prefix:
        Path prefix of the two PNG files (its directory is created).
    max_events:
        How many loss runs to show (:func:`loss_events`).
    context_blocks:
        Blocks shown before and after each run.
    title:
        A line above both figures (e.g. why this loss was chosen).

    Returns
    -------
    list of str
        The files written (empty if there is no loss).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = loss_events(lost_mask, reference, frames_per_block, max_events)
    if not events:
        return []
    os.makedirs(os.path.dirname(out_prefix) or ".", exist_ok=True)
    fpp, n = frames_per_block, reference.shape[0]

    def window(start_block: int, length_blocks: int) -> tuple[int, int]:
        lo = max(0, (start_block - context_blocks) * fpp)
        hi = min(n, (start_block + length_blocks + context_blocks) * fpp)
        return lo, hi

    written = []
    fig, axes = plt.subplots(len(events), 1, figsize=(10, 2.6 * len(events)), squeeze=False)
    for ax, (start, length) in zip(axes[:, 0], events, strict=True):
        lo, hi = window(start, length)
        t_ms = np.arange(lo, hi) * 1000.0 / sample_rate_hz
        ax.axvspan(
            start * fpp * 1000.0 / sample_rate_hz,
            (start + length) * fpp * 1000.0 / sample_rate_hz,
            color="0.9",
            label="lost",
        )
        ax.axvspan(
            (start + length) * fpp * 1000.0 / sample_rate_hz,
            (start + length + 1) * fpp * 1000.0 / sample_rate_hz,
            color="0.96",
            label="cross-fade",
        )
        ax.plot(t_ms, reference[lo:hi], color="black", lw=1.6, label="reference")
        for name, audio in played.items():
            ax.plot(t_ms, audio[lo:hi], lw=0.9, label=name)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("amplitude")
        ax.set_title(f"{length} lost block(s) from block {start}")
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = f"{out_prefix}_waveform.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    signals = {"reference": reference, **played}
    fig, axes = plt.subplots(len(signals), len(events), figsize=(3.4 * len(events), 1.9 * len(signals)), squeeze=False)
    n_fft = 256
    for col, (start, length) in enumerate(events):
        lo, hi = window(start, length + 8)
        for row, (name, audio) in enumerate(signals.items()):
            ax = axes[row, col]
            # a -180 dB offset keeps exact digital silence finite (drawn black, not blank)
            segment = np.asarray(audio[lo:hi], dtype=np.float64) + 1e-9
            if segment.shape[0] > n_fft:
                with np.errstate(divide="ignore"):
                    ax.specgram(
                        segment, NFFT=n_fft, Fs=sample_rate_hz, noverlap=n_fft - 32, cmap="magma", vmin=-120, vmax=-20
                    )
            ax.axvline((start * fpp - lo) / sample_rate_hz, color="cyan", lw=0.6)
            ax.axvline(((start + length + 1) * fpp - lo) / sample_rate_hz, color="cyan", lw=0.6)
            ax.set_title(f"{name} @ block {start}", fontsize=8)
            ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path = f"{out_prefix}_spectrogram.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written
