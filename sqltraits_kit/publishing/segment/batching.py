"""Pack serialised messages into request bodies that respect Segment's batch limits.

Limits (``http-api/index.md``): 32 KB per message, 500 KB per request, 2,500 messages
per request (above that Segment answers 200 and drops the events). The defaults stay
under each with headroom, like the official library (100 messages, 475,000 bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqltraits_kit.publishing.segment.payload import MAX_MESSAGE_BYTES, EncodedMessage

#: Hard ceiling from Segment's docs; a larger batch is silently dropped.
SEGMENT_MAX_BATCH_MESSAGES = 2500
DEFAULT_MAX_MESSAGES = 500
#: Headroom under Segment's 500 KB request limit, as in the official library.
DEFAULT_MAX_BATCH_BYTES = 475_000

_PREFIX = b'{"batch":['
_SUFFIX = b'],"sentAt":"'
_END = b'"}'
#: ``{"batch":[`` + ``],"sentAt":"2025-01-01T00:00:00.000Z"}``
ENVELOPE_BYTES = len(_PREFIX) + len(_SUFFIX) + len("2025-01-01T00:00:00.000Z") + len(_END)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that cannot be sent as it is; reported per row, never sent."""

    message: EncodedMessage
    reason: str


@dataclass(frozen=True, slots=True)
class Batch:
    """Messages for one request, plus the rejections met while filling it.

    Carrying the rejections along keeps the stream in input order, so a caller that
    commits state batch by batch sees every row exactly once: sent or rejected.
    A batch can hold rejections and no messages; sending it makes no request.
    """

    messages: tuple[EncodedMessage, ...]
    rejected: tuple[Rejection, ...] = ()

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def body_bytes(self) -> int:
        """Size of the request body `body` builds (before any gzip)."""
        if not self.messages:
            return ENVELOPE_BYTES
        return ENVELOPE_BYTES + sum(len(m.data) for m in self.messages) + len(self.messages) - 1

    def body(self, sent_at: str) -> bytes:
        """The request body: ``{"batch":[...],"sentAt":"..."}``."""
        return b"".join(
            (_PREFIX, b",".join(m.data for m in self.messages), _SUFFIX, sent_at.encode(), _END)
        )


def pack_batches(
    messages: Iterable[EncodedMessage],
    *,
    max_messages: int = DEFAULT_MAX_MESSAGES,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> Iterator[Batch]:
    """Yield batches lazily from ``messages``; memory is bounded by one batch.

    A message over ``max_message_bytes`` (Segment's measure) or one that could not fit
    in a request on its own becomes a `Rejection` in the batch being filled.
    """
    if not 1 <= max_messages <= SEGMENT_MAX_BATCH_MESSAGES:
        raise ValueError(
            f"max_messages must be 1..{SEGMENT_MAX_BATCH_MESSAGES}, not {max_messages}"
        )
    if max_batch_bytes <= ENVELOPE_BYTES:
        raise ValueError(f"max_batch_bytes must exceed the {ENVELOPE_BYTES}-byte envelope")

    room = max_batch_bytes - ENVELOPE_BYTES
    current: list[EncodedMessage] = []
    rejected: list[Rejection] = []
    used = 0  # bytes of messages plus the commas between them
    for msg in messages:
        size = len(msg.data)  # msg.size, read once: this loop runs once per message sent
        # msg.exceeds(), inlined: the exact (slow) measure only near the limit
        if 3 * size > max_message_bytes and msg.segment_size() > max_message_bytes:
            rejected.append(
                Rejection(
                    msg, f"message is {msg.segment_size()} bytes; the limit is {max_message_bytes}"
                )
            )
            continue
        if size > room:
            rejected.append(
                Rejection(
                    msg,
                    f"message is {size} bytes; it cannot fit a {max_batch_bytes}-byte request",
                )
            )
            continue
        extra = size + (1 if current else 0)
        if current and (len(current) >= max_messages or used + extra > room):
            yield Batch(tuple(current), tuple(rejected))
            current, rejected, used = [], [], 0
            extra = size
        current.append(msg)
        used += extra
    if current or rejected:
        yield Batch(tuple(current), tuple(rejected))
