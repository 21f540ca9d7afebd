"""Random packet loss with nftables inside one of our namespaces (kernel path, unseeded).

Adds, inside ``netns``::

    table inet nextblock_loss {
        chain input { type filter hook input priority 0; policy accept;
            udp dport PORT numgen random mod 10000 < N counter drop } }

with ``N = loss_percent * 100`` (0.01 % resolution). The kernel's PRNG is not seeded, so
runs differ; the rule's counter says how many datagrams were dropped (:meth:`dropped_packets`),
but not which — use the relay when exact, seeded positions matter. Removing the namespace
removes the table; :meth:`close` deletes it explicitly anyway.
"""

from __future__ import annotations

import json
import shutil

from .netns import run_in_netns

__all__ = ["NftLoss", "nft_available"]

TABLE = "nextblock_loss"


def nft_available() -> tuple[bool, str]:
    if shutil.which("nft") is None:
        return False, "nftables 'nft' not found (apt-get install nftables)"
    return True, "ok"


class NftLoss:
    """Drop ``loss_percent`` % of UDP datagrams to ``dport`` arriving in ``netns`` (context manager)."""

    def __init__(self, netns: str, dport: int, loss_percent: float):
        ok, why = nft_available()
        if not ok:
            raise RuntimeError(why)
        if not 0.0 <= loss_percent <= 100.0:
            raise ValueError(f"loss_percent must be in [0, 100], got {loss_percent}")
        self.netns, self.dport, self.loss_percent = netns, int(dport), loss_percent
        self.threshold = int(round(loss_percent * 100))

    def ruleset(self) -> str:
        return (
            f"table inet {TABLE} {{\n"
            f"  chain input {{\n"
            f"    type filter hook input priority 0; policy accept;\n"
            f"    udp dport {self.dport} numgen random mod 10000 < {self.threshold} counter drop\n"
            f"  }}\n"
            f"}}\n"
        )

    def __enter__(self) -> NftLoss:
        import subprocess

        out = subprocess.run(
            ["ip", "netns", "exec", self.netns, "nft", "-f", "-"],
            input=self.ruleset(),
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode != 0:
            raise RuntimeError(f"nft rules in {self.netns} failed: {out.stderr.strip()}")
        return self

    def dropped_packets(self) -> int:
        """Datagrams dropped so far (the rule's counter)."""
        out = run_in_netns(self.netns, ["nft", "-j", "list", "table", "inet", TABLE])
        for item in json.loads(out.stdout).get("nftables", []):
            rule = item.get("rule")
            if not rule:
                continue
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
        raise RuntimeError("nft loss rule counter not found")

    def close(self) -> None:
        run_in_netns(self.netns, ["nft", "delete", "table", "inet", TABLE], check=False)

    def __exit__(self, *exc) -> None:
        self.close()
