"""Publish-to-receive latency of push events with many concurrent clients (half SSE, half WebSocket).

Starts the real server (``python server.py``: gunicorn, one gevent worker) on a
free port of 127.0.0.1 with a fast tick, connects the clients from this one
process (gevent: each client is a greenlet on a real socket), and for a fixed
time records, for every event each client receives, ``receive time -
published_at``.  Prints p50/p99/max per client count.

    .venv/bin/python tests/benchmarks/bench_push_latency.py            # 100 and 1000 clients
    .venv/bin/python tests/benchmarks/bench_push_latency.py --clients 200 --seconds 5

Bounded: loopback only, a fixed number of clients, a fixed duration per run.
The clients share the machine (and its 2 cores) with the server, so their own
scheduling delay is inside the figures.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from live_server import LiveServer, cpu_seconds  # noqa: E402

PUBLISHED_AT = re.compile(rb'"published_at":(\d+)')


def raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Recorder:
    """Latency samples of one run, and what went wrong."""

    def __init__(self):
        self.samples: list[float] = []
        self.stamps: list[int] = []
        self.recording = False
        self.errors = 0
        self.connected = 0

    def record(self, published_ms: int, now_ms: float | None = None) -> None:
        if self.recording:
            now_ms = time.time() * 1000 if now_ms is None else now_ms
            self.samples.append(now_ms - published_ms)
            self.stamps.append(published_ms)


def open_stream(port: int, path: str, extra_headers: list[str]) -> socket.socket:
    """Connect and send one GET; the caller parses what comes back."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *extra_headers]
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return conn


def sse_client(port: int, recorder: Recorder, stop: gevent.event.Event, query: str) -> None:
    """Reads the raw stream: every frame holds data: {"published_at":<ms>, so a search over
    the complete frames of each read finds the stamps without parsing JSON or the chunking."""
    try:
        conn = open_stream(port, f"/api/stream/anomalies{query}", ["Accept: text/event-stream"])
    except OSError:
        recorder.errors += 1
        return
    recorder.connected += 1
    pending = b""
    try:
        while not stop.is_set():
            block = conn.recv(262144)
            if not block:
                raise ConnectionError("closed")
            now_ms = time.time() * 1000
            data = pending + block
            end = data.rfind(b"\n\n")  # frames end with a blank line; keep the incomplete rest
            if end < 0:
                pending = data
                continue
            pending = data[end + 2:]
            for match in PUBLISHED_AT.finditer(data, 0, end):
                recorder.record(int(match.group(1)), now_ms)
    except (OSError, ConnectionError):
        if not stop.is_set():
            recorder.errors += 1
    finally:
        conn.close()


