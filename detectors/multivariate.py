"""Joint models of all fields: a robust, shrunk covariance read as Hotelling's T² and as a PCA residual (Q/SPE).

Each stream keeps an exponentially weighted mean and covariance of its
``d`` fields (``span`` points), updated every tick with *winsorised* points:
a point farther than the ``1 - CLIP_P`` quantile (in Mahalanobis distance
under the current model) is pulled back to that distance before it is
learned, so no single point, not even 1e300, can move the model by more than
a typical point does.  A stream's first :data:`YOUNG` points have no spread to
be judged by, so they are *held apart* (:meth:`JointModelDetector._hold`):
the moments start with the points after them, which are judged against all
earlier points (the held ones pooled in, though none is pulled back towards a
mean an absurd held value dragged), and once the stream has learned
:data:`JUDGE_AT` points each held point is judged against the moments of
the points that came after it and learned as winsorising would have learned
it then (:meth:`JointModelDetector._judge_youth`).  An absurd *first* value
is thus cut back like any later one, where learned as it came it would own
the mean and covariance for thousands of points.  The young moments weigh
their points equally, so learning the held points last gives the moments
that learning them first would have.

On a staggered schedule (:class:`~detectors.features.RefitSchedule`) each
stream refits its *model* from these moments: the correlation matrix is
shrunk towards the identity by the Oracle Approximating Shrinkage (OAS)
amount for its effective sample size, and one batched ``eigh`` gives both
statistics:

* **Hotelling's T²**, ``z' R_shrunk^-1 z`` of the standardised point ``z``,
  read against a chi-square law with ``d`` degrees of freedom;
* **Q (squared prediction error)**, the squared norm of ``z`` off the
  leading principal components that explain :data:`VARIANCE_KEPT` of the
  variance, read against Box's scaled chi-square ``g * chi2_h`` with ``g``
  and ``h`` from the residual eigenvalues.

Real data are rarely Gaussian, so each statistic is divided by a per-stream
running median of its ratio to the law's median (a sign-step tracker that
one point moves by at most :data:`MEDIAN_STEP`) before it is read.

Both split by field for explanations (:meth:`field_contributions`): T² as
``z_j (R^-1 z)_j`` (the partial contributions, which sum to T²), Q as the
squared residual of each field.  Memory per stream is ``O(d²)``: the moments
(float64) and the eigenvectors (float32), about 18 KB at d = 38 and 51 KB
at d = 64 (the held first points add ``YOUNG * d`` floats).

The model is scored before the point is learned and refitted only from
moments of earlier points, so scores are causal.
"""
from __future__ import annotations

import numpy as np
# scipy is imported where it is used (scipy.special only): scipy.stats costs about a second at server start.
from threadpoolctl import ThreadpoolController

from .base import Detector
from .features import RefitSchedule
from .registry import register
from .stats import floored, score_from_logp, z_multiplier

__all__ = ["HotellingDetector", "PCAResidualDetector", "chi2_logsf", "oas_shrinkage"]

#: Tail probability beyond which a point is winsorised before it is learned.
CLIP_P = 1e-3
#: Standardised deviations are clipped here, so an absurd value stays finite in every product.
Z_LIMIT = 1e6
#: Share of the (correlation) variance the leading principal components keep; Q measures the rest.
VARIANCE_KEPT = 0.9
#: Multiplicative step of the median-ratio trackers (a point moves them by at most this share).
MEDIAN_STEP = 0.005
#: A stream's first points, which have no spread to be judged by: held apart from the moments until judged
#: (a spread needs a few points; with fewer than three, one of them decides it alone).
YOUNG = 3
#: Points a stream has learned when its held points are judged: the moments of the ~27 after them give
#: every field's spread to within about 15 %, so an ordinary held point is rarely cut (the novelty
#: records judge a young stream's extremes after as many points, :data:`detectors.novelty.STEP_AFTER`).
JUDGE_AT = 30
#: A held value is kept within this magnitude, so squares of held values and of deviations from their
#: mean, summed over a few dozen points, stay finite (a value beyond it is absurd and will be cut anyway).
HELD_LIMIT = 1e150
_LOG2 = float(np.log(2.0))
#: Small batched eigendecompositions run far faster on one BLAS thread than on many contending ones.
_BLAS = ThreadpoolController()
#: Streams refitted together: bounds the (chunk, d, d) temporaries.
_FIT_CHUNK = 256


