"""Turn warehouse values into Segment identify/group messages that are valid JSON.

Everything that leaves this module is a plain JSON type: pandas and numpy scalars,
Decimals and datetimes are converted here, so that nothing downstream (the official
library's pitfalls: ``numpy.int64`` raising, ``numpy.bool_`` vanishing, bare ``NaN``
in the body, naive datetimes without an offset) can happen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import numpy as np

import sqltraits_kit

JSONScalar = str | int | float | bool | None
MessageKind = Literal["identify", "group"]

#: Segment refuses a message over 32 KB, measured as ``len(json.dumps(msg).encode())``.
MAX_MESSAGE_BYTES = 32 * 1024
#: Unify drops a messageId longer than 100 characters (``src/unify/product-limits.md``).
MAX_MESSAGE_ID_CHARS = 100
#: Unify drops a groupId longer than 500 characters.
MAX_GROUP_ID_CHARS = 500
#: Engage rejects an identify with 300 traits or more.
MAX_TRAITS = 299
#: A group call needs a userId or anonymousId; without one we derive this one.
GROUP_ANONYMOUS_ID_PREFIX = "sqltraits-kit:group:"

LIBRARY = {"name": "sqltraits-kit", "version": sqltraits_kit.__version__}

_UTC = dt.UTC


class PayloadError(ValueError):
    """A value or message that Segment would refuse or silently drop.

    ``trait`` and ``identifier`` name the offending column and row when known, so the
    caller can report the row instead of stopping the run.
    """

    def __init__(self, message: str, *, trait: str | None = None, identifier: Any = None) -> None:
        where = []
        if identifier is not None:
            where.append(f"identifier {identifier!r}")
        if trait is not None:
            where.append(f"trait {trait!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.trait = trait
        self.identifier = identifier
        self.reason = message


def format_timestamp(value: dt.datetime | dt.date) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix and millisecond precision.

    A naive datetime is taken to be UTC already: warehouses (DuckDB ``TIMESTAMP``,
    PostgreSQL ``timestamp without time zone``) conventionally store UTC, and guessing
    the host's local zone would make the output depend on where the job runs.
    A plain date is midnight UTC of that day.
    """
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=_UTC)
    elif value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=_UTC)
    else:
        value = value.astimezone(_UTC)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _is_missing_marker(value: Any) -> bool:
    # Only look at pandas if it is already imported: a value cannot be pd.NA otherwise,
    # and importing pandas here would slow down every CLI start.
    pd = sys.modules.get("pandas")
    return pd is not None and (value is pd.NA or value is pd.NaT)


def _float(value: float) -> float | None:
    return value if math.isfinite(value) else None  # NaN/inf are not JSON: null


#: Integers up to 2**53 survive any JSON reader, which may parse numbers as doubles.
_EXACT_INT = 2**53


def _decimal(value: Decimal, *, trait: str | None) -> int | float | None:
    """A Decimal as a JSON number that means exactly the same value, or `PayloadError`.

    Segment's pipeline reads JSON numbers as doubles, so a decimal goes out only when a
    double holds it exactly: an integer up to 2**53 (or any integer a double holds), or a
    fraction whose shortest double text (what we send) is numerically the same decimal
    (``12.30`` -> ``12.3``). ``12345678901234567.89`` is refused, not rounded: a changed
    trait value must never leave silently.
    """
    if not value.is_finite():
        return None  # NaN/Infinity are not JSON: null, as for floats
    if value == value.to_integral_value():
        whole = int(value)
        if abs(whole) <= _EXACT_INT or float(whole) == whole:
            return whole
        nearest: float | None = float(whole)
    else:
        nearest = float(value)
        if math.isfinite(nearest) and Decimal(repr(nearest)) == value:
            return nearest
    raise PayloadError(
        f"the decimal {value} cannot be sent exactly: Segment reads numbers as doubles and "
        f"would hold {nearest!r}; round it in the query or cast the column to text",
        trait=trait,
    )


