"""A SIGTERM or SIGHUP to a tool that runs JackTrip (``timeout``, a closed terminal) must still stop
every process it started: ``ManagedProcess`` children live in their own sessions and never receive
the parent's signal themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers_attach import python_env
from nextblock.jackio.procs import leftover_processes

# the signal starts at its default action, as from a terminal: under ``nohup`` (SIGHUP ignored,
# inherited across exec) it would otherwise stay ignored, in both runs
_SCRIPT = textwrap.dedent("""
    import signal, sys, time
    from nextblock.jackio.procs import ManagedProcess, termination_unwinds
    from contextlib import nullcontext
    signal.signal(int(sys.argv[3]), signal.SIG_DFL)
    guard = termination_unwinds() if sys.argv[1] == "unwind" else nullcontext()
    with guard, ManagedProcess(["sleep", "120"], sys.argv[2]) as child:
        print(child.pid, flush=True)
        time.sleep(120)
""")


def _start(mode: str, tmp_path: Path, signum: int) -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, mode, str(tmp_path / f"{mode}.log"), str(int(signum))],
        env=python_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    child_pid = int(p.stdout.readline())
    return p, child_pid


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_stops_the_children_it_would_orphan(signum, tmp_path):
    # control: with Python's default action the parent dies and its child runs on
    p, orphan = _start("default", tmp_path, signum)
    try:
        p.send_signal(signum)
        assert p.wait(10) == -signum
        time.sleep(0.2)
        assert [pid for pid, _ in leftover_processes(p.pid)] == [orphan]
    finally:
        os.killpg(orphan, signal.SIGKILL)
    # termination_unwinds: the with block stops the child's group, the exit status says why
    p, child = _start("unwind", tmp_path, signum)
    p.send_signal(signum)
    assert p.wait(15) == 128 + signum
    assert leftover_processes(p.pid) == []
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_termination_unwinds_leaves_an_ignored_or_handled_signal_alone():
    """``nohup`` ignores SIGHUP on purpose, and a caller's own handler is the caller's: neither is
    taken over; a signal at its default action is, and every one is restored on leaving."""
    from nextblock.jackio.procs import termination_unwinds

    def mine(signum, frame):
        pass

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, mine)
        with termination_unwinds(signals=(signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)):
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGUSR1) is mine
            with pytest.raises(SystemExit) as stopped:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler runs between bytecodes, long before this ends
            assert stopped.value.code == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGUSR1) is mine
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
