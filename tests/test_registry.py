"""The model registry: versions, the active version, and refusing artifacts it cannot trust."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sqltraits_kit.errors import ConfigError, ModelLoadError
from sqltraits_kit.modelling.integrity import check_structure
from sqltraits_kit.modelling.registry import (
    TRUSTED_TYPES,
    ModelCard,
    Registry,
    artifact_types,
    parse_ref,
)
from sqltraits_kit.modelling.training import BtydPair, make_estimator
from sqltraits_kit.traits.scoring import score

SETSTATE_CALLS: list[str] = []


class Sneaky:
    """A type nobody trusted; loading it would run its __setstate__."""

    def __init__(self) -> None:
        self.payload = "rm -rf /"

    def __setstate__(self, state: dict) -> None:
        SETSTATE_CALLS.append("called")
        self.__dict__.update(state)


def _data(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "orders_count": rng.poisson(3, n),
            "trend": rng.normal(size=n),
            "revenue": rng.gamma(2, 50, n),
        }
    )
    churned = (rng.uniform(size=n) < 1 / (1 + np.exp(X["orders_count"] - 3))).astype(int)
    ltv = rng.poisson(X["orders_count"]) * 40.0
    return X, churned, ltv


def _card(name: str = "churn", kind: str = "churn", **extra) -> ModelCard:
    values = {
        "name": name,
        "kind": kind,
        "estimator": "logistic",
        "features": ["orders_count", "trend", "revenue"],
        "mapping": {"orders_table": "order_completed"},
        "cutoff": "2026-05-01",
        "test_cutoff": "2026-07-30",
        "horizon_days": 90,
        "metrics": {"auc": 0.8},
        "training_rows": 300,
        "data_fingerprint": "sha256:abc",
    }
    return ModelCard(**{**values, **extra})


def _order_history(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """The feature columns the BTYD candidates read, from a simulated BG/NBD cohort."""
    from sqltraits_kit.modelling.btyd import simulate_bgnbd

    sim = simulate_bgnbd(n, r=0.6, alpha=4.0, a=0.8, b=2.5, T=40.0, seed=seed)
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "orders_count": sim.frequency + 1,
            "days_since_first_order": sim.T * 7,
            "days_since_last_order": (sim.T - sim.recency) * 7,
            "revenue_mean": rng.gamma(4, 10, n),
            "trend": rng.normal(size=n),
        }
    )


def _candidate(kind: str, estimator: str):
    from sqltraits_kit.modelling.estimators import Blend

    X = _order_history()
    churned = (X["days_since_last_order"] > 60).astype(int).to_numpy()
    y = churned if kind == "churn" else X["revenue_mean"].to_numpy() * (1 - churned)
    if estimator == "blend":
        members = {
            "linear": make_estimator(kind, "logistic" if kind == "churn" else "poisson").fit(X, y),
            "trees": make_estimator(kind, "gbm_small").fit(X, y),
            "btyd": make_estimator(kind, "mbgnbd").fit(X, y),
        }
        return Blend.of(kind, members), X
    return make_estimator(kind, estimator).fit(X, y), X


@pytest.mark.parametrize(
    ("kind", "estimator"),
    [
        ("churn", "logistic"),
        ("churn", "gbm"),
        ("churn", "gbm_small"),
        ("churn", "bgnbd"),
        ("churn", "mbgnbd"),
        ("churn", "pnbd"),
        ("churn", "blend"),
        ("ltv", "poisson"),
        ("ltv", "tweedie"),
        ("ltv", "gbm"),
        ("ltv", "mbgnbd"),
        ("ltv", "pnbd"),
        ("ltv", "blend"),
    ],
)
def test_every_candidate_round_trips_with_only_trusted_types(tmp_path, kind, estimator):
    model, X = _candidate(kind, estimator)
    features = [str(c) for c in model.feature_names_in_]
    registry = Registry(tmp_path)
    card = registry.save(model, _card(kind, kind, estimator=estimator, features=features))
    assert card.version == 1 and card.artifact == "model.skops"
    assert card.library_versions["scikit-learn"] and card.created_at
    data = (tmp_path / kind / "v1" / "model.skops").read_bytes()
    assert artifact_types(data) <= set(TRUSTED_TYPES)
    loaded = registry.load(kind)
    predict = "predict_proba" if kind == "churn" else "predict"
    X = X[features]
    np.testing.assert_array_equal(getattr(loaded.model, predict)(X), getattr(model, predict)(X))
    assert loaded.card == card
    assert loaded.features == features


def test_a_blend_member_with_a_crafted_tree_is_refused(tmp_path):
    """The structure checks walk into a blend's members."""
    from sqltraits_kit.modelling.estimators import Blend

    X = _order_history()
    y = (X["days_since_last_order"] > 60).astype(int).to_numpy()
    fitted = {n: make_estimator("churn", n).fit(X, y) for n in ("logistic", "gbm", "bgnbd")}
    model = Blend.of("churn", fitted)
    check_structure(model, "churn@1")  # as fitted: fine
    trees = model.estimators_[1].steps[-1][1]
    nodes = trees._predictors[0][0].nodes
    inner = np.flatnonzero(nodes["is_leaf"] == 0)[0]
    nodes["left"][inner] = 10**6
    with pytest.raises(ModelLoadError, match="estimator 1"):
        check_structure(model, "churn@1")


