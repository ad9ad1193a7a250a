"""One PNG per dataset: scores over time of a few series (labelled ranges shaded, flags marked) and the PR curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import precision_recall_curve, runs_of

__all__ = ["plot_dataset", "SERIES_SHOWN"]

#: Series drawn per dataset: the first ones of its table.
SERIES_SHOWN = 3
#: Most points of a PR curve drawn (evenly spaced along it).
CURVE_POINTS = 2000
#: Detectors whose scores are unbounded, drawn as log(1 + score).
LOG_SCALED = ("t2",)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    return plt


def plot_dataset(path, dataset: str, series, runs: dict) -> Path:
    """Draw ``runs`` (detector name -> list of Output, one per series) for ``series`` into ``path`` (PNG).

    Columns are detectors; each of the first :data:`SERIES_SHOWN` series gets
    a row of score panels: the warm-up part left of the dotted line, labelled
    rows shaded red, the detector's flags as red dots and its flag threshold
    dashed.  The last row holds the precision-recall curve of every detector
    over the judged rows of all the series, pooled.
    """
    plt = _pyplot()
    names = list(runs)
    shown = list(range(min(SERIES_SHOWN, len(series))))
    columns = max(len(names), 1)
    figure, axes = plt.subplots(len(shown) + 1, columns, figsize=(5.5 * columns, 2.4 * (len(shown) + 1) + 0.6),
                                squeeze=False)
    for column, name in enumerate(names):
        for row, i in enumerate(shown):
            _draw_scores(axes[row][column], series[i], runs[name][i], name)
    # The PR curves span the whole last row.
    for axis in axes[-1]:
        figure.delaxes(axis)
    curve_axis = figure.add_subplot(len(shown) + 1, 1, len(shown) + 1)
    _draw_pr_curves(curve_axis, series, runs)
    figure.suptitle(f"{dataset}: {len(series)} series; scores over time (first {len(shown)}) and PR curves")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def _draw_scores(axis, series, output, name: str) -> None:
    scores = np.log1p(output.scores) if name in LOG_SCALED else output.scores
    rows = np.arange(series.n_rows)
    axis.plot(rows, scores, linewidth=0.5, color="tab:blue")
    for start, stop in runs_of(series.labels):
        axis.axvspan(start, stop - 1, color="tab:red", alpha=0.2, linewidth=0)
    flagged = np.flatnonzero(output.flags)
    axis.plot(flagged, scores[flagged], linestyle="none", marker="o", markersize=2.5, color="tab:red")
    if output.threshold is not None and np.isfinite(output.threshold):
        level = np.log1p(output.threshold) if name in LOG_SCALED else output.threshold
        axis.axhline(level, color="black", linestyle="--", linewidth=0.6)
    if series.warmup:
        axis.axvline(series.warmup, color="grey", linestyle=":", linewidth=0.8)
    scale = "log(1+score)" if name in LOG_SCALED else "score"
    axis.set_title(f"{name} on {series.name}: {scale}, {len(flagged)} flags", fontsize=8)
    axis.tick_params(labelsize=7)


def _draw_pr_curves(axis, series, runs: dict) -> None:
    labels = np.concatenate([s.labels[s.judged] for s in series])
    for name, outputs in runs.items():
        scores = np.concatenate([o.scores[s.judged] for s, o in zip(series, outputs)])
        precision, recall, _ = precision_recall_curve(labels, scores)
        keep = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), CURVE_POINTS)).astype(int))
        axis.plot(recall[keep], precision[keep], linewidth=1, label=name, drawstyle="steps-post")
    axis.axhline(labels.mean() if len(labels) else 0, color="grey", linestyle=":", linewidth=0.8,
                 label="labelled share (random)")
    axis.set_xlabel("recall", fontsize=8)
    axis.set_ylabel("precision", fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=7, loc="upper right")
    axis.set_title("precision-recall curves of the scores, judged rows of all series pooled", fontsize=8)
    axis.tick_params(labelsize=7)
