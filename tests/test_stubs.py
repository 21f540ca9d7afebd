"""python/nextblock/_core.pyi is the typed face of the C++ extension: it is what pybind11-stubgen
(pinned in pyproject.toml's test extra) writes from the built module, and ``mypy.stubtest`` finds
it consistent with that module (scripts/stubs.allowlist lists what a stub cannot say). When a
binding in csrc/ changes, rebuild and regenerate:

    .venv/bin/python -m pip install -e . --no-deps --no-build-isolation && scripts/stubs.sh
"""

from __future__ import annotations

import difflib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "python" / "nextblock" / "_core.pyi"
ALLOWLIST = REPO / "scripts" / "stubs.allowlist"
REGENERATE = "re-run scripts/stubs.sh (after rebuilding the extension) and commit python/nextblock/_core.pyi"


def _needs(module: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e .[test], as scripts/setup.sh does)")


def test_py_typed_ships_beside_the_stub():
    assert (STUB.parent / "py.typed").exists() and STUB.exists()


def test_stub_is_what_stubgen_writes_from_the_built_module(tmp_path):
    _needs("pybind11_stubgen")
    r = subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", "nextblock._core", "--exit-code", "-o", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"pybind11-stubgen failed on nextblock._core:\n{r.stdout}{r.stderr}"
    fresh = (tmp_path / "nextblock" / "_core.pyi").read_text()
    committed = STUB.read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(True),
            fresh.splitlines(True),
            "committed _core.pyi",
            "generated from the built module",
            n=1,
        )
    )
    assert committed == fresh, f"python/nextblock/_core.pyi is out of date: {REGENERATE}\n{diff[-4000:]}"


def test_stubtest_finds_the_stub_consistent_with_the_module(tmp_path):
    _needs("mypy")
    # run outside the tree so `nextblock` is the installed (editable) package, as users import it
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "nextblock._core", "--allowlist", str(ALLOWLIST)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, (
        f"mypy.stubtest: _core.pyi disagrees with nextblock._core ({REGENERATE}):\n{r.stdout[-6000:]}{r.stderr}"
    )
