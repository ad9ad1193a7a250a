"""Receivers: where notifications go, configured as data, and how each kind is sent.

``ALERT_RECEIVERS`` names a JSON or TOML file (by its suffix) holding a list of
receivers::

    {"receivers": [
      {"name": "ops", "kind": "webhook", "url": "http://alerts.example/hook"},
      {"name": "chat", "kind": "slack", "url": "https://hooks.slack.com/services/...",
       "matchers": {"severity": ">=high"}},
      {"name": "mail", "kind": "email", "smtp_host": "127.0.0.1", "smtp_port": 25,
       "from": "anomaly@example.org", "to": ["oncall@example.org"],
       "matchers": {"stream": ["cpu_usage", "network_traffic"]}, "send_resolved": false}
    ]}

* ``webhook``: Alertmanager's webhook payload, version 4 (``status``, ``alerts[]`` with
  ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``, ``generatorURL``),
  so anything that takes Alertmanager's webhooks takes ours.
* ``slack``: a Slack-compatible incoming-webhook message (``text`` plus one attachment per alert).
* ``email``: a plain-text message over SMTP (optional ``starttls``, ``username`` and
  ``password_env``, the name of an environment variable holding the password).

A receiver takes the alerts its ``matchers`` select (server/alerts/silences.py; none: all).
"""
from __future__ import annotations

import json
import os
import smtplib
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from ..validation import InvalidRequest
from .silences import matches, parse_matchers
from .subjects import anomalies_path

__all__ = ["DeliveryError", "Receiver", "load_receivers", "render", "send"]

KINDS = ("webhook", "slack", "email")
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing


class DeliveryError(RuntimeError):
    """A receiver did not take a notification (it is retried later)."""


@dataclass
class Receiver:
    name: str
    kind: str
    url: str | None = None
    matchers: dict[str, Any] = field(default_factory=dict)
    send_resolved: bool = True
    smtp_host: str | None = None
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    sender: str | None = None
    to: list[str] = field(default_factory=list)
    timeout_s: float = 5.0

    def wants(self, labels: dict[str, str], status: str) -> bool:
        if status == "resolved" and not self.send_resolved:
            return False
        return matches(self.matchers, labels)

    def describe(self) -> dict[str, Any]:
        """What the API shows (no addresses of secrets: the URL's path may hold a token)."""
        return {"name": self.name, "kind": self.kind, "matchers": self.matchers,
                "send_resolved": self.send_resolved}


