"""The results page and the README's table, from the JSON ``bench/results.py run`` writes.

Every figure is computed here from the benchmarks' own JSON: per (pattern, seed) the difference
of each NextBlock receiver from the stock Regulator on the same losses, then the mean and range
over seeds. A pair of runs in which either side had a timing slip (JackTrip added or dropped a
packet's worth of audio: the alignment moved) or a harness xrun is *flagged*: it is left out of
the means and listed apart, because then the host, not the concealer, shaped part of the audio.

    rows: list of bench/e2e.py rows, each with "seed" added (load_results)
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

BASELINE = "stock-regulator"
#: receivers compared with the baseline, in the order the page shows them
RECEIVER_LABELS = {
    "nextblock-regulator": "NextBlock on the Regulator",
    "nextblock-jitterbuffer": "NextBlock on the default JitterBuffer",
    "nextblock": "NextBlock on the ring buffer",
}
PATTERN_LABELS = {
    "bernoulli-1": "1 % random loss",
    "bernoulli-5": "5 % random loss",
    "bernoulli-10": "10 % random loss",
    "bursts-ge": "bursts (Gilbert 0.02, 0.3; ≈ 6 %)",
    "lossless": "no loss (the ceiling)",
}
METRICS = (("visqol_mos", "ViSQOL"), ("snr_lost_db", "lost-packet SNR dB"), ("lsd_lost_db", "lost-packet LSD dB"))
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Tolerance:
    """How many timing slips and harness xruns a run may have and still count as clean (default none)."""

    max_slips: int = 0
    max_xruns: int = 0

    def describe(self) -> str:
        return (
            f"more than {self.max_slips} timing slip(s) or more than {self.max_xruns} xrun(s)"
            if (self.max_slips or self.max_xruns)
            else "a timing slip or an xrun"
        )


@dataclass
class Results:
    """What the page is made of: the e2e rows (with seeds), attach results by scenario, the host."""

    rows: list[dict]
    attach: dict[str, dict] = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    seconds: float | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)


def load_results(folder: Path) -> Results:
    """Read ``e2e-seed*.json``, ``attach-*.json`` and ``host.json`` from ``folder``."""
    rows, seconds = [], None
    for f in sorted(folder.glob("e2e-seed*.json")):
        d = json.loads(f.read_text())
        seconds = d.get("seconds", seconds)
        rows += [{**r, "seed": d["seed"]} for r in d["rows"]]
    attach = {f.stem.removeprefix("attach-"): json.loads(f.read_text()) for f in sorted(folder.glob("attach-*.json"))}
    host = json.loads((folder / "host.json").read_text()) if (folder / "host.json").exists() else {}
    return Results(rows=rows, attach=attach, host=host, seconds=seconds)


def xruns_total(row: dict) -> int:
    """The harness's xruns in one run (player + recorder)."""
    x = row.get("xruns") or {}
    return int(x.get("player") or 0) + int(x.get("recorder") or 0)


def flag_reasons(row: dict, tol: Tolerance = Tolerance()) -> list[str]:
    """Why one run is not clean: ``["3 timing slips", "2 xruns"]``, or ``[]``."""
    reasons = []
    if (row.get("timing_slips") or 0) > tol.max_slips:
        reasons.append(f"{row['timing_slips']} timing slips")
    if xruns_total(row) > tol.max_xruns:
        reasons.append(f"{xruns_total(row)} xruns")
    return reasons


@dataclass
class Pair:
    """One receiver against the baseline on the same pattern and seed."""

    pattern: str
    seed: int
    receiver: str
    row: dict
    base: dict
    tol: Tolerance = Tolerance()

    def delta(self, metric: str) -> float | None:
        a, b = self.row.get(metric), self.base.get(metric)
        return None if a is None or b is None else a - b

    @property
    def flags(self) -> list[str]:
        return [
            f"{who}: {r}"
            for who, row in ((self.receiver, self.row), (BASELINE, self.base))
            for r in flag_reasons(row, self.tol)
        ]


def pairs(rows: list[dict], tol: Tolerance = Tolerance()) -> list[Pair]:
    """Every (pattern, seed, receiver) that has a baseline run on the same pattern and seed."""
    base = {(r["pattern"], r["seed"]): r for r in rows if r["receiver"] == BASELINE}
    return [
        Pair(r["pattern"], r["seed"], r["receiver"], r, base[(r["pattern"], r["seed"])], tol)
        for r in rows
        if r["receiver"] in RECEIVER_LABELS and (r["pattern"], r["seed"]) in base
    ]


