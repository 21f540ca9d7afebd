"""What the live loop calls to guess the next two blocks, and how it gets one.

The loop only relies on this small interface (the one of
:class:`nextblock.model.runner.BlockPredictor`):

``frames_per_block`` (int)
    Samples per block the model predicts, e.g. 128.
``context_samples`` (int)
    Past samples per channel the model reads, newest last, e.g. 1024.
``sample_rate_hz`` (int)
    Rate the model was trained at, e.g. 48000.
``model_version`` (str)
    Something that identifies the weights, shown in the status line.
``predict(context)``
    ``context``: float32 ``(channels, context_samples)``, newest sample last.
    Returns float32 ``(channels, 2, frames_per_block)``: row 0 guesses the next block, row 1 the
    block after it (the cross-fade block). May return an internal buffer that the next call
    overwrites: the caller copies what it keeps.

Two implementations live here:

* :func:`load_model_predictor` – the shipped path: ``BlockPredictor`` over a TFLite model, run by
  LiteRT (never TensorFlow), fitted to the stream's block size and rate by
  :func:`fit_to_stream` (:func:`nextblock.model.stream.stream_predictor`'s adapters cut or chain
  the model's fixed horizon); without ``--model``, :func:`choose_shipped_model` picks the shipped
  model that serves the stream with the fewest model calls and says which.
* :class:`RepeatPredictor` – a deterministic stand-in without a model (repeats the newest
  block). For tests, the demo and for developing while no model is available; it is *not* a
  concealer anyone should ship.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import AttachError, IncompatibleModel


@runtime_checkable
class Predictor(Protocol):
    """The interface the live loop needs (see the module docstring for the contract)."""

    frames_per_block: int
    context_samples: int
    sample_rate_hz: int
    model_version: str

    def predict(self, context: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        ...


class RepeatPredictor:
    """Predicts that the newest block repeats, twice. Deterministic, allocation-free per call.

    Parameters
    ----------
    frames_per_block:
        Samples per block.
    sample_rate_hz:
        Nominal rate (only checked against the stream).
    context_samples:
        Context length it asks for (only the newest ``frames_per_block`` are used). At least one
        block.
    channels_hint:
        Channels to pre-allocate the output buffer for; another channel count re-allocates once.
    gain:
        Factor applied to the repeated block (1.0: plain repeat). Tests use a gain other than
        one to tell two "models" apart.
    version:
        Value of :attr:`model_version`.
    """

    def __init__(
        self,
        frames_per_block: int,
        sample_rate_hz: int = 48000,
        context_samples: int | None = None,
        channels_hint: int = 2,
        gain: float = 1.0,
        version: str = "repeat",
    ):
        if frames_per_block <= 0:
            raise ValueError(f"frames_per_block must be positive, got {frames_per_block}")
        self.frames_per_block = int(frames_per_block)
        self.sample_rate_hz = int(sample_rate_hz)
        self.context_samples = int(context_samples if context_samples is not None else 8 * frames_per_block)
        if self.context_samples < self.frames_per_block:
            raise ValueError("context_samples must hold at least one block")
        self.gain = np.float32(gain)
        self.model_version = str(version)
        self._out = np.zeros((channels_hint, 2, self.frames_per_block), np.float32)

    def predict(self, context: np.ndarray) -> np.ndarray:
        """``context`` ``(channels, context_samples)`` → ``(channels, 2, frames_per_block)``."""
        channels = context.shape[0]
        if self._out.shape[0] != channels:
            self._out = np.zeros((channels, 2, self.frames_per_block), np.float32)
        newest = context[:, -self.frames_per_block :]
        np.multiply(newest, self.gain, out=self._out[:, 0, :])
        self._out[:, 1, :] = self._out[:, 0, :]
        return self._out


def default_model_path() -> str:
    """The shipped model's path (``nextblock.model.default_model_path()``).

    Raises
    ------
    AttachError
        When the model package is not installed or ships no model.
    """
    try:
        from ..model import default_model_path as shipped
    except ImportError as err:
        raise AttachError(
            "no shipped model available (nextblock.model.default_model_path is missing): pass --model PATH "
            f"or --predictor repeat for a model-free test run ({err})"
        ) from None
    try:
        path = os.fspath(shipped())
    except FileNotFoundError as err:
        raise AttachError(
            f"no shipped model: {err}; pass --model PATH (or --predictor repeat for a test run)"
        ) from None
    if not os.path.isfile(path):
        raise AttachError(f"the shipped model {path} does not exist: pass --model PATH")
    return path


def check_model_file(path: str | os.PathLike) -> object | None:
    """Read the model's metadata before building an interpreter (cheap, clear errors).

    Uses ``nextblock.model.metadata.read_metadata`` when that module exists; returns its result
    (a mapping with at least frames per block, context and sample rate) or ``None`` when the
    module is not there (the predictor's own properties are checked after loading instead).

    Raises
    ------
    IncompatibleModel
        Missing, empty or unreadable file, or metadata that cannot be read.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IncompatibleModel(f"model {path} does not exist")
    if os.path.getsize(path) == 0:
        raise IncompatibleModel(f"model {path} is empty")
    try:
        from ..model.metadata import read_metadata
    except ImportError:
        return None
    try:
        meta = read_metadata(path)
    except Exception as err:  # any failure means: not a NextBlock model we can run
        raise IncompatibleModel(f"model {path} has no readable NextBlock metadata: {err}") from None
    return meta


def load_model_predictor(path: str | os.PathLike | None, num_threads: int = 1) -> Predictor:
    """Build ``nextblock.model.runner.BlockPredictor`` for ``path`` (``None``: the shipped model).

    Not real-time: reads the file, builds a LiteRT interpreter and allocates its tensors. Call it
    off the hot path (at start, or in the model loader thread).

    Raises
    ------
    AttachError
        The runner module is missing.
    IncompatibleModel
        The file is missing, corrupt or not a NextBlock model.
    """
    if path is None:
        path = default_model_path()
    check_model_file(path)
    try:
        from ..model.runner import BlockPredictor
    except ImportError as err:
        raise AttachError(
            f"the model runner (nextblock.model.runner.BlockPredictor) is not available: {err}; "
            "use --predictor repeat for a model-free test run"
        ) from None
    try:
        return BlockPredictor(model_path=os.fspath(path), num_threads=num_threads)
    except (AttachError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # LiteRT raises ValueError/RuntimeError for corrupt flatbuffers
        raise IncompatibleModel(f"cannot load model {path}: {type(err).__name__}: {err}") from None


#: live streams of blocks shorter than this reuse a prediction until this many samples came in
#: (at 16 frames the model runs on every 4th block; ``nextblock.model.stream``, step 3)
LIVE_MIN_REFRESH_SAMPLES = 64


def shipped_models() -> list[str]:
    """Every shipped model file (``*.tflite`` next to the default model), the default first."""
    default = default_model_path()
    folder = os.path.dirname(default)
    others = sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.endswith(".tflite") and os.path.join(folder, f) != default
    )
    return [default, *others]


def choose_shipped_model(frames_per_block: int, sample_rate_hz: int) -> tuple[str, str]:
    """The shipped model that serves this stream best (:func:`nextblock.model.stream.choose_model`)
    and a one-line reason naming it, its block size, rate and model calls per prediction.

    Raises
    ------
    IncompatibleModel
        No shipped model serves the stream (the message lists every model's reason).
    """
    from ..model.stream import choose_model

    try:
        path, why = choose_model(shipped_models(), frames_per_block, sample_rate_hz)
    except ValueError as err:
        raise IncompatibleModel(str(err)) from None
    return os.fspath(path), why


def fit_to_stream(
    predictor: Predictor, frames_per_block: int, sample_rate_hz: int, what: str = "the model"
) -> Predictor:
    """The predictor to run for a stream of this geometry.

    A model predictor (``BlockPredictor``: it has ``predict_horizon``) is wrapped in a
    :func:`nextblock.model.stream.stream_predictor` for the stream's block size and rate (any
    block of 16-1024 frames, any rate in its metadata's ``sample_rates_hz``); an already fitted
    one is re-fitted from its model; anything else must match exactly
    (:func:`check_stream_compatible`).

    Raises
    ------
    IncompatibleModel
        The model cannot serve the stream (the message says why and what to change).
    """
    from ..model.stream import is_stream_predictor, stream_predictor

    fitted = is_stream_predictor(predictor)
    model = predictor.model if fitted else predictor
    if not hasattr(model, "predict_horizon"):
        check_stream_compatible(predictor, frames_per_block, sample_rate_hz, what)
        return predictor
    if fitted and (predictor.frames_per_block, predictor.sample_rate_hz) == (frames_per_block, sample_rate_hz):
        return predictor
    try:
        return stream_predictor(model, frames_per_block, sample_rate_hz, min_refresh_samples=LIVE_MIN_REFRESH_SAMPLES)
    except ValueError as err:
        raise IncompatibleModel(f"{what} cannot serve this stream: {err}") from None


def check_stream_compatible(
    predictor: Predictor, frames_per_block: int, sample_rate_hz: int, what: str = "the model"
) -> None:
    """Refuse a model that cannot serve a stream of this geometry.

    Channel counts are never a problem (the model runs per channel, batched). Block size and
    sample rate must match exactly: NextBlock does not resample or re-block (a resampler would add
    latency and its own artefacts at block edges), so it refuses and says what to change.

    Raises
    ------
    IncompatibleModel
        With a message naming both values and the fix.
    """
    if predictor.frames_per_block != frames_per_block:
        raise IncompatibleModel(
            f"{what} predicts {predictor.frames_per_block}-frame blocks but the stream uses {frames_per_block} "
            f"(JackTrip --bufsize); re-blocking is not supported: refusing. Use a model trained for "
            f"{frames_per_block} frames or run JackTrip with --bufsize {predictor.frames_per_block}"
        )
    if predictor.sample_rate_hz != sample_rate_hz:
        raise IncompatibleModel(
            f"{what} was trained at {predictor.sample_rate_hz} Hz but the stream runs at {sample_rate_hz} Hz; "
            f"resampling is not supported: refusing. Use a model trained at {sample_rate_hz} Hz or run the "
            f"JACK server at {predictor.sample_rate_hz} Hz"
        )
    if predictor.context_samples < frames_per_block:
        raise IncompatibleModel(f"{what} reads only {predictor.context_samples} samples, less than one block")


def warm_up(predictor: Predictor, channels: int, calls: int = 20, seed: int = 0, pause_s: float = 0.0) -> None:
    """Run ``calls`` predictions on low-level noise so that first-call costs (lazy allocation,
    page faults, caches) are paid before the predictor meets a deadline.

    ``pause_s`` > 0 sleeps between calls: off the hot path (the model loader thread) this hands
    the GIL and the CPU back to the live loop between two predictions."""
    import time

    rng = np.random.default_rng(seed)
    context = (rng.standard_normal((channels, predictor.context_samples)) * 0.01).astype(np.float32)
    for _ in range(calls):
        out = predictor.predict(context)
        if pause_s:
            time.sleep(pause_s)
    expected = (channels, 2, predictor.frames_per_block)
    if tuple(out.shape) != expected:
        raise IncompatibleModel(f"the model returned shape {tuple(out.shape)}, expected {expected}")
