"""Benchmark of ``python -m nextblock.attach`` at 128 frames, 48 kHz, stereo, with the other core busy.

Three processes, as in production:

* the **JackTrip stand-in** (``nextblock.runtime.emulator``): streams a real recording from the
  allowed Debian packages (cached under ``$NEXTBLOCK_CACHE/debian/extracted``; a synthetic signal
  with a note otherwise) at 375 blocks/s, drops seeded blocks, and at each block period takes the
  replacement for a dropped block (``take_replacement``) and reports the UNDERRUN event;
* **NextBlock** (``python -m nextblock.attach --once``) with the shipped model (``--model``),
  pinned to CPU 0;
* a **busy loop** pinned to CPU 1 ("the other core busy"), unless ``--no-busy``.

Reports the share of underruns that played a NextBlock replacement (target >= 99.5 %), deadline
misses, inference and end-to-end (block arrival -> replacement posted) latency median/p99, and the
CPU share of one core used by NextBlock (target <= 15 % for stereo). The last output line is one
JSON object.

Note: on a shared machine (other jobs running) the numbers are pessimistic; quote runs on a quiet one.

Usage::

    PYTHONPATH=python python bench/attach.py                 # 20 s, 5 % losses, bursts up to 3
    PYTHONPATH=python python bench/attach.py --seconds 60 --realtime
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


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "python")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["OPENBLAS_NUM_THREADS"] = "1"
    # a stale scikit-build editable install must not shadow the in-place tree
    build = REPO / "build" / "cp311-cp311-linux_x86_64"
    env["SKBUILD_EDITABLE_SKIP"] = os.pathsep.join(p for p in (env.get("SKBUILD_EDITABLE_SKIP"), str(build)) if p)
    return env


def pinned(cpu: int):
    def pin():
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass

    return pin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: PYTHONPATH=python python bench/attach.py --seconds 30",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="stream length (default 20)")
    parser.add_argument("--loss-rate", type=float, default=0.05, help="share of blocks lost (default 0.05)")
    parser.add_argument("--burst-max", type=int, default=3, help="longest burst of losses (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--model", help="TFLite model (default: the shipped one)")
    parser.add_argument("--predictor", choices=("model", "repeat"), default="model")
    parser.add_argument("--no-busy", action="store_true", help="do not load the other core")
    parser.add_argument("--realtime", action="store_true", help="run NextBlock (priority 10) and the JackTrip stand-in (20) with SCHED_FIFO, as JACK would")
    args = parser.parse_args(argv)

    env = child_env()
    cpus = sorted(os.sched_getaffinity(0))
    nb_cpu, busy_cpu = cpus[0], cpus[-1]
    with tempfile.TemporaryDirectory(prefix="nb-bench-attach-") as tmp:
        tmp = Path(tmp)
        busy = None
        if not args.no_busy:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pinned(busy_cpu))
        emu = subprocess.Popen(
            [sys.executable, "-m", "nextblock.runtime.emulator", "--seconds", str(args.seconds), "--loss-rate",
             str(args.loss_rate), "--burst-max", str(args.burst_max), "--seed", str(args.seed), "--channels",
             str(args.channels), "--ready-file", str(tmp / "ready"), "--out", str(tmp / "emu.npz"), "--lead-in-s", "0.5",
             *(["--realtime", "20"] if args.realtime else [])],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (tmp / "ready").exists():
                if emu.poll() is not None or time.monotonic() > deadline:
                    print(emu.communicate()[1], file=sys.stderr)
                    return 1
                time.sleep(0.05)
            cmd = [sys.executable, "-m", "nextblock.attach", "--jacktrip-pid", str(emu.pid), "--once",
                   "--json", str(tmp / "attach.json"), "--predictor", args.predictor, "--log-level", "warning"]
            if args.model:
                cmd += ["--model", args.model]
            if args.realtime:
                cmd += ["--realtime"]
            attach = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.seconds + 120,
                                    preexec_fn=pinned(nb_cpu), check=False)
            emu_out, _ = emu.communicate(timeout=60)
        finally:
            for p in (busy, emu):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
        if attach.returncode not in (0, 3):
            print(attach.stderr, file=sys.stderr)
            return 1
        emu_summary = json.loads(emu_out.strip().splitlines()[-1])
        stats = json.loads((tmp / "attach.json").read_text())
    result = {
        "replacement_share": emu_summary["replacement_share"],
        "deadline_miss_share": stats["deadline_miss_share"],
        "deadline_misses": stats["deadline_misses"],
        "late": stats["late"],
        "overload_skips": stats["overload_skips"],
        "infer_us_median": stats["infer_us_median"],
        "infer_us_p99": stats["infer_us_p99"],
        "e2e_us_median": stats["e2e_us_median"],
        "e2e_us_p99": stats["e2e_us_p99"],
        "cpu_share": stats["cpu_share"],
        "lost": emu_summary["lost"],
        "replaced": emu_summary["replaced"],
        "blocks": emu_summary["blocks"],
        "emulator_tick_late_us_p99": emu_summary["tick_late_us_p99"],
        "model_version": stats["model_version"],
        "audio": emu_summary["audio"],
        "other_core_busy": not args.no_busy,
        "realtime": args.realtime,
        "load_average_1min": os.getloadavg()[0],
        "frames_per_block": 128, "sample_rate_hz": 48000, "channels": args.channels, "seconds": args.seconds,
    }
    print(f"audio: {result['audio']}")
    print(f"underruns {result['lost']}, replaced by NextBlock {result['replaced']} "
          f"({100 * (result['replacement_share'] or 0):.2f} %, target >= 99.5 %)")
    print(f"deadline misses {result['deadline_misses']} ({100 * result['deadline_miss_share']:.3f} % of predictions)")
    print(f"inference us median/p99 {result['infer_us_median']}/{result['infer_us_p99']}; "
          f"e2e us median/p99 {result['e2e_us_median']}/{result['e2e_us_p99']}")
    print(f"CPU share of one core {100 * result['cpu_share']:.1f} % (target <= 15 %); load average {result['load_average_1min']:.1f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
