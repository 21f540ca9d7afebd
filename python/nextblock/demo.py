"""``nextblock demo``: hear what NextBlock does to a lossy link, next to what you would hear without it.

It plays a recording the model never trained on (a *test-split* recording of the Debian package
``singularity-music``) through a link that loses packets (seeded: the same packets in every run),
and conceals the losses four ways, side by side:

1. **JackTrip default** – JackTrip 2.7.2 with its default jitter buffer (``--bufstrategy 1``):
   a lost packet plays as silence;
2. **Regulator + Burg** – JackTrip's Regulator (``--bufstrategy 3``): a lost packet is guessed by
   Burg linear prediction, the strongest concealment JackTrip ships;
3. **NextBlock** – the patched JackTrip (``--nextblock``) on the same Regulator with
   ``nextblock attach --lookahead off`` beside it: its model's prediction (from the past only)
   plays wherever it is ready in time, Burg otherwise;
4. **NextBlock two-sided** – the same with ``--lookahead auto``: where the packet after a lost
   one arrived before the lost one plays, the replacement is re-posted filled from both sides
   (the past and that packet), and that packet then plays as it came.

Two ways to run, chosen automatically (the report says which ran):

* **patched JackTrip** (when it is built: ``nextblock build-jacktrip``, or ``--build-jacktrip``
  here): two ``jackd`` dummy servers, a JackTrip client and server joined by a lossy link (network
  namespaces + a seeded relay when root, loopback + relay otherwise), the recording played into
  the client and recorded at the server, once per row;
* **stand-in** (no patched JackTrip here): ``nextblock.lab.emulator`` plays JackTrip's role
  for the NextBlock rows — the recording is streamed block by block in real time through the same
  shared memory, each block played 2 periods after it arrived (a buffer of 2 packets),
  ``nextblock attach`` predicts live, and a block it did not replace in time plays as silence;
  the two JackTrip rows are computed offline from the same recording and losses
  (``nextblock.concealers``: zeros, and the port of JackTrip's Burg).

Output: a short table (SNR and log-spectral distance on the lost packets, ViSQOL of the whole
recording), the WAV files to listen to, a plot of one concealed loss, and ``report.json`` in
``--out`` with every detail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: numpy is imported where it is used, after the cheap checks
    import numpy as np

APT_PACKAGES = {"jackd": "jackd2", "jacktrip": "jacktrip", "jack_lsp": "jackd2", "ip": "iproute2", "nft": "nftables"}
PIP_PACKAGES = {"jack": "JACK-Client"}
PERIOD = 128
RATE_HZ = 48000
#: the stand-in plays each block this many periods after it arrived (a JackTrip buffer of 2 packets)
STAND_IN_HEADROOM_BLOCKS = 2
REAL_THING = (
    "for the real thing (the patched JackTrip over a lossy link): `scripts/demo.sh --build-jacktrip` or "
    "`nextblock build-jacktrip` (~10 min on 2 cores; it needs JackTrip 2.7.2's release tarball — "
    "`nextblock build-jacktrip --help` says where to put it), then run the demo again"
)


def missing_dependencies() -> tuple[list[str], list[str]]:
    """(apt packages, pip packages) that are not installed. Tools are looked for in the sbin folders
    too: a Debian user's PATH has none, and ``nft`` lives in /usr/sbin."""
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    apt = sorted({pkg for tool, pkg in APT_PACKAGES.items() if shutil.which(tool, path=path) is None})
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
        subprocess.run(
            ["debconf-set-selections"], input="jackd2 jackd/tweak_rt_limits boolean false\n", text=True, check=False
        )
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, timeout=900)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *apt], env=env, check=True, timeout=1800
        )
    if pip:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip], check=True, timeout=900)


