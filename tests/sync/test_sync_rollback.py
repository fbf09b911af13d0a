"""Rollback of a publish, end to end with the stand-in server, on DuckDB and PostgreSQL: the
server ends holding exactly the earlier version, and only the profiles that differ are sent."""

from __future__ import annotations

import pytest

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync import (
    dry_run,
    history,
    published_runs,
    rollback,
    snapshot_at,
    sync,
)
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.provenance import provenance
from tests.support.sync import make_table, server_profiles

N = 120


def _version(v: int):
    """Version 1: every profile but u0100..u0119. Version 2: scores of every 4th profile moved,
    profiles u0000..u0009 gone, u0100..u0109 new, a tier changed for every 10th."""
    ids = range(N) if v == 2 else range(N - 20)
    rows = [i for i in ids if not (v == 2 and i < 10) and not (v == 2 and i >= 110)]
    return {
        "user_id": [f"u{i:04d}" for i in rows],
        "score": [round(i / N + (0.25 if v == 2 and i % 4 == 0 else 0.0), 4) for i in rows],
        "tier": ["gold" if (i % 10 == 0 and v == 2) else "silver" for i in rows],
    }


def _ids(server, since: int) -> set[str]:
    return {m["userId"] for m in server.messages[since:]}


def test_rollback_restores_the_earlier_version_sending_only_what_differs(
    wh, unique_name, segment_server, client
):
    key = f"table:{unique_name}:identify"
    make_table(wh, unique_name, _version(1))
    first = sync(wh, unique_name, client=client)
    held_v1 = server_profiles(segment_server)
    assert len(held_v1) == N - 20

    make_table(wh, unique_name, _version(2))
    second = sync(wh, unique_name, client=client, allow_drift=True)
    assert second.sent > 0
    held_v2 = server_profiles(segment_server)
    assert held_v2 != held_v1

    # What differs between the two versions, as the server holds them (null traits included).
    differs = {k for k in set(held_v1) | set(held_v2) if held_v1.get(k) != held_v2.get(k)}
    gone_since = {k for k in held_v2 if k not in held_v1}  # published in v2 only: nulled
    assert differs and gone_since

    preview = rollback(wh, key, first.run_id, dry_run=True)
    assert preview.to_send == len(differs)
    assert len(segment_server.messages) == held_v1.__len__() + second.sent  # dry run sent nothing

    before = len(segment_server.messages)
    result = rollback(wh, key, first.run_id, client=client, allow_drift=True)
    assert result.ok and result.source == f"rollback of run {first.run_id}"
    assert _ids(segment_server, before) == differs  # only the profiles that differ
    assert result.sent == len(differs)

    held = server_profiles(segment_server)
    for uid in gone_since:  # not in the earlier version: every trait set to null
        assert held.pop(uid) == {"score": None, "tier": None}
    assert held == held_v1  # exactly the earlier version's values

    runs = history(wh, sync_key=key)
    assert runs.iloc[0]["source"] == f"rollback of run {first.run_id}"
    assert [r["run_id"] for r in published_runs(wh, key)][:3] == [
        result.run_id,
        second.run_id,
        first.run_id,
    ]
    # The rolled-back state is the new published snapshot: a plain publish of v1 sends nothing.
    make_table(wh, unique_name, _version(1))
    again = dry_run(wh, unique_name)
    assert again.to_send == 0


def test_rollback_survives_compaction_and_refuses_what_it_cannot_restore(
    duckdb_wh, segment_server, client
):
    wh = duckdb_wh
    key = "table:versions:identify"
    n = 400
    runs = []
    for step in range(3):  # each run changes every score; the second one compacts the ledger
        make_table(
            wh,
            "versions",
            {"user_id": [f"u{i}" for i in range(n)], "score": [step + i for i in range(n)]},
        )
        runs.append(sync(wh, "versions", client=client, allow_drift=True))
    state = s.state_table_name(key, runs[0].destination)
    assert (
        wh.con.table(state).count().execute() < 3 * 2 * n
    )  # compacted: run 1's rows are in the archive only
    ledger = wh.con.table(state)
    assert ledger.filter(ledger[s.RUN_ID] == runs[0].run_id).count().execute() == 0
    assert wh.has_table(s.log_table_name(state))

    earliest = snapshot_at(wh, key, runs[0].run_id).to_pandas().set_index("user_id")
    assert earliest["score"].to_dict() == {f"u{i}": i for i in range(n)}

    result = rollback(wh, key, runs[0].run_id, client=client, allow_drift=True)
    assert result.sent == n
    assert server_profiles(segment_server) == {f"u{i}": {"score": i} for i in range(n)}
    assert provenance(wh, result.run_id)[0]["rollback_of"] == runs[0].run_id

    with pytest.raises(ConfigError, match="no publish run"):
        rollback(wh, key, "nope", client=client)
