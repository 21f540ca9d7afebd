"""Runtime side: :class:`BlockPredictor` runs an exported NextBlock model with LiteRT.

No TensorFlow here – only ``ai_edge_litert``'s ``Interpreter`` and numpy (FFTs). One predictor
is self-contained (interpreter, tensors, codec): a hot-swap creates and warms up a new one off
the audio path, then replaces the reference in one assignment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from ..features.config import FeatureConfig
from ..features.continuity import OFFSET_RAMP_SAMPLES, boundary_ramp
from ..features.spectral import SpectralCodec
from . import default_model_path
from .metadata import ModelFileError, read_metadata


class BlockPredictor:
    """Predict the next blocks of each channel from its recent context.

    Parameters
    ----------
    model_path:
        The ``.tflite`` file; ``None`` → :func:`nextblock.model.default_model_path`.
    num_threads:
        LiteRT CPU threads (keep 1 on the audio path).
    warm_up:
        Run a few predictions on silence and noise right away, so the first real call is not
        slowed by lazy initialisation.

    Raises ``FileNotFoundError`` / :class:`~nextblock.model.metadata.ModelFileError` (a
    ``ValueError``) with a one-line reason for a missing, corrupt or incompatible model.
    """

    def __init__(self, model_path: str | Path | None = None, num_threads: int = 1, warm_up: bool = True):
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.metadata: dict[str, Any] = read_metadata(self.model_path)
        md = self.metadata
        try:
            self.config = FeatureConfig(
                frames_per_block=md["frames_per_block"],
                context_samples=md["context_samples"],
                sample_rate_hz=md["sample_rate_hz"],
                outputs_blocks=md["outputs_blocks"],
                window_fall_samples=int(md.get("window_fall_samples", FeatureConfig.window_fall_samples)),
                lpc_order=int(md.get("lpc_order", 0)),
                lpc_burg_samples=int(md.get("lpc_burg_samples", 0)),
            )
        except ValueError as err:
            raise ModelFileError(f"{self.model_path}: inconsistent metadata: {err}") from None
        self.codec = SpectralCodec(self.config)
        #: samples over which the prediction's start is pulled onto the context (0: off)
        #: (models whose metadata has no ``boundary_ramp_samples`` predate it and used the offset ramp)
        self.boundary_ramp_samples = int(md.get("boundary_ramp_samples", OFFSET_RAMP_SAMPLES))
        self._ramp = boundary_ramp(self.boundary_ramp_samples) if self.boundary_ramp_samples > 0 else None
        #: share of the LPC guess blended into the network's output (metadata ``guess_weight``, 0: none)
        self.guess_weight = np.float32(md.get("guess_weight", 0.0)) if self.config.lpc_order > 0 else np.float32(0.0)
        try:
            self._interpreter = Interpreter(model_path=str(self.model_path), num_threads=int(num_threads))
        except (ValueError, RuntimeError) as err:
            raise ModelFileError(f"{self.model_path}: LiteRT cannot load it: {err}") from None
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        if tuple(inp["shape"][1:]) != (self.config.input_bins, self.codec.feature_channels) or tuple(
            out["shape"][1:]
        ) != (self.config.output_bins, 2):
            raise ModelFileError(
                f"{self.model_path}: tensor shapes {tuple(inp['shape'])} -> {tuple(out['shape'])} "
                f"do not match its metadata (context {self.config.context_samples} samples)"
            )
        self._input_index = inp["index"]
        self._output_index = out["index"]
        self._batch = 0
        self._ensure_batch(1)
        if warm_up:
            self.warm_up()

    # ------------------------------------------------------------------ properties
    @property
    def frames_per_block(self) -> int:
        """Samples per block the model predicts (e.g. 128)."""
        return self.config.frames_per_block

    @property
    def context_samples(self) -> int:
        """Past samples per channel :meth:`predict` needs (newest last)."""
        return self.config.context_samples

    @property
    def sample_rate_hz(self) -> int:
        """Sample rate the model was trained at."""
        return self.config.sample_rate_hz

    @property
    def outputs_blocks(self) -> int:
        """Blocks returned per call (2: the next one and the one after)."""
        return self.config.outputs_blocks

    @property
    def horizon_samples(self) -> int:
        """Samples one call predicts (``outputs_blocks · frames_per_block``, 256): the model works
        on samples; :func:`~nextblock.model.stream.stream_predictor` cuts any block size from it."""
        return self.config.output_samples

    @property
    def model_version(self) -> str:
        """The model's version string from its metadata."""
        return str(self.metadata["model_version"])

    @property
    def name(self) -> str:
        """The model's name (metadata ``name``, else the file stem)."""
        return str(self.metadata.get("name", self.model_path.stem))

    # ------------------------------------------------------------------ inference
    def _ensure_batch(self, channels: int) -> None:
        """Resize the interpreter's tensors for ``channels`` rows (only when that number changes)."""
        if channels != self._batch:
            self._interpreter.resize_tensor_input(
                self._input_index, [channels, self.config.input_bins, self.codec.feature_channels]
            )
            self._interpreter.allocate_tensors()
            self._batch = channels

    def predict(self, context: np.ndarray) -> np.ndarray:
        """Predict the next ``outputs_blocks`` blocks of every channel.

        Parameters
        ----------
        context:
            ``(channels, context_samples)`` float32, oldest sample first (a 1-D
            ``(context_samples,)`` array is taken as one channel).

        Returns
        -------
        numpy.ndarray
            ``(channels, outputs_blocks, frames_per_block)`` float32, always finite (a channel
            whose prediction is not finite gets zeros).
        """
        context = np.asarray(context, dtype=np.float32)
        if context.ndim == 1:
            context = context[None, :]
        if context.ndim != 2 or context.shape[1] != self.config.context_samples:
            raise ValueError(f"context must have shape (channels, {self.config.context_samples}), got {context.shape}")
        if not _core.all_finite(context):
            context = np.nan_to_num(context, nan=0.0, posinf=0.0, neginf=0.0)
        self._ensure_batch(context.shape[0])
        features, scale, guess = self.codec.encode_with_guess(context)
        self._interpreter.set_tensor(self._input_index, features)
        self._interpreter.invoke()
        return self.codec.decode_joined(
            self._interpreter.get_tensor(self._output_index), scale, context, guess, self.guess_weight, self._ramp
        )

    def predict_with_guess(self, context: np.ndarray, guess: np.ndarray) -> np.ndarray:
        """:meth:`predict` with the network correcting ``guess`` instead of its own LPC guess.

        ``context`` ``(channels, context_samples)``, ``guess`` ``(channels, horizon_samples)``
        float32, a linear guess of the horizon that continues the context (the two-sided model's:
        :func:`nextblock.features.twosided.two_sided_guess`) → ``(channels, outputs_blocks,
        frames_per_block)`` float32, starting as ``guess`` and cross-faded into the network's output
        over the model's boundary ramp, with the model's ``guess_weight`` of ``guess`` blended in,
        always finite. Needs a model with guess channels.
        """
        context = np.atleast_2d(np.asarray(context, dtype=np.float32))
        guess = np.atleast_2d(np.asarray(guess, dtype=np.float32))
        if not (_core.all_finite(context) and _core.all_finite(guess)):
            context = np.nan_to_num(context, nan=0.0, posinf=0.0, neginf=0.0)
            guess = np.nan_to_num(guess, nan=0.0, posinf=0.0, neginf=0.0)
        self._ensure_batch(context.shape[0])
        features, scale = self.codec.encode_given_guess(context, guess)
        self._interpreter.set_tensor(self._input_index, features)
        self._interpreter.invoke()
        return self.codec.decode_joined(
            self._interpreter.get_tensor(self._output_index), scale, context, guess, self.guess_weight, self._ramp
        )

    def predict_reference(self, context: np.ndarray) -> np.ndarray:
        """:meth:`predict` with the numpy codec and post-processing: the reference the C++ path is
        tested against. ``(channels, context_samples)`` → ``(channels, outputs_blocks, frames_per_block)``."""
        context = np.nan_to_num(np.atleast_2d(np.asarray(context, dtype=np.float32)), nan=0.0, posinf=0.0, neginf=0.0)
        self._ensure_batch(context.shape[0])
        features, scale, guess = self.codec.encode_reference(context)
        self._interpreter.set_tensor(self._input_index, features)
        self._interpreter.invoke()
        return self.codec.decode_joined_reference(
            self._interpreter.get_tensor(self._output_index), scale, context, guess, self.guess_weight, self._ramp
        )

    def predict_horizon(self, context: np.ndarray) -> np.ndarray:
        """:meth:`predict` as one continuous segment: ``(channels, horizon_samples)`` float32."""
        blocks = self.predict(context)
        return blocks.reshape(blocks.shape[0], self.horizon_samples)

    def warm_up(self, calls: int = 8) -> None:
        """Run ``calls`` predictions on silence and noise (one channel) to settle caches."""
        rng = np.random.default_rng(0)
        for i in range(calls):
            context = (
                np.zeros((1, self.config.context_samples), np.float32)
                if i % 2
                else (0.1 * rng.standard_normal((1, self.config.context_samples))).astype(np.float32)
            )
            self.predict(context)
