"""Read published traits back from Segment's Profile API (``src/unify/profile-api.md``)."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal
from urllib.parse import quote

import requests

from sqltraits_kit.publishing.segment.deadline import deadline, mount
from sqltraits_kit.publishing.segment.endpoints import PROFILE_HOSTS, base_url
from sqltraits_kit.publishing.segment.ratelimit import TokenBucket
from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.segment.secret import Secret

#: The Profile API allows 100 requests/s per space and answers 429 above.
DEFAULT_MAX_REQUESTS_PER_SECOND = 50.0
#: Page size: the docs allow 1-100 for list endpoints (200 for traits); 100 fits both.
PAGE_LIMIT = 100


class ProfileAPIError(RuntimeError):
    """A Profile API answer other than 200 or 404; the message never holds the token."""

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class ProfileClient:
    """``GET .../collections/<users|accounts>/profiles/<id_type>:<id>/traits``."""

    def __init__(
        self,
        token: str | Secret,
        *,
        space_id: str,
        region: Literal["us", "eu"] = "us",
        endpoint: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        endpoint = base_url(PROFILE_HOSTS, region=region, endpoint=endpoint)
        if not space_id:
            raise ValueError("space_id is required")
        self._token = Secret.of(token)
        self.base = f"{endpoint}/v1/spaces/{quote(space_id, safe='')}/collections"
        self.timeout = timeout
        self.retry = retry or RetryPolicy(max_retries=5, max_delay=10.0)
        self._own_session = session is None
        self._session = session or mount(requests.Session())
        self._sleep = sleep
        self._limiter = TokenBucket(max_requests_per_second, sleep=sleep)
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"ProfileClient(base={self.base!r}, token=***)"

    def get_traits(
        self,
        identifier: str,
        *,
        collection: Literal["users", "accounts"] = "users",
        id_type: str = "user_id",
        include: Iterable[str] | None = None,
    ) -> dict[str, Any] | None:
        """All traits of one profile (following pagination), or ``None`` if not found.

        ``id_type`` is the external id type: ``user_id``, ``anonymous_id``, ``email``
        for users; ``group_id`` for accounts.
        """
        if collection not in ("users", "accounts"):
            raise ValueError(f"collection must be 'users' or 'accounts', not {collection!r}")
        url = (
            f"{self.base}/{collection}/profiles/{quote(f'{id_type}:{identifier}', safe=':')}/traits"
        )
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if include is not None:
            params["include"] = ",".join(include)
        traits: dict[str, Any] = {}
        while True:
            body = self._get(url, params)
            if body is None:
                return None
            traits.update(body.get("traits") or {})
            cursor = body.get("cursor") or {}
            if not cursor.get("has_more") or not cursor.get("next"):
                return traits
            params = {**params, "next": cursor["next"]}

    def _get(self, url: str, params: dict[str, Any]) -> dict[str, Any] | None:
        auth = "Basic " + base64.b64encode(f"{self._token.reveal()}:".encode()).decode()
        retries = 0
        while True:
            self._limiter.acquire()
            status: int | None = None
            retry_after = None
            try:
                with deadline(self.timeout) as inflight:
                    # Not following redirects: the token must only reach the configured host.
                    response = self._session.get(
                        url,
                        params=params,
                        headers={"Authorization": auth},
                        timeout=self.timeout,
                        allow_redirects=False,
                    )
                    _ = response.content
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
                if inflight.expired:
                    error = f"no complete answer within {self.timeout:g} s (total timeout)"
            else:
                status = response.status_code
                if 300 <= status < 400:
                    raise ProfileAPIError(
                        f"the Profile API endpoint redirected (HTTP {status}); Segment never "
                        "redirects: check the region/endpoint (a proxy or login page?)",
                        status=status,
                    )
                if status == 200:
                    return self._json(response)
                if status == 404:
                    return None
                error = f"HTTP {status}: {' '.join(response.text.split())[:300]}"
                retry_after = response.headers.get("Retry-After")
            error = self._token.redact(error)
            if status is not None and not self.retry.is_retryable(status):
                raise ProfileAPIError(f"Profile API error: {error}", status=status)
            if retries >= self.retry.max_retries:
                raise ProfileAPIError(
                    f"Profile API still failing after retries: {error}", status=status
                )
            retries += 1
            wait = self.retry.retry_after(retry_after, now=time.time())
            self._sleep(wait if wait else self.retry.backoff(retries, self._rng))

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            kind = response.headers.get("Content-Type") or "no content type"
            raise ProfileAPIError(
                f"the Profile API endpoint answered 200 with a body that is not JSON ({kind}): "
                "a proxy or login page?",
                status=200,
            )
        return body

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> ProfileClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
