"""Record JACK ports of one server to a .npy file until SIGTERM (the child of ``PlayRecord``).

Run as ``python -m nextblock.jackio.recorder --server NAME --ports A:x,B:y --out rec.npy
--info rec.json``. It writes ``<info>.ready`` once the first JACK cycle was recorded, and on
SIGTERM/SIGINT (or after ``--max-seconds``) saves the samples and ``<info>`` (JSON: JACK
microsecond time of the first recorded frame, xruns, missed samples, sample rate).
Recording is indexed by JACK frame time, so missed cycles leave holes, not shifts.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np


def record(server: str, ports_to_record: list[str], max_seconds: float, out: Path, info: Path) -> int:
    import jack

    client = jack.Client("nbrec", servername=server, no_start_server=True)
    ports = [client.inports.register(f"in_{i + 1}") for i in range(len(ports_to_record))]
    max_samples = int(max_seconds * client.samplerate)
    buf = np.zeros((max_samples, len(ports)), dtype=np.float32)
    st = {"start_frame": None, "last_pos": 0, "missed": 0, "xruns": 0, "done": False}
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    @client.set_xrun_callback
    def _xrun(delay_us):
        st["xruns"] += 1

    @client.set_process_callback
    def _rec(frames):
        if st["done"]:
            return
        now = client.last_frame_time
        if st["start_frame"] is None:
            st["start_mono_s"] = time.monotonic() - client.frames_since_cycle_start / client.samplerate
            st["start_frame"] = now
        pos = now - st["start_frame"]
        if pos != st["last_pos"]:
            st["missed"] += pos - st["last_pos"]
        st["last_pos"] = pos + frames
        n = min(frames, max_samples - pos)
        if n <= 0:
            st["done"] = True
            stop.set()
            return
        for c, p in enumerate(ports):
            buf[pos : pos + n, c] = p.get_array()[:n]

    client.activate()
    try:
        for src, dst in zip(ports_to_record, ports, strict=True):
            client.connect(src, dst)
        deadline = time.monotonic() + 10.0
        while st["start_frame"] is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if st["start_frame"] is None:
            print("recorder: JACK never called us", file=sys.stderr)
            return 1
        start_us = st["start_mono_s"] * 1e6  # CLOCK_MONOTONIC at the first recorded frame
        Path(str(info) + ".ready").write_text(str(start_us))
        stop.wait(max_seconds + 5.0)
        st["done"] = True
        client.deactivate()
        np.save(out, buf[: min(st["last_pos"], max_samples)])
        info.write_text(
            json.dumps(
                {"start_us": start_us, "xruns": st["xruns"], "missed": st["missed"], "rate_hz": client.samplerate}
            )
        )
        return 0
    finally:
        client.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nextblock.jackio.recorder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--server", required=True, help="JACK server name to record on")
    p.add_argument("--ports", required=True, help="comma-separated source ports, e.g. JackTrip:receive_1")
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop after this long at most")
    p.add_argument("--out", required=True, type=Path, help=".npy file for the samples (samples x channels)")
    p.add_argument("--info", required=True, type=Path, help="JSON file for timing/xrun info")
    a = p.parse_args(argv)
    return record(a.server, a.ports.split(","), a.max_seconds, a.out, a.info)


if __name__ == "__main__":
    sys.exit(main())
