"""The dashboard's sessions (server/sessions.py): each login its own signed session, a lifetime,
and a logout that ends the session for good, on every worker and after a restart."""
from __future__ import annotations

import re
import time

import pytest

from server.security import COOKIE_NAME, EXTENSION as GUARD
from server.sessions import (LONGEST_LIFETIME_S, ForgetRevocationsJob, Revocations,
                             RevokeSessionJob, Session, SessionSigner)
from server.settings import SettingsError
from server_helpers import build_app, services_of, shutdown_app, stored_rows

TOKEN = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POINT = {"source": "mine", "value": 1.5}
COOKIE_SHAPE = re.compile(r"[0-9a-f]{32}\.[0-9]+\.[0-9a-f]{64}")


@pytest.fixture
def guarded_app(make_app):
    return make_app(API_TOKEN=TOKEN)


def log_in(app) -> str:
    """Log in through the API; return the session cookie's value."""
    response = app.test_client().post("/api/login", json={"token": TOKEN})
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    return re.match(rf"{COOKIE_NAME}=([^;]*)", cookie)[1]


def holding(app, value: str):
    """A client that only has a copy of the cookie (another browser, a HAR file)."""
    client = app.test_client()
    client.set_cookie(COOKIE_NAME, value)
    return client


def log_out(app, value: str) -> dict:
    response = holding(app, value).post("/api/logout", json={})
    assert response.status_code == 200
    return response


def is_accepted(app, value: str) -> bool:
    """Whether ``value`` authenticates a write, asserting the refusal is the usual JSON 401."""
    response = holding(app, value).post("/api/submit", json=POINT)
    if response.status_code == 401:
        assert response.get_json()["error"] and response.headers["WWW-Authenticate"]
        return False
    assert response.status_code == 200, response.get_json()
    return True


def says_authenticated(app, value: str) -> bool:
    response = holding(app, value).get("/api/login")
    assert response.status_code == 200
    return response.get_json()["authenticated"]


def revoked_ids(app) -> list[str]:
    return [row[0] for row in stored_rows(app, "SELECT id FROM revoked_sessions ORDER BY id")]


# -- issuing -----------------------------------------------------------------------------------
def test_each_login_is_a_session_of_its_own_with_the_stated_lifetime(make_app):
    app = make_app(API_TOKEN=TOKEN, SESSION_HOURS=2)
    response = app.test_client().post("/api/login", json={"token": TOKEN})
    assert "Max-Age=7200" in response.headers["Set-Cookie"]
    first, second = log_in(app), log_in(app)
    assert first != second and COOKIE_SHAPE.fullmatch(first) and TOKEN not in first
    assert is_accepted(app, first) and is_accepted(app, second)
    assert says_authenticated(app, first)


def test_the_lifetime_setting_has_bounds(tmp_path):
    for hours in (0, 721):
        with pytest.raises(SettingsError, match="SESSION_HOURS"):
            build_app(tmp_path, API_TOKEN=TOKEN, SESSION_HOURS=hours)


# -- logout ------------------------------------------------------------------------------------
def test_logout_ends_that_session_and_a_replayed_copy_is_refused(guarded_app):
    ended, other = log_in(guarded_app), log_in(guarded_app)
    response = log_out(guarded_app, ended)
    assert response.get_json() == {"authenticated": False}
    assert f"{COOKIE_NAME}=;" in response.headers["Set-Cookie"]  # the browser drops it too
    assert not is_accepted(guarded_app, ended)
    assert not says_authenticated(guarded_app, ended)
    # A second logout with the copy is harmless; the other session goes on.
    log_out(guarded_app, ended)
    assert is_accepted(guarded_app, other)
    assert len(revoked_ids(guarded_app)) == 1


@pytest.mark.parametrize("cookie, headers", [(None, {}), ("garbage", {}), (None, AUTH)])
def test_logout_without_a_live_session_writes_nothing(guarded_app, cookie, headers):
    client = guarded_app.test_client() if cookie is None else holding(guarded_app, cookie)
    response = client.post("/api/logout", json={}, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"authenticated": False}
    assert revoked_ids(guarded_app) == []


