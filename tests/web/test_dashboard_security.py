"""The dashboard under its Content-Security-Policy, and its token flow against a guarded server."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from web_helpers import LAPTOP, SCREENSHOTS, TICK_INTERVAL, ServerProcess

TOKEN = "dashboard-test-token"

# Collects every CSP violation the page reports (installed before any page script runs).
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + e.sourceFile + ':' + e.lineNumber);
});
"""


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("guarded-dashboard"), settings={
        "TICK_INTERVAL": TICK_INTERVAL, "SEED": 7, "SYNCHRONOUS": "NORMAL",
        "API_TOKEN": TOKEN, "READ_ACCESS": "token"}).start()
    yield server
    server.kill()


def _page(browser):
    context = browser.new_context(viewport=LAPTOP)
    context.add_init_script(CSP_PROBE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    return context, page, errors


def test_the_dashboard_runs_under_its_content_security_policy(browser, live_server):
    context, page, errors = _page(browser)
    try:
        response = page.goto(live_server.url("/"))
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_function("() => window.dashboard && window.dashboard.connection === 'live'",
                               timeout=15000)
        page.wait_for_function("() => Object.keys(window.dashboard.charts).length >= 9", timeout=15000)
        page.wait_for_function("() => document.querySelectorAll('#charts canvas').length >= 9")
        # The tuning panel and the tone switch run script too.
        page.locator("#sound-switch").click()
        assert page.evaluate("window.__cspViolations") == []
        assert errors == []
        # Without a token the login button stays hidden.
        expect(page.locator("#login-button")).to_be_hidden()
    finally:
        context.close()


def test_token_prompt_then_live_dashboard_with_an_httponly_cookie(browser, guarded_server):
    context, page, errors = _page(browser)
    base = f"http://127.0.0.1:{guarded_server.port}"
    try:
        page.goto(base + "/")
        dialog = page.locator("#login")
        expect(dialog).to_be_visible(timeout=10000)
        expect(page.locator("#connection")).not_to_have_attribute("data-state", "live")

        page.fill("#login-token", "not the token")
        page.locator("#login-form button[type=submit]").click()
        expect(page.locator("#login-message")).to_contain_text("wrong")
        expect(dialog).to_be_visible()

        page.fill("#login-token", TOKEN)
        with page.expect_navigation():
            page.locator("#login-form button[type=submit]").click()
        page.wait_for_function("() => window.dashboard && window.dashboard.connection === 'live'",
                               timeout=15000)
        page.wait_for_function("() => Object.keys(window.dashboard.charts).length >= 9", timeout=15000)
        expect(dialog).to_be_hidden()
        expect(page.locator("#login-button")).to_have_text("Log out")

        cookie = next(c for c in context.cookies() if c["name"] == "anomaly_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert TOKEN not in cookie["value"]
        assert "anomaly_session" not in page.evaluate("document.cookie")  # scripts cannot read it

        # A write from the page goes through with the cookie alone.
        page.fill("#submit-source", "web_token_stream")
        page.fill("#submit-values", "42")
        page.press("#submit-values", "Enter")  # submits the form (no click on a moving layout)
        expect(page.locator("#submit-message")).not_to_contain_text("token", timeout=10000)
        page.wait_for_function("() => window.dashboard.charts['web_token_stream'] !== undefined",
                               timeout=10000)
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dashboard-logged-in.png"))

        # Logging out drops the session: the page asks again.
        with page.expect_navigation():
            page.locator("#login-button").click()
        expect(dialog).to_be_visible(timeout=10000)
        assert page.evaluate("window.__cspViolations") == []
        assert errors == []
    finally:
        context.close()
