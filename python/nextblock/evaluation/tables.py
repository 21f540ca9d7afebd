"""Model-card tables from ``python -m nextblock.evaluate --by-folder --json`` results.

``python -m nextblock.evaluation.tables RESULTS.json [LABEL=RESULTS.json ...]`` prints markdown:

1. per configuration (rate × block size), a table by category and concealer: SNR / LSD (and
   ViSQOL where computed) under each loss pattern;
2. the targets, per configuration, category and loss: NextBlock's SNR minus the best classical
   concealer's (``zeros``, ``repeat``, ``repeat-xfade``, ``burg``, ``ar128``: which one is named),
   NextBlock's LSD minus Burg's, ViSQOL minus Burg's, and whether each target is met
   (SNR ≥ best classical + 2 dB, LSD ≤ Burg − 0.3 dB, ViSQOL ≥ Burg).

``LABEL=PATH`` renames the ``nextblock`` rows of that file (e.g. ``"nextblock 2.0.0=prev.json"``),
so two models scored in separate runs of the same files and seed sit in one table. Only the
first label (or plain ``nextblock``) is checked against the targets.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

#: concealers without a network (the "best classical concealer" is the best of these)
CLASSICAL = ("zeros", "repeat", "repeat-xfade", "burg", "ar128")
#: SNR margin over the best classical concealer, LSD margin under Burg (dB)
SNR_MARGIN_DB = 2.0
LSD_MARGIN_DB = 0.3
#: order of the category rows
CATEGORY_ORDER = ("speech", "singing", "music", "instruments", "all")


def load_rows(specs: list[str]) -> tuple[list[dict], str]:
    """Rows of every ``[LABEL=]PATH`` (nextblock rows renamed to LABEL); and the checked model's name."""
    rows, checked = [], None
    for spec in specs:
        label, _, path = spec.rpartition("=")
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        for row in document["results"]:
            row = dict(row)
            if row["concealer"] == "nextblock" and label:
                row["concealer"] = label
            if row["concealer"] not in CLASSICAL and checked is None:
                checked = row["concealer"]
            rows.append(row)
    return rows, checked or "nextblock"


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _config_key(row: dict) -> tuple[int, int]:
    return int(row["sample_rate"]), int(row["fpp"])


def _category_rank(group: str) -> tuple[int, str]:
    return (CATEGORY_ORDER.index(group) if group in CATEGORY_ORDER else len(CATEGORY_ORDER) - 1, group)


