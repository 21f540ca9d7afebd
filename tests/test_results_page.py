"""The results page's arithmetic: deltas against the stock Regulator, seed means and ranges, flags.

The fixture ``tests/data/results/`` is what the live benchmarks wrote in a short run on this
machine class (``bench/e2e.py``, ``bench/attach.py`` via ``bench/results.py run``), trimmed to the
fields the page reads; the expected figures are recomputed here from the rows themselves.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import results_page as rp  # noqa: E402

FIXTURE = REPO / "tests" / "data" / "results"


def _rows(results, receiver, pattern):
    return {r["seed"]: r for r in results.rows if r["receiver"] == receiver and r["pattern"] == pattern}


def test_fixture_is_a_real_benchmark_output():
    res = rp.load_results(FIXTURE)
    assert res.rows, "no e2e rows in the fixture"
    assert {r["receiver"] for r in res.rows} >= {rp.BASELINE, "nextblock-regulator"}
    assert all(isinstance(r["xruns"], dict) and "timing_slips" in r for r in res.rows)


def test_delta_is_receiver_minus_stock_on_the_same_pattern_and_seed():
    res = rp.load_results(FIXTURE)
    loose = rp.Tolerance(max_slips=10**6, max_xruns=10**6)
    ps = rp.pairs(res.rows, loose)
    assert ps
    for p in ps:
        base = _rows(res, rp.BASELINE, p.pattern)[p.seed]
        assert p.delta("visqol_mos") == pytest.approx(p.row["visqol_mos"] - base["visqol_mos"])
        if p.pattern == "lossless":  # nothing lost: no lost-packet scores, so no difference either
            assert p.delta("lsd_lost_db") is None
        else:
            assert p.delta("lsd_lost_db") == pytest.approx(p.row["lsd_lost_db"] - base["lsd_lost_db"])
        assert not p.flags


def test_seed_mean_and_range_are_computed_over_clean_seeds_only():
    res = rp.load_results(FIXTURE)
    loose = rp.Tolerance(max_slips=10**6, max_xruns=10**6)
    pattern = res.rows[0]["pattern"]
    # three seeds made from the real rows: seed 2 and 3 shifted, seed 3 with a timing slip
    rows = list(res.rows)
    for seed, shift, slips in ((2, 0.10, 0), (3, 0.50, 7)):
        for r in res.rows:
            if r["pattern"] == pattern and r["seed"] == res.rows[0]["seed"]:
                s = copy.deepcopy(r)
                s["seed"] = seed
                s["xruns"] = {"player": 0, "recorder": 0}
                s["timing_slips"] = slips if r["receiver"] == "nextblock-regulator" else 0
                if r["receiver"] == "nextblock-regulator":
                    s["visqol_mos"] = r["visqol_mos"] + shift
                rows.append(s)
    for r in rows:  # seed 1 clean too
        if r["seed"] == res.rows[0]["seed"]:
            r["xruns"], r["timing_slips"] = {"player": 0, "recorder": 0}, 0
    ps = rp.pairs(rows)
    d1 = (
        _rows(res, "nextblock-regulator", pattern)[res.rows[0]["seed"]]["visqol_mos"]
        - _rows(res, rp.BASELINE, pattern)[res.rows[0]["seed"]]["visqol_mos"]
    )
    s = rp.delta_summary(ps, pattern, "nextblock-regulator", "visqol_mos")
    assert s.n == 2, "the seed with a timing slip must be left out"
    assert s.mean == pytest.approx(statistics.fmean([d1, d1 + 0.10]))
    assert (s.low, s.high) == (pytest.approx(d1), pytest.approx(d1 + 0.10))
    flagged = [p for p in ps if p.flags]
    assert [(p.seed, p.receiver) for p in flagged] == [(3, "nextblock-regulator")]
    assert "7 timing slips" in flagged[0].flags[0]
    # with the slip tolerated, all three count
    assert (
        rp.delta_summary(rp.pairs(rows, rp.Tolerance(max_slips=7)), pattern, "nextblock-regulator", "visqol_mos").n == 3
    )
    del loose


def test_xruns_flag_a_run_and_the_page_reports_it_apart():
    res = rp.load_results(FIXTURE)
    noisy = [r for r in res.rows if rp.xruns_total(r) > 0]
    assert noisy, "the fixture's short run on a busy machine had xruns"
    page = rp.render_page(res)
    assert "Runs reported apart" in page
    worst = max(noisy, key=rp.xruns_total)
    assert f"{rp.xruns_total(worst)} xruns" in page
    # strict tolerance: a pattern whose every pair is flagged has no mean in the README table
    table = rp.render_readme_table(res)
    mine = [p for p in rp.pairs(res.rows) if p.receiver == "nextblock-regulator" and p.pattern != "lossless"]
    n_flagged = sum(bool(p.flags) for p in mine)
    assert n_flagged, "the fixture's run had xruns on every pair"
    assert f"{n_flagged} of {len(mine)} runs had" in table
    if n_flagged == len(mine):
        assert "| – |" in table and "none was clean" in table


def test_readme_table_replaces_only_the_marked_block():
    res = rp.load_results(FIXTURE)
    res.tolerance = rp.Tolerance(max_slips=10**6, max_xruns=10**6)
    text = f"head\n{rp.BEGIN}\nold table\n{rp.END}\ntail\n"
    out = rp.replace_between_markers(text, rp.render_readme_table(res))
    assert out.startswith("head\n") and out.endswith("\ntail\n") and "old table" not in out
    pattern = next(p for p in rp.PATTERN_LABELS if p in {r["pattern"] for r in res.rows} and p != "lossless")
    p = next(
        p for p in rp.pairs(res.rows, res.tolerance) if p.pattern == pattern and p.receiver == "nextblock-regulator"
    )
    assert f"{p.delta('visqol_mos'):+.3f}" in out
    with pytest.raises(ValueError):
        rp.replace_between_markers("no markers", "x")


def test_attach_section_reads_the_benchmark_json(tmp_path):
    for f in FIXTURE.iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    attach = sorted(FIXTURE.glob("attach-*.json"))
    assert attach, "the fixture holds bench/attach.py's JSON"
    res = rp.load_results(tmp_path)
    a = json.loads(attach[0].read_text())
    page = rp.render_page(res)
    assert f"{a['cpu_share']:.4f}" in page
    assert "-O3" in page and "--realtime" in page
    assert res.host["cores"] >= 1 and f"{res.host['cores']} cores of {res.host['cpu_model']}" in page
