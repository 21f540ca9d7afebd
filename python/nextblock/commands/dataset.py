"""``nextblock dataset``: the command line of the dataset tool (:mod:`nextblock.dataset.steps`).

The examples in its help name the module form, ``python -m nextblock.dataset`` (the same options).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nextblock.dataset.steps import PROG

EPILOG = f"""\
The four steps, each resumable and idempotent (rerun = no repeated work):

  # 1. the project's own corpus (allowed Debian packages, DEVELOPERS.md), and/or a catalog
  {PROG} fetch --debian                       # whole default corpus (~1.7 GB of .deb)
  {PROG} fetch --music21                      # optional: render Bach/Palestrina/folk scores
  {PROG} fetch --debian klettres-data sonic-pi-samples
  {PROG} fetch --catalog cambridge.csv --jobs 4
  # 2. unpack + label every stem -> <cache>/manifests/stems.csv
  {PROG} sort
  # 3. drop silence, check timbre against references -> verified.csv + report.png
  {PROG} verify --references refs/            # refs/<label>/*.wav
  # 4. 48 kHz, 1 s examples, train/validation by song -> shards for nextblock.train
  {PROG} package --out data/corpus

Cache: $NEXTBLOCK_CACHE (default ~/.cache/nextblock); see `{PROG} <step> --help`.
"""


def _add_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache", type=Path, default=None, help="cache root (default: $NEXTBLOCK_CACHE or ~/.cache/nextblock)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser(prog: str = "nextblock dataset") -> argparse.ArgumentParser:
    """The argparse parser with its four sub-commands."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Download, sort, verify and package training audio for NextBlock.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{fetch,sort,verify,package}")

    fetch = commands.add_parser(
        "fetch",
        help="download archives from a catalog and/or Debian packages into the cache",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Bring sources into the cache. Downloads resume, retry with back-off, are verified "
        "(SHA-256/size; mismatches go to <cache>/quarantine) and are skipped when already cached.",
        epilog=f"""examples:
  {PROG} fetch --debian                         # default corpus: allowed packages of DEVELOPERS.md
  {PROG} fetch --debian klettres-data           # one package (apt-get download + dpkg-deb -x)
  {PROG} fetch --catalog sessions.csv --jobs 2  # CSV/JSON: title,artist,genre,url[,sha256,size]
  {PROG} fetch --catalog local.json             # url may be a local path or file:// URL
  {PROG} fetch --music21                        # render Bach/Palestrina/folk to 48 kHz FLAC
  {PROG} fetch --music21 bach/bwv269 --program organ
""",
    )
    _add_cache(fetch)
    fetch.add_argument(
        "--catalog", type=Path, help="CSV or JSON catalog of archives (title, artist, genre, url, sha256, size)"
    )
    fetch.add_argument(
        "--debian",
        nargs="*",
        metavar="PACKAGE",
        help="fetch Debian packages; with no names, the default corpus of DEVELOPERS.md",
    )
    fetch.add_argument(
        "--music21",
        nargs="*",
        metavar="PIECE",
        help="render music21 corpus pieces through fluid-soundfont-gm (optional pip deps music21, "
        "tinysoundfont); with no names, a handful of Bach/Palestrina/folk pieces",
    )
    fetch.add_argument(
        "--program",
        default="choir",
        choices=("choir", "strings", "organ", "piano", "flute", "brass"),
        help="General MIDI instrument for renders (default: choir)",
    )
    fetch.add_argument(
        "--tempo-bpm", type=float, default=80.0, help="quarter notes per minute for renders (default: 80)"
    )
    fetch.add_argument("--jobs", type=int, default=4, help="parallel downloads (default: 4)")
    fetch.add_argument("--retries", type=int, default=4, help="extra attempts per download (default: 4)")
    fetch.add_argument(
        "--backoff-s", type=float, default=1.0, help="first wait between attempts, doubles each time (default: 1)"
    )
    fetch.add_argument("--timeout-s", type=float, default=30.0, help="socket timeout per request (default: 30)")
    fetch.add_argument("--strict", action="store_true", help="exit with status 1 when any item failed")

    sort = commands.add_parser(
        "sort",
        help="unpack archives and label every stem (manifest CSV)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Unpack every cached archive (rejecting path traversal, links and zip bombs) and list "
        "every audio file of archives and extracted Debian packages with its instrument label, "
        "genre, duration, sample rate and channels.",
        epilog=f"""examples:
  {PROG} sort                                   # everything in the cache -> <cache>/manifests/stems.csv
  {PROG} sort --debian klettres-data --no-archives --out speech.csv
  {PROG} sort --labels-table my_rules.csv       # extra rules: label,pattern (regex on name tokens)
""",
    )
    _add_cache(sort)
    sort.add_argument("--out", type=Path, help="manifest to write (default: <cache>/manifests/stems.csv)")
    sort.add_argument("--debian", nargs="*", metavar="PACKAGE", help="only these extracted packages (default: all)")
    sort.add_argument("--no-archives", action="store_true", help="skip catalog archives")
    sort.add_argument("--no-debian", action="store_true", help="skip Debian packages")
    sort.add_argument("--no-rendered", action="store_true", help="skip music21 renders")
    sort.add_argument("--labels-table", type=Path, help="CSV/JSON of extra label rules, tried before the defaults")
    sort.add_argument("--max-unpacked-gib", type=float, default=20.0, help="largest uncompressed archive (default: 20)")
    sort.add_argument(
        "--max-ratio", type=float, default=200.0, help="largest compression ratio per member (default: 200)"
    )

    verify = commands.add_parser(
        "verify",
        help="drop silence and check each stem's timbre against references",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Amplitude thresholding (silent regions and stems) and mel-profile check against "
        "reference clips of each label; writes a manifest with a reason for every rejection, "
        "report.json and report.png.",
        epilog=f"""examples:
  {PROG} verify                                  # references = up to 64 of each label's own stems
  {PROG} verify --references refs/ --max-mel-distance 0.3   # refs/vocals/*.wav, refs/drums/*.flac ...
  {PROG} verify --threshold-dbfs -45 --min-active-s 2
""",
    )
    _add_cache(verify)
    verify.add_argument("--manifest", type=Path, help="input manifest (default: <cache>/manifests/stems.csv)")
    verify.add_argument("--out", type=Path, help="output manifest (default: <cache>/manifests/verified.csv)")
    verify.add_argument("--references", type=Path, help="folder with one sub-folder of reference clips per label")
    verify.add_argument("--report-dir", type=Path, help="where report.json/png go (default: next to --out)")
    verify.add_argument(
        "--threshold-dbfs", type=float, default=-50.0, help="frame RMS below this is silence (default: -50)"
    )
    verify.add_argument(
        "--min-active-s", type=float, default=0.5, help="reject stems with less active audio (default: 0.5)"
    )
    verify.add_argument(
        "--max-mel-distance", type=float, default=0.4, help="largest profile distance kept (default: 0.4)"
    )
    verify.add_argument(
        "--allow-nearer-other-label",
        action="store_true",
        help="keep stems whose nearest reference has another label (if within the distance)",
    )
    verify.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1; the machine is shared)")
    verify.add_argument(
        "--nearest-label-margin",
        type=float,
        default=0.05,
        help="another label's reference must be this much closer to reject (default: 0.05)",
    )

    package = commands.add_parser(
        "package",
        help="resample, split by song, cut examples and write shards for nextblock.train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a nextblock-shards/1 dataset: 48 kHz mono float32 examples in .npz shards with a "
        "manifest.json of SHA-256 checksums. Songs never straddle train/validation. Resumable.",
        epilog=f"""examples:
  {PROG} package --out data/corpus               # from verified.csv (else stems.csv)
  {PROG} package --out data/vox --labels vocals --example-s 0.5
  python -c "from nextblock.dataset.shards import load_split; print(load_split('data/corpus', 'train').shape)"
""",
    )
    _add_cache(package)
    package.add_argument(
        "--manifest", type=Path, help="input manifest (default: verified.csv, else stems.csv in <cache>/manifests)"
    )
    package.add_argument(
        "--out", type=Path, help="dataset folder (default: <cache>/shards, where nextblock.train looks)"
    )
    package.add_argument("--labels", help="comma-separated labels to keep (default: all)")
    package.add_argument("--example-s", type=float, default=1.0, help="example length in seconds (default: 1.0)")
    package.add_argument(
        "--validation-fraction", type=float, default=0.1, help="fraction of songs for validation (default: 0.1)"
    )
    package.add_argument("--examples-per-shard", type=int, default=256, help="examples per shard (default: 256)")
    package.add_argument("--min-example-dbfs", type=float, default=-60.0, help="drop quieter examples (default: -60)")
    return parser


def main(argv: list[str] | None = None, prog: str = "nextblock dataset") -> int:
    """Entry point; returns the exit status (2 = user error, one line on stderr)."""
    args = build_parser(prog).parse_args(argv)
    from nextblock.dataset import steps

    return steps.run(args)
