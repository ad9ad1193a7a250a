"""The catalogue of numeric streams: built-in and user streams, their fields, and which are stored.

A stream is a name with fixed fields (``cpu_usage`` has ``value``; a user
stream has the fields of its first point).  The built-in streams come from
the generators; user streams are created by ``/api/submit`` and restored
from the database at start-up, with their saved detector configurations.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..storage import open_reader
from ..writer import Writer, WriterUnavailable
from ..writes import DeleteStreamJob, StreamsJob

__all__ = ["BuiltinStream", "StreamCatalog", "UnknownSource"]

log = logging.getLogger(__name__)


class UnknownSource(LookupError):
    """A request names a stream that does not exist."""


class BuiltinStream(ValueError):
    """A request would delete a built-in stream."""


class StreamCatalog:
    """Every stream's metadata (name, fields, kind, description, units, owner), by name.

    ``streams`` is read by the API and the push hello; it changes only under
    the engine lock (:class:`~server.pipeline.engine_thread.EngineThread`).
    """

    def __init__(self, writer: Writer, write_timeout: float):
        self.writer = writer
        self.write_timeout = write_timeout
        self.streams: dict[str, dict] = {}
        self.builtin = 0
        self._persisted: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.streams

    @property
    def user_streams(self) -> int:
        return len(self.streams) - self.builtin

    def bootstrap(self, engine, generators: Mapping[str, Any], db_path: Path) -> None:
        """Register built-in streams, then restore user streams and saved configurations."""
        builtin = []
        for name, gen in generators.items():
            engine.add_stream(name, tuple(gen.fields))
            meta = {"name": name, "fields": tuple(gen.fields), "kind": "builtin",
                    "description": getattr(gen, "description", ""),
                    "units": dict(getattr(gen, "units", {}) or {})}
            self.streams[name] = meta
            builtin.append(meta)
        self.builtin = len(builtin)
        try:
            self.writer.write(StreamsJob(builtin, replace=True), self.write_timeout)
            self._persisted.update(self.streams)
        except WriterUnavailable as exc:
            # Serve reads; the built-in streams are stored with the first write once this
            # process becomes the writer.
            log.warning("monitor: %s", exc)
        reader = open_reader(db_path)
        try:
            stored, configs = reader.streams(), reader.configs()
        finally:
            reader.close()
        for meta in stored:
            if meta["name"] in self.streams:
                continue
            try:
                engine.add_stream(meta["name"], meta["fields"])
            except ValueError as exc:
                log.error("cannot restore stream %r: %s", meta["name"], exc)
                continue
            self.streams[meta["name"]] = meta
            self._persisted.add(meta["name"])
        for source, config in configs.items():
            if source not in self.streams:
                continue
            try:
                engine.load_config({source: config})
            except (ValueError, TypeError, KeyError) as exc:
                log.error("cannot restore the configuration of %r: %s", source, exc)
        log.info("monitor ready: %d built-in and %d user streams, %d saved configurations",
                 len(builtin), self.user_streams, len(configs))

    def add(self, created: Iterable[dict]) -> None:
        """Record user streams the engine now has (stored with the next write: :meth:`unpersisted`)."""
        self.streams.update((meta["name"], meta) for meta in created)

    def unpersisted(self) -> list[dict]:
        """User streams not yet stored: a stream whose first write failed is stored with the next."""
        return [meta for name, meta in self.streams.items() if name not in self._persisted]

    def persisted(self, created: Iterable[dict]) -> None:
        self._persisted.update(meta["name"] for meta in created)

    def removable(self, name: str) -> dict:
        """The user stream ``name``; raises UnknownSource or BuiltinStream."""
        meta = self.streams.get(name)
        if meta is None:
            raise UnknownSource(name)
        if meta["kind"] == "builtin":
            raise BuiltinStream(name)
        return meta

    def remove(self, name: str):
        """Forget ``name`` and queue the deletion of its rows; returns the queued job."""
        del self.streams[name]
        self._persisted.discard(name)
        return self.writer.submit(DeleteStreamJob(name), timeout=self.write_timeout)
