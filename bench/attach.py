"""Benchmark of ``python -m nextblock.attach``: N stereo streams, just-in-time vs always-predict vs Burg.

Processes, as in production:

* the **JackTrip stand-in** (``nextblock.lab.emulator``): N streams (one segment each,
  ``/nextblock-<pid>-<port>`` when N > 1), a real recording from the allowed Debian packages
  (cached under ``$NEXTBLOCK_CACHE/debian/extracted``; a synthetic signal otherwise), seeded
  losses in bursts, seeded arrival jitter, a play-out ``--headroom-blocks`` after arrival, the
  play-out clock, replacements taken and UNDERRUN events posted per stream;
* **NextBlock** (``python -m nextblock.attach --jacktrip-pid PID --once``), pinned to the first
  CPU; its CPU share is the process's CPU time over wall time from its first stream on;
* a **busy loop** on the other CPU ("the other core busy"), unless ``--no-busy``; the stand-in is
  pinned there too (with SCHED_FIFO it preempts the busy loop, as JackTrip's audio thread would).

It runs the same scenario (same seeds) twice: NextBlock as it chooses (``--mode auto``:
just-in-time where the headroom allows it, with ``--jit-wake auto``), then the **baseline**,
always predicting (``--mode speculative``); with ``--compare-timed-wake`` also just-in-time waking
before every block (``--jit-wake timed``); and it times **JackTrip's own Burg concealment** (its
``BurgAlgorithm``
cut from the 2.7.2 source and compiled with -O3, as JackTrip builds it, at bench time, ``bench/burg_cost.py``) to give
``burg_cpu_share`` = Burg's median cost per channel per glitch x the concealments of the run.

Reports per stream and in total: ``replacement_share`` (concealments that played NextBlock's
block, from the stand-in's side), ``deadline_miss_share``, ``cpu_share`` (of one core, the attach
process), predictions per second and ``mode``. The last output line is one JSON object.

Targets (128 frames, 48 kHz, ``--realtime``): 1 stream, headroom >= 2: share >= 0.999, CPU <= 0.01
at 1 % loss and <= 0.02 at 5 %; 16 streams at 5 %: share >= 0.999 each, CPU <= 0.5; minimum
headroom (``--headroom-blocks 0 --jitter-us 0``): share >= 0.995, CPU <= 0.15. On a shared
machine the numbers are pessimistic: the load average is in the JSON.

Usage::

    PYTHONPATH=python python bench/attach.py --realtime --loss-rate 0.01            # 1 stream, 20 s
    PYTHONPATH=python python bench/attach.py --realtime --streams 16 --seconds 30
    PYTHONPATH=python python bench/attach.py --realtime --headroom-blocks 0 --jitter-us 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from burg_cost import burg_cost  # noqa: E402


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "python")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["NEXTBLOCK_NO_EDITABLE"] = "1"
    return env


def pinned(cpu: int | None):
    def pin():
        if cpu is None:
            return
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass

    return pin


def run_once(
    args, mode: str, tmp: Path, tag: str, attach_cpu: int | None, emulator_cpu: int | None, jit_wake: str = "auto"
) -> dict:
    """One stand-in + one attach run; returns the stand-in's summary and attach's statistics."""
    env = child_env()
    ready = tmp / f"{tag}.ready"
    emu_cmd = [
        sys.executable,
        "-m",
        "nextblock.lab.emulator",
        "--seconds",
        str(args.seconds),
        "--loss-rate",
        str(args.loss_rate),
        "--burst-max",
        str(args.burst_max),
        "--seed",
        str(args.seed),
        "--channels",
        "2",
        "--streams",
        str(args.streams),
        "--headroom-blocks",
        str(args.headroom_blocks),
        "--jitter-us",
        str(args.jitter_us),
        "--ready-file",
        str(ready),
        "--lead-in-s",
        "0.5",
        *(["--realtime", "20"] if args.realtime else []),
    ]
    emu = subprocess.Popen(
        emu_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=pinned(emulator_cpu)
    )
    try:
        deadline = time.monotonic() + 120
        while not (ready.exists() and ready.read_text()):
            if emu.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stand-in did not start: {emu.communicate()[1][-2000:]}")
            time.sleep(0.05)
        cmd = [
            sys.executable,
            "-m",
            "nextblock.attach",
            "--jacktrip-pid",
            str(emu.pid),
            "--once",
            "--json",
            str(tmp / f"{tag}.json"),
            "--predictor",
            args.predictor,
            "--log-level",
            "warning",
            "--mode",
            mode,
            "--jit-wake",
            jit_wake,
            "--keep-warm",
            args.keep_warm,
            "--keep-warm-ms",
            str(args.keep_warm_ms),
        ]
        if args.model:
            cmd += ["--model", args.model]
        if args.realtime:
            cmd += ["--realtime"]
        if args.no_gc_freeze:
            cmd += ["--no-gc-freeze"]
        attach = subprocess.run(
            cmd,
            env=env,
            capture_output=True,
            text=True,
            timeout=args.seconds + 300,
            preexec_fn=pinned(attach_cpu),
            check=False,
        )
        emu_out, emu_err = emu.communicate(timeout=120)
    finally:
        if emu.poll() is None:
            emu.kill()
            emu.wait()
    if attach.returncode not in (0, 3):
        raise RuntimeError(f"attach failed ({attach.returncode}): {attach.stderr[-3000:]}")
    if emu.returncode != 0:
        raise RuntimeError(f"the stand-in failed: {emu_err[-2000:]}")
    return {
        "emulator": json.loads(emu_out.strip().splitlines()[-1]),
        "attach": json.loads((tmp / f"{tag}.json").read_text()),
    }


def summarize(run: dict, seconds: float) -> dict:
    """Per-stream and total figures of one run (streams matched by segment name)."""
    emu, att = run["emulator"], run["attach"]
    by_segment = {s["segment"]: s for s in att["streams"]}
    streams = []
    for e in emu["streams"]:
        a = by_segment.get(e["segment"], {})
        streams.append(
            {
                "segment": e["segment"],
                "name": a.get("name", e["name"]),
                "mode": a.get("mode"),
                "concealments": e["lost"],
                "replaced": e["replaced"],
                "replacement_share": e["replacement_share"],
                "late_arrivals": e["late_arrivals"],
                "fallback_blocks": e.get("fallback_blocks", []),
                "deadline_miss_share": a.get("deadline_miss_share"),
                "predictions": a.get("predictions"),
                "predictions_per_s": (a.get("predictions") or 0) / max(a.get("attached_s") or seconds, 1e-9),
                "attach_underruns": a.get("underruns"),
                "attach_replacements_used": a.get("replacements_used"),
            }
        )
    shares = [s["replacement_share"] for s in streams if s["replacement_share"] is not None]
    return {
        "replacement_share": emu["replacement_share"],
        "replacement_share_min": min(shares) if shares else None,
        "deadline_miss_share": att["deadline_miss_share"],
        "cpu_share": att["cpu_share"],
        "predictions_per_s": att["predictions_per_s"],
        "rows_per_batch": att.get("rows_per_batch"),
        "wakes_per_s": att.get("wakes_per_s"),
        "late": att.get("late"),
        "overload_skips": att.get("overload_skips"),
        "infer_us_median": att["infer_us_median"],
        "infer_us_p99": att["infer_us_p99"],
        "gc_collections": att.get("gc_collections"),
        "gc_max_pause_us": att.get("gc_max_pause_us"),
        "gc_full_at_s": att.get("gc_full_at_s"),
        "cold_infer_us_at_start": att.get("cold_infer_us_at_start"),
        "modes": att["modes"],
        "jit_wake": att.get("jit_wake"),
        "warmups": att.get("warmups"),
        "warmup_cpu_share": att.get("warmup_cpu_share"),
        "concealments": emu["lost"],
        "replaced": emu["replaced"],
        "blocks": emu["blocks"],
        "late_arrivals": sum(s["late_arrivals"] for s in streams),
        "emulator_tick_late_us_p99": emu["tick_late_us_p99"],
        "emulator_tick_late_us_max": emu.get("tick_late_us_max"),  # a stall of the whole machine shows here too
        "emulator_tick_late_us_max_block": emu.get("tick_late_us_max_block"),
        "model_version": att["model_version"],
        "streams": streams,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: PYTHONPATH=python python bench/attach.py --realtime --streams 16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--streams", type=int, default=1, help="stereo streams (default 1)")
    parser.add_argument("--seconds", type=float, default=20.0, help="stream length per run (default 20)")
    parser.add_argument("--loss-rate", type=float, default=0.05, help="share of blocks lost (default 0.05)")
    parser.add_argument("--burst-max", type=int, default=3, help="longest burst of losses (default 3)")
    parser.add_argument(
        "--headroom-blocks",
        type=int,
        default=2,
        help="blocks between arrival and play-out (default 2; 0 = JackTrip's minimum latency)",
    )
    parser.add_argument("--jitter-us", type=float, default=300.0, help="mean arrival jitter in us (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", help="TFLite model (default: the shipped one)")
    parser.add_argument(
        "--predictor",
        choices=("model", "repeat"),
        default="model",
        help="'repeat' measures the runtime without the model",
    )
    parser.add_argument("--no-busy", action="store_true", help="do not load the other core")
    parser.add_argument(
        "--keep-warm",
        choices=("auto", "on", "off"),
        default="auto",
        help="attach's --keep-warm (default auto: throw-away predictions while cold ones miss)",
    )
    parser.add_argument("--keep-warm-ms", type=float, default=4.0, help="attach's --keep-warm-ms (default 4)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the always-predict run")
    parser.add_argument(
        "--compare-timed-wake",
        action="store_true",
        help="also run just-in-time with the timed wake before every block (attach --jit-wake timed) "
        "beside the automatic choice",
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="attach --no-gc-freeze: Python's collector as usual (to measure what freezing saves)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="the stand-in with SCHED_FIFO 20, as JACK would run JackTrip's audio thread, and attach "
        "--realtime, which takes one below the stand-in's threads (19)",
    )
    args = parser.parse_args(argv)
    if args.streams < 1 or args.seconds <= 0:
        parser.error("--streams must be >= 1 and --seconds > 0")

    cpus = sorted(os.sched_getaffinity(0))
    attach_cpu = cpus[0] if len(cpus) > 1 else None
    busy = None
    if not args.no_busy and len(cpus) > 1:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pinned(cpus[-1]))
    try:
        with tempfile.TemporaryDirectory(prefix="nb-bench-attach-") as tmp:
            tmp = Path(tmp)
            other = (
                cpus[-1] if len(cpus) > 1 else None
            )  # JackTrip's stand-in beside the busy loop, not on NextBlock's core
            runs = {"auto": summarize(run_once(args, "auto", tmp, "auto", attach_cpu, other), args.seconds)}
            if args.compare_timed_wake:
                runs["timed-wake"] = summarize(
                    run_once(args, "auto", tmp, "timed", attach_cpu, other, "timed"), args.seconds
                )
            if not args.no_baseline:
                runs["speculative"] = summarize(
                    run_once(args, "speculative", tmp, "spec", attach_cpu, other), args.seconds
                )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    burg = burg_cost()
    main_run = runs["auto"]
    concealments_per_s = main_run["concealments"] / args.seconds
    burg_share = None if "error" in burg else burg["median_us"] * 1e-6 * 2 * concealments_per_s
    result = {
        **{k: v for k, v in main_run.items() if k != "streams"},
        "mode": main_run["modes"][0] if len(main_run["modes"]) == 1 else "mixed",
        "streams": main_run["streams"],
        "baseline_speculative": None
        if args.no_baseline
        else {k: v for k, v in runs["speculative"].items() if k != "streams"},
        "timed_wake": {k: v for k, v in runs["timed-wake"].items() if k != "streams"} if "timed-wake" in runs else None,
        "cpu_ratio_to_speculative": None
        if args.no_baseline
        else main_run["cpu_share"] / max(runs["speculative"]["cpu_share"], 1e-9),
        "burg_us_median_per_channel_glitch": burg.get("median_us"),
        "burg_us_p99_per_channel_glitch": burg.get("p99_us"),
        "burg_cpu_share": burg_share,
        "burg_error": burg.get("error"),
        "cpu_ratio_to_burg": None if not burg_share else main_run["cpu_share"] / burg_share,
        "targets": "1 stream, headroom >= 2: share >= 0.999, cpu <= 0.01 (1 % loss) / 0.02 (5 %); 16 streams at 5 %: "
        "share >= 0.999 each, cpu <= 0.5; minimum headroom: share >= 0.995, cpu <= 0.15",
        "n_streams": args.streams,
        "loss_rate": args.loss_rate,
        "headroom_blocks": args.headroom_blocks,
        "jitter_us": args.jitter_us,
        "seconds": args.seconds,
        "realtime": args.realtime,
        "other_core_busy": busy is not None,
        "load_average_1min": os.getloadavg()[0],
        "frames_per_block": 128,
        "sample_rate_hz": 48000,
        "channels_per_stream": 2,
    }
    print(
        f"{args.streams} stereo stream(s), {100 * args.loss_rate:.1f} % loss, headroom {args.headroom_blocks} blocks, "
        f"jitter {args.jitter_us:.0f} us, {args.seconds:.0f} s; load average {result['load_average_1min']:.1f}"
    )
    for name, r in runs.items():
        share = "-" if r["replacement_share"] is None else f"{r['replacement_share']:.4f}"
        worst = "-" if r["replacement_share_min"] is None else f"{r['replacement_share_min']:.4f}"
        wake = f" ({r['jit_wake']} wake)" if "just-in-time" in r["modes"] else ""
        print(
            f"  {name:<12} mode {','.join(r['modes']) + wake:<26} replacement share {share} "
            f"(worst stream {worst}), deadline misses {r['deadline_miss_share']:.4f}, "
            f"CPU {r['cpu_share']:.4f} of a core, {r['predictions_per_s']:.0f} predictions/s, "
            f"infer us median/p99 {r['infer_us_median']}/{r['infer_us_p99']}"
        )
    if burg_share is not None:
        ratio = "-" if result["cpu_ratio_to_burg"] is None else f"{result['cpu_ratio_to_burg']:.1f}x"
        print(
            f"  JackTrip Burg (C++ -O3, bench/burg_cost.py): {burg['median_us']:.0f} us per channel per glitch -> CPU {burg_share:.4f} "
            f"of a core on these concealments; NextBlock / Burg = {ratio}"
        )
    else:
        print(f"  JackTrip Burg: not measured ({burg['error']})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
