"""examples/own_features_and_models.ipynb runs top to bottom: a champion beside the baselines, a
feature spec, and a model fitted in the notebook registered and scored (nbclient, real kernel)."""

from __future__ import annotations

import os

import pytest

from tests.support import ROOT, skip_or_fail

pytestmark = pytest.mark.slow


def test_the_models_notebook_runs(tmp_path, monkeypatch):
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        skip_or_fail("nbclient/nbformat are not installed (pip install -r requirements-dev.txt)")
    monkeypatch.setenv("SQLTRAITS_NOTEBOOK_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("SQLTRAITS_NOTEBOOK_CUSTOMERS", "2000")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(ROOT / "examples" / "own_features_and_models.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )  # fmt: skip
    assert "champion: " in outputs and "validated at" in outputs
    assert "spec features: [" in outputs and "plan has no as_of_column" in outputs
    assert "churn_forest@1 outside:Pipeline" in outputs
    assert "profiles scored, streamed" in outputs
    models = tmp_path / "run" / "models"
    assert {p.name for p in models.iterdir()} >= {"churn", "churn_custom", "churn_forest"}
