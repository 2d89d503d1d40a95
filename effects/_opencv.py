"""Small OpenCV stand-ins for numpy calls that are slow on frame-sized float32 arrays."""

from __future__ import annotations

import cv2
import numpy as np


def image_view(x: np.ndarray) -> np.ndarray:
    """A 2-D view of the C-contiguous ``x`` (a copy for other layouts) that OpenCV reads as a
    one-channel image: its rows, each flattened.

    Never a single column: beside a number OpenCV reads an N×1 array as an N-vector (a
    ``Scalar``), and raises or computes something else; and a number on a 3-channel array is
    (v, 0, 0, 0). (A single value is 1×1 either way; callers that clip one handle it apart.)
    """
    flat = x.reshape(x.shape[0] if x.ndim > 1 else 1, -1)
    return flat if flat.shape[1] > 1 else x.reshape(1, -1)


def clip01(x: np.ndarray, dst: "np.ndarray | None" = None) -> np.ndarray:
    """``np.clip(x, 0, 1, out=dst)`` for float32 arrays, in OpenCV; ``dst`` None = in place.

    ``x``: float32, C-contiguous rows (any number of channels); ``dst``: C-contiguous, the same
    shape (``x`` itself is fine). Several times faster than ``np.clip``. Done on
    :func:`image_view` views.
    """
    if dst is None:
        dst = x
    x2, d2 = image_view(x), image_view(dst)  # d2 a view (x2 one if x is contiguous)
    cv2.max(x2, 0.0, dst=d2)
    cv2.min(d2, 1.0, dst=d2)
    return dst
