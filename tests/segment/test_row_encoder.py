"""The fast row encoder gives byte for byte what build_encoded_message gives, or steps aside.

The messageId hashes the traits' JSON text and a resumed run re-derives the id of a value in
flight from it: one character of difference (a float's repr, an escape, a key order) would give
a value sent before an upgrade a new id after it, and Segment would keep both copies.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqltraits_kit.publishing.segment import build_encoded_message
from sqltraits_kit.publishing.segment.payload import MAX_GROUP_ID_CHARS, MAX_TRAITS, PayloadError
from sqltraits_kit.publishing.segment.row_encoder import plain_row_encoder

PLAIN = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),  # quotes, backslashes, control characters, non-ASCII
)
IDENTIFIERS = st.one_of(st.text(min_size=1), st.integers(min_value=-(2**63), max_value=2**63))
NAMES = st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=6, unique=True).map(sorted)


def _general(kind, id_type, identifier, names, values, run_id, key):
    return build_encoded_message(
        kind,
        identifier=identifier,
        traits=dict(zip(names, values, strict=True)),
        run_id=run_id,
        key=key,
        id_type=id_type,
    )


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([("identify", "user_id"), ("identify", "anonymous_id"), ("group", "")]),
    identifier=IDENTIFIERS,
    data=st.data(),
    names=NAMES,
    run_id=st.text(),
)
def test_plain_rows_encode_to_the_same_bytes_and_message_id(kind, identifier, data, names, run_id):
    kind, id_type = kind
    values = [data.draw(PLAIN) for _ in names]
    encode = plain_row_encoder(kind, names=names, id_type=id_type or "user_id")
    assert encode is not None
    fast = encode(identifier, values, run_id, 7)
    try:
        general = _general(kind, id_type or "user_id", identifier, names, values, run_id, 7)
    except PayloadError:
        assert fast is None  # the general path refuses it: the fast one must not send it
        return
    assert fast is not None
    assert (fast.data, fast.message_id, fast.key) == (general.data, general.message_id, 7)


@pytest.mark.parametrize(
    "value",
    [
        np.float64(0.1),
        np.int64(3),
        np.bool_(True),
        np.float32(0.1),
        Decimal("12.30"),
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        dt.date(2026, 1, 2),
        [1, 2],
        b"x",
    ],
)
def test_any_other_value_is_left_to_the_general_path(value):
    encode = plain_row_encoder("identify", names=["a"])
    assert encode("u1", [value], "run", 0) is None


@pytest.mark.parametrize("identifier", ["", None, True, 1.0, np.int64(4)])
def test_identifiers_that_need_checking_or_converting_are_left_to_the_general_path(identifier):
    assert plain_row_encoder("identify", names=["a"])(identifier, [1], "run", 0) is None


def test_a_group_id_over_segments_limit_is_left_to_the_general_path():
    encode = plain_row_encoder("group", names=["a"])
    assert encode("g" * MAX_GROUP_ID_CHARS, [1], "run", 0) is not None
    assert encode("g" * (MAX_GROUP_ID_CHARS + 1), [1], "run", 0) is None


@pytest.mark.parametrize(
    ("kind", "names", "id_type"),
    [
        ("track", ["a"], "user_id"),
        ("identify", ["a"], "email"),
        ("identify", ["b", "a"], "user_id"),  # not in the canonical (sorted) order
        ("identify", ["a", "a"], "user_id"),
        ("identify", ["", "a"], "user_id"),
        ("identify", [f"t{i:03d}" for i in range(MAX_TRAITS + 1)], "user_id"),
    ],
)
def test_no_fast_path_where_the_general_one_decides(kind, names, id_type):
    assert plain_row_encoder(kind, names=names, id_type=id_type) is None
