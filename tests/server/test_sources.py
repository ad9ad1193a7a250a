"""The built-in generators and HTTP submit are sources under the one supervisor: stopped with the rest, losing nothing."""
from __future__ import annotations

import threading

import pytest

from server.sources import PulledSource, Source
from server.sources.generators import GeneratorSource
from server.sources.submit import SubmitSource
from server.validation import parse_submit
from server.writer import WriterStopped
from server_helpers import services_of, wait_for


def test_the_supervisor_owns_the_generators_and_submit(app):
    sources = services_of(app).sources.sources
    assert isinstance(sources["generators"], GeneratorSource)
    assert isinstance(sources["submit"], SubmitSource)
    for source in sources.values():
        assert isinstance(source, Source) and not isinstance(source, PulledSource)


def test_stopping_the_supervisor_stops_ticks_and_submits_but_not_the_final_snapshot(app, client):
    svc = services_of(app)
    assert len(svc.monitor.tick()) == 9
    svc.sources.stop()
    assert svc.monitor.tick() == []
    assert svc.monitor.tick_count == 1
    response = client.post("/api/submit", json={"source": "late", "value": 1.0})
    assert response.status_code == 503 and "shutting down" in response.get_json()["error"]
    # Reading and configuring still work until the monitor itself is quiesced.
    assert client.get("/api/data/cpu_usage").status_code == 200
    assert not svc.snapshots.path.exists()
    svc.shutdown()  # the final snapshot runs on the engine thread after the sources stopped
    assert svc.snapshots.path.exists()


@pytest.mark.parametrize("attempt", range(3))
def test_a_submit_racing_the_stop_is_either_stored_or_refused(app, attempt):
    """Nothing acknowledged is lost: a submit answered with ids has its rows committed."""
    svc = services_of(app)
    monitor = svc.monitor
    outcome: dict[str, object] = {}

    def submit() -> None:
        try:
            outcome["points"] = monitor.submit(parse_submit(
                {"points": [{"source": "race", "value": float(v)} for v in range(50)]}, 100))
        except WriterStopped as exc:
            outcome["error"] = exc

    with monitor._lock:  # both wait for the engine; which one gets it first is up to the threads
        submitter = threading.Thread(target=submit)
        stopper = threading.Thread(target=svc.sources.stop)
        first, second = (submitter, stopper) if attempt % 2 == 0 else (stopper, submitter)
        first.start()
        if first is submitter:
            wait_for(lambda: len(monitor._submits) == 1)
        second.start()
    submitter.join(10)
    stopper.join(10)
    assert not submitter.is_alive() and not stopper.is_alive()
    reader = svc.reader()
    try:
        stored = reader.latest_points("race", 100)
    finally:
        reader.close()
    if "points" in outcome:
        assert [p["id"] for p in stored] == [p["id"] for p in outcome["points"]]
        assert len(stored) == 50
    else:
        assert stored == [] and "shutting down" in str(outcome["error"])
