"""The hub: bounded per-client queues, source filters, and the drop of a stalled client."""
from __future__ import annotations

import json
import socket

import pytest

from server.events import anomaly_event, jsonable, plain_event, tick_event
from server.hub import Hub


def point(source: str, pid: int) -> dict:
    return {"id": pid, "source": source, "values": {"x": 1.0}, "score": 0.1}


def tick(event_id: int, *sources: str):
    return tick_event(event_id, event_id, "scheduler", [point(s, i) for i, s in enumerate(sources)])


def test_publish_stamps_published_at_and_reaches_every_client():
    hub = Hub(queue_size=4)
    a, b = hub.connect("sse"), hub.connect("ws")
    hub.publish([tick(1, "cpu")])
    for client in (a, b):
        event = client.next_item(0)
        body = json.loads(event.text())
        assert body["id"] == 1 and body["type"] == "tick" and isinstance(body["published_at"], int)
        assert event.sse_frame().startswith(b"id: 1\nevent: tick\ndata: {")
    assert hub.counts() == {"sse": 1, "ws": 1} and hub.last_id == 1


def test_source_filters_trim_ticks_and_skip_other_anomalies():
    hub = Hub(queue_size=8)
    cpu_only = hub.connect("sse", sources=["cpu"])
    everything = hub.connect("sse")
    anomaly = anomaly_event(3, {"source": "power", "id": 2, "anomaly_id": 1})
    hub.publish([tick(2, "cpu", "power"), anomaly])
    trimmed = json.loads(cpu_only.next_item(0).text(cpu_only.sources))
    assert [p["source"] for p in trimmed["points"]] == ["cpu"]
    assert cpu_only.next_item(0) is None  # the power anomaly was not queued for it
    full = json.loads(everything.next_item(0).text())
    assert [p["source"] for p in full["points"]] == ["cpu", "power"]
    assert everything.next_item(0).id == 3
    assert tick(4, "power").text(frozenset({"cpu"})) is None


def test_plain_sockets_never_get_direct_writes():
    plain, other = socket.socketpair()
    assert not Hub().connect("sse", sock=plain).go_direct("sse")
    plain.close()
    other.close()


def test_a_stalled_client_is_dropped_and_its_socket_shut_while_others_get_everything():
    hub = Hub(queue_size=3)
    server_end, client_end = socket.socketpair()
    stalled = hub.connect("sse", sock=server_end)
    reader = hub.connect("ws")
    received = []
    for event_id in range(1, 8):
        hub.publish([tick(event_id, "cpu")])
        received.append(reader.next_item(0).id)  # a healthy client keeps draining
    assert received == list(range(1, 8))
    assert stalled.dropped and "queue full" in stalled.drop_reason
    assert hub.counts() == {"sse": 0, "ws": 1} and hub.dropped == 1
    assert client_end.recv(10) == b""  # the peer sees the connection shut
    server_end.close()
    client_end.close()


def test_events_never_carry_nan():
    event = plain_event("hello", 5, 1, sources=["a"], value=float("nan"))
    assert json.loads(event.text())["value"] is None
    assert jsonable({"a": [float("inf"), 1]}) == {"a": [None, 1]}


def test_hub_queue_size_must_be_positive():
    with pytest.raises(ValueError):
        Hub(queue_size=0)


def big_tick(event_id: int, n_points: int = 40):
    return tick_event(event_id, event_id, "scheduler",
                      [dict(point(f"s{i}", i), note="x" * 40) for i in range(n_points)])


def test_direct_delivery_writes_idle_sockets_at_once_and_queues_the_rest_of_a_frame():
    from gevent import socket as gsocket

    ours, theirs = gsocket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    hub = Hub(queue_size=4)
    client = hub.connect("sse", sock=ours)
    assert client.go_direct("sse")
    first = tick(1, "cpu")
    hub.publish([first])
    assert client.queue.empty() and not client.write_lock.locked()
    assert theirs.recv(65536) == first.wire("sse")  # written by the publisher itself

    # Nobody reads: the socket buffer fills, a frame goes out in part, the rest is queued
    # together with the write lock, and later events queue behind it.
    sent = []
    while client.queue.empty():
        sent.append(big_tick(len(sent) + 2))
        hub.publish([sent[-1]])
    assert client.write_lock.locked()
    assert type(client.queue.queue[0]).__name__ == "Remainder"
    while not client.dropped:
        sent.append(big_tick(len(sent) + 2))
        hub.publish([sent[-1]])
    assert "queue full" in client.drop_reason
    ours.close()
    theirs.close()


def test_queued_frames_reach_the_peer_whole_and_in_order():
    import gevent
    from gevent import socket as gsocket

    ours, theirs = gsocket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    hub = Hub(queue_size=1000)
    client = hub.connect("ws", sock=ours)
    assert client.go_direct("ws")
    events = [big_tick(i) for i in range(1, 30)]
    for event in events:
        hub.publish([event])  # the first ones go direct, one in part, the rest are queued
    assert not client.queue.empty()
    received = bytearray()
    expected = b"".join(e.wire("ws") for e in events)

    def read():
        while len(received) < len(expected):
            received.extend(theirs.recv(65536))

    reader = gevent.spawn(read)
    while not client.queue.empty():
        client.write_item(client.next_item(0), "ws")  # what the client's greenlet does
    reader.join(10)
    assert bytes(received) == expected and not client.write_lock.locked()
    ours.close()
    theirs.close()
