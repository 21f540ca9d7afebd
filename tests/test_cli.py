"""The ``nextblock`` command: subcommands, ``doctor`` with and without each piece, ``nextblock
jacktrip`` starting and stopping the patched JackTrip (a stand-in binary, then the real one) with
NextBlock attached. The console script that ``pip install .`` puts on PATH: tests/test_install.py."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import resources
from nextblock import cli, doctor
from nextblock.commands import jacktrip as jacktrip_command
from nextblock.processes import process_running

REPO = Path(__file__).resolve().parents[1]


def _run(*args, env=None, timeout=120, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "nextblock.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )


# ----------------------------------------------------------------------------- subcommands
def test_help_lists_every_subcommand_and_the_first_steps():
    r = _run("--help")
    assert r.returncode == 0
    for name in (
        "attach",
        "learn",
        "evaluate",
        "demo",
        "dataset",
        "train",
        "export",
        "doctor",
        "jacktrip",
        "build-jacktrip",
    ):
        assert f"\n  {name} " in r.stdout, name
    assert "nextblock doctor" in r.stdout and "nextblock demo" in r.stdout


def test_unknown_subcommand_is_a_clear_error():
    r = _run("attachh")
    assert r.returncode == 2 and "unknown subcommand 'attachh'" in r.stderr and "subcommands:" in r.stderr


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_each_subcommand_has_a_help_that_teaches(name, capsys):
    with pytest.raises(SystemExit) as done:
        code = cli.main([name, "--help"])
        raise SystemExit(code)
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "usage:" in text and ("example" in text.lower()), text[:400]


def _command_modules() -> dict[str, object]:
    """Every module of nextblock.commands, by name."""
    import nextblock.commands

    return {
        info.name: importlib.import_module(f"nextblock.commands.{info.name}")
        for info in pkgutil.iter_modules(nextblock.commands.__path__)
    }


def test_the_table_names_every_command_module_and_nothing_else():
    assert sorted(module for module, _ in cli.SUBCOMMANDS.values()) == sorted(
        f"nextblock.commands.{name}" for name in _command_modules()
    )
    for name, (module, _) in cli.SUBCOMMANDS.items():
        assert module == "nextblock.commands." + name.replace("-", "_")


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_every_command_module_has_the_one_shape(name):
    command = importlib.import_module(cli.SUBCOMMANDS[name][0])
    prog = f"nextblock {name}"
    build = inspect.signature(command.build_parser)
    assert list(build.parameters) == ["prog"] and build.parameters["prog"].default == prog
    main = inspect.signature(command.main)
    assert list(main.parameters) == ["argv", "prog"]
    assert main.parameters["argv"].default is None and main.parameters["prog"].default == prog
    parser = command.build_parser(prog)
    assert isinstance(parser, argparse.ArgumentParser) and parser.prog == prog
    assert parser.format_help().startswith(f"usage: {prog} ")
    assert command.build_parser("python -m x").format_help().startswith("usage: python -m x ")


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_nextblock_x_help_names_nextblock_x(name):
    r = _run(name, "--help", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: nextblock {name} "), r.stdout[:200]


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("nextblock.attach", "attach"),
        ("nextblock.demo", "demo"),
        ("nextblock.doctor", "doctor"),
        ("nextblock.live", "jacktrip"),
        ("nextblock.learn", "learn"),
        ("nextblock.evaluate", "evaluate"),
        ("nextblock.dataset", "dataset"),
        ("nextblock.train", "train"),
        ("nextblock.export", "export"),
        ("nextblock.jackio.patched_build", "build-jacktrip"),
    ],
)
def test_the_module_forms_run_the_same_command(module, name):
    """``python -m nextblock.attach`` (scripts, benches, docs and ``nextblock jacktrip`` use them)
    is ``nextblock attach``: the same help, under its own name."""
    r = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    prog = ("python3 -m " if name == "build-jacktrip" else "python -m ") + module
    assert r.stdout.startswith(f"usage: {prog} "), r.stdout[:200]
    same = _run(name, "--help", timeout=60).stdout
    assert r.stdout.split("\n\n", 1)[1].replace(prog, f"nextblock {name}") == same.split("\n\n", 1)[1].replace(
        prog, f"nextblock {name}"
    )


def test_python_m_nextblock_is_the_nextblock_command():
    r = subprocess.run([sys.executable, "-m", "nextblock", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == _run("--help", timeout=60).stdout
    bad = subprocess.run([sys.executable, "-m", "nextblock", "no-such"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown subcommand" in bad.stderr


def test_parsing_any_command_and_running_doctor_import_no_tensorflow():
    code = textwrap.dedent("""
        import contextlib, importlib, io, json, sys
        from nextblock import cli
        for name, (module, _) in cli.SUBCOMMANDS.items():
            importlib.import_module(module).build_parser("nextblock " + name).format_help()
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(["doctor", "--json"])
        print(json.dumps(sorted(m for m in ("tensorflow", "keras", "jax") if m in sys.modules)))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1]) == []