def test_cards_without_the_new_fields_keep_their_signature(tmp_path, monkeypatch):
    """A card saved before baselines and champions existed reads back byte for byte the same."""
    old = _card().to_dict()
    for key in ("baselines", "selection", "refit", "comparison", "warnings", "origin"):
        assert key not in old
    assert ModelCard.from_dict(old).to_dict() == old


def test_versions_listing_and_the_active_version(tmp_path):
    X, churned, _ = _data()
    registry = Registry(tmp_path)
    first = registry.save(make_estimator("churn", "logistic").fit(X, churned), _card())
    second = registry.save(make_estimator("churn", "logistic").fit(X[:200], churned[:200]), _card())
    other = registry.save(make_estimator("churn", "gbm").fit(X, churned), _card("churn_gbm"))
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert [c.ref for c in registry.list()] == ["churn@1", "churn@2", "churn_gbm@1"]
    assert [c.ref for c in registry.list("churn")] == ["churn@1", "churn@2"]
    assert registry.active("churn") is None
    assert registry.load("churn").card.version == 2  # no active version: the latest
    registry.set_active("churn", 1)
    assert registry.active("churn").version == 1
    assert registry.load("churn").card.version == 1
    assert registry.load("churn", 2).card.version == 2
    with pytest.raises(ModelLoadError, match="churn@7 not found"):
        registry.set_active("churn", 7)
    with pytest.raises(ModelLoadError, match=r"no model named 'ltv'.*churn, churn_gbm"):
        registry.load("ltv")


def test_btyd_models_live_in_the_card(tmp_path):
    pair = BtydPair.from_params(
        {
            "bgnbd": {"r": 0.7, "alpha": 6.0, "a": 0.9, "b": 3.4},
            "gamma_gamma": {"p": 6.0, "q": 3.5, "v": 30.0},
        }
    )
    registry = Registry(tmp_path)
    card = registry.save(pair, _card("ltv", "btyd", estimator="btyd"))
    assert card.artifact is None and card.params["bgnbd"]["r"] == 0.7
    assert sorted(p.name for p in (tmp_path / "ltv" / "v1").iterdir()) == ["card.json"]
    loaded = registry.load("ltv")
    assert isinstance(loaded.model, BtydPair)
    assert loaded.model.params() == pair.params()
    x, tx, T = np.array([0.0, 3.0]), np.array([0.0, 20.0]), np.array([10.0, 30.0])
    np.testing.assert_allclose(
        loaded.model.churn_probability(x, tx, T, horizon_days=90),
        pair.churn_probability(x, tx, T, horizon_days=90),
    )


def test_a_tampered_artifact_is_refused(tmp_path):
    X, churned, _ = _data()
    registry = Registry(tmp_path)
    registry.save(make_estimator("churn", "logistic").fit(X, churned), _card())
    path = tmp_path / "churn" / "v1" / "model.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match its card"):
        registry.load("churn")


