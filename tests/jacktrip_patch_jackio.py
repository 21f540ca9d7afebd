"""JACK side of the JackTrip patch tests, run as separate processes (keeps the GIL of the test
process away from the JACK callbacks; libjack cannot talk to two servers from one process).

    python tests/jacktrip_patch_jackio.py send --server A --ports 'jtc:send_' --seconds 8
    python tests/jacktrip_patch_jackio.py rec --server B --ports 'jts:receive_' --seconds 6 --out rec.npy

* sender: a client on server A whose output block number i (one JACK period, i.e. one JackTrip
  packet) is the constant ``code(i)`` on channel 0 and ``code(i)/2`` on channel 1, where
  ``code(i) = (i % 1000 + 1) / 2048`` is exact in 16-bit audio (JackTrip's default bit depth);
* recorder: a client on server B recording JackTrip's receive ports, one JACK period per row,
  saved as ``float32[n_blocks, frames, channels]`` (blocks before the first non-silent one are
  dropped). Prints ``READY`` once both clients are connected.
"""

from __future__ import annotations

import argparse
import sys
import threading

import numpy as np

CODE_PERIOD = 1000


def code(i: int) -> float:
    return (i % CODE_PERIOD + 1) / 2048.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["send", "rec"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--ports", required=True, help="port prefix, e.g. 'jtc:send_'")
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out")
    args = ap.parse_args(argv)

    import jack

    client = jack.Client("nb" + args.role, servername=args.server, no_start_server=True)
    C = args.channels
    frames = client.blocksize
    n_max = int(args.seconds * client.samplerate / frames)
    state = {"i": 0, "n": 0, "go": False}
    done = threading.Event()
    if args.role == "send":
        ports = [client.outports.register(f"out_{c + 1}") for c in range(C)]

        @client.set_process_callback
        def _send(nframes):
            if not state["go"]:  # silence until every channel is connected
                for p in ports:
                    p.get_array().fill(0.0)
                return
            v = code(state["i"])
            ports[0].get_array().fill(v)
            for c in range(1, C):
                ports[c].get_array().fill(v / 2)
            state["i"] += 1
            if state["i"] >= n_max:
                done.set()
    else:
        ports = [client.inports.register(f"in_{c + 1}") for c in range(C)]
        buf = np.zeros((n_max, frames, C), np.float32)

        @client.set_process_callback
        def _rec(nframes):
            n = state["n"]
            if n >= n_max:
                done.set()
                return
            for c in range(C):
                buf[n, :, c] = ports[c].get_array()
            state["n"] = n + 1

    with client:
        for c in range(C):
            if args.role == "send":
                client.connect(ports[c], f"{args.ports}{c + 1}")
            else:
                client.connect(f"{args.ports}{c + 1}", ports[c])
        state["go"] = True
        print("READY", flush=True)
        done.wait(timeout=args.seconds + 30)
    if args.role == "rec":
        n = state["n"]
        rows = buf[:n]
        nz = np.flatnonzero(np.abs(rows).reshape(n, -1).max(axis=1) > 0)
        rows = rows[nz[0] :] if len(nz) else rows[:0]
        np.save(args.out, rows)
        print(f"DONE recorded={n} kept={len(rows)}", flush=True)
    else:
        print(f"DONE sent={state['i']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
