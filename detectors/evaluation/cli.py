"""``python -m detectors evaluate``: every detector asked for, on NAB and the shared corpora, in one run.

For each dataset, each detector streams over every series with a fresh model
(warm-up rows scored, not judged); its own flags and its scores are judged
on the remaining rows (:mod:`.report`).  A detector that fails on a dataset
(for instance one refusing that many fields) is reported on its row and the
run goes on.  NAB also gets NAB's own score (its threshold optimised per
profile, as NAB does).  Written under ``--out``: ``summary.csv``,
``summary.json``, ``series.csv``, one ``<dataset>.png`` per dataset, and
NAB's per-row results in NAB's layout under ``nab/``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .corpora import DATASETS, load_dataset
from .metrics import composite_f1
from .nab import write_file_scores, write_results
from .nab_scoring import PROFILES, score_profiles
from .references import DEFAULT_ALPHA, T2_RIDGE, T2_WINDOW
from .report import TABLE_NOTES, failed, format_table, judge_dataset, write_summary
from .runners import DEFAULT_DETECTOR, REFERENCES, EveryRowRunner, make_runner

__all__ = ["add_evaluate_command", "run_evaluation", "DEFAULT_NAB_DIR", "DEFAULT_CORPORA_DIR",
           "DEFAULT_DETECTORS", "EXIT_BAD_INPUT"]

_SHARED = Path(__file__).resolve().parents[2].parent / "shared"
#: The shared data sit next to the repository: <repo>/../shared/{nab,corpora}.
DEFAULT_NAB_DIR = _SHARED / "nab"
DEFAULT_CORPORA_DIR = _SHARED / "corpora"
#: The default and the two reference lines.
DEFAULT_DETECTORS = (DEFAULT_DETECTOR, *REFERENCES)
EXIT_BAD_INPUT = 2


def _names(values, choices=None, everything=()) -> list[str]:
    """Split comma-separated, repeatable option values; ``all`` expands to ``everything``."""
    names: list[str] = []
    for value in values:
        for name in filter(None, (part.strip() for part in value.split(","))):
            for item in (everything if name == "all" else [name]):
                if choices is not None and item not in choices:
                    raise ValueError(f"unknown dataset {item!r}; choose from {', '.join(choices)} or all")
                if item not in names:
                    names.append(item)
    if not names:
        raise ValueError("nothing to evaluate")
    return names


def _for_nab_scorer(scores: np.ndarray) -> np.ndarray:
    """NAB's scorer expects scores in [0, 1]: map unbounded non-negative scores by s / (1 + s), keeping their order."""
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        if scores.min() < 0:
            raise ValueError("NAB scoring needs non-negative scores")
        return scores / (1.0 + scores)
    return scores


def _nab_scores(series, outputs, profiles, out_dir: Path, detector: str) -> dict:
    files = [s.nab_file for s in series]
    scores = [_for_nab_scorer(o.scores) for o in outputs]
    results = score_profiles(files, scores, profiles)
    write_results(out_dir / "nab", detector, files, scores)
    write_file_scores(out_dir / "nab" / f"{detector}_files.csv", results)
    return {name: result.normalised for name, result in results.items()}, results


def _print_nab(detector: str, results) -> None:
    print(f"  NAB, {detector}: " + "; ".join(
        f"{name} {r.normalised:.2f} (threshold {r.threshold:.4f}, windows {r.detected}/{r.n_windows}, "
        f"false alarms {r.false_alarms})" for name, r in results.items()))


def run_evaluation(datasets, detectors, *, nab_dir, corpora_dir, out_dir, max_series=None, max_rows=None,
                   alpha=DEFAULT_ALPHA, profiles=None, plots=True, load_detector=None, progress=True,
                   after_dataset=None):
    """Evaluate ``detectors`` on ``datasets``; print as it goes; return (dataset results, series results).

    ``after_dataset(dataset_results, series_results)`` is called after each
    dataset with everything so far, so a long run that is stopped keeps the
    datasets it finished.
    """
    from tqdm import tqdm

    from ..cli import load_detector as cli_load_detector
    from .plots import plot_dataset

    load_detector = load_detector or cli_load_detector
    runners = [make_runner(spec, alpha, load_detector) for spec in detectors]  # bad names fail before any work
    profiles = list(profiles or PROFILES)
    out_dir = Path(out_dir)
    dataset_results, series_results = [], []
    for dataset in datasets:
        root = nab_dir if dataset == "nab" else corpora_dir
        started = time.perf_counter()
        series = load_dataset(dataset, root, max_series, max_rows)
        print(f"{dataset}: {len(series)} series, {sum(s.n_rows for s in series):,} rows "
              f"({sum(s.n_rows - s.warmup for s in series):,} judged, "
              f"{sum(int(s.labels[s.judged].sum()) for s in series):,} labelled), "
              f"{sorted({s.n_features for s in series})} fields; loaded in {time.perf_counter() - started:.1f} s",
              flush=True)
        runs = {}
        for runner in runners:
            bar = tqdm(total=runner.ticks(series), desc=f"{dataset} {runner.name}", unit="tick", file=sys.stderr,
                       mininterval=2.0, disable=not progress)
            started = time.perf_counter()
            try:
                outputs = runner.run(series, bar.update)
                seconds = time.perf_counter() - started if runner.timed else float("nan")
                pooled, per_series = judge_dataset(dataset, runner.name, series, outputs, runner.flag_rule, seconds)
                if dataset == "nab":
                    pooled.nab, nab_results = _nab_scores(series, outputs, profiles, out_dir, runner.name)
                    _print_nab(runner.name, nab_results)
            except Exception as exc:  # one detector failing on one dataset must not end the run
                result = failed(dataset, runner.name, series, exc, time.perf_counter() - started, runner.flag_rule)
                dataset_results.append(result)
                print(f"  {runner.name}: failed: {result.error}", flush=True)
                continue
            finally:
                bar.close()
            dataset_results.append(pooled)
            series_results += per_series
            if runner.name != EveryRowRunner.name:  # a constant score draws nothing worth plotting
                runs[runner.name] = outputs
            print(f"  {runner.name}: {seconds:.1f} s, point F1 {pooled.point.f1:.3f}, "
                  f"event F1 {pooled.event.prf()[2]:.3f}, composite F1 {composite_f1(pooled.point, pooled.event):.3f}, "
                  f"ROC-AUC {pooled.roc_auc:.3f}", flush=True)
        if plots and runs:
            try:
                print(f"  plot: {plot_dataset(out_dir / f'{dataset}.png', dataset, series, runs)}", flush=True)
            except Exception as exc:  # a plot is a by-product: the figures above stand without it
                print(f"  plot failed: {type(exc).__name__}: {exc}", flush=True)
        del series, runs  # one dataset in memory at a time
        if after_dataset is not None:
            after_dataset(dataset_results, series_results)
    return dataset_results, series_results


