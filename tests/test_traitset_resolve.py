"""``resolve`` value by value: rounding, tiers, quantiles and flags at their boundaries.

test_traitset.py compares resolve with pandas on random scores; mutation testing
(benchmarks/mutation.py) showed which edges that leaves open. Here each case is a handful of
chosen values: exactly on a threshold, one rounding step under it, NaN, ±inf, null, tied quantile
cuts, every flag operator. In-memory DuckDB (test_traitset.py runs resolve on PostgreSQL too).
"""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from sqltraits_kit.traits.traitset import TraitSet, TraitSetError, resolve
from sqltraits_kit.warehouse import connect

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def wh():
    wh = connect("duckdb:///:memory:")
    yield wh
    wh.close()


def _resolved(wh, name: str, columns: dict, **spec) -> dict[str, dict]:
    ids = [f"u{i}" for i in range(len(next(iter(columns.values()))))]
    wh.con.create_table(name, pa.table({"user_id": ids, **columns}), overwrite=True)
    ts = TraitSet.from_dict({"name": name, "table": name, **spec})
    rows = resolve(wh, ts).to_pyarrow().to_pylist()
    return {r.pop("user_id"): r for r in rows}


def _column(got: dict[str, dict], trait: str) -> list:
    return [got[f"u{i}"][trait] for i in range(len(got))]


def _same(a: list, b: list) -> bool:
    def key(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    return [key(v) for v in a] == [key(v) for v in b]


def test_floats_are_rounded_and_what_cannot_be_passes_through(wh):
    big = 1e13 + 0.125  # x * 100 >= 1e15: rounding through x * 10^d would not be exact
    values = [0.12345, -2.71828, 2.5e-3, big, NAN, INF, -INF, None]
    got = _resolved(
        wh,
        "rounding",
        {"score": pa.array(values, pa.float64()), "n": list(range(8))},
        traits={"score": "score", "n": "n"},
        decimals={"score": 2, "n": 1},
    )
    assert _same(_column(got, "score"), [0.12, -2.72, 0.0, big, NAN, INF, -INF, None])
    assert _column(got, "n") == list(range(8))  # an integer column is never rounded


def test_a_value_just_under_the_exact_range_is_rounded(wh):
    under = 9e12 + 0.126953125  # exact in binary; x * 100 < 1e15
    got = _resolved(
        wh, "rounding_big", {"score": [under]}, traits={"score": "score"}, decimals={"score": 2}
    )
    assert got["u0"]["score"] != under
    assert got["u0"]["score"] == pytest.approx(9e12 + 0.13, abs=2e-3)


def test_tiers_are_closed_below_and_follow_the_rounded_value(wh):
    values = [0.2999, 0.3, 0.6999, 0.7, 0.6996, 0.29951, NAN, None, -INF, INF]
    got = _resolved(
        wh,
        "tiers",
        {"p": pa.array(values, pa.float64())},
        traits={"p": "p"},
        decimals={"p": 3},
        derived=[
            {
                "name": "tier",
                "type": "tiers",
                "column": "p",
                "thresholds": [0.3, 0.7],
                "labels": ["low", "medium", "high"],
            }
        ],
    )
    # 0.2999 and 0.6999 round to 0.3 and 0.7: the tier agrees with the value Segment receives
    assert _column(got, "tier") == [
        "medium",
        "medium",
        "high",
        "high",
        "high",
        "medium",
        None,
        None,
        "low",
        "high",
    ]


def test_quantile_bins_with_their_cut_points(wh):
    got = _resolved(
        wh,
        "quantiles",
        {"v": pa.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, NAN, INF], pa.float64())},
        traits={"v": "v"},
        derived=[{"name": "q", "type": "quantiles", "column": "v", "bins": 4}],
    )
    # NaN and inf are left out of the cuts (2.75, 4.5, 6.25 over 1..8); NaN gets no bin,
    # inf is above every cut
    assert _column(got, "q") == [1, 1, 2, 2, 3, 3, 4, 4, None, 4]


def test_tied_quantile_cuts_skip_the_lower_labels(wh):
    got = _resolved(
        wh,
        "quantile_ties",
        {"v": [0, 0, 0, 0, 0, 0, 1, 2]},
        traits={"v": "v"},
        derived=[
            {
                "name": "q",
                "type": "quantiles",
                "column": "v",
                "bins": 4,
                "labels": ["a", "b", "c", "d"],
            }
        ],
    )
    # cuts 0, 0, 0.25: a zero is >= the second cut, so it is "c" (never "b"); 1 and 2 are "d"
    assert _column(got, "q") == ["c"] * 6 + ["d", "d"]


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (">=", [False, True, True]),
        (">", [False, False, True]),
        ("<=", [True, True, False]),
        ("<", [True, False, False]),
        ("==", [False, True, False]),
        ("!=", [True, False, True]),
    ],
)
def test_every_flag_operator_and_missing_values(wh, op, expected):
    got = _resolved(
        wh,
        "flags",
        {"p": pa.array([0.4, 0.5, 0.6, NAN, None], pa.float64())},
        traits={"p": "p"},
        derived=[{"name": "f", "type": "flag", "column": "p", "op": op, "value": 0.5}],
    )
    assert _column(got, "f") == [*expected, None, None]


