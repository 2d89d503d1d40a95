"""Sky- and skin-aware denoising driven by a brightness- and scale-dependent noise model.

Technique (what a camera's noise-reduction block does, in five steps):

1. **Noise model.** ``sigma^2(I) = a I + b`` per opponent channel, fitted from the image itself
   (:func:`effects.estimate_noise`, Foi et al. 2008) or given by the caller. It is also
   refitted at two coarser scales (bounded by the ISO prior when the EXIF ISO is known, else
   by 8x the fine-scale variance) so the noise left by JPEG compression (fine scales removed
   from flat blocks, coarse kept) is known per pyramid band. Every threshold below is in
   units of this local, per-band sigma, so one strength fits shadows and highlights,
   raw-like and compressed noise alike.
2. **Multiscale shrinkage.** Luma and the two chroma channels are split into a Laplacian
   pyramid (Burt & Adelson 1983). Each band coefficient ``c`` is scaled by a locally adaptive
   Wiener gain ``max(0, E[c^2] - k^2 v) / E[c^2]`` where ``E[c^2]`` is the local band energy
   (box window) and ``v`` the band's noise variance at the local brightness (Mihçak, Kozintsev,
   Ramchandran & Moulin 1999, "Low-complexity image denoising based on statistical modeling
   of wavelet coefficients"). Texture and edges, with energy well above the noise, keep
   their gain near 1; flat noisy areas go to 0. Nothing is quantised, so smooth skies stay
   free of banding.
3. **Region strengths.** ``k`` is a per-pixel, per-band map blended from three profiles with
   the sky and skin masks: strong at every scale in sky (incl. coarse blotches), medium at
   the finest scale and light at pore scale on skin, light elsewhere (hair, fabric, foliage).
   The masks are first made edge-aware with a fast guided filter on luma (He, Sun & Tang 2013;
   He & Sun 2015), so a soft or low-resolution mask does not spill sky-strength smoothing
   across a horizon or a hairline. Chroma uses its own, stronger profiles: chroma noise is
   blotchy and the eye is far less sensitive to fine chroma detail.
4. **Skin chroma from luma.** Skin texture (pores, fine lines, freckles) is a change of
   brightness far more than of hue: in linear light a multiplicative albedo change scales
   R, G and B alike, so locally ``chroma = alpha * luma + beta``. Shrinking chroma bands
   independently of luma erases that chroma part of the texture (a visible "plastic" look);
   instead, on skin the chromaticity ``chroma / luma`` is the guided filter of the noisy
   ratio with the *denoised* luma as guide (He, Sun & Tang 2013; cf. the colour-line model
   of Levin et al. 2008), clamped to the local range of window means, and multiplied back by
   the denoised luma: chroma noise (independent of the guide) averages out over the window
   while chroma that follows the luma texture is kept. The ratio is computed at half
   resolution and multiplied by the full-resolution denoised luma (in the spirit of the
   fast guided filter, He & Sun 2015). Where the window's chromaticity varies far more than
   the luma fit explains (a colour edge: lips, nostrils, or a coloured patch on clothing
   that a soft skin matte covers) the guided result gives way to ordinary chroma shrinkage,
   so one colour is not spread across the edge as a halo.
   The skin luma strengths are lowered as the noise approaches the texture's own contrast
   (``skin_texture_contrast``), the skin luma gain of the finest band never drops below
   ``skin_luma_floor`` (grain rather than plastic), and on a compressed image (coarse noise
   > 2x the fine) the finest skin band is thresholded at the coarse, white-equivalent level,
   because JPEG keeps noise in textured blocks while removing it from the flat blocks the
   estimate reads.
5. **Skin luma in the JPEG's own blocks** (``jpeg_skin``). On a JPEG input the luma
   quantisation table is read back from the pixels, and every 8×8 DCT coefficient of the
   skin's luma is replaced by its posterior mean given its quantisation bin
   (``effects/_jpeg.py``): the only way to tell the coefficients whose noise JPEG zeroed
   from those where it survived whole. Each block is estimated on its own, so a weak
   deblocking filter (H.264/HEVC style, limited to a fraction of the noise) joins them.

The finest band, which holds most of the pixels, is processed in horizontal strips (with a
halo so the result equals whole-frame processing) to keep the temporaries in cache; what is
smooth there (threshold from brightness and region strengths, skin chromaticity and
weights) is computed on the half-resolution grid and brought up with one pyrUp per strip,
and skin work is confined to the skin's bounding box. Within a strip only the filters are
OpenCV calls (the pyrUps and the box window of the band energy); the arithmetic between
them is fused into compiled per-pixel loops (:mod:`effects._jit`): the band and its square
in one pass, then gain, skin floor, reconstruction, skin chroma, conversion back to RGB and
clip in another, for the rows kept only. The coarse bands, the half-resolution threshold
and the skin chromaticity's fit are fused the same way (about 15, 10 and 40 whole-array
passes became 2, 1 and 5), and each thread reuses its strip work arrays from strip to strip
(``_Scratch``: fresh pages for every strip cost about as much as the arithmetic). The
half-resolution band and the skin chromaticity are computed in strips too; coarser levels
are whole-array operations on images 16x and more smaller. Strips go to the threads of
``effects._bands`` as they come free, and the region weights are refined while the noise
is estimated, so on a multi-core machine little of the work runs on one core. The JPEG step
takes the half-resolution skin weight and brings it up per strip where it blends, as the
finest band does.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np

from ._bands import later, run_in_row_bands, run_strips, side_thread
from ._jit import inline, kernel
from ._jpeg import jpeg_skin_luma
from ._validate import check_field_types, check_image
from .noise_profile import (_OPP_TO_RGB, NoiseProfile, _check_iso, _check_mask, _estimate_from_opponent,
                            rgb_to_opponent)

__all__ = ["DenoiseParams", "denoise"]

_PYRDOWN_VAR = (70.0 / 256.0) ** 2  # white-noise variance kept by one cv2.pyrDown (binomial 5-tap)
_STRIP = 64  # full-resolution rows per strip of the finest band (temporaries stay in cache)
_COEF_STRIP = 256  # half-resolution rows per strip of the skin chroma coefficients (with a 2r+4 halo)
_COARSE_STRIPS_MIN = 1 << 20  # pixels of a coarse level above which it is processed in strips


@dataclass(frozen=True)
class DenoiseParams:
    """Options of :func:`denoise`. Defaults live here only.

    Strength tuples hold one multiplier of the noise sigma per pyramid band, finest first
    (band 0 ≈ 1–2 px detail, band 1 ≈ 2–4 px, band 2 ≈ 4–8 px, ...); a shorter tuple repeats
    its last value for coarser bands. 0 leaves a band untouched; 1 is the plain Wiener
    (MMSE) gain; larger values remove more (and more texture).

    Attributes
    ----------
    strength : float
        Global multiplier on every strength (0 = identity). >= 0.
    luma_base, luma_sky, luma_skin : tuple of float
        Luma strengths outside the masks, in sky, on skin.
    chroma_base, chroma_sky, chroma_skin : tuple of float
        Chroma strengths for the same regions (on skin the luma-guided filter replaces the
        result, except at colour edges, see ``skin_chroma_edge``, and where
        ``skin_chroma_radius`` is 0).
    levels : int
        Number of pyramid bands (>= 1); fewer are used on images too small for them.
    window : int
        Radius (px) of the box window for the local band energy. >= 1.
    refine_masks : bool
        Make the masks edge-aware with a guided filter on luma before use.
    refine_radius : int
        Guided-filter radius in pixels at full resolution. >= 1.
    refine_eps : float
        Guided-filter regulariser on sqrt-luma (≈ squared edge contrast below which
        edges are ignored). > 0.
    skin_chroma_radius : int
        Radius, in half-resolution pixels, of the luma-guided chroma filter on skin
        (0 = shrink skin chroma like elsewhere, with ``chroma_skin``). >= 0.
    skin_chroma_eps : float
        Its regulariser in units of the local luma noise variance: below that much luma
        texture energy chroma is averaged, above it chroma follows the luma texture. > 0.
    skin_chroma_edge : float
        Colour-edge guard of the luma-guided skin chroma, in chromaticity (chroma / luma)
        units: where the chromaticity varies around a pixel more than the luma fit explains
        (std above ``2 * max(skin_chroma_edge, noise)``: lips, eyes, a coloured patch on
        clothing inside the skin mask) the guided result gives way to ordinary chroma
        shrinkage with ``chroma_skin``, instead of spreading one colour across the edge as a
        halo. ``inf`` disables it. > 0. 0.02 keeps the chart's skin figures and, on clean
        FASSEG faces, red nostrils and lip corners (ΔE2000 p99 3.4 -> 2.3, max 22 -> 7 vs
        0.10); below ~0.01 JPEG skin loses chroma denoising.
    skin_texture_contrast : float
        Relative luma contrast of skin texture that the noise is compared with (pores
        themselves are ~5–10 %; 0.30 is tuned together with ``skin_luma_floor``). The skin luma
        strengths are scaled by ``1 / sqrt(1 + (sigma / (c * Y))^2)``, ``sigma`` the luma
        noise and ``Y`` the mean skin luma: as the noise approaches the texture's own contrast
        the filter leaves fine grain rather than erasing the pores (a perceptual choice, as
        camera noise reduction keeps "grain over plastic" at high ISO, not the MSE optimum).
        ``inf`` disables the scaling. > 0.
    skin_luma_floor : tuple of float
        Per band (finest first, last value repeated), the smallest Wiener gain allowed on skin
        luma, in [0, 1] (0 = plain Wiener). A camera-style "grain over plastic" floor: where the
        local energy is near the noise level the plain gain drops to 0 and erases the pores
        with the noise; a floor ``g`` keeps a fraction ``g`` of both everywhere, so residual
        noise energy is at least ``g^2`` of the input but no patch of skin goes flat. On the
        benchmark chart 0.45 on the finest band moved JPEG ISO 12800 skin from 0.75 kept /
        0.39 removed to 0.70 / 0.49 with raw rows still >= 0.7 kept (benchmarks/denoise.py).
    jpeg_skin : bool
        On JPEG inputs (detected from the 8×8 DCT quantisation left in the pixels; nothing
        happens on other images, nor on skin whose noise is under 0.7 of an 8-bit level),
        replace the skin luma by the quantisation-aware Bayesian estimate of
        ``effects/_jpeg.py``: JPEG zeroed the noise in some DCT coefficients and left it whole
        in others, which only the file's own blocks can tell apart; a weak deblocking filter
        then keeps the 8×8 grid from showing. Chart JPEG skin (ISO 800 / 3200 / 12800, texture
        kept / removable noise removed, worst of six noise draws): 0.96/0.71, 0.90/0.56,
        0.73/0.66, against 0.92/0.45, 0.78/0.41, 0.70/0.49 without; block grid on skin 1.12,
        1.03, 0.90 (without 1.24, 1.17, 0.96; clean chart 0.99). Costs time in proportion to
        the skin's area: 0.3 s (2 threads) on a 12-MP photo whose skin matte covers a quarter
        of the frame.
    jpeg_prior_radius : int
        Radius, in 8×8 blocks, of the skin neighbourhood whose quantised coefficients set each
        coefficient's Gaussian prior (12 = 200 px windows). >= 1.
    """

    strength: float = 1.0
    # Tuned on benchmarks/denoise.py. Above ~2 the Wiener gain over-subtracts and costs PSNR
    # even in sky (soft cloud edges and gradients live in the coarse bands), hence the taper.
    luma_base: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.3)
    luma_sky: tuple[float, ...] = (2.0, 1.5, 1.0, 0.7, 0.6)
    luma_skin: tuple[float, ...] = (1.0, 0.5, 0.3)
    chroma_base: tuple[float, ...] = (1.0, 1.0, 0.8, 0.6, 0.5)
    chroma_sky: tuple[float, ...] = (4.0, 3.0, 2.0, 1.0, 0.8)
    chroma_skin: tuple[float, ...] = (4.0, 4.0, 3.0, 2.0, 1.5)
    levels: int = 5
    refine_masks: bool = True
    refine_radius: int = 16
    refine_eps: float = 1e-3
    skin_chroma_radius: int = 4
    skin_chroma_eps: float = 1.0
    skin_chroma_edge: float = 0.02
    skin_texture_contrast: float = 0.30
    skin_luma_floor: tuple[float, ...] = (0.45, 0.0)
    jpeg_skin: bool = True
    jpeg_prior_radius: int = 12
    window: int = 1

    def __post_init__(self):
        check_field_types(self)  # (numpy scalars become the Python values they hold)
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith(("luma_", "chroma_", "skin_luma_floor")):
                if len(v) == 0 or not all(x >= 0 and np.isfinite(x) for x in v):
                    raise ValueError(f"DenoiseParams.{f.name} must be a non-empty tuple of finite numbers >= 0 "
                                     f"(one per pyramid band); got {v!r}.")
        if not (np.isfinite(self.strength) and self.strength >= 0):
            raise ValueError(f"DenoiseParams.strength must be a finite number >= 0; got {self.strength!r}.")
        # Upper limits: past them OpenCV fails on the kernel size, or a call runs for minutes.
        for name, top in (("levels", 10), ("window", 64), ("refine_radius", 1024), ("jpeg_prior_radius", 1024)):
            v = getattr(self, name)
            if not 1 <= v <= top:
                raise ValueError(f"DenoiseParams.{name} must be an integer in [1, {top}]; got {v!r}.")
        if any(x > 1 for x in self.skin_luma_floor):
            raise ValueError(f"DenoiseParams.skin_luma_floor values must be gains in [0, 1]; got {self.skin_luma_floor!r}.")
        v = self.skin_chroma_radius
        if not 0 <= v <= 1024:
            raise ValueError(f"DenoiseParams.skin_chroma_radius must be an integer in [0, 1024] (0 = off); got {v!r}.")
        for name in ("skin_texture_contrast", "skin_chroma_edge"):
            v = getattr(self, name)
            # (1e-300 divided by zero)
            if not v >= 1e-6:
                raise ValueError(f"DenoiseParams.{name} must be a number >= 1e-6 (inf = off); got {v!r}.")
        for name in ("refine_eps", "skin_chroma_eps"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"DenoiseParams.{name} must be a finite number > 0; got {v!r}.")


def _band(values: tuple[float, ...], level: int) -> float:
    return float(values[min(level, len(values) - 1)])


@functools.lru_cache(maxsize=None)
def _band_noise_std(levels: int) -> tuple[float, ...]:
    """Std of each Laplacian band for unit white noise (measured once, deterministic)."""
    rng = np.random.default_rng(0)
    side = 32 * 2 ** levels if levels <= 4 else 512
    noise = rng.standard_normal((side, side)).astype(np.float32)
    bands = []
    g = noise
    for _ in range(levels):
        down = cv2.pyrDown(g)
        bands.append(g - cv2.pyrUp(down, dstsize=(g.shape[1], g.shape[0])))
        g = down
    # Skip a border strip: reflections at the edge change the statistics.
    return tuple(float(b[8:-8, 8:-8].std()) if min(b.shape) > 24 else float(b.std()) for b in bands)


# float32 constants for the kernels (a Python float would make their arithmetic float64).
_F0, _F1 = np.float32(0.0), np.float32(1.0)
_ENERGY_FLOOR = np.float32(1e-20)  # flat zero bands get gain 0, not NaN
_NO_PLANE = np.zeros((0, 0), np.float32)  # "none" for a kernel's optional plane (one type per argument)


def _to_opponent(img: np.ndarray) -> np.ndarray:
    """:func:`effects.noise_profile.rgb_to_opponent` in row bands over the threads (a new
    C-ordered H×W×3 float32 array; the frame's fresh pages are first touched in parallel too)."""
    h, w = img.shape[:2]
    opp = np.empty((h, w, 3), np.float32)

    def rows(y0: int, y1: int) -> None:
        rgb_to_opponent(img[y0:y1], dst=opp[y0:y1])

    run_in_row_bands(rows, h, w)
    return opp


def _up(x: np.ndarray, shape: tuple[int, int], dst: "np.ndarray | None" = None) -> np.ndarray:
    """``cv2.pyrUp`` of ``x`` to ``shape`` (rows, cols), into ``dst`` when it fits (see _Scratch)."""
    return cv2.pyrUp(x, dst=dst, dstsize=(shape[1], shape[0]))


class _Scratch:
    """Strip-sized float32 work arrays, one set per thread, reused from strip to strip.

    Why: a strip's temporaries are a few MB each; freed at the end of a strip they went back
    to the system and the next strip's came as fresh pages, whose faults cost about as much
    as the arithmetic here (a third of the CPU time of denoise was system time). One object
    per call, so nothing outlives it. ``get`` hands out a C-contiguous array of the shape asked
    for (a row prefix of the thread's array under that name, grown when too small); OpenCV
    writes into it when given as ``dst`` (and into a new array otherwise, so a mismatch costs
    only the saving).
    """

    def __init__(self):
        self._local = threading.local()

    def get(self, name: str, shape: tuple) -> np.ndarray:
        arrays = self._local.__dict__.setdefault("arrays", {})
        a = arrays.get(name)
        if a is None or a.shape[0] < shape[0] or a.shape[1:] != tuple(shape[1:]):
            a = arrays[name] = np.empty(shape, np.float32)
        return a[:shape[0]]


def _rows(x: np.ndarray) -> np.ndarray:
    """An N×W×C array with C-contiguous rows (a frame or a row slice of one) as N × (W·C): a
    view, never a copy (kernels write through it), for the kernels that walk pixels in a row."""
    rows = x.view()
    rows.shape = (x.shape[0], x.shape[1] * x.shape[2])  # (raises where a copy would be needed;
    # reshape's copy=False, which says the same, needs numpy 2.1)
    return rows


def _box(x: np.ndarray, r: int, dst: "np.ndarray | None" = None) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), dst=dst, borderType=cv2.BORDER_REFLECT)


