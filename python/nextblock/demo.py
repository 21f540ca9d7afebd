"""``python -m nextblock.demo``: NextBlock vs JackTrip's own concealment, end to end.

On built-in defaults it

1. checks (and unless ``--no-install`` installs, non-interactively) what it needs:
   apt ``jackd2 jacktrip iproute2 nftables``, pip ``JACK-Client``;
2. starts two ``jackd`` dummy servers, a JackTrip server and client and a lossy link between
   them (network namespaces + our seeded relay when root, else loopback + relay; the report
   says which path ran);
3. plays a real recording (Debian ``singularity-music``) into the client's send port and
   records the server's receive port twice with the same seeded losses: the patched JackTrip
   2.7.2 (on both ends; ``nextblock.jackio.patched_build`` finds it, or builds it when JackTrip's
   source is there) with only its own concealment (ring buffer, zeros), then the same with
   ``python -m nextblock.attach`` beside the receiving JackTrip. Without a patched build it says
   what is missing and runs stock JackTrip only;
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
    p.add_argument("--fallback", default="zeros", choices=("zeros", "wavetable", "default", "regulator"),
                   help="JackTrip's own concealment to compare with (default zeros). With the patched build, "
                        "zeros/default/wavetable run JackTrip's ring buffer (--bufstrategy -1 [-z]) and "
                        "regulator its Regulator with Burg PLC (--bufstrategy 3, -q in ms), each alone and "
                        "with NextBlock; without it, stock JackTrip with that concealment only")
    p.add_argument("--queue", type=int, default=4, help="JackTrip jitter-buffer length in packets (-q)")
    p.add_argument("--out", default="out/demo", help="folder for WAVs, logs, plot and report.json")
    p.add_argument("--no-install", action="store_true", help="do not apt/pip install missing dependencies")
    p.add_argument("--stock-only", action="store_true", help="skip the NextBlock run")
    return p


def _plot(reference, recordings: dict, dropped_indices, period: int, rate_hz: int, out: Path,
          zeros_recording=None) -> list[str]:
    """Before/after plots of one concealed loss.

    ``zeros_recording``: the aligned recording of the run whose fallback plays silence. A player or
    recorder xrun on a busy machine shifts the stream by whole periods after it, so the relay's
    packet index can point one block off; only drops that really are silent in that recording
    (≥ 90 % exact zeros in the block) are plotted, so the shaded "lost" block is where the gap was.
    """
    import numpy as np

    try:
        from nextblock.evaluation.plots import plot_losses
    except ImportError:
        return []
    n_blocks = len(reference) // period
    lost = np.zeros(n_blocks, dtype=bool)
    lost[[i for i in dropped_indices if i < n_blocks]] = True
    if zeros_recording is not None:
        z = np.asarray(zeros_recording, dtype=np.float32)[: n_blocks * period]
        z = np.pad(z, (0, n_blocks * period - len(z))).reshape(n_blocks, period)
        silent = np.mean(z == 0.0, axis=1) >= 0.9
        loud = np.abs(np.asarray(reference[: n_blocks * period]).reshape(n_blocks, period)).max(axis=1) > 1e-3
        confirmed = lost & silent & loud
        if confirmed.any():
            lost = confirmed
    if not lost.any():
        return []
    return plot_losses(reference, recordings, lost, period, rate_hz, str(out / "concealed-loss"), max_events=1)


def _row(name: str, r: dict) -> dict:
    ev = r.get("segment_events") or {}
    att = r.get("attach_stats") if isinstance(r.get("attach_stats"), dict) else {}
    underruns = (ev.get("concealments", 0)
                 if ev else r["jacktrip_receive"]["recv_underruns"] or r["jacktrip_receive"].get("glitches") or 0)
    return {"label": r["label"], "binary": r["receiver_binary"], "version": r.get("receiver_version"),
            "dropped_packets": r["link"].get("dropped_packets"),
            # the Regulator (--bufstrategy 3) prints glitches, not a lost-packet counter
            "jacktrip_lost_packets": None if r["jacktrip_receive"].get("glitches") is not None
            else r["jacktrip_receive"]["lost_packets"],
            "underruns": underruns, "replacements_used": ev.get("replacements_used") if ev else None,
            "attach": {k: att.get(k) for k in ("underruns", "replacements_used", "fallbacks", "deadline_misses",
                                                "posts")} if att else None,
            "metrics": r["metrics"], "metrics_lost_packets": r.get("metrics_lost_packets"),
            "timing_slips": r["timing_slips"], "latency_ms": r["latency_ms"], "xruns": r["xruns"],
            "cpu_s": r["cpu_s"], "recorded_wav": r["recorded_wav"]}


def _fmt(x, nd=2):
    return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


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
        REGULATOR_QUEUE_MS,
        nextblock_receiver,
        patched_fallback_receiver,
        run_e2e,
        stock_receiver,
    )
    from nextblock.jackio.patched_build import (
        ensure_patched_jacktrip,
        find_stock_jacktrip,
    )
    from nextblock.jackio.recording import load_test_recording
    from nextblock.netlab.link import LinkSpec

    audio, source = load_test_recording(args.seconds)
    print(f"recording: {source['path']} ({args.seconds:g} s from {source['package']})", flush=True)
    link = LinkSpec(loss=args.loss, delay_ms=args.delay_ms, jitter_ms=args.jitter_ms, seed=args.seed,
                    method=args.method, topology=args.topology)
    patched, message = (None, "--stock-only: not using the patched JackTrip") if args.stock_only \
        else ensure_patched_jacktrip(build=True)
    print(message, flush=True)
    root = os.geteuid() == 0
    # SCHED_FIFO for both JackTrips and the relay (as a musician's JACK setup runs JackTrip): on a
    # small busy machine the predictor would otherwise starve JackTrip's network thread.
    rt = 20 if root else None
    runs = {}
    t0 = time.monotonic()
    if patched and args.fallback in ("zeros", "wavetable", "default", "regulator"):
        if args.fallback == "regulator":  # the Regulator, with Burg as JackTrip's own concealment
            buffer_args, fb_name, queue = ("--bufstrategy", "3"), "Regulator, Burg PLC", str(REGULATOR_QUEUE_MS)
            buffer_desc = f"Regulator, -q {queue} ms"
        else:
            buffer_args = ("--bufstrategy", "-1") + (("-z",) if args.fallback != "wavetable" else ())
            fb_name, queue = ("zeros" if "-z" in buffer_args else "wavetable"), None
            buffer_desc = f"ring buffer, -q {args.queue}"
        print(f"running twice, {args.seconds:g} s each, same seeded losses, patched JackTrip on both ends "
              f"({buffer_desc}):\n  1. JackTrip alone, its own concealment ({fb_name})\n"
              f"  2. JackTrip + python -m nextblock.attach (NextBlock's predictions)", flush=True)
        alone = patched_fallback_receiver(patched, buffer_args)
        with_nb = nextblock_receiver(patched, out / "attach-stats.json", buffer_args=buffer_args, realtime=root)
        alone.queue = with_nb.queue = queue
        runs["jacktrip"] = run_e2e(audio, link, alone, out, queue_packets=args.queue, sender_binary=patched,
                                   rt_priority=rt)
        print(f"link: {runs['jacktrip']['link']['method']} over {runs['jacktrip']['link']['topology']} "
              f"({runs['jacktrip']['link']['reason']})", flush=True)
        runs["nextblock"] = run_e2e(audio, link, with_nb, out, queue_packets=args.queue, sender_binary=patched,
                                    rt_priority=rt)
    else:
        stock_bin, note = find_stock_jacktrip(patched)
        print(note, flush=True)
        runs["jacktrip"] = run_e2e(audio, link, stock_receiver(args.fallback, binary=stock_bin), out,
                                   queue_packets=args.queue, sender_binary=stock_bin, rt_priority=rt)
    first = runs["jacktrip"]
    recordings = {("JackTrip alone" if name == "jacktrip" else "with NextBlock"): sf.read(r["recorded_wav"],
                                                                                       dtype="float32")[0]
                  for name, r in runs.items()}
    zeros = recordings["JackTrip alone"] if "-z" in first["receiver_extra_args"] and "nextblock" in runs else None
    plots = _plot(audio, recordings, first.get("dropped_audio_blocks") or first["link"].get("dropped_indices", []),
                  first["period_samples"], first["rate_hz"], out, zeros_recording=zeros)
    report = {"recording": source, "patched_jacktrip": patched, "message": message,
              "link": {k: v for k, v in first["link"].items()
                       if k not in ("dropped_seqs", "dropped_indices", "relay_summary")},
              "plots": plots, "wall_s": round(time.monotonic() - t0, 1), "runs": {}}
    print(f"\nlink: {args.loss}, seed {args.seed}: {first['link'].get('dropped_packets')} packets of "
          f"{first['period_samples']} samples dropped (the same ones in every run)")
    drift = max(r.get("dropped_index_drift_blocks", 0) for r in runs.values())
    if drift:
        print(f"  (a JackTrip client on this busy machine skipped periods: the lost audio was located from the "
              f"dropped packets' samples, up to {drift} blocks after the packet count)")
    from nextblock.evaluation.perceptual import visqol_available, visqol_mos

    with_visqol = visqol_available()
    print(f"\n{'run':<11}{'lost':>6}{'underruns':>10}{'by NextBlock':>13}{'snr_db':>8}{'lsd_db':>8}"
          f"{'snr_lost':>9}{'lsd_lost':>9}{'ViSQOL':>8}")
    for name, r in runs.items():
        row = _row(name, r)
        recorded = recordings["JackTrip alone" if name == "jacktrip" else "with NextBlock"]
        row["visqol_mos"] = visqol_mos(audio, recorded, r["rate_hz"]) if with_visqol else None
        report["runs"][name] = row
        lostm = r.get("metrics_lost_packets") or {}
        print(f"{name:<11}{_fmt(row['jacktrip_lost_packets']):>6}{row['underruns']:>10}"
              f"{_fmt(row['replacements_used']):>13}{r['metrics']['snr_db']:>8.2f}{r['metrics']['lsd_db']:>8.2f}"
              f"{_fmt(lostm.get('snr_db')):>9}{_fmt(lostm.get('lsd_db')):>9}{_fmt(row['visqol_mos'], 3):>8}")
    print("  lost: packets JackTrip saw missing; underruns: blocks it had to conceal; by NextBlock: of those,\n"
          "  played from NextBlock's prediction; snr_db (higher is better) / lsd_db (log-spectral distance,\n"
          "  lower is better) against the sent audio, whole file and on the lost packets only; ViSQOL: MOS\n"
          "  1-5 of the whole recording (visqol-python; '-' when it is not installed).")
    report["sent_wav"] = first["sent_wav"]
    print("\nlisten:")
    print(f"  sent:            {report['sent_wav']}")
    for name, r in runs.items():
        print(f"  {('JackTrip alone' if name == 'jacktrip' else 'with NextBlock') + ':':<17}{r['recorded_wav']}")
    for p in plots:
        print(f"plot:   {p}")
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"report: {out / 'report.json'}")
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
