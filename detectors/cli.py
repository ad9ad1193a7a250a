"""Command line of the detectors package: ``python -m detectors score|evaluate|generators``.

``score`` reads a CSV and writes it back to stdout with three more columns,
scored causally row by row: ``anomaly_score``, ``is_anomaly`` (the row is
part of an anomalous episode) and ``alert`` (the row starts one: one alert
per incident).  An input that already has a column of one of those names
keeps it untouched: the three output columns are then all written with the
prefix ``scored_`` (repeated until no name clashes), and a one-line note on
stderr says so.
``evaluate`` runs detectors over NAB and the shared corpora and prints
point-wise, event-wise and ranking metrics beside two reference lines (see
:mod:`detectors.evaluation.cli`, which holds the command).  ``generators`` runs the default
engine over the nine synthetic streams and prints its precision per flag and
its recall per injected anomaly.

A detector is named by its registry name or, for one outside the registry, as
``module:Class`` (imported, then built with default parameters).  Bad input
ends with a one-line ``error: ...`` on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .base import Detector
from .evaluation.cli import add_evaluate_command
from .registry import make

__all__ = ["main", "build_parser", "load_detector", "DEFAULT_DETECTOR"]

DEFAULT_DETECTOR = "ensemble"
#: Cell texts read as "no value on this row" (scored 0, not learned).
MISSING_CELLS = frozenset({"", "nan", "na", "null", "none"})
EXIT_BAD_INPUT = 2
#: The columns ``score`` adds, and the prefix they take when the input already has one of them.
OUTPUT_COLUMNS = ("anomaly_score", "is_anomaly", "alert")
OUTPUT_PREFIX = "scored_"


class _Parser(argparse.ArgumentParser):
    """argparse with the same one-line error shape as the rest of the command line."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def load_detector(spec: str) -> Detector:
    """Build a detector from a registry name or a ``module:Class`` path; ValueError otherwise."""
    if ":" not in spec:
        return make(spec)
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import detector module {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise ValueError(f"{spec!r} is not a Detector subclass")
    return cls()


def _read_table(path: Path) -> pd.DataFrame:
    """Read a CSV as text, so the columns are echoed back exactly as given."""
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise ValueError(f"{path} has no data rows")
    return frame


def _numeric_column(path: Path, frame: pd.DataFrame, column: str) -> np.ndarray:
    text = frame[column].str.strip()
    missing = text.str.lower().isin(MISSING_CELLS)
    numbers = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~missing.to_numpy() & ~np.isfinite(numbers))
    if len(bad):
        row = int(bad[0])
        # +2: the header is line 1 and rows count from 0.
        raise ValueError(f"{path}, line {row + 2}, column {column!r}: {text.iloc[row]!r} is not a number")
    return numbers


def _read_stream(path: Path, time_col: str, value_cols: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    frame = _read_table(path)
    for column in ([time_col] if time_col else []) + value_cols:
        if column not in frame.columns:
            raise ValueError(f"{path} has no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    values = np.column_stack([_numeric_column(path, frame, c) for c in value_cols])
    return frame, values


def _command_score(args) -> int:
    value_cols = args.value_col or ["value"]
    try:
        detector = load_detector(args.detector)
        if len(value_cols) > 1 and not detector.multivariate:
            raise ValueError(f"detector {detector.name!r} scores one value column only, got {len(value_cols)}")
        frame, values = _read_stream(Path(args.input), args.time_col, value_cols)
        # A detector that cannot take this many fields says so here, as a one-line error.
        detector.clone().reset(1, values.shape[1])
    except ValueError as exc:
        return _fail(exc)
    scores, anomalous, alerts = detector.label_series(values)
    names = output_names(frame.columns)
    if names[0] != OUTPUT_COLUMNS[0]:
        clashing = [c for c in OUTPUT_COLUMNS if c in frame.columns]
        print(f"note: {args.input} already has column(s) {', '.join(clashing)}, kept as they are; "
              f"output written as {', '.join(names)}", file=sys.stderr)
    frame[names[0]] = scores
    frame[names[1]] = anomalous.astype(int)
    frame[names[2]] = alerts.astype(int)
    frame.to_csv(sys.stdout, index=False)
    return 0


def output_names(columns) -> list[str]:
    """The names of the output columns: :data:`OUTPUT_COLUMNS`, prefixed until none clashes with ``columns``.

    >>> output_names(["timestamp", "value"])
    ['anomaly_score', 'is_anomaly', 'alert']
    >>> output_names(["timestamp", "value", "is_anomaly", "scored_alert"])
    ['scored_scored_anomaly_score', 'scored_scored_is_anomaly', 'scored_scored_alert']
    """
    taken = set(map(str, columns))
    prefix = ""
    while any(prefix + c in taken for c in OUTPUT_COLUMNS):
        prefix += OUTPUT_PREFIX
    return [prefix + c for c in OUTPUT_COLUMNS]


def _command_generators(args) -> int:
    from .evaluation.generator_eval import evaluate_on_generators, format_report

    try:
        rows = evaluate_on_generators(points=args.points, seed=args.seed, anomaly_rate=args.rate)
    except ValueError as exc:
        return _fail(exc)
    print(f"default engine on the nine generators: {args.points} points each (first 300 not judged), "
          f"seed {args.seed}, anomaly rate {args.rate}")
    print(format_report(rows))
    return 0


def _fail(exc: Exception) -> int:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m detectors``."""
    parser = _Parser(prog="python -m detectors", description="Online anomaly detectors: score a CSV or evaluate on labelled data.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{score,evaluate,generators}")

    score = commands.add_parser("score", help="score a CSV causally; write it to stdout with anomaly_score, "
                                              "is_anomaly, alert (prefixed scored_ if the input has such a column)")
    score.add_argument("input", metavar="INPUT.csv", help="CSV with a header row")
    score.add_argument("--detector", default=DEFAULT_DETECTOR,
                       help=f"registry name or module:Class (default: {DEFAULT_DETECTOR})")
    score.add_argument("--time-col", default="timestamp",
                       help="column that must be present, echoed unchanged; '' for none (default: timestamp)")
    score.add_argument("--value-col", action="append", metavar="NAME",
                       help="numeric column to score; repeat for a multivariate stream (default: value)")
    score.set_defaults(run=_command_score)

    add_evaluate_command(commands)

    live = commands.add_parser("generators", help="precision and recall of the default engine on the nine generators")
    live.add_argument("--points", type=int, default=3000, help="points drawn from each generator (default: 3000)")
    live.add_argument("--seed", type=int, default=42, help="seed of the first generator; stream i uses seed + i (default: 42)")
    live.add_argument("--rate", type=float, default=0.02, help="anomaly rate of every generator (default: 0.02)")
    live.set_defaults(run=_command_generators)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python's
        # own flush at exit from failing on the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
