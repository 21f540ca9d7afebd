"""Installing NextBlock as a user would: the wheel into a fresh virtual environment outside the
repository (the ``nextblock`` command, the shipped model as package data, the demo on the stand-in
producer, evaluate, attach), and ``scripts/setup.sh``'s virtual environment on the distribution's
own ``/usr/bin/python3`` (Debian's is externally managed, PEP 668: pip must never install into it)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import resources

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")

pytestmark = pytest.mark.slow


def _outside_env() -> dict[str, str]:
    """The environment of a user outside the repository: this tree's python/ off the path (the
    installed copy is under test; NEXTBLOCK_NO_EDITABLE stays: it keeps a developer's editable
    install of another tree out), no virtual environment active."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SKBUILD_EDITABLE_SKIP")}
    return env


def make_venv_seeing_this_environment(venv: Path) -> Path:
    """A fresh venv at ``venv`` (from the base interpreter of the one running the tests) whose
    ``sys.path`` ends with this environment's site-packages, so the wheel installs with
    ``--no-deps`` and finds numpy, LiteRT, ... without a download. ``--system-site-packages``
    would not do: from inside a venv it shows the *base* interpreter's packages (none on Debian's
    python3, another tree's editable NextBlock on a developer's pyenv). Only plain folders are
    added (a ``.pth`` line), so this environment's own ``.pth`` hooks — an editable install of this
    tree — do not run there. Returns the venv's python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "zz-parent-environment.pth").write_text("\n".join(sorted(ours)) + "\n")
    return py


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this tree (``pip wheel``), installed into a fresh venv in a temporary
    folder outside the repository: ``(venv, python, the nextblock command, a work folder)``."""
    base = tmp_path_factory.mktemp("outside")
    assert REPO not in base.parents
    wheels = base / "wheels"
    env = _outside_env()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(wheels),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    (wheel,) = wheels.glob("nextblock-*.whl")
    py = make_venv_seeing_this_environment(base / "venv")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    work = base / "work"
    work.mkdir()
    return base / "venv", py, base / "venv" / "bin" / "nextblock", work


def _run(installed, *args, timeout=300):
    venv, _, exe, work = installed
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=_outside_env(), timeout=timeout, cwd=work
    )


def test_the_installed_package_is_the_wheels_with_its_model_inside(installed):
    venv, py, exe, work = installed
    assert exe.is_file()
    code = "import nextblock, nextblock._core, nextblock.model as m; print(nextblock.__file__); print(m.default_model_path())"
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=_outside_env(), timeout=60, cwd=work)
    assert r.returncode == 0, r.stderr
    where, model = r.stdout.split()
    assert Path(where).is_relative_to(venv) and Path(model).is_relative_to(venv), r.stdout
    shipped = {p.name for p in Path(model).parent.iterdir()}
    assert {
        "nextblock-default.tflite",
        "nextblock-default-fp16.tflite",
        "nextblock-lite.tflite",
        "nextblock-default.weights.h5",
        "MODEL_CARD.md",
    } <= shipped
    r = _run(installed, "--help", timeout=60)
    assert r.returncode == 0 and "doctor" in r.stdout


def test_the_wheel_ships_the_typed_face_of_the_core(installed):
    venv, py, exe, work = installed
    code = "import nextblock, pathlib; print(pathlib.Path(nextblock.__file__).parent)"
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=_outside_env(), timeout=60, cwd=work)
    assert r.returncode == 0, r.stderr
    package = Path(r.stdout.strip())
    assert (package / "_core.pyi").is_file() and (package / "py.typed").is_file(), sorted(
        p.name for p in package.iterdir()
    )


def test_doctor_and_attach_help_work_outside_the_repository(installed):
    venv = installed[0]
    r = _run(installed, "doctor", "--json", timeout=120)
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["model"]["ok"] and str(venv) in checks["model"]["detail"], checks["model"]
    assert checks["shared memory"]["ok"], checks["shared memory"]
    r = _run(installed, "attach", "--help", timeout=60)
    assert r.returncode == 0 and "--jacktrip-pid" in r.stdout