def _command_evaluate(args) -> int:
    from ..cli import _fail

    try:
        if args.max_series is not None and args.max_series < 1:
            raise ValueError("--max-series must be at least 1")
        if args.max_rows is not None and args.max_rows < 2:
            raise ValueError("--max-rows must be at least 2")
        if not 0 < args.alpha < 1:
            raise ValueError("--alpha must be between 0 and 1")
        datasets = _names(args.dataset or ["all"], choices=list(DATASETS), everything=list(DATASETS))
        from ..registry import REGISTRY

        detectors = _names(args.detector or [",".join(DEFAULT_DETECTORS)],
                           everything=[*sorted(REGISTRY), *REFERENCES])
        for dataset in datasets:
            root = args.nab if dataset == "nab" else args.corpora
            if not Path(root).is_dir():
                raise ValueError(f"dataset {dataset} needs {'--nab' if dataset == 'nab' else '--corpora'}; "
                                 f"no folder at {root}")
        started = time.perf_counter()
        settings = {
            "datasets": datasets, "detectors": detectors, "alpha": args.alpha, "max_series": args.max_series,
            "max_rows": args.max_rows, "t2_window": T2_WINDOW, "t2_ridge": T2_RIDGE, "seconds": None,
        }

        def save(done, series_done):
            write_summary(args.out, done, series_done, {**settings, "seconds": round(time.perf_counter() - started, 1)})

        datasets_done, series_done = run_evaluation(
            datasets, detectors, nab_dir=args.nab, corpora_dir=args.corpora, out_dir=args.out,
            max_series=args.max_series, max_rows=args.max_rows, alpha=args.alpha, profiles=args.profile,
            plots=not args.no_plots, after_dataset=save)
    except (ValueError, OSError) as exc:
        return _fail(exc)
    settings["seconds"] = round(time.perf_counter() - started, 1)
    print()
    print(format_table(datasets_done))
    print()
    print(TABLE_NOTES)
    print(f"Reference flags (t2, hst): score above the 1-alpha quantile of their own warm-up scores, "
          f"alpha = {args.alpha:g} (the stated false-alarm rate); {DEFAULT_DETECTOR}: the engine's own is_anomaly.")
    if args.max_series or args.max_rows:
        print(f"Cut for a quick run: --max-series {args.max_series}, --max-rows {args.max_rows}: "
              f"not comparable with full runs.")
    written = write_summary(args.out, datasets_done, series_done, settings)
    print(f"whole run {settings['seconds']:.1f} s; written: {', '.join(str(p) for p in written)}, "
          f"plots and NAB results under {args.out}")
    return 0


def add_evaluate_command(commands) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the subcommands of ``python -m detectors``."""
    evaluate = commands.add_parser(
        "evaluate", help="score detectors on NAB and the shared corpora: point, event, AUC metrics, plots")
    evaluate.add_argument("--nab", type=Path, default=DEFAULT_NAB_DIR, help=f"NAB folder (default: {DEFAULT_NAB_DIR})")
    evaluate.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA_DIR,
                          help=f"shared corpora folder (default: {DEFAULT_CORPORA_DIR})")
    evaluate.add_argument("--dataset", action="append", metavar="LIST",
                          help=f"datasets, comma-separated or repeated, from {','.join(DATASETS)} (default: all)")
    evaluate.add_argument("--detector", action="append", metavar="LIST",
                          help="registry names, module:Class, or the references t2 and hst; comma-separated or "
                               f"repeated; 'all' for every registered one and both references "
                               f"(default: {','.join(DEFAULT_DETECTORS)})")
    evaluate.add_argument("--max-series", type=int, metavar="N", help="only the first N series of each dataset")
    evaluate.add_argument("--max-rows", type=int, metavar="N",
                          help="at most N rows per series (up to half of them warm-up), for quick runs")
    evaluate.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                          help=f"false-alarm rate behind the references' flags (default: {DEFAULT_ALPHA:g})")
    evaluate.add_argument("--profile", action="append", choices=list(PROFILES),
                          help="NAB profile, repeatable (default: all three)")
    evaluate.add_argument("--out", type=Path, default=Path("results"),
                          help="folder for summary.csv/json, series.csv, plots, NAB results (default: results)")
    evaluate.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    evaluate.set_defaults(run=_command_evaluate)
    return evaluate
