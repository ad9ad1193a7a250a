"""Every setting of the server, declared once as data: name, default, type, bounds and help.

A setting ``TICK_INTERVAL`` is read, in order of precedence, from the
``test_config`` mapping given to :func:`server.create_app`, then from the
environment variable ``ANOMALY_TICK_INTERVAL``, then from its default.  Values
are parsed and checked at start-up; a bad value stops the server with a
:class:`SettingsError` naming the variable, the value and what is allowed.

``python -m server.settings`` prints the settings as a Markdown table (the one
in the README); the test suite fails when a setting lacks help text or when the
server reads a setting that is not declared here.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["ENV_PREFIX", "GUNICORN_VARIABLES", "REPO_ROOT", "SETTINGS", "Setting", "SettingsError",
           "load_settings", "markdown_table", "unknown_variables"]

ENV_PREFIX = "ANOMALY_"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting has a value the server cannot run with."""


@dataclass(frozen=True)
class Setting:
    """One declared setting: how to parse it and what it means."""

    name: str
    default: Any
    kind: type
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name

    def parse(self, raw: Any, origin: str) -> Any:
        """Convert ``raw`` (a string from the environment or a Python value) and check its bounds."""
        value = _PARSERS[self.kind](raw, self, origin)
        if self.choices is not None and value not in self.choices:
            raise SettingsError(f"{origin}={raw!r}: must be one of {', '.join(self.choices)}")
        if self.minimum is not None and value < self.minimum:
            raise SettingsError(f"{origin}={raw!r}: must be >= {self.minimum} ({self.help})")
        if self.maximum is not None and value > self.maximum:
            raise SettingsError(f"{origin}={raw!r}: must be <= {self.maximum} ({self.help})")
        return value


