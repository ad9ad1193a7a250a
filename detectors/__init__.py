"""Online, causal anomaly detectors that score many streams per tick in one vectorised step.

Importing the package registers every detector: ``detectors.REGISTRY`` maps
names to classes and ``detectors.make(name)`` builds one.
"""
from .base import Detector, NotResetError
from .registry import REGISTRY, make, register
from . import zscore, iqr, mad, moving_average  # noqa: E402,F401  (each registers itself)
from . import isolation_forest, lof, pattern  # noqa: E402,F401
from . import multivariate, seasonal, discord  # noqa: E402,F401  (hotelling, pca_residual; seasonal; discord)
from . import ensemble  # noqa: E402,F401  (last: its members must be registered)

__all__ = ["Detector", "NotResetError", "REGISTRY", "make", "register"]
