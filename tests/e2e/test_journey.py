from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_app_opens_on_the_data_page(page_, app_url):
    page_.goto(app_url)
    wait_for_app(page_)
    page_.get_by_role("heading", name="Data").wait_for()
    page_.get_by_text("Activity over time").wait_for()
    page_.locator(".js-plotly-plot").first.wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page_.screenshot(path=str(ARTIFACTS / "data-page.png"), full_page=True)
