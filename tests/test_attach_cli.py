"""The command line: bad input (one-line errors, exit 2), signals, JackTrip restarts, --once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import helpers_attach as h
from nextblock.capture import Consumer, Producer


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def stream_until_posted(
    producer, attach, posts: int, block_at, period_s: float, stop_signal=signal.SIGINT, timeout_s: float = 30.0
) -> str:
    """Publish ``block_at(seq)`` every ``period_s`` until ``attach`` has posted ``posts``
    replacements, then stop it with ``stop_signal``. Returns its stderr (killed if it hangs)."""
    try:
        seq, deadline = 0, time.monotonic() + timeout_s
        while producer.counters()["replacements_posted"] < posts:
            assert time.monotonic() < deadline and attach.poll() is None, attach.communicate()
            producer.publish_block(seq, block_at(seq))
            seq += 1
            time.sleep(period_s)
        attach.send_signal(stop_signal)
        attach.wait(timeout=5)
    finally:
        if attach.poll() is None:
            attach.kill()
    return attach.communicate()[1]


def test_no_such_process():
    pid = dead_pid()
    assert_one_line_error(
        h.run_attach(["--jacktrip-pid", str(pid), "--predictor", "repeat"]), f"no process with PID {pid}"
    )


def test_a_process_that_is_not_a_patched_jacktrip():
    with subprocess.Popen(["sleep", "30"]) as sleeper:
        try:
            result = h.run_attach(["--jacktrip-pid", str(sleeper.pid), "--predictor", "repeat"])
        finally:
            sleeper.kill()
    assert_one_line_error(result, "has no NextBlock segment", "not a patched JackTrip", "--nextblock")


def test_a_segment_with_another_layout_is_refused(segment_name):
    with open("/dev/shm" + segment_name, "wb") as f:
        f.write(b"NOTNEXTBLOCK" + bytes(8192))
    assert_one_line_error(h.run_attach(["--segment", segment_name, "--predictor", "repeat"]), "protocol versions")


def test_a_second_nextblock_is_refused(segment_name):
    with Producer(segment_name, 48000, 128, 2), Consumer(segment_name, post_replacements=True):
        result = h.run_attach(["--segment", segment_name, "--predictor", "repeat"])
    assert_one_line_error(result, "already posts replacements", "only one NextBlock")


def test_a_corrupt_model_is_refused(tmp_path, segment_name):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 4 + b"TFL3" + os.urandom(200))
    with Producer(segment_name, 48000, 128, 2):
        result = h.run_attach(["--segment", segment_name, "--model", str(bad)])
    assert_one_line_error(result, str(bad))


def test_a_model_for_another_block_size_is_refused(segment_name):
    model = h.tiny_model(1, frames=128)
    with Producer(segment_name, 48000, 256, 2):
        result = h.run_attach(["--segment", segment_name, "--model", str(model)])
    assert_one_line_error(result, "128-frame blocks only", "256")


def test_a_model_for_another_sample_rate_is_refused(segment_name):
    model = h.tiny_model(1, frames=128)
    with Producer(segment_name, 44100, 128, 2):
        result = h.run_attach(["--segment", segment_name, "--model", str(model)])
    assert_one_line_error(result, "trained at 48000 Hz", "44100 Hz")


@pytest.mark.parametrize("rate, frames", [(44100, 256), (96000, 32)])
def test_a_model_trained_at_several_rates_serves_other_block_sizes_and_rates(tmp_path, segment_name, rate, frames):
    """A model whose metadata lists the stream's rate serves any block size: attach cuts (or
    chains) its horizon, posts full replacement blocks and names the choice in its statistics."""
    from nextblock.model.metadata import embed_metadata, read_metadata

    tiny = h.tiny_model(1, frames=128)
    family = tmp_path / "family.tflite"
    family.write_bytes(
        embed_metadata(tiny.read_bytes(), dict(read_metadata(tiny), sample_rates_hz=[44100, 48000, 96000]))
    )
    stats_file = tmp_path / "stats.json"
    with Producer(segment_name, rate, frames, 2) as producer:
        attach = h.start_attach(["--segment", segment_name, "--model", str(family), "--json", str(stats_file)])
        rng = np.random.default_rng(0)

        def noise(_seq: int) -> np.ndarray:
            return (0.1 * rng.standard_normal((frames, 2))).astype(np.float32)

        err = stream_until_posted(producer, attach, 40, noise, frames / rate)
        assert attach.returncode == 0 and "Traceback" not in err, err
    stats = json.loads(stats_file.read_text())
    assert stats["posts"] >= 40
    assert f"for {frames} frames at {rate} Hz" in stats["model_choice"], stats["model_choice"]


def test_a_segment_still_being_created_is_waited_for_and_served_at_its_own_block_size(tmp_path, segment_name):
    """JackTrip publishes its segment's magic number last. An attach that finds the segment before
    then waits for it: it neither calls it foreign nor guesses the block size (64 here, where the
    guess would be 128 and the stream then refused)."""
    from helpers_shm import poke
    from nextblock import _core

    stats_file = tmp_path / "stats.json"
    with Producer(segment_name, 48000, 64, 2) as producer:
        poke(segment_name, "magic", "<Q", 0)  # as between JackTrip's create and its publish
        attach = h.start_attach(["--segment", segment_name, "--predictor", "repeat", "--json", str(stats_file)])
        time.sleep(0.5)
        poke(segment_name, "magic", "<Q", _core.MAGIC)
        err = stream_until_posted(producer, attach, 20, lambda _: np.full((64, 2), 0.1, np.float32), 64 / 48000)
    assert attach.returncode == 0 and "Traceback" not in err and "not serving" not in err, err
    assert json.loads(stats_file.read_text())["posts"] >= 20


def test_channels_that_the_stream_lacks_are_refused(segment_name):
    with Producer(segment_name, 48000, 128, 2):
        result = h.run_attach(["--segment", segment_name, "--predictor", "repeat", "--channels", "0,5"])
    assert_one_line_error(result, "channels 0..1")


@pytest.mark.parametrize(
    "argv", [["--predictor", "repeat"], ["--jacktrip-pid", "0"], ["--segment", "/x", "--channels", "a"]]
)
def test_usage_errors(argv):
    result = h.run_attach(argv)
    assert result.returncode == 2 and "usage:" in result.stderr and "Traceback" not in result.stderr


def test_help_teaches_with_examples():
    result = h.run_attach(["--help"])
    assert result.returncode == 0
    for fragment in ("--jacktrip-pid", "--model-dir", "--stats", "examples:", "exit status"):
        assert fragment in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_leaves_jacktrip_on_its_fallback(tmp_path, segment_name, signum):
    frames, period_s = 128, 128 / 48000
    stats_file = tmp_path / "stats.json"
    with Producer(segment_name, 48000, frames, 2) as producer:
        attach = h.start_attach(["--segment", segment_name, "--predictor", "repeat", "--json", str(stats_file)])
        block = np.full((frames, 2), 0.25, np.float32)
        err = stream_until_posted(producer, attach, 50, lambda _: block, period_s, stop_signal=signum, timeout_s=20)
        assert attach.returncode == 0, err
        assert "Traceback" not in err
        assert producer.counters()["poster_pid"] == 0, "the poster role is given back"
        time.sleep(1.1)
        assert not producer.consumer_alive(), "JackTrip sees the consumer gone and plays its own fallback"
    stats = json.loads(stats_file.read_text())
    assert stats["posts"] >= 50 and stats["blocks"] >= 50


def test_once_stops_with_a_message_when_jacktrip_exits(tmp_path):
    proc, ready, _ = h.start_emulator(tmp_path, seconds=1.0, loss_rate=0.05, out=False)
    h.wait_ready(ready, proc)
    result = h.run_attach(
        ["--jacktrip-pid", str(proc.pid), "--predictor", "repeat", "--once", "--json", "-"], timeout_s=40
    )
    proc.communicate(timeout=10)
    assert result.returncode == 3, result.stderr
    assert "--once given, stopping" in result.stderr
    stats = json.loads(result.stdout)
    assert stats["blocks"] > 300 and stats["reattaches"] == 0


def test_survives_a_jacktrip_restart_and_reattaches(tmp_path):
    """A restarted JackTrip has a new PID; NextBlock finds it by its command line and serves it."""
    stats_file = tmp_path / "stats.json"
    first, ready1, _ = h.start_emulator(tmp_path, seconds=1.5, loss_rate=0.05, out=False, tag="a")
    h.wait_ready(ready1, first)
    attach = h.start_attach(["--jacktrip-pid", str(first.pid), "--predictor", "repeat", "--json", str(stats_file)])
    try:
        _, err1 = first.communicate(timeout=40)
        assert first.returncode == 0, err1
        time.sleep(0.5)
        assert attach.poll() is None, attach.communicate()
        # same command line, new PID (the ready file differs only by name, so reuse the first's)
        os.unlink(ready1)
        second, ready2, _ = h.start_emulator(tmp_path, seconds=1.5, loss_rate=0.05, out=False, tag="a")
        h.wait_ready(ready2, second, timeout_s=40)
        out2, err2 = second.communicate(timeout=40)
        assert second.returncode == 0, err2
        assert second.pid != first.pid
        summary2 = json.loads(out2.strip().splitlines()[-1])
        assert summary2["replaced"] >= 0.5 * summary2["lost"] > 0, summary2
        attach.send_signal(signal.SIGTERM)
        attach.wait(timeout=10)
    finally:
        for p in (attach,):
            if p.poll() is None:
                p.kill()
    _, err = attach.communicate()
    assert attach.returncode == 0, err
    assert "re-attached" in err
    stats = json.loads(stats_file.read_text())
    assert stats["reattaches"] == 1