def score_tables(rows: list[dict]) -> str:
    """One markdown table per configuration: category × concealer, SNR/LSD(/ViSQOL) per loss."""
    by_config = defaultdict(list)
    for row in rows:
        by_config[_config_key(row)].append(row)
    out = []
    for rate, fpp in sorted(by_config):
        cfg_rows = by_config[(rate, fpp)]
        losses = list(dict.fromkeys(r["loss"] for r in cfg_rows))
        with_visqol = any(r.get("visqol") is not None for r in cfg_rows)
        header = ["category", "concealer"]
        for loss in losses:
            header += [f"{loss} SNR", "LSD"] + (["ViSQOL"] if with_visqol else [])
        out += [f"**{rate} Hz, {fpp} frames**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        cells = {(r.get("group", "all"), r["concealer"], r["loss"]): r for r in cfg_rows}
        groups = sorted({r.get("group", "all") for r in cfg_rows}, key=_category_rank)
        concealers = list(dict.fromkeys(r["concealer"] for r in cfg_rows))
        for group in groups:
            for name in concealers:
                line = [group, name]
                for loss in losses:
                    r = cells.get((group, name, loss), {})
                    line += [_fmt(r.get("snr_db")), _fmt(r.get("lsd_db"))] + (
                        [_fmt(r.get("visqol"), 3)] if with_visqol else []
                    )
                out.append("| " + " | ".join(line) + " |")
        out.append("")
    return "\n".join(out)


def target_rows(rows: list[dict], model: str) -> list[dict]:
    """Per configuration, category and loss: the margins of ``model`` and whether targets are met."""
    cells = {(_config_key(r), r.get("group", "all"), r["loss"], r["concealer"]): r for r in rows}
    keys = sorted(
        {(_config_key(r), r.get("group", "all"), r["loss"]) for r in rows if r["concealer"] == model},
        key=lambda k: (k[0], _category_rank(k[1]), k[2]),
    )
    result = []
    for config, group, loss in keys:
        nb = cells[(config, group, loss, model)]
        classical = [cells[(config, group, loss, c)] for c in CLASSICAL if (config, group, loss, c) in cells]
        classical = [c for c in classical if c.get("snr_db") is not None]
        burg = cells.get((config, group, loss, "burg"))
        best = max(classical, key=lambda c: c["snr_db"]) if classical else None
        snr_margin = None if best is None or nb.get("snr_db") is None else nb["snr_db"] - best["snr_db"]
        lsd_margin = (
            None
            if burg is None or nb.get("lsd_db") is None or burg.get("lsd_db") is None
            else nb["lsd_db"] - burg["lsd_db"]
        )
        visqol_margin = (
            None
            if burg is None or nb.get("visqol") is None or burg.get("visqol") is None
            else nb["visqol"] - burg["visqol"]
        )
        result.append(
            {
                "sample_rate": config[0],
                "fpp": config[1],
                "group": group,
                "loss": loss,
                "best_classical": None if best is None else best["concealer"],
                "snr_margin_db": snr_margin,
                "lsd_margin_db": lsd_margin,
                "visqol_margin": visqol_margin,
                "snr_met": None if snr_margin is None else snr_margin >= SNR_MARGIN_DB,
                "lsd_met": None if lsd_margin is None else lsd_margin <= -LSD_MARGIN_DB,
                "visqol_met": None if visqol_margin is None else visqol_margin >= 0.0,
            }
        )
    return result


def targets_table(rows: list[dict], model: str) -> str:
    """The targets as a markdown table (✓ met, ✗ missed, – not measured)."""
    mark = {True: "✓", False: "✗", None: "–"}
    out = [
        f"Targets for `{model}`: SNR ≥ best classical + {SNR_MARGIN_DB:g} dB, LSD ≤ Burg − {LSD_MARGIN_DB:g} dB, "
        "ViSQOL ≥ Burg.",
        "",
        "| rate, frames | category | loss | best classical | ΔSNR (dB) | | ΔLSD vs Burg (dB) | | ΔViSQOL vs Burg | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    met = total = 0
    for t in target_rows(rows, model):
        checks = [t["snr_met"], t["lsd_met"]] + ([t["visqol_met"]] if t["visqol_met"] is not None else [])
        met += sum(bool(c) for c in checks if c is not None)
        total += sum(c is not None for c in checks)
        out.append(
            f"| {t['sample_rate']} Hz, {t['fpp']} | {t['group']} | {t['loss']} | {t['best_classical'] or '–'} | "
            f"{_fmt(t['snr_margin_db'])} | {mark[t['snr_met']]} | {_fmt(t['lsd_margin_db'])} | {mark[t['lsd_met']]} | "
            f"{_fmt(t['visqol_margin'], 3)} | {mark[t['visqol_met']]} |"
        )
    out += ["", f"{met} of {total} checks met.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nextblock.evaluation.tables", description=__doc__.split("\n")[0])
    p.add_argument(
        "results", nargs="+", metavar="[LABEL=]RESULTS.json", help="--json outputs of python -m nextblock.evaluate"
    )
    p.add_argument("--no-targets", action="store_true", help="only the score tables")
    args = p.parse_args(argv)
    try:
        rows, model = load_rows(args.results)
    except (OSError, KeyError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(score_tables(rows))
    if not args.no_targets:
        print(targets_table(rows, model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
