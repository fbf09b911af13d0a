"""The diff against the acknowledged state, on DuckDB and PostgreSQL, end to end with the server."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from sqltraits_kit.errors import ConfigError, UnknownTableError
from sqltraits_kit.publishing.sync import (
    Query,
    dry_run,
    history,
    published_keys,
    published_snapshot,
    state_table_name,
    sync,
)
from sqltraits_kit.publishing.sync.destination import client_destination
from sqltraits_kit.traits.drift import compare
from sqltraits_kit.traits.traitset import TraitSet
from tests.support.sync import assert_server_holds, make_table, server_profiles

N = 300


def _scores(n: int = N, *, shift: dict[int, float] | None = None, drop: set[int] = frozenset()):
    shift = shift or {}
    keep = [i for i in range(n) if i not in drop]
    return {
        "user_id": [f"u{i:04d}" for i in keep],
        "score": [round(i / n + shift.get(i, 0.0), 4) for i in keep],
        "orders": [i % 7 for i in keep],
        "tier": [None if i % 11 == 0 else ("gold" if i % 3 else "silver") for i in keep],
        "active": [i % 2 == 0 for i in keep],
    }


def _ids(server, since: int = 0) -> list[str]:
    return sorted(m.get("userId") or m["groupId"] for m in server.messages[since:])


def test_first_publish_sends_every_profile_then_nothing(wh, unique_name, segment_server, client):
    make_table(wh, unique_name, _scores())
    first = sync(wh, unique_name, client=client, batch_size=100)
    assert first.status == "succeeded" and first.ok
    assert (first.rows, first.new, first.changed, first.removed, first.unchanged) == (
        N,
        N,
        0,
        0,
        0,
    )
    assert (first.sent, first.failed, first.requests) == (N, 0, 3)
    assert_server_holds(segment_server, wh, unique_name)

    second = sync(wh, unique_name, client=client, batch_size=100)
    assert (second.new, second.changed, second.unchanged, second.sent, second.requests) == (
        0,
        0,
        N,
        0,
        0,
    )
    assert segment_server.snapshot()["messages_received"] == N  # nothing sent again

    runs = history(wh, sync_key=f"table:{unique_name}:identify")
    assert list(runs["run_id"]) == [second.run_id, first.run_id]
    assert list(runs["status"]) == ["succeeded", "succeeded"]
    assert list(runs["sent"]) == [0, N]
    assert {"run_id", "started_at", "finished_at", "requests", "failed"} <= set(runs.columns)


def test_only_changed_rows_are_sent_with_their_values(wh, unique_name, segment_server, client):
    make_table(wh, unique_name, _scores())
    sync(wh, unique_name, client=client)
    before = len(segment_server.messages)
    changed = {3: 0.5, 77: -0.01, 150: 0.25}
    data = _scores(shift=changed)
    data["tier"][10] = "platinum"  # a string change
    data["active"][20] = not data["active"][20]  # a boolean change
    make_table(wh, unique_name, data)

    result = sync(wh, unique_name, client=client)
    assert (result.changed, result.new, result.removed, result.sent) == (5, 0, 0, 5)
    assert result.unchanged == N - 5
    assert _ids(segment_server, before) == ["u0003", "u0010", "u0020", "u0077", "u0150"]
    assert_server_holds(segment_server, wh, unique_name)


def test_removed_profiles_are_nulled_by_default_or_kept(wh, unique_name, segment_server, client):
    make_table(wh, unique_name, _scores(50))
    sync(wh, unique_name, client=client)
    make_table(wh, unique_name, _scores(50, drop={1, 2, 3}))
    key = f"table:{unique_name}:identify"

    kept = sync(wh, unique_name, client=client, on_remove="keep")
    assert (kept.removed, kept.sent) == (3, 0)
    assert server_profiles(segment_server)["u0002"]["orders"] == 2  # left alone
    assert published_snapshot(wh, key).count().execute() == 50  # Segment still holds them

    nulled = sync(wh, unique_name, client=client)
    assert (nulled.removed, nulled.sent) == (3, 3)
    assert server_profiles(segment_server)["u0002"] == {
        "score": None,
        "orders": None,
        "tier": None,
        "active": None,
    }
    assert_server_holds(segment_server, wh, unique_name)
    assert published_snapshot(wh, key).count().execute() == 47

    again = sync(wh, unique_name, client=client)
    assert (again.removed, again.sent) == (0, 0)  # tombstoned: not nulled twice

    make_table(wh, unique_name, _scores(50, drop={1, 3}))
    back = sync(wh, unique_name, client=client)
    assert (back.new, back.sent) == (1, 1)
    assert_server_holds(segment_server, wh, unique_name)


def test_nulls_compare_null_safely(wh, unique_name, segment_server, client):
    make_table(wh, unique_name, {"user_id": ["a", "b", "c"], "x": [1.0, None, None]})
    sync(wh, unique_name, client=client)
    make_table(wh, unique_name, {"user_id": ["a", "b", "c"], "x": [None, None, 2.0]})
    result = sync(wh, unique_name, client=client)
    assert (result.changed, result.unchanged) == (2, 1)
    assert server_profiles(segment_server) == {"a": {"x": None}, "b": {"x": None}, "c": {"x": 2.0}}


def _trait_set(table: str, **extra) -> TraitSet:
    return TraitSet.from_dict(
        {
            "name": f"ts_{table}",
            "table": table,
            "traits": {"score": "churn_score", "orders": "orders"},
            "decimals": {"churn_score": 2},
            "tolerance": {"churn_score": 0.05},
            "derived": [
                {
                    "name": "risk",
                    "type": "tiers",
                    "column": "score",
                    "thresholds": [0.5],
                    "labels": ["low", "high"],
                }
            ],
            **extra,
        }
    )


def test_trait_set_rounding_and_tolerance_against_the_acknowledged_value(
    wh, unique_name, segment_server, client
):
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.1234, 0.9], "orders": [1, 2]})
    ts = _trait_set(unique_name)
    first = sync(wh, ts, client=client)
    assert first.sync_key == ts.name and first.sent == 2
    assert server_profiles(segment_server)["a"] == {"churn_score": 0.12, "orders": 1, "risk": "low"}

    # +0.03: under the 0.05 tolerance, not sent
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.1534, 0.9], "orders": [1, 2]})
    small = sync(wh, ts, client=client)
    assert (small.changed, small.sent) == (0, 0)
    # another +0.03: 0.06 away from what Segment holds (0.12), so it is sent now
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.1834, 0.9], "orders": [1, 2]})
    drifted = sync(wh, ts, client=client)
    assert (drifted.changed, drifted.sent) == (1, 1)
    assert server_profiles(segment_server)["a"]["churn_score"] == 0.18
    # exactly the tolerance counts as a change ("smaller changes are not re-sent")
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.2334, 0.9], "orders": [1, 2]})
    assert sync(wh, ts, client=client).sent == 1
    # a trait without tolerance: any change is sent
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.2334, 0.9], "orders": [1, 3]})
    assert sync(wh, ts, client=client).sent == 1
    assert server_profiles(segment_server)["b"] == {"churn_score": 0.9, "orders": 3, "risk": "high"}


def test_a_tier_is_re_sent_only_with_the_toleranced_value_it_derives_from(
    wh, unique_name, segment_server, client
):
    ts = _trait_set(unique_name)
    assert ts.tolerance_followers() == {"risk": "churn_score"}
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.48, 0.9], "orders": [1, 2]})
    assert sync(wh, ts, client=client, allow_drift=True).sent == 2
    assert server_profiles(segment_server)["a"] == {"churn_score": 0.48, "orders": 1, "risk": "low"}

    # 0.48 -> 0.51 crosses the tier's 0.5 but moves less than the 0.05 tolerance: Segment keeps
    # 0.48 and "low", which agree; the dry run says the same as the publish
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.51, 0.9], "orders": [1, 2]})
    assert dry_run(wh, ts).to_send == 0
    assert sync(wh, ts, client=client, allow_drift=True).sent == 0
    assert server_profiles(segment_server)["a"] == {"churn_score": 0.48, "orders": 1, "risk": "low"}
    # moved by the tolerance: the value and its tier go together
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.53, 0.9], "orders": [1, 2]})
    assert sync(wh, ts, client=client, allow_drift=True).sent == 1
    assert server_profiles(segment_server)["a"] == {
        "churn_score": 0.53,
        "orders": 1,
        "risk": "high",
    }
    # another trait changing re-sends the profile with its current values, within tolerance or not
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.53, 0.88], "orders": [1, 5]})
    assert sync(wh, ts, client=client, allow_drift=True).sent == 1
    assert server_profiles(segment_server)["b"] == {
        "churn_score": 0.88,
        "orders": 5,
        "risk": "high",
    }

    # without a tolerance the tier is compared exactly: a boundary crossing is sent at once
    exact = _trait_set(unique_name, tolerance={}, name=f"exact_{unique_name}")
    assert exact.tolerance_followers() == {}
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.49, 0.88], "orders": [1, 5]})
    assert sync(wh, exact, client=client, allow_drift=True).sent == 2
    make_table(wh, unique_name, {"user_id": ["a", "b"], "score": [0.5, 0.88], "orders": [1, 5]})
    assert sync(wh, exact, client=client, allow_drift=True).sent == 1


def test_a_relative_tolerance_scales_with_the_value_segment_holds(
    wh, unique_name, segment_server, client
):
    spec = {
        "name": f"rel_{unique_name}",
        "table": unique_name,
        "traits": {"ltv": "ltv"},
        "decimals": {"ltv": 2},
        "tolerance": {"ltv": 1.0},
        "relative_tolerance": {"ltv": 0.05},
    }
    ts = TraitSet.from_dict(spec)
    ids = ["small", "big", "zero", "null"]
    make_table(wh, unique_name, {"user_id": ids, "ltv": [10.0, 1000.0, 0.0, None]})
    assert sync(wh, ts, client=client, allow_drift=True).sent == 4
    # small: +1.5 is over the absolute 1.0 (5% of 10 is 0.5): sent. big: +40 is under 5% of
    # 1000: kept. zero: 0 -> 0.5, under the absolute bound. null -> a value: always sent.
    make_table(wh, unique_name, {"user_id": ids, "ltv": [11.5, 1040.0, 0.5, 3.0]})
    report = dry_run(wh, ts)
    result = sync(wh, ts, client=client, allow_drift=True)
    assert (report.changed, result.changed, result.sent) == (2, 2, 2)
    held = server_profiles(segment_server)
    assert (held["small"]["ltv"], held["big"]["ltv"], held["null"]["ltv"]) == (11.5, 1000.0, 3.0)
    # big: exactly 5% of what Segment holds (1000 -> 1050) is a change; 5% of the *current*
    # value would not be the rule (1049.99 is under 5% of 1000 by a cent)
    make_table(wh, unique_name, {"user_id": ids, "ltv": [11.5, 1049.99, 0.5, 3.0]})
    assert sync(wh, ts, client=client, allow_drift=True).sent == 0
    make_table(wh, unique_name, {"user_id": ids, "ltv": [11.5, 1050.0, 0.5, 3.0]})
    assert sync(wh, ts, client=client, allow_drift=True).sent == 1
    assert server_profiles(segment_server)["big"]["ltv"] == 1050.0
    # a relative tolerance alone never counts an unchanged zero as moved
    alone = TraitSet.from_dict({**spec, "name": f"alone_{unique_name}", "tolerance": {}})
    make_table(wh, unique_name, {"user_id": ids, "ltv": [0.0, 0.0, 0.0, 0.0]})
    assert sync(wh, alone, client=client, allow_drift=True).sent == 4
    assert dry_run(wh, alone).to_send == 0


def test_deciles_whose_cut_points_move_are_not_a_reason_to_re_send(
    wh, unique_name, segment_server, client
):
    """A decile's cut points move with the population: a profile whose own value stayed within
    its tolerance keeps its published value and decile; without a tolerance it is re-sent."""
    ids = [f"u{i:03d}" for i in range(100)]
    spec = {
        "name": f"deciles_{unique_name}",
        "table": unique_name,
        "traits": {"ltv": "ltv"},
        "decimals": {"ltv": 2},
        "tolerance": {"ltv": 1.0},
        "derived": [{"name": "ltv_decile", "type": "quantiles", "column": "ltv", "bins": 10}],
    }
    ts = TraitSet.from_dict(spec)
    make_table(wh, unique_name, {"user_id": ids, "ltv": [float(i) for i in range(100)]})
    assert sync(wh, ts, client=client, allow_drift=True).sent == 100
    # the 20 lowest values jump above every other: the cut points move and so do the deciles
    # of profiles whose own value did not move at all
    moved = [float(i) + (200.0 if i < 20 else 0.0) for i in range(100)]
    make_table(wh, unique_name, {"user_id": ids, "ltv": moved})
    result = sync(wh, ts, client=client, allow_drift=True)
    assert (result.changed, result.sent) == (20, 20)
    held = server_profiles(segment_server)
    assert held["u029"] == {"ltv": 29.0, "ltv_decile": 3}  # its value stayed: published decile
    assert held["u019"] == {"ltv": 219.0, "ltv_decile": 10}
    # the same data without a tolerance re-sends every profile whose decile moved as well
    exact = TraitSet.from_dict({**spec, "name": f"exact_{unique_name}", "tolerance": {}})
    make_table(wh, unique_name, {"user_id": ids, "ltv": [float(i) for i in range(100)]})
    assert sync(wh, exact, client=client, allow_drift=True).sent == 100
    make_table(wh, unique_name, {"user_id": ids, "ltv": moved})
    report = dry_run(wh, exact)
    assert report.to_send > 20  # the 20 that moved, and the deciles that moved under others


def test_group_traits_go_to_accounts(wh, unique_name, segment_server, client):
    make_table(wh, unique_name, {"group_id": ["acme", "globex"], "seats": [10, 25]})
    result = sync(wh, unique_name, client=client, kind="group")
    assert result.sync_key == f"table:{unique_name}:group" and result.sent == 2
    assert segment_server.group_traits("acme") == {"seats": 10}
    assert_server_holds(
        segment_server, wh, unique_name, id_column="group_id", collection="accounts"
    )


def test_a_query_is_a_source_and_integer_ids_become_strings(
    wh, unique_name, segment_server, client
):
    make_table(wh, unique_name, {"user_id": [1, 2, 3], "score": [0.5, 0.6, 0.7]})
    query = Query(f"SELECT user_id, score * 2 AS double_score FROM {unique_name} WHERE user_id > 1")
    result = sync(wh, query, client=client)
    assert result.sent == 2 and result.sync_key.startswith("query:")
    held = server_profiles(segment_server)
    assert held == {"2": {"double_score": 1.2}, "3": {"double_score": 1.4}}
    assert sync(wh, query, client=client).sent == 0


def test_a_new_trait_column_resends_every_profile(wh, unique_name, segment_server, client):
    make_table(wh, unique_name, {"user_id": ["a", "b"], "x": [1, 2]})
    sync(wh, unique_name, client=client)
    make_table(wh, unique_name, {"user_id": ["a", "b"], "x": [1, 2], "y": ["p", "q"]})
    result = sync(wh, unique_name, client=client)
    assert (result.changed, result.sent) == (2, 2)
    snapshot = published_snapshot(wh, f"table:{unique_name}:identify")
    assert snapshot.columns == ("user_id", "x", "y")
    # a trait whose type changed to text is re-sent too: "1" and 1 differ for Segment
    make_table(wh, unique_name, {"user_id": ["a", "b"], "x": ["1", "2"], "y": ["p", "q"]})
    assert sync(wh, unique_name, client=client).sent == 2
    assert server_profiles(segment_server)["a"] == {"x": "1", "y": "p"}


def test_published_snapshot_is_the_previews_drift_baseline(wh, unique_name, client):
    make_table(wh, unique_name, _scores())
    key = f"table:{unique_name}:identify"
    assert published_snapshot(wh, key) is None
    sync(wh, unique_name, client=client)
    snapshot = published_snapshot(wh, key)
    current = wh.table(unique_name)
    assert snapshot.count().execute() == N
    assert set(snapshot.columns) == set(current.columns)
    report = compare(current, snapshot, id_column="user_id", numeric=["score"], categorical=[])
    assert math.isclose(report.max_psi, 0.0, abs_tol=1e-9)
    keys = {k["sync_key"]: k for k in published_keys(wh)}
    assert keys[key]["state_table"] == state_table_name(key, client_destination(client))


def test_dry_run_counts_and_sample_match_what_a_publish_sends(
    wh, unique_name, segment_server, client
):
    make_table(wh, unique_name, _scores())
    tables_before = set(wh.tables())
    report = dry_run(
        wh, unique_name, batch_size=100, max_requests_per_second=2, max_events_per_second=1000
    )
    assert set(wh.tables()) == tables_before  # no write
    assert segment_server.snapshot()["requests"] == 0  # no network
    assert (report.new, report.to_send, report.requests, report.requests_exact) == (N, N, 3, True)
    assert report.expected_seconds == pytest.approx(1.5)  # 3 requests at 2/s
    assert len(report.sample) == 5

    result = sync(wh, unique_name, client=client, batch_size=100)
    assert result.requests == report.requests
    import json

    sent = {m["userId"]: m for m in segment_server.messages}
    for text in report.sample:
        msg = json.loads(text)
        arrived = dict(sent[msg["userId"]])
        # identical but for the messageId, which is derived from each run's id
        assert msg.pop("messageId") != arrived.pop("messageId")
        assert msg == arrived


def test_source_errors_are_config_errors(wh, unique_name, client):
    make_table(
        wh,
        unique_name,
        {"user_id": ["a"], "email": ["a@x.io"], "_sync_seq": [1], "score": [0.1]},
    )
    with pytest.raises(ConfigError, match="reserved for the sync"):
        sync(wh, unique_name, client=client)
    with pytest.raises(ConfigError, match="e-mail identifier"):
        sync(wh, Query(f"SELECT email, score FROM {unique_name}"), client=client, id_column="email")
    with pytest.raises(UnknownTableError, match="identifier column 'customer_id'"):
        sync(wh, unique_name, client=client, id_column="customer_id")
    with pytest.raises(ConfigError, match="contradicts"):
        sync(wh, _trait_set(unique_name), client=client, kind="group")
    with pytest.raises(ConfigError, match="batch size"):
        sync(wh, unique_name, client=client, batch_size=3000)
    with pytest.raises(ConfigError, match="SegmentClient"):
        sync(wh, unique_name)
    with pytest.raises(ConfigError, match="kind must be"):
        sync(wh, unique_name, client=client, kind="track")


def test_an_output_table_leaves_its_scoring_metadata_out(wh, unique_name, segment_server, client):
    import datetime as dt

    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    data = pa.table(
        {
            "user_id": ["a", "b"],
            "churn_probability": [0.2, 0.8],
            "model_name": ["churn", "churn"],
            "model_version": ["3", "3"],
            "scored_at": [when, when],
            "run_id": ["r1", "r1"],
        }
    )
    make_table(wh, unique_name, data)
    sync(wh, unique_name, client=client)
    assert server_profiles(segment_server) == {
        "a": {"churn_probability": 0.2},
        "b": {"churn_probability": 0.8},
    }
    # a new scoring run with the same scores sends nothing
    make_table(wh, unique_name, data.set_column(5, "run_id", pa.array(["r2", "r2"])))
    assert sync(wh, unique_name, client=client).sent == 0


def test_the_state_log_is_compacted_atomically_and_keeps_its_meaning(
    wh, unique_name, segment_server, client
):
    n = 1_500
    make_table(wh, unique_name, {"user_id": [f"u{i}" for i in range(n)], "x": list(range(n))})
    key = f"table:{unique_name}:identify"
    state = state_table_name(key, client_destination(client))
    sync(wh, unique_name, client=client)
    assert wh.table(state).count().execute() == 2 * n  # each profile: in flight, delivered
    flipped = {"user_id": [f"u{i}" for i in range(n)], "x": [-i for i in range(n)]}
    make_table(wh, unique_name, flipped)
    assert sync(wh, unique_name, client=client, allow_drift=True).sent == n - 1  # u0 is 0 = -0
    # the log held 4n - 2 rows for n profiles: rewritten to one row per profile
    assert wh.table(state).count().execute() == n
    assert not [t for t in wh.tables() if t.startswith("sqltraits_tmp__")]
    assert sync(wh, unique_name, client=client).sent == 0
    assert_server_holds(segment_server, wh, unique_name)
