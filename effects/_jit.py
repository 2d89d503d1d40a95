"""Compiled per-pixel kernels: the one decorator every fused loop in ``effects`` uses.

Why
---
A chain of numpy operations walks the whole frame once per operation and allocates a
temporary for each: on a 12 MP float32 frame one such pass costs about 17 ms here, and a
camera pipeline written that way spends most of its time moving memory, not computing
(``benchmarks/develop.py``). A loop compiled by Numba (LLVM) does the whole chain for a
pixel while it is in a register: one pass, no temporaries.

How
---
``kernel`` is ``numba.njit`` with three fixed choices:

- ``nogil=True``: the strip loops of :mod:`effects._bands` call kernels from several
  threads at once, so a kernel must release the GIL to use every core. Kernels are never
  ``parallel=True``: threading stays with ``effects._bands`` (which follows
  ``cv2.getNumThreads()``, and so camseg's one-thread batch workers), and Numba's own
  workqueue layer cannot be entered from two threads at once.
- ``cache=True``: the machine code is kept beside the module (``__pycache__``, or Numba's
  per-user cache where the package folder is read-only), so the compile cost (about a second
  a kernel) is paid once per installation, not once per process.
- ``error_model="numpy"``: a division by zero gives inf/nan as numpy does, instead of a
  Python exception check on every division.

No ``fastmath``: results must not depend on how a frame is cut into strips, and
reassociated sums would.

Kernels take float32 C-contiguous arrays and write into an output the caller allocates; one
dtype/layout each, so each compiles once.
"""

from __future__ import annotations

import numba

__all__ = ["kernel"]


def kernel(fn):
    """Compile ``fn`` as a GIL-free, disk-cached Numba kernel (see the module docstring)."""
    return numba.njit(fn, nogil=True, cache=True, error_model="numpy")
