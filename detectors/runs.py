"""Runs of an event (a repeated value, a surprising point) judged by how a stream's own history clusters it.

Some anomalies are not one rare point but a *run* of ordinary-looking or
mildly surprising ones: a frozen sensor repeats its reading, a shifted level
keeps every point a little off.  :class:`RunTracker` learns, per channel of
each stream, how often the event happens and how often it follows itself,
and gives a run of ``r`` events in a row the chance the stream's history
gives it, under a two-state Markov chain whose two rates are not known but
learned (the Bayesian posterior predictive)::

    p(run of r) = q_event * P(r - 1 more in a row after an event)

    q_event = (events + 1) / (trials + 2)                   Laplace's rule of succession
    P(k in a row) = B(a + k, b) / B(a, b)                   the rate after an event ~ Beta(a, b)
    a = events after an event + 2 q_event,  b = other trials after an event + 2 (1 - q_event)

The rate after an event starts at ``q_event`` (before a stream shows how its
events cluster, one after another is taken to be as likely as any) with the
weight of two observations, as Laplace's rule gives ``q_event``; each event of
the run makes the next one likelier, as the posterior learns, so a stream
with a short history is given a heavy tail of run lengths rather than a
geometric one.  A run is judged with the counts learned before it started
(the posterior then learns from the run as it goes, which is what the Beta
function term is), and its ``log p`` is shrunk in proportion while fewer than
``mature`` trials came before it, as young records are
(:class:`~detectors.novelty.RecordTracker`): a channel that has been constant
since the stream began has no history its run could be rare against.  Every
trial is learned, the runs included, so a run that recurs becomes the
stream's normal, and a run longer than ``memory`` events is the new normal
at once (as an episode's frozen range is trusted only so long): it says
nothing more.

:meth:`RunTracker.update_ticks` gives over ``T`` ticks exactly what ``T``
calls of :meth:`RunTracker.update` give, with cumulative sums over the ticks
in place of the recursion.

>>> tracker = RunTracker(mature=1).reset(n_streams=1, n_channels=1)
>>> events = [False] * 400 + [True] * 4
>>> logp = [float(tracker.update(np.array([[e]]), np.array([[True]]))[0, 0]) for e in events]
>>> max(logp[:400])                           # no event: nothing to say
0.0
>>> [round(v, 1) for v in logp[400:]]         # the first as rare as Laplace says; the next rarer still
[-6.0, -12.0, -13.1, -13.8]
"""
from __future__ import annotations

import numpy as np
from scipy.special import betaln

__all__ = ["RunTracker"]

#: Pseudo-observations behind each rate before the stream has shown it (Laplace's rule: two).
PRIOR_WEIGHT = 2.0


