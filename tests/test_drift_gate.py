"""One drift gate: the Preview and the Publish step show the same figure for the same trait set.

The Preview (``preview``/``drift_check``), the Publish page's checks (``dry_run``), ``sqltraits
sync`` (``check``/``sync``) and ``sqltraits run`` all take their PSI from
:func:`sqltraits_kit.traits.gate.drift_gate`; these tests hold them to one number, on both
backends, including right after a trait was added (a new trait has no PSI, not one of ~18.4).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sqltraits_kit.publishing.sync import check, dry_run, sync
from sqltraits_kit.traits.gate import Baseline, drift_gate, gate_traits
from sqltraits_kit.workflows.preview import drift_check, preview
from tests.support.sync import make_client
from tests.support.traits import N, churn_set, psi_of_values, rounded, run_rows, write_run


def publish(wh, ts, server, sleeps) -> None:
    client = make_client(server, sleeps)
    try:
        sync(wh, ts, client=client)
    finally:
        client.close()


def psi_of(report) -> dict[str, float]:
    return {t: p.psi for t, p in report.psi.items()}


def test_preview_and_publish_show_the_same_drift_figure(
    wh,
    unique_name,
    segment_server,
    fast_sleeps,
):
    ts = churn_set(unique_name)
    r1 = run_rows(seed=1, run_id="r1", day=1)
    write_run(wh, unique_name, r1)
    publish(wh, ts, segment_server, fast_sleeps)
    # 20 profiles leave, 20 enter, everyone's churn probability moves up
    r2 = run_rows(seed=2, run_id="r2", day=2, shift=0.15, offset=20)
    write_run(wh, unique_name, r2)

    shown = preview(wh, ts, sample_size=0)
    gate = check(wh, ts)
    dry = dry_run(wh, ts).verdicts
    assert shown.baseline_kind == "published" and shown.drift_check.gates_publish
    assert psi_of(shown.drift) == psi_of(gate.drift) == psi_of(dry.drift)
    assert set(gate.drift.psi) == {"churn_probability", "p_alive"}  # tiers, flags: transitions
    assert shown.drift.max_psi == gate.max_psi == dry.max_psi > 0.2
    assert shown.drift_check.over_threshold == gate.drift_over == dry.drift_over
    assert shown.drift_warning.endswith("the Publish step asks for confirmation")
    assert any("drift over the threshold" in p for p in dry.problems())

    # the rows: the current values of the profiles Segment holds, against what it holds
    before = r1.to_pandas().set_index("user_id")["churn_probability_90d"]
    after = r2.to_pandas().set_index("user_id")["churn_probability_90d"]
    held = after.index.intersection(before.index)
    assert len(held) == N - 20
    want = psi_of_values(wh, unique_name, rounded(after.loc[held]), rounded(before))
    assert gate.drift.psi["churn_probability"].psi == pytest.approx(want, rel=1e-9)


def test_a_new_trait_is_new_not_drift_against_the_previous_run(wh, unique_name):
    """The issue's case: a model added a trait; its earlier runs hold it as null."""
    ts = churn_set(unique_name)
    r1 = run_rows(seed=1, run_id="r1", day=1)
    write_run(wh, unique_name, r1.drop_columns(["p_alive"]))  # before the model existed
    write_run(wh, unique_name, run_rows(seed=1, run_id="r2", day=2))

    shown = drift_check(wh, ts)
    assert shown.baseline_kind == "previous_run" and not shown.gates_publish
    assert shown.report.new_traits == ("p_alive",)
    assert set(shown.report.psi) == {"churn_probability"}
    assert shown.report.psi["churn_probability"].psi == pytest.approx(0.0, abs=1e-12)
    assert shown.warning is None and "p_alive" in shown.new_traits_note
    # nothing is published: the Publish step has no drift figure, and the Preview says so
    assert dry_run(wh, ts).verdicts.drift is None
    write_run(wh, unique_name, run_rows(seed=1, run_id="r3", day=3, shift=0.3))
    shown = drift_check(wh, ts)
    assert shown.over_threshold == ["churn_probability"]
    assert shown.warning.endswith("so the Publish step does not gate on it")