# ----------------------------------------------------------------------------- the two ways to run
def _rows_patched(args, audio: np.ndarray, patched: str, out: Path) -> tuple[list[dict], dict]:
    """Three end-to-end runs through JackTrip; returns (rows, details for the report)."""
    from nextblock.jackio.e2e import REGULATOR_QUEUE_MS, nextblock_receiver, run_e2e, stock_receiver
    from nextblock.jackio.patched_build import find_stock_jacktrip
    from nextblock.netlab.link import LinkSpec

    stock, stock_note = find_stock_jacktrip(patched)
    if stock == "jacktrip":  # no unpatched 2.7.2 beside it: the patched one without --nextblock plays the same bytes
        stock, stock_note = (
            patched,
            f"JackTrip's own rows: {patched} without --nextblock (plays what stock 2.7.2 plays)",
        )
    link = LinkSpec(
        loss=args.loss,
        delay_ms=args.delay_ms,
        jitter_ms=args.jitter_ms,
        seed=args.seed,
        method=args.method,
        topology=args.topology,
    )
    root = os.geteuid() == 0
    # SCHED_FIFO for both JackTrips and the relay (as a musician's JACK setup runs JackTrip): on a
    # small busy machine the predictor would otherwise starve JackTrip's network thread.
    rt = 20 if root else None
    if args.nextblock_on == "regulator":
        nb_buffer, nb_label = ("--bufstrategy", "3"), "NextBlock (on the Regulator)"
    else:
        nb_buffer, nb_label = ("--bufstrategy", "-1", "-z"), "NextBlock (on the ring buffer)"
    nb = nextblock_receiver(
        patched, out / "attach-stats.json", ("--lookahead", "off"), buffer_args=nb_buffer, realtime=root
    )
    nb2 = nextblock_receiver(
        patched, out / "attach-stats-two-sided.json", ("--lookahead", "auto"), buffer_args=nb_buffer, realtime=root
    )
    nb2.label = "nextblock-two-sided"  # its own logs and recorded WAV
    if args.nextblock_on == "regulator":
        nb.queue = nb2.queue = str(REGULATOR_QUEUE_MS)
    plan = [
        ("JackTrip default", stock_receiver("default", binary=stock), stock),
        ("Regulator + Burg", stock_receiver("regulator", binary=stock), stock),
        (nb_label, nb, stock),
        (nb_label.replace("NextBlock", "NextBlock two-sided"), nb2, stock),
    ]
    rows, details = [], {"stock": stock_note, "runs": {}}
    for i, (label, receiver, sender) in enumerate(plan, 1):
        t0 = time.monotonic()
        print(f"  [{i}/{len(plan)}] {label} ...", end="", flush=True)
        r = run_e2e(audio, link, receiver, out, queue_packets=args.queue, sender_binary=sender, rt_priority=rt)
        print(f" {time.monotonic() - t0:.0f} s", flush=True)
        recorded = _read_wav(r["recorded_wav"])
        ev = r.get("segment_events") or {}
        rx = r["jacktrip_receive"]
        rows.append(
            {
                "label": label,
                "played": recorded,
                "wav": r["recorded_wav"],
                "lost": r["link"].get("dropped_packets"),
                "concealed": ev.get("concealments")
                if ev
                else (rx.get("glitches") if rx.get("glitches") is not None else rx.get("recv_underruns")),
                "by_nextblock": ev.get("replacements_used") if receiver.attach_command else None,
                "two_sided": _two_sided(receiver),
                "metrics": r["metrics"],
                "metrics_lost": r.get("metrics_lost_packets") or {},
                "lost_blocks": r.get("dropped_audio_blocks") or r["link"].get("dropped_indices") or [],
            }
        )
        details["runs"][label] = {k: v for k, v in r.items() if k not in ("link",)}
        details["runs"][label]["link"] = {
            k: v for k, v in r["link"].items() if k not in ("dropped_seqs", "dropped_indices", "relay_summary")
        }
        details["sent_wav"] = r["sent_wav"]
        details["link"] = f"{r['link']['method']} over {r['link']['topology']} ({r['link']['reason']})"
    return rows, details


