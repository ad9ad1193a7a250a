"""Which code a bank's streaming step runs: compiled kernels over the bank's rows, or the numpy code they mirror.

A tick of the engine steps each bank (``Detector.step`` over its ``S``
streams) once.  In numpy that is a few dozen array operations per member,
each holding the GIL between its loops, and some of them (a sorted window's
insertion, a tree walk, a LOF neighbourhood) several passes over arrays a
loop over the rows does in one.  So the heavy members step their bank in
compiled kernels (:mod:`detectors.bank_kernels`, and the fast path's own
kernels of :mod:`detectors.kernels` where one already does a bank's work),
which release the GIL: two banks stepped on two threads use two cores.

The numpy code stays, as the reference the kernels are held equal to
(``tests/detectors/test_bank_kernels.py`` steps banks both ways and compares
every score and learned array), and it runs inside :func:`numpy_steps`.
"""
from __future__ import annotations

import contextlib

__all__ = ["compiled_steps", "numpy_steps"]

_numpy_only = 0


def compiled_steps() -> bool:
    """Whether a bank's step may run compiled kernels now (True unless inside :func:`numpy_steps`)."""
    return _numpy_only == 0


@contextlib.contextmanager
def numpy_steps():
    """Step banks with the numpy reference code while inside (for tests and comparisons; not thread-local)."""
    global _numpy_only
    _numpy_only += 1
    try:
        yield
    finally:
        _numpy_only -= 1
