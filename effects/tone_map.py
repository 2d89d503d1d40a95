"""Per-person semantic tone mapping: halo-free local tone map plus per-person exposure.

A group shot often mixes lighting: one face backlit, another in the sun. This stage
(1) compresses the scene's large-scale luminance range with an edge-aware base layer, and
(2) renders every person individually: each person's illumination is estimated from their
skin and brought back to the scene's illumination, so each face lands where it would be had
everyone stood in the same light -- while a darker skin tone stays darker than a lighter one.

Algorithm
---------
A dim, underexposed photo -- its brightest 0.5 % below ``ToneMapParams.dim_floor`` -- is
first brightened as a whole (:func:`dim_photo_lift_ev`); the steps below then see a photo
exposed as intended. All large-scale work happens on a reduced "working" grid (long side
``ToneMapParams.working_size``) and is brought back to full resolution with the
*fast guided filter* trick: the guided filter's linear coefficients ``(a, b)`` are upsampled
bilinearly and applied to the full-resolution guide, ``q = a * guide + b``. That output follows
the full-resolution edges exactly, so gains upsampled this way do not bleed across a
bright-sky/dark-subject edge (no halo), which plain bilinear upsampling of gains would do.

1. ``l = log2(Y)``, Y the Rec. 709 luminance of the linear RGB image.
2. Base layer: self-guided guided filter of ``l`` (radius ``base_radius``, regulariser
   ``base_eps`` in EV^2). Steps larger than ``sqrt(base_eps)`` EV stay in the base, texture goes
   to the detail layer, as in Durand & Dorsey's base/detail decomposition.
3. Scene key ``k``: weighted log-average luminance (Reinhard et al.) of the pixels that are
   neither person nor sky. The scene illumination is taken as ``E0 = 2**k / scene_grey``
   (the usual "average scene reflectance is 18 % grey" assumption of auto exposure), at most
   1, the white point: a bright scene (white backdrop, snow) breaks the grey assumption, and
   an ``E0`` above the light that puts white at 1 made correctly exposed faces look backlit.
4. Local tone map gain outside people: ``g = local_compression * (max(k - base, 0) -
   max(base - knee, 0))``, ``knee = max(k, log2(highlight_knee))``, limited to
   ``+-max_local_ev``: shadows lifted, highlights lowered, detail kept, and the range between
   the key and the knee left at its exposure. (A symmetric ``-c (base - k)`` darkened every
   well-exposed photo: a real key, pulled down by deep shadows, sits far below the midtones.)
5. Per person ``i`` (working grid statistics):

   * ``s_i`` = weighted median of ``l`` over the person's skin (``person * skin``). A person
     with skin (matte over 0.5) on under 2 % of their matte is rendered like the scene around
     them (local tone map, no exposure or contrast of their own): their light cannot be
     measured, and an estimate from clothes or fur as if it were skin is a guess (it lifted a
     "person" that was a zebra by 2 EV). Without any skin matte the whole person matte is
     measured;
   * ``c_i`` = weighted median skin chromaticity ``(ln R/G, ln B/G)``, which does not depend
     on exposure; in a toned black-and-white photo (sepia, cyanotype: nearly every pixel of
     one chromaticity) it is measured from that tint, so toned skin reads as grey skin;
   * a skin reflectance / illumination estimate by MAP over a continuum of reference skin
     reflectances (the Monk Skin Tone scale, interpolated between its 10 swatches): for a
     candidate reflectance ``rho`` the implied illumination offset is
     ``d = s_i - log2(rho) - log2(E0)`` and the cost is
     ``|c_i - c(rho)|^2 / chroma_sigma^2 + d^2 / illumination_sigma_ev^2``. The chromaticity
     term picks the skin tone, the illumination prior resolves ambiguity toward "lit like the
     scene" (i.e. toward no correction);
   * two passes: first with a broad prior centred on the scene's light; the group's target
     light is then ``t = max(median_i d_i, 0)``, the median weighted by each person's measured skin
     area (the matte area when no one was measured on skin; the big face the camera metered for
     anchors it, and people under ``min_voter_weight`` of the largest do not vote) -- people are equalised to their common
     light, a group darker than the scene (backlit) is lifted to the scene's light, but a
     group brighter than its background is *not* darkened to it (the camera exposed for the
     people; the scene key of a real photo is a poor absolute reference); the second pass
     re-estimates each ``d_i`` with the prior centred on ``t``. Only people measured on their
     skin vote on ``t`` when there are any: a light estimated from clothes (a back view, or a
     false detection with no skin) is a guess and must not move the others;
   * exposure gain ``g_i = -person_strength * (d_i - t)``, limited to ``+-max_person_ev``, and a
     lift tapers above the skin median (slope down to 0.3) and stops where even so the person's
     bright end (largest channel, 95th percentile) would pass ``highlight_ceiling``: a fill
     light, which never makes a face in shade brighter than the sunlit skin beside it;
   * contrast factor ``k_i = clip((person_contrast_target_ev / spread_i) ** person_contrast)``
     where ``spread_i`` is the 10-90 % range of the base within the person; applied around
     ``s_i`` so the skin's median is unchanged.

   **What "a good range" means here**: a face is well exposed when its skin luminance equals
   its estimated skin reflectance times the target light ``E0 * 2**t`` (the scene's light,
   or the group's when the group is lit brighter than the scene). The target is thus
   person-specific: light skin lands brighter than dark skin, in the same ratio as their
   reflectances, and no face is pushed to a common brightness.
6. Gain field: inside people their own gain (mattes normalised where they overlap), outside
   the local tone map. The field is smoothed with a guided filter guided by ``l`` (edges of
   the gain snap to image edges) and upsampled with the fast guided filter.
7. Ceilings at full resolution: the base is never brightened above ``highlight_ceiling``; the
   sky (when a sky matte is given) is never brightened and its base is held at or below
   ``sky_ceiling`` (bright sky is darkened toward it) so a lifted scene never blows it out.
   Every darkening off people (this and the highlight compression of step 4) fades out as a
   pixel's luminance goes from ``white_fade`` to 1: clipped white has no detail to
   recover, and pulled down it turns a flat grey, so white stays white. (A person's darkening
   is the exposure correction of a measured face, and stays.)
8. The gain multiplies R, G and B alike (hue and chromaticity kept); a pixel whose largest
   channel would exceed 1 is scaled down as a whole (hue-preserving, no channel clipping).

References
----------
K. He, J. Sun, X. Tang, "Guided Image Filtering", ECCV 2010 / IEEE TPAMI 35(6), 2013.
K. He, J. Sun, "Fast Guided Filter", arXiv:1505.00996, 2015.
F. Durand, J. Dorsey, "Fast bilateral filtering for the display of high-dynamic-range
images", SIGGRAPH 2002 (base/detail tone mapping).
E. Reinhard, M. Stark, P. Shirley, J. Ferwerda, "Photographic tone reproduction for digital
images", SIGGRAPH 2002 (log-average key).
E. Monk, "Monk Skin Tone Scale", 2019; sRGB swatches as published by Google (skintone.google).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ._bands import run_in_row_bands
from ._jit import clamp01, fma, kernel, read_only_contiguous
from .mask_refine import RowUpsampler
from ._validate import check_field_types, check_flag, check_image, check_mask, vouched_memo

__all__ = ["ToneMapParams", "PersonExposure", "tone_map_people", "dim_photo_lift_ev", "monochrome_tint",
           "MONK_SKIN_TONES_SRGB"]

#: Monk Skin Tone scale, MST-1 (lightest) .. MST-10 (darkest), sRGB hex as published by Google.
MONK_SKIN_TONES_SRGB = (
    "#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96",
    "#a07e56", "#825c43", "#604134", "#3a312a", "#292420",
)

# Rec. 709 / sRGB luminance weights for linear RGB.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
# Luminance floor: log2(2**-14) keeps log finite on black pixels without affecting real shadows.
_Y_FLOOR = np.float32(2.0 ** -14)
_LN2 = float(np.log(2.0))


@dataclass(frozen=True)
class ToneMapParams:
    """Parameters of :func:`tone_map_people` (defaults live here only).

    Attributes
    ----------
    working_size : int
        Long side (pixels) of the reduced grid on which the base and gains are computed.
    base_radius : float
        Base-layer guided-filter radius as a fraction of the working grid's long side.
    base_eps : float
        Base-layer guided-filter regulariser in EV^2 (log2 luminance units squared).
    local_compression : float
        Fraction in [0, 1] of the base's deviation removed outside people: below the scene
        key (shadows lifted) and above ``highlight_knee`` (highlights lowered).
    highlight_knee : float
        Linear luminance in (0, 1] above which (and above the key) the base is lowered; the
        midtones and highlights between the key and the knee keep their exposure.
    max_local_ev : float
        Limit (EV) of the local tone-map gain.
    gain_radius : float
        Radius of the edge-aware smoothing of the gain field, fraction of the long side.
    gain_eps : float
        Regulariser (EV^2) of that smoothing; smaller snaps gain steps closer to image edges.
    scene_grey : float
        Assumed mean scene reflectance used to turn the key into an illumination.
    person_strength : float
        Fraction in [0, 1] of each person's estimated illumination offset that is corrected.
    max_person_ev : float
        Limit (EV) of a person's exposure gain.
    illumination_sigma_ev : float
        Prior standard deviation (EV) of a person's illumination offset from the scene's.
    chroma_sigma : float
        Tolerance of the skin chromaticity match, natural-log ratio units.
    grey_skin_chroma : float
        A person's skin chromaticity closer than this to neutral (length of ``(ln R/G,
        ln B/G)``) says nothing about the skin tone: a black-and-white photo. Every skin tone of
        the Monk scale lies at least 0.12 from neutral, so the match would take every grey face
        for the palest tone and lift it (faces of CelebA photos turned grey: up to +1.5 EV more
        than in colour). Such a person's reflectance is left to the illumination prior alone:
        lit like the scene, or like the group.
    toned_chroma_spread : float
        A photo whose chromaticities nearly all lie within this distance (90th percentile, in
        ``(ln R/G, ln B/G)`` units, over pixels neither dark nor clipped) of their median is a
        toned black-and-white photo (sepia, selenium, cyanotype): its skin's colour is the
        toning's, not the skin's, and skin chromaticity is measured from the frame's tint
        instead of from neutral (a grey photo's tint is neutral). A sepia portrait's face had
        been matched to a pale skin tone and lifted 1.3 EV. Of the 694 photos of the data set's
        COCO, person, body, face and sky sets, every colour one spreads 0.17 or more (birds on a
        white sky), every black-and-white one 0.05 or less. 0 switches it off.
    min_voter_weight : float
        A person votes on the group's light only if the area measured on them (skin, or the
        whole matte when nobody was measured on skin) is at least this fraction in [0, 1] of
        the largest one's; a few stray pixels of a far or false detection do not vote.
    person_contrast : float
        Strength in [0, 1] of the per-person contrast normalisation (0 switches it off).
    person_contrast_target_ev : float
        Target 10-90 % spread (EV) of a person's base layer.
    contrast_limits : tuple of float
        (low, high) limits of a person's contrast factor.
    highlight_ceiling : float
        Linear luminance above which the base is never brightened.
    sky_ceiling : float
        Linear luminance the sky's base is held at or below when a sky matte is given
        (less so as a pixel nears clipped white, see ``white_fade``).
    white_fade : float
        Linear luminance in (0, 1] above which any darkening off people (highlight
        compression, the sky ceiling) fades out, to none at 1: white stays white. 1 = no fade.
    dim_floor : float
        Linear luminance in [0, 1) below which the photo's brightest 0.5 % (the 99.5th
        percentile of luminance) marks it as underexposed: the whole photo is first brightened
        until that level reaches ``dim_floor``, by at most ``max_dim_lift_ev`` (see
        :func:`dim_photo_lift_ev`). 0 switches it off.
    max_dim_lift_ev : float
        Limit (EV) of that lift.
    """

    working_size: int = 512
    base_radius: float = 0.04
    base_eps: float = 0.02
    local_compression: float = 0.2
    highlight_knee: float = 0.5
    max_local_ev: float = 1.5
    gain_radius: float = 0.008
    gain_eps: float = 0.01
    scene_grey: float = 0.18
    person_strength: float = 1.0
    max_person_ev: float = 2.0
    illumination_sigma_ev: float = 1.5
    chroma_sigma: float = 0.06
    grey_skin_chroma: float = 0.03
    toned_chroma_spread: float = 0.08
    min_voter_weight: float = 0.1
    person_contrast: float = 0.5
    person_contrast_target_ev: float = 2.5
    contrast_limits: tuple[float, float] = (0.95, 1.2)
    highlight_ceiling: float = 0.95
    sky_ceiling: float = 0.9
    white_fade: float = 0.8
    dim_floor: float = 0.3
    max_dim_lift_ev: float = 1.5

    def __post_init__(self):
        check_field_types(self)
        def need(cond, name, expected):
            if not cond:
                raise ValueError(
                    f"ToneMapParams.{name}: expected {expected}, got {getattr(self, name)!r}; "
                    f"pass a value in that range."
                )

        need(self.working_size >= 8,
             "working_size", "an int >= 8")
        for name in ("base_radius", "gain_radius"):
            need(0.0 < getattr(self, name) <= 0.5, name, "a float in (0, 0.5]")
        for name in ("base_eps", "gain_eps", "illumination_sigma_ev", "chroma_sigma",
                     "person_contrast_target_ev", "scene_grey"):
            # (finite too: an infinite eps or grey turned the whole image into NaN)
            need(0.0 < getattr(self, name) < math.inf, name, "a finite float > 0")
        for name in ("local_compression", "person_strength", "person_contrast", "min_voter_weight"):
            need(0.0 <= getattr(self, name) <= 1.0, name, "a float in [0, 1]")
        need(0.0 <= self.dim_floor < 1.0, "dim_floor", "a float in [0, 1)")
        need(0.0 <= self.grey_skin_chroma < 0.12, "grey_skin_chroma", "a float in [0, 0.12)")
        need(0.0 <= self.toned_chroma_spread < 1.0, "toned_chroma_spread", "a float in [0, 1)")
        for name in ("max_local_ev", "max_person_ev", "max_dim_lift_ev"):
            need(0.0 <= getattr(self, name) <= 8.0, name, "a float in [0, 8]")
        for name in ("highlight_ceiling", "sky_ceiling", "highlight_knee", "white_fade"):
            need(0.0 < getattr(self, name) <= 1.0, name, "a float in (0, 1]")
        lo_hi = self.contrast_limits
        need(len(lo_hi) == 2 and 0.0 < lo_hi[0] <= 1.0 <= lo_hi[1] <= 4.0, "contrast_limits",
             "(low, high) with 0 < low <= 1 <= high <= 4")


@dataclass(frozen=True)
class PersonExposure:
    """What :func:`tone_map_people` did to one person (for inspection).

    Attributes
    ----------
    index : int
        Position of the person in ``person_masks``.
    gain_ev : float
        Exposure gain applied at the person's skin median (EV; +1 = twice as bright).
    illumination_ev : float
        Estimated illumination of the person relative to the scene (EV; -2 = backlit by 2 stops).
    skin_reflectance : float
        Estimated skin reflectance (linear luminance of the matching Monk-scale tone); NaN
        when ``weight`` is 0 (nothing measured).
    skin_luminance : float
        Median linear luminance of the person's skin in the input; NaN when ``weight`` is 0.
    contrast : float
        Contrast factor applied to the person's base layer (1 = unchanged).
    weight : float
        Matte area used for the statistics, in working-grid pixels (0 = not rendered as a
        person: an empty matte, or no skin in it while skin mattes were given).
    limited : bool
        True when ``gain_ev`` hit ``max_person_ev``, or the lift that would take the
        person's bright end (largest channel) past ``highlight_ceiling`` even with their
        highlights compressed.
    """

    index: int
    gain_ev: float
    illumination_ev: float
    skin_reflectance: float
    skin_luminance: float
    contrast: float
    weight: float
    limited: bool


# ----------------------------------------------------------------------------- validation


def _check_image(image):
    """``(image as float32, min, max)``: the range is kept to skip clipping an in-range image."""
    return check_image(image, check_range=True, return_range=True)


def _check_mask(mask, name: str, shape) -> np.ndarray:
    return check_mask(mask, name, shape)


# ----------------------------------------------------------------------------- helpers


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _guided_coefficients(guide: np.ndarray, src: np.ndarray, r: int, eps: float):
    """Window-averaged guided-filter coefficients (He et al. 2013, Alg. 1), so q = a*guide + b."""
    mean_i = _box(guide, r)
    mean_p = _box(src, r)
    var_i = _box(guide * guide, r) - mean_i * mean_i
    cov_ip = _box(guide * src, r) - mean_i * mean_p
    var_i = np.maximum(var_i, 0.0)
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    return _variance_weighted_mean(a, b, var_i, r, eps)


def _weighted_guided_coefficients(guide, src, weight, r: int, eps: float):
    """Guided-filter coefficients fitted with per-pixel confidence weights.

    The linear model of each window is fitted by weighted least squares (weights = how sure
    the mattes are about a pixel), so mixed pixels on a matte boundary -- whose gain is a
    mixture linear in the matte while the guide is log luminance -- do not bias the fit. That
    bias is what makes a plain guided filter leave a faint halo beside a strong edge.
    Weighted local linear fits as in the weighted guided filter family (Li et al., "Weighted
    Guided Image Filtering", IEEE TIP 2015, weight the regulariser instead; we weight the data).
    """
    wsum = _box(weight, r) + np.float32(1e-6)
    mean_i = _box(weight * guide, r) / wsum
    mean_p = _box(weight * src, r) / wsum
    var_i = _box(weight * guide * guide, r) / wsum - mean_i * mean_i
    cov_ip = _box(weight * guide * src, r) / wsum - mean_i * mean_p
    var_i = np.maximum(var_i, 0.0)
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    return _variance_weighted_mean(a, b, var_i, r, eps)


def _variance_weighted_mean(a, b, var_i, r: int, eps: float):
    """Average the window coefficients weighted by the window's guide variance.

    Every window's line is right on the plateaus it covers; only windows that straddle an
    edge are right on *both* sides. Weighting by variance lets those windows dominate near
    edges, so coefficients upsampled to full resolution stay consistent with both sides of a
    sharp edge that fell inside one working-grid pixel. In flat areas all variances are ~0
    and the weights become uniform (the plain guided filter's averaging).
    """
    wv = var_i + np.float32(0.01 * eps)
    ws = _box(wv, r)
    return _box(wv * a, r) / ws, _box(wv * b, r) / ws


def _upsample(coeff: np.ndarray, shape) -> np.ndarray:
    if coeff.shape == tuple(shape):
        return coeff
    return cv2.resize(coeff, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _downsample(x: np.ndarray, shape) -> np.ndarray:
    if x.shape[:2] == tuple(shape):
        return np.ascontiguousarray(x, dtype=np.float32)
    return cv2.resize(np.asarray(x, dtype=np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _downsample_matte(m: np.ndarray, shape) -> np.ndarray:
    """Area average of an H×W matte onto the working grid, via an exact 2×2 average first.

    OpenCV's area resize is ~5x slower at a fractional factor (12 MP: 28 ms per matte) than at
    an integer one; halving first (integer path, ~2 ms) leaves the fractional step a quarter of
    the pixels. The two steps weigh the pixels on a cell border by their 2×2 block instead of
    by themselves: on a 12 MP photo the tone-mapped output moves by < 0.02/255 (sRGB 8-bit),
    mattes being smooth at that scale. Used only where the factor is >= 4 and the size even.
    """
    h, w = m.shape[:2]
    if (h % 2 or w % 2 or min(h / shape[0], w / shape[1]) < 4.0
            or (h % shape[0] == 0 and w % shape[1] == 0)):  # integer factor: already the fast path
        return _downsample(m, shape)
    half = cv2.resize(np.asarray(m, dtype=np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(half, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _sort_order(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values)`` (ties by index), about 2x faster for float32 values.

    Hack: NumPy sorts int64 with SIMD but argsorts with a scalar loop, so each float32 is
    mapped to an int32 of the same order (negative floats: magnitude bits flipped), packed
    above its index into an int64, and the sorted keys' low halves are the order.
    """
    if values.dtype != np.float32 or values.size >= 1 << 31:
        return np.argsort(values)
    bits = np.ascontiguousarray(values).view(np.int32)
    key = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))
    packed = key.astype(np.int64) << 32
    packed |= np.arange(values.size, dtype=np.int64)
    packed.sort()
    return packed & 0xFFFFFFFF


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q) -> np.ndarray:
    order = _sort_order(values)
    v, w = values[order], weights[order]
    cw = np.cumsum(w)
    cw /= cw[-1]
    return np.interp(np.atleast_1d(q), cw, v)


