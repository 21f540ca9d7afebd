"""Checks shared by the end-to-end tests that record a JackTrip stream (``run_e2e`` results)."""

from __future__ import annotations

# Above this share of the recording lost to the harness's own xruns, the host shaped the audio.
# Stock 5 %-loss runs here: 12–15 dB overall with ≤ 0.6 % missed (quiet host); 4.4–8.0 dB with
# 1.5–2.1 % (two real-time CPU hogs); 1.6–2.5 dB with 21–23 %, where the player and recorder skip
# periods every few tens of milliseconds and no 100-ms alignment window stays clean
HOST_DISTURBED_FRACTION = 0.01


def assert_recording_is_the_music(r: dict, floor_db: float = 3.0) -> None:
    """The whole aligned recording is the sent music: SNR above ``floor_db`` when the harness lost
    under 1 % of it to xruns, above 0 dB otherwise (silence scores exactly 0 dB, music misaligned by
    a beat about −3 dB, so > 0 dB still says most of it came through in time)."""
    missed = r["harness_missed_fraction"]
    floor = floor_db if missed < HOST_DISTURBED_FRACTION else 0.0
    why = {k: r.get(k) for k in ("harness_missed_fraction", "xruns", "timing_slips", "lag_range_samples", "latency_ms")}
    assert r["metrics"]["snr_db"] > floor, (r["metrics"], why)
