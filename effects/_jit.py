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
dtype/layout each, so each compiles once (:func:`read_only_contiguous` gives mattes one
signature whatever their origin). Small helpers that kernels call are :func:`inline`, and
:func:`fma` writes out a fused multiply-add where a kernel must round as OpenCV's SIMD code
does.

Numba keys a kernel's disk cache on the kernel's own file and bytecode: a kernel would keep
its cached code when a helper it inlines from another file changed (a ``pip install`` of a
new version included: the cache outlives the files). So the helpers that kernels of several
modules call live here (:func:`clamp01`, :func:`lerp_at`, :func:`fma`), and every kernel's
cache entries are keyed on this file's content too (:func:`_hardened`). A kernel must not
call a kernel of another effects module.

Where no folder can hold the cache (a read-only installation without a writable home
folder or ``NUMBA_CACHE_DIR``), kernels are compiled without it, in every process, with one
warning; a cache that cannot be written (a full disk) is skipped, and a damaged one read as
a miss (:func:`_hardened`). Caches to clear by hand, should that ever be needed:
``find effects camseg -name '*.nb[ic]' -delete``, and ``NUMBA_CACHE_DIR`` or
``~/.cache/numba`` where those are used.

A read-only image compiles a second version of a kernel (writability is part of Numba's
argument types), once.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import warnings
from pathlib import Path

import numba
import numpy as np
from numba.core import types as nb_types
from numba.core.dispatcher import Dispatcher
from numba.extending import intrinsic

__all__ = ["cached_kernel_share", "clamp01", "fma", "inline", "kernel", "lerp_at", "read_only_contiguous"]


def kernel(fn):
    """Compile ``fn`` as a GIL-free, disk-cached Numba kernel (see the module docstring)."""
    return _njit(fn, nogil=True)


def inline(fn):
    """A helper that kernels call, compiled into each caller's body (Numba's
    ``inline="always"``) so that the caller's loop stays one body LLVM can vectorise; callable
    from Python too, one value at a time (the tests do)."""
    return _njit(fn, inline="always")


def _njit(fn, **options):
    """``numba.njit`` with the disk cache (:func:`_hardened`), or without it where no folder can
    hold it."""
    try:
        return _hardened(numba.njit(fn, cache=True, error_model="numpy", **options))
    except RuntimeError as exc:  # "cannot cache function ...: no locator available for file ..."
        if "cannot cache" not in str(exc):
            raise
        _warn_uncached()
        return numba.njit(fn, error_model="numpy", **options)


