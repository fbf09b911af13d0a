"""The gates: a publish refuses (nothing sent) on contract errors, drift or an empty result."""

from __future__ import annotations

import pytest

from sqltraits_kit.publishing.sync import check, history, sync
from sqltraits_kit.publishing.sync.reports import SyncRefused
from tests.support.sync import make_table, server_profiles

N = 1_000


def _table(shift: float = 0.0, n: int = N) -> dict:
    return {"user_id": [f"u{i}" for i in range(n)], "score": [i / n + shift for i in range(n)]}


def test_drift_over_the_threshold_refuses_unless_overridden(
    wh, unique_name, segment_server, client
):
    make_table(wh, unique_name, _table())
    sync(wh, unique_name, client=client)
    sent_before = segment_server.snapshot()["messages_accepted"]

    make_table(wh, unique_name, _table(shift=0.01))  # small move: under the threshold
    verdicts = check(wh, unique_name)
    assert verdicts.validation_ok and verdicts.drift_over == [] and verdicts.max_psi < 0.2
    assert sync(wh, unique_name, client=client).changed == N

    make_table(wh, unique_name, _table(shift=0.6))
    verdicts = check(wh, unique_name)
    assert verdicts.drift_over == ["score"] and verdicts.max_psi > 0.2
    with pytest.raises(SyncRefused, match=r"drift over the threshold 0\.2.*score \(PSI") as info:
        sync(wh, unique_name, client=client)
    assert info.value.verdicts.drift_over == ["score"]
    assert segment_server.snapshot()["messages_accepted"] == sent_before + N  # nothing more
    runs_before = len(history(wh, sync_key=f"table:{unique_name}:identify"))

    result = sync(wh, unique_name, client=client, allow_drift=True)
    assert result.sent == N
    assert len(history(wh, sync_key=f"table:{unique_name}:identify")) == runs_before + 1


def test_a_partly_failed_publish_is_not_mistaken_for_drift(
    duckdb_wh, unique_name, segment_server, client
):
    from sqltraits_kit.publishing.standin import Respond

    make_table(duckdb_wh, unique_name, _table())
    segment_server.inject(Respond(400))
    first = sync(duckdb_wh, unique_name, client=client, batch_size=900)
    assert first.status == "partial" and first.sent in (100, 900)
    # the snapshot holds part of the population; the values Segment holds did not move
    verdicts = check(duckdb_wh, unique_name)
    assert verdicts.drift_over == [] and verdicts.max_psi == pytest.approx(0.0, abs=1e-9)
    assert sync(duckdb_wh, unique_name, client=client).sent == first.failed
    # a real shift of the values Segment holds still refuses
    make_table(duckdb_wh, unique_name, _table(shift=0.6))
    with pytest.raises(SyncRefused, match="drift"):
        sync(duckdb_wh, unique_name, client=client)


def test_contract_errors_refuse_before_anything_is_sent(duckdb_wh, unique_name, client):
    make_table(duckdb_wh, unique_name, {"user_id": ["a", "a", None], "score": [1.0, 2.0, 3.0]})
    with pytest.raises(SyncRefused) as info:
        sync(duckdb_wh, unique_name, client=client)
    assert "identifier_unique" in str(info.value) and "identifier_not_null" in str(info.value)
    assert history(duckdb_wh).empty  # refused before a run exists


def test_an_empty_result_does_not_null_every_profile_by_accident(
    duckdb_wh, unique_name, segment_server, client
):
    make_table(duckdb_wh, unique_name, _table(n=10))
    sync(duckdb_wh, unique_name, client=client)
    make_table(duckdb_wh, unique_name, duckdb_wh.table(unique_name).limit(0).to_pyarrow())
    with pytest.raises(SyncRefused, match="all 10 published profiles to null"):
        sync(duckdb_wh, unique_name, client=client)
    kept = sync(duckdb_wh, unique_name, client=client, on_remove="keep", allow_drift=True)
    assert (kept.removed, kept.sent) == (10, 0)
    nulled = sync(duckdb_wh, unique_name, client=client, allow_drift=True)
    assert (nulled.removed, nulled.sent) == (10, 10)
    assert all(v == {"score": None} for v in server_profiles(segment_server).values())