def test_subcommands_pass_their_arguments_to_the_module():
    r = _run("attach", "--segment", "/nextblock-surely-not-there", "--predictor", "repeat", "--once")
    assert r.returncode == 2 and "no NextBlock segment /nextblock-surely-not-there" in r.stderr
    r = _run("demo", "--loss", "lossy:3")
    assert r.returncode == 2 and "loss spec 'lossy:3': unknown kind 'lossy'" in r.stderr
    r = _run("demo", "--seconds", "0.5")
    assert r.returncode == 2 and "--seconds must be between 2 and 600" in r.stderr


# ----------------------------------------------------------------------------- doctor
def test_doctor_finds_jack_missing_and_says_how_to_install_it(tmp_path):
    c = doctor.check_jack(path=str(tmp_path))
    assert not c.ok and "jackd not found" in c.detail and "apt-get install jackd2" in c.fix
    if shutil.which("jackd") is None:
        resources.needs("jackd", "apt-get install jackd2")
    assert doctor.check_jack().ok


def test_doctor_patched_jacktrip_with_and_without(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTBLOCK_JACKTRIP", str(tmp_path / "no-such-jacktrip"))
    c = doctor.check_patched_jacktrip()
    assert not c.ok and "not an executable" in c.detail and "nextblock build-jacktrip" in c.fix
    fake = tmp_path / "jacktrip"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("NEXTBLOCK_JACKTRIP", str(fake))
    c = doctor.check_patched_jacktrip()
    assert c.ok and str(fake) in c.detail


def test_doctor_model_with_and_without(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    c = doctor.check_model(str(broken))
    assert not c.ok and "broken.tflite" in c.detail and "ai-edge-litert" in c.fix
    c = doctor.check_model()
    assert c.ok, c.detail
    assert "nextblock-default.tflite" in c.detail and "(1, 2, 128)" in c.detail


def test_doctor_shared_memory_with_and_without(tmp_path):
    c = doctor.check_shared_memory(str(tmp_path / "no-shm"))
    assert not c.ok and "mount -t tmpfs" in c.fix
    c = doctor.check_shared_memory()
    assert c.ok, c.detail


def _without_realtime_privileges():
    """In the child before exec: rtprio limit 0 and CAP_SYS_NICE out of the bounding set."""
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    PR_CAPBSET_DROP, CAP_SYS_NICE = 24, 23
    if ctypes.CDLL(None, use_errno=True).prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_SYS_NICE)")


def test_doctor_realtime_with_and_without():
    if os.geteuid() != 0:
        c = doctor.check_realtime()
        assert c.ok or "audio" in c.fix
        resources.machine_lacks("needs root to compare a privileged and an unprivileged user")
    assert doctor.check_realtime().ok
    # without CAP_SYS_NICE and with an rtprio limit of 0 (an ordinary user's lot) SCHED_FIFO is refused
    code = "from nextblock import doctor; import json; print(json.dumps(doctor.check_realtime().__dict__))"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_without_realtime_privileges,
    )
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert not c["ok"] and "SCHED_FIFO not permitted" in c["detail"] and "usermod -aG audio" in c["fix"]