def _two_sided(receiver) -> int | None:
    """Concealments filled from both sides in a NextBlock run (its attach statistics), else None."""
    if not receiver.attach_command or "--json" not in receiver.attach_command:
        return None
    path = Path(receiver.attach_command[receiver.attach_command.index("--json") + 1])
    try:
        return int(json.loads(path.read_text())["two_sided"])
    except (OSError, ValueError, KeyError):
        return None


def _lost_mask(spec: str, seed: int, n_blocks: int, lead_in_blocks: int) -> np.ndarray:
    """Which blocks the link loses: the relay's loss model (same spec, same seed), block by block,
    starting after ``lead_in_blocks`` (as the relay arms when the audio starts)."""
    import numpy as np

    from nextblock.netlab.impairments import make_loss_model, rng_streams

    model = make_loss_model(spec, rng_streams(seed)[0])
    lost = np.zeros(n_blocks, bool)
    for k in range(lead_in_blocks, n_blocks - 1):
        lost[k] = model.drop()
    return lost


def _rows_stand_in(args, audio: np.ndarray, out: Path) -> tuple[list[dict], dict]:
    """The stand-in producer with ``nextblock attach`` live; the JackTrip rows offline."""
    import numpy as np

    from nextblock.capture import Producer
    from nextblock.concealers import make_concealer
    from nextblock.evaluation.simulate import conceal_stream
    from nextblock.jackio.align import lost_sample_mask, score
    from nextblock.jackio.e2e import _write_wav as write_wav
    from nextblock.jackio.e2e import attach_child_env
    from nextblock.jackio.procs import ManagedProcess, wait_until
    from nextblock.lab.emulator import stream

    n_blocks = len(audio) // PERIOD
    audio = audio[: n_blocks * PERIOD]
    lost = _lost_mask(args.loss, args.seed, n_blocks, lead_in_blocks=int(0.5 * RATE_HZ / PERIOD))
    mask = lost_sample_mask(np.flatnonzero(lost), len(audio), PERIOD)
    rows = []
    for i, (label, name) in enumerate((("JackTrip default", "zeros"), ("Regulator + Burg", "burg")), 1):
        print(f"  [{i}/4] {label} (computed offline: nextblock.concealers.{name}) ...", end="", flush=True)
        t0 = time.monotonic()
        played, _ = conceal_stream(audio, make_concealer(name, PERIOD, RATE_HZ), lost)
        print(f" {time.monotonic() - t0:.0f} s", flush=True)
        rows.append({"label": label, "played": played})
    results = {}
    for i, (lookahead, label) in enumerate(
        (("off", "NextBlock (stand-in producer)"), ("auto", "NextBlock two-sided (stand-in producer)")), 3
    ):
        print(
            f"  [{i}/4] {label.split(' (')[0]} (live: stand-in producer + nextblock attach --lookahead {lookahead}, "
            "in real time) ...",
            end="",
            flush=True,
        )
        t0 = time.monotonic()
        stats_path = out / ("attach-stats.json" if lookahead == "off" else "attach-stats-two-sided.json")
        segment = f"/nextblock-demo-{os.getpid()}-{lookahead}"
        argv = [
            sys.executable,
            "-m",
            "nextblock.attach",
            "--segment",
            segment,
            "--json",
            str(stats_path),
            "--lookahead",
            lookahead,
        ]
        if os.geteuid() == 0:
            argv.append("--realtime")
        with Producer(segment, RATE_HZ, PERIOD, 1) as producer:
            with ManagedProcess(
                argv, out / f"attach-{lookahead}.log", env=attach_child_env(), stop_signal=signal.SIGINT
            ) as attach:
                try:
                    wait_until(producer.consumer_alive, 60.0, 0.05, "nextblock attach to open the segment")
                except TimeoutError:
                    attach.check_alive("nextblock attach")
                    raise
                time.sleep(0.5)  # its model is loaded once it attaches; let it settle
                result = stream(producer, audio[:, None], lost, headroom_blocks=STAND_IN_HEADROOM_BLOCKS)
        print(f" {time.monotonic() - t0:.0f} s", flush=True)
        try:
            stats = json.loads(stats_path.read_text())
        except (OSError, ValueError) as exc:
            stats = {"error": f"no attach stats at {stats_path}: {exc}"}
        results[lookahead] = (result, stats)
        rows.append(
            {
                "label": label,
                "played": result["played"][:, 0],
                "by_nextblock": int((result["outcome"] == 1).sum()),
                "two_sided": stats.get("two_sided"),
            }
        )
    for row in rows:
        row["lost"] = row["concealed"] = int(lost.sum())
        row.setdefault("by_nextblock", None)
        row.setdefault("two_sided", None)
        row["metrics"] = score(audio, row["played"], RATE_HZ)
        row["metrics_lost"] = score(audio, row["played"], RATE_HZ, sample_mask=mask)
        row["lost_blocks"] = np.flatnonzero(lost).tolist()
        slug = row["label"].split(" (")[0].lower().replace(" + ", "-").replace(" ", "-")
        row["wav"] = write_wav(out / f"played-{slug}.wav", row["played"], RATE_HZ)
    details = {
        "sent_wav": write_wav(out / "sent.wav", audio, RATE_HZ),
        "link": f"none (stand-in producer; losses drawn with the relay's loss model: {args.loss}, seed {args.seed})",
        "tick_late_us_p99": float(np.percentile(results["off"][0]["tick_late_us"], 99)),
        "headroom_blocks": STAND_IN_HEADROOM_BLOCKS,
        "attach_stats": results["off"][1],
        "attach_stats_two_sided": results["auto"][1],
        "identity_splices": int(results["auto"][0]["identity_splice"].sum()),
    }
    return rows, details