def _measured_on_skin(person_lo: np.ndarray, skin_lo: np.ndarray) -> bool:
    """Whether a person's matte holds enough skin to measure their light on: skin matte over 0.5
    on 2 % of its area. Decisive skin, not the soft matte: a faint 0.1–0.3 skin response spread
    over a zebra's whole coat summed past 2 % and had it "measured" and lifted by 2 EV."""
    return float((person_lo * (skin_lo > 0.5)).sum()) >= max(4.0, 0.02 * float(person_lo.sum()))


def _midpoint_weighted_median(values, weights) -> float:
    """Weighted median that interpolates between neighbours (each value sits at the centre of its
    weight): equal weights give ``np.median`` exactly, an outlier of small weight moves it little."""
    v, w = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    order = np.argsort(v)
    v, w = v[order], w[order]
    centres = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(0.5, centres, v))


def _monochrome_tint(img: np.ndarray, spread: float) -> "np.ndarray | None":
    """The tint ``(ln R/G, ln B/G)`` of a black-and-white photo, toned or grey; None for any other.

    ``img``: h×w×3 linear RGB in [0, 1], reduced (the working grid; every 2nd pixel of it is
    read). A photo is monochrome when 90 % of its pixels that are neither dark (luminance under
    0.01, where chromaticity is noise) nor clipped (a channel at 0.98 or more) lie within
    ``spread`` of their median chromaticity; that median is its tint (neutral for a grey
    photo), if their luminance also spans 2 EV or more (5th to 95th percentile): a plain field
    of one colour (a wall, a test chart) is not a photograph in black and white. Every other
    photo gives None: its skin colour is measured from neutral as it is.
    """
    if spread <= 0.0:
        return None
    x = np.asarray(img[::2, ::2], np.float32).reshape(-1, 3)  # a median, not a map
    y = x @ _LUMA
    ok = (y > 0.01) & (x.max(axis=1) < 0.98)
    if int(ok.sum()) < max(16, 0.05 * len(x)):
        return None
    lo, hi = np.percentile(y[ok], [5, 95])
    if hi < 4.0 * lo:
        return None
    x = x[ok].astype(np.float64)
    c = np.log(np.maximum(x[:, [0, 2]], 1e-6) / np.maximum(x[:, 1:2], 1e-6))
    tint = np.median(c, axis=0)
    if float(np.percentile(np.hypot(*(c - tint).T), 90)) >= spread:
        return None
    return tint


