"""Portrait lens blur: defocus the background the way a fast lens does, without halos.

The naive "portrait mode" (Gaussian-blur the frame, paste the subject back)
fails in three visible ways: the subject's colours are blurred into the
background (a coloured halo), highlights are averaged into grey mush instead of
bright discs, and the pasted edge is hard and carries the old sharp background
inside the hair. This module renders instead:

1. **Subject matte.** The subject (union of person mattes), hair and glasses
   mattes are refined against the photo in a band around the given edge
   (:func:`subject_alpha`: guided filter, plus a colour-line alpha from local
   subject/background colours that resolves hair strands, with a spatial prior
   toward the given mask), so hair and glasses rims become soft,
   semi-transparent alpha.
2. **Background behind the subject.** Everything the subject covers (dilated a
   little) is removed and filled from the surrounding background by pull-push
   interpolation (Gortler et al., "The Lumigraph", SIGGRAPH 1996), so the blur
   never gathers subject colour.
3. **Lens blur.** In linear light, with a disk (or polygonal aperture) kernel
   whose radius follows a defocus map: constant behind the subject from masks
   alone, or the thin-lens circle of confusion ``r = r_inf · |1 − z_f / z|``
   when a depth map is given. Near-clipped highlights are boosted before the
   blur (their true energy was clipped by the sensor) so they bloom into bright
   discs. Speed: the defocus radii are quantised to a geometric ladder of
   layers; each layer is blurred on the pyramid level where its kernel is at
   most 11×11 pixels, and layers are blended per pixel by the local radius
   (a defocus-layered gather, cf. Kraus & Strengert, "Depth-of-Field Rendering
   by Pyramidal Image Processing", Eurographics 2007).
4. **Grain.** The blur removes sensor noise, which makes the background look
   pasted; noise with the photo's own measured level (Immerkær, "Fast noise
   variance estimation", CVIU 1996, per brightness bin) is added back in
   proportion to what the blur removed, correlated between the channels as the
   photo's noise is (a camera's is mostly luminance; independent per-channel
   grain looked like coloured confetti).
5. **Composite with colour decontamination.** At soft edges the observed colour
   is a mix of subject and the old sharp background; the subject colour is
   re-estimated (Germer et al., "Fast Multi-Level Foreground Estimation", ICPR
   2020) before compositing ``α·F + (1 − α)·B_blur``.

Speed: every smooth quantity (colour-line terms, guided-filter coefficients,
the blurred background, the grain level, the foreground/background colour
estimates) lives on a reduced grid; the full-resolution work -- band alpha,
background, grain and composite -- runs in strips of 32 rows, each strip in one
compiled pass per step (``effects._jit`` kernels: :func:`_band_alpha_rows`,
:func:`_background_rows`, :func:`_composite_rows`) that upsamples those grids
per pixel, in registers, from the grid rows ``effects.mask_refine.RowUpsampler``
hands it. Whole 12 MP temporaries cost more in page faults and memory traffic
than the arithmetic, and a chain of numpy/OpenCV calls makes one pass per
operation even on a strip; the result does not depend on the strip height. The
per-pixel matte and compositing formulas run only where they matter (the band
around the subject's edge, 0 < α). Steps that need only the
photo (highlight gains, noise level, grain) or only the alpha (the foreground
colour grids) run on a side thread, overlapping the single-threaded parts of the
alpha refinement and the background pyramid.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import cv2
import numpy as np

from effects._bands import later, run_in_row_bands, side_thread
from effects._jit import clamp01, kernel, lerp_at
from effects._validate import check_field_types, check_image, check_mask, through_two_columns
from effects._validate import resize as _resize
from effects.mask_refine import (GuidedStrips, RefineMatteParams, RowUpsampler,
                                 sample_at)

__all__ = ["PortraitBlurParams", "portrait_blur", "disk_kernel", "estimate_noise_sigma"]


@dataclass(frozen=True)
class PortraitBlurParams:
    """Options of :func:`portrait_blur`.

    Attributes
    ----------
    f_number : float
        Aperture-like strength: the background blur radius at infinity is
        ``blur_scale / f_number × image diagonal``, at most the diagonal. Smaller = stronger
        blur (f/1.4 strong, f/8 subtle), independent of the image's pixel size.
    blur_scale : float
        Calibration of ``f_number``: at the default 0.03, f/2 gives a radius of
        1.5 % of the diagonal (like an 85 mm f/2 head-and-shoulders portrait on
        full frame).
    aperture_blades : int
        0 for a circular aperture; 5 to 12 for a polygonal one.
    aperture_rotation : float
        Rotation of a polygonal aperture, degrees.
    highlight_threshold : float
        Linear brightness (max over channels) above which pixels are treated as
        clipped highlights and boosted before blurring.
    highlight_gain : float
        Extra energy given to fully clipped pixels of small highlights
        (×(1 + gain)); 0 disables.
    match_grain : bool
        Add back the photo's measured noise where the blur removed it.
    refine : bool
        Refine the masks against the photo (guided filter). Turn off when the
        masks are already refined full-resolution mattes.
    refine_params : RefineMatteParams
        Options of that refinement.
    refine_band : float
        Half-width of the band around the given mask edge where the refined
        matte is trusted, as a fraction of the image diagonal (min 2 px);
        deeper inside (outside) the subject alpha stays 1 (0).
    edge_dilation : int
        Pixels by which the subject is grown when deciding what background to
        remove and fill (covers mask inaccuracy; subject colour must not enter
        the blur).
    radius_ratio : float
        Ratio between consecutive blur radii of the layer ladder (> 1); smaller
        is more exact and slower.
    matte_floor : float
        Matte values below this are taken as 0. Mattes predicted by a
        segmentation model carry a faint floor over the whole frame (0.02–0.1);
        left in, every pixel would count as touched by the subject and the
        background fill would have nothing to fill from (the background turns
        black). Hair and glasses mattes are also only trusted within three
        ``refine_band`` of the subject: a stray hair response on a far wall is
        not part of the subject.
    seed : int
        Seed of the grain generator (the function is deterministic).
    """

    f_number: float = 2.0
    blur_scale: float = 0.03
    aperture_blades: int = 0
    aperture_rotation: float = 0.0
    highlight_threshold: float = 0.95
    highlight_gain: float = 4.0
    match_grain: bool = True
    refine: bool = True
    refine_params: RefineMatteParams = field(default_factory=lambda: RefineMatteParams(radius=4, eps=1e-3, max_work_pixels=250_000))
    refine_band: float = 0.02
    edge_dilation: int = 2
    radius_ratio: float = 1.25
    matte_floor: float = 0.1
    seed: int = 0

    def __post_init__(self):
        check_field_types(self)
        def bad(name, expected):
            raise ValueError(f"PortraitBlurParams.{name}: expected {expected}, got {getattr(self, name)!r}.")

        if not (np.isfinite(self.f_number) and self.f_number > 0):
            bad("f_number", "a finite number > 0 (e.g. 1.4, 2.8)")
        if not (np.isfinite(self.blur_scale) and self.blur_scale >= 0):
            bad("blur_scale", "a finite number >= 0")
        if self.aperture_blades != 0 and not 3 <= self.aperture_blades <= 16:
            bad("aperture_blades", "0 (circular) or an integer in [3, 16]")
        if not (0 < self.highlight_threshold <= 1):
            bad("highlight_threshold", "a number in (0, 1]")
        if not (np.isfinite(self.highlight_gain) and self.highlight_gain >= 0):
            bad("highlight_gain", "a finite number >= 0")
        if not 0 <= self.edge_dilation <= 1024:
            bad("edge_dilation", "an integer in [0, 1024]")
        if not (1.01 <= self.radius_ratio <= 2.0):
            bad("radius_ratio", "a number in [1.01, 2]")
        if not (0 <= self.matte_floor < 1):
            bad("matte_floor", "a number in [0, 1)")
        # (Unchecked, these failed inside the call, or seed=None made two calls differ.)
        if not np.isfinite(self.aperture_rotation):
            bad("aperture_rotation", "a finite angle in degrees")
        if not _is_refine_band(self.refine_band):
            bad("refine_band", _REFINE_BAND_EXPECTED)
        if self.seed < 0:
            bad("seed", "an integer >= 0 (the grain is the same for the same seed)")


# --------------------------------------------------------------------------- validation
_check_image = check_image

#: What ``refine_band`` (of both portrait effects' params) must be, as their errors say it.
_REFINE_BAND_EXPECTED = "a number in [0, 0.5] (a fraction of the image diagonal)"


def _is_refine_band(value: float) -> bool:
    """Whether a ``refine_band`` (a number: the params' field check saw to that) is in [0, 0.5]."""
    return 0 <= value <= 0.5


def _max_planes(m: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the last axis of an H×W×K float32 stack, as a new H×W array.

    Why: ``ndarray.max(axis=2)`` over a short last axis is a slow strided
    reduction (~0.1 s per 12 MP plane); cv2.max on contiguous planes is not.
    """
    out = np.array(m[:, :, 0], dtype=np.float32)  # always a copy: callers may own or alias m
    for k in range(1, m.shape[2]):
        cv2.max(out, np.ascontiguousarray(m[:, :, k], dtype=np.float32), dst=out)
    return out


def _check_mask(mask, name: str, hw: tuple[int, int], *, allow_stack: bool = False, own: bool = True) -> np.ndarray:
    """Validate a matte (H×W, or H×W×N when ``allow_stack``) and return an H×W float32 union.

    With ``own`` the result is this module's own array (the stages below modify it in
    place); without, it may be a read-only view of the caller's matte (no 12 MP copy for a
    caller that writes its result elsewhere).
    """
    m = check_mask(mask, name, hw, allow_stack=allow_stack)
    if m.ndim == 3:
        m = _max_planes(m) if m.shape[2] else np.zeros(hw, np.float32)  # several people share the focal plane
    return m if m.flags.writeable or not own else m.copy()


# --------------------------------------------------------------------------- building blocks
def disk_kernel(radius: float, *, blades: int = 0, rotation: float = 0.0, supersample: int = 8) -> np.ndarray:
    """Anti-aliased aperture kernel: a disk, or a regular polygon with ``blades`` sides.

    Parameters
    ----------
    radius : float
        Radius in pixels (circumradius for a polygon), > 0.
    blades : int
        0 for a circle, else the number of polygon sides (>= 3).
    rotation : float
        Polygon rotation in degrees.
    supersample : int
        Sub-pixel samples per axis used for the anti-aliased coverage.

    Returns
    -------
    np.ndarray
        (2·ceil(radius)+1)² float32 kernel, sums to 1.
    """
    if not radius > 0:
        raise ValueError(f"radius: expected > 0, got {radius!r}.")
    n = int(np.ceil(radius))
    s = supersample
    ax = (np.arange((2 * n + 1) * s, dtype=np.float64) + 0.5) / s - (n + 0.5)
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    if blades:
        theta = np.deg2rad(rotation) + (2 * np.arange(blades) + 1) * np.pi / blades
        apothem = radius * np.cos(np.pi / blades)
        inside = np.ones_like(xx, dtype=bool)
        for t in theta:
            inside &= xx * np.cos(t) + yy * np.sin(t) <= apothem
    else:
        inside = xx * xx + yy * yy <= radius * radius
    k = inside.reshape(2 * n + 1, s, 2 * n + 1, s).mean(axis=(1, 3)).astype(np.float32)
    return k / k.sum()


_NOISE_BINS, _NOISE_ROWS = 8, 96  # estimate_noise_sigma's defaults, shared by _grain_statistics


def estimate_noise_sigma(image: np.ndarray, *, bins: int = _NOISE_BINS,
                         rows: int = _NOISE_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel noise σ as a function of brightness (robust Immerkær estimator).

    The Laplacian-of-Laplacian mask ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` cancels
    smooth image structure; its response to white noise has σ·6. A median
    absolute value (× 1.4826) is robust to edges (Immerkær, "Fast Noise Variance
    Estimation", CVIU 64(2), 1996), but not to fine texture that fills a
    brightness range (foliage, gravel): the median is taken per brightness bin
    in each tile of a 4×4 grid, and the bin's σ is the smallest over the tiles
    that hold at least 256 of its samples -- the noise is the same everywhere
    at a given brightness, texture is not, so the least textured tile gives it
    (the weak-texture idea of Liu, Tanaka & Okutomi, "Single-image noise level
    estimation for blind denoising", IEEE TIP 22(12), 2013). The minimum reads
    pure noise ~12 % low, the safe side for grain. A bin seen in fewer than 3
    such tiles keeps its whole-frame median. Where texture fills every tile (a
    jungle) it is still read as noise.

    Parameters
    ----------
    image : np.ndarray
        H×W×3 float32 linear RGB in [0, 1].
    bins : int
        Brightness bins.
    rows : int
        Approximate number of sampled rows (speed on large images).

    Returns
    -------
    centers : np.ndarray
        (bins,) float32 brightness bin centres (mean of channels, linear).
    sigma : np.ndarray
        (bins, 3) float32 noise σ per bin and channel (linear units).
    """
    responses = _immerkaer_responses(image, rows)
    if responses is None:
        return np.linspace(0, 1, bins, dtype=np.float32), np.zeros((bins, 3), np.float32)
    return _sigma_by_brightness(*responses, bins)