def chi2_logsf(x, df) -> np.ndarray:
    """``log P(chi2_df >= x)`` for array ``x`` and ``df`` (non-integer allowed), finite far into the tail.

    The body comes from Wilson and Hilferty's cube-root normal approximation
    (one cheap ufunc per point); points in the tail (p < 1e-2 by it) get the
    exact survival function, and past its underflow (``p < 1e-260``) the
    asymptotic series of the upper incomplete gamma function.

    >>> v = chi2_logsf(np.array([10.0, 1e3, 1e5]), np.array([3.0, 38.0, 38.0]))
    >>> bool(np.isfinite(v).all() and v[0] > v[1] > v[2]), np.round(v[:2], 3).tolist()
    (True, [-3.992, -424.496])
    >>> from scipy import stats
    >>> x = np.linspace(0, 80, 9)
    >>> bool(np.allclose(chi2_logsf(x, 19.0), stats.chi2.logsf(x, 19.0), atol=0.02))
    True
    """
    from scipy import special  # here: importing scipy.special costs every server start ~0.3 s

    x = np.maximum(np.nan_to_num(np.asarray(x, dtype=float), nan=0.0, posinf=1e300), 0.0)
    df = np.broadcast_to(np.asarray(df, dtype=float), x.shape)
    with np.errstate(all="ignore"):
        if np.all(df == 1.0):
            return _LOG2 + special.log_ndtr(-np.sqrt(x))
        spread = np.sqrt(2.0 / (9.0 * df))
        out = special.log_ndtr(-(np.cbrt(x / df) - (1.0 - spread**2)) / spread)
        far = np.flatnonzero(out < np.log(1e-2))
        if far.size:
            xf, kf = x.flat[far], df.flat[far]
            exact = np.log(special.chdtrc(kf, xf))
            s, z = kf / 2.0, np.maximum(xf / 2.0, 1e-300)
            tail = (s - 1.0) * np.log(z) - z - special.gammaln(s) + np.log1p(np.maximum((s - 1.0) / z, -0.5))
            out.flat[far] = np.where(np.isfinite(exact) & (exact > -600.0), exact, np.minimum(tail, 0.0))
    return out


def chi2_median(df):
    """The median of a chi-square law with ``df`` degrees of freedom (Wilson and Hilferty's approximation).

    >>> from scipy import stats
    >>> round(float(chi2_median(38.0)), 2), round(float(stats.chi2.median(38.0)), 2)
    (37.34, 37.34)
    """
    df = np.asarray(df, dtype=float)
    return df * (1.0 - 2.0 / (9.0 * df)) ** 3


def oas_shrinkage(corr: np.ndarray, n_samples: np.ndarray) -> np.ndarray:
    """The Oracle Approximating Shrinkage amount ``(r,)`` of correlation matrices ``(r, d, d)`` towards the identity.

    Chen, Wiesel, Eldar and Hero (2010), the formula scikit-learn's ``OAS``
    uses, with the trace fixed at ``d`` (a correlation matrix).

    >>> from sklearn.covariance import oas
    >>> x = np.random.default_rng(0).normal(size=(20, 5))
    >>> ours = oas_shrinkage(np.cov(x.T, bias=True)[None], np.array([20.0]))[0]
    >>> bool(np.isclose(ours, oas(x)[1]))
    True
    """
    d = corr.shape[-1]
    if d == 1:
        return np.ones(len(corr))
    mu = np.trace(corr, axis1=1, axis2=2) / d
    alpha = np.mean(corr**2, axis=(1, 2))
    num = alpha + mu**2
    den = (n_samples + 1.0) * (alpha - mu**2 / d)
    with np.errstate(all="ignore"):
        rho = np.where(den > 0, num / den, 1.0)
    return np.clip(rho, 0.0, 1.0)


