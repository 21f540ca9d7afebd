"""Capture: the shared-memory link between a (patched) JackTrip and NextBlock.

The producer (patched JackTrip, or :class:`Producer` in tests and the demo) publishes every
received block and every underrun into a POSIX shared-memory segment named ``/nextblock-<PID>``;
consumers (:class:`Consumer`: the predictor, the online learner) read the history, sleep until the
next block, and the single *poster* among them posts replacement blocks. The layout lives in one
place, ``csrc/nextblock/shm_layout.hpp``; this package only wraps the C++ core.

Example::

    from nextblock.capture import Consumer
    with Consumer.for_pid(jacktrip_pid, post_replacements=True) as c:
        count = c.blocks_written
        while True:
            count = c.wait_for_blocks(count, timeout_s=0.1)
            history = c.latest_history(2048)          # (channels, 2048) float32
            ...
"""

from .segment import (
    BlockBatch,
    Consumer,
    Event,
    EventKind,
    LayoutMismatch,
    Outcome,
    Producer,
    SegmentError,
    SegmentInUse,
    SegmentNotFound,
    SegmentNotReady,
    SegmentPermissionError,
    StaleSegment,
    is_concealment,
    monotonic_ns,
    process_exists,
    segment_name_for_pid,
    segment_name_for_stream,
    validate_header,
)
from .streams import SegmentName, StreamInfo, list_streams, nextblock_segments, stream_segments

__all__ = [
    "BlockBatch",
    "Consumer",
    "Event",
    "EventKind",
    "LayoutMismatch",
    "Outcome",
    "Producer",
    "SegmentError",
    "SegmentInUse",
    "SegmentNotFound",
    "SegmentNotReady",
    "SegmentPermissionError",
    "StaleSegment",
    "StreamInfo",
    "is_concealment",
    "list_streams",
    "monotonic_ns",
    "process_exists",
    "segment_name_for_pid",
    "segment_name_for_stream",
    "stream_segments",
    "nextblock_segments",
    "SegmentName",
    "validate_header",
]
