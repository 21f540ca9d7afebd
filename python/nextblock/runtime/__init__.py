"""The live predictor next to JackTrip (``python -m nextblock.attach``).

One module per job:

* :mod:`~nextblock.runtime.hub`        – the live loop: every stream of a process, batched predictions
* :mod:`~nextblock.runtime.schedule`   – per stream: when to predict which block (just-in-time / speculative)
* :mod:`~nextblock.runtime.served`     – per stream: read blocks, events and play-out clock; check and post
* :mod:`~nextblock.runtime.discovery`  – which segments to serve (a process's streams, or one named segment)
* :mod:`~nextblock.runtime.batching`   – one interpreter per batch size, so batches never re-allocate
* :mod:`~nextblock.runtime.stack`      – the one builder of what serves a stream geometry (model choice, adapters, warm-up)
* :mod:`~nextblock.runtime.geometries` – one predictor per stream geometry, the others built off the loop
* :mod:`~nextblock.runtime.context`    – per-channel context: received blocks, gaps filled by what was played
* :mod:`~nextblock.runtime.guard`      – sanity check (NaN/Inf) and limiter before posting
* :mod:`~nextblock.runtime.predictors` – the predictor interface, the shipped model loader, a test stand-in
* :mod:`~nextblock.runtime.modelwatch` – hot-swapping models published by the online learner
* :mod:`~nextblock.runtime.session`    – finding JackTrip, clear attach errors, surviving restarts
* :mod:`~nextblock.runtime.stats`      – counters, latency histograms, status line, final JSON
* the stand-in for patched JackTrip (tests, benchmark, demo) is :mod:`nextblock.lab.emulator`
"""

from .context import ContextRing
from .errors import AttachError, IncompatibleModel, ProducerGone
from .guard import SampleGuard
from .hub import HubConfig, HubLoop
from .modelwatch import ModelRejected, ModelWatcher, PublishedModel
from .predictors import (
    Predictor,
    RepeatPredictor,
    check_stream_compatible,
    choose_shipped_model,
    fit_to_stream,
    load_model_predictor,
    warm_up,
)
from .schedule import JUST_IN_TIME, SPECULATIVE, Action, ScheduleConfig, StreamSchedule
from .session import Target, open_consumer, serve
from .stats import HubStats, LatencyHistogram, RuntimeStats

__all__ = [
    "Action",
    "HubConfig",
    "HubLoop",
    "HubStats",
    "JUST_IN_TIME",
    "SPECULATIVE",
    "ScheduleConfig",
    "StreamSchedule",
    "AttachError",
    "ContextRing",
    "IncompatibleModel",
    "LatencyHistogram",
    "ModelRejected",
    "ModelWatcher",
    "Predictor",
    "ProducerGone",
    "PublishedModel",
    "RepeatPredictor",
    "RuntimeStats",
    "SampleGuard",
    "Target",
    "check_stream_compatible",
    "choose_shipped_model",
    "fit_to_stream",
    "load_model_predictor",
    "open_consumer",
    "serve",
    "warm_up",
]
