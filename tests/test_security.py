"""The security pass: the write key never leaks, user-supplied names cannot inject SQL, and a
crafted model artifact does not execute (that last one lives in tests/test_registry.py)."""

from __future__ import annotations

import base64
import json
import logging

import ibis
import pandas as pd
import pytest

from sqltraits_kit.errors import SqlTraitsError, UnknownTableError
from sqltraits_kit.publishing.segment import SegmentClient
from sqltraits_kit.publishing.standin import DropConnection, Respond
from sqltraits_kit.publishing.sync import failed_rows, history, sync
from tests.support.segment import WRITE_KEY

BASIC = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def _table_text(wh, name: str) -> str:
    return wh.table(name).to_pandas().astype(str).to_csv()


def test_write_key_is_absent_from_logs_outputs_and_tables(
    wh,
    unique_name,
    segment_server,
    caplog,
    capsys,
):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests log headers and URLs at DEBUG
    wh.con.create_table(
        unique_name, obj=pd.DataFrame({"user_id": [f"u{i}" for i in range(1200)], "x": 1.5})
    )
    # a server that echoes the key in an error body, drops a connection, fails for good once
    segment_server.inject(
        Respond(500, body=f"internal error for key {WRITE_KEY}"),
        DropConnection(),
        Respond(400, body=f"bad request, Authorization: Basic {BASIC}"),
    )
    client = SegmentClient(
        WRITE_KEY,
        endpoint=segment_server.url,
        max_requests_per_second=None,
        max_events_per_second=None,
        sleep=lambda _s: None,
    )
    with client:
        result = sync(wh, unique_name, client=client, batch_size=200)
        print(result, repr(result), result.to_dict(), repr(client))
    assert result.failed > 0  # the permanent 400 was recorded, not raised
    captured = capsys.readouterr()
    haystack = "\n".join(
        [
            caplog.text,
            captured.out,
            captured.err,
            history(wh).astype(str).to_csv(),
            failed_rows(wh).astype(str).to_csv(),
            *(_table_text(wh, t) for t in wh.tables() if t.startswith("sqltraits_")),
        ]
    )
    assert len(failed_rows(wh)) > 0  # the failure itself is recorded, key-free
    assert WRITE_KEY not in haystack
    assert BASIC not in haystack


@pytest.mark.parametrize(
    "name",
    [
        'users"; DROP TABLE users; --',
        "users; DROP TABLE users",
        "users' OR '1'='1",
    ],
)
def test_hostile_table_names_are_refused_and_nothing_is_dropped(wh, name, segment_server):
    with (
        SegmentClient(WRITE_KEY, endpoint=segment_server.url) as client,
        pytest.raises(UnknownTableError, match=r"^table .+ not found in "),
    ):
        sync(wh, name, client=client)
    assert wh.has_table("users")
    assert segment_server.snapshot()["requests"] == 0


def test_a_query_source_cannot_write(wh, segment_server):
    from sqltraits_kit.publishing.sync import Query

    with (
        SegmentClient(WRITE_KEY, endpoint=segment_server.url) as client,
        pytest.raises(SqlTraitsError, match=r"(?i)select|read-only|single"),
    ):
        sync(wh, Query("DELETE FROM users"), client=client)
    assert wh.row_counts(["users"])["users"] > 0


# --------------------------------------------------------------------------- issue 12


def test_output_refuses_a_history_table_the_kit_did_not_create(wh, unique_name):
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.traits.output import new_run_id, write_output
    from tests.support.traits import churn_traits_table

    foreign = f"{unique_name}_history"
    wh.con.create_table(foreign, obj=wh.table("users").limit(5))
    before = wh.table(foreign).to_pandas()
    rows = churn_traits_table(20)
    run_id = new_run_id()
    data = ibis.memtable(rows).mutate(
        model_name=ibis.literal("churn"),
        model_version=ibis.literal("1"),
        scored_at=ibis.now(),
        run_id=ibis.literal(run_id),
    )
    with pytest.raises(ConfigError, match=rf"{foreign}' exists but is not a run history"):
        write_output(wh, data, table=unique_name, id_column="user_id", run_id=run_id)
    assert wh.table(foreign).to_pandas().equals(before)
    assert not wh.has_table(unique_name)
    # the kit's own history keeps working: two runs, both kept
    mine = f"{unique_name}_ok"
    for _ in range(2):
        rid = new_run_id()
        write_output(
            wh, data.mutate(run_id=ibis.literal(rid)), table=mine, id_column="user_id", run_id=rid
        )
    assert wh.row_counts([f"{mine}_history"]) == {f"{mine}_history": 40}


def test_score_cli_refuses_a_foreign_history_table(sample_file, tmp_path, trained, capsys):
    from sqltraits_kit.cli import main
    from sqltraits_kit.warehouse import connect

    path = tmp_path / "wh.duckdb"
    path.write_bytes(sample_file.read_bytes())
    url = f"duckdb:///{path}"
    wh = connect(url)
    wh.con.create_table("mine_history", obj=wh.table("users").limit(7))
    wh.close()
    registry, _ = trained
    argv = ["score", "--db", url, "--models-dir", str(registry.root), "--model", "churn"]
    assert main([*argv, "--table", "mine", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'mine_history' exists but is not a run history written by the kit" in err
    wh = connect(url, read_only=True)
    try:
        assert wh.row_counts(["mine_history"]) == {"mine_history": 7}
        assert not wh.has_table("mine")
    finally:
        wh.close()


PASSWORD = "pw_s3cr3t_9f8e7d"


@pytest.mark.postgres
def test_a_warehouse_password_appears_in_no_output_card_or_table(postgres_url, tmp_path, capsys):
    from sqltraits_kit.cli import main
    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.modelling.training import train_model
    from sqltraits_kit.warehouse import connect

    user, _, rest = postgres_url.partition("://")[2].partition("@")
    url = f"postgres://{user}:{PASSWORD}@{rest}"  # trust auth: any password connects
    outputs = []
    for argv, code in [
        (["tables", "--db", url, "--json"], 0),
        (["validate", "--db", url, "--table", "users", "--id-column", "id", "--json"], 1),
        (["validate", "--db", url, "--table", "nope"], 2),
        (["validate", "--db", url, "--query", "SELECT lo_export(1, '/tmp/x') AS user_id"], 2),
        (["tables", "--db", url.replace("127.0.0.1", "127.0.0.1:1").replace(":5432", "")], 2),
    ]:
        assert main(argv) == code, argv
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    assert json.loads(outputs[0])["warehouse"].startswith("postgres://postgres:••••@")
    wh = connect(url)
    try:
        registry = Registry(tmp_path / "models")
        result = train_model(wh, kind="churn", registry=registry, max_rows=500)
        print(result.card, wh, repr(wh))
        cards = [p.read_text(errors="replace") for p in registry.root.rglob("*") if p.is_file()]
        tables = [_table_text(wh, t) for t in wh.tables() if t.startswith("sqltraits_")]
    finally:
        wh.close()
    captured = capsys.readouterr()
    haystack = "\n".join([*outputs, *cards, *tables, captured.out, captured.err])
    assert cards and "postgres://" in haystack
    assert PASSWORD not in haystack
