"""A real `streamlit run app.py` driven by Debian's headless Chromium through Playwright.

No browser is downloaded: Playwright launches the system `chromium` (apt package). On a machine
without it the suite skips with the reason; `.ci/run` installs it and requires the suite.

Waiting for the app: the server announces each script run on the websocket (``new_session``
at the start, ``script_finished`` at the end); :class:`ScriptRuns` counts them, and an action
waits until the run it started has finished and the page shows it. Streamlit's running-man
status widget is no signal (it appears only after a delay), nor is the root element's
``data-test-script-state`` alone (React may never render "running" for a short run).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
WRITE_KEY = "e2e_write_key_0123456789"
CUSTOMERS = 3_000  # the sample the app builds on first start
VIEWPORT = {"width": 1400, "height": 1000}
RUN_TIMEOUT_MS = 600_000  # the longest step (training, scoring) on 2 shared cores, with margin
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
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


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -r requirements-dev.txt)")
    exe = _chromium()
    if exe is None:
        skip_or_fail("no chromium on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def fake_segment_server():
    from tests.segment.fake_segment import FakeSegmentServer

    with FakeSegmentServer(write_keys={WRITE_KEY}) as server:
        yield server


@pytest.fixture(scope="session")
def app_workdir(tmp_path_factory) -> Path:
    """The app's empty working directory: its sample_data/ and models/ end up here."""
    return tmp_path_factory.mktemp("app")


@pytest.fixture(scope="session")
def app_url(app_workdir, fake_segment_server):
    """`streamlit run app.py` in an empty working directory: the app builds its own sample."""
    workdir = app_workdir
    port = _free_port()
    env = {
        **os.environ,
        "SQLTRAITS_SAMPLE_CUSTOMERS": str(CUSTOMERS),
        "SQLTRAITS_MODELS_DIR": str(workdir / "models"),
        "SEGMENT_WRITE_KEY": WRITE_KEY,
        "SEGMENT_ENDPOINT": fake_segment_server.url,
        "SQLTRAITS_MAX_REQUESTS_PER_SECOND": "0",
        "SQLTRAITS_MAX_EVENTS_PER_SECOND": "0",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SQLTRAITS_DB_URL", None)
    log = open(workdir / "streamlit.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if requests.get(f"{url}/_stcore/health", timeout=2).text.strip() == "ok":
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
    if proc.poll() is not None:
        log.close()
        pytest.fail("streamlit did not start:\n" + (workdir / "streamlit.log").read_text()[-3000:])
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(workdir / "streamlit.log", ARTIFACTS / "streamlit.log")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        page = item.funcargs.get("page_")
        if page is not None:
            try:
                screenshot(page, item.name)
            except Exception as exc:  # the test's own failure is the one to report
                report.sections.append(("screenshot", f"no screenshot: {exc!r}"))


@pytest.fixture
def page_(browser, app_url):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    _RUNS[page] = ScriptRuns(page)
    page.set_default_timeout(60_000)
    yield page
    context.close()


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
