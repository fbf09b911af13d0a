"""Only Segment's answer counts, and every wait has an end (issue 11, faults 1 and 5).

Each test here failed before the change: `requests` followed redirects (re-sending the
key to the target) and took any 2xx as delivered; a trickling answer or a repeated
``Retry-After`` kept a batch waiting as long as the server liked.
"""

from __future__ import annotations

import base64
import time

import pytest
import requests

from sqltraits_kit.publishing.segment import DeliveryStatus, RetryPolicy
from sqltraits_kit.publishing.standin import (
    LANDING_PATH,
    Delay,
    DropConnection,
    FakeSegmentServer,
    HtmlPage,
    Redirect,
    Respond,
    Trickle,
    fault_from_json,
)
from tests.support.segment import WRITE_KEY, batches_for, make_client, rows, stored


def _wait_for(predicate, *, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.02)


# -- fault 1: a 200 that is not Segment ----------------------------------------------------


def test_an_html_200_is_not_a_delivery_and_is_not_retried(segment_server, fast_sleeps):
    segment_server.inject(HtmlPage())
    (batch,) = batches_for(rows(10))
    result = make_client(segment_server, fast_sleeps).send_batch(batch)
    assert not result.ok and result.status is DeliveryStatus.FAILED_NOT_SEGMENT
    assert (result.attempts, result.http_status) == (1, 200)
    assert "answered 200 with an HTML page — a proxy or login page?" in result.error
    assert "guest network" in result.error  # says what came back
    assert fast_sleeps == []  # a misconfiguration: no retries burnt on it
    assert segment_server.snapshot()["messages_accepted"] == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"OK", "not JSON"),
        (b"", "empty body"),
        ({"success": False}, "not Segment's success answer"),
        ({"code": "invalid", "message": "nope"}, "not Segment's success answer"),
        ([1, 2], "not Segment's success answer"),
        (b"<html><body>Access denied</body></html>", "HTML page"),
    ],
)
def test_a_2xx_whose_body_is_not_segments_success_json_is_not_a_delivery(
    segment_server, fast_sleeps, body, expected
):
    segment_server.inject(Respond(200, body=body))
    (batch,) = batches_for(rows(3))
    result = make_client(segment_server, fast_sleeps).send_batch(batch)
    assert result.status is DeliveryStatus.FAILED_NOT_SEGMENT
    assert expected in result.error and result.attempts == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_nor_counted_as_delivered(segment_server, fast_sleeps, status):
    # The target answers {"success": true} to GET and POST: following it would "succeed".
    segment_server.inject(Redirect(status))
    (batch,) = batches_for(rows(5))
    result = make_client(segment_server, fast_sleeps).send_batch(batch)
    assert result.status is DeliveryStatus.FAILED_NOT_SEGMENT and not result.ok
    assert (result.attempts, result.http_status) == (1, status)
    host = segment_server.url.removeprefix("http://")
    assert f"the endpoint redirected ({status} to {host}) — Segment never redirects" in result.error
    assert segment_server.landing == []  # not followed: the key never reached the target
    assert segment_server.snapshot()["messages_accepted"] == 0


def test_a_redirect_to_another_host_never_gets_the_key(segment_server, fast_sleeps):
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as elsewhere:
        segment_server.inject(Redirect(307, location=elsewhere.url + LANDING_PATH + "?t=s3cr3t"))
        (batch,) = batches_for(rows(5))
        result = make_client(segment_server, fast_sleeps).send_batch(batch)
        assert result.status is DeliveryStatus.FAILED_NOT_SEGMENT
        assert elsewhere.landing == [] and elsewhere.snapshot()["requests"] == 0
    assert "s3cr3t" not in result.error  # only the target's host is quoted
    assert elsewhere.url.removeprefix("http://") in result.error


def test_the_key_reaches_only_the_configured_host(segment_server, fast_sleeps):
    """Whatever the answers, every request carrying the key went to the configured URL."""
    segment_server.inject(Redirect(302), Redirect(307), HtmlPage(), Respond(500))
    client = make_client(segment_server, fast_sleeps, concurrency=1)
    client.send_batches(batches_for(rows(40), max_messages=10))
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert all(auth not in hit["headers"].values() for hit in segment_server.landing)
    assert segment_server.landing == []