def to_json_value(value: Any, *, trait: str | None = None) -> JSONScalar:
    """Convert one trait value to a plain JSON scalar, or raise `PayloadError`.

    - ``None``, ``pd.NA``, ``pd.NaT``, ``NaN`` and ``±inf`` become ``None`` (a null trait).
    - numpy/pandas integers, floats and booleans become ``int``/``float``/``bool``;
      float32 keeps its shortest decimal form (``0.1``, not ``0.10000000149011612``).
    - ``Decimal`` (a ``decimal(38,2)`` column) is sent exactly or refused: as an ``int``
      or ``float`` only when that JSON number denotes exactly the same value (see
      `_decimal`); ``Decimal("NaN")``/infinities become ``None`` like float ones.
    - datetimes, ``pd.Timestamp``, ``numpy.datetime64`` and dates become ISO-8601 UTC
      strings ending in ``Z`` (see `format_timestamp` for naive values).
    - ``uuid.UUID`` becomes its string.
    - bytes, lists, tuples, sets, dicts and arrays raise: SQL traits take no arrays or
      objects (send a comma-separated string instead).
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # the common case, checked first: this runs once per cell
    if kind is float:
        return value if math.isfinite(value) else None  # NaN/inf are not JSON: null
    if _is_missing_marker(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        return str(value)  # np.str_ and other subclasses become a plain str
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, np.floating):
        if value.dtype.itemsize < 8:
            return _float(float(str(value)))
        return _float(float(value))
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return _decimal(value, trait=trait)
    if isinstance(value, dt.date):  # datetime and pd.Timestamp are dates too
        return format_timestamp(value)
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        return format_timestamp(value.astype("datetime64[us]").item())
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise PayloadError("binary values cannot be sent to Segment", trait=trait)
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        raise PayloadError(
            "arrays are not supported by Segment SQL traits; send a comma-separated string instead",
            trait=trait,
        )
    if isinstance(value, Mapping):
        raise PayloadError("objects are not supported as SQL trait values", trait=trait)
    raise PayloadError(f"unsupported value type {type(value).__name__}", trait=trait)


def to_json_traits(traits: Mapping[str, Any], *, identifier: Any = None) -> dict[str, JSONScalar]:
    """Convert every value of ``traits``; errors name the trait and the identifier."""
    if len(traits) > MAX_TRAITS:
        raise PayloadError(
            f"{len(traits)} traits in one message; Engage rejects 300 or more",
            identifier=identifier,
        )
    out: dict[str, JSONScalar] = {}
    for name, value in traits.items():
        if not isinstance(name, str) or not name:
            raise PayloadError(f"trait names must be non-empty strings, got {name!r}")
        try:
            out[name] = to_json_value(value, trait=name)
        except PayloadError as exc:
            raise PayloadError(exc.reason, trait=name, identifier=identifier) from None
    return out


def _identifier(value: Any, *, field: str) -> str:
    value = to_json_value(value, trait=field)
    if isinstance(value, float):
        # A float64 id column (pandas with NULLs) holds whole numbers: 42.0 is "42", never
        # "42.0". A fraction (2.5) or a float past 2**53 is not an id anyone wrote down.
        if not value.is_integer() or abs(value) > _EXACT_INT:
            raise PayloadError(
                f"{field} {value!r} is not a whole number a float holds exactly; "
                "identifiers must be text or integers"
            )
        value = int(value)
    if value is None or value == "" or isinstance(value, bool):
        raise PayloadError(f"{field} must be a non-empty string or number, got {value!r}")
    return str(value)


# Built once: json.dumps with options constructs a new encoder on every call.
_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
).encode
_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode
_json_str = json.encoder.encode_basestring  # a str as a quoted JSON string (C-accelerated)


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON; raises on NaN/Infinity (which are not JSON)."""
    return _canonical(value)


