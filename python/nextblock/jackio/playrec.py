"""Play a numpy signal into JACK ports on one server and record ports on another.

:class:`PlayRecord` runs two JACK clients (pip ``JACK-Client``), one per process, because
libjack mixes up port ids when one process talks to two servers:

* ``nbrec`` (child process ``python -m nextblock.jackio.recorder``) on the *receiving*
  server: inputs ``in_N`` wired from JackTrip's ``receive_N``; records from its first cycle
  until SIGTERM;
* ``nbplay`` (this process) on the *sending* server: outputs ``out_N`` wired to JackTrip's
  ``send_N``; writes zeros for ``lead_s``, then the audio, then zeros.

Both callbacks index their buffers by JACK frame time, so a cycle that a client missed
(an xrun, counted in the result) leaves a hole at the right place instead of shifting
everything after it. Start times are taken on CLOCK_MONOTONIC (shared by both processes), which gives the one-way latency after alignment.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.collector import collections_off
from .procs import ManagedProcess, wait_until

__all__ = ["PlayRecord", "PlayRecordResult", "jack_client_available"]


def jack_client_available() -> tuple[bool, str]:
    """(ok, reason) for the Python JACK binding."""
    try:
        import jack  # noqa: F401
    except ImportError:
        return False, "pip package JACK-Client (module 'jack') is not installed: pip install JACK-Client"
    except OSError as exc:
        return False, f"libjack not loadable ({exc}): apt-get install libjack-jackd2-0"
    return True, "ok"


@dataclass
class PlayRecordResult:
    """Recorded audio (samples × channels, float32) and what happened while recording.

    ``play_offset_samples``: where, in ``recorded``, the first audio sample would sit
    with zero network latency (from JACK's clock), so ``lag - play_offset`` is the latency.
    """

    recorded: np.ndarray
    rate_hz: int
    play_offset_samples: int
    player_xruns: int
    recorder_xruns: int
    player_missed_samples: int
    recorder_missed_samples: int


class PlayRecord:
    """Play ``audio`` into ``send_ports`` (server ``play_server``), record ``receive_ports`` (``record_server``).

    Parameters
    ----------
    audio: float32 array, shape (samples,) or (samples, channels), values in [-1, 1].
    lead_s: silence sent before the audio; tail_s: recording kept after it.
    timeout_s: hard bound for :meth:`run` (default: duration + 30 s).
    """

    def __init__(
        self,
        play_server: str,
        record_server: str,
        send_ports,
        receive_ports,
        audio: np.ndarray,
        lead_s: float = 0.5,
        tail_s: float = 1.0,
        timeout_s: float | None = None,
    ):
        audio = np.asarray(audio, dtype=np.float32)
        self.audio = audio[:, None] if audio.ndim == 1 else audio
        self.n_ch = self.audio.shape[1]
        if len(send_ports) != self.n_ch or len(receive_ports) != self.n_ch:
            raise ValueError("need one send and one receive port per audio channel")
        self.play_server, self.record_server = play_server, record_server
        self.send_ports, self.receive_ports = list(send_ports), list(receive_ports)
        self.lead_s, self.tail_s = lead_s, tail_s
        self.timeout_s = timeout_s

    def run(self, rate_hz: int = 48000) -> PlayRecordResult:
        """Play and record once; blocks for about lead + audio + tail seconds."""
        import jack

        duration_s = self.lead_s + len(self.audio) / rate_hz + self.tail_s
        timeout_s = self.timeout_s or duration_s + 30.0
        max_samples = int((duration_s + 15.0) * rate_hz)
        with tempfile.TemporaryDirectory(prefix="nbrec-") as tmp:
            out_path, info_path = Path(tmp) / "rec.npy", Path(tmp) / "rec.json"
            ready_path = Path(str(info_path) + ".ready")
            args = [
                sys.executable,
                "-m",
                "nextblock.jackio.recorder",
                "--server",
                self.record_server,
                "--ports",
                ",".join(self.receive_ports),
                "--max-seconds",
                f"{max_samples / rate_hz:.3f}",
                "--out",
                str(out_path),
                "--info",
                str(info_path),
            ]
            env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            with ManagedProcess(args, Path(tmp) / "recorder.log", env=env, stop_timeout_s=15.0) as rec:

                def started():
                    rec.check_alive("recorder")
                    return ready_path.exists()

                wait_until(started, 20.0, 0.02, "the recorder to start")
                play = self._play(jack, rate_hz, timeout_s)
                time.sleep(self.tail_s)
                rec.stop()  # SIGTERM: the recorder saves and exits
                if not info_path.exists():
                    raise RuntimeError(f"recorder failed:\n{rec.log_tail()}")
                info = json.loads(info_path.read_text())
                recorded = np.load(out_path)
        offset = int(round((play["start_us"] - info["start_us"]) * 1e-6 * rate_hz))
        return PlayRecordResult(
            recorded=recorded,
            rate_hz=rate_hz,
            play_offset_samples=offset,
            player_xruns=play["xruns"],
            recorder_xruns=info["xruns"],
            player_missed_samples=play["missed"],
            recorder_missed_samples=info["missed"],
        )

    def _play(self, jack, rate_hz: int, timeout_s: float) -> dict:
        # The player's process callback is Python: it runs under the GIL of this process, whose heap
        # (harness, metrics, ViSQOL) is large. A full collection here once held the GIL for 76 ms
        # mid-run, the sending server missed 29 cycles and the run scored a JACK stall, not its
        # receiver. No collections while playing (reference counting still frees).
        with collections_off():
            return self._play_without_collections(jack, rate_hz, timeout_s)

    def _play_without_collections(self, jack, rate_hz: int, timeout_s: float) -> dict:
        client = jack.Client("nbplay", servername=self.play_server, no_start_server=True)
        try:
            if client.samplerate != rate_hz:
                raise RuntimeError(f"JACK server {self.play_server} runs at {client.samplerate} Hz, not {rate_hz}")
            ports = [client.outports.register(f"out_{i + 1}") for i in range(self.n_ch)]
            lead = int(round(self.lead_s * rate_hz))
            sig = np.concatenate([np.zeros((lead, self.n_ch), np.float32), self.audio])
            total = len(sig)
            st = {"start_frame": None, "last_pos": 0, "missed": 0, "xruns": 0}
            done = threading.Event()

            @client.set_xrun_callback
            def _xrun(delay_us):
                st["xruns"] += 1

            @client.set_process_callback
            def _play(frames):
                outs = [p.get_array() for p in ports]
                now = client.last_frame_time
                if st["start_frame"] is None:
                    st["start_mono_s"] = time.monotonic() - client.frames_since_cycle_start / client.samplerate
                    st["start_frame"] = now
                pos = now - st["start_frame"]
                if pos != st["last_pos"]:
                    st["missed"] += pos - st["last_pos"]
                st["last_pos"] = pos + frames
                chunk = sig[pos : pos + frames] if pos < total else sig[:0]
                n = len(chunk)
                for c, o in enumerate(outs):
                    if n:
                        o[:n] = chunk[:, c]
                    o[n:] = 0.0
                if pos + frames >= total:
                    done.set()

            client.activate()
            for src, dst in zip(ports, self.send_ports, strict=True):
                client.connect(src, dst)
            if not done.wait(timeout_s):
                raise TimeoutError(f"playback did not finish within {timeout_s:.0f} s")
            start_us = (st["start_mono_s"] + lead / rate_hz) * 1e6  # CLOCK_MONOTONIC of the first audio sample
            client.deactivate()
            return {"start_us": start_us, "xruns": st["xruns"], "missed": st["missed"]}
        finally:
            client.close()
