"""File upload parsing: CSV and JSON lines, bad files, all-or-nothing, large files streamed."""
from __future__ import annotations

import io
import json
import time
import tracemalloc

import pytest

from server.pipeline.schema import BadData
from server.sources import PulledSource, Source
from server.sources.replay import FakeClock, ReplaySource
from server.sources.upload import KEPT, FileSource, KeptBudget, _frame_bytes

from pipeline_helpers import HEADER, csv_bytes, ev_schema  # noqa: F401 -- a fixture

GOOD = "s{i},u{u},c{c},2026-01-01T{h:02d}:00:00Z,60,20,8,10.0.0.1"


def _rows(n: int) -> list[str]:
    return [GOOD.format(i=i, u=i % 7, c=i % 3, h=i % 24) for i in range(n)]


def _read(data: bytes, schema, **kw) -> list:
    source = FileSource(io.BytesIO(data), schema, **kw)
    source.start()
    return list(source.batches())


def test_a_file_source_is_a_source(ev_schema):
    source = FileSource(io.BytesIO(b""), ev_schema)
    assert isinstance(source, Source) and isinstance(source, PulledSource)  # the supervisor pulls it


def test_csv_is_read_in_chunks_with_line_numbers(ev_schema):
    batches = _read(csv_bytes(*_rows(10)), ev_schema, chunk_rows=4)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [b.first_line for b in batches] == [2, 6, 10]
    assert batches[2].frame["session_id"].tolist() == ["s8", "s9"]


def test_camel_case_json_lines_read_like_csv(ev_schema):
    lines = [json.dumps({"sessionId": f"s{i}", "userId": "u1", "chargerId": "c1",
                         "startTime": "08:00", "duration": 60, "energy": 20.5, "payment": 8})
             for i in range(3)]
    batches = _read(("\n".join(lines) + "\n").encode(), ev_schema, filename="x.jsonl")
    frame = batches[0].frame
    assert frame["session_id"].tolist() == ["s0", "s1", "s2"] and frame["energy"].tolist() == [20.5] * 3


def test_bad_json_line_is_named(ev_schema):
    lines = [json.dumps({"session_id": "a", "user_id": "u", "charger_id": "c", "start_time": "08:00",
                         "duration": 1, "energy": 1, "payment": 1}), "{not json"]
    with pytest.raises(BadData, match="line 2 is not a JSON object"):
        _read("\n".join(lines).encode(), ev_schema, format="jsonl")


@pytest.mark.parametrize("value, kind", [(["x"], "an array"), ({"id": "x"}, "an object")])
def test_a_json_array_or_object_for_a_field_is_refused_by_line(ev_schema, value, kind):
    """Not stored as its Python text ("['x']"): a field takes one value."""
    good = {"session_id": "a", "user_id": "u", "charger_id": "c", "start_time": "08:00",
            "duration": 1, "energy": 1, "payment": 1}
    lines = [json.dumps(good), "", json.dumps({**good, "session_id": "b", "user_id": value})]
    with pytest.raises(BadData, match=f"line 3: field 'user_id' is {kind}; it takes one value"):
        _read("\n".join(lines).encode(), ev_schema, format="jsonl")
    # Strings mixed with numbers are still one value each.
    mixed = [json.dumps({**good, "session_id": 7}), json.dumps({**good, "session_id": "b", "duration": 2.5})]
    frame = _read("\n".join(mixed).encode(), ev_schema, format="jsonl")[0].frame
    assert frame["session_id"].tolist() == ["7", "b"]


def test_missing_column_is_a_clear_error(ev_schema):
    data = csv_bytes("s1,u1,c1,08:00,60,20", header="session_id,user_id,charger_id,start_time,duration,energy")
    with pytest.raises(BadData) as info:
        _read(data, ev_schema)
    assert "missing column(s) payment" in str(info.value) and info.value.line == 1
    assert "energy" in info.value.found