def test_doctor_command_reports_each_check_and_its_exit_status(tmp_path):
    env = dict(os.environ, NEXTBLOCK_JACKTRIP=str(tmp_path / "missing"))
    r = _run("doctor", env=env)
    assert r.returncode == 1
    assert "FAIL  patched JackTrip" in r.stdout and "fix: nextblock build-jacktrip" in r.stdout
    for name in ("JACK", "model", "real-time", "shared memory"):
        assert f"  {name}" in r.stdout
    r = _run("doctor", "--json", env=env)
    report = json.loads(r.stdout)
    assert report["ready"] is False and [c["name"] for c in report["checks"]] == [
        "JACK",
        "patched JackTrip",
        "model",
        "real-time",
        "shared memory",
    ]
    assert r.returncode == (0 if report["ready"] else 1)


# ----------------------------------------------------------------------------- nextblock jacktrip
def test_jacktrip_arguments_are_split_between_jacktrip_and_nextblock():
    jt, nb = jacktrip_command.split_args(
        ["-c", "host", "--nb-stats", "2", "-q", "4", "--nb-model=m.tflite", "--nb-realtime"]
    )
    assert jt == ["-c", "host", "-q", "4"] and nb == ["--stats", "2", "--model", "m.tflite", "--realtime"]
    with pytest.raises(ValueError, match="--nb-stats needs a value"):
        jacktrip_command.split_args(["--nb-stats"])
    with pytest.raises(ValueError, match="unknown option --nb-foo"):
        jacktrip_command.split_args(["--nb-foo", "1"])


FAKE_JACKTRIP = textwrap.dedent('''\
    #!{python}
    """A stand-in patched JackTrip: records its arguments, makes /nextblock-<PID>, plays until SIGTERM."""
    import json, os, signal, sys, time
    import numpy as np
    from nextblock.capture import Producer
    out = {out!r}
    done = []
    signal.signal(signal.SIGTERM, lambda *a: done.append("SIGTERM"))
    with Producer(os.getpid(), 48000, 128, 1) as p:
        seq = 0
        while not done:
            p.publish_block(seq, np.zeros((128, 1), np.float32))
            seq += 1
            time.sleep(128 / 48000)
    json.dump({{"argv": sys.argv[1:], "stopped_by": done[0]}}, open(out, "w"))
''')


