"""``sync(dry_run=True)`` is :func:`dry_run` with the same options: every option the caller gave
reaches the dry run (the key, kind, identifier, removal rule, retries only, sizes, rate limits and
the client's destination). Written for the mutants of ``engine.sync`` that change what it hands
on (benchmarks/MUTATION.md)."""

from __future__ import annotations

import dataclasses
import json

from sqltraits_kit.publishing.segment import SegmentClient
from sqltraits_kit.publishing.sync import dry_run, sync
from sqltraits_kit.publishing.sync.destination import client_destination
from tests.support.segment import WRITE_KEY
from tests.support.sync import make_table


def _comparable(report) -> dict:
    out = dataclasses.asdict(report)
    out.pop("duration_s")
    out.pop("verdicts")
    # the sample's message ids come from each call's own run id; the rest is the same
    out["sample"] = [
        {k: v for k, v in json.loads(m).items() if k != "messageId"} for m in report.sample
    ]
    return out


def test_sync_dry_run_hands_every_option_to_the_dry_run(duckdb_wh, unique_name, segment_server):
    make_table(
        duckdb_wh,
        unique_name,
        {"account_id": [f"a{i}" for i in range(30)], "seats": [float(i) for i in range(30)]},
    )
    client = SegmentClient(WRITE_KEY, endpoint=segment_server.url)
    options = {
        "kind": "group",
        "id_column": "account_id",
        "on_remove": "keep",
        "sync_key": "accounts-seats",
        "only_failed": False,
        "batch_size": 7,
        "page_rows": 9,
        "max_requests_per_second": 3.0,
        "max_events_per_second": 11.0,
    }
    via_sync = sync(duckdb_wh, unique_name, client=client, dry_run=True, **options)
    direct = dry_run(duckdb_wh, unique_name, destination=client_destination(client), **options)
    assert _comparable(via_sync) == _comparable(direct)
    # and the options took effect: nothing here is a default
    assert (via_sync.kind, via_sync.on_remove, via_sync.sync_key) == (
        "group",
        "keep",
        "accounts-seats",
    )
    assert via_sync.destination == client_destination(client)
    assert via_sync.requests == 5  # 30 messages, 7 a batch
    assert (via_sync.max_requests_per_second, via_sync.max_events_per_second) == (3.0, 11.0)
    assert json.loads(via_sync.sample[0])["groupId"] == "a0"


def test_sync_dry_run_without_a_client_has_no_destination(duckdb_wh, unique_name):
    make_table(duckdb_wh, unique_name, {"user_id": ["u1", "u2"], "score": [0.5, 0.25]})
    report = sync(duckdb_wh, unique_name, dry_run=True)
    assert report.destination is None and report.to_send == 2
