from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

import sqltraits_kit
from sqltraits_kit.publishing.segment import (
    GROUP_ANONYMOUS_ID_PREFIX,
    MAX_MESSAGE_BYTES,
    PayloadError,
    build_encoded_message,
    build_message,
    encode_message,
    message_id,
    to_json_traits,
    to_json_value,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (pd.NA, None),
        (pd.NaT, None),
        (float("nan"), None),
        (float("inf"), None),
        (float("-inf"), None),
        (np.float64("nan"), None),
        (np.float32("inf"), None),
        (np.int64(7), 7),
        (np.int32(-3), -3),
        (np.uint8(255), 255),
        (np.float64(0.25), 0.25),
        (np.float32(0.1), 0.1),  # not 0.10000000149011612
        (np.bool_(True), True),
        (np.bool_(False), False),
        (True, True),
        (42, 42),
        (1.5, 1.5),
        ("churn", "churn"),
        (np.str_("x"), "x"),
        (Decimal("42"), 42),
        (Decimal("1.50"), 1.5),
        (Decimal("NaN"), None),
        (Decimal("Infinity"), None),
        (dt.datetime(2024, 5, 1, 12, 30, 15, 123456), "2024-05-01T12:30:15.123Z"),
        (
            dt.datetime(2024, 5, 1, 14, 30, tzinfo=ZoneInfo("Europe/Paris")),
            "2024-05-01T12:30:00.000Z",
        ),
        (pd.Timestamp("2024-01-01 12:00", tz="America/New_York"), "2024-01-01T17:00:00.000Z"),
        (pd.Timestamp("2024-01-01 12:00:00.5"), "2024-01-01T12:00:00.500Z"),
        (np.datetime64("2024-03-04T05:06:07"), "2024-03-04T05:06:07.000Z"),
        (np.datetime64("NaT"), None),
        (dt.date(2024, 2, 29), "2024-02-29T00:00:00.000Z"),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
    ],
)
def test_to_json_value_converts_to_plain_json(value, expected):
    got = to_json_value(value)
    assert got == expected
    assert type(got) is type(expected)
    json.dumps(got, allow_nan=False)  # plain JSON, no NaN


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (b"\x00\x01", "binary"),
        (bytearray(b"x"), "binary"),
        ([1, 2], "comma-separated string"),
        (("a", "b"), "comma-separated string"),
        ({"a"}, "comma-separated string"),
        (np.array([1, 2]), "comma-separated string"),
        ({"city": "Paris"}, "objects are not supported"),
        (dt.timedelta(days=1), "unsupported value type timedelta"),
        (object(), "unsupported value type object"),
    ],
)
def test_to_json_value_refuses_what_sql_traits_cannot_hold(value, fragment):
    with pytest.raises(PayloadError, match=fragment) as info:
        to_json_value(value, trait="favourite_items")
    assert info.value.trait == "favourite_items"
    assert "favourite_items" in str(info.value)


def test_to_json_traits_names_trait_and_row():
    with pytest.raises(PayloadError) as info:
        to_json_traits({"ok": 1, "items": [1, 2]}, identifier="user-9")
    assert info.value.trait == "items"
    assert info.value.identifier == "user-9"
    assert "'user-9'" in str(info.value) and "'items'" in str(info.value)


def test_trait_count_limit_matches_engage():
    to_json_traits({f"t{i}": i for i in range(299)})
    with pytest.raises(PayloadError, match="300 or more"):
        to_json_traits({f"t{i}": i for i in range(300)})


def test_dataframe_rows_with_every_pandas_missing_kind_become_valid_json():
    df = pd.DataFrame(
        {
            "user_id": pd.array([1, 2, 3], dtype="Int64"),
            "score": [0.5, np.nan, np.inf],
            "count": pd.array([1, None, 3], dtype="Int64"),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "seen": pd.to_datetime(["2024-01-01", None, "2024-01-03"]),
            "plan": pd.array(["gold", None, "free"], dtype="string"),
        }
    )
    bodies = []
    for row in df.to_dict("records"):
        ident = row.pop("user_id")
        msg = build_message("identify", identifier=ident, traits=row, run_id="r")
        bodies.append(json.loads(encode_message(msg).data))
    assert [b["userId"] for b in bodies] == ["1", "2", "3"]
    assert bodies[0]["traits"] == {
        "score": 0.5,
        "count": 1,
        "flag": True,
        "seen": "2024-01-01T00:00:00.000Z",
        "plan": "gold",
    }
    assert bodies[1]["traits"] == dict.fromkeys(["score", "count", "flag", "seen", "plan"])
    assert bodies[2]["traits"]["score"] is None  # inf


def test_identify_message_shape():
    msg = build_message(
        "identify",
        identifier=np.int64(42),
        traits={"churn_score": np.float64(0.83)},
        run_id="run-1",
        timestamp=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )
    assert msg["type"] == "identify"
    assert msg["userId"] == "42"
    assert "anonymousId" not in msg
    assert msg["traits"] == {"churn_score": 0.83}
    assert msg["timestamp"] == "2024-01-02T03:04:05.000Z"
    assert msg["context"]["library"] == {
        "name": "sqltraits-kit",
        "version": sqltraits_kit.__version__,
    }
    assert msg["messageId"].startswith("stk-") and len(msg["messageId"]) <= 100


