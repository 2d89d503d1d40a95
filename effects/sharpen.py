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
from .noise_profile import _check_image, _check_mask

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
        for name in ("amount", "skin_amount", "sky_amount", "threshold", "overshoot"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ValueError(f"SharpenParams.{name} must be a finite number >= 0; got {v!r}.")
        if isinstance(self.radius, bool) or not isinstance(self.radius, (int, float)) or not (
                np.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"SharpenParams.radius must be a finite number > 0 (Gaussian sigma in px); got {self.radius!r}.")
        if isinstance(self.clamp_radius, bool) or not isinstance(self.clamp_radius, int) or self.clamp_radius < 1:
            raise ValueError(f"SharpenParams.clamp_radius must be an integer >= 1; got {self.clamp_radius!r}.")


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
    img = _check_image(image)
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

    # Region gain map; sky and skin weights renormalised where they overlap above 1.
    if sky is not None and skin is not None:
        over = cv2.max(cv2.add(sky, skin), 1.0)  # (cv2: np.maximum with a scalar is several x slower)
        sky, skin = cv2.divide(sky, over), cv2.divide(skin, over)
    gain = None  # None = uniform p.amount
    if sky is not None and p.sky_amount != p.amount:
        gain = cv2.addWeighted(sky, p.sky_amount - p.amount, sky, 0.0, p.amount)
    if skin is not None and p.skin_amount != p.amount:
        if gain is None:
            gain = cv2.addWeighted(skin, p.skin_amount - p.amount, skin, 0.0, p.amount)
        else:
            gain = cv2.scaleAdd(skin, p.skin_amount - p.amount, gain)
    if gain is None and p.amount == 0 or gain is not None and not gain.any():
        return img.copy()

    # Strips of rows with a halo (Gaussian support + clamp window): the chain of per-pixel
    # operations then runs on cache-resident temporaries instead of ~15 full-frame arrays.
    # Every operation is row-local within the halo, so the result equals whole-frame processing.
    halo = int(np.ceil(4 * p.radius)) + p.clamp_radius + 1
    ksize = 2 * int(np.ceil(4 * p.radius)) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * p.clamp_radius + 1, 2 * p.clamp_radius + 1))
    luma_row = np.full((1, 3), 1.0 / 3.0, np.float32)  # luma consistent with effects.denoise's opponent luma
    t2 = np.float32(p.threshold ** 2)
    top = np.float32(max(1.0, float(img.max())))
    out = np.empty_like(img)
    def process_rows(y0: int, y1: int) -> None:
        for r0 in range(y0, y1, _STRIP):
            r1 = min(y1, r0 + _STRIP)
            e0, e1 = max(0, r0 - halo), min(h, r1 + halo)
            y = cv2.transform(img[e0:e1], luma_row)
            cv2.threshold(y, 0.0, 0.0, cv2.THRESH_TOZERO, dst=y)  # max(y, 0)
            light = cv2.pow(y, 1.0 / 3.0)  # cube root; y >= 0
            blur = cv2.GaussianBlur(light, (ksize, ksize), p.radius, borderType=cv2.BORDER_REFLECT)
            detail = cv2.subtract(light, blur, dst=blur)
            if p.threshold > 0:
                # Soft coring D * D^2 / (D^2 + t^2).
                d2 = cv2.multiply(detail, detail)
                den = cv2.add(d2, float(t2))
                cv2.divide(d2, den, dst=d2)
                cv2.multiply(detail, d2, dst=detail)
            if gain is None:
                sharp = cv2.scaleAdd(detail, float(p.amount), light)
            else:
                sharp = cv2.multiply(detail, gain[e0:e1], dst=detail)
                sharp = cv2.add(sharp, light, dst=sharp)
            # Overshoot clamp to the local range of the original lightness.
            lo = cv2.erode(light, kernel, borderType=cv2.BORDER_REFLECT)
            hi = cv2.dilate(light, kernel, borderType=cv2.BORDER_REFLECT)
            slack = cv2.subtract(hi, lo)
            slack *= np.float32(p.overshoot)
            lo -= slack
            hi += slack
            cv2.max(sharp, lo, dst=sharp)
            cv2.min(sharp, hi, dst=sharp)
            cv2.threshold(sharp, 0.0, 0.0, cv2.THRESH_TOZERO, dst=sharp)  # max(sharp, 0)
            s0, s1 = r0 - e0, r1 - e0
            yc, sc = y[s0:s1], sharp[s0:s1]
            y_new = cv2.multiply(sc, sc)
            y_new *= sc
            # Scale RGB by the luma ratio (keeps chromaticity); near black add the luma change instead.
            dark = yc <= 1e-4
            ratio = cv2.divide(y_new, cv2.max(yc, float(_EPS)))
            any_dark = bool(dark.any())
            if any_dark:
                add = np.zeros_like(ratio)
                ratio[dark] = 1.0
                add[dark] = (y_new - yc)[dark]
            o = cv2.multiply(img[r0:r1], cv2.merge((ratio, ratio, ratio)))
            if any_dark:
                o += cv2.merge((add, add, add))
            np.clip(o, 0.0, top, out=out[r0:r1])

    run_in_row_bands(process_rows, h, w, align=_STRIP)  # strips are independent: one band per thread
    return out
