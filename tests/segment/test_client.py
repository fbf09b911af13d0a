from __future__ import annotations

import base64
import email.utils
import logging
import socket
import threading
import time

import pandas as pd
import pytest

from sqltraits_kit.publishing.segment import (
    Batch,
    DeliveryStatus,
    RetryPolicy,
    SegmentClient,
    TokenBucket,
    build_encoded_message,
    build_message,
    encode_message,
    pack_batches,
)
from sqltraits_kit.publishing.standin import Delay, DropConnection, Respond
from tests.support.segment import WRITE_KEY, batches_for, make_client, rows, stored

BASIC = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def test_delivers_everything_and_reports_in_order_on_the_callers_thread(
    segment_server, segment_client
):
    data = rows(1234)
    batches = batches_for(data, max_messages=100)
    seen, threads = [], set()

    def on_result(result):
        seen.append(result.batch)
        threads.add(threading.get_ident())

    summary = segment_client.send_batches(batches, on_result=on_result)
    assert summary.ok and summary.delivered_messages == 1234 and summary.batches == 13
    assert seen == batches
    assert threads == {threading.get_ident()}
    assert segment_server.collection("users") == stored(data)
    assert segment_server.rejected == []


def test_server_holds_exactly_the_tables_values_across_runs(segment_server, segment_client):
    df = pd.DataFrame({"user_id": [1, 2, 3], "churn_score": [0.1, float("nan"), 0.9]})

    def publish(frame, run_id):
        msgs = (
            encode_message(
                build_message("identify", identifier=r.pop("user_id"), traits=r, run_id=run_id)
            )
            for r in frame.to_dict("records")
        )
        assert segment_client.send_batches(pack_batches(msgs)).ok

    publish(df, "run-1")
    assert segment_server.collection("users") == {
        "user_id:1": {"churn_score": 0.1},
        "user_id:2": {"churn_score": None},
        "user_id:3": {"churn_score": 0.9},
    }
    # Next run: user 3 left the result, so the caller nulls its trait.
    publish(pd.DataFrame({"user_id": [2, 3], "churn_score": [0.4, None]}), "run-2")
    assert segment_server.collection("users") == {
        "user_id:1": {"churn_score": 0.1},
        "user_id:2": {"churn_score": 0.4},
        "user_id:3": {"churn_score": None},
    }


def test_5xx_is_retried_with_capped_jittered_backoff(segment_server, fast_sleeps):
    segment_server.inject(Respond(500), Respond(503))
    client = make_client(segment_server, fast_sleeps, retry=RetryPolicy(base_delay=0.5))
    (batch,) = batches_for(rows(10))
    result = client.send_batch(batch)
    assert result.ok and result.attempts == 3 and result.http_status == 200
    assert len(fast_sleeps) == 2
    assert 0 <= fast_sleeps[0] <= 0.5 and 0 <= fast_sleeps[1] <= 1.0
    assert segment_server.snapshot()["messages_accepted"] == 10


def test_backoff_ceiling():
    policy = RetryPolicy(base_delay=0.5, max_delay=60)
    import random

    rng = random.Random(1)
    assert max(policy.backoff(30, rng) for _ in range(200)) <= 60
    assert max(policy.backoff(30, rng) for _ in range(200)) > 30  # full jitter spans the range


@pytest.mark.parametrize("status", [408, 410, 429, 460, 500, 502, 503, 504, 599])
def test_retryable_statuses(segment_server, fast_sleeps, status):
    segment_server.inject(Respond(status))
    (batch,) = batches_for(rows(3))
    result = make_client(segment_server, fast_sleeps).send_batch(batch)
    assert result.ok and result.attempts == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501, 505])
def test_permanent_statuses_are_recorded_not_retried(segment_server, fast_sleeps, status):
    segment_server.inject(Respond(status, body={"code": "nope", "message": "refused"}))
    (batch,) = batches_for(rows(3))
    result = make_client(segment_server, fast_sleeps).send_batch(batch)
    assert result.status is DeliveryStatus.FAILED_PERMANENT
    assert (result.attempts, result.http_status) == (1, status)
    assert f"HTTP {status}" in result.error and "refused" in result.error
    assert fast_sleeps == []


