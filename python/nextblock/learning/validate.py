"""Scoring models on the held-back window: the evaluation harness's ``snr_db``, pooled.

For every held-back example window (context + continuation, from
:meth:`nextblock.learning.replay.ReplayBuffer.holdout_windows`) the model predicts the
continuation from the context – both blocks it outputs: the one played during a loss and the
one the cross-fade back into real audio uses – and the error energy is pooled over all windows:

    snr_db = 10 log10( Σ reference² / Σ (reference - prediction)² )

computed with :func:`nextblock.evaluation.metrics.energy_sums` and
:func:`~nextblock.evaluation.metrics.snr_from_energies`, the functions behind the harness's
``snr_db``. Higher is better; a model that predicts silence scores 0 dB.

The decisive comparison runs both models through the path the clients use – LiteRT via
:class:`nextblock.model.runner.BlockPredictor` on the exported ``.tflite`` files
(:func:`score_model_file`); :func:`score_keras` is a cheap pre-check on the Keras candidate that
saves an export when the candidate is clearly not better.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..evaluation.metrics import energy_sums, snr_from_energies
from ..features.config import FeatureConfig
from ..features.continuity import boundary_ramp, default_ramp_samples, join_to_context
from ..features.spectral import SpectralCodec


@dataclass(frozen=True)
class Score:
    """A model's result on one held-back window set.

    Attributes
    ----------
    snr_db:
        Pooled SNR of the predicted continuations, dB.
    windows:
        Example windows scored.
    seconds_scored:
        Audio predicted in total (``windows × output_samples / sample_rate``), s.
    """

    snr_db: float
    windows: int
    seconds_scored: float


def pooled_snr_db(references: np.ndarray, predictions: np.ndarray) -> float:
    """``snr_db`` pooled over rows: ``references``, ``predictions`` ``(k, n)`` → dB."""
    references = np.asarray(references, np.float64).reshape(-1)
    predictions = np.asarray(predictions, np.float64).reshape(-1)
    return snr_from_energies(*energy_sums(references, predictions))


def score_predictions(windows: np.ndarray, predictions: np.ndarray, config: FeatureConfig) -> Score:
    """Score continuations ``predictions`` ``(k, output_samples)`` against ``windows`` ``(k, window)``."""
    references = windows[:, config.context_samples : config.context_samples + config.output_samples]
    return Score(
        pooled_snr_db(references, predictions),
        int(windows.shape[0]),
        windows.shape[0] * config.output_samples / config.sample_rate_hz,
    )


def score_predict_fn(
    predict: Callable[[np.ndarray], np.ndarray], windows: np.ndarray, config: FeatureConfig, rows_per_call: int = 64
) -> Score:
    """Score a client-style predictor.

    ``predict(context)``: ``(rows, context_samples)`` float32 → ``(rows, outputs_blocks, frames_per_block)``
    (the :class:`~nextblock.model.runner.BlockPredictor` contract; the client batches channels
    the same way). Called with ``rows_per_call`` windows at a time.
    """
    context_samples = config.context_samples
    predictions = np.empty((windows.shape[0], config.output_samples), np.float32)
    for start in range(0, windows.shape[0], rows_per_call):
        part = np.ascontiguousarray(windows[start : start + rows_per_call, :context_samples], np.float32)
        out = np.asarray(predict(part), np.float32)
        predictions[start : start + part.shape[0]] = out.reshape(part.shape[0], -1)[:, : config.output_samples]
    return score_predictions(windows, predictions, config)


def score_model_file(
    model_path: str | os.PathLike, windows: np.ndarray, config: FeatureConfig, num_threads: int = 1
) -> Score:
    """Score a ``.tflite`` through LiteRT exactly as a client runs it (``BlockPredictor``)."""
    from ..model.runner import BlockPredictor

    predictor = BlockPredictor(os.fspath(model_path), num_threads=num_threads)
    return score_predict_fn(predictor.predict, windows, config)


def score_keras(finetuner, windows: np.ndarray, config: FeatureConfig, ramp_samples: int | None = None) -> Score:
    """Score the Keras candidate of a :class:`~nextblock.learning.finetune.FineTuner` (batched).

    Post-processed as :meth:`nextblock.model.runner.BlockPredictor.predict` does (decode, then the
    boundary ramp of ``ramp_samples``, default: what the exporter writes into the model's
    metadata), so that on identical weights it scores what LiteRT scores.
    """
    if ramp_samples is None:
        ramp_samples = default_ramp_samples(config.lpc_order)
    codec = SpectralCodec(config)
    contexts = windows[:, : config.context_samples]
    features, scale, guess = codec.encode_with_guess(contexts)
    spectrum = finetuner.predict_spectrum(features)
    predictions = codec.decode(spectrum, scale).reshape(windows.shape[0], -1)
    if ramp_samples > 0:
        join_to_context(predictions, contexts, boundary_ramp(ramp_samples), guess)
    return score_predictions(windows, predictions, config)


def windows_from_signal(
    audio: np.ndarray,
    config: FeatureConfig,
    hop_samples: int | None = None,
    max_windows: int | None = None,
    min_context_rms: float = 2e-4,
) -> np.ndarray:
    """Evenly spaced example windows ``(k, context + output samples)`` over a mono signal ``(n,)``
    (non-silent contexts only; with ``max_windows`` an evenly spaced subset) – to score models
    on a recording outside the stream."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    window = config.context_samples + config.output_samples
    hop = hop_samples or config.output_samples
    if audio.shape[0] < window:
        return np.zeros((0, window), np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(audio, window)[::hop]
    rms = np.sqrt(np.mean(np.square(windows[:, : config.context_samples]), axis=1))
    windows = windows[rms >= min_context_rms]
    if max_windows is not None and windows.shape[0] > max_windows:
        windows = windows[np.linspace(0, windows.shape[0] - 1, max_windows).round().astype(int)]
    return np.ascontiguousarray(windows, np.float32)
