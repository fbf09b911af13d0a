"""A local stand-in for Segment's Tracking API and Profile API, on 127.0.0.1 (nothing leaves
the machine): for demos (``sqltraits standin``), for trying a publish without a Segment account,
and for the test suite, which drives its fault injection.

Behaviour follows Segment's docs (``http-api/index.md``, ``unify/product-limits.md``,
``unify/profile-api.md``):

- ``POST /v1/batch`` (and ``/v1/identify``, ``/v1/group``, ...): HTTP Basic auth with
  the write key as user name (or ``writeKey`` in the body), else 401;
  ``Content-Type: application/json``, else 400; gzip bodies accepted; invalid JSON
  (bare ``NaN`` included) -> 400; body over 500,000 bytes (32 KB for a single call) or
  any message over 32 KB -> 400; more than 2,500 messages -> 200 and every event dropped.
- Messages without userId/anonymousId, a group without groupId (or > 500 chars), a
  messageId over 100 chars or 300+ traits are answered 200 and dropped, as Unify does;
  they are listed in `FakeSegmentServer.rejected` so tests can assert there are none.
- Dedup by messageId; identify merges traits into the user's profile, group into the
  account's; a null value sets the trait to null.
- ``GET /v1/spaces/<space>/collections/<users|accounts>/profiles/<type>:<id>/traits``
  with Basic auth (access token), ``limit``/``include``/``next``; 404 body as Segment's.
- Fault injection: `FakeSegmentServer.inject` queues `Respond`, `DropConnection`,
  `Delay`, `HtmlPage` (a proxy or captive portal answering 200 with HTML), `Redirect`
  (a 3xx to `LANDING_PATH` on this server, which answers 200 to GET and POST and records
  the headers it got in `FakeSegmentServer.landing`) or `Trickle` (an answer sent a byte
  at a time) for the next tracking requests; `FakeSegmentServer.fail_every` adds a rule
  (e.g. a ``Respond(429, headers={"Retry-After": "20"})`` on every request).
- Admin endpoints for a server run in another process: ``GET /_fake/stats``,
  ``GET /_fake/profiles/<users|accounts>``, ``GET /_fake/rejected``,
  ``GET /_fake/landing`` (headers the redirect target received), ``POST /_fake/reset``,
  ``POST /_fake/inject`` (JSON list of faults, see `fault_from_json`),
  ``POST /_fake/fail_every`` (``{"n": 3, "fault": {...}}``), ``POST /_fake/clear_faults``.
  `FakeSegmentServer.inject_profile` does the same for Profile API GETs.

Run alone: ``python -m sqltraits_kit.publishing.standin --port 0`` prints
``FAKE_SEGMENT_URL=http://127.0.0.1:<port>`` and serves until interrupted; ``sqltraits standin``
does the same with a friendlier banner and shows what it holds (``--show``).
"""

from sqltraits_kit.publishing.standin.faults import (
    LANDING_PATH,
    Delay,
    DropConnection,
    Fault,
    HtmlPage,
    Redirect,
    Respond,
    Trickle,
    fault_from_json,
)
from sqltraits_kit.publishing.standin.rules import (
    MAX_BATCH_BODY_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_GROUP_ID_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_ID_CHARS,
    MAX_TRAITS,
    TRACKING_TYPES,
)
from sqltraits_kit.publishing.standin.run import main
from sqltraits_kit.publishing.standin.server import FakeSegmentServer, Stats

__all__ = [
    "LANDING_PATH",
    "MAX_BATCH_BODY_BYTES",
    "MAX_BATCH_MESSAGES",
    "MAX_GROUP_ID_CHARS",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_ID_CHARS",
    "MAX_TRAITS",
    "TRACKING_TYPES",
    "Delay",
    "DropConnection",
    "FakeSegmentServer",
    "Fault",
    "HtmlPage",
    "Redirect",
    "Respond",
    "Stats",
    "Trickle",
    "fault_from_json",
    "main",
]
