"""When the live loop keeps the prediction path warm (nextblock.runtime.warmth.KeepWarm)."""

from __future__ import annotations

import pytest

from nextblock.runtime.warmth import MISSES_TO_WARM, RECENT_DECISIONS, KeepWarm

MS = 1_000_000


class Clock:
    def __init__(self, now: int = 0):
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_auto_starts_after_enough_recent_misses_and_lasts_the_hold():
    k = KeepWarm("auto", interval_ms=4.0, hold_s=1.0)
    for i in range(3 * RECENT_DECISIONS):  # posts in time: never warm
        k.note_decision(False, i * MS)
    assert not k.active(100 * MS) and k.due_ns(100 * MS) is None
    k.note_decision(True, 200 * MS)
    assert MISSES_TO_WARM == 2 and not k.active(200 * MS), "one miss is not a pattern"
    k.note_decision(True, 210 * MS)
    assert k.active(210 * MS) and k.triggers == 1
    assert k.active(210 * MS + 999 * MS) and not k.active(210 * MS + 1000 * MS)
    k.note_decision(True, 700 * MS)  # still two misses among the recent decisions: renewed
    assert k.active(1600 * MS) and k.triggers == 1


def test_misses_leave_the_window_after_enough_good_decisions():
    k = KeepWarm("auto", hold_s=0.0)
    k.note_decision(True, 0)
    for i in range(RECENT_DECISIONS - 1):
        k.note_decision(False, (i + 1) * MS)
    k.note_decision(True, 100 * MS)  # the first miss has left the window
    assert k.triggers == 0


def test_a_throw_away_prediction_runs_only_when_none_ran_for_an_interval():
    k = KeepWarm("on", interval_ms=4.0)
    clock, ran = Clock(10 * MS), []
    k.note_prediction(9 * MS)  # a real prediction just ended: it warmed the path
    assert not k.maybe_run(lambda: ran.append(clock.now), clock.now, clock)
    assert k.due_ns(clock.now) == 13 * MS
    clock.now = 13 * MS
    assert k.maybe_run(lambda: ran.append(clock.now), clock.now, clock)
    assert ran == [13 * MS] and k.warmups == 1 and k.due_ns(clock.now) == 17 * MS


def test_off_never_warms_and_bad_settings_are_refused():
    k = KeepWarm("off")
    for i in range(RECENT_DECISIONS):
        k.note_decision(True, i)
    assert not k.active(RECENT_DECISIONS) and k.triggers == 0
    with pytest.raises(ValueError, match="keep_warm must be one of"):
        KeepWarm("sometimes")
    with pytest.raises(ValueError, match="interval"):
        KeepWarm("auto", interval_ms=0)
