"""``nextblock export``: the command line of :mod:`nextblock.export` (options, help, exit status).

Parsing imports no TensorFlow: :func:`nextblock.export.run` does, when it converts."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  # export the best checkpoint of a run as the shipped default model
  python -m nextblock.export --run-dir runs/default --output models/nextblock-default.tflite

  # also write a float16-weight variant next to it (half the size; same speed on CPU)
  python -m nextblock.export --run-dir runs/default --output /tmp/nb.tflite --float16

  # inspect any exported model's metadata
  python -m nextblock.export --show models/nextblock-default.tflite

The metadata is a JSON object stored in the .tflite flatbuffer's `metadata` table under the name
"nextblock"; nextblock.model.metadata.read_metadata(path) reads and validates it (no TensorFlow).
"""


def build_parser(prog: str = "nextblock export") -> argparse.ArgumentParser:
    """The command line (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Export a trained NextBlock run to LiteRT (.tflite).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run-dir", help="training run folder (config.json + *.weights.h5)")
    p.add_argument("--weights", default="best", choices=("best", "last"), help="which checkpoint (default %(default)s)")
    p.add_argument("--output", default="models/nextblock-default.tflite", help="output .tflite (default %(default)s)")
    p.add_argument("--model-version", default=None, help="version string in the metadata (default 1.<date>)")
    p.add_argument("--name", default=None, help="model name in the metadata (default: output file stem)")
    p.add_argument("--float16", action="store_true", help="also write <output stem>-fp16.tflite (float16 weights)")
    p.add_argument(
        "--guess-weight",
        type=float,
        default=0.0,
        help="share of the LPC guess blended into the network's prediction at run time, 0-1 "
        "(metadata guess_weight; choose it on validation windows, default %(default)s)",
    )
    p.add_argument(
        "--boundary-ramp-samples",
        type=int,
        default=None,
        help="samples over which the runner joins the prediction's start to the context, 0 = off "
        "(default: 64, a cross-fade from the LPC guess, for models with one; else 32)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="max |LiteRT - Keras| allowed on the check inputs (default %(default)s)",
    )
    p.add_argument("--show", metavar="TFLITE", help="only print the metadata of this model and exit")
    return p


def _checked(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """``args``, after the checks argparse cannot make (``p.error``: exit status 2)."""
    if not args.show and not args.run_dir:
        p.error("--run-dir is required (or --show TFLITE)")
    return args


def main(argv: list[str] | None = None, prog: str = "nextblock export") -> int:
    """Entry point; returns the exit status (0 written, 1 LiteRT differs from Keras, 2 bad input)."""
    p = build_parser(prog)
    args = _checked(p, p.parse_args(argv))
    from nextblock import export

    return export.run(args)
