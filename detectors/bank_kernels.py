"""Compiled kernels of the streaming step: one tick of a bank's ``S`` streams, a loop over the rows.

Each kernel does, row after row, what a member's numpy step does to the
whole bank in several array passes (see :mod:`detectors.streaming` for when
they run), with the same comparisons and the same arithmetic in the same
order, so the state and scores are the numpy code's;
``tests/detectors/test_bank_kernels.py`` holds them equal.  Compiled by
:func:`detectors.kernels.compiled` (numba on first call, ``nogil``,
cached), and by :func:`detectors.kernels.warm_up` at install.
"""
from __future__ import annotations

import numpy as np

from .kernels import compiled

__all__ = ["sorted_pushes"]


@compiled
def sorted_pushes(values, count, new, leaving, present):
    """:meth:`detectors.window.SortedWindow.push`: insert ``new[r]`` and drop ``leaving[r]`` in every present row.

    ``values`` ``(R, W)`` sorted rows (+inf in unused slots) and ``count``
    ``(R,)`` are updated in place; ``leaving`` is NaN where nothing leaves.
    The slots are found by the same counts as the numpy code's, and the
    values between them move one place towards the gap.
    """
    R, W = values.shape
    for r in range(R):
        if not present[r]:
            continue
        old = leaving[r]
        if old != old:
            old = np.inf
        x = new[r]
        remove_at, below = 0, 0
        for j in range(W):
            v = values[r, j]
            if v < old:
                remove_at += 1
            if v < x:
                below += 1
        insert_at = below - (1 if old < x else 0)
        if insert_at < remove_at:
            for j in range(min(remove_at, W - 1), max(insert_at, 0), -1):
                values[r, j] = values[r, j - 1]
        elif remove_at < insert_at:
            for j in range(remove_at, min(insert_at, W - 1)):
                values[r, j] = values[r, j + 1]
        if 0 <= insert_at < W:
            values[r, insert_at] = x
        count[r] = min(count[r] + 1, W)
