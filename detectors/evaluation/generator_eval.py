"""How the default engine flags the nine synthetic streams: precision per flag, recall per injected anomaly.

``python -m detectors generators`` prints it.  A flag on a point inside an
injected anomaly is a true positive, any other flag a false alarm; an
injected anomaly (an episode of consecutive labelled points) is caught when
any of its points is flagged, since the ensemble reports an incident once
and then holds off.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine import Engine


@dataclass
class StreamQuality:
    """Flags of one stream against its injected ground truth."""

    stream: str
    points: int
    flags: int
    true_flags: int
    episodes: int
    caught: int

    @property
    def false_alarms(self) -> int:
        return self.flags - self.true_flags


def episodes_of(truth: np.ndarray) -> list[np.ndarray]:
    """Split labelled rows into episodes: runs of consecutive labelled rows.

    >>> [e.tolist() for e in episodes_of(np.array([0, 1, 1, 0, 0, 1, 0], dtype=bool))]
    [[1, 2], [5]]
    """
    rows = np.flatnonzero(truth)
    return np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []


def evaluate_on_generators(points: int = 3000, seed: int = 42, anomaly_rate: float = 0.02,
                           skip: int = 300, engine: Engine | None = None) -> list[StreamQuality]:
    """Run every generator through one engine, tick by tick; judge the flags after the first ``skip`` points."""
    from generators import STREAMS, make_stream

    if points <= skip:
        raise ValueError(f"points must exceed the {skip} skipped while the detectors warm up")
    engine = engine or Engine()
    gens = {name: make_stream(name, seed=seed + i, anomaly_rate=anomaly_rate) for i, name in enumerate(STREAMS)}
    for name, gen in gens.items():
        engine.add_stream(name, gen.fields)
    truth = np.zeros((points, len(gens)), dtype=bool)
    flags = np.zeros((points, len(gens)), dtype=bool)
    for t in range(points):
        drawn = {name: gen.next() for name, gen in gens.items()}
        result = engine.step({name: p.values for name, p in drawn.items()})
        flagged = {v.stream for v in result.anomalies()}
        truth[t] = [p.is_anomaly for p in drawn.values()]
        flags[t] = [name in flagged for name in drawn]
    out = []
    for j, name in enumerate(gens):
        real, flag = truth[skip:, j], flags[skip:, j]
        episodes = episodes_of(real)
        out.append(StreamQuality(name, points - skip, int(flag.sum()), int((flag & real).sum()),
                                 len(episodes), sum(bool(flag[e].any()) for e in episodes)))
    return out


def format_report(rows: list[StreamQuality]) -> str:
    """Return the per-stream table and the totals as text."""
    lines = [f"{'stream':<16} {'flags':>6} {'true':>5} {'false':>6} {'caught':>7}"]
    for r in rows:
        lines.append(f"{r.stream:<16} {r.flags:>6} {r.true_flags:>5} {r.false_alarms:>6} {r.caught:>3}/{r.episodes:<3}")
    flags = sum(r.flags for r in rows)
    true = sum(r.true_flags for r in rows)
    episodes = sum(r.episodes for r in rows)
    caught = sum(r.caught for r in rows)
    judged = sum(r.points for r in rows)
    precision = f"{true / flags:.2f}" if flags else "n/a"
    recall = f"{caught / episodes:.2f}" if episodes else "n/a"
    lines.append(f"precision (per flag) {precision}; injected anomalies caught {caught}/{episodes} "
                 f"(recall {recall}); false alarms per 1,000 points {1000 * (flags - true) / judged:.2f}")
    return "\n".join(lines)
