from __future__ import annotations

import shutil

from streamlit.testing.v1 import AppTest

import app_state
from tests.support import ROOT


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
    # the build's progress box goes once the sample exists: the page starts with its title
    assert not at.status
    assert [t.proto.body for t in at.toast] == ["Demo warehouse ready"]
    assert "demo sample" in at.sidebar.caption[-1].value
    tables = at.dataframe[0].value
    assert dict(zip(tables["table"], tables["rows"], strict=True))["users"] == 500
    # a second session reuses the sample instead of rebuilding it
    mtime = (tmp_path / "sample_data" / "sample.duckdb").stat().st_mtime_ns
    at2 = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at2.exception
    assert (tmp_path / "sample_data" / "sample.duckdb").stat().st_mtime_ns == mtime


def test_one_build_of_the_sample_serves_every_run_and_session(tmp_path):
    """A page switch reruns the script and cuts its wait short: the build must go on, and the
    next run (or another session) must wait for the same build, not start over."""
    path = (tmp_path / "sample.duckdb").resolve()
    first = app_state._sample_build(path, 200)
    assert app_state._sample_build(path, 200) is first  # asked again while it runs
    assert first.done.wait(120) and first.error is None
    assert path.exists()
    assert app_state._sample_build(path, 200) is first  # finished and still there
    built = path.stat().st_mtime_ns

    path.unlink()  # gone since (deleted by hand): the next request builds it again
    again = app_state._sample_build(path, 200)
    assert again is not first
    assert again.done.wait(120) and again.error is None and path.stat().st_mtime_ns != built


def test_a_failed_build_is_a_message_and_the_next_run_tries_again(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the sample's folder should be")
    path = (blocker / "sample.duckdb").resolve()
    failed = app_state._sample_build(path, 200)
    assert failed.done.wait(60) and failed.error is not None
    assert app_state._sample_build(path, 200) is not failed  # a failure is not cached


def test_an_unexpected_error_is_a_message_with_details_not_a_bare_traceback(page, duckdb_wh):
    duckdb_wh.con.disconnect()  # every query now fails inside the database driver
    at = page("pages/data.py").run()
    (error,) = at.error
    assert error.value.startswith("Unexpected error — ")
    # the traceback is kept for a bug report, folded away under the message
    (details,) = [e for e in at.expander if e.label == "Details"]
    assert details.get("exception")