def monochrome_tint(image: np.ndarray, *, spread: float = ToneMapParams.toned_chroma_spread) -> "np.ndarray | None":
    """The tint of a black-and-white photo, grey or toned (sepia, selenium, cyanotype), or None
    for a colour photo.

    The test :func:`tone_map_people` uses (see ``ToneMapParams.toned_chroma_spread``): 90 % of
    the pixels neither dark nor clipped lie within ``spread`` of their median chromaticity, and
    their luminance spans 2 EV or more. ``camseg.develop`` uses it to let a Photographic Style
    tone such a photo whole, faces included (their colour is the toning's, not skin's).

    Parameters
    ----------
    image : np.ndarray
        float32 H×W×3 linear RGB in [0, 1], any size: read on a copy reduced to 512 pixels on
        its long side.
    spread : float
        In ``(ln R/G, ln B/G)`` units; 0.08, ``ToneMapParams.toned_chroma_spread``'s default.

    Returns
    -------
    np.ndarray or None
        float64 (2,) ``(ln R/G, ln B/G)`` of the tint ((0, 0) for a grey photo), or None.
    """
    img = check_image(image)
    # (A NaN spread passed every comparison: every colour photo was called black and white.)
    if isinstance(spread, bool) or not isinstance(spread, (int, float, np.integer, np.floating)):
        raise TypeError(f"spread: expected a number in [0, 1), got {type(spread).__name__}.")
    if not 0.0 <= spread < 1.0:
        raise ValueError(f"spread: expected a number in [0, 1) (as ToneMapParams.toned_chroma_spread; 0 finds "
                         f"no photo black and white), got {spread!r}.")
    # Every k-th pixel first, then an area average (12 MP: k = 3, 27 ms against 50 ms for the
    # area average of the whole frame, on a 2-core machine).
    # The reduced copy is as large as the tone map's working grid (its default working_size).
    size = ToneMapParams.working_size
    k = max(1, max(img.shape[:2]) // (2 * size))
    img = img[::k, ::k]
    h, w = img.shape[:2]
    scale = min(1.0, size / max(h, w))
    small = _downsample(img, (max(1, round(h * scale)), max(1, round(w * scale))))
    return _monochrome_tint(np.clip(small, 0.0, 1.0), spread)


def _skin_tone_table(samples_per_step: int = 16):
    """Continuum of reference skin tones: (log2 reflectance, ln R/G, ln B/G) along the Monk scale."""
    srgb = np.array([[int(h[i:i + 2], 16) / 255.0 for i in (1, 3, 5)] for h in MONK_SKIN_TONES_SRGB])
    # IEC 61966-2-1 decoding in float64 (this table is data, not image I/O; written out rather
    # than colour-science's cctf_decoding, whose import costs every process 0.3-0.7 s).
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    feats = np.stack([np.log2(lin @ _LUMA.astype(np.float64)),
                      np.log(lin[:, 0] / lin[:, 1]),
                      np.log(lin[:, 2] / lin[:, 1])], axis=1)  # (10, 3)
    t = np.linspace(0.0, len(feats) - 1.0, (len(feats) - 1) * samples_per_step + 1)
    return np.stack([np.interp(t, np.arange(len(feats)), feats[:, j]) for j in range(3)], axis=1)


_SKIN_TABLE = _skin_tone_table()


#: Smallest slope of a lifted person's gain curve above their skin median (see the taper).
_MIN_HIGHLIGHT_SLOPE = 0.3


def _estimate_illumination(log_skin: float, chroma: np.ndarray, log_e0: float, p: ToneMapParams,
                           *, centre: float = 0.0, sigma_scale: float = 1.0):
    """MAP skin reflectance / illumination offset for one person (see module docstring, step 5)."""
    log_rho = _SKIN_TABLE[:, 0]
    d = log_skin - log_rho - log_e0
    dc = _SKIN_TABLE[:, 1:] - chroma[None, :]
    sigma = p.illumination_sigma_ev * sigma_scale
    cost = (d - centre) ** 2 / sigma ** 2
    if float(np.hypot(*chroma)) >= p.grey_skin_chroma:  # a grey photo's skin: no tone to match
        cost = cost + (dc * dc).sum(axis=1) / p.chroma_sigma ** 2
    j = int(np.argmin(cost))
    return float(d[j]), float(2.0 ** log_rho[j])


# ----------------------------------------------------------------------------- full resolution

#: Pixels per strip of the full-resolution pass (~1.5 MB per 3-channel float32 buffer), so
#: every temporary stays in cache instead of costing a fresh full-frame buffer.
_STRIP_PIXELS = 1 << 17


@kernel
def _luminance_rows(x, floor, out):  # pragma: no cover - compiled
    """``out = max(Y, floor)``, Y the Rec. 709 luminance of ``x``: the guide before its log.

    Fuses ``cv2.transform`` and ``cv2.max`` (two passes) into one. ``x``: float32 n×w×3
    linear RGB, C-contiguous; ``floor``: np.float32; ``out``: float32 n×w, C-contiguous.
    """
    lr, lg, lb = _LUMA[0], _LUMA[1], _LUMA[2]
    x_f, out_f = x.reshape(-1), out.reshape(-1)
    for k in range(out_f.size):  # flat: a loop LLVM vectorises
        out_f[k] = max(x_f[3 * k] * lr + x_f[3 * k + 1] * lg + x_f[3 * k + 2] * lb, floor)


@kernel
def _gain_rows(log_y, wide, grid_row, weight, sky, has_sky, knee, ceiling, sky_ceiling, sky_floor,
               fade_start, base, gain):  # pragma: no cover - compiled
    """Gain (ln units) of a strip of the full-resolution pass, from its guide ``ln Y``.

    Fuses what was a chain of about a dozen OpenCV/numpy passes over the strip: the vertical
    step of the bilinear upsampling of the working-grid coefficients (as
    :class:`~effects.mask_refine.RowUpsampler` does it, ``row_i + f (row_{i+1} - row_i)`` with
    cv2.scaleAdd's single rounding), the fast guided filter's ``a ln Y + b`` for the gain and
    the base, the soft shoulder of brightening gains and the sky's ceiling (see
    :func:`_apply_gains`), the old float32 arithmetic pixel by pixel. Row by row, the common
    work in loops without calls (LLVM vectorises them) and the shoulder's ``tanh`` in a second
    loop, only over rows that have a pixel on it.

    Parameters
    ----------
    log_y : np.ndarray
        float32 n×w ``ln max(Y, floor)``, C-contiguous.
    wide : np.ndarray
        float32 4×m×w, C-contiguous: the working-grid rows the strip needs of ``a_gain,
        b_gain, a_base, b_base`` (``b`` already in ln units), each resized along x to the
        frame's width; the row after the grid's last repeats it.
    grid_row : np.ndarray
        int64 (n,): each output row's grid row, as an index into ``wide``'s rows.
    weight : np.ndarray
        float32 (n,): each output row's weight of the next grid row.
    sky : np.ndarray
        float32 n×w sky matte in [0, 1] (read only when ``has_sky``).
    knee, ceiling, sky_ceiling, sky_floor, fade_start : np.float32
        Shoulder knee, highlight ceiling, sky ceiling (ln units); lowest sky gain (ln units);
        ln luminance above which darkening fades to white.
    base, gain : np.ndarray
        float32 n×w outputs, C-contiguous: the base (scratch) and the gain (ln units).

    Returns
    -------
    int
        Number of pixels the white fade applies to (``ln Y > fade_start`` and gain < 0).
    """
    n, w = gain.shape
    zero = np.float32(0.0)
    room_floor = np.float32(1e-6)
    # Flat views of the C-contiguous rows: loops of plain offsets vectorise best.
    log_y_f, sky_f = log_y.reshape(-1), sky.reshape(-1)
    base_f, gain_f = base.reshape(-1), gain.reshape(-1)
    fading = 0
    for i in range(n):
        row = i * w
        on_shoulder = 0
        k, f = grid_row[i], weight[i]
        # One-dimensional views of the grid rows (contiguous loads, vectorised).
        a_g, a_g1, b_g, b_g1 = wide[0, k], wide[0, k + 1], wide[1, k], wide[1, k + 1]
        a_b, a_b1, b_b, b_b1 = wide[2, k], wide[2, k + 1], wide[3, k], wide[3, k + 1]
        for j in range(w):
            ll = log_y_f[row + j]
            g = fma(a_g1[j] - a_g[j], f, a_g[j]) * ll + fma(b_g1[j] - b_g[j], f, b_g[j])
            b = fma(a_b1[j] - a_b[j], f, a_b[j]) * ll + fma(b_b1[j] - b_b[j], f, b_b[j])
            on_shoulder += (g > zero) & (b + g > knee)
            gain_f[row + j] = g
            base_f[row + j] = b
        if on_shoulder:
            for j in range(w):
                g, b = gain_f[row + j], base_f[row + j]
                lifted = b + g
                if g > zero and lifted > knee:
                    # Soft shoulder: m + room tanh(excess / room) above m = max(knee, base).
                    m = max(b, knee)
                    room = max(ceiling - m, room_floor)
                    gain_f[row + j] = (m - b) + math.tanh((lifted - m) / room) * room
        if has_sky:
            # The sky is never brightened; bright sky is brought toward its ceiling:
            # gain += sky (min(gain, cap, 0) - gain), cap = max(sky_ceiling - base, sky_floor).
            for j in range(w):
                g = gain_f[row + j]
                t = min(min(max(sky_ceiling - base_f[row + j], sky_floor), zero), g)
                gain_f[row + j] = g + (t - g) * sky_f[row + j]
        for j in range(w):
            fading += (log_y_f[row + j] > fade_start) & (gain_f[row + j] < zero)
    return fading


@kernel
def _fade_to_white(gain, log_y, coverage, has_coverage, fade_start, fade_slope):  # pragma: no cover - compiled
    """Scale the darkening (negative ``gain``) by ``clip((1 - Y) * slope, 0, 1)`` in place,
    where ``log_y = ln Y`` is above ``fade_start``; the person ``coverage`` in [0, 1] (when
    ``has_coverage``) keeps the darkening there: weight ``1 - (1 - w)(1 - coverage)``.

    Replaces a masked numpy chain (compare, gather, six operations, scatter) by one loop that
    computes ``exp`` only on the near-white pixels it changes. All arrays float32 n×w,
    C-contiguous; ``fade_start``, ``fade_slope``: np.float32.
    """
    n, w = gain.shape
    zero, one = np.float32(0.0), np.float32(1.0)
    gain_f, log_y_f, coverage_f = gain.reshape(-1), log_y.reshape(-1), coverage.reshape(-1)
    for i in range(n):
        row = i * w
        near_white = 0
        for j in range(w):  # a loop without calls (vectorised): most rows have none
            near_white += (gain_f[row + j] < zero) & (log_y_f[row + j] > fade_start)
        if not near_white:
            continue
        for j in range(w):
            g = gain_f[row + j]
            if g < zero and log_y_f[row + j] > fade_start:
                keep = clamp01((one - math.exp(log_y_f[row + j])) * fade_slope)
                if has_coverage:
                    keep = one - (one - keep) * (one - coverage_f[row + j])
                gain_f[row + j] = g * keep


@kernel
def _scale_rows(x, factor, out):  # pragma: no cover - compiled
    """``out = x * factor`` per pixel, and where some channel would pass 1 the factor limited
    to ``1 / largest channel`` (then clipped at 1 against rounding): the pixel is scaled as a
    whole, hue kept, never clipped per channel.

    Fuses a 3-channel merge, the multiply and (in strips with a pixel over 1) a channel
    maximum, a reciprocal, a minimum, a second merge and multiply and a clip. Float32.

    Parameters
    ----------
    x : np.ndarray
        float32 n×w×3 linear RGB in [0, 1], C-contiguous.
    factor : np.ndarray
        float32 n×w, > 0, C-contiguous.
    out : np.ndarray
        float32 n×w×3 output, C-contiguous; values in [0, 1].
    """
    one = np.float32(1.0)
    tiny = np.float32(1e-30)
    x_f, out_f, factor_f = x.reshape(-1), out.reshape(-1), factor.reshape(-1)
    for p in range(factor_f.size):  # flat and branch-free (selects): LLVM vectorises it
        k = 3 * p
        f = factor_f[p]
        # Rounding is monotonic: some channel times f passes 1 iff the largest one does.
        top = max(max(x_f[k], x_f[k + 1]), x_f[k + 2])
        f = min(f, one / max(top, tiny)) if top * f > one else f
        # min(., 1) changes only a limited pixel's channels (the others are <= 1 already).
        out_f[k] = min(x_f[k] * f, one)
        out_f[k + 1] = min(x_f[k + 1] * f, one)
        out_f[k + 2] = min(x_f[k + 2] * f, one)


def _apply_gains(image: np.ndarray, coeffs, sky_mask, p: ToneMapParams, clip_input: bool,
                 people: "np.ndarray | None" = None) -> np.ndarray:
    """Full-resolution pass: fast-guided-filter gains and base, ceilings, hue-preserving gain.

    ``coeffs`` = working-grid ``(a_gain, b_gain, a_base, b_base)``: gain (EV) and base (log2
    luminance) at full resolution are ``a * log2(Y) + b`` with upsampled ``a``, ``b``
    (He & Sun 2015). Works in horizontal strips (every buffer stays cache-sized); per strip,
    the grid rows it reads are resized along x (cv2.resize), and OpenCV's SIMD ``log`` and
    ``exp`` and four compiled one-pass kernels (:func:`_luminance_rows`; :func:`_gain_rows`,
    which also does the upsampling's vertical step; :func:`_fade_to_white` where it applies;
    :func:`_scale_rows`) do the per-pixel work.
    ``clip_input``: clip each strip into a buffer first (values outside [0, 1] within the
    rounding tolerance, or an image that is not C-contiguous); else strips are views of ``image``.
    ``people``: working-grid person coverage in [0, 1] (None: nobody), where the white fade
    does not apply.

    Ceilings: a brightening ``gain > 0`` rolls off where ``base + gain`` passes
    ``m = max(knee, base)``, as ``m + room * tanh(excess / room)``, ``room = ceiling - m``
    (knee ``min(highlight_knee, highlight_ceiling)``): monotonic in base and gain, never below
    ``base``, never above the ceiling (a base at or above it is not brightened at all). A hard
    ceiling instead held every lifted highlight at the same level, a flat plateau. The sky is
    never brightened and bright sky is brought down toward its ceiling. White stays white:
    every darkening off people (highlight compression, the sky ceiling) fades out as the
    pixel's luminance goes from white_fade to 1. Clipped white holds no detail to recover, and
    pulled down it turns a flat grey: white clouds ended at sRGB 240, an all-white frame read
    as sky at a blotchy 0.90-0.94. The factor ``exp(gain)`` is limited to 1 / (largest
    channel) where some channel would exceed 1: the pixel is scaled as a whole (hue kept),
    never clipped per channel.
    """
    h, w = image.shape[:2]
    a_g, b_g, a_b, b_b = coeffs
    # Everything runs in natural-log units (gain and base times ln 2): ln Y comes straight
    # from cv2.log, and exp(gain) is the factor, so no pass converts between log2 and ln.
    # a * log2(Y) + b = (a / ln 2) * ln(Y) + b, and in ln units ln2 * (...) = a * ln(Y) + ln2 * b.
    ln2 = np.float32(_LN2)
    grids = [np.ascontiguousarray(g, np.float32) for g in (a_g, b_g * ln2, a_b, b_b * ln2)]
    # Bilinear upsampling with cv2.resize's mapping (half-pixel centres, edge replicated), as
    # RowUpsampler: output row y blends grid rows grid_row[y] and the next by grid_weight[y].
    lh = grids[0].shape[0]
    source_y = (np.arange(h, dtype=np.float64) + 0.5) * (lh / h) - 0.5
    below = np.floor(source_y)
    grid_row = np.clip(below, 0, lh - 1).astype(np.int64)
    grid_weight = np.where((below < 0) | (below >= lh - 1), 0.0, source_y - below).astype(np.float32)
    out = np.empty((h, w, 3), np.float32)
    rows = max(1, _STRIP_PIXELS // w)
    f32 = np.float32
    hl_ceiling = f32(np.log(p.highlight_ceiling))
    shoulder = f32(np.log(min(p.highlight_knee, p.highlight_ceiling)))
    sky_ceiling = f32(np.log(p.sky_ceiling))
    sky_floor = f32(-float(p.max_local_ev * _LN2))
    fade_white = p.white_fade < 1.0
    log_white_fade = f32(np.log(p.white_fade))
    fade_slope = f32(1.0 / (1.0 - p.white_fade) if fade_white else 0.0)
    y_floor = f32(_Y_FLOOR)
    has_sky = sky_mask is not None
    # The kernels read C-contiguous rows (a no-op for develop()'s mattes); a stand-in when absent.
    sky = read_only_contiguous(np.asarray(sky_mask if has_sky else np.zeros((1, 1)), np.float32))

    def process_rows(y0: int, y1: int) -> None:
        # Buffers per band: the bands run in parallel threads (effects._bands).
        n_max = min(rows, y1 - y0)
        x_buf = np.empty((n_max, w, 3), np.float32) if clip_input else None
        wide_b = np.empty((4, 0, w), np.float32)  # grown to the most grid rows a strip needs
        # The person coverage only where the white fade works (few strips): its own upsampler.
        people_up = RowUpsampler(people, h, w, slice(0, w), n_max) if people is not None else None
        ll_b, g_b, base_b, cov_b = (np.empty((n_max, w), np.float32) for _ in range(4))
        for r0 in range(y0, y1, rows):
            r1 = min(y1, r0 + rows)
            n = r1 - r0
            x = np.clip(image[r0:r1], 0.0, 1.0, out=x_buf[:n]) if clip_input else image[r0:r1]
            # The guide: ln luminance (floored so black stays finite), in OpenCV's SIMD log.
            ll = ll_b[:n]
            _luminance_rows(x, y_floor, ll)
            cv2.log(ll, dst=ll)
            # The grid rows this strip reads (and the next), resized along x; the kernel does
            # the vertical step. (Rows shared with the next strip are resized again: cheaper
            # than the per-row upsampling pass it replaces.)
            first, last = grid_row[r0], grid_row[r1 - 1] + 1
            have = min(last + 1, lh) - first
            if wide_b.shape[1] < last + 1 - first:
                wide_b = np.empty((4, last + 1 - first, w), np.float32)
            for g, grid in enumerate(grids):
                cv2.resize(grid[first:first + have], (w, have), dst=wide_b[g, :have], interpolation=cv2.INTER_LINEAR)
            if have < last + 1 - first:  # the grid's last row: its next is itself (no change)
                wide_b[:, have] = wide_b[:, have - 1]
            gain = g_b[:n]
            fading = _gain_rows(ll, wide_b, grid_row[r0:r1] - first, grid_weight[r0:r1],
                                sky[r0:r1] if has_sky else sky, has_sky, shoulder, hl_ceiling,
                                sky_ceiling, sky_floor, log_white_fade, base_b[:n], gain)
            if fade_white and fading:
                cov = people_up(r0, r1, out=cov_b[:n]) if people_up is not None else cov_b[:n]
                _fade_to_white(gain, ll, cov, people_up is not None, log_white_fade, fade_slope)
            factor = cv2.exp(gain, dst=gain)
            _scale_rows(x, factor, out[r0:r1])

    run_in_row_bands(process_rows, h, w, align=rows)
    return out


# ----------------------------------------------------------------------------- public


#: Pixels of the subsample :func:`dim_photo_lift_ev` reads (a percentile needs no more).
_DIM_SAMPLE = 250_000


def dim_photo_lift_ev(image: np.ndarray, *, params: "ToneMapParams | None" = None) -> float:
    """The exposure lift (EV, >= 0) :func:`tone_map_people` gives a dim, underexposed photo.

    A photo exposed as intended puts its brightest parts near the top of the range (a lamp, a
    white shirt, a sunlit cloud); when even its brightest 0.5 % stays below
    ``params.dim_floor`` (0.3, sRGB 150) the photo is underexposed as a whole (a frisbee
    game at dusk, COCO 322: 0.11), and every later step -- the scene key, each person's
    target light -- would keep it dark. Lifted until that level reaches the floor, by at most
    ``max_dim_lift_ev``. A night scene whose lamps fill at least 0.5 % of the frame has its
    brightest 0.5 % near 1 and is left as it is (one with fewer lamps is lifted); a black frame
    has nothing to lift. Of 350 test photos (``benchmarks/develop_look.py``) three sit below
    the floor.

    Parameters
    ----------
    image : np.ndarray
        float H×W×3 linear RGB in [0, 1].
    params : ToneMapParams, optional
        ``dim_floor`` and ``max_dim_lift_ev`` are read; defaults when None.

    Returns
    -------
    float
        ``min(max_dim_lift_ev, log2(dim_floor / p99.5))`` when positive, else 0.
    """
    if params is not None and not isinstance(params, ToneMapParams):
        raise TypeError(f"params: expected ToneMapParams or None, got {type(params).__name__}.")
    # (Unchecked, NaN pixels gave a 1.5 EV lift and 0-255 values none, without a word.)
    return _dim_lift(check_image(image, "image", check_range=True), ToneMapParams() if params is None else params)


def _dim_lift(image: np.ndarray, p: "ToneMapParams") -> float:
    """:func:`dim_photo_lift_ev` of an image already checked (tone_map_people's own call).

    Measured once per image that camseg's develop vouches for (see effects._validate.vouch):
    develop reports the lift tone_map_people applied, from its own call.
    """
    if p.dim_floor <= 0.0 or p.max_dim_lift_ev <= 0.0:
        return 0.0
    return vouched_memo(image, ("dim_lift", p.dim_floor, p.max_dim_lift_ev), lambda: _measure_dim_lift(image, p))


def _measure_dim_lift(image: np.ndarray, p: "ToneMapParams") -> float:
    """The lift itself: the 99.5th percentile of luminance on a ~250k-pixel subsample."""
    h, w = image.shape[:2]
    step = max(1, int(np.sqrt(h * w / _DIM_SAMPLE)))
    sample = np.asarray(image[::step, ::step], np.float32).reshape(-1, 3)
    bright = float(np.percentile(sample @ _LUMA, 99.5))
    if bright >= p.dim_floor or bright <= 0.0:
        return 0.0
    return float(min(p.max_dim_lift_ev, np.log2(p.dim_floor / max(bright, 1e-6))))


def _lifted(image: np.ndarray, gain: float) -> np.ndarray:
    """``image * gain`` (a new float32 array), each pixel whose largest channel would pass 1
    scaled to 1 as a whole (hue kept, as the tone map's own gains are)."""
    out = np.multiply(image, np.float32(gain), dtype=np.float32)
    top = out.max(axis=2)
    over = top > 1.0
    if over.any():
        out[over] /= top[over][:, None]
    return out


def tone_map_people(
    image: np.ndarray,
    person_masks: Sequence[np.ndarray],
    *,
    skin_masks=None,
    sky_mask: np.ndarray | None = None,
    params: ToneMapParams | None = None,
    return_gains: bool = False,
):
    """Halo-free local tone map with per-person exposure and contrast.

    See the module docstring for the algorithm and for what "a good range" means for a face.

    Parameters
    ----------
    image : np.ndarray
        float H×W×3 linear-light RGB in [0, 1] (float32 preferred). Not modified.
    person_masks : sequence of np.ndarray, or np.ndarray
        One float H×W matte in [0, 1] per person (any number, may be empty), or an H×W×N
        stack of them. Overlapping mattes are normalised where their sum exceeds 1.
    skin_masks : np.ndarray or sequence of np.ndarray, optional
        Skin matte(s), float H×W in [0, 1]. Either one scene-level skin matte shared by all
        people (each person's skin is ``skin * person``, as ``Segmentation.skin`` provides) or
        a sequence (or H×W×N stack) of the same length as ``person_masks``. A person with skin (over 0.5) on
        under 2 % of their matte is then rendered like the scene (no exposure of their own). Without skin
        mattes, a person's statistics use the whole person matte (clothes included), which is
        less accurate.
    sky_mask : np.ndarray, optional
        Sky matte, float H×W in [0, 1]; the sky is excluded from the key and held below
        ``params.sky_ceiling``.
    params : ToneMapParams, optional
        Parameters; ``ToneMapParams()`` when None.
    return_gains : bool
        When True, also return one :class:`PersonExposure` per person.

    Returns
    -------
    np.ndarray or (np.ndarray, tuple of PersonExposure)
        float32 H×W×3 linear RGB in [0, 1]; with ``return_gains`` a tuple
        ``(image, exposures)`` where ``exposures[i]`` describes ``person_masks[i]``.

    Raises
    ------
    TypeError, ValueError
        Wrong types, shapes, ranges or non-finite values, naming the argument.
    """
    image, lo, hi = _check_image(image)
    if params is None:
        params = ToneMapParams()
    elif not isinstance(params, ToneMapParams):
        raise TypeError(f"params: expected a ToneMapParams or None, got {type(params).__name__}.")
    check_flag(return_gains, "return_gains")  # (it decides the return type: a truthy "no" is not a choice)
    if isinstance(person_masks, np.ndarray) and person_masks.ndim == 2:
        raise TypeError("person_masks: expected a sequence of H×W mattes, got one H×W array; wrap it in a list: [mask].")
    hw = image.shape[:2]

    def unstacked(masks):
        # An H×W×N stack, as the portrait effects take it, is N mattes (iterated, it was H rows
        # of W×N: "person_masks[0] … got (64, 2)").
        if isinstance(masks, np.ndarray) and masks.ndim == 3 and masks.shape[:2] == hw:
            return [masks[:, :, k] for k in range(masks.shape[2])]
        return masks

    person_masks, skin_masks = unstacked(person_masks), unstacked(skin_masks)
    try:
        persons = list(person_masks)
    except TypeError:
        raise TypeError(f"person_masks: expected a sequence of float H×W mattes, got {type(person_masks).__name__}.") from None
    persons = [_check_mask(m, f"person_masks[{i}]", hw) for i, m in enumerate(persons)]

    if skin_masks is None:
        skins = [None] * len(persons)
    elif isinstance(skin_masks, np.ndarray) and skin_masks.ndim == 2:
        shared = _check_mask(skin_masks, "skin_masks", hw)
        skins = [shared] * len(persons)
    else:
        try:
            skins = list(skin_masks)
        except TypeError:
            raise TypeError(f"skin_masks: expected an H×W matte, a sequence of them, or None; got {type(skin_masks).__name__}.") from None
        if len(skins) != len(persons):
            raise ValueError(
                f"skin_masks: expected {len(persons)} mattes (one per person) or one shared H×W matte, "
                f"got {len(skins)}; pass one per person or a single scene-level skin matte."
            )
        skins = [_check_mask(m, f"skin_masks[{i}]", hw) for i, m in enumerate(skins)]
    if sky_mask is not None:
        sky_mask = _check_mask(sky_mask, "sky_mask", hw)

    p = params
    h, w = hw
    # -- a dim, underexposed photo is first brightened as a whole (see dim_photo_lift_ev) ------
    lift_ev = _dim_lift(image, p)
    if lift_ev > 0.0:
        image = _lifted(np.clip(image, 0.0, 1.0), 2.0 ** lift_ev)
        lo, hi = 0.0, 1.0
    # -- working grid ----------------------------------------------------------------------------
    scale = min(1.0, p.working_size / max(h, w))
    lh, lw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    # Clipping after the area average equals clipping before it for in-range input (the
    # check allows a 1e-4 rounding tolerance), without a full-resolution clipped copy.
    img_lo = np.clip(_downsample(image, (lh, lw)).reshape(lh, lw, 3), 0.0, 1.0)
    lum_lo = np.maximum(cv2.transform(img_lo, _LUMA[None, :]), _Y_FLOOR)
    log_lo = np.log2(lum_lo).astype(np.float32)
    side = max(lh, lw)
    r_base = max(1, int(round(p.base_radius * side)))
    r_gain = max(1, int(round(p.gain_radius * side)))

    a_b, b_b = _guided_coefficients(log_lo, log_lo, r_base, p.base_eps)
    base_lo = a_b * log_lo + b_b

    persons_lo = [_downsample_matte(m, (lh, lw)) for m in persons]
    sky_lo = _downsample_matte(sky_mask, (lh, lw)) if sky_mask is not None else None
    skins_lo = {}  # a shared scene-level skin matte is downsampled once, not once per person
    for skin in skins:
        if skin is not None and id(skin) not in skins_lo:
            skins_lo[id(skin)] = _downsample_matte(skin, (lh, lw))
    # With skin mattes given, a "person" without skin in it is rendered like the scene around
    # it: its light cannot be measured (a back view, or a false detection: a zebra, whose faint
    # skin response over the whole coat was taken for its skin and lifted it by 2 EV).
    rendered = [i for i, (m_lo, skin) in enumerate(zip(persons_lo, skins))
                if skin is None or _measured_on_skin(m_lo, skins_lo[id(skin)])]
    all_persons = len(persons_lo)
    persons_lo, skins = [persons_lo[i] for i in rendered], [skins[i] for i in rendered]

    # Person mattes normalised where they overlap; coverage in [0, 1].
    if persons_lo:
        total = np.sum(persons_lo, axis=0)
        norm = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0).astype(np.float32)
        persons_lo = [m * norm for m in persons_lo]
        coverage = np.minimum(total, 1.0).astype(np.float32)
    else:
        coverage = np.zeros((lh, lw), np.float32)

    # -- scene key (Reinhard log-average) over pixels that are neither person nor sky -------------
    scene_w = 1.0 - coverage
    if sky_lo is not None:
        scene_w = scene_w * (1.0 - sky_lo)
    if scene_w.sum() < 1e-3 * scene_w.size:  # no background left: use the whole frame
        scene_w = np.ones_like(scene_w)
    key = float((scene_w * log_lo).sum() / scene_w.sum())
    # The scene's light, from "the average scene is scene_grey", is held at or below the white
    # point (the light that puts a white surface at 1): a bright scene (a white backdrop, snow,
    # a beach) breaks the grey assumption, and its key made correctly exposed faces look
    # backlit: a high-key portrait was lifted +1.8 EV and its skin blew out.
    log_e0 = min(key - float(np.log2(p.scene_grey)), 0.0)

    # -- gain field on the working grid ------------------------------------------------------------
    # Shadows under the key are lifted; highlights are lowered only above the knee. The key of
    # a real photo sits far below its midtones (a log-average that deep shadows pull down), so
    # lowering everything above it darkened well-exposed, unclipped scenes by up to a stop
    # (a sunlit building and its pastel sky, ADE_val_00000002: sRGB 143 -> 105 and 202 -> 145).
    knee = max(key, float(np.log2(p.highlight_knee)))
    gain_lo = (np.maximum(key - base_lo, 0.0) - np.maximum(base_lo - knee, 0.0)) * p.local_compression
    gain_lo = np.clip(gain_lo, -p.max_local_ev, p.max_local_ev).astype(np.float32)
    gain_lo *= 1.0 - coverage

    chroma_lo = np.log(np.maximum(img_lo[..., [0, 2]], 1e-6) / np.maximum(img_lo[..., 1:2], 1e-6))  # lh×lw×2
    # A toned black-and-white photo's skin is the toning's colour: measured from the tint it
    # is grey (a sepia portrait's face read as pale skin under-lit and was lifted 1.35 EV).
    tint = _monochrome_tint(img_lo, p.toned_chroma_spread)
    if tint is not None:
        chroma_lo = chroma_lo - tint
    # Largest channel (OpenCV on channel views: numpy's max over a last axis of 3 is 15x slower).
    channel_max_lo = cv2.max(cv2.max(img_lo[..., 0], img_lo[..., 1]), img_lo[..., 2])
    log_channel_max_lo = np.log2(np.maximum(channel_max_lo, np.float32(1e-6)))
    # Pass 1: per-person statistics and a broad-prior illumination estimate.
    stats = []
    for m_lo, skin in zip(persons_lo, skins):
        # Measured on skin (the people without were set aside above), or on the whole matte
        # when no skin matte was given at all.
        # Decisive skin only (every person rendered has some, see _measured_on_skin): a skin
        # response of ~0.4 over a black coat outweighed the face and read the coat's light as
        # the face's (a 2 EV lift turned the coat charcoal, person_binary 79); over the dark
        # hair and jacket of a flash-lit face, it read the face as dim (+1.2 EV to washed-out
        # pink, person_binary 151).
        weight = m_lo if skin is None else m_lo * np.where(skins_lo[id(skin)] > 0.5, skins_lo[id(skin)], 0.0)
        wsum = float(weight.sum())
        sel = weight > 1e-3
        msel = m_lo > 1e-3
        if wsum < 1e-3 or not sel.any():  # (a faint haze that sums up but is nowhere > 1e-3)
            stats.append(None)
            continue
        wv = weight[sel]
        s_i = float(_weighted_quantile(log_lo[sel], wv, 0.5)[0])
        c_i = np.array([_weighted_quantile(chroma_lo[..., j][sel], wv, 0.5)[0] for j in range(2)])
        d1, _ = _estimate_illumination(s_i, c_i, log_e0, p, sigma_scale=2.0)
        q10, q90 = _weighted_quantile(base_lo[msel], m_lo[msel], [0.1, 0.9])
        # The person's bright end and their skin's median, both as the largest channel (log2):
        # what clips is a channel, and one quantity for both keeps a saturated shirt (a channel
        # near 1 at a low luminance) from reading as a span of highlights above the face.
        top95 = float(_weighted_quantile(log_channel_max_lo[msel], m_lo[msel], 0.95)[0])
        skin_top = float(_weighted_quantile(log_channel_max_lo[sel], wv, 0.5)[0])
        spread = max(float(q90 - q10), 1e-3)
        k_i = float(np.clip((p.person_contrast_target_ev / spread) ** p.person_contrast, *p.contrast_limits))
        pivot = float(_weighted_quantile(base_lo[sel], wv, 0.5)[0])
        stats.append((s_i, c_i, d1, k_i, pivot, wsum, top95 - skin_top, top95))

    # Target light: the group's common light (median), lifted to the scene's when darker. With
    # skin mattes given only people measured on their skin are here: a light estimated from
    # clothes (a back view, or a false detection such as a red flag) is a guess, and one guess in
    # a pair moved the median far enough to darken a correctly exposed face by 1 EV.
    # Each voter weighs by the skin (or matte) area measured, so the big face the camera metered
    # for anchors the group; voters under min_voter_weight of the largest do not vote at all (a
    # weighted median can still land on a tiny voter that sits between two big ones).
    voters = [st for st in stats if st is not None]
    if voters:
        heaviest = max(st[5] for st in voters)
        voters = [st for st in voters if st[5] >= p.min_voter_weight * heaviest]
        target = max(_midpoint_weighted_median([st[2] for st in voters], [st[5] for st in voters]), 0.0)
    else:
        target = 0.0

    # Pass 2: MAP with the prior centred on the target; gains bring each person to it.
    exposures = [PersonExposure(i, 0.0, 0.0, float("nan"), float("nan"), 1.0, 0.0, False)
                 for i in range(all_persons)]  # replaced below for every person rendered
    for i, m_lo, st in zip(rendered, persons_lo, stats):
        if st is None:
            continue
        s_i, c_i, _, k_i, pivot, wsum, span, top95 = st
        d_i, rho = _estimate_illumination(s_i, c_i, log_e0, p, centre=target)
        g_i = -p.person_strength * (d_i - target)
        limited = abs(g_i) > p.max_person_ev
        g_i = float(np.clip(g_i, -p.max_person_ev, p.max_person_ev))
        # Highlight roll-off within the person: a lift that would take the person's bright end
        # (95th percentile of the largest channel) past highlight_ceiling tapers above the
        # skin median, reaching the bright end with only the headroom left (fill light, not
        # exposure): a backlit face in shade lifted 1.6 EV blew out the sunlit shoulders.
        # The slope left above the median, k_i - taper, stays at _MIN_HIGHLIGHT_SLOPE or more:
        # the face's own highlights keep their order and some contrast (a full taper flattened
        # and reversed them); the shoulder of the full-resolution pass takes what is left.
        # And the lift itself stops where even that slope would take the bright end past the
        # ceiling: a fill light does not make a face in shade brighter than the person's sunlit
        # skin beside it (COCO 36: +1.6 EV put 43 % of the skin at a channel of 1; +0.64 now).
        headroom = max(float(np.log2(p.highlight_ceiling)) - top95, 0.0)
        if span > 0.1 and g_i > headroom + (1.0 - _MIN_HIGHLIGHT_SLOPE) * span:
            g_i, limited = headroom + (1.0 - _MIN_HIGHLIGHT_SLOPE) * span, True
        taper = min((g_i - headroom) / span, k_i - _MIN_HIGHLIGHT_SLOPE) if g_i > headroom and span > 0.1 else 0.0
        taper = max(taper, 0.0)
        gain_lo += m_lo * (g_i + (k_i - 1.0) * (base_lo - pivot) - taper * np.maximum(base_lo - pivot, 0.0))
        exposures[i] = PersonExposure(i, g_i, d_i, rho, float(2.0 ** s_i), k_i, wsum, bool(limited))

    # -- edge-aware smoothing of the gains, upsampled with the fast guided filter -----------------
    # Confidence: ~1 where every matte is sure (near 0 or 1), ~0 on mixed boundary pixels
    # (|2m - 1|**32: 0.52 at m = 0.99, 0.03 at m = 0.95, ~0 below 0.9).
    confidence = np.ones((lh, lw), np.float32)
    for m in persons_lo + ([sky_lo] if sky_lo is not None else []):
        confidence *= np.abs(2.0 * m - 1.0) ** 32
    confidence = np.maximum(confidence, np.float32(1e-3))
    a_g, b_g = _weighted_guided_coefficients(log_lo, gain_lo.astype(np.float32), confidence, r_gain, p.gain_eps)
    # The clip doubles as the copy that gives OpenCV C-ordered rows when the image is a view
    # in another layout (e.g. rotated by EXIF orientation).
    out = _apply_gains(image, (a_g, b_g, a_b, b_b), sky_mask, p,
                       clip_input=lo < 0.0 or hi > 1.0 or not image.flags.c_contiguous,
                       people=coverage if persons_lo else None)
    if return_gains:
        return out, tuple(exposures)
    return out
