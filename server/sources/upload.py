"""A file of events (CSV or JSON lines), checked whole, then read again in chunks as batches.

Large files are streamed: pandas reads ``chunk_rows`` lines at a time, so
memory stays bounded by a chunk, not by the file.  ``start()`` reads the
whole file once and types every chunk, so a file with a bad line anywhere
raises :class:`~server.pipeline.schema.BadData` before a single event is
yielded: a file is imported whole or not at all.  The error names what was
expected, what was found and the line.

The typed batches of that check are kept, up to ``keep_bytes`` of them, from a
budget the process's file sources share (:data:`KEEP_BYTES`: two uploads at once
do not keep twice as much), and :meth:`FileSource.batches` hands them out
instead of parsing them again (the read pass cost as much as the check); past
the budget the rest of the file is parsed again, chunk by chunk, as before.

>>> import io
>>> from server.pipeline.schema import load_schema
>>> text = (b"sessionId,userId,chargerId,startTime,duration,energy,payment\\n"
...         b"s1,u1,c1,2026-01-01T08:00:00Z,60,20,8\\n")
>>> source = FileSource(io.BytesIO(text), load_schema("ev_charging"))
>>> source.start(); [len(b) for b in source.batches()], source.rows
([1], 1)
>>> bad = b"session_id,user_id,charger_id,start_time,duration,energy,payment\\ns1,u1,c1,08:00,sixty,20,8\\n"
>>> FileSource(io.BytesIO(bad), load_schema("ev_charging")).start()
Traceback (most recent call last):
...
server.pipeline.schema.BadData: column 'duration' needs a number on every line; line(s) 2 do not: found 'sixty'
"""
from __future__ import annotations

import collections
import copy
import io
import itertools
import json
import sys
import threading
import warnings
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import pandas as pd

from ..pipeline.event import EventBatch
from ..pipeline.schema import BadData, Schema, TimeOfDayClock

__all__ = ["CHUNK_ROWS", "FileSource", "detect_format"]

FORMATS = ("csv", "jsonl")
#: Bytes looked at to tell text from binary and CSV from JSON lines.
SNIFF_BYTES = 8192
#: Lines per batch.  A batch is scored, stored and pushed as one, so its size bounds how long its
#: first event waits for the push: 10,000 keeps that under a second at 50,000 events/s, where
#: batches of 50,000 took 3-5 s (tests/benchmarks/bench_ingest.py); smaller ones cost more CPU
#: per event.  A rule's repeats (three short sessions of a user within an hour) are only marked
#: back to their first event within one batch.
CHUNK_ROWS = 10_000
#: Bytes of typed batches (estimated: :func:`_frame_bytes`) that ``start()`` keeps for
#: ``batches()``, so a file is parsed once, not twice: at most this much for one file, and
#: for all the files being imported at once (:data:`KEPT`); the largest upload's size
#: (MAX_UPLOAD_BYTES' default).  An EV charging session takes ~340 B typed, so files up to
#: ~790,000 sessions (~50 MB of CSV) are parsed once; the batches past the budget are parsed
#: again, and memory stays bounded by it plus a chunk per file.
KEEP_BYTES = 256 * 2**20
#: Bytes read at a time from an uploaded file object.
_READ_BUFFER = 1 << 16
#: Values of a text column whose sizes estimate the column's (sys.getsizeof on each would cost
#: as much as parsing it).
_SIZE_SAMPLE = 64


def detect_format(head: bytes, filename: str | None = None) -> str:
    """``csv`` or ``jsonl``, from the file name's extension, else from its first character.

    >>> detect_format(b'{"a": 1}\\n'), detect_format(b"a,b\\n1,2\\n"), detect_format(b"", "x.ndjson")
    ('jsonl', 'csv', 'jsonl')
    """
    suffix = Path(filename or "").suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".txt"):
        return "csv"
    return "jsonl" if head.lstrip()[:1] == b"{" else "csv"