def test_identify_by_anonymous_id():
    msg = build_message(
        "identify", identifier="anon-1", traits={"a": 1}, run_id="r", id_type="anonymous_id"
    )
    assert msg["anonymousId"] == "anon-1" and "userId" not in msg


@pytest.mark.parametrize("bad", [None, "", float("nan"), pd.NA, True])
def test_identifier_must_be_present(bad):
    with pytest.raises(PayloadError, match="userId"):
        build_message("identify", identifier=bad, traits={"a": 1}, run_id="r")


def test_float_identifier_from_a_nullable_column_is_not_suffixed():
    msg = build_message("identify", identifier=42.0, traits={"a": 1}, run_id="r")
    assert msg["userId"] == "42"


def test_group_gets_derived_anonymous_id_unless_a_user_is_given():
    msg = build_message("group", identifier="acme", traits={"ltv": 10}, run_id="r")
    assert msg["groupId"] == "acme"
    assert msg["anonymousId"] == GROUP_ANONYMOUS_ID_PREFIX + "acme"
    assert "userId" not in msg
    msg = build_message("group", identifier="acme", traits={"ltv": 10}, run_id="r", user_id=7)
    assert msg["userId"] == "7" and "anonymousId" not in msg


def test_group_id_limits():
    with pytest.raises(PayloadError, match="groupId"):
        build_message("group", identifier="", traits={}, run_id="r")
    with pytest.raises(PayloadError, match="500"):
        build_message("group", identifier="g" * 501, traits={}, run_id="r")
    build_message("group", identifier="g" * 500, traits={}, run_id="r")


def test_message_id_needs_an_id_or_a_run_and_fits_segment():
    with pytest.raises(ValueError, match="message_id or run_id"):
        build_message("identify", identifier="u", traits={})
    with pytest.raises(PayloadError, match="messageId"):
        build_message("identify", identifier="u", traits={}, message_id="x" * 101)
    with pytest.raises(ValueError, match="kind"):
        build_message("track", identifier="u", traits={}, run_id="r")  # type: ignore[arg-type]


def test_message_id_is_deterministic_and_distinguishes_what_matters():
    base = message_id("run-1", "u1", {"score": 0.5})
    assert base == message_id("run-1", "u1", {"score": 0.5})
    assert len(base) <= 100
    assert base != message_id("run-2", "u1", {"score": 0.5})  # another run
    assert base != message_id("run-1", "u2", {"score": 0.5})  # another profile
    assert base != message_id("run-1", "u1", {"score": 0.6})  # a changed value
    assert base != message_id("run-1", "u1", {"score": 0.5}, kind="group")
    # key order and numpy types do not matter: ids are computed on converted traits
    a = build_message("identify", identifier="u", traits={"x": np.int64(1), "y": 2}, run_id="r")
    b = build_message("identify", identifier="u", traits={"y": 2, "x": 1}, run_id="r")
    assert a["messageId"] == b["messageId"]


@pytest.mark.parametrize("kind", ["identify", "group"])
def test_fast_path_builds_the_same_message(kind):
    traits = {"b": np.float32(0.1), "a": "é€😀", "c": None, "d": pd.Timestamp("2024-01-01")}
    kwargs = dict(
        identifier="id-1", traits=traits, run_id="run", timestamp="2024-01-01T00:00:00.000Z"
    )
    slow = encode_message(build_message(kind, **kwargs), key="k")
    fast = build_encoded_message(kind, key="k", **kwargs)
    assert json.loads(fast.data) == json.loads(slow.data)
    assert fast.message_id == slow.message_id and fast.key == "k"
    assert "é€😀" in fast.data.decode()  # UTF-8 on the wire, not \\u escapes


def test_encoding_refuses_nan_even_if_it_slips_into_a_message():
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_message({"type": "identify", "userId": "u", "traits": {"x": float("nan")}})


def test_size_check_uses_segments_measure_not_the_compact_one():
    def sized(text: str):
        return encode_message(
            build_message("identify", identifier="u", traits={"t": text}, message_id="m")
        )

    probe = sized("")
    room = MAX_MESSAGE_BYTES - probe.segment_size()
    exact = sized("a" * room)
    assert exact.segment_size() == MAX_MESSAGE_BYTES and not exact.exceeds(MAX_MESSAGE_BYTES)
    over = sized("a" * (room + 1))
    assert over.exceeds(MAX_MESSAGE_BYTES)
    # 12,000 "é" are 24 KB of UTF-8 on the wire, but 72 KB as json.dumps measures them
    accented = sized("é" * 12000)
    assert accented.size < MAX_MESSAGE_BYTES < accented.segment_size()
    assert accented.exceeds(MAX_MESSAGE_BYTES)