@dataclass
class Summary:
    """Mean and range over the clean seeds of one (pattern, receiver, metric)."""

    mean: float | None
    low: float | None
    high: float | None
    n: int


def summarize(values: list[float | None]) -> Summary:
    v = [x for x in values if x is not None]
    if not v:
        return Summary(None, None, None, 0)
    return Summary(statistics.fmean(v), min(v), max(v), len(v))


def delta_summary(ps: list[Pair], pattern: str, receiver: str, metric: str) -> Summary:
    """The difference from the baseline over the clean pairs only."""
    return summarize([p.delta(metric) for p in ps if p.pattern == pattern and p.receiver == receiver and not p.flags])


def absolute_summary(
    rows: list[dict], pattern: str, receiver: str, metric: str, tol: Tolerance = Tolerance()
) -> Summary:
    """A receiver's own score over its clean runs (for the ceiling and the baseline's level)."""
    return summarize(
        [
            r.get(metric)
            for r in rows
            if r["pattern"] == pattern and r["receiver"] == receiver and not flag_reasons(r, tol)
        ]
    )


def _signed(x: float | None, nd: int) -> str:
    return "–" if x is None else f"{x:+.{nd}f}"


def _db(x: float | None, nd: int) -> str:
    return "–" if x is None else f"{x:+.{nd}f} dB"


def fmt_delta(s: Summary, nd: int = 3) -> str:
    """``+0.087 (+0.083 … +0.091, 3 seeds)``; one seed: ``+0.087 (1 seed)``; none: ``–``."""
    if s.n == 0:
        return "–"
    if s.n == 1:
        return f"{_signed(s.mean, nd)} (1 seed)"
    return f"{_signed(s.mean, nd)} ({_signed(s.low, nd)} … {_signed(s.high, nd)}, {s.n} seeds)"


def fmt_abs(s: Summary, nd: int = 2) -> str:
    return "–" if s.n == 0 else f"{s.mean:.{nd}f}"


def _patterns(rows: list[dict]) -> list[str]:
    seen = {r["pattern"] for r in rows}
    return [p for p in PATTERN_LABELS if p in seen] + sorted(seen - set(PATTERN_LABELS))


def _date(results: Results) -> str:
    return (results.host.get("finished_utc") or results.host.get("started_utc") or "undated")[:10]


def machine_line(host: dict) -> str:
    load = host.get("load_average_start"), host.get("load_average_end")
    loads = " → ".join("/".join(f"{x:.1f}" for x in la) for la in load if la)
    return (
        f"{host.get('cores', '?')} cores of {host.get('cpu_model', '?')}, {host.get('memory_gib', '?')} GiB; "
        f"load average (1/5/15 min) {loads or '?'} (start → end)"
    )