def _children_with_cmdline(parent: int, fragment: str) -> list[int]:
    """PIDs of ``parent``'s children whose command line contains ``fragment`` (only ours: other
    jobs on the machine may run JackTrip or attach too)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                status = Path(f"/proc/{d}/status").read_text()
                ppid = int(status.split("PPid:", 1)[1].split()[0])
                cmdline = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent and fragment in cmdline:
                pids.append(int(d))
    return pids


def test_nextblock_jacktrip_starts_both_and_ctrl_c_stops_both(tmp_path):
    fake = tmp_path / "jacktrip"
    fake.write_text(FAKE_JACKTRIP.format(python=sys.executable, out=str(tmp_path / "fake.json")))
    fake.chmod(0o755)
    stats = tmp_path / "attach.json"
    env = dict(os.environ, NEXTBLOCK_JACKTRIP=str(fake))
    log = open(tmp_path / "out.log", "w")
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nextblock.cli",
            "jacktrip",
            "-s",
            "--bufstrategy",
            "3",
            "--nb-json",
            str(stats),
            "--nb-stats",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "serving /nextblock-" not in (tmp_path / "out.log").read_text():
            assert p.poll() is None, (tmp_path / "out.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "out.log").read_text()
            time.sleep(0.2)
        attach_pids = _children_with_cmdline(p.pid, "nextblock.attach --jacktrip-pid")
        fake_pids = _children_with_cmdline(p.pid, str(fake))
        assert len(attach_pids) == 1 and len(fake_pids) == 1
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
    text = (tmp_path / "out.log").read_text()
    fake_run = json.loads((tmp_path / "fake.json").read_text())
    assert fake_run == {"argv": ["--nextblock", "-s", "--bufstrategy", "3"], "stopped_by": "SIGTERM"}
    assert "SIGINT: stopped NextBlock and JackTrip" in text
    assert json.loads(stats.read_text())["blocks"] > 0  # attach wrote its final statistics
    assert not any(process_running(pid) for pid in attach_pids + fake_pids)


def test_nextblock_jacktrip_without_the_patched_build_says_how_to_get_it(tmp_path):
    env = dict(os.environ, NEXTBLOCK_JACKTRIP=str(tmp_path / "missing"))
    r = _run("jacktrip", "-s", env=env)
    assert r.returncode == 2 and "not an executable" in r.stderr and "nextblock build-jacktrip" in r.stderr


@pytest.mark.slow
@pytest.mark.jacktrip
def test_nextblock_jacktrip_runs_the_real_patched_jacktrip(tmp_path):
    """A patched JackTrip p2p server via ``nextblock jacktrip``, a client connecting to it: NextBlock
    attaches once audio flows; Ctrl-C stops NextBlock and JackTrip."""
    from nextblock.jackio.jackd import JackdServer
    from nextblock.jackio.patched_build import find_patched_jacktrip, find_stock_jacktrip
    from nextblock.jackio.procs import ManagedProcess
    from nextblock.netlab.link import free_udp_port

    patched, message = find_patched_jacktrip()
    if patched is None:
        resources.needs("patched JackTrip", message)
    if shutil.which("jackd") is None:
        resources.needs("jackd", "apt-get install jackd2")
    port = free_udp_port()
    with JackdServer("s", tmp_path, 48000, 128) as js, JackdServer("c", tmp_path, 48000, 128) as jc:
        env = dict(os.environ, **js.client_env())
        log = open(tmp_path / "nextblock-jacktrip.log", "w")
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nextblock.cli",
                "jacktrip",
                "-s",
                "-B",
                str(port),
                "-n",
                "1",
                "--bufstrategy",
                "3",
                "-q",
                "11",
                "--nb-json",
                str(tmp_path / "attach.json"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with ManagedProcess(
                [
                    find_stock_jacktrip(patched)[0],
                    "-c",
                    "127.0.0.1",
                    "-P",
                    str(port),
                    "-B",
                    str(free_udp_port()),
                    "-n",
                    "1",
                    "-q",
                    "11",
                    "--bufstrategy",
                    "3",
                ],
                tmp_path / "client.log",
                env=jc.client_env(),
            ):
                deadline = time.monotonic() + 60
                while "serving /nextblock-" not in (tmp_path / "nextblock-jacktrip.log").read_text():
                    assert p.poll() is None, (tmp_path / "nextblock-jacktrip.log").read_text()
                    assert time.monotonic() < deadline, (tmp_path / "nextblock-jacktrip.log").read_text()
                    time.sleep(0.2)
                jt_pids = _children_with_cmdline(p.pid, f"{patched} --nextblock -s")
                attach_pids = _children_with_cmdline(p.pid, "nextblock.attach --jacktrip-pid")
                assert len(jt_pids) == 1 and len(attach_pids) == 1
                time.sleep(2.0)
                p.send_signal(signal.SIGINT)
                assert p.wait(30) == 0, (tmp_path / "nextblock-jacktrip.log").read_text()
        finally:
            if p.poll() is None:
                p.kill()
    assert not any(process_running(pid) for pid in jt_pids + attach_pids)
    assert json.loads((tmp_path / "attach.json").read_text())["blocks"] > 0
