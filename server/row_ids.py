"""Row ids that are never handed out twice, even after the newest rows were deleted.

SQLite gives a new row ``max(id) + 1``.  The writer counts ids in memory while it
runs (:meth:`server.writer.Transaction.allocate`), but it starts from the stored
rows, so a restart after deleting the newest rows (retention that empties a table
after a long stop, a deleted stream's last points, an undone import of events) would
hand their ids out again (alerts, silences and scored events are numbered from the
stored rows, so for them at once):
a client resuming after ``Last-Event-ID`` or an alert naming an anomaly by id would
then point at other rows.  Before deleting, a job records the table's next id in
``meta``; the writer starts from the larger of that and ``max(id) + 1``.  It costs
one small write per delete job and nothing per stored row.
"""
from __future__ import annotations

__all__ = ["keep_next_row_id", "next_row_id"]


def _key(table: str) -> str:
    return f"{table}.next_id"


def next_row_id(conn, table: str) -> int:
    """The id the next row of ``table`` gets: never one that a row of it had before."""
    return conn.execute(
        f"SELECT max((SELECT coalesce(max(id), 0) + 1 FROM {table}), "
        "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 1))",
        [_key(table)]).fetchone()[0]


def keep_next_row_id(conn, table: str, at_least: int = 1) -> None:
    """Before deleting rows of ``table``: remember its next id (at least ``at_least``)."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 [_key(table), str(max(next_row_id(conn, table), at_least))])
