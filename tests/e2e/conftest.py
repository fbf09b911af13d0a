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


def _serve(workdir: Path, env: dict[str, str], log_name: str, *, app: Path = ROOT / "app.py"):
    """`streamlit run app.py` in ``workdir`` with ``env``; yields its URL, stops it after."""
    port = _free_port()
    log = open(workdir / log_name, "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
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
def fresh_clone(tmp_path_factory) -> Path:
    """A fresh clone of this checkout's commit, with ``.streamlit/secrets.toml`` copied from
    the example exactly as the README tells a newcomer (nothing filled in)."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        skip_or_fail(f"not a git checkout: {head.stderr.strip()}")
    clone = tmp_path_factory.mktemp("newcomer") / "sql-traits-kit"
    for command in (
        ["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)],
        ["git", "-C", str(clone), "checkout", "--quiet", "--detach", head.stdout.strip()],
    ):
        subprocess.run(command, check=True, capture_output=True)
    secrets = clone / ".streamlit" / "secrets.toml"
    shutil.copyfile(clone / ".streamlit" / "secrets.toml.example", secrets)
    return clone


@pytest.fixture(scope="session")
def app_url(fresh_clone):
    """The README's first command's app part, `streamlit run app.py`, in the fresh clone (the
    shared virtualenv stands in for its `pip install`): the app builds its own sample there.

    Nothing of this machine's set-up leaks in: no warehouse URL, no Segment key or endpoint,
    so the Publish page offers the local test server. The sample is the size the other
    browser tests use (a newcomer's is 50,000 customers: minutes of training on 2 cores).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SQLTRAITS_", "SEGMENT_", "PYTHONPATH"))
    }
    env.update(SQLTRAITS_SAMPLE_CUSTOMERS=str(CUSTOMERS), PYTHONPATH=str(fresh_clone))
    yield from _serve(fresh_clone, env, "streamlit.log", app=Path("app.py"))


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


def _watched_page(browser):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    watch_runs(page)
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture
def page_(browser, app_url):
    yield from _watched_page(browser)


@pytest.fixture
def crm_page(browser, crm_app):
    yield from _watched_page(browser)
