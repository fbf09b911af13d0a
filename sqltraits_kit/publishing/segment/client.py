"""Send batches to Segment's HTTP Tracking API and report each batch's outcome.

The client never drops a batch silently: `send_batch` always returns a `BatchResult`,
and `send_batches` hands every result, in input order and on the caller's thread, to
``on_result`` so the caller can commit sync state only for what Segment acknowledged.

Only Segment's own answer counts (see `answer.judge`): redirects are never followed (the
write key never goes to a redirect target), and a 2xx is a delivery only when its body is
Segment's ``{"success": true}``. Every request has a total deadline (`deadline.py`), and
the time one run spends obeying ``Retry-After`` is capped (`RetryPolicy.max_rate_limit_wait`).
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import gzip as gzip_lib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

import sqltraits_kit
from sqltraits_kit.publishing.segment.answer import Verdict, judge
from sqltraits_kit.publishing.segment.batching import Batch
from sqltraits_kit.publishing.segment.deadline import deadline, mount
from sqltraits_kit.publishing.segment.endpoints import TRACKING_HOSTS, base_url
from sqltraits_kit.publishing.segment.payload import format_timestamp
from sqltraits_kit.publishing.segment.ratelimit import TokenBucket
from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.segment.secret import Secret

log = logging.getLogger(__name__)

#: Segment recommends at most 1,000 requests/s per workspace; other sources share it.
DEFAULT_MAX_REQUESTS_PER_SECOND = 50.0
#: Engage takes about 1,000 events/s inbound and slows down above; keep 20% headroom.
DEFAULT_MAX_EVENTS_PER_SECOND = 800.0
USER_AGENT = f"sqltraits-kit/{sqltraits_kit.__version__}"
_AUTH_STATUSES = frozenset({401, 403})


class DeliveryStatus(enum.StrEnum):
    DELIVERED = "delivered"
    #: Segment refused the batch (400, 401, 403, 413, ...): retrying cannot help.
    FAILED_PERMANENT = "failed_permanent"
    #: Still failing (5xx, 429, network, total timeout) after every retry, or the run's
    #: ``Retry-After`` budget is spent: worth trying in a later run.
    FAILED_RETRIES_EXHAUSTED = "failed_retries_exhausted"
    #: The answer was not Segment's (a redirect, an HTML page, a non-JSON or non-success
    #: body): the endpoint is misconfigured or intercepted, so it is not retried in this run.
    FAILED_NOT_SEGMENT = "failed_not_segment"


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch: Batch
    status: DeliveryStatus
    http_status: int | None  # the last response's status; None if no response came
    attempts: int  # HTTP requests made for this batch (0 if nothing was sent)
    error: str | None = None  # last error, with any credential removed
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is DeliveryStatus.DELIVERED


@dataclass
class DeliverySummary:
    batches: int = 0
    requests: int = 0
    delivered_messages: int = 0
    failed_messages: int = 0
    rejected_messages: int = 0  # refused before sending (see `Batch.rejected`)
    failed_batches: int = 0
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)  # first few distinct errors

    @property
    def ok(self) -> bool:
        return self.failed_messages == 0 and self.rejected_messages == 0

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.requests += result.attempts
        self.rejected_messages += len(result.batch.rejected)
        if result.ok:
            self.delivered_messages += len(result.batch)
        else:
            self.failed_messages += len(result.batch)
            self.failed_batches += 1
            if result.error and result.error not in self.errors and len(self.errors) < 5:
                self.errors.append(result.error)


class SegmentClient:
    """Client for ``POST /v1/batch`` with retries, rate limiting and parallel requests.

    ``endpoint`` is a base URL (``http://127.0.0.1:8080``) that overrides ``region``.
    ``concurrency`` requests run at once in `send_batches`, each worker thread with its
    own keep-alive ``requests.Session`` unless ``session`` is given (then it is shared).
    ``clock``/``sleep``/``wall_clock``/``rng`` exist so tests can run backoff instantly.

    ``timeout`` is the total time one request may take, connect to last byte of the
    answer; it holds on the sessions this client creates (an injected ``session`` needs
    `deadline.mount` for it, otherwise only ``requests``' per-read timeout applies).
    """

    def __init__(
        self,
        write_key: str | Secret,
        *,
        region: Literal["us", "eu"] = "us",
        endpoint: str | None = None,
        session: requests.Session | None = None,
        gzip: bool = False,
        timeout: float = 15.0,
        max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND,
        max_events_per_second: float | None = DEFAULT_MAX_EVENTS_PER_SECOND,
        retry: RetryPolicy | None = None,
        concurrency: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        base = base_url(TRACKING_HOSTS, region=region, endpoint=endpoint)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._key = Secret.of(write_key)
        self._auth = Secret("Basic " + _basic(self._key.reveal()))
        self.url = base if base.endswith("/v1/batch") else base + "/v1/batch"
        self.gzip = gzip
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self._session = session
        self._local = threading.local()
        self._own_sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._clock, self._sleep, self._wall = clock, sleep, wall_clock
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._requests = TokenBucket(max_requests_per_second, clock=clock, sleep=sleep)
        self._events = TokenBucket(max_events_per_second, clock=clock, sleep=sleep)
        self._refused: int | None = None  # set by a 401/403

    def __repr__(self) -> str:
        return f"SegmentClient(url={self.url!r}, write_key=***)"

    # -- sending ------------------------------------------------------------------------

    def send_batch(self, batch: Batch) -> BatchResult:
        """Send one batch, retrying per `RetryPolicy`; never raises for HTTP trouble.

        On its own, a batch gets the whole ``Retry-After`` budget; within `send_batches`
        all batches of the call share one.
        """
        return self._send(batch, _WaitBudget(self.retry.max_rate_limit_wait))

    def _send(self, batch: Batch, budget: _WaitBudget) -> BatchResult:
        start = self._clock()
        attempts = retries = 0

        def done(status: DeliveryStatus, http: int | None, error: str | None) -> BatchResult:
            return BatchResult(batch, status, http, attempts, error, self._clock() - start)

        if not batch.messages:
            return done(DeliveryStatus.DELIVERED, None, None)
        if self._refused is not None:
            return done(
                DeliveryStatus.FAILED_PERMANENT,
                None,
                f"not sent: an earlier batch was refused with HTTP {self._refused} "
                "(check the write key and region)",
            )
        policy = self.retry
        while True:
            self._requests.acquire(1)
            self._events.acquire(len(batch))
            attempts += 1
            status, retry_after, error, verdict = self._post(batch)
            if verdict is Verdict.DELIVERED:
                return done(DeliveryStatus.DELIVERED, status, None)
            if verdict is Verdict.NOT_SEGMENT:
                log.error("a batch of %d messages was not delivered: %s", len(batch), error)
                return done(DeliveryStatus.FAILED_NOT_SEGMENT, status, error)
            if status is not None and not policy.is_retryable(status):
                if status in _AUTH_STATUSES:
                    self._refused = status  # the key is wrong for every batch
                log.error("Segment refused a batch of %d messages: %s", len(batch), error)
                return done(DeliveryStatus.FAILED_PERMANENT, status, error)
            wait = policy.retry_after(retry_after, now=self._wall()) if status else None
            if wait and not budget.take(wait):
                error = (
                    f"{error}; Segment asked to wait {wait:g} s more (Retry-After), but this run "
                    f"already waited {budget.spent:g} s on Retry-After, its cap "
                    f"(max_rate_limit_wait={budget.cap:g} s): the batch is left for the next run"
                )
                log.error("gave up on a batch: %s", error)
                return done(DeliveryStatus.FAILED_RETRIES_EXHAUSTED, status, error)
            if wait:
                log.warning("Segment asked to retry after %.1f s (%s)", wait, error)
            elif retries < policy.max_retries:
                retries += 1
                with self._rng_lock:
                    wait = policy.backoff(retries, self._rng)
                log.warning("retry %d/%d in %.2f s: %s", retries, policy.max_retries, wait, error)
            else:
                log.error("gave up on a batch after %d attempts: %s", attempts, error)
                return done(DeliveryStatus.FAILED_RETRIES_EXHAUSTED, status, error)
            self._sleep(wait)

    def send_batches(
        self,
        batches: Iterable[Batch],
        *,
        on_result: Callable[[BatchResult], None] | None = None,
    ) -> DeliverySummary:
        """Send every batch, up to ``concurrency`` at a time; report each in input order.

        ``on_result`` runs on the calling thread (safe for a warehouse connection) as
        soon as a batch and all before it are settled. At most ``2 * concurrency``
        batches are held in memory. An exception from ``on_result`` or from iterating
        ``batches`` stops the run: batches not yet started are cancelled.
        """
        summary = DeliverySummary()
        start = self._clock()
        budget = _WaitBudget(self.retry.max_rate_limit_wait)  # one per call: one per run

        def settle(result: BatchResult) -> None:
            summary.add(result)
            if on_result is not None:
                on_result(result)

        if self.concurrency == 1:
            for batch in batches:
                settle(self._send(batch, budget))
        else:
            pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="segment-send")
            pending: deque[Future[BatchResult]] = deque()
            try:
                for batch in batches:
                    pending.append(pool.submit(self._send, batch, budget))
                    while len(pending) >= 2 * self.concurrency:
                        settle(pending.popleft().result())
                while pending:
                    settle(pending.popleft().result())
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        summary.elapsed = self._clock() - start
        return summary

    # -- HTTP ---------------------------------------------------------------------------

    def _post(self, batch: Batch) -> tuple[int | None, str | None, str | None, Verdict | None]:
        """One request: (status or None, Retry-After header, error text, verdict or None)."""
        sent_at = format_timestamp(dt.datetime.fromtimestamp(self._wall(), dt.UTC))
        body = batch.body(sent_at)
        headers = {
            "Content-Type": "application/json",
            "Authorization": self._auth.reveal(),
            "User-Agent": USER_AGENT,
        }
        if self.gzip:
            body = gzip_lib.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        session = self._session_for_thread()
        with deadline(self.timeout) as inflight:
            try:
                # Never follow a redirect: requests would re-send the key to the target
                # (same host) and turn the POST into a GET whose 200 proves nothing.
                response = session.post(
                    self.url,
                    data=body,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
                content = response.content
            except requests.RequestException as exc:
                if inflight.expired:
                    return None, None, self._deadline_error(), None
                # requests' messages can quote the URL; make sure no credential rides along.
                return None, None, self._redact(f"{type(exc).__name__}: {exc}"), None
        status = response.status_code
        answer = judge(status, response.headers, content)
        if answer.verdict is not Verdict.HTTP_ERROR:
            return status, None, self._redact(answer.error or "") or None, answer.verdict
        detail = " ".join(response.text.split())[:300]
        error = self._redact(f"HTTP {status} {response.reason}: {detail}".rstrip(": "))
        return status, response.headers.get("Retry-After"), error, Verdict.HTTP_ERROR

    def _deadline_error(self) -> str:
        return (
            f"no complete answer within {self.timeout:g} s, the total timeout per request "
            "(connect + the whole answer): the server is too slow or trickling its answer"
        )

    def _redact(self, text: str) -> str:
        return self._key.redact(text)  # the key and its base64 "key:" form

    def _session_for_thread(self) -> requests.Session:
        if self._session is not None:
            return self._session
        session = getattr(self._local, "session", None)
        if session is None:
            session = mount(requests.Session())
            self._local.session = session
            with self._sessions_lock:
                self._own_sessions.append(session)
        return session

    def close(self) -> None:
        """Close the sessions this client created (an injected session is left open)."""
        with self._sessions_lock:
            for session in self._own_sessions:
                session.close()
            self._own_sessions.clear()
        self._local = threading.local()

    def __enter__(self) -> SegmentClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _WaitBudget:
    """Seconds a run may still spend obeying ``Retry-After``, shared by its threads.

    Waits on several threads at once each count in full, so with ``concurrency`` 4 the
    wall time spent waiting may be a quarter of the cap: the cap errs on the short side.
    """

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.spent = 0.0
        self._lock = threading.Lock()

    def take(self, seconds: float) -> bool:
        with self._lock:
            if self.spent + seconds > self.cap:
                return False
            self.spent += seconds
            return True


def _basic(user: str) -> str:
    return base64.b64encode(f"{user}:".encode()).decode()
