"""Command line of ``python -m nextblock.dataset`` (fetch / sort / verify / package)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cache import cache_root

PROG = "python -m nextblock.dataset"

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


class UserError(Exception):
    """A problem with the command line or input files: printed as one line, exit status 2."""


def _default_manifests(cache: Path) -> Path:
    return cache / "manifests"


def _add_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache", type=Path, default=None, help="cache root (default: $NEXTBLOCK_CACHE or ~/.cache/nextblock)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with its four sub-commands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
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


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_fetch(args: argparse.Namespace) -> int:
    from .catalog import CatalogError, read_catalog
    from .debian import apt_available, fetch_debian_packages
    from .download import fetch_entries

    if args.catalog is None and args.debian is None and args.music21 is None:
        raise UserError("nothing to fetch: give --catalog FILE, --debian [PACKAGE ...] and/or --music21 [PIECE ...]")
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    cache = cache_root(args.cache)
    failures = 0
    if args.catalog is not None:
        try:
            entries, problems = read_catalog(args.catalog)
        except CatalogError as error:
            raise UserError(str(error)) from None
        for problem in problems:
            _warn(f"catalog row {problem.row} ({problem.title or 'untitled'}): {problem.reason}; skipped")
        failures += len(problems)
        results = fetch_entries(
            entries,
            cache,
            jobs=args.jobs,
            retries=args.retries,
            backoff_s=args.backoff_s,
            timeout_s=args.timeout_s,
            show_progress=not args.quiet,
        )
        for result in results:
            if not result.ok:
                _warn(f"{result.entry.title}: {result.status}: {result.message}")
        failures += sum(not r.ok for r in results)
        counts = {
            s: sum(r.status == s for r in results) for s in ("downloaded", "copied", "cached", "quarantined", "failed")
        }
        print("archives: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" -> {cache / 'archives'}")
    if args.debian is not None:
        if not apt_available():
            raise UserError("apt-get/dpkg-deb not found: Debian sources need a Debian-based machine")
        results = fetch_debian_packages(cache, args.debian or None, show_progress=not args.quiet)
        for result in results:
            if result.status == "failed":
                _warn(f"{result.package}: {result.message}")
        failures += sum(r.status == "failed" for r in results)
        counts = {s: sum(r.status == s for r in results) for s in ("fetched", "cached", "failed")}
        print("debian: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" -> {cache / 'debian' / 'extracted'}")
    if args.music21 is not None:
        from .render import DEFAULT_PIECES, RenderSetupError, render_pieces, rendered_dir

        try:
            rendered = render_pieces(
                cache, args.music21 or DEFAULT_PIECES, args.program, args.tempo_bpm, show_progress=not args.quiet
            )
        except RenderSetupError as error:
            raise UserError(str(error)) from None
        for result in rendered:
            if result.status == "failed":
                _warn(f"{result.piece}: {result.message}")
        failures += sum(r.status == "failed" for r in rendered)
        counts = {s: sum(r.status == s for r in rendered) for s in ("rendered", "cached", "failed")}
        print(
            "music21: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" -> {rendered_dir(cache) / args.program}"
        )
    return 1 if failures and args.strict else 0


def run_sort(args: argparse.Namespace) -> int:
    from .labels import DEFAULT_RULES, load_rules
    from .manifest import STATUS_REJECTED, write_manifest
    from .sort_stems import probe_rows, sort_archives, sort_debian, sort_rendered
    from .unpack import UnpackLimits

    cache = cache_root(args.cache)
    rules = list(DEFAULT_RULES)
    if args.labels_table is not None:
        if not args.labels_table.is_file():
            raise UserError(f"labels table {args.labels_table} does not exist")
        try:
            rules = load_rules(args.labels_table) + rules
        except (ValueError, KeyError) as error:
            raise UserError(str(error)) from None
    rows, problems = [], []
    if not args.no_archives:
        limits = UnpackLimits(int(args.max_unpacked_gib * 1024**3), args.max_ratio)
        found, issues = sort_archives(cache, rules, limits, show_progress=not args.quiet)
        rows += found
        problems += issues
    if not args.no_debian:
        found, issues = sort_debian(cache, args.debian or None, rules)
        rows += found
        problems += issues
    if not args.no_rendered:
        rows += sort_rendered(cache)
    for problem in problems:
        _warn(f"{problem.source}: {problem.reason}; skipped")
    if not rows:
        raise UserError(f"no audio found in {cache} (run `{PROG} fetch` first)")
    rows = probe_rows(rows, show_progress=not args.quiet)
    rejected = [row for row in rows if row.status == STATUS_REJECTED]
    for row in rejected[:20]:
        _warn(f"{row.stem_id}: {row.reason}")
    if len(rejected) > 20:
        _warn(f"... and {len(rejected) - 20} more rejected files (see the manifest's 'reason' column)")
    out = args.out or _default_manifests(cache) / "stems.csv"
    write_manifest(rows, out)
    labels: dict[str, int] = {}
    for row in rows:
        labels[row.label] = labels.get(row.label, 0) + 1
    hours = sum(r.duration_s for r in rows) / 3600
    print(
        f"{len(rows)} stems ({hours:.2f} h; " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items())) + f") -> {out}"
    )
    return 0


def _read_rows(path: Path):
    from .manifest import read_manifest

    if not path.is_file():
        raise UserError(f"manifest {path} does not exist (run `{PROG} sort` first)")
    try:
        return read_manifest(path)
    except (ValueError, KeyError) as error:
        raise UserError(str(error)) from None


def run_verify(args: argparse.Namespace) -> int:
    from .manifest import STATUS_REJECTED, write_manifest
    from .report import write_report
    from .verify import VerifySettings, reference_profiles_from_folder, verify_rows

    cache = cache_root(args.cache)
    rows = _read_rows(args.manifest or _default_manifests(cache) / "stems.csv")
    settings = VerifySettings(
        threshold_dbfs=args.threshold_dbfs,
        min_active_s=args.min_active_s,
        max_mel_distance=args.max_mel_distance,
        require_nearest_label=not args.allow_nearer_other_label,
        nearest_label_margin=args.nearest_label_margin,
    )
    references = {}
    if args.references is not None:
        if not args.references.is_dir():
            raise UserError(f"references folder {args.references} does not exist")
        references = reference_profiles_from_folder(args.references, settings)
        if not references:
            raise UserError(f"no usable reference clips in {args.references} (expected <label>/*.wav sub-folders)")
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    verified = verify_rows(rows, references, settings, show_progress=not args.quiet, jobs=args.jobs)
    out = args.out or _default_manifests(cache) / "verified.csv"
    write_manifest(verified, out)
    json_path, png_path = write_report(verified, args.report_dir or out.parent / "report", settings.max_mel_distance)
    kept = [r for r in verified if r.status != STATUS_REJECTED]
    total_h = sum(r.duration_s for r in verified) / 3600
    active_h = sum(r.active_s or 0.0 for r in kept) / 3600
    print(
        f"kept {len(kept)} of {len(verified)} stems; {active_h:.2f} of {total_h:.2f} h is active audio in kept stems "
        f"-> {out}; report {png_path}"
    )
    return 0


def run_package(args: argparse.Namespace) -> int:
    from .package import PackageSettings, package_dataset

    cache = cache_root(args.cache)
    manifests = _default_manifests(cache)
    source = args.manifest or (
        manifests / "verified.csv" if (manifests / "verified.csv").is_file() else manifests / "stems.csv"
    )
    rows = _read_rows(source)
    if args.labels:
        wanted = {label.strip() for label in args.labels.split(",") if label.strip()}
        rows = [row for row in rows if row.label in wanted]
        if not rows:
            raise UserError(f"no stems with labels {sorted(wanted)} in {source}")
    if args.example_s <= 0 or args.examples_per_shard < 1 or not 0 <= args.validation_fraction < 1:
        raise UserError("need --example-s > 0, --examples-per-shard >= 1 and 0 <= --validation-fraction < 1")
    settings = PackageSettings(
        example_s=args.example_s,
        validation_fraction=args.validation_fraction,
        examples_per_shard=args.examples_per_shard,
        min_example_dbfs=args.min_example_dbfs,
    )
    out = args.out or cache / "shards"
    result = package_dataset(rows, out, settings, show_progress=not args.quiet)
    for stem_id, reason in result.skipped[:20]:
        _warn(f"{stem_id}: {reason}; skipped")
    if len(result.skipped) > 20:
        _warn(f"... and {len(result.skipped) - 20} more skipped recordings (see manifest.json 'skipped')")
    rate = (result.input_audio_s / 3600) / (result.wall_s / 60) if result.wall_s > 0 else 0.0
    print(
        f"train {result.examples['train']} / validation {result.examples['validation']} examples; "
        f"{result.shards_written} shards written, {result.shards_reused} reused; "
        f"{rate:.2f} audio-hours/min -> {result.manifest_path}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 = user error, one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"fetch": run_fetch, "sort": run_sort, "verify": run_verify, "package": run_package}
    try:
        return handlers[args.command](args)
    except UserError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (rerun to resume)", file=sys.stderr)
        return 130
