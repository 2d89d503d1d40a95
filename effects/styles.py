"""Photographic Styles: a scene look (tone, warmth, saturation) that leaves skin tones alone.

A style is plain data (:class:`Style`, JSON-serialisable through ``to_dict``/``from_dict``);
five presets ship in :data:`STYLE_PRESETS`: ``standard`` (identity), ``rich_contrast``,
``vibrant``, ``warm`` and ``cool``, after the Photographic Styles of recent phone cameras.

Algorithm
---------
1. Warmth: a luminance-preserving von Kries-style diagonal gain on linear RGB,
   ``(2**(0.2 w), 1, 2**(-0.4 w))`` divided by its effect on Rec. 709 luminance, i.e. a white
   balance shift toward amber (w > 0) or blue (w < 0) that does not change brightness.
2. Conversion to Oklab (Ottosson 2020), a perceptual space whose hue lines are close to
   constant-hue, so scaling chroma there does not shift hue (CIELAB turns saturated blues
   purple). The matrices come from colour-science (sRGB primaries, D65, then Oklab's M1, M2).
3. Tone: on Oklab lightness ``L``,
   ``L' = L + 1.2 * tone * L * (1 - L) * (L - p)`` with ``p`` the lightness of 18 % grey.
   Black and white are fixed points (no new clipping from tone) and the curve is monotonic
   for ``|tone| <= 1`` (slope >= 0.3), so it cannot create gradient reversals or banding.
4. Saturation: ``(a, b)`` scaled by ``1 + saturation`` (hue kept), plus
   ``sky_saturation * sky`` in the sky.
5. Selectivity: the adjusted Oklab colour is blended with the original by
   ``strength * (1 - max(skin_protection * skin, teeth))``: skin keeps its colour up to a
   small share of the look, teeth keep theirs entirely (never warmed yellow), everything else
   takes the full look.
6. Gamut: a pixel whose adjusted colour would leave the RGB cube is pulled back toward its
   original colour along the same path (bisection on the blend factor) until it fits
   ``[0.001, 0.998]`` (or its own original range): colours are desaturated rather than
   clipped, so no channel is newly clipped and smooth skies keep smooth.

References
----------
B. Ottosson, "A perceptual color space for image processing" (Oklab), 2020.
Colour-science: colour.models.oklab, colour.RGB_COLOURSPACES["sRGB"].
Apple Inc., "Photographic Styles" (iPhone 13, 2021): the preset names and the Tone / Warmth
parameters, with skin tones preserved.
G. Sharma, W. Wu, E. Dalal, "The CIEDE2000 color-difference formula", 2005 (used to measure
skin protection in benchmarks/tone_styles.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import colour
import cv2
import numpy as np
from colour.models import oklab as _oklab

from ._validate import check_image, check_mask

__all__ = ["Style", "STYLE_PRESETS", "apply_style"]

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)
_RGB_TO_LMS = (np.asarray(_oklab.MATRIX_1_XYZ_TO_LMS) @ np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_RGB_to_XYZ)).astype(np.float32)
_LMS_TO_RGB = np.linalg.inv(_RGB_TO_LMS.astype(np.float64)).astype(np.float32)
_LMSP_TO_LAB = np.asarray(_oklab.MATRIX_2_LMS_TO_LAB, dtype=np.float32)
_LAB_TO_LMSP = np.linalg.inv(_LMSP_TO_LAB.astype(np.float64)).astype(np.float32)
_GREY_L = float(np.cbrt(0.18))  # Oklab lightness of 18 % grey: the tone curve's pivot
_TONE_GAIN = 1.2
_FIT_LO, _FIT_HI = 0.001, 0.998


@dataclass(frozen=True)
class Style:
    """A Photographic Style as plain data.

    Attributes
    ----------
    name : str
        Label for the style (free text).
    tone : float
        In [-1, 1]. Positive: more contrast (deeper shadows, brighter highlights); negative: flatter.
    warmth : float
        In [-1, 1]. Positive: warmer (amber); negative: cooler (blue). Luminance kept.
    saturation : float
        In [-1, 1]. Chroma scale ``1 + saturation`` in Oklab (hue kept); -1 is greyscale.
    sky_saturation : float
        In [0, 1]. Extra chroma scale inside the sky matte.
    skin_protection : float
        In [0, 1]. 1 leaves skin untouched; 0 treats it like the rest. Teeth are always
        left untouched.
    """

    name: str = "custom"
    tone: float = 0.0
    warmth: float = 0.0
    saturation: float = 0.0
    sky_saturation: float = 0.0
    skin_protection: float = 0.9

    _RANGES = {"tone": (-1.0, 1.0), "warmth": (-1.0, 1.0), "saturation": (-1.0, 1.0),
               "sky_saturation": (0.0, 1.0), "skin_protection": (0.0, 1.0)}

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"Style.name: expected a str, got {type(self.name).__name__}.")
        for key, (lo, hi) in self._RANGES.items():
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"Style.{key}: expected a number in [{lo}, {hi}], got {type(v).__name__} {v!r}.")
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"Style.{key}: expected a number in [{lo}, {hi}], got {v!r}; pass a value in range.")
            object.__setattr__(self, key, float(v))

    @property
    def is_neutral(self) -> bool:
        """True when the style changes nothing (tone, warmth and saturations all zero)."""
        return self.tone == 0.0 and self.warmth == 0.0 and self.saturation == 0.0 and self.sky_saturation == 0.0

    def to_dict(self) -> dict:
        """Plain ``dict`` of the style's fields (JSON-serialisable)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Style":
        """Build a style from :meth:`to_dict` output (missing keys take their defaults).

        Raises
        ------
        TypeError
            ``data`` is not a mapping.
        ValueError
            An unknown key (the message lists the valid keys) or an out-of-range value.
        """
        if not isinstance(data, dict):
            raise TypeError(f"data: expected a dict from Style.to_dict(), got {type(data).__name__}.")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"data: unknown Style keys {unknown}; valid keys are {valid}.")
        return cls(**data)


