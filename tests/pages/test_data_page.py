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
