"""The ensemble: every member detector scores the tick, their scores are fused, and novelty decides the alerts.

The fused score has two ranges:

* **Point-wise evidence**, the members' fused score scaled into
  ``[0, POINTWISE_CAP)`` (``POINTWISE_CAP`` is the score of ``p = 1e-3``,
  about 0.5): anomalous points rank above ordinary ones, but a single
  surprising point cannot reach the alert threshold on its own, since any
  long stream produces a few of those every day.
* **Novelty**: a field leaves the range of its last :data:`VALUE_WINDOW`
  points, or the pattern member's distance to the stream's own history beats
  its record of the last :data:`PATTERN_WINDOW` points (see
  :mod:`detectors.novelty`).  A record against ``n`` recent points that
  beats it by ``strength`` (in units of the channel's range) gets
  ``p = exp(-strength / NOVELTY_SCALE) / n``; only novelty reaches the alert
  threshold.

The output is the larger of the two, so anomalous points keep their rank
(the peak of an injected episode still outranks normal points) while alerts
stay rare.

**Learned tails** (``novelty_tail="learned"``, not the default).  The fixed
``NOVELTY_SCALE`` makes the stated rate untrue: on Gaussian noise a record's
excess over the last one is about 4 % of the range, not 1 %, and the default
alerts on about 60 times :data:`FALSE_ALARM_RATE`.  With learned tails a
record's ``p`` is ``1 / (n + 1)`` times the chance of its excess under an
exponential tail whose scale is read from the spacings of the channel's
highest block maxima (:mod:`detectors.extremes`, never steeper than
``NOVELTY_SCALE``), and (as with every tail) a stream's ``p`` is its rarest
channel's times the number of channels, so the rate holds per stream on light-tailed
null streams (``tests/benchmarks/bench_null_rate.py``; heavy tails, e.g.
Student t with 3 degrees of freedom, still alert about 20 times too often).
It is not the default because it costs recall: a spike must clear the
record by several tail scales.

**Records in the stream's own noise** (``novelty_tail="spread"`` and
``short_records=True``, options, not the default).  With ``"spread"`` a
value record's excess is scored on the wider of the fixed scale and the
Gumbel scale ``sigma / sqrt(2 ln n)`` of the maximum of ``n`` Gaussian
points of the field's robust spread ``sigma`` (the episode reference's,
from the last 100 points; :func:`~detectors.extremes.gaussian_record_scale`),
so a slow wander whose every new low beats the last by a noise step no
longer alerts.  ``short_records`` adds records against the last
:data:`SHORT_WINDOW` points, scored on that Gumbel scale, the rarer of the
two windows times two (Bonferroni): a level shift inside the range of the
last 4,000 points, after an earlier incident, can alert.  Measured over
every corpus, both lose NAB (heavy-tailed counts beat a Gaussian record
scale), so neither is the default (README, "Records in the stream's own noise").

**Runs** (options, not the default).  Two more novelty channels judge a
*run* of points by the stream's own history of such runs
(:mod:`detectors.runs`): ``flatline=True`` a run of identical values of a
field (a stuck reading, :mod:`detectors.flatline`), ``persistence=True`` a
run of points whose fused evidence is at most :data:`SURPRISE_P` (a shifted
level, a drift).  Their ``log p`` joins the records' (the smallest wins), so
they alert at the same stated rate and hold an episode open while the run
lasts, up to ``episode_memory`` points of it (then it is the new normal, as a
held level is).  Neither is the default: measured over every corpus, each lost on one
(README, "Measured and not shipped").

**Held records** (``hold_records=True``, an option, not the default).  A
point is learned into the value records winsorised, by at most
``RECORD_STEP`` ranges beyond the record, so a 20-point injected level
shift or spike lifts the stream's recent record for the next
:data:`VALUE_WINDOW` points, and a later, smaller incident of the same kind
sets no record: on the generators 16 of the 18 missed anomalies were blocked
by a record that an earlier injected episode's points had set.  With held
records, while an episode is open (at most ``episode_memory`` points of it:
a level held that long is the new normal) a value above the recent record is
held back: it widens the range but not the record
(:meth:`~detectors.novelty.RecordTracker.learn`).  A value the stream
reached in an earlier episode is learned when a later episode reaches it
again: an excursion seen twice recurs (a young stream's first daily peak, a
false alarm's), else a false alarm's excursion would alert again every time
it came back.  What a point teaches the records then depends on the episode
it opens or continues, so the fast path runs the value records and the
episodes in one compiled recursion.  Not the default: it raises NAB's
scores and the point-wise F1 of NAB, SMD, SMAP and MSL, but lowers their
event-wise F1 (more false-alarm runs: after any episode, a false alarm's too,
the record is the lower pre-episode one; README, "Held records").

**Alerts and episodes.**  A point whose tail probability is at most
:data:`FALSE_ALARM_RATE` alerts (the default threshold is the score of that
probability, about 0.684): on a stream behaving normally, where the tail
probabilities are what they claim, about one point in 100,000 alerts.  The
rate is per stream: a stream of ``d`` fields is watched by ``2 d`` value
channels (both signs of each field) and the pattern channel, any of which may
alert, so a stream's ``p`` is its rarest channel's times their number
(Bonferroni: each channel gets its share of the rate; :meth:`_per_stream`).  The
threshold is a stated rate, not one tuned on any benchmark's labels.  An
alert opens an *episode* (:class:`~detectors.novelty.EpisodeState`): every
point is marked anomalous until the stream is back to normal, and the
incident raises no second alert; inside an episode novelty counts in the
score only when it escalates past the alert's.

**"Not an anomaly".**  :meth:`EnsembleDetector.accept_normal` teaches one
stream that some of its points were normal: their values (both signs), and
the largest pattern distance since the stream's last alert, become floors
under the stream's recent records (:meth:`~detectors.novelty.RecordTracker.accept`),
the values with a margin of :data:`ACCEPT_MARGIN` of each one's range, the
distance times :data:`PATTERN_ACCEPT_FACTOR`; and the stream's open episode ends.  The floors last :data:`ACCEPT_POINTS` points
of that stream, not the :data:`VALUE_WINDOW` the records slide over.
"""
from __future__ import annotations

import numpy as np

from .base import Block, Detector, Traces, as_epoch_seconds
from .blas_threads import one_blas_thread
from .extremes import gaussian_record_scale
from .flatline import FlatlineTracker
from .novelty import RECUR_HEIGHT, STEP_AFTER, EpisodeState, RecordTracker
from .registry import REGISTRY, register
from .runs import RunTracker
from .shared_windows import sharing
from .streaming import compiled_steps
from .stats import SCORE_POWER, logp_from_score, score_from_logp, z_multiplier

#: Members of the default ensemble, in the order explanations list them.
DEFAULT_MEMBERS = ("zscore", "iqr", "mad", "moving_average", "isolation_forest", "lof", "pattern")
#: Members whose expected range explains an anomaly, most trusted first.
RANGE_SOURCES = ("iqr", "mad", "zscore", "moving_average")
#: Smallest tail probability a member may claim, so one saturated member cannot decide alone.
P_FLOOR = 1e-12

