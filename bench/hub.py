"""Benchmark of ``nextblock attach`` on a real patched JackTrip hub: N clients, every stream's share.

Processes, as a hub operator runs them:

* the **hub**: ``jackd -d dummy -r RATE -p HUB_FRAMES`` and the patched ``jacktrip -S -p 5
  --bufstrategy S --simloss LOSS --nextblock`` on it (one segment per client);
* **N clients**: ``jacktrip -C 127.0.0.1 --bufstrategy S``, each sending the block-coded test
  signal (``tests/jacktrip_patch_jackio.py send``); clients of one block size share a
  ``jackd`` (``--client-frames 64,128`` cycles through the sizes);
* **NextBlock**: ``nextblock attach --jacktrip-pid HUB --wait-for-streams --json`` for the whole run.

Measured over ``--seconds`` once every client is on the hub: per stream its concealments, the
share replaced by NextBlock, the reason of every fallback (attach's ``fallbacks_*`` counters), the
CPU share (of one core) of attach and of the hub JackTrip, ``served_share`` (the share of the
concealments while attach served the stream: ``fallbacks_before_attach`` left out), and Burg's cost on the same
concealments (``bench/burg_cost.py``: JackTrip's BurgAlgorithm compiled at bench time, its median
cost per channel per glitch x 2 channels x the concealments). Prints a line per stream, then the
JSON (last line). Targets (quiet 2-core machine, 48 kHz, 5 % loss): every stream
>= 0.99 of its concealments replaced, every fallback explained, attach <= 0.15 of a core at 6
clients. The load average is in the JSON: read it before believing a number.

Usage::

    PYTHONPATH=python python bench/hub.py --clients 3                      # repeat predictor, 12 s
    PYTHONPATH=python python bench/hub.py --clients 6 --predictor model --seconds 20
    PYTHONPATH=python python bench/hub.py --clients 3 --bufstrategy 1 --attach-arg=--lookahead=off
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "python"))

REASONS = ("late", "skipped", "unseen", "after_post", "before_attach", "outage", "dropped_received")


def _ports(server: str) -> list[str]:
    from nextblock.jackio.jackd import jack_ports

    return jack_ports(server) or []


def _wait(pred, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args) -> dict:
    from nextblock.jackio.e2e import cpu_seconds
    from nextblock.jackio.jackd import JackdServer
    from nextblock.jackio.patched_build import find_patched_jacktrip
    from nextblock.jackio.procs import ManagedProcess

    binary, why = find_patched_jacktrip()
    if binary is None:
        raise SystemExit(f"bench/hub.py: no patched JackTrip ({why}); nextblock build-jacktrip builds it")
    work = Path(args.out or tempfile.mkdtemp(prefix="nb-hub-"))
    work.mkdir(parents=True, exist_ok=True)
    sender = [sys.executable, str(REPO / "tests" / "jacktrip_patch_jackio.py")]
    env = dict(
        os.environ,
        OPENBLAS_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(
            [str(REPO / "python")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )
    tcp = _free_tcp_port()
    sizes = [int(v) for v in args.client_frames.split(",")]
    procs: list = []
    servers: list = []
    json_path = work / "attach.json"
    result: dict = {}
    with JackdServer("hub", work, rate_hz=args.rate, period_samples=args.hub_frames) as hub_jack:
        try:
            hub = ManagedProcess(
                [
                    binary,
                    "-S",
                    "-p",
                    "5",
                    "-B",
                    str(tcp),
                    "-U",
                    str(tcp + 100),
                    "--bufstrategy",
                    str(args.bufstrategy),
                    "--simloss",
                    str(args.simloss),
                    "--nextblock",
                    "-D",
                ],
                work / "hub.log",
                env=hub_jack.client_env(),
                stop_signal=2,
            )
            hub.start()
            procs.append(hub)
            time.sleep(0.5)
            attach = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "nextblock.attach",
                    "--jacktrip-pid",
                    str(hub.pid),
                    "--wait-for-streams",
                    "--predictor",
                    args.predictor,
                    "--json",
                    str(json_path),
                    "--stats",
                    "2",
                    *args.attach_arg,
                ],
                stdout=open(work / "attach.log", "wb"),
                stderr=subprocess.STDOUT,
                env=env,
            )
            client_jack: dict[int, JackdServer] = {}
            for i in range(args.clients):
                frames = sizes[i % len(sizes)]
                if frames not in client_jack:
                    client_jack[frames] = JackdServer(
                        f"c{frames}", work, rate_hz=args.rate, period_samples=frames
                    ).start()
                    servers.append(client_jack[frames])
                js = client_jack[frames]
                cli = ManagedProcess(
                    [
                        binary,
                        "-C",
                        "127.0.0.1",
                        "-P",
                        str(tcp),
                        "-B",
                        str(tcp + 10 + i),
                        "-K",
                        f"client{i}",
                        "-J",
                        f"jtc{i}",
                        "--bufstrategy",
                        str(args.bufstrategy),
                        "-D",
                    ],
                    work / f"client{i}.log",
                    env=js.client_env(),
                    stop_signal=2,
                )
                cli.start()
                procs.append(cli)
                _wait(lambda i=i, js=js: f"jtc{i}:send_1" in _ports(js.name), 30, f"client {i}")
                snd = ManagedProcess(
                    [
                        *sender,
                        "send",
                        "--server",
                        js.name,
                        "--ports",
                        f"jtc{i}:send_",
                        "--seconds",
                        str(args.seconds + 60),
                    ],
                    work / f"sender{i}.log",
                    env={"JACK_NO_START_SERVER": "1"},
                )
                snd.start()
                procs.append(snd)
            _wait(
                lambda: sum(p.endswith(":receive_1") for p in _ports(hub_jack.name)) >= args.clients,
                30,
                f"{args.clients} clients on the hub",
            )
            # measure once attach serves every client (loading and warming the model takes seconds)
            _wait(
                lambda: (work / "attach.log").read_text(errors="replace").count(": serving /") >= args.clients,
                90,
                "attach to serve every client",
            )
            time.sleep(args.settle)
            load0 = os.getloadavg()[0]
            t0 = time.monotonic()
            a0, h0 = cpu_seconds(attach.pid), cpu_seconds(hub.pid)
            time.sleep(args.seconds)
            a1, h1 = cpu_seconds(attach.pid), cpu_seconds(hub.pid)
            wall = time.monotonic() - t0
            attach.send_signal(signal.SIGINT)
            attach.wait(timeout=30)
            result.update(
                attach_cpu_share=(a1 - a0) / wall if a0 is not None and a1 is not None else None,
                jacktrip_cpu_share=(h1 - h0) / wall if h0 is not None and h1 is not None else None,
                measured_s=wall,
                load_before=load0,
                load_after=os.getloadavg()[0],
            )
        finally:
            for p in reversed(procs):
                p.stop()
            for js in servers:
                js.stop()
    if not json_path.exists():
        raise SystemExit(f"bench/hub.py: attach wrote no JSON:\n{(work / 'attach.log').read_text()[-3000:]}")
    att = json.loads(json_path.read_text())
    result["attach"] = {k: v for k, v in att.items() if k != "streams"}
    result["streams"] = att["streams"]
    result["work_dir"] = str(work)
    return result


def summarise(args, r: dict) -> dict:
    from burg_cost import burg_cost

    rows = []
    for st in r["streams"]:
        conc = st["underruns"]
        rows.append(
            {
                "name": st["name"],
                "frames_per_block": st["frames_per_block"],
                "mode": st["mode"],
                "blocks": st["blocks"],
                "concealments": conc,
                "replaced": st["replacements_used"],
                "share": st["replacements_used"] / conc if conc else None,
                "served_share": st.get("served_share"),
                "fallbacks": {k: st.get(f"fallbacks_{k}", 0) for k in REASONS},
                "two_sided": st.get("two_sided", 0),
                # the blocks one hub callback pulls of this client (the play-out clock's pull_blocks)
                "pull_blocks": st.get("clock_pull_blocks", 1),
                # received blocks the Regulator dropped and concealed; times they made it speculative
                "dropped_received": st.get("dropped_received", 0),
                "hedge_switches": st.get("hedge_switches", 0),
            }
        )
    concealed = sum(x["concealments"] for x in rows)
    burg = burg_cost()
    per_s = concealed / max(r["attach"].get("wall_s") or r["measured_s"], 1e-9)
    return {
        "clients": args.clients,
        "client_frames": args.client_frames,
        "hub_frames": args.hub_frames,
        "bufstrategy": args.bufstrategy,
        "simloss": args.simloss,
        "predictor": args.predictor,
        "streams": rows,
        # clients whose stream attach did not serve (another block size than the first stream's,
        # until each stream runs at its own geometry): their concealments are all JackTrip's
        "unserved_clients": max(0, args.clients - len(rows)),
        "min_share": min((x["share"] for x in rows if x["share"] is not None), default=None),
        "min_served_share": min((x["served_share"] for x in rows if x["served_share"] is not None), default=None),
        "fallback_reasons": {k: sum(x["fallbacks"][k] for x in rows) for k in REASONS},
        "attach_cpu_share": r["attach_cpu_share"],
        "jacktrip_cpu_share": r["jacktrip_cpu_share"],
        "burg_cpu_share": None if "error" in burg else burg["median_us"] * 1e-6 * 2 * per_s,
        "burg_median_us": burg.get("median_us"),
        "measured_s": r["measured_s"],
        "load_before": r["load_before"],
        "load_after": r["load_after"],
        "work_dir": r["work_dir"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="bench/hub.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--client-frames", default="128", help="clients' block sizes, cycled (e.g. 64,128,256; default 128)")
    p.add_argument("--hub-frames", type=int, default=128)
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--bufstrategy", type=int, default=3)
    p.add_argument("--simloss", type=float, default=0.05)
    p.add_argument("--seconds", type=float, default=12.0, help="measured time once every client is on")
    p.add_argument("--settle", type=float, default=2.0, help="seconds after the last client joined before measuring")
    p.add_argument("--predictor", choices=("model", "repeat"), default="repeat")
    p.add_argument(
        "--attach-arg", action="append", default=[], help="extra attach argument (repeatable, --attach-arg=--realtime)"
    )
    p.add_argument("--out", help="work folder (logs, attach.json); default a new temporary one")
    p.add_argument("--json", help="write the result here too")
    args = p.parse_args(argv)
    summary = summarise(args, run(args))
    for x in summary["streams"]:
        share = "-" if x["share"] is None else f"{x['share']:.3f}"
        why = " ".join(f"{k}={v}" for k, v in x["fallbacks"].items() if v)
        print(
            f"{x['name']:<24} {x['frames_per_block']:>4} fr x{x['pull_blocks']}/pull {x['mode']:<12} "
            f"concealed={x['concealments']:<4} replaced={x['replaced']:<4} share={share} "
            f"served={x['served_share'] or 0:.3f} drops_of_received={x['dropped_received']} {why}",
            file=sys.stderr,
        )
    if summary["unserved_clients"]:
        print(
            f"{summary['unserved_clients']} client(s) not served (see attach.log in {summary['work_dir']})",
            file=sys.stderr,
        )
    print(
        f"attach {summary['attach_cpu_share']:.3f} core, jacktrip {summary['jacktrip_cpu_share']:.3f} core, "
        f"Burg on the same concealments {summary['burg_cpu_share']} core; load {summary['load_before']:.2f}",
        file=sys.stderr,
    )
    text = json.dumps(summary, sort_keys=True)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
