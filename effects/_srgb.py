"""The sRGB transfer curve (IEC 61966-2-1), written once for the whole project.

``camseg.io`` converts photos with it at the I/O boundary (and re-exports
:func:`linear_to_srgb` and :func:`srgb_to_linear`); ``effects`` needs the same curve inside
one stage, the JPEG-aware skin step, to model what the camera's JPEG encoder saw. ``effects``
never imports ``camseg``, so the curve lives here.

All functions take float arrays of any shape and return new float32 arrays; the power law
runs in place with OpenCV's SIMD ``pow`` (~8x ``np.power`` on a 12 MP frame) and the linear
toe is patched only where some value falls on it (rare in photos).
"""

from __future__ import annotations

import cv2
import numpy as np

from ._opencv import clip01, image_view

_ENCODED_TOE = np.float32(0.04045)
_LINEAR_TOE = np.float32(0.0031308)
_POWER_TOE = np.float32((0.04045 + 0.055) / 1.055)  # srgb_power's value at the decoder's toe


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
    encoded = np.asarray(encoded, dtype=np.float32)
    # A new C-ordered array (np.maximum alone would keep a view's layout): the power law's domain.
    out = np.maximum(encoded, _ENCODED_TOE, out=np.empty(encoded.shape, np.float32))
    out += np.float32(0.055)
    out /= np.float32(1.055)
    pow_in_place(out, 2.4)
    if encoded.size and float(encoded.min()) <= _ENCODED_TOE:  # the linear toe, where it applies
        toe = encoded <= _ENCODED_TOE
        out[toe] = encoded[toe] / np.float32(12.92)
    return out


def _power_law(linear: np.ndarray) -> np.ndarray:
    """``clip(linear, toe, 1) ** (1/2.4)``, a new float32 array."""
    out = np.clip(linear, _LINEAR_TOE, np.float32(1.0), out=np.empty(linear.shape, np.float32))
    pow_in_place(out, 1.0 / 2.4)
    return out


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
    linear = np.asarray(linear, dtype=np.float32)
    out = _power_law(linear)
    out *= np.float32(1.055)
    out -= np.float32(0.055)
    if linear.size and float(linear.min()) <= _LINEAR_TOE:  # the linear toe, where it applies
        toe = linear <= _LINEAR_TOE
        out[toe] = np.maximum(linear[toe], np.float32(0.0)) * np.float32(12.92)
    return out


def srgb_power(linear: np.ndarray) -> np.ndarray:
    """``p`` with ``linear_to_srgb(linear) = 1.055 p - 0.055``, float32, values clipped to
    [0, 1] first: ``linear ** (1/2.4)``, and on the linear toe the ``p`` that gives
    ``12.92 linear``. For callers that fold the affine part into their next operation."""
    p = np.empty(np.shape(linear), np.float32)  # new, C-ordered: views of any layout
    np.copyto(p, linear, casting="unsafe")
    if p.size == 1:  # OpenCV would read a lone value beside a number as a Scalar: do it twice
        return srgb_power(np.repeat(p.reshape(1), 2))[:1].reshape(p.shape)
    flat = image_view(p)  # 2-D for OpenCV (a cv2 scalar is per channel)
    # Clipped to [0, 1] with OpenCV: numpy's clip and maximum with a scalar were a third of
    # this function's time on the JPEG step's strips.
    clip01(flat)
    toe = None
    if p.size and float(p.min()) < _LINEAR_TOE:
        # The toe by one affine map and a masked copy: numpy's boolean indexing took longer
        # than the power law itself where a dark background puts many pixels there.
        toe = np.less(flat, _LINEAR_TOE).view(np.uint8)
        toe_value = cv2.addWeighted(flat, 12.92 / 1.055, flat, 0.0, 0.055 / 1.055)  # (12.92 x + 0.055) / 1.055
    cv2.max(flat, float(_LINEAR_TOE), dst=flat)
    pow_in_place(p, 1.0 / 2.4)
    if toe is not None:
        cv2.copyTo(toe_value, toe, flat)
    return p


def srgb_power_to_linear_in_place(p: np.ndarray) -> np.ndarray:
    """Inverse of :func:`srgb_power`, in place: the linear light of ``sRGB = 1.055 p - 0.055``
    clipped to [0, 1] (IEC 61966-2-1 decoding, in units of ``p``), returned.

    ``p``: C-contiguous float32, any shape. For callers that worked in units of ``p`` (an
    adjustment of sRGB values added as ``Δ / 1.055``), decoding without forming sRGB.
    """
    if p.size == 1:  # OpenCV would read a lone value beside a number as a Scalar: do it twice
        p.reshape(1)[0] = srgb_power_to_linear_in_place(np.repeat(p.reshape(1), 2))[0]
        return p
    flat = image_view(p)  # a view (checked by pow_in_place)
    toe = None
    if p.size and float(p.min()) <= _POWER_TOE:
        # The linear toe, sRGB / 12.92 (sRGB clipped at 0), by an affine map and a masked copy.
        toe = np.less_equal(flat, _POWER_TOE).view(np.uint8)
        toe_value = cv2.max(cv2.addWeighted(flat, 1.055 / 12.92, flat, 0.0, -0.055 / 12.92), 0.0)
    cv2.min(flat, 1.0, dst=flat)  # sRGB clipped to [0, 1]: p to [toe, 1]
    cv2.max(flat, float(_POWER_TOE), dst=flat)
    pow_in_place(p, 2.4)
    if toe is not None:
        cv2.copyTo(toe_value, toe, flat)
    return p


def srgb_slope(linear: np.ndarray) -> np.ndarray:
    """d sRGB / d linear (per unit) at ``linear``, float32: for carrying a linear noise
    variance into sRGB."""
    x = np.maximum(linear, _LINEAR_TOE)
    return np.where(linear <= _LINEAR_TOE, 12.92, 1.055 / 2.4 * np.power(x, 1 / 2.4 - 1)).astype(np.float32)
