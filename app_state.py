"""Session set-up shared by the app's pages: settings, the warehouse connection, error display.

Ibis connections are not thread-safe and Streamlit runs each session in its own thread, so the
connection lives in the session's state rather than in ``st.cache_resource``. Query results are
cached with ``st.cache_data`` keyed by the warehouse URL (the connection itself is not hashed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import streamlit as st

from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.settings import Settings
from sqltraits_kit.warehouse import Warehouse, connect


def settings() -> Settings:
    """Settings from ``st.secrets`` when the app has secrets, else from the environment."""
    if "settings" not in st.session_state:
        try:
            secrets = dict(st.secrets)
        except Exception:  # no secrets.toml: that is the normal demo case
            secrets = {}
        base = Settings.from_env()
        if secrets:
            from_secrets = Settings.from_mapping(secrets)
            base = from_secrets if from_secrets.db_url or not base.db_url else base
            if base is from_secrets:
                # environment fills what secrets leave out
                env = Settings.from_env()
                base = from_secrets.with_(
                    segment_write_key=from_secrets.segment_write_key or env.segment_write_key,
                    db_url=from_secrets.db_url or env.db_url,
                )
        st.session_state["settings"] = base
    return st.session_state["settings"]


def warehouse() -> Warehouse:
    """This session's warehouse; the demo sample is built on first start, with progress shown."""
    wh = st.session_state.get("warehouse")
    if wh is not None:
        return wh
    url = settings().db_url
    from sqltraits_kit.settings import DEFAULT_SAMPLE_PATH

    if url is None and not DEFAULT_SAMPLE_PATH.exists():
        with st.status("Building the demo warehouse (first start only)…", expanded=True) as status:
            bar = st.progress(0.0)

            def progress(message: str, fraction: float) -> None:
                bar.progress(min(max(fraction, 0.0), 1.0), text=message)

            wh = connect(None, progress=progress, sample_customers=settings().sample_customers)
            status.update(label="Demo warehouse ready", state="complete", expanded=False)
    else:
        wh = connect(url)
    st.session_state["warehouse"] = wh
    return wh


def switch_warehouse(url: str | None) -> Warehouse:
    """Connect to another warehouse for this session (the old connection is closed)."""
    new = connect(url or None)
    old = st.session_state.get("warehouse")
    if old is not None and old is not new:
        old.close()
    st.session_state["warehouse"] = new
    st.session_state["settings"] = settings().with_(db_url=url or None)
    st.cache_data.clear()
    return new


@contextmanager
def user_errors() -> Iterator[None]:
    """Show the kit's errors as messages, not tracebacks."""
    try:
        yield
    except SqlTraitsError as exc:
        st.error(str(exc), icon=":material/error:")


@st.cache_data(ttl=300, show_spinner=False)
def table_overview(url: str, _wh: Warehouse) -> pd.DataFrame:
    rows = []
    for name, count in _wh.row_counts().items():
        cols = _wh.describe(name)
        rows.append(
            {
                "table": name,
                "rows": count,
                "columns": len(cols),
                "schema": ", ".join(f"{c} {t}" for c, t in cols),
            }
        )
    return pd.DataFrame(rows)


@st.cache_data(ttl=300, show_spinner=False)
def activity(url: str, _wh: Warehouse, grain: str) -> pd.DataFrame:
    return _wh.activity_over_time(grain=grain)


@st.cache_data(ttl=300, show_spinner=False)
def preview(url: str, _wh: Warehouse, table: str, limit: int) -> pd.DataFrame:
    return _wh.preview(table, limit=limit)
