"""End-to-end benchmark: JackTrip's own fallbacks vs NextBlock over a real lossy link.

For each loss pattern (1 %, 5 %, 10 % Bernoulli and a Gilbert-Elliott burst pattern, all
through the seeded relay, so every receiver sees the same drops at the same audio
positions) and each receiver — stock JackTrip (``jacktrip-stock`` 2.7.2 built beside the patched
one, else the system's) with zeros (``-z``), wavetable (``--bufstrategy -1``) and Regulator/Burg
(``--bufstrategy 3``), and when a patched build exists the patched JackTrip's ring buffer alone
(``patched-fallback-zeros``), with ``nextblock.attach`` (``nextblock``), and its Regulator with
``nextblock.attach`` (``nextblock-regulator``: Burg stays the fallback for any block NextBlock
misses), and its default JitterBuffer (``--bufstrategy 1 -q 4``) with ``nextblock.attach``
(``nextblock-jitterbuffer``) — it plays a real recording the model never trained on (a test-split recording of
``singularity-music``) through two jackd dummy servers and records it, then reports
``snr_db`` and ``lsd_db`` (whole file and lost packets only), ViSQOL MOS where ``visqol-python``
is installed, the share of the underruns while attach served the stream that NextBlock concealed
(JackTrip's start-up glitches before attach joined are not NextBlock's to conceal), JackTrip's
counters and CPU seconds per process. Writes JSON and a markdown table; the last output line
is the JSON object.

    PYTHONPATH=python python bench/e2e.py --quick            # 10 s per run (~6 min)
    PYTHONPATH=python python bench/e2e.py --json e2e.json --markdown e2e.md   # 60 s per run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PATTERNS = {
    "bernoulli-1": "bernoulli:0.01",
    "bernoulli-5": "bernoulli:0.05",
    "bernoulli-10": "bernoulli:0.1",
    "bursts-ge": "gilbert:0.02,0.3",  # ≈ 6 % loss, mean burst 3.3 packets
}
#: opt-in (``--pattern lossless``): the same pipeline without losses, the ceiling of every score
EXTRA_PATTERNS = {"lossless": "none"}
FALLBACKS = ("zeros", "wavetable", "regulator")
PATCHED_RECEIVERS = ("patched-fallback-zeros", "nextblock", "nextblock-regulator", "nextblock-jitterbuffer")


def _visqol(reference, recorded, rate_hz):
    try:
        from nextblock.evaluation.perceptual import visqol_available, visqol_mos
    except ImportError:
        return None
    return visqol_mos(reference, recorded, rate_hz) if visqol_available() else None


def row(pattern: str, r: dict, reference, rate_hz: int, visqol: bool = True) -> dict:
    """One receiver's figures from a ``run_e2e`` result ``r`` (``reference``: the sent audio, [n]);
    ``visqol=False`` leaves the ViSQOL MOS out (``None``; it takes seconds per run)."""
    import soundfile as sf

    rec, _ = sf.read(r["recorded_wav"], dtype="float32") if visqol else (None, None)
    att = r.get("attach_stats") if isinstance(r.get("attach_stats"), dict) else {}
    recv = r["jacktrip_receive"]
    ev = r.get("segment_events") or {}
    if ev:  # patched JackTrip: its own UNDERRUN (and Regulator SKIP) events, exact per block
        underruns = ev.get("concealments", 0)
    else:  # bufstrategy 3 (Regulator) prints "Glitches" instead of recv/prot counters
        underruns = recv["recv_underruns"] if recv["glitches"] is None else recv["glitches"]
    replaced = ev.get("replacements_used", 0) if r.get("attach_command") else None
    # concealments while attach served the stream: the ones before it joined (JackTrip's start-up
    # glitches) are attach's ``fallbacks_before_attach``, not a block NextBlock could replace
    served = underruns - int(att.get("fallbacks_before_attach") or 0) if replaced is not None else None
    return {
        "pattern": pattern,
        "receiver": r["label"],
        "binary": r["receiver_binary"],
        "version": r.get("receiver_version"),
        "link_method": r["link"]["method"],
        "dropped_packets": r["link"].get("dropped_packets"),
        "jacktrip_lost_packets": r["jacktrip_receive"]["lost_packets"],
        "underruns": underruns,
        "glitches": r["jacktrip_receive"]["glitches"],
        "snr_db": r["metrics"]["snr_db"],
        "lsd_db": r["metrics"]["lsd_db"],
        "snr_lost_db": (r.get("metrics_lost_packets") or {}).get("snr_db"),
        "lsd_lost_db": (r.get("metrics_lost_packets") or {}).get("lsd_db"),
        "visqol_mos": _visqol(reference, rec, rate_hz) if visqol else None,
        "nextblock_concealed_share": (replaced / served) if (replaced is not None and served) else None,
        "nextblock_replacements_used": replaced,
        "underruns_while_attached": served,
        "attach_stats": att or None,
        "dropped_index_drift_blocks": r.get("dropped_index_drift_blocks"),
        "timing_slips": r["timing_slips"],
        "latency_ms": r["latency_ms"],
        "xruns": r["xruns"],
        "cpu_s": r["cpu_s"],
        "wall_s": r["wall_s"],
        "recorded_wav": r["recorded_wav"],
    }


def receivers(
    patched: str | None,
    stock_bin: str,
    out: Path,
    realtime: bool,
    fallbacks=FALLBACKS,
    patched_labels=None,
) -> list:
    """The receivers of one pattern, as ``[(ReceiverSpec, sender binary)]``: stock JackTrip with each
    of ``fallbacks`` (sent by ``stock_bin``), then, with a ``patched`` build, the patched ones
    (:data:`PATCHED_RECEIVERS`, sent by ``patched``; only ``patched_labels`` if given). attach
    writes its statistics under ``out``; ``realtime``: attach with SCHED_FIFO."""
    from nextblock.jackio.e2e import (
        REGULATOR_QUEUE_MS,
        nextblock_receiver,
        patched_fallback_receiver,
        stock_receiver,
    )

    recv = [(stock_receiver(f, binary=stock_bin), stock_bin) for f in fallbacks]
    if patched:
        recv.append((patched_fallback_receiver(patched), patched))
        recv.append((nextblock_receiver(patched, (out / "attach-stats.json").resolve(), realtime=realtime), patched))
        # NextBlock on the Regulator: Burg stays JackTrip's fallback for any block we miss
        on_regulator = nextblock_receiver(
            patched,
            (out / "attach-stats-regulator.json").resolve(),
            buffer_args=("--bufstrategy", "3"),
            realtime=realtime,
        )
        on_regulator.label, on_regulator.queue = "nextblock-regulator", str(REGULATOR_QUEUE_MS)
        recv.append((on_regulator, patched))
        # NextBlock on JackTrip's default buffer (--bufstrategy 1, the JitterBuffer, queue 4)
        on_jitter = nextblock_receiver(
            patched,
            (out / "attach-stats-jitterbuffer.json").resolve(),
            buffer_args=("--bufstrategy", "1"),
            realtime=realtime,
        )
        on_jitter.label = "nextblock-jitterbuffer"
        recv.append((on_jitter, patched))
    if patched_labels:
        recv = [(r, b) for r, b in recv if r.label.startswith("stock-") or r.label in patched_labels]
    return recv


def measure(
    pattern: str,
    loss: str,
    receiver,
    sender: str,
    audio,
    out: Path,
    seed: int,
    topology: str = "auto",
    rt_priority: int | None = None,
    visqol: bool = True,
) -> tuple[dict, dict]:
    """One run of ``receiver`` (a ``ReceiverSpec``) over the seeded relay dropping ``loss`` (the
    same packets of ``audio`` [n] for every receiver of one ``seed``): ``(row(...), the run_e2e result)``."""
    from nextblock.jackio.e2e import run_e2e
    from nextblock.netlab.link import LinkSpec

    link = LinkSpec(loss=loss, seed=seed, method="relay", topology=topology)
    r = run_e2e(audio, link, receiver, out, sender_binary=sender, rt_priority=rt_priority)
    return row(pattern, r, audio, r["rate_hz"], visqol=visqol), r


def _fmt(v, nd=2):
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def _fallback_reasons(att: dict | None) -> str:
    """Why JackTrip played its own fallback for a drop with attach running: ``late/skipped/unseen``."""
    if not att or "fallbacks_late" not in att:
        return "-"
    return f"{att['fallbacks_late']}/{att['fallbacks_skipped']}/{att['fallbacks_unseen']}"


def markdown(rows: list[dict]) -> str:
    head = (
        "| pattern | receiver | JackTrip | dropped | underruns | snr_db | lsd_db | snr_lost_db | lsd_lost_db | "
        "ViSQOL | NB share | NB fallbacks late/skipped/unseen | cpu jacktrip_server s | cpu attach s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['pattern']} | {r['receiver']} | {_fmt(r.get('version'))} | {_fmt(r['dropped_packets'])} | "
        f"{_fmt(r['underruns'])} | {_fmt(r['snr_db'])} | {_fmt(r['lsd_db'])} | {_fmt(r['snr_lost_db'])} | "
        f"{_fmt(r['lsd_lost_db'])} | {_fmt(r['visqol_mos'])} | {_fmt(r['nextblock_concealed_share'])} | "
        f"{_fallback_reasons(r.get('attach_stats'))} | "
        f"{_fmt(r['cpu_s'].get('jacktrip_server'))} | {_fmt(r['cpu_s'].get('attach'))} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def _slug(spec: str) -> str:
    """A folder name for a ``--loss`` spec: ``bernoulli:0.02`` -> ``bernoulli-0.02``."""
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in spec)


def main(argv=None) -> int:
    from nextblock.packetloss import loss_argument

    p = argparse.ArgumentParser(
        prog="bench/e2e.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="10-second recording instead of 60 s")
    p.add_argument("--seconds", type=float, default=None, help="override the recording length")
    p.add_argument(
        "--pattern",
        action="append",
        choices=sorted(PATTERNS) + sorted(EXTRA_PATTERNS),
        help="only these patterns (repeatable); 'lossless' (not in the default set) measures the "
        "pipeline's ceiling: what each receiver scores when nothing is lost",
    )
    p.add_argument(
        "--loss",
        action="append",
        default=[],
        metavar="SPEC",
        type=loss_argument,
        help="also (or, with no --pattern, only) this loss (repeatable; the one grammar of every command, "
        "nextblock.packetloss), e.g. --loss bernoulli:0.02; its folder is the spec's slug",
    )
    p.add_argument("--fallback", action="append", choices=FALLBACKS, help="only these stock fallbacks (repeatable)")
    p.add_argument("--no-nextblock", action="store_true", help="skip the patched JackTrip + attach runs")
    p.add_argument(
        "--patched",
        action="append",
        choices=PATCHED_RECEIVERS,
        help="only these patched receivers (repeatable; default all): e.g. --fallback regulator "
        "--patched nextblock-regulator compares NextBlock on the Regulator with the stock one",
    )
    p.add_argument("--seed", type=int, default=1, help="relay seed shared by all receivers")
    p.add_argument("--topology", default="auto", choices=("auto", "netns", "loopback"))
    p.add_argument("--out", default="out/bench-e2e", help="folder for recordings and logs")
    p.add_argument("--json", default=None, help="write the JSON result here too")
    p.add_argument("--markdown", default=None, help="write the markdown table here")
    args = p.parse_args(argv)
    from nextblock.jackio.procs import termination_unwinds

    with termination_unwinds():  # a SIGTERM/SIGHUP (timeout, a closed terminal) still stops every process
        return _run(args)


def _run(args) -> int:
    import os

    from nextblock.jackio.patched_build import (
        ensure_patched_jacktrip,
        find_stock_jacktrip,
    )
    from nextblock.jackio.recording import load_test_recording

    seconds = args.seconds or (10.0 if args.quick else 60.0)
    # a test-split recording: the shipped model never trained on it
    audio, source = load_test_recording(seconds, split="test")
    print(f"recording: {source['path']} ({seconds:g} s, test split)", file=sys.stderr)
    patched, message = (None, "--no-nextblock") if args.no_nextblock else ensure_patched_jacktrip(build=True)
    stock_bin, stock_note = find_stock_jacktrip(patched)
    print(message, file=sys.stderr)
    print(stock_note, file=sys.stderr)
    # SCHED_FIFO for both JackTrips and the relay in every run (same scheduling for all receivers;
    # without it the predictor starves JackTrip's network thread on a busy 2-core box)
    rt = 20 if os.geteuid() == 0 else None
    rows, t0 = [], time.monotonic()
    patterns = {**PATTERNS, **EXTRA_PATTERNS, **{_slug(spec): spec for spec in args.loss}}
    for name in (args.pattern or ([] if args.loss else list(PATTERNS))) + [_slug(spec) for spec in args.loss]:
        out = Path(args.out) / name
        recv = receivers(patched, stock_bin, out, rt is not None, args.fallback or FALLBACKS, args.patched)
        for receiver, sender in recv:
            fig, _ = measure(name, patterns[name], receiver, sender, audio, out, args.seed, args.topology, rt)
            rows.append(fig)
            print(
                f"{name:<13} {receiver.label:<18} dropped {fig['dropped_packets']!s:>4} "
                f"snr {fig['snr_db']:6.2f} dB  lsd {fig['lsd_db']:5.2f} dB",
                file=sys.stderr,
                flush=True,
            )
    result = {
        "seconds": seconds,
        "recording": source,
        "patched_jacktrip": patched,
        "stock_jacktrip": stock_bin,
        "stock_note": stock_note,
        "rt_priority": rt,
        "seed": args.seed,
        "rows": rows,
        "wall_s": round(time.monotonic() - t0, 1),
    }
    md = markdown(rows)
    print(md)
    if args.markdown:
        Path(args.markdown).write_text(md)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
