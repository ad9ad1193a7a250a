"""The real-time anomaly detection server: a Flask app factory.

``create_app(test_config=None)`` resolves the settings (defaults, then
``ANOMALY_*`` environment variables, then ``test_config``), migrates the
database, starts the single writer thread and wires the app; then it restores
the engine (snapshot, user streams and their configuration, the points stored
after the snapshot) and, unless ``SCHEDULER`` is off, starts the background
jobs (one tick every ``TICK_INTERVAL`` seconds, retention).  Under gunicorn's
gevent worker that restore runs once the worker serves, so ``/health`` answers
within a second of start however many streams there are (server/startup.py).

Run it with gunicorn and the repository's configuration (one gevent worker)::

    .venv/bin/gunicorn -c server/gunicorn_conf.py "server:create_app()"

or ``python server.py``, which runs exactly that.  ``python -m server.settings``
prints the settings table.
"""
from __future__ import annotations

import functools
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # Flask is imported by create_app: gunicorn's master imports this package
    from flask import Flask  # (for server.gunicorn_limits) and must not load Flask before gevent

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``test_config`` overrides settings by name (e.g. ``{"SCHEDULER": False}``)."""
    began = time.perf_counter()
    _import_sqlite_utils_without_pandas()
    # Imported here so that importing the package (e.g. for its settings) stays light.
    from flask import Flask

    from detectors.engine import Engine
    from generators import STREAMS, make_stream

    from . import api, api_events, feedback, metrics, pages, push, security
    from .alerts import api as alerts_api
    from .alerts.service import EXTENSION as ALERTS, build_alerts
    from .event_snapshots import EventSnapshots, event_snapshot_path
    from .event_storage import EventReader
    from .concurrency import cooperative
    from .errors import register_error_handlers
    from .hub import Hub
    from .logs import configure_logging
    from .monitor import Monitor, build_generators
    from .pipeline.ingest import Ingest, check_schema_names
    from .scheduler import BackgroundJobs, SchedulerLock
    from .services import EXTENSION, Services
    from .settings import REPO_ROOT, load_settings, resolve_path, unknown_variables
    from .snapshots import Snapshots, snapshot_path
    from .sources.positions import SourcePositions
    from .sources.supervisor import Supervisor
    from .startup import Startup
    from .startup import init_app as gate_requests_until_ready
    from .storage import migrate, open_reader, open_writer
    from .writer import Writer

    imported = time.perf_counter()
    settings = load_settings(test_config)
    engine = _build_engine(Engine, settings["DETECTORS"], settings["ENGINE_THREADS"])
    app = Flask(__name__, template_folder=str(REPO_ROOT / "web"),
                static_folder=str(REPO_ROOT / "static"), static_url_path="/static")
    app.config.update(settings)
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": settings["WS_PING_INTERVAL"],
                                         "max_message_size": 65536}
    app.json.sort_keys = False
    log_path = configure_logging(resolve_path(settings["LOG_DIR"]), settings["LOG_LEVEL"])
    for name in unknown_variables():
        log.warning("environment variable %s names no setting; see python -m server.settings", name)

    db_path = resolve_path(settings["DATABASE"])
    db = open_writer(db_path, settings["SYNCHRONOUS"])
    try:
        applied = migrate(db)
    finally:
        db.close()
    if applied:
        log.info("database %s: applied migrations %s", db_path, applied)

    reader = open_reader(db_path)
    try:
        last_event_id = reader.last_event_id()
    finally:
        reader.close()
    hub = Hub(settings["CLIENT_QUEUE_SIZE"], last_id=last_event_id)
    alerts = None

    def committed(events: list) -> None:
        hub.publish(events)
        if alerts is not None:
            alerts.committed()

    writer = Writer(db_path, settings["SYNCHRONOUS"], settings["WRITE_QUEUE_SIZE"],
                    on_commit=committed)
    # Observes the writer's transactions from the first one on (its state is read lazily).
    alerts = build_alerts(settings, writer, lambda: open_reader(db_path))
    writer.start()
    generators = build_generators(make_stream, list(STREAMS), settings["SEED"],
                                  settings["INJECTION_RATE"])
    monitor = Monitor(engine, generators, writer, db_path, settings)
    ingest = Ingest(check_schema_names(settings["SCHEMAS"]), writer, settings["WRITE_TIMEOUT"])
    engine_snapshot = snapshot_path(settings["SNAPSHOT_PATH"], db_path)
    event_snapshots = EventSnapshots(ingest, event_snapshot_path(engine_snapshot), db_path,
                                     settings["WRITE_TIMEOUT"])
    snapshots = Snapshots(monitor, engine_snapshot, settings["SNAPSHOT_INTERVAL"], events=event_snapshots)
    # The engine's learned state, restored behind the app under gevent (server/startup.py): the
    # snapshot before the streams are registered (they are in it), then the points stored after it.
    # Only bootstrap writes through the writer, so only it runs on the event loop.
    startup = Startup([("loading the libraries of a tick", _load_tick_libraries, True),
                       ("restoring the snapshot", snapshots.restore, True),
                       ("registering the streams", monitor.bootstrap, False),
                       ("replaying the points stored after the snapshot", snapshots.catch_up, True),
                       ("restoring the event scorers", event_snapshots.restore, True),
                       ("removing imports the last stop cut short", event_snapshots.undo_cut_short_imports, False),
                       ("replaying the events stored after their snapshot", event_snapshots.catch_up, True),
                       # Verdicts the snapshot predates, after its points (it writes: on the loop).
                       ("teaching 'not an anomaly' again", lambda: feedback.reteach_at_start(svc), False)],
                      on_ready=lambda: _start_jobs(svc))
    periodic = {"tick": (monitor.tick, settings["TICK_INTERVAL"]),
                "retention": (monitor.prune, settings["RETENTION_INTERVAL"])}
    periodic["event_retention"] = (functools.partial(_prune_scored_events, writer, settings),
                                   settings["RETENTION_INTERVAL"])
    periodic["alerts"] = (alerts.sweep, settings["ALERT_EVALUATION_INTERVAL"])
    if snapshots.path is not None and settings["SNAPSHOT_INTERVAL"] > 0:
        periodic["snapshot"] = (snapshots.save_if_due, settings["SNAPSHOT_INTERVAL"])
    jobs = BackgroundJobs(periodic, SchedulerLock(db_path.with_name(db_path.name + ".scheduler.lock")))
    reader = open_reader(db_path)
    try:
        ingest.load_flags(EventReader(reader.conn).flags())
    finally:
        reader.close()
    sources = Supervisor(ingest.store, SourcePositions(writer, lambda: open_reader(db_path),
                                                       settings["WRITE_TIMEOUT"]))
    monitor.attach(sources)  # the generators and HTTP submit: sources under the one supervisor
    svc = Services(settings=settings, db_path=db_path, log_path=log_path, hub=hub, writer=writer,
                   monitor=monitor, jobs=jobs, started_at=time.time(), snapshots=snapshots,
                   ingest=ingest, sources=sources, startup=startup)
    app.extensions[EXTENSION] = svc
    app.extensions[ALERTS] = alerts
    app.extensions[metrics.EXTENSION] = metrics.Metrics(svc, alerts)
    svc.alerts = alerts

    register_error_handlers(app)
    guard = security.init_app(app, hub)
    gate_requests_until_ready(app)
    api.init_app(app)
    api_events.init_app(app)
    push.init_app(app)
    app.register_blueprint(alerts_api.bp)
    feedback.init_app(app)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(pages.bp)
    if cooperative():
        # The event loop shares the GIL with the engine and writer threads; a short switch
        # interval bounds how long it waits for the GIL after each socket call.
        sys.setswitchinterval(settings["THREAD_SWITCH_INTERVAL"])
    alerts.sender.start()  # delivers what a previous run committed but did not deliver
    built = time.perf_counter()
    try:
        startup.begin()  # under gevent it goes on once the worker serves; otherwise it is done here
    except BaseException:
        svc.shutdown()
        raise
    log.info("server ready: database %s, tick every %g s, scheduler %s; app built in %.0f ms "
             "(imports %.0f ms)%s", db_path, settings["TICK_INTERVAL"],
             "on" if settings["SCHEDULER"] else "off", (built - began) * 1000, (imported - began) * 1000,
             "" if startup.ready else "; restoring the engine in the background")
    log.info("security: %s; reading %s; hosts %s; rate limit %s",
             "API token set" if guard.token else "no API token (loopback only)",
             "needs the token" if guard.read_needs_token else "is public",
             "any" if guard.any_host else ", ".join(sorted(guard.allowed_hosts)),
             settings["RATE_LIMIT"])
    return app


def _start_jobs(svc) -> None:
    """Once the engine is restored: the scheduler (ticks, retention, alerts, snapshots) and the EV feed."""
    settings = svc.settings
    if not settings["SCHEDULER"]:
        return
    svc.jobs.start()
    if settings["EV_FEED"] and svc.jobs.running and "ev_charging" in svc.ingest.schema_names:
        _start_ev_feed(svc)


def _load_tick_libraries() -> None:
    """What the first tick would load: the generators' scipy.signal (1-4 s, its docstrings parsed at
    import), the detectors' scipy.special (about 0.3 s) and the engine's compiled kernels from
    numba's cache (about a second): loaded during the restore, off the event loop, so the first
    tick is as quick as any other (it took 1.7-4 s, longer than the 2 s tick interval, and the
    scheduler skipped the next tick)."""
    from scipy import signal, special  # noqa: F401

    from detectors.kernels import load_for_threads

    load_for_threads()  # on this dedicated thread, as the engine's own first step would (gevent)


def _prune_scored_events(writer, settings) -> int:
    from .event_writes import EventPruneJob

    deleted = writer.write(EventPruneJob(settings["RETENTION_SCORED_EVENTS"],
                                         settings["RETENTION_DAYS"] * 86400.0), settings["WRITE_TIMEOUT"])
    if deleted:
        log.info("retention pruned %d scored events", deleted)
    return deleted


def _start_ev_feed(svc) -> None:
    """Start the built-in EV charging feed in the background.

    Its modules import pandas and scipy (about a second): they are imported on an OS thread
    of their own, so that under gevent the event loop goes on answering requests and the
    scheduler goes on ticking meanwhile (a greenlet importing them would hold the loop).
    """
    import threading

    from .concurrency import DedicatedThread

    def load_modules() -> None:
        from .pipeline import rules, scoring  # noqa: F401
        from .sources import ev  # noqa: F401

    def start() -> None:
        loader = DedicatedThread("ev-feed-imports")
        try:
            # After the first tick: on two cores a second of imports would delay it, and that
            # tick is what a restart waits for.
            deadline = time.monotonic() + 10 * svc.settings["TICK_INTERVAL"]
            while svc.monitor.last_tick_at is None and not svc.stopped and time.monotonic() < deadline:
                time.sleep(svc.settings["TICK_INTERVAL"] / 4)
            loader.run(load_modules)
            from .sources.ev import EVSource

            schema = svc.ingest.schema("ev_charging")
            feed = EVSource(schema, seed=svc.settings["SEED"], speed=svc.settings["EV_FEED_SPEED"])
            try:  # continue where the last run stopped, never repeating its sessions
                positions = svc.sources.positions
                feed.resume(positions.load(feed.name), positions.last_stored(feed.name))
            except Exception:
                log.exception("the EV charging feed could not resume; it starts afresh")
                feed = EVSource(schema, seed=svc.settings["SEED"], speed=svc.settings["EV_FEED_SPEED"])
            svc.sources.add(feed)
            if not svc.stopped:
                svc.sources.start()
        except Exception:
            log.exception("the EV charging feed could not start; the server runs without it")
        finally:
            loader.close()

    threading.Thread(target=start, name="start-ev-feed", daemon=True).start()


def _import_sqlite_utils_without_pandas() -> None:
    """Import sqlite-utils while pandas is hidden: it would import pandas, when installed, only to
    map pandas column types the server never writes, and that costs about half a second of every
    start.  pandas stays importable afterwards."""
    if "sqlite_utils" in sys.modules or "pandas" in sys.modules:
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes "import pandas" raise ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["pandas"]


def _build_engine(engine_class, detectors: str, threads: int):
    """The engine with the members named by the DETECTORS setting (checked against the registry)."""
    from detectors import REGISTRY

    from .settings import SettingsError

    members = [m.strip() for m in detectors.split(",") if m.strip()]
    if members == ["default"]:
        return engine_class(threads=threads)
    unknown = [m for m in members if m not in REGISTRY or m == "ensemble"]
    if not members or unknown:
        choices = sorted(set(REGISTRY) - {"ensemble"})
        raise SettingsError(f"ANOMALY_DETECTORS={detectors!r}: unknown detector(s) {unknown}; "
                            f"choose from {choices} or 'default'")
    return engine_class(members=members, threads=threads)
