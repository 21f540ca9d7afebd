"""Find or build the patched JackTrip 2.7.2 (``--nextblock``): the one source of truth.

Used by the tests (``tests/jacktrip_patch_harness.py``, ``tests/test_e2e_patched.py``), the demo,
``bench/e2e.py`` and ``scripts/setup.sh``::

    python3 -m nextblock.jackio.patched_build            # find, else build into the cache (exit 0),
                                                         # or say what is missing (exit 0, --strict: 2)
    python3 -m nextblock.jackio.patched_build --check    # only look, never build

Lookup order for the binaries (:func:`find_patched_jacktrip`):

1. ``$NEXTBLOCK_JACKTRIP`` (patched) / ``$NEXTBLOCK_JACKTRIP_PATCHED`` and
   ``$NEXTBLOCK_JACKTRIP_STOCK`` (prebuilt binaries, e.g. in CI);
2. the build cache ``$NEXTBLOCK_CACHE/jacktrip/build-2.7.2/bin/{jacktrip,jacktrip-stock}``
   when its key (hash of JackTrip's source, our patch + bridge, the shm header) is current;
3. ``build/jacktrip/bin/jacktrip`` (what ``third_party/jacktrip_patch/build.sh`` makes).

:func:`build_jacktrip` builds stock + patched with ``third_party/jacktrip_patch``'s CMake project
when JackTrip's source is available (``$JACKTRIP_SOURCE_DIR`` or
``$NEXTBLOCK_CACHE/jacktrip/jacktrip-2.7.2``); ~10 min on 2 cores, incremental afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = [
    "JACKTRIP_VERSION",
    "PATCH_DIR",
    "REPO",
    "build_jacktrip",
    "build_key",
    "cache_root",
    "ensure_patched_jacktrip",
    "find_jacktrip_source",
    "find_patched_jacktrip",
    "find_stock_jacktrip",
    "missing_source_message",
]

REPO = Path(__file__).resolve().parents[3]
PATCH_DIR = REPO / "third_party" / "jacktrip_patch"
JACKTRIP_VERSION = "2.7.2"


def cache_root() -> Path:
    return Path(os.environ.get("NEXTBLOCK_CACHE", Path.home() / ".cache" / "nextblock"))


def build_dir() -> Path:
    return cache_root() / "jacktrip" / f"build-{JACKTRIP_VERSION}"


def find_jacktrip_source() -> Path | None:
    """JackTrip's source: ``$JACKTRIP_SOURCE_DIR``, else the cache. None if absent."""
    cands = []
    if os.environ.get("JACKTRIP_SOURCE_DIR"):
        cands.append(Path(os.environ["JACKTRIP_SOURCE_DIR"]))
    cands.append(cache_root() / "jacktrip" / f"jacktrip-{JACKTRIP_VERSION}")
    for c in cands:
        if (c / "src" / "Regulator.cpp").is_file() and (c / "meson.build").is_file():
            return c
    return None


def missing_source_message() -> str:
    return (f"JackTrip {JACKTRIP_VERSION}'s source is not available: set JACKTRIP_SOURCE_DIR to an unpacked "
            f"v{JACKTRIP_VERSION} tree, or unpack it into {cache_root() / 'jacktrip' / f'jacktrip-{JACKTRIP_VERSION}'} "
            f"(e.g. `git -C <jacktrip clone> archive --prefix=jacktrip-{JACKTRIP_VERSION}/ v{JACKTRIP_VERSION} | "
            f"tar -x -C {cache_root() / 'jacktrip'}`), or point NEXTBLOCK_JACKTRIP at a prebuilt patched binary")


def _hash_tree(h, root: Path, rel_dirs=("src", "meson.build", "meson_options.txt", "linux")):
    for rel in rel_dirs:
        p = root / rel
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())


def build_key(source: Path) -> str:
    """Hash of JackTrip's source, our patch/bridge/CMake files and the shm header."""
    h = hashlib.sha256()
    _hash_tree(h, source)
    for f in sorted(PATCH_DIR.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(PATCH_DIR)).encode())
            h.update(f.read_bytes())
    h.update((REPO / "csrc" / "nextblock" / "shm_protocol.hpp").read_bytes())
    return h.hexdigest()[:16]


def _bins(out: Path) -> dict[str, Path]:
    return {"stock": out / "bin" / "jacktrip-stock", "patched": out / "bin" / "jacktrip"}


def _cache_current(source: Path | None) -> bool:
    out = build_dir()
    stamp = out / "nextblock-build.key"
    if not (all(b.is_file() for b in _bins(out).values()) and stamp.is_file()):
        return False
    if source is None:  # no source to compare with: a complete build is the best we have
        return True
    return stamp.read_text() == build_key(source)


