"""Find or build the patched JackTrip 2.7.2 (``--nextblock``): the one source of truth.

Used by the tests (``tests/jacktrip_patch_harness.py``, ``tests/test_e2e_patched.py``), the demo,
``nextblock doctor``, ``nextblock jacktrip``, ``bench/e2e.py`` and ``scripts/setup.sh``::

    python3 -m nextblock.jackio.patched_build            # find, else build into the cache
    python3 -m nextblock.jackio.patched_build --tarball ~/Downloads/jacktrip-2.7.2.tar.gz
    python3 -m nextblock.jackio.patched_build --check    # only look, never build

Exit status: 0 when the patched JackTrip is there (or when its source is missing, unless
``--strict``), 1 when a build was tried and failed or the tarball is not JackTrip 2.7.2's release,
2 with ``--strict`` when no source can be found at all.

Where JackTrip's source comes from (:func:`find_jacktrip_source`): ``--tarball PATH`` when given
(checked and unpacked into the cache), else the first hit of

1. ``$JACKTRIP_SOURCE_DIR`` (an unpacked v2.7.2 tree);
2. ``$NEXTBLOCK_CACHE/jacktrip/jacktrip-2.7.2`` (default cache ``~/.cache/nextblock``);
3. the release tarball ``jacktrip-2.7.2.tar.gz`` (``$NEXTBLOCK_JACKTRIP_TARBALL``, ``../shared/jacktrip/`` next to the repository, or
   ``$NEXTBLOCK_CACHE/jacktrip/``): its sha256 is checked against :data:`TARBALL_SHA256`, then it
   is unpacked into the cache (2.).

Lookup order for the binaries (:func:`find_patched_jacktrip`):

1. ``$NEXTBLOCK_JACKTRIP`` (patched) / ``$NEXTBLOCK_JACKTRIP_PATCHED`` and
   ``$NEXTBLOCK_JACKTRIP_STOCK`` (prebuilt binaries, e.g. in CI);
2. the build cache ``$NEXTBLOCK_CACHE/jacktrip/build-2.7.2-<key>/bin/{jacktrip,jacktrip-stock}``,
   ``<key>`` the hash of JackTrip's source, our patch + bridge and the shm header
   (:func:`build_dir`);
3. ``build/jacktrip/bin/jacktrip`` (what ``third_party/jacktrip_patch/build.sh`` makes).

:func:`build_jacktrip` builds stock + patched with ``third_party/jacktrip_patch``'s CMake project
when JackTrip's source is available (``$JACKTRIP_SOURCE_DIR`` or
``$NEXTBLOCK_CACHE/jacktrip/jacktrip-2.7.2``); ~10 min on 2 cores, incremental afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from nextblock.paths import cache_root

__all__ = [
    "JACKTRIP_VERSION",
    "PATCH_DIR",
    "REPO",
    "TARBALL_SHA256",
    "TarballError",
    "build_jacktrip",
    "build_key",
    "cache_root",
    "ensure_patched_jacktrip",
    "find_jacktrip_source",
    "find_patched_jacktrip",
    "find_stock_jacktrip",
    "find_tarball",
    "missing_python_helpers",
    "missing_source_message",
    "unpack_tarball",
]

REPO = Path(__file__).resolve().parents[3]
PATCH_DIR = REPO / "third_party" / "jacktrip_patch"
#: the shm headers (csrc/nextblock/) JackTrip compiles: the producer and the layout it includes
JACKTRIP_SHM_HEADERS = ("shm_producer.hpp", "shm_layout.hpp")
JACKTRIP_VERSION = "2.7.2"
TARBALL_NAME = f"jacktrip-{JACKTRIP_VERSION}.tar.gz"
# sha256 of JackTrip's v2.7.2 release source tarball (upstream tag v2.7.2, commit 2d409d4a5695)
TARBALL_SHA256 = "99243337028645614987e5e009980019918fbd42bf0d80b369dd27933c218965"


class TarballError(RuntimeError):
    """The tarball is not JackTrip's release source (wrong hash, unreadable, unexpected layout)."""


