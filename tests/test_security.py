"""The security pass: the write key never leaks, user-supplied names cannot inject SQL, and a
crafted model artifact does not execute (that last one lives in tests/test_registry.py)."""

from __future__ import annotations

import base64
import logging

import pandas as pd
import pytest

from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.publishing.segment import SegmentClient
from sqltraits_kit.publishing.sync import failed_rows, history, sync
from tests.segment.conftest import WRITE_KEY, segment_server  # noqa: F401 - fixture
from tests.segment.fake_segment import DropConnection, Respond

BASIC = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def _table_text(wh, name: str) -> str:
    return wh.table(name).to_pandas().astype(str).to_csv()


def test_write_key_is_absent_from_logs_outputs_and_tables(
    wh,
    unique_name,
    segment_server,  # noqa: F811
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
def test_hostile_table_names_are_refused_and_nothing_is_dropped(wh, name, segment_server):  # noqa: F811
    with (
        SegmentClient(WRITE_KEY, endpoint=segment_server.url) as client,
        pytest.raises(SqlTraitsError),
    ):
        sync(wh, name, client=client)
    assert wh.has_table("users")
    assert segment_server.snapshot()["requests"] == 0


def test_a_query_source_cannot_write(wh, segment_server):  # noqa: F811
    from sqltraits_kit.publishing.sync import Query

    with (
        SegmentClient(WRITE_KEY, endpoint=segment_server.url) as client,
        pytest.raises(SqlTraitsError, match=r"(?i)select|read-only|single"),
    ):
        sync(wh, Query("DELETE FROM users"), client=client)
    assert wh.row_counts(["users"])["users"] > 0
