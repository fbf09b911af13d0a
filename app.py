"""SQL Traits Kit — the Streamlit app. Run with: streamlit run app.py"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# A file, not ":material/...": Streamlit draws a Material favicon from fonts.gstatic.com, an
# error on every page offline (issue 17 item 14); the app loads nothing from another host.
ICON = Path(__file__).resolve().parent / "docs" / "icon.png"
st.set_page_config(page_title="SQL Traits Kit", page_icon=str(ICON), layout="wide")

PAGES = [
    st.Page("pages/data.py", title="Data", icon=":material/database:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/score.py", title="Score", icon=":material/target:"),
    st.Page("pages/preview.py", title="Preview", icon=":material/bar_chart:"),
    st.Page("pages/publish.py", title="Publish", icon=":material/send:"),
    st.Page("pages/monitor.py", title="Monitor", icon=":material/monitoring:"),
]

# First, before any slow import: until the navigation is set, the browser lists the files of
# pages/ in the sidebar (app, data, preview, ...), which users see while the kit imports.
nav = st.navigation(PAGES)
with st.sidebar:
    st.caption("SQL Traits Kit — warehouse → models → Segment traits")

import app_state  # noqa: E402 - after the navigation on purpose, see above
from sqltraits_kit.access import can_view, mode_label  # noqa: E402


def sign_in(providers: tuple[str, ...]) -> None:
    """The only thing a visitor sees when the operator configured a login."""
    st.title("SQL Traits Kit")
    st.info("Sign in to see the warehouse and the traits.", icon=":material/lock:")
    for provider in providers or (None,):
        label = f"Sign in with {provider}" if provider else "Sign in"
        args = (provider,) if provider else ()
        st.button(label, on_click=st.login, args=args, key=f"login_{provider}")


with app_state.user_errors():
    settings = app_state.settings()
    user = app_state.current_user()
    st.sidebar.caption(mode_label(settings, user), help=app_state.publish_access().reason)
    if not can_view(settings, user):
        sign_in(settings.auth_providers)
        st.stop()
    if settings.auth_configured:
        st.sidebar.button("Sign out", on_click=st.logout, key="logout")
    wh = app_state.warehouse()
    if settings.db_url is None:  # the path is in the tooltip and on the Data page
        st.sidebar.caption(f"Warehouse: demo sample ({wh.backend})", help=wh.display_url)
    else:
        st.sidebar.caption(f"Warehouse: `{wh.display_url}` ({wh.backend})")
    nav.run()