def _guided_filter_fast(guide: np.ndarray, srcs, radius: int, eps: float, sub: int) -> list:
    """Fast guided filter (He & Sun 2015): coefficients at 1/sub resolution, brought up to full.

    ``srcs``: the images to filter with the same ``guide`` (each H×W, or already resized to the
    coefficient grid, ``(max(1, H // sub), max(1, W // sub))``); the guide's statistics are
    computed once for all of them. Returns, per source, the window-mean coefficients brought
    up to H×W, ``(a, b)`` (new float32 arrays): the filtered image is ``a * guide + b``, which
    the caller forms in its own pass (:func:`_region_weight_rows`).
    """
    h, w = guide.shape
    hs, ws = max(1, h // sub), max(1, w // sub)
    g = cv2.resize(guide, (ws, hs), interpolation=cv2.INTER_AREA)
    r = max(1, radius // sub)
    mean_g = _box(g, r)
    var_g = _box(g * g, r) - mean_g * mean_g
    var_g += np.float32(eps)
    out = []
    for src in srcs:
        p = src if src.shape == (hs, ws) else cv2.resize(src, (ws, hs), interpolation=cv2.INTER_AREA)
        mean_p = _box(p, r)
        cov = _box(g * p, r) - mean_g * mean_p
        a = cov / var_g
        b = mean_p - a * mean_g
        out.append(tuple(cv2.resize(_box(x, r), (w, h), interpolation=cv2.INTER_LINEAR) for x in (a, b)))
    return out


@kernel
def _sqrt_relu(x, out):
    """``out = sqrt(max(x, 0))`` (float32 H×W each): the guided filter's guide, sqrt-luma, in
    one pass instead of a copy, a threshold and a sqrt."""
    for i in range(x.shape[0]):
        x_row, o = x[i], out[i]
        for j in range(x.shape[1]):
            v = x_row[j]
            o[j] = np.sqrt(v if v > _F0 else _F0)


@kernel
def _region_weight_rows(guide, sky_a, sky_b, skin_a, skin_b, sky_out, skin_out):
    """Sky and skin weights from their guided-filter coefficients, in one pass.

    ``w = clip(a * guide + b, 0, 1)`` per region; where both regions are given and
    ``w_sky + w_skin > 1`` both are divided by that sum (so sky + skin <= 1). This was, per
    region, a multiply, an add and a two-pass clip, then an add, a max and two divisions.

    Parameters
    ----------
    guide : np.ndarray
        float32 H×W guide (sqrt-luma).
    sky_a, sky_b, skin_a, skin_b : np.ndarray
        float32 H×W coefficients brought up, or 0×0 for a region that is not there.
    sky_out, skin_out : np.ndarray
        float32 H×W weights in [0, 1], written (0×0 for a region that is not there).
    """
    has_sky, has_skin = sky_a.shape[0] > 0, skin_a.shape[0] > 0
    for i in range(guide.shape[0]):
        g_row = guide[i]
        for j in range(guide.shape[1]):
            g = g_row[j]
            s = t = _F0
            if has_sky:
                s = min(max(sky_a[i, j] * g + sky_b[i, j], _F0), _F1)
            if has_skin:
                t = min(max(skin_a[i, j] * g + skin_b[i, j], _F0), _F1)
            if has_sky and has_skin:
                total = s + t
                total = total if total > _F1 else _F1
                s, t = s / total, t / total
            if has_sky:
                sky_out[i, j] = s
            if has_skin:
                skin_out[i, j] = t


def _region_weights(sky, skin, luma1, p: DenoiseParams):
    """Edge-aware (sky, skin) weights at half resolution (the grid of ``luma1``), sky + skin <= 1.

    ``sky``/``skin`` are full-resolution masks or None; the guided filter runs on the
    half-resolution luma (radius halved), which keeps edges to about one full-res pixel.
    """
    h1, w1 = luma1.shape
    # (cv2.hasNonZero stops at the first non-zero value; m.any() cast all 12 M floats of a
    # full-resolution mask to bool, ~3 ms a mask on this thread's critical path.)
    masks = [m if (m is not None and cv2.hasNonZero(m)) else None for m in (sky, skin)]
    todo = [k for k, m in enumerate(masks) if m is not None]
    if not todo:
        return None, None
    if not (p.refine_masks and min(h1, w1) >= 8):
        out = [None, None]
        for k in todo:
            m = masks[k]
            out[k] = (cv2.resize(m, (w1, h1), interpolation=cv2.INTER_AREA) if m.shape != (h1, w1) else m
                      ).astype(np.float32, copy=False)
        sky_w, skin_w = out
        if sky_w is not None and skin_w is not None:
            over = cv2.max(cv2.add(sky_w, skin_w), 1.0)
            sky_w, skin_w = cv2.divide(sky_w, over), cv2.divide(skin_w, over, dst=over)
        return sky_w, skin_w
    sub = max(1, min(2, min(h1, w1) // 64))
    hs, ws = max(1, h1 // sub), max(1, w1 // sub)
    srcs = []
    for k in todo:
        m = masks[k]
        if m.shape == (h1, w1):
            srcs.append(m)
        elif m.shape == (2 * h1, 2 * w1) and (h1, w1) == (sub * hs, sub * ws):
            # Straight to the filter's grid: one area average over 2·sub pixels instead of
            # two (the same mean), and no half-resolution copy of the mask.
            srcs.append(cv2.resize(m, (ws, hs), interpolation=cv2.INTER_AREA))
        else:
            srcs.append(cv2.resize(m, (w1, h1), interpolation=cv2.INTER_AREA))
    guide = np.empty((h1, w1), np.float32)
    run_in_row_bands(lambda y0, y1: _sqrt_relu(luma1[y0:y1], guide[y0:y1]), h1, w1)
    coefs = dict(zip(todo, _guided_filter_fast(guide, srcs, max(1, p.refine_radius // 2), p.refine_eps, sub)))
    # a * guide + b, clipped to [0, 1] and, where sky and skin add up past 1, divided by their
    # sum: one pass over both weights.
    planes = [x for k in (0, 1) for x in coefs.get(k, (_NO_PLANE, _NO_PLANE))]
    sky_w, skin_w = (np.empty((h1, w1), np.float32) if k in coefs else _NO_PLANE for k in (0, 1))
    run_in_row_bands(lambda y0, y1: _region_weight_rows(guide[y0:y1], *(x[y0:y1] for x in planes), sky_w[y0:y1],
                                                        skin_w[y0:y1]), h1, w1)
    return (sky_w if sky_w.size else None), (skin_w if skin_w.size else None)


# --------------------------------------------------------------------------- fused kernels
#
# The Wiener shrinkage of a band was a chain of whole-array numpy/OpenCV calls (threshold from
# brightness and strengths, gain, floor, product, reconstruction, skin chroma, back to RGB,
# clip), each one pass over the strip: about fifteen passes per full-resolution pixel. The
# kernels below do each chain for a pixel while it is in registers. What stays in OpenCV is
# what is one efficient call already: pyrUp/pyrDown and the box filter of the band energy.
# Every kernel takes float32 C-contiguous arrays, writes rows the caller allocated and works
# on the rows it is given, so results do not depend on strips or threads.


def _strengths(profile, level: int, strength: float) -> np.ndarray:
    """(k_base, k_sky - k_base, k_skin - k_base) of one band for the kernels: float32 (3,).

    ``profile`` = (base, sky, skin) strength tuples. The differences are taken in double and
    rounded once, as ``cv2.addWeighted`` took its weights.
    """
    kb, ks, kk = (strength * _band(t, level) for t in profile)
    return np.array([kb, ks - kb, kk - kb], np.float32)


def _plane(x) -> np.ndarray:
    """A region weight for a kernel: C-contiguous float32, or the empty stand-in for None."""
    return _NO_PLANE if x is None else np.ascontiguousarray(x, dtype=np.float32)


@inline
def _clip_to(x, ceiling):
    """``min(max(x, 0), ceiling)`` for one float32 value (cv2.threshold TOZERO then TRUNC)."""
    x = x if x > _F0 else _F0
    return ceiling if x > ceiling else x


@inline
def _wiener_gain(energy, thresh):
    """``max(1 - T / max(E, 1e-20), 0)`` for one coefficient (float32 scalars)."""
    g = _F1 - thresh / max(energy, _ENERGY_FLOOR)
    return g if g > _F0 else _F0


@kernel
def _band_and_square(fine, up_coarse, band, band_sq):
    """``band = fine - up_coarse`` and ``band_sq = band^2``: one pass instead of cv2.subtract
    then cv2.multiply.

    Parameters
    ----------
    fine, up_coarse : np.ndarray
        float32 N×M, C-contiguous: a Gaussian level's rows (pixels flattened, channels
        interleaved) and the next level brought up to them.
    band, band_sq : np.ndarray
        float32 N×M outputs (``band`` may be ``up_coarse`` itself: elementwise).
    """
    n, m = fine.shape
    for i in range(n):
        for j in range(m):
            b = fine[i, j] - up_coarse[i, j]
            band[i, j] = b
            band_sq[i, j] = b * b


@kernel
def _root_threshold_rows(luma, sky, skin, k_luma, k_chroma, coef_a, coef_b, out):
    """``sqrt(T)`` of the finest band on the half-resolution grid, ``T = k^2 (a max(Y, 0) + b)``.

    Fuses what ``_k2`` and ``_threshold`` did with about ten whole-array calls (relu of a luma
    copy, per strength an addWeighted and a square, per channel an addWeighted, a multiply and
    a sqrt, then a merge). ``k = k_base + (k_sky - k_base) sky + (k_skin - k_base) skin`` is
    summed in ``cv2.addWeighted``'s order.

    Parameters
    ----------
    luma : np.ndarray
        float32 H×W half-resolution luma (any sign; clamped at 0 here).
    sky, skin : np.ndarray
        float32 H×W region weights in [0, 1], or 0×0 (``_NO_PLANE``) for none.
    k_luma, k_chroma : np.ndarray
        float32 (3,) strengths from :func:`_strengths`.
    coef_a, coef_b : np.ndarray
        float32 (3,) noise model of the band per opponent channel (band std folded in).
    out : np.ndarray
        float32 H×(3W), written: ``sqrt(T)`` for (luma, chroma_rb, chroma_gm) interleaved,
        i.e. an H×W×3 array's rows.
    """
    h, w = luma.shape
    has_sky, has_skin = sky.shape[0] > 0, skin.shape[0] > 0
    kl0, kl1, kl2 = k_luma[0], k_luma[1], k_luma[2]
    kc0, kc1, kc2 = k_chroma[0], k_chroma[1], k_chroma[2]
    a0, a1, a2 = coef_a[0], coef_a[1], coef_a[2]
    b0, b1, b2 = coef_b[0], coef_b[1], coef_b[2]
    for i in range(h):
        # Whole-row views and scalars hoisted out of the pixel loop: LLVM vectorises it.
        y_row, o = luma[i], out[i]
        sky_row = sky[i] if has_sky else y_row  # (never read when absent)
        skin_row = skin[i] if has_skin else y_row
        for j in range(w):
            y = y_row[j]
            y = y if y > _F0 else _F0
            s = sky_row[j] if has_sky else _F0
            t = skin_row[j] if has_skin else _F0
            kl = s * kl1 + t * kl2 + kl0
            kc = s * kc1 + t * kc2 + kc0
            o[3 * j] = np.sqrt((y * a0 + b0) * (kl * kl))
            o[3 * j + 1] = np.sqrt((y * a1 + b1) * (kc * kc))
            o[3 * j + 2] = np.sqrt((y * a2 + b2) * (kc * kc))


@kernel
def _finest_rows(band, energy, root_thresh, up_rec, row0, skin_w, col0, floor, skin_chroma, to_rgb, ceiling,
                 out):
    """Finest band of a strip: Wiener gain, reconstruction, skin chroma, RGB and clip, fused.

    For output row ``i`` (band row ``row0 + i``), opponent channel ``c``::

        g_c   = max(1 - root_thresh_c^2 / max(energy_c, 1e-20), 0)
        g_0   = max(g_0, clip(skin_w, 0, 1) * floor)          on the skin columns
        v_c   = up_rec_c + band_c * g_c
        v_c  += (ratio_c * v_0 - v_c) * weight_c  (c = 1, 2)   on the skin columns
        out   = clip(to_rgb @ v, 0, ceiling)

    which was about fifteen whole-strip passes (``_apply_gain``'s chain, the square of the
    brought-up threshold, the reconstruction add, five for the skin chroma blend, the
    opponent-to-RGB transform and two clipping thresholds); only the rows kept are computed
    (not the halo). A row goes through three loops, each simple enough for LLVM to vectorise:
    the gain and reconstruction over every value, the skin columns, then RGB and clip.

    Parameters
    ----------
    band, energy, root_thresh, up_rec : np.ndarray
        float32 N×(3W), rows of N×W×3 arrays (band rows with their halo): the band, its
        box-window mean of squares, ``sqrt(T)`` brought up, the denoised coarser level
        brought up.
    row0 : int
        Band row of output row 0.
    skin_w : np.ndarray
        float32 N×C skin weight brought up on columns ``[col0, col0 + C)`` (any range; clipped
        to [0, 1] here), or 0×0 off skin.
    col0 : int
        First column of ``skin_w``, ``ratio`` and ``weight``.
    floor : float32
        Smallest luma gain on full skin (``skin_luma_floor`` of band 0; 0 = none).
    skin_chroma : np.ndarray
        float32 N×(4C), rows of an N×C×4 array: the skin chromaticity and its blend weight
        brought up, (ratio_1, ratio_2, weight_1, weight_2) (see :func:`_skin_chroma_coefs`),
        or 0×0 for no skin chroma.
    to_rgb : np.ndarray
        float32 3×3 opponent-to-RGB matrix.
    ceiling : float32
        Upper clip of the output.
    out : np.ndarray
        float32 M×(3W) RGB output rows, written.
    """
    n_out, m = out.shape
    w = m // 3
    skin_cols = skin_w.shape[1] if skin_w.shape[0] > 0 else 0
    chroma = skin_chroma.shape[0] > 0
    v = np.empty(m, np.float32)  # one row of denoised opponent values
    gain = np.empty(m, np.float32)  # and of their gains (the skin floor raises the luma ones)
    m00, m01, m02 = to_rgb[0, 0], to_rgb[0, 1], to_rgb[0, 2]
    m10, m11, m12 = to_rgb[1, 0], to_rgb[1, 1], to_rgb[1, 2]
    m20, m21, m22 = to_rgb[2, 0], to_rgb[2, 1], to_rgb[2, 2]
    for i in range(n_out):
        s = row0 + i
        b, e, t, r = band[s], energy[s], root_thresh[s], up_rec[s]
        for k in range(m):
            g = _wiener_gain(e[k], t[k] * t[k])
            gain[k] = g
            v[k] = r[k] + b[k] * g
        if skin_cols > 0:
            kw_row = skin_w[s]
            for x in range(skin_cols):
                k = 3 * (col0 + x)
                kw = min(max(kw_row[x], _F0), _F1)
                v[k] = r[k] + b[k] * max(gain[k], kw * floor)
            if chroma:
                coef_row = skin_chroma[s]
                for x in range(skin_cols):
                    k, q = 3 * (col0 + x), 4 * x
                    y, v1, v2 = v[k], v[k + 1], v[k + 2]
                    v[k + 1] = v1 + (y * coef_row[q] - v1) * coef_row[q + 2]
                    v[k + 2] = v2 + (y * coef_row[q + 1] - v2) * coef_row[q + 3]
        o = out[i]
        for j in range(w):
            k = 3 * j
            v0, v1, v2 = v[k], v[k + 1], v[k + 2]
            o[k] = _clip_to(m00 * v0 + m01 * v1 + m02 * v2, ceiling)
            o[k + 1] = _clip_to(m10 * v0 + m11 * v1 + m12 * v2, ceiling)
            o[k + 2] = _clip_to(m20 * v0 + m21 * v1 + m22 * v2, ceiling)


@kernel
def _coarse_rows(band, energy, up_noisy, up_rec, row0, sky, skin, k_luma, k_chroma, coef_a, coef_b, floor,
                 out):
    """One coarse band's rows: threshold, Wiener gain, floor and reconstruction, fused.

    For output row ``i`` (band row ``s = row0 + i``), with ``Y = max(up_noisy_0, 0)`` the
    local brightness and ``k`` the strengths blended by the region weights (as in
    :func:`_root_threshold_rows`)::

        T_c   = k_c^2 (a_c Y + b_c)
        g_c   = max(1 - T_c / max(energy_c, 1e-20), 0);   g_0 = max(g_0, skin * floor)
        out_c = up_rec_c + band_c * g_c

    which was ``_k2``, ``_threshold`` and ``_apply_gain`` (about fifteen whole-strip calls)
    and the reconstruction add.

    Parameters
    ----------
    band, energy, up_noisy, up_rec : np.ndarray
        float32 N×(3W), rows of N×W×3 arrays: the band, its box-window mean of squares, the
        noisy coarser level brought up (its luma is the brightness), the denoised coarser
        level brought up.
    row0 : int
        Band row of output row 0.
    sky, skin : np.ndarray
        float32 N×W region weights of the band rows, or 0×0 for none.
    k_luma, k_chroma : np.ndarray
        float32 (3,) strengths from :func:`_strengths`.
    coef_a, coef_b : np.ndarray
        float32 (3,) noise model of the band.
    floor : float32
        Smallest luma gain on full skin (``skin_luma_floor`` of the band; 0 = none).
    out : np.ndarray
        float32 M×(3W) reconstructed rows, written.
    """
    n_out, m = out.shape
    w = m // 3
    has_sky, has_skin = sky.shape[0] > 0, skin.shape[0] > 0
    kl0, kl1, kl2 = k_luma[0], k_luma[1], k_luma[2]
    kc0, kc1, kc2 = k_chroma[0], k_chroma[1], k_chroma[2]
    a0, a1, a2 = coef_a[0], coef_a[1], coef_a[2]
    b0, b1, b2 = coef_b[0], coef_b[1], coef_b[2]
    for i in range(n_out):
        s = row0 + i
        b, e, u, r, o = band[s], energy[s], up_noisy[s], up_rec[s], out[i]
        sky_row = sky[s] if has_sky else u  # (never read when absent)
        skin_row = skin[s] if has_skin else u
        for j in range(w):
            k = 3 * j
            y = u[k]
            y = y if y > _F0 else _F0
            ws = sky_row[j] if has_sky else _F0
            wk = skin_row[j] if has_skin else _F0
            kl = ws * kl1 + wk * kl2 + kl0
            kc = ws * kc1 + wk * kc2 + kc0
            # (No skin: wk * floor = 0 leaves the gain, which is >= 0, as it is.)
            g0 = max(_wiener_gain(e[k], (y * a0 + b0) * (kl * kl)), wk * floor)
            g1 = _wiener_gain(e[k + 1], (y * a1 + b1) * (kc * kc))
            g2 = _wiener_gain(e[k + 2], (y * a2 + b2) * (kc * kc))
            o[k] = r[k] + b[k] * g0
            o[k + 1] = r[k + 1] + b[k + 1] * g1
            o[k + 2] = r[k + 2] + b[k + 2] * g2


def _skin_fine_ratio(noise: NoiseProfile, y: float) -> float:
    """Variance ratio, at luma ``y``, of the half-resolution model to the full-resolution one
    when that ratio says the image was compressed (> 2; white noise gives 1), else 1.

    JPEG quantisation zeroes small DCT coefficients, so in flat blocks (where
    :func:`effects.estimate_noise` measures) fine-scale noise is gone, while in textured
    blocks, whose coefficients are large anyway, it survives at nearly its full level. Skin
    is such a mid-texture region, so on skin the finest band is thresholded with the coarse,
    white-equivalent level. Not in sky (faint real cloud texture would be erased there) nor
    elsewhere (hair, fabric: light denoising is wanted anyway).
    """
    if not noise.coarse_a:
        return 1.0
    a0, b0 = noise.model_at(0, 0)
    a1, b1 = noise.model_at(1, 0)
    v0, v1 = a0 * y + b0, a1 * y + b1
    return v1 / v0 if v0 > 0 and v1 > 2.0 * v0 else 1.0


def _model(noise: NoiseProfile, level: int, band_std: float):
    """(a, b) vectors (3,) for a band: the per-scale noise model times the band's white-noise variance."""
    ab = [noise.model_at(level, ch) for ch in range(3)]
    bs2 = band_std * band_std
    return (np.array([x[0] * bs2 for x in ab], np.float32), np.array([x[1] * bs2 for x in ab], np.float32))


def _denoise_coarse(g1, sky1, skin1, noise, p, levels, band_std, skin_chroma, g2=None):
    """Denoise the half-resolution Gaussian level ``g1`` (H1×W1×3 opponent) over bands 1..levels-1.

    Returns the reconstructed, denoised level 1 (a new array). ``g2``: ``cv2.pyrDown(g1)``
    when already computed (by the noise estimate), else None.
    """
    gs = [g1]
    for _ in range(1, levels):
        gs.append(g2 if (len(gs) == 1 and g2 is not None) else cv2.pyrDown(gs[-1]))
    sky_ws = [sky1] if sky1 is not None else None
    skin_ws = [skin1] if skin1 is not None else None
    for _ in range(1, levels):
        if sky_ws is not None:
            sky_ws.append(cv2.pyrDown(sky_ws[-1]))
        if skin_ws is not None:
            skin_ws.append(cv2.pyrDown(skin_ws[-1]))
    strength = float(p.strength)
    win = p.window
    rec = gs[-1].copy()  # coarsest Gaussian level: not shrunk (mean brightness and colour)
    for lv in range(levels - 1, 0, -1):
        i = lv - 1  # index in gs of this band's level
        g, g_next, rec_next = gs[i], gs[i + 1], rec
        hg, wg = g.shape[:2]
        sw = _plane(sky_ws[i] if sky_ws is not None else None)
        kw = _plane(skin_ws[i] if skin_ws is not None else None)
        coef_a, coef_b = _model(noise, lv, band_std[lv])
        k_luma = _strengths((p.luma_base, p.luma_sky, p.luma_skin), lv, strength)
        k_chroma = _strengths((p.chroma_base, p.chroma_sky, p.chroma_skin), lv, strength)
        floor = np.float32(_band(p.skin_luma_floor, lv))
        rec = np.empty_like(g)
        scratch = _Scratch()

        def process_rows(r0: int, r1: int) -> None:
            # Rows [r0, r1) of the level, from band rows widened by the energy window and
            # coarser rows widened by the pyrUp kernel (as in the finest band's strips: the
            # rows written equal whole-level processing). Every call returns within this
            # iteration of the loop, so the loop variables it reads are this level's.
            e0, e1 = max(0, r0 - win), min(hg, r1 + win)
            q0, q1 = max(0, e0 // 2 - 2), min(g_next.shape[0], (e1 + 1) // 2 + 2)
            u0, u1 = 2 * q0, min(hg, 2 * q1)
            shp = (u1 - u0, wg)
            shp3 = shp + (3,)
            up_noisy = _up(g_next[q0:q1], shp, scratch.get("up_noisy", shp3))
            band, band_sq = scratch.get("band", shp3), scratch.get("band_sq", shp3)
            _band_and_square(_rows(g[u0:u1]), _rows(up_noisy), _rows(band), _rows(band_sq))
            energy = _box(band_sq, win, scratch.get("energy", shp3))
            res = _up(rec_next[q0:q1], shp, scratch.get("res", shp3))
            _coarse_rows(_rows(band), _rows(energy), _rows(up_noisy), _rows(res), r0 - u0, sw[u0:u1], kw[u0:u1],
                         k_luma, k_chroma, coef_a, coef_b, floor, _rows(rec[r0:r1]))

        # Level 1 (a quarter of the frame) in strips over the threads; coarser ones whole.
        if hg * wg >= _COARSE_STRIPS_MIN:
            run_strips(lambda r0: process_rows(r0, min(hg, r0 + _STRIP)), range(0, hg, _STRIP), hg, wg)
        else:
            process_rows(0, hg)
    return rec


_EDGE_KAPPA = np.float32(4.0)  # residual above 4x its noise-only value counts as a colour edge
_RATIO_FLOOR = np.float32(2e-3)  # luma floor (linear) when forming chroma/luma ratios
_EPS_FLOOR = np.float32(1e-12)  # smallest guided-filter regulariser of the skin chroma fit
_NO_CUBE = np.zeros((0, 0, 0), np.float32)  # "no ratio squares" (colour-edge guard off)


@kernel
def _skin_ratio_moments(y, g1_rows, col0, y_sq, ratios, y_ratios, ratio_sqs):
    """The planes whose window means the skin chroma fit needs, in one pass.

    ``yf = max(y, _RATIO_FLOOR)``, then ``y^2`` and per chroma channel ``c`` (1, 2) the
    chromaticity ``r_c = chroma_c / yf``, ``y r_c`` and ``r_c^2``: what was a cv2.max, a
    strided column read and a division per channel, and four products, each a pass.

    Parameters
    ----------
    y : np.ndarray
        float32 N×M denoised half-resolution luma of the region's rows.
    g1_rows : np.ndarray
        float32 N×(3 W1): the same rows of the noisy half-resolution opponent image (H1×W1×3
        rows); column ``col0 + j`` is ``y``'s column ``j``.
    col0 : int
        First column of the region.
    y_sq : np.ndarray
        float32 N×M, written: ``y^2``.
    ratios, y_ratios, ratio_sqs : np.ndarray
        float32 2×N×M, written: ``r_c``, ``y r_c``, ``r_c^2`` for chroma_rb then chroma_gm
        (``ratio_sqs`` may be 0×0×0 when the colour-edge guard is off).
    """
    n, m = y.shape
    squares = ratio_sqs.shape[0] > 0
    for i in range(n):
        y_row, g_row = y[i], g1_rows[i]
        for j in range(m):
            v = y_row[j]
            y_sq[i, j] = v * v
            yf = v if v > _RATIO_FLOOR else _RATIO_FLOOR
            for k in range(2):
                rk = g_row[3 * (col0 + j) + 1 + k] / yf
                ratios[k, i, j] = rk
                y_ratios[k, i, j] = v * rk
                if squares:
                    ratio_sqs[k, i, j] = rk * rk


@kernel
def _skin_chroma_fit(mean_y, mean_y_sq, mean_r, mean_yr, mean_r_sq, eps_a, eps_b, nv_a, nv_b, edge_var,
                     fit_a, fit_b, edge_weight):
    """Per-window guided-filter coefficients of one chroma channel's ratio, and the colour-edge
    weight before its 3×3 minimum (the chain between the two rounds of box filters, ~20 passes).

    The colour-edge weight compares the ratio variance the luma fit leaves unexplained
    (``resid``) with what noise alone leaves (``nv``: the half-res ratio's noise, floored at
    ``skin_chroma_edge^2``, since JPEG's 4:2:0 chroma makes the estimated chroma noise tiny).

    With ``my = max(mean_y, 0)``, ``eps = max(my eps_a + eps_b, 1e-12)``,
    ``var = max(mean_y_sq - mean_y^2, 0)`` and ``cov = mean_yr - mean_y mean_r``::

        fit_a = cov / (var + eps);   fit_b = mean_r - fit_a mean_y
        resid = mean_r_sq - mean_r^2 - fit_a cov
        nv    = 4 max((my nv_a + nv_b) / max(mean_y, _RATIO_FLOOR)^2, edge_var)
        edge_weight = 1 / ((resid / nv)^2 + 1)

    Parameters
    ----------
    mean_y, mean_y_sq, mean_r, mean_yr : np.ndarray
        float32 N×M window means of ``y``, ``y^2``, ``r``, ``y r``.
    mean_r_sq : np.ndarray
        float32 N×M window mean of ``r^2``, or 0×0 when the colour-edge guard is off
        (``edge_weight`` is then not written).
    eps_a, eps_b, nv_a, nv_b, edge_var : float32
        The regulariser's model, the ratio noise's model, the floor of its variance.
    fit_a, fit_b, edge_weight : np.ndarray
        float32 N×M, written (``edge_weight`` 0×0 when the guard is off).
    """
    n, m = mean_y.shape
    edge = mean_r_sq.shape[0] > 0
    for i in range(n):
        for j in range(m):
            my0 = mean_y[i, j]
            my = my0 if my0 > _F0 else _F0
            eps = my * eps_a + eps_b
            eps = eps if eps > _EPS_FLOOR else _EPS_FLOOR
            var = mean_y_sq[i, j] - my0 * my0
            var = var if var > _F0 else _F0
            mr = mean_r[i, j]
            cov = mean_yr[i, j] - my0 * mr
            a = cov / (var + eps)
            fit_a[i, j] = a
            fit_b[i, j] = mr - a * my0
            if edge:
                resid = mean_r_sq[i, j] - mr * mr - a * cov
                yf = my0 if my0 > _RATIO_FLOOR else _RATIO_FLOOR
                nv = (my * nv_a + nv_b) * (_F1 / (yf * yf))
                nv = (nv if nv > edge_var else edge_var) * _EDGE_KAPPA
                q = resid / nv
                edge_weight[i, j] = _F1 / (q * q + _F1)


@kernel
def _skin_chroma_out(mean_a, mean_b, y, low, high, skin, edge_min, row0, channel, col0, out_rows):
    """One chroma channel of the skin chromaticity and its blend weight, into the output rows.

    ``ratio = min(max(mean_a y + mean_b, low), high)`` (the fit at the denoised luma, clamped
    to the range of window means around it) and ``weight = skin * edge_min`` (``skin`` when
    the colour-edge guard is off), for input rows ``row0 ..``: what were a multiply, an add,
    a max and a min, a copy and a product, and the merge into the 3-channel planes.

    Parameters
    ----------
    mean_a, mean_b, y, low, high, skin : np.ndarray
        float32 N×M: window means of the coefficients, the denoised luma, the 3×3 min and max
        of the window-mean ratio, the skin weight.
    edge_min : np.ndarray
        float32 N×M 3×3 minimum of the colour-edge weight, or 0×0 when the guard is off.
    row0, channel, col0 : int
        Input row of output row 0; the chroma channel (0: chroma_rb, 1: chroma_gm) and the
        first column written.
    out_rows : np.ndarray
        float32 K×(4 W1), rows of the H1×W1×4 output of :func:`_skin_chroma_coefs`: the ratio
        is written to channel ``channel``, the weight to ``channel + 2``, from column ``col0``.
    """
    n_out = out_rows.shape[0]
    m = y.shape[1]
    edge = edge_min.shape[0] > 0
    for i in range(n_out):
        s = row0 + i
        for j in range(m):
            f = mean_a[s, j] * y[s, j] + mean_b[s, j]
            lo = low[s, j]
            f = f if f > lo else lo
            hi = high[s, j]
            q = 4 * (col0 + j) + channel
            out_rows[i, q] = f if f < hi else hi
            out_rows[i, q + 2] = skin[s, j] * edge_min[s, j] if edge else skin[s, j]


def _skin_chroma_coefs(y1_denoised, g1_noisy, skin1, noise, p, rows, cols):
    """Skin chromaticity and its blend weight on the half-res grid, for chroma = ratio * luma.

    Returns one H1×W1×4 float32 array, (ratio_rb, ratio_gm, weight_rb, weight_gm) per pixel,
    so the strip loop brings all four up with one pyrUp. The ratio ``chroma / luma`` is
    modelled as ``a * luma + b`` (guided
    filter, He, Sun & Tang 2013, with the denoised half-res luma as guide), evaluated at that
    luma and clamped to the range of the window-mean ratios around each pixel; the full-res
    chroma is then this ratio (brought up by pyrUp) times the full-res denoised luma, so the
    luma texture carries into chroma. ``weight`` is the skin weight times the colour-edge
    weight (see ``DenoiseParams.skin_chroma_edge``). Working on the ratio (chromaticity) rather than on
    chroma itself is the multiplicative-texture model: pores and shading scale all channels,
    so the ratio is locally constant and the texture is carried by luma alone; and where the
    linear fit extrapolates (a dark mouth corner next to lips) the result stays a plausible
    chromaticity scaled by a small luma instead of a saturated colour. ``eps`` is
    ``skin_chroma_eps`` times the full-resolution luma noise variance at the local brightness.

    Only the half-res ``rows`` × ``cols`` ranges (where skin can be) are needed: the planes are
    computed on that region widened by the filters' reach (two box filters and a 3×3
    min/max, so the values inside are exact) and are zero elsewhere.
    """
    r = p.skin_chroma_radius
    h1, w1 = y1_denoised.shape
    m = 2 * r + 4
    y_lo, y_hi = max(0, rows[0] - m), min(h1, rows[1] + m)
    xs = slice(max(0, cols[0] - m), min(w1, cols[1] + m))
    a0, b0 = noise.model_at(0, 0)
    eps_a, eps_b = np.float32(a0 * p.skin_chroma_eps), np.float32(b0 * p.skin_chroma_eps)
    edge = bool(np.isfinite(p.skin_chroma_edge))
    # Noise of the half-res chroma per channel (divided by luma^2 in the kernel: the ratio's).
    noise_c = [tuple(np.float32(_PYRDOWN_VAR * x) for x in noise.model_at(1, c)) for c in (1, 2)]
    # A huge finite edge (1e30, as good as off) squares past float32's range to inf, which the
    # kernel takes as off: no overflow warning for that.
    with np.errstate(over="ignore"):
        edge_var = np.float32(p.skin_chroma_edge) ** 2 if edge else _F0
    square3 = np.ones((3, 3), np.uint8)
    g1_rows = _rows(g1_noisy)
    # Zero outside the region (the strips' pyrUp reads a few rows beyond it).
    coefs = np.zeros((h1, w1, 4), np.float32)
    scratch = _Scratch()

    def process_rows(t0: int, t1: int) -> None:
        # Rows [y_lo + t0, y_lo + t1) from a window widened by m on both sides (as the whole
        # region is): the filters reach 2r + 2 rows, so the rows written are exact.
        r0, r1 = y_lo + t0, y_lo + t1
        e0, e1 = max(y_lo, r0 - m), min(y_hi, r1 + m)
        ys = slice(e0, e1)
        shape = (e1 - e0, xs.stop - xs.start)
        y, skin = scratch.get("y", shape), scratch.get("skin", shape)
        np.copyto(y, y1_denoised[ys, xs])
        np.copyto(skin, skin1[ys, xs])
        y_sq = scratch.get("y_sq", shape)
        ratios, y_ratios = scratch.get("ratios", (2, *shape)), scratch.get("y_ratios", (2, *shape))
        ratio_sqs = scratch.get("ratio_sqs", (2, *shape)) if edge else _NO_CUBE
        _skin_ratio_moments(y, g1_rows[ys], xs.start, y_sq, ratios, y_ratios, ratio_sqs)
        mean_y, mean_y_sq = _box(y, r, scratch.get("mean_y", shape)), _box(y_sq, r, scratch.get("mean_y_sq", shape))
        out_rows = _rows(coefs[r0:r1])
        box = lambda x, name: _box(x, r, scratch.get(name, shape))
        morph = lambda op, x, name: op(x, square3, dst=scratch.get(name, shape), borderType=cv2.BORDER_REFLECT)
        for k in range(2):
            mean_r = box(ratios[k], "mean_r")
            fit_a, fit_b = scratch.get("fit_a", shape), scratch.get("fit_b", shape)
            edge_weight = scratch.get("edge_weight", shape) if edge else _NO_PLANE
            _skin_chroma_fit(mean_y, mean_y_sq, mean_r, box(y_ratios[k], "mean_yr"),
                             box(ratio_sqs[k], "mean_r_sq") if edge else _NO_PLANE, eps_a, eps_b, *noise_c[k], edge_var,
                             fit_a, fit_b, edge_weight)
            # The chromaticity at the denoised half-res luma, clamped to the local range of
            # window means (chroma = this ratio * full-res luma, see the strip loop); the weight
            # the skin's times the colour-edge weight's 3×3 minimum (the half-res window next to
            # an edge gives way too).
            _skin_chroma_out(box(fit_a, "mean_a"), box(fit_b, "mean_b"), y, morph(cv2.erode, mean_r, "low"),
                             morph(cv2.dilate, mean_r, "high"), skin,
                             morph(cv2.erode, edge_weight, "edge_min") if edge else _NO_PLANE,
                             r0 - e0, k, xs.start, out_rows)

    n = y_hi - y_lo
    run_strips(lambda t0: process_rows(t0, min(n, t0 + _COEF_STRIP)), range(0, n, _COEF_STRIP), n, xs.stop - xs.start)
    return coefs


def denoise(image: np.ndarray, *, sky_mask: np.ndarray | None = None, skin_mask: np.ndarray | None = None,
            iso: float | None = None, noise: NoiseProfile | None = None,
            params: DenoiseParams | None = None) -> np.ndarray:
    """Denoise an image with strengths that depend on sky and skin masks.

    Strong luma and chroma denoising at every scale in sky, medium on skin (fine-scale noise
    removed, pore-scale texture kept, chroma following the luma texture), light elsewhere;
    transitions follow image edges. Method: Laplacian-pyramid local Wiener shrinkage
    (Mihçak et al. 1999) scaled by a per-scale Poissonian-Gaussian noise model (Foi et al.
    2008), with luma-guided chroma on skin (He, Sun & Tang 2013); see the module docstring.

    Parameters
    ----------
    image : np.ndarray
        float32 H×W×3 linear-light RGB, nominal range [0, 1] (other float dtypes are accepted
        and computed in float32). Not modified.
    sky_mask, skin_mask : np.ndarray, optional
        float32 (or bool) H×W soft mattes in [0, 1]; 1 = sky / skin. None = no such region.
    iso : float, optional
        EXIF ISO speed, used as a prior by the noise estimate (ignored when ``noise`` is given).
    noise : NoiseProfile, optional
        A known noise profile; by default it is estimated from ``image`` with
        :func:`effects.estimate_noise`.
    params : DenoiseParams, optional
        Strengths and filter options; ``DenoiseParams()`` when None.

    Returns
    -------
    np.ndarray
        New float32 H×W×3 linear RGB array. Values are clipped below at 0 and above at
        ``max(1, image.max())``.

    Raises
    ------
    TypeError, ValueError
        Bad image, masks of the wrong size or outside [0, 1], NaNs, bad ``iso``/``noise``/``params``.

    Examples
    --------
    >>> out = denoise(img, sky_mask=seg.sky, skin_mask=seg.skin, iso=3200)  # doctest: +SKIP
    """
    # The maximum comes with the finiteness check (one threaded pass): it is the clip ceiling.
    img, _, img_max = check_image(image, "image", return_range=True)
    h, w, _ = img.shape
    sky = _check_mask(sky_mask, (h, w), "sky_mask")
    skin = _check_mask(skin_mask, (h, w), "skin_mask")
    iso = _check_iso(iso)
    if params is None:
        params = DenoiseParams()
    elif not isinstance(params, DenoiseParams):
        raise TypeError(f"`params` must be a DenoiseParams or None; got {type(params).__name__}.")
    if noise is not None and not isinstance(noise, NoiseProfile):
        raise TypeError(f"`noise` must be a NoiseProfile (see effects.estimate_noise) or None; got {type(noise).__name__}.")
    p = params
    # A band needs at least a few pixels to have a meaningful local energy.
    levels = min(p.levels, max(0, int(np.log2(max(1, min(h, w)))) - 2))
    # Early exits return a clipped copy, as the docstring promises of every output.
    if levels == 0 or p.strength == 0:
        return np.maximum(img, 0.0)

    opp = _to_opponent(img)  # new array; H×W×3 (luma, chroma_rb, chroma_gm)
    g1 = cv2.pyrDown(opp)
    g2 = None  # quarter resolution, shared by the noise estimate and the coarse bands
    luma1 = cv2.extractChannel(g1, 0)
    if noise is None:
        g2 = cv2.pyrDown(g1)
        # The region weights do not depend on the noise: refined on a second thread while
        # this one estimates the noise (both are mostly single-threaded OpenCV and numpy).
        with side_thread(h, w) as side:
            weights = later(side, _region_weights, sky, skin, luma1, p)
            noise = _estimate_from_opponent(opp, iso, g1, g2)
            sky1, skin1 = weights.result()
    else:
        sky1, skin1 = _region_weights(sky, skin, luma1, p)
    if max(noise.a) == 0 and max(noise.b) == 0 and not any(map(any, noise.coarse_a + noise.coarse_b)):
        return np.maximum(img, 0.0)

    band_std = _band_noise_std(levels)
    h1, w1 = g1.shape[:2]
    y_skin = None
    if skin1 is not None and np.isfinite(p.skin_texture_contrast):
        # Noise-to-texture scaling of the skin luma strengths (see DenoiseParams).
        wsum = float(skin1.sum())
        y_skin = max(float((skin1 * luma1).sum()) / max(wsum, 1e-6), 1e-4)
        a_f, b_f = noise.model_at(0, 0)
        jpeg_ratio = _skin_fine_ratio(noise, y_skin)
        rel2 = jpeg_ratio * (a_f * y_skin + b_f) / (p.skin_texture_contrast * y_skin) ** 2
        f = 1.0 / float(np.sqrt(1.0 + rel2))
        # Finest band: also scaled up to the noise JPEG left in textured blocks (see above).
        ls = tuple(x * f * (np.sqrt(jpeg_ratio) if i == 0 else 1.0) for i, x in enumerate(p.luma_skin))
        p = replace(p, luma_skin=ls)
    skin_chroma = skin1 is not None and p.skin_chroma_radius > 0
    rec1 = _denoise_coarse(g1, sky1, skin1, noise, p, levels, band_std, skin_chroma, g2)

    # Finest band. Everything smooth is computed on the half-resolution grid and brought up
    # with one pyrUp per strip: the threshold T = k^2 (a * brightness + b) (brightness and
    # region weights are low-pass anyway), so the full-resolution work is the band itself,
    # its local energy, the gain, the reconstruction and the conversion back to RGB.
    strength = float(p.strength)
    coef_a, coef_b = _model(noise, 0, band_std[0])
    k_luma = _strengths((p.luma_base, p.luma_sky, p.luma_skin), 0, strength)
    k_chroma = _strengths((p.chroma_base, p.chroma_sky, p.chroma_skin), 0, strength)
    # sqrt(T) = k * sigma is what is interpolated: at a mask edge k then changes linearly
    # across the pyrUp kernel, as it did when the masks themselves were upsampled, instead of
    # k^2 spreading the larger (sky) strength into the first pixels outside the mask.
    root_thresh1 = np.empty((h1, w1, 3), np.float32)
    sky_plane, skin_plane = _plane(sky1), _plane(skin1)
    run_in_row_bands(lambda y0, y1: _root_threshold_rows(luma1[y0:y1], sky_plane[y0:y1], skin_plane[y0:y1], k_luma,
                                                          k_chroma, coef_a, coef_b, _rows(root_thresh1[y0:y1])), h1, w1)
    floor0 = np.float32(_band(p.skin_luma_floor, 0))
    skin_rows = skin_cols = None
    if skin1 is not None:
        rows, cols = np.flatnonzero(skin1.any(axis=1)), np.flatnonzero(skin1.any(axis=0))
        if rows.size:
            # Half-res rows/cols where the skin weight (and so its pyrUp) can be non-zero.
            skin_rows = (max(0, rows[0] - 2), min(h1, rows[-1] + 3))
            skin_cols = (max(0, cols[0] - 2), min(w1, cols[-1] + 3))
    skin_chroma = skin_chroma and skin_rows is not None
    if skin_chroma:
        coefs1 = _skin_chroma_coefs(cv2.extractChannel(rec1, 0), g1, skin1, noise, p, skin_rows, skin_cols)
    hi = np.float32(max(1.0, img_max))
    out = np.empty(img.shape, np.float32)  # C order: strips of it are contiguous OpenCV outputs
    win = p.window
    jpeg_step = p.jpeg_skin and skin_rows is not None
    scratch = _Scratch()
    # Finest band in strips: rows [r0, r1) of the output need band rows widened by the
    # energy window, which need half-resolution rows widened by the pyrUp kernel (2 rows).
    def process_strip(r0: int) -> None:
        r1 = min(h, r0 + _STRIP)
        e0, e1 = max(0, r0 - win), min(h, r1 + win)            # band rows incl. halo
        q0, q1 = max(0, e0 // 2 - 2), min(h1, (e1 + 1) // 2 + 2)  # half-res rows
        u0, u1 = 2 * q0, min(h, 2 * q1)                        # rows pyrUp of [q0, q1) covers
        shp = (u1 - u0, w)
        shp3 = shp + (3,)
        band = _up(g1[q0:q1], shp, scratch.get("band", shp3))
        band_sq = scratch.get("band_sq", shp3)
        _band_and_square(_rows(opp[u0:u1]), _rows(band), _rows(band), _rows(band_sq))  # band in place
        energy = _box(band_sq, win, scratch.get("energy", shp3))
        root_thresh = _up(root_thresh1[q0:q1], shp, scratch.get("root_thresh", shp3))
        res = _up(rec1[q0:q1], shp, scratch.get("res", shp3))
        kw, x0, chroma = _NO_PLANE, 0, _NO_PLANE  # (off skin)
        on_skin = skin_rows is not None and q0 < skin_rows[1] and q1 > skin_rows[0]
        if on_skin:
            # Skin weight on the columns that can hold skin (pyrUp of a column slice with
            # 2 half-res columns of margin, or the image edge, equals the whole-row pyrUp there).
            c0, c1 = skin_cols
            s0, s1 = max(0, c0 - 2), min(w1, c1 + 2)
            x0, x1 = 2 * s0, min(w, 2 * s1)
            kw = _up(skin1[q0:q1, s0:s1], (u1 - u0, x1 - x0), scratch.get("skin", (u1 - u0, x1 - x0)))
            if skin_chroma:
                # Skin chroma = ratio_c * y with y the denoised full-res luma, blended in by the
                # skin (and colour-edge) weight (in the kernel).
                chroma = _rows(_up(coefs1[q0:q1, s0:s1], kw.shape, scratch.get("chroma", kw.shape + (4,))))
        # Gain, reconstruction, skin chroma, back to RGB and clip to [0, hi]: one pass, straight
        # into the output rows.
        _finest_rows(_rows(band), _rows(energy), _rows(root_thresh), _rows(res), r0 - u0, kw, x0, floor0,
                     chroma, _OPP_TO_RGB, hi, _rows(out[r0:r1]))

    # Strips are independent; handed to the threads as they come free (skin strips cost more).
    run_strips(process_strip, range(0, h, _STRIP), h, w)
    if jpeg_step:
        # JPEG inputs: skin luma re-estimated in the file's own DCT blocks (effects/_jpeg.py);
        # a no-op on images without JPEG quantisation on the 8×8 grid.
        # The same noise-to-texture scaling as the pyramid's skin luma (its threshold k^2
        # sigma^2 is scaled by f^2), with the noise the JPEG step models: the white-equivalent
        # (pre-compression) level of the half-resolution scale.
        a1, b1 = noise.model_at(1, 0)
        f2 = 1.0
        if y_skin is not None:
            f2 = 1.0 / (1.0 + (a1 * y_skin + b1) / (p.skin_texture_contrast * y_skin) ** 2)
        # (The half-resolution skin weight: the step brings it up where it blends.)
        jpeg_skin_luma(img, out, skin1, (a1, b1), prior_radius=p.jpeg_prior_radius, noise_scale=f2,
                       ceiling=float(hi))
    return out
