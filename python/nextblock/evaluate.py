"""``python -m nextblock.evaluate``: score packet-loss concealers on audio files.

Every claim about concealment quality goes through this tool. See ``--help``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` (:func:`nextblock.commands.evaluate.build_parser`) say; returns the exit
    status (0 ok, 1 nothing or not everything evaluated, 2 bad arguments)."""
    from tqdm import tqdm

    from .evaluation.harness import EvaluationConfig, evaluate
    from .evaluation.report import markdown_report, markdown_table

    def log(message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    config = EvaluationConfig(
        concealers=args.concealer or ["zeros", "repeat", "repeat-xfade", "burg"],
        losses=args.loss or ["bernoulli:0.05"],
        sample_rate_hz=args.sample_rate,
        frames_per_block=args.fpp,
        seed=args.seed,
        model_path=args.model,
        two_sided_model_path=args.two_sided_model,
        mono=not args.per_channel,
        speech=args.speech,
        visqol=args.visqol,
        sine=args.sine,
        sine_duration_s=args.sine_seconds,
        plot_dir=args.plots,
        plot_files=args.plot_files,
        by_folder=args.by_folder,
        lookahead_blocks=args.lookahead_blocks,
    )
    for path in args.paths:
        if not os.path.exists(path):
            log(f"warning: {path} does not exist")
    try:
        result = evaluate(args.paths, config, progress=not args.quiet, log=log)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if args.json:
        document = {
            "results": result.rows,
            "config": result.config,
            "skipped_files": [{"path": p, "reason": r} for p, r in result.skipped_files],
            "unavailable_concealers": [{"concealer": n, "reason": r} for n, r in result.unavailable_concealers],
        }
        _write_text(args.json, json.dumps(document, indent=2) + "\n")
    if args.report:
        report_dir = os.path.dirname(os.path.abspath(args.report))
        _write_text(
            args.report,
            markdown_report(
                result.rows,
                result.config,
                result.skipped_files,
                result.unavailable_concealers,
                result.plots,
                report_dir,
            ),
        )
    print(markdown_table(result.rows))
    evaluated_files = max((row["files"] for row in result.rows), default=0)
    if not result.rows or (args.paths and evaluated_files == 0 and not args.sine):
        print("error: nothing was evaluated", file=sys.stderr)
        return 1
    return 1 if result.unavailable_concealers else 0


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    from nextblock.commands.evaluate import main

    sys.exit(main(prog="python -m nextblock.evaluate"))
