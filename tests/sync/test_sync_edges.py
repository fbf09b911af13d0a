"""Edge values of the sync's diff and dry run, on DuckDB and PostgreSQL, against the fake server.

The "exactly the tolerance" case in test_sync_diff.py moves 0.18 to 0.2334 (rounded to 0.23),
and 0.23 - 0.18 is 0.05000000000000002 in floating point: neither the boundary nor the slack
for float noise was exercised, and ``> tolerance`` passed every test. Here the values are
exactly representable (0.25, 0.375, 0.125), so "moved by exactly the tolerance" is exact, and
``math.nextafter`` gives the moves one ulp short of it, which only the slack turns into a change.
"""

from __future__ import annotations

import math

import pyarrow as pa

import sqltraits_kit.publishing.sync.diff as sync_diff
from sqltraits_kit.publishing.sync import dry_run, sync
from sqltraits_kit.traits.traitset import TraitSet
from tests.support.sync import make_table, server_profiles

TOLERANCE = 0.125  # a power of two: every value below is exact in binary


def _tolerant(table: str) -> TraitSet:
    return TraitSet.from_dict(
        {
            "name": f"ts_{table}",
            "table": table,
            "traits": {"score": "score"},
            "tolerance": {"score": TOLERANCE},
        }
    )


def test_a_move_of_exactly_the_tolerance_is_sent_and_float_noise_below_it_too(
    wh, unique_name, segment_server, client
):
    ids = ["exact_up", "exact_down", "ulp_short_up", "ulp_short_down", "under", "still"]
    make_table(wh, unique_name, {"user_id": ids, "score": [0.25] * len(ids)})
    ts = _tolerant(unique_name)
    assert sync(wh, ts, client=client).sent == len(ids)

    moved = {
        "exact_up": 0.375,  # |0.375 - 0.25| == 0.125 exactly
        "exact_down": 0.125,
        "ulp_short_up": math.nextafter(0.375, 0.0),  # 0.125 minus one ulp: float noise
        "ulp_short_down": math.nextafter(0.125, 1.0),
        "under": 0.25 + TOLERANCE * (1 - 1e-6),  # well inside the tolerance, past the slack
        "still": 0.25,
    }
    assert moved["exact_up"] - 0.25 == TOLERANCE and 0.25 - moved["exact_down"] == TOLERANCE
    assert moved["ulp_short_up"] - 0.25 < TOLERANCE
    make_table(wh, unique_name, {"user_id": ids, "score": [moved[i] for i in ids]})

    # Six profiles cannot make a distribution: the drift gate would refuse the run.
    result = sync(wh, ts, client=client, allow_drift=True)

    assert (result.changed, result.unchanged, result.sent) == (4, 2, 4)
    held = {k: v["score"] for k, v in server_profiles(segment_server).items()}
    assert held == {**moved, "under": 0.25}


def test_the_dry_run_equals_the_publish_when_removed_profiles_are_kept(
    wh, unique_name, segment_server, client
):
    n = 60
    make_table(wh, unique_name, {"user_id": [f"u{i:03d}" for i in range(n)], "x": list(range(n))})
    sync(wh, unique_name, client=client)
    # 7 removed, 3 changed, 2 new
    keep = [i for i in range(n) if i % 9 != 1] + [n, n + 1]
    x = {i: i + (100 if i in (0, 20, 30) else 0) for i in keep}
    make_table(wh, unique_name, {"user_id": [f"u{i:03d}" for i in keep], "x": [x[i] for i in keep]})

    report = dry_run(wh, unique_name, on_remove="keep", batch_size=4)
    before = segment_server.snapshot()["requests"]
    result = sync(wh, unique_name, client=client, on_remove="keep", batch_size=4)

    assert (report.new, report.changed, report.removed) == (2, 3, 7)
    assert (report.new, report.changed, report.removed, report.unchanged) == (
        result.new,
        result.changed,
        result.removed,
        result.unchanged,
    )
    assert report.to_send == result.sent == 5  # the 7 removed are left alone, not counted
    assert report.requests == result.requests == 2
    assert segment_server.snapshot()["requests"] - before == 2


def test_a_tolerance_trait_to_or_from_null_is_sent_and_the_slack_is_the_exact_edge(
    wh, unique_name, segment_server, client
):
    # The diff compares |current - published| with tolerance * (1 - 1e-9): the slack that lets
    # float noise through. From 0 the move is exactly the value, so the edge itself counts as a
    # change (>=, not >) and one ulp under it does not (the slack is 1e-9, not more).
    edge = TOLERANCE * (1 - 1e-9)
    assert sync_diff._TOLERANCE_SLACK == 1e-9
    ids = ["to_null", "from_null", "at_edge", "under_edge", "both_null"]
    before = {"to_null": 0.25, "from_null": None, "at_edge": 0.0, "under_edge": 0.0}
    after = {"to_null": None, "from_null": 0.25, "at_edge": edge}
    after["under_edge"] = math.nextafter(edge, 0.0)

    def table(values: dict) -> dict:
        score = pa.array([values.get(i) for i in ids], pa.float64())
        return {"user_id": ids, "score": score, "plan": ["p"] * len(ids)}

    make_table(wh, unique_name, table(before))
    ts = _tolerant(unique_name).with_(traits={"score": "score", "plan": "plan"})
    assert sync(wh, ts, client=client).sent == len(ids)
    make_table(wh, unique_name, table(after))

    result = sync(wh, ts, client=client, allow_drift=True)

    # A null on either side is a change whatever the tolerance; null to null is not.
    assert (result.changed, result.unchanged, result.sent) == (3, 2, 3)
    held = {k: v.get("score") for k, v in server_profiles(segment_server).items()}
    assert held == {**after, "under_edge": 0.0, "both_null": None}
