"""Replay a recorded file into a running server, at its own pace or faster, with a progress bar.

    python -m server.replay sessions.csv --url http://127.0.0.1:5001 --speed 10
    python -m server.replay sessions.csv --url http://127.0.0.1:5001 --speed max

The file is checked whole first (a bad line stops the replay before anything
is sent).  Then its events are sent as they fall due, each batch as a small
CSV to ``POST /api/upload``, so the server scores, stores and pushes them as
they would arrive live.  ``--speed 10`` plays ten seconds of event time per
second; ``max`` sends as fast as the server takes them.
"""
from __future__ import annotations

import argparse
import http.client
import json
import sys
from urllib.parse import urlsplit

import pandas as pd
from tqdm import tqdm

from .pipeline.schema import BadData, load_schema
from .sources.replay import ReplaySource

__all__ = ["main"]


def batch_csv(frame: pd.DataFrame, timestamp: str) -> bytes:
    """A typed batch as CSV again, its timestamp as ISO-8601 UTC with milliseconds."""
    out = frame.copy()
    out[timestamp] = pd.to_datetime(out[timestamp], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out.to_csv(index=False).encode()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a CSV or JSON-lines file of events")
    parser.add_argument("--url", default="http://127.0.0.1:5001", help="the server (default %(default)s)")
    parser.add_argument("--speed", default="1", help="event seconds per wall second, or 'max' (default 1)")
    parser.add_argument("--schema", default="ev_charging")
    parser.add_argument("--token", default=None, help="the server's API token, if it has one")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds of wall time per request at most")
    args = parser.parse_args(argv)
    speed = None if args.speed == "max" else float(args.speed)
    schema = load_schema(args.schema)
    replay = ReplaySource(args.file, schema, speed=speed, tick=args.tick, filename=args.file)
    try:
        replay.start()
    except BadData as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    target = urlsplit(args.url)
    if target.scheme not in ("http", "https") or not target.hostname:
        print(f"--url must be http(s)://host[:port], not {args.url!r}", file=sys.stderr)
        return 2
    connection_class = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    conn = connection_class(target.hostname, target.port, timeout=60)  # one keep-alive connection
    headers = {"Content-Type": "text/csv"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    path = f"{target.path.rstrip('/')}/api/upload?schema={args.schema}&origin=replay"
    anomalies = 0
    try:
        with tqdm(total=replay.rows, unit="event", desc="replay") as bar:
            for batch in replay.batches():
                conn.request("POST", path, body=batch_csv(batch.frame, schema.timestamp), headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    bar.close()
                    print(f"the server refused a batch: {response.status} {body[:500].decode(errors='replace')}",
                          file=sys.stderr)
                    return 1
                anomalies += json.loads(body)["anomalies"]
                bar.update(len(batch))
                bar.set_postfix(anomalies=anomalies)
    except OSError as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(f"sent {replay.sent} events; the server found {anomalies} anomalies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
