"""Sky- and skin-aware sharpening: detail-gated unsharp mask with overshoot clamping.

Technique:

1. Sharpen lightness, not colour: ``L = Y^(1/3)`` (the cube root of linear luma, the
   perceptual lightness of CIELAB up to scale) so halos are equally visible on the dark and
   bright side of an edge, and RGB is scaled by ``Y'/Y`` so hue and saturation are kept; a
   brightening stops where the largest channel reaches the top of the range (the whole pixel
   scaled, not a channel clipped: as in :mod:`effects.tone_map`).
2. Unsharp mask (Gaussian high-pass ``D = L - G_sigma * L``), gated by detail: a soft coring
   ``D * D^2 / (D^2 + t^2)`` leaves noise-level detail (|D| below ``threshold``) almost
   unsharpened, so flat areas do not get their grain amplified.
3. Region gain: ``amount`` on textured regions (hair, fabric, foliage), ``skin_amount`` on
   skin, ``sky_amount`` (0 by default) in sky, blended with the soft masks.
4. Halo control: the result is clamped to the local minimum/maximum of the original lightness
   in a small window, widened by ``overshoot`` times the local range. A step edge can then
   overshoot by at most that fraction, however large the amount (the "clamped" / "min-max"
   unsharp masks of camera ISPs and of e.g. Polesel, Ramponi & Mathews 2000, "Image
   enhancement via adaptive unsharp masking", IEEE TIP 9(3)).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._bands import run_in_row_bands
from ._jit import kernel, read_only_contiguous
from ._validate import check_field_types, check_image, through_two_columns
from .noise_profile import _check_mask

__all__ = ["SharpenParams", "sharpen"]

_STRIP = 64  # rows per strip (temporaries stay in cache)


@kernel
def _luma_rows(rgb, out):  # pragma: no cover - compiled
    """``out = max((R + G + B) / 3, 0)``: the luma whose cube root is sharpened (consistent
    with effects.denoise's opponent luma).

    Fuses ``cv2.transform`` and a threshold at 0 (two passes over the strip with its halo)
    into one. ``rgb``: float32 m×w×3 linear RGB, C-contiguous; ``out``: float32 m×w,
    C-contiguous, >= 0.
    """
    third, zero = np.float32(1.0 / 3.0), np.float32(0.0)
    rgb_f, out_f = rgb.reshape(-1), out.reshape(-1)
    for k in range(out_f.size):  # flat: a loop LLVM vectorises
        out_f[k] = max(rgb_f[3 * k] * third + rgb_f[3 * k + 1] * third + rgb_f[3 * k + 2] * third, zero)


@kernel
def _sharpened_rows(rgb, light, blur, lo, hi, luma, mask_a, gain_a, mask_b, gain_b, regions, sky, skin,
                    renormalise, amount, t2, coring, overshoot, top, out):  # pragma: no cover - compiled
    """One strip of :func:`sharpen` after the blur and the min/max filters, in one pass.

    Fuses what was a chain of about twenty OpenCV/numpy passes (each a strip-sized temporary):
    the detail ``D = L - blur`` and its soft coring ``D * D^2 / (D^2 + t^2)``; the region gain
    ``amount + gain_a mask_a [+ gain_b mask_b]``, divided by ``max(sky + skin, 1)`` where both
    mattes are given; ``L' = L + gain D`` clamped to the local range widened by ``overshoot``
    (and to >= 0); ``Y' = L'^3``; RGB scaled by ``Y' / max(Y, 1e-6)``, but at most by
    ``top / max(R, G, B)`` (the hue kept where the largest channel would pass ``top``), or, near
    black (``Y <= 1e-4``), shifted by ``Y' - Y``; the clip to ``[0, top]``. The old float32
    arithmetic, pixel by pixel.

    Parameters
    ----------
    rgb : np.ndarray
        float32 n×w×3 linear RGB of the strip, C-contiguous.
    light, blur, lo, hi, luma : np.ndarray
        float32 n×w, C-contiguous: the lightness ``L = Y^(1/3)``, its Gaussian blur, its local
        minimum and maximum, and the luma ``Y`` (>= 0).
    mask_a, mask_b : np.ndarray
        float32 n×w region mattes in [0, 1] (read when ``regions`` >= 1, resp. 2);
        ``gain_a``, ``gain_b``: np.float32, their gain relative to ``amount``.
    regions : int
        0, 1 or 2: how many region mattes change the gain.
    sky, skin : np.ndarray
        float32 n×w mattes in [0, 1], read when ``renormalise`` (both given) and ``regions``.
    amount, t2, overshoot, top : np.float32
        Gain outside the regions; squared coring threshold (``coring``: whether to core);
        overshoot fraction; the output's upper clip.
    out : np.ndarray
        float32 n×w×3 output, C-contiguous, in [0, top].

    Returns
    -------
    int
        Pixels whose gain is nonzero (``regions`` 0: all of them when ``amount`` != 0).
    """
    n, w = light.shape
    zero, one = np.float32(0.0), np.float32(1.0)
    eps, dark_luma = np.float32(1e-6), np.float32(1e-4)
    widen_own, widen_other = one + overshoot, -overshoot
    # Flat views (C-contiguous inputs) and row buffers: each row is done in loops without
    # branches inside (selects only), which LLVM vectorises; the choices that hold for the whole
    # call (coring, which regions) are made outside the loops.
    rgb_f, out_f, light_f, blur_f = rgb.reshape(-1), out.reshape(-1), light.reshape(-1), blur.reshape(-1)
    lo_f, hi_f, luma_f = lo.reshape(-1), hi.reshape(-1), luma.reshape(-1)
    mask_a_f, mask_b_f, sky_f, skin_f = mask_a.reshape(-1), mask_b.reshape(-1), sky.reshape(-1), skin.reshape(-1)
    detail, gain = np.empty(w, np.float32), np.empty(w, np.float32)
    ratio, shift = np.empty(w, np.float32), np.empty(w, np.float32)
    nonzero = 0
    for i in range(n):
        row = i * w
        if coring:
            for j in range(w):
                d = light_f[row + j] - blur_f[row + j]
                d2 = d * d
                detail[j] = d * (d2 / (d2 + t2))
        else:
            for j in range(w):
                detail[j] = light_f[row + j] - blur_f[row + j]
        if regions == 0:
            gain[:] = amount
        else:
            for j in range(w):
                gain[j] = mask_a_f[row + j] * gain_a
            if regions == 2:
                for j in range(w):
                    gain[j] = gain[j] + mask_b_f[row + j] * gain_b
            if renormalise:
                for j in range(w):
                    gain[j] = gain[j] / max(sky_f[row + j] + skin_f[row + j], one)
            for j in range(w):
                gain[j] = gain[j] + amount
        for j in range(w):
            nonzero += gain[j] != zero
        for j in range(w):
            k = row + j
            sharp = detail[j] * gain[j] + light_f[k]
            # Overshoot clamp: [lo - ov (hi - lo), hi + ov (hi - lo)], never below 0.
            low = max(lo_f[k] * widen_own + hi_f[k] * widen_other, zero)
            high = hi_f[k] * widen_own + lo_f[k] * widen_other
            sharp = min(max(sharp, low), high)
            y_new = sharp * sharp * sharp
            y = luma_f[k]
            # RGB scaled by the luma ratio (chromaticity kept); near black, where a ratio would
            # blow up noise, shifted by the luma change instead (ratio 1: v * 1 + shift is v + shift).
            # The ratio stops where the largest channel reaches ``top``: clipped channel by channel
            # below, a bright saturated pixel changed hue (flowers, shirts and signs next to an edge:
            # up to 2.6 % of a photo's pixels, hue off by 10-29 degrees at the 95th percentile).
            # The cap is >= 1 (no channel is above top), so it only ever limits a brightening.
            dark = y <= dark_luma
            m = 3 * k
            biggest = max(rgb_f[m], rgb_f[m + 1], rgb_f[m + 2])
            ratio[j] = one if dark else min(y_new / max(y, eps), top / max(biggest, eps))
            shift[j] = y_new - y if dark else zero
        for j in range(w):
            k = 3 * (row + j)
            out_f[k] = min(max(rgb_f[k] * ratio[j] + shift[j], zero), top)
            out_f[k + 1] = min(max(rgb_f[k + 1] * ratio[j] + shift[j], zero), top)
            out_f[k + 2] = min(max(rgb_f[k + 2] * ratio[j] + shift[j], zero), top)
    return nonzero


@dataclass(frozen=True)
class SharpenParams:
    """Options of :func:`sharpen`. Defaults live here only.

    Attributes
    ----------
    amount : float
        Unsharp-mask gain on textured regions (outside sky and skin). >= 0; 0 = identity.
    skin_amount : float
        Gain on skin (gentle). >= 0.
    sky_amount : float
        Gain in sky (none by default: sharpening a sky only sharpens its noise). >= 0.
    radius : float
        Gaussian sigma of the unsharp mask, pixels. > 0.
    threshold : float
        Coring threshold on the detail, in lightness units ``Y^(1/3)`` (0–1); detail much
        smaller than this is not amplified. >= 0.
    overshoot : float
        Allowed overshoot beyond the local min/max, as a fraction of the local range. >= 0.
    clamp_radius : int
        Radius (px) of the min/max window used for the clamp. >= 1.
    """

    amount: float = 1.0
    skin_amount: float = 0.35
    sky_amount: float = 0.0
    radius: float = 1.2
    threshold: float = 0.01
    overshoot: float = 0.02
    clamp_radius: int = 1

    def __post_init__(self):
        check_field_types(self)
        for name in ("amount", "skin_amount", "sky_amount", "threshold", "overshoot"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"SharpenParams.{name} must be a finite number >= 0; got {v!r}.")
        # Upper limits: past them OpenCV fails on the kernel size, or a call runs for minutes.
        if not (np.isfinite(self.radius) and 0 < self.radius <= 100):
            raise ValueError(f"SharpenParams.radius must be a number in (0, 100] (Gaussian sigma in px); "
                             f"got {self.radius!r}.")
        if not 1 <= self.clamp_radius <= 100:
            raise ValueError(f"SharpenParams.clamp_radius must be an integer in [1, 100]; got {self.clamp_radius!r}.")


@through_two_columns
def sharpen(image: np.ndarray, *, sky_mask: np.ndarray | None = None, skin_mask: np.ndarray | None = None,
            params: SharpenParams | None = None) -> np.ndarray:
    """Sharpen detail, none in sky, gently on skin, fully on textured regions, without halos.

    Detail-gated unsharp mask on perceptual lightness with min/max overshoot clamping
    (Polesel et al. 2000); see the module docstring.

    Parameters
    ----------
    image : np.ndarray
        float32 H×W×3 linear-light RGB, nominal range [0, 1]. Not modified.
    sky_mask, skin_mask : np.ndarray, optional
        float32 (or bool) H×W soft mattes in [0, 1]. None = no such region.
    params : SharpenParams, optional
        ``SharpenParams()`` when None.

    Returns
    -------
    np.ndarray
        New float32 H×W×3 linear RGB array, clipped to [0, max(1, image.max())].

    Raises
    ------
    TypeError, ValueError
        Bad image, masks of the wrong size or outside [0, 1], NaNs, bad ``params``.
    """
    img, _, hi = check_image(image, return_range=True)  # the maximum sets the output's clip
    h, w, _ = img.shape
    sky = _check_mask(sky_mask, (h, w), "sky_mask")
    skin = _check_mask(skin_mask, (h, w), "skin_mask")
    if params is None:
        params = SharpenParams()
    elif not isinstance(params, SharpenParams):
        raise TypeError(f"`params` must be a SharpenParams or None; got {type(params).__name__}.")
    p = params
    # The identity exits clip below at 0 too, as the docstring promises of every output
    # (img.copy() returned negative input values as they were).
    if p.amount == 0 and p.skin_amount == 0 and p.sky_amount == 0:
        return np.maximum(img, 0.0)
    # Region gain: amount + (sky_amount - amount) sky + (skin_amount - amount) skin, with sky and
    # skin renormalised where they overlap above 1. Only the masks that change the gain are used;
    # the gain is made strip by strip (never a full-frame map: six full-frame passes cost as
    # much as the whole sharpening).
    regions = [(m, a - p.amount) for m, a in ((sky, p.sky_amount), (skin, p.skin_amount))
               if m is not None and a != p.amount]
    renormalise = sky is not None and skin is not None
    if not regions and p.amount == 0:
        return np.maximum(img, 0.0)

    # Strips of rows with a halo (Gaussian support, or clamp window if wider): the lightness,
    # its blur and min/max run on cache-resident strip buffers instead of full-frame arrays, and
    # everything after them is one compiled pass over the strip's own rows (_sharpened_rows).
    # Every operation is row-local within the halo, so the result equals whole-frame processing.
    k_half = int(np.ceil(4 * p.radius))
    ksize = 2 * k_half + 1
    cr = p.clamp_radius
    halo = max(k_half, cr)
    window = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * cr + 1, 2 * cr + 1))
    f32 = np.float32
    # Squared in float64 as before (Python's float ** raised OverflowError past ~1.3e154); a
    # threshold past float32's range (1e30: nothing is sharpened) becomes inf without a warning.
    with np.errstate(over="ignore"):
        t2 = f32(np.float64(p.threshold) ** 2)
    ov = f32(p.overshoot)
    top = f32(max(1.0, hi))
    out = np.empty((h, w, 3), np.float32)  # C-ordered whatever img's layout (a rotated view): OpenCV writes its rows
    # _sharpened_rows reads C-contiguous rows (a no-op for develop()'s mattes); stand-ins where unused.
    # (All read-only, as check_mask returns most mattes: one compiled signature, not one per mix.)
    absent = read_only_contiguous(np.zeros((1, 1), np.float32))
    contiguous = [(read_only_contiguous(m), f32(f)) for m, f in regions]
    (mask_a, gain_a), (mask_b, gain_b) = (contiguous + [(absent, f32(0.0))] * 2)[:2]
    sky_c, skin_c = (read_only_contiguous(sky), read_only_contiguous(skin)) if renormalise else (absent, absent)
    # Whether each band's gain was anywhere nonzero: an all-zero gain (e.g. all sky) returns
    # the input unchanged, as documented for the identity parameters.
    gain_seen = []

    def rows_of(m, r0, r1):
        return m[r0:r1] if m is not absent else m

    def process_rows(y0: int, y1: int) -> None:
        # Buffers per band: the bands run in parallel threads (effects._bands).
        n_max = min(_STRIP, y1 - y0)
        m_max = min(n_max + 2 * halo, h)
        y_b, light_b, blur_b = (np.empty((m_max, w), np.float32) for _ in range(3))
        nonzero = 0
        for r0 in range(y0, y1, _STRIP):
            r1 = min(y1, r0 + _STRIP)
            e0, e1 = max(0, r0 - halo), min(h, r1 + halo)
            m = e1 - e0
            s0, s1 = r0 - e0, r1 - e0
            y = y_b[:m]
            _luma_rows(img[e0:e1], y)
            light = cv2.pow(y, 1.0 / 3.0, dst=light_b[:m])  # cube root (OpenCV's SIMD pow); y >= 0
            blur = cv2.GaussianBlur(light, (ksize, ksize), p.radius, dst=blur_b[:m], borderType=cv2.BORDER_REFLECT)
            # The local range of the original lightness, for the overshoot clamp.
            c0, c1 = max(0, s0 - cr), min(m, s1 + cr)
            lo = cv2.erode(light[c0:c1], window, borderType=cv2.BORDER_REFLECT)[s0 - c0:s1 - c0]
            hi = cv2.dilate(light[c0:c1], window, borderType=cv2.BORDER_REFLECT)[s0 - c0:s1 - c0]
            # Everything after the filters, per pixel in one pass (see _sharpened_rows).
            nonzero += _sharpened_rows(img[r0:r1], light[s0:s1], blur[s0:s1], lo, hi, y[s0:s1],
                                       rows_of(mask_a, r0, r1), gain_a, rows_of(mask_b, r0, r1), gain_b,
                                       len(regions), rows_of(sky_c, r0, r1), rows_of(skin_c, r0, r1),
                                       renormalise, f32(p.amount), t2, p.threshold > 0, ov, top, out[r0:r1])
        gain_seen.append(nonzero > 0)

    run_in_row_bands(process_rows, h, w, align=_STRIP)  # strips are independent: one band per thread
    if not any(gain_seen):
        return np.maximum(img, 0.0)  # the gain is zero everywhere (e.g. all sky at sky_amount 0): identity
    return out