def _message_id_from(run_id: Any, kind: str, identifier: Any, payload_json: str) -> str:
    # JSON strings are self-delimiting, so this concatenation is unambiguous.
    head = _json_str(str(run_id)) + _json_str(kind) + _json_str(str(identifier))
    return "stk-" + hashlib.sha256((head + payload_json).encode()).hexdigest()


def message_id(run_id: str, identifier: Any, payload: Any, *, kind: str = "identify") -> str:
    """Deterministic messageId: ``"stk-"`` + sha256 of (run, kind, identifier, payload).

    The same row re-sent in the same run (a retry) gets the same id, so Segment's
    24-hour dedup makes the retry idempotent. A different run or a changed value gets
    a new id, so a changed value is never dropped as a duplicate. ``kind`` is part of
    it so an identify and a group for the same id never collide. 68 characters.
    """
    return _message_id_from(run_id, kind, identifier, _canonical(payload))


def _id_fields(
    kind: str, identifier: Any, *, id_type: str, user_id: Any, anonymous_id: Any
) -> tuple[str, dict[str, str]]:
    """(the row's identifier as a string, the message's id fields)."""
    if kind == "identify":
        if id_type not in ("user_id", "anonymous_id"):
            raise ValueError(f"id_type must be 'user_id' or 'anonymous_id', not {id_type!r}")
        field = "anonymousId" if id_type == "anonymous_id" else "userId"
        ident = _identifier(identifier, field=field)
        return ident, {field: ident}
    if kind != "group":
        raise ValueError(f"kind must be 'identify' or 'group', not {kind!r}")
    ident = _identifier(identifier, field="groupId")
    if len(ident) > MAX_GROUP_ID_CHARS:
        raise PayloadError(
            f"groupId is {len(ident)} characters; Segment drops more than {MAX_GROUP_ID_CHARS}",
            identifier=ident[:40] + "…",
        )
    ids = {"groupId": ident}
    if user_id is not None:
        ids["userId"] = _identifier(user_id, field="userId")
    if anonymous_id is not None:
        ids["anonymousId"] = _identifier(anonymous_id, field="anonymousId")
    if user_id is None and anonymous_id is None:
        ids["anonymousId"] = GROUP_ANONYMOUS_ID_PREFIX + ident
    return ident, ids


def _check_message_id(mid: str, ident: str) -> None:
    if not mid or len(mid) > MAX_MESSAGE_ID_CHARS:
        raise PayloadError(
            f"messageId must be 1-{MAX_MESSAGE_ID_CHARS} characters, got {len(mid or '')}",
            identifier=ident,
        )


def _timestamp(value: dt.datetime | str) -> str:
    return value if isinstance(value, str) else format_timestamp(value)


