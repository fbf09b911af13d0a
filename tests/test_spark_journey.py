"""The whole journey on a distributed engine, Ibis' PySpark backend in local mode: train (pulling
only the bounded sample), score (linear and BTYD models as Spark SQL after the parity check, a tree
model by Spark's own Python workers), write the output table (a view switched per run, with its
history), validate, preview, dry run, publish to the Segment stand-in, stop part-way and resume.
The same library calls as on DuckDB and PostgreSQL (``test_pipeline.py``).

The tests run in file order and build on each other through module fixtures (one Spark session
per test session, see ``spark_wh`` in ``tests/conftest.py``); each asserts one step.
"""

from __future__ import annotations

import numpy as np
import pytest

import sqltraits_kit.publishing.sync.publisher as sync_publisher
from sqltraits_kit.modelling.features import build_features
from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.modelling.training import train_model
from sqltraits_kit.publishing.segment import to_json_traits
from sqltraits_kit.publishing.standin import FakeSegmentServer
from sqltraits_kit.publishing.sync import dry_run, history, published_snapshot, sync
from sqltraits_kit.traits.contract import validate_trait_set
from sqltraits_kit.traits.output import history_table, rollback, runs, write_output
from sqltraits_kit.traits.output.versions import VERSION_PREFIX
from sqltraits_kit.traits.scoring import score
from sqltraits_kit.traits.traitset import TraitSet, resolve
from sqltraits_kit.warehouse.capabilities import capabilities
from sqltraits_kit.workflows.preview import preview
from tests.support import ROOT
from tests.support.segment import WRITE_KEY
from tests.support.sync import make_client

pytestmark = [pytest.mark.pyspark, pytest.mark.slow]

CHURN = TraitSet.load(ROOT / "traitsets" / "churn.toml")
OUTPUT = CHURN.table  # churn_traits: churn_probability_90d (logistic) and p_alive (BTYD)
MAX_ROWS = 150  # fewer than the sample's profiles: training must sample, not pull everything


@pytest.fixture(scope="module")
def registry(spark_wh, tmp_path_factory) -> Registry:
    reg = Registry(tmp_path_factory.mktemp("spark_models"))
    common = {"registry": reg, "snapshots": 1, "refit": False, "max_rows": MAX_ROWS}
    train_model(spark_wh, kind="churn", estimator="logistic", name="churn", **common)
    train_model(spark_wh, kind="churn", estimator="btyd", name="btyd", **common)
    train_model(spark_wh, kind="churn", estimator="gbm", name="gbm", **common)
    return reg


@pytest.fixture(scope="module")
def scored(spark_wh, registry):
    return score(spark_wh, models=["churn", "btyd"], registry=registry, table=OUTPUT)


def test_training_pulls_only_the_bounded_sample(registry):
    for name in ("churn", "btyd", "gbm"):
        card = registry.load(name).card
        assert 0 < card.training_rows <= MAX_ROWS, (name, card.training_rows)
        assert 0 < card.test_rows <= MAX_ROWS
        assert any("profile by id" in note for note in card.notes), card.notes  # sampled


def test_linear_and_btyd_models_score_as_spark_sql_after_the_parity_check(spark_wh, scored):
    assert {m.ref.split("@")[0]: m.path for m in scored.models} == {
        "churn": "warehouse",
        "btyd": "warehouse",
    }
    for m in scored.models:
        # every profile is in the parity sample at this size: SQL and Python agree on all
        assert m.parity_rows == scored.rows > 300 and m.parity_max_diff <= 1e-9
    assert scored.atomic and scored.rows == spark_wh.table(OUTPUT).count().execute()


def test_a_tree_model_is_scored_by_the_engines_workers(spark_wh, registry, monkeypatch):
    from ibis.backends.pyspark import Backend

    def no_pull(*_args, **_kwargs):
        raise AssertionError("the features were pulled into this process")

    # The streamed path reads batches here; on Spark the workers must do it instead.
    monkeypatch.setattr(Backend, "to_pyarrow_batches", no_pull)
    result = score(spark_wh, models=["gbm"], registry=registry, table="gbm_traits")
    (run,) = result.models
    assert run.path == "streamed" and "engine's workers" in run.reason
    got = spark_wh.table("gbm_traits").select("user_id", "churn_probability_90d").to_pandas()
    loaded = registry.load("gbm")
    frame = build_features(spark_wh, as_of=result.as_of).to_pandas()
    expected = loaded.model.predict_proba(frame[loaded.card.features])[:, 1]
    want = dict(zip(frame["profile_id"], expected, strict=True))
    assert len(got) == len(want) == result.rows
    diff = np.abs(got["churn_probability_90d"].to_numpy() - got["user_id"].map(want).to_numpy())
    assert diff.max() <= 1e-12


