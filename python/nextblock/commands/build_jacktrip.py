"""``nextblock build-jacktrip``: the command line of :mod:`nextblock.jackio.patched_build`.

Exit status: 0 when the patched JackTrip is there (or when its source is missing, unless
``--strict``), 1 when a build was tried and failed or the tarball is not JackTrip 2.7.2's release,
2 with ``--strict`` when no source can be found at all.
"""

from __future__ import annotations

import argparse

from nextblock.jackio import patched_build as pb


def _epilog(prog: str) -> str:
    return f"""\
examples:
  {prog}                                  # find it, else build it (~10 min on 2 cores)
  {prog} --tarball ~/Downloads/jacktrip-{pb.JACKTRIP_VERSION}.tar.gz
  {prog} --check --json                   # only look; machine-readable

JackTrip's source: --tarball PATH if given, else the first of $JACKTRIP_SOURCE_DIR (an unpacked
v{pb.JACKTRIP_VERSION} tree); the cache ({pb.source_dir()}); the release tarball
jacktrip-{pb.JACKTRIP_VERSION}.tar.gz in $NEXTBLOCK_JACKTRIP_TARBALL, in ../shared/jacktrip/ beside the
repository, or in {pb.cache_root() / "jacktrip"}/. The tarball is JackTrip's v{pb.JACKTRIP_VERSION} release source
(https://github.com/jacktrip/jacktrip/archive/refs/tags/v{pb.JACKTRIP_VERSION}.tar.gz); its sha256 must be
{pb.TARBALL_SHA256}.
The binaries land in {pb.build_dir("<key>") / "bin"}/ (jacktrip = patched,
jacktrip-stock = the same source unpatched); $NEXTBLOCK_JACKTRIP points at a prebuilt patched binary instead.
"""


def build_parser(prog: str = "nextblock build-jacktrip") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=pb.__doc__.split("\n\n")[0],
        epilog=_epilog(prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--tarball",
        metavar="PATH",
        help=f"build from this jacktrip-{pb.JACKTRIP_VERSION}.tar.gz (sha256 checked, unpacked into the cache)",
    )
    p.add_argument("--check", action="store_true", help="only look for it, never unpack or build")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 when no patched JackTrip can be had (CI: setup must not go on without it)",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def main(argv: list[str] | None = None, prog: str = "nextblock build-jacktrip") -> int:
    """Entry point; returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.check and args.tarball:
        parser.error("--check only looks; drop it to build from --tarball")
    return pb.run(args)