#: The shipped presets, name -> Style. ``standard`` is the identity.
STYLE_PRESETS = {
    "standard": Style("standard"),
    "rich_contrast": Style("rich_contrast", tone=0.55, warmth=0.05, saturation=0.1),
    "vibrant": Style("vibrant", tone=0.1, saturation=0.35, sky_saturation=0.2),
    "warm": Style("warm", warmth=0.5, saturation=0.05),
    "cool": Style("cool", warmth=-0.5),
}


def _check_image(image) -> np.ndarray:
    return check_image(image, check_range=True)


def _check_mask(mask, name: str, shape) -> np.ndarray | None:
    return check_mask(mask, name, shape, allow_none=True, tol=1e-6)


def _resolve_style(style) -> Style:
    if isinstance(style, Style):
        return style
    if isinstance(style, str):
        if style not in STYLE_PRESETS:
            raise ValueError(f"style: unknown preset {style!r}; valid names are {sorted(STYLE_PRESETS)}, or pass a Style.")
        return STYLE_PRESETS[style]
    raise TypeError(f"style: expected a preset name {sorted(STYLE_PRESETS)} or a Style, got {type(style).__name__}.")


def _rgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    lms = cv2.transform(rgb, _RGB_TO_LMS)
    return cv2.transform(np.cbrt(lms), _LMSP_TO_LAB)


def _oklab_to_rgb(lab: np.ndarray) -> np.ndarray:
    lmsp = cv2.transform(lab, _LAB_TO_LMSP)
    lms = lmsp * lmsp
    lms *= lmsp
    return cv2.transform(lms, _LMS_TO_RGB)


