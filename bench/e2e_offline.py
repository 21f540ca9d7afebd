"""Live against offline on the same audio and the same losses: is a live gap the model's or the path's?

``bench/e2e.py`` writes, per loss pattern, the sent audio and every receiver's aligned recording
(``--out`` folder: ``<pattern>/sent.wav``, ``<pattern>/recorded-<receiver>.wav``). This replays
the sent audio through the offline harness's concealers (``nextblock.evaluation.simulate``:
JackTrip's Burg, AR(128), NextBlock) with the blocks lost that the live run lost, and prints
their lost-packet SNR / LSD and ViSQOL, beside the live recordings' ViSQOL. The lost
blocks are read off the ``patched-fallback-zeros`` recording (the patched JackTrip playing
silence for exactly the lost blocks), so that receiver must be in the run.

If a concealer scores well offline and badly live on the same losses, the difference is in the
live path (timing, splicing, the buffer), not in the predictions.

    PYTHONPATH=python python bench/e2e.py --quick --pattern bernoulli-10 --fallback regulator --out out/e2e
    PYTHONPATH=python python bench/e2e_offline.py out/e2e/bernoulli-10
    PYTHONPATH=python python bench/e2e_offline.py out/e2e/bernoulli-10 --lookahead-blocks 1 --concealers burg,lsar,nextblock

The last output line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

ZEROS_RECEIVER = "patched-fallback-zeros"


def lost_blocks(sent: np.ndarray, zeros: np.ndarray, frames: int) -> np.ndarray:
    """``(n_blocks,)`` bool: blocks the zeros receiver played as digital silence where the sent
    audio was not silent (the relay's losses at their audio positions)."""
    n_blocks = -(-sent.shape[0] // frames)
    lost = np.zeros(n_blocks, bool)
    for b in range(n_blocks):
        played, sent_b = zeros[b * frames : (b + 1) * frames], sent[b * frames : (b + 1) * frames]
        lost[b] = played.size > 0 and np.max(np.abs(played)) < 1e-6 and np.max(np.abs(sent_b)) > 1e-3
    return lost


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", type=Path, help="one pattern's folder of a bench/e2e.py --out run")
    p.add_argument("--frames", type=int, default=128, help="block size of the run (default %(default)s)")
    p.add_argument(
        "--concealers",
        default="burg,ar128,nextblock",
        help="offline concealers (default %(default)s; lsar and ar-blend are the two-sided baselines)",
    )
    p.add_argument(
        "--lookahead-blocks",
        type=int,
        default=0,
        metavar="H",
        help="blocks after a lost one the receive buffer holds, as nextblock evaluate's option: two-sided "
        "concealers (lsar, nextblock) fill the gap before the next arrival (default %(default)s: causal)",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[LABEL=]PATH",
        help="also score NextBlock with this model file (repeatable), e.g. the previous version: "
        "git show REV:models/nextblock-default.tflite > /tmp/old.tflite; --model old=/tmp/old.tflite",
    )
    args = p.parse_args(argv)

    import soundfile as sf

    from nextblock.concealers import make_concealer
    from nextblock.evaluation.metrics import lsd_db, snr_db
    from nextblock.evaluation.perceptual import visqol_mos
    from nextblock.evaluation.simulate import conceal_stream

    def mono(path: Path) -> tuple[np.ndarray, int]:
        x, rate = sf.read(path, dtype="float32")
        return (x[:, 0] if x.ndim > 1 else x), rate

    sent_path, zeros_path = args.folder / "sent.wav", args.folder / f"recorded-{ZEROS_RECEIVER}.wav"
    for need in (sent_path, zeros_path):
        if not need.is_file():
            print(f"error: {need} is missing (run bench/e2e.py with the patched JackTrip and --out)", file=sys.stderr)
            return 2
    sent, rate = mono(sent_path)
    lost = lost_blocks(sent, mono(zeros_path)[0], args.frames)
    mask = np.repeat(lost, args.frames)[: sent.shape[0]]
    print(f"{args.folder}: {int(lost.sum())} lost blocks of {lost.size}")
    rows = []

    def add(kind: str, name: str, played: np.ndarray) -> None:
        # a live recording is aligned on its own and may sit a few blocks off the zeros receiver's
        # loss positions after a buffer reset: its lost-packet metrics are bench/e2e.py's (per
        # receiver, from the relay's log); here only its ViSQOL, which needs no positions
        offline = kind == "offline"
        row = {
            "kind": kind,
            "concealer": name,
            "snr_lost_db": round(snr_db(sent, played, mask), 2) if offline else None,
            "lsd_lost_db": round(lsd_db(sent, played, mask), 2) if offline else None,
            "visqol_mos": visqol_mos(sent, played, rate),
        }
        rows.append(row)
        mos = "-" if row["visqol_mos"] is None else f"{row['visqol_mos']:.3f}"
        lost_part = (
            f"lost SNR {row['snr_lost_db']:6.2f} dB  LSD {row['lsd_lost_db']:5.2f} dB"
            if offline
            else "(lost-packet metrics: bench/e2e.py)     "
        )
        print(f"  {kind:8s} {name:24s} {lost_part}  ViSQOL {mos}")

    for name in args.concealers.split(","):
        played, _ = conceal_stream(
            sent, make_concealer(name, args.frames, rate), lost, lookahead_blocks=args.lookahead_blocks
        )
        add("offline", name, played)
    for spec in args.model:
        label, _, path = spec.rpartition("=")
        played, _ = conceal_stream(
            sent,
            make_concealer("nextblock", args.frames, rate, model_path=path),
            lost,
            lookahead_blocks=args.lookahead_blocks,
        )
        add("offline", f"nextblock {label or Path(path).stem}", played)
    for path in sorted(args.folder.glob("recorded-*.wav")):
        receiver = path.stem.removeprefix("recorded-")
        if receiver != ZEROS_RECEIVER:
            add("live", receiver, mono(path)[0])
    print(
        json.dumps(
            {
                "bench": "e2e_offline",
                "folder": str(args.folder),
                "lookahead_blocks": args.lookahead_blocks,
                "lost_blocks": int(lost.sum()),
                "rows": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
