"""A real server under gunicorn in a subprocess, and small clients that read its push events.

Used by test_integration.py and by the benchmarks in tests/benchmarks/.  The
clients use plain blocking sockets: under gevent's monkey-patching (the
latency benchmark) the same code becomes cooperative.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cpu_seconds(pid: int, group: bool = False) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc), or with ``group`` by
    every process of the process group it leads: :class:`LiveServer` starts the server in a session
    of its own, so the gunicorn master's group is the master and its workers."""
    def used(fields: list[str]) -> int:
        return int(fields[11]) + int(fields[12])  # utime, stime (after the command name)

    def stat(process) -> list[str]:
        return Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()

    ticks = os.sysconf("SC_CLK_TCK")
    if not group:
        return used(stat(pid)) / ticks
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = stat(entry)
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == pid:
            total += used(fields)
    return total / ticks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_json(port: int, method: str, path: str, body: dict | None = None, timeout: float = 10.0,
              raw: bytes | None = None, content_type: str = "application/json"):
    """One HTTP/1.1 request on its own connection; returns (status, decoded JSON or None).

    ``body`` is sent as JSON; ``raw`` (instead) as it is, with ``content_type``."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, None
    finally:
        conn.close()


def upload_csv(port: int, body: bytes, schema: str = "ev_charging", timeout: float = 60.0):
    """POST a CSV file to ``/api/upload`` as ``text/csv``; returns (status, decoded JSON or None)."""
    return http_json(port, "POST", f"/api/upload?schema={schema}", timeout=timeout, raw=body, content_type="text/csv")


class LiveServer:
    """``python server.py`` (gunicorn, one gevent worker) on a free port, with its own data folder.

    Parameters
    ----------
    workdir : Path
        Holds the database, the logs and the captured stdout/stderr.
    settings : dict
        ``ANOMALY_*`` settings by name (without the prefix), e.g. ``{"TICK_INTERVAL": 0.2}``.
    extra_args : sequence of str
        Extra gunicorn options.
    """

    def __init__(self, workdir: Path, settings: dict | None = None, extra_args=(),
                 database: Path | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.database = Path(database) if database else self.workdir / "server.db"
        # Tests and benchmarks hold many connections and send many requests from one address;
        # the per-client limits are tested with their own low values (test_security_live.py).
        self.settings = {"DATABASE": str(self.database), "LOG_DIR": str(self.workdir / "logs"),
                         "RATE_LIMIT": "off", "MAX_STREAMS_PER_CLIENT": 100_000,
                         "MAX_CONNECTIONS_PER_CLIENT": 100_000, **(settings or {})}
        self.extra_args = list(extra_args)
        self.output = self.workdir / f"server-{self.port}.out"
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True, timeout: float = 90.0) -> "LiveServer":
        env = dict(os.environ)
        env.update({f"ANOMALY_{k}": str(v) for k, v in self.settings.items()})
        env.update(PORT=str(self.port), HOST="127.0.0.1", PYTHONUNBUFFERED="1")
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "server.py"), *self.extra_args], cwd=REPO_ROOT,
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until /health says the engine is restored (200 or 503) or failed; fail early if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                status, body = http_json(self.port, "GET", "/health", timeout=2)
                if status in (200, 503) and ((body or {}).get("ready", True) or "failed" in body):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready within {timeout} s:\n{self.log()}")

    def get(self, path: str):
        return http_json(self.port, "GET", path)

    def post(self, path: str, body: dict):
        return http_json(self.port, "POST", path, body)

    def log(self) -> str:
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return text[-5000:]

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the gunicorn process group, SIGKILL it if it lingers; return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the master and the worker at once: a crash, nothing gets to clean up."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


class SseClient:
    """A Server-Sent Events reader over one raw socket (HTTP/1.1, chunked transfer).

    Parameters
    ----------
    port : int
    query : str
        Appended to /api/stream/anomalies (e.g. ``"?source=cpu_usage"``).
    last_event_id : int, optional
        Sent as the ``Last-Event-ID`` header.
    receive_buffer : int, optional
        SO_RCVBUF set before connecting (a small one makes a stalled reader stall sooner).
    read : bool
        False for a client that sends its request and then never reads.
    """

    def __init__(self, port: int, query: str = "", last_event_id: int | None = None,
                 receive_buffer: int | None = None, timeout: float = 15.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        headers = [f"GET /api/stream/anomalies{query} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                   "Accept: text/event-stream"]
        if last_event_id is not None:
            headers.append(f"Last-Event-ID: {last_event_id}")
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        self._raw = b""
        self._body = b""
        self._headers_done = False
        self.status: int | None = None
        self.comments = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the stream")
        self._raw += data
        if not self._headers_done:
            head, sep, rest = self._raw.partition(b"\r\n\r\n")
            if not sep:
                return
            self.status = int(head.split(b" ", 2)[1])
            if self.status != 200:
                raise ConnectionError(f"SSE request answered {self.status}: {rest[:300]!r}")
            self._headers_done, self._raw = True, rest
        while True:  # de-chunk what is complete
            line, sep, rest = self._raw.partition(b"\r\n")
            if not sep:
                return
            size = int(line, 16)
            if len(rest) < size + 2:
                return
            if size == 0:
                raise ConnectionError("server ended the stream")
            self._body += rest[:size]
            self._raw = rest[size + 2:]

    def next_event(self, decode: bool = True) -> dict:
        """The next event frame as {"id", "event", "data", "received_ms"}.

        ``data`` is the decoded JSON object, or the raw text when ``decode`` is False.
        """
        while True:
            frame, sep, rest = self._body.partition(b"\n\n")
            if not sep:
                self._fill()
                continue
            self._body = rest
            fields = {}
            for line in frame.decode().split("\n"):
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
            if "data" in fields:
                received_ms = time.time() * 1000
                data = json.loads(fields["data"]) if decode else fields["data"]
                return {"id": int(fields["id"]), "event": fields["event"], "data": data,
                        "received_ms": received_ms}
