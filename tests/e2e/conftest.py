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
from pathlib import Path

import pytest
import requests

from tests.support import ROOT, skip_or_fail
from tests.support.browser import ARTIFACTS, CUSTOMERS, VIEWPORT, screenshot, watch_runs

WRITE_KEY = "e2e_write_key_0123456789"
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
    from sqltraits_kit.publishing.standin import FakeSegmentServer

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
    watch_runs(page)
    page.set_default_timeout(60_000)
    yield page
    context.close()