def _plant(tmp_path, model) -> Registry:
    """An artifact written behind the registry's back, with a card that matches its bytes."""
    registry = Registry(tmp_path)
    data = sio.dumps(model)
    folder = tmp_path / "churn" / "v1"
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    card = _card(version=1, artifact="model.skops", artifact_sha256=digest)
    (folder / "card.json").write_text(card.to_json())
    return registry


def test_an_artifact_with_an_untrusted_type_is_refused_and_never_run(tmp_path):
    SETSTATE_CALLS.clear()
    model = Pipeline([("x", FunctionTransformer(np.arcsinh, kw_args={"hidden": Sneaky()}))])
    registry = _plant(tmp_path, model)
    with pytest.raises(ModelLoadError, match=r"not on the trusted list.*test_registry\.Sneaky"):
        registry.load("churn")
    assert SETSTATE_CALLS == []
    # the check is not vacuous: loading it anyway would have run Sneaky.__setstate__
    data = (tmp_path / "churn" / "v1" / "model.skops").read_bytes()
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert SETSTATE_CALLS == ["called"]


def test_a_function_that_runs_commands_is_refused(tmp_path):
    registry = _plant(tmp_path, Pipeline([("x", FunctionTransformer(os.system))]))
    with pytest.raises(ModelLoadError, match=r"not on the trusted list.*system"):
        registry.load("churn")


def test_an_edited_schema_is_refused_even_with_a_matching_checksum(tmp_path):
    X, churned, _ = _data()
    model = make_estimator("churn", "logistic").fit(X, churned)
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(sio.dumps(model))) as src,
        zipfile.ZipFile(buffer, "w") as dst,
    ):
        for item in src.namelist():
            payload = src.read(item)
            if item == "schema.json":
                payload = payload.replace(b'"arcsinh"', b'"system"').replace(
                    b'"numpy"', b'"posix"', 1
                )
            dst.writestr(item, payload)
    registry = _plant(tmp_path, model)
    path = tmp_path / "churn" / "v1" / "model.skops"
    path.write_bytes(buffer.getvalue())
    card = json.loads((path.parent / "card.json").read_text())
    card["artifact_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (path.parent / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="not on the trusted list"):
        registry.load("churn")


def test_saving_an_untrusted_model_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="Sneaky"):
        Registry(tmp_path).save(Pipeline([("x", FunctionTransformer(Sneaky))]), _card())
    assert not (tmp_path / "churn" / "v1").exists()


