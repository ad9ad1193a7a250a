"""Notifications: Alertmanager's webhook payload, Slack, e-mail over a real SMTP server, retries
with backoff, routing by matchers, and a receiver that hangs never holding up a tick."""
from __future__ import annotations

import threading
import time

import pytest

from alert_helpers import WebhookReceiver, receivers_file, store_point
from server_helpers import run_ticks, services_of, wait_for


@pytest.fixture
def receiver():
    hook = WebhookReceiver()
    yield hook
    hook.close()


def test_webhook_payload_is_alertmanagers_version_4(make_app, tmp_path, receiver):
    app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
        {"name": "am", "kind": "webhook", "url": receiver.url}]), OUTBOX_POLL_INTERVAL=0.05,
        ALERT_KEEP_FIRING_FOR=0, EXTERNAL_URL="http://anomaly.example:5001")
    store_point(app, "cpu_usage", severity="critical")
    [body] = receiver.wait_for(1)
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "am"
    assert body["externalURL"] == "http://anomaly.example:5001" and body["truncatedAlerts"] == 0
    assert isinstance(body["groupKey"], str) and body["groupLabels"] == {"alertname": "anomaly"}
    [alert] = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {"alertname": "anomaly", "stream": "cpu_usage", "type": "anomaly",
                               "severity": "critical"}
    assert alert["annotations"]["summary"] == "anomaly on cpu_usage"
    assert alert["annotations"]["description"] == "test point of cpu_usage"
    assert alert["startsAt"].endswith("Z") and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert len(alert["fingerprint"]) == 16
    assert alert["generatorURL"].startswith("http://anomaly.example:5001/?alert=")
    assert body["commonLabels"] == alert["labels"]
    store_point(app, "cpu_usage", anomalous=False)  # keep_firing_for 0: resolved at once
    resolved = receiver.wait_for(2)[1]
    assert resolved["status"] == "resolved"
    [end] = resolved["alerts"]
    assert end["fingerprint"] == alert["fingerprint"] and end["startsAt"] == alert["startsAt"]
    assert end["endsAt"] != "0001-01-01T00:00:00Z" and end["endsAt"] >= end["startsAt"]


def test_slack_message_and_routing_by_matchers(make_app, tmp_path, receiver):
    critical_only = WebhookReceiver()
    try:
        app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
            {"name": "chat", "kind": "slack", "url": receiver.url, "send_resolved": False},
            {"name": "pager", "kind": "webhook", "url": critical_only.url,
             "matchers": {"severity": ">=critical", "stream": ["cpu_usage", "memory"]}}]),
            OUTBOX_POLL_INTERVAL=0.05)
        store_point(app, "cpu_usage", severity="critical")
        store_point(app, "memory", severity="medium")
        store_point(app, "disk", severity="critical")
        # Notifications due together go out in one message: count attachments, not messages.
        wait_for(lambda: sum(len(b["attachments"]) for b in list(receiver.bodies)) >= 3)
        slack = list(receiver.bodies)
        texts = [a["title"] for body in slack for a in body["attachments"]]
        assert sorted(texts) == ["[FIRING] anomaly on cpu_usage", "[FIRING] anomaly on disk",
                                 "[FIRING] anomaly on memory"]
        assert all("text" in body and body["attachments"][0]["color"].startswith("#") for body in slack)
        critical_only.wait_for(1)
        time.sleep(0.3)
        assert [a["labels"]["stream"] for a in critical_only.alerts()] == ["cpu_usage"]
        listed = app.test_client().get("/api/receivers").get_json()
        assert [r["name"] for r in listed["receivers"]] == ["chat", "pager"]
        assert "url" not in listed["receivers"][0]  # a webhook URL may hold a secret
    finally:
        critical_only.close()


def test_email_over_a_real_smtp_server(make_app, tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Inbox(Message):
        def handle_message(self, message):
            received.append(message)

    from live_server import free_port

    port = free_port()
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
            {"name": "mail", "kind": "email", "smtp_host": "127.0.0.1", "smtp_port": port,
             "from": "anomaly@example.org", "to": ["oncall@example.org", "lead@example.org"]}],
            ), OUTBOX_POLL_INTERVAL=0.05)
        store_point(app, "network_traffic", severity="high")
        wait_for(lambda: received)
        [message] = received
        assert message["Subject"] == "[FIRING:1] anomaly on network_traffic"
        assert message["From"] == "anomaly@example.org"
        assert message["To"] == "oncall@example.org, lead@example.org"
        text = message.get_payload()
        assert "severity: high" in text and "test point of network_traffic" in text
    finally:
        controller.stop()


def test_receivers_may_be_configured_in_toml(make_app, tmp_path, receiver):
    path = tmp_path / "receivers.toml"
    path.write_text(f'[[receivers]]\nname = "ops"\nkind = "webhook"\nurl = "{receiver.url}"\n'
                    '[receivers.matchers]\nstream = "cpu_usage"\n')
    app = make_app(ALERT_RECEIVERS=str(path), OUTBOX_POLL_INTERVAL=0.05)
    assert [r.name for r in services_of(app).alerts.receivers] == ["ops"]
    store_point(app, "cpu_usage")
    assert receiver.wait_for(1)[0]["alerts"][0]["labels"]["stream"] == "cpu_usage"


def test_a_bad_receivers_file_stops_the_start_with_a_clear_error(tmp_path):
    from server.settings import SettingsError
    from server_helpers import build_app

    path = receivers_file(tmp_path, [{"name": "x", "kind": "pigeon"}])
    with pytest.raises(SettingsError, match="kind must be one of webhook, slack, email"):
        build_app(tmp_path, ALERT_RECEIVERS=path)


def test_failed_deliveries_are_retried_with_backoff_until_delivered(make_app, tmp_path):
    flaky = WebhookReceiver(fail_next=3)
    try:
        app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
            {"name": "flaky", "kind": "webhook", "url": flaky.url}]), OUTBOX_POLL_INTERVAL=0.05,
            OUTBOX_RETRY_BASE=0.1, OUTBOX_RETRY_MAX=0.3)
        started = time.monotonic()
        store_point(app, "cpu_usage")
        flaky.wait_for(1)
        waited = time.monotonic() - started
        assert flaky.requests == 4
        # Backoff 0.1 + 0.2 + 0.3 (capped) between the four attempts.
        assert waited >= 0.55
        def outbox_row():
            reader = services_of(app).reader()
            try:
                row = reader.conn.execute("SELECT attempts, delivered_at, last_error FROM outbox").fetchone()
            finally:
                reader.close()
            return row if row["delivered_at"] is not None else None

        row = wait_for(outbox_row)  # recorded once the receiver has answered
        assert row["attempts"] == 4 and row["delivered_at"] is not None
        assert "HTTP 500" in row["last_error"]
    finally:
        flaky.close()


def test_a_hanging_receiver_never_holds_up_a_tick(make_app, tmp_path):
    release = threading.Event()
    hanging = WebhookReceiver(hold=release)
    try:
        app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
            {"name": "slow", "kind": "webhook", "url": hanging.url, "timeout": 30}]),
            OUTBOX_POLL_INTERVAL=0.05)
        store_point(app, "cpu_usage")
        wait_for(lambda: hanging.started == 1)  # the sender now waits inside the receiver's request
        points = run_ticks(app, 3)  # scores and commits while the delivery hangs
        assert len(points) == 9 and not release.is_set()
        assert hanging.bodies == []
        release.set()
        hanging.wait_for(1)
    finally:
        hanging.close()