def test_a_trait_added_after_a_publish_is_new_on_both_screens(
    wh,
    unique_name,
    segment_server,
    fast_sleeps,
):
    full = churn_set(unique_name)
    first = full.with_(
        traits={"churn_probability_90d": "churn_probability"},
        decimals={"churn_probability": 3},
        tolerance={"churn_probability": 0.02},
    )
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    publish(wh, first, segment_server, fast_sleeps)
    write_run(wh, unique_name, run_rows(seed=2, run_id="r2", day=2))

    shown = drift_check(wh, full)
    gate = check(wh, full)
    assert shown.report.new_traits == gate.drift.new_traits == ("p_alive",)
    assert psi_of(shown.report) == psi_of(gate.drift)
    assert set(gate.drift.psi) == {"churn_probability"}
    assert gate.drift_over == [] and shown.warning is None


def test_gate_traits_and_rows_by_hand(wh, unique_name):
    rng = np.random.default_rng(3)
    base = pa.table(
        {
            "id": [f"p{i}" for i in range(300)],
            "score": rng.normal(0, 1, 300),
            "empty": pa.array([None] * 300, pa.float64()),
            "tier": ["a", "b", "c"] * 100,
        }
    )
    current = pa.table(
        {
            "id": [f"p{i}" for i in range(100, 500)],  # 200 held, 200 entering
            "score": np.concatenate([rng.normal(0, 1, 200), rng.normal(3, 1, 200)]),
            "empty": rng.normal(0, 1, 400),
            "tier": ["a", "b"] * 200,
            "added": rng.normal(0, 1, 400),
        }
    )
    wh.con.create_table(unique_name + "_b", base)
    wh.con.create_table(unique_name + "_c", current)
    b, c = wh.con.table(unique_name + "_b"), wh.con.table(unique_name + "_c")

    judged, new = gate_traits(c, b, id_column="id", derived=["tier"])
    assert (judged, new) == (["score"], ["empty", "added"])

    scores = current.column("score").to_numpy()
    held, everyone = scores[:200], scores
    base_scores = base.column("score").to_numpy()
    published = drift_gate(c, Baseline(b, "published"), id_column="id")
    want = psi_of_values(wh, f"{unique_name}_held", held, base_scores)
    assert published.psi["score"].psi == pytest.approx(want, rel=1e-9)
    previous = drift_gate(c, Baseline(b, "previous_run"), id_column="id")
    want = psi_of_values(wh, f"{unique_name}_all", everyone, base_scores)
    assert previous.psi["score"].psi == pytest.approx(want, rel=1e-9)
    assert previous.psi["score"].psi > 1 > published.psi["score"].psi  # entering ones moved
    m = published.membership
    assert (m.entering, m.leaving, m.staying) == (200, 100, 200)


def test_the_preview_compares_with_the_destination_the_publish_used(
    duckdb_wh, unique_name, segment_server, fast_sleeps
):
    """Issue 17: a publish to the local test server keeps its state under ``name@local``; the
    Preview measured drift against ``name`` and said "nothing published" after it."""
    wh, ts = duckdb_wh, churn_set(unique_name)
    write_run(wh, unique_name, run_rows(seed=1, run_id="r1", day=1))
    key = f"{ts.name}@local"
    client = make_client(segment_server, fast_sleeps)
    try:
        sync(wh, ts, client=client, sync_key=key)
    finally:
        client.close()
    write_run(wh, unique_name, run_rows(seed=2, run_id="r2", day=2, shift=0.15, offset=20))
    local = drift_check(wh, ts, sync_key=key)
    assert local.baseline_kind == "published" and key in local.baseline_label
    assert psi_of(local.report) == psi_of(check(wh, ts, sync_key=key).drift)
    assert drift_check(wh, ts).baseline_kind == "previous_run"  # nothing under the name itself