def test_a_flag_on_a_string_column(wh):
    got = _resolved(
        wh,
        "string_flag",
        {"plan": ["pro", "free", None]},
        traits={"plan": "plan"},
        derived=[{"name": "is_pro", "type": "flag", "column": "plan", "op": "==", "value": "pro"}],
    )
    assert _column(got, "is_pro") == [True, False, None]


def test_only_the_columns_the_traits_read_leave_the_warehouse(wh):
    got = _resolved(
        wh,
        "narrow",
        {"score": [0.123456], "secret": ["s3cr3t"], "other": [1]},
        traits={"score": "score"},
        decimals={"score": 1},
    )
    assert got == {"u0": {"score": 0.1}}


def test_name_clashes_are_refused_with_their_key(wh):
    wh.con.create_table("clash", pa.table({"user_id": ["a"], "x": [1.0]}), overwrite=True)
    flag = {"name": "x", "type": "flag", "column": "x", "op": ">", "value": 0}
    with pytest.raises(TraitSetError, match="trait name 'x' is also a column trait") as info:
        resolve(wh, TraitSet.from_dict({"name": "c", "table": "clash", "derived": [flag]}))
    assert info.value.key == "derived[0].name"
    with pytest.raises(
        TraitSetError, match="trait name 'user_id' is the identifier's name"
    ) as info:
        resolve(wh, TraitSet.from_dict({"name": "c", "table": "clash", "traits": {"x": "user_id"}}))
    assert info.value.key == "traits.x"  # caught by the spec before resolve
    with pytest.raises(TraitSetError, match=r"no trait 'y' \(traits: x\)") as info:
        resolve(wh, TraitSet.from_dict({"name": "c", "table": "clash", "tolerance": {"y": 1.0}}))
    assert info.value.key == "tolerance.y"


def test_derived_trait_errors_say_what_is_wrong(wh):
    columns = {"user_id": ["a"], "x": [1.0], "plan": ["p"]}
    wh.con.create_table("derr", pa.table(columns), overwrite=True)

    def error(derived: dict) -> tuple[str, str]:
        spec = {"name": "d", "table": "derr", "traits": {"x": "x"}, "derived": [derived]}
        with pytest.raises(TraitSetError) as info:
            resolve(wh, TraitSet.from_dict(spec))
        return info.value.key, str(info.value)

    quantiles_on_text = {"name": "q", "type": "quantiles", "column": "plan", "bins": 4}
    assert error(quantiles_on_text) == (
        "derived[0].column",
        "derived[0].column: column 'plan' is string, tiers need a number",
    )
    missing = {"name": "f", "type": "flag", "column": "nope", "op": ">", "value": 1}
    assert error(missing) == (
        "derived[0].column",
        "derived[0].column: column 'nope' is not in the table derr (columns: user_id, x, plan)",
    )
    text_vs_number = {"name": "f", "type": "flag", "column": "plan", "op": ">", "value": 1.5}
    assert error(text_vs_number) == (
        "derived[0].value",
        "derived[0].value: cannot compare column 'plan' (string) with 1.5",
    )


def test_decimals_round_exactly_and_quantile_bins_are_int64(wh):
    import decimal

    d = pa.array([decimal.Decimal("1.2345"), decimal.Decimal("-2.5551")], pa.decimal128(10, 4))
    wh.con.create_table("dec", pa.table({"user_id": ["a", "b"], "d": d}), overwrite=True)
    spec = {
        "name": "dec",
        "table": "dec",
        "traits": {"d": "d"},
        "decimals": {"d": 2},
        "derived": [{"name": "q", "type": "quantiles", "column": "d", "bins": 4}],
    }
    table = resolve(wh, TraitSet.from_dict(spec))
    assert table.schema()["q"].is_int64()  # the same type whatever the number of bins
    rows = table.order_by("user_id").to_pyarrow().to_pylist()
    assert [r["d"] for r in rows] == [decimal.Decimal("1.23"), decimal.Decimal("-2.56")]


def test_a_value_just_past_the_exact_range_passes_through(wh):
    # x * 100 is 1e15 + 0.25 in floating point: past the range where x * 10^d is exact, so
    # the value is sent as it is (rounding would give 1e13 exactly).
    past = 1e13 + 2**-9
    got = _resolved(
        wh, "rounding_past", {"score": [past]}, traits={"score": "score"}, decimals={"score": 2}
    )
    assert got["u0"]["score"] == past
