"""Read-only tap on a patched JackTrip's NextBlock segment: collects every event it posts.

``nextblock.attach`` holds the (single) poster role; this opens a second, read-only
:class:`nextblock.capture.Consumer` on ``/nextblock-<PID>`` and records the event ring
(UNDERRUN/SKIP/LATE/OVERFLOW/CONSUMER_LOST with seq and outcome) on a thread, so an end-to-end
run can check *which* seqs JackTrip concealed and with what — also for a run without attach
(then every UNDERRUN has outcome FALLBACK).
"""

from __future__ import annotations

import threading
import time

__all__ = ["SegmentTap"]


class SegmentTap:
    """Context manager; ``events`` is a list of dicts ``{kind, seq, outcome, detail}``."""

    def __init__(self, pid: int, open_timeout_s: float = 10.0, poll_s: float = 0.2):
        self.pid = pid
        self.open_timeout_s = open_timeout_s
        self.poll_s = poll_s
        self.events: list[dict] = []
        self.skipped = 0
        self.blocks_written = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"segment-tap-{pid}", daemon=True)

    def _open(self):
        from nextblock.capture import Consumer

        deadline = time.monotonic() + self.open_timeout_s
        while True:
            try:
                return Consumer.for_pid(self.pid, post_replacements=False)
            except Exception as exc:  # noqa: BLE001  (segment not created yet, or JackTrip gone)
                if time.monotonic() > deadline or self._stop.is_set():
                    self.error = f"could not open JackTrip's segment /nextblock-{self.pid}: {exc}"
                    return None
                time.sleep(0.05)

    def _drain(self, consumer, index: int) -> int:
        while True:
            events, skipped = consumer.read_events(index, 1024)
            self.skipped += skipped
            index += skipped
            if not events:
                return index
            for e in events:
                self.events.append(
                    {"kind": e.kind.name, "seq": int(e.seq), "outcome": e.outcome.name, "detail": int(e.detail)}
                )
            index = events[-1].index + 1

    def _run(self) -> None:
        consumer = self._open()
        if consumer is None:
            return
        index = 0
        try:
            while not self._stop.is_set():
                index = self._drain(consumer, index)
                self._stop.wait(self.poll_s)
            index = self._drain(consumer, index)
            self.blocks_written = int(consumer.blocks_written)
        except Exception as exc:  # noqa: BLE001  (keep the run going; report it)
            self.error = f"segment tap failed: {exc}"
        finally:
            consumer.close()

    def start(self) -> SegmentTap:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def concealments(self) -> list[dict]:
        """The events where JackTrip had to play something for a missing block
        (:func:`nextblock.capture.is_concealment`: UNDERRUNs and the Regulator's SKIP glitches)."""
        from nextblock.capture import EventKind, Outcome, is_concealment

        return [e for e in self.events if is_concealment(EventKind[e["kind"]], Outcome[e["outcome"]])]

    def summary(self) -> dict:
        """Counts per kind (and outcome, for concealments), the concealed and replaced seqs
        (64-bit, unwrapped by the patch) and their totals.

        ``skipped_over_seqs``: the blocks a Regulator SKIP glitch dropped to catch up beside the one it
        concealed (a SKIP at ``seq`` with ``detail`` = k > 1 plays one block for seqs ``seq`` ..
        ``seq + k - 1``; the next block played is ``seq + k``). No block plays for them, so nothing
        of NextBlock's can either."""
        counts: dict[str, int] = {}
        concealed = self.concealments()
        for e in self.events:
            key = f"{e['kind']}/{e['outcome']}" if e["kind"] in ("UNDERRUN", "SKIP") else e["kind"]
            counts[key] = counts.get(key, 0) + 1
        replaced = [e["seq"] for e in concealed if e["outcome"] == "REPLACEMENT"]
        skipped_over = [e["seq"] + k for e in concealed if e["kind"] == "SKIP" for k in range(1, int(e["detail"]))]
        return {
            "counts": counts,
            "underrun_seqs": [e["seq"] for e in self.events if e["kind"] == "UNDERRUN"],
            "concealed_seqs": [e["seq"] for e in concealed],
            "replaced_seqs": replaced,
            "skipped_over_seqs": skipped_over,
            "late_seqs": [e["seq"] for e in self.events if e["kind"] == "LATE"],
            "concealments": len(concealed),
            "replacements_used": len(replaced),
            "skipped": self.skipped,
            "blocks_written": self.blocks_written,
            "error": self.error,
        }

    def __enter__(self) -> SegmentTap:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