def test_after_a_not_segment_answer_the_next_batches_still_go(segment_server, fast_sleeps):
    segment_server.inject(HtmlPage())
    data = rows(30)
    results = []
    client = make_client(segment_server, fast_sleeps, concurrency=1)
    summary = client.send_batches(batches_for(data, max_messages=10), on_result=results.append)
    assert [r.status.value for r in results] == ["failed_not_segment", "delivered", "delivered"]
    assert (summary.delivered_messages, summary.failed_messages) == (20, 10)
    assert summary.errors and "HTML page" in summary.errors[0]
    held = segment_server.collection("users")
    assert len(held) == 20 and all(held[k] == v for k, v in stored(data).items() if k in held)


# -- fault 5: deadlines ------------------------------------------------------------------


@pytest.mark.parametrize("head", [False, True], ids=["body-trickles", "headers-trickle"])
def test_a_trickling_answer_is_cut_at_the_total_timeout(segment_server, fast_sleeps, head):
    # A byte every 0.1 s never trips the 1 s per-read timeout; 200+ bytes take 20+ s.
    segment_server.inject(Trickle(interval=0.1, size=200, head=head))
    client = make_client(segment_server, fast_sleeps, timeout=1.0, retry=RetryPolicy(max_retries=0))
    (batch,) = batches_for(rows(3))
    result = client.send_batch(batch)
    assert result.status is DeliveryStatus.FAILED_RETRIES_EXHAUSTED
    assert result.http_status is None
    assert "no complete answer within 1 s, the total timeout per request" in result.error
    _wait_for(lambda: segment_server.snapshot()["trickles_cut"] == 1)
    client.close()


def test_a_trickled_answer_that_was_applied_is_retried_and_deduplicated(
    segment_server, fast_sleeps
):
    data = rows(20)
    segment_server.inject(Trickle(interval=0.1, size=200, process=True))
    client = make_client(segment_server, fast_sleeps, timeout=1.0)
    (batch,) = batches_for(data)
    result = client.send_batch(batch)
    assert result.ok and result.attempts == 2
    stats = segment_server.snapshot()
    assert (stats["messages_accepted"], stats["duplicates"]) == (20, 20)
    assert segment_server.collection("users") == stored(data)
    client.close()


def test_a_fast_enough_answer_is_not_cut(segment_server, fast_sleeps):
    segment_server.inject(Trickle(interval=0.01, size=30), Delay(0.2))
    client = make_client(segment_server, fast_sleeps, timeout=3.0, concurrency=1)
    summary = client.send_batches(batches_for(rows(20), max_messages=10))
    assert summary.ok and summary.requests == 2
    client.close()


def test_repeated_retry_after_is_capped_per_run(segment_server, fast_sleeps):
    segment_server.fail_every(1, Respond(429, headers={"Retry-After": "20"}))
    client = make_client(segment_server, fast_sleeps, concurrency=1)
    assert client.retry.max_rate_limit_wait == 120  # the default cap
    results = []
    summary = client.send_batches(batches_for(rows(50), max_messages=10), on_result=results.append)
    assert summary.delivered_messages == 0 and summary.failed_batches == 5
    assert sum(fast_sleeps) == 120 and fast_sleeps == [20] * 6  # not 5 x 1,800 s
    assert {r.status for r in results} == {DeliveryStatus.FAILED_RETRIES_EXHAUSTED}
    assert [r.attempts for r in results] == [7, 1, 1, 1, 1]
    assert (
        "its cap (max_rate_limit_wait=120 s): the batch is left for the next run"
        in (summary.errors[0])
    )
    # the next run has a fresh budget and, once Segment lets us in, delivers
    segment_server.clear_faults()
    fast_sleeps.clear()
    assert client.send_batches(batches_for(rows(50), max_messages=10)).ok


