"""Is this process alive: the one answer every part uses (the runtime's discovery of JackTrip,
the capture API, netlab's clean-up of orphaned namespaces, the tests). Standard library only.

``process_exists`` is the kernel's view (``kill(pid, 0)``: a PID in use, also another user's or a
zombie); ``process_running`` also rules out a zombie (an exited child its parent has not reaped
yet, state ``Z`` in ``/proc/PID/stat``), which is what "is it still doing anything" means.
"""

from __future__ import annotations

import os


def process_exists(pid: int) -> bool:
    """Whether a process with this PID exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an exited child its parent has not reaped yet)."""
    if not process_exists(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"
    except (OSError, ValueError):
        return True
