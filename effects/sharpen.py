"""Sky- and skin-aware sharpening: detail-gated unsharp mask with overshoot clamping.

Technique:

1. Sharpen lightness, not colour: ``L = Y^(1/3)`` (the cube root of linear luma, the
   perceptual lightness of CIELAB up to scale) so halos are equally visible on the dark and
   bright side of an edge, and RGB is scaled by ``Y'/Y`` so hue and saturation are kept.
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
from ._validate import check_field_types, check_image, through_two_columns
from .noise_profile import _check_mask

__all__ = ["SharpenParams", "sharpen"]

_EPS = np.float32(1e-6)
_STRIP = 64  # rows per strip (temporaries stay in cache)


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
    if p.amount == 0 and p.skin_amount == 0 and p.sky_amount == 0:
        return img.copy()
    # Region gain: amount + (sky_amount - amount) sky + (skin_amount - amount) skin, with sky and
    # skin renormalised where they overlap above 1. Only the masks that change the gain are used;
    # the gain is made strip by strip (never a full-frame map: six full-frame passes cost as
    # much as the whole sharpening).
    regions = [(m, a - p.amount) for m, a in ((sky, p.sky_amount), (skin, p.skin_amount))
               if m is not None and a != p.amount]
    renormalise = sky is not None and skin is not None
    if not regions and p.amount == 0:
        return img.copy()

    # Strips of rows with a halo (Gaussian support, or clamp window if wider): the chain of
    # per-pixel operations then runs on cache-resident temporaries instead of ~15 full-frame
    # arrays. Only the lightness and its blur and min/max need the halo rows; everything after
    # them runs on the strip's own rows. Every operation is row-local within the halo, so the
    # result equals whole-frame processing.
    k_half = int(np.ceil(4 * p.radius))
    ksize = 2 * k_half + 1
    cr = p.clamp_radius
    halo = max(k_half, cr)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * cr + 1, 2 * cr + 1))
    luma_row = np.full((1, 3), 1.0 / 3.0, np.float32)  # luma consistent with effects.denoise's opponent luma
    t2 = float(p.threshold ** 2)
    ov = float(p.overshoot)
    top = max(1.0, hi)
    out = np.empty((h, w, 3), np.float32)  # C-ordered whatever img's layout (a rotated view): OpenCV writes its rows
    # Whether each band's gain was anywhere nonzero: an all-zero gain (e.g. all sky) returns
    # the input unchanged, as documented for the identity parameters.
    gain_seen = []

    def process_rows(y0: int, y1: int) -> None:
        # Buffers per band: the bands run in parallel threads (effects._bands).
        n_max = min(_STRIP, y1 - y0)
        m_max = min(n_max + 2 * halo, h)
        y_b, light_b, blur_b = (np.empty((m_max, w), np.float32) for _ in range(3))
        d_b, d2_b, g_b, t_b, lo_b, hi_b = (np.empty((n_max, w), np.float32) for _ in range(6))
        ones = np.ones((n_max, w), np.float32)
        r3_b = np.empty((n_max, w, 3), np.float32)
        dark_b = np.empty((n_max, w), bool)
        any_gain = False
        for r0 in range(y0, y1, _STRIP):
            r1 = min(y1, r0 + _STRIP)
            n = r1 - r0
            e0, e1 = max(0, r0 - halo), min(h, r1 + halo)
            m = e1 - e0
            s0, s1 = r0 - e0, r1 - e0
            y = cv2.transform(img[e0:e1], luma_row, dst=y_b[:m])
            cv2.threshold(y, 0.0, 0.0, cv2.THRESH_TOZERO, dst=y)  # max(y, 0)
            light = cv2.pow(y, 1.0 / 3.0, dst=light_b[:m])  # cube root; y >= 0
            blur = cv2.GaussianBlur(light, (ksize, ksize), p.radius, dst=blur_b[:m], borderType=cv2.BORDER_REFLECT)
            lc = light[s0:s1]
            detail = cv2.subtract(lc, blur[s0:s1], dst=d_b[:n])
            if p.threshold > 0:
                # Soft coring D * D^2 / (D^2 + t^2).
                d2 = cv2.multiply(detail, detail, dst=d2_b[:n])
                den = cv2.add(d2, t2, dst=t_b[:n])
                cv2.divide(d2, den, dst=d2)
                cv2.multiply(detail, d2, dst=detail)
            if regions:
                gain = g_b[:n]
                if len(regions) == 2:
                    (ma, fa), (mb, fb) = regions
                    cv2.addWeighted(ma[r0:r1], fa, mb[r0:r1], fb, 0.0, dst=gain)
                else:
                    (ma, fa), = regions
                    cv2.multiply(ma[r0:r1], fa, dst=gain)
                if renormalise:
                    over = cv2.add(sky[r0:r1], skin[r0:r1], dst=t_b[:n])
                    cv2.max(over, 1.0, dst=over)
                    cv2.divide(gain, over, dst=gain)
                gain += np.float32(p.amount)
                any_gain = any_gain or bool(cv2.countNonZero(gain))
                sharp = cv2.multiply(detail, gain, dst=detail)
                sharp += lc
            else:
                any_gain = True  # a uniform nonzero amount
                sharp = cv2.scaleAdd(detail, float(p.amount), lc, dst=detail)
            # Overshoot clamp to the local range of the original lightness, widened by
            # overshoot * range: [lo - ov (hi - lo), hi + ov (hi - lo)], and never below 0.
            c0, c1 = max(0, s0 - cr), min(m, s1 + cr)
            lo = cv2.erode(light[c0:c1], kernel, borderType=cv2.BORDER_REFLECT)[s0 - c0:s1 - c0]
            hi = cv2.dilate(light[c0:c1], kernel, borderType=cv2.BORDER_REFLECT)[s0 - c0:s1 - c0]
            lo_w = cv2.addWeighted(lo, 1.0 + ov, hi, -ov, 0.0, dst=lo_b[:n])
            hi_w = cv2.addWeighted(hi, 1.0 + ov, lo, -ov, 0.0, dst=hi_b[:n])
            cv2.max(lo_w, 0.0, dst=lo_w)  # hi_w >= hi >= 0, so this also floors the result at 0
            cv2.max(sharp, lo_w, dst=sharp)
            cv2.min(sharp, hi_w, dst=sharp)
            yc = y[s0:s1]
            y_new = cv2.multiply(sharp, sharp, dst=d2_b[:n])
            y_new *= sharp
            # Scale RGB by the luma ratio (keeps chromaticity); near black add the luma change instead.
            ratio = cv2.divide(y_new, cv2.max(yc, float(_EPS), dst=t_b[:n]), dst=g_b[:n])
            dark = np.less_equal(yc, np.float32(1e-4), out=dark_b[:n]).view(np.uint8)  # a 0/1 mask for OpenCV
            any_dark = cv2.countNonZero(dark) > 0
            if any_dark:
                cv2.copyTo(ones[:n], dark, ratio)  # ratio = 1 where dark
                add = d_b[:n]
                add.fill(0.0)
                cv2.subtract(y_new, yc, dst=add, mask=dark)  # y_new - y where dark, 0 elsewhere
            o = cv2.multiply(img[r0:r1], cv2.merge((ratio, ratio, ratio), dst=r3_b[:n]), dst=out[r0:r1])
            if any_dark:
                o += cv2.merge((add, add, add), dst=r3_b[:n])
            np.clip(o, 0.0, top, out=o)
        gain_seen.append(any_gain)

    run_in_row_bands(process_rows, h, w, align=_STRIP)  # strips are independent: one band per thread
    if not any(gain_seen):
        return img.copy()  # the gain is zero everywhere (e.g. all sky at sky_amount 0): identity
    return out
