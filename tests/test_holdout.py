"""Holdouts: the control-group flag is the same on every engine, run and model version, and its
share is the one asked for within binomial noise."""

from __future__ import annotations

import dataclasses
import math

import ibis
import pyarrow as pa
import pytest

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.publishing.sync import sync
from sqltraits_kit.traits.holdout import Holdout, holdout_flag, in_holdout
from sqltraits_kit.traits.scoring import score
from sqltraits_kit.traits.traitset import TraitSet, TraitSetError, resolve
from tests.support.sync import make_client, server_profiles


def test_the_flag_is_computed_alike_in_the_warehouse_and_in_python(wh):
    ids = [f"u{i}" for i in range(500)] + ["", "é-ü", "x" * 300]
    t = ibis.memtable(pa.table({"user_id": ids, "n": list(range(len(ids)))}))
    flags = wh.con.execute(
        t.select("user_id", "n", f=holdout_flag(t.user_id, share=0.3, salt="s")).order_by("n")
    )
    assert list(flags["f"]) == [in_holdout(i, share=0.3, salt="s") for i in ids]
    numbers = ibis.memtable(pa.table({"id": [1, 2, 12345, 2**40]}))
    flags = wh.con.execute(numbers.mutate(f=holdout_flag(numbers.id, share=0.5, salt="k")))
    assert list(flags["f"]) == [in_holdout(i, share=0.5, salt="k") for i in flags["id"]]


@pytest.mark.parametrize("share", [0.02, 0.1, 0.5])
def test_the_share_is_within_binomial_noise(duckdb_wh, share):
    n = 40_000
    t = ibis.memtable(pa.table({"user_id": [f"user-{i}" for i in range(n)]}))
    k = int(duckdb_wh.con.execute(holdout_flag(t.user_id, share=share, salt="q4").sum()))
    # A good hash makes each profile an independent Bernoulli(share) draw: 4 standard errors
    # either side holds with probability 0.99994 (the draw is fixed by the salt: no flakiness).
    assert abs(k - n * share) <= 4 * math.sqrt(n * share * (1 - share))
    other = int(duckdb_wh.con.execute(holdout_flag(t.user_id, share=share, salt="q5").sum()))
    assert other != k  # another salt draws another group


def test_a_trait_set_declares_it_and_the_spec_checks_it(tmp_path):
    spec = {"name": "churn", "table": "t", "holdout": {"share": 0.1, "salt": "2026"}}
    ts = TraitSet.from_dict(spec)
    assert ts.holdout == Holdout(share=0.1, salt="2026") and ts.holdout_trait == "churn_holdout"
    assert TraitSet.loads(ts.dumps()) == ts
    assert ts.trait_names(["user_id", "score"]) == ["score", "churn_holdout"]
    with pytest.raises(TraitSetError, match=r"holdout\.share"):
        TraitSet.from_dict({**spec, "holdout": {"share": 1.0, "salt": "x"}})
    with pytest.raises(TraitSetError, match=r"holdout\.salt"):
        TraitSet.from_dict({**spec, "holdout": {"share": 0.1}})
    with pytest.raises(TraitSetError, match=r"holdout\.name"):
        TraitSet.from_dict({**spec, "traits": {"s": "flag"}, "holdout": {"share": 0.1,
                            "salt": "x", "name": "flag"}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"holdout\.share"):
        Holdout(share=True, salt="x")


def test_identical_across_two_runs_and_two_model_versions(
    duckdb_wh, trained, tmp_path, segment_server
):
    """Scores from two versions of the churn model, published twice: the flag never moves."""
    registry, refs = trained
    mine = Registry(tmp_path / "models")
    for ref in (refs["churn"], refs["gbm"]):  # churn@1 (logistic), churn@2 (boosted trees)
        loaded = registry.load(*ref.split("@"))
        mine.save(loaded.model, dataclasses.replace(loaded.card, name="churn", version=0))
    ts = TraitSet.from_dict(
        {
            "name": "churn",
            "table": "churn_traits",
            "traits": {"churn_probability_90d": "churn_probability"},
            "decimals": {"churn_probability": 3},
            "holdout": {"share": 0.2, "salt": "control-2026"},
        }
    )
    client = make_client(segment_server, [])
    held = []
    for version in (1, 2):
        score(
            duckdb_wh,
            models=f"churn@{version}",
            table="churn_traits",
            registry=mine,
            method="streamed",
        )
        result = sync(duckdb_wh, ts, client=client, allow_drift=True)
        assert result.ok and result.sent
        held.append(server_profiles(segment_server))
    flags = [{k: v["churn_holdout"] for k, v in h.items()} for h in held]
    assert flags[0] == flags[1]
    scores = [{k: v["churn_probability"] for k, v in h.items()} for h in held]
    assert scores[0] != scores[1]  # the model changed, the group did not
    assert flags[0] == {k: in_holdout(k, share=0.2, salt="control-2026") for k in flags[0]}
    share = sum(flags[0].values()) / len(flags[0])
    n = len(flags[0])
    assert abs(share - 0.2) <= 4 * math.sqrt(0.2 * 0.8 / n)
    resolved = resolve(duckdb_wh, ts).to_pandas()
    assert resolved["churn_holdout"].dtype == bool
