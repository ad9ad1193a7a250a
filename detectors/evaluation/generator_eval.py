"""How the default engine alerts on the nine synthetic streams: alert precision, recall per injected anomaly and kind.

``python -m detectors generators`` prints it.  The engine marks every point
of an anomalous episode (``is_anomaly``) and raises one ``alert`` at its
start.  An alert on a point inside an injected anomaly is true, any other
alert a false alarm; an injected anomaly (an episode of consecutive
labelled points) is caught when any of its points is marked anomalous.
Recall is also given per anomaly kind, and the point-wise overlap of the
marked points with the labelled ones.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..engine import Engine


@dataclass
class StreamQuality:
    """Alerts and marked points of one stream against its injected ground truth."""

    stream: str
    points: int
    alerts: int
    true_alerts: int
    episodes: int
    caught: int
    marked: int = 0
    true_marked: int = 0
    labelled: int = 0
    #: Per anomaly kind: [episodes, caught, true alerts].
    kinds: dict = field(default_factory=dict)

    @property
    def false_alarms(self) -> int:
        return self.alerts - self.true_alerts


def episodes_of(truth: np.ndarray) -> list[np.ndarray]:
    """Split labelled rows into episodes: runs of consecutive labelled rows.

    >>> [e.tolist() for e in episodes_of(np.array([0, 1, 1, 0, 0, 1, 0], dtype=bool))]
    [[1, 2], [5]]
    """
    rows = np.flatnonzero(truth)
    return np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []


def evaluate_on_generators(points: int = 3000, seed: int = 42, anomaly_rate: float = 0.02,
                           skip: int = 300, engine: Engine | None = None) -> list[StreamQuality]:
    """Run every generator through one engine, tick by tick; judge alerts and marks after the first ``skip`` points."""
    from generators import STREAMS, make_stream

    if points <= skip:
        raise ValueError(f"points must exceed the {skip} skipped while the detectors warm up")
    engine = engine or Engine()
    gens = {name: make_stream(name, seed=seed + i, anomaly_rate=anomaly_rate) for i, name in enumerate(STREAMS)}
    for name, gen in gens.items():
        engine.add_stream(name, gen.fields)
    truth = np.zeros((points, len(gens)), dtype=bool)
    kinds = np.full((points, len(gens)), None, dtype=object)
    marked = np.zeros((points, len(gens)), dtype=bool)
    alerted = np.zeros((points, len(gens)), dtype=bool)
    for t in range(points):
        drawn = {name: gen.next() for name, gen in gens.items()}
        result = engine.step({name: p.values for name, p in drawn.items()})
        anomalous = {v.stream for v in result.anomalies()}
        alerts = {v.stream for v in result.alerts()}
        truth[t] = [p.is_anomaly for p in drawn.values()]
        kinds[t] = [p.kind for p in drawn.values()]
        marked[t] = [name in anomalous for name in drawn]
        alerted[t] = [name in alerts for name in drawn]
    out = []
    for j, name in enumerate(gens):
        real, mark, alert = truth[skip:, j], marked[skip:, j], alerted[skip:, j]
        per_kind: dict = {}
        for episode in episodes_of(real):
            counts = per_kind.setdefault(Counter(kinds[skip:, j][episode]).most_common(1)[0][0], [0, 0, 0])
            counts[0] += 1
            counts[1] += bool(mark[episode].any())
            counts[2] += int(alert[episode].sum())
        episodes = episodes_of(real)
        out.append(StreamQuality(name, points - skip, int(alert.sum()), int((alert & real).sum()),
                                 len(episodes), sum(bool(mark[e].any()) for e in episodes),
                                 int(mark.sum()), int((mark & real).sum()), int(real.sum()), per_kind))
    return out


def format_report(rows: list[StreamQuality]) -> str:
    """Return the per-stream and per-kind tables and the totals as text."""
    lines = [f"{'stream':<16} {'alerts':>6} {'true':>5} {'false':>6} {'caught':>7} {'marked':>7} {'in label':>9}"]
    for r in rows:
        lines.append(f"{r.stream:<16} {r.alerts:>6} {r.true_alerts:>5} {r.false_alarms:>6} "
                     f"{r.caught:>3}/{r.episodes:<3} {r.marked:>7} {r.true_marked:>9}")
    kinds: dict = {}
    for r in rows:
        for kind, (n, caught, true) in r.kinds.items():
            k = kinds.setdefault(kind, [0, 0, 0])
            k[0] += n
            k[1] += caught
            k[2] += true
    lines.append("")
    lines.append(f"{'kind':<16} {'caught':>9} {'recall':>7} {'true alerts':>12}")
    for kind, (n, caught, true) in sorted(kinds.items()):
        lines.append(f"{kind:<16} {caught:>4}/{n:<4} {caught / n:>7.2f} {true:>12}")
    alerts = sum(r.alerts for r in rows)
    true = sum(r.true_alerts for r in rows)
    episodes = sum(r.episodes for r in rows)
    caught = sum(r.caught for r in rows)
    judged = sum(r.points for r in rows)
    marked, true_marked, labelled = (sum(getattr(r, a) for r in rows) for a in ("marked", "true_marked", "labelled"))
    precision = f"{true / alerts:.2f}" if alerts else "n/a"
    recall = f"{caught / episodes:.2f}" if episodes else "n/a"
    lines.append("")
    lines.append(f"alert precision {precision} ({true}/{alerts}); injected anomalies caught {caught}/{episodes} "
                 f"(recall {recall}); false alerts per 1,000 points {1000 * (alerts - true) / judged:.2f}")
    if marked and labelled:
        p, r = true_marked / marked, true_marked / labelled
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        lines.append(f"marked points: precision {p:.2f}, recall {r:.2f}, point-wise F1 {f1:.2f}")
    return "\n".join(lines)
