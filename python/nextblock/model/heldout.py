"""Write the held-out evaluation set: excerpts of *test-split* recordings only.

The model card's evaluation table is computed with ``python -m nextblock.evaluate`` on these
files. They come from recordings whose split (:func:`nextblock.model.audio_files.split_of`) is
``test`` – never read by training, whose train/validation splits exclude them by construction.

Per root folder (e.g. Debian package) it writes ``--per-group`` mono 48 kHz WAV files of about
``--seconds`` each; short recordings (speech clips, one-shot samples) are concatenated with
50 ms of silence between them. Silent recordings and broken ones (a decoded peak above
:data:`MAX_PEAK`) are skipped. ``heldout.json`` lists the sources of every file.

examples:
  python -m nextblock.model.heldout --out ~/.cache/nextblock/heldout
  python -m nextblock.model.heldout --out /tmp/heldout --per-group 1 --seconds 5 --audio ~/music
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .audio_files import cache_extracted_dir, find_audio_files, read_excerpt

GAP_SECONDS = 0.05
#: a recording whose decoded peak exceeds this (+12 dBFS) is broken, not loud: one klettres-data
#: syllable decodes to a peak of 38.9 and alone held 83 % of the speech category's signal energy.
MAX_PEAK = 4.0


def write_heldout(
    roots: list[str],
    out_dir: Path,
    per_group: int = 3,
    seconds: float = 10.0,
    sample_rate_hz: int = 48000,
    seed: int = 0,
    show_progress: bool = True,
    split: str = "test",
) -> list[dict]:
    """Write the held-out excerpts; return one record per written file (also in ``heldout.json``).

    ``split="validation"`` cuts the same kind of set from *validation-split* recordings instead: a
    set to choose things on (e.g. ``guess_weight``, :mod:`nextblock.model.guess_blend`) with the
    harness, leaving the test split for the final scores.

    Each record: ``{"file": name, "group": root folder name, "sources": [paths], "seconds": float}``.
    """
    import soundfile as sf

    rng = np.random.default_rng(seed)
    by_group: dict[str, list] = defaultdict(list)
    for f in find_audio_files(roots):
        if f.split == split:
            by_group[f.group].append(f)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    want = int(seconds * sample_rate_hz)
    gap = np.zeros(int(GAP_SECONDS * sample_rate_hz), np.float32)
    for group in tqdm(sorted(by_group), desc="held-out excerpts", unit="group", disable=not show_progress):
        files = [by_group[group][i] for i in rng.permutation(len(by_group[group]))]
        cursor = 0
        for index in range(per_group):
            parts, sources, have = [], [], 0
            while have < want and cursor < len(files):
                audio = read_excerpt(files[cursor].path, sample_rate_hz, seconds, rng)
                cursor += 1
                if audio is None or audio.size == 0 or not 1e-3 <= float(np.max(np.abs(audio))) <= MAX_PEAK:
                    continue
                parts += [audio[: want - have], gap]
                sources.append(str(files[cursor - 1].path))
                have += min(audio.size, want - have) + gap.size
            if not parts:
                break
            name = f"{group}-{index}.wav"
            signal = np.concatenate(parts)
            sf.write(str(out_dir / name), signal, sample_rate_hz, subtype="FLOAT")
            records.append(
                {"file": name, "group": group, "sources": sources, "seconds": round(signal.size / sample_rate_hz, 2)}
            )
    (out_dir / "heldout.json").write_text(json.dumps(records, indent=2))
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nextblock.model.heldout",
        description=__doc__.split("\n")[0],
        epilog="examples:" + __doc__.split("examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="folder to write the WAV files and heldout.json into")
    p.add_argument("--audio", nargs="+", metavar="DIR", help="root folders (default: every package in the cache)")
    p.add_argument("--per-group", type=int, default=3, help="files per root folder (default %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each file (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed for file order and offsets (default %(default)s)")
    p.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="recordings of this split (default %(default)s; validation: a set to choose things on)",
    )
    args = p.parse_args(argv)
    roots = args.audio or sorted(str(d) for d in cache_extracted_dir().glob("*") if d.is_dir())
    if not roots:
        print(f"error: no --audio given and nothing unpacked in {cache_extracted_dir()}", file=sys.stderr)
        return 2
    try:
        records = write_heldout(
            roots, Path(args.out).expanduser(), args.per_group, args.seconds, seed=args.seed, split=args.split
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(records)} files ({sum(r['seconds'] for r in records):.0f} s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