# ----------------------------------------------------------------------------- helpers
def _read_wav(path: str) -> np.ndarray:
    import soundfile as sf

    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data[:, 0]


def _fmt(x, nd=1) -> str:
    return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def format_table(rows: list[dict]) -> str:
    """The comparison as text, one line per row (what the demo prints)."""
    w = max(32, max((len(r["label"]) + 2 for r in rows), default=0))
    head = (
        f"{'':<{w}}{'lost':>6}{'concealed':>11}{'by NextBlock':>14}{'two-sided':>11}{'SNR lost':>10}"
        f"{'LSD lost':>10}{'ViSQOL':>8}"
    )
    lines = [head, f"{'':<{w}}{'':>6}{'':>11}{'':>14}{'':>11}{'dB':>10}{'dB':>10}{'MOS':>8}"]
    for r in rows:
        ml = r.get("metrics_lost") or {}
        lines.append(
            f"{r['label']:<{w}}{_fmt(r['lost']):>6}{_fmt(r['concealed']):>11}{_fmt(r['by_nextblock']):>14}"
            f"{_fmt(r.get('two_sided')):>11}{_fmt(ml.get('snr_db')):>10}{_fmt(ml.get('lsd_db')):>10}"
            f"{_fmt(r.get('visqol'), 2):>8}"
        )
    return "\n".join(lines)


