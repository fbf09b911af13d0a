"""The delivery ledger against a server that stores what it accepts and dedupes by messageId.

Each test reproduces one way the sync state used to say "delivered" or "unchanged" while
Segment held something else (issue 11), on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from sqltraits_kit.publishing.segment import SegmentClient
from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.standin import DropConnection, FakeSegmentServer, Respond
from sqltraits_kit.publishing.sync import SyncRefused, failed_rows, history, sync
from sqltraits_kit.publishing.sync.destination import client_destination, display
from tests.support.segment import PROFILE_TOKEN, SPACE_ID, WRITE_KEY
from tests.support.sync import assert_server_holds, make_client, make_table, server_profiles

N = 60


def _scores(value: float, n: int = N) -> dict:
    return {"user_id": [f"u{i}" for i in range(n)], "score": [value] * n}


def _lossy(server: FakeSegmentServer, sleeps: list[float]):
    """A client that gives up after 2 attempts and sends one batch at a time."""
    return make_client(server, sleeps, retry=RetryPolicy(max_retries=1), concurrency=1)


@pytest.mark.parametrize(
    "lost_ack",
    [Respond(500, process=True), DropConnection(process=True)],
    ids=["500-after-applying", "dropped-after-applying"],
)
def test_a_value_applied_without_an_answer_then_reverted_is_sent_again(
    wh, unique_name, segment_server, fast_sleeps, lost_ack
):
    client = _lossy(segment_server, fast_sleeps)
    make_table(wh, unique_name, _scores(0.1))
    assert sync(wh, unique_name, client=client).sent == N  # Segment holds A = 0.1

    make_table(wh, unique_name, _scores(0.9))
    segment_server.inject(lost_ack, lost_ack)  # B applied twice, never acknowledged
    lost = sync(wh, unique_name, client=client)
    assert (lost.sent, lost.failed) == (0, N)
    assert set(server_profiles(segment_server)["u0"].values()) == {0.9}  # Segment holds B

    make_table(wh, unique_name, _scores(0.1))  # the score goes back to A
    back = sync(wh, unique_name, client=client)
    # Before the ledger: "unchanged 60, sent 0", and Segment kept 0.9 for good.
    assert (back.uncertain, back.sent, back.unchanged) == (N, N, 0)
    assert_server_holds(segment_server, wh, unique_name)
    assert sync(wh, unique_name, client=client).sent == 0  # and now it is settled
    client.close()


def test_the_value_in_flight_is_resent_under_its_first_message_id(
    wh, unique_name, segment_server, fast_sleeps
):
    client = _lossy(segment_server, fast_sleeps)
    make_table(wh, unique_name, _scores(0.1))
    sync(wh, unique_name, client=client)
    make_table(wh, unique_name, _scores(0.9))
    segment_server.inject(Respond(500, process=True), Respond(500, process=True))
    sync(wh, unique_name, client=client)
    accepted = segment_server.stats.messages_accepted
    again = sync(wh, unique_name, client=client)  # the same B, its fate unknown
    assert (again.uncertain, again.sent) == (N, N)
    # Segment had applied B: every re-sent message is a duplicate it drops.
    assert segment_server.stats.messages_accepted == accepted
    assert segment_server.stats.duplicates >= N
    assert_server_holds(segment_server, wh, unique_name)
    client.close()


def test_a_removal_applied_without_an_answer_is_not_forgotten(
    wh, unique_name, segment_server, fast_sleeps
):
    client = _lossy(segment_server, fast_sleeps)
    make_table(wh, unique_name, _scores(0.5, n=4))
    sync(wh, unique_name, client=client)
    make_table(wh, unique_name, _scores(0.5, n=2))  # u2, u3 leave: their traits go null
    segment_server.inject(Respond(500, process=True), Respond(500, process=True))
    assert sync(wh, unique_name, client=client).failed == 2
    make_table(wh, unique_name, _scores(0.5, n=4))  # ... and come back with the same value
    back = sync(wh, unique_name, client=client)
    assert (back.uncertain, back.sent) == (2, 2)
    assert_server_holds(segment_server, wh, unique_name)
    client.close()


def test_a_new_destination_starts_from_an_empty_state(wh, unique_name, segment_server, fast_sleeps):
    make_table(wh, unique_name, _scores(0.3))
    first = make_client(segment_server, fast_sleeps)
    assert sync(wh, unique_name, client=first).sent == N
    with FakeSegmentServer(
        write_keys=(WRITE_KEY,), profile_tokens=(PROFILE_TOKEN,), space_id=SPACE_ID
    ) as eu:
        second = make_client(eu, fast_sleeps)
        result = sync(wh, unique_name, client=second)
        # Before: keyed by table and kind only, "sent 0, unchanged 60" to the new workspace.
        assert (result.new, result.sent, result.unchanged) == (N, N, 0)
        assert_server_holds(eu, wh, unique_name)
        runs = history(wh, sync_key=result.sync_key)
        assert set(runs["destination"]) == {client_destination(first), client_destination(second)}
        assert display(result.destination).startswith(eu.url)
        second.close()
    assert sync(wh, unique_name, client=first).sent == 0  # the first one's state is its own
    first.close()


def test_another_write_key_on_the_same_endpoint_is_another_destination(
    wh, unique_name, fast_sleeps
):
    keys = ("key-workspace-a", "key-workspace-b")
    make_table(wh, unique_name, _scores(0.3, n=5))
    with FakeSegmentServer(write_keys=keys) as server:
        clients = [
            SegmentClient(
                key,
                endpoint=server.url,
                max_requests_per_second=None,
                max_events_per_second=None,
                sleep=fast_sleeps.append,
            )
            for key in keys
        ]
        assert sync(wh, unique_name, client=clients[0]).sent == 5
        assert sync(wh, unique_name, client=clients[1]).sent == 5
        assert sync(wh, unique_name, client=clients[1]).sent == 0
        fingerprints = {client_destination(c) for c in clients}
        assert len(fingerprints) == 2 and not any(k in f for f in fingerprints for k in keys)
        for c in clients:
            c.close()


def test_allow_invalid_never_sends_a_row_without_a_good_identifier(
    wh, unique_name, segment_server, client
):
    data = {
        "user_id": ["a", None, "", "  ", "d", "d", "e"],
        "score": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    }
    make_table(wh, unique_name, data)
    with pytest.raises(SyncRefused, match="identifier"):
        sync(wh, unique_name, client=client)
    result = sync(wh, unique_name, client=client, allow_invalid=True)
    assert server_profiles(segment_server) == {"a": {"score": 1.0}, "e": {"score": 7.0}}
    failed = failed_rows(wh, run_id=result.run_id)
    reasons = dict(zip(failed["identifier"].fillna("<null>"), failed["reason"], strict=True))
    assert "missing identifier" in reasons["<null>"]
    assert "blank identifier" in reasons[""] and "blank identifier" in reasons["  "]
    assert sum("duplicate identifier: 2 rows" in r for r in failed["reason"]) == 2
    assert result.failed == 5 and result.sent == 2
    # every run: the duplicates are never sent, and never count as removed either
    again = sync(wh, unique_name, client=client, allow_invalid=True)
    assert again.sent == 0 and again.removed == 0
    assert "d" not in server_profiles(segment_server)


@pytest.mark.parametrize("trait", ["email", "userId", "id"])
def test_allow_invalid_never_sends_an_identity_trait_name(
    wh, unique_name, segment_server, client, trait
):
    make_table(wh, unique_name, {"user_id": ["a"], trait: ["x@example.com"]})
    with pytest.raises(SyncRefused, match="allow_invalid cannot override"):
        sync(wh, unique_name, client=client, allow_invalid=True)
    assert segment_server.stats.requests == 0


def test_decimals_go_out_exactly_or_not_at_all(wh, unique_name, segment_server, client):
    dec = pa.decimal128(38, 2)
    values = [Decimal("12.30"), Decimal("12345678901234567.89"), Decimal("7")]
    make_table(
        wh,
        unique_name,
        pa.table({"user_id": ["a", "b", "c"], "ltv": pa.array(values, dec)}),
    )
    result = sync(wh, unique_name, client=client)
    held = server_profiles(segment_server)
    assert held == {"a": {"ltv": 12.3}, "c": {"ltv": 7}}
    failed = failed_rows(wh, run_id=result.run_id)
    assert list(failed["identifier"]) == ["b"]
    assert "ltv" in failed["reason"][0] and "12345678901234567.89" in failed["reason"][0]


def test_a_non_integral_float_identifier_is_refused(wh, unique_name, segment_server, client):
    make_table(wh, unique_name, {"user_id": [1.0, 2.5], "score": [0.1, 0.2]})
    result = sync(wh, unique_name, client=client, allow_invalid=True)
    assert server_profiles(segment_server) == {"1": {"score": 0.1}}
    failed = failed_rows(wh, run_id=result.run_id)
    assert list(failed["identifier"]) == ["2.5"]