def build_dir(key: str | None = None) -> Path:
    """The build folder for the patch version ``key`` (:func:`build_key`):
    ``$NEXTBLOCK_CACHE/jacktrip/build-2.7.2-<key>``, so checkouts with different patches (branches,
    worktrees, CI clones sharing one cache) never rebuild over each other. Without ``key``: the
    unkeyed ``build-2.7.2`` folder earlier versions used (still found when its stamp matches)."""
    base = cache_root() / "jacktrip" / f"build-{JACKTRIP_VERSION}"
    return base.with_name(f"{base.name}-{key}") if key else base


def _complete(out: Path) -> bool:
    return all(b.is_file() for b in _bins(out).values()) and (out / "nextblock-build.key").is_file()


def source_dir() -> Path:
    """Where the unpacked source lives in the cache."""
    return cache_root() / "jacktrip" / f"jacktrip-{JACKTRIP_VERSION}"


def _is_source_tree(path: Path) -> bool:
    return (path / "src" / "Regulator.cpp").is_file() and (path / "meson.build").is_file()


def find_tarball(explicit: str | os.PathLike | None = None) -> Path | None:
    """The release tarball: ``explicit``, ``$NEXTBLOCK_JACKTRIP_TARBALL``, ``../shared/jacktrip/``
    beside the repository, or the cache. None if none exists. An ``explicit`` path or the
    environment variable naming a missing file raises ``FileNotFoundError``."""
    for given in (explicit, os.environ.get("NEXTBLOCK_JACKTRIP_TARBALL")):
        if given:
            if not Path(given).is_file():
                raise FileNotFoundError(f"JackTrip tarball not found: {given}")
            return Path(given)
    for cand in (REPO.parent / "shared" / "jacktrip" / TARBALL_NAME, cache_root() / "jacktrip" / TARBALL_NAME):
        if cand.is_file():
            return cand
    return None


def unpack_tarball(tarball: str | os.PathLike) -> Path:
    """Check ``tarball``'s sha256 against :data:`TARBALL_SHA256` and unpack it into the cache
    (:func:`source_dir`); returns that folder. Raises :class:`TarballError` with the reason."""
    import shutil
    import tarfile
    import tempfile

    from nextblock.dataset.download import sha256_of_file

    tarball = Path(tarball)
    digest = sha256_of_file(tarball)
    if digest != TARBALL_SHA256:
        raise TarballError(
            f"{tarball} is not JackTrip {JACKTRIP_VERSION}'s release source: sha256 {digest}, expected {TARBALL_SHA256}"
        )
    dest = source_dir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".unpack-") as tmp:
        try:
            with tarfile.open(tarball) as tf:
                tf.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise TarballError(f"cannot unpack {tarball}: {exc}") from exc
        top = Path(tmp) / f"jacktrip-{JACKTRIP_VERSION}"
        if not _is_source_tree(top):
            raise TarballError(f"{tarball} has no jacktrip-{JACKTRIP_VERSION}/src/Regulator.cpp")
        if dest.exists():  # an incomplete earlier unpack, or the source an explicit tarball replaces
            shutil.rmtree(dest)
        top.rename(dest)
    return dest


def find_jacktrip_source(unpack: bool = True, tarball: str | os.PathLike | None = None) -> Path | None:
    """JackTrip's source: ``$JACKTRIP_SOURCE_DIR``, else the cache, else (``unpack``) the release
    tarball (:func:`find_tarball`) unpacked into the cache. None if none of them is there.
    An explicit ``tarball`` comes first (checked and unpacked even when the cache has a source).
    Raises :class:`TarballError` for a tarball that is not JackTrip's release."""
    if tarball is not None:
        return unpack_tarball(find_tarball(tarball))
    cands = []
    if os.environ.get("JACKTRIP_SOURCE_DIR"):
        cands.append(Path(os.environ["JACKTRIP_SOURCE_DIR"]))
    cands.append(source_dir())
    for c in cands:
        if _is_source_tree(c):
            return c
    if unpack:
        found = find_tarball(tarball)
        if found is not None:
            return unpack_tarball(found)
    return None