def apply_style(
    image: np.ndarray,
    style,
    *,
    skin_mask: np.ndarray | None = None,
    sky_mask: np.ndarray | None = None,
    teeth_mask: np.ndarray | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """Apply a Photographic Style, protecting skin and teeth and saturating the sky more.

    See the module docstring for the algorithm.

    Parameters
    ----------
    image : np.ndarray
        float H×W×3 linear-light RGB (sRGB primaries) in [0, 1]. Not modified.
    style : str or Style
        A preset name (``"standard"``, ``"rich_contrast"``, ``"vibrant"``, ``"warm"``,
        ``"cool"``) or a :class:`Style`.
    skin_mask : np.ndarray, optional
        float H×W skin matte in [0, 1]; protected by ``style.skin_protection``.
    sky_mask : np.ndarray, optional
        float H×W sky matte in [0, 1]; receives ``style.sky_saturation`` extra chroma.
    teeth_mask : np.ndarray, optional
        float H×W teeth matte in [0, 1]; fully protected (an extension beyond the develop()
        signature: skin alone is protected when it is not given).
    strength : float
        In [0, 1]; 0 returns an exact copy of the image, 1 the full style.

    Returns
    -------
    np.ndarray
        float32 H×W×3 linear RGB in [0, 1], a new array.

    Raises
    ------
    TypeError, ValueError
        Unknown preset (the message lists valid names), wrong shapes, ranges or types.
    """
    image = _check_image(image)
    st = _resolve_style(style)
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.integer, np.floating)):
        raise TypeError(f"strength: expected a number in [0, 1], got {type(strength).__name__}.")
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength: expected a number in [0, 1], got {strength!r}.")
    hw = image.shape[:2]
    skin = _check_mask(skin_mask, "skin_mask", hw)
    sky = _check_mask(sky_mask, "sky_mask", hw)
    teeth = _check_mask(teeth_mask, "teeth_mask", hw)

    rgb = np.clip(image.astype(np.float32, copy=True), 0.0, 1.0)
    if strength == 0.0 or st.is_neutral:
        return rgb  # exact identity (a new array)

    lab_in = _rgb_to_oklab(rgb)

    # 1. Warmth: luminance-preserving diagonal gain (white-balance shift).
    if st.warmth != 0.0:
        g = np.array([2.0 ** (0.2 * st.warmth), 1.0, 2.0 ** (-0.4 * st.warmth)])
        g /= float(_LUMA @ g)
        warm = cv2.multiply(rgb, (float(g[0]), float(g[1]), float(g[2]), 0.0))
        lab_adj = _rgb_to_oklab(warm)
        del warm
    else:
        lab_adj = lab_in.copy()

    # 2. Tone on Oklab L; black (0) and white (1) are fixed points.
    if st.tone != 0.0:
        L = lab_adj[..., 0]
        lab_adj[..., 0] = L + np.float32(_TONE_GAIN * st.tone) * L * (1.0 - L) * (L - np.float32(_GREY_L))

    # 3. Saturation: scale (a, b) around the neutral axis; the sky may get more.
    chroma = np.float32(1.0 + st.saturation)
    if sky is not None and st.sky_saturation != 0.0:
        chroma = chroma + np.float32(st.sky_saturation) * sky
        # Per-pixel (1, c, c) factors as a 3-channel image: one fused multiply, no broadcast temporaries.
        cv2.multiply(lab_adj, cv2.merge([np.ones_like(chroma), chroma, chroma]), dst=lab_adj)
    elif chroma != 1.0:
        lab_adj[..., 1:] *= chroma

    # 4. Selective blend weight: skin protected by skin_protection, teeth fully (never tinted).
    protect = None
    if skin is not None and st.skin_protection > 0.0:
        protect = np.float32(st.skin_protection) * skin
    if teeth is not None:
        protect = teeth if protect is None else np.maximum(protect, teeth)
    delta = cv2.subtract(lab_adj, lab_in, dst=lab_adj)  # lab_adj is ours: reuse its buffer
    if protect is not None:
        weight = np.float32(strength) * (1.0 - protect)
        cv2.multiply(delta, cv2.merge([weight, weight, weight]), dst=delta)
    elif strength != 1.0:
        delta *= np.float32(strength)
    out = _oklab_to_rgb(cv2.add(lab_in, delta))

    # 5. Gamut: pull out-of-cube pixels back toward their original colour (bisection).
    # Channel minima/maxima from channel views (numpy reductions over a length-3 last axis are slow).
    def cmin(x):
        return np.minimum(np.minimum(x[..., 0], x[..., 1]), x[..., 2])

    def cmax(x):
        return np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2])

    lo_px = np.minimum(cmin(rgb), np.float32(_FIT_LO))
    hi_px = np.maximum(cmax(rgb), np.float32(_FIT_HI))
    bad_mask = (cmin(out) < lo_px) | (cmax(out) > hi_px)
    bad = np.flatnonzero(bad_mask)
    if bad.size:
        flat_out = out.reshape(-1, 3)
        lab_flat, delta_flat = lab_in.reshape(-1, 3), delta.reshape(-1, 3)
        lo_flat, hi_flat = lo_px.reshape(-1), hi_px.reshape(-1)
        # Chunks small enough to stay in cache across the bisection steps.
        for s0 in range(0, bad.size, _GAMUT_CHUNK):
            idx = bad[s0:s0 + _GAMUT_CHUNK]
            flat_out[idx] = _pull_into_gamut(lab_flat[idx], delta_flat[idx], lo_flat[idx], hi_flat[idx])
    np.clip(out, 0.0, 1.0, out=out)
    return out


_GAMUT_CHUNK = 1 << 16
_LAB_TO_LMSP_T = np.ascontiguousarray(_LAB_TO_LMSP.T)


def _pull_into_gamut(lab0: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Largest blend ``t`` (10-step bisection) with ``lab0 + t d`` inside ``[lo, hi]`` per pixel.

    ``lab0``, ``d``: float32 N×3 Oklab original colour and adjustment; ``lo``, ``hi``: float32 N.
    Returns the fitted linear RGB, float32 N×3. The Oklab path is affine in LMS' (a linear map
    of Oklab), so LMS' of both ends is computed once and each step is a cube and a 3×3 matrix
    on planar (3×N) data.
    """
    p0 = (lab0 @ _LAB_TO_LMSP_T).T.copy()  # 3×N, contiguous planes
    q = (d @ _LAB_TO_LMSP_T).T.copy()
    t_ok = np.zeros(lab0.shape[0], np.float32)  # t = 0 is the original colour: always fits
    t_bad = np.ones(lab0.shape[0], np.float32)
    for _ in range(10):
        t = 0.5 * (t_ok + t_bad)
        lms = p0 + t * q
        lms *= lms * lms
        c = _LMS_TO_RGB @ lms
        fits = ((c >= lo) & (c <= hi)).all(axis=0)
        t_ok = np.where(fits, t, t_ok)
        t_bad = np.where(fits, t_bad, t)
    lms = p0 + t_ok * q
    lms *= lms * lms
    return (_LMS_TO_RGB @ lms).T
