"""What Segment accepts: the limits and the per-message rules the stand-in enforces.

From Segment's docs (``http-api/index.md``, ``unify/product-limits.md``); a message that breaks a
rule is answered 200 and dropped, as Unify does.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

MAX_BATCH_BODY_BYTES = 500_000
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_MESSAGES = 2500
MAX_MESSAGE_ID_CHARS = 100
MAX_GROUP_ID_CHARS = 500
MAX_TRAITS = 299
TRACKING_TYPES = {"identify", "group", "track", "page", "screen", "alias"}
TRAITS_PATH = re.compile(
    r"^/v1/spaces/(?P<space>[^/]+)/collections/(?P<collection>users|accounts)"
    r"/profiles/(?P<ident>[^/]+)/traits$"
)


class RequestError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def message_size(msg: Any) -> int:
    return len(json.dumps(msg).encode())


def profile_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def basic_auth_user(header: str | None) -> str | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


def why_dropped(msg: Any) -> str | None:
    """Why Segment would drop this message, or None."""
    if not isinstance(msg, dict):
        return "message is not an object"
    if msg.get("type") not in TRACKING_TYPES:
        return f"unknown type {msg.get('type')!r}"
    ids = [msg.get("userId"), msg.get("anonymousId")]
    if not any(isinstance(i, str) and i for i in ids):
        return "no_user_anon_id: userId or anonymousId is required"
    mid = msg.get("messageId")
    if mid is not None and (not isinstance(mid, str) or not 0 < len(mid) <= MAX_MESSAGE_ID_CHARS):
        return "messageId must be a string of 1-100 characters"
    traits = msg.get("traits")
    if traits is not None and not isinstance(traits, dict):
        return "traits must be an object"
    if traits is not None and len(traits) > MAX_TRAITS:
        return "300 or more traits"
    if msg["type"] == "group":
        gid = msg.get("groupId")
        if not isinstance(gid, str) or not gid or len(gid) > MAX_GROUP_ID_CHARS:
            return "groupId must be a non-empty string of at most 500 characters"
    return None
