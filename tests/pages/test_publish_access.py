"""Issue 12 on the Publish page: destinations are the operator's, publishing is a publisher's.

Opened through app.py with the operator's settings in ``at.secrets`` (read by
``app_state.settings`` as from secrets.toml) and the user in ``at.user`` (``st.user``).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from sqltraits_kit.publishing.standin import FakeSegmentServer
from sqltraits_kit.settings import Destination, Secret, Settings
from tests.support import ROOT
from tests.support.segment import WRITE_KEY

N = 300
TEST_KEY = "wk_local_test_server_key_42"
AUTH = {  # Streamlit's OIDC section: its presence turns the login on
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "not-a-real-secret",
    "client_id": "sqltraits",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "https://id.example.com/.well-known/openid-configuration",
}
ANA = {"is_logged_in": True, "email": "ana@example.com", "email_verified": True}
BOB = {"is_logged_in": True, "email": "bob@example.com", "email_verified": True}


@pytest.fixture
def tables(duckdb_wh):
    """An output table (what the Score page writes) and a plain table with the same traits."""
    data = {
        "user_id": [f"u{i}" for i in range(N)],
        "score": [i / N for i in range(N)],
    }
    meta = {
        "model_name": ["churn"] * N,
        "model_version": [1] * N,
        "scored_at": [dt.datetime(2026, 12, 1, tzinfo=dt.UTC)] * N,
        "run_id": ["r1"] * N,
    }
    duckdb_wh.con.create_table("scores_out", pa.table({**data, **meta}))
    duckdb_wh.con.create_table("scores", pa.table(data))


@pytest.fixture
def attacker():
    """A listener standing for a URL someone would like the write key sent to."""
    with FakeSegmentServer(write_keys=(WRITE_KEY, TEST_KEY)) as server:
        yield server


def _publish_page(page, settings: Settings) -> tuple[AppTest, str]:
    """The Publish page, and the sidebar's captions (AppTest drops them after a page switch)."""
    at = page("app.py", settings=settings).run()
    assert not at.exception, at.exception
    sidebar = _captions(at)
    at.switch_page("pages/publish.py").run()
    assert not at.exception, at.exception
    at.radio(key="publish_source_kind").set_value("Table").run()
    return at, sidebar


def _captions(at) -> str:
    return "\n".join(c.value for c in [*at.caption, *at.sidebar.caption])


def _operator(duckdb_wh, tmp_path, segment_server, **extra) -> Settings:
    return Settings(
        db_url=duckdb_wh.url,
        models_dir=tmp_path / "models",
        segment_write_key=Secret(WRITE_KEY),
        segment_endpoint=segment_server.url,
        max_requests_per_second=0,
        max_events_per_second=0,
        **extra,
    )


def test_no_interaction_sends_the_key_anywhere_the_operator_did_not_configure(
    page,
    duckdb_wh,
    tmp_path,
    tables,
    segment_server,
    attacker,
):
    at, sidebar = _publish_page(page, _operator(duckdb_wh, tmp_path, segment_server))
    assert "local, single-user" in sidebar
    # the destinations offered are exactly those configured: here the single-key one
    choice = at.selectbox(key="publish_destination")
    assert choice.options == [f"production ({segment_server.url.removeprefix('http://')})"]
    assert not at.text_input  # no field where a URL could be typed
    # what the old page read, and an unknown destination, set by hand: both ignored/refused
    at.session_state["publish_endpoint"] = attacker.url
    at.session_state["publish_region"] = "eu"
    with pytest.raises(Exception, match="attacker"):
        choice.set_value("attacker").run()
    at, _ = _publish_page(page, _operator(duckdb_wh, tmp_path, segment_server))
    at.session_state["publish_endpoint"] = attacker.url
    at.selectbox(key="publish_table").select("scores_out").run()
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert any(f"succeeded: {N:,} sent" in s.value for s in at.success)
    assert attacker.snapshot()["requests"] == 0
    assert segment_server.snapshot()["messages_accepted"] == N


