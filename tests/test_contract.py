from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest

from sqltraits_kit.traits.contract import RULES, record_size_estimate, validate, validate_trait_set
from sqltraits_kit.traits.traitset import TraitSet
from tests.support.traits import CHURN, churn_traits_table

UTC = dt.UTC


def make(wh, name, columns: dict) -> object:
    """A warehouse table from a dict of columns (pyarrow keeps NaN apart from null)."""
    return wh.con.create_table(name, obj=pa.table(columns))


def good_columns(n: int = 6) -> dict:
    return {
        "user_id": [f"u{i}" for i in range(n)],
        "churn_probability": [0.1 * i for i in range(n)],
        "churn_risk_tier": ["low", "medium", "high", "low", "medium", "high"][:n],
        "high_churn_risk": [i % 2 == 0 for i in range(n)],
        "orders": list(range(n)),
        "scored_at": pa.array([dt.datetime(2025, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", "UTC")),
    }


def failed(report) -> dict[str, object]:
    return {r.name: r for r in report.rules if not r.passed}


# --------------------------------------------------------------------------- the good case


def test_a_good_table_passes_cleanly(wh, unique_name):
    report = validate(make(wh, unique_name, good_columns()), id_column="user_id")
    assert report.ok
    assert failed(report) == {}
    assert report.rows == 6 and report.id_column == "user_id"
    expected = [n for n in RULES if n != "identifier_length"]  # groupId rule: accounts only
    assert report.names() == expected
    frame = report.to_frame()
    assert list(frame.columns) == ["rule", "level", "status", "passed", "count", "message"]
    assert frame["passed"].all() and len(frame) == len(expected)
    json.dumps(report.to_dict(), allow_nan=False)
    assert report.summary().startswith("OK: 19/19 rules passed, 0 errors, 0 warnings")


def test_the_churn_example_trait_set_passes(wh, unique_name):
    wh.con.create_table(unique_name, obj=churn_traits_table(300))
    report = validate_trait_set(wh, TraitSet.load(CHURN).with_(table=unique_name))
    assert report.ok and not report.failed, report.summary()
    assert report.columns == (
        "user_id",
        "churn_probability",
        "p_alive",
        "churn_risk_tier",
        "high_churn_risk",
    )


# --------------------------------------------------------------------------- identifier


def test_missing_identifier(wh, unique_name):
    cols = good_columns()
    del cols["user_id"]
    report = validate(make(wh, unique_name, cols))
    bad = failed(report)
    assert set(bad) == {"identifier_present"}
    assert "user_id / email / anonymous_id" in bad["identifier_present"].message
    assert report.id_column is None and not report.ok
    # the per-row identifier rules are not run without an identifier
    assert "identifier_unique" not in report.names()
    named = validate(make(wh, unique_name + "_b", good_columns()), id_column="customer_id")
    assert "'customer_id'" in failed(named)["identifier_present"].message


def test_identifier_with_another_name_warns(wh, unique_name):
    cols = good_columns()
    cols["customer_id"] = cols.pop("user_id")
    report = validate(make(wh, unique_name, cols), id_column="customer_id")
    assert set(failed(report)) == {"identifier_name"}
    assert report.ok  # a warning does not block
    assert report.rule("identifier_name").level == "warning"


def test_null_identifiers_are_named_with_their_rows(wh, unique_name):
    cols = good_columns()
    cols["user_id"] = ["u0", None, "u2", "u3", None, "u5"]
    report = validate(make(wh, unique_name, cols))
    rule = failed(report)["identifier_not_null"]
    assert set(failed(report)) == {"identifier_not_null"}
    assert rule.count == 2 and "2 rows with a null user_id" in rule.message
    assert sorted(r["orders"] for r in rule.sample) == [1, 4]
    assert all(r["user_id"] is None for r in rule.sample)


def test_empty_identifiers(wh, unique_name):
    cols = good_columns()
    cols["user_id"] = ["u0", "", "u2", "   ", "u4", "u5"]
    rule = failed(validate(make(wh, unique_name, cols)))["identifier_not_empty"]
    assert rule.count == 2
    assert [r["user_id"] for r in rule.sample] == ["", "   "]


def test_duplicates_are_named(wh, unique_name):
    cols = good_columns()
    cols["user_id"] = ["u1", "u1", "u1", "u2", "u2", "u3"]
    report = validate(make(wh, unique_name, cols))
    assert set(failed(report)) == {"identifier_unique"}
    rule = report.rule("identifier_unique")
    assert rule.count == 2  # two identifiers are duplicated
    assert "'u1' ×3, 'u2' ×2" in rule.message and "3 extra rows" in rule.message
    assert list(rule.sample) == [{"user_id": "u1", "rows": 3}, {"user_id": "u2", "rows": 2}]


def test_integer_identifiers(wh, unique_name):
    cols = good_columns()
    cols["user_id"] = [1, 2, 3, 3, 5, 6]
    report = validate(make(wh, unique_name, cols))
    assert set(failed(report)) == {"identifier_unique"}
    assert report.rule("identifier_not_empty").passed
    assert report.rule("identifier_unique").sample == ({"user_id": 3, "rows": 2},)


def test_group_ids_over_500_characters(wh, unique_name):
    table = make(
        wh,
        unique_name,
        {"group_id": ["acme", "g" * 501, "beta"], "seats": [3, 4, 5]},
    )
    report = validate(table, kind="account")
    assert set(failed(report)) == {"identifier_length"}
    rule = report.rule("identifier_length")
    assert rule.count == 1 and rule.sample[0]["length"] == 501


def test_user_id_and_anonymous_id_in_one_row(wh, unique_name):
    cols = good_columns()
    cols["anonymous_id"] = [None, "anon-1", None, None, None, None]
    report = validate(make(wh, unique_name, cols))
    rule = failed(report)["single_identifier"]
    assert rule.count == 1 and rule.sample == ({"user_id": "u1", "anonymous_id": "anon-1"},)
    # and anonymous_id as a trait would also change identity
    assert "anonymous_id" in failed(report)["identity_trait_names"].columns


# --------------------------------------------------------------------------- shape


def test_no_trait_columns(wh, unique_name):
    report = validate(make(wh, unique_name, {"user_id": ["a", "b"]}))
    assert set(failed(report)) == {"has_traits"}


def test_more_than_25_columns(wh, unique_name):
    cols = {"user_id": ["a", "b"], **{f"trait_{i:02d}": [i, i] for i in range(25)}}
    rule = failed(validate(make(wh, unique_name, cols)))["max_columns"]
    assert rule.count == 1 and "26 columns" in rule.message


def test_an_empty_result_warns(wh, unique_name):
    cols = {"user_id": pa.array([], pa.string()), "score": pa.array([], pa.float64())}
    report = validate(make(wh, unique_name, cols))
    assert set(failed(report)) == {"has_rows"}
    assert report.ok and "null" in report.rule("has_rows").message


def test_too_many_rows(wh, unique_name):
    report = validate(make(wh, unique_name, good_columns()), max_rows=4)
    rule = failed(report)["max_rows"]
    assert rule.count == 2 and "6 rows" in rule.message


def test_oversized_records_are_named(wh, unique_name):
    cols = good_columns()
    cols["note"] = ["short", "x" * 20_000, "ok", "y" * 17_000, "", None]
    report = validate(make(wh, unique_name, cols))
    assert set(failed(report)) == {"record_size"}
    rule = report.rule("record_size")
    assert rule.count == 2
    assert [r["user_id"] for r in rule.sample] == ["u1", "u3"]  # largest first
    assert rule.sample[0]["estimated_bytes"] > 20_000


def test_record_size_estimate_bounds_the_json_size(wh, unique_name):
    cols = good_columns()
    cols["note"] = ["plain text", "", None, "a b c", "x" * 300, "z"]
    cols["ratio"] = pa.array([0.25, None, 1e-05, 123456.5, -2.2250738585072014e-308, 0.1])
    table = make(wh, unique_name, cols)
    estimates = table.select("user_id", est=record_size_estimate(table)).to_pyarrow().to_pylist()
    rows = {r["user_id"]: r for r in table.to_pyarrow().to_pylist()}
    numeric_columns = 4  # churn_probability, high_churn_risk, orders, ratio
    for item in estimates:
        row = dict(rows[item["user_id"]])
        row["scored_at"] = "2025-01-01T00:00:00.000Z"  # how the payload layer sends it
        actual = len(json.dumps(row, separators=(",", ":")))
        # text is measured, numbers are counted at their longest form: never an underestimate
        assert actual <= item["est"] <= actual + 1 + 24 * numeric_columns, (row, item["est"])
    by_id = {e["user_id"]: e["est"] for e in estimates}
    # text is measured exactly: u4's note is 295 characters longer, its tier 3 ("medium"/"low")
    assert by_id["u4"] - by_id["u3"] == 295 + 3


# --------------------------------------------------------------------------- types


def test_arrays_are_refused(wh, unique_name):
    cols = good_columns()
    cols["products"] = [["a", "b"], [], None, ["c"], ["d"], ["e"]]
    rule = failed(validate(make(wh, unique_name, cols)))["no_nested_types"]
    assert rule.columns == {"products": 1} and "comma-separated" in rule.message


def test_structs_and_maps_are_refused_on_duckdb(duckdb_wh, unique_name):
    cols = good_columns(2)
    cols["address"] = [{"city": "Oslo"}, {"city": "Lima"}]
    cols["counts"] = pa.array([[("a", 1)], [("b", 2)]], pa.map_(pa.string(), pa.int64()))
    report = validate(make(duckdb_wh, unique_name, cols))
    assert failed(report)["no_nested_types"].columns == {"address": 1, "counts": 1}


def test_binary_columns_are_refused(wh, unique_name):
    cols = good_columns()
    cols["blob"] = pa.array([b"\x00\x01"] * 6, pa.binary())
    rule = failed(validate(make(wh, unique_name, cols)))["supported_types"]
    assert rule.columns == {"blob": 1} and "blob is binary" in rule.message


def test_naive_timestamps_and_dates_warn(wh, unique_name):
    cols = good_columns()
    cols["last_order_at"] = pa.array([dt.datetime(2025, 1, 2)] * 6, pa.timestamp("us"))
    cols["signup_day"] = pa.array([dt.date(2024, 5, 1)] * 6, pa.date32())
    report = validate(make(wh, unique_name, cols))
    rule = failed(report)["timestamps_have_timezone"]
    assert set(failed(report)) == {"timestamps_have_timezone"}
    assert rule.columns == {"last_order_at": 1, "signup_day": 1}
    assert "UTC with a 'Z'" in rule.message and report.ok


def test_nan_and_infinity_are_named_per_column(wh, unique_name):
    cols = good_columns()
    cols["churn_probability"] = pa.array([0.1, float("nan"), 0.3, float("nan"), 0.5, None])
    cols["ltv"] = pa.array([1.0, 2.0, float("inf"), 4.0, float("-inf"), 6.0])
    report = validate(make(wh, unique_name, cols))
    assert set(failed(report)) == {"finite_numbers"}
    rule = report.rule("finite_numbers")
    assert rule.columns == {"churn_probability": 2, "ltv": 2}
    assert rule.count == 4
    assert "churn_probability (2 rows)" in rule.message and "ltv (2 rows)" in rule.message
    assert [r["user_id"] for r in rule.sample] == ["u1", "u2", "u3", "u4"]
    assert rule.sample[0]["churn_probability"] == "NaN"
    assert rule.sample[1]["ltv"] == "Infinity" and rule.sample[3]["ltv"] == "-Infinity"
    json.dumps(report.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- names


def test_identity_changing_trait_names_are_errors(wh, unique_name):
    cols = good_columns()
    cols["email"] = ["a@x.io"] * 6
    cols["userId"] = ["x"] * 6
    report = validate(make(wh, unique_name, cols))
    rule = failed(report)["identity_trait_names"]
    assert rule.columns == {"email": 1, "userId": 1}
    assert "promoted to the email identifier" in rule.message
    allowed = validate(make(wh, unique_name + "_b", cols), allow_reserved=["email", "user_id"])
    assert "identity_trait_names" not in failed(allowed)


def test_account_traits_use_the_group_spec(wh, unique_name):
    table = make(
        wh,
        unique_name,
        {"group_id": ["g1", "g2"], "email": ["a", "b"], "id": [1, 2], "plan": ["x", "y"]},
    )
    report = validate(table, kind="account")
    assert failed(report)["identity_trait_names"].columns == {"id": 1}
    assert failed(report)["reserved_trait_names"].columns == {"email": 1, "plan": 1}


def test_reserved_trait_names_warn(wh, unique_name):
    cols = good_columns()
    cols["first_name"] = ["a"] * 6
    cols["createdAt"] = ["2025"] * 6
    report = validate(make(wh, unique_name, cols))
    rule = failed(report)["reserved_trait_names"]
    assert rule.columns == {"first_name": 1, "createdAt": 1}
    assert rule.level == "warning" and report.ok


def test_names_that_collide_after_snake_casing(wh, unique_name):
    cols = good_columns()
    cols["churnProbability"] = [0.5] * 6
    cols["UserID"] = ["x"] * 6
    report = validate(make(wh, unique_name, cols))
    rule = failed(report)["trait_name_collisions"]
    assert "churn_probability and churnProbability all become 'churn_probability'" in rule.message
    assert rule.columns == {
        "churn_probability": 2,
        "churnProbability": 2,
        "user_id": 2,
        "UserID": 2,
    }
    assert failed(report)["snake_case_names"].columns == {"churnProbability": 1, "UserID": 1}


def test_names_that_are_not_snake_case_warn(wh, unique_name):
    cols = good_columns()
    cols["LTV Score"] = [1.0] * 6
    report = validate(make(wh, unique_name, cols))
    assert set(failed(report)) == {"snake_case_names"}
    assert "LTV Score -> ltv_score" in report.rule("snake_case_names").message


# --------------------------------------------------------------------------- report API


def test_samples_hold_at_most_five_rows(wh, unique_name):
    cols = {"user_id": [None] * 8 + ["a", "b"], "score": list(range(10))}
    rule = validate(make(wh, unique_name, cols)).rule("identifier_not_null")
    assert rule.count == 8 and len(rule.sample) == 5
    assert (
        validate(make(wh, unique_name + "_b", cols), sample_size=2)
        .rule("identifier_not_null")
        .sample.__len__()
        == 2
    )


def test_report_api(wh, unique_name):
    cols = good_columns()
    cols["user_id"] = ["u0", "u0", "u2", "u3", "u4", "u5"]
    cols["first_name"] = ["a"] * 6
    report = validate(make(wh, unique_name, cols))
    assert [r.name for r in report.errors] == ["identifier_unique"]
    assert [r.name for r in report.warnings] == ["reserved_trait_names"]
    assert [r.name for r in report.failed] == ["identifier_unique", "reserved_trait_names"]
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["ok"] is False and data["errors"] == 1 and data["warnings"] == 1
    assert data["rules"][4]["name"] == "identifier_unique"
    text = report.summary()
    assert "ERROR   identifier_unique" in text and "WARNING reserved_trait_names" in text
    assert text.splitlines()[-1].startswith("FAILED: 17/19 rules passed, 1 error, 1 warning")
    with pytest.raises(KeyError, match="no rule 'nope'"):
        report.rule("nope")
    with pytest.raises(ValueError, match="kind"):
        validate(make(wh, unique_name + "_c", good_columns()), kind="group")


def test_a_million_rows_validate_and_name_the_duplicate(duckdb_wh, unique_name):
    n = 1_000_000
    rng = np.random.default_rng(5)
    ids = np.char.add("u", np.arange(n).astype(str))
    ids[123_456] = ids[42]  # one duplicate the report must name
    table = pa.table(
        {
            "user_id": ids,
            "churn_probability": rng.random(n),
            "predicted_ltv": rng.gamma(2, 80, n),
            "churn_risk_tier": rng.choice(["low", "medium", "high"], n),
            "high_churn_risk": rng.random(n) > 0.7,
            "orders": rng.integers(0, 50, n),
        }
    )
    t = duckdb_wh.con.create_table(unique_name, obj=table)
    report = validate(t)  # timed by benchmarks/bench_unit_timings.py, not here
    assert set(failed(report)) == {"identifier_unique"}
    assert report.rule("identifier_unique").sample == ({"user_id": "u42", "rows": 2},)
    assert report.rows == n