def test_a_revocation_is_seen_at_once_by_a_process_that_looked_before(guarded_app, tmp_path):
    """Another worker keeps its own connection open: it must not go on seeing the old state."""
    value = log_in(guarded_app)
    other_worker = Revocations(tmp_path / "test.db")
    try:
        session_id = value.split(".")[0]
        assert not other_worker.is_revoked(session_id)
        log_out(guarded_app, value)
        assert other_worker.is_revoked(session_id)
    finally:
        other_worker.close()


def test_a_revocation_survives_a_restart_on_the_same_database(make_app):
    first = make_app(API_TOKEN=TOKEN)
    ended, kept = log_in(first), log_in(first)
    log_out(first, ended)
    shutdown_app(first)
    restarted = make_app(API_TOKEN=TOKEN)
    assert not is_accepted(restarted, ended)
    assert is_accepted(restarted, kept)  # a session that was not ended outlives the restart


# -- what is refused ---------------------------------------------------------------------------
def test_a_session_past_its_lifetime_is_refused(make_app):
    app = make_app(API_TOKEN=TOKEN, SESSION_HOURS=1)
    guard = app.extensions[GUARD]
    issued_at = time.time()
    value = log_in(app)
    guard.clock = lambda: issued_at + 3600 - 2
    assert is_accepted(app, value)
    guard.clock = lambda: issued_at + 3600 + 1
    assert not is_accepted(app, value) and not says_authenticated(app, value)
    # Logging out of an expired session is fine and has nothing to revoke.
    log_out(app, value)
    assert revoked_ids(app) == []


def _forged_mac(value: str) -> str:
    last = value[-1]
    return value[:-1] + ("0" if last != "0" else "1")


def _moved_issue_time(value: str) -> str:
    session_id, issued, mac = value.split(".")
    return f"{session_id}.{int(issued) + 1}.{mac}"


@pytest.mark.parametrize("make_value", [
    pytest.param(lambda value: "", id="empty"),
    pytest.param(lambda value: "garbage", id="garbage"),
    pytest.param(lambda value: "a.b.c", id="three parts"),
    pytest.param(lambda value: value + ".", id="trailing dot"),
    pytest.param(lambda value: value.upper(), id="upper case"),
    pytest.param(lambda value: "é" * 40 + value, id="not ascii"),
    pytest.param(lambda value: "9" * 4000, id="long"),
    pytest.param(_forged_mac, id="forged mac"),
    pytest.param(_moved_issue_time, id="issue time moved, mac kept"),
    pytest.param(lambda value: SessionSigner("another token", 3600).issue(time.time()),
                 id="another token's session"),
    pytest.param(lambda value: SessionSigner(TOKEN, 3600).issue(time.time() + 3600),
                 id="issued in the future"),
    pytest.param(lambda value: SessionSigner(TOKEN, 3600).issue(time.time() - 13 * 3600),
                 id="signed right, issued before the lifetime"),
])
def test_a_bad_cookie_is_simply_not_authenticated(guarded_app, make_value):
    value = make_value(log_in(guarded_app))
    assert not is_accepted(guarded_app, value)
    assert not says_authenticated(guarded_app, value)
    log_out(guarded_app, value)


def test_a_new_token_ends_every_session(make_app):
    first = make_app(API_TOKEN=TOKEN)
    value = log_in(first)
    shutdown_app(first)
    assert not is_accepted(make_app(API_TOKEN="a new token"), value)


def test_bearer_requests_do_not_look_at_the_cookie(guarded_app):
    ended = log_in(guarded_app)
    log_out(guarded_app, ended)
    response = holding(guarded_app, ended).post("/api/submit", json=POINT, headers=AUTH)
    assert response.status_code == 200


# -- retention ---------------------------------------------------------------------------------
def test_retention_forgets_revocations_only_once_no_lifetime_can_revive_them(guarded_app):
    svc = services_of(guarded_app)
    now = time.time()
    old = Session("a" * 32, int(now - LONGEST_LIFETIME_S - 10))
    recent = Session("b" * 32, int(now - 13 * 3600))  # past the default lifetime, not the longest
    for session in (old, recent):
        svc.writer.write(RevokeSessionJob(session), 5)
    assert svc.monitor.prune()["revoked_sessions"] == 1
    assert revoked_ids(guarded_app) == [recent.id]
    assert svc.writer.write(ForgetRevocationsJob(now=now + LONGEST_LIFETIME_S), 5) == 1
    assert revoked_ids(guarded_app) == []
