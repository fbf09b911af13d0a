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


def _serve(workdir: Path, env: dict[str, str], log_name: str):
    """`streamlit run app.py` in ``workdir`` with ``env``; yields its URL, stops it after."""
    port = _free_port()
    log = open(workdir / log_name, "w")  # noqa: SIM115 - closed at teardown
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
        pytest.fail("streamlit did not start:\n" + (workdir / log_name).read_text()[-3000:])
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(workdir / log_name, ARTIFACTS / log_name)


def _project(workdir: Path, *, traitsets: bool) -> Path:
    """The app's project folder (SQLTRAITS_PROJECT_DIR): never the checkout, which a journey
    would otherwise change (sqltraits.toml, a new trait set)."""
    folder = workdir / "project"
    (folder / "traitsets").mkdir(parents=True)
    if traitsets:
        for path in (ROOT / "traitsets").glob("*.toml"):
            shutil.copyfile(path, folder / "traitsets" / path.name)
    return folder


@pytest.fixture(scope="session")
def app_url(app_workdir, fake_segment_server):
    """`streamlit run app.py` in an empty working directory: the app builds its own sample."""
    env = {
        **os.environ,
        "SQLTRAITS_SAMPLE_CUSTOMERS": str(CUSTOMERS),
        "SQLTRAITS_MODELS_DIR": str(app_workdir / "models"),
        "SQLTRAITS_PROJECT_DIR": str(_project(app_workdir, traitsets=True)),
        "SEGMENT_WRITE_KEY": WRITE_KEY,
        "SEGMENT_ENDPOINT": fake_segment_server.url,
        "SQLTRAITS_MAX_REQUESTS_PER_SECOND": "0",
        "SQLTRAITS_MAX_EVENTS_PER_SECOND": "0",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SQLTRAITS_DB_URL", None)
    yield from _serve(app_workdir, env, "streamlit.log")


@pytest.fixture(scope="session")
def crm_app(tmp_path_factory):
    """The app on a warehouse that is not the demo (``tests.support.crm``: other names,
    integer ids, no activity tables), with no Segment write key: the local test server is
    the destination. Yields (the app's URL, its project folder, the warehouse URL)."""
    from tests.support.crm import build_crm

    workdir = tmp_path_factory.mktemp("crm_app")
    crm = build_crm(workdir / "crm.duckdb")
    project = _project(workdir, traitsets=False)
    env = {
        **os.environ,
        "SQLTRAITS_DB_URL": f"duckdb:///{crm}",
        "SQLTRAITS_MODELS_DIR": str(workdir / "models"),
        "SQLTRAITS_PROJECT_DIR": str(project),
        "PYTHONPATH": str(ROOT),
    }
    for name in ("SEGMENT_WRITE_KEY", "SEGMENT_ENDPOINT"):
        env.pop(name, None)
    for url in _serve(workdir, env, "streamlit-crm.log"):
        yield url, project, env["SQLTRAITS_DB_URL"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        page = item.funcargs.get("page_") or item.funcargs.get("crm_page")
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


@pytest.fixture
def crm_page(browser, crm_app):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    watch_runs(page)
    page.set_default_timeout(60_000)
    yield page
    context.close()
