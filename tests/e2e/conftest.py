"""The browser tests' shared parts: one Chromium per session, the web UI, a fresh tab."""

from __future__ import annotations

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, Page
from tests.support.ci import fail_in_ci_else_skip
from tests.support.servers import local_webui


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        fail_in_ci_else_skip(f"{CHROMIUM} not found: install Debian's chromium package to run "
                             "browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def feedback_db(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('feedback')}/feedback.db"


@pytest.fixture(scope="module")
def webui_url(serving_url, feedback_db):
    with local_webui(serving_url, FEEDBACK_DB_URL=feedback_db) as url:
        yield url


@pytest.fixture
def ui(browser, webui_url):
    tab = Page(browser, webui_url)
    yield tab
    tab.context.close()
    assert tab.problems == []
