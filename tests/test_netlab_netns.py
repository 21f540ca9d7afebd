"""Network namespaces, veth, nftables loss and netem detection (needs root + iproute2).

All traffic stays between our two namespaces (10.213.K.0/30 on our own veth pair)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from nextblock.netlab.netem import netem_available
from nextblock.netlab.netns import (
    NetnsPair,
    list_our_namespaces,
    netns_available,
    run_in_netns,
)
from nextblock.netlab.nft_loss import NftLoss, nft_available

pytestmark = pytest.mark.network

ok, why = netns_available()
if not ok:
    pytest.skip(why, allow_module_level=True)


@pytest.fixture(autouse=True)
def no_namespace_left_behind():
    yield
    assert list_our_namespaces() == [], "a namespace of ours survived the test"


def _send_udp_burst(pair: NetnsPair, port: int, count: int) -> int:
    """Send ``count`` datagrams client ns → server ns, return how many arrived (bounded, ~5 s)."""
    receiver = (
        "import socket,sys\n"
        f"s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',{port})); s.settimeout(1.0)\n"
        "print('ready',flush=True); n=0\n"
        "while True:\n"
        "    try: s.recvfrom(2048); n+=1\n"
        "    except socket.timeout: break\n"
        "print(n)\n"
    )
    sender = (
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"for i in range({count}): s.sendto(b'x'*64,('{pair.server_ip}',{port})); time.sleep(0.0005)\n"
    )
    rx = subprocess.Popen(
        ["ip", "netns", "exec", pair.server_ns, sys.executable, "-c", receiver], stdout=subprocess.PIPE, text=True
    )
    try:
        assert rx.stdout.readline().strip() == "ready"
        run_in_netns(pair.client_ns, [sys.executable, "-c", sender], timeout_s=20)
        out, _ = rx.communicate(timeout=20)
        return int(out.strip().splitlines()[-1])
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()


def test_pair_connects_and_is_removed_even_on_error():
    with pytest.raises(RuntimeError, match="boom"):
        with NetnsPair() as pair:
            names = list_our_namespaces()
            assert pair.client_ns in names and pair.server_ns in names
            assert pair.ping_ok()
            assert pair.server_ip.startswith("10.213.") and pair.client_ip.startswith("10.213.")
            raise RuntimeError("boom")
    assert list_our_namespaces() == []


@pytest.mark.skipif(not nft_available()[0], reason=nft_available()[1])
def test_nft_loss_drops_about_the_requested_share_and_counts_it():
    with NetnsPair() as pair:
        with NftLoss(pair.server_ns, 5555, 30.0) as nft:
            arrived = _send_udp_burst(pair, 5555, 1000)
            dropped = nft.dropped_packets()
        assert arrived + dropped == 1000
        assert 220 < dropped < 380  # 30 % ± a wide margin (kernel PRNG, unseeded)
        # the rule is gone with the table: everything arrives again
        assert _send_udp_burst(pair, 5555, 200) == 200


def test_netem_detection_reports_a_reason():
    if shutil.which("tc") is None:
        pytest.skip("iproute2 tc missing")
    with NetnsPair() as pair:
        available, reason = netem_available(pair.client_ns)
        assert isinstance(available, bool) and reason
        if not available:
            assert "netem" in reason


def test_remnants_of_a_sigkilled_run_are_found_and_removed(tmp_path):
    """A run killed with SIGKILL cannot clean up; ``python -m nextblock.netlab --remove-stale`` can."""
    from nextblock.netlab.__main__ import stale

    script = (
        "import os, signal, sys\n"
        "from nextblock.netlab.netns import NetnsPair\n"
        "from nextblock.jackio.procs import ManagedProcess\n"
        "pair = NetnsPair().__enter__()\n"
        "child = ManagedProcess(['sleep', '60'], sys.argv[1]).start()\n"
        "print(pair.client_ns, pair.server_ns, child.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "sleep.log")],
        capture_output=True,
        text=True,
        timeout=30,
        env={**__import__("os").environ, "PYTHONPATH": ":".join(p for p in sys.path if p)},
    )
    client_ns, server_ns, pid = out.stdout.split()
    try:
        found = stale(remove=False)
        assert client_ns in found["namespaces"] and server_ns in found["namespaces"]
        assert int(pid) in found["processes"]
    finally:
        stale(remove=True)
    after = stale(remove=False)
    assert after == {"namespaces": [], "processes": []}
