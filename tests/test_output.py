"""The output production table on DuckDB and PostgreSQL: staged, checked, swapped in one
transaction with the history append, runs listed, earlier runs restored."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest

from sqltraits_kit.errors import ConfigError, DataError, UnknownTableError
from sqltraits_kit.traits.output import (
    check_table_name,
    history_table,
    new_run_id,
    rollback,
    runs,
    write_output,
)


def frame(run_id: str, *, n: int = 5, minute: int = 0, **traits) -> pd.DataFrame:
    data = {"user_id": [f"u{i}" for i in range(n)]}
    data.update(traits or {"churn_probability": [i / 10 for i in range(n)]})
    data["model_name"] = "churn"
    data["model_version"] = "1"
    data["scored_at"] = pd.Timestamp(dt.datetime(2026, 11, 1, 12, minute, tzinfo=dt.UTC))
    data["run_id"] = run_id
    return pd.DataFrame(data)


def write(wh, table: str, df: pd.DataFrame, **kwargs):
    expr = ibis.memtable(df).mutate(scored_at=ibis._.scored_at.cast("timestamp('UTC')"))
    return write_output(wh, expr, table=table, id_column="user_id", run_id="run", **kwargs)


def content(wh, table: str) -> pd.DataFrame:
    return wh.table(table).to_pandas().sort_values("user_id", ignore_index=True)


def leftovers(wh) -> list[str]:
    return [t for t in wh.tables() if t.startswith("_sqltraits_staging_")]


def test_runs_are_swapped_in_and_kept(wh, unique_name):
    first = write(wh, unique_name, frame("run1"))
    assert first.rows == 5 and first.atomic
    assert first.history_table == history_table(unique_name) == f"{unique_name}_history"
    second = write(wh, unique_name, frame("run2", n=7, minute=5))
    assert second.rows == 7
    assert content(wh, unique_name)["run_id"].unique().tolist() == ["run2"]
    hist = wh.table(history_table(unique_name)).to_pandas()
    assert hist.groupby("run_id").size().to_dict() == {"run1": 5, "run2": 7}
    listed = runs(wh, unique_name)
    assert [(r.run_id, r.rows, r.current) for r in listed] == [
        ("run2", 7, True),
        ("run1", 5, False),
    ]
    assert listed[0].scored_at == dt.datetime(2026, 11, 1, 12, 5, tzinfo=dt.UTC)
    assert listed[0].to_dict()["scored_at"].startswith("2026-11-01T12:05:00")
    assert leftovers(wh) == []


def test_rollback_restores_an_earlier_run(wh, unique_name):
    write(wh, unique_name, frame("run1"))
    before = content(wh, unique_name)
    write(wh, unique_name, frame("run2", n=3, minute=5, churn_probability=[0.9, 0.8, 0.7]))
    restored = rollback(wh, unique_name, "run1")
    assert restored.rows == 5 and restored.history_table is None
    pd.testing.assert_frame_equal(content(wh, unique_name), before, check_dtype=False)
    assert [(r.run_id, r.current) for r in runs(wh, unique_name)] == [
        ("run2", False),
        ("run1", True),
    ]
    # rolling back appends nothing: the run is already in the history
    assert wh.table(history_table(unique_name)).count().execute() == 8
    with pytest.raises(ConfigError, match=r"no run 'run9'.*latest runs: run2, run1"):
        rollback(wh, unique_name, "run9")


def test_history_follows_new_and_missing_columns(wh, unique_name):
    write(wh, unique_name, frame("run1"))
    write(wh, unique_name, frame("run2", minute=1, churn_probability=[0.5] * 5, p_alive=[1.0] * 5))
    hist = wh.table(history_table(unique_name)).to_pandas()
    assert hist.loc[hist.run_id == "run1", "p_alive"].isna().all()
    assert (hist.loc[hist.run_id == "run2", "p_alive"] == 1.0).all()
    write(wh, unique_name, frame("run3", minute=2, p_alive=[0.5] * 5))
    hist = wh.table(history_table(unique_name)).to_pandas()
    assert hist.loc[hist.run_id == "run3", "churn_probability"].isna().all()
    # a rollback brings back the run's own columns only
    rollback(wh, unique_name, "run1")
    assert "p_alive" not in wh.table(unique_name).columns
    rollback(wh, unique_name, "run3")
    assert "churn_probability" not in wh.table(unique_name).columns


def test_a_type_change_is_refused_before_anything_changes(wh, unique_name):
    write(wh, unique_name, frame("run1"))
    with pytest.raises(DataError, match="'churn_probability' is string in this run"):
        write(wh, unique_name, frame("run2", churn_probability=["high"] * 5))
    assert content(wh, unique_name)["run_id"].unique().tolist() == ["run1"]
    assert leftovers(wh) == []


def _null_id(df):
    return df.assign(user_id=["u0", None, "u2", None, "u4"])


def _nan(df):
    return df.assign(churn_probability=[0.1, float("nan"), 0.3, 0.4, 0.5])


def _inf(df):
    return df.assign(churn_probability=[0.1, float("inf"), 0.3, 0.4, 0.5])


def _blank_id(df):
    return df.assign(user_id=["u0", "u1", "  ", "u3", "u4"])


def _empty(df):
    return df.iloc[:0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_null_id, "2 rows have a NULL user_id"),
        (_nan, r"'churn_probability': 1 rows are NULL, NaN or infinite \(e.g. user_id 'u1'\)"),
        (_inf, "NaN or infinite"),
        (_blank_id, "1 rows have an empty user_id"),
        (_empty, "scored no profile"),
    ],
    ids=["null-id", "nan", "inf", "blank-id", "empty"],
)
def test_bad_rows_fail_the_run_and_keep_the_table(wh, unique_name, change, message):
    write(wh, unique_name, frame("good"))
    with pytest.raises(DataError, match=message):
        write(wh, unique_name, change(frame("bad", minute=1)))
    assert content(wh, unique_name)["run_id"].unique().tolist() == ["good"]
    assert wh.table(history_table(unique_name)).count().execute() == 5
    assert leftovers(wh) == []


def test_duplicates_are_named(wh, unique_name):
    df = frame("r")
    df.loc[3, "user_id"] = "u1"
    with pytest.raises(DataError, match=r"1 duplicate user_id values \(e.g. 'u1' \(2x\)\)"):
        write(wh, unique_name, df)
    assert not wh.has_table(unique_name) and not wh.has_table(history_table(unique_name))


def test_a_failure_inside_the_swap_rolls_back_the_history_too(wh, unique_name):
    """The output name now holds a view: DROP TABLE fails after the history insert ran, and
    the transaction must undo that insert."""
    write(wh, unique_name, frame("run1"))
    wh.con.drop_table(unique_name)
    wh.con.create_view(unique_name, wh.table(history_table(unique_name)))
    with pytest.raises(DataError, match="previous table and its history are unchanged"):
        write(wh, unique_name, frame("run2", minute=1))
    assert wh.table(history_table(unique_name)).to_pandas()["run_id"].unique().tolist() == ["run1"]
    assert leftovers(wh) == []
    wh.con.drop_view(unique_name)


def test_validator_sees_the_staged_rows_and_can_refuse(wh, unique_name):
    write(wh, unique_name, frame("run1"))
    seen = []

    def refuse(staged):
        seen.append(sorted(staged.to_pandas()["user_id"]))
        raise DataError("not today")

    with pytest.raises(DataError, match="not today"):
        write(wh, unique_name, frame("run2", n=2), validate=refuse)
    assert seen == [["u0", "u1"]]
    assert content(wh, unique_name)["run_id"].unique().tolist() == ["run1"]
    # a report object with ok=True lets the run through
    ok = type("Report", (), {"ok": True})()
    assert write(wh, unique_name, frame("run2", n=2), validate=lambda _t: ok).rows == 2


def test_columns_and_names_are_checked(duckdb_wh):
    with pytest.raises(ConfigError, match="lower snake_case"):
        write(duckdb_wh, "ChurnTraits", frame("r"))
    with pytest.raises(ConfigError, match="reserved"):
        write(duckdb_wh, "churn_traits_history", frame("r"))
    with pytest.raises(DataError, match="missing"):
        write(duckdb_wh, "t", frame("r").drop(columns=["model_version"]))
    with pytest.raises(DataError, match="not lower snake_case"):
        write(duckdb_wh, "t", frame("r").rename(columns={"churn_probability": "Churn"}))
    with pytest.raises(DataError, match="no trait column"):
        write(duckdb_wh, "t", frame("r").drop(columns=["churn_probability"]))
    assert check_table_name("churn_traits") == "churn_traits"
    with pytest.raises(ConfigError, match="at most 55 characters"):
        check_table_name("x" * 60)
    with pytest.raises(UnknownTableError, match="has no run history"):
        runs(duckdb_wh, "churn_traits")


def test_run_ids_sort_by_time_and_are_unique():
    a = new_run_id(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    b = new_run_id(dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert a.startswith("20260101T000000Z_") and a < b
    assert a != new_run_id(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
