"""``nextblock attach``: the command line of :mod:`nextblock.attach` (options, help, exit status).

Exit status: 0 after SIGINT/SIGTERM or ``--duration``; 2 for a user error (bad option, no such
process, not a patched JackTrip, protocol mismatch, incompatible or unreadable model) with a
one-line message; 3 when JackTrip went away and ``--once`` was given (or it did not come back
within ``--reattach-timeout``).
"""

from __future__ import annotations

import argparse

from nextblock.argtypes import number_in

EPILOG = """\
examples:
  # every stream of a running patched JackTrip (a hub server: one per client), status every 2 s
  python -m nextblock.attach --jacktrip-pid $(pgrep -n jacktrip) --realtime --stats 2

  # a published, online-learned model, hot-swapped as new versions appear; final stats as JSON
  python -m nextblock.attach --jacktrip-pid 4242 --model-dir ~/.cache/nextblock/models/live --json stats.json

  # without JackTrip: the stand-in plays a hub with 4 clients and 2 blocks of headroom (see its --help)
  python -m nextblock.lab.emulator --streams 4 --headroom-blocks 2 --jitter-us 300 --seconds 20 &
  python -m nextblock.attach --jacktrip-pid $! --stats 1 --once

when it predicts (--mode, per stream, shown in --stats and --json):
  just-in-time  JackTrip writes a play-out clock and blocks arrive with headroom: a block is predicted
                only when it has not arrived shortly before it is due. NextBlock sleeps until JackTrip,
                at a pull, finds an upcoming block missing: no wake-up while every block arrives, the
                model runs only for losses (on a hub with many losses per pull it wakes before every
                block period instead, see --jit-wake)
  speculative   no clock or no headroom: the next block is predicted after every received block

status lines (--stats): a totals line, then one line per stream
  streams     streams served (jit: how many just-in-time)      blocks     blocks received
  underruns   blocks JackTrip had to conceal                    replaced   ...with our block
  fallback    ...with its own concealment                       late       predictions past their deadline (not posted)
  skipped     predictions not started: deadline too close (CPU overload; JackTrip's fallback plays)
  predictions model rows per stream; batches: model calls      infer_us   model time median/p99
  two_sided   replacements filled from both sides (--lookahead): the block after the gap had arrived
  one_sided   the other replacements, by why: no later block in time / burst over 4 blocks / too late

--json: the totals (same keys as for one stream), cpu_share (of one core, this process), wakes per
second, and "streams": one object per stream served (name, peer, local_port, frames_per_block,
sample_rate_hz, channels, model_choice, mode, underruns, replacements_used, fallbacks, refused,
predictions, ...). Each stream is served at its own block size and rate (a hub's clients choose
their own): the first geometry's model stack is built at start, each other one when its first
stream joins (off the loop; JackTrip's own concealment plays until it is ready); model_choice says
which model serves the stream and how.
Each fallback is explained: fallbacks_late (predicted after its deadline), fallbacks_skipped (not
started, too little time), fallbacks_unseen (never known missing in time: a late wake-up, a block
that came late), fallbacks_after_post (posted in time, not played: 0 when the timing is right), and
those nothing could replace: fallbacks_before_attach (before the stream was served), fallbacks_outage
(beyond --max-chain blocks after the newest received one), fallbacks_dropped_received (the Regulator
dropped a block that had arrived, with the lost one after it, before that loss could be known);
fallback_trace: what the schedule knew about each (the first and the newest 32). two_sided_share: the concealments played with a two-sided replacement;
one_sided_no_later_block, one_sided_burst_too_long, one_sided_too_late: why the other replacements
were causal only.

exit status: 0 stopped (signal or --duration), 2 usage or setup error, 3 JackTrip went away (--once)
"""