def test_the_retry_after_cap_is_shared_by_concurrent_batches(segment_server, fast_sleeps):
    segment_server.fail_every(1, Respond(429, headers={"Retry-After": "5"}))
    client = make_client(
        segment_server, fast_sleeps, concurrency=4, retry=RetryPolicy(max_rate_limit_wait=30)
    )
    summary = client.send_batches(batches_for(rows(200), max_messages=10))
    assert summary.failed_batches == 20 and sum(fast_sleeps) <= 30


# -- the fake server's new faults work out of process too -------------------------------------


def test_new_faults_from_json():
    assert fault_from_json({"kind": "html"}) == HtmlPage()
    assert fault_from_json({"kind": "redirect", "status": 307}) == Redirect(307)
    assert fault_from_json({"kind": "trickle", "interval": 0.2, "head": True}) == Trickle(
        interval=0.2, head=True
    )
    spec = {"kind": "drop", "process": True}
    assert fault_from_json(spec) == DropConnection(process=True) and spec["kind"] == "drop"


def test_admin_endpoints_take_the_new_faults(segment_server, fast_sleeps):
    url = segment_server.url
    requests.post(url + "/_fake/inject", json=[{"kind": "redirect"}], timeout=5)
    spec = {"n": 1, "fault": {"kind": "html", "status": 200}}
    requests.post(url + "/_fake/fail_every", json=spec, timeout=5)
    client = make_client(segment_server, fast_sleeps, concurrency=1)
    results = []
    client.send_batches(batches_for(rows(20), max_messages=10), on_result=results.append)
    assert ["redirected" in r.error for r in results] == [True, False]
    assert "HTML page" in results[1].error
    assert requests.get(url + "/_fake/landing", timeout=5).json() == []
    requests.post(url + "/_fake/clear_faults", timeout=5)
    assert client.send_batches(batches_for(rows(20), max_messages=10)).ok
    # the redirect target itself answers 200 to a GET (what requests used to follow to)
    landing = requests.get(url + LANDING_PATH, timeout=5)
    assert landing.status_code == 200 and segment_server.landing[0]["method"] == "GET"


def test_the_deadline_transport_serves_direct_and_http_proxy_requests():
    from sqltraits_kit.publishing.segment.deadline import DeadlineAdapter

    adapter = DeadlineAdapter()
    assert adapter.poolmanager.pool_classes_by_scheme["http"].__name__ == "_DeadlinePool"
    http_proxy = adapter.proxy_manager_for("http://127.0.0.1:3128")
    assert http_proxy.pool_classes_by_scheme["https"].__name__ == "_DeadlineTLSPool"


def test_the_deadline_transport_leaves_socks_pools_alone():
    pytest.importorskip("socks")  # requests[socks]; not a dependency of the kit
    from sqltraits_kit.publishing.segment.deadline import DeadlineAdapter

    socks = DeadlineAdapter().proxy_manager_for("socks5://127.0.0.1:1080")
    assert "SOCKS" in socks.pool_classes_by_scheme["http"].__name__


@pytest.fixture
def tls_server(tmp_path):
    """The fake server over HTTPS with a throwaway self-signed certificate for 127.0.0.1."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with FakeSegmentServer(write_keys=(WRITE_KEY,), tls=context) as server:
        yield server, str(cert)


@pytest.mark.parametrize("head", [False, True], ids=["body-trickles", "headers-trickle"])
def test_the_total_timeout_cuts_a_trickle_over_tls(tls_server, fast_sleeps, head):
    from sqltraits_kit.publishing.segment.deadline import mount

    server, cert = tls_server
    session = mount(requests.Session())  # an injected session gets the deadline this way
    session.verify = cert
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace verify
    client = make_client(
        server, fast_sleeps, timeout=1.0, session=session, retry=RetryPolicy(max_retries=0)
    )
    (batch,) = batches_for(rows(3))
    assert client.send_batch(batch).ok  # TLS works at all
    server.inject(Trickle(interval=0.1, size=200, head=head))
    result = client.send_batch(batch)
    assert result.status is DeliveryStatus.FAILED_RETRIES_EXHAUSTED
    assert "no complete answer within 1 s" in result.error
    _wait_for(lambda: server.snapshot()["trickles_cut"] == 1)
    session.close()
