"""The sRGB transfer curve (IEC 61966-2-1), written once for the whole project.

``camseg.io`` converts photos with it at the I/O boundary (and re-exports
:func:`linear_to_srgb` and :func:`srgb_to_linear`); ``effects`` needs the same curve inside
one stage, the JPEG-aware skin step, to model what the camera's JPEG encoder saw. ``effects``
never imports ``camseg``, so the curve lives here.

All functions take float arrays of any shape and return new float32 arrays. The power law
runs in place with OpenCV's SIMD ``exp(k log x)`` (~8x ``np.power`` on a 12 MP frame). Cost:
the values are walked in cache-sized chunks, each by a compiled kernel (:mod:`effects._jit`)
that clips and offsets it in one pass (and says whether any value falls on the linear toe),
OpenCV's log, multiply and exp, and, after them, a kernel for the affine part and the toe
where a chunk has one: about five passes over cache-resident data instead of eight to eleven
over the whole array, with the same float32 arithmetic (the power law's bits are OpenCV's as
before).
"""

from __future__ import annotations

import cv2
import numpy as np

from ._jit import kernel
from ._opencv import image_view

_ENCODED_TOE = np.float32(0.04045)
_LINEAR_TOE = np.float32(0.0031308)
#: Values per chunk of the curve's passes (256 KB of float32: they stay in the L2 cache).
_CHUNK = 1 << 16


def pow_in_place(x: np.ndarray, exponent: float) -> None:
    """``x **= exponent`` for a C-contiguous float32 array of non-negative values.

    Contiguity is checked, not assumed: a reshape of any other layout is a copy, and the
    power would silently land in it.
    """
    if not x.flags.c_contiguous:
        raise ValueError("pow_in_place needs a C-contiguous array (use np.ascontiguousarray)")
    if x.size:
        flat = image_view(x)
        if float(exponent).is_integer():
            cv2.pow(flat, float(exponent), dst=flat)  # exact repeated products
        else:
            # exp(k log x): what cv2.pow computes for a fractional power (bit for bit for the
            # exponents used here; cv2.pow takes a square-root path at +-0.5), without its
            # extra pass over the signs: 1.2 instead of 1.8 ns a value on a cached strip.
            # log 0 = -inf, so 0 stays 0.
            cv2.log(flat, dst=flat)
            cv2.multiply(flat, float(exponent), dst=flat)
            cv2.exp(flat, dst=flat)


def _chunks(size: int):
    """``(start, stop)`` of the chunks covering ``range(size)``."""
    return ((a, min(size, a + _CHUNK)) for a in range(0, size, _CHUNK))


def _flat_float32(x: np.ndarray) -> np.ndarray:
    """``x`` as a flat float32 array: a view when it is float32 and C-contiguous, else a copy."""
    return np.ascontiguousarray(x, dtype=np.float32).reshape(-1)


@kernel
def _decode_base(encoded, out):  # pragma: no cover - compiled
    """``out = (max(encoded, 0.04045) + 0.055) / 1.055``, the power law's base; returns whether
    some value is on the decoder's linear toe (``<= 0.04045``). Fuses a maximum, an add and a
    divide (three passes). float32 1-D arrays of one length, C-contiguous."""
    toe, offset, scale = _ENCODED_TOE, np.float32(0.055), np.float32(1.055)
    on_toe = 0
    for k in range(out.size):
        v = encoded[k]
        on_toe += v <= toe
        out[k] = (max(v, toe) + offset) / scale
    return on_toe > 0