class KeptBudget:
    """Bytes of typed batches held by file sources between their check and their read, against
    one budget shared by every source given it (a source gives its bytes back as it hands the
    batches out, or when it is dropped unread)."""

    def __init__(self, total: int):
        self.total = int(total)
        self.used = 0
        # Reentrant: a source dropped by a garbage collection that runs inside take() or
        # give_back() gives its bytes back on the same thread.
        self._lock = threading.RLock()

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes if they fit; False (nothing reserved) if not."""
        with self._lock:
            if self.used + size > self.total:
                return False
            self.used += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.used -= size


#: The budget of this process's file sources (uploads and replays).
KEPT = KeptBudget(KEEP_BYTES)


class FileSource:
    """Events from one file (a path, or a seekable binary file object).

    Parameters
    ----------
    file : path or binary file
        Read twice (check, then yield), so a file object must be seekable.
    schema : Schema
    format : {"csv", "jsonl"} or None
        None: from ``filename`` or the content.
    chunk_rows : int
        Lines parsed at a time: a batch (:data:`CHUNK_ROWS` by default).
    keep_bytes : int
        The check's typed batches kept for :meth:`batches`, at most this many bytes
        (:data:`KEEP_BYTES` by default; 0 parses the file again, all of it).
    budget : KeptBudget
        Shared by the sources whose kept batches it bounds together (:data:`KEPT`).
    day : float or None
        Epoch seconds of the UTC midnight that times of day are placed on (default: today).
    """

    def __init__(self, file: str | Path | IO[bytes], schema: Schema, *, format: str | None = None,
                 filename: str | None = None, chunk_rows: int = CHUNK_ROWS, day: float | None = None,
                 keep_bytes: int = KEEP_BYTES, budget: KeptBudget = KEPT):
        self.file = file
        self.schema = schema
        self.name = f"file:{filename or getattr(file, 'name', None) or 'upload'}"
        self.filename = filename or (str(file) if isinstance(file, (str, Path)) else None)
        self.format = format
        self.chunk_rows = int(chunk_rows)
        self.day = day
        self.keep_bytes = int(keep_bytes)
        self.budget = budget
        self.rows = 0
        #: What the check kept for batches(): how many batches, their estimated bytes.
        self.kept_batches = self.kept_bytes = 0
        self._checked = False
        #: The check's first typed batches (as many as the budget holds) with their estimated
        #: bytes, taken from ``budget``: handed out once.
        self._kept: collections.deque[tuple[EventBatch, int]] = collections.deque()
        #: They are the whole file: batches() has nothing more to parse.
        self._kept_all = False
        #: The check's clock as it stood after the last kept batch: the rest of the file is read
        #: on from there (a file of times of day may have passed midnight in the kept batches).
        self._clock_after_kept: TimeOfDayClock | None = None
        self._stopped = threading.Event()

    # -- Source -----------------------------------------------------------------------------
    def start(self) -> None:
        """Read and type the whole file once; raise :class:`BadData` at the first problem.

        The first typed batches, up to ``keep_bytes``, are kept for :meth:`batches`.
        """
        self._release()
        try:
            rows = self._check_and_keep()
        except _FastPathFailed:
            self._release()
            # A numeric column the C reader could not parse: read it as text to find the line.
            rows = sum(len(batch) for batch in self._read(as_text=True))
        except BaseException:
            self._release()
            raise
        if rows == 0:
            raise BadData("the file has a header but no events",
                          expected=self.schema.describe_columns(), found=[], line=2)
        self.rows = rows
        self._checked = True

    def _check_and_keep(self) -> int:
        """Type every batch of the file (the check); keep the first ones while they fit the budget."""
        rows = kept_bytes = 0
        keeping = self.keep_bytes > 0
        clock = TimeOfDayClock(self.day)
        for batch in self._read(clock=clock):
            rows += len(batch)
            if keeping:
                size = _frame_bytes(batch.frame)
                keeping = kept_bytes + size <= self.keep_bytes and self.budget.take(size)
                if keeping:
                    self._kept.append((batch, size))
                    kept_bytes += size
                    self._clock_after_kept = copy.copy(clock)
        self._kept_all = keeping
        self.kept_batches, self.kept_bytes = len(self._kept), kept_bytes
        return rows

    def batches(self) -> Iterator[EventBatch]:
        """The file's batches: the ones the check kept (once), then the rest parsed again."""
        if not self._checked:
            raise RuntimeError("start() checks the file first; call it before batches()")
        # Taken out of the source as they are handed on, so each is freed once its caller is done.
        kept, self._kept = self._kept, collections.deque()
        kept_all, self._kept_all = self._kept_all, False
        clock, self._clock_after_kept = self._clock_after_kept, None
        skip = len(kept)
        try:
            while kept:
                if self._stopped.is_set():
                    return
                batch, size = kept.popleft()
                self.budget.give_back(size)
                yield batch
        finally:  # stopped, or the caller gave up on the batches: the rest are dropped
            for _, size in kept:
                self.budget.give_back(size)
            kept.clear()
        if kept_all:
            return
        for batch in self._read(skip=skip, clock=clock if skip else None):
            if self._stopped.is_set():
                return
            yield batch

    def stop(self) -> None:
        self._stopped.set()

    def _release(self) -> None:
        """Drop the kept batches not handed out, giving their bytes back to the budget."""
        kept, self._kept = self._kept, collections.deque()
        self._kept_all, self._clock_after_kept = False, None
        for _, size in kept:
            self.budget.give_back(size)

    def __del__(self) -> None:  # a source checked and never read (its import failed first)
        if getattr(self, "_kept", None):
            self._release()

    def drain(self) -> list[EventBatch]:
        return []  # nothing is read ahead of what batches() yields

    # -- reading ----------------------------------------------------------------------------
    def _open(self) -> IO[bytes]:
        if isinstance(self.file, (str, Path)):
            return open(self.file, "rb")
        self.file.seek(0)
        # Buffered: a raw stream's lines are read a byte at a time (IOBase.readline), which made
        # the JSON lines of an uploaded file (a file object, not a path) ~16x slower to read.
        return io.BufferedReader(_Unclosable(self.file), _READ_BUFFER)

    def _read(self, as_text: bool = False, skip: int = 0,
              clock: TimeOfDayClock | None = None) -> Iterator[EventBatch]:
        """Typed batches of the file, after its first ``skip`` chunks (read, not typed), their
        times of day placed by ``clock`` (a new one from the file's start by default)."""
        clock = clock if clock is not None else TimeOfDayClock(self.day)
        with self._open() as handle:
            head = handle.read(SNIFF_BYTES)
            _check_text(head)
            handle.seek(0)
            fmt = self.format or detect_format(head, self.filename)
            if fmt not in FORMATS:
                raise ValueError(f"format must be one of {FORMATS}")
            if fmt == "csv":
                yield from self._csv_chunks(handle, clock, as_text, skip)
            else:
                yield from self._jsonl_chunks(handle, clock, skip)

    def _csv_chunks(self, handle: IO[bytes], clock: TimeOfDayClock, as_text: bool,
                    skip: int = 0) -> Iterator[EventBatch]:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        try:
            header = pd.read_csv(text, nrows=0, dtype=object, index_col=False).columns
            text.seek(0)
            numeric = [h for h, f in self.schema.resolve_headers(list(header)).items()
                       if self.schema.fields[f].type in ("number", "integer")] if len(header) else []
            # Numbers parsed by pandas' C reader are ~20x faster than converting strings later;
            # a file where that fails is read again as text, which finds and names the bad line.
            # object, not str: pandas 3's string dtype costs more than the parse itself.
            dtype = object if as_text else {h: (float if h in numeric else object) for h in header}
            with warnings.catch_warnings():
                # index_col=False stops pandas taking extra fields of the first row as an index;
                # it then only warns that it drops them, which is bad data here.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                chunks = pd.read_csv(text, dtype=dtype, keep_default_na=False,
                                     na_values={h: [""] for h in numeric}, chunksize=self.chunk_rows,
                                     skipinitialspace=True, skip_blank_lines=True, index_col=False)
                first = next(chunks, None)
            if first is None:
                raise pd.errors.EmptyDataError
            line = 2
            mapping = self.schema.resolve_headers(list(first.columns))
            for number, chunk in enumerate(itertools.chain([first], chunks)):
                if number >= skip:  # the ones before were checked and handed out already
                    yield EventBatch(self.schema, self._typed(chunk, mapping, line, clock), line)
                line += len(chunk)
        except pd.errors.EmptyDataError:
            raise BadData("the file is empty; expected a header line with the columns "
                          + ", ".join(self.schema.describe_columns()),
                          expected=self.schema.describe_columns(), found=[], line=1) from None
        except pd.errors.ParserWarning:
            raise BadData("the file is not valid CSV: line 2 has more fields than the header",
                          expected=self.schema.describe_columns(), found=[], line=2) from None
        except pd.errors.ParserError as exc:
            raise BadData(f"the file is not valid CSV: {exc}".strip(),
                          expected=self.schema.describe_columns(), found=[], line=_line_in(str(exc))) from None
        except UnicodeDecodeError as exc:
            raise BadData(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start} of a chunk)",
                          expected=["UTF-8 text"], found=["binary data"]) from None
        except BadData:
            raise
        except ValueError as exc:
            if as_text:
                raise
            raise _FastPathFailed(str(exc)) from None
        finally:
            text.detach()

    def _jsonl_chunks(self, handle: IO[bytes], clock: TimeOfDayClock, skip: int = 0) -> Iterator[EventBatch]:
        line = 1
        lines: list[bytes] = []
        # The first ``skip`` chunks were checked and handed out already: their lines are passed over.
        for _ in range(skip * self.chunk_rows):
            if not handle.readline():
                break
            line += 1
        for raw in handle:
            lines.append(raw)
            if len(lines) == self.chunk_rows:
                yield self._jsonl_batch(lines, line, clock)
                line += len(lines)
                lines = []
        if lines:
            yield self._jsonl_batch(lines, line, clock)
        elif line == 1:
            raise BadData("the file is empty; expected one JSON object per line with the fields "
                          + ", ".join(self.schema.describe_columns()),
                          expected=self.schema.describe_columns(), found=[], line=1)

    def _jsonl_batch(self, lines: list[bytes], first_line: int, clock: TimeOfDayClock) -> EventBatch:
        records = []
        for offset, raw in enumerate(lines):  # the C json decoder; pandas' reader hides line numbers
            if not raw.strip():
                records.append({})
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BadData(f"line {first_line + offset} is not a JSON object: {exc}",
                              expected=["one JSON object per line"], found=[raw[:80].decode("utf-8", "replace")],
                              line=first_line + offset) from None
            if not isinstance(record, dict):
                raise BadData(f"line {first_line + offset} is not a JSON object",
                              expected=["one JSON object per line"], found=[type(record).__name__],
                              line=first_line + offset)
            records.append(record)
        frame = pd.DataFrame.from_records(records)
        headers = list(frame.columns)
        mapping = self.schema.resolve_headers(headers)
        _refuse_containers(frame[list(mapping)], first_line)
        frame = frame.astype(object).where(frame.notna(), "").astype(str).astype(object)
        # Blank lines kept their place so line numbers stay right; now drop them.
        blank = np.array([not r for r in records])
        if blank.any():
            frame = frame[~blank]
        return EventBatch(self.schema, self._typed(frame, mapping, first_line, clock), first_line)

    def _typed(self, chunk: pd.DataFrame, mapping: dict, first_line: int, clock) -> pd.DataFrame:
        chunk = chunk[list(mapping)].rename(columns=mapping)
        return self.schema.coerce(chunk, first_line, clock)