def test_broken_cards_and_bad_names(tmp_path):
    registry = Registry(tmp_path)
    with pytest.raises(ConfigError, match="model name"):
        registry.save(object(), _card("Bad Name"))
    with pytest.raises(ConfigError, match="kind"):
        registry.save(object(), _card(kind="forecast"))
    folder = tmp_path / "churn" / "v1"
    folder.mkdir(parents=True)
    (folder / "card.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        registry.load("churn")
    (folder / "card.json").write_text(_card(version=3).to_json())
    with pytest.raises(ModelLoadError, match="names churn@3, not churn@1"):
        registry.load("churn", 1)
    (folder / "card.json").write_text(json.dumps({"name": "churn"}))
    with pytest.raises(ModelLoadError, match="incomplete"):
        registry.load("churn", 1)
    assert registry.list() == []  # broken versions are skipped in the listing


def test_parse_ref():
    assert parse_ref("churn@3") == ("churn", 3)
    assert parse_ref("churn@v2") == ("churn", 2)
    assert parse_ref("churn") == ("churn", None)
    with pytest.raises(ConfigError, match="NAME@VERSION"):
        parse_ref("churn@latest")


# ---------------------------------------------------------------- model files that cannot hurt
# the server (issue 12): trusted types with crafted values, and cards that disagree with models

_PREDICT_UNCHECKED = """
import sys, pandas as pd, skops.io as sio
from sqltraits_kit.modelling.registry import TRUSTED_TYPES
model = sio.loads(open(sys.argv[1], "rb").read(), trusted=list(TRUSTED_TYPES))
X = pd.DataFrame({"orders_count": [1, 5], "trend": [0.0, 1.0], "revenue": [10.0, 90.0]})
print(model.predict_proba(X))
"""


def _crafted_gbm(tmp_path, edit) -> Registry:
    """A fitted gradient-boosting pipeline with its first tree edited, saved by the registry
    (so the card's checksum matches the edited bytes)."""
    X, churned, _ = _data()
    model = make_estimator("churn", "gbm").fit(X, churned)
    edit(model.steps[-1][1]._predictors)
    registry = Registry(tmp_path)
    registry.save(model, _card(estimator="gbm"))
    return registry


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p[0][0].nodes["left"].__setitem__(0, 4_000_000_000), "left child 4000000000"),
        (lambda p: p[0][0].nodes["right"].__setitem__(0, 0), "right child 0"),
        (lambda p: p[0][0].nodes["feature_idx"].__setitem__(0, 7), "splits on feature 7 of 3"),
        (lambda p: p[0][0].nodes["feature_idx"].__setitem__(0, -1), "feature -1"),
        # node 1's children point at node 2 and at itself: a cycle, indices all in range
        (lambda p: _loop(p[0][0].nodes), "do not form a tree"),
        (lambda p: p[0][0].nodes["is_categorical"].__setitem__(0, 1), "categorical split"),
        (lambda p: p[0].append(p[0][0]), "does not hold 1 tree"),
    ],
)
def test_a_crafted_tree_artifact_is_an_error_not_a_crash(tmp_path, edit, message):
    registry = _crafted_gbm(tmp_path, edit)
    with pytest.raises(ModelLoadError, match=rf"churn@1.*{message}.*was not scored"):
        registry.load("churn")


def _loop(nodes) -> None:
    inner = np.flatnonzero(nodes["is_leaf"] == 0)
    first, second = int(inner[0]), int(inner[1])
    nodes["left"][second] = first if first else second


def test_the_crafted_artifact_would_crash_the_process_without_the_check(tmp_path):
    """The check above is not vacuous: the same artifact, predicted with unchecked, kills the
    Python process that does it (a child here; the app's server in the issue)."""
    registry = _crafted_gbm(tmp_path, lambda p: p[0][0].nodes["left"].__setitem__(0, 4_000_000_000))
    artifact = registry.root / "churn" / "v1" / "model.skops"
    done = subprocess.run(
        [sys.executable, "-c", _PREDICT_UNCHECKED, str(artifact)], capture_output=True, timeout=120
    )
    assert done.returncode < 0, (done.returncode, done.stderr[-500:])  # killed by a signal


def test_a_fitted_model_passes_the_structure_checks(tmp_path):
    X, churned, ltv = _data()
    registry = Registry(tmp_path)
    for kind, estimator, y in (("churn", "gbm", churned), ("ltv", "gbm", ltv)):
        model = make_estimator(kind, estimator).fit(X, y)
        registry.save(model, _card(kind, kind, estimator=estimator))
        check_structure(registry.load(kind).model, kind)


def test_decision_tree_arrays_are_checked_too():
    """GradientBoosting, forests and decision trees keep theirs in ``tree_`` (not on the trusted
    list today; checked all the same should they be added)."""
    X, churned, _ = _data()
    model = GradientBoostingClassifier(n_estimators=3, max_depth=2).fit(X, churned)
    check_structure(model, "gb")
    tree = model.estimators_[1, 0].tree_
    fake = SimpleNamespace(
        n_features_in_=3,
        tree_=SimpleNamespace(
            children_left=tree.children_left.copy(),
            children_right=tree.children_right.copy(),
            feature=tree.feature.copy(),
            node_count=tree.node_count,
        ),
    )
    check_structure(fake, "copy")
    fake.tree_.feature[0] = 3
    with pytest.raises(ModelLoadError, match="node 0 splits on feature 3 of 3"):
        check_structure(fake, "copy")
    fake.tree_.feature[0] = 0
    fake.tree_.children_left[0] = 0  # back to the root: a cycle
    with pytest.raises(ModelLoadError, match="left child 0"):
        check_structure(fake, "copy")
    fake.tree_.children_left[0] = -1  # one child only
    with pytest.raises(ModelLoadError, match="one child"):
        check_structure(fake, "copy")


