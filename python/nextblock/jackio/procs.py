"""One child process in its own process group, always cleaned up.

Every long-running helper NextBlock starts (``jackd``, ``jacktrip``, the UDP relay,
``python -m nextblock.attach``) goes through :class:`ManagedProcess`: it starts in a new
session (so the whole group can be signalled without touching anyone else's processes),
writes stdout+stderr to a log file, and on exit of the ``with`` block receives SIGTERM,
then SIGKILL after ``stop_timeout_s``. Only the group we created is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "OWNER_ENV",
    "ManagedProcess",
    "ProcessStartError",
    "leftover_processes",
    "termination_unwinds",
    "wait_until",
]

OWNER_ENV = "NEXTBLOCK_OWNER"
"""Every child gets ``NEXTBLOCK_OWNER=<our pid>`` so leftovers can be found exactly (and only ours)."""


def leftover_processes(owner_pid: int | None = None) -> list[tuple[int, str]]:
    """Live (non-zombie) processes started by ``owner_pid`` (default: us) through :class:`ManagedProcess`.

    Found by the ``NEXTBLOCK_OWNER`` environment marker, so other people's jackd/jacktrip
    are never listed. Returns ``[(pid, cmdline), ...]``.
    """
    marker = f"{OWNER_ENV}={owner_pid or os.getpid()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            found.append((int(entry.name), cmd))
        except (OSError, IndexError):
            continue
    return found


@contextlib.contextmanager
def termination_unwinds(signals=(signal.SIGTERM, signal.SIGHUP)):
    """While active, SIGTERM and SIGHUP raise ``SystemExit(128 + signum)`` in the main thread.

    Python's default action for them ends the process at once, without leaving a single ``with``
    block; the children a :class:`ManagedProcess` started live in their own sessions, so they never
    get the signal and run on (two real-time jackd servers, two JackTrips, network namespaces).
    Raising instead lets every ``with`` block stop its group. Used around the command-line tools
    that run JackTrip (``nextblock demo``, ``bench/e2e.py``). A signal that is not at its default
    action stays as it is: one the caller ignores (``nohup`` ignores SIGHUP) stays ignored, one with
    a handler keeps it. Off the main thread (where Python cannot install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum, _frame):
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, unwind) for s in signals if signal.getsignal(s) == signal.SIG_DFL}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class ProcessStartError(RuntimeError):
    """A helper process exited or never became ready; the message quotes its log tail."""


def wait_until(predicate, timeout_s: float, poll_s: float = 0.05, what: str = "condition"):
    """Poll ``predicate()`` until it returns a truthy value or ``timeout_s`` passes.

    Returns the truthy value; raises :class:`TimeoutError` naming ``what`` otherwise.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(poll_s)


class ManagedProcess:
    """Context manager around ``subprocess.Popen`` with a log file and group teardown.

    Parameters
    ----------
    args: the command line.
    log_path: file receiving stdout and stderr (truncated on start).
    env: extra environment variables (merged over ``os.environ``).
    stop_signal: first signal sent to the group on stop (SIGTERM lets JackTrip send its
        exit packet and jackd close cleanly).
    stop_timeout_s: seconds to wait after ``stop_signal`` before SIGKILL.
    """

    def __init__(
        self,
        args: Sequence[str],
        log_path: str | os.PathLike,
        env: Mapping[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout_s: float = 5.0,
        cwd: str | os.PathLike | None = None,
    ):
        self.args = [str(a) for a in args]
        self.log_path = Path(log_path)
        self.env = dict(os.environ)
        self.env[OWNER_ENV] = str(os.getpid())
        if env:
            self.env.update({k: str(v) for k, v in env.items()})
        self.stop_signal = stop_signal
        self.stop_timeout_s = stop_timeout_s
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self._log = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> ManagedProcess:
        """Start the process in a new session (its own process group)."""
        if self.proc is not None:
            raise RuntimeError("process already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self._log.write(("# " + " ".join(self.args) + "\n").encode())
        self._log.flush()
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            self._log.close()
            raise ProcessStartError(f"cannot start {self.args[0]!r}: {exc}") from exc
        return self

    @property
    def pid(self) -> int:
        """PID of the started process (also its process-group id)."""
        if self.proc is None:
            raise RuntimeError("process not started")
        return self.proc.pid

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """Everything the process has written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n_lines: int = 20) -> str:
        """The last ``n_lines`` lines of the log (for error messages)."""
        return "\n".join(self.log_text().splitlines()[-n_lines:])

    def check_alive(self, what: str = "") -> None:
        """Raise :class:`ProcessStartError` with the log tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessStartError(
                f"{what or self.args[0]} exited with code {self.proc.returncode}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self) -> int | None:
        """Signal the whole group, wait, escalate to SIGKILL. Idempotent; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(self.stop_signal)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=5.0)
        # Children that outlived the leader (same group) get SIGKILL too.
        self._signal_group(signal.SIGKILL)
        if self._log is not None and not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
