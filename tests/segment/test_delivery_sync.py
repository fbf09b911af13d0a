"""End to end through `sync(...)` on DuckDB and PostgreSQL: a run never says "delivered"
for an answer that was not Segment's, every wait ends, and values go out exactly.

Before issue 11 an HTML-200 or redirect run reported ``succeeded, sent N`` with nothing at
Segment, and every later run said ``unchanged``.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.standin import Delay, HtmlPage, Redirect, Respond, Trickle
from sqltraits_kit.publishing.sync import failed_rows, history, sync
from tests.support.segment import make_client as segment_client_for
from tests.support.sync import assert_server_holds, make_client, make_table, server_profiles

N = 450


def _table(n: int = N) -> dict:
    return {
        "user_id": [f"u{i:04d}" for i in range(n)],
        "score": [round(i / n, 4) for i in range(n)],
        "plan": ["gold" if i % 3 else "free" for i in range(n)],
    }


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (HtmlPage(), "answered 200 with an HTML page — a proxy or login page?"),
        (Redirect(302), "redirected (302 to 127.0.0.1:"),
        (Redirect(307), "Segment never redirects"),
        (Respond(200, body=b"OK"), "not JSON"),
        (Respond(200, body={"success": False}), "not Segment's success answer"),
    ],
    ids=["html-200", "redirect-302", "redirect-307", "text-200", "json-not-success"],
)
def test_a_run_answered_by_something_else_than_segment_fails_and_the_next_run_sends_all(
    wh, unique_name, segment_server, fast_sleeps, fault, says
):
    make_table(wh, unique_name, _table())
    segment_server.fail_every(1, fault)
    client = make_client(segment_server, fast_sleeps, concurrency=1)
    first = sync(wh, unique_name, client=client, batch_size=100)

    assert first.status == "failed" and not first.ok and first.sent == 0
    assert any(says in e for e in first.errors), first.errors
    assert fast_sleeps == []  # not retried: a misconfiguration, not a hiccup
    assert segment_server.snapshot()["messages_accepted"] == 0 and segment_server.landing == []
    assert history(wh, sync_key=first.sync_key)["status"].iloc[0] == "failed"
    failed = failed_rows(wh, run_id=first.run_id)
    assert len(failed) == first.failed > 0 and says in failed["reason"].iloc[0]

    segment_server.clear_faults()
    second = sync(wh, unique_name, client=client, batch_size=100)
    assert (second.status, second.sent, second.failed) == ("succeeded", N, 0)
    assert second.unchanged == 0  # nothing was taken as delivered by the first run
    assert_server_holds(segment_server, wh, unique_name)
    assert failed_rows(wh, sync_key=first.sync_key).empty
    client.close()


def test_one_html_batch_in_a_run_leaves_exactly_its_rows_for_the_next_run(
    wh, unique_name, segment_server, fast_sleeps
):
    make_table(wh, unique_name, _table())
    segment_server.inject(Delay(0), HtmlPage())  # the second request gets the page
    client = make_client(segment_server, fast_sleeps, concurrency=1)
    first = sync(wh, unique_name, client=client, batch_size=100)
    assert (first.status, first.sent, first.failed) == ("partial", N - 100, 100)
    assert len(server_profiles(segment_server)) == N - 100
    second = sync(wh, unique_name, client=client, batch_size=100)
    assert (second.sent, second.unchanged, second.status) == (100, N - 100, "succeeded")
    assert_server_holds(segment_server, wh, unique_name)
    client.close()


def test_repeated_retry_after_ends_the_run_with_a_clear_line(
    wh, unique_name, segment_server, fast_sleeps
):
    make_table(wh, unique_name, _table())
    segment_server.fail_every(1, Respond(429, headers={"Retry-After": "20"}))
    client = make_client(segment_server, fast_sleeps, concurrency=1)
    first = sync(wh, unique_name, client=client, batch_size=100, max_consecutive_failures=3)
    assert first.status == "failed" and first.sent == 0
    assert sum(fast_sleeps) <= 120  # the run's cap, not 1,800 s per batch
    assert any("max_rate_limit_wait=120 s" in e for e in first.errors), first.errors
    segment_server.clear_faults()
    second = sync(wh, unique_name, client=client, batch_size=100)
    assert (second.status, second.sent) == ("succeeded", N)
    assert_server_holds(segment_server, wh, unique_name)
    client.close()


def test_a_trickling_server_is_cut_by_the_total_timeout(
    wh, unique_name, segment_server, fast_sleeps
):
    make_table(wh, unique_name, _table(150))
    segment_server.fail_every(1, Trickle(interval=0.1, size=300))  # 30 s per answer
    client = segment_client_for(
        segment_server, fast_sleeps, concurrency=1, timeout=0.5, retry=RetryPolicy(max_retries=0)
    )
    first = sync(wh, unique_name, client=client, batch_size=100, max_consecutive_failures=2)
    assert first.status == "failed" and first.sent == 0
    assert any("total timeout per request" in e for e in first.errors), first.errors
    segment_server.clear_faults()
    second = sync(wh, unique_name, client=client, batch_size=100)
    assert (second.status, second.sent) == ("succeeded", 150)
    assert_server_holds(segment_server, wh, unique_name)
    client.close()


def test_decimals_go_out_exactly_or_the_row_is_refused_by_name(
    wh, unique_name, segment_server, fast_sleeps
):
    amounts = [Decimal("12.30"), Decimal("0.10"), Decimal("12345678901234567.89"), None]
    table = pa.table(
        {
            "user_id": ["a", "b", "c", "d"],
            "ltv": pa.array(amounts, pa.decimal128(38, 2)),
        }
    )
    make_table(wh, unique_name, table)
    client = make_client(segment_server, fast_sleeps)
    result = sync(wh, unique_name, client=client, batch_size=100, allow_invalid=True)
    assert (result.sent, result.failed) == (3, 1)
    held = server_profiles(segment_server)
    assert held == {"a": {"ltv": 12.3}, "b": {"ltv": 0.1}, "d": {"ltv": None}}
    (reason,) = failed_rows(wh, run_id=result.run_id)["reason"]
    assert "identifier 'c', trait 'ltv'" in reason and "12345678901234567.89" in reason
    client.close()


def test_fractional_float_identifiers_are_refused_by_name(
    wh, unique_name, segment_server, fast_sleeps
):
    make_table(wh, unique_name, {"user_id": [1.0, 2.5, 3.0], "score": [0.1, 0.2, 0.3]})
    client = make_client(segment_server, fast_sleeps)
    result = sync(wh, unique_name, client=client, batch_size=100, allow_invalid=True)
    assert (result.sent, result.failed) == (2, 1)
    assert server_profiles(segment_server) == {"1": {"score": 0.1}, "3": {"score": 0.3}}
    (reason,) = failed_rows(wh, run_id=result.run_id)["reason"]
    assert "userId 2.5 is not a whole number" in reason
    client.close()
