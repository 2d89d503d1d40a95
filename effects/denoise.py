"""Sky- and skin-aware denoising driven by a brightness-dependent noise model.

Technique (what a camera's noise-reduction block does, in three steps):

1. **Noise model.** ``sigma^2(I) = a I + b`` per opponent channel, fitted from the image itself
   (:func:`effects.estimate_noise`, Foi et al. 2008) or given by the caller. Every threshold
   below is in units of this local sigma, so one strength fits shadows and highlights alike
   (the role a variance-stabilising transform plays, without its inverse bias in the shadows).
2. **Multiscale shrinkage.** Luma and the two chroma channels are split into a Laplacian
   pyramid (Burt & Adelson 1983). Each band coefficient ``c`` is scaled by a locally adaptive
   Wiener gain ``max(0, E[c^2] - k^2 v) / E[c^2]`` where ``E[c^2]`` is the local band energy
   (box window) and ``v`` the band's noise variance at the local brightness (Mihçak, Kozintsev,
   Ramchandran & Moulin 1999, "Low-complexity image denoising based on statistical modeling
   of wavelet coefficients"). Texture and edges, with energy well above the noise, keep
   their gain near 1; flat noisy areas go to 0. Nothing is quantised, so smooth skies stay
   free of banding.
3. **Region strengths.** ``k`` is a per-pixel, per-band map blended from three profiles with
   the sky and skin masks: strong at every scale in sky (incl. coarse blotches), strong at the
   finest scale but light at pore scale on skin, light elsewhere (hair, fabric, foliage). The
   masks are first made edge-aware with a fast guided filter on luma (He, Sun & Tang 2013;
   He & Sun 2015), so a soft or low-resolution mask does not spill sky-strength smoothing
   across a horizon or a hairline. Chroma uses its own, stronger profiles: chroma noise is
   blotchy and the eye is far less sensitive to fine chroma detail.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import cv2
import numpy as np

from .noise_profile import (NoiseProfile, _check_image, _check_iso, _check_mask,
                            estimate_noise, opponent_to_rgb, rgb_to_opponent)

__all__ = ["DenoiseParams", "denoise"]


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
        Chroma strengths for the same regions.
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
    """

    strength: float = 1.0
    # Tuned on benchmarks/denoise.py. Above ~2 the Wiener gain over-subtracts and costs PSNR
    # even in sky (soft cloud edges and gradients live in the coarse bands), hence the taper.
    luma_base: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.3)
    luma_sky: tuple[float, ...] = (2.0, 2.0, 1.5, 1.0, 1.0)
    luma_skin: tuple[float, ...] = (0.9, 0.45, 0.25)
    chroma_base: tuple[float, ...] = (1.0, 1.0, 0.8, 0.6, 0.5)
    chroma_sky: tuple[float, ...] = (4.0, 3.0, 2.0, 1.0, 0.8)
    chroma_skin: tuple[float, ...] = (4.0, 4.0, 3.0, 2.0, 1.5)
    levels: int = 5
    window: int = 2
    refine_masks: bool = True
    refine_radius: int = 16
    refine_eps: float = 1e-3

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith(("luma_", "chroma_")):
                if not isinstance(v, tuple) or len(v) == 0 or not all(
                        isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 and np.isfinite(x) for x in v):
                    raise ValueError(f"DenoiseParams.{f.name} must be a non-empty tuple of finite numbers >= 0 "
                                     f"(one per pyramid band); got {v!r}.")
        if not (isinstance(self.strength, (int, float)) and np.isfinite(self.strength) and self.strength >= 0):
            raise ValueError(f"DenoiseParams.strength must be a finite number >= 0; got {self.strength!r}.")
        for name in ("levels", "window", "refine_radius"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DenoiseParams.{name} must be an integer >= 1; got {v!r}.")
        if not (isinstance(self.refine_eps, (int, float)) and self.refine_eps > 0):
            raise ValueError(f"DenoiseParams.refine_eps must be a number > 0; got {self.refine_eps!r}.")


def _band(values: tuple[float, ...], level: int) -> float:
    return float(values[min(level, len(values) - 1)])


@functools.lru_cache(maxsize=None)
def _band_noise_std(levels: int) -> tuple[float, ...]:
    """Std of each Laplacian band for unit white noise (measured once, deterministic)."""
    rng = np.random.default_rng(0)
    side = 32 * 2 ** levels if levels <= 4 else 512
    noise = rng.standard_normal((side, side)).astype(np.float32)
    bands, _ = _laplacian_pyramid(noise, levels)
    # Skip a border strip: reflections at the edge change the statistics.
    return tuple(float(b[8:-8, 8:-8].std()) if min(b.shape) > 24 else float(b.std()) for b in bands)


def _laplacian_pyramid(x: np.ndarray, levels: int):
    """Bands (finest first) and the coarsest Gaussian level, plus nothing else (Burt & Adelson 1983)."""
    bands = []
    g = x
    for _ in range(levels):
        down = cv2.pyrDown(g)
        up = cv2.pyrUp(down, dstsize=(g.shape[1], g.shape[0]))
        bands.append(g - up)
        g = down
    return bands, g


def _gaussian_pyramid(x: np.ndarray, levels: int):
    out = [x]
    for _ in range(levels):
        out.append(cv2.pyrDown(out[-1]))
    return out


def _guided_filter_fast(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, sub: int) -> np.ndarray:
    """Fast guided filter (He & Sun 2015): coefficients at 1/sub resolution, applied at full."""
    h, w = guide.shape
    hs, ws = max(1, h // sub), max(1, w // sub)
    g = cv2.resize(guide, (ws, hs), interpolation=cv2.INTER_AREA)
    p = cv2.resize(src, (ws, hs), interpolation=cv2.INTER_AREA)
    r = max(1, radius // sub)
    ksize = (2 * r + 1, 2 * r + 1)
    box = lambda z: cv2.boxFilter(z, -1, ksize, borderType=cv2.BORDER_REFLECT)
    mean_g, mean_p = box(g), box(p)
    var_g = box(g * g) - mean_g * mean_g
    cov = box(g * p) - mean_g * mean_p
    a = cov / (var_g + np.float32(eps))
    b = mean_p - a * mean_g
    a = cv2.resize(box(a), (w, h), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(box(b), (w, h), interpolation=cv2.INTER_LINEAR)
    return a * guide + b


def _region_weights(sky, skin, luma, p: DenoiseParams):
    """Edge-aware (sky, skin) weights with sky + skin <= 1, or None where a mask is absent."""
    h, w = luma.shape
    guide = None
    out = []
    for m in (sky, skin):
        if m is None or not m.any():
            out.append(None)
            continue
        if p.refine_masks and min(h, w) >= 16:
            if guide is None:
                guide = np.sqrt(np.maximum(luma, 0.0))
            sub = max(1, min(4, min(h, w) // 64))
            m = np.clip(_guided_filter_fast(guide, m, p.refine_radius, p.refine_eps, sub), 0.0, 1.0)
        out.append(m.astype(np.float32, copy=False))
    sky_w, skin_w = out
    if sky_w is not None and skin_w is not None:
        total = sky_w + skin_w
        over = np.maximum(total, 1.0)
        sky_w, skin_w = sky_w / over, skin_w / over
    return sky_w, skin_w


def _strength_maps(k_base, k_sky, k_skin, sky_pyr, skin_pyr, levels, strength):
    """Per band: squared strength map ``k^2`` (H_l×W_l float32), a scalar when uniform, or None when 0."""
    out = []
    for lv in range(levels):
        kb, ks, kk = (float(strength) * _band(t, lv) for t in (k_base, k_sky, k_skin))
        # Per-pixel strength k: blend of region profiles; squared because it scales a variance.
        use_sky = sky_pyr is not None and ks != kb
        use_skin = skin_pyr is not None and kk != kb
        if not use_sky and not use_skin:
            out.append(np.float32(kb * kb) if kb != 0 else None)
            continue
        if use_sky and use_skin:
            k = cv2.addWeighted(sky_pyr[lv], ks - kb, skin_pyr[lv], kk - kb, kb)
        elif use_sky:
            k = cv2.addWeighted(sky_pyr[lv], ks - kb, sky_pyr[lv], 0.0, kb)
        else:
            k = cv2.addWeighted(skin_pyr[lv], kk - kb, skin_pyr[lv], 0.0, kb)
        out.append(cv2.multiply(k, k) if k.any() else None)
    return out


def _denoise_channel(x, bright_pyr, a, b, k2_maps, levels, window):
    """Wiener-shrink the Laplacian bands of one opponent channel.

    ``bright_pyr``: per band, the non-negative local luma; ``a``, ``b``: this channel's noise
    model ``var = a * luma + b``; ``k2_maps``: per band squared strength (see :func:`_strength_maps`).
    """
    bands, residual = _laplacian_pyramid(x, levels)
    band_std = _band_noise_std(levels)
    ksize = (2 * window + 1, 2 * window + 1)
    for lv, c in enumerate(bands):
        k2 = k2_maps[lv]
        if k2 is None:
            continue
        bs2 = band_std[lv] ** 2
        # Threshold k^2 * var(brightness) in one pass, then the gain max(E - T, 0) / max(E, tiny)
        # as max(1 - T / E, 0): fused cv2/in-place operations on the band's own buffers.
        thresh = cv2.addWeighted(bright_pyr[lv], float(a) * bs2, bright_pyr[lv], 0.0, float(b) * bs2)
        thresh *= k2
        energy = cv2.boxFilter(c * c, -1, ksize, borderType=cv2.BORDER_REFLECT)
        np.maximum(energy, np.float32(1e-20), out=energy)
        gain = cv2.divide(thresh, energy, dst=thresh)
        np.subtract(np.float32(1.0), gain, out=gain)
        np.maximum(gain, 0.0, out=gain)
        c *= gain  # the band is ours (a fresh array from the pyramid)
    # Collapse the pyramid.
    g = residual
    for lv in range(levels - 1, -1, -1):
        bnd = bands[lv]
        g = cv2.pyrUp(g, dstsize=(bnd.shape[1], bnd.shape[0]))
        g += bnd
    return g


def denoise(image: np.ndarray, *, sky_mask: np.ndarray | None = None, skin_mask: np.ndarray | None = None,
            iso: float | None = None, noise: NoiseProfile | None = None,
            params: DenoiseParams | None = None) -> np.ndarray:
    """Denoise an image with strengths that depend on sky and skin masks.

    Strong luma and chroma denoising at every scale in sky, medium on skin (fine-scale noise
    removed, pore-scale texture kept), light elsewhere; transitions follow image edges.
    Method: Laplacian-pyramid local Wiener shrinkage (Mihçak et al. 1999) scaled by a
    Poissonian-Gaussian noise model (Foi et al. 2008); see the module docstring.

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
    img = _check_image(image)
    h, w, _ = img.shape
    sky = _check_mask(sky_mask, (h, w), "sky_mask")
    skin = _check_mask(skin_mask, (h, w), "skin_mask")
    iso = _check_iso(iso)
    if params is None:
        params = DenoiseParams()
    elif not isinstance(params, DenoiseParams):
        raise TypeError(f"`params` must be a DenoiseParams or None; got {type(params).__name__}.")
    if noise is None:
        noise = estimate_noise(img, iso=iso)
    elif not isinstance(noise, NoiseProfile):
        raise TypeError(f"`noise` must be a NoiseProfile (see effects.estimate_noise) or None; got {type(noise).__name__}.")

    # A band needs at least a few pixels to have a meaningful local energy.
    levels = min(params.levels, max(0, int(np.log2(max(1, min(h, w)))) - 2))
    if levels == 0 or params.strength == 0 or (max(noise.a) == 0 and max(noise.b) == 0):
        return img.copy()

    opp = rgb_to_opponent(img)  # new array; H×W×3 (luma, chroma_rb, chroma_gm)
    luma = np.ascontiguousarray(opp[..., 0])
    sky_w, skin_w = _region_weights(sky, skin, luma, params)
    sky_pyr = _gaussian_pyramid(sky_w, levels) if sky_w is not None else None
    skin_pyr = _gaussian_pyramid(skin_w, levels) if skin_w is not None else None
    # Brightness for the noise model: the next-coarser Gaussian level expanded, so the noise
    # of the image itself barely perturbs its own variance estimate.
    gpyr = _gaussian_pyramid(luma, levels + 1)
    bright = [cv2.pyrUp(gpyr[lv + 1], dstsize=(gpyr[lv].shape[1], gpyr[lv].shape[0])) for lv in range(levels)]

    p = params
    # Shared by the three channels: non-negative brightness per band, and k^2 maps per profile.
    bright = [np.maximum(bb, 0.0, out=bb) for bb in bright]
    strength = np.float32(p.strength)
    k2_luma = _strength_maps(p.luma_base, p.luma_sky, p.luma_skin, sky_pyr, skin_pyr, levels, strength)
    k2_chroma = _strength_maps(p.chroma_base, p.chroma_sky, p.chroma_skin, sky_pyr, skin_pyr, levels, strength)
    planes = []
    for ch, x in enumerate(cv2.split(opp)):
        planes.append(_denoise_channel(x, bright, noise.a[ch], noise.b[ch], k2_luma if ch == 0 else k2_chroma,
                                       levels, p.window))
    out = cv2.merge(planes)
    del planes
    rgb = opponent_to_rgb(out)
    hi = max(1.0, float(img.max()))
    return np.clip(rgb, 0.0, hi, out=rgb)
