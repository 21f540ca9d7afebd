"""Optional perceptual scores: ViSQOL (audio mode) and PLCMOS. Never a crash when missing.

* :func:`visqol_mos` – ViSQOL v3 audio mode (MOS-LQO, 1..5) through the pure-Python
  ``visqol-python`` package (its SVR model ships in the wheel); signals are resampled to 48 kHz.
* :func:`plcmos_mos` – Microsoft's PLCMOS v2 (1..5, speech only, no reference) through
  ``speechmos`` (its ONNX model ships in the wheel; needs ``onnxruntime``); resampled to 16 kHz.
  PLCMOS averages 15 random "rater embeddings"; they are drawn from a fixed seed here so the
  score is repeatable.

When a package is missing or fails, the functions warn once (:class:`MetricUnavailableWarning`)
and return ``None``, which the harness writes as ``null``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

VISQOL_SAMPLE_RATE_HZ = 48000
PLCMOS_SAMPLE_RATE_HZ = 16000
#: seed of the PLCMOS rater embeddings (repeatable scores)
PLCMOS_SEED = 0


class MetricUnavailableWarning(UserWarning):
    """A perceptual metric could not be computed (package missing or failing)."""


_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, MetricUnavailableWarning, stacklevel=3)


def _resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if from_hz == to_hz:
        return x
    import librosa

    return librosa.resample(x, orig_sr=from_hz, target_sr=to_hz)


@functools.lru_cache(maxsize=1)
def _visqol_api():
    from visqol import VisqolApi

    api = VisqolApi()
    api.create(mode="audio")
    return api


@functools.lru_cache(maxsize=1)
def _plcmos_model():
    from speechmos.plcmos import PLCMOS

    return PLCMOS()


def visqol_available() -> bool:
    """Whether :func:`visqol_mos` can run here."""
    try:
        _visqol_api()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def plcmos_available() -> bool:
    """Whether :func:`plcmos_mos` can run here."""
    try:
        _plcmos_model()
        return True
    except Exception:  # noqa: BLE001
        return False


def visqol_mos(reference: np.ndarray, estimate: np.ndarray, sample_rate_hz: int) -> float | None:
    """ViSQOL audio-mode MOS-LQO of ``estimate`` against ``reference`` (shape ``(n_samples,)``).

    Returns ``None`` (with a one-time warning) if ``visqol-python`` is missing or fails.
    """
    try:
        api = _visqol_api()
    except Exception as error:  # noqa: BLE001
        _warn_once(
            "visqol", f"ViSQOL unavailable ({type(error).__name__}: {error}); install visqol-python – reporting null"
        )
        return None
    try:
        ref = _resample(reference, sample_rate_hz, VISQOL_SAMPLE_RATE_HZ)
        est = _resample(estimate, sample_rate_hz, VISQOL_SAMPLE_RATE_HZ)
        return float(api.measure_from_arrays(ref, est, VISQOL_SAMPLE_RATE_HZ).moslqo)
    except Exception as error:  # noqa: BLE001
        _warn_once("visqol-run", f"ViSQOL failed ({type(error).__name__}: {error}) – reporting null")
        return None


def plcmos_mos(estimate: np.ndarray, sample_rate_hz: int) -> float | None:
    """PLCMOS v2 of a (concealed) speech signal ``estimate``, shape ``(n_samples,)``.

    Returns ``None`` (with a one-time warning) if ``speechmos``/``onnxruntime`` are missing
    or fail.
    """
    try:
        model = _plcmos_model()
    except Exception as error:  # noqa: BLE001
        _warn_once(
            "plcmos",
            f"PLCMOS unavailable ({type(error).__name__}: {error}); install speechmos and onnxruntime – reporting null",
        )
        return None
    try:
        audio = np.clip(_resample(estimate, sample_rate_hz, PLCMOS_SAMPLE_RATE_HZ), -1.0, 1.0)
        state = np.random.get_state()
        np.random.seed(PLCMOS_SEED)
        try:
            return float(model.get_mos(audio.astype(np.float32), PLCMOS_SAMPLE_RATE_HZ))
        finally:
            np.random.set_state(state)
    except Exception as error:  # noqa: BLE001
        _warn_once("plcmos-run", f"PLCMOS failed ({type(error).__name__}: {error}) – reporting null")
        return None