def render_readme_table(results: Results, receiver: str = "nextblock-regulator") -> str:
    """The README's small table: what NextBlock on the Regulator gains over the stock one."""
    ps = pairs(results.rows, results.tolerance)
    lines = [
        BEGIN,
        f"Live, against the stock Regulator on the same losses ({_date(results)}, "
        f"{results.host.get('cores', '?')}-core {results.host.get('cpu_model', '?')}, "
        f"`scripts/results.sh{' --quick' if results.host.get('quick') else ''}`; "
        "mean over the seeds without " + results.tolerance.describe() + "; ranges and the others in "
        "[docs/results.md](docs/results.md)):",
        "",
        "| loss | ViSQOL, stock Regulator | NextBlock: ΔViSQOL | Δ lost-packet SNR | Δ lost-packet LSD |",
        "| --- | --- | --- | --- | --- |",
    ]
    for pat in _patterns(results.rows):
        if pat == "lossless":
            continue
        base = absolute_summary(results.rows, pat, BASELINE, "visqol_mos", results.tolerance)
        dv = delta_summary(ps, pat, receiver, "visqol_mos")
        ds = delta_summary(ps, pat, receiver, "snr_lost_db")
        dl = delta_summary(ps, pat, receiver, "lsd_lost_db")
        lines.append(
            f"| {PATTERN_LABELS.get(pat, pat)} | {fmt_abs(base)} | {_signed(dv.mean, 3)} | "
            f"{_db(ds.mean, 1)} | {_db(dl.mean, 2)} |"
        )
    mine = [p for p in ps if p.receiver == receiver and p.pattern != "lossless"]
    flagged = [p for p in mine if p.flags]
    if flagged:
        lines += [
            "",
            f"{len(flagged)} of {len(mine)} runs had {results.tolerance.describe()} (on either side) and are "
            "not in these means"
            + (" — none was clean: the machine was too busy for these figures" if len(flagged) == len(mine) else "")
            + "; docs/results.md lists them.",
        ]
    ceiling = absolute_summary(results.rows, "lossless", BASELINE, "visqol_mos", results.tolerance)
    if ceiling.n:
        lines += [
            "",
            f"Without any loss the same pipeline scores ViSQOL {ceiling.mean:.2f}: no concealer can gain more.",
        ]
    return "\n".join(lines + [END])


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with everything from BEGIN to END replaced by ``block`` (which holds both markers)."""
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        raise ValueError(f"no {BEGIN} … {END} markers in the text")
    return text[:i] + block + text[j + len(END) :]


def _e2e_section(results: Results) -> list[str]:
    ps = pairs(results.rows, results.tolerance)
    seeds = sorted({r["seed"] for r in results.rows})
    out = [
        "## Live, end to end: NextBlock against the stock Regulator",
        "",
        f"`bench/e2e.py --fallback regulator --patched nextblock-regulator --patched nextblock-jitterbuffer "
        f"--patched nextblock` "
        f"({results.seconds or '?'} s per run of a test-split recording, seeds {', '.join(map(str, seeds))}): "
        "patched and stock JackTrip 2.7.2 over the seeded relay (every receiver loses the same packets), "
        "two jackd dummy servers. Differences from the stock Regulator (`--bufstrategy 3`, Burg) on the same "
        "pattern and seed; mean (lowest … highest) over the clean seeds, computed by `bench/results_page.py` from "
        "the benchmark's JSON. Receivers without runs in the JSON (e.g. "
        "`nextblock-jitterbuffer` in a run made before `bench/e2e.py` had it) are left out.",
        "",
    ]
    for rec, label in RECEIVER_LABELS.items():
        if not any(p.receiver == rec for p in ps):
            continue
        out += [
            f"**{label}** (`{rec}`)",
            "",
            "| loss | stock ViSQOL | ΔViSQOL | Δ lost-packet SNR dB | Δ lost-packet LSD dB | NextBlock share of concealments while attached |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for pat in _patterns(results.rows):
            share = absolute_summary(results.rows, pat, rec, "nextblock_concealed_share", results.tolerance)
            out.append(
                f"| {PATTERN_LABELS.get(pat, pat)} | {fmt_abs(absolute_summary(results.rows, pat, BASELINE, 'visqol_mos', results.tolerance))} | "
                f"{fmt_delta(delta_summary(ps, pat, rec, 'visqol_mos'), 3)} | "
                f"{fmt_delta(delta_summary(ps, pat, rec, 'snr_lost_db'), 2)} | "
                f"{fmt_delta(delta_summary(ps, pat, rec, 'lsd_lost_db'), 2)} | {fmt_abs(share)} |"
            )
        out.append("")
    flagged = [p for p in ps if p.flags]
    out += [f"**Runs reported apart** ({results.tolerance.describe()} on either side; not in the means above):", ""]
    if flagged:
        out += [
            "| loss | seed | receiver | ΔViSQOL | Δ lost-packet SNR dB | why |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        out += [
            f"| {p.pattern} | {p.seed} | {p.receiver} | {_signed(p.delta('visqol_mos'), 3)} | "
            f"{_signed(p.delta('snr_lost_db'), 2)} | {'; '.join(p.flags)} |"
            for p in flagged
        ]
    else:
        out.append("none: every pair ran within the tolerance.")
    out += [
        "",
        "Every run, as the benchmark wrote it (two-sided share: of the concealments attach replaced, those "
        "filled from both sides):",
        "",
        "| loss | seed | receiver | dropped | ViSQOL | SNR lost dB | LSD lost dB | two-sided share | slips | xruns "
        "| in the means |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(
        results.rows, key=lambda r: (_patterns(results.rows).index(r["pattern"]), r["seed"], r["receiver"])
    ):
        f = lambda v, nd=2: "–" if v is None else f"{v:.{nd}f}"  # noqa: E731
        out.append(
            f"| {r['pattern']} | {r['seed']} | {r['receiver']} | {r.get('dropped_packets', '–')} | "
            f"{f(r.get('visqol_mos'), 3)} | {f(r.get('snr_lost_db'))} | {f(r.get('lsd_lost_db'))} | "
            f"{f((r.get('attach_stats') or {}).get('two_sided_share'))} | {r.get('timing_slips', '–')} | {xruns_total(r)} | {'no' if flag_reasons(r, results.tolerance) else 'yes'} |"
        )
    return out + [""]


def _attach_section(results: Results) -> list[str]:
    if not results.attach:
        return []
    out = [
        "## Live runtime cost: `nextblock attach` against JackTrip's Burg",
        "",
        "`bench/attach.py --realtime`: the JackTrip stand-in plays N stereo streams at 48 kHz × 128 with seeded "
        "losses; `nextblock attach` with the shipped model on one core, a busy loop on the other. Burg is "
        f"JackTrip's own `BurgAlgorithm`, compiled {results.host.get('burg_build', 'with -O3')} as JackTrip's "
        "release build, timed on the same concealments.",
        "",
        "| scenario | command | mode | concealments replaced (worst stream) | CPU of one core | Burg's CPU | NextBlock / Burg | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, a in results.attach.items():
        share = a.get("replacement_share")
        worst = a.get("replacement_share_min")
        f = lambda v, fmt: "–" if v is None else format(v, fmt)  # noqa: E731
        out.append(
            f"| {name} | `{a.get('command', 'bench/attach.py')}` | {a.get('mode', '–')} | "
            f"{f(share, '.3f')} ({f(worst, '.3f')}) | {f(a.get('cpu_share'), '.4f')} | "
            f"{f(a.get('burg_cpu_share'), '.4f')} | {f(a.get('cpu_ratio_to_burg'), '.1f')}× | "
            f"{f(a.get('load_average_1min'), '.1f')} |"
        )
    return out + [""]


def render_page(results: Results, results_dir: str = "runs/results") -> str:
    """``docs/results.md``: dated, with the machine, the live tables and where the offline ones come from."""
    h = results.host
    versions = sorted({a.get("model_version") for a in results.attach.values() if a.get("model_version")})
    head = [
        "# Results",
        "",
        "<!-- generated by scripts/results.sh (bench/results.py page); do not edit by hand -->",
        "",
        f"Generated from `{results_dir}/` of a run started {h.get('started_utc', '?')} and finished "
        f"{h.get('finished_utc', '?')} ({'`scripts/results.sh --quick`: one seed, short runs' if h.get('quick') else '`scripts/results.sh`'}), "
        f"commit {h.get('commit', '?')}, model `{h.get('model', '?')}` (sha256 {h.get('model_sha256', '?')}"
        f"{', version ' + ', '.join(versions) if versions else ''}).",
        "",
        f"Machine: {machine_line(h)}. A busy machine makes the live figures pessimistic and the timing "
        "slips and xruns more frequent; re-run on a quiet one with `scripts/results.sh`.",
        "",
    ]
    offline = [
        "## Offline: held-out audio by category",
        "",
        "These tables score the predictions themselves on test-split recordings, with every concealer on "
        "the same loss masks (`nextblock evaluate`); they are in the model card, each named by its command:",
        "",
        "| table | command | where |",
        "| --- | --- | --- |",
        "| SNR / LSD by category at 48 kHz × {64, 128, 256} and 44.1 kHz × 128, Bernoulli 5 % and Gilbert bursts; "
        "ViSQOL subset; float16; latency by block size | `scripts/model_card_tables.sh` (~25 min on 2 cores) | "
        '[models/MODEL_CARD.md](../models/MODEL_CARD.md), "Quantitative analyses" |',
        "| two-sided NextBlock (the block after a loss in hand) at every configuration | "
        '`scripts/two_sided_tables.sh` | [models/MODEL_CARD.md](../models/MODEL_CARD.md), "Two-sided use" |',
        "",
    ]
    return "\n".join(head + _e2e_section(results) + _attach_section(results) + offline)
