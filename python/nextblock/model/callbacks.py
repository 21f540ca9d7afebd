"""Keras callbacks for training: a tqdm progress bar (one bar per epoch)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def make_tqdm_callback(steps_per_epoch: int, epochs: int):
    """A ``keras.callbacks.Callback`` that shows one tqdm bar per epoch with the running loss,
    then prints a one-line summary with the validation metrics."""
    import keras

    class TqdmProgress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            # redraw at most every 0.1 s on a terminal, every 30 s into a log file
            interval = 0.1 if sys.stderr.isatty() else 30.0
            self._bar = tqdm(
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="step",
                leave=False,
                mininterval=interval,
            )

        def on_train_batch_end(self, batch, logs=None):
            self._bar.update(1)
            if logs and batch % 20 == 0:
                self._bar.set_postfix({k: f"{float(v):.4g}" for k, v in logs.items()})

        def on_epoch_end(self, epoch, logs=None):
            self._bar.close()
            summary = "  ".join(f"{k}={float(v):.4g}" for k, v in (logs or {}).items())
            tqdm.write(f"epoch {epoch + 1}/{epochs}: {summary}")

    return TqdmProgress()