def _parse_bool(raw: Any, setting: Setting, origin: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(raw, str) and raw.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{origin}={raw!r}: expected a boolean (true/false, 1/0, yes/no, on/off)")


def _parse_int(raw: Any, setting: Setting, origin: str) -> int:
    if isinstance(raw, bool):
        raise SettingsError(f"{origin}={raw!r}: expected an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise SettingsError(f"{origin}={raw!r}: expected an integer")


def _parse_float(raw: Any, setting: Setting, origin: str) -> float:
    if isinstance(raw, bool):
        raise SettingsError(f"{origin}={raw!r}: expected a number")
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{origin}={raw!r}: expected a number") from None
    if not math.isfinite(value):
        raise SettingsError(f"{origin}={raw!r}: expected a finite number")
    return value


def _parse_str(raw: Any, setting: Setting, origin: str) -> str:
    # A setting whose default is "" is optional: empty means "not set".
    if setting.default == "" and isinstance(raw, str) and not raw.strip():
        return ""
    if not isinstance(raw, (str, Path)) or not str(raw).strip():
        raise SettingsError(f"{origin}={raw!r}: expected a non-empty string")
    value = str(raw).strip()
    return value.upper() if setting.choices else value


_PARSERS: dict[type, Callable[[Any, Setting, str], Any]] = {
    bool: _parse_bool, int: _parse_int, float: _parse_float, str: _parse_str,
}

SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE", "data/anomaly.db", str,
            "SQLite database file; a relative path is taken from the repository root. "
            "Its folder is created if missing."),
    Setting("LOG_DIR", "logs", str,
            "Folder of the rotating log file server.log (relative to the repository root)."),
    Setting("LOG_LEVEL", "INFO", str, "Level of the server's own log messages.",
            choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Setting("SCHEDULER", True, bool,
            "Run the background scheduler (ticks and retention). Off in unit tests."),
    Setting("TICK_INTERVAL", 2.0, float,
            "Seconds between two scheduler ticks (one point from each built-in stream per tick).",
            minimum=0.1, maximum=3600.0),
    Setting("DETECTORS", "default", str,
            "Comma-separated member detectors of every stream's ensemble (e.g. zscore,mad); "
            "'default' uses the engine's default set."),
    Setting("ENGINE_THREADS", 2, int,
            "Native threads that score a tick's banks of streams side by side (streams alike are "
            "split into banks of at most 4,096; numpy releases the GIL); 1 scores them on the "
            "engine thread alone. Scores do not depend on it.", minimum=1, maximum=64),
    Setting("SEED", 42, int, "Seed of the built-in generators (stream i uses SEED + i).",
            minimum=0),
    Setting("INJECTION_RATE", 0.02, float,
            "Probability that a built-in generator injects an anomaly into a point.",
            minimum=0.0, maximum=0.5),
    Setting("SYNCHRONOUS", "FULL", str,
            "SQLite synchronous mode of the writer. FULL: a commit survives power loss; "
            "NORMAL: a commit survives a crash of the server process but not of the machine.",
            choices=("FULL", "NORMAL")),
    Setting("WRITE_QUEUE_SIZE", 1024, int,
            "Capacity of the writer's queue; a submit that finds it full gets 503.",
            minimum=1, maximum=1_000_000),
    Setting("WRITE_TIMEOUT", 10.0, float,
            "Seconds a request or tick waits for the writer to commit its batch before failing.",
            minimum=0.1, maximum=600.0),
    Setting("RETENTION_POINTS", 10_000, int,
            "Data points kept per stream (older ones are pruned). Anomalies are kept by the same count.",
            minimum=10),
    Setting("RETENTION_DAYS", 7.0, float,
            "Days a point, anomaly or event is kept, and a resolved alert, an expired silence or "
            "an audit row after it ended; 0 keeps them regardless of age.",
            minimum=0.0),
    Setting("RETENTION_EVENTS", 50_000, int,
            "Push events kept for Last-Event-ID replay (newest ones).", minimum=100),
    Setting("RETENTION_INTERVAL", 60.0, float, "Seconds between two retention prunes.",
            minimum=0.1),
    Setting("MAX_CONTENT_LENGTH", 1_048_576, int,
            "Largest request body in bytes; a larger one is refused with 413.", minimum=1024),
    Setting("MAX_BATCH_POINTS", 1000, int, "Most points accepted in one /api/submit batch.",
            minimum=1, maximum=100_000),
    Setting("MAX_USER_STREAMS", 100, int,
            "Most user streams (created by /api/submit) the server accepts.", minimum=0),
    Setting("CLIENT_QUEUE_SIZE", 256, int,
            "Events buffered per push client; a client whose buffer fills is disconnected.",
            minimum=1, maximum=100_000),
    Setting("STREAM_SEND_BUFFER", 0, int,
            "SO_SNDBUF in bytes for push connections (0: the OS default). A smaller buffer "
            "detects a stalled client sooner.", minimum=0),
    Setting("HEARTBEAT_INTERVAL", 15.0, float,
            "Seconds between SSE heartbeat comments on an idle stream.", minimum=0.1, maximum=300.0),
    Setting("WS_PING_INTERVAL", 20.0, float,
            "Seconds between WebSocket pings from the server (a client that misses a pong is closed).",
            minimum=1.0, maximum=300.0),
    Setting("WS_COMPRESSION", False, bool,
            "Allow permessage-deflate on /ws. Off by default: it deflates every event once per "
            "client, on the event loop."),
    Setting("THREAD_SWITCH_INTERVAL", 0.001, float,
            "Python's thread switch interval in seconds, set in the gevent worker: how long the "
            "event loop may wait for the GIL while the engine or writer thread computes "
            "(Python's default is 0.005).", minimum=0.0001, maximum=0.1),
    Setting("REPLAY_LIMIT", 1000, int,
            "Most stored events replayed to a client that resumes with Last-Event-ID (the "
            "newest ones, when more were missed).",
            minimum=0, maximum=100_000),
    # -- security (server/security.py; README "Security model") ------------------------------
    Setting("API_TOKEN", "", str,
            "Bearer token that every mutating request (POST, PUT, PATCH, DELETE under /api) must "
            "send as 'Authorization: Bearer <token>' (the dashboard logs in once and keeps an "
            "HttpOnly cookie). Empty: no token, and the server binds loopback only."),
    Setting("READ_ACCESS", "PUBLIC", str,
            "Who may read /api and the live streams: PUBLIC (anyone who can connect) or TOKEN "
            "(only with the token; needs API_TOKEN). The page, its assets, /health and "
            "/api/openapi.json stay public.", choices=("PUBLIC", "TOKEN")),
    Setting("SESSION_HOURS", 12.0, float,
            "Hours a dashboard session (the cookie POST /api/login sets) stays valid after the "
            "login; POST /api/logout ends it at once, for every worker, and a new API_TOKEN ends "
            "every session. Applies to sessions already issued.", minimum=0.1, maximum=720.0),
    Setting("ALLOWED_ORIGINS", "", str,
            "Comma-separated extra origins (scheme://host[:port]) allowed to send mutating requests "
            "and to open /ws, besides the server's own origin."),
    Setting("ALLOWED_HOSTS", "", str,
            "Comma-separated extra host names accepted in the Host header, besides localhost, "
            "127.0.0.1, ::1 and the bound HOST; '*' accepts any (turns the check off)."),
    Setting("RATE_LIMIT", "20 per second", str,
            "Mutating requests allowed per client address (Flask-Limiter syntax, e.g. '20 per "
            "second; 600 per minute'); beyond it 429 with Retry-After. 'off' disables it."),
    Setting("BODY_TIMEOUT", 10.0, float,
            "Seconds a request body may take to arrive in full; a slower one is answered 408 "
            "and its connection closed.", minimum=0.1, maximum=600.0),
    Setting("MAX_STREAMS_PER_CLIENT", 50, int,
            "Most simultaneous push connections (SSE and WebSocket) per client address; more "
            "are answered 429. Keep it below ANOMALY_MAX_CONNECTIONS_PER_CLIENT so such a "
            "client can still reach /health.", minimum=1),
    Setting("SNAPSHOT_INTERVAL", 60.0, float,
            "Seconds between two snapshots of the detectors' learned state, the generators and "
            "the tick count (one is also taken at graceful shutdown; 0: only then).",
            minimum=0.0, maximum=86_400.0),
    Setting("RETENTION_SCORED_EVENTS", 1_000_000, int,
            "Scored events (uploads, replays, the EV feed) kept, newest first; older ones and "
            "those past RETENTION_DAYS are pruned with their acknowledgements.", minimum=1),
    Setting("SCHEMAS", "ev_charging", str,
            "Comma-separated event schemas served: bundled names (server/pipeline/schemas/<name>.toml) "
            "or paths of .toml files of your own (a new domain declared as data): "
            "their uploads, anomalies, flags and acknowledgements."),
    Setting("EV_FEED", True, bool,
            "Run the built-in EV charging feed (seeded sessions with labelled fraud, DoS and "
            "conflicts) while the scheduler runs."),
    Setting("EV_FEED_SPEED", 600.0, float,
            "Simulated seconds of the EV feed per wall second (600: ten minutes of sessions a "
            "second, about three sessions).", minimum=1.0, maximum=86_400.0),
    Setting("MAX_UPLOAD_BYTES", 268_435_456, int,
            "Largest file accepted by POST /api/upload, in bytes (the body is spooled to a "
            "temporary file, not held in memory); a larger one is refused with 413.",
            minimum=1024),
    Setting("UPLOAD_TIMEOUT", 300.0, float,
            "Seconds an upload's body may take to arrive in full (BODY_TIMEOUT applies to "
            "other requests).", minimum=1.0, maximum=3600.0),
    Setting("SNAPSHOT_PATH", "auto", str,
            "Snapshot file restored at start; 'auto' is <database>.snapshot.npz beside the "
            "database (the event scorers' per-entity state goes to <file>.events.npz beside it), "
            "'off' disables snapshots (every restart then starts cold); a relative path "
            "is taken from the repository root."),
    # -- alerts (server/alerts/; README "Alerts") --------------------------------------------
    Setting("ALERT_FOR", 0.0, float,
            "Seconds an alert stays pending, its stream or entity anomalous all along, before it "
            "fires and is notified (Prometheus's 'for'); 0 fires on the first anomalous point.",
            minimum=0.0, maximum=86_400.0),
    Setting("ALERT_KEEP_FIRING_FOR", 60.0, float,
            "Seconds a firing alert stays firing after its stream or entity is back to normal; an "
            "anomalous point within them continues the same incident (against flapping).",
            minimum=0.0, maximum=86_400.0),
    Setting("ALERT_REPEAT_INTERVAL", 14_400.0, float,
            "Seconds after which a firing alert that nobody acknowledged is notified again "
            "(0: never).", minimum=0.0, maximum=30 * 86_400.0),
    Setting("ALERT_EVALUATION_INTERVAL", 1.0, float,
            "Seconds between two evaluations of open alerts against the clock (pending alerts "
            "firing, quiet ones resolving, repeats, silences ending).", minimum=0.1, maximum=3600.0),
    Setting("ALERT_RECEIVERS", "", str,
            "JSON or TOML file listing the notification receivers (webhook, slack, email) and "
            "their matchers (README \"Alerts\"); a relative path is taken from the repository "
            "root. Empty: no notifications."),
    Setting("ALERT_RECEIVER_TIMEOUT", 5.0, float,
            "Default seconds a receiver may take to answer before the delivery counts as failed "
            "(a receiver's own 'timeout' overrides it).", minimum=0.1, maximum=300.0),
    Setting("OUTBOX_POLL_INTERVAL", 1.0, float,
            "Seconds between two looks at the notification outbox when no commit wakes the "
            "sender (retries are found this way).", minimum=0.05, maximum=300.0),
    Setting("OUTBOX_RETRY_BASE", 1.0, float,
            "Seconds before the first retry of a failed notification; each later retry waits "
            "twice as long as the one before.", minimum=0.01, maximum=3600.0),
    Setting("OUTBOX_RETRY_MAX", 300.0, float,
            "Longest wait between two retries of a failed notification (it is retried until "
            "delivered).", minimum=0.01, maximum=86_400.0),
    Setting("EXTERNAL_URL", "", str,
            "The server's URL as receivers should link to it (generatorURL, externalURL); empty: "
            "http://127.0.0.1:5001."),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

#: Environment variables of the gunicorn configuration (which must not import the app).
GUNICORN_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("PORT", "5001", "TCP port the server listens on."),
    ("HOST", "127.0.0.1", "Address the server binds (0.0.0.0 for every interface)."),
    ("ANOMALY_WORKER_CONNECTIONS", "4000",
     "Most simultaneous connections (push clients included) of the one worker."),
    ("ANOMALY_GUNICORN_LOGLEVEL", "info", "Level of gunicorn's own log."),
    ("ANOMALY_MAX_CONNECTIONS_PER_CLIENT", "100",
     "Most simultaneous connections per client address; more are answered 429 at once and "
     "closed, so one client cannot take every connection of the worker."),
)


def load_settings(test_config: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Resolve every setting from ``test_config``, the environment and the defaults.

    Raises
    ------
    SettingsError
        When a value does not parse or is out of bounds, or ``test_config``
        names a setting that does not exist (a typo would otherwise be ignored).
    """
    overrides = dict(test_config or {})
    environ = os.environ if environ is None else environ
    unknown = sorted(k for k in overrides if k not in SETTINGS_BY_NAME)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(SETTINGS_BY_NAME)}")
    values = {}
    for setting in SETTINGS:
        if setting.name in overrides:
            values[setting.name] = setting.parse(overrides[setting.name], setting.name)
        elif setting.env_var in environ:
            values[setting.name] = setting.parse(environ[setting.env_var], setting.env_var)
        else:
            values[setting.name] = setting.parse(setting.default, f"default of {setting.name}")
    return values


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``ANOMALY_*`` environment variables that name no setting (typos, most likely)."""
    environ = os.environ if environ is None else environ
    known = {s.env_var for s in SETTINGS} | {name for name, _, _ in GUNICORN_VARIABLES}
    return sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)


def resolve_path(value: str | Path) -> Path:
    """A path setting as an absolute path; relative ones hang from the repository root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def markdown_table() -> str:
    """The settings as a Markdown table: environment variable, default, meaning."""
    lines = ["| Environment variable | Default | Meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = str(s.default).lower() if s.kind is bool else s.default
        default = "(empty)" if default == "" else f"`{default}`"
        bounds = []
        if s.choices:
            bounds.append("one of " + ", ".join(s.choices))
        if s.minimum is not None:
            bounds.append(f">= {s.minimum:g}")
        if s.maximum is not None:
            bounds.append(f"<= {s.maximum:g}")
        extra = f" ({'; '.join(bounds)})" if bounds else ""
        lines.append(f"| `{s.env_var}` | {default} | {s.help}{extra} |")
    for name, default, meaning in GUNICORN_VARIABLES:
        lines.append(f"| `{name}` | `{default}` | {meaning} (read by server/gunicorn_conf.py) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
