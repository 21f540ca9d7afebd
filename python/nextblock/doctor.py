"""``nextblock doctor``: is this machine ready to play with NextBlock? Each problem comes with its fix.

Checks, in the order a live session needs them:

1. **JACK** – ``jackd`` on ``PATH`` and ``libjack`` loadable by Python (``JACK-Client``);
2. **patched JackTrip** – JackTrip 2.7.2 built with NextBlock's patch (``--nextblock``);
3. **model** – the shipped model loads in LiteRT and predicts finite audio for one block;
4. **real-time** – this user may run threads with ``SCHED_FIFO`` (JACK and JackTrip's audio
   threads, ``nextblock attach --realtime``) and lock memory;
5. **shared memory** – ``/dev/shm`` takes a NextBlock segment: create one, attach to it, post
   and take one replacement.

Exit status: 0 when everything is ready, 1 when something is missing (each printed with ``fix:``).
``--json`` prints the results as one JSON object instead.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass


def pip_install(what: str) -> str:
    """The fix ``pip install WHAT`` for this interpreter: its own pip (``python -m pip``) inside a
    virtual environment; outside one, the way into one (Debian's and Ubuntu's python3 refuse pip
    installs into the system, PEP 668)."""
    if sys.prefix != sys.base_prefix:
        return f"{sys.executable} -m pip install {what}"
    return (
        f"pip install {what} in a virtual environment (python3 -m venv .venv && .venv/bin/python -m pip install "
        f"{what}; in NextBlock's repository scripts/setup.sh makes .venv)"
    )


@dataclass
class Check:
    """One result: ``ok``, what was found (``detail``) and, when not ok, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_jack(path: str | None = None) -> Check:
    """``jackd`` on ``path`` (default ``$PATH``) and the Python binding with its libjack."""
    if shutil.which("jackd", path=path) is None:
        return Check(
            "JACK",
            False,
            "jackd not found",
            "sudo apt-get install jackd2   (answer 'no' to real-time if asked; see `real-time` below)",
        )
    try:
        import jack  # noqa: F401
    except ImportError:
        return Check(
            "JACK", False, "jackd found, but the Python package JACK-Client is missing", pip_install("JACK-Client")
        )
    except OSError as exc:
        return Check(
            "JACK", False, f"jackd found, but libjack does not load: {exc}", "sudo apt-get install libjack-jackd2-0"
        )
    return Check("JACK", True, f"jackd at {shutil.which('jackd', path=path)}, libjack loads")


def check_patched_jacktrip() -> Check:
    """The patched JackTrip, without building it."""
    from nextblock.jackio.patched_build import find_patched_jacktrip

    path, message = find_patched_jacktrip()
    if path:
        return Check("patched JackTrip", True, message)
    return Check(
        "patched JackTrip",
        False,
        message,
        "nextblock build-jacktrip   (~10 min on 2 cores; --tarball PATH for JackTrip's 2.7.2 release "
        "tarball, or NEXTBLOCK_JACKTRIP=/path/to/patched/jacktrip)",
    )


def check_model(model_path: str | None = None) -> Check:
    """Load the model (default: the shipped one) in LiteRT and predict one block from noise."""
    try:
        import numpy as np

        from nextblock.runtime.predictors import load_model_predictor
    except ImportError as exc:
        return Check("model", False, f"cannot import the runtime: {exc}", pip_install("-e .") + "  (in the repository)")
    try:
        predictor = load_model_predictor(model_path)
        context = np.random.default_rng(0).standard_normal((1, predictor.context_samples)).astype(np.float32) * 0.1
        out = np.asarray(predictor.predict(context))
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return Check(
            "model",
            False,
            f"{model_path or 'the shipped model'} does not run: {type(exc).__name__}: {exc}",
            pip_install("ai-edge-litert") + ", and reinstall NextBlock (pip install -e . or the wheel) so "
            "its models/*.tflite is there; or pass nextblock attach --model PATH",
        )
    if not np.all(np.isfinite(out)):
        return Check("model", False, "the model predicts non-finite samples", "reinstall NextBlock's models/")
    name = getattr(predictor, "model_path", None) or model_path or "shipped model"
    return Check("model", True, f"{name}: predicts {out.shape} from {predictor.context_samples} samples of context")


def check_realtime() -> Check:
    """Whether this process may use SCHED_FIFO (tried at priority 1, then undone) and lock memory."""
    import resource

    try:
        before = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        os.sched_setscheduler(0, before[0], before[1])
    except (PermissionError, OSError) as exc:
        rtprio = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
        return Check(
            "real-time",
            False,
            f"SCHED_FIFO not permitted ({exc.strerror or exc}; rtprio limit {rtprio})",
            "sudo dpkg-reconfigure -p high jackd2 (enable real-time), add yourself to the 'audio' group "
            "(sudo usermod -aG audio $USER) and log in again; JackTrip and NextBlock then get real-time "
            "threads (without it, audio may drop out on a busy machine)",
        )
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    lock = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"
    return Check("real-time", True, f"SCHED_FIFO permitted; memlock limit {lock}")


def check_shared_memory(shm_dir: str = "/dev/shm") -> Check:
    """``shm_dir`` exists and is writable, and a NextBlock segment works end to end there."""
    if not os.path.isdir(shm_dir) or not os.access(shm_dir, os.W_OK):
        return Check(
            "shared memory",
            False,
            f"{shm_dir} is missing or not writable",
            f"sudo mount -t tmpfs -o mode=1777 tmpfs {shm_dir}",
        )
    try:
        import numpy as np

        from nextblock.capture import Consumer, Producer

        name = f"/nextblock-doctor-{os.getpid()}"
        with Producer(name, 48000, 128, 2) as producer:
            with Consumer(name, post_replacements=True) as consumer:
                block = np.full((2, 128, 2), 0.25, np.float32)
                consumer.post_replacement(7, block)
                taken = producer.take_replacement(7)
        if taken is None or not np.array_equal(np.asarray(taken), block):
            return Check(
                "shared memory",
                False,
                "a replacement posted to a test segment did not come back intact",
                "rebuild the C++ extension: pip install -e . (or scripts/dev_build.sh)",
            )
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return Check(
            "shared memory",
            False,
            f"a test segment failed: {type(exc).__name__}: {exc}",
            "rebuild the C++ extension (pip install -e .); check free space with df -h /dev/shm",
        )
    free_mib = shutil.disk_usage(shm_dir).free // (1 << 20)
    return Check("shared memory", True, f"{shm_dir}: a test segment works ({free_mib} MiB free)")


def run_checks() -> list[Check]:
    return [check_jack(), check_patched_jacktrip(), check_model(), check_realtime(), check_shared_memory()]


def run(args) -> int:
    """Print every check (``args.json``: as one JSON object); 0 when all are ok, else 1."""
    checks = run_checks()
    ready = all(c.ok for c in checks)
    if args.json:
        print(json.dumps({"ready": ready, "checks": [asdict(c) for c in checks]}, indent=1))
    else:
        for c in checks:
            print(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<17}{c.detail}")
            if not c.ok:
                print(f"      {'':<17}fix: {c.fix}")
        print(
            "ready to play with NextBlock"
            if ready
            else f"{sum(not c.ok for c in checks)} problem(s): see the fixes above"
        )
    return 0 if ready else 1


if __name__ == "__main__":
    from nextblock.commands.doctor import main

    sys.exit(main(prog="python -m nextblock.doctor"))