@kernel
def _decode_toe(encoded, out):  # pragma: no cover - compiled
    """``out = encoded / 12.92`` where ``encoded <= 0.04045`` (the linear toe). float32 1-D."""
    toe, slope = _ENCODED_TOE, np.float32(12.92)
    for k in range(out.size):
        if encoded[k] <= toe:
            out[k] = encoded[k] / slope


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values to linear light (IEC 61966-2-1).

    Parameters
    ----------
    encoded : np.ndarray
        Any shape, float, sRGB-encoded values in [0, 1].

    Returns
    -------
    np.ndarray
        float32, same shape, linear light in [0, 1].
    """
    src = _flat_float32(encoded)
    out = np.empty(np.shape(encoded), np.float32)  # new, C-ordered: the power law's domain
    flat = out.reshape(-1)
    for a, b in _chunks(flat.size):
        on_toe = _decode_base(src[a:b], flat[a:b])
        pow_in_place(flat[a:b], 2.4)
        if on_toe:  # the linear toe, where it applies
            _decode_toe(src[a:b], flat[a:b])
    return out


@kernel
def _encode_base(linear, out):  # pragma: no cover - compiled
    """``out = clip(linear, 0.0031308, 1)``, the power law's base (one pass instead of
    numpy's clip); returns whether some value is on the encoder's linear toe
    (``linear <= 0.0031308``). float32 1-D arrays of one length, C-contiguous."""
    toe, one = _LINEAR_TOE, np.float32(1.0)
    on_toe = 0
    for k in range(out.size):
        v = linear[k]
        on_toe += v <= toe
        out[k] = min(max(v, toe), one)
    return on_toe > 0


@kernel
def _encode_affine(linear, out, on_toe):  # pragma: no cover - compiled
    """``out = 1.055 out - 0.055`` (the power law ``out`` to sRGB), and where ``on_toe`` and
    ``linear <= 0.0031308`` the linear toe ``12.92 max(linear, 0)``: a multiply, a subtract
    and the masked toe (numpy's boolean indexing) in one pass. float32 1-D, C-contiguous."""
    scale, offset, toe, slope = np.float32(1.055), np.float32(0.055), _LINEAR_TOE, np.float32(12.92)
    zero = np.float32(0.0)
    if on_toe:
        for k in range(out.size):
            v = linear[k]
            out[k] = max(v, zero) * slope if v <= toe else out[k] * scale - offset
    else:
        for k in range(out.size):
            out[k] = out[k] * scale - offset


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Encode linear light to sRGB values (IEC 61966-2-1).

    Parameters
    ----------
    linear : np.ndarray
        Any shape, float, linear light; values are clipped to [0, 1] first.

    Returns
    -------
    np.ndarray
        float32, same shape, sRGB-encoded values in [0, 1].
    """
    src = _flat_float32(linear)
    out = np.empty(np.shape(linear), np.float32)
    flat = out.reshape(-1)
    for a, b in _chunks(flat.size):
        on_toe = _encode_base(src[a:b], flat[a:b])
        pow_in_place(flat[a:b], 1.0 / 2.4)
        _encode_affine(src[a:b], flat[a:b], on_toe)
    return out


@kernel
def _power_base(linear, p, toe_value):  # pragma: no cover - compiled
    """``p = max(clip(linear, 0, 1), 0.0031308)``, the power law's base of
    :func:`srgb_power` (four OpenCV passes before); where the clipped value ``v`` is below the
    toe (``< 0.0031308``), the ``p`` of the linear toe, ``(12.92 v + 0.055) / 1.055`` as
    ``v * (12.92 / 1.055) + 0.055 / 1.055``, goes to ``toe_value`` (else NaN, a marker).
    Returns whether any value is on the toe. float32 1-D arrays of one length, C-contiguous
    (``linear`` may be ``p`` itself)."""
    zero, one, toe = np.float32(0.0), np.float32(1.0), _LINEAR_TOE
    slope, offset = np.float32(12.92 / 1.055), np.float32(0.055 / 1.055)
    on_toe = 0
    for k in range(p.size):
        v = min(max(linear[k], zero), one)
        if v < toe:
            on_toe += 1
            toe_value[k] = v * slope + offset
        else:
            toe_value[k] = np.nan
        p[k] = max(v, toe)
    return on_toe > 0


def srgb_power(linear: np.ndarray) -> np.ndarray:
    """``p`` with ``linear_to_srgb(linear) = 1.055 p - 0.055``, float32, values clipped to
    [0, 1] first: ``linear ** (1/2.4)``, and on the linear toe the ``p`` that gives
    ``12.92 linear``. For callers that fold the affine part into their next operation."""
    p = np.empty(np.shape(linear), np.float32)  # new, C-ordered: views of any layout
    if p.size == 1:  # OpenCV would read a lone value beside a number as a Scalar: do it twice
        np.copyto(p, linear, casting="unsafe")
        return srgb_power(np.repeat(p.reshape(1), 2))[:1].reshape(p.shape)
    flat = p.reshape(-1)
    if isinstance(linear, np.ndarray) and linear.dtype == np.float32 and linear.flags.c_contiguous:
        src = linear.reshape(-1)  # read in place: no copy pass
    else:
        np.copyto(p, linear, casting="unsafe")
        src = flat
    toe_value = np.empty(min(_CHUNK, flat.size), np.float32)
    for a, b in _chunks(flat.size):
        chunk = flat[a:b]
        on_toe = _power_base(src[a:b], chunk, toe_value[:b - a])
        pow_in_place(chunk, 1.0 / 2.4)
        if on_toe:
            _copy_toe(toe_value[:b - a], chunk)
    return p


@kernel
def _copy_toe(toe_value, p):  # pragma: no cover - compiled
    """``p = toe_value`` where it is not NaN: the linear toe's values after the power law (see
    :func:`_power_base`). float32 1-D arrays of one length."""
    for k in range(p.size):
        if not np.isnan(toe_value[k]):
            p[k] = toe_value[k]


def srgb_slope(linear: np.ndarray) -> np.ndarray:
    """d sRGB / d linear (per unit) at ``linear``, float32: for carrying a linear noise
    variance into sRGB."""
    x = np.maximum(linear, _LINEAR_TOE)
    return np.where(linear <= _LINEAR_TOE, 12.92, 1.055 / 2.4 * np.power(x, 1 / 2.4 - 1)).astype(np.float32)
