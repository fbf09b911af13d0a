"""Driving the app in a browser (the e2e journey): counting the app's script runs from its
websocket, waiting for them, moving between pages, screenshots and the errors a page shows."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from pathlib import Path

from tests.support import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CUSTOMERS = 3_000  # the sample the app builds on first start
VIEWPORT = {"width": 1400, "height": 1000}
RUN_TIMEOUT_MS = 600_000  # the longest step (training, scoring) on 2 shared cores, with margin
FRONTEND_IDLE = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  return app !== null && app.dataset.testScriptState === "notRunning"
    && app.dataset.testConnectionState === "CONNECTED";
}"""


class ScriptRuns:
    """The app's script runs, counted from the server's messages on the page's websocket."""

    def __init__(self, page) -> None:
        self.started = 0
        self.finished = 0
        page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        if ws.url.endswith("/_stcore/stream"):
            ws.on("framereceived", self._frame)

    def _frame(self, payload: bytes | str) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if not isinstance(payload, bytes):
            return
        kind = ForwardMsg.FromString(payload).WhichOneof("type")
        if kind == "new_session":  # sent as every run starts
            self.started += 1
        elif kind == "script_finished":  # also when a rerun cuts a run short
            self.finished += 1


_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def watch_runs(page) -> None:
    """Count ``page``'s script runs from now on (every helper below waits on them)."""
    _RUNS[page] = ScriptRuns(page)


def _until(page, ready: Callable[[], bool], timeout_ms: float, what: str) -> None:
    """Poll ``ready`` while Playwright delivers the page's events."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_ms / 1000:.0f} s waiting for {what}")
        page.wait_for_timeout(50)


def wait_for_app(page, *, after: int = 0, timeout: float = RUN_TIMEOUT_MS) -> None:
    """Wait until more than ``after`` script runs have finished, none is running, and the page
    has rendered the result."""
    runs = _RUNS[page]
    _until(
        page,
        lambda: runs.finished > after and runs.finished >= runs.started,
        timeout,
        f"script run {after + 1} to finish",
    )
    page.wait_for_function(FRONTEND_IDLE, timeout=timeout, polling=50)


def rerun(
    page,
    action: Callable[[], object],
    *,
    timeout: float = RUN_TIMEOUT_MS,
    start_timeout: float = 30_000,
) -> None:
    """Do ``action`` (a click, a key press), then wait for the run it starts to end.

    An action that starts no run fails after ``start_timeout`` ms, not after the long wait.
    """
    runs = _RUNS[page]
    started, finished = runs.started, runs.finished
    action()
    _until(page, lambda: runs.started > started, start_timeout, "the action to start a run")
    wait_for_app(page, after=finished, timeout=timeout)


def open_app(page, url: str) -> None:
    finished = _RUNS[page].finished
    page.goto(url)
    wait_for_app(page, after=finished)


def go_to(page, title: str) -> None:
    """Open a page from the sidebar navigation, as a user does."""
    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
    try:
        rerun(page, link.click, start_timeout=10_000)
    except AssertionError:  # a click that landed while the sidebar re-rendered: once more
        rerun(page, link.click, start_timeout=10_000)
    page.get_by_role("heading", name=title, exact=True).first.wait_for()


def screenshot(page, name: str) -> Path:
    """The whole page as ``test-artifacts/<name>.png``.

    Streamlit scrolls inside its main container, so Playwright's ``full_page`` sees one
    viewport: the viewport is stretched to the content for the shot, then put back.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll(\"[data-testid='stMain'], "
        "[data-testid='stSidebarContent']\")].map((e) => e.scrollHeight), 0)"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
    try:
        page.wait_for_load_state("networkidle")  # lazily loaded widget code and fonts
        page.wait_for_timeout(500)  # charts resize to the new viewport
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(VIEWPORT)
    return path


def problems(page) -> list[str]:
    """Tracebacks and error boxes on the page: the journey must show none."""
    found = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
    return [found.nth(i).inner_text() for i in range(found.count())]


# ------------------------------------------------------------------ widgets, found by their key
# Streamlit gives each keyed element the class ``st-key-<key>``: the page files' own names.


def keyed(page, key: str):
    return page.locator(f".st-key-{key}")


def _open(page, key: str):
    """Open the dropdown of the selectbox or multiselect ``key``.

    A dropdown opened while the page still scrolls to the widget closes again: scroll first,
    and click once more if no option shows.
    """
    box = keyed(page, key).get_by_role("combobox")
    box.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box.click()
    try:
        page.get_by_role("option").first.wait_for(timeout=5_000)
    except Exception:  # playwright's TimeoutError: the click landed while it scrolled
        box.click()


def choose(page, key: str, option: str) -> None:
    """Pick ``option`` in the selectbox ``key``."""
    _open(page, key)
    rerun(page, page.get_by_role("option", name=option, exact=True).click)


def selected(page, key: str) -> str:
    return keyed(page, key).get_by_role("combobox").input_value()


def pick(page, key: str, option: str) -> None:
    """Pick ``option`` in the radio group ``key``."""
    rerun(page, keyed(page, key).get_by_text(option, exact=True).click)


def click(page, key: str) -> None:
    rerun(page, keyed(page, key).get_by_role("button").click)


def text_of(page, key: str) -> str:
    return keyed(page, key).get_by_role("textbox").input_value()


def assert_clean(page) -> None:
    """No error on the page, and no raw number or timestamp in its text (code blocks are exact
    SQL or JSON; dataframes are drawn on a canvas: their cells are checked by AppTest tests)."""
    from tests.support.readable import raw_renderings

    found = problems(page)
    assert not found, f"errors on the page: {found}"
    text = page.get_by_test_id("stMain").inner_text()
    code = page.get_by_test_id("stMain").get_by_test_id("stCode")  # SQL and JSON: exact text
    for i in range(code.count()):
        text = text.replace(code.nth(i).inner_text(), "")
    raw = raw_renderings(text)
    assert not raw, f"raw renderings on the page: {raw}"


def alert(page, kind: str, text: str):
    """The visible alert box (success, info, warning, error) that contains ``text``."""
    box = page.get_by_test_id(f"stAlertContent{kind.title()}").filter(has_text=text)
    box.first.wait_for()
    return box.first


def type_into(page, key: str, text: str) -> None:
    """Replace the text of the input ``key`` (a text or number input) and submit it."""
    box = keyed(page, key).locator("input")
    box.fill(text)
    rerun(page, lambda: box.press("Enter"))


def tick(page, key: str) -> None:
    """Click the checkbox ``key`` (ticks or unticks it)."""
    rerun(page, keyed(page, key).locator("label").first.click)


def add_option(page, key: str, option: str) -> None:
    """Add ``option`` to the multiselect ``key``."""
    _open(page, key)
    rerun(page, page.get_by_role("option", name=option, exact=True).click)
    page.keyboard.press("Escape")


def metrics(page) -> dict[str, str]:
    """Every st.metric on the page: label -> value."""
    found = page.get_by_test_id("stMetric")
    return {
        found.nth(i).get_by_test_id("stMetricLabel").inner_text().strip(): found.nth(i)
        .get_by_test_id("stMetricValue")
        .inner_text()
        .strip()
        for i in range(found.count())
    }