def test_a_card_listing_other_features_is_refused(tmp_path):
    X, churned, _ = _data()
    registry = Registry(tmp_path)
    registry.save(make_estimator("churn", "logistic").fit(X, churned), _card())
    path = tmp_path / "churn" / "v1" / "card.json"
    card = json.loads(path.read_text())
    card["features"] = ["orders_count", "trend", "email"]
    path.write_text(json.dumps(card))
    with pytest.raises(
        ModelLoadError, match=r"needs revenue, which the card does not list; the card lists email"
    ):
        registry.load("churn")
    card["features"] = ["orders_count", "trend", "trend"]
    path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="lists trend twice"):
        registry.load("churn")


def test_a_reordered_card_scores_as_the_original(duckdb_wh, trained, tmp_path):
    """The issue's case: a card whose features were reordered gave every profile a wrong score.
    Scoring now follows the fitted model's own column order."""
    registry = Registry(tmp_path / "models")
    shutil.copytree(trained[0].root, registry.root)
    for ref in (trained[1]["churn"], trained[1]["gbm"]):  # in the warehouse, and streamed
        name, _, version = ref.partition("@")
        first = score(duckdb_wh, models=ref, registry=registry, table="before")
        path = registry.root / name / f"v{version}" / "card.json"
        card = json.loads(path.read_text())
        card["features"] = card["features"][::-1]
        path.write_text(json.dumps(card))
        assert registry.load(name, int(version)).features == card["features"][::-1]
        second = score(duckdb_wh, models=ref, registry=registry, table="after")
        assert any("another order" in note for note in second.notes)
        assert first.models[0].path == second.models[0].path
        before = (
            duckdb_wh.table("before")
            .to_pandas()
            .set_index("user_id")
            .drop(columns=["model_name", "model_version", "scored_at", "run_id"])
        )
        after = duckdb_wh.table("after").to_pandas().set_index("user_id")[before.columns]
        pd.testing.assert_frame_equal(before.sort_index(), after.sort_index())


def test_signed_cards_load_and_edited_or_unsigned_ones_do_not(tmp_path, monkeypatch):
    X, churned, _ = _data()
    model = make_estimator("churn", "logistic").fit(X, churned)
    monkeypatch.setenv("SQLTRAITS_MODEL_SIGNING_KEY", "operator-signing-key-0001")
    registry = Registry(tmp_path)  # the key comes from the environment by default
    saved = registry.save(model, _card())
    assert saved.signature.startswith("hmac-sha256:")
    assert "operator-signing-key" not in (tmp_path / "churn" / "v1" / "card.json").read_text()
    assert registry.load("churn").card.signature == saved.signature

    # an edit no checksum catches: the card itself (its features, a BTYD model's parameters)
    path = tmp_path / "churn" / "v1" / "card.json"
    card = json.loads(path.read_text())
    path.write_text(json.dumps({**card, "features": card["features"][::-1]}))
    with pytest.raises(ModelLoadError, match="signature does not match its card"):
        registry.load("churn")
    path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="signature does not match"):
        Registry(tmp_path, signing_key="another-key-000000").load("churn")

    unsigned = Registry(tmp_path / "old", signing_key=None)
    unsigned.save(model, _card())
    keyed = Registry(tmp_path / "old")
    with pytest.raises(ModelLoadError, match="churn@1 is not signed"):
        keyed.load("churn")
    keyed.sign("churn", 1)  # the operator vouches for it
    assert keyed.load("churn").card.signature
    monkeypatch.delenv("SQLTRAITS_MODEL_SIGNING_KEY")
    assert Registry(tmp_path).load("churn").card.version == 1  # no key: nothing checked
    with pytest.raises(ConfigError, match="no model signing key"):
        Registry(tmp_path).sign("churn", 1)
