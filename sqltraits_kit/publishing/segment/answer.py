"""Decide whether an HTTP answer is Segment acknowledging a batch, and say what it was.

Only an answer that is unmistakably Segment's counts as delivered: the sync state marks
rows delivered on it, so a proxy, a captive portal or a login wall answering ``200`` must
never pass. What Segment's docs say (segment-docs,
``src/connections/sources/catalog/libraries/server/http-api/index.md``, "Errors"): the
Tracking API answers ``200`` to every request except oversize payloads and invalid JSON
(``400``), and ``429`` with ``Retry-After`` over the rate limit; errors carry a JSON body
``{"code": ..., "message": ...}`` (the official library reads those two keys). The page
does not spell out the success body (the official Python library does not read it);
the API answers ``{"success": true}`` (our checked Segment facts), and the page describes
no redirect. So: delivered means a 2xx whose body parses as a JSON object with
``"success": true``; anything else is a failed batch, never a delivery.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

#: How much of an unexpected body is quoted in an error (after collapsing whitespace).
_QUOTE_CHARS = 120


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    #: A 3xx, or a 2xx whose body is not Segment's success JSON: the configured endpoint
    #: is not (only) Segment. Retrying the same request cannot fix it.
    NOT_SEGMENT = "not_segment"
    #: Any other status: the retry policy decides (400 permanent, 5xx/429 retried, ...).
    HTTP_ERROR = "http_error"


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: Verdict
    error: str | None  # what came back, for the run's report; None when delivered


def judge(status: int, headers: Mapping[str, str], body: bytes) -> Answer:
    """Classify one answer of ``POST /v1/batch`` (``headers`` case-insensitive)."""
    if 300 <= status < 400:
        return Answer(Verdict.NOT_SEGMENT, _redirect_error(status, headers.get("Location")))
    if not 200 <= status < 300:
        return Answer(Verdict.HTTP_ERROR, None)
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if ctype in ("text/html", "application/xhtml+xml") or _looks_like_html(text):
        return Answer(
            Verdict.NOT_SEGMENT,
            f"the endpoint answered {status} with an HTML page — a proxy or login page? "
            f"Segment answers JSON (page starts: {_quote(text)!r})",
        )
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        what = f"a {ctype} body" if ctype else "a body"
        return Answer(
            Verdict.NOT_SEGMENT,
            f"the endpoint answered {status} with {what} that is not JSON ({_quote(text)!r}); "
            "Segment answers JSON — is something between us and Segment?",
        )
    if parsed is None:
        return Answer(
            Verdict.NOT_SEGMENT,
            f"the endpoint answered {status} with an empty body; Segment answers "
            '{"success": true} — is something between us and Segment?',
        )
    if isinstance(parsed, dict) and parsed.get("success") is True:
        return Answer(Verdict.DELIVERED, None)
    return Answer(
        Verdict.NOT_SEGMENT,
        f"the endpoint answered {status} with JSON that is not Segment's success answer "
        f'{{"success": true}}: {_quote(text)!r}',
    )


def _redirect_error(status: int, location: str | None) -> str:
    # Only the target's host is quoted: a redirect URL may carry a session or a token.
    target = urlsplit(location).netloc if location else ""
    where = f" to {target}" if target else (" to a path on the same host" if location else "")
    return (
        f"the endpoint redirected ({status}{where}) — Segment never redirects; "
        "check the region/endpoint (a proxy or login page?). Not followed, nothing counted."
    )


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:64].lower()
    return head.startswith(("<!doctype html", "<html", "<head", "<body"))


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _QUOTE_CHARS else flat[:_QUOTE_CHARS] + "…"
