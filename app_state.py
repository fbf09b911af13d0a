"""Session set-up shared by the app's pages: settings, the warehouse connection, error display.

Ibis connections are not thread-safe and Streamlit runs each session in its own thread, so the
connection lives in the session's state rather than in ``st.cache_resource``. Query results are
cached with ``st.cache_data`` keyed by the warehouse URL (the connection itself is not hashed).

The demo sample is built once per server process, in a thread of its own: a page switch reruns
the script, and a build running inside the script would be interrupted and start over.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from sqltraits_kit.access import (
    Decision,
    User,
    can_connect_warehouse,
    can_publish,
    can_view,
)
from sqltraits_kit.errors import ConfigError, SqlTraitsError
from sqltraits_kit.settings import DEFAULT_SAMPLE_PATH, Settings
from sqltraits_kit.warehouse import Warehouse, connect
from sqltraits_kit.workflows.catalog import TRAIT_SET_FOLDER
from sqltraits_kit.workflows.project import PROJECT_FILE, Project, WarehouseChoices

_LOG = logging.getLogger("sqltraits_app")
#: Where the app keeps the project (``sqltraits.toml`` and ``traitsets/``) unless
#: ``SQLTRAITS_PROJECT_DIR`` names another folder: the app's own, as cloned.
APP_DIR = Path(__file__).resolve().parent
# What the pages keep of their last action; it belongs to the warehouse it ran on.
RESULT_KEYS = ("train_result", "score_result", "publish_dry", "publish_result")


def settings() -> Settings:
    """The operator's settings: the environment, overridden field by field by ``st.secrets``."""
    if "settings" not in st.session_state:
        try:
            secrets = st.secrets.to_dict()
        except Exception:  # no secrets.toml: that is the normal demo case
            secrets = {}
        try:
            st.session_state["settings"] = Settings.from_sources(secrets)
        except ValueError as exc:  # a bad setting: the operator's to fix, said in one line
            raise ConfigError(f"settings (secrets.toml or the environment): {exc}") from None
    return st.session_state["settings"]


def project_dir() -> Path:
    """The project folder: ``SQLTRAITS_PROJECT_DIR``, else the app's folder. The CLI run from
    that folder reads the same ``sqltraits.toml`` and ``traitsets/``."""
    return Path(os.environ.get("SQLTRAITS_PROJECT_DIR") or APP_DIR)


def traitsets_dir() -> Path:
    """The project's trait-set folder (``sqltraits_kit.workflows.catalog`` lists it)."""
    return project_dir() / TRAIT_SET_FOLDER


def project() -> Project:
    """The project file, read again on every run: a save in another tab shows on reload."""
    return Project(project_dir() / PROJECT_FILE)


def choices(wh: Warehouse) -> WarehouseChoices:
    """What the project chose for this warehouse (mapping, horizon, output table, trait sets)."""
    return project().choices(wh.url)


def trait_sets(wh: Warehouse, *, scored_only: bool = False) -> list:
    """The trait sets in use on ``wh`` (``sqltraits_kit.workflows.defaults``), default first."""
    from sqltraits_kit.workflows.defaults import trait_sets_in_use

    return trait_sets_in_use(
        wh,
        traitsets_dir(),
        listed=choices(wh).trait_sets,
        project_dir=project_dir(),
        scored_only=scored_only,
    )


def current_user() -> User:
    """This session's user as ``st.user`` describes them (nobody, without a login)."""
    try:
        claims = st.user.to_dict()
    except Exception:  # outside a Streamlit run (a page imported by a test, a notebook)
        claims = {}
    return User.from_claims(claims)


def publish_access() -> Decision:
    """May this session publish and override the gates (``access.can_publish``)?"""
    return can_publish(settings(), current_user(), server_address=st.get_option("server.address"))


def output_tables(wh: Warehouse, *, any_table: bool = False) -> list[str]:
    """The output production tables (``any_table``: every table but the kit's own and history)."""
    from sqltraits_kit.traits.output import output_tables as listed

    return listed(wh, outputs_only=not any_table)


def warehouse() -> Warehouse:
    """This session's warehouse; the demo sample is built on first start, with progress shown."""
    view = can_view(settings(), current_user())
    if not view:  # every page reads through here: a page run on its own is gated too
        st.info(f"{view.reason}.", icon=":material/lock:")
        st.stop()
    wh = st.session_state.get("warehouse")
    if wh is not None:
        return wh
    url = settings().db_url
    if url is None and not DEFAULT_SAMPLE_PATH.exists():
        _wait_for_sample(DEFAULT_SAMPLE_PATH.resolve(), settings().sample_customers)
    wh = connect(url)
    st.session_state["warehouse"] = wh
    return wh


class _SampleBuild:
    """One build of the demo sample, in a daemon thread; sessions read its progress."""

    def __init__(self, path: Path, customers: int) -> None:
        self.path = path
        self.customers = customers
        self.message = "starting"
        self.fraction = 0.0
        self.error: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, name="sqltraits-sample-build", daemon=True).start()

    def _progress(self, message: str, fraction: float) -> None:
        self.message, self.fraction = message, fraction

    def _run(self) -> None:
        from sqltraits_kit.warehouse.sample import build_sample

        try:
            build_sample(self.path, customers=self.customers, progress=self._progress)
        except BaseException as exc:  # handed to the session that waits for it
            self.error = exc
        finally:
            self.done.set()


