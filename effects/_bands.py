"""Row bands of a frame processed concurrently (private helper of the strip-wise effects).

Why: the effects walk a 12 MP frame in cache-sized strips of numpy and OpenCV
calls. Each call releases the GIL, but a single strip loop keeps only one core
busy between OpenCV's own (short) parallel sections. Splitting the rows into one
contiguous band per allowed thread, each walked by its own strip loop with its
own buffers, uses every core. The thread count follows ``cv2.getNumThreads()``,
so a caller that limits OpenCV (e.g. camseg's batch workers, one per core) also
limits this.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import cv2
import numpy as np

__all__ = ["column_runs", "later", "run_in_row_bands", "run_strips", "side_thread"]

#: Fewer pixels than this per band and the threads cost more than they save.
MIN_BAND_PIXELS = 1 << 19


def run_in_row_bands(process_rows: Callable[[int, int], None], height: int, width: int, *,
                     align: int = 1) -> None:
    """Call ``process_rows(y0, y1)`` on contiguous row bands covering ``[0, height)``, concurrently.

    Parameters
    ----------
    process_rows : callable
        Processes rows ``y0 <= y < y1`` completely (its own buffers; it writes
        only those rows of its outputs). Called once per band, from different
        threads; the first band runs in the calling thread.
    height, width : int
        Frame size (the width only decides whether splitting is worth it).
    align : int
        Band boundaries fall on multiples of this (e.g. a strip height).

    Raises
    ------
    Exception
        Whatever a band raised (the first one, after every band has finished).
    """
    bands = max(1, min(cv2.getNumThreads(), (height * width) // MIN_BAND_PIXELS, height // max(1, align)))
    if bands == 1:
        process_rows(0, height)
        return
    step = -(-height // (bands * align)) * align  # ceil to a multiple of align
    bounds = [(y, min(height, y + step)) for y in range(0, height, step)]
    with ThreadPoolExecutor(max_workers=len(bounds) - 1) as pool:
        futures = [pool.submit(process_rows, y0, y1) for y0, y1 in bounds[1:]]
        try:
            process_rows(*bounds[0])
        finally:
            for f in futures:
                f.exception()  # wait for every band before anything is raised or returned
        for f in futures:
            f.result()


def run_strips(process_strip: Callable[[int], None], starts: range, height: int, width: int) -> None:
    """Call ``process_strip(s)`` for every ``s`` in ``starts``, each thread taking the next strip as it comes free.

    Use this instead of :func:`run_in_row_bands` when the work per row is uneven (it follows
    a skin matte, say: 30 % / 70 % between the halves of a 12 MP portrait), which fixed
    bands would leave mostly to one thread. Each strip must write only its own rows, so the
    result does not depend on which thread ran it.

    Parameters
    ----------
    process_strip : callable
        Processes the strip starting at row (or block row) ``s`` completely.
    starts : range
        Strip starts; its step is the strip height.
    height, width : int
        Extent the strips cover (decides, as for :func:`run_in_row_bands`, how many threads).
    """
    queue, lock = iter(starts), threading.Lock()

    def band(_y0: int, _y1: int) -> None:
        while True:
            with lock:
                s = next(queue, None)
            if s is None:
                return
            process_strip(s)

    run_in_row_bands(band, height, width, align=max(1, starts.step))


def column_runs(mask: np.ndarray, bridge: int) -> list[tuple[int, int]]:
    """Runs ``[(c0, c1), ...]`` of the columns of ``mask`` where some row is set, runs apart by
    at most ``bridge`` empty columns merged into one.

    For strip loops whose per-pixel work only matters where a mask is set (a subject's edges,
    skin): the work covers the runs, not the span from the first to the last set column,
    while close runs stay one (each run costs a handful of calls; a few extra columns cost
    less than those).

    Parameters
    ----------
    mask : np.ndarray
        2-D bool or uint8 (rows × columns; strided rows are fine).
    bridge : int
        Most empty columns between two set ones that still join their runs. >= 0.
    """
    cols = np.flatnonzero(cv2.reduce(mask.view(np.uint8), 0, cv2.REDUCE_MAX).ravel())  # any over rows
    if cols.size == 0:
        return []
    cut = np.flatnonzero(np.diff(cols) > bridge + 1)
    return list(zip(np.r_[cols[0], cols[cut + 1]].tolist(), np.r_[cols[cut] + 1, cols[-1] + 1].tolist()))


@contextlib.contextmanager
def side_thread(height: int, width: int):
    """A one-worker thread pool for steps that can run beside the calling thread's (single-
    threaded numpy/OpenCV phases that would leave a core idle), or None where a thread would
    not pay: OpenCV limited to one thread (e.g. camseg's batch workers, one per core), or a
    frame under ``MIN_BAND_PIXELS``. On exit it waits for the steps started and drops the
    others (an early return leaves some unused). Use with :func:`later`.
    """
    if cv2.getNumThreads() <= 1 or height * width < MIN_BAND_PIXELS:
        yield None
        return
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _OnDemand:
    """``fn(*args)`` computed when its result is first asked for (the no-thread stand-in of a Future)."""

    def __init__(self, fn, *args):
        self._call, self._done, self._value = (fn, args), False, None

    def result(self):
        if not self._done:
            fn, args = self._call
            self._value, self._done = fn(*args), True
        return self._value


def later(pool: "ThreadPoolExecutor | None", fn, *args) -> "Future | _OnDemand":
    """``fn(*args)`` started on ``pool``'s thread (see :func:`side_thread`), or computed when its
    ``result()`` is first asked for when there is no pool."""
    return pool.submit(fn, *args) if pool is not None else _OnDemand(fn, *args)