class RunTracker:
    """Runs of an event on ``C`` channels of ``S`` streams, scored by each channel's own history of them.

    State (per stream and channel, streams first): the current run, the
    counts the two rates are learned from, and the rates as they were when
    the current run started.

    Parameters
    ----------
    mature : int
        Trials before a run from which on its ``log p`` counts in full.
    memory : int or None
        Events of a run after which it counts no more (None: no limit).
    """

    #: When a run counts in full and when it is the new normal: a snapshot saved with other values is
    #: restored with the running ones (detectors/snapshot.py).
    snapshot_tunable = ("mature", "memory")

    def __init__(self, mature: int = 1, memory: int | None = None):
        self.mature = int(mature)
        self.memory = memory

    def reset(self, n_streams: int, n_channels: int) -> "RunTracker":
        """Forget everything; allocate state for ``n_streams`` streams of ``n_channels`` channels."""
        if self.mature < 1 or (self.memory is not None and self.memory < 1):
            raise ValueError("mature, and memory unless None, must be at least 1")
        shape = (n_streams, n_channels)
        self.run_ = np.zeros(shape, dtype=np.int64)
        #: Trials (points that could have had the event), and those that had it.
        self.trials_ = np.zeros(shape, dtype=np.int64)
        self.events_ = np.zeros(shape, dtype=np.int64)
        #: Trials right after an event, and those that had it again.
        self.after_event_ = np.zeros(shape, dtype=np.int64)
        self.again_ = np.zeros(shape, dtype=np.int64)
        #: ``log q_event`` and the Beta parameters ``a``, ``b`` of the rate after an event, as they were
        #: when the current run started.
        self.run_log_first_ = np.zeros(shape)
        self.run_a_ = np.ones(shape)
        self.run_b_ = np.ones(shape)
        #: The share of its ``log p`` the current run counts with (trials before it over ``mature``, at most 1).
        self.run_weight_ = np.zeros(shape)
        return self

    def _rates(self, trials, events, after_event, again):
        """``log q_event``, the Beta parameters of the rate after an event, and the run's weight, from the counts."""
        q_event = (events + 1.0) / (trials + 2.0)
        a = again + PRIOR_WEIGHT * q_event
        b = (after_event - again) + PRIOR_WEIGHT * (1.0 - q_event)
        return np.log(q_event), a, b, np.minimum(1.0, trials / self.mature)

    def _run_logp(self, run, log_first, a, b, weight):
        """``log p`` of a run of ``run`` >= 1 events: the first one, then ``run - 1`` more in a row."""
        logp = weight * (log_first + betaln(a + (run - 1), b) - betaln(a, b))
        return logp if self.memory is None else np.where(run <= self.memory, logp, 0.0)

    def update(self, events: np.ndarray, trials: np.ndarray) -> np.ndarray:
        """Return the ``(S, C)`` ``log p`` of each channel's current run (0 without one), then learn the tick.

        ``events`` marks the channels where the event happened, ``trials``
        those where it could have (a channel that is no trial keeps its run).
        """
        events = events & trials
        starts = events & (self.run_ == 0)
        log_first, a, b, weight = self._rates(self.trials_, self.events_, self.after_event_, self.again_)
        self.run_log_first_ = np.where(starts, log_first, self.run_log_first_)
        self.run_a_ = np.where(starts, a, self.run_a_)
        self.run_b_ = np.where(starts, b, self.run_b_)
        self.run_weight_ = np.where(starts, weight, self.run_weight_)
        run = np.where(events, self.run_ + 1, np.where(trials, 0, self.run_))
        logp = np.where(events, self._run_logp(np.maximum(run, 1), self.run_log_first_, self.run_a_, self.run_b_,
                                               self.run_weight_), 0.0)
        in_run = self.run_ > 0
        self.trials_ += trials
        self.events_ += events
        self.after_event_ += trials & in_run
        self.again_ += events & in_run
        self.run_ = run
        return logp

    def update_ticks(self, events: np.ndarray, trials: np.ndarray) -> np.ndarray:
        """:meth:`update` over ``T`` ticks (``events``, ``trials``: ``(T, S, C)``); return the ``(T, S, C)`` ``log p``.

        A run's length is the events since the channel's last trial without
        one (or the stored run plus them); the counts before each tick are
        cumulative sums; a run is judged by the rates of its first tick.
        """
        T = len(events)
        if T == 0:
            return np.zeros(events.shape)
        events = events & trials
        ticks = np.arange(T).reshape((T,) + (1,) * (events.ndim - 1))
        events_so_far = np.cumsum(events, axis=0)
        breaks = trials & ~events
        at_break = np.maximum.accumulate(np.where(breaks, events_so_far, -1), axis=0)
        run = np.where(at_break >= 0, events_so_far - at_break, self.run_[None] + events_so_far)
        run_before = np.concatenate([self.run_[None], run[:-1]])
        in_run = run_before > 0

        def counted_before(happened, stored):
            return stored[None] + np.cumsum(happened, axis=0) - happened

        trials_before = counted_before(trials, self.trials_)
        events_before = counted_before(events, self.events_)
        after_event = counted_before(trials & in_run, self.after_event_)
        again = counted_before(events & in_run, self.again_)
        log_first, a, b, weight = self._rates(trials_before, events_before, after_event, again)

        starts = events & (run_before == 0)
        start_index = np.maximum.accumulate(np.where(starts, ticks, -1), axis=0)
        from_start, at_start = start_index >= 0, np.maximum(start_index, 0)

        def at_run_start(values, stored):
            return np.where(from_start, np.take_along_axis(values, at_start, axis=0), stored[None])

        run_log_first = at_run_start(log_first, self.run_log_first_)
        run_a, run_b = at_run_start(a, self.run_a_), at_run_start(b, self.run_b_)
        run_weight = at_run_start(weight, self.run_weight_)
        logp = np.where(events, self._run_logp(np.maximum(run, 1), run_log_first, run_a, run_b, run_weight), 0.0)

        self.run_ = run[-1].copy()
        self.trials_ = trials_before[-1] + trials[-1]
        self.events_ = events_before[-1] + events[-1]
        self.after_event_ = after_event[-1] + (trials[-1] & in_run[-1])
        self.again_ = again[-1] + (events[-1] & in_run[-1])
        self.run_log_first_ = run_log_first[-1].copy()
        self.run_a_, self.run_b_ = run_a[-1].copy(), run_b[-1].copy()
        self.run_weight_ = run_weight[-1].copy()
        return logp