def test_real_400_from_an_oversize_message(segment_server, segment_client):
    msg = encode_message(
        build_message("identify", identifier="u", traits={"p": "x" * 40_000}, run_id="r")
    )
    result = segment_client.send_batch(Batch((msg,)))  # bypasses pack_batches on purpose
    assert result.status is DeliveryStatus.FAILED_PERMANENT and result.http_status == 400
    assert "message_too_large" in result.error


def test_retry_after_is_obeyed_without_spending_a_retry(segment_server, fast_sleeps):
    segment_server.inject(*[Respond(429, headers={"Retry-After": "7"})] * 3)
    client = make_client(segment_server, fast_sleeps, retry=RetryPolicy(max_retries=0))
    (batch,) = batches_for(rows(5))
    result = client.send_batch(batch)
    assert result.ok and result.attempts == 4
    assert fast_sleeps == [7, 7, 7]


def test_retry_after_as_http_date_and_capped(segment_server, fast_sleeps):
    now = 1_700_000_000.0
    segment_server.inject(
        Respond(503, headers={"Retry-After": email.utils.formatdate(now + 30, usegmt=True)}),
        Respond(429, headers={"Retry-After": "100000"}),
    )
    policy = RetryPolicy(max_rate_limit_wait=1000)
    client = make_client(segment_server, fast_sleeps, wall_clock=lambda: now, retry=policy)
    (batch,) = batches_for(rows(2))
    assert client.send_batch(batch).ok
    assert fast_sleeps == [30, 300]


def test_retry_after_total_is_bounded_then_the_batch_fails(segment_server, fast_sleeps):
    segment_server.fail_every(1, Respond(429, headers={"Retry-After": "7"}))
    policy = RetryPolicy(max_retries=5, max_rate_limit_wait=10)
    (batch,) = batches_for(rows(2))
    result = make_client(segment_server, fast_sleeps, retry=policy).send_batch(batch)
    assert result.status is DeliveryStatus.FAILED_RETRIES_EXHAUSTED
    assert result.attempts == 2 and result.http_status == 429
    assert fast_sleeps == [7]  # no retries spent once the cap is reached
    assert "max_rate_limit_wait=10 s" in result.error and "next run" in result.error


def test_gives_up_after_max_retries(segment_server, fast_sleeps):
    segment_server.fail_every(1, Respond(503))
    (batch,) = batches_for(rows(4))
    result = make_client(segment_server, fast_sleeps, retry=RetryPolicy(max_retries=3)).send_batch(
        batch
    )
    assert result.status is DeliveryStatus.FAILED_RETRIES_EXHAUSTED
    assert result.attempts == 4 and len(fast_sleeps) == 3 and "HTTP 503" in result.error
    assert segment_server.snapshot()["messages_accepted"] == 0


def test_dropped_connections_end_with_every_message_delivered_once(segment_server, fast_sleeps):
    data = rows(700)
    segment_server.inject(DropConnection(), DropConnection(process=True), DropConnection())
    client = make_client(segment_server, fast_sleeps, concurrency=1)
    summary = client.send_batches(batches_for(data, max_messages=250))
    assert summary.ok and summary.requests == 3 + 3
    stats = segment_server.snapshot()
    assert stats["duplicates"] == 250  # the batch whose ack was lost came again
    assert stats["messages_accepted"] == 700
    assert segment_server.collection("users") == stored(data)


def test_mixed_faults_under_concurrency_deliver_exactly_once(segment_server, fast_sleeps):
    data = rows(5000)
    segment_server.fail_every(3, Respond(500, process=True))  # processed, but answered 500
    segment_server.inject(Respond(429, headers={"Retry-After": "1"}), DropConnection(process=True))
    client = make_client(segment_server, fast_sleeps, concurrency=4)
    summary = client.send_batches(batches_for(data, max_messages=200))
    assert summary.ok and summary.delivered_messages == 5000
    stats = segment_server.snapshot()
    assert stats["messages_accepted"] == 5000 and stats["duplicates"] > 0
    assert segment_server.collection("users") == stored(data)