#: Points whose extremes a new value is compared with, and points learned before a record counts in
#: full: the value records', and the pattern records' too (distances learned after PATTERN_WARMUP),
#: since a range learned from a few hundred points is still narrow whatever the channel.
VALUE_WINDOW, VALUE_MATURE = 4000, 400
#: Points whose pattern distances a new distance is compared with, and points skipped first
#: (the first distances are measured against a still short history, so they run high).
PATTERN_WINDOW, PATTERN_WARMUP = 1000, 300
#: Record strength (in units of the channel's range) that makes a value record ``e`` times rarer.
NOVELTY_SCALE = 0.01
#: Pattern records count this much against value records.
PATTERN_WEIGHT = 0.5
#: How a record's tail probability is reached (``novelty_tail``): "learned" from each channel's
#: block maxima (:mod:`detectors.extremes`), "range", the fixed :data:`NOVELTY_SCALE`, or "spread",
#: the fixed scale or the Gumbel scale of the stream's own recent spread, whichever is wider.
NOVELTY_TAILS = ("learned", "range", "spread")
#: Points a *recent* value record (``short_records=True``) is measured against: the history after
#: which a value record counts in full (:data:`VALUE_MATURE`).
SHORT_WINDOW = VALUE_MATURE
#: Blocks the value records' window is split into with a learned tail (a block of 63 points, as the
#: pattern records' 1000 / 16): the tail is fitted to their maxima, and more maxima fit it closer.
VALUE_TAIL_BLOCKS = 64
#: Highest block maxima a channel's tail is learned from (8 spacings below the highest), once as
#: many blocks are filled (until then, the fixed scale).
TAIL_BLOCKS = 10
#: Point-wise evidence is scaled below this score (that of p = 1e-3), so it never flags alone.
POINTWISE_CAP = float(score_from_logp(np.log(1e-3)))
#: Tail probability at which a point alerts: the false-alarm rate per point of a normal stream.
FALSE_ALARM_RATE = 1e-5
#: The default alert threshold: the score of :data:`FALSE_ALARM_RATE`.
ALERT_THRESHOLD = float(score_from_logp(np.log(FALSE_ALARM_RATE)))
#: Most one learned point may move a record or a range, in units of the range (robust learning).
RECORD_STEP = 0.25
#: Points after an alert in which a new alert needs an escalation: the few points after an
#: incident are not a second one.  Also the normal points in a row that end an episode (its
#: ``settle``): an incident is over once the stream has been calm for that long, so the lulls
#: inside one long incident (a fluctuating level shift) neither end it nor raise a second alert
#: when it flares again (the flapping an operator would otherwise be paged for).
REFRACTORY = 20
#: Tail probability a point inside an episode must fall below to keep the episode open.
RELEASE_P = 1e-2
#: Smallest spread of a field in an episode's frozen reference, as a share of the field's range:
#: a change below 1 % of a field's range never keeps an episode open on its own.
REFERENCE_FLOOR = 0.01
#: Per-stream attributes a block may trace on the compiled path (any other name takes the reference path).
TICK_TRACES = ("member_scores_", "novelty_", "cause_", "is_anomaly_", "alert_")
#: What a novelty alert names when the value record caused it, and when the pattern record did.
VALUE_CAUSE, PATTERN_CAUSE = 1, 2
#: What a novelty alert names when a run of repeated values (a stuck reading) caused it.
FLATLINE_CAUSE = 3
#: What a novelty alert names when a run of surprising points (a shifted level, a drift) caused it.
PERSISTENCE_CAUSE = 4
#: A point is *surprising* for the persistence channel when its fused evidence is at most this tail
#: probability: the point-wise evidence's own cap (:data:`POINTWISE_CAP`), where one point stops
#: counting as ordinary.
SURPRISE_P = 1e-3
#: Points of a stream for which a "not an anomaly" verdict holds: 25 value windows, about 28 hours
#: at one point a second.  Long enough that what recurs daily (a nightly job, a morning peak) is
#: still accepted the next time, and far past the value window (1 h 7 min at 1 Hz), which would
#: forget the verdict with the marked points; finite, so a verdict given on a stream that has
#: since changed does not blind it for good.  A new verdict restarts the count.
ACCEPT_POINTS = 25 * VALUE_WINDOW
#: A repeat of accepted values up to this much beyond them, in units of the channel's range, is
#: accepted too: the same pattern recurs with some noise and on another baseline, never identical.
ACCEPT_MARGIN = 0.25
#: A stretch up to this many times as far from the stream's history as the marked incident's is
#: accepted too.  The distance to the nearest earlier stretch depends on what the history holds at
#: the time (the phase of a cycle, the neighbours of the stretch): one bump repeated on another
#: phase of a sine measured 1.5 times the first one's distance (tests/detectors/test_feedback.py).
#: Larger excursions of the values are still caught by the value records.
PATTERN_ACCEPT_FACTOR = 2.0


