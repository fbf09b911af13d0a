from __future__ import annotations

import datetime as dt
import math
import tomllib

import numpy as np
import pandas as pd
import pytest

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.traits.traitset import (
    DerivedTrait,
    ModelRef,
    TraitSet,
    TraitSetError,
    check_read_only_query,
    query_table,
    resolve,
    snake_case,
)
from tests.support.traits import CHURN, LTV, churn_traits_table

# --------------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("churnProbability", "churn_probability"),
        ("LTVScore", "ltv_score"),
        ("Predicted LTV ($)", "predicted_ltv"),
        ("createdAt", "created_at"),
        ("already_snake", "already_snake"),
        ("p_alive90D", "p_alive90_d"),
        ("  spaced--out  ", "spaced_out"),
        ("userID", "user_id"),
    ],
)
def test_snake_case(name, expected):
    assert snake_case(name) == expected


def test_example_trait_sets_load_and_round_trip(tmp_path):
    for path in (CHURN, LTV):
        ts = TraitSet.load(path)
        assert ts.kind == "user" and ts.identifier == "user_id" and ts.message_type == "identify"
        assert ts.table == "churn_traits" and ts.on_remove == "null"
        assert ts.drift_threshold == 0.2
        assert ts.model is not None and ts.model.output_table == "churn_traits"
        assert TraitSet.from_dict(ts.to_dict()) == ts
        out = ts.dump(tmp_path / path.name)
        assert TraitSet.load(out) == ts
        assert tomllib.loads(ts.dumps()) == ts.to_dict()
    churn = TraitSet.load(CHURN)
    assert [d.name for d in churn.derived] == ["churn_risk_tier", "high_churn_risk"]
    assert churn.tolerance_for("churn_probability") == 0.02
    assert churn.tolerance_for("p_alive") == 0.02
    assert churn.decimals == {"churn_probability": 3, "p_alive": 3}


def test_writer_round_trips_awkward_values(tmp_path):
    query = (
        'SELECT user_id,\n  churn_probability AS "Churn" -- it\'s a comment\n'
        "FROM churn_traits WHERE note <> 'a\\b' AND label = 'é ✓'"
    )
    ts = TraitSet(
        name='quotes "and" \\ backslashes\tand tab',
        description="line one\nline two with ''' triple quotes and \x7f",
        query=query,
        kind="account",
        id_column="account_id",
        on_remove="keep",
        drift_threshold=0.25,
        traits={"Churn": "churn score"},
        decimals={"churn score": 2},
        tolerance={"churn score": 0.5},
        derived=(
            DerivedTrait(
                name="tier", type="tiers", column="Churn", thresholds=(0.5,), labels=("a", "b")
            ),
            DerivedTrait(name="flagged", type="flag", column="Churn", op="!=", value="x"),
            DerivedTrait(name="q", type="quantiles", column="Churn", bins=4),
        ),
        model=ModelRef(name="m", version=3, as_of=dt.date(2025, 6, 30)),
    )
    assert ts.identifier == "group_id" and ts.message_type == "group"
    path = ts.dump(tmp_path / "nested" / "awkward.toml")
    again = TraitSet.load(path)
    assert again == ts
    assert again.query == query
    assert again.model.as_of == dt.date(2025, 6, 30)
    assert "'''" in path.read_text()  # the multi-line query is written readably


def _churn_dict() -> dict:
    return TraitSet.load(CHURN).to_dict()


