"""NextBlock on a JackTrip hub server (``jacktrip -S``): one segment per client, streams never cross.

A patched hub server (``--nextblock --simloss``, Regulator) on its own ``jackd`` receives from three
hub clients, each on its own ``jackd`` playing the block-coded signal. For every client stream the
hub's worker creates ``/nextblock-<hub PID>-<port>`` (the header names the client); a test consumer
per segment posts *markers that encode the stream* (tests/jacktrip_patch_harness.py:
:func:`stream_markers`). The hub's received audio of every client is recorded. A third of the way in
one client leaves and a new one joins (the hub may reuse the worker and port). Checks: the hub is
alive at the end, every marker in a client's recording is that client's own and a replacement that
client's stream reported for the seq the marker encodes, each stream had replacements played, and
no segment is left behind.
"""

from __future__ import annotations

import pytest

import jacktrip_patch_harness as H
from test_jacktrip_patch import bins  # noqa: F401  (the patched/stock build fixture)

pytestmark = [pytest.mark.jacktrip, pytest.mark.slow]


def test_hub_streams_each_get_their_own_replacements(bins, tmp_path):  # noqa: F811
    s = H.run_hub_session(bins["patched"], tmp_path, n_clients=3, seconds=12.0, churn=True)
    assert s.hub_alive_at_end, f"the hub server died:\n{s.hub_log[-3000:]}"
    assert s.segments_left == [], f"segments left behind after the hub exited: {s.segments_left}"
    assert len(s.streams) >= 4, (
        f"expected a segment per client (4 clients), got {[(x['segment'], x['stream_name']) for x in s.streams]}"
    )
    assert all(x["segment"].startswith(f"/nextblock-{s.hub_pid}-") for x in s.streams)
    by_name = {x["stream_name"]: x for x in s.streams}
    assert len(s.recordings) >= 3, f"only {len(s.recordings)} client recordings"
    for name, rec in s.recordings.items():
        assert name in by_name, f"no segment names the hub's JACK client {name}: {sorted(by_name)}"
        mine = by_name[name]
        streams = {H.marker_stream(b) for b in rec} - {None}
        assert streams <= {mine["k"]}, f"{name}: markers of other streams {streams - {mine['k']}} in its audio"
        rep = [e for e in mine["events"] if e.is_concealment and e.outcome.name == "REPLACEMENT"]
        assert rep, f"{name}: no replacement was played ({len(mine['events'])} events)"
        # every marker is a replacement this stream reported for the seq it encodes (the Regulator
        # may stretch or shrink the timeline around a loss, so positions are checked by seq)
        marker_seqs = [code % H.STREAM_CODES for kind, code in map(H.classify, rec) if kind == "marker"]
        reported = {e.seq % H.STREAM_CODES for e in rep}
        assert marker_seqs, f"{name}: no marker in the recording although {len(rep)} replacements were played"
        foreign = [q for q in marker_seqs if q not in reported]
        assert len(foreign) <= 0.02 * len(marker_seqs), (
            f"{name}: {len(foreign)} of {len(marker_seqs)} markers are for seqs this stream did not conceal: {foreign[:10]}"
        )
