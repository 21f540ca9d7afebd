"""``python -m nextblock.netlab``: which lossy-link paths this machine supports (JSON).

Checks root/iproute2 (namespaces), nftables, netem (probed inside a throw-away namespace of
ours, removed again), JackTrip's version and ``--simloss``, jackd and the JACK-Client module.
``--stale`` / ``--remove-stale`` find what a SIGKILLed run left behind (only NextBlock-marked
namespaces and processes whose owner PID is dead).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from nextblock.processes import process_running


def probe() -> dict:
    from nextblock.jackio.jacktrip import jacktrip_version
    from nextblock.jackio.playrec import jack_client_available

    from .netem import netem_available
    from .netns import NetnsPair, netns_available
    from .nft_loss import nft_available

    ns_ok, ns_why = netns_available()
    out = {"netns": {"ok": ns_ok, "why": ns_why}}
    nft_ok, nft_why = nft_available()
    out["nft"] = {"ok": nft_ok and ns_ok, "why": nft_why if not nft_ok else ns_why}
    if ns_ok:
        with NetnsPair() as pair:
            ok, why = netem_available(pair.client_ns)
    else:
        ok, why = False, ns_why
    out["netem"] = {"ok": ok, "why": why}
    out["relay"] = {"ok": True, "why": "pure Python (loopback, or inside our namespaces)"}
    version = jacktrip_version()
    help_text = ""
    if version:
        help_text = subprocess.run(["jacktrip", "--help"], capture_output=True, text=True, timeout=10).stdout
    out["simloss"] = {"ok": "--simloss" in help_text, "why": f"jacktrip {version}" if version else "jacktrip missing"}
    out["jackd"] = {"ok": shutil.which("jackd") is not None, "why": "apt-get install jackd2"}
    jc_ok, jc_why = jack_client_available()
    out["jack_client"] = {"ok": jc_ok, "why": jc_why}
    out["auto_method"] = "netem" if out["netem"]["ok"] else "relay"
    return out


def stale(remove: bool = False) -> dict:
    """Namespaces (``nb<pid>-<n>-c|s``) and marked processes (``NEXTBLOCK_OWNER=<pid>``) whose
    owner PID is dead — left behind by a run killed with SIGKILL. Removed only with ``remove``."""
    from nextblock.jackio.procs import OWNER_ENV

    out = {"namespaces": [], "processes": []}
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"nb(\d+)-\d+-[cs]", name)
        if m and not process_running(int(m.group(1))):
            out["namespaces"].append(name)
            if remove:
                subprocess.run(["ip", "netns", "del", name], check=False)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        owner = [e.split(b"=", 1)[1] for e in env if e.startswith(OWNER_ENV.encode() + b"=")]
        if owner and owner[0].isdigit() and not process_running(int(owner[0])):
            out["processes"].append(int(entry.name))
            if remove:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    pass
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nextblock.netlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--stale",
        action="store_true",
        help="list namespaces/processes left by a NextBlock run that was SIGKILLed (owner PID dead)",
    )
    p.add_argument("--remove-stale", action="store_true", help="like --stale, and delete/kill them")
    args = p.parse_args(argv)
    if args.stale or args.remove_stale:
        print(json.dumps(stale(remove=args.remove_stale), indent=1))
        return 0
    print(json.dumps(probe(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
