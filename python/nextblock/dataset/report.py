"""The small verification report: a JSON summary and a kept/rejected plot."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .manifest import STATUS_KEPT, STATUS_REJECTED, StemRow


def reason_category(reason: str) -> str:
    """Short category of a rejection reason (text before the first ``:`` or the first words)."""
    if not reason:
        return ""
    head = reason.split(":", 1)[0]
    if head.startswith("mel profile closer"):
        return "mel: nearer another label"
    if head.startswith("mel profile"):
        return "mel: too far from label"
    return head


def summarise(rows: list[StemRow]) -> dict:
    """Counts and hours, overall and per label, plus rejection categories.

    Returns
    -------
    dict with ``stems``, ``kept``, ``rejected``, ``hours_total``,
    ``hours_active_kept`` (audio above the amplitude threshold in kept stems),
    ``kept_fraction_of_audio``, ``per_label`` (``{label: {kept, rejected,
    hours_kept}}``) and ``rejections`` (``{category: count}``).
    """
    per_label: dict[str, dict] = {}
    hours_total = 0.0
    hours_kept = 0.0
    for row in rows:
        entry = per_label.setdefault(row.label, {"kept": 0, "rejected": 0, "hours_kept": 0.0})
        hours_total += row.duration_s / 3600
        if row.status == STATUS_REJECTED:
            entry["rejected"] += 1
        else:
            entry["kept"] += 1
            active_h = (row.active_s if row.active_s is not None else row.duration_s) / 3600
            entry["hours_kept"] += active_h
            hours_kept += active_h
    kept = sum(1 for r in rows if r.status != STATUS_REJECTED)
    return {
        "stems": len(rows),
        "kept": kept,
        "rejected": len(rows) - kept,
        "hours_total": hours_total,
        "hours_active_kept": hours_kept,
        "kept_fraction_of_audio": hours_kept / hours_total if hours_total > 0 else 0.0,
        "per_label": per_label,
        "rejections": dict(Counter(reason_category(r.reason) for r in rows if r.status == STATUS_REJECTED)),
    }


def write_report(rows: list[StemRow], out_dir: str | Path, max_mel_distance: float | None = None) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.png`` into ``out_dir``.

    The figure has two panels: kept/rejected stem counts per label (stacked
    bars), and the histogram of mel distances of kept vs rejected stems with
    the threshold as a vertical line.

    Returns
    -------
    (json_path, png_path)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True))

    labels = sorted(summary["per_label"])
    kept = [summary["per_label"][label]["kept"] for label in labels]
    rejected = [summary["per_label"][label]["rejected"] for label in labels]
    figure, (bars, histogram) = plt.subplots(1, 2, figsize=(11, 4))
    bars.bar(labels, kept, label=STATUS_KEPT, color="tab:green")
    bars.bar(labels, rejected, bottom=kept, label=STATUS_REJECTED, color="tab:red")
    bars.set_ylabel("stems")
    bars.set_title(
        f"kept {summary['kept']} / {summary['stems']} stems, "
        f"{summary['hours_active_kept']:.2f} of {summary['hours_total']:.2f} h"
    )
    bars.tick_params(axis="x", rotation=45)
    bars.legend()
    for status, color in ((STATUS_KEPT, "tab:green"), (STATUS_REJECTED, "tab:red")):
        values = [
            r.mel_distance
            for r in rows
            if r.mel_distance is not None and (r.status == STATUS_REJECTED) == (status == STATUS_REJECTED)
        ]
        if values:
            histogram.hist(values, bins=30, range=(0, 1.5), alpha=0.6, label=status, color=color)
    if max_mel_distance is not None:
        histogram.axvline(max_mel_distance, color="black", linestyle="--", label="threshold")
    histogram.set_xlabel("mel-profile distance to own-label references")
    histogram.set_ylabel("stems")
    histogram.legend()
    figure.tight_layout()
    png_path = out_dir / "report.png"
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return json_path, png_path
