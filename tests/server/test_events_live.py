"""Entity-keyed events on the real server (gunicorn, gevent): the EV feed, a large upload, the replay client."""
from __future__ import annotations

import http.client
import subprocess
import sys

import pytest

from generators.ev_charging import EVChargingGenerator
from live_server import REPO_ROOT, LiveServer
from server_helpers import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("events"),
                      {"TICK_INTERVAL": 0.5, "EV_FEED_SPEED": 7200, "SYNCHRONOUS": "NORMAL"}).start()
    yield live
    live.stop()


def _summary(server) -> dict:
    status, body = server.get("/api/events/summary?schema=ev_charging")
    assert status == 200
    return body


def test_the_built_in_ev_feed_runs_under_the_scheduler(server):
    wait_for(lambda: _summary(server)["events"] > 50, timeout=60, interval=0.5)
    status, body = server.get("/api/events?schema=ev_charging&limit=5")
    assert status == 200 and body["events"][0]["origin"] == "ev_charging"


def _sessions_of_their_own(days: int, seed: int, start: float, tag: str):
    """Generated sessions with ids of their own: the generator numbers every seed's sessions from
    S00000000, as the running feed's, and an event whose id is stored already is not stored again."""
    sessions = EVChargingGenerator(seed=seed, start=start).days(days)
    sessions["session_id"] = tag + sessions["session_id"]
    return sessions


def test_a_large_csv_upload_streams_through_the_real_server(server, tmp_path):
    sessions = _sessions_of_their_own(20, seed=3, start=1_800_000_000.0, tag="upload-")
    data = sessions.drop(columns=["label"]).to_csv(index=False).encode()
    assert len(data) > 500_000
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.request("POST", "/api/upload?schema=ev_charging", body=data, headers={"Content-Type": "text/csv"})
        response = conn.getresponse()
        import json
        summary = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200, summary
    assert summary["events"] == len(sessions)
    labelled = set(sessions.loc[sessions["label"] != "", "session_id"])
    found = {a["event_id"] for a in summary["anomaly_list"] if set(a["types"]) & {
        "billing_fraud", "dos_attack", "multi_user_conflict"}}
    assert len(found & labelled) > 0.8 * len(labelled)


def test_the_replay_client_sends_a_file_with_a_progress_bar(server, tmp_path):
    path = tmp_path / "day.csv"
    _sessions_of_their_own(1, seed=4, start=1_900_000_000.0, tag="replay-").to_csv(path, index=False)
    before = _summary(server)["events"]
    done = subprocess.run([sys.executable, "-m", "server.replay", str(path), "--url",
                           f"http://127.0.0.1:{server.port}", "--speed", "max"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "sent" in done.stdout and "replay" in done.stderr  # tqdm draws on stderr
    assert _summary(server)["events"] >= before + sum(1 for _ in open(path)) - 1
    bad = tmp_path / "bad.csv"
    bad.write_text("session_id,user_id\ns1,u1\n")
    refused = subprocess.run([sys.executable, "-m", "server.replay", str(bad), "--url",
                              f"http://127.0.0.1:{server.port}"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "missing column(s)" in refused.stderr
