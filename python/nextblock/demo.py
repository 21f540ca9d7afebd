"""``python -m nextblock.demo``: NextBlock vs JackTrip's own concealment, end to end.

On built-in defaults it

1. checks (and unless ``--no-install`` installs, non-interactively) what it needs:
   apt ``jackd2 jacktrip iproute2 nftables``, pip ``JACK-Client``;
2. starts two ``jackd`` dummy servers, a JackTrip server and client and a lossy link between
   them (network namespaces + our seeded relay when root, else loopback + relay; the report
   says which path ran);
3. plays a real recording (Debian ``singularity-music``) into the client's send port and
   records the server's receive port, once with stock JackTrip's concealment and once with
   the patched JackTrip + ``python -m nextblock.attach`` (when a patched build exists; otherwise
   it says what is missing and runs the stock path only);
4. prints a short report: underruns, replacements used, ``snr_db``/``lsd_db`` of both
   recordings against the sent audio, a plot of a concealed loss, and the WAV paths.

The last line of output is the JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

EPILOG = """\
examples:
  python -m nextblock.demo                          # 10 s, 5 % loss, seed 1
  python -m nextblock.demo --loss ge:0.02,0.3       # Gilbert-Elliott bursts (mean burst 3.3 packets)
  python -m nextblock.demo --loss bernoulli:10 --delay-ms 5 --jitter-ms 2 --seconds 30
  python -m nextblock.demo --method nft             # kernel loss (nftables, unseeded) instead of the relay
  python -m nextblock.demo --fallback regulator     # compare against JackTrip's Regulator/Burg PLC

loss specs: none | bernoulli:PERCENT | ge:P,R[,LOSS_BAD[,LOSS_GOOD]] | list:I,J,...
methods:    auto (netem if the kernel has it, else relay) | relay | nft | netem | simloss | none
"""

APT_PACKAGES = {"jackd": "jackd2", "jacktrip": "jacktrip", "jack_lsp": "jackd2", "ip": "iproute2", "nft": "nftables"}
PIP_PACKAGES = {"jack": "JACK-Client"}


def missing_dependencies() -> tuple[list[str], list[str]]:
    """(apt packages, pip packages) that are not installed."""
    apt = sorted({pkg for tool, pkg in APT_PACKAGES.items() if shutil.which(tool) is None})
    pip = []
    for module, pkg in PIP_PACKAGES.items():
        try:
            __import__(module)
        except (ImportError, OSError):
            pip.append(pkg)
    return apt, pip


def install(apt: list[str], pip: list[str]) -> None:
    """Non-interactive apt-get / pip install (jackd2's realtime question preseeded to 'false')."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if apt:
        subprocess.run(["debconf-set-selections"], input="jackd2 jackd/tweak_rt_limits boolean false\n",
                       text=True, check=False)
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, timeout=900)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *apt], env=env, check=True,
                       timeout=1800)
    if pip:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip], check=True, timeout=900)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nextblock.demo", description=__doc__,
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="length of the recording played (default 10)")
    p.add_argument("--loss", default="bernoulli:5", help="loss spec on client→server (default bernoulli:5)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay added by the relay")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="extra uniform delay in [0, jitter] ms")
    p.add_argument("--seed", type=int, default=1, help="seed of the relay's loss/jitter (same seed = same drops)")
    p.add_argument("--method", default="auto", help="lossy-link method (see below)")
    p.add_argument("--topology", default="auto", choices=("auto", "netns", "loopback"),
                   help="network namespaces (root) or loopback")
    p.add_argument("--fallback", default="default", choices=("default", "zeros", "wavetable", "regulator"),
                   help="JackTrip's own concealment for the stock run: default (JackTrip's default jitter "
                        "buffer, silence on underrun), zeros (-z), wavetable (--bufstrategy -1, repeats), "
                        "regulator (--bufstrategy 3, Burg PLC)")
    p.add_argument("--queue", type=int, default=4, help="JackTrip jitter-buffer length in packets (-q)")
    p.add_argument("--out", default="out/demo", help="folder for WAVs, logs, plot and report.json")
    p.add_argument("--no-install", action="store_true", help="do not apt/pip install missing dependencies")
    p.add_argument("--stock-only", action="store_true", help="skip the NextBlock run")
    return p