def _channels(text: str) -> tuple[int, ...] | None:
    """``all`` or a comma list of channel indices / ranges (``0,1`` ``0-3``)."""
    if text.strip().lower() == "all":
        return None
    out: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                out.update(range(lo, hi + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or channel numbers like 0,1 or 0-3, got {text!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"channel numbers must be >= 0, got {text!r}")
    return tuple(sorted(out))


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def build_parser(prog: str = "nextblock attach") -> argparse.ArgumentParser:
    """The command line (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Attach to a running patched JackTrip and keep NextBlock's prediction of the next block ready for "
        "every received channel, so that every underrun is concealed by the model instead of JackTrip's fallback.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_argument_group("what to attach to (one of)")
    target = where.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--jacktrip-pid",
        type=_positive(int),
        metavar="PID",
        help="process id of the patched JackTrip: every stream it receives is served (segments "
        "/nextblock-PID and, on a hub server, /nextblock-PID-PORT per client), as clients come and go",
    )
    target.add_argument(
        "--segment",
        metavar="NAME",
        help="segment name, for producers made with nextblock.capture.Producer (tests, demo)",
    )
    model = p.add_argument_group("model")
    model.add_argument("--model", metavar="PATH", help="TFLite model (default: the shipped model)")
    model.add_argument(
        "--model-dir",
        metavar="DIR",
        help="watch this publishing directory (docs/model_publishing.md) and hot-swap each new "
        "version; its current model is used from the start when there is one",
    )
    model.add_argument(
        "--threads",
        type=_positive(int),
        default=1,
        metavar="N",
        help="LiteRT inference threads (default 1: on 2 cores a second busy thread hurts tails)",
    )
    model.add_argument(
        "--predictor",
        choices=("model", "repeat"),
        default="model",
        help="'model' (default) or 'repeat': repeat the newest block, no model needed (tests, demo)",
    )
    run = p.add_argument_group("behaviour")
    run.add_argument(
        "--channels",
        type=_channels,
        default=None,
        metavar="LIST",
        help="channels the model predicts, e.g. 0,1 or 0-3 (default: all); the others repeat their newest block",
    )
    run.add_argument(
        "--deadline-us",
        type=_positive(float),
        metavar="US",
        help="post a replacement within this long after the previous block arrived, else skip it "
        "(default: one block period, 2667 us at 128 frames / 48 kHz)",
    )
    run.add_argument(
        "--max-chain",
        type=int,
        default=8,
        metavar="BLOCKS",
        help="predict up to this many blocks into a burst of losses, each from the previous guess "
        "(default 8; 0 disables)",
    )
    run.add_argument(
        "--mode",
        choices=("auto", "just-in-time", "speculative"),
        default="auto",
        help="when to predict: 'just-in-time' predicts only a block that has not arrived shortly before "
        "JackTrip plays it (needs JackTrip's play-out clock and a jitter buffer with headroom); "
        "'speculative' predicts after every received block (minimum-latency buffers); 'auto' (default) "
        "chooses per stream from the measured headroom and reports it in --stats/--json",
    )
    run.add_argument(
        "--jit-wake",
        choices=("auto", "missing", "timed"),
        default="auto",
        help="how just-in-time streams wait: 'missing' sleeps until JackTrip reports an upcoming block "
        "missing (the segment's missing-block wake; no wake-up while blocks arrive); 'timed' wakes before "
        "every block period, all streams' decisions aligned into one batch, with more room before the "
        "deadline (about 1 %% of a core per process here); 'auto' (default): missing while losses at the "
        "same pull are rare, timed on a busy hub where the losses pay for the wake-ups anyway "
        "(reported as jit_wake in --json)",
    )
    run.add_argument(
        "--keep-warm",
        choices=("auto", "on", "off"),
        default="auto",
        help="a prediction that runs only for a loss runs cold (after tens of ms asleep: 3-9x its warm "
        "time on a busy virtual machine) and may miss its deadline; 'auto' (default): once 2 of the last "
        "32 predictions missed, run a throw-away prediction every 4 ms when nothing else was predicted, "
        "for 10 s after the last misses (about a tenth of a core for the whole process, nothing on a "
        "machine where cold predictions are in time); 'on': always; 'off': never (reported as warmups, "
        "warmup_cpu_share, keep_warm_triggers in --json)",
    )
    run.add_argument(
        "--lookahead",
        choices=("auto", "off"),
        default="auto",
        help="auto (default): when the block after a missing one arrives before the missing one is "
        "played, fill the gap from both sides (past and that block) and re-post its replacement, "
        "whose second block is then the packet that arrived (JackTrip plays it without the "
        "recovery fade); bursts of up to 4 blocks are one gap. off: causal replacements only. "
        "two_sided_share in --json says how many concealments were two-sided, one_sided_* why "
        "the others were not",
    )
    run.add_argument(
        "--keep-warm-ms",
        type=_positive(float),
        default=4.0,
        metavar="MS",
        help="interval of --keep-warm's throw-away predictions (default 4)",
    )
    run.add_argument(
        "--batch-window-us",
        type=_positive(float),
        default=300.0,
        metavar="US",
        help="predictions of different streams due within this long go through the model together (default 300)",
    )
    run.add_argument(
        "--max-batch-rows",
        type=_positive(int),
        default=32,
        metavar="ROWS",
        help="largest model batch prepared (channels of all streams predicted together; default 32 = 16 "
        "stereo streams); larger batches run in several calls",
    )
    run.add_argument(
        "--wait-for-streams",
        action="store_true",
        help="with --jacktrip-pid: wait for the first stream instead of failing after 1 s (a hub server "
        "before its first client)",
    )
    run.add_argument(
        "--once", action="store_true", help="stop (exit 3) when JackTrip exits instead of waiting for it to restart"
    )
    run.add_argument(
        "--reattach-timeout",
        type=_positive(float),
        metavar="SECONDS",
        help="give up (exit 3) if JackTrip is not back within this long (default: wait forever)",
    )
    run.add_argument("--duration", type=_positive(float), metavar="SECONDS", help="stop after this long")
    run.add_argument(
        "--realtime",
        type=number_in(int, 1, 98, "a SCHED_FIFO priority"),
        nargs="?",
        const=0,
        default=None,
        metavar="PRIORITY",
        help="run the hot path with SCHED_FIFO (when permitted), always below JackTrip's real-time "
        "threads so that it never preempts JackTrip's audio callback: one below the lowest of them "
        "(JACK runs client callbacks at its own priority - 5, so 4 under a default jackd), or PRIORITY "
        "(1-98) if that is lower; normal priority when JackTrip has no real-time thread",
    )
    run.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="let Python's garbage collector walk every object as usual (a full collection stops the "
        "loop ~10 ms, longer than a decision's lead); by default everything alive once serving starts is "
        "exempted from collections. For measurements (gc_collections, gc_max_pause_us in --json)",
    )
    out = p.add_argument_group("reporting")
    out.add_argument("--stats", type=_positive(float), metavar="SECONDS", help="print a status line this often")
    out.add_argument("--json", metavar="FILE", help="write the final statistics as JSON to FILE ('-': stdout)")
    out.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log verbosity (default info)",
    )
    return p


def main(argv: list[str] | None = None, prog: str = "nextblock attach") -> int:
    """Entry point; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    from nextblock import attach

    return attach.run(args)