# The kernels inline the helpers of this file: their cache entries are keyed on its content too.
_HELPERS_DIGEST = "effects._jit " + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _hardened(compiled):
    """``compiled`` (a Numba dispatcher) with three changes to its disk cache, as instance
    attributes over Numba's private methods (where those are missing, the cache stays Numba's):

    - its entries are keyed on this file's content too (:data:`_HELPERS_DIGEST`): Numba keys a
      kernel on its own file and bytecode only, so an upgrade that changed only a helper here
      kept the kernels' stale machine code (a changed ``clamp01`` went unseen by portrait_blur);
    - a cache that cannot be written (a full disk, a quota) is skipped with a warning: every
      photo failed with "No space left on device";
    - a damaged cache file reads as a miss (compiled again, then overwritten): every later run
      failed with an UnpicklingError until the file was deleted by hand.
    """
    cache = getattr(compiled, "_cache", None)
    if not all(callable(getattr(cache, name, None)) for name in ("_index_key", "load_overload", "save_overload")):
        return compiled
    index_key, load, save = cache._index_key, cache.load_overload, cache.save_overload

    def keyed_on_helpers(sig, codegen):
        return index_key(sig, codegen) + (_HELPERS_DIGEST,)

    def load_or_miss(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception:  # noqa: BLE001 (a damaged file, whatever its damage: compile again)
            return None

    def save_or_skip(sig, data):
        try:
            try:
                save(sig, data)
            except OSError:
                raise
            except Exception:  # noqa: BLE001 (a damaged index, which saving reads first: start it anew)
                Path(cache._cache_file._index_path).unlink(missing_ok=True)
                save(sig, data)
        except OSError as exc:
            _warn_unwritable(exc.strerror or str(exc))

    cache._index_key, cache.load_overload, cache.save_overload = keyed_on_helpers, load_or_miss, save_or_skip
    return compiled


@functools.cache  # said once a process per reason
def _warn_unwritable(reason: str) -> None:
    warnings.warn(f"camseg's image kernels could not be saved to Numba's disk cache ({reason}); they "
                  "stay compiled for this process only. Free space, or set NUMBA_CACHE_DIR to a writable "
                  "folder.", RuntimeWarning, stacklevel=2)


@functools.cache  # said once a process, at the first kernel
def _warn_uncached() -> None:
    warnings.warn("camseg's image kernels cannot be cached on disk (no writable folder: the package's "
                  "is read-only and so is the home folder); each process compiles them, 15-25 s. Set "
                  "NUMBA_CACHE_DIR to a writable folder to keep them.", RuntimeWarning, stacklevel=4)


def cached_kernel_share(modules) -> "float | None":
    """The share of the kernels of ``modules`` (module names, e.g. ``"effects.denoise"``;
    imported ones only) that have machine code in Numba's disk cache for this machine and this
    source: 0.0 on a new installation, near 1 once a run has used them (a kernel for a path
    not yet taken, e.g. a 16-bit PNG's, stays uncached until then).

    A low share means the next calls compile: on a new installation a first ``develop`` took
    16 s more than the next (once; the cache then serves every process), which a command
    should say rather than look stuck. None where the cache cannot be read (Numba's cache
    internals, which this reads, changed) or ``modules`` has no cached kernels.
    """
    kernels = [obj for name in modules if name in sys.modules for obj in vars(sys.modules[name]).values()
               if isinstance(obj, Dispatcher) and obj.py_func.__module__ == name
               and obj.targetoptions.get("inline") != "always"]  # (inline helpers never compile alone)
    try:
        machine = numba.core.registry.cpu_target.target_context.codegen().magic_tuple()
        cached = [any(key[1] == machine and key[-1] == _HELPERS_DIGEST for key in k._cache._cache_file._load_index())
                  for k in kernels if k._can_compile and k._cache is not None]  # (for this CPU: a cache made on
        # another machine, e.g. in a container image, compiles again)
    except Exception:  # noqa: BLE001 (private API of Numba: any change means "unknown")
        return None
    return sum(cached) / len(cached) if cached else None


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` of floats of one type, rounded once (LLVM's ``fma``, the CPU's fused
    multiply-add). Written out, not left to ``fastmath``: the result is fixed by the code,
    whatever the strips; and it is how OpenCV's SIMD ``scaleAdd`` and 3×3 ``transform``
    compute (``transform`` is ``fma(x0, m0, fma(x1, m1, x2 m2))`` in its AVX2 path), so a
    kernel can equal an OpenCV chain bit for bit where OpenCV takes that path (its SIMD path
    follows the CPU: on an AVX-512 machine some 3×3 transforms differed in the last bit)."""
    if not (a == b == c and isinstance(a, nb_types.Float)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


if numba.config.DISABLE_JIT:  # Numba's debugging switch: kernels run as Python, where an intrinsic cannot
    def fma(a, b, c):  # noqa: F811 (the same rounding for float32, but for a rare double rounding)
        """``a * b + c`` in float64, rounded to ``a``'s type (NUMBA_DISABLE_JIT only)."""
        return type(a)(np.float64(a) * np.float64(b) + np.float64(c))


def read_only_contiguous(matte: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous view of ``matte`` (a copy only if it is not C-contiguous).

    Numba compiles one version of a kernel per argument type, and writability is part of the
    type: mattes passed this way (writable or not where they come from) share one compiled
    signature instead of one per mix.
    """
    view = np.ascontiguousarray(matte).view()
    view.flags.writeable = False
    return view


@inline
def lerp_at(row, next_row, frac, j):
    """Value ``j`` of one output row of a :meth:`effects.mask_refine.RowUpsampler.lerp_rows` strip, float32.

    For output row ``r``: ``row, next_row = rows[idx[r]], rows[idx[r] + 1]`` and
    ``frac = frac[r]`` (taken once a row). ``row + frac·(next_row − row)`` in that order, as
    ``cv2.subtract`` and ``cv2.scaleAdd`` do: the value :meth:`effects.mask_refine.RowUpsampler.__call__` writes there.
    """
    return row[j] + frac * (next_row[j] - row[j])


@inline
def clamp01(v):
    """``v`` clipped to [0, 1] (float32 in, float32 out), as :func:`effects._opencv.clip01` does.

    Comparisons, not ``min``/``max``: Numba's builtins carry NaN handling that keeps a
    kernel's loop from being vectorised (4× slower measured). NaN gives 0.
    """
    v = v if v > np.float32(0.0) else np.float32(0.0)
    return v if v < np.float32(1.0) else np.float32(1.0)
