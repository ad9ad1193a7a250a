"""Start-up in two steps (server/startup.py), with the restore held by the test.

While the engine is restored /health answers at once (200, ready false, the step
in progress); requests that need the engine wait for it, at most ``wait_s``
seconds, then 503 with Retry-After; a failed restore answers 503; a shutdown
during the restore leaves the snapshot on disk alone.  Under gunicorn the
same happens behind the worker (tests/server/test_restart_live.py).
"""
from __future__ import annotations

import threading
import time

import pytest

from server.startup import Startup, StartupFailed
from server_helpers import services_of


def held(app, release: threading.Event, wait_s: float = 30.0) -> Startup:
    """Replace the app's (finished) restore by one that waits for ``release``, and begin it."""
    startup = Startup([("waiting for the test", release.wait, False)], on_ready=lambda: None, wait_s=wait_s)
    services_of(app).startup = startup
    threading.Thread(target=startup.begin, daemon=True).start()  # no gevent here: it runs inline
    deadline = time.monotonic() + 5
    while startup.phase != "waiting for the test" and time.monotonic() < deadline:
        time.sleep(0.01)
    return startup


def test_health_answers_and_a_submit_waits_until_the_engine_is_restored(app):
    release = threading.Event()
    held(app, release)
    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "starting" and body["ready"] is False
    assert body["starting"] == "waiting for the test" and body["database"] is True
    answers = []
    submit = threading.Thread(target=lambda: answers.append(
        app.test_client().post("/api/submit", json={"source": "user_a", "value": 1.0})))
    submit.start()
    assert client.get("/").status_code == 200  # the page is served meanwhile
    submit.join(2.0)  # a submit takes milliseconds: this one waits for the engine
    assert submit.is_alive() and not answers
    released = time.monotonic()
    release.set()
    submit.join(10)
    assert time.monotonic() - released < 5
    assert answers[0].status_code == 200, answers[0].get_json()
    assert client.get("/health").get_json()["ready"] is True


def test_a_request_that_waits_too_long_is_answered_503_with_retry_after(app):
    release = threading.Event()
    held(app, release, wait_s=0.2)
    client = app.test_client()
    try:
        for method, path in [("post", "/api/submit"), ("get", "/api/streams")]:
            started = time.monotonic()
            response = getattr(client, method)(path, json={"source": "user_a", "value": 1.0})
            assert response.status_code == 503 and response.headers["Retry-After"] == "1"
            assert "starting (waiting for the test)" in response.get_json()["error"]
            assert 0.2 <= time.monotonic() - started < 5
        assert client.get("/health").status_code == 200
    finally:
        release.set()


def test_a_failed_restore_answers_503_everywhere(app):
    def fail():
        raise RuntimeError("the snapshot's disk is gone")

    startup = Startup([("restoring the snapshot", fail, False)], on_ready=lambda: None, wait_s=1.0)
    services_of(app).startup = startup
    with pytest.raises(StartupFailed, match="disk is gone"):
        startup.begin()
    client = app.test_client()
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["status"] == "failed" and "disk is gone" in health.get_json()["failed"]
    response = client.post("/api/submit", json={"source": "user_a", "value": 1.0})
    assert response.status_code == 503 and "failed to start" in response.get_json()["error"]


def test_a_shutdown_during_the_restore_keeps_the_snapshot_on_disk(app, tmp_path):
    snapshot = tmp_path / "test.db.snapshot.npz"
    services = services_of(app)
    services.snapshots.save()
    saved = snapshot.stat().st_mtime_ns
    release = threading.Event()
    startup = held(app, release)
    started_jobs = []
    startup.on_ready = lambda: started_jobs.append(1)
    services.shutdown()  # the engine is half restored: its state must not replace the snapshot
    release.set()
    time.sleep(0.1)
    assert snapshot.stat().st_mtime_ns == saved
    assert not startup.ready and not started_jobs  # nor does the scheduler start afterwards
