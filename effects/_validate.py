"""Argument checks shared by the effects (private).

Every effect validates its public arguments the same way (DESIGN.md §4: real
exceptions whose message names the argument, what was expected, what was given
and the fix), so the checks live here once instead of once per module.

A pipeline that made or already checked an array can vouch for its range (:func:`vouch`,
inside :func:`vouched_ranges`): the next effect's check then skips reading it again. camseg's
develop does, for its stage outputs (clipped by :func:`clip_unit_in_place`, which finds the
range in the same pass) and its mattes; a public call outside such a block checks everything.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import typing
import weakref
from dataclasses import fields

import cv2
import numpy as np

from ._bands import run_in_row_bands

__all__ = ["ParamTypeError", "check_image", "check_mask", "check_field_types", "clip_unit_in_place", "min_max", "resize",
           "vouch", "vouched_memo", "vouched_ranges"]

# Ranges vouched for by a caller that made or already checked an array (camseg's develop: its
# stage outputs and mattes), so that the next effect's check need not read 12 MP frames again.
# None outside a vouched_ranges() block: public calls check everything, as they always did.
_VOUCHED: contextvars.ContextVar = contextvars.ContextVar("effects_vouched_ranges", default=None)


@contextlib.contextmanager
def vouched_ranges():
    """A scope inside which :func:`vouch` records arrays' ranges for the checks to reuse.

    Why: a pipeline that clipped a stage's output (and so knows its minimum and maximum) or
    validated a matte once, hands them to the next stages, each of which checked the whole
    array again (on a 12 MP develop, four frame and ten matte scans: about 0.1 s). The record
    is per thread (a context variable) and ends with the block.
    """
    token = _VOUCHED.set({})
    try:
        yield
    finally:
        _VOUCHED.reset(token)


def vouch(array: np.ndarray, lo: float, hi: float) -> None:
    """Record that ``array`` (this very object) is finite with minimum ``lo`` and maximum ``hi``.

    Only inside :func:`vouched_ranges` (elsewhere it does nothing). The caller promises that
    nothing writes into ``array`` while it lives in the block: the checks then take the range
    from here instead of reading the array. Non-finite or NaN bounds are not recorded. The
    record holds the array weakly: a stage's output is freed when the pipeline drops it, as
    before (holding them kept four 12 MP frames alive to the end of a develop).
    """
    book = _VOUCHED.get()
    if book is not None and math.isfinite(lo) and math.isfinite(hi):
        book[id(array)] = (weakref.ref(array), float(lo), float(hi), {})


def vouched_memo(array: np.ndarray, key, compute):
    """``compute()``, computed once per vouched ``array`` and hashable ``key`` inside the block.

    For a measurement of an array that two callers need (tone_map_people's dim-photo lift, and
    develop's report of it): the second gets the first's value. Outside a
    :func:`vouched_ranges` block, or for an array not vouched for, ``compute()`` every time.
    """
    entry = _vouched_entry(array)
    if entry is None:
        return compute()
    memos = entry[3]
    if key not in memos:
        memos[key] = compute()
    return memos[key]


def _vouched_entry(array):
    book = _VOUCHED.get()
    if book:
        entry = book.get(id(array))
        # The weak reference tells this array from a later one that took a freed one's id.
        if entry is not None and entry[0]() is array:
            return entry
    return None


def _vouched_range(array) -> "tuple[float, float] | None":
    entry = _vouched_entry(array)
    return None if entry is None else (entry[1], entry[2])


def check_image(image, name: str = "image", *, check_range: bool = False, return_range: bool = False):
    """Validate an H×W×3 float linear-RGB image and return it as float32.

    Parameters
    ----------
    image : np.ndarray
        H×W×3 float (any float dtype) linear RGB, nominally in [0, 1].
    name : str
        Argument name used in error messages.
    check_range : bool
        Also reject values outside [0, 1] (1e-4 tolerance for rounding).
    return_range : bool
        Also return the image's minimum and maximum (found with the finiteness
        check, in one pass split over OpenCV's threads: callers that clip or
        scale by them need no pass of their own).

    Returns
    -------
    np.ndarray or (np.ndarray, float, float)
        ``image`` as C-ordered float32 (no copy if it already is one): callers that
        write must copy. With ``return_range``, ``(image, min, max)``.

    Raises
    ------
    TypeError
        Not a numpy array, or not a float dtype.
    ValueError
        Wrong shape, NaN/inf, or (``check_range``) values outside [0, 1].
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array (float32 H×W×3 linear RGB in [0, 1]), got "
                        f"{type(image).__name__}. Decode files with camseg.io.read_image first.")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name}: expected shape H×W×3, i.e. shape (H, W, 3) linear RGB with H, W >= 1, got "
                         f"{image.shape}. Drop alpha / repeat grey to 3 channels first.")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{name}: expected a float array (linear RGB in [0, 1]), got dtype {image.dtype}. "
                        "Convert integer (sRGB-encoded) pixels with camseg.io.as_linear_rgb first.")
    # C order: OpenCV takes a Fortran-ordered or channel-first view for a layout it cannot
    # write into (portrait_blur crashed on one); a copy only for such views.
    img = np.ascontiguousarray(image, dtype=np.float32)
    known = _vouched_range(image) if img is image else None
    if known is not None:  # made or checked by the caller (see vouch): finite, this range
        lo, hi = known
        finite = True
    elif check_range or return_range:
        lo, hi = min_max(img)  # min/max propagate NaN and show inf: one pass for both checks
        finite = math.isfinite(lo) and math.isfinite(hi)
    else:
        finite = bool(np.isfinite(img).all())
    if not finite:
        raise ValueError(f"{name}: contains NaN or infinite values; expected finite linear RGB in [0, 1]. "
                         "Clean or clip the input first.")
    if check_range and (lo < -1e-4 or hi > 1.0 + 1e-4):
        raise ValueError(f"{name}: expected linear RGB in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; clip or rescale it.")
    return (img, lo, hi) if return_range else img


