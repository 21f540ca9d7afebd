"""Shared fixtures and the skip policy. Each area's own fixtures live in its test files or
tests/helpers_*.py.

Skip policy (:mod:`resources`): a test skips, with its reason, when this machine lacks something.
With ``CI=true`` (``.ci/run``) or ``NEXTBLOCK_STRICT_TESTS=1`` setup has installed everything it
can, so a skip is turned into a failure unless its reason names something a machine may genuinely
lack (root, network namespaces, netem, SCHED_FIFO, ...: :data:`resources.MACHINE_MAY_LACK`).
"""

from __future__ import annotations

import os
import uuid

import pytest

import resources


@pytest.fixture
def segment_name():
    """A unique shared-memory segment name; removed after the test if still there."""
    name = f"/nextblock-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    path = "/dev/shm" + name
    if os.path.exists(path):
        os.unlink(path)


def _strict_failure(report) -> None:
    """In strict mode, turn ``report`` (a skip) into a failure unless the machine may lack it."""
    if not (resources.STRICT and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = resources.skip_reason(report.longrepr)
    if resources.machine_may_lack(reason):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in strict mode ({resources.STRICT_WHY}): setup is supposed to provide this, "
        f"so its absence is a failure here. Skip reason: {reason}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _strict_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _strict_failure(outcome.get_result())


def pytest_report_header(config):
    if resources.STRICT:
        return (
            f"strict resources ({resources.STRICT_WHY}): skips fail unless a machine may genuinely lack what they need"
        )
    return "skips allowed (set CI=true or NEXTBLOCK_STRICT_TESTS=1 to make missing setup resources fail)"
