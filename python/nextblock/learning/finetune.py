"""The fine-tuning step: one Keras model, one optimizer, the training side's loss.

:class:`FineTuner` owns the candidate model that keeps learning from the live stream. It uses
the training side's network (:func:`nextblock.model.architecture.build_model`) and loss
(:func:`nextblock.model.losses.make_loss`) unchanged, so a fine-tuned model is exactly the kind
of model offline training produces and exports the same way.

Shapes: ``features`` ``(batch, input_bins, channels)`` (3, or 5 with an LPC guess), ``targets`` ``(batch, output_samples)``
(see :func:`nextblock.model.data.windows_to_arrays`); the model outputs ``(batch, output_bins, 2)``.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..features.config import FeatureConfig


class FineTuner:
    """Trains a Keras NextBlock model one small batch at a time.

    Parameters
    ----------
    model:
        A ``keras.Model`` from :func:`nextblock.model.architecture.build_model`, with the weights
        of the model the clients run (so fine-tuning starts from it).
    config:
        Its feature sizes.
    learning_rate:
        Adam's learning rate; small (default 1e-4) so the model adapts without forgetting at once.
    clip_norm:
        Global gradient-norm clip (live audio has outliers: clicks, feedback).
    loss:
        ``loss(targets, predicted_spectrum) -> (batch,)``; default the training side's
        ``make_loss(config)``.
    """

    def __init__(self, model, config: FeatureConfig, learning_rate: float = 1e-4, clip_norm: float = 1.0, loss=None):
        import keras
        import tensorflow as tf

        from ..model.losses import make_loss

        self.model = model
        self.config = config
        self.loss = loss or make_loss(config)
        self.optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=clip_norm)
        self.steps = 0
        variables = model.trainable_variables

        @tf.function(reduce_retracing=True)
        def _step(features, targets):
            with tf.GradientTape() as tape:
                value = tf.reduce_mean(self.loss(targets, model(features, training=True)))
            grads = tape.gradient(value, variables)
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            return value

        @tf.function(reduce_retracing=True)
        def _predict(features):
            return model(features, training=False)

        self._step = _step
        self._predict = _predict

    def train_step(self, features: np.ndarray, targets: np.ndarray) -> float:
        """One optimizer step on a batch; returns the batch loss (before the step)."""
        value = self._step(np.asarray(features, np.float32), np.asarray(targets, np.float32))
        self.steps += 1
        return float(value)

    def predict_spectrum(self, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Keras forward pass, ``(n, input_bins, channels)`` → ``(n, output_bins, 2)`` float32 (a quick
        pre-check before the exported model is scored through LiteRT)."""
        parts = [
            np.asarray(self._predict(features[i : i + batch_size])) for i in range(0, features.shape[0], batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.config.output_bins, 2), np.float32)

    def get_weights(self) -> list[np.ndarray]:
        """A copy of the model's weights (to roll back to)."""
        return [w.copy() for w in self.model.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Restore weights from :meth:`get_weights` (the optimizer state is kept)."""
        self.model.set_weights(weights)

    def weights_bytes(self) -> bytes:
        """The model's weights as a Keras ``.weights.h5`` file, in memory (for the learner state)."""
        with tempfile.TemporaryDirectory(prefix="nextblock-learn-") as tmp:
            path = os.path.join(tmp, "model.weights.h5")
            self.model.save_weights(path)
            with open(path, "rb") as f:
                return f.read()