def build_message(
    kind: MessageKind,
    *,
    identifier: Any,
    traits: Mapping[str, Any],
    message_id: str | None = None,
    run_id: str | None = None,
    timestamp: dt.datetime | str | None = None,
    id_type: Literal["user_id", "anonymous_id"] = "user_id",
    user_id: Any = None,
    anonymous_id: Any = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one identify or group message with plain-JSON traits.

    identify: ``identifier`` is the ``userId`` (or the ``anonymousId`` with
    ``id_type="anonymous_id"``).

    group: ``identifier`` is the ``groupId``. Segment's docs give ``groupId`` as the
    only required field of a group call (``spec/group.md``), but the HTTP API refuses
    any message without a ``userId`` or ``anonymousId`` (``no_user_anon_id``), and the
    official library enforces it. Pass ``user_id``/``anonymous_id`` to attach a real
    user; otherwise the message carries the deterministic ``anonymousId``
    ``"sqltraits-kit:group:<groupId>"``. Caveat: in Unify that anonymous id becomes one
    anonymous user profile linked to the account.

    Give either ``message_id`` or ``run_id`` (the id is then derived with `message_id`).
    Raises `PayloadError` for anything Segment would refuse or silently drop.
    """
    ident, ids = _id_fields(
        kind, identifier, id_type=id_type, user_id=user_id, anonymous_id=anonymous_id
    )
    clean = to_json_traits(traits, identifier=ident)
    if message_id is None:
        if run_id is None:
            raise ValueError("build_message needs message_id or run_id")
        message_id = _message_id_from(run_id, kind, ident, _canonical(clean))
    _check_message_id(message_id, ident)
    msg: dict[str, Any] = {"type": kind, **ids, "traits": clean, "messageId": message_id}
    if timestamp is not None:
        msg["timestamp"] = _timestamp(timestamp)
    msg["context"] = {**(context or {}), "library": dict(LIBRARY)}
    return msg


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """A message serialised once, ready for batching.

    ``data`` is the compact UTF-8 JSON that goes on the wire; ``key`` is the caller's
    handle (e.g. the row identifier) handed back with the batch results.
    """

    message_id: str
    data: bytes
    key: Any = None

    @property
    def size(self) -> int:
        """Bytes on the wire."""
        return len(self.data)

    def segment_size(self) -> int:
        """Segment's measure, ``len(json.dumps(msg).encode())``, which the 32 KB limit uses."""
        return segment_size(json.loads(self.data))

    def exceeds(self, limit: int) -> bool:
        """Whether Segment's measure of this message is over ``limit`` bytes."""
        # Segment's measure adds ", "/": " spacing and \\u escapes: at most 3x the
        # compact UTF-8 size, so the exact (slower) measure is only needed near the limit.
        return 3 * len(self.data) > limit and self.segment_size() > limit


def segment_size(msg: Mapping[str, Any]) -> int:
    """The size Segment's libraries check against 32 KB."""
    return len(json.dumps(msg, allow_nan=False).encode())


def encode_message(msg: Mapping[str, Any], *, key: Any = None) -> EncodedMessage:
    """Serialise ``msg``: compact separators, UTF-8, ``allow_nan=False``."""
    data = _compact(msg).encode()
    return EncodedMessage(message_id=str(msg.get("messageId", "")), data=data, key=key)


_LIBRARY_CONTEXT = _compact({"library": LIBRARY})


def build_encoded_message(
    kind: MessageKind,
    *,
    identifier: Any,
    traits: Mapping[str, Any],
    run_id: str,
    key: Any = None,
    timestamp: dt.datetime | str | None = None,
    id_type: Literal["user_id", "anonymous_id"] = "user_id",
    user_id: Any = None,
    anonymous_id: Any = None,
    message_id: str | None = None,
) -> EncodedMessage:
    """``encode_message(build_message(...))`` in one JSON pass: the hot path of a sync.

    The traits are serialised once and that text is both hashed for the messageId and
    spliced into the body, which roughly halves the cost per row. The result parses to
    the same message as `build_message` gives (traits in sorted key order). ``message_id``
    given: used as is (a re-send under the id a message was first sent with).
    """
    ident, ids = _id_fields(
        kind, identifier, id_type=id_type, user_id=user_id, anonymous_id=anonymous_id
    )
    traits_json = _canonical(to_json_traits(traits, identifier=ident))
    mid = message_id or _message_id_from(run_id, kind, ident, traits_json)
    if message_id is not None:
        _check_message_id(mid, ident)
    parts = [f'{{"type":"{kind}"']
    parts.extend(f',"{name}":{_json_str(value)}' for name, value in ids.items())
    parts.append(f',"traits":{traits_json},"messageId":"{mid}"')
    if timestamp is not None:
        parts.append(f',"timestamp":{_json_str(_timestamp(timestamp))}')
    parts.append(f',"context":{_LIBRARY_CONTEXT}}}')
    return EncodedMessage(message_id=mid, data="".join(parts).encode(), key=key)