def _plot(reference: np.ndarray, rows: list[dict], out: Path) -> tuple[list[str], str | None]:
    """Waveform and spectrogram of one concealed loss, every row overlaid: the loss on which the
    last row (NextBlock) gains the median SNR over Burg (:mod:`nextblock.evaluation.representative`).
    Returns the files and the caption that says which loss it is."""
    import numpy as np

    try:
        from nextblock.evaluation.plots import plot_losses
    except ImportError:
        return [], None
    from nextblock.evaluation.representative import representative_loss

    n = len(reference)
    burg = next((r for r in rows if "Burg" in r["label"]), rows[0])
    choice = representative_loss(
        reference,
        np.asarray(rows[-1]["played"][:n], np.float32),
        np.asarray(burg["played"][:n], np.float32),
        rows[-1]["lost_blocks"],
        PERIOD,
    )
    if choice is None:
        return [], None
    lost = np.zeros(n // PERIOD, bool)
    lost[choice.block] = True
    caption = choice.caption(rows[-1]["label"], burg["label"])
    played = {r["label"]: np.asarray(r["played"][:n], np.float32) for r in rows}
    return plot_losses(
        reference, played, lost, PERIOD, RATE_HZ, str(out / "concealed-loss"), max_events=1, title=caption
    ), caption


def run(args) -> int:
    """The demo as ``args`` (:func:`nextblock.commands.demo.build_parser`) say; returns the exit status."""
    from nextblock.jackio.procs import termination_unwinds

    with termination_unwinds():  # a SIGTERM/SIGHUP still stops every jackd and JackTrip it started
        return _run(args)


def _run(args) -> int:
    import numpy as np

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    apt, pip = missing_dependencies()
    if apt or pip:
        if args.no_install:
            print(f"missing: apt {apt or '-'}, pip {pip or '-'} (drop --no-install to install them)", file=sys.stderr)
            return 2
        print(f"installing: apt {apt or '-'}, pip {pip or '-'}", flush=True)
        install(apt, pip)

    from nextblock.evaluation.perceptual import visqol_available, visqol_mos
    from nextblock.jackio.patched_build import ensure_patched_jacktrip
    from nextblock.jackio.recording import load_test_recording

    t_start = time.monotonic()
    audio, source = load_test_recording(args.seconds, split="test")
    print(
        f"recording: {Path(source['path']).name} from {source['package']} ({args.seconds:g} s; a test-split "
        f"recording, never used to train the model)",
        flush=True,
    )
    if args.stand_in:
        patched, message = None, "--stand-in: not using the patched JackTrip"
    else:
        patched, message = ensure_patched_jacktrip(build=args.build_jacktrip, show_progress=True)
    if patched:
        print(f"running on the {message}", flush=True)
        print(f"losses: {args.loss}, seed {args.seed} — the same packets lost in every run", flush=True)
        rows, details = _rows_patched(args, audio, patched, out)
        mode = "patched JackTrip"
    else:
        why = message if args.stand_in else "the patched JackTrip is not built here"
        print(f"running on the STAND-IN producer (nextblock.lab.emulator), not on JackTrip: {why}", flush=True)
        print(f"  {REAL_THING}", flush=True)
        print(f"losses: {args.loss}, seed {args.seed} — the same blocks lost in every row", flush=True)
        rows, details = _rows_stand_in(args, audio, out)
        mode = "stand-in producer"
    if visqol_available():
        for r in rows:
            r["visqol"] = visqol_mos(audio, np.asarray(r["played"][: len(audio)], np.float32), RATE_HZ)
    plots, plot_caption = _plot(audio, rows, out)

    print(f"\nNextBlock demo on the {mode} — {details['link']}")
    print(format_table(rows))
    print(
        "  lost: packets lost on the link; concealed: blocks made up; by NextBlock: of those, NextBlock's\n"
        "  prediction; two-sided: of those, filled from both sides (the next packet was there); SNR/LSD on\n"
        "  the lost packets (higher/lower is better); ViSQOL of the whole recording"
    )
    if mode == "stand-in producer":
        print("  (the JackTrip rows are computed offline from the same recording and losses)")
    print("\nlisten:")
    print(f"  {'sent (no loss)':<40}{details['sent_wav']}")
    for r in rows:
        print(f"  {r['label']:<40}{r['wav']}")
    for p in plots:
        print(f"plot:   {p}")
    if plot_caption:
        print(f"  (the plot shows {plot_caption})")
    report = {
        "mode": mode,
        "message": message,
        "patched_jacktrip": patched,
        "recording": source,
        "loss": args.loss,
        "seed": args.seed,
        "seconds": args.seconds,
        "plots": plots,
        "plot_caption": plot_caption,
        "wall_s": round(time.monotonic() - t_start, 1),
        "rows": [{k: v for k, v in r.items() if k != "played"} for r in rows],
        "details": details,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"report: {out / 'report.json'}  (everything, as JSON)")
    return 0


if __name__ == "__main__":
    from nextblock.commands.demo import main

    sys.exit(main(prog="python -m nextblock.demo"))