@register
class EnsembleDetector(Detector):
    """Fuse the calibrated scores of several detectors, and flag what is novel for each stream.

    Each member's score reads as ``1 - p``. ``fusion="logp"`` averages the
    members' ``log p`` with their weights (a weighted geometric mean of tail
    probabilities): a point scores high when most members find it
    improbable, and one over-eager member moves the fused score only by its
    share. ``fusion="vote"`` gives the weighted fraction of members whose
    score reaches their own threshold. ``fusion="max"`` takes the highest
    member score.

    With ``novelty=True`` (the default) the fused score is scaled below
    :data:`POINTWISE_CAP` and only novelty lifts a point above it (see the
    module docstring); with ``novelty=False`` the fused score is the output.

    Parameters
    ----------
    members : tuple of str
        Registry names of the member detectors.
    weights : dict, optional
        Weight per member name (default 1 each); 0 silences a member.
    fusion : {"logp", "vote", "max"}
        How member scores are combined.
    member_params : dict, optional
        Constructor parameters per member name.
    novelty : bool
        Whether flags need novelty (values beyond their recent range, or new
        patterns) rather than point-wise evidence.
    settle : int
        Normal points in a row that end an episode (default
        :data:`REFRACTORY`).
    episode_memory : int
        Points an episode's frozen reference range is trusted for.
    warmup, threshold
        As for every detector; the threshold is where a point alerts
        (default: the score of :data:`FALSE_ALARM_RATE`).  Whatever the
        warm-up, a record counts only once its channel has learned
        :data:`~detectors.novelty.STEP_AFTER` points (30, the default
        warm-up): with a shorter warm-up a stream scores before then, but
        no record of its raises its novelty.
    novelty_tail : {"range", "learned", "spread"}
        How a record's tail probability is reached: the fixed
        :data:`NOVELTY_SCALE` of the channel's range, learned from the
        channel's block maxima, or the
        wider of the fixed scale and the Gumbel scale of the field's own
        recent spread (see the module docstring).
    short_records : bool
        Whether values are also judged as records against the last
        :data:`SHORT_WINDOW` points, in the stream's own noise.
    flatline, persistence : bool
        Whether runs of repeated values (stuck readings), and runs of
        surprising points, are novelty too (see the module docstring).
    hold_records : bool
        Whether the value records hold back the values of an open episode
        above the record (for at most ``episode_memory`` points of it, and
        not where an earlier episode reached as far; see the module
        docstring).

    Examples
    --------
    >>> rng = np.random.default_rng(4)
    >>> x = rng.normal(0, 1, 300); x[220] = 9
    >>> e = EnsembleDetector(members=("zscore", "mad"))
    >>> s = e.score_series(x)
    >>> int(np.argmax(s)), e.member_scores_.shape
    (220, (1, 2))
    >>> bool(s[220] >= e.threshold), bool(s[:220].max() < e.threshold)
    (True, True)
    >>> _, anomalous, alerts = e.label_series(x)
    >>> np.flatnonzero(alerts).tolist(), bool(anomalous[220])
    ([220], True)
    """

    name = "ensemble"
    #: Learned state and parameters added after snapshots were first written (see detectors/snapshot.py).
    snapshot_added = ("episode_distance_", "novelty_tail", "flatline_", "flatline",
                      "surprise_runs_", "persistence", "short_records_", "short_records", "hold_records")
    #: Parameters that steer how learned state is used, not what it means: a snapshot saved with
    #: other values is restored with the running ones (see detectors/snapshot.py).
    snapshot_tunable = ("settle", "episode_memory")

    def __init__(self, *, members=DEFAULT_MEMBERS, weights=None, fusion: str = "logp",
                 member_params=None, novelty: bool = True, settle: int = REFRACTORY, episode_memory: int = 500,
                 warmup: int = 30, threshold: float = ALERT_THRESHOLD, novelty_tail: str = "range",
                 flatline: bool = False, persistence: bool = False, short_records: bool = False,
                 hold_records: bool = False):
        super().__init__(warmup=warmup, threshold=threshold)
        self.members = tuple(members)
        self.weights = dict(weights or {})
        self.fusion = fusion
        self.member_params = {k: dict(v) for k, v in (member_params or {}).items()}
        self.novelty = bool(novelty)
        self.settle = int(settle)
        self.episode_memory = int(episode_memory)
        self.novelty_tail = novelty_tail
        self.flatline = bool(flatline)
        self.persistence = bool(persistence)
        self.short_records = bool(short_records)
        self.hold_records = bool(hold_records)
        if novelty_tail not in NOVELTY_TAILS:
            raise ValueError(f"novelty_tail must be one of {NOVELTY_TAILS}, not {novelty_tail!r}")
        if fusion not in ("logp", "vote", "max"):
            raise ValueError(f"fusion must be 'logp', 'vote' or 'max', not {fusion!r}")
        if self.settle < 1 or self.episode_memory < 1:
            raise ValueError("settle and episode_memory must be at least 1")
        unknown = [m for m in self.members if m not in REGISTRY or m == self.name]
        if unknown:
            raise ValueError(f"unknown ensemble members {unknown}; choose from {sorted(set(REGISTRY) - {self.name})}")

    def _allocate(self, n_streams, n_features):
        self.detectors_ = [REGISTRY[m](**self.member_params.get(m, {})).reset(n_streams, n_features)
                           for m in self.members]
        base = np.array([float(self.weights.get(m, 1.0)) for m in self.members])
        if (base < 0).any():
            raise ValueError("ensemble weights must be non-negative")
        #: Per-stream weights, so one stream's tuning leaves the others alone.
        self.stream_weights_ = np.tile(base, (n_streams, 1))
        self.member_scores_ = np.zeros((n_streams, len(self.members)))
        #: Per-stream alert thresholds, so one stream's setting leaves the others alone.
        self.stream_thresholds_ = np.full(n_streams, self.threshold)
        # Both signs of every field: a value may leave its range either way.
        learned = self.novelty_tail == "learned"
        # Every record counts once its channel has learned STEP_AFTER points (a range of fewer is not
        # known yet: the pattern records' first distances came right after their warm-up), in full
        # once it has learned VALUE_MATURE.
        self.value_records_ = RecordTracker(VALUE_WINDOW, NOVELTY_SCALE, mature=VALUE_MATURE, step=RECORD_STEP,
                                            counts_after=STEP_AFTER, n_blocks=VALUE_TAIL_BLOCKS if learned else 16,
                                            tail_blocks=TAIL_BLOCKS if learned else 0)
        self.value_records_.reset(n_streams, 2 * n_features)
        self.pattern_records_ = RecordTracker(PATTERN_WINDOW, NOVELTY_SCALE / PATTERN_WEIGHT,
                                              PATTERN_WARMUP, mature=VALUE_MATURE, step=RECORD_STEP,
                                              counts_after=STEP_AFTER,
                                              tail_blocks=TAIL_BLOCKS if learned else 0).reset(n_streams, 1)
        #: Runs of repeated values per field (stuck readings), a novelty channel beside the records
        #: (None unless ``flatline``: no state for a channel that is off).
        # A run lasting longer than an episode's frozen range is trusted for is the new normal.
        self.flatline_ = (FlatlineTracker(memory=self.episode_memory).reset(n_streams, n_features)
                          if self.flatline else None)
        #: Runs of surprising points per stream (fused evidence below SURPRISE_P), a novelty channel
        #: (None unless ``persistence``).
        self.surprise_runs_ = (RunTracker(memory=self.episode_memory).reset(n_streams, 1)
                               if self.persistence else None)
        #: Records of both signs of every field against the last SHORT_WINDOW points, scored in the
        #: stream's own noise (None unless ``short_records``).
        self.short_records_ = (RecordTracker(SHORT_WINDOW, NOVELTY_SCALE, mature=VALUE_MATURE, step=RECORD_STEP,
                                             counts_after=STEP_AFTER)
                               .reset(n_streams, 2 * n_features) if self.short_records else None)
        self.episodes_ = EpisodeState(self.settle, self.episode_memory, RELEASE_P).reset(n_streams, n_features)
        #: Each stream's novelty score on the last tick (0 when none or inside an episode without escalation).
        self.novelty_ = np.zeros(n_streams)
        #: What raised each stream's novelty on the last tick: 0 nothing, VALUE_CAUSE or PATTERN_CAUSE.
        self.cause_ = np.zeros(n_streams, dtype=np.int8)
        #: The novelty score of each stream's last alert (or its escalation), and points since that alert.
        self.alert_score_ = np.zeros(n_streams)
        self.since_alert_ = np.full(n_streams, REFRACTORY, dtype=np.int64)
        #: The largest pattern distance since each stream's last alert (while its episode is open
        #: or within REFRACTORY points, as long as a marked stretch moves the distance).
        self.episode_distance_ = np.zeros(n_streams)

    def member_thresholds(self) -> np.ndarray:
        """Return each member's flag threshold, in member order."""
        return np.array([d.threshold for d in self.detectors_])

    def _score_and_learn(self, X, present):
        source = self._range_source()
        centre, scale = self._reference(X, None if source is None else source.own_expected_range())
        scores = np.stack([d.step(X) for d in self.detectors_], axis=1)
        return self._fuse_and_track(X, present, scores, centre, scale, self._pattern_distance())

    def step_block(self, X, timestamps=None, *, row: int = 0, trace=()):
        """Score ``T`` points of stream ``row`` as ``T`` steps would (see :meth:`Detector.step_block`).

        Besides ``"range"`` (the ensemble's expected range before each point,
        already on the series' sign side), ``trace`` may name any per-stream
        attribute, e.g. ``"member_scores_"`` or ``"cause_"``.  See
        :meth:`step_ticks` for how the members and the ensemble's own
        recursion share the work.
        """
        X, times, empty = self._open_block(X, timestamps, row, trace)
        if empty is not None:
            return empty
        if self.n_streams_ > 1:
            return self._on_twin(X, times, row, tuple(trace))
        if self._compiled_path() and set(trace) <= {"range", *TICK_TRACES}:
            return self._compiled_block(X, times, tuple(trace))
        T = len(X)
        anomalous, alerts = np.zeros(T, dtype=bool), np.zeros(T, dtype=bool)
        followed = Traces(trace)

        def before(t, own):
            if followed.wants_range:
                followed.add_range(self._kept_row(0, None if own is None else (own[0][0], own[1][0])))

        def after(t):
            anomalous[t], alerts[t] = self.is_anomaly_[0], self.alert_[0]
            followed.add_after(self, 0)

        scores = self._looped_ticks(X[:, None, :], times[:, None], before, after)[:, 0]
        return Block(scores, anomalous, alerts, followed.collect())

    def _compiled_block(self, X, times, trace):
        """One stream's block through :meth:`_compiled_ticks`, with its traces taken from the per-tick arrays."""
        T = len(X)
        present = ~np.isnan(X).any(axis=1)
        # What _kept_row reads before each tick: points seen, and the signs shown, before it.
        seen_before = self.seen_[0] + np.concatenate([[0], np.cumsum(present)[:-1]])
        signs = {}
        for name, shown in (("never_negative_", X < 0), ("never_positive_", X > 0)):
            shown = np.logical_or.accumulate(present[:, None] & shown, axis=0)
            signs[name] = getattr(self, name)[0] & ~np.concatenate([np.zeros((1, X.shape[1]), dtype=bool),
                                                                     shown[:-1]])
        before = {name: np.array(getattr(self, name)[0], copy=True)
                  for name in trace if name not in ("range", "is_anomaly_", "alert_")}
        with one_blas_thread(X.shape[1] > 1):  # a wide block's small products: see detectors.blas_threads
            run = self._compiled_ticks(X[:, None, :], times[:, None])
        # A tick without the point leaves the attributes as they were: each tick reads the last stepped one's.
        last = np.maximum.accumulate(np.where(present, np.arange(T), -1))
        traces = {name: run[name][:, 0] for name in trace if name in ("is_anomaly_", "alert_")}
        for name in before:
            values = np.concatenate([before[name][None], run[name][:, 0]])
            traces[name] = values[last + 1]
        if "range" in trace:
            if run["own"] is None:
                traces["range"] = None
            else:
                low, high = run["own"][0][:, 0], run["own"][1][:, 0]
                seen = (seen_before > 0)[:, None]
                traces["range"] = (np.where(seen & signs["never_negative_"], np.maximum(low, 0.0), low),
                                   np.where(seen & signs["never_positive_"], np.minimum(high, 0.0), high))
        return Block(run["scores"][:, 0], run["is_anomaly_"][:, 0], run["alert_"][:, 0], traces)

    def _run_ticks(self, arrays, timestamps, with_episodes):
        """Several series as streams of the bank: :meth:`step_ticks` over their padded ticks."""
        length, d = max(len(a) for a in arrays), arrays[0].shape[1]
        ticks = np.full((length, len(arrays), d), np.nan)
        times = np.full((length, len(arrays)), np.nan)
        for i, a in enumerate(arrays):
            ticks[: len(a), i] = a
            if timestamps is not None:
                times[: len(a), i] = as_epoch_seconds(timestamps[i], len(a))
        anomalous = np.zeros((length, len(arrays)), dtype=bool)
        alerts = np.zeros((length, len(arrays)), dtype=bool)

        def after(t):
            anomalous[t], alerts[t] = self.is_anomaly_, self.alert_

        out = self.step_ticks(ticks, times, None, after if with_episodes else None)
        cut = [slice(0, len(a)) for a in arrays]
        return tuple([m[c, i].copy() for i, c in enumerate(cut)] for m in (out, anomalous, alerts))

    def step_ticks(self, ticks, times, before=None, after=None):
        """Step the bank over ``ticks`` ``(T, S, d)`` as ``T`` calls of :meth:`step` would; return the ``(T, S)`` scores.

        The members do not read the ensemble's state, so each one scores all
        ``T`` ticks first: those with a vectorised block path one block per
        stream, the others tick by tick.  The ensemble's own recursion
        (fusion, records, episodes) then runs over the ticks in compiled
        kernels (:mod:`detectors.kernels`).  ``after(t)`` lets a caller read
        :attr:`is_anomaly_` and :attr:`alert_` after each tick.  ``before(t,
        own)`` (``own``: the range member's own range before tick ``t``), or
        an ensemble without novelty, takes the reference path instead: the
        members scored ahead, the rest stepped tick by tick.
        """
        if before is not None or not self._compiled_path():
            return self._looped_ticks(ticks, times, before, after)
        run = self._compiled_ticks(ticks, times)
        if after is not None:
            last = self.is_anomaly_, self.alert_
            for t in range(len(ticks)):
                self.is_anomaly_, self.alert_ = run["is_anomaly_"][t], run["alert_"][t]
                after(t)
            self.is_anomaly_, self.alert_ = last
        return run["scores"]

    def _compiled_path(self) -> bool:
        """Whether the compiled kernels can step this ensemble: novelty on, and held records not with the recent
        records (``short_records``, whose recursion the held records' kernel does not run)."""
        return self.novelty and not (self.hold_records and self.short_records)

    def _members_ahead(self, ticks, has_point, stepped):
        """Every member's scores ``(T, S, M)`` over the ticks, with what the ensemble reads of them.

        Returns ``(scores, own, distance)``: the range member's own range
        before each tick as ``(low, high)``, each ``(T, S, d)`` (None without
        one), and the pattern member's distances ``(T, S)`` after each stepped
        tick (None without one).  A member is stepped only on ticks where some
        stream has a point, as :meth:`Detector._tick` steps it.
        """
        T, S, d = ticks.shape
        source = self._range_source()
        with sharing():  # iqr and mad slide their windows once
            ahead, ahead_scores, own_rows, own_index = self._blocks_ahead(ticks, has_point, stepped)
        scores = np.zeros((T, S, len(self.detectors_)))
        scores[:, :, ahead] = ahead_scores
        own = None if own_rows is None else (own_rows[0][own_index], own_rows[1][own_index])
        distance = None
        pattern = self.members.index("pattern") if "pattern" in self.members else None
        for j, det in enumerate(self.detectors_):
            if j in ahead:
                continue
            if j == pattern and det is not source:
                # Compiled over every stepped tick at once; its distances after each tick, for the records.
                distance = np.zeros((T, S))
                scores[stepped, :, j], distance[stepped] = det.step_ticks(ticks[stepped])
                continue
            if det is source:
                own = (np.zeros((T, S, d)), np.zeros((T, S, d)))
            if j == pattern:
                distance = np.zeros((T, S))
            for t in range(T):
                if det is source:
                    own[0][t], own[1][t] = det.own_expected_range()
                if stepped[t]:
                    scores[t, :, j] = det.step(ticks[t])
                if j == pattern:
                    distance[t] = det.distance_
        return scores, own, distance

    def _compiled_ticks(self, ticks, times):
        """The fast path of :meth:`step_ticks`: members ahead, then the ensemble's recursion in compiled kernels.

        Returns per-tick arrays: ``"scores"``, ``"is_anomaly_"``, ``"alert_"``,
        ``"member_scores_"``, ``"novelty_"``, ``"cause_"`` (each ``(T, S)``
        or ``(T, S, M)``), and ``"own"``, the range member's own range before
        each tick (or None); leaves the state ``T`` steps would.
        """
        T, S, d = ticks.shape
        has_point = ~np.isnan(ticks).any(axis=2)
        stepped = has_point.any(axis=1)
        member_scores, own, distance = self._members_ahead(ticks, has_point, stepped)
        present = has_point & stepped[:, None]
        seen_before = self.seen_ + np.concatenate([np.zeros((1, S), dtype=np.int64),
                                                   np.cumsum(present, axis=0)[:-1]])
        ready = present & (seen_before >= self.warmup)

        fused = self._fuse(member_scores)
        evidence = logp_from_score(fused)
        if self.hold_records:
            out = self._held_ticks(ticks, present, stepped, ready, fused, evidence, own, distance)
        else:
            out = self._recorded_ticks(ticks, present, stepped, ready, fused, evidence, own, distance)
        out["member_scores_"], out["own"] = member_scores, own

        # What the last tick leaves: the ensemble's per-tick attributes, as after the last stepped tick.
        if stepped.any():
            last = np.flatnonzero(stepped)[-1]
            self.member_scores_ = member_scores[last].copy()
            self.novelty_, self.cause_ = out["novelty_"][last].copy(), out["cause_"][last].copy()
        self.is_anomaly_, self.alert_ = out["is_anomaly_"][-1].copy(), out["alert_"][-1].copy()
        self.time_ = np.asarray(times[-1], dtype=float).copy()
        self.seen_ += present.sum(axis=0)
        self.never_negative_ &= ~(present[:, :, None] & (ticks < 0)).any(axis=0)
        self.never_positive_ &= ~(present[:, :, None] & (ticks > 0)).any(axis=0)
        self.ticks_ += T
        self._cache_ = {}
        return out

    def _recorded_ticks(self, ticks, present, stepped, ready, fused, evidence, own, distance, reference=None):
        """Records over every tick first (:func:`~detectors.kernels.record_ticks`), then the episodes: the per-tick
        outputs of :meth:`_compiled_ticks` but ``"member_scores_"`` and ``"own"``.

        ``reference``: the ``(centre, scale)`` of each tick when the caller has them already (one tick's step
        does, from :meth:`_reference`); else they come from ``own`` and the records' ranges."""
        from .kernels import episode_ticks

        T, S, d = ticks.shape
        seen = self.value_records_.seen_ + np.concatenate([np.zeros((1, S), dtype=np.int64),
                                                           np.cumsum(present, axis=0)[:-1]])
        # The ranges of both signs' channels only where the spread tail reads them.
        values, width = self.value_records_.update_ticks(np.concatenate([ticks, -ticks], axis=2), present,
                                                          stepped, 2 * d if self.novelty_tail == "spread" else d)
        centre, scale = self._reference_ticks(width[:, :, :d], own, (T, S, d)) if reference is None else reference
        novel_logp = self._spread_tail(values, width, seen, scale).min(axis=2)
        if self.short_records:
            short = self.short_records_
            seen = short.seen_ + np.concatenate([np.zeros((1, S), dtype=np.int64), np.cumsum(present, axis=0)[:-1]])
            recent, width = short.update_ticks(np.concatenate([ticks, -ticks], axis=2), present, stepped, 2 * d)
            novel_logp = self._with_recent(novel_logp, self._spread_tail(recent, width, seen, scale, SHORT_WINDOW,
                                                                         force=True))
        cause = np.where(novel_logp < 0, VALUE_CAUSE, 0).astype(np.int8)
        if distance is not None:
            on = self.stream_weights_[:, self.members.index("pattern")] > 0
            pattern, _ = self.pattern_records_.update_ticks(distance[:, :, None], present & on, stepped)
            pattern = pattern[:, :, 0]
            cause = np.where(pattern < novel_logp, PATTERN_CAUSE, cause).astype(np.int8)
            novel_logp = np.minimum(novel_logp, pattern)
        novel_logp = self._per_stream(novel_logp, d)
        if self.flatline:
            stuck = self.flatline_.update_ticks(ticks, present)
            cause = np.where(stuck < novel_logp, FLATLINE_CAUSE, cause).astype(np.int8)
            novel_logp = np.minimum(novel_logp, stuck)
        if self.persistence:
            surprising = (evidence <= np.log(SURPRISE_P))[:, :, None]
            lasting = self.surprise_runs_.update_ticks(surprising, present[:, :, None])[:, :, 0]
            cause = np.where(lasting < novel_logp, PERSISTENCE_CAUSE, cause).astype(np.int8)
            novel_logp = np.minimum(novel_logp, lasting)
        cause = np.where(novel_logp < 0, cause, 0).astype(np.int8)
        novel = score_from_logp(novel_logp)

        episodes = self.episodes_
        out = {"scores": np.zeros((T, S)), "is_anomaly_": np.zeros((T, S), dtype=bool),
               "alert_": np.zeros((T, S), dtype=bool), "novelty_": np.zeros((T, S)),
               "cause_": np.zeros((T, S), dtype=np.int8)}
        episode_ticks(stepped, present, ready, novel, novel_logp, evidence, cause, fused,
                      np.ascontiguousarray(self.stream_thresholds_, dtype=float), ticks, centre, scale,
                      np.zeros((T, S)) if distance is None else distance, distance is not None,
                      episodes.leave_limit(d), float(np.log(episodes.release)), episodes.memory, episodes.settle,
                      REFRACTORY, POINTWISE_CAP, episodes.open_, episodes.calm_, episodes.age_, episodes.centre_,
                      episodes.scale_, self.alert_score_, self.since_alert_, self.episode_distance_,
                      out["scores"], out["is_anomaly_"], out["alert_"], out["novelty_"], out["cause_"])
        return out

    def _held_ticks(self, ticks, present, stepped, ready, fused, evidence, own, distance):
        """:meth:`_recorded_ticks` with ``hold_records``: the value records and the episodes in one compiled
        recursion (:func:`~detectors.kernels.record_episode_ticks`), since what a point teaches the records
        depends on the episode it opens or continues."""
        from .kernels import record_episode_ticks

        T, S, d = ticks.shape
        pattern = np.zeros((T, S))
        if distance is not None:
            on = self.stream_weights_[:, self.members.index("pattern")] > 0
            pattern = self.pattern_records_.update_ticks(distance[:, :, None], present & on, stepped)[0][:, :, 0]
        # The run channels, as _novelty_logp joins them after the records: flatline, then persistence.
        later, later_cause = np.zeros((T, S)), np.zeros((T, S), dtype=np.int8)
        if self.flatline:
            later = self.flatline_.update_ticks(ticks, present)
            later_cause = np.where(later < 0, FLATLINE_CAUSE, 0).astype(np.int8)
        if self.persistence:
            surprising = (evidence <= np.log(SURPRISE_P))[:, :, None]
            lasting = self.surprise_runs_.update_ticks(surprising, present[:, :, None])[:, :, 0]
            later_cause = np.where(lasting < later, PERSISTENCE_CAUSE, later_cause).astype(np.int8)
            later = np.minimum(later, lasting)
        # _per_stream's Bonferroni term.
        per_stream = float(np.log(self._channels(d)))
        source = self._range_source()
        own_low, own_high = own if own is not None else (np.zeros((T, S, d)), np.zeros((T, S, d)))
        records, episodes = self.value_records_, self.episodes_
        out = {"scores": np.zeros((T, S)), "is_anomaly_": np.zeros((T, S), dtype=bool),
               "alert_": np.zeros((T, S), dtype=bool), "novelty_": np.zeros((T, S)),
               "cause_": np.zeros((T, S), dtype=np.int8)}
        record_episode_ticks(
            np.ascontiguousarray(np.concatenate([ticks, -ticks], axis=2), dtype=float), present, stepped,
            records.window, records.scale, records.warmup, records.mature, records.counts_after, records.step,
            STEP_AFTER, RECUR_HEIGHT, records.block_, records.tail_blocks, records.maxima_, records.partial_,
            records.low_, records.high_, records.fill_, records.slot_, records.seen_, records.accepted_,
            records.accepted_until_, records.cutting_, records.cut_, records.cut_until_, records.second_high_,
            records.second_low_, records.strength_,
            records.holding_, records.held_, records.held_until_, pattern, per_stream, later, later_cause, SCORE_POWER,
            np.ascontiguousarray(own_low, dtype=float), np.ascontiguousarray(own_high, dtype=float), own is not None,
            z_multiplier(source.threshold, 1) if source is not None else 1.0, REFERENCE_FLOOR,
            self.novelty_tail == "spread", ready, evidence, fused, np.ascontiguousarray(self.stream_thresholds_, dtype=float), ticks,
            np.zeros((T, S)) if distance is None else distance, distance is not None,
            episodes.leave_limit(d), float(np.log(episodes.release)), episodes.memory, episodes.settle,
            REFRACTORY, POINTWISE_CAP, episodes.open_, episodes.calm_, episodes.age_, episodes.centre_,
            episodes.scale_, self.alert_score_, self.since_alert_, self.episode_distance_,
            out["scores"], out["is_anomaly_"], out["alert_"], out["novelty_"], out["cause_"],
            VALUE_CAUSE, PATTERN_CAUSE)
        return out

    def _reference_ticks(self, spread, own, shape):
        """:meth:`_reference` for every tick: ``spread`` ``(T, S, d)`` is the value records' range before each."""
        if own is None:
            return np.zeros(shape), np.full(shape, np.inf)
        span = np.where(np.isfinite(spread), spread, 0.0)
        return self._reference_from(own, span)

    def _blocks_ahead(self, ticks, has_point, stepped):
        """The members with a vectorised block path, scored one block per stream.

        Returns ``(ahead, scores, own_rows, own_index)``: the members' indices
        and their scores ``(T, S, len(ahead))``; the range
        member's ranges, stream after stream, and for each tick and stream
        where its range is (None when the range member is not among them).
        """
        T, S, d = ticks.shape
        source = self._range_source()
        last = np.flatnonzero(stepped)[-1] if stepped.any() else -1
        active = np.flatnonzero(has_point.any(axis=0))  # streams with no point in these ticks sit out
        ahead = [j for j, det in enumerate(self.detectors_)
                 if det._vectorised(("range",) if det is source else (), 0) and det.name != "pattern"
                 and det._independent_streams(len(active))]
        ahead_scores = np.zeros((T, S, len(ahead)))
        own_rows, own_index = None, None
        for k, j in enumerate(ahead):
            det = self.detectors_[j]
            ticks_before, flags, firsts = det.ticks_, np.zeros(S, dtype=bool), np.zeros(S, dtype=bool)
            # The range member's ranges, stream after stream, and for each tick and stream where its range is;
            # a stream without points reads the last (unused) zero range.
            ranges, index = [], np.zeros((T, S), dtype=np.int64)
            for i in active:
                at = np.flatnonzero(has_point[:, i])
                # As in _score_and_learn, the members are stepped without the points' times.
                block = det.step_block(ticks[at, i], row=i, trace=("range",) if det is source else ())
                ahead_scores[at, i, k] = block.scores
                if at[-1] == last:
                    flags[i], firsts[i] = block.is_anomaly[-1], block.alert[-1]
                if det is source:
                    # A tick without the stream's point changes nothing: its range is the one before the
                    # stream's next point, or the one after its last.
                    now = det.own_expected_range()
                    index[:, i] = sum(len(r[0]) for r in ranges) + np.searchsorted(at, np.arange(T))
                    ranges.append(tuple(np.concatenate([traced, part[i][None]])
                                        for traced, part in zip(block.traces["range"], now)))
            # The bank's per-tick outputs as after the last stepped tick.
            det.ticks_, det.time_, det._cache_ = ticks_before + int(stepped.sum()), np.full(S, np.nan), {}
            if stepped.any():
                det.is_anomaly_, det.alert_ = flags, firsts
            if det is source:
                ranges.append((np.zeros((1, d)), np.zeros((1, d))))
                empty = np.setdiff1d(np.arange(S), active)
                index[:, empty] = sum(len(r[0]) for r in ranges) - 1
                own_rows = tuple(np.concatenate(parts) for parts in zip(*ranges))
                own_index = index
        return ahead, ahead_scores, own_rows, own_index

    def _looped_ticks(self, ticks, times, before=None, after=None):
        """The reference path of :meth:`step_ticks`: members with a block path ahead, the rest tick by tick.

        Members without a vectorised block path are stepped tick by tick
        together with the ensemble's own recursion (fusion, records,
        episodes) in numpy, which reads the scores and ranges of the members
        scored ahead at each tick.
        """
        T, S, d = ticks.shape
        source = self._range_source()
        has_point = ~np.isnan(ticks).any(axis=2)
        stepped = has_point.any(axis=1)
        with sharing():  # iqr and mad slide their windows once
            ahead, ahead_scores, own_rows, own_index = self._blocks_ahead(ticks, has_point, stepped)
        looped = [j for j in range(len(self.detectors_)) if j not in ahead]
        out = np.zeros((T, S))
        for t in range(T):
            if source is None:
                own = None
            elif own_rows is not None:
                own = (own_rows[0][own_index[t]], own_rows[1][own_index[t]])
            else:
                own = source.own_expected_range()
            if before is not None:
                before(t, own)

            def tail(X_t, present, t=t, own=own):
                centre, scale = self._reference(X_t, own)
                scores = np.zeros((S, len(self.detectors_)))
                scores[:, ahead] = ahead_scores[t]
                for j in looped:
                    scores[:, j] = self.detectors_[j].step(X_t)
                return self._fuse_and_track(X_t, present, scores, centre, scale, self._pattern_distance())

            out[t] = self._tick(ticks[t], times[t], tail)
            if after is not None:
                after(t)
        return out

    def _others_sat_out(self, row, X):
        super()._others_sat_out(row, X)
        points = X[~np.isnan(X).any(axis=1)]
        if len(points) == 0:  # no tick had a point: the ensemble's own recursion never ran
            return
        others = np.arange(self.n_streams_) != row
        for name in ("member_scores_", "novelty_", "cause_"):
            getattr(self, name)[others] = 0
        self.value_records_.strength_[others] = 0.0
        if self.short_records_ is not None:
            self.short_records_.strength_[others] = 0.0
        self.pattern_records_.strength_[others] = 0.0
        for member in self.detectors_:
            member._others_sat_out(row, points)

    def _kept_row(self, row, expected):
        """One stream's expected range kept on its sign side, as :meth:`expected_range` would give it now."""
        if expected is None:
            return None
        seen = self.seen_[row] > 0
        low, high = expected
        return (np.where(seen & self.never_negative_[row], np.maximum(low, 0.0), low),
                np.where(seen & self.never_positive_[row], np.minimum(high, 0.0), high))

    def _fuse_and_track(self, X, present, scores, centre, scale, distance):
        """Fuse the members' scores of this tick, add novelty, and keep the episodes (the ensemble's own state).

        ``centre`` and ``scale`` are the reference range before the tick,
        ``distance`` the pattern member's distances after it (None without one).
        """
        self.member_scores_ = scores
        fused = self._fuse(scores)
        ready = present & (self.seen_ >= self.warmup)
        evidence = logp_from_score(fused)
        if not self.novelty:
            self._episodes(X, ready & (fused >= self.stream_thresholds_), evidence, evidence, present, centre, scale)
            return fused
        if compiled_steps() and not self.hold_records:
            return self._tracked_in_kernels(X, present, ready, fused, evidence, centre, scale, distance)
        novel_logp = self._novelty_logp(X, present, distance, evidence, scale)
        novel = score_from_logp(novel_logp)
        # Inside an episode, and for REFRACTORY points after an alert, novelty counts (and alerts)
        # only when it escalates past the alert's: one incident, one alert.
        quiet = (self.episodes_.open_ | (self.since_alert_ < REFRACTORY)) & (novel <= self.alert_score_)
        # Point-wise evidence alone never holds an episode open (one member saturated by a broken
        # input must not hold a stream in one): only together with values outside the frozen range.
        opens = self._episodes(X, ready & ~quiet & (novel >= self.stream_thresholds_), novel_logp, evidence,
                               present, centre, scale)
        if self.hold_records:
            # Scored in _novelty_logp, learned now that the tick's episodes are known.
            episodes = self.episodes_
            held = episodes.open_ & present & (episodes.age_ <= episodes.memory)
            self.value_records_.learn(np.concatenate([X, -X], axis=1), present, held)
        held = present & quiet
        escalates = present & ~quiet & (novel > 0) & self.episodes_.open_ & ~opens
        self.alert_score_ = np.where(opens, novel, np.where(escalates, np.maximum(novel, self.alert_score_),
                                                            self.alert_score_))
        self.since_alert_ = np.where(opens, 0, self.since_alert_ + present)
        self._track_episode_distance(opens, present)
        self.novelty_ = np.where(held, 0.0, novel)
        self.cause_ = np.where(held, 0, self.cause_)
        return np.maximum(self.novelty_, POINTWISE_CAP * fused)

    def _tracked_in_kernels(self, X, present, ready, fused, evidence, centre, scale, distance):
        """The rest of :meth:`_fuse_and_track` for one tick in the fast path's compiled kernels (records, episodes).

        The numpy code below it holds the GIL for a few dozen array passes per
        tick (about a tenth of a bank's step); the kernels release it, so the
        engine's other thread steps its bank meanwhile.  They mirror the numpy
        code operation for operation (:func:`~detectors.kernels.record_ticks`,
        :func:`~detectors.kernels.episode_ticks`; ``tests/detectors/test_bank_kernels.py``
        holds the two equal).  ``_recorded_ticks`` runs them over a tick of one.
        """
        one = np.ones(1, dtype=bool)
        out = self._recorded_ticks(X[None], present[None], one, ready[None], fused[None], evidence[None], None,
                                   None if distance is None else distance[None], (centre[None], scale[None]))
        self.alert_, self.is_anomaly_ = out["alert_"][0], out["is_anomaly_"][0]
        self.novelty_, self.cause_ = out["novelty_"][0], out["cause_"][0]
        return np.maximum(self.novelty_, POINTWISE_CAP * fused)

    def _track_episode_distance(self, opens, present):
        if "pattern" not in self.members:
            return
        distance = self.detectors_[self.members.index("pattern")].distance_
        during = present & (self.episodes_.open_ | (self.since_alert_ < REFRACTORY))
        self.episode_distance_ = np.where(opens, distance, np.where(
            during, np.maximum(self.episode_distance_, distance), self.episode_distance_))

    def accept_normal(self, row: int, X) -> None:
        """Teach stream ``row`` that the points ``X`` ``(k, d)`` were normal ("not an anomaly").

        Their values, and the pattern distance of the stream's last incident,
        set no record for :data:`ACCEPT_POINTS` more points (see the module
        docstring), and the stream's open episode ends now.
        """
        X = np.asarray(X, dtype=float).reshape(-1, self.n_features_)
        self.value_records_.accept(row, np.concatenate([X, -X], axis=1), ACCEPT_MARGIN, ACCEPT_POINTS)
        if self.short_records_ is not None:
            self.short_records_.accept(row, np.concatenate([X, -X], axis=1), ACCEPT_MARGIN, ACCEPT_POINTS)
        if "pattern" in self.members:
            distance = PATTERN_ACCEPT_FACTOR * self.episode_distance_[row:row + 1, None]
            self.pattern_records_.accept(row, distance, 0.0, ACCEPT_POINTS)
        self.episodes_.close([row])
        self.alert_score_[row] = 0.0
        self.since_alert_[row] = REFRACTORY

    def acceptance(self, row: int) -> dict:
        """What stream ``row`` was taught by :meth:`accept_normal`, for :meth:`set_acceptance`."""
        return {"value": self.value_records_.acceptance(row), "pattern": self.pattern_records_.acceptance(row)}

    def set_acceptance(self, row: int, taught: dict) -> None:
        """Carry :meth:`acceptance` of another detector (the stream's, before it was rebuilt) to ``row``."""
        self.value_records_.set_acceptance(row, *taught["value"])
        self.pattern_records_.set_acceptance(row, *taught["pattern"])

    def _episodes(self, X, alert, novelty_logp, evidence_logp, present, centre, scale):
        opens, in_episode = self.episodes_.update(X, alert, novelty_logp, evidence_logp, present, centre, scale)
        self.alert_, self.is_anomaly_ = opens, in_episode
        return opens

    def _update_episodes(self, scores, present):
        """Episodes are kept by :class:`~detectors.novelty.EpisodeState` in :meth:`_score_and_learn`."""
        warming = self.seen_ <= self.warmup  # seen_ counts this tick's point already
        self.alert_ = self.alert_ & present & ~warming
        self.is_anomaly_ = self.is_anomaly_ & present & ~warming

    def _reference(self, X, own_range):
        """Centre and spread ``(S, d)`` of the range each field is expected in on this tick (before learning).

        Taken from the first range member's own range ``own_range`` (a robust one by default), with the
        spread at least :data:`REFERENCE_FLOOR` of the field's range so far;
        frozen by the episode state when an episode starts.
        """
        S, d = X.shape
        span = self.value_records_.high_[:, :d] - self.value_records_.low_[:, :d]
        span = np.where(np.isfinite(span), span, 0.0)
        source = self._range_source()
        if source is None:
            return np.zeros((S, d)), np.full((S, d), np.inf)
        return self._reference_from(own_range, span)

    def _reference_from(self, own_range, span):
        """Centre and spread from the range member's own range and the fields' ranges so far (any leading shape)."""
        source = self._range_source()
        # ``own_range``: the member's own model, before the base class keeps it on the series' sign side.
        low, high = own_range
        k = z_multiplier(source.threshold, 1)
        centre = 0.5 * (low + high)
        scale = np.maximum(0.5 * (high - low) / k, REFERENCE_FLOOR * span)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.inf)
        return np.nan_to_num(centre), scale

    def _range_source(self):
        for name in RANGE_SOURCES:
            if name in self.members:
                return self.detectors_[self.members.index(name)]
        return None

    def _fuse(self, scores):
        w = self.stream_weights_
        total = w.sum(axis=1)
        # ``scores`` is (S, M) for one tick or (T, S, M) for several.
        with np.errstate(all="ignore"):
            if self.fusion == "logp":
                logp = np.log(np.clip(1.0 - scores, P_FLOOR, 1.0))
                fused = 1.0 - np.exp((w * logp).sum(axis=-1) / total)
            elif self.fusion == "vote":
                fused = (w * (scores >= self.member_thresholds())).sum(axis=-1) / total
            else:
                fused = np.where(w > 0, scores, 0.0).max(axis=-1)
        return np.where(total > 0, fused, 0.0)

    def _pattern_distance(self):
        """The pattern member's distances ``(S,)`` after this tick, or None without a pattern member."""
        return self.detectors_[self.members.index("pattern")].distance_ if "pattern" in self.members else None

    def _novelty_logp(self, X, present, distance, evidence, scale):
        """Return each stream's novelty as a log tail probability: its rarest record over the channels.

        ``scale`` ``(S, d)`` is each field's spread in the range expected
        before the point (used by ``novelty_tail="spread"``).
        """
        records = self.value_records_
        # With hold_records the point is learned after the episodes (_fuse_and_track), without it now.
        judge = records.score if self.hold_records else records.update
        if self.novelty_tail == "spread":
            width, seen = records.high_ - records.low_, records.seen_.copy()
            logp = judge(np.concatenate([X, -X], axis=1), present)
            logp = self._spread_tail(logp, width, seen, scale).min(axis=1)
        else:
            logp = judge(np.concatenate([X, -X], axis=1), present).min(axis=1)
        if self.short_records:
            short = self.short_records_
            width, seen = short.high_ - short.low_, short.seen_.copy()
            recent = short.update(np.concatenate([X, -X], axis=1), present)
            logp = self._with_recent(logp, self._spread_tail(recent, width, seen, scale, SHORT_WINDOW, force=True))
        cause = np.where(logp < 0, VALUE_CAUSE, 0).astype(np.int8)
        if "pattern" in self.members:
            i = self.members.index("pattern")
            on = self.stream_weights_[:, i] > 0
            pattern = self.pattern_records_.update(distance[:, None], present & on)[:, 0]
            cause = np.where(pattern < logp, PATTERN_CAUSE, cause).astype(np.int8)
            logp = np.minimum(logp, pattern)
        logp = self._per_stream(logp, X.shape[1])
        if self.flatline:
            stuck = self.flatline_.update(X, present)
            cause = np.where(stuck < logp, FLATLINE_CAUSE, cause).astype(np.int8)
            logp = np.minimum(logp, stuck)
        if self.persistence:
            surprising = (evidence <= np.log(SURPRISE_P))[:, None]
            lasting = self.surprise_runs_.update(surprising, present[:, None])[:, 0]
            cause = np.where(lasting < logp, PERSISTENCE_CAUSE, cause).astype(np.int8)
            logp = np.minimum(logp, lasting)
        self.cause_ = np.where(logp < 0, cause, 0).astype(np.int8)
        return logp

    def _with_recent(self, logp, recent):
        """The value records' ``log p`` joined with the recent records' ``(..., 2d)``: the rarer, times the two windows."""
        return np.minimum(np.minimum(logp, recent.min(axis=-1)) + np.log(2.0), 0.0)

    def _spread_tail(self, logp, width, seen, sigma, window=VALUE_WINDOW, force=False):
        """Value records' ``log p`` ``(..., S, 2d)`` with the excess in the stream's own noise (``novelty_tail="spread"``).

        A record against ``n`` points gets ``p = exp(-excess / scale) / n``;
        the fixed scale is :data:`NOVELTY_SCALE` of the channel's range
        ``width``.  With ``"spread"`` the scale is the wider of that and the
        Gumbel scale of the maximum of ``n`` points of the field's robust
        spread ``sigma`` (``(..., S, d)``, the episode reference's spread,
        from the last 100 points): a channel whose range is narrow against
        its noise (a young one, or a slow wander whose every new low beats
        the last by a noise step) needs the excess a Gaussian record would
        rarely reach, and a spike many spreads past the record alerts as
        before.  ``seen`` are the records' points before the update, of
        which the last ``window`` count (``n``).  Other tails: ``logp``
        unchanged, unless ``force`` (the recent records always use it).
        """
        if self.novelty_tail != "spread" and not force:
            return logp
        n = np.minimum(np.maximum(seen, 1), window).astype(float)[..., None]
        gumbel = gaussian_record_scale(np.concatenate([sigma, sigma], axis=-1), n)
        fixed = NOVELTY_SCALE * width
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(np.isfinite(gumbel) & (gumbel > 0) & np.isfinite(fixed) & (fixed > 0),
                              np.minimum(1.0, fixed / gumbel), 1.0)
        # logp = -log n - excess / fixed, so logp + log n is the excess term, rescaled to the wider scale.
        return np.where(logp < 0, -np.log(n) + (logp + np.log(n)) * factor, logp)

    def _per_stream(self, logp, d):
        """The rarest channel's ``log p`` as the stream's: times the channels watched (Bonferroni).

        A stream alerts when any of its ``2 d`` value channels or its pattern
        channel sets a rare enough record, so the chances add up: a rate
        stated per stream is each channel's share of it.  Never above 0 (p = 1).
        Until 4 December 2026 only the learned tails took the share, and a
        stream of 38 independent Gaussian fields alerted on 9.1e-3 of its
        points (911 times the stated rate; 4.8e-3 with the share,
        ``tests/benchmarks/bench_null_rate.py --fields 38 --streams 100``).
        """
        return np.minimum(logp + np.log(self._channels(d)), 0.0)

    def _channels(self, d):
        """The novelty channels watching a stream of ``d`` fields: both signs of each field, and the pattern."""
        return 2 * d + ("pattern" in self.members)

    def expected_range(self):
        """The first range member's expected range (kept on a field's sign side by :class:`Detector`)."""
        source = self._range_source()
        return None if source is None else source.expected_range()
