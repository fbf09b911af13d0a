"""Exact values (issue 11): decimals go out exactly or not at all; float ids are whole."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest

from sqltraits_kit.publishing.segment import (
    PayloadError,
    build_encoded_message,
    build_message,
    to_json_traits,
    to_json_value,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12.30"), 12.3),
        (Decimal("0.10"), 0.1),
        (Decimal("-99999999.99"), -99999999.99),
        (Decimal("12.00"), 12),  # whole: an int, not 12.0
        (Decimal("9007199254740992"), 2**53),
        (Decimal("1E+20"), 10**20),  # a double holds it exactly
        (Decimal("123456789012345.67"), 123456789012345.67),
        (Decimal("-0.00"), 0),
        (Decimal("NaN"), None),
        (Decimal("-Infinity"), None),
    ],
)
def test_decimals_that_a_double_holds_go_out_as_that_exact_number(value, expected):
    out = to_json_value(value)
    assert out == expected and type(out) is type(expected)
    if out is not None:  # the JSON text denotes the same decimal value
        assert Decimal(json.dumps(out)) == value


@pytest.mark.parametrize(
    "value",
    [
        Decimal("12345678901234567.89"),  # decimal(38,2): 19 significant digits
        Decimal("9007199254740993"),  # 2**53 + 1
        Decimal("0.1000000000000000000001"),
        Decimal("-123456789012345678901234567890123456.78"),
    ],
)
def test_decimals_a_double_cannot_hold_are_refused_naming_row_and_column(value):
    with pytest.raises(PayloadError, match="cannot be sent exactly") as info:
        to_json_traits({"ltv": value, "plan": "gold"}, identifier="u42")
    assert info.value.trait == "ltv" and info.value.identifier == "u42"
    assert "identifier 'u42', trait 'ltv'" in str(info.value)
    assert str(value) in str(info.value)  # says which value, without rounding it
    with pytest.raises(PayloadError, match=r"identifier 'u42', trait 'ltv'"):
        build_encoded_message("identify", identifier="u42", traits={"ltv": value}, run_id="r")


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [(3.0, "3"), (np.float64(42.0), "42"), (Decimal("7.00"), "7"), (-1.0, "-1"), (0.0, "0")],
)
def test_whole_float_identifiers_become_integer_text(identifier, expected):
    msg = build_message("identify", identifier=identifier, traits={"s": 1}, run_id="r")
    assert msg["userId"] == expected
    group = build_message("group", identifier=identifier, traits={"s": 1}, run_id="r")
    assert group["groupId"] == expected


@pytest.mark.parametrize(
    "identifier",
    [
        2.5,
        np.float64(0.1),
        np.float32(1.5),
        Decimal("2.50"),
        2.0**60,
        Decimal("12345678901234567.5"),
    ],
)
def test_fractional_or_inexact_float_identifiers_are_refused(identifier):
    for kind in ("identify", "group"):
        with pytest.raises(PayloadError, match="Id"):
            build_encoded_message(kind, identifier=identifier, traits={"s": 1}, run_id="r")
    with pytest.raises(PayloadError, match=r"userId 2\.5 is not a whole number"):
        build_message("identify", identifier=2.5, traits={"s": 1}, run_id="r")


def test_nan_and_infinite_floats_still_become_null():
    traits = to_json_traits({"a": float("nan"), "b": float("inf"), "c": np.float32("nan")})
    assert traits == {"a": None, "b": None, "c": None}
