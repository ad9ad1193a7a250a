"""The dashboard page, the vendored Chart.js, and the health check."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, send_file
from jinja2 import TemplateNotFound

from .errors import ApiError
from .services import services
from .settings import REPO_ROOT

__all__ = ["CHART_JS", "bp"]

bp = Blueprint("pages", __name__)

#: Installed by ``npm install`` in the repository root.
CHART_JS = REPO_ROOT / "node_modules" / "chart.js" / "dist" / "chart.umd.js"


@bp.get("/")
def index():
    """The live dashboard (web/index.html)."""
    svc = services()
    try:
        return render_template("index.html", tick_interval=svc.settings["TICK_INTERVAL"],
                               streams=list(svc.monitor.streams))
    except TemplateNotFound:
        raise ApiError(404, "the dashboard template web/index.html is missing") from None


@bp.get("/vendor/chart.umd.js")
def chart_js():
    """Chart.js, served from node_modules."""
    if not CHART_JS.is_file():
        raise ApiError(404, "Chart.js is not installed: run `npm install` in the repository root")
    return send_file(CHART_JS, mimetype="text/javascript", max_age=86400)


@bp.get("/health")
def health():
    """Liveness and readiness: the engine is restored, the scheduler ticks and the database takes writes.

    While the engine is being restored (server/startup.py) the answer is 200 with
    ``"status": "starting"``, ``"ready": false`` and the step in progress; the
    scheduler starts once it is done.
    """
    svc = services()
    scheduler = svc.scheduler_healthy()
    database = svc.database_writable()
    start = svc.startup.describe() if svc.startup is not None else {"ready": True}
    if "failed" in start:
        status = "failed"
    elif not database:
        status = "degraded"
    elif not start["ready"]:
        status = "starting"
    else:
        status = "ok" if scheduler or not svc.settings["SCHEDULER"] else "degraded"
    body = {"status": status, **start, "scheduler": scheduler, "database": database,
            "scheduler_enabled": svc.settings["SCHEDULER"]}
    return jsonify(body), 200 if status in ("ok", "starting") else 503
