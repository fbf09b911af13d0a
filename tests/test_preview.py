"""The Preview facade on DuckDB and PostgreSQL: baseline choice, numbers, payloads, SQL, CSV."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment.payload import LIBRARY, message_id
from sqltraits_kit.publishing.sync import published_snapshot, sync
from sqltraits_kit.traits.traitset import TraitSet, resolve
from sqltraits_kit.workflows.preview import (
    SAMPLE_RUN_ID,
    SEGMENT_DIALECTS,
    baseline,
    data_version,
    export_csv,
    frozen_cut_points,
    load_trait_set_or_table,
    preview,
    sample_payloads,
    segment_sql,
    table_sync_key,
)
from tests.support.sync import make_client
from tests.support.traits import (
    CHURN,
    LTV,
    N,
    churn_set,
    churn_traits_table,
    psi_of_values,
    rounded,
    run_rows,
    tier,
    write_run,
)

# --------------------------------------------------------------------------- sources


def test_load_trait_set_or_table():
    assert load_trait_set_or_table(CHURN) == TraitSet.load(CHURN)
    assert load_trait_set_or_table(str(CHURN)).name == "churn"
    ts = TraitSet.load(LTV)
    assert load_trait_set_or_table(ts) is ts

    table = load_trait_set_or_table("scores")
    assert (table.name, table.table, table.identifier) == (
        "table:scores:identify",
        "scores",
        "user_id",
    )
    assert table.name == table_sync_key("scores")
    account = load_trait_set_or_table("firms", id_column="group_id", kind="account")
    assert (account.name, account.identifier, account.message_type) == (
        "table:firms:group",
        "group_id",
        "group",
    )
    with pytest.raises(ConfigError, match="table name"):
        load_trait_set_or_table("  ")
    with pytest.raises(ConfigError, match="not found"):
        load_trait_set_or_table(Path("traitsets/nope.toml"))


# --------------------------------------------------------------------------- baseline


def test_baseline_is_the_previous_run_until_something_is_published(wh, unique_name):
    ts = churn_set(unique_name)
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    table, label = baseline(wh, ts)
    assert table is None
    assert "has only one scoring run so far" in label and "nothing published" in label

    write_run(wh, unique_name, run_rows(seed=2, run_id="r2", day=2))
    table, label = baseline(wh, ts)
    assert label.startswith("previous run r1 ") and f"{N:,} rows" in label
    got = table.to_pandas().sort_values("user_id").reset_index(drop=True)
    r1 = run_rows(seed=1, run_id="r1", day=1).to_pandas()
    # resolved like the current table: renamed, rounded, tiers from the unrounded score
    assert list(got.columns) == list(resolve(wh, ts).columns)
    np.testing.assert_allclose(got["churn_probability"], rounded(r1["churn_probability_90d"]))
    assert got["churn_risk_tier"].tolist() == [tier(p) for p in r1["churn_probability_90d"]]


def test_baseline_prefers_the_published_snapshot(
    wh,
    unique_name,
    segment_server,
    fast_sleeps,
):
    ts = churn_set(unique_name)
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    before = data_version(wh, ts)
    client = make_client(segment_server, fast_sleeps)
    try:
        sync(wh, ts, client=client)
    finally:
        client.close()
    assert data_version(wh, ts) != before  # a publish invalidates the app's cache
    write_run(wh, unique_name, run_rows(seed=2, run_id="r2", day=2, offset=10))

    table, label = baseline(wh, ts)
    assert label.startswith(f"published snapshot of {unique_name!r} ({N:,} profiles")
    published = published_snapshot(wh, ts.name).to_pandas().sort_values("user_id")
    got = table.to_pandas().sort_values("user_id")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), published.reset_index(drop=True))

    report = preview(wh, ts)
    assert report.baseline_kind == "published"
    m = report.drift.membership
    assert (m.entering, m.leaving, m.staying) == (10, 10, N - 10)
    assert "10 profiles are in the baseline but not in this table" in report.leaving_warning


def test_query_trait_sets_have_no_run_baseline(wh, unique_name):
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    write_run(wh, unique_name, run_rows(seed=2, run_id="r2", day=2))
    ts = TraitSet(name=unique_name, query=f"SELECT user_id, p_alive FROM {unique_name}")
    table, label = baseline(wh, ts)
    assert table is None and "a query has no run history" in label
    assert preview(wh, ts, sample_size=2).drift is None


# --------------------------------------------------------------------------- preview


def test_preview_numbers_match_numpy(wh, unique_name):
    ts = churn_set(unique_name)
    r1 = run_rows(seed=1, run_id="r1", day=1)
    r2 = run_rows(seed=2, run_id="r2", day=2, shift=0.15, offset=20)
    write_run(wh, unique_name, r1)
    write_run(wh, unique_name, r2)
    before, after = r1.to_pandas().set_index("user_id"), r2.to_pandas().set_index("user_id")

    report = preview(wh, ts, bins=20, sample_size=3)
    assert report.rows == N and report.contract.ok
    assert report.traits == ("churn_probability", "p_alive", "churn_risk_tier", "high_churn_risk")

    churn = rounded(after["churn_probability_90d"])
    summary = report.summaries["churn_probability"]
    assert summary.null_rate == 0 and sum(summary.histogram.counts) == N
    assert len(summary.histogram.counts) == 20
    assert summary.quantiles["p50"] == pytest.approx(np.quantile(churn, 0.5), abs=1e-12)
    tiers = report.tiers["churn_risk_tier"].set_index("tier")["count"].to_dict()
    expected = pd.Series([tier(p) for p in after["churn_probability_90d"]]).value_counts()
    assert tiers == {t: int(expected.get(t, 0)) for t in ("low", "medium", "high")}

    assert report.baseline_kind == "previous_run"
    drift = report.drift
    m = drift.membership
    assert (m.entering, m.leaving, m.staying) == (20, 20, N - 20)
    psi = drift.psi["churn_probability"].psi
    want = psi_of_values(wh, unique_name, churn, rounded(before["churn_probability_90d"]))
    assert psi == pytest.approx(want, rel=1e-9)
    assert set(drift.psi) == {"churn_probability", "p_alive"}  # tiers and flags: transitions
    both = before.index.intersection(after.index)
    moves = pd.crosstab(
        before.loc[both, "churn_probability_90d"].map(tier),
        after.loc[both, "churn_probability_90d"].map(tier),
    )
    matrix = drift.transitions["churn_risk_tier"]
    assert matrix.count("low", "medium") == moves.loc["low", "medium"]
    assert matrix.count("medium", "high") == moves.loc["medium", "high"]
    change = rounded(after.loc[both, "churn_probability_90d"]) - rounded(
        before.loc[both, "churn_probability_90d"]
    )
    top = both[np.argmax(np.abs(change))]
    assert drift.movers_trait == "churn_probability"
    assert drift.movers.iloc[0]["user_id"] == top

    # the shift is large: the trait set's own threshold (0.2) warns, a looser one does not
    assert psi > 0.2 and report.drift_threshold == 0.2
    assert report.drift_warning.startswith(
        "PSI above the drift threshold 0.2 for churn_probability"
    )
    relaxed = report.with_threshold(psi + 1)
    assert relaxed.drift_warning is None and relaxed.drift.threshold == psi + 1
    assert relaxed.trait_set.drift_threshold == psi + 1 and report.drift_threshold == 0.2
    assert preview(wh, ts, drift_threshold=psi + 1, sample_size=0).drift_warning is None
    assert report.to_dict()["drift"]["over_threshold"] == report.drift.over_threshold(0.2)


def test_preview_without_baseline(wh, unique_name):
    ts = churn_set(unique_name)
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    report = preview(wh, ts, sample_size=2)
    assert report.drift is None and report.drift_warning is None and report.leaving_warning is None
    assert report.baseline_kind is None and report.baseline_label.startswith("no baseline")
    assert report.to_dict()["drift"]["report"] is None


def test_sample_payloads_are_the_messages_a_publish_builds(wh, unique_name):
    # NaN and null scores written directly: the output table refuses them, a query may not
    wh.con.create_table(unique_name, obj=churn_traits_table(50, bad_rows=True))
    ts = churn_set(unique_name)
    sample = sample_payloads(wh, ts, size=4)
    assert sample.run_id == SAMPLE_RUN_ID == "preview"
    source = churn_traits_table(50, bad_rows=True).to_pylist()[:4]
    assert [m["userId"] for m in sample.messages] == ["u00000", "u00001", "u00002", "u00003"]
    for msg, row in zip(sample.messages, source, strict=True):
        p = row["churn_probability_90d"]
        missing = p is None or math.isnan(p)
        traits = {
            "churn_probability": None if missing else round(p * 1000) / 1000,
            "p_alive": round(row["p_alive"] * 1000) / 1000,
            "churn_risk_tier": None if missing else tier(p),
            "high_churn_risk": None if missing else p >= 0.7,
        }
        assert msg == {
            "type": "identify",
            "userId": row["user_id"],
            "traits": traits,
            "messageId": message_id("preview", row["user_id"], traits),
            "context": {"library": LIBRARY},
        }
    frame = sample.to_frame()
    assert frame.columns.tolist() == ["user_id", *sample.traits]
    assert frame["churn_probability"].isna().tolist() == [True, False, False, True]
    assert not preview(wh, ts, sample_size=1).contract.ok  # NaN breaks the contract


def test_account_trait_sets_sample_group_calls(wh, unique_name):
    wh.con.create_table(
        unique_name,
        obj=pa.table({"group_id": ["g2", "g1"], "seats": [3, 5]}),
    )
    ts = load_trait_set_or_table(unique_name, id_column="group_id", kind="account")
    messages = sample_payloads(wh, ts, size=5).messages
    assert [(m["type"], m["groupId"], m["traits"]) for m in messages] == [
        ("group", "g1", {"seats": 5}),
        ("group", "g2", {"seats": 3}),
    ]


# --------------------------------------------------------------------------- SQL


def test_segment_sql_runs_and_returns_the_resolved_table(wh, unique_name):
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    ts = churn_set(unique_name).with_(
        traits={"churn_probability_90d": "churn_probability", "p_alive": 'alive "now"'},
        decimals={"churn_probability": 3},
        tolerance={},
    )
    own = "postgres" if wh.backend == "postgres" else "duckdb"
    sql = segment_sql(wh, ts)
    assert sql == segment_sql(wh, ts, dialect=own)
    got = wh.con.sql(sql, dialect=own).to_pandas().sort_values("user_id").reset_index(drop=True)
    want = resolve(wh, ts).to_pandas().sort_values("user_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert 'alive "now"' in got.columns  # a quote in a trait name is quoted, not spliced

    columns = ["user_id", "churn_probability", 'alive "now"', "churn_risk_tier", "high_churn_risk"]
    for dialect in SEGMENT_DIALECTS:
        text = segment_sql(wh, ts, dialect=dialect)
        parsed = sqlglot.parse_one(text, read=dialect)
        # BigQuery column names allow only letters, digits and underscores: Ibis renames it
        names = [n.replace('alive "now"', "alive_now") for n in columns]
        expected = names if dialect == "bigquery" else columns
        assert [e.alias_or_name for e in parsed.selects] == expected, dialect
        assert "run_id" not in text and "scored_at" not in text
    with pytest.raises(ConfigError, match="dialect must be one of"):
        segment_sql(wh, ts, dialect="oracle")


def test_segment_sql_freezes_quantile_cut_points(wh, unique_name):
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    ts = TraitSet.load(LTV).with_(name=unique_name, table=unique_name)
    assert frozen_cut_points(ts) == ["ltv_decile"]
    assert frozen_cut_points(churn_set(unique_name)) == []
    ltv = run_rows(seed=1, run_id="r1", day=1).column("predicted_ltv_90d").to_numpy()
    # deciles of the value as published (rounded per [decimals]), so tiers agree with it
    median = float(np.quantile(np.round(ltv, ts.decimals["predicted_ltv_90d"]), 0.5))
    assert f"{median:.6g}" in segment_sql(wh, ts, dialect="snowflake")


# --------------------------------------------------------------------------- CSV


def test_export_csv_streams_every_row_in_identifier_order(wh, unique_name, tmp_path):
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1)[::-1])  # stored reversed
    ts = churn_set(unique_name)
    path = tmp_path / "out" / "churn.csv"
    assert export_csv(wh, ts, path, batch_rows=7) == N
    got = pd.read_csv(path)
    want = resolve(wh, ts).to_pandas().sort_values("user_id").reset_index(drop=True)
    assert got["user_id"].tolist() == want["user_id"].tolist()
    np.testing.assert_allclose(got["churn_probability"], want["churn_probability"])
    assert got["churn_risk_tier"].tolist() == want["churn_risk_tier"].tolist()

    buffer = io.BytesIO()
    assert export_csv(wh, ts, buffer, limit=5) == 5
    lines = buffer.getvalue().decode().splitlines()
    assert lines[0] == '"user_id","churn_probability","p_alive","churn_risk_tier","high_churn_risk"'
    assert [line.split(",")[0] for line in lines[1:]] == [f'"u{i:05d}"' for i in range(5)]
    with pytest.raises(ConfigError, match="binary file"):
        export_csv(wh, ts, io.StringIO())
    with pytest.raises(ConfigError, match="limit"):
        export_csv(wh, ts, io.BytesIO(), limit=-1)


def test_data_version_follows_the_runs(wh, unique_name):
    ts = churn_set(unique_name)
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    first = data_version(wh, ts)
    assert "run=r1" in first and f"rows={N}" in first
    write_run(wh, unique_name, run_rows(seed=2, run_id="r2", day=2))
    assert data_version(wh, ts) != first


def test_the_sync_key_and_the_id_type_are_the_syncs(wh, unique_name):
    from sqltraits_kit.publishing.sync import resolve_source

    columns = {"user_id": ["u1"], "group_id": ["g1"], "email": ["a@example.com"], "seats": [1]}
    wh.con.create_table(unique_name, obj=pa.table(columns))
    for kind, message, ident in (("user", "identify", "user_id"), ("account", "group", "group_id")):
        src = resolve_source(wh, unique_name, kind=message, id_column=ident)
        assert table_sync_key(unique_name, kind=kind) == src.sync_key
    # an e-mail identifier: the sample says what a publish would say, word for word
    ts = load_trait_set_or_table(unique_name, id_column="email")
    with pytest.raises(ConfigError, match="e-mail identifier") as refused:
        resolve_source(wh, ts)
    assert sample_payloads(wh, ts, size=2).errors == (str(refused.value),)
