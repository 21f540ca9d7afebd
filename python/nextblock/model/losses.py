"""Training losses on the predicted waveform (``keras.ops``: any Keras backend; training side only).

The network outputs a spectrum; :func:`spectrum_to_waveform` applies the same inverse FFT as
:meth:`nextblock.features.spectral.SpectralCodec.decode` (in RMS units, without the scale), so
the loss sees exactly what the listener would hear.

Loss = weighted waveform MSE (what ``snr_db`` measures) + ``spectral_weight`` × multi-resolution
log-magnitude STFT distance (what ``lsd_db`` measures; it also discourages the muffled, averaged
guesses a pure MSE favours when the future is uncertain) + ``phase_weight`` × multi-resolution
*complex* STFT distance (mean |ΔRe| + |ΔIm| of the STFT frames, in the context's RMS units like
everything here: phase-aware, so a partial continued at the right level but the wrong phase
still costs). Written with ``keras.ops`` only, so the same loss trains under TensorFlow
(:mod:`nextblock.train`) and JAX (:mod:`nextblock.train_jax`, on an accelerator). Dividing it by the target's level instead made windows whose sound stops after
the context dominate training (train loss 4.9 vs validation 1.2): not done.
"""

from __future__ import annotations

from ..features.config import FeatureConfig
from ..features.spectral import SpectralCodec

#: added under the square root of |STFT|² (1e-6 in magnitude against the 1e-3 log floor)
_TINY = 1e-12


def spectrum_to_waveform(spectrum, config: FeatureConfig):
    """``(batch, output_bins, 2)`` predicted spectrum → ``(batch, output_samples)`` waveform."""
    import keras

    gain = float(SpectralCodec(config).output_gain)
    return keras.ops.irfft((spectrum[..., 0] * gain, spectrum[..., 1] * gain), fft_length=config.output_samples)


def block_weights(config: FeatureConfig, later_block_weight: float = 0.5):
    """Per-sample weights ``(output_samples,)``: 1 for the first block, ``later_block_weight`` after.

    The first block is what plays during a loss; later ones only feed the cross-fade.
    """
    import numpy as np

    weights = np.full(config.output_samples, later_block_weight, np.float32)
    weights[: config.frames_per_block] = 1.0
    return weights / weights.mean()


def _frame_index(samples: int, size: int):
    """``(frames, size)`` int32 sample indices of STFT frames of ``size`` with hop ``size // 2``, no padding."""
    import numpy as np

    hop = size // 2
    starts = np.arange(0, samples - size + 1, hop)
    return (starts[:, None] + np.arange(size)[None, :]).astype(np.int32)


def _stft(signal, index, window):
    """``(batch, samples)`` → (re, im) of ``(batch, frames, size // 2 + 1)``: Hann-windowed frames, rfft."""
    import keras

    frames = keras.ops.take(signal, index, axis=1) * window
    return keras.ops.rfft(frames)


def make_loss(
    config: FeatureConfig,
    spectral_weight: float = 0.1,
    fft_sizes: tuple[int, ...] = (32, 64, 128),
    later_block_weight: float = 0.5,
    log_floor: float = 1e-3,
    phase_weight: float = 0.0,
    first_block_only: bool = False,
):
    """Build ``loss(target_waveform, predicted_spectrum) -> (batch,)`` for ``model.compile``.

    Parameters
    ----------
    config:
        Feature sizes (output length, block size).
    spectral_weight:
        Weight of the multi-resolution STFT term (0 disables it).
    fft_sizes:
        STFT frame lengths in samples (hop = half, periodic Hann window, no padding: the frames
        of ``tf.signal.stft``), each ≤ ``output_samples``.
    later_block_weight:
        Relative weight of blocks after the first (see :func:`block_weights`).
    log_floor:
        Magnitude floor inside the logs, in RMS units of the context (1e-3 ≈ -60 dB): lower
        values make quiet bands count more, which is what ``lsd_db`` rewards.
    phase_weight:
        Weight of the complex (phase-aware) STFT term (0 disables it).
    first_block_only:
        Score the first block alone (a two-sided network: the blocks after it arrived): the
        waveform term on it, the STFT terms on the frames that overlap it (those across its end
        too, which hold the join onto the block that arrived); ``later_block_weight`` is ignored.

    Shapes: ``target`` ``(batch, output_samples)``, ``predicted`` ``(batch, output_bins, 2)``.
    """
    import keras
    import numpy as np

    weights = block_weights(config, 0.0 if first_block_only else later_block_weight)
    for size in fft_sizes:
        if not 2 <= size <= config.output_samples:
            raise ValueError(f"STFT size {size} must be between 2 and {config.output_samples} samples")

    def frame_index(size):
        index = _frame_index(config.output_samples, size)
        return index[index[:, 0] < config.frames_per_block] if first_block_only else index

    frames = [
        (frame_index(size), (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)).astype(np.float32))
        for size in fft_sizes
    ]

    def loss(target, predicted):
        ops = keras.ops
        waveform = spectrum_to_waveform(predicted, config)
        total = ops.mean(ops.square(waveform - target) * weights, axis=-1)
        if spectral_weight or phase_weight:
            for index, window in frames:
                t_re, t_im = _stft(target, index, window)
                p_re, p_im = _stft(waveform, index, window)
                if spectral_weight:
                    # + _TINY: a finite gradient where a frame is exactly silent (|X| = 0)
                    spec_t = ops.sqrt(ops.square(t_re) + ops.square(t_im) + _TINY)
                    spec_p = ops.sqrt(ops.square(p_re) + ops.square(p_im) + _TINY)
                    log_distance = ops.abs(ops.log(spec_t + log_floor) - ops.log(spec_p + log_floor))
                    total = total + spectral_weight / len(frames) * ops.mean(log_distance, axis=[-2, -1])
                if phase_weight:
                    complex_l1 = ops.mean(ops.abs(t_re - p_re) + ops.abs(t_im - p_im), axis=[-2, -1])
                    total = total + phase_weight / len(frames) * complex_l1
        return total

    loss.__name__ = "nextblock_loss"
    return loss


def make_snr_metric(config: FeatureConfig):
    """Keras metric ``snr_db``: per example, the first block's SNR in dB (higher is better)."""
    import keras
    import numpy as np

    frames = config.frames_per_block

    def snr_db(target, predicted):
        ops = keras.ops
        waveform = spectrum_to_waveform(predicted, config)[:, :frames]
        signal = ops.sum(ops.square(target[:, :frames]), axis=-1)
        noise = ops.sum(ops.square(waveform - target[:, :frames]), axis=-1)
        return 10.0 * ops.log((signal + 1e-8) / (noise + 1e-8)) / np.log(10.0)

    return snr_db
