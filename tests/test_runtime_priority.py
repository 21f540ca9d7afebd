"""attach --realtime never outranks the producer's real-time threads (JackTrip's audio callback)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import helpers_attach as h
from nextblock.runtime.priority import priority_below, realtime_priorities


def _can_use_fifo() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (PermissionError, OSError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


needs_fifo = pytest.mark.skipif(
    not (_can_use_fifo() and shutil.which("chrt")),
    reason="SKIPPED LOUDLY: SCHED_FIFO is not permitted here (run as root) or chrt is missing",
)


@pytest.fixture
def fifo_process():
    """``sleep`` under SCHED_FIFO at a given priority (a stand-in for a real-time JackTrip)."""
    procs = []

    def start(priority: int) -> int:
        proc = subprocess.Popen(["chrt", "-f", str(priority), "sleep", "30"])
        procs.append(proc)
        for _ in range(200):  # chrt exec()s sleep: wait until the policy is in place
            if realtime_priorities(proc.pid):
                break
            subprocess.run(["sleep", "0.01"], check=False)
        return proc.pid

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_normal_process_has_no_realtime_threads_and_gets_no_realtime_helper():
    assert realtime_priorities(os.getpid()) == []
    priority, why = priority_below(os.getpid())
    assert priority is None and "no real-time thread" in why


def test_an_unknown_producer_gets_no_realtime_helper_and_the_reason_says_so():
    priority, why = priority_below(0, 10)
    assert priority is None and "not known" in why and "--jacktrip-pid" in why


def test_a_process_that_is_gone_has_none():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert realtime_priorities(proc.pid) == []


@needs_fifo
def test_the_helper_stays_one_below_the_lowest_realtime_thread(fifo_process):
    pid = fifo_process(7)
    assert realtime_priorities(pid) == [7]
    assert priority_below(pid)[0] == 6
    assert priority_below(pid, 3)[0] == 3, "a lower priority asked for is kept"
    priority, why = priority_below(pid, 50)
    assert priority == 6 and "would preempt" in why
    assert priority_below(fifo_process(1))[0] is None, "nothing is below priority 1"


@needs_fifo
def test_attach_realtime_takes_a_priority_below_the_producers_threads(tmp_path):
    proc, ready, _ = h.start_emulator(tmp_path, seconds=1.5, loss_rate=0.05, out=False, extra=("--realtime", "12"))
    h.wait_ready(ready, proc)
    result = h.run_attach(
        ["--jacktrip-pid", str(proc.pid), "--predictor", "repeat", "--once", "--realtime", "30"], timeout_s=40
    )
    proc.communicate(timeout=10)
    assert result.returncode == 3, result.stderr
    assert "SCHED_FIFO 11, not 30" in result.stderr, result.stderr