def ws_client(port: int, recorder: Recorder, stop: gevent.event.Event, query: str) -> None:
    """A minimal WebSocket client: handshake, unmasked server frames, pongs for pings."""
    key = base64.b64encode(os.urandom(16)).decode()
    try:
        conn = open_stream(port, f"/ws{query}", ["Upgrade: websocket", "Connection: Upgrade",
                                                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"])
    except OSError:
        recorder.errors += 1
        return
    recorder.connected += 1
    buffer = b""
    try:
        while b"\r\n\r\n" not in buffer:
            buffer += conn.recv(4096)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head[:100])
        while not stop.is_set():
            block = conn.recv(262144)
            if not block:
                raise ConnectionError("closed")
            buffer += block
            now_ms = time.time() * 1000
            while len(buffer) >= 2:
                opcode, size = buffer[0] & 0x0F, buffer[1] & 0x7F
                start = 2
                if size == 126:
                    if len(buffer) < 4:
                        break
                    size, start = struct.unpack(">H", buffer[2:4])[0], 4
                elif size == 127:
                    if len(buffer) < 10:
                        break
                    size, start = struct.unpack(">Q", buffer[2:10])[0], 10
                if len(buffer) < start + size:
                    break
                payload, buffer = buffer[start:start + size], buffer[start + size:]
                if opcode == 0x1:
                    match = PUBLISHED_AT.search(payload, 0, 64)
                    if match:
                        recorder.record(int(match.group(1)), now_ms)
                elif opcode == 0x9:  # ping: answer with a masked pong carrying the same payload
                    mask = os.urandom(4)
                    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                    conn.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
                elif opcode == 0x8:
                    raise ConnectionError("closed by the server")
    except (OSError, ConnectionError):
        if not stop.is_set():
            recorder.errors += 1
    finally:
        conn.close()


def worker_pid(server: LiveServer) -> int:
    """The gunicorn worker writes its pid into the scheduler lock file next to the database."""
    return int(Path(str(server.database) + ".scheduler.lock").read_text().split()[0])


def client_counts(server: LiveServer) -> dict:
    return server.get("/api/status")[1]["clients"]


def run(server: LiveServer, clients: int, seconds: float, query: str) -> dict:
    recorder, stop = Recorder(), gevent.event.Event()
    greenlets = []
    for i in range(clients):
        target = sse_client if i % 2 == 0 else ws_client
        greenlets.append(gevent.spawn(target, server.port, recorder, stop, query))
        if i % 50 == 49:
            gevent.sleep(0.05)  # connect in waves rather than one SYN flood
    deadline = time.monotonic() + 60
    while sum(client_counts(server).values()) < clients and time.monotonic() < deadline:
        gevent.sleep(0.2)
    held = client_counts(server)
    gevent.sleep(1.0)  # let every client settle into its loop
    worker = worker_pid(server)
    server_cpu, client_cpu, started = cpu_seconds(worker), cpu_seconds(os.getpid()), time.monotonic()
    recorder.recording = True
    gevent.sleep(seconds)
    recorder.recording = False
    elapsed = time.monotonic() - started
    server_cpu = (cpu_seconds(worker) - server_cpu) / elapsed
    client_cpu = (cpu_seconds(os.getpid()) - client_cpu) / elapsed
    load = os.getloadavg()[0]
    still = client_counts(server)
    stop.set()
    for g in greenlets:
        g.kill(block=False)
    gevent.joinall(greenlets, timeout=10)
    deadline = time.monotonic() + 30
    while sum(client_counts(server).values()) and time.monotonic() < deadline:
        gevent.sleep(0.2)
    samples = np.array(recorder.samples)
    stamps = np.array(recorder.stamps)
    worst = []
    for stamp in np.unique(stamps):
        mine = samples[stamps == stamp]
        worst.append((float(mine.max()), float(np.median(mine)), int(mine.size), int(stamp)))
    worst.sort(reverse=True)
    return {"clients": clients, "held": held, "still": still, "events": samples.size,
            "p50": float(np.percentile(samples, 50)) if samples.size else float("nan"),
            "p99": float(np.percentile(samples, 99)) if samples.size else float("nan"),
            "max": float(samples.max()) if samples.size else float("nan"),
            "errors": recorder.errors, "worst_events": worst[:5], "server_cpu": server_cpu,
            "client_cpu": client_cpu, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--tick", type=float, default=0.2, help="scheduler tick interval (s)")
    parser.add_argument("--source", default="", help="optional ?source= filter of every client")
    args = parser.parse_args()
    if max(args.clients) > 5000 or args.seconds > 120:
        parser.error("bounded benchmark: at most 5000 clients and 120 s per run")
    raise_file_limit(2 * max(args.clients) + 256)
    query = f"?source={args.source}" if args.source else ""
    workdir = Path(tempfile.mkdtemp(prefix="bench-push-"))
    server = LiveServer(workdir, {"TICK_INTERVAL": args.tick}).start()
    try:
        results = [run(server, n, args.seconds, query) for n in args.clients]
        stats = server.get("/api/stats")[1]["tick"]
    finally:
        server.stop()
    print(f"push latency, tick {args.tick} s, {args.seconds:g} s measured per run, "
          f"half SSE / half WebSocket, filter {args.source or 'none'}")
    print(f"{'clients':>8} {'held sse/ws':>12} {'events':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'errors':>7} {'at end sse/ws':>14}")
    for r in results:
        print(f"{r['clients']:>8} {r['held']['sse']:>6}/{r['held']['ws']:<5} {r['events']:>8} "
              f"{r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} {r['errors']:>7} "
              f"{r['still']['sse']:>7}/{r['still']['ws']:<6}")
    for r in results:
        print(f"{r['clients']} clients: server worker used {r['server_cpu']:.0%} of a core, this "
              f"client process {r['client_cpu']:.0%}; machine load average {r['load']:.1f} "
              f"on {os.cpu_count()} cores")
        print(f"{r['clients']} clients, slowest events (max ms, median ms, receivers, published_at):",
              [(round(a, 1), round(b, 1), c, d) for a, b, c, d in r["worst_events"]])
    print(f"server tick: count {stats['count']}, p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