def missing_source_message() -> str:
    return (
        f"JackTrip {JACKTRIP_VERSION}'s source is not available: download its release tarball "
        f"https://github.com/jacktrip/jacktrip/archive/refs/tags/v{JACKTRIP_VERSION}.tar.gz as {TARBALL_NAME} "
        f"and run `nextblock build-jacktrip --tarball {TARBALL_NAME}` (or put it in {cache_root() / 'jacktrip'}), "
        f"or set JACKTRIP_SOURCE_DIR to an unpacked v{JACKTRIP_VERSION} tree, or unpack it into "
        f"{source_dir()}, or point NEXTBLOCK_JACKTRIP at a prebuilt patched binary"
    )


def _hash_tree(h, root: Path, rel_dirs=("src", "meson.build", "meson_options.txt", "linux")):
    for rel in rel_dirs:
        p = root / rel
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())


def build_key(source: Path) -> str:
    """Hash of JackTrip's source, our patch/bridge/CMake files and the shm headers JackTrip compiles."""
    h = hashlib.sha256()
    _hash_tree(h, source)
    for f in sorted(PATCH_DIR.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(PATCH_DIR)).encode())
            h.update(f.read_bytes())
    for header in JACKTRIP_SHM_HEADERS:
        h.update((REPO / "csrc" / "nextblock" / header).read_bytes())
    return h.hexdigest()[:16]


def _bins(out: Path) -> dict[str, Path]:
    return {"stock": out / "bin" / "jacktrip-stock", "patched": out / "bin" / "jacktrip"}


def _current_build(source: Path | None) -> Path | None:
    """The build folder holding binaries of this checkout's patch, or None.

    With the source and the repository's patch: the folder of :func:`build_key`, or the unkeyed
    folder when its stamp says the same key. Without them (an installed NextBlock, no source):
    the newest complete build, the best there is."""
    if source is not None and PATCH_DIR.is_dir():
        key = build_key(source)
        for out in (build_dir(key), build_dir()):
            if _complete(out) and (out / "nextblock-build.key").read_text() == key:
                return out
        return None
    builds = [d for d in (cache_root() / "jacktrip").glob(f"build-{JACKTRIP_VERSION}*") if _complete(d)]
    return max(builds, key=lambda d: (d / "nextblock-build.key").stat().st_mtime, default=None)


def _build_env() -> dict[str, str]:
    """The environment of the JackTrip build: this interpreter's folder first on ``PATH``.

    JackTrip's meson build runs a Python helper (``linux/add_changelog_to_metainfo.py``, with
    ``import('python').find_installation('python3')``: the ``python3`` first on ``PATH``) that
    imports ``yaml`` and ``jinja2``; with NextBlock in a virtual environment that is the venv's
    interpreter, which has them from the ``[jacktrip]`` extra (:func:`missing_python_helpers`).
    The meson that runs it goes through a wrapper that does the same (:func:`_meson_args`): a pyenv
    shim (``cmake``, ``meson``) would put its own interpreter first on ``PATH`` again."""
    env = dict(os.environ)
    here = os.path.dirname(sys.executable)
    if here and (Path(here) / "python3").exists():
        env["PATH"] = os.pathsep.join([here] + [p for p in env.get("PATH", "").split(os.pathsep) if p and p != here])
    return env


def _meson_args(out: Path) -> list[str]:
    """``-DMESON=`` for the CMake project: a wrapper in ``out`` that puts this interpreter's folder
    first on ``PATH`` again and runs the meson beside it (the ``[jacktrip]`` extra installs one into
    the venv), else the meson on ``PATH``. Again, because ``cmake`` itself may be a pyenv shim that
    puts pyenv's own interpreter first for everything it starts; then JackTrip's meson helper would
    run outside the venv. None when no meson is found (CMake then says what is missing)."""
    import shutil

    here = Path(sys.executable).parent
    meson = here / "meson"
    if not (meson.is_file() and os.access(meson, os.X_OK)):
        found = shutil.which("meson", path=_build_env()["PATH"])
        if found is None:
            return []
        meson = Path(found)
    wrapper = out / "nextblock-meson"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# nextblock.jackio.patched_build: JackTrip's meson build runs a Python helper with the python3\n"
        "# first on PATH; this keeps it the interpreter NextBlock runs in (a pyenv shim may reorder PATH)\n"
        f'PATH={shlex.quote(str(here))}:"$PATH"\nexport PATH\n'
        f'exec {shlex.quote(str(meson))} "$@"\n'
    )
    wrapper.chmod(0o755)
    return [f"-DMESON={wrapper}"]