class JointModelDetector(Detector):
    """Base of the joint-Gaussian members: robust moments, a shrunk model refitted on a schedule, two statistics.

    Subclasses set :attr:`statistic` (``"t2"`` or ``"spe"``).

    Parameters
    ----------
    span : int
        Span of the exponentially weighted moments (``alpha = 2 / (span + 1)``;
        the first points are averaged equally).
    refit_every : int
        A stream refits its model every ``refit_every`` of its points.
    warmup : int
        Points before a stream may score above 0; its first model is fitted then.
    threshold : float
        Default flag threshold on the score.
    """

    statistic = "t2"
    #: State added after snapshots were first written: a snapshot without it restores with nothing held.
    snapshot_added = ("young_", "held_")

    def __init__(self, *, span: int = 2000, refit_every: int = 128, warmup: int = 64, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.span = int(span)
        self.refit_every = int(refit_every)

    def _allocate(self, n_streams, n_features):
        if self.span < 2 or self.refit_every < 1:
            raise ValueError("span must be at least 2 and refit_every at least 1")
        S, d = n_streams, n_features
        #: Points learned into the moments (the held ones count once they are judged).
        self.count_ = np.zeros(S, dtype=np.int64)
        #: A young stream's first points, held apart from the moments until judged; ``held_`` of them are.
        self.young_ = np.zeros((S, YOUNG, d))
        self.held_ = np.zeros(S, dtype=np.int64)
        self.mean_ = np.zeros((S, d))
        self.cov_ = np.zeros((S, d, d))
        self.schedule_ = RefitSchedule(first=max(self.warmup, 2), every=self.refit_every).reset(S)
        self.fitted_ = np.zeros(S, dtype=bool)
        self.centre_ = np.zeros((S, d))
        self.sd_ = np.ones((S, d))
        #: Eigenvectors of the correlation model, one per column, eigenvalues ascending.
        self.vectors_ = np.zeros((S, d, d), dtype=np.float32)
        self.vectors_[:, np.arange(d), np.arange(d)] = 1.0
        #: Shrunk eigenvalues (all > 0).
        self.values_ = np.ones((S, d))
        #: Components off the principal subspace: the first ``residual_`` (smallest) of each stream.
        self.residual_ = np.full(S, d, dtype=np.int64)
        self.ratio_ = np.ones(S)
        self.contributions_ = np.zeros((S, d), dtype=np.float32)
        from scipy import special

        self.clip_z2_ = float(special.chdtri(d, CLIP_P))  # chi2.isf(CLIP_P, d), without scipy.stats

    # -- scoring ----------------------------------------------------------
    def _score_and_learn(self, X, present):
        rows = np.flatnonzero(present)
        x = X[rows]
        z = self._standardise(rows, x)
        vectors = self.vectors_ if rows.size == self.n_streams_ else self.vectors_[rows]
        y = np.einsum("rdk,rd->rk", vectors, z)
        t2 = np.einsum("rk,rk->r", y * y, 1.0 / self.values_[rows])
        df, scale, raw, contributions = self._statistic(rows, vectors, z, y, t2)
        adjusted = raw / (scale * self.ratio_[rows])
        logp = chi2_logsf(adjusted, df)
        if self.statistic == "spe":
            # Q alone is blind along the principal directions: pair it with T² on them (the usual PCA
            # monitor), taking the rarer of the two with a Bonferroni factor.
            leading = self.n_features_ - self.residual_[rows]
            principal = np.arange(self.n_features_)[None, :] >= self.residual_[rows, None]
            t2_lead = np.einsum("rk,rk->r", np.where(principal, y * y, 0.0), 1.0 / self.values_[rows])
            lead_logp = np.where(leading > 0, chi2_logsf(t2_lead / self.ratio_[rows], np.maximum(leading, 1)), 0.0)
            logp = np.minimum(logp, lead_logp) + np.log(2.0)
        scores = np.zeros(self.n_streams_)
        fitted = self.fitted_[rows]
        scores[rows] = np.where(fitted, score_from_logp(logp), 0.0)
        self.contributions_[:] = 0.0
        self.contributions_[rows] = np.where(fitted[:, None], contributions, 0.0)
        # The median tracker learns from fitted streams only: before, z is measured from a placeholder.
        median = chi2_median(df)
        step = np.where(adjusted > median, MEDIAN_STEP, -MEDIAN_STEP)
        self.ratio_[rows] = np.where(fitted, np.clip(self.ratio_[rows] * np.exp(step), 0.25, 1e6), 1.0)
        self._learn(rows, x, np.where(fitted, t2 / self.ratio_[rows], np.nan))
        due = self.schedule_.advance(present)
        for start in range(0, due.size, _FIT_CHUNK):
            self._refit(due[start:start + _FIT_CHUNK])
        return scores

    def _standardise(self, rows, x):
        return np.clip(np.nan_to_num((x - self.centre_[rows]) / self.sd_[rows]), -Z_LIMIT, Z_LIMIT)

    def _statistic(self, rows, vectors, z, y, t2):
        """Return ``(df, scale, raw, contributions)``: the statistic, its law ``scale * chi2_df``, its split by field."""
        if self.statistic == "t2":
            weighted = np.einsum("rdk,rk->rd", vectors, y / self.values_[rows])
            return float(self.n_features_), 1.0, t2, z * weighted
        d = self.n_features_
        residual_mask = np.arange(d)[None, :] < self.residual_[rows, None]
        off = np.where(residual_mask, y, 0.0)
        resid = np.einsum("rdk,rk->rd", vectors, off)
        q = np.einsum("rk,rk->r", off, off)
        lam = np.where(residual_mask, self.values_[rows], 0.0)
        theta1, theta2 = lam.sum(axis=1), (lam**2).sum(axis=1)
        return theta1**2 / theta2, theta2 / theta1, q, resid**2

    def _youth(self) -> tuple[int, int]:
        """``(held, judge_at)``: how many first points a stream holds apart, and after how many points it judges them.

        The held points must be judged (and learned) before the first model is
        fitted, and while the moments still weigh their points equally (the
        first ``(span + 1) / 2``), where learning them late gives the moments
        learning them first would have; and against at least as many points as
        are held.  Settings too short for that (``warmup < 2 * YOUNG`` or
        ``span < 4 * YOUNG - 1``) hold nothing: the first points are learned as they come.
        """
        judge_at = min(JUDGE_AT, (self.span + 1) // 2, max(self.warmup, 2))
        return (YOUNG, judge_at) if judge_at >= 2 * YOUNG else (0, judge_at)

    def _learn(self, rows, x, distance2):
        """Learn the present points: a young stream's first ones are held apart, the others winsorised."""
        held, judge_at = self._youth()
        if held:
            young = self.count_[rows] + self.held_[rows] < held
            if young.any():
                self._hold(rows[young], x[young])
                rows, x, distance2 = rows[~young], x[~young], distance2[~young]
        self._learn_judged(rows, x, distance2)
        if held:
            waiting = rows[self.held_[rows] > 0]
            self._judge_youth(waiting[self.count_[waiting] + self.held_[waiting] >= judge_at])

    def _hold(self, rows, x):
        """Hold a young stream's point apart from its moments, to be judged once the stream has a spread."""
        slot = self.held_[rows]
        self.young_[rows, slot] = np.clip(x, -HELD_LIMIT, HELD_LIMIT)
        self.held_[rows] = slot + 1

    def _learn_judged(self, rows, x, distance2):
        """Learn the present points, each pulled back to the clip distance if it lies beyond it."""
        if rows.size == self.n_streams_:  # every stream: views, no copies of the covariances
            rows = slice(None)
        total = self.count_[rows] + self.held_[rows]
        mean = self.mean_[rows]
        var = np.diagonal(self.cov_[rows], axis1=1, axis2=2)
        centre = mean
        holding = np.flatnonzero(self.held_[rows] > 0)
        if holding.size:
            centre, var = mean.copy(), var.copy()
            centre[holding], var[holding], anchor = self._young_reference(
                holding if isinstance(rows, slice) else rows[holding])
        sd = floored(np.sqrt(var), centre)
        # The first few points (only where none are held) have no spread to judge them by: they are learned as
        # they come (only kept finite); later ones at most Z_LIMIT spreads from the mean, so products stay finite.
        limit = np.where(total < YOUNG, 1e100, Z_LIMIT)[:, None] * sd
        dev = np.clip(np.nan_to_num(x - centre), -limit, limit)
        # Before the first model a point is judged field by field against the running variances.
        distance2 = np.where(np.isnan(distance2), np.sum((dev / sd) ** 2, axis=1), distance2)
        weight = self._pull_back(distance2)
        dev *= np.where(total < YOUNG, 1.0, weight)[:, None]
        if holding.size:
            # Pulled in towards a centre the held points pool into, a point is kept between itself and the anchor
            # (which no held value drags), and learned as a deviation from the moments' own mean.
            h = holding
            own = np.clip(np.nan_to_num(x[h] - anchor), -limit[h], limit[h])
            pulled = np.clip(centre[h] - anchor + dev[h], np.minimum(own, 0.0), np.maximum(own, 0.0))
            dev[h] = np.where(weight[h, None] < 1.0, pulled, own) + (anchor - mean[h])
        self._add(rows, dev)

    def _pull_back(self, distance2):
        """The factor that pulls a point at squared distance ``distance2`` back to the clip distance (1 within it)."""
        return np.where(distance2 > self.clip_z2_, np.sqrt(self.clip_z2_ / np.maximum(distance2, 1e-300)), 1.0)

    def _young_reference(self, rows):
        """How a point of streams ``rows``, which hold points, is judged: ``(centre, variance, anchor)`` per field.

        The centre and variance are those of all earlier points, the held ones
        pooled in as they came (weighed equally, as the young moments weigh
        theirs): the point is judged as it would be had the stream learned
        them.  (Judged by a handful of later points, field by field in dozens
        of fields, most held points would be cut and the spread narrowed.)  But
        an absurd held value drags that centre, and a point pulled back towards
        it would carry the absurd value into the moments (in every field, when
        another field is what pulls it back).  So a pulled point is kept between
        itself and the ``anchor``, which no held value moves: the moments' own
        mean, or while they have fewer than :data:`YOUNG` points the held
        points' median (robust to one absurd value).
        """
        n, k = self.count_[rows][:, None], self.held_[rows][:, None]
        held = (np.arange(YOUNG)[None, :] < k)[:, :, None]
        young = self.young_[rows]
        mean = self.mean_[rows]
        var = np.diagonal(self.cov_[rows], axis1=1, axis2=2)
        centre = (n * mean + np.sum(np.where(held, young, 0.0), axis=1)) / (n + k)
        spread = n * (var + (mean - centre) ** 2) + np.sum(np.where(held, (young - centre[:, None]) ** 2, 0.0), axis=1)
        # Until the moments have YOUNG points, all YOUNG are held (a stream holds its first ones).
        anchor = np.where(n >= YOUNG, mean, np.median(young, axis=1))
        return centre, spread / (n + k), anchor

    def _judged_young(self, rows):
        """The held points ``(r, YOUNG, d)`` of streams ``rows`` as the moments of the points after them judge them now.

        Each is judged field by field, as any point before the first model is,
        and pulled back to the clip distance if it lies beyond it: what
        winsorising would have learned, had the stream then had the spread it
        has now.
        """
        mean = self.mean_[rows]
        var = np.diagonal(self.cov_[rows], axis1=1, axis2=2)
        sd = floored(np.sqrt(var), mean)[:, None, :]
        young = self.young_[rows]
        dev = np.clip(young - mean[:, None, :], -Z_LIMIT * sd, Z_LIMIT * sd)
        distance2 = np.sum((dev / sd) ** 2, axis=2)
        weight = self._pull_back(distance2)
        return np.where(weight[:, :, None] < 1.0, mean[:, None, :] + weight[:, :, None] * dev, young)

    def _judge_youth(self, rows):
        """Learn the held points of streams ``rows``, in the order they came, as the points after them judge them."""
        if rows.size == 0:
            return
        learned = self._judged_young(rows)
        for slot in range(YOUNG):  # at most YOUNG passes, each over all the streams judged on this tick
            take = self.held_[rows] > slot
            self._add(rows[take], learned[take, slot] - self.mean_[rows[take]])
        self.held_[rows] = 0

    def _add(self, rows, dev):
        """Learn one point into the moments of each stream ``rows``, given as its deviation from the stream's mean."""
        n = self.count_[rows]
        alpha = np.maximum(1.0 / (n + 1.0), 2.0 / (self.span + 1.0))[:, None]
        self.mean_[rows] = self.mean_[rows] + alpha * dev
        a3 = alpha[:, :, None]
        outer = dev[:, :, None] * dev[:, None, :]
        outer *= a3
        if isinstance(rows, slice):  # in place: the (S, d, d) covariances are the bulk of the work
            self.cov_ += outer
            self.cov_ *= 1.0 - a3
        else:
            self.cov_[rows] = (1.0 - a3) * (self.cov_[rows] + outer)
        self.count_[rows] = n + 1

    def _refit(self, rows):
        if rows.size == 0:
            return
        d = self.n_features_
        mean, cov = self.mean_[rows], self.cov_[rows]
        var = np.diagonal(cov, axis1=1, axis2=2)
        sd = floored(np.sqrt(np.maximum(var, 0.0)), mean)
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        flat = var <= sd**2 * 0.5  # a constant field: no correlation to learn, unit variance
        corr = np.where(flat[:, :, None] | flat[:, None, :], 0.0, corr)
        corr[:, np.arange(d), np.arange(d)] = 1.0
        # Effective sample size of the weights, capped by the points seen.
        alpha = 2.0 / (self.span + 1.0)
        n_eff = np.minimum(self.count_[rows], (2.0 - alpha) / alpha)
        rho = oas_shrinkage(corr, n_eff)
        with _BLAS.limit(limits=1, user_api="blas"):
            raw_values, vectors = np.linalg.eigh(corr)
        values = (1.0 - rho[:, None]) * np.maximum(raw_values, 0.0) + rho[:, None]
        # Leading components (largest, at the end) that explain VARIANCE_KEPT of the trace; Q reads the rest.
        kept_share = np.cumsum(values[:, ::-1], axis=1) / values.sum(axis=1, keepdims=True)
        leading = np.minimum(np.argmax(kept_share >= VARIANCE_KEPT, axis=1) + 1, d - 1)
        self.centre_[rows] = mean
        self.sd_[rows] = sd
        self.vectors_[rows] = vectors
        self.values_[rows] = values
        self.residual_[rows] = d - leading
        self.fitted_[rows] = True

    # -- explanations -----------------------------------------------------
    def field_contributions(self):
        return self.contributions_.astype(np.float64)

    def expected_range(self):
        k = z_multiplier(self.threshold, 1)
        centre, sd = self.centre_, self.sd_
        low, high = centre - k * sd, centre + k * sd
        unfitted = ~self.fitted_[:, None]
        return np.where(unfitted, np.nan, low), np.where(unfitted, np.nan, high)


@register
class HotellingDetector(JointModelDetector):
    """Hotelling's T² of each point under a robust, shrunk, exponentially weighted covariance of its stream.

    See :mod:`detectors.multivariate`.  :meth:`field_contributions` gives the
    partial contributions ``z_j (R^-1 z)_j`` of the last tick.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=600)
    >>> x = np.column_stack([a, a + 0.1 * rng.normal(size=600), rng.normal(size=600)])
    >>> x[500] = [1.5, -1.5, 0.0]          # each field ordinary, their relation broken
    >>> det = HotellingDetector()
    >>> s = det.score_series(x)
    >>> int(np.argmax(s)), bool(s[500] > 0.75), bool(np.median(s[100:]) < 0.1)
    (500, True, True)
    >>> x[599] = [0.0, 0.0, 9.0]
    >>> s = det.score_series(x)
    >>> int(np.argmax(det.field_contributions()[0]))   # field 2 made the last point anomalous
    2
    """

    name = "hotelling"
    statistic = "t2"


@register
class PCAResidualDetector(JointModelDetector):
    """Squared distance of each point from its stream's principal subspace (Q, SPE), with T² inside it.

    The score is the rarer of Q and Hotelling's T² on the leading components
    (times 2), the usual pair of PCA monitoring charts: Q catches a point
    that breaks the fields' relations, T² one that moves far along them.
    See :mod:`detectors.multivariate`.  :meth:`field_contributions` gives each
    field's squared residual on the last tick.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> f = rng.normal(size=(800, 2))
    >>> x = f @ rng.normal(size=(2, 8)) + 0.05 * rng.normal(size=(800, 8))
    >>> x[700, 3] += 1.0                   # one field leaves the plane the others lie in
    >>> det = PCAResidualDetector()
    >>> s = det.score_series(x)
    >>> int(np.argmax(s)), bool(s[700] > 0.75)
    (700, True)
    """

    name = "pca_residual"
    statistic = "spe"
