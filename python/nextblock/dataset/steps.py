"""The four steps of ``nextblock dataset`` (fetch / sort / verify / package), each from its parsed
arguments (the command line: :mod:`nextblock.commands.dataset`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cache import cache_root

PROG = "python -m nextblock.dataset"


class UserError(Exception):
    """A problem with the command line or input files: printed as one line, exit status 2."""


def _default_manifests(cache: Path) -> Path:
    return cache / "manifests"


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


def run(args: argparse.Namespace) -> int:
    """Run the step ``args.command`` (:func:`nextblock.commands.dataset.build_parser`); returns the
    exit status (2 = user error, one line on stderr)."""
    handlers = {"fetch": run_fetch, "sort": run_sort, "verify": run_verify, "package": run_package}
    try:
        return handlers[args.command](args)
    except UserError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (rerun to resume)", file=sys.stderr)
        return 130
