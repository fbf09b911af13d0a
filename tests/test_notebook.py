"""examples/quickstart.ipynb runs top to bottom through the library alone, publishing to the fake
Segment server (executed with nbclient in a real Jupyter kernel)."""

from __future__ import annotations

import os

import pytest

from tests.support import ROOT, skip_or_fail
from tests.support.segment import WRITE_KEY

pytestmark = pytest.mark.slow


def test_quickstart_notebook_runs_the_whole_journey(tmp_path, monkeypatch, segment_server):
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        skip_or_fail("nbclient/nbformat are not installed (pip install -r requirements-dev.txt)")
    monkeypatch.setenv("SQLTRAITS_NOTEBOOK_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("SQLTRAITS_NOTEBOOK_CUSTOMERS", "2000")
    monkeypatch.setenv("SQLTRAITS_REPO", str(ROOT))
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("SEGMENT_ENDPOINT", segment_server.url)
    monkeypatch.setenv("SQLTRAITS_MAX_REQUESTS_PER_SECOND", "0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )  # fmt: skip
    assert "'status': 'succeeded'" in outputs
    stats = segment_server.snapshot()
    assert stats["messages_accepted"] == 2000 and stats["messages_rejected"] == 0
    assert WRITE_KEY not in outputs
