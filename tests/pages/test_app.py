from __future__ import annotations

import shutil

from streamlit.testing.v1 import AppTest

from tests.pages.conftest import ROOT


def test_app_builds_the_sample_on_first_start_and_opens_the_data_page(tmp_path, monkeypatch):
    # The app runs from the repository root: give it one whose sample_data/ is empty.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "pages", tmp_path / "pages")
    for var in ("SQLTRAITS_DB_URL", "SEGMENT_WRITE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SQLTRAITS_SAMPLE_CUSTOMERS", "500")  # keep the first-start build small
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert (tmp_path / "sample_data" / "sample.duckdb").exists()
    assert at.title[0].value == "Data"
    tables = at.dataframe[0].value
    assert dict(zip(tables["table"], tables["rows"], strict=True))["users"] == 500
    # a second session reuses the sample instead of rebuilding it
    mtime = (tmp_path / "sample_data" / "sample.duckdb").stat().st_mtime_ns
    at2 = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at2.exception
    assert (tmp_path / "sample_data" / "sample.duckdb").stat().st_mtime_ns == mtime
