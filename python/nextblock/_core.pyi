"""
NextBlock's shared-memory protocol (C++ core). Use nextblock.capture for the Pythonic API.
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['CodecCore', 'Consumer', 'HEADER_BYTES', 'LAYOUT_VERSION', 'LayoutMismatch', 'LongTermPredictor', 'MAGIC', 'MAX_WAKE_REGISTRATION_NS', 'Producer', 'SegmentError', 'SegmentInUse', 'SegmentNotFound', 'SegmentNotReady', 'SegmentPermissionError', 'SeqUnwrapper', 'StaleSegment', 'StreamTap', 'all_finite', 'burg_continuation', 'compute_layout', 'control_field_offsets', 'guard_prediction', 'header_field_offsets', 'lpc_continuation', 'lsar_fill', 'monotonic_ns', 'playout_due_ns', 'process_token', 'recovery_fade_in', 'recovery_fade_samples', 'sanitize_playable', 'segment_name_for_pid', 'segment_name_for_stream', 'validate_header', 'wait_for_decision', 'wait_for_decision_wakeups']
class SegmentError(RuntimeError):
    pass
class SegmentNotFound(SegmentError):
    pass
class SegmentPermissionError(SegmentError):
    pass
class LayoutMismatch(SegmentError):
    pass
class StaleSegment(SegmentError):
    pass
class SegmentInUse(SegmentError):
    pass
class SegmentNotReady(SegmentError):
    pass
class SeqUnwrapper:
    """
    JackTrip's 16-bit packet numbers -> 64-bit seqs (the patched receive thread's rule).
    """
    MAX_REORDER: typing.ClassVar[int] = 64
    def __init__(self) -> None:
        ...
    def next(self, seq16: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...
    @property
    def last(self) -> int:
        ...
    @property
    def restarts(self) -> int:
        ...
class Producer:
    """
    Producer side of a segment (patched JackTrip; tests and the demo).
    """
    def __init__(self, name: str, sample_rate_hz: typing.SupportsInt | typing.SupportsIndex, frames_per_block: typing.SupportsInt | typing.SupportsIndex, channels: typing.SupportsInt | typing.SupportsIndex, block_ring_slots: typing.SupportsInt | typing.SupportsIndex = 1024, event_ring_slots: typing.SupportsInt | typing.SupportsIndex = 1024, replacement_slots: typing.SupportsInt | typing.SupportsIndex = 8, stream_name: str = '', peer_address: str = '', local_port: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def close(self) -> None:
        ...
    def consumer_alive(self) -> bool:
        ...
    def counters(self) -> dict:
        ...
    def geometry(self) -> dict:
        ...
    def note_playout(self, seq: typing.SupportsInt | typing.SupportsIndex, queued_blocks: typing.SupportsInt | typing.SupportsIndex, now_ns: typing.Any = None, pull_blocks: typing.SupportsInt | typing.SupportsIndex = 1, pull_left: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        Play-out clock: block seq was just played, queued_blocks later ones are already received. A pull that plays several blocks back to back (a hub whose period is longer than the peer's) calls it for each, with pull_blocks the blocks it plays and pull_left those it plays after seq.
        """
    def post_event(self, kind: typing.SupportsInt | typing.SupportsIndex, seq: typing.SupportsInt | typing.SupportsIndex, outcome: typing.SupportsInt | typing.SupportsIndex = 0, detail: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def publish_block(self, seq: typing.SupportsInt | typing.SupportsIndex, samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], arrival_ns: typing.Any = None, gap_ns: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def take(self, seq: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        """
        Take the replacement posted for exactly seq: (status, (2, frames, channels) array or None), status one of 'taken', 'missing', 'torn', 'refused' (non-finite or |x| > 1 samples).
        """
    @property
    def closed(self) -> bool:
        ...
    @property
    def name(self) -> str:
        ...
class Consumer:
    """
    Consumer side of a segment (predictor, learner, tests).
    """
    def __init__(self, name: str, post_replacements: bool = False) -> None:
        ...
    def close(self) -> None:
        ...
    def counters(self) -> dict:
        ...
    def geometry(self) -> dict:
        ...
    def heartbeat(self) -> None:
        ...
    def latest_history(self, n_samples: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        ...
    def playout(self) -> typing.Any:
        """
        (seq, at_ns, queued_blocks, pull_blocks, pull_left) of the producer's last pull, or None before its first: block seq was played at at_ns by a pull that plays pull_blocks blocks, pull_left after seq
        """
    def post_replacement(self, seq: typing.SupportsInt | typing.SupportsIndex, samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> bool:
        ...
    def producer_alive(self) -> bool:
        ...
    def read_blocks(self, start_index: typing.SupportsInt | typing.SupportsIndex, max_count: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        ...
    def read_events(self, start_index: typing.SupportsInt | typing.SupportsIndex, max_count: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        ...
    def set_missing_lookahead(self, blocks: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Ask the producer to check, at each pull, whether the block `blocks` past the one played has arrived and to wake a sleeping just-in-time waiter when it has not (0: off; clamped to 16).
        """
    def wait_for_blocks(self, after_count: typing.SupportsInt | typing.SupportsIndex, timeout_s: typing.SupportsFloat | typing.SupportsIndex) -> int:
        ...
    @property
    def blocks_written(self) -> int:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def events_written(self) -> int:
        ...
    @property
    def is_poster(self) -> bool:
        ...
    @property
    def missing_lookahead(self) -> int:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def producer_closed(self) -> bool:
        ...
class LongTermPredictor:
    """
    Pattern-matched continuation of a long history and its backcast weight (nextblock/pattern.hpp; see nextblock.features.pattern). Buffers are made here; predict allocates only its results and releases the GIL.
    """
    def __init__(self, history_samples: typing.SupportsInt | typing.SupportsIndex, template_samples: typing.SupportsInt | typing.SupportsIndex, min_lag_samples: typing.SupportsInt | typing.SupportsIndex, backcast_samples: typing.SupportsInt | typing.SupportsIndex, ar_order: typing.SupportsInt | typing.SupportsIndex, ar_samples: typing.SupportsInt | typing.SupportsIndex, max_gain: typing.SupportsFloat | typing.SupportsIndex, lo_db: typing.SupportsFloat | typing.SupportsIndex, hi_db: typing.SupportsFloat | typing.SupportsIndex, silence_mean_square: typing.SupportsFloat | typing.SupportsIndex, wrap_fraction: typing.SupportsFloat | typing.SupportsIndex, wrap_max_samples: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def blend_into(self, history: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], skip: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], factor: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], prediction: numpy.ndarray, fade_in_samples: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
        """
        predict() and the blend in one call: each row of prediction (rows, n_out) float32 (in place) moves towards its guess by weight * factor[row], faded in over fade_in_samples where skip is 0. Rows whose factor is 0 are not computed. Returns the weights (rows,) float64, factor included.
        """
    def predict(self, history: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], skip: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], n_out: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float64]]:
        """
        history (rows, history_samples) float32, skip (rows,) samples already concealed at its end -> (guess (rows, n_out) float32, weight (rows,) float64 in [0, 1]; 0 and a zero guess for silence or no match).
        """
    @property
    def history_samples(self) -> int:
        ...
class CodecCore:
    """
    The spectral codec around one network call (nextblock/codec.hpp): encode() before LiteRT, decode() after. Buffers and FFT plans are made here; the calls allocate only their result arrays and release the GIL.
    """
    def __init__(self, context_samples: typing.SupportsInt | typing.SupportsIndex, output_samples: typing.SupportsInt | typing.SupportsIndex, bin_stride: typing.SupportsInt | typing.SupportsIndex, lpc_order: typing.SupportsInt | typing.SupportsIndex, burg_samples: typing.SupportsInt | typing.SupportsIndex, scaled_window: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], rms_floor: typing.SupportsFloat | typing.SupportsIndex, log_floor: typing.SupportsFloat | typing.SupportsIndex, log_divisor: typing.SupportsFloat | typing.SupportsIndex, silence_mean_square: typing.SupportsFloat | typing.SupportsIndex, output_gain: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    def decode(self, net_out: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], scale: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], guess: typing.Any, weight: typing.SupportsFloat | typing.SupportsIndex, ramp: typing.Any, context: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> tuple[numpy.typing.NDArray[numpy.float32], int]:
        """
        The network's output (rows, output_bins, 2) -> (horizon (rows, output_samples) float32, rows zeroed): irfft, level, `weight` of the guess blended in, the start cross-faded from the guess over `ramp` (without a guess: pulled onto the context's linear extrapolation), a non-finite row zeroed.
        """
    def encode(self, context: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32], typing.Any]:
        """
        context (rows, context_samples) float32 -> (features (rows, input_bins, channels), scale (rows,), guess (rows, output_samples) or None without an LPC order). Non-finite samples give non-finite features: sanitise first.
        """
    @property
    def channels(self) -> int:
        ...
    @property
    def input_bins(self) -> int:
        ...
    @property
    def output_bins(self) -> int:
        ...
class StreamTap:
    """
    Per-wake read of one stream into a caller-owned context ring (nextblock/stream_tap.hpp).
    """
    def __init__(self, consumer: typing.Any, samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], seq_of_slot: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], source_of_slot: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], slacks: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], next_index: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        consumer: a _core.Consumer; samples (channels, 2*slots*frames) float32, seq_of_slot (slots,) int64, source_of_slot (slots,) uint8, slacks (n,) int64: arrays written in place (keep them; no copies).
        """
    def poll(self, now_ns: typing.SupportsInt | typing.SupportsIndex, period_ns: typing.SupportsInt | typing.SupportsIndex, stale_ns: typing.SupportsInt | typing.SupportsIndex, max_blocks: typing.SupportsInt | typing.SupportsIndex = 64) -> tuple:
        """
        Copy the blocks published since the last call into the ring (GIL released); returns (blocks, skipped, newest_seq, newest_arrival_ns, slacks_recorded, clock) with clock (seq, at_ns, queued_blocks, pull_blocks, pull_left) or None.
        """
    def reset_slacks(self) -> None:
        ...
    @property
    def next_index(self) -> int:
        ...
    @property
    def slack_count(self) -> int:
        ...
def all_finite(samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> bool:
    """
    Whether every sample of a float32 array is finite: np.all(np.isfinite(a)) without the temporary (a few hundred ns for a context, where numpy's two calls cost several µs after a sleep).
    """
def burg_continuation(history: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], order: typing.SupportsInt | typing.SupportsIndex, n_out: typing.SupportsInt | typing.SupportsIndex, silence_mean_square: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    Burg AR continuation of each row of history (rows, n) float32: Burg's method of the given order on the whole row, AR recursion from its last `order` samples. Returns (rows, n_out) float32 (zeros for a row whose mean square is not above silence_mean_square). See nextblock.features.lpc.
    """
def compute_layout(sample_rate_hz: typing.SupportsInt | typing.SupportsIndex, frames_per_block: typing.SupportsInt | typing.SupportsIndex, channels: typing.SupportsInt | typing.SupportsIndex, block_ring_slots: typing.SupportsInt | typing.SupportsIndex = 1024, event_ring_slots: typing.SupportsInt | typing.SupportsIndex = 1024, replacement_slots: typing.SupportsInt | typing.SupportsIndex = 8) -> dict:
    """
    Byte offsets and sizes of a segment with this geometry (the header's own computation).
    """
def control_field_offsets() -> dict:
    """
    Byte offsets of the control page's fields, relative to control_offset (tests and fuzzing).
    """
def guard_prediction(prediction: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], context: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], ceiling: typing.SupportsFloat | typing.SupportsIndex, max_gain_over_context: typing.SupportsFloat | typing.SupportsIndex, floor: typing.SupportsFloat | typing.SupportsIndex) -> int:
    """
    SampleGuard's check in one pass (runtime/guard.py): -1 if any sample is non-finite (nothing changed), else each row of prediction (rows, 2, frames) scaled in place to at most min(ceiling, max(floor, gain * its context's peak)); returns 1 if a row was scaled, 0 if none.
    """
def header_field_offsets() -> dict:
    """
    Byte offsets of the header's identity fields (for tests and fuzzing; the header is the truth).
    """
def lpc_continuation(context: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], windowed: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], order: typing.SupportsInt | typing.SupportsIndex, n_out: typing.SupportsInt | typing.SupportsIndex, lag: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], white_noise: typing.SupportsFloat | typing.SupportsIndex, silence_energy: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    LPC continuation of each row of context (rows, n) float32: autocorrelation (circular) of the windowed rows, lag window, Levinson-Durbin, AR recursion from the last `order` context samples. Returns (rows, n_out) float32 (zeros for a silent row). See nextblock.features.lpc.
    """
def lsar_fill(past: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], future: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], gap: typing.SupportsInt | typing.SupportsIndex, order: typing.SupportsInt | typing.SupportsIndex, fit_samples: typing.SupportsInt | typing.SupportsIndex, prior: typing.Any = None, prior_weight: typing.SupportsFloat | typing.SupportsIndex = 0.0, prior_fade: typing.SupportsFloat | typing.SupportsIndex = 0.0, silence_mean_square: typing.SupportsFloat | typing.SupportsIndex = 1e-12, blend_only: bool = False, levinson: bool = False) -> tuple:
    """
    Two-sided fill of `gap` samples between each row of past (rows, n_past) float32 and of future (rows, n_future): least-squares AR interpolation with Burg's AR(order) fitted to the past's last fit_samples, fused with prior (rows, gap) at prior_weight (fading by prior_fade towards the gap's end), guarded (csrc/nextblock/lsar.hpp); blend_only: the forward guess faded into the backward AR extrapolation alone; levinson: allow the faster Levinson solve where the equations are Toeplitz (future samples >= order, constant prior weight). Returns (fill (rows, gap) float32, path (rows,) int8: 0 interpolated, 1 blended, 2 forward, 3 silent).
    """
def monotonic_ns() -> int:
    """
    CLOCK_MONOTONIC in ns: the time base of every *_ns field.
    """
def playout_due_ns(clock_seq: typing.SupportsInt | typing.SupportsIndex, clock_ns: typing.SupportsInt | typing.SupportsIndex, pull_blocks: typing.SupportsInt | typing.SupportsIndex, pull_left: typing.SupportsInt | typing.SupportsIndex, period_ns: typing.SupportsInt | typing.SupportsIndex, seq: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    When block seq is due by the play-out clock reading (clock_seq played at clock_ns by a pull of pull_blocks blocks, pull_left after it): PlayoutClock::due_ns, the rule the tap and the waiter use.
    """
def process_token(pid: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    PID (low 32 bits) and start time (high 32 bits) of a running process: its identity despite PID reuse.
    """
def recovery_fade_in(frames_per_block: typing.SupportsInt | typing.SupportsIndex, sample_rate_hz: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    (frames_per_block,) float32: the weight of the real audio in the block that arrives after a replacement (the patched JackTrip's splice; a raised cosine over recovery_fade_samples, then 1).
    """
def recovery_fade_samples(sample_rate_hz: typing.SupportsInt | typing.SupportsIndex, frames_per_block: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Samples of the recovery cross-fade: 32 at 48 kHz, in proportion at other rates, at least 1 and at most one block.
    """
def sanitize_playable(samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> tuple[bool, numpy.typing.NDArray[numpy.float32]]:
    """
    The producer's check of a replacement: (ok, copy). ok is False if any sample is NaN, +-Inf or |x| > 1; subnormals are flushed to zero in the copy.
    """
def segment_name_for_pid(pid: typing.SupportsInt | typing.SupportsIndex) -> str:
    """
    The shared-memory name a producer with this PID uses: '/nextblock-<pid>'.
    """
def segment_name_for_stream(pid: typing.SupportsInt | typing.SupportsIndex, port: typing.SupportsInt | typing.SupportsIndex) -> str:
    """
    The shared-memory name of one stream of a process with several: '/nextblock-<pid>-<port>'.
    """
def validate_header(image: bytes) -> None:
    """
    Validate a segment image (bytes). Raises LayoutMismatch (bad magic, version, sizes) on a bad one, SegmentNotReady on one whose magic is still zero (its producer has not published it yet).
    """
def wait_for_decision(items: list, until_ns: typing.SupportsInt | typing.SupportsIndex, window_ns: typing.SupportsInt | typing.SupportsIndex, block_wait: typing.SupportsInt | typing.SupportsIndex = -1) -> int:
    """
    Sleep (GIL released) until a stream needs a decision or until_ns; keeps every tap's ring current. items: (tap, just_in_time, handled_seq, lead_ns, wake_ns, period_ns, stale_ns, max_chain[, lookahead[, wake_on_gap]]); lookahead k > 0: a just-in-time stream sleeps until the producer finds the block k past the one it plays missing (its missing-block wake) instead of waking at every block; wake_on_gap: it also returns as soon as a block after its first missing seq arrived (the loss is known: the two-sided fill's chance). Returns the index of the first stream that needs the caller, or -1 at until_ns.
    """
def wait_for_decision_wakeups() -> int:
    """
    Passes of wait_for_decision's loop since import: its wake-ups (the idle cost's unit).
    """
HEADER_BYTES: int = 4096
LAYOUT_VERSION: int = 3
MAGIC: int = 3544415697643001934
MAX_WAKE_REGISTRATION_NS: int = 200000000
