"""The online learner: live audio → replay buffer → fine-tuning → validation → publishing.

One :class:`OnlineLearner` runs this cycle, at low priority, until stopped::

    ┌─ ingest ─ every LiveStream's new chunks → ReplayBuffer (newest seconds held back)
    ├─ train  ─ a random batch of older windows → FineTuner.train_step (then the duty-cycle sleep)
    └─ every `validate_every_s` (or `validate_every_steps`):
         held-back windows ─ Keras pre-check ─ export candidate .tflite ─ score candidate and the
         model the clients run, both through LiteRT ─ gain ≥ min_gain_db ? publish : keep training

Ingesting runs either inline (before every step; deterministic, for tests and the benchmark) or in
a background thread (:meth:`OnlineLearner.start_ingest_thread`, for live shared-memory streams,
so a slow training step never makes the reader fall behind the ring).

Every validation produces one :class:`UpdateRecord` (logged as one JSON line, published or not).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..features.config import FeatureConfig
from .examples import LiveExampleBuilder
from .finetune import FineTuner
from .priority import DutyCycle
from .publish import Publisher
from .replay import ReplayBuffer
from .stream import LiveStream
from .validate import score_keras, score_model_file


def version_label(version: int | None) -> str:
    """``"v3"`` for a published version, ``"the starting model"`` for ``None``."""
    return "the starting model" if version is None else f"v{version}"


@dataclass(frozen=True)
class LearnerSettings:
    """Knobs of the learning cycle (the CLI flags of ``python -m nextblock.learn``).

    Attributes
    ----------
    replay_seconds:
        Audio kept per track (channel of a source); bounds memory (``4 × rate`` bytes per second).
    holdout_seconds:
        Newest audio per track held back from training and used for validation.
    batch_size:
        Windows per training step.
    validate_every_s:
        Wall-clock seconds between validations (``None``: use ``validate_every_steps`` only).
    validate_every_steps:
        Training steps between validations (``None``: use ``validate_every_s`` only).
    min_gain_db:
        Publish only when the candidate beats the model the clients run by at least this (dB).
    max_validation_windows:
        At most this many held-back windows are scored per model (bounds validation time).
    validation_hop_samples:
        Spacing of held-back windows (default: one output length, i.e. non-overlapping targets).
    max_cpu:
        Fraction of one core the learner may use on average (duty cycle), in (0, 1].
    revert_after_db:
        If the candidate is worse than the model the clients run by more than this (dB), it is
        reset to that model's weights (guards against drift on a misleading stretch of audio).
    max_chunks_per_ingest:
        Inline ingesting reads at most this many chunks per source per step (``None``: all).
    fallback_margin_db:
        Re-publish the starting (general) model when it beats both the model the clients run
        and the candidate by this much (dB) on the held-back window, and reset the candidate to
        it; ``None`` (default): never. Needs the learner's ``baseline`` and ``baseline_weights``.
        On a 3-s window the scores of successive validations scatter by ~±1 dB, so a margin near
        ``min_gain_db`` makes the learner flip back and forth; the CLI uses 0.5 dB
        (see docs/notes/learning.md).
    """

    replay_seconds: float = 60.0
    holdout_seconds: float = 5.0
    batch_size: int = 32
    validate_every_s: float | None = 30.0
    validate_every_steps: int | None = None
    min_gain_db: float = 0.1
    max_validation_windows: int = 400
    validation_hop_samples: int | None = None
    max_cpu: float = 0.5
    revert_after_db: float = 3.0
    max_chunks_per_ingest: int | None = None
    fallback_margin_db: float | None = None


@dataclass
class UpdateRecord:
    """One validation of the candidate against the model the clients run."""

    time_unix_s: float
    stream_seconds: float
    steps: int
    snr_db_candidate: float
    snr_db_previous: float
    gain_db: float
    window_s: float
    windows: int
    published: bool
    version: int | None
    parent_version: int | None
    reason: str
    keras_snr_db: float | None = None
    snr_db_baseline: float | None = None
    seconds_taken: float = 0.0

    def to_json(self) -> str:
        return json.dumps(
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        )


@dataclass
class CurrentModel:
    """The model the clients run: its ``.tflite`` and its published version (``None``: shipped)."""

    path: Path
    version: int | None


@dataclass
class LearnerStats:
    """Counters for the status line and the final summary."""

    steps: int = 0
    last_loss: float = float("nan")
    samples_ingested: int = 0
    chunks_ingested: int = 0
    blocks_skipped: int = 0
    blocks_lost: int = 0
    validations: int = 0
    published: int = 0
    reverts: int = 0
    fallbacks: int = 0
    updates: list = field(default_factory=list)


class OnlineLearner:
    """Fine-tunes a model on live streams and publishes it when it validates better.

    Parameters
    ----------
    streams:
        Live sources, all at the model's sample rate. Each channel of each source is one track of
        the replay buffer.
    finetuner:
        Holds the Keras candidate (initialised with the weights of ``current``).
    config:
        The model's feature sizes.
    current:
        The ``.tflite`` the clients run now, and its version.
    publisher:
        Where better models go (``docs/model_publishing.md``).
    export:
        ``export(keras_model, path)`` writes a client-ready ``.tflite`` (with metadata) to ``path``.
    settings:
        See :class:`LearnerSettings`.
    log:
        Called with one line per event (updates, warnings).
    update_log_path:
        If given, every :class:`UpdateRecord` is appended there as a JSON line.
    seed:
        Seeds the example positions.
    clock:
        Monotonic clock in seconds (injectable for tests).
    baseline:
        Optional ``.tflite`` also scored at every validation (``UpdateRecord.snr_db_baseline``),
        e.g. the starting model, to draw adaptation curves; costs one more scoring pass.
    baseline_weights:
        Keras weights of ``baseline`` (:meth:`FineTuner.get_weights`), for
        :attr:`LearnerSettings.fallback_margin_db`.
    sample_rates_hz:
        Stream rates the model serves (metadata ``sample_rates_hz``; the model works on samples,
        so it learns from any of them); empty: only ``config.sample_rate_hz``.
    """

    def __init__(
        self,
        streams: list[LiveStream],
        finetuner: FineTuner,
        config: FeatureConfig,
        current: CurrentModel,
        publisher: Publisher,
        export: Callable[[object, str], None],
        settings: LearnerSettings = LearnerSettings(),
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
        update_log_path: str | os.PathLike | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        baseline: str | os.PathLike | None = None,
        baseline_weights: list | None = None,
        sample_rates_hz: tuple[int, ...] = (),
    ):
        if not streams:
            raise ValueError("at least one live stream is needed")
        for stream in streams:
            if stream.sample_rate_hz not in (tuple(sample_rates_hz) or (config.sample_rate_hz,)):
                raise ValueError(
                    f"{stream.name} runs at {stream.sample_rate_hz} Hz but the model at {config.sample_rate_hz} Hz; "
                    "the learner does not resample"
                )
        rate = config.sample_rate_hz
        window = config.context_samples + config.output_samples
        self.streams = list(streams)
        self.config = config
        self.settings = settings
        self.buffer = ReplayBuffer(
            int(settings.replay_seconds * rate), int(settings.holdout_seconds * rate), window, config.context_samples
        )
        self.builder = LiveExampleBuilder(self.buffer, config, seed)
        self.finetuner = finetuner
        self.current = current
        self.publisher = publisher
        self.export = export
        self.duty = DutyCycle(settings.max_cpu)
        self.log = log
        self.update_log_path = Path(update_log_path) if update_log_path else None
        self.clock = clock
        self.baseline = Path(baseline) if baseline is not None else None
        self._baseline_weights = baseline_weights if baseline is not None else None
        self.stats = LearnerStats()
        self._current_weights = finetuner.get_weights()  # weights matching `current`
        self._last_validation_s = clock()
        self._steps_at_validation = 0
        self._ingest_thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ ingesting
    @property
    def stream_seconds(self) -> float:
        """Audio ingested per track so far, s (the longest track)."""
        totals = [self.buffer.total_samples(t) for t in self.buffer.tracks]
        return max(totals, default=0) / self.config.sample_rate_hz

    def ingest(self, timeout_s: float = 0.0, max_chunks: int | None = None) -> int:
        """Move available audio from every stream into the buffer; returns samples moved (per channel)."""
        moved = 0
        for stream in self.streams:
            count = 0
            while max_chunks is None or count < max_chunks:
                chunk = stream.read(timeout_s if count == 0 else 0.0)
                if chunk is None:
                    break
                for ch in range(chunk.samples.shape[0]):
                    self.buffer.add((stream.name, ch), chunk.samples[ch], chunk.breaks)
                n = chunk.samples.shape[1]
                moved += n
                count += 1
                self.stats.samples_ingested += n
                self.stats.chunks_ingested += 1
                self.stats.blocks_skipped += chunk.skipped_blocks
                self.stats.blocks_lost += chunk.lost_blocks
        return moved

    def start_ingest_thread(self, poll_timeout_s: float = 0.05) -> None:
        """Ingest continuously in a daemon thread (sleeps in the stream's wait, GIL released)."""
        if self._ingest_thread is not None:
            return

        def run() -> None:
            while not self._stop.is_set():
                try:
                    moved = self.ingest(timeout_s=poll_timeout_s / max(1, len(self.streams)))
                except Exception as err:  # a dying source must not kill training silently
                    self.log(f"learn: ingest stopped: {type(err).__name__}: {err}")
                    return
                if not moved and all(s.finished for s in self.streams):
                    return
                if not moved:
                    time.sleep(0.002)

        self._ingest_thread = threading.Thread(target=run, name="nextblock-learn-ingest", daemon=True)
        self._ingest_thread.start()

    @property
    def streams_finished(self) -> bool:
        """Every source is exhausted (arrays played out / producers closed)."""
        return all(s.finished for s in self.streams)

    # ------------------------------------------------------------------ training
    def train_step(self) -> float | None:
        """One fine-tuning step on a random batch (inside the duty cycle); ``None`` if too little audio yet."""
        with self.duty:
            batch = self.builder.batch(self.settings.batch_size)
            if batch is None:
                return None
            loss = self.finetuner.train_step(*batch)
        self.stats.steps += 1
        self.stats.last_loss = loss
        return loss

    def validation_due(self) -> bool:
        """Whether the configured validation interval (time or steps) has passed."""
        s = self.settings
        steps_since = self.stats.steps - self._steps_at_validation
        if steps_since <= 0:
            return False
        if s.validate_every_steps is not None and steps_since >= s.validate_every_steps:
            return True
        return s.validate_every_s is not None and self.clock() - self._last_validation_s >= s.validate_every_s

    # ------------------------------------------------------------------ validating / publishing
    def validate(self) -> UpdateRecord | None:
        """Compare the candidate with the model the clients run on the held-back window; publish if better.

        Returns the record, or ``None`` when the held-back window has no usable audio yet.
        """
        start_s = self.clock()
        with self.duty:
            record = self._validate()
        self._last_validation_s = self.clock()
        self._steps_at_validation = self.stats.steps
        if record is None:
            return None
        record.seconds_taken = self.clock() - start_s
        self.stats.validations += 1
        self.stats.updates.append(record)
        if self.update_log_path is not None:
            self.update_log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.update_log_path, "a") as f:
                f.write(record.to_json() + "\n")
        verdict = f"published v{record.version}" if record.published else f"kept {version_label(self.current.version)}"
        self.log(
            f"learn: validation @ {record.stream_seconds:.1f}s of audio, step {record.steps}: candidate "
            f"{record.snr_db_candidate:.2f} dB vs current {record.snr_db_previous:.2f} dB "
            f"(gain {record.gain_db:+.2f} dB on {record.windows} windows) -> {verdict} ({record.reason})"
        )
        return record

    def _validate(self) -> UpdateRecord | None:
        cfg, s = self.config, self.settings
        hop = s.validation_hop_samples or cfg.output_samples
        windows = self.buffer.holdout_windows(hop, s.max_validation_windows)
        if windows.shape[0] == 0:
            return None
        window_s = s.holdout_seconds
        previous = score_model_file(self.current.path, windows, cfg)
        keras = score_keras(self.finetuner, windows, cfg)
        baseline_db = None if self.baseline is None else score_model_file(self.baseline, windows, cfg).snr_db
        common = dict(
            time_unix_s=time.time(),
            stream_seconds=self.stream_seconds,
            steps=self.stats.steps,
            snr_db_previous=previous.snr_db,
            window_s=window_s,
            windows=int(windows.shape[0]),
            parent_version=self.current.version,
            keras_snr_db=keras.snr_db,
            snr_db_baseline=baseline_db,
        )
        if not keras.snr_db - previous.snr_db >= s.min_gain_db:
            gain = keras.snr_db - previous.snr_db
            reason = "Keras pre-check below min gain"
            if gain < -s.revert_after_db:
                self.finetuner.set_weights(self._current_weights)
                self.stats.reverts += 1
                reason += f"; candidate reset to {version_label(self.current.version)} (worse by {-gain:.2f} dB)"
            rejected = UpdateRecord(
                snr_db_candidate=keras.snr_db, gain_db=gain, published=False, version=None, reason=reason, **common
            )
            return self._fall_back_or(rejected, baseline_db, previous.snr_db, common)
        with tempfile.TemporaryDirectory(prefix="nextblock-learn-") as tmp:
            candidate_path = os.path.join(tmp, "candidate.tflite")
            self.export(self.finetuner.model, candidate_path)
            candidate = score_model_file(candidate_path, windows, cfg)
            gain = candidate.snr_db - previous.snr_db
            if not gain >= s.min_gain_db:
                rejected = UpdateRecord(
                    snr_db_candidate=candidate.snr_db,
                    gain_db=gain,
                    published=False,
                    version=None,
                    reason="LiteRT score below min gain",
                    **common,
                )
                return self._fall_back_or(rejected, baseline_db, previous.snr_db, common)
            data = Path(candidate_path).read_bytes()
        return self._publish(data, candidate.snr_db, previous.snr_db, "better on the held-back window", common)

    def _publish(self, data: bytes, candidate_db: float, previous_db: float, reason: str, common: dict) -> UpdateRecord:
        gain = candidate_db - previous_db
        validation = {
            "snr_db_candidate": candidate_db,
            "snr_db_previous": previous_db,
            "gain_db": gain,
            "window_s": self.settings.holdout_seconds,
        }
        published = self.publisher.publish(
            data, validation, self.current.version, state_files={".weights.h5": self.finetuner.weights_bytes()}
        )
        self.current = CurrentModel(published.path, published.version)
        self._current_weights = self.finetuner.get_weights()
        self.stats.published += 1
        return UpdateRecord(
            snr_db_candidate=candidate_db,
            gain_db=gain,
            published=True,
            version=published.version,
            reason=reason,
            **common,
        )

    def _fall_back_or(
        self, rejected: UpdateRecord, baseline_db: float | None, previous_db: float, common: dict
    ) -> UpdateRecord:
        """Re-publish the starting model when it beats the model the clients run (after a change of
        character the specialised model can be worse than the general one); else ``rejected``."""
        margin = self.settings.fallback_margin_db
        if (
            margin is None
            or self._baseline_weights is None
            or baseline_db is None
            or not baseline_db - previous_db >= margin
            or not baseline_db >= rejected.snr_db_candidate
        ):
            return rejected
        self.finetuner.set_weights(self._baseline_weights)
        self.stats.fallbacks += 1
        return self._publish(
            self.baseline.read_bytes(),
            baseline_db,
            previous_db,
            "the starting model is better here: re-published it, candidate reset to it",
            common,
        )

    # ------------------------------------------------------------------ the loop
    def status_line(self) -> str:
        """One line: stream time, buffer, steps, loss, version, last gain, skipped/lost blocks, CPU share."""
        last = self.stats.updates[-1] if self.stats.updates else None
        gain = f"{last.gain_db:+.2f}dB" if last else "-"
        return (
            f"learn: audio {self.stream_seconds:7.1f}s | buffer {self.buffer.stored_samples() / self.config.sample_rate_hz:6.1f}s"
            f" | step {self.stats.steps} loss {self.stats.last_loss:.4f} | clients run {version_label(self.current.version)}"
            f" | validations {self.stats.validations} published {self.stats.published} last gain {gain}"
            f" | skipped {self.stats.blocks_skipped} lost {self.stats.blocks_lost} | cpu {100 * self.duty.measured_fraction:.0f}%"
        )

    def run(
        self,
        max_steps: int | None = None,
        max_seconds: float | None = None,
        inline_ingest: bool | None = None,
        status: Callable[[str], None] | None = None,
        status_every_s: float = 1.0,
        stop_when_streams_end: bool = True,
    ) -> LearnerStats:
        """Learn until :meth:`stop`, ``max_steps``, ``max_seconds`` or (optionally) the end of the streams.

        Parameters
        ----------
        inline_ingest:
            Ingest before every step in this thread (default when no ingest thread runs).
        status:
            Called with :meth:`status_line` at most every ``status_every_s`` seconds.
        stop_when_streams_end:
            Stop (after a last validation) when every stream is finished.
        """
        inline = self._ingest_thread is None if inline_ingest is None else inline_ingest
        start_s = self.clock()
        self._last_validation_s = start_s  # the interval counts from the start of learning
        last_status_s = -math.inf
        while not self._stop.is_set():
            if max_steps is not None and self.stats.steps >= max_steps:
                break
            if max_seconds is not None and self.clock() - start_s >= max_seconds:
                break
            if stop_when_streams_end and self._input_exhausted(inline):
                if self.stats.steps > self._steps_at_validation:
                    self.validate()  # a last word on the newest audio
                break
            if inline:
                self.ingest(max_chunks=self.settings.max_chunks_per_ingest)
            if self.train_step() is None:
                time.sleep(0.05)  # waiting for enough audio
            if self.validation_due():
                self.validate()
            if status is not None and self.clock() - last_status_s >= status_every_s:
                status(self.status_line())
                last_status_s = self.clock()
        if status is not None:
            status(self.status_line())
        return self.stats

    def _input_exhausted(self, inline: bool) -> bool:
        if not self.streams_finished:
            return False
        return inline or self._ingest_thread is None or not self._ingest_thread.is_alive()

    def stop(self) -> None:
        """Ask :meth:`run` and the ingest thread to stop (thread-safe; e.g. from a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        """Stop, join the ingest thread and close every stream."""
        self.stop()
        if self._ingest_thread is not None:
            self._ingest_thread.join(timeout=2.0)
        for stream in self.streams:
            stream.close()
