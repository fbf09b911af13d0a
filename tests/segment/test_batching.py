from __future__ import annotations

import itertools
import json

import pytest

from sqltraits_kit.publishing.segment import (
    DEFAULT_MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    SEGMENT_MAX_BATCH_MESSAGES,
    EncodedMessage,
    build_message,
    encode_message,
    pack_batches,
)

SENT_AT = "2025-01-01T00:00:00.000Z"


def message(i: int, *, pad: int = 0) -> EncodedMessage:
    msg = build_message(
        "identify", identifier=f"u{i}", traits={"i": i, "pad": "x" * pad}, run_id="r"
    )
    return encode_message(msg, key=i)


def sized_message(i: int, segment_bytes: int) -> EncodedMessage:
    """A message whose Segment-measured size is exactly ``segment_bytes``."""
    probe = message(i)
    return message(i, pad=segment_bytes - probe.segment_size())


def keys(batches) -> tuple[list, list]:
    sent = [m.key for b in batches for m in b.messages]
    rejected = [r.message.key for b in batches for r in b.rejected]
    return sent, rejected


def test_every_message_is_sent_or_rejected_once_in_order():
    msgs = [message(0), sized_message(1, MAX_MESSAGE_BYTES + 1), message(2), message(3)]
    batches = list(pack_batches(msgs, max_messages=2))
    sent, rejected = keys(batches)
    assert sent == [0, 2, 3]
    assert rejected == [1]
    assert batches[0].rejected[0].reason.startswith(f"message is {MAX_MESSAGE_BYTES + 1} bytes")


def test_message_exactly_at_32_kb_is_kept_one_byte_over_is_rejected():
    at = sized_message(0, MAX_MESSAGE_BYTES)
    over = sized_message(1, MAX_MESSAGE_BYTES + 1)
    assert at.segment_size() == MAX_MESSAGE_BYTES
    (batch,) = pack_batches([at, over])
    assert [m.key for m in batch.messages] == [0]
    assert [r.message.key for r in batch.rejected] == [1]


def test_a_stricter_per_message_limit_can_be_set():
    # SQL traits discard records of 16 KB or more; a caller can enforce that instead.
    (batch,) = pack_batches(
        [sized_message(0, 16_000), sized_message(1, 17_000)], max_message_bytes=16_384
    )
    assert [m.key for m in batch.messages] == [0]
    assert len(batch.rejected) == 1


def test_batches_stay_under_the_byte_bound_including_the_envelope():
    msgs = [sized_message(i, 30_000) for i in range(40)]
    batches = list(pack_batches(msgs))
    assert sum(len(b) for b in batches) == 40
    for batch in batches:
        body = batch.body(SENT_AT)
        assert len(body) == batch.body_bytes <= DEFAULT_MAX_BATCH_BYTES
        assert [m["messageId"] for m in json.loads(body)["batch"]] == [
            m.message_id for m in batch.messages
        ]
    # full batches use the room: one more message would not have fit
    first = batches[0]
    assert first.body_bytes + 30_000 > DEFAULT_MAX_BATCH_BYTES


def test_batch_near_500_kb_with_a_custom_bound():
    msgs = [sized_message(i, 10_000) for i in range(120)]
    for batch in pack_batches(msgs, max_batch_bytes=499_000, max_messages=2500):
        assert len(batch.body(SENT_AT)) <= 499_000


def test_message_count_cap():
    batches = list(pack_batches((message(i) for i in range(1201)), max_messages=500))
    assert [len(b) for b in batches] == [500, 500, 201]
    batches = list(
        pack_batches(
            (message(i) for i in range(2600)),
            max_messages=SEGMENT_MAX_BATCH_MESSAGES,
            max_batch_bytes=10**7,
        )
    )
    assert [len(b) for b in batches] == [2500, 100]


@pytest.mark.parametrize("bad", [0, SEGMENT_MAX_BATCH_MESSAGES + 1])
def test_message_cap_cannot_exceed_segments_limit(bad):
    with pytest.raises(ValueError, match="max_messages"):
        list(pack_batches([message(0)], max_messages=bad))


def test_packing_is_lazy():
    consumed = itertools.count()

    def source():
        for i in range(10_000):
            next(consumed)
            yield message(i)

    batches = pack_batches(source(), max_messages=100)
    next(batches)
    assert next(consumed) <= 102  # one batch plus the message that closed it


def test_rejections_ride_with_the_batch_being_filled():
    batches = list(pack_batches([message(0), sized_message(1, 40_000)], max_messages=1))
    assert [len(b) for b in batches] == [1]
    assert [r.message.key for r in batches[0].rejected] == [1]


def test_a_batch_of_only_rejections_is_still_reported():
    (batch,) = pack_batches([sized_message(0, 40_000)])
    assert len(batch) == 0 and [r.message.key for r in batch.rejected] == [0]


def test_nothing_in_nothing_out():
    assert list(pack_batches([])) == []
