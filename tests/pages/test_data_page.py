from __future__ import annotations

from tests.support import SAMPLE_CUSTOMERS


def test_data_page_shows_tables_preview_and_activity(page):
    at = page("pages/data.py").run()
    assert not at.exception, at.exception
    tables = at.dataframe[0].value
    counts = dict(zip(tables["table"], tables["rows"], strict=True))
    assert counts["users"] == SAMPLE_CUSTOMERS
    assert {"tracks", "pages", "order_completed", "accounts"} <= set(counts)
    assert at.selectbox(key="data_table").value == tables["table"].iloc[0]
    assert len(at.dataframe[1].value) == 50
    # the activity chart is a plotly figure of per-period counts only
    assert len(at.get("plotly_chart")) == 1


def test_data_page_preview_follows_the_selected_table(page):
    at = page("pages/data.py").run()
    at.selectbox(key="data_table").select("users").run()
    at.slider(key="data_limit").set_value(7).run()
    assert not at.exception
    preview = at.dataframe[1].value
    assert len(preview) == 7 and "email" in preview.columns


def test_bad_url_is_a_message_not_a_traceback(page):
    at = page("pages/data.py").run()
    at.text_input(key="data_url").input("postgres://nobody@127.0.0.1:1/none")
    at.button[0].click().run()
    assert not at.exception
    assert any("could not connect" in e.value for e in at.error)


def test_the_kit_tables_are_folded_away_from_the_users_own(page, duckdb_wh):
    duckdb_wh.con.create_table("sqltraits_state__churn", schema={"k": "string"})
    duckdb_wh.con.create_table("churn_traits_history", schema={"k": "string"})
    at = page("pages/data.py").run()
    assert not at.exception, at.exception
    listed = set(at.dataframe[0].value["table"])
    assert "users" in listed
    assert not listed & {"sqltraits_state__churn", "churn_traits_history", "sample_truth"}
    folded = " ".join(c.value for c in at.caption)
    assert "sqltraits_state__churn" in folded and "sample_truth" in folded


def test_a_mistyped_duckdb_path_creates_no_file(page, tmp_path):
    missing = tmp_path / "typo" / "warehuose.duckdb"
    at = page("pages/data.py").run()
    at.text_input(key="data_url").input(f"duckdb:///{missing}")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("no such warehouse file" in e.value for e in at.error)
    assert not missing.exists()
