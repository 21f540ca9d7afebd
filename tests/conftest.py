"""Shared fixtures. Each area's own fixtures live in its test files or tests/helpers_*.py."""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture
def segment_name():
    """A unique shared-memory segment name; removed after the test if still there."""
    name = f"/nextblock-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    path = "/dev/shm" + name
    if os.path.exists(path):
        os.unlink(path)
