"""gunicorn configuration: ONE gevent worker that owns the scheduler, the hub and the engine.

Why one worker: the hub is in memory (clients of another worker would never
see this worker's events) and each worker would run every scheduled job.
One gevent worker holds thousands of streaming clients: each is a greenlet,
and the CPU-heavy work (scoring, SQLite commits) runs on dedicated OS threads.

Guarantees: ``on_starting`` refuses to start with more than one worker or
with ``preload_app`` (the scheduler's threads would be started in the master
and lost at fork); inside the app, a file lock next to the database keeps a
second process on the same data from ticking (see server/scheduler.py).

This file is executed by gunicorn's master; it imports nothing from the app
so that gevent patches the worker before Flask and friends are imported.
"""
import ipaddress
import os
import resource
import sys


def _loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_requested_host = os.environ.get("HOST", "127.0.0.1")
_host = _requested_host
# Without a token anyone who can connect may write: such a server is for this machine only.
_TOKENLESS_NOTICE = None
if not os.environ.get("ANOMALY_API_TOKEN", "").strip():
    if not _loopback(_requested_host):
        _host = "127.0.0.1"
        _TOKENLESS_NOTICE = (f"anomaly server: ANOMALY_API_TOKEN is not set, so HOST={_requested_host} "
                             "is ignored and the server binds 127.0.0.1 only; set a token to serve "
                             "other interfaces")
    else:
        _TOKENLESS_NOTICE = (f"anomaly server: ANOMALY_API_TOKEN is not set: serving on loopback "
                             f"({_host}) only, without a token")
    print(_TOKENLESS_NOTICE, file=sys.stderr, flush=True)
bind = f"{_host}:{os.environ.get('PORT', '5001')}"
workers = 1
# gunicorn's gevent worker, answering its own errors (400/414/431) in the API's JSON shape
# (server/gunicorn_worker.py), plus a cap on connections per client address (server/gunicorn_limits.py,
# which reads ANOMALY_MAX_CONNECTIONS_PER_CLIENT; checked here so a bad value stops the start).
worker_class = "server.gunicorn_limits.ClientCapGeventWorker"
_max_per_client = os.environ.get("ANOMALY_MAX_CONNECTIONS_PER_CLIENT", "100")
if not _max_per_client.strip().isdigit() or int(_max_per_client) < 1:
    raise SystemExit(f"ANOMALY_MAX_CONNECTIONS_PER_CLIENT={_max_per_client!r}: expected an integer >= 1")
# Streaming clients + ordinary requests the single worker may hold at once.
worker_connections = int(os.environ.get("ANOMALY_WORKER_CONNECTIONS", "4000"))
backlog = 2048


def _raise_open_file_limit(needed: int) -> None:
    """Each streaming client holds a socket: lift the soft descriptor limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


_raise_open_file_limit(worker_connections + 256)
# What a stopping worker may take before the master kills it.  SSE/WebSocket clients never finish
# by themselves and idle keep-alive connections wait for another request: on SIGTERM the worker
# ends the first and lets go of the second at once (server/gunicorn_worker.py), so that its final
# snapshot (worker_exit below) is written well within this.
graceful_timeout = 5
timeout = 30
keepalive = 5
preload_app = False
max_requests = 0
accesslog = None
errorlog = "-"
loglevel = os.environ.get("ANOMALY_GUNICORN_LOGLEVEL", "info")
proc_name = "anomaly-server"
# No control socket: several servers (tests, benchmarks) may run side by side.
control_socket_disable = True


def on_starting(server):
    """Refuse configurations that would split the state over processes."""
    if server.cfg.workers != 1:
        raise SystemExit(f"anomaly server: workers must be 1 (got {server.cfg.workers}); the "
                         "scheduler and the push hub live in one process")
    if server.cfg.preload_app:
        raise SystemExit("anomaly server: preload_app must be off (the scheduler starts in the worker)")
    if _TOKENLESS_NOTICE:
        server.log.warning(_TOKENLESS_NOTICE)
    if "gevent" not in str(server.cfg.worker_class_str).lower():
        server.log.warning("anomaly server: worker class %s is not gevent; streaming clients will "
                           "each hold a thread", server.cfg.worker_class_str)


def worker_exit(server, worker):
    """Stop the jobs, cut push clients and commit queued writes before the worker exits."""
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("anomaly_server") if app is not None else None
    if services is not None:
        services.shutdown()