def test_slow_answer_times_out_and_the_retry_is_deduplicated(segment_server, fast_sleeps):
    data = rows(50)
    segment_server.inject(Delay(2.0))
    client = make_client(segment_server, fast_sleeps, timeout=0.5)
    (batch,) = batches_for(data)
    result = client.send_batch(batch)
    assert result.ok and result.attempts >= 2
    # Every attempt reaches the server eventually (the first one 2 s late).
    deadline = time.monotonic() + 10
    while segment_server.snapshot()["messages_received"] < 50 * result.attempts:
        assert time.monotonic() < deadline, segment_server.snapshot()
        time.sleep(0.05)
    stats = segment_server.snapshot()
    assert stats["messages_accepted"] == 50
    assert stats["duplicates"] == 50 * (result.attempts - 1)
    assert segment_server.collection("users") == stored(data)


def test_connection_refused_is_retried_then_reported(fast_sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    client = SegmentClient(
        WRITE_KEY, endpoint=f"http://127.0.0.1:{port}", sleep=fast_sleeps.append,
        retry=RetryPolicy(max_retries=2), max_events_per_second=None,
    )  # fmt: skip
    (batch,) = batches_for(rows(1))
    result = client.send_batch(batch)
    assert result.status is DeliveryStatus.FAILED_RETRIES_EXHAUSTED
    assert result.http_status is None and result.attempts == 3
    assert "ConnectionError" in result.error


def test_a_bad_key_stops_further_requests(segment_server, fast_sleeps):
    client = make_client(segment_server, fast_sleeps, write_key="wrong", concurrency=1)
    results = []
    summary = client.send_batches(batches_for(rows(30), max_messages=10), on_result=results.append)
    assert [r.status for r in results] == [DeliveryStatus.FAILED_PERMANENT] * 3
    assert [r.attempts for r in results] == [1, 0, 0]
    assert results[0].http_status == 401 and "write key" in results[1].error
    assert summary.failed_messages == 30 and not summary.ok
    assert segment_server.snapshot()["requests"] == 1


def test_write_key_never_leaks(segment_server, fast_sleeps, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's debug lines included
    texts = []
    # a permanent error whose body echoes the credential (as some proxies do)
    segment_server.inject(
        Respond(500), Respond(400, body={"echo": f"Basic {BASIC}", "key": WRITE_KEY})
    )
    client = make_client(segment_server, fast_sleeps)
    (batch,) = batches_for(rows(2))
    texts.append(client.send_batch(batch).error)
    # a transport error whose message quotes a URL that (unwisely) holds the key
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    leaky = make_client(
        segment_server, fast_sleeps, endpoint=f"http://127.0.0.1:{port}/{WRITE_KEY}"
    )
    leaky.retry = RetryPolicy(max_retries=1)
    result = leaky.send_batch(batch)
    assert result.error and "ConnectionError" in result.error
    texts += [result.error, repr(client), str(client), repr(result), caplog.text]
    texts.append(str(client.send_batches([batch]).errors))
    blob = "\n".join(texts)
    assert "***" in blob
    assert WRITE_KEY not in blob and BASIC not in blob
    assert WRITE_KEY not in repr(vars(client))


def test_gzip_bodies(segment_server, fast_sleeps):
    data = rows(1000)
    client = make_client(segment_server, fast_sleeps, gzip=True)
    assert client.send_batches(batches_for(data, max_messages=250)).ok
    assert segment_server.snapshot()["gzip_requests"] == 4
    assert segment_server.collection("users") == stored(data)


def test_endpoints():
    assert SegmentClient("k").url == "https://api.segment.io/v1/batch"
    assert SegmentClient("k", region="eu").url == "https://events.eu1.segmentapis.com/v1/batch"
    assert SegmentClient("k", endpoint="http://127.0.0.1:9/").url == "http://127.0.0.1:9/v1/batch"
    with pytest.raises(ValueError, match="region"):
        SegmentClient("k", region="apac")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http") as info:
        SegmentClient("k", endpoint="api.segment.io/wk_secret")
    assert "wk_secret" not in str(info.value)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_token_bucket():
    clock = FakeClock()
    assert TokenBucket(None, clock=clock, sleep=clock.sleep).acquire(10**6) == 0
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    assert clock.sleeps == []
    bucket.acquire()
    assert clock.sleeps == [pytest.approx(0.1)]
    bucket.acquire(25)  # bigger than the bucket: allowed, after paying the debt
    assert clock.sleeps[-1] == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("limits", "expected_wait"),
    [
        ({"max_events_per_second": 1000, "max_requests_per_second": None}, 1.5),
        ({"max_events_per_second": None, "max_requests_per_second": 2}, 1.5),
    ],
)
def test_client_rate_limits(segment_server, limits, expected_wait):
    clock = FakeClock()
    client = SegmentClient(
        WRITE_KEY,
        endpoint=segment_server.url,
        clock=clock,
        sleep=clock.sleep,
        concurrency=1,
        **limits,
    )
    assert client.send_batches(batches_for(rows(2500), max_messages=500)).ok
    assert sum(clock.sleeps) == pytest.approx(expected_wait, abs=0.01)


def test_default_limits_stay_under_segments_ceilings():
    from sqltraits_kit.publishing.segment import (
        DEFAULT_MAX_EVENTS_PER_SECOND,
        DEFAULT_MAX_REQUESTS_PER_SECOND,
    )

    assert 0 < DEFAULT_MAX_EVENTS_PER_SECOND < 1000  # Engage inbound ~1,000 events/s
    assert 0 < DEFAULT_MAX_REQUESTS_PER_SECOND < 1000  # HTTP API ~1,000 requests/s


def test_batches_of_only_rejections_make_no_request(segment_server, segment_client):
    big = build_encoded_message("identify", identifier="u", traits={"p": "x" * 40_000}, run_id="r")
    summary = segment_client.send_batches(pack_batches([big]))
    assert summary.rejected_messages == 1 and summary.requests == 0 and not summary.ok
    assert segment_server.snapshot()["requests"] == 0


def test_a_failing_callback_stops_the_run(segment_server, segment_client):
    def boom(result):
        raise RuntimeError("state store down")

    with pytest.raises(RuntimeError, match="state store down"):
        segment_client.send_batches(batches_for(rows(5000), max_messages=100), on_result=boom)
    assert segment_server.snapshot()["requests"] < 50


def _result(status, *, messages=2, rejected=0, error=None, attempts=1):
    from sqltraits_kit.publishing.segment import BatchResult
    from sqltraits_kit.publishing.segment.batching import Rejection

    msg = build_encoded_message("identify", identifier="u", traits={"p": 1}, run_id="r")
    batch = Batch(
        messages=(msg,) * messages,
        rejected=tuple(Rejection(message=msg, reason="too big") for _ in range(rejected)),
    )
    return BatchResult(batch, status, 200, attempts, error)


def test_the_summary_adds_up_every_batch_and_keeps_five_distinct_errors():
    from sqltraits_kit.publishing.segment import DeliverySummary

    summary = DeliverySummary()
    summary.add(_result(DeliveryStatus.DELIVERED, messages=3, rejected=1, attempts=2))
    summary.add(_result(DeliveryStatus.DELIVERED, messages=2, rejected=2))
    assert (summary.batches, summary.requests, summary.delivered_messages) == (2, 3, 5)
    assert summary.rejected_messages == 3 and not summary.ok  # rejections add up, run by run
    assert summary.errors == [] and summary.failed_batches == 0
    # a failed batch with no error text records no error
    summary.add(_result(DeliveryStatus.FAILED_PERMANENT, messages=4, error=None))
    assert (summary.failed_messages, summary.failed_batches, summary.errors) == (4, 1, [])
    # distinct errors, first five only; a repeated one is not recorded twice
    for text in ["e1", "e1", "e2", "e3", "e4", "e5", "e6", "e7"]:
        summary.add(_result(DeliveryStatus.FAILED_RETRIES_EXHAUSTED, messages=1, error=text))
    assert summary.errors == ["e1", "e2", "e3", "e4", "e5"]
    assert summary.failed_batches == 9 and summary.failed_messages == 12
    # a delivered batch never records an error, even with text
    summary.add(_result(DeliveryStatus.DELIVERED, messages=1, error="ignored"))
    assert "ignored" not in summary.errors and summary.delivered_messages == 6
    clean = DeliverySummary()
    clean.add(_result(DeliveryStatus.DELIVERED))
    assert clean.ok


@pytest.mark.parametrize("concurrency", [1, 3])
def test_at_most_twice_the_concurrency_batches_are_held_before_the_first_is_settled(
    segment_server, concurrency
):
    client = make_client(segment_server, concurrency=concurrency)
    batches = batches_for(rows(200), max_messages=10)
    pulled, seen = [], []

    def source():
        for i, batch in enumerate(batches):
            pulled.append(i)
            yield batch

    def on_result(result):
        seen.append(len(pulled))

    summary = client.send_batches(source(), on_result=on_result)
    assert summary.delivered_messages == 200 and summary.batches == 20
    window = 1 if concurrency == 1 else 2 * concurrency
    # when the first result is settled, exactly the window's batches have been taken
    assert seen[0] == window
    assert max(seen[i] - i for i in range(len(seen))) == window
    client.close()


def test_no_more_requests_than_the_concurrency_are_in_flight(segment_server):
    """The pool has ``concurrency`` workers, no more (a default-sized pool would open as many
    connections as the machine has cores plus four)."""
    client = make_client(segment_server, concurrency=2)
    lock, state = threading.Lock(), {"now": 0, "most": 0}
    post = client._post

    def counting_post(batch):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            state.setdefault("threads", set()).add(threading.current_thread().name)
        try:
            return post(batch)
        finally:
            with lock:
                state["now"] -= 1

    client._post = counting_post
    for _ in range(12):
        segment_server.inject(Delay(0.05))  # slow answers, so the requests overlap
    summary = client.send_batches(batches_for(rows(120), max_messages=10))
    assert summary.ok and summary.delivered_messages == 120
    assert state["most"] == 2
    # named for a thread dump: the senders are told apart from the caller's threads
    assert state["threads"] and all(n.startswith("segment-send_") for n in state["threads"])
    client.close()


def test_a_stopped_run_waits_for_its_requests_in_flight_and_cancels_the_queued_ones(
    segment_server,
):
    """When the caller's callback fails, send_batches waits for the requests already on the
    wire before raising (nothing of the run is still sending when the caller records the stop),
    and the batches still queued are never sent."""
    client = make_client(segment_server, concurrency=2)
    batches = batches_for(rows(100), max_messages=10)
    release, called = threading.Event(), threading.Event()
    posted, lock = [], threading.Lock()
    post = client._post

    def held_post(batch):  # the first batch answers at once, every other one waits
        with lock:
            posted.append(batches.index(batch))
        if batch is not batches[0]:
            assert release.wait(30)
        return post(batch)

    client._post = held_post
    outcome = {}

    def boom(result):
        called.set()
        raise RuntimeError("state store down")

    def run():
        try:
            client.send_batches(batches, on_result=boom)
        except RuntimeError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert called.wait(30)  # the first batch was settled and the callback failed
    worker.join(timeout=0.5)
    assert worker.is_alive()  # two requests are still held: the run has not returned
    release.set()
    worker.join(timeout=30)
    assert not worker.is_alive() and outcome == {"error": "state store down"}
    # 4 batches were taken (2 × concurrency); the 4th was still queued when the run stopped
    assert 0 in posted and 3 not in posted and len(posted) <= 3, posted
    client.close()


def test_the_summary_times_the_whole_run_on_the_clients_clock(segment_server):
    now = {"t": 100.0}
    client = make_client(segment_server, clock=lambda: now["t"])

    def tick(result):  # time passes only between batches: 1.5 s each
        now["t"] += 1.5

    summary = client.send_batches(batches_for(rows(20), max_messages=10), on_result=tick)
    assert summary.delivered_messages == 20
    assert summary.elapsed == 3.0
    client.close()
