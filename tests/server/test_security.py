"""server/security.py on the app factory: token, Origin, Host, content type, rate limit, headers,
and user streams' listing and deletion."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from server.settings import REPO_ROOT, SettingsError
from server_helpers import build_app, shutdown_app

TOKEN = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POINT = {"source": "mine", "value": 1.5}


@pytest.fixture
def guarded(make_app):
    return make_app(API_TOKEN=TOKEN).test_client()


# -- token ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path, body", [
    ("post", "/api/submit", POINT),
    ("post", "/api/configure", {"source": "cpu_usage", "threshold": 0.8}),
    ("delete", "/api/streams/mine", None),
    ("put", "/api/submit", POINT),  # no such route: refused before routing, like any new one
])
def test_every_mutating_request_needs_the_token(guarded, method, path, body):
    response = getattr(guarded, method)(path, json=body)
    assert response.status_code == 401
    assert response.get_json()["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = getattr(guarded, method)(path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "wrong" in wrong.get_json()["error"]


def test_a_route_added_later_is_guarded_without_a_decorator(make_app):
    app = make_app(API_TOKEN=TOKEN)
    app.add_url_rule("/api/new-thing", "new_thing", lambda: {"done": True}, methods=["POST"])
    client = app.test_client()
    assert client.post("/api/new-thing", json={}).status_code == 401
    assert client.post("/api/new-thing", json={}, headers=AUTH).status_code == 200


def test_the_token_lets_writes_through_and_reads_stay_public(guarded):
    assert guarded.post("/api/submit", json=POINT, headers=AUTH).status_code == 200
    assert guarded.post("/api/configure", json={"source": "cpu_usage", "threshold": 0.8},
                        headers=AUTH).status_code == 200
    for path in ("/api/status", "/api/data/mine", "/api/streams", "/", "/health"):
        assert guarded.get(path).status_code == 200, path


def test_token_only_reading(make_app):
    client = make_app(API_TOKEN=TOKEN, READ_ACCESS="token").test_client()
    for path in ("/api/status", "/api/stats", "/api/anomalies", "/api/stream/anomalies"):
        assert client.get(path).status_code == 401, path
    assert client.get("/api/status", headers=AUTH).status_code == 200
    # The page, its assets, /health and the API description stay public: the page must load
    # to ask for the token.
    for path in ("/", "/health", "/api/openapi.json", "/static/dashboard.js", "/api/login"):
        assert client.get(path).status_code == 200, path


def test_token_only_reading_without_a_token_is_refused_at_start(tmp_path):
    with pytest.raises(SettingsError, match="READ_ACCESS"):
        build_app(tmp_path, READ_ACCESS="token")


def test_without_a_token_nothing_asks_for_one(client):
    assert client.post("/api/submit", json=POINT).status_code == 200
    assert client.get("/api/login").get_json() == {
        "token_required": False, "read_requires_token": False, "authenticated": False}


def test_login_sets_an_httponly_strict_cookie_that_authenticates(guarded):
    assert guarded.post("/api/login", json={"token": "nope"}).status_code == 401
    response = guarded.post("/api/login", json={"token": TOKEN})
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # the cookie is derived from the token, not the token itself
    assert guarded.get("/api/login").get_json()["authenticated"] is True
    assert guarded.post("/api/submit", json=POINT).status_code == 200  # the cookie, no header
    guarded.post("/api/logout", json={})
    assert guarded.post("/api/submit", json=POINT).status_code == 401


def test_the_token_is_compared_in_constant_time():
    source = (REPO_ROOT / "server" / "security.py").read_text()
    assert "hmac.compare_digest" in source and "== self.token" not in source


# -- cross-site ----------------------------------------------------------------------------
def test_a_body_that_is_not_declared_json_is_refused(client):
    # What a cross-site page can send without a preflight: text/plain and form types.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = client.post("/api/configure", data='{"source": "cpu_usage", "threshold": 0.01}',
                               headers={"Content-Type": content_type})
        assert response.status_code == 415, content_type
        assert "application/json" in response.get_json()["error"]
    assert client.get("/api/configure?source=cpu_usage").get_json()["config"]["threshold"] != 0.01


@pytest.mark.parametrize("origin, status", [
    ("http://evil.example", 403), ("null", 403), ("http://localhost:9999", 403),
    ("http://localhost", 200), ("https://dashboard.example", 200),
])
def test_origin_of_mutating_requests(make_app, origin, status):
    client = make_app(ALLOWED_ORIGINS="https://dashboard.example").test_client()
    response = client.post("/api/submit", json=POINT, headers={"Origin": origin})
    assert response.status_code == status
    if status == 403:
        assert "origin" in response.get_json()["error"]


def test_origin_of_websocket_handshakes(client):
    response = client.get("/ws", headers={"Origin": "http://evil.example", "Upgrade": "websocket",
                                          "Connection": "Upgrade"})
    assert response.status_code == 403


@pytest.mark.parametrize("host, status", [
    ("localhost", 200), ("127.0.0.1:5001", 200), ("[::1]:5001", 200), ("LOCALHOST", 200),
    ("evil.example", 400), ("rebind.attacker.example:5001", 400), ("anomaly.lan", 200),
])
def test_host_header(make_app, host, status):
    client = make_app(ALLOWED_HOSTS="anomaly.lan").test_client()
    response = client.get("/api/status", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert "host" in response.get_json()["error"]


def test_any_host_when_asked(make_app):
    client = make_app(ALLOWED_HOSTS="*").test_client()
    assert client.get("/api/status", headers={"Host": "whatever.example"}).status_code == 200


# -- headers -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/api/status", "/static/dashboard.js", "/api/nosuch", "/health"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_page_has_no_inline_script_or_handlers(client):
    import re

    html = client.get("/").get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> block"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler attribute"
    assert "javascript:" not in html


# -- rate limit --------------------------------------------------------------------------
def test_mutating_requests_are_rate_limited_per_client(make_app):
    client = make_app(RATE_LIMIT="3 per minute").test_client()
    answers = [client.post("/api/submit", json=POINT).status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    limited = client.post("/api/submit", json=POINT)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "rate limit" in limited.get_json()["error"]
    # Reads are not counted, and another address has its own budget.
    assert client.get("/api/status").status_code == 200
    other = client.post("/api/submit", json=POINT, environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert other.status_code == 200


def test_guessing_the_token_is_rate_limited_too(make_app):
    client = make_app(API_TOKEN=TOKEN, RATE_LIMIT="2 per minute").test_client()
    codes = [client.post("/api/login", json={"token": f"guess{i}"}).status_code for i in range(3)]
    assert codes == [401, 401, 429]


def test_a_bad_rate_limit_setting_stops_the_start(tmp_path):
    with pytest.raises(SettingsError, match="RATE_LIMIT"):
        build_app(tmp_path, RATE_LIMIT="lots")


# -- user streams ------------------------------------------------------------------------
def test_listing_shows_owner_and_creation_time_of_user_streams(guarded):
    guarded.post("/api/submit", json=POINT, headers=AUTH)
    guarded.post("/api/submit", json={"source": "theirs", "value": 2.0}, headers=AUTH,
                 environ_base={"REMOTE_ADDR": "10.0.0.8"})
    listing = guarded.get("/api/streams").get_json()
    by_name = {s["name"]: s for s in listing["streams"]}
    assert by_name["cpu_usage"]["kind"] == "builtin" and "owner" not in by_name["cpu_usage"]
    assert by_name["mine"]["owner"]["address"] == "127.0.0.1"
    assert by_name["theirs"]["owner"]["address"] == "10.0.0.8"
    assert by_name["mine"]["owner"]["token"].startswith("token:")
    assert TOKEN not in str(listing)
    assert by_name["mine"]["created_at"] > 0
    assert listing["user_streams"] == 2


def test_delete_frees_the_name_and_the_slot(make_app):
    app = make_app(API_TOKEN=TOKEN, MAX_USER_STREAMS=1)
    client = app.test_client()
    assert client.post("/api/submit", json=POINT, headers=AUTH).status_code == 200
    full = client.post("/api/submit", json={"source": "other", "value": 1.0}, headers=AUTH)
    assert full.status_code == 409 and "limit" in full.get_json()["error"]
    assert client.delete("/api/streams/mine").status_code == 401
    deleted = client.delete("/api/streams/mine", headers=AUTH)
    assert deleted.status_code == 200 and deleted.get_json()["rows"]["points"] == 1
    assert client.get("/api/data/mine").status_code == 404
    assert "mine" not in {s["name"] for s in client.get("/api/streams").get_json()["streams"]}
    assert client.delete("/api/streams/mine", headers=AUTH).status_code == 404
    # The slot is free, and the name can come back with other fields.
    again = client.post("/api/submit", json={"source": "mine", "values": {"a": 1.0, "b": 2.0}},
                        headers=AUTH)
    assert again.status_code == 200


def test_built_in_streams_cannot_be_deleted(guarded):
    response = guarded.delete("/api/streams/cpu_usage", headers=AUTH)
    assert response.status_code == 409 and "built-in" in response.get_json()["error"]
    assert guarded.get("/api/data/cpu_usage").status_code == 200


def test_a_deleted_stream_stays_deleted_after_a_restart(make_app):
    first = make_app()
    client = first.test_client()
    client.post("/api/submit", json=POINT)
    client.post("/api/submit", json={"source": "kept", "value": 1.0})
    assert client.delete("/api/streams/mine").status_code == 200
    shutdown_app(first)
    names = {s["name"] for s in make_app().test_client().get("/api/streams").get_json()["streams"]}
    assert "kept" in names and "mine" not in names


@pytest.mark.parametrize("name", ["web01/cpu", "a/b/c"])
def test_a_stream_named_with_a_slash_is_read_charted_and_deleted(make_app, name):
    """A name the submit call accepts is served by every route that takes one (the dashboard encodes it)."""
    client = make_app().test_client()
    assert client.post("/api/submit", json={"source": name, "value": 2.5}).status_code == 200
    encoded = name.replace("/", "%2F")
    data = client.get(f"/api/data/{encoded}")
    assert data.status_code == 200 and data.get_json()["source"] == name
    assert [p["values"] for p in data.get_json()["points"]] == [{"value": 2.5}]
    history = client.get(f"/api/history/{encoded}")
    assert history.status_code == 200 and len(history.get_json()["points"]) == 1
    assert client.delete(f"/api/streams/{encoded}").status_code == 200
    assert client.get(f"/api/data/{encoded}").status_code == 404


# -- bind address ------------------------------------------------------------------------
def _gunicorn_conf(environ: dict) -> tuple[dict, str]:
    """Execute server/gunicorn_conf.py in a child with ``environ``; its ``bind`` and its stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "ANOMALY_API_TOKEN")}
    env.update(environ)
    code = ("import runpy, json; c = runpy.run_path('server/gunicorn_conf.py'); "
            "print(json.dumps({'bind': c['bind'], 'worker_class': c['worker_class']}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=30, check=True)
    return json.loads(done.stdout), done.stderr


def test_without_a_token_the_server_binds_loopback_whatever_host_asks():
    conf, stderr = _gunicorn_conf({"HOST": "0.0.0.0", "PORT": "5999"})
    assert conf["bind"] == "127.0.0.1:5999"
    assert "ANOMALY_API_TOKEN is not set" in stderr and "HOST=0.0.0.0 is ignored" in stderr
    conf, stderr = _gunicorn_conf({"HOST": "127.0.0.1", "PORT": "5999"})
    assert conf["bind"] == "127.0.0.1:5999" and "loopback" in stderr


def test_with_a_token_the_server_binds_where_host_asks():
    conf, stderr = _gunicorn_conf({"HOST": "0.0.0.0", "PORT": "5999", "ANOMALY_API_TOKEN": TOKEN})
    assert conf["bind"] == "0.0.0.0:5999" and stderr == ""
    assert conf["worker_class"] == "server.gunicorn_limits.ClientCapGeventWorker"


def test_migration_3_adds_owners_to_an_existing_database(tmp_path):
    from server.storage import MIGRATIONS, migrate, open_reader, open_writer

    path = tmp_path / "old.db"
    db = open_writer(path, "NORMAL")
    migrate(db, MIGRATIONS[:2])
    db["streams"].insert({"name": "old_user", "fields": '["value"]', "kind": "user",
                          "description": "", "units": "{}", "created_at": 1.0})
    applied = migrate(db)
    assert applied[0] == 3 and applied == sorted(applied)  # later migrations follow it
    db.close()
    reader = open_reader(path)
    try:
        (old,) = reader.streams()
    finally:
        reader.close()
    assert old["owner"] == {"address": None, "token": None} and old["created_at"] == 1.0


@pytest.mark.parametrize("method, url, kwargs, spec_path, status", [
    ("post", "/api/submit", {"json": POINT}, "/api/submit", 401),
    ("post", "/api/configure", {"json": {"source": "cpu_usage", "threshold": 0.5},
                                "headers": {**AUTH, "Origin": "http://evil.example"}}, "/api/configure", 403),
    ("post", "/api/submit", {"data": "{}", "headers": {**AUTH, "Content-Type": "text/plain"}},
     "/api/submit", 415),
    ("delete", "/api/streams/cpu_usage", {"headers": AUTH}, "/api/streams/{name}", 409),
    ("get", "/api/streams", {"headers": {"Host": "evil.example"}}, "/api/streams", 400),
    ("post", "/api/login", {"json": {"token": "nope"}}, "/api/login", 401),
    ("get", "/api/streams", {}, "/api/streams", 200),
    ("delete", "/api/streams/mine", {"headers": AUTH}, "/api/streams/{name}", 200),
])
def test_security_answers_are_documented_and_fit_their_schema(guarded, method, url, kwargs,
                                                              spec_path, status):
    from test_openapi import response_validator

    guarded.post("/api/submit", json=POINT, headers=AUTH)
    response = getattr(guarded, method)(url, **kwargs)
    assert response.status_code == status
    document = guarded.get("/api/openapi.json").get_json()
    response_validator(document, spec_path, method, status).validate(response.get_json())


def test_every_mutating_operation_documents_the_security_answers(client):
    document = client.get("/api/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method != "get" and path.startswith("/api/"):
                assert {"403", "408", "415", "429"} <= set(operation["responses"]), (path, method)
                if path != "/api/logout":
                    assert "401" in operation["responses"], (path, method)