def _plot(reference, recordings: dict, dropped_indices, period: int, rate_hz: int, out: Path) -> list[str]:
    import numpy as np

    try:
        from nextblock.evaluation.plots import plot_losses
    except ImportError:
        return []
    n_blocks = len(reference) // period
    lost = np.zeros(n_blocks, dtype=bool)
    lost[[i for i in dropped_indices if i < n_blocks]] = True
    if not lost.any():
        return []
    return plot_losses(reference, recordings, lost, period, rate_hz, str(out / "concealed-loss"), max_events=1)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    apt, pip = missing_dependencies()
    if apt or pip:
        if args.no_install:
            print(f"missing: apt {apt or '-'}, pip {pip or '-'} (drop --no-install to install them)", file=sys.stderr)
            return 2
        print(f"installing: apt {apt or '-'}, pip {pip or '-'}", flush=True)
        install(apt, pip)

    import soundfile as sf

    from nextblock.jackio.e2e import (
        find_patched_jacktrip,
        nextblock_receiver,
        run_e2e,
        stock_receiver,
    )
    from nextblock.jackio.recording import load_test_recording
    from nextblock.netlab.link import LinkSpec

    audio, source = load_test_recording(args.seconds)
    print(f"recording: {source['path']} ({args.seconds:g} s from {source['package']})", flush=True)
    link = LinkSpec(loss=args.loss, delay_ms=args.delay_ms, jitter_ms=args.jitter_ms, seed=args.seed,
                    method=args.method, topology=args.topology)
    runs = {}
    t0 = time.monotonic()
    runs["stock"] = run_e2e(audio, link, stock_receiver(args.fallback), out, queue_packets=args.queue)
    print(f"link: {runs['stock']['link']['method']} over {runs['stock']['link']['topology']} "
          f"({runs['stock']['link']['reason']})", flush=True)
    patched, message = find_patched_jacktrip()
    print(message, flush=True)
    if patched and not args.stock_only:
        runs["nextblock"] = run_e2e(audio, link, nextblock_receiver(patched, out / "attach-stats.json"), out,
                                    queue_packets=args.queue)

    recordings = {name: sf.read(r["recorded_wav"], dtype="float32")[0] for name, r in runs.items()}
    plots = _plot(audio, recordings, runs["stock"]["link"].get("dropped_indices", []),
                  runs["stock"]["period_samples"], runs["stock"]["rate_hz"], out)
    report = {"recording": source, "link": {k: v for k, v in runs["stock"]["link"].items()
                                            if k not in ("dropped_seqs", "dropped_indices", "relay_summary")},
              "plots": plots, "wall_s": round(time.monotonic() - t0, 1), "runs": {}}
    print(f"\n{'run':<12}{'dropped':>8}{'lost':>6}{'underruns':>10}{'replaced':>9}{'snr_db':>8}{'lsd_db':>8}"
          f"{'snr_lost':>9}  recording")
    for name, r in runs.items():
        att = r.get("attach_stats") or {}
        replaced = att.get("replaced", att.get("replacements")) if isinstance(att, dict) else None
        row = {"label": r["label"], "dropped_packets": r["link"].get("dropped_packets"),
               "jacktrip_lost_packets": r["jacktrip_receive"]["lost_packets"],
               "underruns": r["jacktrip_receive"]["recv_underruns"], "replacements_used": replaced,
               "metrics": r["metrics"], "metrics_lost_packets": r.get("metrics_lost_packets"),
               "timing_slips": r["timing_slips"], "latency_ms": r["latency_ms"], "xruns": r["xruns"],
               "cpu_s": r["cpu_s"], "recorded_wav": r["recorded_wav"]}
        report["runs"][name] = row
        lostm = (r.get("metrics_lost_packets") or {}).get("snr_db")
        print(f"{name:<12}{row['dropped_packets'] or 0:>8}{row['jacktrip_lost_packets']:>6}{row['underruns']:>10}"
              f"{replaced if replaced is not None else '-':>9}{r['metrics']['snr_db']:>8.2f}"
              f"{r['metrics']['lsd_db']:>8.2f}{lostm if lostm is None else round(lostm, 2)!s:>9}  {r['recorded_wav']}")
    report["sent_wav"] = runs["stock"]["sent_wav"]
    print(f"sent: {report['sent_wav']}")
    for p in plots:
        print(f"plot: {p}")
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