def clip_unit_in_place(img: np.ndarray) -> tuple[float, float]:
    """Clip a C-contiguous float32 H×W or H×W×C array into [0, 1] in place and return its
    range afterwards, ``(min, max)`` (NaN propagates into both, and stays in the array).

    One pass over memory for what ``np.clip`` and a later check's min/max read twice.
    """
    return min_max(img, clip=True)


def min_max(img: np.ndarray, *, clip: bool = False) -> tuple[float, float]:
    """``(img.min(), img.max())`` of an H×W×C array; NaN propagates into both, inf shows.

    One read of the image instead of two: row chunks small enough to stay in cache between
    their min and their max, the rows split over OpenCV's threads (effects._bands). With
    ``clip``, each chunk is first clipped into [0, 1] in place (``img`` C-contiguous, writeable).
    """
    h, w = img.shape[:2]
    rows = max(1, (1 << 18) // max(1, img[0].size))  # ~1 MB of float32 per chunk
    found = []

    def scan(y0: int, y1: int) -> None:
        for r0 in range(y0, y1, rows):
            chunk = img[r0:min(y1, r0 + rows)]
            lo, hi = chunk.min(), chunk.max()
            if clip and not (lo >= 0.0 and hi <= 1.0):  # (NaN too: np.clip clips around it)
                # Written only where needed: a stage's output is mostly in range already, and
                # an unwritten chunk costs half the memory traffic.
                np.clip(chunk, 0.0, 1.0, out=chunk)
                lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)  # (clipping is monotonic)
            found.append((lo, hi))  # list.append is atomic: bands may share it

    run_in_row_bands(scan, h, w, align=rows)
    both = np.array(found, np.float32)  # np.min/np.max propagate NaN (Python's min() would not)
    return float(both[:, 0].min()), float(both[:, 1].max())


def check_mask(mask, name: str, shape: tuple[int, int], *, allow_none: bool = False,
               allow_stack: bool = False, tol: float = 1e-5) -> np.ndarray | None:
    """Validate a soft matte the size of the image and return it as float32 (read-only).

    Parameters
    ----------
    mask : np.ndarray or None
        H×W (or H×W×N when ``allow_stack``) float or bool matte in [0, 1].
    name : str
        Argument name used in error messages.
    shape : tuple of int
        The image's (H, W).
    allow_none : bool
        Accept ``None`` (an optional mask) and return ``None``.
    allow_stack : bool
        Also accept an H×W×N stack (one matte per person); it is returned as is.
    tol : float
        Values in [-tol, 1 + tol] are accepted (and clipped into [0, 1]) to
        forgive rounding in upstream resizes.

    Returns
    -------
    np.ndarray or None
        float32 in [0, 1], or ``None``: a read-only view of a float32 ``mask``
        already in range (callers must not write into it; numpy raises if they
        try), else a new array.

    Raises
    ------
    TypeError
        Not a numpy array (or None when allowed), or not float/bool.
    ValueError
        Wrong shape, NaN/inf, or values outside [0, 1].
    """
    if mask is None and allow_none:
        return None
    hw = tuple(int(s) for s in shape)
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array (float32 H×W matte in [0, 1])"
                        f"{' or None' if allow_none else ''}, got {type(mask).__name__}.")
    if mask.shape[:2] != hw or not (mask.ndim == 2 or (allow_stack and mask.ndim == 3)):
        stack = " or H×W×N, one matte per person" if allow_stack else ""
        raise ValueError(f"{name}: expected shape {hw} (the image's height and width{stack}), got {mask.shape}. "
                         "Resize or refine the mask to the image (e.g. cv2.resize) first.")
    if not (np.issubdtype(mask.dtype, np.floating) or mask.dtype == bool):
        raise TypeError(f"{name}: expected a float array in [0, 1] (or bool), got dtype {mask.dtype}. "
                        "Convert 0/255 masks with m.astype(np.float32) / 255.")
    if mask.dtype == np.float32 and mask.flags.c_contiguous:
        # No copy of a 12 MP matte per stage: a read-only view, so code that tried to write
        # into the caller's mask would fail loudly instead of changing it.
        m = mask.view()
        m.flags.writeable = False
    else:
        m = np.ascontiguousarray(mask, dtype=np.float32)  # a copy (OpenCV wants contiguous rows)
    if m.size == 0:
        return m
    known = _vouched_range(mask)  # made or checked by the caller (see vouch)
    lo, hi = known if known is not None else min_max(m)  # min/max propagate NaN and show inf
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: contains NaN or infinite values; expected finite values in [0, 1].")
    if lo < -tol or hi > 1.0 + tol:
        raise ValueError(f"{name}: expected values in [0, 1], got range [{lo:.8g}, {hi:.8g}]. "
                         "Clip it, apply a sigmoid to logits, or divide 0/255 masks by 255.")
    if lo < 0.0 or hi > 1.0:
        m = np.clip(m, 0.0, 1.0)  # only the rounding tolerance is removed (a new array)
    return m