_BUILDS: dict[tuple[Path, int], _SampleBuild] = {}
_BUILDS_LOCK = threading.Lock()


def _sample_build(path: Path, customers: int) -> _SampleBuild:
    """The build of ``path`` in progress or finished, or a new one if there is none to reuse."""
    with _BUILDS_LOCK:
        build = _BUILDS.get((path, customers))
        finished = build is not None and build.done.is_set()
        if build is None or (finished and (build.error is not None or not path.exists())):
            build = _BUILDS[(path, customers)] = _SampleBuild(path, customers)
        return build


def _wait_for_sample(path: Path, customers: int) -> None:
    """Show the shared build's progress until it is done; the box goes once the sample exists."""
    build = _sample_build(path, customers)
    slot = st.empty()
    with (
        slot.container(),
        st.status("Building the demo warehouse (first start only)…", expanded=True) as box,
    ):
        st.caption(
            f"{customers:,} synthetic customers with their orders, tracks and pages, written to "
            f"`{path}`. Opening another page meanwhile does not restart it."
        )
        bar = st.progress(0.0, text="starting")
        while not build.done.wait(0.2):
            bar.progress(min(max(build.fraction, 0.0), 1.0), text=build.message)
        if build.error is not None:
            box.update(label="Building the demo warehouse failed", state="error")
    if build.error is not None:
        raise SqlTraitsError(
            f"building the demo sample at {path} failed: {type(build.error).__name__}: "
            f"{build.error}. Reload the page to try again."
        )
    slot.empty()
    st.toast("Demo warehouse ready", icon=":material/check_circle:")


def switch_warehouse(url: str | None) -> Warehouse:
    """Connect to another warehouse for this session (the old connection is closed)."""
    allowed = can_connect_warehouse(settings(), current_user())
    if not allowed:
        raise ConfigError(f"not connected: {allowed.reason}")
    new = connect(url or None)
    old = st.session_state.get("warehouse")
    if old is not None and old is not new:
        old.close()
    st.session_state["warehouse"] = new
    st.session_state["settings"] = settings().with_(db_url=url or None)
    st.cache_data.clear()
    for key in RESULT_KEYS:  # results from the old warehouse would describe the wrong data
        st.session_state.pop(key, None)
    return new


def progress_bar(text: str = "starting") -> Callable[[str, float], None]:
    """A progress bar and the ``progress(message, fraction)`` callback the library calls."""
    bar = st.progress(0.0, text=text)

    def progress(message: str, fraction: float) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=message)

    return progress


def page_link(page: str, label: str, icon: str) -> None:
    """A link to another page; as plain text when this page runs outside the app's navigation
    (``streamlit run pages/score.py``), where Streamlit cannot resolve page links."""
    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.caption(f"{label}: open `{page}` from the app's navigation.")


@contextmanager
def user_errors() -> Iterator[None]:
    """Show errors as messages, not tracebacks.

    The kit's own errors say what to fix, so their message is enough. Anything else is a bug or
    a driver error the kit did not foresee: its type and message, with the traceback folded
    away for a bug report (and in the server log).
    """
    try:
        yield
    except SqlTraitsError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:  # Streamlit's stop/rerun signals are BaseExceptions: not caught
        _LOG.exception("unexpected error in the app")
        st.error(
            f"Unexpected error — {type(exc).__name__}: {exc}. This is a bug if the message "
            "does not say what to change; the details below help a report.",
            icon=":material/bug_report:",
        )
        with st.expander("Details"):
            st.exception(exc)


@st.cache_data(ttl=300, show_spinner="Counting the rows of every table…")
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


@st.cache_data(ttl=300, show_spinner="Reading the tables to propose a mapping…")
def _proposal(url: str, _wh: Warehouse, saved: str):
    from sqltraits_kit.modelling.features import TableMapping
    from sqltraits_kit.workflows.training_setup import propose_mapping

    mapping = TableMapping.from_dict(json.loads(saved)) if saved else None
    return propose_mapping(_wh, saved=mapping)


def mapping_proposal(wh: Warehouse):
    """The mapping pages start from: the project's for ``wh`` when it still fits, else a guess
    from names and types (``MappingProposal``; cached per warehouse and saved mapping)."""
    saved = choices(wh).mapping
    return _proposal(wh.url, wh, json.dumps(saved.to_dict(), sort_keys=True) if saved else "")


@st.cache_data(ttl=300, show_spinner="Counting events per period in the warehouse…")
def activity(url: str, _wh: Warehouse, mapping: str, grain: str) -> pd.DataFrame:
    from sqltraits_kit.modelling.features import TableMapping
    from sqltraits_kit.workflows.data_overview import activity as counted

    return counted(_wh, TableMapping.from_dict(json.loads(mapping)), grain=grain)


@st.cache_data(ttl=300, show_spinner="Reading the first rows…")
def preview(url: str, _wh: Warehouse, table: str, limit: int) -> pd.DataFrame:
    return _wh.preview(table, limit=limit)
