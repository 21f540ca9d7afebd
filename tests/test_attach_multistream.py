"""One ``python -m nextblock.attach --jacktrip-pid PID`` for every stream of a (stand-in) hub.

The stand-in (``nextblock.lab.emulator``) plays a hub server: one segment per client
(``/nextblock-<pid>-<port>``), clients joining and leaving mid-run, a port reused by a new client,
seeded losses and jitter per stream, and a play-out clock. Everything is checked from both sides:
what the stand-in played, and what attach reports per stream.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import helpers_attach as h


def run_hub(tmp_path, emulator_args: list[str], attach_args: list[str], timeout_s: float = 90.0):
    ready = tmp_path / "hub.ready"
    cmd = [
        sys.executable,
        "-m",
        "nextblock.lab.emulator",
        "--ready-file",
        str(ready),
        "--wait-consumer-s",
        "30",
        *emulator_args,
    ]
    emu = subprocess.Popen(cmd, env=h.python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        h.wait_ready(ready, emu)
        attach = h.run_attach(
            ["--jacktrip-pid", str(emu.pid), "--predictor", "repeat", "--once", "--json", "-", *attach_args],
            timeout_s=timeout_s,
        )
        out, err = emu.communicate(timeout=60)
    finally:
        if emu.poll() is None:
            emu.kill()
            emu.communicate()
    assert emu.returncode == 0, err
    assert attach.returncode == 3, attach.stderr  # --once: stops when the stand-in exits
    assert "Traceback" not in attach.stderr
    return json.loads(out.strip().splitlines()[-1]), json.loads(attach.stdout), attach.stderr


def test_streams_joining_leaving_and_a_reused_port_are_each_served_and_counted(tmp_path):
    # client1: whole run; client2 on 61003 leaves at 2.0 s; client3 joins at 1.0 s; client4 reuses 61003 from 2.6 s
    summary, stats, err = run_hub(
        tmp_path,
        [
            "--seconds",
            "4.5",
            "--loss-rate",
            "0.06",
            "--burst-max",
            "2",
            "--headroom-blocks",
            "2",
            "--jitter-us",
            "200",
            "--stream",
            "61002:0",
            "--stream",
            "61003:0:2.0",
            "--stream",
            "61004:1.0",
            "--stream",
            "61003:2.6",
        ],
        ["--stats", "0.5"],
    )
    emu = {s["name"]: s for s in summary["streams"]}
    att = {s["name"]: s for s in stats["streams"]}
    assert sorted(att) == ["client1", "client2", "client3", "client4"], sorted(att)
    assert stats["streams_joined"] == 4 and stats["streams_left"] == 4
    for name, a in att.items():
        e = emu[name]
        # per-stream statistics match each stream's own losses, as the producer reported them
        assert (a["underruns"], a["replacements_used"], a["fallbacks"]) == (e["lost"], e["replaced"], e["fallbacks"]), (
            name
        )
        assert a["peer"] == f"192.0.2.{name[-1]}:{a['local_port']}" and a["local_port"] == e["port"]
        assert (a["frames_per_block"], a["sample_rate_hz"], a["channels"]) == (128, 48000, 2)
        assert a["mode"] in ("just-in-time", "speculative") and a["left"]
        # every fallback explained, every replacement posted in time played (what NextBlock
        # controls); how many came in time is this loaded machine's timing without real-time
        # priority (0.72 for client1 in one CI run at the host's busiest, 0.79-1.0 under a
        # real-time hog here): bench/attach.py holds the share, the test only that streams are served
        h.assert_fallbacks_explained(a, e["lost"], (name, e))
        assert e["lost"] > 0 and e["replaced"] >= 0.5 * e["lost"], (name, e)
        # --lookahead auto (the default): each replacement played is two-sided or one-sided for a
        # reason; each two-sided gap ends in a packet the stand-in played as it came
        assert (
            a["two_sided"] + a["one_sided_no_later_block"] + a["one_sided_burst_too_long"] + a["one_sided_too_late"]
            == a["replacements_used"]
        ), (name, a)
        assert e["identity_splices"] <= a["two_sided"], (name, e, a)
    # the stream served through all joins and leaves was not disturbed, and predicted just in time
    whole = att["client1"]
    assert emu["client1"]["replaced"] >= 0.6 * emu["client1"]["lost"]
    assert whole["mode"] == "just-in-time" and whole["predictions"] < 0.25 * whole["blocks"], whole
    assert stats["lookahead"] == "auto" and emu["client1"]["identity_splices"] >= 1, (emu["client1"], whole)
    # the reused port is a new stream with its own counts
    assert att["client2"]["segment"] == att["client4"]["segment"] == emu["client4"]["segment"]
    # totals are the sums
    for key in ("blocks", "underruns", "replacements_used", "fallbacks", "posts", "two_sided"):
        assert stats[key] == sum(s[key] for s in stats["streams"]), key
    # --stats: a totals line and one line per stream
    assert "streams=" in err and "  client1 " in err and "  client3 " in err


def test_minimum_headroom_stays_speculative_and_predicts_after_every_block(tmp_path):
    # one stream (segment /nextblock-<pid>), each block due the moment it arrives: no time to wait
    summary, stats, _ = run_hub(
        tmp_path, ["--seconds", "2.5", "--loss-rate", "0.05", "--burst-max", "2", "--headroom-blocks", "0"], []
    )
    assert [s["mode"] for s in stats["streams"]] == ["speculative"]
    for s, e in zip(stats["streams"], summary["streams"], strict=True):
        assert s["predictions"] >= 0.7 * s["blocks"]
        h.assert_fallbacks_explained(s, e["lost"], e)
        assert e["replaced"] >= 0.75 * e["lost"] > 0


def test_forced_speculative_mode_is_the_always_predict_baseline(tmp_path):
    _, stats, _ = run_hub(
        tmp_path,
        ["--seconds", "2.0", "--loss-rate", "0.05", "--headroom-blocks", "2", "--jitter-us", "200"],
        ["--mode", "speculative"],
    )
    (s,) = stats["streams"]
    assert s["mode"] == "speculative" and s["predictions"] >= 0.7 * s["blocks"]
    assert stats["modes"] == ["speculative"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--jacktrip-pid", "1", "--mode", "sometimes"], "invalid choice"),
        (["--segment", "/x", "--batch-window-us", "0"], "positive"),
    ],
)
def test_new_options_reject_bad_values(argv, message):
    result = h.run_attach(argv)
    assert result.returncode == 2 and message in result.stderr


def test_help_explains_modes_and_hub_streams():
    out = h.run_attach(["--help"]).stdout
    for fragment in ("just-in-time", "speculative", "/nextblock-PID-PORT", "--wait-for-streams", "--mode"):
        assert fragment in out, fragment
