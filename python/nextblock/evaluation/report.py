"""Markdown report of an evaluation: settings, the results table, skipped files, pictures."""

from __future__ import annotations

import json
import math
import os

#: (row key, column title, number format) in table order
TABLE_COLUMNS: list[tuple[str, str, str]] = [
    ("concealer", "concealer", "{}"),
    ("loss", "loss", "{}"),
    ("files", "files", "{}"),
    ("lost_blocks", "lost blocks", "{}"),
    ("loss_rate", "loss rate", "{:.3f}"),
    ("snr_db", "SNR (dB)", "{:.2f}"),
    ("lsd_db", "LSD (dB)", "{:.2f}"),
    ("visqol", "ViSQOL", "{:.3f}"),
    ("plcmos", "PLCMOS", "{:.3f}"),
    ("thd_n_db", "THD+N (dB)", "{:.2f}"),
    ("us_per_block_median", "µs/lost block (median)", "{:.0f}"),
    ("us_per_block_p99", "µs/lost block (p99)", "{:.0f}"),
    ("us_per_arrived_block_median", "µs/arrived block (median)", "{:.1f}"),
]


def markdown_table(rows: list[dict]) -> str:
    """The results as a GitHub markdown table (``–`` for null; a ``group`` column first when rows
    of several groups are present, see ``by_folder`` of the harness)."""
    columns = list(TABLE_COLUMNS)
    if len({row.get("group", "all") for row in rows}) > 1:
        columns.insert(0, ("group", "group", "{}"))
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append(
                "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else fmt.format(value)
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(
    rows: list[dict],
    config: dict,
    skipped_files: list[tuple[str, str]] = (),
    unavailable_concealers: list[tuple[str, str]] = (),
    plots: list[str] = (),
    report_dir: str | None = None,
) -> str:
    """A full markdown report.

    Parameters
    ----------
    rows:
        Result rows (:func:`nextblock.evaluation.harness.evaluate`).
    config:
        The run's settings (printed as JSON).
    skipped_files, unavailable_concealers:
        ``(what, why)`` pairs to list.
    plots:
        Picture paths; linked relative to ``report_dir``.
    """
    out = ["# NextBlock concealment evaluation", ""]
    out += [
        f"{config.get('sample_rate_hz')} Hz, {config.get('frames_per_block')} frames per block, seed {config.get('seed')}.",
        "",
    ]
    out += [
        "SNR and LSD look at the lost blocks and the cross-fade block after each run of losses; "
        "µs/lost block is the wall-clock cost of concealing one block of one channel.",
        "",
        markdown_table(rows),
        "",
    ]
    if skipped_files:
        out += ["## Skipped files", ""] + [f"- `{path}`: {why}" for path, why in skipped_files] + [""]
    if unavailable_concealers:
        out += ["## Unavailable concealers", ""] + [f"- `{name}`: {why}" for name, why in unavailable_concealers] + [""]
    if plots:
        out += ["## Around a few losses", ""]
        for path in plots:
            rel = os.path.relpath(path, report_dir) if report_dir else path
            out.append(f"![{os.path.basename(path)}]({rel})")
        out.append("")
    out += ["## Settings", "", "```json", json.dumps(config, indent=2, default=str), "```", ""]
    return "\n".join(out)