def _set(data: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "key", "words"),
    [
        ("name", _DELETE, "name", "needs a name"),
        ("name", "  ", "name", "non-empty"),
        ("drfit_threshold", 0.3, "drfit_threshold", "unknown key"),
        ("query", "SELECT 1", "table", "exactly one"),
        ("table", _DELETE, "table", "exactly one"),
        ("kind", "group", "kind", "'user'"),
        ("on_remove", "drop", "on_remove", "'null'"),
        ("drift_threshold", 0, "drift_threshold", "> 0"),
        ("drift_threshold", "high", "drift_threshold", "> 0"),
        ("id_column", "", "id_column", "non-empty"),
        ("traits", ["churn_probability"], "traits", "expected a table"),
        ("traits.p_alive", "churn_probability", "traits.p_alive", "also given by"),
        ("traits.user_id", "uid", "traits.user_id", "identifier column"),
        ("traits.p_alive", "user_id", "traits.p_alive", "identifier's name"),
        ("traits.p_alive", "", "traits.p_alive", "non-empty"),
        ("decimals.churn_probability", -1, "decimals.churn_probability", "0 to 12"),
        ("decimals.churn_probability", 2.5, "decimals.churn_probability", "whole number"),
        ("decimals.nope", 2, "decimals.nope", "no trait 'nope'"),
        ("decimals.churn_risk_tier", 2, "decimals.churn_risk_tier", "not numbers"),
        ("tolerance.p_alive", -0.1, "tolerance.p_alive", ">= 0"),
        ("relative_tolerance", 0.1, "relative_tolerance", "expected a table"),
        ("relative_tolerance", {"p_alive": 1.0}, "relative_tolerance.p_alive", "(0.05 = 5%)"),
        ("relative_tolerance", {"p_alive": "5%"}, "relative_tolerance.p_alive", "got '5%'"),
        ("relative_tolerance", {"nope": 0.1}, "relative_tolerance.nope", "no trait 'nope'"),
        ("exclude", ["run_id"], "exclude", "not both"),
        ("model.name", _DELETE, "model.name", "non-empty name"),
        ("model.flavour", "x", "model.flavour", "unknown key"),
        ("derived.0.type", "buckets", "derived[0].type", "tiers, quantiles, flag"),
        ("derived.0.thresholds", [0.7, 0.3], "derived[0].thresholds", "strictly increasing"),
        ("derived.0.thresholds", [], "derived[0].thresholds", "non-empty"),
        ("derived.0.labels", ["low", "high"], "derived[0].labels", "expected 3 labels"),
        ("derived.0.labels", ["a", "a", "b"], "derived[0].labels", "distinct"),
        ("derived.0.bins", 4, "derived[0].bins", "not a key of a 'tiers'"),
        ("derived.0.column", "", "derived[0].column", "non-empty"),
        ("derived.0.name", "p_alive", "derived[0].name", "also given by traits.p_alive"),
        ("derived.1.op", "=>", "derived[1].op", "must be one of"),
        ("derived.1.value", _DELETE, "derived[1].value", "finite value"),
        ("derived.1.value", float("nan"), "derived[1].value", "finite value"),
    ],
)
def test_invalid_specs_name_the_key(path, value, key, words):
    data = _set(_churn_dict(), path, value)
    with pytest.raises(TraitSetError) as info:
        TraitSet.from_dict(data, path="traitsets/x.toml")
    assert info.value.key == key
    assert str(info.value).startswith(f"traitsets/x.toml: {key}: ")
    assert words in str(info.value)
    assert isinstance(info.value, ConfigError)  # the CLI exits 2


def test_quantile_trait_rules():
    base = {"name": "x", "table": "t"}
    bad_bins = {**base, "derived": [{"name": "d", "type": "quantiles", "column": "c", "bins": 1}]}
    with pytest.raises(TraitSetError, match=r"derived\[0\]\.bins: .*2 to 100"):
        TraitSet.from_dict(bad_bins)
    labels = {"name": "d", "type": "quantiles", "column": "c", "bins": 3, "labels": ["a", "b"]}
    with pytest.raises(TraitSetError, match=r"derived\[0\]\.labels: expected 3 labels"):
        TraitSet.from_dict({**base, "derived": [labels]})


def test_load_errors_are_config_errors(tmp_path):
    with pytest.raises(TraitSetError, match="trait-set file not found"):
        TraitSet.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntable = \n')
    with pytest.raises(TraitSetError, match=r"bad\.toml: not valid TOML"):
        TraitSet.load(bad)


def test_account_defaults_and_identifier_names():
    account = TraitSet(name="a", table="accounts", kind="account")
    assert account.id_column == "group_id" and account.identifier == "group_id"
    by_email = TraitSet(name="e", table="t", id_column="email")
    assert by_email.identifier == "email"
    other = TraitSet(name="o", table="t", id_column="customer_id")
    assert other.identifier == "user_id"  # sent under Segment's name
    assert other.with_(on_remove="keep").on_remove == "keep"
    with pytest.raises(TraitSetError, match="on_remove"):
        other.with_(on_remove="sometimes")


# --------------------------------------------------------------------------- queries


