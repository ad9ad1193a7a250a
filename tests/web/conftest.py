"""Fixtures for the dashboard's browser tests: the real server under gunicorn, and Chromium.

The server runs as a real gunicorn subprocess on a free port, with a temporary
database, a fast tick and a high injection rate, so the page sees live data and
anomalies within seconds. Chromium is the system one (/usr/bin/chromium); no
browser is ever downloaded (never run `playwright install`).
"""
from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from web_helpers import CHROMIUM, CHROMIUM_ARGS, LiveServer, open_dashboard


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("dashboard-server"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def dashboard(browser, live_server):
    context, page, probe = open_dashboard(browser, live_server)
    yield page, probe
    context.close()
    assert probe.errors == [], f"JavaScript errors on the page: {probe.errors}"