def missing_python_helpers() -> list[str]:
    """The modules JackTrip's meson build needs from this interpreter that it lacks (PyPI names)."""
    import importlib.util

    return [pkg for mod, pkg in (("yaml", "PyYAML"), ("jinja2", "Jinja2")) if importlib.util.find_spec(mod) is None]


def _run_logged(cmd: list[str], log, timeout_s: float, progress) -> int:
    """Run ``cmd`` with its output appended to ``log``; while it runs, show the last ``[n/m]``
    step ninja printed on ``progress`` (a tqdm bar, or None)."""
    import re

    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_build_env())
    deadline = time.monotonic() + timeout_s
    step = re.compile(rb"\[(\d+)/(\d+)\]")
    try:
        while True:
            try:
                return proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(cmd, timeout_s) from None
            if progress is not None:
                log.flush()
                with open(log.name, "rb") as f:
                    f.seek(max(0, os.path.getsize(log.name) - 4096))
                    hits = step.findall(f.read())
                if hits:
                    done, total = map(int, hits[-1])
                    progress.total = total
                    progress.n = done
                    progress.refresh()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def build_jacktrip(source: Path, timeout_s: float = 1800, show_progress: bool = False) -> dict[str, Path]:
    """Stock and patched binaries, built with third_party/jacktrip_patch's CMake project into
    ``$NEXTBLOCK_CACHE/jacktrip/build-<version>-<key>`` (:func:`build_dir`); reused when that
    folder (or the unkeyed one with the same stamp) is complete, else built (~10 min on 2 cores).
    ``show_progress``: a progress bar of the compile steps on stderr. Raises ``RuntimeError``
    (with the log's tail) when the build fails."""
    if not PATCH_DIR.is_dir():
        raise RuntimeError(
            f"building the patched JackTrip needs NextBlock's repository ({PATCH_DIR} is missing): "
            "run `nextblock build-jacktrip` from a clone, or set NEXTBLOCK_JACKTRIP to a patched binary"
        )
    current = _current_build(source)
    if current is not None:
        return _bins(current)
    missing = missing_python_helpers()
    if missing:
        raise RuntimeError(
            f"JackTrip's meson build runs a Python helper that needs {' and '.join(missing)} in "
            f"{sys.executable}: {sys.executable} -m pip install {' '.join(missing)} "
            "(or pip install 'nextblock[jacktrip]'; scripts/setup.sh does)"
        )
    key = build_key(source)
    out = build_dir(key)
    bins = _bins(out)
    stamp = out / "nextblock-build.key"
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    cmake_cache = out / "CMakeCache.txt"
    if cmake_cache.is_file() and f"CMAKE_HOME_DIRECTORY:INTERNAL={PATCH_DIR}\n" not in cmake_cache.read_text():
        # an unfinished build of the same patch from another checkout: CMake refuses another source folder
        import shutil

        cmake_cache.unlink()
        shutil.rmtree(out / "CMakeFiles", ignore_errors=True)
    log = out / "build.log"
    rc = None
    cmds = [
        (
            "configure",
            [
                "cmake",
                "-S",
                str(PATCH_DIR),
                "-B",
                str(out),
                f"-DJACKTRIP_SOURCE_DIR={source}",
                "-DNEXTBLOCK_BUILD_STOCK=ON",
                "-DNEXTBLOCK_JOBS=2",
                f"-DNEXTBLOCK_REPO_DIR={REPO}",
                *_meson_args(out),
            ],
        ),
        ("compile stock + patched JackTrip", ["cmake", "--build", str(out)]),
    ]
    with open(log, "wb") as f:
        for what, cmd in cmds:
            bar = None
            if show_progress:
                from tqdm.auto import tqdm

                bar = tqdm(desc=f"JackTrip: {what}", unit="step", total=None, leave=True)
            try:
                rc = _run_logged(cmd, f, timeout_s, bar)
            finally:
                if bar is not None:
                    bar.close()
            if rc != 0:
                break
    if rc != 0 or not all(b.is_file() for b in bins.values()):
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
    source = find_jacktrip_source(unpack=False)
    current = _current_build(source)
    if current is not None:
        p = _bins(current)["patched"]
        return str(p), f"patched JackTrip {JACKTRIP_VERSION}: {p} (build cache)"
    p = _executable(REPO / "build" / "jacktrip" / "bin" / "jacktrip")
    if p:
        return str(p), f"patched JackTrip {JACKTRIP_VERSION}: {p} (third_party/jacktrip_patch/build.sh)"
    try:
        tarball = find_tarball() if source is None else None
    except FileNotFoundError as exc:
        return None, f"no patched JackTrip: {exc}"
    if source is not None or tarball is not None:
        return None, (
            f"no patched JackTrip built yet (source: {source or tarball}); build it with "
            f"`nextblock build-jacktrip` or `python3 -m nextblock.jackio.patched_build` (~10 min on 2 cores)"
        )
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
    current = _current_build(find_jacktrip_source(unpack=False))
    if current is not None:
        cands.append(_bins(current)["stock"])
    for c in cands:
        if _executable(c):
            return str(c), f"stock JackTrip {JACKTRIP_VERSION}: {c} (built from the same source as the patched one)"
    return "jacktrip", (
        "stock JackTrip: the system's `jacktrip` (Debian 1.7.0 here) — no stock 2.7.2 build found, "
        "so stock and patched differ in version too"
    )