@pytest.mark.parametrize(
    "query",
    [
        "SELECT user_id, score FROM t",
        "select user_id from t;",
        "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
        "SELECT 1 AS a UNION ALL SELECT 2",
        "(SELECT 1 AS a)",
    ],
)
def test_read_only_queries_pass(query):
    assert check_read_only_query(query, dialect="duckdb")


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("", "empty"),
        ("SELECT 1; DROP TABLE users", "single SELECT statement, found 2"),
        ("DELETE FROM users", "not DELETE"),
        ("INSERT INTO t VALUES (1)", "not INSERT"),
        ("DROP TABLE users", "not DROP"),
        ("UPDATE t SET a = 1", "not UPDATE"),
        ("CREATE TABLE x AS SELECT 1", "not CREATE"),
        ("SELECT * INTO t2 FROM t", "SELECT ... INTO"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE"),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE/SHARE"),
        ("COPY t TO '/tmp/x.csv'", "not COPY"),
        ("SELECT FROM WHERE (", "not valid SQL"),
    ],
)
def test_queries_that_write_are_refused(query, words):
    with pytest.raises(ConfigError, match=None) as info:
        check_read_only_query(query, dialect="postgres")
    assert words in str(info.value)


def test_trait_set_refuses_a_writing_query():
    with pytest.raises(TraitSetError) as info:
        TraitSet(name="x", query="DELETE FROM churn_traits")
    assert info.value.key == "query"


# --------------------------------------------------------------------------- resolve


@pytest.fixture
def churn_source(wh, unique_name):
    wh.con.create_table(unique_name, obj=churn_traits_table(200, bad_rows=True))
    return unique_name


def test_resolve_churn_example(wh, churn_source):
    ts = TraitSet.load(CHURN).with_(table=churn_source)
    table = resolve(wh, ts)
    assert table.columns == (
        "user_id",
        "churn_probability",
        "p_alive",
        "churn_risk_tier",
        "high_churn_risk",
    )
    got = table.to_pyarrow().to_pandas(types_mapper=None).set_index("user_id")
    src = churn_traits_table(200, bad_rows=True).to_pandas().set_index("user_id")
    churn = src["churn_probability_90d"]
    # rounding to 3 decimals (NaN and null pass through)
    rounded = got["churn_probability"]
    finite = churn.notna() & np.isfinite(churn)
    assert np.allclose(rounded[finite], churn[finite].round(3), atol=1e-12)
    assert math.isnan(got.loc["u00000", "churn_probability"])
    assert np.allclose(got["p_alive"], src["p_alive"].round(3), atol=1e-12)
    # tiers on the raw value: < 0.3 low, [0.3, 0.7) medium, >= 0.7 high; NaN/null -> null
    expected = pd.cut(
        churn, [-np.inf, 0.3, 0.7, np.inf], right=False, labels=["low", "medium", "high"]
    )
    assert got.loc["u00001", "churn_risk_tier"] == "high"  # exactly 0.7
    assert got.loc["u00001", "high_churn_risk"]
    for uid in ("u00000", "u00003"):  # NaN, null
        assert pd.isna(got.loc[uid, "churn_risk_tier"]) and pd.isna(got.loc[uid, "high_churn_risk"])
    assert (got["churn_risk_tier"][finite] == expected[finite].astype(str)).all()
    assert (got["high_churn_risk"][finite] == (churn[finite] >= 0.7)).all()


def test_resolve_ltv_deciles_match_numpy(wh, churn_source):
    ts = TraitSet.load(LTV).with_(table=churn_source)
    got = resolve(wh, ts).to_pandas().set_index("user_id")
    assert list(got.columns) == [
        "predicted_ltv_90d",
        "expected_purchases_90d",
        "ltv_decile",
        "ltv_tier",
    ]
    ltv = (
        churn_traits_table(200, bad_rows=True).to_pandas().set_index("user_id")["predicted_ltv_90d"]
    )
    valid = ltv.dropna()
    cuts = np.quantile(valid, np.arange(1, 10) / 10)  # linear, like percentile_cont
    expected = np.searchsorted(cuts, valid, side="right") + 1
    assert (got.loc[valid.index, "ltv_decile"].astype(int).to_numpy() == expected).all()
    assert (
        got["ltv_decile"].value_counts().to_dict() == pd.Series(expected).value_counts().to_dict()
    )
    assert pd.isna(got.loc["u00002", "ltv_decile"])


def test_default_traits_are_every_other_column_snake_cased(wh, unique_name):
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "churnProb": [0.1, 0.9],
            "Plan Name": ["pro", "free"],
            "secret": ["x", "y"],
            "run_id": ["r", "r"],
            "scored_at": pd.to_datetime(["2025-01-01", "2025-01-01"], utc=True),
        }
    )
    wh.con.create_table(unique_name, obj=frame)
    ts = TraitSet(name="d", table=unique_name, id_column="customer_id", exclude=("secret",))
    table = resolve(wh, ts)
    assert table.columns == ("user_id", "churn_prob", "plan_name")
    assert ts.trait_names(wh.table(unique_name).columns) == ["churn_prob", "plan_name"]
    rows = table.order_by("user_id").to_pyarrow().to_pylist()
    assert rows[0] == {"user_id": "a", "churn_prob": 0.1, "plan_name": "pro"}


