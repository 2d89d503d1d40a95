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

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import cv2

__all__ = ["run_in_row_bands", "run_strips"]

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
