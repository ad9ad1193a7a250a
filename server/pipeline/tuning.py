"""Tuning: each stream's detector configuration, changed at once in the engine and persisted.

A change is applied under the engine lock (between two batches, never in the
middle of one) and its write is queued before the lock is released, so the
database keeps the changes in the engine's order.
"""
from __future__ import annotations

from ..events import jsonable
from ..validation import Conflict
from ..writer import Writer
from ..writes import ConfigJob
from .engine_thread import EngineThread
from .streams import StreamCatalog, UnknownSource

__all__ = ["Tuning"]


class Tuning:
    """Read and change the detector configuration of the catalogue's streams."""

    def __init__(self, engine: EngineThread, catalog: StreamCatalog, writer: Writer, write_timeout: float):
        self.engine = engine
        self.catalog = catalog
        self.writer = writer
        self.write_timeout = write_timeout
        self._window_ranges: dict[str, tuple[int | None, int | None]] | None = None

    def configure(self, source: str, detector: str | None, params: dict) -> dict:
        """Apply a configuration change at once (under the engine lock) and persist it."""
        with self.engine.turn():
            if source not in self.catalog:
                raise UnknownSource(source)
            config = self.engine.run(self._configure, source, detector, params)
            job = self.writer.submit(ConfigJob(source, config), timeout=self.write_timeout)
        job.wait(self.write_timeout)
        return config

    def _configure(self, source: str, detector: str | None, params: dict) -> dict:
        engine = self.engine.engine
        if params.get("enabled") is False and detector not in (None, "ensemble"):
            # Well formed, but refused because of the stream's state: a conflict, not a 400.
            members = engine.config(source)["detectors"]
            others = [name for name, c in members.items()
                      if name != detector and c["enabled"] and c["weight"] > 0]
            if not others and members.get(detector, {}).get("enabled"):
                raise Conflict(f"at least one detector of {source!r} must stay enabled")
        engine.configure(source, detector=detector, **params)
        return jsonable(engine.config(source))

    def config(self, source: str | None = None) -> dict:
        """The engine's configuration of one stream, or of all streams."""
        with self.engine.lock:
            if source is not None and source not in self.catalog:
                raise UnknownSource(source)
            return jsonable(self.engine.run(self.engine.engine.config, source))

    def window_ranges(self) -> dict[str, tuple[int | None, int | None]]:
        """Each member's accepted windows (for the API's description), found by building it."""
        if self._window_ranges is None:
            self._window_ranges = self.engine.run(_window_ranges, self.engine.engine)
        return self._window_ranges


def _window_ranges(engine) -> dict[str, tuple[int | None, int | None]]:
    """The smallest window in WINDOW_RANGE each member accepts (some need more than the least)."""
    from detectors.engine import WINDOW_RANGE
    from detectors.registry import make

    low, high = WINDOW_RANGE
    ranges = {}
    for member in engine.detector_names:
        params = dict(engine.member_params.get(member, {}))
        if getattr(make(member, **params), "window", None) is None:
            ranges[member] = (None, None)  # no window to set
            continue
        for window in range(low, high + 1):
            try:  # some checks run only when state is allocated
                make(member, **{**params, "window": window}).reset(1, 1)
            except ValueError:
                continue
            ranges[member] = (window, high)
            break
    return ranges
