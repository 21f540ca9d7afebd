"""What a test may skip for, and when a skip must fail instead (see tests/conftest.py).

Two kinds of missing resources:

* **provided by setup** (``scripts/setup.sh``): Debian packages (jackd, JackTrip, nft, g++, ...),
  pip packages (LiteRT, TensorFlow, visqol, speechmos, music21, ...), the recordings from the
  Debian mirror, the patched JackTrip built from its release tarball, the shipped model. A test
  skips for these on a developer's machine that has not run setup — and **fails** in strict mode
  (``CI=true``, as ``.ci/run`` sets, or ``NEXTBLOCK_STRICT_TESTS=1``), because there setup ran and
  a skip would hide a broken install;
* **what a machine may genuinely lack**: root, network namespaces, netem in the kernel,
  real-time scheduling, ``/dev/cpu_dma_latency``, a sanitizer runtime. These skip everywhere,
  with their reason; :data:`MACHINE_MAY_LACK` recognises them, and :func:`machine_lacks` marks
  a new one explicitly.
"""

from __future__ import annotations

import os
import re

import pytest

_TRUE = ("1", "true", "yes", "on")
if os.environ.get("NEXTBLOCK_STRICT_TESTS", "").lower() in _TRUE:
    STRICT, STRICT_WHY = True, "NEXTBLOCK_STRICT_TESTS=1"
elif os.environ.get("NEXTBLOCK_STRICT_TESTS", "").lower() in ("0", "false", "no", "off"):
    STRICT, STRICT_WHY = False, "NEXTBLOCK_STRICT_TESTS=0"
elif os.environ.get("CI", "").lower() in _TRUE:
    STRICT, STRICT_WHY = True, "CI=true"
else:
    STRICT, STRICT_WHY = False, ""

MACHINE_TAG = "machine lacks:"
# Skip reasons that name something setup cannot provide (matched case-insensitively).
MACHINE_MAY_LACK = (
    re.escape(MACHINE_TAG),
    r"needs root",
    r"network namespaces",
    r"kernel has no netem",
    r"SCHED_FIFO not permitted",
    r"/dev/cpu_dma_latency",
    r"AddressSanitizer runtime missing",
    r"hand the segment to another user",
)
_MACHINE_RE = re.compile("|".join(MACHINE_MAY_LACK), re.IGNORECASE)


def machine_may_lack(reason: str) -> bool:
    """True when a skip ``reason`` names something a machine may genuinely lack."""
    return bool(_MACHINE_RE.search(reason or ""))


def skip_reason(longrepr) -> str:
    """The reason text of a skipped report's ``longrepr`` (a (path, line, reason) tuple or text)."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


def machine_lacks(why: str):
    """Skip (everywhere, also in CI) for something setup cannot provide on this machine."""
    pytest.skip(f"{MACHINE_TAG} {why}")


def needs(resource: str, why: str):
    """Skip for a resource setup provides (``why`` says how to get it); fails in strict mode
    (through the conftest hook, which sees the same skip)."""
    pytest.skip(f"{resource} unavailable: {why}")


def too_busy(why: str):
    """This machine was too busy for a measurement (timing slips, xruns, moved drops, after the
    test's retries): skips on a developer's machine, **fails** in strict mode, where a skip would
    leave what the test guards unchecked."""
    if STRICT:
        pytest.fail(f"too busy for the comparison, and a skip is a failure in strict mode ({STRICT_WHY}): {why}")
    pytest.skip(f"this machine was too busy for the comparison: {why}")
