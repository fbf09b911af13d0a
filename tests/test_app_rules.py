"""The library rules behind the app's pages (issues 17 and 18): the number format, the trait-set
editor's round trip and rules, what a trait set needs trained, the defaults per warehouse and the
activity counted through the mapping. Pure functions, or the small sample warehouse."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest

from sqltraits_kit import formatting as fmt
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.traits.traitset import ModelRef, TraitSet, TraitSetError
from sqltraits_kit.traits.traitset.editing import (
    TraitRow,
    build,
    derived_rule,
    draft,
    parse_derived,
    rows_of,
    text_diff,
)
from sqltraits_kit.workflows.data_overview import activity, table_groups
from sqltraits_kit.workflows.defaults import (
    default_output_table,
    is_demo_sample,
    models_by_warehouse,
    trait_sets_in_use,
)
from sqltraits_kit.workflows.training_setup import check_mapping, needed_models
from tests.support.models import card
from tests.support.traits import CHURN, LTV

# ------------------------------------------------------------------ one number format (17.9)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.88521, "0.8852"),
        (0.818, "0.818"),  # no padding to 4 decimals beside 0.8852: 4 significant digits
        (37518, "37,518"),
        (1234.5678, "1,235"),
        (0.000123456, "0.0001235"),
        (2.220446e-16, "2.22e-16"),  # not seventeen decimals
        (-0.00001, "-1e-5"),
        (None, "—"),
        (float("nan"), "—"),
        (0, "0"),
        (-2.5, "-2.5"),
        ("2024-11-01T05:36:12.884873", "2024-11-01 05:36 UTC"),  # a min that is a time
        ("gold", "gold"),
    ],
)
def test_figures_have_significant_digits_separators_and_a_dash(value, text):
    assert fmt.figure(value) == text


def test_counts_units_dates_and_rates():
    assert fmt.count(37518) == "37,518"
    assert fmt.percent(0.117) == "11.7%"
    assert fmt.metric_value("base_rate", 0.117) == "11.7%"
    assert fmt.metric_value("total_pct_error", 1.1697) == "1.17%"  # with its unit
    assert fmt.metric_label("pr_auc") == "PR AUC" and fmt.metric_label("base_rate") == "churn rate"
    assert fmt.seconds(1.234) == "1.2 s" and fmt.seconds(185) == "3 min 05 s"
    assert fmt.instant("2026-11-01T14:03:27.123456+00:00") == "2026-11-01 14:03 UTC"
    assert fmt.instant(dt.datetime(2026, 11, 1, 16, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert fmt.instant("2026-11-01") == "2026-11-01"
    assert fmt.rate(20.0) == "20/s" and fmt.rate(0) == "no limit"
    assert fmt.value(None) == "—" and fmt.value(True) == "yes" and fmt.value(12000) == "12,000"


# ------------------------------------------------------------------ the trait-set editor (18)


def test_saving_over_a_file_keeps_its_comments_and_layout(tmp_path):
    path = tmp_path / "churn.toml"
    path.write_text(CHURN.read_text())
    ts = TraitSet.load(path)
    rows = [
        TraitRow(r.column, r.publish, "risk" if r.column == "churn_probability_90d" else r.trait,
                 r.decimals, r.tolerance)
        for r in rows_of(ts, ["user_id", "churn_probability_90d", "p_alive", "run_id"])
    ]  # fmt: skip
    edited = build(ts, rows=rows, derived=ts.derived, drift_threshold=0.3)
    before = path.read_text()
    edited.dump(path)
    after = path.read_text()
    assert TraitSet.load(path) == edited
    # every comment line of the hand-written file is still there
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(line in after.splitlines() for line in comments)
    diff = text_diff(before, after, path="traitsets/churn.toml")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert sorted(changed) == sorted(
        [
            "-drift_threshold = 0.2",
            "+drift_threshold = 0.3",
            '-churn_probability_90d = "churn_probability"',
            '+churn_probability_90d = "risk"',
            "-churn_probability = 3",
            "+risk = 3",
            "-churn_probability = 0.02",
            "+risk = 0.02",
        ]
    ), diff
    assert text_diff(after, after) == ""


def test_the_editor_keeps_a_relative_tolerance_and_writes_it_back(tmp_path):
    path = tmp_path / "churn.toml"
    path.write_text(CHURN.read_text())
    ts = TraitSet.load(path).with_(relative_tolerance={"p_alive": 0.1})
    rows = rows_of(ts, ["user_id", "churn_probability_90d", "p_alive"])
    assert {r.trait: r.relative for r in rows} == {"churn_probability": 0.0, "p_alive": 0.1}
    edited = build(ts, rows=rows, derived=ts.derived)
    assert edited.relative_tolerance == {"p_alive": 0.1}
    edited.dump(path)
    assert TraitSet.load(path).relative_tolerance == {"p_alive": 0.1}
    assert "[relative_tolerance]" in path.read_text()


def test_the_editor_lists_a_named_column_the_table_lacks():
    rows = rows_of(TraitSet.load(CHURN), ["user_id", "churn_probability_90d", "predicted_ltv_90d"])
    assert [(r.column, r.publish) for r in rows] == [
        ("churn_probability_90d", True),
        ("predicted_ltv_90d", False),
        ("p_alive", True),  # named by the file, not in the table: listed, to be dropped
    ]


def test_derived_rules_read_and_write_one_line_each():
    for ts in (TraitSet.load(CHURN), TraitSet.load(LTV)):
        for d in ts.derived:
            assert parse_derived(d.name, d.type, d.column, derived_rule(d)) == d
    flag = parse_derived("big", "flag", "predicted_ltv_90d", "> 100")
    assert (flag.op, flag.value) == (">", 100)
    with pytest.raises(TraitSetError, match="operator"):
        parse_derived("big", "flag", "x", "about 100")
    with pytest.raises(TraitSetError, match="thresholds then labels"):
        parse_derived("tier", "tiers", "x", "low, high")
    short = parse_derived("tier", "tiers", "churn_probability_90d", "0.3, 0.7 -> low, high")
    ts = TraitSet.load(CHURN)
    with pytest.raises(TraitSetError, match="expected 3 labels"):  # the spec's own rules
        build(ts, rows=rows_of(ts, ["churn_probability_90d"]), derived=[short])


def test_a_draft_rounds_names_and_keeps_the_models(duckdb_wh):
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b"],
            "churnProbability": [0.12345, 0.5],
            "predicted_ltv_90d": [10.123, 2.5],  # what a 90-day LTV model writes
            "orders_count": [1.0, 2.0],
            "model_name": ["repeat,value"] * 2,
            "model_version": ["1,1"] * 2,
            "scored_at": [pd.Timestamp("2026-01-01", tz="UTC")] * 2,
            "run_id": ["r1"] * 2,
        }
    )
    duckdb_wh.con.create_table("crm_scores", ibis.memtable(frame))
    ts = draft(duckdb_wh, "crm_scores")
    assert ts.id_column == "user_id" and ts.kind == "user"
    assert ts.traits == {
        "churnProbability": "churn_probability",
        "predicted_ltv_90d": "predicted_ltv_90d",
        "orders_count": "orders_count",
    }
    assert ts.decimals == {"churn_probability": 3, "predicted_ltv_90d": 2, "orders_count": 2}
    assert ts.tolerance == {
        "churn_probability": 0.02,
        "predicted_ltv_90d": 1.0,
        "orders_count": 0.1,
    }
    assert ts.model is not None and ts.model.refs() == ["repeat", "value"]
    with pytest.raises(TraitSetError, match="at least one column"):
        build(ts, rows=[TraitRow("predicted_ltv_90d", False, "predicted_ltv_90d")])
    with pytest.raises(TraitSetError, match="also given by"):
        build(
            ts, rows=[TraitRow("predicted_ltv_90d", True, "x"), TraitRow("orders_count", True, "x")]
        )


# ------------------------------------------------------------------ the guided path (17.2)


def test_a_trait_set_says_which_models_to_train():
    churn, ltv = TraitSet.load(CHURN), TraitSet.load(LTV)
    needs = {n.name: n for n in needed_models(churn, [])}
    assert {k: (n.kind, n.estimator, n.ready) for k, n in needs.items()} == {
        "churn": ("churn", "auto", False),
        "ltv": ("ltv", "auto", False),  # scored into the same table by its [model] section
        "btyd": ("btyd", "btyd", False),
    }
    assert needs["btyd"].columns == ("p_alive",) and needs["btyd"].train_kind == "ltv"
    cutoff = dt.datetime(2026, 1, 1)
    saved = [
        card("churn", "churn", "logistic", cutoff, version=1),
        card("ltv", "ltv", "gbm", cutoff, version=1),
        card("btyd", "btyd", "btyd", cutoff, version=1),
    ]
    assert all(n.ready for n in needed_models(churn, saved))
    # ltv.toml reads expected_purchases_90d: a 180-day BG/NBD pair does not write it
    long = [card("ltv", "ltv", "gbm", cutoff, version=1),
            card("btyd", "btyd", "btyd", cutoff, version=2, )]  # fmt: skip
    long[1].horizon_days = 180
    btyd = {n.name: n for n in needed_models(ltv, long)}["btyd"]
    assert not btyd.ready and btyd.missing == ("expected_purchases_90d",)
    assert btyd.horizon_days == 90
    # churn.toml reads churn_probability_90d: a 180-day churn model does not write it
    churn180 = card("churn", "churn", "logistic", cutoff, version=2)
    churn180.horizon_days = 180
    need = {n.name: n for n in needed_models(churn, [churn180])}["churn"]
    assert (need.ready, need.missing, need.horizon_days) == (False, ("churn_probability_90d",), 90)


def test_the_guided_path_gives_each_model_its_own_horizon():
    two = TraitSet(
        name="two",
        table="scores",
        traits={"churn_probability_90d": "churn_90", "churn_probability_180d": "churn_180"},
        model=ModelRef(name="churn", output_table="scores", also=("churn_long",)),
    )
    needs = needed_models(two, [])
    assert [(n.name, n.kind, n.horizon_days, n.columns) for n in needs] == [
        ("churn", "churn", 90, ("churn_probability_90d",)),
        ("churn_long", "churn", 180, ("churn_probability_180d",)),
    ]
    cutoff = dt.datetime(2026, 1, 1)
    short = card("churn", "churn", "logistic", cutoff, version=1)
    long = card("churn_long", "churn", "logistic", cutoff, version=1)
    long.horizon_days = 180
    assert all(n.ready for n in needed_models(two, [short, long]))
    # a saved model claims its card's horizon, whatever the order of the names
    short.horizon_days, long.horizon_days = 180, 90
    needs = {n.name: n for n in needed_models(two, [short, long])}
    assert needs["churn"].columns == ("churn_probability_180d",) and needs["churn"].ready


def test_the_guided_path_says_a_column_was_renamed_not_to_train_again():
    old = TraitSet.load(CHURN).with_(
        traits={"churn_probability": "churn_probability", "p_alive": "p_alive"}, derived=()
    )
    saved = [card("churn", "churn", "logistic", dt.datetime(2026, 1, 1), version=1)]
    need = {n.name: n for n in needed_models(old, saved)}["churn"]
    assert not need.ready and need.missing == ("churn_probability",)
    assert need.renamed == (
        "churn_probability: the model now writes 'churn_probability_90d' (output columns carry "
        "the model's horizon): read 'churn_probability_90d' instead ([traits] "
        'churn_probability_90d = "churn_probability" keeps the trait name Segment has)',
    )


# ------------------------------------------------------------------ per-warehouse defaults


def test_a_mapping_check_says_what_is_wrong(duckdb_wh):
    good = TableMapping().to_dict()
    assert check_mapping(duckdb_wh, good)[0] == TableMapping()
    assert check_mapping(duckdb_wh, good | {"order_revenue": None})[1] == [
        "Order revenue: choose one"
    ]
    mapping, problems = check_mapping(duckdb_wh, good | {"order_timestamp": "user_id"})
    assert mapping is None and "must be a timestamp" in problems[0]
    # an unmapped activity table: its columns are moot
    assert check_mapping(duckdb_wh, good | {"tracks_table": None, "track_profile_id": None})[0]


def test_defaults_follow_the_warehouse_not_the_demo(duckdb_wh, tmp_path):
    folder = tmp_path / "traitsets"
    folder.mkdir()
    for path in (CHURN, LTV):
        (folder / path.name).write_text(path.read_text())
    assert is_demo_sample(duckdb_wh)
    names = [ts.name for ts in trait_sets_in_use(duckdb_wh, folder)]
    assert names == ["churn", "ltv"]  # the demo's own files, the default first
    listed = trait_sets_in_use(duckdb_wh, folder, listed=["traitsets/ltv.toml"])
    assert [ts.name for ts in listed] == ["ltv"]  # the project's list wins
    assert default_output_table(duckdb_wh, trait_sets=listed, models=["ltv"]) == "churn_traits"

    duckdb_wh.con.drop_table("sample_truth")  # no longer the demo: its trait sets do not apply
    assert not is_demo_sample(duckdb_wh)
    assert trait_sets_in_use(duckdb_wh, folder) == []
    assert default_output_table(duckdb_wh, models=["repeat"]) == "repeat_scores"

    here = card("churn", "churn", "logistic", dt.datetime(2026, 1, 1), version=1)
    crm = card("repeat", "churn", "logistic", dt.datetime(2026, 1, 1), version=1)
    crm.mapping = {**crm.mapping, "orders_table": "shop_orders"}
    assert models_by_warehouse([here, crm], duckdb_wh) == ([here], [crm])


def test_activity_is_counted_through_the_mapping_without_a_partial_last_period(duckdb_wh):
    weekly = activity(duckdb_wh, TableMapping(), grain="week")
    assert set(weekly["table"]) == {"order_completed", "tracks", "pages"}
    orders = duckdb_wh.table("order_completed")
    end = orders.aggregate(end=orders.timestamp.max()).execute()["end"][0]
    last = pd.Timestamp(weekly["period"].max()).tz_localize(None)
    assert last + pd.Timedelta(days=7) <= pd.Timestamp(end).tz_localize(None) + pd.Timedelta(days=1)
    no_activity = TableMapping(tracks_table=None, pages_table=None)
    assert set(activity(duckdb_wh, no_activity, grain="month")["table"]) == {"order_completed"}
    groups = table_groups(duckdb_wh)
    assert "sample_truth" in groups["reference"] and "users" in groups["yours"]


# ------------------------------------------------------------------ charts (17.11)


def test_charts_label_every_bar_and_keep_labels_apart(duckdb_wh):
    from sqltraits_kit.traits import charts
    from sqltraits_kit.traits.distributions import summarize
    from sqltraits_kit.traits.drift import compare

    ids = [f"u{i}" for i in range(200)]
    base = pd.DataFrame({"user_id": ids, "score": [i / 200 for i in range(200)],
                         "flat": [1.0] * 200})  # fmt: skip
    current = base.assign(score=[min(i / 150, 1.0) for i in range(200)])
    b = duckdb_wh.con.create_table("drift_base", ibis.memtable(base))
    c = duckdb_wh.con.create_table("drift_current", ibis.memtable(current))
    report = compare(c, b, id_column="user_id", threshold=0.2)
    fig = charts.psi_figure(report)
    bars = fig.data[0]
    assert list(bars.x) == ["score", "flat"] and bars.y[1] == 0  # "flat" did not drift
    assert list(bars.text) == [fmt.figure(v) for v in bars.y]  # a near-zero bar still says so
    assert bars.text[1] == "0" and bars.marker.line.width >= 1  # ... and shows as a line
    assert fig.layout.yaxis.range[1] > max(report.threshold, *bars.y)
    # the threshold's label is in the right margin, beside the line: never on a bar
    (label,) = [a for a in fig.layout.annotations if "threshold" in a.text]
    assert (label.xref, label.x, label.xanchor) == ("paper", 1.0, "left")
    assert label.y == report.threshold and fig.layout.margin.r >= 60
    # a skewed trait: p5 and p50 close together, each label on its own line
    skewed = pd.DataFrame({"user_id": ids, "ltv": [0.0] * 150 + [float(i * 40) for i in range(50)]})
    table = duckdb_wh.con.create_table("skewed", ibis.memtable(skewed))
    hist = charts.histogram_figure(summarize(table, id_column="user_id")["ltv"])
    labels = [(a.text.split()[0], a.y) for a in hist.layout.annotations]
    assert [name for name, _ in labels] == ["p5", "p50", "p95"]
    assert len({y for _, y in labels}) == 3
    assert hist.layout.yaxis.type != "log"
    # ... and a log scale, so the long tail's small bars show beside the tall one at zero
    log = charts.histogram_figure(summarize(table, id_column="user_id")["ltv"], log_scale=True)
    assert log.layout.yaxis.type == "log" and log.data[0].y == hist.data[0].y


def test_null_rate_chart_labels_every_bar(duckdb_wh):
    from sqltraits_kit.traits import charts
    from sqltraits_kit.traits.distributions import summarize

    ids = [f"u{i}" for i in range(1000)]
    frame = pd.DataFrame({"user_id": ids, "rare": [None] + [1.0] * 999, "full": [1.0] * 1000})
    table = duckdb_wh.con.create_table("nulls", ibis.memtable(frame))
    fig = charts.null_rate_figure(summarize(table, id_column="user_id"))
    bars = fig.data[0]
    assert dict(zip(bars.y, bars.text, strict=True)) == {"rare": "0.10%", "full": "0.00%"}
    assert bars.marker.line.width >= 1


def test_top_movers_never_list_a_profile_that_did_not_move(duckdb_wh):
    from sqltraits_kit.traits.drift import top_movers

    ids = [f"u{i}" for i in range(50)]
    base = pd.DataFrame({"user_id": ids, "score": [0.5] * 50})
    current = base.assign(score=[0.5] * 47 + [0.6, 0.2, 0.55])  # three moved
    b = duckdb_wh.con.create_table("movers_base", ibis.memtable(base))
    c = duckdb_wh.con.create_table("movers_current", ibis.memtable(current))
    movers = top_movers(c, b, id_column="user_id", column="score", n=20)
    assert list(movers["user_id"]) == ["u48", "u47", "u49"]
    assert (movers["change"] != 0).all()
    assert top_movers(b, b, id_column="user_id", column="score", n=20).empty
