"""``GET /metrics``: the server's counters in Prometheus's text format (prometheus-client).

One registry per app (tests build many apps).  Two histograms are observed
as things happen (tick and scoring latency, notification delivery time); the
rest is read at scrape time by :class:`ServerCollector` from what the server
already counts: ``stream_stats`` (points and anomalies per stream since the
database was created, so they survive restarts), the ``alerts`` table, the
writer's and the hub's queues, the outbox.  Anomalies by severity are counted
in memory by the writer's observer since the process started.
"""
from __future__ import annotations

import threading
from collections import Counter

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["EXTENSION", "Metrics", "bp"]

EXTENSION = "anomaly_metrics"
bp = Blueprint("metrics", __name__)

#: Latency buckets in seconds: a 2-core machine's tick is milliseconds to a second.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AnomalyCounter:
    """A writer observer: anomalous points by stream, type and severity (since start), and anomalous
    events by schema, type and severity (an event with two types counts under each)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def points_stored(self, tx, points: list[dict]) -> None:
        flagged = Counter()
        for p in points:
            if p.get("is_anomaly") or p.get("alert"):
                types = p.get("anomaly_types") or ["anomaly"]
                for t in ([types] if isinstance(types, str) else types):
                    flagged[(p["source"], t, p.get("severity") or "none")] += 1
        if flagged:
            with self._lock:
                self.counts.update(flagged)

    def events_stored(self, tx, schema, anomalies: list[dict]) -> None:
        """Anomalous events of a stored batch, by schema (their stream), type and severity."""
        flagged = Counter((schema.name, t, a.get("severity") or "none") for a in anomalies for t in a["types"])
        if flagged:
            with self._lock:
                self.counts.update(flagged)

    def rollback(self) -> None:
        pass  # a rolled-back batch may have been counted: rare, and a counter may only grow

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self.counts)


class ServerCollector:
    """Reads the server's state at scrape time."""

    def __init__(self, svc, alerts, anomalies: AnomalyCounter):
        self.svc = svc
        self.alerts = alerts
        self.anomalies = anomalies

    def collect(self):
        svc = self.svc
        reader = svc.reader()
        try:
            conn = reader.conn
            stats = conn.execute("SELECT source, points, anomalies FROM stream_stats").fetchall()
            alert_rows = conn.execute("SELECT stream, type, coalesce(severity, 'none'), state, count(*) "
                                      "FROM alerts GROUP BY 1, 2, 3, 4").fetchall()
            backlog = dict(conn.execute("SELECT receiver, count(*) FROM outbox "
                                        "WHERE delivered_at IS NULL GROUP BY receiver").fetchall())
        finally:
            reader.close()

        points = CounterMetricFamily("anomaly_points", "Points scored and stored, per stream "
                                     "(since the database was created).", labels=["stream"])
        flagged = CounterMetricFamily("anomaly_anomalous_points", "Anomalous points per stream "
                                      "(since the database was created).", labels=["stream"])
        for source, n_points, n_anomalies in stats:
            points.add_metric([source], n_points)
            flagged.add_metric([source], n_anomalies)
        yield points
        yield flagged

        by_severity = CounterMetricFamily(
            "anomaly_anomalies_by_severity", "Anomalous points by stream, anomaly type and severity "
            "(since this process started).", labels=["stream", "type", "severity"])
        for (stream, type_, severity), n in sorted(self.anomalies.snapshot().items()):
            by_severity.add_metric([stream, type_, severity], n)
        yield by_severity

        alerts = GaugeMetricFamily("anomaly_alerts", "Alerts (one per incident) by stream, type, "
                                   "peak severity and state.",
                                   labels=["stream", "type", "severity", "state"])
        for stream, type_, severity, state, n in alert_rows:
            alerts.add_metric([stream, type_, severity, state], n)
        yield alerts

        if self.alerts is not None:
            transitions = CounterMetricFamily("anomaly_alert_transitions", "Alert state changes "
                                              "since start.", labels=["from_state", "to_state"])
            for (before, after), n in sorted(self.alerts.book.transitions.items()):
                transitions.add_metric([before, after], n)
            yield transitions
            sender = self.alerts.sender
            notices = CounterMetricFamily("anomaly_notifications", "Notifications since start by "
                                          "outcome.", labels=["outcome"])
            notices.add_metric(["enqueued"], self.alerts.outbox.enqueued)
            notices.add_metric(["delivered"], sender.delivered)
            notices.add_metric(["failed_attempts"], sender.failed)
            yield notices
            outbox = GaugeMetricFamily("anomaly_outbox_backlog", "Notifications waiting for "
                                       "delivery, per receiver.", labels=["receiver"])
            for receiver in self.alerts.receivers:
                outbox.add_metric([receiver.name], backlog.pop(receiver.name, 0))
            for name, n in backlog.items():  # receivers no longer configured
                outbox.add_metric([name], n)
            yield outbox

        queues = GaugeMetricFamily("anomaly_queue_depth", "Items waiting in the server's queues.",
                                   labels=["queue"])
        queues.add_metric(["writer"], svc.writer.queue.qsize())
        queues.add_metric(["submits"], len(svc.monitor._submits))
        queues.add_metric(["push_clients"], svc.hub.queued())
        yield queues
        clients = GaugeMetricFamily("anomaly_push_clients", "Connected push clients by transport.",
                                    labels=["transport"])
        for kind, n in svc.hub.counts().items():
            clients.add_metric([kind], n)
        yield clients
        streams = GaugeMetricFamily("anomaly_streams", "Streams in the engine by kind.", labels=["kind"])
        kinds = Counter(meta["kind"] for meta in list(svc.monitor.streams.values()))
        for kind in ("builtin", "user"):
            streams.add_metric([kind], kinds.get(kind, 0))
        yield streams
        ticks = CounterMetricFamily("anomaly_ticks", "Scheduler ticks since start.")
        ticks.add_metric([], svc.monitor.tick_count)
        yield ticks


class Metrics:
    """The app's registry with its histograms and the collector."""

    def __init__(self, svc, alerts):
        self.registry = CollectorRegistry(auto_describe=True)
        self.tick_seconds = Histogram("anomaly_tick_seconds", "Duration of a scheduler tick: draw, "
                                      "score, store.", buckets=LATENCY_BUCKETS, registry=self.registry)
        self.score_seconds = Histogram("anomaly_scoring_seconds", "Duration of one engine step (one "
                                       "point per stream of the step).", buckets=LATENCY_BUCKETS,
                                       registry=self.registry)
        self.delivery_seconds = Histogram("anomaly_notification_delivery_seconds", "Duration of one "
                                          "successful delivery to a receiver.",
                                          buckets=LATENCY_BUCKETS, registry=self.registry)
        self.anomalies = AnomalyCounter()
        self.alerts = alerts
        svc.writer.observers.append(self.anomalies)
        svc.monitor.on_tick = self.tick_seconds.observe
        svc.monitor.on_step = lambda seconds, streams: self.score_seconds.observe(seconds)
        self.registry.register(ServerCollector(svc, alerts, self.anomalies))

    def exposition(self) -> bytes:
        if self.alerts is not None:  # drain the sender's timings into the histogram
            timings = self.alerts.sender.delivery_seconds
            taken, timings[:] = list(timings), []
            for seconds in taken:
                self.delivery_seconds.observe(seconds)
        return generate_latest(self.registry)


@bp.get("/metrics")
def metrics():
    """Prometheus text exposition of the server's counters."""
    return Response(current_app.extensions[EXTENSION].exposition(), mimetype=None,
                    content_type=CONTENT_TYPE_LATEST)
