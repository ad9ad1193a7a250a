"""Entities: rows claimed on first sight, evicted when idle, a hard capacity; windows across batches."""
from __future__ import annotations

import numpy as np
import pytest

from server.pipeline.entities import EntityTable, count_in_window


def _ids(*names):
    return np.array(names, dtype=object)


def test_idle_entities_are_evicted_and_their_state_reset():
    table = EntityTable(capacity=10, idle_seconds=100)
    table.add_column("total", (), 0.0)
    rows = table.rows(_ids("a", "b"), np.array([0.0, 50.0]))
    table.columns["total"][rows] = [5.0, 7.0]
    table.rows(_ids("b"), np.array([120.0]))
    assert table.evict_idle() == 1 and table.ids() == ["b"]
    assert table.columns["total"][rows[0]] == 0.0 and table.columns["total"][rows[1]] == 7.0
    again = table.rows(_ids("a"), np.array([130.0]))
    assert table.columns["total"][again[0]] == 0.0  # a comes back as a new entity


def test_capacity_is_a_hard_bound_the_least_recently_seen_goes_first():
    table = EntityTable(capacity=3, idle_seconds=1e9, initial=1)
    table.rows(_ids("a", "b", "c"), np.array([1.0, 2.0, 3.0]))
    table.rows(_ids("d"), np.array([4.0]))
    assert sorted(table.ids()) == ["b", "c", "d"] and len(table) == 3
    with pytest.raises(ValueError, match="more than 3 distinct"):
        table.rows(_ids("e", "f", "g", "h"), np.array([5.0] * 4))


def test_an_entity_in_the_batch_is_not_evicted_to_make_room_for_another():
    table = EntityTable(capacity=2, idle_seconds=10)
    table.rows(_ids("a", "b"), np.array([0.0, 0.0]))
    rows = table.rows(_ids("a", "c"), np.array([100.0, 100.0]))  # b idle; a seen again now
    assert sorted(table.ids()) == ["a", "c"] and rows[0] != rows[1]


def test_hundred_thousand_entities_use_bounded_memory():
    table = EntityTable(capacity=100_000, idle_seconds=1e9)
    table.add_column("mean", (4,), 0.0)
    for start in range(0, 150_000, 50_000):
        ids = np.array([f"user-{i}" for i in range(start, start + 50_000)], dtype=object)
        table.rows(ids, np.full(50_000, float(start)))
    assert len(table) == 100_000 and table.evicted == 50_000
    assert table.nbytes() < 100_000 * 64


def test_window_counts_match_a_plain_loop_in_any_batching():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 5, 300)
    times = np.sort(rng.uniform(0, 20_000, 300))
    expected = [int(np.sum((rows[:i + 1] == rows[i]) & (times[:i + 1] > times[i] - 3600))) for i in range(300)]
    ring = np.full((5, 64), -np.inf)
    got = np.concatenate([count_in_window(ring, rows[k:k + 37], times[k:k + 37], 3600)[0]
                          for k in range(0, 300, 37)])
    assert got.tolist() == expected


def test_a_table_exported_and_imported_keeps_its_live_rows_ids_and_object_columns():
    table = EntityTable(capacity=4, idle_seconds=100, initial=8)
    table.add_column("total", (2,), 0.0)
    table.add_column("holder", (), None, dtype=object)
    rows = table.rows(_ids("a", "b", "c"), np.array([0.0, 50.0, 60.0]))
    table.columns["total"][rows] = [[1, 2], [3, 4], [5, 6]]
    table.columns["holder"][rows[1]] = "u7"
    table.rows(_ids("c"), np.array([130.0]))
    table.evict_idle()  # a is gone: its row is not saved
    meta, arrays = table.export_state()
    assert meta["rows"] == 2 and sorted(arrays["ids"].tolist()) == ["b", "c"]

    twin = EntityTable(capacity=4, idle_seconds=100, initial=1)
    twin.add_column("total", (2,), 0.0)
    twin.add_column("holder", (), None, dtype=object)
    twin.import_state(meta, arrays)
    assert sorted(twin.ids()) == ["b", "c"] and twin.clock == 130.0 and twin.evicted == 1
    b, c = twin.row_of("b"), twin.row_of("c")
    assert twin.columns["total"][b].tolist() == [3, 4] and twin.columns["total"][c].tolist() == [5, 6]
    assert twin.columns["holder"][b] == "u7" and twin.columns["holder"][c] is None
    assert twin.last_seen[c] == 130.0
    # New entities still find room, up to the capacity.
    assert len(set(twin.rows(_ids("d", "e"), np.array([140.0, 140.0])).tolist()) | {b, c}) == 4

    other = EntityTable(capacity=4, idle_seconds=100)
    other.add_column("total", (3,), 0.0)
    other.add_column("holder", (), None, dtype=object)
    with pytest.raises(ValueError, match="layout differs"):
        other.import_state(meta, arrays)
    assert len(other) == 0