def test_resolve_from_a_query(wh, churn_source):
    query = (
        f"WITH s AS (SELECT user_id, churn_probability_90d AS score FROM {churn_source}) "
        "SELECT * FROM s WHERE score > 0.5"
    )
    ts = TraitSet(name="q", query=query, decimals={"score": 1})
    table = resolve(wh, ts)
    got = table.to_pandas()
    src = churn_traits_table(200, bad_rows=True).to_pandas()
    churn = src["churn_probability_90d"]
    # SQL sorts NaN above every number, so the NaN row (u00000) passes `score > 0.5`; null does not
    assert len(got) == int((churn > 0.5).sum()) + 1
    assert "u00000" in set(got["user_id"]) and "u00003" not in set(got["user_id"])
    scores = got["score"].dropna()
    assert np.array_equal(np.round(scores, 1), scores)


def test_resolve_errors_name_the_key(wh, churn_source):
    def key_of(ts):
        with pytest.raises(TraitSetError) as info:
            resolve(wh, ts)
        return info.value.key, str(info.value)

    base = TraitSet.load(CHURN)
    key, text = key_of(base.with_(table="no_such_table"))
    assert key == "table" and "'no_such_table' not found" in text
    key, text = key_of(base.with_(table=churn_source, id_column="uid"))
    assert key == "id_column" and "'uid'" in text
    key, _ = key_of(
        base.with_(table=churn_source, traits={"nope": "nope"}, decimals={}, tolerance={})
    )
    assert key == "traits.nope"
    bad = TraitSet(name="x", table=churn_source, decimals={"model_name": 2}, exclude=("run_id",))
    bad = bad.with_(exclude=(), traits={"model_name": "model_name"})
    key, text = key_of(bad)
    assert key == "decimals.model_name" and "not a number" in text
    tier_on_text = DerivedTrait(
        name="t", type="tiers", column="model_name", thresholds=(1.0,), labels=("a", "b")
    )
    key, text = key_of(base.with_(table=churn_source, derived=(tier_on_text,)))
    assert key == "derived[0].column" and "tiers need a number" in text
    flag_mismatch = DerivedTrait(name="f", type="flag", column="model_name", op=">=", value=0.5)
    key, _ = key_of(base.with_(table=churn_source, derived=(flag_mismatch,)))
    assert key == "derived[0].value"
    missing = DerivedTrait(name="f", type="flag", column="nope", op=">=", value=0.5)
    key, _ = key_of(base.with_(table=churn_source, derived=(missing,)))
    assert key == "derived[0].column"


def test_query_table_reports_warehouse_errors(wh):
    with pytest.raises(ConfigError, match="the query failed"):
        query_table(wh, "SELECT * FROM no_such_table_here")
    with pytest.raises(ConfigError, match="only read data"):
        query_table(wh, "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d")
    assert wh.table("users").count().execute() > 0  # nothing was deleted


def test_derived_traits_agree_with_the_rounded_value_that_is_published(duckdb_wh, unique_name):
    import pandas as pd

    from sqltraits_kit.traits.traitset import TraitSet, resolve

    duckdb_wh.con.create_table(
        unique_name,
        obj=pd.DataFrame({"user_id": ["a", "b", "c"], "churn_probability": [0.6996, 0.7004, 0.2]}),
    )
    ts = TraitSet.from_dict(
        {
            "name": "edge",
            "table": unique_name,
            "decimals": {"churn_probability": 2},
            "derived": [
                {"name": "tier", "type": "tiers", "column": "churn_probability",
                 "thresholds": [0.3, 0.7], "labels": ["low", "medium", "high"]},
                {"name": "high", "type": "flag", "column": "churn_probability",
                 "op": ">=", "value": 0.7},
            ],
        }
    )  # fmt: skip
    out = resolve(duckdb_wh, ts).order_by("user_id").to_pandas()
    assert out["churn_probability"].tolist() == [0.7, 0.7, 0.2]
    assert out["tier"].tolist() == ["high", "high", "low"]
    assert out["high"].tolist() == [True, True, False]
