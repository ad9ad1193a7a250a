"""Hub.end_all at shutdown: each client writes what it has queued, then END; stalled ones are cut.

The live version (real gunicorn, an SSE and a WebSocket client, SIGTERM) is in
tests/server/test_restart_live.py.
"""
from __future__ import annotations

import threading

from server.events import tick_event
from server.hub import END, WAKE, Hub


def tick(event_id: int):
    return tick_event(event_id, event_id, "scheduler", [{"id": event_id, "source": "cpu", "values": {"x": 1.0}}])


def drain_until_end(client, seen: list) -> None:
    """What a push greenlet does (server/push.py): write queued items until END, then close."""
    while True:
        item = client.next_item(5)
        if item is END or item is None:
            break
        if item is not WAKE:
            seen.append(item.id)
    client.close()


def test_end_all_lets_clients_finish_their_queue_then_cuts_only_the_stalled_ones():
    hub = Hub(queue_size=2)
    reading, stalled = hub.connect("sse"), hub.connect("ws")
    hub.publish([tick(1)])
    hub.publish([tick(2)])  # both queues are full now
    seen = []
    reader = threading.Thread(target=drain_until_end, args=(reading, seen))
    assert reading.queue.get_nowait().id == 1  # the reader has written one event when shutdown comes
    reader.start()
    cut = hub.end_all("server shutting down", grace=2.0)
    reader.join(5)
    assert seen == [2] and reading.closed and reading.drop_reason is None  # finished, not cut
    assert cut == 1 and stalled.dropped and stalled.drop_reason == "server shutting down"
    assert hub.counts() == {"sse": 0, "ws": 0}
    hub.publish([tick(3)])  # nothing is delivered to an ended client
    assert reading.queue.empty()


def test_a_client_that_does_not_finish_within_the_grace_is_cut():
    hub = Hub(queue_size=4)
    silent = hub.connect("sse")  # nobody drains it
    assert hub.end_all("server shutting down", grace=0.1) == 1
    assert silent.dropped and silent.ending