def resize(array: np.ndarray, hw: tuple[int, int], interpolation: int) -> np.ndarray:
    """``cv2.resize`` to (H, W) that keeps a trailing channel axis of length 1 (cv2 drops it)."""
    out = cv2.resize(array, (hw[1], hw[0]), interpolation=interpolation)
    return out[..., None] if out.ndim == 2 and array.ndim == 3 else out


def through_two_columns(fn):
    """Run an effect on a one-pixel-wide image as a two-pixel-wide one (its column twice, and
    every same-sized mask alike), and return the first column.

    OpenCV takes a one-column array of up to 4 values for a scalar: sharpen failed on a 4×1
    image, the lighting looks on 33×1 and 1×1, with OpenCV's own errors.
    """
    @functools.wraps(fn)
    def wrapper(image, *args, **kwargs):
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[1] == 1):
            return fn(image, *args, **kwargs)
        size = image.shape[:2]

        def widen(value):
            if isinstance(value, np.ndarray) and value.ndim >= 2 and value.shape[:2] == size:
                return np.repeat(value, 2, axis=1)
            return value

        out = fn(widen(image), *(widen(a) for a in args), **{k: widen(v) for k, v in kwargs.items()})
        return np.ascontiguousarray(out[:, :1])

    return wrapper


def check_flag(value, name: str) -> bool:
    """``value`` as a bool, for an option that must be True or False (numpy's bool too): a truthy
    ``"no"`` is not taken as True. Raises TypeError naming ``name`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}.")
    return bool(value)


def _is_number(value, integer: bool) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))


def _plain_value(value, kind):
    """``value`` as the plain Python value of the annotation ``kind``, or raise ``_WrongType``."""
    if kind is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
    elif kind is int or kind is float:
        if _is_number(value, kind is int):
            return kind(value.item() if isinstance(value, np.generic) else value)
    elif kind is str:
        if isinstance(value, str):
            return str(value)  # (numpy's str_ too)
    elif typing.get_origin(kind) is tuple:
        # A list is taken too (settings that went through JSON come back with lists), and an array.
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, (tuple, list)):
            args = typing.get_args(kind)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_plain_value(v, args[0]) for v in value)
            if len(value) == len(args):
                return tuple(_plain_value(v, a) for v, a in zip(value, args))
    elif isinstance(kind, type):
        if isinstance(value, kind):
            return value
    else:  # an annotation this check does not know: left to the class's own checks
        return value
    raise _WrongType


class _WrongType(Exception):
    pass


class ParamTypeError(TypeError, ValueError):
    """A params field of the wrong type: a TypeError, and a ValueError as every other params
    check of the effects raises (as numpy's AxisError is both a ValueError and an IndexError),
    so code catching either sees it."""


def _type_words(kind) -> str:
    if kind is float:
        return "a number"
    if kind is int:
        return "an integer"
    if kind is bool:
        return "True or False"
    if kind is str:
        return "a string"
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            one = _type_words(args[0])
            many = ("tuples" + one.removeprefix("a tuple") if one.startswith("a tuple")
                    else one.removeprefix("a ").removeprefix("an ") + "s")
            return f"a tuple of {many}"
        return f"a tuple of {len(args)} values ({', '.join(_type_words(a) for a in args)})"
    return f"a {getattr(kind, '__name__', kind)}"


def check_field_types(params) -> None:
    """Check every field of a frozen params dataclass against its annotation, before the
    class checks the values; numpy scalars and JSON lists become the plain Python values.

    Without it a string, None or a list given for a number failed inside the class's
    own range checks with numpy's or Python's comparison error ("'<' not supported between
    instances of 'float' and 'str'"), which names neither the class nor the field.

    Raises
    ------
    ParamTypeError
        A TypeError and a ValueError, naming the class, the field, what it takes and what
        was given.
    """
    cls = type(params)
    hints = typing.get_type_hints(cls)
    for f in fields(params):
        kind = hints.get(f.name)
        value = getattr(params, f.name)
        try:
            plain = _plain_value(value, kind)
        except _WrongType:
            raise ParamTypeError(f"{cls.__name__}.{f.name} must be {_type_words(kind)}; got {value!r}.") from None
        if plain is not value:
            object.__setattr__(params, f.name, plain)