def test_evaluate_with_the_shipped_model_outside_the_repository(installed):
    import numpy as np
    import soundfile

    work = installed[3]
    t = np.arange(3 * 48000) / 48000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 1320 * t)
    soundfile.write(work / "tone.wav", tone.astype(np.float32), 48000)
    r = _run(
        installed,
        "evaluate",
        "tone.wav",
        "--no-visqol",
        "--quiet",
        "--loss",
        "bernoulli:0.1",
        "--concealer",
        "zeros",
        "--concealer",
        "nextblock",
        "--json",
        str(work / "eval.json"),
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rows = {row["concealer"]: row for row in json.loads((work / "eval.json").read_text())["results"]}
    assert rows["nextblock"]["lost_blocks"] > 0 and rows["nextblock"]["loss"] == "bernoulli:0.1"
    # the shipped model predicts a steady tone far better than silence does
    assert rows["nextblock"]["snr_db"] > rows["zeros"]["snr_db"] + 3, rows


def test_a_4_second_demo_on_the_stand_in_outside_the_repository(installed):
    from nextblock.jackio.recording import load_test_recording

    try:
        load_test_recording(1.0, split="test")
    except Exception as exc:  # noqa: BLE001 - apt-get download failed, no cache
        resources.needs("test recording (singularity-music from the Debian mirror)", str(exc))
    work = installed[3]
    r = _run(installed, "demo", "--stand-in", "--no-install", "--seconds", "4", "--out", "demo", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((work / "demo" / "report.json").read_text())
    assert report["mode"] == "stand-in producer" and report["loss"] == "bernoulli:0.05"
    nb = next(row for row in report["rows"] if row["label"] == "NextBlock (stand-in producer)")  # the causal row
    assert nb["by_nextblock"] >= 3, nb
    assert any(row["label"] == "NextBlock two-sided (stand-in producer)" for row in report["rows"]), report["rows"]
    assert math.isfinite(nb["metrics_lost"]["snr_db"]) and Path(work / "demo" / "played-nextblock.wav").is_file()


# ----------------------------------------------------------------------------- setup on Debian's python3
def _site_listing(python: Path) -> dict[str, list[str]]:
    """What is installed in ``python``'s own site folders (system and user), folder by folder."""
    code = (
        "import json, site, sysconfig; paths = {sysconfig.get_paths()[k] for k in ('purelib', 'platlib')}; "
        "paths |= set(site.getsitepackages()) | {site.getusersitepackages()}; print(json.dumps(sorted(paths)))"
    )
    folders = json.loads(
        subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    )
    return {f: sorted(os.listdir(f)) if os.path.isdir(f) else [] for f in folders}


def test_setup_makes_its_venv_from_the_system_python3_and_installs_only_there(tmp_path):
    if not SYSTEM_PYTHON.is_file():
        pytest.skip(f"{SYSTEM_PYTHON} does not exist on this machine (no distribution python3)")
    before = _site_listing(SYSTEM_PYTHON)
    venv = tmp_path / "venv"
    # a new user's shell on Debian: no pyenv, no venv active, the distribution's python3 first
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHON", "PYTHONHOME")}
    env.update(PATH="/usr/bin:/bin", NEXTBLOCK_SKIP_APT="1", NEXTBLOCK_SETUP_ONLY="venv", NEXTBLOCK_VENV=str(venv))
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh")], capture_output=True, text=True, env=env, timeout=900
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"from {SYSTEM_PYTHON}" in r.stdout and f"source {venv}/bin/activate" in r.stdout, r.stdout
    cfg = dict(line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines() if " = " in line)
    assert cfg["home"] == str(SYSTEM_PYTHON.parent) and cfg["include-system-site-packages"] == "false", cfg
    code = (
        "import sys, pybind11, scikit_build_core; print(sys.prefix != sys.base_prefix); print(sys.base_prefix); "
        "print(pybind11.__file__); print(scikit_build_core.__file__)"
    )
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    in_venv, base_prefix, *modules = r.stdout.split()
    assert in_venv == "True" and base_prefix == "/usr"
    assert all(Path(m).is_relative_to(venv) for m in modules), modules
    # nothing went into the system's Python (externally managed on Debian)
    assert _site_listing(SYSTEM_PYTHON) == before


def test_demo_help_works_on_the_system_python3_before_setup(tmp_path):
    """``scripts/demo.sh --help`` is what a new user types first: it needs no installed package
    (no venv yet, Debian's bare python3: the loss grammar is parsed without numpy)."""
    if not SYSTEM_PYTHON.is_file():
        pytest.skip(f"{SYSTEM_PYTHON} does not exist on this machine (no distribution python3)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHON", "PYTHONHOME")}
    env.update(PATH="/usr/bin:/bin", NEXTBLOCK_VENV=str(tmp_path / "no-venv-yet"))
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh"), "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "usage: scripts/demo.sh" in r.stdout and "bernoulli:P" in r.stdout and "gilbert:" in r.stdout
    assert not (tmp_path / "no-venv-yet").exists()


# ----------------------------------------------------------------------------- JackTrip's build and this Python
def test_the_jacktrip_build_runs_this_interpreters_python_and_meson(monkeypatch, tmp_path):
    from nextblock.jackio import patched_build as pb

    here = Path(sys.executable).parent
    assert pb._build_env()["PATH"].split(os.pathsep)[0] == str(here)
    (arg,) = pb._meson_args(tmp_path)
    wrapper = Path(arg.removeprefix("-DMESON="))
    assert wrapper.parent == tmp_path and os.access(wrapper, os.X_OK)
    if (here / "meson").is_file():  # the [jacktrip] extra's meson, not a pyenv shim
        assert f"exec {here / 'meson'} " in wrapper.read_text()
    # without PyYAML/Jinja2 here the build stops before compiling, saying what to install where
    monkeypatch.setattr(pb, "missing_python_helpers", lambda: ["PyYAML"])
    monkeypatch.setattr(pb, "_current_build", lambda source: None)
    with pytest.raises(RuntimeError, match=rf"{sys.executable} -m pip install PyYAML"):
        pb.build_jacktrip(Path("/nonexistent-source"))


@pytest.mark.jacktrip
def test_jacktrips_meson_configure_runs_its_python_helper_with_this_environment(tmp_path):
    """JackTrip's meson configure runs linux/add_changelog_to_metainfo.py (import yaml, jinja2)
    with ``find_installation('python3')``, the python3 first on PATH. Through the meson the build
    gets (patched_build's wrapper) that is this interpreter's, which setup gave PyYAML and Jinja2
    ([jacktrip] extra), even when something before it put another python3 first, as a pyenv shim
    for cmake does (a decoy python3 here that fails)."""
    from nextblock.jackio import patched_build as pb

    source = pb.find_jacktrip_source(unpack=True)
    if source is None:
        resources.needs("JackTrip 2.7.2's source", pb.missing_source_message())
    if pb.missing_python_helpers():
        resources.needs(
            "PyYAML and Jinja2 in this environment", "pip install 'nextblock[jacktrip]' (scripts/setup.sh does)"
        )
    args = pb._meson_args(tmp_path)
    if not args:
        resources.needs("meson", "pip install 'nextblock[jacktrip]' (scripts/setup.sh does)")
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "python3").write_text("#!/bin/sh\necho 'not this python3' >&2\nexit 1\n")
    (decoy / "python3").chmod(0o755)
    env = pb._build_env()
    env["PATH"] = os.pathsep.join([str(decoy), env["PATH"]])
    r = subprocess.run(
        [
            args[0].removeprefix("-DMESON="),
            "setup",
            str(tmp_path / "build"),
            str(source),
            "-Dnogui=true",
            "-Dnovs=true",
            "-Dnoupdater=true",
            "-Drtaudio=disabled",
            "-Djack=enabled",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    log = tmp_path / "build" / "meson-logs" / "meson-log.txt"
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:] + (log.read_text()[-3000:] if log.is_file() else "")
    assert f"Program python3 found: YES ({Path(sys.executable).parent / 'python3'})" in log.read_text()
    assert (tmp_path / "build" / "linux" / "org.jacktrip.JackTrip.metainfo.xml.in").is_file()