_NOISE_TILES = 4  # tiles per side of the grid whose least textured ones give the noise σ
_MIN_TILE_SAMPLES = 256  # responses a tile needs in a brightness bin to count there


def _immerkaer_responses(image: np.ndarray, rows: int) -> "tuple[np.ndarray, np.ndarray, np.ndarray] | None":
    """The mask's response (N×3 float32, signed), mean-of-channels brightness (N,) and tile of
    the ``_NOISE_TILES``² grid (N, int) at the pixels of about ``rows`` rows spread over the
    image; None below 3×3 pixels."""
    H, W = image.shape[:2]
    if H < 3 or W < 3:
        return None
    # Sample bands of 3 rows (the mask's support) spread over the image.
    starts = np.unique(np.linspace(0, H - 3, min(rows, H - 2)).astype(int))
    band = np.concatenate([image[s : s + 3] for s in starts], axis=0)
    kern = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32) / 6.0
    # One filter over the stacked bands (not one call per band): the centre row of each 3-row
    # band sees only its own band, so its response is the same.
    resp = cv2.filter2D(band, -1, kern, borderType=cv2.BORDER_REFLECT)[1::3, 1:-1]
    t = _NOISE_TILES
    tile = ((starts * t // H)[:, None] * t + (np.arange(1, W - 1) * t // W)[None, :]).reshape(-1)
    return resp.reshape(-1, 3), band[1::3, 1:-1].mean(axis=2).reshape(-1), tile


def _sigma_by_brightness(resp: np.ndarray, lum: np.ndarray, tile: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`estimate_noise_sigma` from the responses of :func:`_immerkaer_responses`."""
    # Channels first and contiguous: medians along the short last axis of an N×3 array are
    # slow strided partitions.
    resp = np.ascontiguousarray(np.abs(resp).T)  # 3×N
    edges = np.quantile(lum, np.linspace(0, 1, bins + 1))
    centers = np.zeros(bins, np.float32)
    sigma = np.zeros((bins, 3), np.float32)
    idx = np.clip(np.searchsorted(edges, lum, side="right") - 1, 0, bins - 1)
    # Sorted by (bin, tile) once: each group is then a contiguous slice, group g being
    # bounds[g]:bounds[g + 1] and bin b the groups b * per to (b + 1) * per.
    per = _NOISE_TILES ** 2
    key = idx * per + tile
    order = np.argsort(key, kind="stable")
    resp, lum_sorted = resp[:, order], lum[order]
    bounds = np.searchsorted(key[order], np.arange(bins * per + 1))
    for b in range(bins):
        edges = bounds[b * per:(b + 1) * per + 1]  # the bin's tile groups
        lo, hi = edges[0], edges[-1]
        if hi > lo:
            centers[b] = lum_sorted[lo:hi].mean()
            tiles = [np.median(resp[:, s:e], axis=1) for s, e in zip(edges[:-1], edges[1:])
                     if e - s >= _MIN_TILE_SAMPLES]
            typical = np.min(tiles, axis=0) if len(tiles) >= 3 else np.median(resp[:, lo:hi], axis=1)
            sigma[b] = 1.4826 * typical
        elif b:
            centers[b], sigma[b] = centers[b - 1], sigma[b - 1]
    order = np.argsort(centers, kind="stable")
    return centers[order], sigma[order]


def _channel_correlation(resp: np.ndarray) -> float:
    """Mean correlation, over the three channel pairs, of the responses of
    :func:`_immerkaer_responses` (N×3), in [0, 1].

    A camera's noise after demosaicing, its own noise reduction and JPEG's subsampled chroma is
    mostly luminance: the channels' noise moves together. Grain drawn independently per channel
    instead looks like coloured confetti (a blurred jungle background, COCO 61). Responses are
    clipped at 3 median absolute values so a few edges do not decide it.
    """
    resp = np.ascontiguousarray(resp.T).astype(np.float64)  # 3×N
    limit = 3.0 * np.median(np.abs(resp), axis=1, keepdims=True) + 1e-12
    np.clip(resp, -limit, limit, out=resp)
    resp -= resp.mean(axis=1, keepdims=True)
    norm = np.sqrt((resp * resp).sum(axis=1))
    if not (norm > 0).all():
        return 0.0
    c = (resp @ resp.T) / np.outer(norm, norm)
    return float(np.clip((c[0, 1] + c[0, 2] + c[1, 2]) / 3.0, 0.0, 1.0))


def _grain_statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(centres, σ) of :func:`estimate_noise_sigma` and the channels' noise correlation, from
    one pass of the mask over the sampled rows."""
    responses = _immerkaer_responses(image, _NOISE_ROWS)
    if responses is None:
        return (*estimate_noise_sigma(image), 0.0)  # (its values for an image under 3×3)
    return (*_sigma_by_brightness(*responses, _NOISE_BINS), _channel_correlation(responses[0]))


def _pull(premult: np.ndarray, weight: np.ndarray, levels: int) -> tuple[list, list]:
    """Pull phase: INTER_AREA halving of weight-premultiplied colour and weight.

    Continues past ``levels`` until no hole is left (or 1×1), so the push can
    fill any hole. Gortler, Grzeszczuk, Szeliski, Cohen, "The Lumigraph", 1996.
    """
    P, Wt = [premult], [weight]
    while (P[-1].shape[0] > 1 or P[-1].shape[1] > 1) and (len(P) <= levels or Wt[-1].min() <= 1e-6):
        h, w = P[-1].shape[:2]
        hw = ((h + 1) // 2, (w + 1) // 2)
        P.append(_resize(P[-1], hw, cv2.INTER_AREA))
        Wt.append(_resize(Wt[-1], hw, cv2.INTER_AREA))
    return P, Wt


def _push(P: list, Wt: list, finest: int) -> dict:
    """Push phase down to level ``finest``: ``filled_k = P_k + (1 − w_k)·up(filled_{k+1})``.

    Known pixels keep their colour, holes take the coarser interpolation.
    Returns {level: filled image} for levels >= ``finest``.
    """
    top = P[-1] / np.maximum(Wt[-1], 1e-6)[..., None]
    filled = {len(P) - 1: np.where(Wt[-1][..., None] > 1e-6, top, 0.0).astype(np.float32)}
    for k in range(len(P) - 2, finest - 1, -1):
        up = _resize(filled[k + 1], P[k].shape[:2], cv2.INTER_LINEAR)
        filled[k] = P[k] + (1.0 - Wt[k])[..., None] * up
    return filled


def _highlight_gains(img: np.ndarray, threshold: float, gain: float, radius: float):
    """Give small near-clipped highlights back some of the energy the sensor clipped.

    Why: a point light is far brighter than the clipped value 1.0; without a
    boost its blurred disc is dim grey instead of a bright bokeh ball. Only
    *small* highlights are boosted -- where near-clipped pixels cover less than
    ~10 % of the lens disc around them -- so a white wall or an overcast sky
    is not turned into a glowing blob. Gain ``1 + gain·s²·c`` with ``s`` the
    position of the brightest channel in [threshold, 1] and ``c`` that
    smallness factor, for the few highlight pixels only (sparse: a per-pixel
    channel max over 12 MP would cost more than the whole blur).

    Returns
    -------
    ys, xs : np.ndarray
        Row and column of each highlight pixel, in row-major order (empty if none).
    factor : np.ndarray
        (N,) float32 multiplier of each pixel's colour.
    """
    none = (np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float32))
    if gain <= 0 or threshold >= 1:
        return none
    H, W = img.shape[:2]
    # Pixels with any channel above the threshold: inRange marks "all channels <= threshold".
    low = cv2.inRange(img, (-float(np.finfo(np.float32).max),) * 3, (float(threshold),) * 3)
    pts = cv2.findNonZero(cv2.bitwise_not(low))  # (x, y) points in row-major order, or None
    if pts is None:
        return none
    pts = pts.reshape(-1, 2)
    xs, ys = pts[:, 0].astype(np.intp), pts[:, 1].astype(np.intp)
    peak = img[ys, xs].max(axis=1)
    s = np.clip((peak - threshold) / (1.0 - threshold), 0.0, 1.0)
    # Fraction of highlight pixels within the lens disc, on a grid where the disc is ~8 cells.
    f = max(1, int(radius / 8))
    gh, gw = -(-H // f), -(-W // f)
    count = np.bincount((ys // f) * gw + xs // f, minlength=gh * gw).reshape(gh, gw).astype(np.float32)
    k = max(1, int(round(radius / f)))
    frac = cv2.blur(count / (f * f), (2 * k + 1, 2 * k + 1), borderType=cv2.BORDER_REFLECT)
    small = np.clip(1.0 - frac[ys // f, xs // f] / 0.1, 0.0, 1.0)
    return ys, xs, (1.0 + gain * s * s * small).astype(np.float32)


def _background_level1(img: np.ndarray, keep: np.ndarray, boost: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Level 1 of the pull pyramid of the masked, highlight-boosted background, strip by strip.

    Equals ``INTER_AREA`` halving of ``img·keep`` (boosted) and of ``keep`` for
    even H and W (2×2 means, so 64-row strips halve independently) without
    forming the full-resolution premultiplied frame (a 12 MP × 3 temporary
    whose page faults alone cost more than the halving).

    Parameters
    ----------
    img : np.ndarray
        H×W×3 float32 photo, H and W even.
    keep : np.ndarray
        H×W uint8, 1 where the background is kept, 0 where it is removed.
    boost : tuple
        ``(ys, xs, factor)`` of :func:`_highlight_gains`.
    """
    H, W = keep.shape
    S = 2 * _STRIP_ROWS
    P1 = np.empty((H // 2, W // 2, 3), np.float32)
    W1 = np.empty((H // 2, W // 2), np.float32)
    ys, xs, factor = boost
    # An exact 2× reduction with bilinear weights at half-pixel centres is the 2×2 mean,
    # i.e. INTER_AREA, at half its cost.
    half = cv2.INTER_LINEAR

    def process_rows(r0: int, r1: int) -> None:
        # Buffers per band: the bands run in parallel threads.
        buf = np.empty((S, W, 3), np.float32)
        w3 = np.empty((S, W, 3), np.float32)
        wbuf = np.empty((S, W), np.float32)
        for y0 in range(r0, r1, S):
            y1 = min(r1, y0 + S)
            n = y1 - y0
            wb = wbuf[:n]
            np.copyto(wb, keep[y0:y1])  # 0/1 as float32
            # masked copy as a product with the 0/1 weight (cv2.copyTo with a mask is ~3× slower)
            b = cv2.multiply(img[y0:y1], cv2.merge((wb, wb, wb), dst=w3[:n]), dst=buf[:n])
            i0, i1 = np.searchsorted(ys, (y0, y1))  # ys is sorted (row-major)
            if i1 > i0:
                b[ys[i0:i1] - y0, xs[i0:i1]] *= factor[i0:i1, None]
            cv2.resize(b, (W // 2, n // 2), dst=P1[y0 // 2 : y1 // 2], interpolation=half)
            cv2.resize(wb, (W // 2, n // 2), dst=W1[y0 // 2 : y1 // 2], interpolation=half)

    run_in_row_bands(process_rows, H, W, align=S)  # S is even: every band halves on its own
    return P1, W1


_STRIP_ROWS = 32  # full-resolution rows per pass of the strip loops: a few 32×W planes stay in cache


class _Grain:
    """Gaussian grain of per-pixel, per-channel σ, added strip by strip.

    Hack for speed: white noise is drawn for four 512² tiles only and laid out
    in 256² cells with a random tile and offset per cell; white noise has no
    structure the eye could see repeat, and this is ~5× cheaper than drawing
    H·W·3 normals. The layout is drawn up front (row-major over the cells), so
    the grain does not depend on how the caller splits the rows.
    """

    T = 256

    def __init__(self, H: int, W: int, seed: int):
        rng = np.random.default_rng(seed)
        T = self.T
        self.tiles = rng.standard_normal((4, 2 * T, 2 * T, 3), dtype=np.float32)
        layout = [[(int(rng.integers(4)), *(int(v) for v in rng.integers(0, T, size=2))) for _ in range(0, W, T)]
                  for _ in range(0, H, T)]
        #: rows of cells × (tile, row offset, column offset), for _background_rows
        self.cells = np.array(layout, np.int64).reshape(len(layout), -1, 3)

    def correlate(self, rho: float) -> None:
        """Make the channels' noise correlated by ``rho`` in [0, 1], each channel keeping unit
        variance. Once, before the grain is added.

        For independent unit normals the channels' mean ``m`` (variance 1/3) is independent of
        the deviations ``n_c - m`` (variance 2/3, correlated -1/2 between channels). The grain
        ``n_c' = a m + b (n_c - m)`` with ``a^2 / 3 = r``, ``2 b^2 / 3 = 1 - r`` has unit
        variance and correlation ``r - (1 - r) / 2``, which is ``rho`` for ``r = (2 rho + 1) / 3``
        (``rho = 0`` leaves the noise as it is)."""
        if rho <= 0.0:
            return
        r = (2.0 * min(rho, 1.0) + 1.0) / 3.0
        a, b = np.sqrt(3.0 * r), np.sqrt(1.5 * (1.0 - r))
        mean = self.tiles.mean(axis=3, keepdims=True)
        self.tiles -= mean
        self.tiles *= np.float32(b)
        self.tiles += np.float32(a) * mean


def _decontamination_grids(img: np.ndarray, alpha: np.ndarray, diag: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth foreground / background colour grids of the multi-level blur fusion (Germer et al. 2020).

    Per level, with box blurs of radius r: ``F_b = blur(α·F)/blur(α)``,
    ``B_b = blur((1-α)·B)/blur(1-α)``, residual ``e = I − α·F_b − (1−α)·B_b``,
    ``F = F_b + α·e``, ``B = B_b + (1−α)·e``. Coarse levels (r ≈ 2 % of the
    diagonal, twice, then 1 %) see pure subject and pure background even inside
    wide hair regions; a fine level (r ≈ diagonal/400) follows local colour. The blurs
    are smooth, so all levels run on a reduced grid.

    Returns
    -------
    Fb, Bb : np.ndarray
        h×w×3 float32 grids covering the H×W frame; the full-resolution
        foreground is ``F = F_b + α·(I − α·F_b − (1−α)·B_b)`` (see :func:`_decontaminate`).
    """
    H, W = alpha.shape
    r1, r2 = max(4.0, 0.02 * diag), max(2.0, diag / 400)
    f2 = max(1, int(r2 // 2))
    hw2 = (max(1, H // f2), max(1, W // f2))
    a2 = _resize(alpha, hw2, cv2.INTER_AREA)
    I2 = _resize(img, hw2, cv2.INTER_AREA)

    def box(x, k):
        return cv2.boxFilter(x, -1, (2 * k + 1, 2 * k + 1), borderType=cv2.BORDER_REFLECT)

    # Same-shape 3-channel weights: numpy broadcasting an (h, w, 1) array over a last axis of
    # 3 runs a slow inner loop of length 3.
    a3 = cv2.merge((a2, a2, a2))
    b3 = 1.0 - a3
    F, B = I2, I2
    Fb = Bb = None
    dens = {}
    for r in (r1, r1, 0.5 * r1, r2):  # coarse to fine (Germer et al. iterate levels)
        k = max(1, int(round(r / f2)))
        if k not in dens:
            dens[k] = (np.maximum(box(a3, k), 1e-4), np.maximum(box(b3, k), 1e-4))
        den_f, den_b = dens[k]
        Fb = box(F * a3, k) / den_f
        Bb = box(B * b3, k) / den_b
        e = I2 - a3 * Fb - b3 * Bb
        F = np.clip(Fb + a3 * e, 0.0, 1.0)
        B = np.clip(Bb + b3 * e, 0.0, 1.0)
    return Fb.astype(np.float32), Bb.astype(np.float32)


def _decontaminate(img: np.ndarray, alpha: np.ndarray, soft: tuple, diag: float) -> np.ndarray:
    """Foreground colour at the soft pixels by multi-level blur fusion (Germer et al. 2020).

    The grids come from :func:`_decontamination_grids`; the final formula is
    evaluated only at the soft pixels, at full resolution. Where α = 1, F = I.

    Returns
    -------
    np.ndarray
        (N, 3) float32 foreground colours of the pixels ``soft`` (row and
        column index arrays) selects.
    """
    H, W = alpha.shape
    Fb, Bb = _decontamination_grids(img, alpha, diag)
    ys, xs = soft
    fb = sample_at(Fb, ys, xs, H, W)
    bb = sample_at(Bb, ys, xs, H, W)
    a = alpha[ys, xs][:, None]
    I = img[ys, xs]
    F = fb + a * (I - a * fb - (1 - a) * bb)
    return np.clip(F, 0.0, 1.0)


class _Compositor:
    """``out = α·F + (1 − α)·out`` over the subject's box, strip by strip, F decontaminated.

    F is the multi-level foreground estimate of Germer et al. (2020) (see
    :func:`_decontamination_grids`). With model mattes the soft pixels are
    millions: gathering them (fancy indexing, (N, 3) temporaries) cost several
    times more than a pass over cache-sized strips, which one compiled kernel
    (:func:`_composite_rows`) makes, upsampling the F/B grids per pixel; where
    α = 0 it leaves ``out``, where α = 1 it gives F = I (the photo).
    """

    def __init__(self, img: np.ndarray, alpha: np.ndarray, box: tuple, rows: int):
        H, W = alpha.shape
        Fb, Bb = _decontamination_grids(img, alpha, float(np.hypot(H, W)))
        self.img, self.alpha, (self.rs, self.cs) = img, alpha, box
        self.grids, self.rows = (Fb, Bb), rows
        self._buffers()

    def _buffers(self) -> None:
        H, W = self.alpha.shape
        self.up = RowUpsampler(list(self.grids), H, W, self.cs, self.rows)

    def for_band(self) -> "_Compositor":
        """The same compositor with its own upsampler, for one thread's band of rows."""
        band = copy.copy(self)
        band._buffers()
        return band

    def __call__(self, out: np.ndarray, y0: int, y1: int) -> None:
        """Composite frame rows y0..y1 (clipped to the box) of ``out`` (H×W×3) in place, clipped to [0, 1]."""
        y0, y1 = max(y0, self.rs.start), min(y1, self.rs.stop)
        if y0 >= y1:
            return
        _composite_rows(out[y0:y1], self.img[y0:y1], self.alpha[y0:y1], self.cs.start, self.cs.stop,
                        *self.up.lerp_rows(y0, y1))


@kernel
def _composite_rows(out, img, alpha, c0, c1, fb_src, fb_idx, fb_frac):
    """``out = α·F + (1 − α)·out`` in columns c0..c1 of a strip of rows, F decontaminated, clipped.

    Fuses the chain of a dozen cv2 calls per column run (merge, subtract, multiply, add,
    clip...) that :class:`_Compositor` ran on a strip, and the bilinear upsampling of the F/B
    grids into the strip, into one pass over the pixels with 0 < α (float32, the same
    operations in the same order): ``F = fb + α·((I − bb) − α·(fb − bb))`` clipped, then
    ``out + α·(F − out)``; α = 1 gives F = I exactly (the formula's value up to rounding).

    Parameters
    ----------
    out : np.ndarray
        n×W×3 float32 frame rows (the blurred background), in place; written in c0..c1 where α > 0.
    img : np.ndarray
        n×W×3 float32 photo rows.
    alpha : np.ndarray
        n×W float32 subject alpha in [0, 1].
    c0, c1 : int
        Columns of the subject's box, which the grids cover (w = c1 − c0).
    fb_src, fb_idx, fb_frac : np.ndarray
        :meth:`effects.mask_refine.RowUpsampler.lerp_rows` of the foreground and background
        colour grids side by side (w×3 each) of :func:`_decontamination_grids`.
    """
    n = out.shape[0]
    w = c1 - c0
    zero, one = np.float32(0.0), np.float32(1.0)
    for r in range(n):
        fb_w, fb_n, fb_f = fb_src[fb_idx[r]], fb_src[fb_idx[r] + 1], fb_frac[r]
        bb_w, bb_n = fb_w[3 * w:], fb_n[3 * w:]  # the background grid, beside the foreground's
        # rows as flat 1-D arrays: 2-D indexing in a loop keeps it from vectorising
        o_r, img_r, a_r = out[r, c0:c1].ravel(), img[r, c0:c1].ravel(), alpha[r, c0:c1]
        for j in range(w):
            a = a_r[j]
            if a <= zero:
                continue
            for c in range(3):
                i = img_r[3 * j + c]
                if a >= one:
                    o_r[3 * j + c] = clamp01(i)
                    continue
                fb = lerp_at(fb_w, fb_n, fb_f, 3 * j + c)
                bb = lerp_at(bb_w, bb_n, fb_f, 3 * j + c)
                f = clamp01(((i - bb) - (fb - bb) * a) * a + fb)
                o = o_r[3 * j + c]
                o_r[3 * j + c] = clamp01(o + (f - o) * a)

@kernel
def _background_rows(out, bg_src, bg_idx, bg_frac, grain, tiles, cells, dy, cell, sharp, w0, fill0):
    """The background of a strip of rows: blur upsampled, grain added, sharp fill mixed in, clipped.

    Fuses, per pixel, what :func:`portrait_blur`'s frame loop did in passes over each strip:
    the bilinear upsampling of the blurred background and of the grain σ (two 3-channel
    ``cv2.scaleAdd`` passes), ``σ·(1 − w0)``, ``noise·σ`` (the white noise of :class:`_Grain`)
    and its addition per grain cell, ``out + w0·(fill − out)`` and the clip: float32, the same
    operations in the same order.

    Parameters
    ----------
    out : np.ndarray
        n×W×3 float32 frame rows, written (linear RGB in [0, 1]).
    bg_src, bg_idx, bg_frac : np.ndarray
        :meth:`effects.mask_refine.RowUpsampler.lerp_rows` of the blurred background (W×3)
        and, with ``grain``, the grain σ (W×3) beside it.
    grain : bool
        Add grain: ``noise·σ`` with the noise of :class:`_Grain`.
    tiles : np.ndarray
        The grain's 4×512×512×3 float32 unit normal tiles (any float32 4-D array without grain).
    cells : np.ndarray
        C×3 int64: the strip's row of grain cells (tile, row offset, column offset), ``cell`` wide.
    dy : int
        The strip's first row within its row of grain cells.
    cell : int
        Grain cell side, pixels (:attr:`_Grain.T`).
    sharp : bool
        Mix in the sharp fill: ``out + w0·(fill − out)``, the grain weighted by ``1 − w0``.
    w0 : np.ndarray
        n×W float32 weight in [0, 1] of the sharp fill (any float32 2-D array without ``sharp``).
    fill0 : np.ndarray
        n×W×3 float32 sharp (unblurred) background fill (any float32 3-D array without ``sharp``).
    """
    n, W = out.shape[0], out.shape[1]
    for r in range(n):
        bg_f = bg_frac[r]
        # the row's W×3 values, channel-interleaved, as are the grid rows and the fill
        o = out[r].ravel()
        bg_w, bg_n = bg_src[bg_idx[r]], bg_src[bg_idx[r] + 1]
        # One grain cell's columns at a time: within a cell the noise is one row of one tile.
        # Every array is sliced to start at the cell (not indexed at an offset): loops over
        # plain j are what the compiler vectorises.
        for x0 in range(0, W, cell):
            a, b = 3 * x0, 3 * min(W, x0 + cell)
            o_c, v_w, v_n = o[a:b], bg_w[a:b], bg_n[a:b]
            if not grain and not sharp:
                for j in range(b - a):
                    o_c[j] = clamp01(lerp_at(v_w, v_n, bg_f, j))
                continue
            s_w, s_n, noise = v_w, v_n, v_w  # (typed here; the grain σ and noise below)
            if grain:
                s_w, s_n = bg_w[3 * W + a:3 * W + b], bg_n[3 * W + a:3 * W + b]
                cx = x0 // cell
                ox = 3 * cells[cx, 2]
                noise = tiles[cells[cx, 0], cells[cx, 1] + dy + r].ravel()[ox:ox + b - a]
            if not sharp:
                for j in range(b - a):
                    sigma = lerp_at(s_w, s_n, bg_f, j)
                    o_c[j] = clamp01((lerp_at(v_w, v_n, bg_f, j)) + noise[j] * sigma)
                continue
            w0_c, fill_c = w0[r, x0:x0 + (b - a) // 3], fill0[r].ravel()[a:b]
            for j in range(b - a):
                v = lerp_at(v_w, v_n, bg_f, j)
                if grain:
                    sigma = (lerp_at(s_w, s_n, bg_f, j)) * (np.float32(1.0) - w0_c[j // 3])
                    v = v + noise[j] * sigma
                o_c[j] = clamp01(v + w0_c[j // 3] * (fill_c[j] - v))


def subject_alpha(
    image: np.ndarray, mattes: np.ndarray, *, refine: bool, refine_params: RefineMatteParams, band: float
) -> np.ndarray:
    """Union of subject mattes, refined against the photo within a band around the edge.

    Two estimates are combined in the band (the "unknown" region of a trimap
    made by eroding the confident subject and background cores by ``band``):

    - the guided-filter refinement (:func:`effects.refine_matte`), robust but
      limited to the detail a linear colour model in a small window can carry;
    - a colour-line estimate ``α = (I − B)·(F − B) / |F − B|²`` with local
      subject and background colours F, B interpolated from the cores
      (pull-push), as in Gastal & Oliveira, "Shared Sampling for Real-Time
      Alpha Matting", Eurographics 2010 (eq. 2). It resolves hair strands
      wherever subject and background colours differ; its weight falls to
      zero where they do not.

    Parameters
    ----------
    image : np.ndarray
        H×W×3 float32 linear RGB in [0, 1] (validated by the caller).
    mattes : np.ndarray
        H×W×K float32 mattes in [0, 1] (subject, hair, glasses...).
    refine : bool
        Refine at all; False returns the union of ``mattes``.
    refine_params : RefineMatteParams
        Options of the guided-filter refinement.
    band : float
        Half-width of the band as a fraction of the image diagonal (min 2 px).

    Returns
    -------
    np.ndarray
        H×W float32 alpha in [0, 1].
    """
    if not refine:
        return _max_planes(mattes)
    # a view for one matte (only read below), else their per-pixel maximum
    union = mattes[:, :, 0] if mattes.shape[2] == 1 else _max_planes(mattes)
    H, W = union.shape
    # Trimap: far inside the subject a colour match with the background must not punch
    # holes (nor, outside, add islands), so only the band is re-estimated.
    b = max(2, int(round(band * np.hypot(H, W))))
    # The trimap is coarse by nature: erode on a grid where the band is ~8 cells (a 201-px
    # structuring element at 12 MP would take seconds), then bring it back with nearest.
    g = max(1, b // 8)
    hw = (max(1, H // g), max(1, W // g))
    low = _resize(union, hw, cv2.INTER_AREA) if g > 1 else union
    kb = max(1, int(round(b / g)))
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * kb + 1, 2 * kb + 1))
    core_fg = cv2.erode((low >= 0.99).astype(np.uint8), ker)
    core_bg = cv2.erode((low <= 0.01).astype(np.uint8), ker)
    if g > 1:
        core_fg = cv2.resize(core_fg, (W, H), interpolation=cv2.INTER_NEAREST)
        core_bg = cv2.resize(core_bg, (W, H), interpolation=cv2.INTER_NEAREST)
    band_m = (core_fg | core_bg) == 0
    rows, cols = np.nonzero(band_m.any(axis=1))[0], np.nonzero(band_m.any(axis=0))[0]
    alpha = core_fg.astype(np.float32)  # 1 in the subject core, 0 elsewhere; band filled below
    if rows.size == 0:
        return alpha
    # Everything below works on the band's bounding box, strip by strip: for soft model mattes
    # the band holds millions of pixels, and gathering them (fancy indexing, (N, 3)
    # reductions) cost several times more than passes over the box.
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    S = _STRIP_ROWS
    cs = slice(x0, x1)
    # Guided-filter refinement (fitted on the whole photo, evaluated strip by strip in the box).
    guided = GuidedStrips(image, mattes, refine_params, cs, S)
    if not core_fg.any() or not core_bg.any():
        for r0 in range(y0, y1, S):
            r1 = min(y1, r0 + S)
            np.copyto(alpha[r0:r1, cs], guided(r0, r1), where=band_m[r0:r1, cs])
        return alpha

    # Local subject / background colours from the cores, on a grid of ~band/2 cells.
    f = max(1, b // 2)
    hw = (max(1, H // f), max(1, W // f))
    img_low = _resize(image, hw, cv2.INTER_AREA)
    colours = []
    for core in (alpha, core_bg):  # alpha is core_fg as float32 here
        w_ = _resize(core if core.dtype == np.float32 else core.astype(np.float32), hw, cv2.INTER_AREA)
        w_ = np.where(w_ > 0.99, 1.0, 0.0).astype(np.float32)  # cells wholly inside the core only
        P, Wt = _pull(img_low * w_[..., None], w_, 1)
        colours.append(_push(P, Wt, 0)[0].astype(np.float32))
    Fg, Bg = colours
    # Colour line (Gastal & Oliveira eq. 2): α = (I − B)·(F − B)/|F − B|² = Σ k_c·I_c + k0 with
    # k = (F − B)/|F − B|², k0 = −B·k. F and B are smooth (band/2 cells), so every term that
    # does not involve the pixel colour is formed on their grid and upsampled; per pixel only
    # a few multiply-adds remain (the band of a soft model matte can cover the whole photo).
    dg = Fg - Bg
    kg = dg / np.maximum((dg * dg).sum(axis=2), 1e-6)[..., None]
    sFg, sBg = np.sqrt(np.clip(Fg, 0, 1)), np.sqrt(np.clip(Bg, 0, 1))
    eg = sFg - sBg
    sep = (eg * eg).sum(axis=2)
    # Confidence: subject and background colours must differ (judged in a gamma-2, roughly
    # perceptual space), and the pixel must lie near the line between them -- a colour
    # off that line (a red sign next to a brown-haired head on a white wall) is neither,
    # and projecting it would invent alpha.
    misc = (-(Bg * kg).sum(axis=2), np.clip(sep / 0.03, 0.0, 1.0), 1.0 / np.maximum(0.05 * sep, 1e-4))
    # Spatial prior: the given mask is roughly right. The further a band pixel lies outside
    # (inside) it, the more evidence it takes to give it alpha (to take alpha away): the
    # estimate is pulled toward 0 (1) with distance, on the scale of half (all) the band.
    lowb = (low >= 0.5).astype(np.uint8)
    dist = (cv2.distanceTransform(1 - lowb, cv2.DIST_L2, 3) * g, cv2.distanceTransform(lowb, cv2.DIST_L2, 3) * g)
    s_out, s_in = max(1.0, b / 2.0), max(1.0, float(b))  # holes between curls are real: gentler inside
    # Everything per pixel runs strip by strip over the band's box, in one compiled pass per
    # strip (_band_alpha_rows) that upsamples the smooth grids where it needs them: in whole
    # 12 MP planes, faulting in fresh memory and streaming it cost more than the arithmetic,
    # and a chain of cv2 calls on strips still made one pass per operation.
    neg_inv_s_out, neg_inv_s_in = np.float32(-1.0 / s_out), np.float32(-1.0 / s_in)
    # Soft threshold: sensor noise projects to α of a few percent either side of 0 and 1;
    # on a black or white stage that would show as speckle around the subject.
    t = 0.03
    t_lo, t_scale = np.float32(t), np.float32(1.0 / (1.0 - 2.0 * t))

    def process_rows(b0: int, b1: int) -> None:
        # Upsamplers per band: the bands run in parallel threads.
        colour_line = RowUpsampler([kg, sBg, eg, *misc], H, W, cs, S)
        distance = RowUpsampler(list(dist), H, W, cs, S)
        band_guided = guided.for_band()
        for r0 in range(y0 + b0, y0 + b1, S):
            r1 = min(y0 + b1, r0 + S)
            _band_alpha_rows(image[r0:r1], band_m[r0:r1], alpha[r0:r1], x0, x1,
                             *colour_line.lerp_rows(r0, r1), *distance.lerp_rows(r0, r1),
                             *band_guided.planes.lerp_rows(r0, r1), band_guided.K,
                             neg_inv_s_out, neg_inv_s_in, t_lo, t_scale)

    run_in_row_bands(process_rows, y1 - y0, x1 - x0, align=S)
    return alpha


@kernel
def _band_alpha_rows(img, band, alpha, x0, x1, cl_src, cl_idx, cl_frac, d_src, d_idx, d_frac,
                     gd_src, gd_idx, gd_frac, K, neg_inv_s_out, neg_inv_s_in, t_lo, t_scale):
    """:func:`subject_alpha`'s per-pixel estimate at the band pixels of a strip of rows, in place.

    Fuses what was a chain of some 25 cv2 calls per column run of a 32-row strip, each a pass
    over it, plus the bilinear upsampling of 18 grid values a pixel (the guided filter's
    coefficients, the colour-line terms, the two distances) into whole strips: here each band
    pixel reads its grid values (:func:`effects.mask_refine.lerp_at`) and runs the formulas in
    registers, in the same float32 operations in the same order.

    Parameters
    ----------
    img : np.ndarray
        n×W×3 float32 photo rows (linear RGB; clipped to [0, 1] here for the encoded guide).
    band : np.ndarray
        n×W bool, the band pixels (the trimap's unknown region); only those are written.
    alpha : np.ndarray
        n×W float32 output rows, set to the estimate in [0, 1] at band pixels.
    x0, x1 : int
        Columns of the band's box; the grids cover those (w = x1 − x0 values a row each).
    cl_src, cl_idx, cl_frac : np.ndarray
        :meth:`RowUpsampler.lerp_rows` of the colour-line grids side by side: k (w×3), sqrt(B)
        (w×3), sqrt(F) − sqrt(B) (w×3), k0, the separation confidence, 1/denominator (w each).
    d_src, d_idx, d_frac : np.ndarray
        The same for the distances outside and inside the given mask (w each), in pixels.
    gd_src, gd_idx, gd_frac : np.ndarray
        The same for the guided filter's 4K coefficient planes (w each; ``a`` channel major,
        then ``b``, as :class:`effects.mask_refine.GuidedStrips` has them).
    K : int
        Mattes of the guided filter (their maximum is its estimate).
    neg_inv_s_out, neg_inv_s_in, t_lo, t_scale : np.float32
        −1/s_out, −1/s_in of the spatial prior; the soft threshold t and 1/(1 − 2t).
    """
    n = img.shape[0]
    w = x1 - x0
    zero, one = np.float32(0.0), np.float32(1.0)
    for r in range(n):
        # This row's grid rows, sliced once per grid (loops index them from 0 at the box's left).
        cl_f, d_f, gd_f = cl_frac[r], d_frac[r], gd_frac[r]
        cl_w, cl_n = cl_src[cl_idx[r]], cl_src[cl_idx[r] + 1]
        k_w, k_n = cl_w[:3 * w], cl_n[:3 * w]  # (F − B)/|F − B|², w×3
        sb_w, sb_n = cl_w[3 * w:6 * w], cl_n[3 * w:6 * w]  # sqrt(B), w×3
        e_w, e_n = cl_w[6 * w:9 * w], cl_n[6 * w:9 * w]  # sqrt(F) − sqrt(B), w×3
        k0_w, k0_n = cl_w[9 * w:10 * w], cl_n[9 * w:10 * w]
        c0_w, c0_n = cl_w[10 * w:11 * w], cl_n[10 * w:11 * w]
        inv_w, inv_n = cl_w[11 * w:], cl_n[11 * w:]
        d_w, d_n = d_src[d_idx[r]], d_src[d_idx[r] + 1]
        out_w, out_n, in_w, in_n = d_w[:w], d_n[:w], d_w[w:], d_n[w:]
        gd_w, gd_n = gd_src[gd_idx[r]], gd_src[gd_idx[r] + 1]
        # (the photo's row flat: 2-D indexing in a loop is slow)
        img_r, band_r, alpha_r = img[r, x0:x1].ravel(), band[r, x0:x1], alpha[r, x0:x1]
        for j in range(w):
            if not band_r[j]:
                continue
            i0, i1, i2 = img_r[3 * j], img_r[3 * j + 1], img_r[3 * j + 2]
            # gamma-2 photo sqrt(clip(I)): the guide of the guided filter, and the residual's start
            e0, e1, e2 = np.sqrt(clamp01(i0)), np.sqrt(clamp01(i1)), np.sqrt(clamp01(i2))
            # guided filter: max over k of a_r·I_r + a_g·I_g + a_b·I_b + b, clipped
            gd = zero
            for k in range(K):
                q = lerp_at(gd_w, gd_n, gd_f, k * w + j) * e0
                q = q + lerp_at(gd_w, gd_n, gd_f, (K + k) * w + j) * e1
                q = q + lerp_at(gd_w, gd_n, gd_f, (2 * K + k) * w + j) * e2
                q = q + lerp_at(gd_w, gd_n, gd_f, (3 * K + k) * w + j)
                gd = q if k == 0 or q > gd else gd
            gd = clamp01(gd)
            # α_col = k·I + k0, clipped
            a_col = (lerp_at(k_w, k_n, cl_f, 3 * j) * i0 + lerp_at(k_w, k_n, cl_f, 3 * j + 1) * i1) \
                + lerp_at(k_w, k_n, cl_f, 3 * j + 2) * i2
            a_col = clamp01(a_col + lerp_at(k0_w, k0_n, cl_f, j))
            # residual in gamma-2: sqrt(I) − (sB + α·(sF − sB)), its squared length
            d0 = (e0 - lerp_at(sb_w, sb_n, cl_f, 3 * j)) - lerp_at(e_w, e_n, cl_f, 3 * j) * a_col
            d1 = (e1 - lerp_at(sb_w, sb_n, cl_f, 3 * j + 1)) - lerp_at(e_w, e_n, cl_f, 3 * j + 1) * a_col
            d2 = (e2 - lerp_at(sb_w, sb_n, cl_f, 3 * j + 2)) - lerp_at(e_w, e_n, cl_f, 3 * j + 2) * a_col
            resid = (d0 * d0 + d1 * d1) + d2 * d2
            # conf = conf0·exp(−resid·inv_den); est = conf·α_col + (1 − conf)·guided
            conf = lerp_at(c0_w, c0_n, cl_f, j) * np.exp(-(resid * lerp_at(inv_w, inv_n, cl_f, j)))
            est = gd + conf * (a_col - gd)
            # spatial prior: outside the mask est·exp(−d_out/s_out), inside 1 − (1 − est)·exp(−d_in/s_in)
            d_out = lerp_at(out_w, out_n, d_f, j)
            if d_out > zero:
                est = est * np.exp(d_out * neg_inv_s_out)
            else:
                est = (est - one) * np.exp(lerp_at(in_w, in_n, d_f, j) * neg_inv_s_in) + one
            alpha_r[j] = clamp01((est - t_lo) * t_scale)

def foreground_colour(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Subject colour with the background's contribution removed at soft edges.

    Parameters
    ----------
    image : np.ndarray
        H×W×3 float32 linear RGB in [0, 1].
    alpha : np.ndarray
        H×W float32 subject alpha in [0, 1].

    Returns
    -------
    np.ndarray
        H×W×3 float32: ``image`` where α ∈ {0, 1}, the Germer et al. (2020)
        foreground estimate where 0 < α < 1. A new array.
    """
    F = image.copy()
    soft = np.nonzero((alpha > 0) & (alpha < 1))
    if soft[0].size:
        F[soft] = _decontaminate(image, alpha, soft, float(np.hypot(*alpha.shape)))
    return F


# --------------------------------------------------------------------------- main
_MAX_LOW_RADIUS = 5.0  # kernel radius on a pyramid level: ≤ 11×11 keeps cv2.filter2D on its direct path


@through_two_columns
def portrait_blur(
    image: np.ndarray,
    subject_mask: np.ndarray,
    *,
    hair_mask: np.ndarray | None = None,
    glasses_mask: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    params: PortraitBlurParams | None = None,
) -> np.ndarray:
    """Lens-blur the background behind one or more subjects (see module docstring).

    Parameters
    ----------
    image : np.ndarray
        H×W×3 float32 linear-light RGB in [0, 1].
    subject_mask : np.ndarray
        H×W float32 matte in [0, 1] of the in-focus subject, or H×W×N with one
        matte per person (all persons share the focal plane).
    hair_mask, glasses_mask : np.ndarray, optional
        H×W float32 mattes in [0, 1]; their pixels belong to the subject and
        are rendered as soft, semi-transparent edges.
    depth : np.ndarray, optional
        H×W float32 distance map (any unit, larger = farther, > 0). With it the
        blur radius follows the thin-lens circle of confusion relative to the
        subject's median depth; without it the whole background gets the
        radius at infinity.
    params : PortraitBlurParams, optional
        Options; defaults to ``PortraitBlurParams()``.

    Returns
    -------
    np.ndarray
        H×W×3 float32 linear RGB in [0, 1], a new array.

    Raises
    ------
    TypeError, ValueError
        On non-array or non-float inputs, wrong shapes, NaN/inf, masks outside
        [0, 1], non-positive depth.
    """
    p = PortraitBlurParams() if params is None else params
    if not isinstance(p, PortraitBlurParams):
        raise TypeError(f"params: expected PortraitBlurParams or None, got {type(p).__name__}.")
    img = _check_image(image)
    H, W = img.shape[:2]
    # Possibly read-only views: the matte floor below writes each one into an array of our own.
    subj = _check_mask(subject_mask, "subject_mask", (H, W), allow_stack=True, own=False)
    extra = [_check_mask(m, n, (H, W), own=False) for m, n in ((hair_mask, "hair_mask"), (glasses_mask, "glasses_mask")) if m is not None]
    if depth is not None:  # checked in the order and with the exception types of the masks' checks
        if not isinstance(depth, np.ndarray):
            raise TypeError(f"depth: expected a numpy array (float32 H×W distances > 0) or None, got "
                            f"{type(depth).__name__}. Convert it with np.asarray(depth, np.float32).")
        if depth.shape != (H, W):
            raise ValueError(f"depth: expected an H×W array of shape {(H, W)}, got {depth.shape}.")
        if not np.issubdtype(depth.dtype, np.floating):
            raise TypeError(f"depth: expected a float array of distances > 0 (larger = farther), got dtype "
                            f"{depth.dtype}. Convert it with depth.astype(np.float32).")
        if not np.isfinite(depth).all() or depth.min() <= 0:
            raise ValueError("depth: expected finite float distances > 0 (larger = farther); got NaN/inf or values <= 0.")

    # A blur wider than the frame is the frame's blur: capped at the diagonal (f/1e-9 asked for
    # a radius of exabytes' worth of memory and failed every photo).
    r_inf = min(p.blur_scale / p.f_number, 1.0) * float(np.hypot(H, W))
    if r_inf < 0.5 or subj.size == 0:
        return np.clip(img, 0.0, 1.0)  # (a new array, in range as the docstring says)

    # Steps that need only the photo (highlight gains, noise level, grain tiles) and, once the
    # alpha is known, the decontamination grids run on a side thread while this one refines
    # the alpha and builds the background: they are single-threaded, and would otherwise
    # leave the other core idle. Not when OpenCV is limited to one thread (batch workers).
    with side_thread(H, W) as side:
        return _portrait_blur(img, subj, extra, depth, p, r_inf, side)


def _subject_mattes(subj: np.ndarray, extra: list, matte_floor: float, refine_band: float) -> np.ndarray:
    """The mattes :func:`subject_alpha` refines: the subject's, with hair and glasses only near it.

    Matte values under ``matte_floor`` are taken as 0, and the hair and glasses mattes count
    only within three ``refine_band`` of the subject (matte >= 0.5), room for hair the person
    matte left out (see :attr:`PortraitBlurParams.matte_floor`); they are joined to the subject's
    matte by their maximum. Both portrait effects build their subject this way: the lighting
    looks, which took the hair matte anywhere, lit a far stranger's head on the black stage.

    Parameters
    ----------
    subj : np.ndarray
        H×W float32 subject matte in [0, 1]; written in place where it is writeable.
    extra : list of np.ndarray
        H×W float32 hair and glasses mattes in [0, 1] (may be empty); written in place where
        writeable.
    matte_floor : float
        In [0, 1).
    refine_band : float
        Band half-width, a fraction of the image diagonal.

    Returns
    -------
    np.ndarray
        H×W×1 float32 in [0, 1]: their union, in the layout :func:`subject_alpha` takes.
    """
    H, W = subj.shape
    # Planes are kept separate (contiguous): reductions over a short last axis of an
    # H×W×K stack are slow strided loops.
    planes = [subj, *extra]
    if matte_floor > 0:
        # m < floor -> 0, into arrays of our own (in place where the plane already is ours):
        # one pass instead of a copy and a pass.
        floor_below = float(np.nextafter(np.float32(matte_floor), np.float32(-1)))
        planes = [cv2.threshold(m_, floor_below, 0.0, cv2.THRESH_TOZERO, dst=m_ if m_.flags.writeable else None)[1]
                  for m_ in planes]
    else:
        planes = [m_ if m_.flags.writeable else m_.copy() for m_ in planes]  # modified in place below
    if extra:
        # Hair and glasses count only near the subject (see PortraitBlurParams.matte_floor):
        # within three refine bands, room for hair the person matte left out.
        b = max(6, int(round(3 * refine_band * np.hypot(H, W))))
        # Dilate on a grid where the radius is ~8 cells: a 600-px structuring element at 12 MP
        # would take tens of seconds, and "near" needs no pixel precision.
        g = max(1, b // 8)
        core = (planes[0] >= 0.5).view(np.uint8)
        low = cv2.resize(core, (max(1, W // g), max(1, H // g)), interpolation=cv2.INTER_AREA) if g > 1 else core
        kb = max(1, int(round(b / g)))
        near = cv2.dilate((low > 0).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * kb + 1,) * 2))
        if g > 1:
            near = cv2.resize(near, (W, H), interpolation=cv2.INTER_NEAREST)
        # One union refined once: refining K mattes and taking their maximum costs K times more
        # in the band for the same edge.
        # The planes are our validation copies: combined in place.
        union = planes[0]
        for m_ in planes[1:]:
            cv2.max(union, cv2.multiply(m_, near, dst=m_, dtype=cv2.CV_32F), dst=union)
        planes = [union]
    mattes = planes[0][..., None] if len(planes) == 1 else np.stack(planes, axis=2)
    return mattes


def _compositor(img: np.ndarray, alpha: np.ndarray) -> "_Compositor | None":
    """The :class:`_Compositor` of the subject's box (where α > 0), or None when α = 0 everywhere."""
    rows = np.nonzero(alpha.max(axis=1) > 0)[0]
    if not rows.size:
        return None
    cols = np.nonzero(alpha[rows[0] : rows[-1] + 1].max(axis=0) > 0)[0]
    return _Compositor(img, alpha, (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)), _STRIP_ROWS)


def _portrait_blur(img, subj, extra, depth, p: PortraitBlurParams, r_inf: float, side) -> np.ndarray:
    """:func:`portrait_blur` after validation; ``side`` runs independent steps concurrently."""
    H, W = img.shape[:2]
    boost_f = later(side, _highlight_gains, img, p.highlight_threshold, p.highlight_gain, r_inf)
    noise_f = later(side, _grain_statistics, img) if p.match_grain else None
    grain_f = later(side, _Grain, H, W, p.seed) if p.match_grain else None

    # 1. Subject alpha: union of subject, hair and glasses, refined against the photo.
    mattes = _subject_mattes(subj, extra, p.matte_floor, p.refine_band)
    alpha = subject_alpha(img, mattes, refine=p.refine, refine_params=p.refine_params, band=p.refine_band)
    if alpha.min() >= 1.0:
        return np.clip(img, 0.0, 1.0)
    composite_f = later(side, _compositor, img, alpha)

    # 2. Background weight: anything the (grown) subject touches is removed and filled.
    grown = alpha
    if p.edge_dilation:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * p.edge_dilation + 1,) * 2)
        grown = cv2.dilate(alpha, k)
    keep = (grown < 0.01).view(np.uint8)  # 0/1

    # 3. Defocus radius (full-res pixels): constant r_inf, or the thin-lens CoC from depth.
    level_of = lambda r: max(0, int(np.ceil(np.log2(r / _MAX_LOW_RADIUS))))  # noqa: E731
    boost = boost_f.result()
    if depth is None and level_of(r_inf) >= 1 and H % 2 == 0 and W % 2 == 0:
        # Only levels >= 1 are used: start the pyramid there, built strip by strip.
        P, Wt = _pull(*_background_level1(img, keep, boost), level_of(r_inf) - 1)
        P, Wt = [None, *P], [None, *Wt]
    else:
        # keep is 0/1: premult = img·keep is a masked copy (cv2, no H×W×3 temporaries).
        w_bg = keep.astype(np.float32)
        premult = np.zeros_like(img)
        cv2.copyTo(img, keep, premult)
        ys, xs, factor = boost
        premult[ys, xs] *= factor[:, None]
        # With depth, every rung is blurred on level 1 or coarser (step 4): the pyramid needs
        # that level even where _pull would stop at 0 (no hole to fill and r_inf under 5 px;
        # no rung was blurred then, and the normalisation failed on None).
        P, Wt = _pull(premult, w_bg, level_of(r_inf) if depth is None else max(1, level_of(r_inf)))
        del premult
    if depth is None:
        ladder = np.array([r_inf], np.float32)
        finest = min(level_of(r_inf), len(P) - 1)
    else:
        d = depth.astype(np.float32)
        inside = alpha > 0.5
        z_f = float(np.median(d[inside])) if inside.any() else float(d.min())
        coc = np.clip(r_inf * np.abs(1.0 - z_f / d), 0.0, r_inf).astype(np.float32)
        # The radius behind the subject is filled from the background, like the colours.
        Pr = [P_r[..., None] for P_r in _pull(coc * w_bg, w_bg, len(P) - 1)[0][: len(P)]]
        radius = {k: v[..., 0] for k, v in _push(Pr, Wt, 0).items()}
        # Ladder anchored at r_inf, geometric (ratio) but at least 1.5 px apart: small
        # differences of small radii are invisible and would cost full pyramid passes.
        rungs = [r_inf]
        while True:
            nxt = min(rungs[-1] / p.radius_ratio, rungs[-1] - 1.5)
            if nxt < 1.0:
                break
            rungs.append(nxt)
        ladder = np.array(rungs[::-1], np.float32)
        finest = 0
    filled = _push(P, Wt, finest)
    del P, Wt

    def blur_layer(r: float, lev: int) -> np.ndarray:
        base = filled[lev]
        scale = 0.5 * (H / base.shape[0] + W / base.shape[1])
        ker = disk_kernel(r / scale, blades=p.aperture_blades, rotation=p.aperture_rotation)
        return cv2.filter2D(base, -1, ker, borderType=cv2.BORDER_REFLECT)

    w0_full = None
    if depth is None:
        low = blur_layer(r_inf, finest)
        low_r = np.full(low.shape[:2], r_inf, np.float32)
    else:
        # Each rung is blurred and weighted on its own pyramid level (kernel <= 11×11 there),
        # then the levels are collapsed coarse to fine, carrying the weight sum so the
        # result can be normalised (weights from different levels need not sum to 1).
        # Only radius 0 -- the unblurred fill, in the focal plane -- is mixed at full res.
        radii = np.concatenate([[0.0], ladder]).astype(np.float32)
        idx = np.arange(len(radii), dtype=np.float32)
        top = len(filled) - 1
        lev_of_rung = [min(max(1, level_of(float(r))), top) for r in ladder]
        acc, acc_w = None, None
        for lev in range(top, 0, -1):
            if acc is not None:
                hw = filled[lev].shape[:2]
                acc, acc_w = _resize(acc, hw, cv2.INTER_LINEAR), _resize(acc_w, hw, cv2.INTER_LINEAR)
            js = [j for j, lj in enumerate(lev_of_rung) if lj == lev]
            if not js:
                continue
            pos = np.interp(radius[lev], radii, idx).astype(np.float32)
            if acc is None:
                acc = np.zeros(filled[lev].shape, np.float32)
                acc_w = np.zeros(filled[lev].shape[:2], np.float32)
            for j in js:
                wj = np.clip(1.0 - np.abs(pos - (j + 1)), 0.0, 1.0)
                if j == 0:  # first rung also takes the weight of radius 0 here
                    wj = np.maximum(wj, (pos < 1.0).astype(np.float32))
                if wj.max() <= 0:
                    continue
                acc += blur_layer(float(ladder[j]), lev) * wj[..., None]
                acc_w += wj
        low = acc / np.maximum(acc_w, 1e-6)[..., None]
        low_r = radius[1] if 1 in radius else radius[0]
        if low_r.shape != low.shape[:2]:
            low_r = _resize(low_r, low.shape[:2], cv2.INTER_LINEAR)
        # Between radius 0 and the first rung: linear mix with the sharp fill.
        w0_full = np.clip(1.0 - radius[0] / float(ladder[0]), 0.0, 1.0)

    # 5. Grain σ map on the reduced grid (the blurred background is smooth there).
    sigma_low = None
    if p.match_grain:
        centers, sig, correlation = noise_f.result()
        if sig.max() > 0:
            lum = low.mean(axis=2)
            sigma_low = np.stack([np.interp(lum, centers, sig[:, c]) for c in range(3)], axis=2).astype(np.float32)
            # A disk of radius r leaves σ/sqrt(π r² + 1) of white noise: add back the rest.
            sigma_low *= np.sqrt(1.0 - 1.0 / (np.pi * np.square(low_r) + 1.0))[..., None]

    # 6. Background (blur upsampled, grain added, clipped) and composite out = α·F + (1 − α)·B
    # (F = I where α = 1, decontaminated at soft pixels; only the subject's box needs it),
    # fused in one kernel pass per cache-sized strip: whole-frame temporaries (B, the σ map)
    # cost more in page faults and memory traffic than the arithmetic.
    S = _STRIP_ROWS
    assert _Grain.T % S == 0
    out = np.empty((H, W, 3), np.float32)
    grain = None if sigma_low is None else grain_f.result()
    if grain is not None:
        grain.correlate(correlation)  # luminance grain where the photo's noise is
    composite = composite_f.result()

    # Placeholders of the kernel's unused inputs (one signature, compiled once).
    tiles = grain.tiles if grain is not None else np.zeros((1, 1, 1, 3), np.float32)
    sharp = w0_full is not None
    if sharp:
        w0_full = np.ascontiguousarray(w0_full, dtype=np.float32)
        fill0 = np.ascontiguousarray(filled[0], dtype=np.float32)
    else:
        w0_full, fill0 = np.zeros((1, 1), np.float32), np.zeros((1, 1, 3), np.float32)
    no_cells = np.zeros((1, 3), np.int64)

    def process_rows(r0: int, r1: int) -> None:
        # Upsamplers and compositor per band: the bands run in parallel threads.
        up = RowUpsampler([low] if grain is None else [low, sigma_low], H, W, slice(0, W), S)
        band_composite = None if composite is None else composite.for_band()
        for y0 in range(r0, r1, S):
            y1 = min(r1, y0 + S)
            cells = no_cells if grain is None else grain.cells[y0 // _Grain.T]  # strips stay in one row of cells
            _background_rows(out[y0:y1], *up.lerp_rows(y0, y1), grain is not None, tiles, cells, y0 % _Grain.T,
                             _Grain.T, sharp, w0_full[y0:y1] if sharp else w0_full,
                             fill0[y0:y1] if sharp else fill0)
            if band_composite is not None:
                band_composite(out, y0, y1)

    run_in_row_bands(process_rows, H, W, align=_Grain.T)  # grain cells never straddle two bands
    return out
