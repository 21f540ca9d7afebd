"""Every live figure from one command: run the live benchmarks, then write the results page.

``run`` drives the live benchmarks with the shipped model and runtime and writes their JSON under
``--out`` (default ``runs/results/``, git-ignored):

* ``e2e-seed<S>.json``: ``bench/e2e.py`` over every loss pattern (and ``lossless``, the ceiling)
  for each seed, with the stock Regulator (``--bufstrategy 3``, Burg), NextBlock on the Regulator
  (``nextblock-regulator``), on JackTrip's default JitterBuffer (``nextblock-jitterbuffer``) and on
  the ring buffer (``nextblock``);
* ``attach-<scenario>.json``: ``bench/attach.py --realtime`` (its last line), whose Burg is
  JackTrip's own, compiled with ``-O3`` as JackTrip's release build (``bench/burg_cost.py``);
* ``host.json``: date, cores, CPU model, load average before and after, commit, model.

``page`` reads those files and writes ``docs/results.md`` and the README's table (between
``<!-- results:begin -->`` and ``<!-- results:end -->``) with ``bench/results_page.py``: seed means
and ranges computed there, runs with timing slips or xruns reported apart.

    .venv/bin/python bench/results.py run --quick     # one seed, 10-s runs, 2 patterns (~8 min)
    .venv/bin/python bench/results.py run             # seeds 1-3, 60-s runs, every pattern (~2 h)
    .venv/bin/python bench/results.py page            # docs/results.md + README table from runs/results
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

#: (name, bench/attach.py arguments) in the full run; ``--quick`` keeps the first, shorter
ATTACH_SCENARIOS = [
    ("1-stream-5pct", ["--loss-rate", "0.05"]),
    ("1-stream-1pct", ["--loss-rate", "0.01"]),
    ("16-streams-5pct", ["--loss-rate", "0.05", "--streams", "16", "--seconds", "30"]),
    ("min-headroom-5pct", ["--loss-rate", "0.05", "--headroom-blocks", "0", "--jitter-us", "0"]),
]
FULL_PATTERNS = ["bernoulli-1", "bernoulli-5", "bernoulli-10", "bursts-ge", "lossless"]
QUICK_PATTERNS = ["bernoulli-5", "bursts-ge", "lossless"]
RECEIVERS = [
    "--fallback",
    "regulator",
    "--patched",
    "nextblock-regulator",
    "--patched",
    "nextblock-jitterbuffer",
    "--patched",
    "nextblock",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info() -> dict:
    """The machine class a result belongs to: cores, CPU model, memory, load, commit."""
    mem_gib = None
    try:
        kb = int(
            next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1]
        )
        mem_gib = round(kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    model = REPO / "models" / "nextblock-default.tflite"
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": mem_gib,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "commit": commit or None,
        "model": str(model.relative_to(REPO)),
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest()[:16] if model.exists() else None,
        "burg_build": "g++ -O3" if "-O3" in (REPO / "bench" / "burg_cost.py").read_text() else "see bench/burg_cost.py",
    }


def _last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the benchmark's output")


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [1] if args.quick else args.seeds
    patterns = QUICK_PATTERNS if args.quick else FULL_PATTERNS
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    host = {
        "started_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        "quick": args.quick,
        "seeds": seeds,
        "seconds": seconds,
        **host_info(),
    }
    host["load_average_start"] = host.pop("load_average")
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "python")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    }
    t0 = time.monotonic()
    if not args.skip_e2e:
        for seed in seeds:
            cmd = [
                sys.executable,
                str(REPO / "bench" / "e2e.py"),
                "--seconds",
                str(seconds),
                "--seed",
                str(seed),
                *RECEIVERS,
                *[a for p in patterns for a in ("--pattern", p)],
                "--out",
                str(out / "e2e-out" / f"seed{seed}"),
                "--json",
                str(out / f"e2e-seed{seed}.json"),
            ]
            print("+", " ".join(cmd), file=sys.stderr, flush=True)
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    if not args.skip_attach:
        for name, extra in ATTACH_SCENARIOS[:1] if args.quick else ATTACH_SCENARIOS:
            cmd = [sys.executable, str(REPO / "bench" / "attach.py"), "--realtime", *extra]
            if args.quick:
                cmd += ["--seconds", "10", "--no-baseline"]
            print("+", " ".join(cmd), file=sys.stderr, flush=True)
            done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            result = _last_json_line(done.stdout)
            result["command"] = "bench/attach.py " + " ".join(cmd[2:])
            (out / f"attach-{name}.json").write_text(json.dumps(result, indent=1))
    host["finished_utc"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    host["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    host["wall_s"] = round(time.monotonic() - t0, 1)
    (out / "host.json").write_text(json.dumps(host, indent=1))
    print(f"wrote {out}/ in {host['wall_s']:.0f} s; now: bench/results.py page --results {out}", file=sys.stderr)
    return 0


def page(args) -> int:
    from results_page import Tolerance, load_results, render_page, render_readme_table, replace_between_markers

    results = load_results(Path(args.results))
    results.tolerance = Tolerance(max_slips=args.max_slips, max_xruns=args.max_xruns)
    Path(args.page).write_text(render_page(results, results_dir=args.results))
    readme = Path(args.readme)
    readme.write_text(replace_between_markers(readme.read_text(), render_readme_table(results)))
    print(f"wrote {args.page} and the table in {args.readme} from {args.results}/", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="bench/results.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the live benchmarks, JSON into --out")
    r.add_argument(
        "--quick", action="store_true", help="one seed, 10-s runs, 5 %% and bursts only, one attach scenario"
    )
    r.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="relay seeds (default 1 2 3)")
    r.add_argument("--seconds", type=float, default=None, help="recording length per e2e run (default 60; --quick 10)")
    r.add_argument("--out", default=str(REPO / "runs" / "results"))
    r.add_argument("--skip-e2e", action="store_true")
    r.add_argument("--skip-attach", action="store_true")
    g = sub.add_parser("page", help="write docs/results.md and the README's table from --results")
    g.add_argument("--results", default=str(REPO / "runs" / "results"))
    g.add_argument("--page", default=str(REPO / "docs" / "results.md"))
    g.add_argument("--readme", default=str(REPO / "README.md"))
    g.add_argument(
        "--max-slips",
        type=int,
        default=0,
        help="timing slips a run may have and still count in the means (default 0; the page says)",
    )
    g.add_argument(
        "--max-xruns",
        type=int,
        default=0,
        help="harness xruns a run may have and still count in the means (default 0; the page says)",
    )
    args = p.parse_args(argv)
    return run(args) if args.command == "run" else page(args)


if __name__ == "__main__":
    sys.exit(main())
