"""Context waveform → network input, network output → predicted blocks (any batch).

The arithmetic runs in the C++ core (``nextblock._core.CodecCore``, ``csrc/nextblock/codec.hpp``,
Eigen's FFT): one call before the network and one after, which matters for a live prediction
that always starts cold. The numpy code below (:meth:`SpectralCodec.encode_reference`,
:meth:`SpectralCodec.decode`) is the reference it is tested against, and the path of the older
models whose LPC guess uses the autocorrelation method.

The network never sees absolute levels: each context is divided by its RMS before the FFT and
the prediction is multiplied back, so one model serves whispers and fortissimo alike.

Input features (``encode``), per channel, shape ``(input_bins, 3)``, or ``(input_bins, 5)`` with an LPC guess:

0. real part and
1. imaginary part of ``rfft(window * context / rms) * input_gain`` – scaled so that a sinusoid
   of amplitude ``a`` (in RMS units) peaks at about ``a``;
2. ``log(|X| + 1e-3) / 4``: log-magnitude, which exposes quiet partials to the network;
3. real part and
4. imaginary part of the *LPC guess* (only when ``config.lpc_order > 0``): the spectrum of the
   next ``output_samples`` as a linear predictor of that order (autocorrelation method on the
   windowed context, or Burg's method on its last ``lpc_burg_samples``) continues the context
   (:mod:`nextblock.features.lpc`), in the units of the output below, on the output's bin grid:
   output bin ``k`` sits at input bin ``bin_stride * k``; the other input bins hold 0.

Output (``decode``): the network predicts the real FFT of the next ``output_samples`` samples
(no window), shape ``(output_bins, 2)`` = (real, imaginary), in the same amplitude units;
``irfft(spectrum * output_gain) * rms`` is the waveform, cut into ``outputs_blocks`` blocks.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from .. import _core
from .config import FeatureConfig
from .continuity import join_to_context
from .lpc import SILENCE_MEAN_SQUARE, burg_continuation, lpc_continuation
from .window import analysis_window

#: added to the context's RMS before dividing, so silence maps to (near) zero, not to noise.
RMS_FLOOR = 1e-5
#: offset inside the log-magnitude feature.
LOG_MAGNITUDE_FLOOR = 1e-3
#: the log-magnitude feature is divided by this, to keep it in about [-2, 1].
LOG_MAGNITUDE_DIVISOR = 4.0
#: feature channels per frequency bin of the context's spectrum (re, im, log-magnitude).
FEATURE_CHANNELS = 3
#: feature channels of the LPC guess (re, im), when the config has an ``lpc_order``.
LPC_CHANNELS = 2


class SpectralCodec:
    """The FFT pre-/post-processing for one :class:`FeatureConfig`.

    Stateless apart from the precomputed window and the C++ codec's buffers (which a lock guards);
    safe to share between threads.
    """

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.window = analysis_window(config.context_samples, config.window_fall_samples)
        #: multiplies the context's rfft so a sinusoid of amplitude a peaks at about a
        self.input_gain = np.float32(2.0 / float(self.window.sum()))
        #: multiplies the predicted spectrum before irfft (a peak of a -> amplitude a)
        self.output_gain = np.float32(config.output_samples / 2.0)
        # the window with the input gain folded in (the FFT is linear): one multiply less per call
        self._scaled_window = (self.window * self.input_gain).astype(np.float32)
        #: the C++ codec (None for an autocorrelation guess, which only the numpy path makes)
        self.core = None
        if config.lpc_order == 0 or config.lpc_burg_samples:
            self.core = _core.CodecCore(
                config.context_samples,
                config.output_samples,
                config.bin_stride,
                config.lpc_order,
                config.lpc_burg_samples,
                self._scaled_window,
                RMS_FLOOR,
                LOG_MAGNITUDE_FLOOR,
                LOG_MAGNITUDE_DIVISOR,
                SILENCE_MEAN_SQUARE,
                float(self.output_gain),
            )

    @property
    def feature_channels(self) -> int:
        """Channels per input bin: 3, plus 2 with an LPC guess (see the module docstring)."""
        return FEATURE_CHANNELS + (LPC_CHANNELS if self.config.lpc_order > 0 else 0)

    # ------------------------------------------------------------------ pre-processing
    def context_scale(self, context: np.ndarray) -> np.ndarray:
        """RMS (plus :data:`RMS_FLOOR`) of each context row.

        ``context``: ``(..., context_samples)`` float → returns ``(...,)`` float32.
        """
        context = np.asarray(context, dtype=np.float32)
        mean_square = np.einsum("...i,...i->...", context, context) / np.float32(context.shape[-1])
        return (np.sqrt(mean_square) + np.float32(RMS_FLOOR)).astype(np.float32)

    def encode(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Turn contexts into network inputs.

        Parameters
        ----------
        context:
            ``(..., context_samples)`` float, oldest sample first, newest last.

        Returns
        -------
        features:
            ``(..., input_bins, feature_channels)`` float32 (see the module docstring).
        scale:
            ``(...,)`` float32 – each context's RMS, needed by :meth:`decode`.
        """
        features, scale, _ = self.encode_with_guess(context)
        return features, scale

    def _checked_context(self, context: np.ndarray) -> np.ndarray:
        """``context`` as float32, refused unless its last axis holds ``context_samples``."""
        context = np.asarray(context, dtype=np.float32)
        if context.shape[-1] != self.config.context_samples:
            raise ValueError(f"context has {context.shape[-1]} samples, the model needs {self.config.context_samples}")
        return context

    def encode_with_guess(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`encode`, and the LPC guess as a waveform: ``(..., output_samples)`` float32 in the
        units of ``context`` (what the model's prediction is joined from, see
        :func:`nextblock.features.continuity.join_to_context`); ``None`` without an LPC order.

        Without a guess or with a Burg guess (every model from 3.0) this is one call into the C++
        core (``nextblock._core.CodecCore``, ``csrc/nextblock/codec.hpp``: FFTs included); the
        autocorrelation guess of older models takes the numpy path (:meth:`encode_reference`)."""
        if self.core is None:
            return self.encode_reference(context)
        context = self._checked_context(context)
        cfg = self.config
        lead = context.shape[:-1]
        features, scale, guess = self.core.encode(context.reshape(-1, cfg.context_samples))
        return (
            features.reshape(lead + features.shape[1:]),
            scale.reshape(lead),
            None if guess is None else guess.reshape(lead + (cfg.output_samples,)),
        )

    def encode_given_guess(self, context: np.ndarray, guess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`encode` with channels 3-4 made from ``guess`` instead of this config's LPC guess.

        For a network that corrects another linear guess (the two-sided model's: the gap filled
        by LSAR, then the samples that arrived after it; :func:`nextblock.features.twosided.two_sided_guess`).
        ``context`` ``(rows, context_samples)``, ``guess`` ``(rows, output_samples)`` in the units of
        ``context`` → ``features`` ``(rows, input_bins, 5)`` float32 and ``scale`` ``(rows,)``.
        The context's channels are computed without the config's own guess (no Burg fit wasted).
        """
        cfg = self.config
        if cfg.lpc_order <= 0:
            raise ValueError("this model has no guess channels")
        context = self._checked_context(np.atleast_2d(context))
        guess = np.atleast_2d(np.asarray(guess, dtype=np.float32))
        if guess.shape != (context.shape[0], cfg.output_samples):
            raise ValueError(f"guess has shape {guess.shape}, expected ({context.shape[0]}, {cfg.output_samples})")
        if getattr(self, "_plain", None) is None:
            import dataclasses

            self._plain = SpectralCodec(dataclasses.replace(cfg, lpc_order=0, lpc_burg_samples=0))
        plain, scale = self._plain.encode(context)
        features = np.zeros(plain.shape[:-1] + (self.feature_channels,), np.float32)
        features[..., :FEATURE_CHANNELS] = plain
        gain = (np.float32(1.0 / self.output_gain) / scale)[:, None]
        spectrum = scipy.fft.rfft(guess, axis=-1, workers=1) * gain
        features[:, :: cfg.bin_stride, FEATURE_CHANNELS] = spectrum.real
        features[:, :: cfg.bin_stride, FEATURE_CHANNELS + 1] = spectrum.imag
        return features, scale

    def encode_reference(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`encode_with_guess` in numpy alone: the reference the C++ path is tested against,
        and the path of models with an autocorrelation guess (``lpc_burg_samples == 0``)."""
        context = self._checked_context(context)
        scale = self.context_scale(context)
        windowed = context * (self._scaled_window / scale[..., None])
        # scipy.fft keeps float32 -> complex64 and is about twice as fast as numpy.fft here
        spectrum = scipy.fft.rfft(windowed, axis=-1, workers=1)
        features = np.empty(context.shape[:-1] + (self.config.input_bins, self.feature_channels), np.float32)
        features[..., 0] = spectrum.real
        features[..., 1] = spectrum.imag
        magnitude = np.abs(spectrum)
        magnitude += LOG_MAGNITUDE_FLOOR
        np.log(magnitude, out=magnitude)
        magnitude *= 1.0 / LOG_MAGNITUDE_DIVISOR
        features[..., 2] = magnitude
        guess = self._lpc_features(context, scale, windowed, features) if self.config.lpc_order > 0 else None
        return features, scale, guess

    def _lpc_features(
        self, context: np.ndarray, scale: np.ndarray, windowed: np.ndarray, features: np.ndarray
    ) -> np.ndarray:
        """Write the LPC guess's spectrum into channels 3-4 of ``features`` (in place); return the
        guess ``(..., output_samples)`` in the units of ``context``."""
        cfg = self.config
        rows = int(np.prod(context.shape[:-1], dtype=np.int64))
        # the polynomial does not depend on the level; the continuation has the level of its input
        if cfg.lpc_burg_samples:
            history = context.reshape(rows, cfg.context_samples)[:, cfg.context_samples - cfg.lpc_burg_samples :]
            guess = burg_continuation(history, cfg.lpc_order, cfg.output_samples)
        else:
            guess = lpc_continuation(
                context.reshape(rows, cfg.context_samples),
                windowed.reshape(rows, cfg.context_samples),
                cfg.lpc_order,
                cfg.output_samples,
                cfg.sample_rate_hz,
            )
        gain = (np.float32(1.0 / self.output_gain) / scale.reshape(rows))[:, None]
        guess_spectrum = scipy.fft.rfft(guess, axis=-1, workers=1) * gain
        lpc = features.reshape(rows, cfg.input_bins, -1)[..., FEATURE_CHANNELS:]  # a view: features is contiguous
        lpc[:] = 0.0
        lpc[:, :: cfg.bin_stride, 0] = guess_spectrum.real
        lpc[:, :: cfg.bin_stride, 1] = guess_spectrum.imag
        return guess.reshape(context.shape[:-1] + (cfg.output_samples,))

    # ----------------------------------------------------------------- post-processing
    def decode(self, spectrum: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Turn network outputs into blocks.

        Parameters
        ----------
        spectrum:
            ``(..., output_bins, 2)`` float – predicted (real, imaginary) spectrum.
        scale:
            ``(...,)`` float – the ``scale`` :meth:`encode` returned for the same contexts.

        Returns
        -------
        numpy.ndarray
            ``(..., outputs_blocks, frames_per_block)`` float32, the next blocks in order.
        """
        cfg = self.config
        spectrum = np.asarray(spectrum, dtype=np.float32)
        if spectrum.shape[-2:] != (cfg.output_bins, 2):
            raise ValueError(f"spectrum has shape {spectrum.shape}, expected (..., {cfg.output_bins}, 2)")
        # (re, im) pairs of contiguous float32 are complex64 in memory: view, don't copy
        complex_spectrum = np.ascontiguousarray(spectrum).view(np.complex64)[..., 0]
        waveform = scipy.fft.irfft(complex_spectrum, n=cfg.output_samples, axis=-1, workers=1)
        waveform *= (np.asarray(scale, dtype=np.float32) * self.output_gain)[..., None]
        return waveform.astype(np.float32, copy=False).reshape(
            spectrum.shape[:-2] + (cfg.outputs_blocks, cfg.frames_per_block)
        )

    def decode_joined(
        self,
        spectrum: np.ndarray,
        scale: np.ndarray,
        context: np.ndarray,
        guess: np.ndarray | None,
        guess_weight: float,
        ramp: np.ndarray | None,
    ) -> np.ndarray:
        """:meth:`decode` and the predictor's post-processing, in one C++ call where the model has
        one (``CodecCore.decode``; else numpy): blend ``guess_weight`` of the LPC ``guess`` in, join
        the start to the context (:func:`~nextblock.features.continuity.join_to_context` with
        ``ramp``; ``None``: no join), zero a row that is not finite.

        ``spectrum`` ``(rows, output_bins, 2)``, ``scale`` ``(rows,)``, ``context`` ``(rows,
        context_samples)``, ``guess`` ``(rows, output_samples)`` or ``None`` → ``(rows,
        outputs_blocks, frames_per_block)`` float32.
        """
        if self.core is None:
            return self.decode_joined_reference(spectrum, scale, context, guess, guess_weight, ramp)
        cfg = self.config
        horizon, _ = self.core.decode(spectrum, scale, guess, float(guess_weight), ramp, context)
        return horizon.reshape(spectrum.shape[0], cfg.outputs_blocks, cfg.frames_per_block)

    def decode_joined_reference(
        self,
        spectrum: np.ndarray,
        scale: np.ndarray,
        context: np.ndarray,
        guess: np.ndarray | None,
        guess_weight: float,
        ramp: np.ndarray | None,
    ) -> np.ndarray:
        """:meth:`decode_joined` in numpy alone (the reference of the C++ path; same arguments)."""
        blocks = self.decode(spectrum, scale)
        flat = blocks.reshape(blocks.shape[0], -1)
        if guess_weight:
            flat += np.float32(guess_weight) * (guess - flat)
        if ramp is not None:
            join_to_context(flat, context, ramp, guess)
        if not np.all(np.isfinite(blocks)):
            blocks[~np.all(np.isfinite(blocks), axis=(1, 2))] = 0.0
        return blocks
