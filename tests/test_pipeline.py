"""The scheduled journey as one call — train, score, validate, drift gate, publish — on DuckDB and
on PostgreSQL (features, training, the output table, sync state and history all in the warehouse),
publishing to the strict fake Segment server."""

from __future__ import annotations

import pytest

from sqltraits_kit.errors import ModelLoadError
from sqltraits_kit.publishing.segment import SegmentClient, to_json_traits
from sqltraits_kit.publishing.sync import history
from sqltraits_kit.traits.traitset import TraitSet, resolve
from sqltraits_kit.workflows.pipeline import run_trait_set
from tests.support import ROOT
from tests.support.models import train_demo_models
from tests.support.segment import WRITE_KEY

CHURN = TraitSet.load(ROOT / "traitsets" / "churn.toml")


@pytest.fixture
def client(segment_server):
    c = SegmentClient(
        WRITE_KEY,
        endpoint=segment_server.url,
        max_requests_per_second=None,
        max_events_per_second=None,
    )
    yield c
    c.close()


def published(server) -> dict[str, dict]:
    return {k.removeprefix("user_id:"): v for k, v in server.collection("users").items()}


def expected(wh, ts) -> dict[str, dict]:
    frame = resolve(wh, ts).to_pandas()
    return {row.pop(ts.identifier): to_json_traits(row) for row in frame.to_dict(orient="records")}


def test_journey_trains_scores_and_publishes_exactly_the_table(
    wh,
    tmp_path,
    client,
    segment_server,
):
    registry = train_demo_models(wh, tmp_path / "models")
    first = run_trait_set(wh, CHURN, registry=registry, client=client)
    assert first.exit_code == 0
    assert first.scored is not None and first.scored.rows == first.published.rows
    # the logistic churn model and the BTYD model score inside the warehouse
    paths = {m.ref.split("@")[0]: m.path for m in first.scored.models}
    assert paths["churn"] == "warehouse" and paths["btyd"] == "warehouse"
    assert published(segment_server) == expected(wh, CHURN)
    assert first.published.sent == first.published.rows > 1000

    # the same day again: nothing changed, nothing is sent
    again = run_trait_set(wh, CHURN, registry=registry, client=client)
    assert again.published.sent == 0 and again.published.unchanged == again.published.rows
    # this test's two runs only: PostgreSQL's database is shared by the session's tests
    runs = history(wh)
    runs = runs[runs["run_id"].isin([first.published.run_id, again.published.run_id])]
    assert len(runs) == 2 and set(runs["status"]) == {"succeeded"}


def test_dry_run_scores_and_checks_but_sends_nothing(
    duckdb_wh,
    tmp_path,
    segment_server,
):
    registry = train_demo_models(duckdb_wh, tmp_path / "models")
    result = run_trait_set(duckdb_wh, CHURN, registry=registry, dry_run=True)
    assert result.exit_code == 0
    assert result.published.to_send == result.published.rows
    assert segment_server.snapshot()["requests"] == 0
    assert result.to_dict()["status"] == "dry_run"


def test_missing_model_is_named(duckdb_wh, tmp_path):
    with pytest.raises(ModelLoadError, match="no model named 'churn'"):
        run_trait_set(duckdb_wh, CHURN, registry=tmp_path / "empty", dry_run=True)


def test_a_run_validates_once_and_shares_the_report_with_the_gate(
    duckdb_wh,
    tmp_path,
    monkeypatch,
    segment_server,
):
    from sqltraits_kit.traits import contract

    registry = train_demo_models(duckdb_wh, tmp_path / "models")
    calls = []
    real = contract.validate

    def counted(table, /, **options):
        calls.append(options.get("id_column"))
        return real(table, **options)

    monkeypatch.setattr(contract, "validate", counted)
    result = run_trait_set(duckdb_wh, CHURN, registry=registry, dry_run=True)
    assert calls == ["user_id"]  # on the staged rows, before the swap; the gate reused it
    assert result.contract is result.published.verdicts.validation and result.contract.ok
    assert result.steps[1].startswith("contract ok")

    calls.clear()  # without scoring, the gate's validation is the run's one
    again = run_trait_set(duckdb_wh, CHURN, registry=registry, dry_run=True, score=False)
    assert calls == ["user_id"] and again.contract is again.published.verdicts.validation
