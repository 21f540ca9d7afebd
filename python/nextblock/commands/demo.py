"""``nextblock demo``: the command line of :mod:`nextblock.demo` (whose docstring is the help's description)."""

from __future__ import annotations

import argparse

from nextblock import demo
from nextblock.argtypes import number_in
from nextblock.packetloss import loss_argument

EPILOG = """\
examples:
  nextblock demo                                  # 8 s, 5 % random loss, seed 1
  nextblock demo --loss gilbert:0.02,0.3          # Gilbert-Elliott bursts (mean burst 3.3 packets)
  nextblock demo --loss bernoulli:0.1 --seconds 20 --seed 7    # 10 % random loss (= bernoulli:10%)
  nextblock demo --build-jacktrip                 # build the patched JackTrip first (~10 min), then run on it
  nextblock demo --stand-in                       # the stand-in even when the patched JackTrip is built
  nextblock demo --nextblock-on ringbuffer        # NextBlock on JackTrip's ring buffer (silence when late)

loss specs (the same in every nextblock command; probabilities from 0 to 1, packets of 128 samples):
  none | bernoulli:P (or bernoulli:PERCENT%) | gilbert:P_ENTER,P_LEAVE[,LOSS_BAD[,LOSS_GOOD]] | trace:PATH |
  periodic:EVERY[,BURST] | list:I,J,...
link methods (patched JackTrip only): auto | relay | nft | netem | simloss | none

Columns: lost = packets lost on the link; concealed = blocks the receiver had to make up; by NextBlock =
of those, how many played NextBlock's prediction; two-sided = of those, how many were filled from both
sides (the packet after the loss had arrived: --lookahead auto); SNR / LSD on the lost packets (higher / lower is
better) and ViSQOL MOS (1-5) of the whole recording, all against the sent audio.
"""


def build_parser(prog: str = "nextblock demo") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=demo.__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--seconds",
        type=number_in(float, 2.0, 600.0, "--seconds"),
        default=8.0,
        help="length of the recording played (default 8)",
    )
    p.add_argument(
        "--loss",
        type=loss_argument,
        default="bernoulli:0.05",
        help="packet loss on the way to the receiver (default bernoulli:0.05: 5 %%; specs below)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the losses (same seed = same lost packets)")
    p.add_argument(
        "--out", default="out/demo", help="folder for the WAVs, logs, plots and report.json (default out/demo)"
    )
    p.add_argument(
        "--nextblock-on",
        choices=("regulator", "ringbuffer"),
        default="regulator",
        help="JackTrip buffer NextBlock runs on: the Regulator (Burg when a prediction is late; default) "
        "or the ring buffer (--bufstrategy -1 -z: silence when late)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--build-jacktrip",
        action="store_true",
        help="build the patched JackTrip first when it is not built yet (~10 min on 2 cores)",
    )
    mode.add_argument(
        "--stand-in", action="store_true", help="use the stand-in producer even when the patched JackTrip is built"
    )
    link = p.add_argument_group("link (patched JackTrip only)")
    link.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay added by the relay")
    link.add_argument("--jitter-ms", type=float, default=0.0, help="extra uniform delay in [0, jitter] ms")
    link.add_argument("--method", default="auto", help="how packets are lost (default auto: the seeded relay)")
    link.add_argument(
        "--topology",
        default="auto",
        choices=("auto", "netns", "loopback"),
        help="network namespaces (root) or loopback (default auto)",
    )
    link.add_argument(
        "--queue",
        type=int,
        default=4,
        help="JackTrip's jitter buffer in packets for the default "
        "and ring-buffer runs (-q, default 4; the Regulator runs get -q 11, in ms: about 4 packets)",
    )
    p.add_argument("--no-install", action="store_true", help="do not apt/pip install missing dependencies")
    return p


def main(argv: list[str] | None = None, prog: str = "nextblock demo") -> int:
    """Entry point; returns the exit status."""
    return demo.run(build_parser(prog).parse_args(argv))