#: What pandas infers for a column of JSON scalars only (strings, numbers, booleans, nulls, mixed).
_SCALAR_KINDS = {"string", "integer", "floating", "boolean", "mixed-integer-float", "empty", "decimal"}


def _refuse_containers(frame: pd.DataFrame, first_line: int) -> None:
    """A field given a JSON array or object is bad data, not its Python text ("['x']").

    pandas infers each column's kind in C; only a column that is not plainly scalar is looked at
    cell by cell (strings mixed with numbers are; an array or object in one is).
    """
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object or pd.api.types.infer_dtype(column, skipna=True) in _SCALAR_KINDS:
            continue
        bad = np.flatnonzero(column.map(lambda v: isinstance(v, (list, dict))).to_numpy(dtype=bool))
        if bad.size:
            line = first_line + int(bad[0])
            kind = "an array" if isinstance(column.iloc[bad[0]], list) else "an object"
            raise BadData(f"line {line}: field {name!r} is {kind}; it takes one value",
                          expected=[f"{name}: a string, a number or null"], found=[kind], line=line)


class _FastPathFailed(Exception):
    """pandas could not parse a numeric column as numbers; the text path will say where."""


class _Unclosable(io.RawIOBase):
    """Lets ``with`` close a view of a caller's file object without closing the file itself."""

    def __init__(self, inner):
        self._inner = inner

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return self._inner.seek(offset, whence)

    def readinto(self, buffer):
        data = self._inner.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _frame_bytes(frame: pd.DataFrame) -> int:
    """A typed batch's bytes, estimated: its arrays, plus for a column of Python objects (text)
    the mean size of a sample of them times its length (``memory_usage(deep=True)`` sizes every
    object, which costs as much as the parse).  Text the parser shared between rows is counted
    once per row, so the estimate errs high."""
    total = 0
    n = len(frame)
    for _, column in frame.items():
        values = column.to_numpy()
        total += values.nbytes
        if values.dtype == object and n:
            sample = values[np.linspace(0, n - 1, min(n, _SIZE_SAMPLE)).astype(int)]
            total += int(np.mean([sys.getsizeof(v) for v in sample]) * n)
    return total + frame.index.nbytes


def _check_text(head: bytes) -> None:
    if b"\x00" in head:
        raise BadData("the file is binary, not CSV or JSON lines text",
                      expected=["UTF-8 text"], found=["binary data"], line=1)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sniff boundary
            raise BadData("the file is not UTF-8 text", expected=["UTF-8 text"], found=["binary data"],
                          line=head[:exc.start].count(b"\n") + 1) from None


def _line_in(message: str) -> int | None:
    import re

    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None