def _receiver(raw: Any, index: int, default_timeout: float) -> Receiver:
    where = f"receivers[{index}]"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object")
    name, kind = raw.get("name"), raw.get("kind")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name must be a non-empty string")
    if kind not in KINDS:
        raise InvalidRequest(f"{where}.kind must be one of {', '.join(KINDS)}")
    known = {"name", "kind", "url", "matchers", "send_resolved", "smtp_host", "smtp_port",
             "starttls", "username", "password_env", "from", "to", "timeout"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidRequest(f"{where}: unknown key(s) {', '.join(unknown)}")
    receiver = Receiver(name=name, kind=kind, url=raw.get("url"),
                        matchers=parse_matchers(raw.get("matchers", {}), f"{where}.matchers"),
                        send_resolved=bool(raw.get("send_resolved", True)),
                        smtp_host=raw.get("smtp_host"), smtp_port=int(raw.get("smtp_port", 25)),
                        starttls=bool(raw.get("starttls", False)), username=raw.get("username"),
                        password_env=raw.get("password_env"), sender=raw.get("from"),
                        to=list(raw.get("to") or []),
                        timeout_s=float(raw.get("timeout", default_timeout)))
    if kind in ("webhook", "slack") and not (isinstance(receiver.url, str)
                                             and receiver.url.startswith(("http://", "https://"))):
        raise InvalidRequest(f"{where}.url must be an http:// or https:// URL")
    if kind == "email" and not (receiver.smtp_host and receiver.sender and receiver.to):
        raise InvalidRequest(f"{where}: an email receiver needs smtp_host, from and to")
    return receiver


def load_receivers(path: str | Path | None, default_timeout: float = 5.0) -> list[Receiver]:
    """The receivers of a JSON or TOML file (empty when no file is set)."""
    if not path:
        return []
    path = Path(path)
    text = path.read_text()
    data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    raw = data.get("receivers") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise InvalidRequest(f"{path}: expected an object with a 'receivers' list")
    receivers = [_receiver(r, i, default_timeout) for i, r in enumerate(raw)]
    names = [r.name for r in receivers]
    if len(set(names)) != len(names):
        raise InvalidRequest(f"{path}: receiver names must be unique, got {names}")
    return receivers


# -- rendering ----------------------------------------------------------------------------------
def _iso(epoch: float | None) -> str:
    if epoch is None:
        return ZERO_TIME
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _am_alert(notice: dict, external_url: str) -> dict[str, Any]:
    """One entry of alerts[] in Alertmanager's v4 payload, from an outbox notice."""
    alert = notice["alert"]
    labels = alert["labels"]
    subject = alert["stream"] + (f" / {alert['entity']}" if alert.get("entity") else "")
    annotations = {
        "summary": f"{alert['type']} on {subject}",
        "description": alert.get("summary") or "",
        "alert_id": str(alert["id"]), "points": str(alert["points"]),
        "peak_score": f"{alert['peak_score']:.4f}",
    }
    if alert.get("acknowledged_by"):
        annotations["acknowledged_by"] = alert["acknowledged_by"]
    events = anomalies_path(alert["stream"], alert.get("entity"), alert["type"])
    if events is not None:  # an alert of a schema's events: where its events are
        annotations["anomalies"] = external_url + events
    return {"status": notice["status"], "labels": labels, "annotations": annotations,
            "startsAt": _iso(alert.get("fired_at") or alert["started_at"]),
            "endsAt": _iso(alert.get("resolved_at")) if notice["status"] == "resolved" else ZERO_TIME,
            "generatorURL": f"{external_url}/?alert={alert['id']}",
            "fingerprint": alert["fingerprint"]}


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    return {k: v for k, v in dicts[0].items() if all(d.get(k) == v for d in dicts[1:])}


def render_webhook(receiver: Receiver, notices: list[dict], external_url: str) -> dict[str, Any]:
    alerts = [_am_alert(n, external_url) for n in notices]
    common_labels = _common([a["labels"] for a in alerts])
    group_labels = {k: v for k, v in common_labels.items() if k == "alertname"}
    return {
        "version": "4",
        "groupKey": "{}:" + "{" + ", ".join(f'{k}="{v}"' for k, v in group_labels.items()) + "}",
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": receiver.name, "groupLabels": group_labels, "commonLabels": common_labels,
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url, "alerts": alerts,
    }


_COLOURS = {"critical": "#d32f2f", "high": "#f57c00", "medium": "#fbc02d", "low": "#1976d2"}


def render_slack(receiver: Receiver, notices: list[dict], external_url: str) -> dict[str, Any]:
    attachments = []
    for notice in notices:
        am = _am_alert(notice, external_url)
        alert = notice["alert"]
        colour = "#388e3c" if notice["status"] == "resolved" else _COLOURS.get(alert.get("severity"), "#757575")
        attachments.append({
            "color": colour, "title": f"[{notice['status'].upper()}] {am['annotations']['summary']}",
            "title_link": am["generatorURL"], "text": am["annotations"]["description"],
            "fields": [{"title": "severity", "value": alert.get("severity") or "-", "short": True},
                       {"title": "points", "value": str(alert["points"]), "short": True}],
            "ts": int(alert.get("fired_at") or alert["started_at"])})
    firing = sum(n["status"] == "firing" for n in notices)
    text = f"{firing} firing, {len(notices) - firing} resolved anomaly alert(s)"
    return {"text": text, "attachments": attachments}


def render_email(receiver: Receiver, notices: list[dict], external_url: str) -> EmailMessage:
    message = EmailMessage()
    firing = sum(n["status"] == "firing" for n in notices)
    first = _am_alert(notices[0], external_url)["annotations"]["summary"]
    message["Subject"] = (f"[{'FIRING' if firing else 'RESOLVED'}:{len(notices)}] {first}"
                          + (" and more" if len(notices) > 1 else ""))
    message["From"] = receiver.sender
    message["To"] = ", ".join(receiver.to)
    lines = []
    for notice in notices:
        am = _am_alert(notice, external_url)
        lines += [f"[{notice['status'].upper()}] {am['annotations']['summary']}",
                  f"  severity: {am['labels'].get('severity', '-')}, points: {am['annotations']['points']}, "
                  f"peak score: {am['annotations']['peak_score']}",
                  f"  since {am['startsAt']}" + (f" until {am['endsAt']}" if notice["status"] == "resolved" else ""),
                  f"  {am['annotations']['description']}", f"  {am['generatorURL']}", ""]
    message.set_content("\n".join(lines))
    return message


def render(receiver: Receiver, notices: list[dict], external_url: str):
    return {"webhook": render_webhook, "slack": render_slack,
            "email": render_email}[receiver.kind](receiver, notices, external_url)


# -- sending ------------------------------------------------------------------------------------
def _post_json(url: str, payload: dict, timeout: float) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "anomaly-server-alerts"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {url}") from None
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


def _send_email(receiver: Receiver, message: EmailMessage) -> None:
    try:
        with smtplib.SMTP(receiver.smtp_host, receiver.smtp_port, timeout=receiver.timeout_s) as smtp:
            if receiver.starttls:
                smtp.starttls()
            if receiver.username:
                smtp.login(receiver.username, os.environ.get(receiver.password_env or "", ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP {receiver.smtp_host}:{receiver.smtp_port}: "
                            f"{type(exc).__name__}: {exc}") from None


def send(receiver: Receiver, notices: list[dict], external_url: str) -> None:
    """Deliver ``notices`` (outbox rows: status and alert) in one message; raise DeliveryError."""
    body = render(receiver, notices, external_url)
    if receiver.kind == "email":
        _send_email(receiver, body)
    else:
        _post_json(receiver.url, body, receiver.timeout_s)
