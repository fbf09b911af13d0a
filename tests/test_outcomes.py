"""Outcomes of what was published, on the demo sample (whose process is known).

One module-scoped set-up: churn (logistic) and LTV (Poisson) models trained with a cutoff 210
days before the data end (their out-of-time test window is [end-120, end-30), no refit, so the
saved model is the tested one); a trait set with tiers and a holdout; three publishes to the
Segment stand-in: scores as of the test cutoff, as of 30 days later, and as of today.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil

import ibis
import pyarrow as pa
import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.modelling.features import build_labels, data_end
from sqltraits_kit.modelling.live_metrics import auc_standard_error, uplift
from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.modelling.training import train_model
from sqltraits_kit.publishing.standin import FakeSegmentServer
from sqltraits_kit.publishing.sync import sync
from sqltraits_kit.traits.holdout import holdout_flag
from sqltraits_kit.traits.scoring import score
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.warehouse import connect
from sqltraits_kit.workflows.outcomes import outcomes
from tests.support.readable import raw_renderings
from tests.support.segment import WRITE_KEY
from tests.support.sync import make_client

TRAIT_SET = {
    "name": "churn",
    "table": "churn_traits",
    "traits": {"churn_probability_90d": "churn_probability", "predicted_ltv_90d": "predicted_ltv"},
    "decimals": {"churn_probability": 3, "predicted_ltv": 2},
    "derived": [
        {
            "name": "churn_risk_tier",
            "type": "tiers",
            "column": "churn_probability_90d",
            "thresholds": [0.5, 0.8],
            "labels": ["low", "medium", "high"],
        }
    ],
    "holdout": {"share": 0.3, "salt": "control-2026"},
}


def _day(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year, when.month, when.day)


@pytest.fixture(scope="module")
def published(sample_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("outcomes")
    path = root / "wh.duckdb"
    shutil.copyfile(sample_file, path)
    wh = connect(f"duckdb:///{path}")
    registry = Registry(root / "models")
    end = _day(data_end(wh))
    cutoff = (end - dt.timedelta(days=210)).date()
    cards = {}
    for kind, estimator in (("churn", "logistic"), ("ltv", "poisson")):
        cards[kind] = train_model(
            wh,
            kind=kind,
            estimator=estimator,
            cutoff=cutoff,
            refit=False,
            snapshots=1,
            registry=registry,
        ).card
    ts = TraitSet.from_dict(TRAIT_SET)
    test_cutoff = dt.datetime.fromisoformat(cards["churn"].test_cutoff)
    runs = {}
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        client = make_client(server, [])
        for name, as_of in (
            ("at_test_cutoff", test_cutoff),
            ("a_month_later", test_cutoff + dt.timedelta(days=30)),
            ("today", None),
        ):
            score(
                wh,
                models=["churn", "ltv"],
                table="churn_traits",
                registry=registry,
                as_of=as_of,
                method="streamed",
            )
            runs[name] = sync(wh, ts, client=client, allow_drift=True).run_id
    report = outcomes(wh, ts, registry=registry)
    yield {"wh": wh, "path": path, "registry": registry, "cards": cards, "ts": ts,
           "runs": runs, "report": report}  # fmt: skip
    wh.close()


def _run(report, run_id):
    return next(r for r in report.runs if r.run_id == run_id)


def _model(run, kind):
    return next(m for m in run.models if m.kind == kind and m.status == "evaluated")


def test_scores_as_of_the_test_cutoff_reproduce_the_card_exactly(published):
    """Same rows, same model, same label code, same metric definitions: the figures agree to
    floating-point noise (the tiny slack is the sum order of a warehouse aggregate)."""
    run = _run(published["report"], published["runs"]["at_test_cutoff"])
    assert run.status == "evaluated"
    churn, ltv = _model(run, "churn"), _model(run, "ltv")
    card = published["cards"]
    assert churn.live["rows"] == card["churn"].test_rows
    for metric in ("auc", "brier", "top_decile_lift", "base_rate"):
        assert churn.live[metric] == pytest.approx(card["churn"].metrics[metric], abs=1e-9)
    for metric in ("mae", "total_pct_error", "mean_actual"):
        assert ltv.live[metric] == pytest.approx(card["ltv"].metrics[metric], rel=1e-9)
    assert not run.flagged


def test_scores_published_a_month_later_match_the_card_within_sampling_noise(published):
    """Another window (30 days later, profiles and outcomes of its own): the live AUC and
    calibration differ from the card's out-of-time figures by sampling noise only.

    Tolerance: 3 standard errors of the difference, each side's AUC error from Hanley-McNeil
    and the Brier score's from its rows, treating the windows as independent samples (they
    overlap by 60 of 90 days, which only makes the difference smaller): a wrong label window,
    a leak or a broken join moves these figures by far more (scores of a model judged on the
    wrong 90 days lose ~0.1 AUC)."""
    run = _run(published["report"], published["runs"]["a_month_later"])
    churn = _model(run, "churn")
    card = published["cards"]["churn"]
    m = card.metrics
    n = card.test_rows
    card_se = auc_standard_error(
        m["auc"], round(m["base_rate"] * n), round((1 - m["base_rate"]) * n)
    )
    tolerance = 3 * math.hypot(churn.live["auc_se"], card_se)
    assert abs(churn.live["auc"] - m["auc"]) <= tolerance, (churn.live["auc"], m["auc"], tolerance)
    assert abs(churn.live["brier"] - m["brier"]) <= 3 * math.sqrt(2) * churn.live["brier_se"]
    # Calibration in the large: the mean prediction within 3 standard errors of the observed rate.
    rate, rows = churn.live["base_rate"], churn.live["rows"]
    assert abs(churn.live["calibration_gap"]) <= 3 * math.sqrt(rate * (1 - rate) / rows)
    assert churn.live["ece"] < 0.05
    assert {c.metric for c in churn.comparisons} == {
        "auc",
        "brier",
        "calibration_gap",
        "top_decile_lift",
    }
    assert not run.flagged and published["report"].exit_code == 0
    assert set(churn.tiers) == {"low", "medium", "high"}
    assert sum(t["rows"] for t in churn.tiers.values()) == churn.live["rows"]
    rates = [churn.tiers[t]["base_rate"] for t in ("low", "medium", "high")]
    assert rates == sorted(rates)  # the published tiers order the realised churn
    ltv = _model(run, "ltv")
    assert [d["decile"] for d in ltv.live["deciles"]] == list(range(1, 11))
    assert ltv.live["deciles"][0]["lift"] > 2 > ltv.live["deciles"][-1]["lift"]


def test_a_run_whose_horizon_has_not_passed_is_pending(published):
    report = published["report"]
    run = _run(report, published["runs"]["today"])
    assert run.status == "pending" and "horizon ends" in run.reason
    assert report.runs[0].run_id == run.run_id  # newest first
    assert report.to_dict()["pending"] == 1 and report.to_dict()["evaluated"] == 2


def test_cli_json_and_exit_codes(published, tmp_path, monkeypatch, capsys):
    for name in ("SQLTRAITS_DB_URL", "SQLTRAITS_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    published["wh"].con.raw_sql("CHECKPOINT")
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(published["path"], copy)
    spec = tmp_path / "churn.toml"
    published["ts"].dump(spec)
    args = ["outcomes", "--db", f"duckdb:///{copy}", "--trait-set", str(spec)]
    args += ["--models", str(published["registry"].root)]
    args += ["--limit", "2"]  # the pending run and the month-later one
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["evaluated"], out["pending"], out["flagged"]) == (1, 1, [])
    # A margin of 0 on calibration: any gap at all is flagged, and the scheduler hears exit 1.
    assert main([*args, "--margin", "calibration_gap=0"]) == 1
    text = capsys.readouterr().out
    assert "FLAGGED" in text and "uplift" in text
    assert not raw_renderings(text), text  # issue 17 item 9: the one number format
    assert main([*args, "--margin", "nonsense=1"]) == 2


def test_an_injected_treatment_effect_is_recovered(published, tmp_path):
    """Treated profiles (not in the holdout) of the run a month later get, with probability
    0.4 (a hash draw), an extra order of 50.0 five days into the horizon. The report's
    treated-vs-control uplift must find it: the 95% interval covers the true effect (churn:
    0.4 x the churn rate without treatment, since an order turns a churner into a buyer;
    revenue: 0.4 x 50 per profile) and excludes 0."""
    published["wh"].con.raw_sql("CHECKPOINT")
    path = tmp_path / "treated.duckdb"
    shutil.copyfile(published["path"], path)
    wh = connect(f"duckdb:///{path}")
    ts, run_id = published["ts"], published["runs"]["a_month_later"]
    run = _run(published["report"], run_id)
    from sqltraits_kit.publishing.sync import snapshot_at

    held = snapshot_at(wh, "churn", run_id)
    pi, amount = 0.4, 50.0
    before = build_labels(wh, cutoff=run.as_of, horizon_days=90)
    joined = held.join(before, held["user_id"] == before["profile_id"])
    base_churn = float(joined["churned"].mean().execute())
    treated = held.filter(held["churn_holdout"].cast("int64") == 0)
    chosen = treated.filter(holdout_flag(treated["user_id"], share=pi, salt="campaign"))
    orders = wh.table("order_completed")
    extra = chosen.select(
        id=ibis.literal("injected-") + chosen["user_id"],
        user_id=chosen["user_id"],
        timestamp=ibis.literal(run.as_of + dt.timedelta(days=5), type=orders.schema()["timestamp"]),
        revenue=ibis.literal(amount),
        products=ibis.null("string"),
        currency=ibis.literal("USD"),
    )
    wh.con.insert("order_completed", extra)
    report = outcomes(wh, ts, registry=published["registry"], limit=2)
    effect = _run(report, run_id).uplift["all"]
    lo, hi = effect["churn_reduction_ci"]
    assert lo <= pi * base_churn <= hi and lo > 0, (effect, pi * base_churn)
    lo, hi = effect["revenue_uplift_ci"]
    assert lo <= pi * amount <= hi and lo > 0, effect
    wh.close()


def test_the_intervals_cover_the_truth_at_their_stated_rate(published):
    """The uplift intervals, over 40 control groups (40 salts) on the same profiles, with the
    effect simulated per salt: a 95% interval must cover the truth about 38 times in 40; fewer
    than 34 has probability < 0.1% for a correct interval."""
    wh = published["wh"]
    run = _run(published["report"], published["runs"]["a_month_later"])
    labels = build_labels(wh, cutoff=run.as_of, horizon_days=90)
    base_churn = float(labels["churned"].mean().execute())
    salts = ibis.memtable(pa.table({"salt": [f"s{i}" for i in range(40)]}))
    rows = labels.cross_join(salts)
    treated = holdout_flag(rows["profile_id"], share=0.3, salt=rows["salt"]).cast("int64") == 0
    draw = holdout_flag(rows["profile_id"], share=0.4, salt="effect")
    simulated = rows.mutate(
        _treated=treated,
        churned=ibis.ifelse(treated & draw, 0, rows["churned"]),
        ltv=rows["ltv"] + ibis.ifelse(treated & draw, 50.0, 0.0),
    )
    per_salt = uplift(simulated, treated="_treated", churned="churned", revenue="ltv", by="salt")
    del per_salt["all"]  # every salt's rows together: no single control group
    churn_hits = sum(
        u["churn_reduction_ci"][0] <= 0.4 * base_churn <= u["churn_reduction_ci"][1]
        for u in per_salt.values()
    )
    revenue_hits = sum(
        u["revenue_uplift_ci"][0] <= 20.0 <= u["revenue_uplift_ci"][1] for u in per_salt.values()
    )
    assert len(per_salt) == 40
    assert churn_hits >= 34 and revenue_hits >= 34, (churn_hits, revenue_hits)
