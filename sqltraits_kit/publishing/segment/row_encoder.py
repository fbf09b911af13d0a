"""The publish's hot path for rows of plain values: the same bytes as `build_encoded_message`.

A publish encodes one message per changed row (about 10 µs each, most of a run's CPU). For
the values a warehouse page usually holds — ``str``, ``int``, ``float``, ``bool`` and ``None``,
and a text or integer identifier — what `build_encoded_message` checks per row (the kind, the
id type, the trait names, their count and order) is the same for every row of a page, so
:func:`plain_row_encoder` checks it once and then only converts and joins. Anything else (a
numpy or Decimal value, a timestamp, a float32, a blank or too-long identifier) returns None
for that row, and the caller encodes it with `build_encoded_message`, which converts or refuses
it exactly as before.

The output must be byte for byte what `build_encoded_message` gives: the messageId hashes the
traits' JSON text, and a resumed run re-derives the id of a value in flight from it, so that
Segment's dedup drops the duplicate (``tests/sync/test_row_encoder.py`` compares the two).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

from sqltraits_kit.publishing.segment.payload import (
    _LIBRARY_CONTEXT,
    GROUP_ANONYMOUS_ID_PREFIX,
    MAX_GROUP_ID_CHARS,
    MAX_TRAITS,
    EncodedMessage,
    _json_str,
)

__all__ = ["RowEncoder", "plain_row_encoder"]

#: ``(identifier, values in name order, run id, key) -> message``, or None: encode the row the
#: general way.
RowEncoder = Callable[[Any, Sequence[Any], str, Any], EncodedMessage | None]


def plain_row_encoder(
    kind: str, *, names: Sequence[str], id_type: str = "user_id"
) -> RowEncoder | None:
    """An encoder for rows whose values are all plain, or None when ``kind``, ``id_type`` or
    ``names`` are not ones `build_encoded_message` accepts as they are (it then decides)."""
    if kind == "identify" and id_type in ("user_id", "anonymous_id"):
        field = "anonymousId" if id_type == "anonymous_id" else "userId"
    elif kind == "group":
        field = "groupId"
    else:
        return None
    names = tuple(names)
    if (
        len(names) > MAX_TRAITS
        or not all(type(n) is str and n for n in names)
        or len(set(names)) != len(names)
        or list(names) != sorted(names)  # the canonical JSON sorts the keys
    ):
        return None
    heads = [("{" if j == 0 else ",") + _json_str(name) + ":" for j, name in enumerate(names)]
    prefix = f'{{"type":"{kind}","{field}":'
    kind_json = _json_str(kind)
    tail = f',"context":{_LIBRARY_CONTEXT}}}'
    group = kind == "group"
    sha256, isfinite = hashlib.sha256, math.isfinite
    float_repr, int_repr = float.__repr__, int.__repr__

    def encode(
        identifier: Any, values: Sequence[Any], run_id: str, key: Any
    ) -> EncodedMessage | None:
        kind_of = type(identifier)
        if kind_of is str:
            if not identifier:
                return None
            ident = identifier
        elif kind_of is int:
            ident = int_repr(identifier)
        else:
            return None
        if group and len(ident) > MAX_GROUP_ID_CHARS:
            return None
        parts = []
        for head, value in zip(heads, values, strict=True):
            kind_of = type(value)
            if kind_of is str:
                parts.append(head + _json_str(value))
            elif kind_of is float:
                parts.append(head + (float_repr(value) if isfinite(value) else "null"))
            elif kind_of is int:
                parts.append(head + int_repr(value))
            elif value is None:
                parts.append(head + "null")
            elif kind_of is bool:
                parts.append(head + ("true" if value else "false"))
            else:
                return None
        traits_json = "".join(parts) + "}" if parts else "{}"
        ident_json = _json_str(ident)
        digest = sha256((_json_str(run_id) + kind_json + ident_json + traits_json).encode())
        mid = "stk-" + digest.hexdigest()
        ids = ident_json
        if group:  # a group call needs a user: Segment's placeholder, as build_message adds it
            ids += ',"anonymousId":' + _json_str(GROUP_ANONYMOUS_ID_PREFIX + ident)
        body = f'{prefix}{ids},"traits":{traits_json},"messageId":"{mid}"{tail}'
        return EncodedMessage(message_id=mid, data=body.encode(), key=key)

    return encode
