"""The tree is formatted and lint-clean as the pinned tools say (pyproject.toml's test extra):
``ruff check``, ``ruff format --check`` and ``clang-format --dry-run -Werror`` on NextBlock's
C++ (csrc/, with /.clang-format) and JackTrip's bridge (third_party/jacktrip_patch/, with JackTrip's
own style in its .clang-format). A failure names the offending files; the fix is
``scripts/format.sh`` (ruff check --fix, ruff format, clang-format -i), committed on its own.

The tools come from ``pip install -e .[test]`` (scripts/setup.sh); a missing one skips here and
fails in strict mode (CI=true), as every setup-provided resource does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPP_DIRS = ("csrc", "third_party/jacktrip_patch")
CPP_SUFFIXES = (".cpp", ".hpp", ".h", ".cc")


def _tool(name: str) -> str:
    """The tool installed beside this interpreter (the venv's pinned wheel), else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e .[test], as scripts/setup.sh does)")
    return path


def _tracked(*dirs: str) -> list[str]:
    """Files git tracks under ``dirs`` (relative to the repository), so build output never counts."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the style checks run on the repository's tracked files")
    out = subprocess.run(["git", "ls-files", "--", *dirs], cwd=REPO, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.split() if f.endswith(CPP_SUFFIXES)]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_check_is_clean():
    r = _run([_tool("ruff"), "check", "--output-format", "concise", "."])
    assert r.returncode == 0, f"ruff check found problems (fix, or `ruff check --fix .`):\n{r.stdout}{r.stderr}"


def test_ruff_format_is_applied():
    r = _run([_tool("ruff"), "format", "--check", "."])
    unformatted = [line.removeprefix("Would reformat: ") for line in r.stdout.splitlines() if "reformat" in line]
    assert r.returncode == 0, (
        "files not as `ruff format .` writes them:\n  " + "\n  ".join(unformatted) + f"\n{r.stderr}"
    )


def test_clang_format_is_applied():
    files = _tracked(*CPP_DIRS)
    assert files, f"no C++ files tracked under {CPP_DIRS}"
    r = _run([_tool("clang-format"), "--dry-run", "-Werror", *files])
    offending = sorted({line.split(":", 1)[0] for line in r.stderr.splitlines() if ": error:" in line})
    assert r.returncode == 0, (
        "files not as `clang-format -i` writes them:\n  " + "\n  ".join(offending) + f"\n{r.stderr[-3000:]}"
    )
