"""``nextblock evaluate``: the command line of :mod:`nextblock.evaluate` (options, help, exit status)."""

from __future__ import annotations

import argparse
import textwrap

from nextblock.concealers import available_concealers

EPILOG = textwrap.dedent(
    """\
    how it works:
      Each file is read (any format libsndfile reads), resampled to --sample-rate and mixed to
      mono (or evaluated per channel). For every --loss spec one loss mask per file is drawn from
      --seed and applied to every --concealer, block by block, exactly as JackTrip's receiver:
      a lost block is replaced by the concealer's guess, made before the block was due, and real
      audio is cross-faded back in over the next block. Scores compare with the clean file on the
      lost blocks plus the cross-fade block after each run of losses.

    looking ahead (--lookahead-blocks H):
      A receive buffer H blocks deep: when a lost block is due, the blocks up to H after it that
      arrived are in the buffer, and nothing later. Two-sided concealers (lsar, nextblock) then
      fill the gap between the past and the next arrival (a burst of up to 4 blocks as one gap),
      ending exactly where it begins (no cross-fade); the others, and gaps with nothing in the
      buffer after them, are concealed causally. H = 0 (the default) is the causal harness.
      two_sided_share in the results: the lost blocks filled from both sides.

    loss specs:
      none                      no loss (every command reads these the same way: nextblock.packetloss)
      bernoulli:P               each block lost with probability P              bernoulli:0.05 (= bernoulli:5%)
      gilbert:P_ENTER,P_LEAVE   bursts; mean burst 1/P_LEAVE blocks             gilbert:0.02,0.25
        [,LOSS_BAD[,LOSS_GOOD]]   lost with LOSS_BAD (default 1) in a burst, LOSS_GOOD (0) between
      trace:PATH                0/1 per block (1 = lost), repeated to length    trace:loss.txt
      periodic:EVERY[,BURST]    BURST lost blocks every EVERY blocks            periodic:50,2
      list:I,J,...              exactly these blocks (0 = the first)            list:10,11,40

    concealers:
      zeros          silence (JackTrip --underrun-mode zeros)
      repeat         repeat the last received block (JackTrip wavetable)
      repeat-xfade   repeat, cross-faded back into real audio
      burg           JackTrip v2.7.2's Regulator Burg prediction
      ar128          order-128 Burg AR fitted to the last 10 blocks (PARCnet's linear part)
      lsar           two-sided least-squares AR(128) interpolation (with --lookahead-blocks; else ar128)
      ar-blend       two-sided: forward AR(128) faded into the backward one from the next block
      nextblock      the NextBlock CNN (--model PATH to a .tflite); with --lookahead-blocks, its
                     prediction fused with the LSAR interpolation where the next block is in hand

    results (--json): {"results": [one row per concealer and loss]} with concealer, loss, fpp,
      sample_rate, files, lost_blocks, snr_db, lsd_db, visqol, plcmos, thd_n_db,
      us_per_block_median, us_per_block_p99 (µs to conceal one lost block of one channel), ...
      Scores that cannot be computed are null (e.g. plcmos without --speech).

    examples:
      # the baselines on two clips, two loss patterns, JSON + markdown report with pictures
      python -m nextblock.evaluate speech.ogg music.flac --loss bernoulli:0.05 \\
          --loss gilbert:0.02,0.25 --concealer zeros --concealer repeat --concealer burg \\
          --json results.json --report report.md --plots plots/

      # a directory of speech, with PLCMOS, against the NextBlock model
      python -m nextblock.evaluate corpus/ --speech --concealer burg --concealer nextblock \\
          --model model.tflite --json results.json

      # by category (one folder per category), against JackTrip's Burg and the AR(128) baseline,
      # at 44.1 kHz and 256 frames (any block size from 16 to 1024 frames and rate the model serves)
      python -m nextblock.evaluate heldout/ --by-folder --sample-rate 44100 --fpp 256 \
          --concealer burg --concealer ar128 --concealer nextblock --no-visqol --json by-category.json

      # two-sided: the block after a loss is in the buffer (a buffer one block deep)
      python -m nextblock.evaluate heldout/ --by-folder --lookahead-blocks 1 --no-visqol \
          --concealer burg --concealer lsar --concealer nextblock --json two-sided.json

      # only the sine-sweep THD+N test, fast (no ViSQOL)
      python -m nextblock.evaluate --sine --no-visqol --loss bernoulli:0.1 --concealer burg \\
          --json sine.json
    """
)


def build_parser(prog: str = "nextblock evaluate") -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Score packet-loss concealers (zeros, repeat, Burg as in JackTrip, NextBlock) on audio files under seeded loss patterns.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", metavar="FILE_OR_DIR", help="audio files and/or directories (searched recursively)"
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=48000,
        metavar="HZ",
        help="stream sample rate; files are resampled (default: 48000)",
    )
    parser.add_argument(
        "--fpp",
        type=int,
        default=128,
        metavar="FRAMES",
        help="frames per packet/block, JackTrip's --bufsize (default: 128)",
    )
    parser.add_argument(
        "--loss",
        action="append",
        metavar="SPEC",
        help="loss pattern, repeatable (default: bernoulli:0.05); see 'loss specs' below",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the loss patterns (default: 1)")
    parser.add_argument(
        "--lookahead-blocks",
        type=int,
        default=0,
        metavar="H",
        help="blocks after a lost one that the receive buffer holds (default: 0, causal); see 'looking ahead'",
    )
    parser.add_argument(
        "--concealer",
        action="append",
        choices=available_concealers(),
        metavar="NAME",
        help=f"concealer, repeatable: {', '.join(available_concealers())} (default: zeros, repeat, repeat-xfade, burg)",
    )
    parser.add_argument("--model", metavar="PATH", help="model file for the nextblock concealer")
    parser.add_argument(
        "--two-sided-model",
        metavar="PATH",
        help="two-sided model the nextblock concealer fills one-block gaps with when --lookahead-blocks "
        ">= 1 (default: the shipped nextblock-twosided; compare with --concealer nextblock-fusion)",
    )
    parser.add_argument(
        "--per-channel", action="store_true", help="evaluate every channel as its own stream instead of mixing to mono"
    )
    parser.add_argument(
        "--by-folder",
        action="store_true",
        help="also one row per folder the files lie in (e.g. held-out/speech, held-out/singing: a table by category)",
    )
    parser.add_argument("--speech", action="store_true", help="the material is speech: also compute PLCMOS (16 kHz)")
    parser.add_argument(
        "--no-visqol",
        dest="visqol",
        action="store_false",
        help="skip ViSQOL (it takes about a second per second of audio)",
    )
    parser.add_argument(
        "--sine",
        action="store_true",
        help="also run a 20 Hz-20 kHz log sine sweep through each loss pattern and report THD+N",
    )
    parser.add_argument(
        "--sine-seconds", type=float, default=10.0, metavar="S", help="length of the sweep (default: 10)"
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--report", metavar="PATH", help="write a markdown report")
    parser.add_argument("--plots", metavar="DIR", help="write waveform and spectrogram pictures around a few losses")
    parser.add_argument(
        "--plot-files", type=int, default=2, metavar="N", help="how many files get pictures (default: 2)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None, prog: str = "nextblock evaluate") -> int:
    """Entry point; returns the exit status (0 ok, 1 nothing or not everything evaluated, 2 bad arguments)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not args.paths and not args.sine:
        parser.error("give audio files or directories, or --sine")
    from nextblock import evaluate

    return evaluate.run(args)
