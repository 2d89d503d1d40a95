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

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import cv2

__all__ = ["run_in_row_bands"]

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