def test_wrong_type_deep_in_a_file_names_the_line_and_nothing_is_yielded(ev_schema):
    rows = _rows(25)
    rows[21] = rows[21].replace(",60,", ",an hour,")
    source = FileSource(io.BytesIO(csv_bytes(*rows)), ev_schema, chunk_rows=10)
    with pytest.raises(BadData, match=r"'duration' needs a number .* line\(s\) 23 .*'an hour'") as info:
        source.start()
    assert info.value.line == 23
    with pytest.raises(RuntimeError):  # all or nothing: an unchecked file yields no batch
        next(source.batches())


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"\n\n", "the file is empty"),
    (HEADER.encode() + b"\n", "header but no events"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary"),
    (b"session_id,user_id\n\xff\xfe\xfd bad bytes everywhere \xff\n", "not UTF-8"),
    (csv_bytes("s1,u1,c1,08:00,60,20,8,ip,extra,more"), "not valid CSV"),
])
def test_unreadable_files_are_refused_with_a_reason(ev_schema, data, message):
    with pytest.raises(BadData, match=message):
        _read(data, ev_schema)


def test_a_100_mb_file_is_streamed_in_bounded_memory_and_a_bad_last_line_rejects_it(ev_schema, tmp_path):
    line = GOOD.format(i=0, u=1, c=2, h=3) + "\n"
    n = 100 * 1024 * 1024 // len(line) + 1
    path = tmp_path / "big.csv"
    with open(path, "w") as out:
        out.write(HEADER + "\n")
        block = line * 10_000
        for _ in range(n // 10_000 + 1):
            out.write(block)
        out.write("s-last,u1,c1,not a time,60,20,8,ip\n")
    lines = (n // 10_000 + 1) * 10_000 + 2
    assert path.stat().st_size > 100 * 1024 * 1024
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(BadData) as info:
            FileSource(path, ev_schema, chunk_rows=50_000).start()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.line == lines
    # One chunk of 50,000 rows at a time, not the 1.3 million of the file.
    assert peak < 150 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    print(f"100 MB checked in {time.perf_counter() - started:.1f} s, peak {peak / 2**20:.0f} MiB")


def test_replay_paces_batches_by_event_time_and_drains_on_stop(ev_schema):
    rows = [GOOD.replace("T{h:02d}:00:00Z", "T08:{h:02d}:00Z").format(i=i, u=1, c=1, h=i) for i in range(6)]
    clock = FakeClock()
    replay = ReplaySource(io.BytesIO(csv_bytes(*rows)), ev_schema, speed=60.0, tick=0.1, clock=clock)
    replay.start()
    batches = replay.batches()
    assert len(next(batches)) == 1 and len(next(batches)) == 1
    assert clock.waits == [1.0]  # a minute of event time at 60x
    replay.stop()
    assert list(batches) == []
    assert [len(b) for b in replay.drain()] == [4]  # stopped: nothing read is lost
    # Paced, it held none of the shared upload budget while it ran.
    assert replay.file_source.kept_batches == 0 and KEPT.used == 0


def test_replay_as_fast_as_possible_never_waits(ev_schema):
    clock = FakeClock()
    replay = ReplaySource(io.BytesIO(csv_bytes(*_rows(30))), ev_schema, speed=None, clock=clock)
    replay.start()
    assert sum(len(b) for b in replay.batches()) == 30 and clock.waits == []
    assert replay.file_source.kept_batches > 0  # as fast as it can: parsed once, like an upload


def _frames(batches) -> list:
    return [(b.first_line, b.frame.to_dict("list")) for b in batches]


def test_a_file_within_the_budget_is_parsed_once(ev_schema, tmp_path):
    path = tmp_path / "sessions.csv"
    path.write_bytes(csv_bytes(*_rows(25)))
    source = FileSource(path, ev_schema, chunk_rows=10)
    source.start()
    parsed_again = FileSource(path, ev_schema, chunk_rows=10, keep_bytes=0)
    parsed_again.start()
    expected = _frames(parsed_again.batches())
    path.unlink()  # the batches come from the check, not from the file
    assert _frames(source.batches()) == expected and [line for line, _ in expected] == [2, 12, 22]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_past_the_budget_the_rest_is_parsed_again_with_its_line_numbers(ev_schema, tmp_path, fmt):
    rows = _rows(25)
    if fmt == "csv":
        data = csv_bytes(*rows)
    else:
        keys = HEADER.split(",")
        lines = [json.dumps(dict(zip(keys, r.split(",")))) for r in rows]
        lines.insert(13, "")  # a blank line keeps its number
        data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / f"sessions.{fmt}"
    path.write_bytes(data)
    whole = FileSource(path, ev_schema, chunk_rows=10, keep_bytes=0)
    whole.start()
    expected = _frames(whole.batches())
    one_batch = _frame_bytes(next(iter(FileSource(path, ev_schema, chunk_rows=10)._read())).frame)
    source = FileSource(path, ev_schema, chunk_rows=10, keep_bytes=one_batch + 1)
    source.start()
    assert source.kept_batches == 1  # the budget holds one batch: the others are read again
    assert _frames(source.batches()) == expected
    assert _frames(source.batches()) == expected  # a second reading parses all of it again
    assert len(expected) == 3 and expected[2][0] == (22 if fmt == "csv" else 21)


def test_the_kept_batches_stay_within_the_budget(ev_schema):
    budget = 20_000
    source = FileSource(io.BytesIO(csv_bytes(*_rows(500))), ev_schema, chunk_rows=10, keep_bytes=budget)
    source.start()
    kept = sum(_frame_bytes(b.frame) for b, _ in source._kept)
    assert 0 < kept == source.kept_bytes <= budget and source.kept_batches < 50
    assert sum(len(b) for b in source.batches()) == 500


def test_a_bad_line_past_the_budget_keeps_nothing(ev_schema):
    rows = _rows(25)
    rows[21] = rows[21].replace(",60,", ",an hour,")
    source = FileSource(io.BytesIO(csv_bytes(*rows)), ev_schema, chunk_rows=10)
    with pytest.raises(BadData):
        source.start()
    assert not source._kept and KEPT.used == 0


def test_files_checked_at_once_share_one_budget_and_give_it_back(ev_schema):
    data = csv_bytes(*_rows(40))
    sizes = [_frame_bytes(b.frame) for b in FileSource(io.BytesIO(data), ev_schema, chunk_rows=10)._read()]
    budget = KeptBudget(sum(sizes[:3]))
    first, second = (FileSource(io.BytesIO(data), ev_schema, chunk_rows=10, budget=budget) for _ in range(2))
    first.start()
    second.start()
    assert (first.kept_batches, second.kept_batches) == (3, 0)  # the first took what there was
    assert sum(len(b) for b in first.batches()) == 40 and budget.used == 0  # given back as handed out
    third = FileSource(io.BytesIO(data), ev_schema, chunk_rows=10, budget=budget)
    third.start()
    assert third.kept_batches == 3
    batches = third.batches()
    next(batches)
    batches.close()  # an import that stopped part way gives the rest back
    assert budget.used == 0
    fourth = FileSource(io.BytesIO(data), ev_schema, chunk_rows=10, budget=budget)
    fourth.start()
    assert budget.used > 0
    del fourth  # checked and never read (its import failed before the first batch)
    assert budget.used == 0


def test_the_rest_of_a_file_is_read_on_from_the_check_s_clock_past_midnight(ev_schema):
    times = ["22:00", "23:00", "00:30", "01:00", "02:00"]  # midnight passes in the first batch
    data = csv_bytes(*(f"s{i},u1,c1,{t},60,20,8,ip" for i, t in enumerate(times)))
    whole = FileSource(io.BytesIO(data), ev_schema, chunk_rows=3, day=0.0, keep_bytes=0)
    whole.start()
    expected = _frames(whole.batches())
    one_batch = _frame_bytes(next(iter(whole._read())).frame)
    source = FileSource(io.BytesIO(data), ev_schema, chunk_rows=3, day=0.0, keep_bytes=one_batch + 1)
    source.start()
    assert source.kept_batches == 1
    assert _frames(source.batches()) == expected
    assert expected[1][1]["start_time"] == [86400.0 + 3600, 86400.0 + 2 * 3600]  # the next day's


def test_an_uploaded_file_object_is_read_in_blocks_not_bytes(ev_schema):
    class CountedReads(io.BytesIO):
        reads = 0

        def read(self, size=-1):
            CountedReads.reads += 1
            return super().read(size)

    keys = HEADER.split(",")
    lines = [json.dumps(dict(zip(keys, r.split(",")))) for r in _rows(2000)]
    source = FileSource(CountedReads(("\n".join(lines) + "\n").encode()), ev_schema, format="jsonl")
    source.start()
    assert sum(len(b) for b in source.batches()) == 2000
    # Read a byte at a time, the JSON lines took one read per byte (~350,000 here).
    assert CountedReads.reads < 50
