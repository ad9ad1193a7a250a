"""One BLAS thread for a block's small matrix products.

A wide block's products are small (the embedding's projection of a few
thousand rows on 14 directions, a zscore window's first solves): OpenBLAS
splits them over every core, and its threads spin while they wait for work.
On a machine whose cores are busy with other work (the server's ticks,
other processes) that waiting costs more CPU time than the split saves in
wall time (measured on the default ensemble's 38-field block: see the
README's fast-path section).  One thread computes every row with the same
kernel, so the numbers do not change (the ensemble's scores, flags and
alerts were equal bit for bit at 8 and 38 fields).
"""
from __future__ import annotations

import contextlib
import functools


@functools.lru_cache(maxsize=None)
def _controller():
    # Imported here, not with the package: threadpoolctl inspects the loaded libraries when created.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread(wanted: bool = True):
    """A context in which BLAS runs on one thread (``wanted``), or a context that changes nothing."""
    if not wanted:
        return contextlib.nullcontext()
    return _controller().limit(limits=1, user_api="blas")
