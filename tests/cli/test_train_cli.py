"""`sqltraits train` and `sqltraits models` on the sample warehouse."""

from __future__ import annotations

import json

import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.modelling.registry import Registry


@pytest.fixture
def db(sample_file) -> str:
    return f"duckdb:///{sample_file}"


def _json(capsys) -> dict:
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out  # one JSON object on one line
    return json.loads(out)


def test_train_churn_json_saves_and_prints_the_card(db, tmp_path, capsys):
    code = main(
        [
            "train",
            "--db",
            db,
            "--model",
            "churn",
            "--estimator",
            "logistic",
            "--models-dir",
            str(tmp_path),
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    card = _json(capsys)
    assert card["name"] == "churn" and card["version"] == 1 and card["kind"] == "churn"
    assert card["estimator"] == "logistic" and card["horizon_days"] == 90
    metrics = card["metrics"]
    assert 0.5 < metrics["auc"] <= 1 and 0.5 < metrics["reference_auc"] <= 1
    assert {"pr_auc", "brier", "top_decile_lift", "reference_brier"} <= set(metrics)
    assert Registry(tmp_path).load("churn").card.data_fingerprint == card["data_fingerprint"]


def test_train_ltv_text_output_with_options(db, tmp_path, capsys):
    code = main(
        [
            "train",
            "--db",
            db,
            "--model",
            "ltv",
            "--estimator",
            "btyd",
            "--name",
            "ltv_btyd",
            "--cutoff",
            "2026-03-01",
            "--horizon-days",
            "60",
            "--models-dir",
            str(tmp_path),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "saved as ltv_btyd@1" in captured.out
    assert "cutoff 2026-03-01 -> test 2026-04-30, horizon 60 days" in captured.out
    assert "normalised Gini" in captured.out and "reference" in captured.out
    assert "best baseline" in captured.out and "(past_rate)" in captured.out
    assert "saved model refit on 2026-04-30" in captured.out
    assert "parameters:" in captured.out
    assert "[100%] done" in captured.err  # progress goes to stderr


def test_a_young_log_is_refused_and_shorter_windows_train_on_it(db, capsys):
    # The sample's log starts on 2024-11-02: 89 days before the cutoff, less than 90.
    args = ["train", "--db", db, "--model", "churn", "--estimator", "logistic", "--no-save"]
    args += ["--cutoff", "2025-01-30", "--quiet"]
    assert main(args) == 1  # a data error, not a bad option
    err = capsys.readouterr().err
    assert "less than the 90-day feature window before the training cutoff 2025-01-30" in err
    assert "shorter feature windows" in err
    assert main([*args, "--windows", "7,30", "--json"]) == 0
    card = _json(capsys)
    assert card["windows"] == [7, 30] and card["training_cutoffs"][0] == "2025-01-30"
    assert "orders_30d" in card["features"] and "orders_90d" not in card["features"]
    for bad in ("7,x", "0,30", ""):
        assert main([*args, "--windows", bad]) == 2
        assert "--windows must be whole days >= 1" in capsys.readouterr().err


def test_default_is_auto_with_baselines_and_candidates(db, tmp_path, capsys):
    code = main(["train", "--db", db, "--model", "churn", "--no-save", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith("churn model (") and "not saved" in first
    assert "training snapshots: " in out
    assert "best baseline" in out and "(btyd)" in out
    assert "champion " in out and "highest validation ROC AUC" in out
    for name in ("logistic", "gbm", "gbm_small", "bgnbd", "mbgnbd", "pnbd", "blend"):
        assert f" {name} " in out or f"*{name} " in out, name
    assert out.count("*") == 1  # the champion, marked once

    assert main(["train", "--db", db, "--model", "churn", "--no-save", "--quiet", "--json"]) == 0
    card = _json(capsys)
    assert card["selection"]["champion"] == card["estimator"]
    assert set(card["baselines"]) == {"recency", "recency_frequency", "btyd"}
    assert {row["metric"] for row in card["comparison"]} >= {"auc", "brier"}
    assert len(card["refit"]["cutoffs"]) == 3


def test_a_feature_spec_file(db, tmp_path, capsys):
    spec = tmp_path / "features.toml"
    spec.write_text(
        '[[aggregate]]\nname = "cart_views"\ntable = "tracks"\nwhere = { event = "Cart Viewed" }\n'
    )
    args = ["train", "--db", db, "--model", "ltv", "--estimator", "poisson", "--no-save"]
    assert main([*args, "--features", str(spec), "--json", "--quiet"]) == 0
    card = _json(capsys)
    assert card["features"][-1] == "cart_views"
    assert card["feature_spec"]["aggregate"][0]["where"] == {"event": "Cart Viewed"}
    spec.write_text("[[aggregate]]\nname = 'Bad'\ntable = 't'\n")
    assert main([*args, "--features", str(spec), "--quiet"]) == 2
    assert "lower_snake_case" in capsys.readouterr().err


def test_no_save_and_a_mapping_file(db, tmp_path, capsys):
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"tracks_table": None, "pages_table": None}))
    models = tmp_path / "models"
    code = main(
        [
            "train",
            "--db",
            db,
            "--model",
            "churn",
            "--estimator",
            "logistic",
            "--mapping",
            str(mapping),
            "--models-dir",
            str(models),
            "--no-save",
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    card = _json(capsys)
    assert card["version"] == 0 and card["mapping"]["tracks_table"] is None
    assert not any(f.startswith("tracks") for f in card["features"])
    assert not models.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cutoff", "2026-10-01"], "too late for a 90-day horizon"),
        (["--estimator", "poisson"], "choose from: auto, logistic, gbm"),
        (["--snapshots", "0"], "snapshots must be"),
        (["--cutoff", "soon"], "ISO date"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(db, tmp_path, capsys, extra, message):
    code = main(
        ["train", "--db", db, "--model", "churn", "--models-dir", str(tmp_path), "--quiet", *extra]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_models_lists_and_activates(db, tmp_path, capsys):
    for _ in range(2):
        args = ["train", "--db", db, "--model", "churn", "--estimator", "logistic"]
        assert main([*args, "--models-dir", str(tmp_path), "--quiet", "--json"]) == 0
    capsys.readouterr()

    assert main(["models", "--models-dir", str(tmp_path), "--json"]) == 0
    listing = _json(capsys)
    assert [(m["name"], m["version"], m["active"]) for m in listing["models"]] == [
        ("churn", 1, False),
        ("churn", 2, False),
    ]

    assert main(["models", "--models-dir", str(tmp_path), "--activate", "churn@1"]) == 0
    assert "churn@1 is now the active" in capsys.readouterr().out
    assert Registry(tmp_path).load("churn").card.version == 1

    assert main(["models", "--models-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "*churn@1" in text and " churn@2" in text and "ROC AUC 0." in text

    assert main(["models", "--models-dir", str(tmp_path), "--activate", "churn@9"]) == 1
    assert "churn@9 not found" in capsys.readouterr().err
    assert main(["models", "--models-dir", str(tmp_path), "--activate", "churn"]) == 2


def test_models_on_an_empty_folder(tmp_path, capsys):
    assert main(["models", "--models-dir", str(tmp_path / "none")]) == 0
    assert "no models in" in capsys.readouterr().out