def build_jacktrip(source: Path, timeout_s: float = 1800) -> dict[str, Path]:
    """Stock and patched binaries, built with third_party/jacktrip_patch's CMake project into
    ``$NEXTBLOCK_CACHE/jacktrip/build-<version>``. Reused as long as its key (hash of JackTrip's
    source, our patch and bridge, the shm header) matches; otherwise rebuilt incrementally."""
    key = build_key(source)
    out = build_dir()
    bins = _bins(out)
    stamp = out / "nextblock-build.key"
    if all(b.is_file() for b in bins.values()) and stamp.is_file() and stamp.read_text() == key:
        return bins
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    log = out / "build.log"
    r = None
    with open(log, "wb") as f:
        cmds = [
            ["cmake", "-S", str(PATCH_DIR), "-B", str(out), f"-DJACKTRIP_SOURCE_DIR={source}",
             "-DNEXTBLOCK_BUILD_STOCK=ON", "-DNEXTBLOCK_JOBS=2", f"-DNEXTBLOCK_REPO_DIR={REPO}"],
            ["cmake", "--build", str(out)],
        ]
        for cmd in cmds:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
            if r.returncode != 0:
                break
    if r is None or r.returncode != 0 or not all(b.is_file() for b in bins.values()):
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"building JackTrip failed (log {log}):\n{tail}")
    stamp.write_text(key)
    return bins


def _executable(p: str | os.PathLike | None) -> Path | None:
    if p and Path(p).is_file() and os.access(p, os.X_OK):
        return Path(p)
    return None


def find_patched_jacktrip() -> tuple[str | None, str]:
    """(path, message) of the patched JackTrip without building; the message says what is missing."""
    for var in ("NEXTBLOCK_JACKTRIP", "NEXTBLOCK_JACKTRIP_PATCHED"):
        if os.environ.get(var):
            p = _executable(os.environ[var])
            if p:
                return str(p), f"patched JackTrip {JACKTRIP_VERSION}: {p} (from ${var})"
            return None, f"${var}={os.environ[var]} is not an executable file"
    source = find_jacktrip_source()
    if _cache_current(source):
        p = _bins(build_dir())["patched"]
        return str(p), f"patched JackTrip {JACKTRIP_VERSION}: {p} (build cache)"
    p = _executable(REPO / "build" / "jacktrip" / "bin" / "jacktrip")
    if p:
        return str(p), f"patched JackTrip {JACKTRIP_VERSION}: {p} (third_party/jacktrip_patch/build.sh)"
    if source is not None:
        return None, (f"no patched JackTrip built yet (source found at {source}); build it with "
                      f"`python3 -m nextblock.jackio.patched_build` (~10 min on 2 cores)")
    return None, "no patched JackTrip: " + missing_source_message()


def find_stock_jacktrip(patched: str | None = None) -> tuple[str, str]:
    """(binary, note) for stock comparisons: ``jacktrip-stock`` 2.7.2 built beside the patched one
    (same version ⇒ a fair comparison), else ``$NEXTBLOCK_JACKTRIP_STOCK``, else the system's."""
    if os.environ.get("NEXTBLOCK_JACKTRIP_STOCK"):
        p = _executable(os.environ["NEXTBLOCK_JACKTRIP_STOCK"])
        if p:
            return str(p), f"stock JackTrip: {p} (from $NEXTBLOCK_JACKTRIP_STOCK)"
    cands = []
    if patched:
        cands.append(Path(patched).with_name("jacktrip-stock"))
    cands.append(_bins(build_dir())["stock"])
    for c in cands:
        if _executable(c):
            return str(c), f"stock JackTrip {JACKTRIP_VERSION}: {c} (built from the same source as the patched one)"
    return "jacktrip", ("stock JackTrip: the system's `jacktrip` (Debian 1.7.0 here) — no stock 2.7.2 build found, "
                        "so stock and patched differ in version too")


def ensure_patched_jacktrip(build: bool = True) -> tuple[str | None, str]:
    """Find the patched JackTrip; if absent and ``build`` and the source is there, build it."""
    path, msg = find_patched_jacktrip()
    if path or not build:
        return path, msg
    source = find_jacktrip_source()
    if source is None:
        return None, msg
    try:
        bins = build_jacktrip(source)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return None, f"building the patched JackTrip failed: {exc}"
    return str(bins["patched"]), f"patched JackTrip {JACKTRIP_VERSION}: {bins['patched']} (just built)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m nextblock.jackio.patched_build", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only look for it, never build")
    p.add_argument("--strict", action="store_true", help="exit 2 when no patched JackTrip can be had")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(argv)
    path, msg = ensure_patched_jacktrip(build=not a.check)
    stock, stock_note = find_stock_jacktrip(path)
    if a.json:
        print(json.dumps({"patched": path, "message": msg, "stock": stock, "stock_note": stock_note}))
    else:
        print(msg)
        print(stock_note)
        if path is None:
            print("the demo, bench and tests will run stock JackTrip only (the patched path is skipped)")
    return 2 if (a.strict and path is None) else 0


if __name__ == "__main__":
    sys.exit(main())