def _ensure(build: bool, tarball=None, show_progress: bool = False) -> tuple[str | None, str, bool]:
    """(path, message, failed): ``failed`` when a build or an unpack was tried and went wrong."""
    path, msg = find_patched_jacktrip() if tarball is None else (None, "")
    if path or not build:
        return path, msg, False
    try:
        source = find_jacktrip_source(unpack=True, tarball=tarball)
    except (TarballError, FileNotFoundError) as exc:
        return None, f"no patched JackTrip: {exc}", True
    if source is None:
        return None, msg, False
    try:
        bins = build_jacktrip(source, show_progress=show_progress)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return None, f"building the patched JackTrip failed: {exc}", True
    return str(bins["patched"]), f"patched JackTrip {JACKTRIP_VERSION}: {bins['patched']} (built from {source})", False


def ensure_patched_jacktrip(build: bool = True, show_progress: bool = False) -> tuple[str | None, str]:
    """Find the patched JackTrip; if absent and ``build`` and the source (or the release tarball)
    is there, build it. Returns (path or None, a one-line message that says what is missing)."""
    path, msg, _ = _ensure(build, show_progress=show_progress)
    return path, msg


def run(args) -> int:
    """Find (``args.check``), else build, the patched JackTrip as ``args``
    (:func:`nextblock.commands.build_jacktrip.build_parser`) say; returns the exit status."""
    path, msg, failed = _ensure(not args.check, tarball=args.tarball, show_progress=not args.json)
    stock, stock_note = find_stock_jacktrip(path)
    if args.json:
        print(json.dumps({"patched": path, "message": msg, "stock": stock, "stock_note": stock_note}))
    else:
        print(msg, file=sys.stderr if failed else sys.stdout)
        print(stock_note)
        if path is None:
            print(
                "without it the demo runs NextBlock on the stand-in producer and the patched-JackTrip tests "
                "skip (in CI they fail)"
            )
    if failed:
        return 1
    return 2 if (args.strict and path is None) else 0


if __name__ == "__main__":
    from nextblock.commands.build_jacktrip import main

    sys.exit(main(prog="python3 -m nextblock.jackio.patched_build"))
