"""The docs name only what exists: every relative markdown link, every backticked repository path
and every backticked ``nextblock.`` module in README.md, DEVELOPERS.md, docs/**/*.md and
models/*.md points to a file (or a name defined in the module it names). Fast: no network, no
imports of the package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "nextblock"

#: ``[text](target)``, the target without a title
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: a backticked span on one line
CODE = re.compile(r"`([^`\n]+)`")
#: characters that mark a span as a pattern or a command, not one path
NOT_A_PATH = re.compile(r"[\s<>*$~{}|=\[\]…]|\.\.\.")
MODULE = re.compile(r"^nextblock(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
#: paths the docs name as places something is written or looked for, not files of the repository
NOT_IN_THE_REPOSITORY = {
    "build/jacktrip/bin/jacktrip",  # the patched build's last fallback location (ignored by git)
    "models/nextblock-twosided.tflite",  # where a two-sided model goes when one ships
}


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "DEVELOPERS.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted((ROOT / "models").glob("*.md"))
    return files


def top_level_dirs() -> set[str]:
    """The repository's own top-level folders: those git tracks files in (not ``runs/``, ``out/``
    or a venv that a run left in this checkout, which the docs name as places output goes)."""
    import subprocess

    try:
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in {".git", ".venv", "runs", "out"}}
    return {t.split("/", 1)[0] for t in tracked if "/" in t}


def prose(text: str) -> str:
    """The text outside fenced code blocks (their lines are commands and output, not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def broken_links(doc: Path) -> list[str]:
    bad = []
    for target in LINK.findall(prose(doc.read_text())):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            bad.append(f"link {target}")
    return bad


def module_exists(dotted: str) -> bool:
    """``nextblock.a.b.name``: packages and a module down to a file, then names defined in it."""
    parts = dotted.split(".")[1:]
    here = PACKAGE
    for i, part in enumerate(parts):
        if part == "_core":  # the compiled extension: its names are the C++ bindings'
            return (PACKAGE / "_core.pyi").exists()
        if (here / part).is_dir():
            here = here / part
            continue
        module = here / f"{part}.py"
        if not module.exists():
            init = here / "__init__.py"
            return init.exists() and defines(init.read_text(), part)
        text = module.read_text()
        return all(defines(text, name) for name in parts[i + 1 : i + 2])
    return True


def defines(text: str, name: str) -> bool:
    return re.search(rf"^\s*(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]|\bimport\b.*\b{name}\b", text, re.M) is not None


def broken_paths(doc: Path, tops: set[str]) -> list[str]:
    bad = []
    for span in CODE.findall(prose(doc.read_text())):
        span = span.strip()
        if MODULE.match(span):
            if not module_exists(span):
                bad.append(f"module {span}")
            continue
        span, _, test = span.partition("::")
        if NOT_A_PATH.search(span) or "/" not in span or span in NOT_IN_THE_REPOSITORY:
            continue
        first = span.split("/", 1)[0]
        if first == "nextblock":  # a package path, or a C++ header as included from csrc/
            candidates = [ROOT / "python" / span, ROOT / "csrc" / span]
        elif first in tops:
            candidates = [ROOT / span]
        else:
            continue
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            bad.append(f"path {span}")
        elif test and not defines(path.read_text(), test.split("[", 1)[0]):
            bad.append(f"test {span}::{test}")
    return bad


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_only_what_exists(doc: Path):
    bad = broken_links(doc) + broken_paths(doc, top_level_dirs())
    assert not bad, f"{doc.relative_to(ROOT)} names what does not exist: {bad}"


def test_the_checker_sees_a_broken_link_and_path(tmp_path: Path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "[a](missing.md) `scripts/no_such.sh` `nextblock.features.no_such` `nextblock.features.twosided.GuessRecipe`"
        " `tests/test_cli.py::no_such_test`\n"
    )
    assert broken_links(doc) == ["link missing.md"]
    assert broken_paths(doc, top_level_dirs()) == [
        "path scripts/no_such.sh",
        "module nextblock.features.no_such",
        "test tests/test_cli.py::no_such_test",
    ]