def test_a_configured_test_server_is_a_choice_with_its_own_sync_state(
    page,
    duckdb_wh,
    tmp_path,
    tables,
    segment_server,
    attacker,
):
    local = Destination(
        name="test", endpoint=attacker.url, write_key=Secret(TEST_KEY), label="local test server"
    )
    settings = _operator(duckdb_wh, tmp_path, segment_server, destinations=(local,))
    at, _ = _publish_page(page, settings)
    choice = at.selectbox(key="publish_destination")
    assert choice.options[1:] == ["local test server"] and len(choice.options) == 2
    choice.set_value("test").run()
    at.selectbox(key="publish_table").select("scores_out").run()
    assert "Sync key `table:scores_out:identify@test`" in _captions(at)
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert attacker.snapshot()["messages_accepted"] == N  # sent with the test server's key
    assert segment_server.snapshot()["requests"] == 0
    # production's state did not move: everything is still new there
    at.selectbox(key="publish_destination").set_value("production").run()
    at.button(key="publish_dry_button").click().run()
    assert {m.label: m.value for m in at.metric}["New"] == f"{N}"


def test_without_a_login_a_server_bound_to_every_interface_does_not_publish(
    page,
    duckdb_wh,
    tmp_path,
    tables,
    segment_server,
    bind,
):
    bind("0.0.0.0")
    at, sidebar = _publish_page(page, _operator(duckdb_wh, tmp_path, segment_server))
    assert "local, single-user" in sidebar  # what it is, though others can reach it
    at.selectbox(key="publish_table").select("scores_out").run()
    assert at.button(key="publish_button").disabled
    assert "no login is configured and the server listens on 0.0.0.0" in _captions(at)
    assert at.toggle(key="publish_any_table").disabled
    assert at.checkbox(key="publish_allow_drift").disabled


# ---------------------------------------------------------------- with a login (OIDC)


def _team_app(duckdb_wh, segment_server, user: dict) -> AppTest:
    """app.py as a team deployment runs it: settings only from the secrets, no session seed."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {
        "auth": AUTH,
        "sqltraits": {
            "db_url": duckdb_wh.url,
            "publishers": ["Ana@Example.com"],
            "max_requests_per_second": 0,
        },
        "segment": {"write_key": WRITE_KEY, "endpoint": segment_server.url},
    }
    at.user = dict(user)
    at.session_state["warehouse"] = duckdb_wh
    return at.run()


def test_signed_out_visitors_get_the_sign_in_and_nothing_else(duckdb_wh, segment_server, bind):
    bind("0.0.0.0")
    at = _team_app(duckdb_wh, segment_server, {"is_logged_in": False})
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert "not signed in" in _captions(at)
    assert not at.dataframe  # the Data page (tables of personal data) was not drawn
    at.switch_page("pages/publish.py").run()
    assert not at.exception, at.exception
    assert "publish_button" not in {b.key for b in at.button}


def test_a_publisher_publishes_and_may_list_any_table(duckdb_wh, segment_server, tables, bind):
    bind("0.0.0.0")  # the login makes a reachable server safe to publish from
    at = _team_app(duckdb_wh, segment_server, ANA)
    assert "signed in as ana@example.com (publisher)" in _captions(at)
    assert any(b.label == "Sign out" for b in at.sidebar.button)
    at.switch_page("pages/publish.py").run()
    at.radio(key="publish_source_kind").set_value("Table").run()
    assert at.selectbox(key="publish_table").options == ["scores_out"]
    at.toggle(key="publish_any_table").set_value(True).run()
    assert {"scores", "scores_out", "users"} <= set(at.selectbox(key="publish_table").options)
    at.toggle(key="publish_any_table").set_value(False).run()
    assert not at.button(key="publish_button").disabled
    assert not at.checkbox(key="publish_allow_drift").disabled
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert any(f"succeeded: {N:,} sent" in s.value for s in at.success)
    assert segment_server.snapshot()["messages_accepted"] == N


def test_a_signed_in_user_off_the_list_can_look_but_not_publish(
    duckdb_wh,
    segment_server,
    tables,
):
    at = _team_app(duckdb_wh, segment_server, BOB)
    assert "signed in as bob@example.com (viewer)" in _captions(at)
    assert not any(f.label == "Warehouse URL" for f in at.text_input)  # the operator's only
    at.switch_page("pages/publish.py").run()
    at.radio(key="publish_source_kind").set_value("Table").run()
    # input tables (users with e-mails) are not offered, and the advanced list is not his
    assert at.selectbox(key="publish_table").options == ["scores_out"]
    assert at.toggle(key="publish_any_table").disabled
    assert at.button(key="publish_button").disabled
    assert at.checkbox(key="publish_allow_drift").disabled
    assert at.checkbox(key="publish_allow_invalid").disabled
    assert "bob@example.com can look but not publish" in _captions(at)
    at.button(key="publish_dry_button").click().run()  # looking includes the dry run
    assert {m.label: m.value for m in at.metric}["New"] == f"{N}"
    assert segment_server.snapshot()["requests"] == 0
