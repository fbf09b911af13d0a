"""Batching against a limit near Segment's 500 KB with many small messages.

The example tests in test_batching.py use 30 KB and 10 KB messages, where the commas between
messages never tip a batch over the limit; a packer that forgot them passed every one and built
502,401-byte bodies. Here hundreds of small messages fill each batch, so a few hundred commas
decide where a batch must close, and the exact-fit cases pin each ``<`` against ``<=``.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from sqltraits_kit.publishing.segment import (
    SEGMENT_MAX_BATCH_MESSAGES,
    EncodedMessage,
    pack_batches,
)
from sqltraits_kit.publishing.segment.batching import ENVELOPE_BYTES

SENT_AT = "2025-01-01T00:00:00.000Z"
_SKELETON = len(json.dumps({"messageId": "m0000000", "p": ""}, separators=(",", ":")))


def msg(i: int, size: int) -> EncodedMessage:
    """A compact JSON message of exactly ``size`` bytes on the wire."""
    data = json.dumps(
        {"messageId": f"m{i:07d}", "p": "x" * (size - _SKELETON)}, separators=(",", ":")
    )
    assert len(data) == size
    return EncodedMessage(message_id=f"m{i:07d}", data=data.encode(), key=i)


# No shrinking: a list of 900 sizes shrinks for minutes, and the failing example is plain enough.
@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.integers(min_value=_SKELETON, max_value=4_000), min_size=300, max_size=900),
    limit=st.integers(min_value=495_000, max_value=500_000),
)
# Sizes where only the commas decide: 1,000 messages of 496 bytes under a 499,000-byte limit.
@example(sizes=[496] * 1_000, limit=499_000)
def test_every_body_fits_and_a_batch_closes_only_when_the_next_message_would_not(sizes, limit):
    messages = [msg(i, size) for i, size in enumerate(sizes)]
    batches = list(
        pack_batches(messages, max_messages=SEGMENT_MAX_BATCH_MESSAGES, max_batch_bytes=limit)
    )

    assert [m.key for b in batches for m in b.messages] == list(range(len(sizes)))
    assert not [r for b in batches for r in b.rejected]
    for batch in batches:
        body = batch.body(SENT_AT)
        assert len(body) == batch.body_bytes <= limit
        assert [m["messageId"] for m in json.loads(body)["batch"]] == [
            m.message_id for m in batch.messages
        ]
    for batch, following in itertools.pairwise(batches):
        nxt = following.messages[0]
        # It closed because the next message plus the comma before it would not fit.
        assert batch.body_bytes + 1 + nxt.size > limit
        assert len(batch) < SEGMENT_MAX_BATCH_MESSAGES


def test_messages_that_fill_the_room_exactly_share_one_batch():
    # Three 100-byte messages and two commas fill the room to the byte, in every batch.
    limit = ENVELOPE_BYTES + 3 * 100 + 2
    batches = list(pack_batches([msg(i, 100) for i in range(7)], max_batch_bytes=limit))
    assert [[m.key for m in b.messages] for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    for batch in batches[:2]:
        assert batch.body_bytes == len(batch.body(SENT_AT)) == limit


def test_a_message_of_exactly_the_room_is_sent_one_byte_more_is_rejected_and_the_rest_go_on():
    limit = ENVELOPE_BYTES + 500
    batches = list(pack_batches([msg(0, 500), msg(1, 501), msg(2, 100)], max_batch_bytes=limit))
    assert [[m.key for m in b.messages] for b in batches] == [[0], [2]]
    assert [r.message.key for b in batches for r in b.rejected] == [1]
    (rejection,) = [r for b in batches for r in b.rejected]
    assert rejection.message.message_id == "m0000001"
    assert rejection.reason == f"message is 501 bytes; it cannot fit a {limit}-byte request"


def test_a_limit_that_leaves_no_room_past_the_envelope_is_refused():
    with pytest.raises(ValueError, match=f"must exceed the {ENVELOPE_BYTES}-byte envelope"):
        list(pack_batches([msg(0, 100)], max_batch_bytes=ENVELOPE_BYTES))
    (batch,) = pack_batches([msg(0, _SKELETON)], max_batch_bytes=ENVELOPE_BYTES + _SKELETON)
    assert len(batch) == 1
