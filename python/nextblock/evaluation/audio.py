"""Reading evaluation audio and making test signals.

>>> audio = load_audio("clip.ogg", sample_rate_hz=48000)          # doctest: +SKIP
>>> audio.shape                                                     # doctest: +SKIP
(1, 96000)
"""

from __future__ import annotations

import os

import numpy as np
import scipy.signal
import soundfile

#: extensions picked up when a directory is given
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64")


def find_audio_files(paths: list[str | os.PathLike]) -> list[str]:
    """Expand files and directories (recursively, sorted) into audio file paths.

    Files given explicitly are kept whatever their extension (a bad one is reported when read);
    inside directories only :data:`AUDIO_EXTENSIONS` are taken. Missing paths are kept too, so
    the caller reports them.
    """
    found: list[str] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            for root, _dirs, files in sorted(os.walk(path)):
                found.extend(
                    os.path.join(root, name) for name in sorted(files) if name.lower().endswith(AUDIO_EXTENSIONS)
                )
        else:
            found.append(path)
    return found


def load_audio(path: str | os.PathLike, sample_rate_hz: int, mono: bool = True) -> np.ndarray:
    """Read an audio file (anything libsndfile reads), resample and optionally mix to mono.

    Parameters
    ----------
    path:
        Audio file.
    sample_rate_hz:
        Target rate; resampled with ``librosa.resample`` (soxr, high quality) if different.
    mono:
        Average the channels into one.

    Returns
    -------
    np.ndarray, shape ``(n_channels, n_samples)``, float32
        ``n_channels == 1`` when ``mono``.

    Raises
    ------
    ValueError
        If the file cannot be read or holds no samples (one-line message).
    """
    try:
        data, file_rate_hz = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except Exception as error:  # noqa: BLE001 - libsndfile raises several types
        raise ValueError(
            f"cannot read {os.fspath(path)!r}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None
    if data.shape[0] == 0:
        raise ValueError(f"{os.fspath(path)!r} holds no samples")
    audio = data.T
    if mono:
        audio = audio.mean(axis=0, keepdims=True)
    if file_rate_hz != sample_rate_hz:
        import librosa

        audio = librosa.resample(audio, orig_sr=file_rate_hz, target_sr=sample_rate_hz, axis=-1)
    return np.ascontiguousarray(audio, dtype=np.float32)


def log_sine_sweep(
    duration_s: float, sample_rate_hz: int, f_start_hz: float = 20.0, f_end_hz: float = 20000.0, amplitude: float = 0.5
) -> np.ndarray:
    """Logarithmic (exponential) sine sweep for the THD+N test.

    ``f_end_hz`` is capped at 0.45 × the sample rate.

    Returns
    -------
    np.ndarray, shape ``(round(duration_s * sample_rate_hz),)``, float32
    """
    f_end_hz = min(f_end_hz, 0.45 * sample_rate_hz)
    t = np.arange(int(round(duration_s * sample_rate_hz))) / sample_rate_hz
    sweep = scipy.signal.chirp(t, f0=f_start_hz, t1=duration_s, f1=f_end_hz, method="logarithmic", phi=-90)
    return (amplitude * sweep).astype(np.float32)
