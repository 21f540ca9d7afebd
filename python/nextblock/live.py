"""``nextblock jacktrip [JACKTRIP ARGS...]``: play live with NextBlock, in one command.

1. finds the patched JackTrip (``nextblock build-jacktrip`` builds it) and starts it with
   ``--nextblock`` and your arguments, its output on this terminal;
2. waits for its shared-memory segment ``/nextblock-<PID>`` (JackTrip makes it once its audio
   starts, i.e. once the peer has connected);
3. starts ``nextblock attach --jacktrip-pid PID`` beside it (the model predicts every received
   channel; its status goes to the terminal with ``--nb-stats``);
4. on Ctrl-C (or SIGTERM) stops NextBlock first (JackTrip falls back to its own concealment),
   then JackTrip, and returns. If JackTrip exits, NextBlock is stopped too and JackTrip's exit
   status is returned. If NextBlock stops on its own (say, a bad ``--nb-model``), JackTrip keeps
   playing with its own concealment and a line says so.

Every argument goes to JackTrip except these, which go to ``nextblock attach``:

  --nb-model PATH      the .tflite model (default: the shipped one)
  --nb-stats SECONDS   print NextBlock's status line this often
  --nb-json FILE       write NextBlock's final statistics here
  --nb-realtime        run NextBlock's predictor with SCHED_FIFO (as JackTrip's audio thread does)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def _stop(proc: subprocess.Popen | None, sig: int, timeout_s: float = 5.0) -> None:
    """``sig`` to ``proc``'s process group, SIGKILL after ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def run(jacktrip_args: list[str], attach_args: list[str], prog: str = "nextblock jacktrip") -> int:
    """Start the patched JackTrip with ``jacktrip_args`` and ``nextblock attach`` with
    ``attach_args`` beside it (see the module docstring); returns the exit status (``prog``
    names the command in error messages)."""
    from nextblock.capture import segment_name_for_pid
    from nextblock.jackio.patched_build import find_patched_jacktrip

    binary, message = find_patched_jacktrip()
    if binary is None:
        print(
            f"{prog}: error: {message}\n  fix: nextblock build-jacktrip (~10 min on 2 cores), or set "
            f"NEXTBLOCK_JACKTRIP to a patched binary",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()
    caught: list[int] = []

    def on_signal(signum, _frame):
        caught.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    jt = attach = None
    try:
        cmd = [binary, "--nextblock", *jacktrip_args]
        print(f"nextblock: starting {' '.join(cmd)}", file=sys.stderr, flush=True)
        # own process groups: a Ctrl-C reaches us only, and we stop them in order
        jt = subprocess.Popen(cmd, start_new_session=True)
        shm = "/dev/shm" + segment_name_for_pid(jt.pid)
        print(
            f"nextblock: waiting for JackTrip's audio to start ({shm} appears once the peer connects)",
            file=sys.stderr,
            flush=True,
        )
        while not stop.is_set() and jt.poll() is None and not os.path.exists(shm):
            stop.wait(0.1)
        if not stop.is_set() and jt.poll() is None:
            time.sleep(0.2)  # the segment file exists before its header is complete
            acmd = [sys.executable, "-m", "nextblock.attach", "--jacktrip-pid", str(jt.pid), *attach_args]
            print(f"nextblock: attaching: {' '.join(acmd[1:])}", file=sys.stderr, flush=True)
            attach = subprocess.Popen(acmd, start_new_session=True)
        warned = False
        while not stop.is_set() and jt.poll() is None:
            if attach is not None and attach.poll() is not None and not warned:
                print(
                    f"nextblock: NextBlock stopped (exit {attach.returncode}); JackTrip keeps playing with its "
                    "own concealment (Ctrl-C stops it)",
                    file=sys.stderr,
                    flush=True,
                )
                warned = True
            stop.wait(0.2)
    finally:
        _stop(attach, signal.SIGINT)  # first: JackTrip falls back to its own concealment
        _stop(jt, signal.SIGTERM)
        for s, h in old.items():
            signal.signal(s, h)
    if caught:
        print(f"nextblock: {signal.Signals(caught[0]).name}: stopped NextBlock and JackTrip", file=sys.stderr)
        return 0
    return jt.returncode if jt is not None and jt.returncode is not None else 1


if __name__ == "__main__":
    from nextblock.commands.jacktrip import main

    sys.exit(main(prog="python -m nextblock.live"))