def test_the_output_is_a_view_switched_to_each_runs_table(spark_wh, scored):
    assert not capabilities(spark_wh).transactional_ddl
    session = spark_wh.con._session
    assert session.catalog.getTable(OUTPUT).tableType == "VIEW"
    # A second run (scores moved), through the same write_output the scorer calls.
    table = spark_wh.table(OUTPUT)
    second = table.mutate(
        churn_probability_90d=table.churn_probability_90d * 0.5, run_id=table.run_id + "_b"
    )
    write_output(spark_wh, second, table=OUTPUT, id_column="user_id", run_id="second")
    kept = runs(spark_wh, OUTPUT)
    assert [r.run_id for r in kept][:2] == [f"{scored.run_id}_b", scored.run_id]
    assert [r.current for r in kept][:2] == [True, False]
    assert spark_wh.table(history_table(OUTPUT)).count().execute() == 2 * scored.rows
    versions = [t for t in spark_wh.tables() if t.startswith(f"{VERSION_PREFIX}{OUTPUT}__")]
    assert len(versions) == 2  # the live run's table and the one before it

    back = rollback(spark_wh, OUTPUT, scored.run_id, id_column="user_id")
    assert back.atomic and back.rows == scored.rows
    assert [r.run_id for r in runs(spark_wh, OUTPUT) if r.current] == [scored.run_id]
    assert spark_wh.table(history_table(OUTPUT)).count().execute() == 2 * scored.rows
    assert session.catalog.getTable(OUTPUT).tableType == "VIEW"


def test_validate_preview_and_dry_run(spark_wh, scored):
    assert validate_trait_set(spark_wh, CHURN).ok
    report = preview(spark_wh, CHURN)
    assert report.contract.ok and report.drift_check.error is None
    assert report.distributions.to_dict()  # histograms computed in Spark
    planned = dry_run(spark_wh, CHURN)
    assert planned.new == planned.rows == scored.rows and planned.rejected == 0


def test_publish_stops_part_way_and_resumes_without_loss(spark_wh, scored, monkeypatch):
    monkeypatch.setattr(sync_publisher, "_PROGRESS_EVERY", 0.0)  # progress after each batch

    def stop_part_way(p):
        if p.phase == "sending" and p.sent >= 100:
            raise KeyboardInterrupt

    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        client = make_client(server, [], concurrency=2)
        options = {"client": client, "batch_size": 50, "commit_seconds": 0}
        with pytest.raises(KeyboardInterrupt):
            sync(spark_wh, CHURN, progress=stop_part_way, **options)
        stopped = history(spark_wh, sync_key=CHURN.name).iloc[0]
        assert stopped["status"] == "interrupted" and 100 <= stopped["sent"] < scored.rows

        resumed = sync(spark_wh, CHURN, **options)
        assert resumed.run_id == stopped["run_id"] and resumed.attempt == 2
        assert resumed.status == "succeeded" and resumed.sent == scored.rows
        expected = {
            row.pop("user_id"): to_json_traits(row)
            for row in resolve(spark_wh, CHURN).to_pandas().to_dict(orient="records")
        }
        held = {k.removeprefix("user_id:"): v for k, v in server.collection("users").items()}
        assert held == expected
        stats = server.snapshot()
        assert stats["messages_accepted"] == scored.rows  # each profile once; re-sends deduped
        assert server.rejected == []

        again = sync(spark_wh, CHURN, **options)  # nothing changed: nothing sent
        assert again.sent == 0 and again.unchanged == again.rows
        client.close()
    snapshot = published_snapshot(spark_wh, CHURN)
    assert snapshot.count().execute() == scored.rows
    assert set(history(spark_wh, sync_key=CHURN.name)["status"]) == {"succeeded"}
