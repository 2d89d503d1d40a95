"""Quantisation-aware skin luma for JPEG inputs: Bayesian estimation in the file's own 8×8 DCT.

Why
---
A RAW-derived JPEG's noise is not white. The encoder rounds each 8×8 block's DCT coefficient
``x = c + n`` (clean signal plus sensor noise) to a multiple ``k * Q`` of its quantisation step:
where ``|x| < Q / 2`` signal and noise are both gone, where ``k != 0`` the noise survives at
its full level. On skin — texture of the same size as the noise — a pixel-domain denoiser
cannot tell the two kinds of block apart (an oracle Wiener filter in our Laplacian pyramid
that knows the true local noise energy still misses "0.7 texture kept with 0.5 of the noise
removed" at ISO 3200, ``benchmarks/denoise.py``); in the JPEG's own blocks the same oracle
meets it, because every coefficient's quantisation bin is known exactly.

Method
------
1. Model of the encoder: linear RGB → sRGB transfer (IEC 61966-2-1) → 8 bits → JFIF luma
   ``Y = 0.299 R + 0.587 G + 0.114 B`` (0–255) → orthonormal 8×8 DCT-II on the block grid
   anchored at the top-left pixel.
2. The steps ``Q[u, v]`` are read back from the decoded pixels: decoded coefficients sit on
   multiples of ``Q``, so ``mean(cos(2 pi d / q))`` over the non-zero coefficients is near 1
   for ``q = Q`` and its divisors and near 0 otherwise (the JPEG-history periodicity of Fan
   & de Queiroz, "Identification of bitmap compression history: JPEG detection and quantizer
   estimation", IEEE TIP 2003); the largest such ``q >= 3`` is taken. An image without that
   structure (raw-like, PNG, resampled or re-gridded after compression) is left alone.
3. Each AC coefficient gets the posterior mean of ``c`` given its bin, with a local Gaussian
   prior ``c ~ N(0, s^2)`` and noise ``n ~ N(0, sigma^2)``: ``x = c + n ~ N(0, tau^2)``,
   ``tau^2 = s^2 + sigma^2``, and ``E[c | x in bin] = s^2 / tau^2 * E[x | x in bin]``, the
   mean of a truncated normal (the MMSE "biased reconstruction" of quantised coefficients,
   Price & Rabbani, IEEE SPL 1999, here with the noise in the model). ``tau^2`` of each
   frequency comes from the quantised second moment ``mean(k^2)`` over a skin-weighted
   neighbourhood of blocks, inverting ``E[k^2](tau / Q)`` (moment matching that accounts for
   the coefficients JPEG zeroed); ``sigma^2`` from the caller's white-equivalent luma noise
   model, capped by the smallest ``tau^2`` among the frequencies where enough coefficients
   survive (at those, skin has next to no texture, so ``tau^2`` is the noise itself), and
   scaled by the denoiser's noise-to-texture factor (grain kept as noise nears the texture).
4. Blocks estimated on their own leave noise in the steps between them (no coefficient of
   either block describes that step), which would print the 8×8 grid on smooth skin: a weak
   deblocking filter moves the two pixels at each boundary toward each other, by at most
   0.3 noise sigma.
5. The new luma replaces the pyramid result's luma on skin (the DC term — block means — and
   the chroma stay the pyramid's), blended by the skin weight.

The sRGB transfer curve (``effects/_srgb.py``, the one ``camseg.io`` converts photos with) is
part of the *camera encoder's* model here.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy.special import ndtr

from ._bands import run_in_row_bands
from ._srgb import srgb_power, srgb_slope, srgb_to_linear


# JFIF (ITU-R BT.601) luma weights used by every baseline JPEG encoder.
_JFIF_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# JFIF luma (0-255) of sRGB = 1.055 p - 0.055 as one affine map of p: 255 sum(w (1.055 p - 0.055)).
_JFIF_AFFINE = np.append(255.0 * 1.055 * _JFIF_LUMA, -255.0 * 0.055)[None, :].astype(np.float32)
# Orthonormal DCT-II matrix D: the 2-D DCT of a block X is D @ X @ D.T.
_DCT8 = cv2.dct(np.eye(8, dtype=np.float32), flags=cv2.DCT_ROWS).T.copy()
_MIN_STEP = 3           # smaller steps cannot be told from the 8-bit rounding of the decoded pixels
_MIN_SURVIVING = 30     # non-zero coefficients a frequency needs for its step to be read
_PERIODICITY = 0.75     # mean cos(2 pi d / q) above which d sits on multiples of q
_MIN_STEPS_FOUND = 6    # fewer quantised frequencies than this: not a JPEG on this grid
_SAMPLE_BLOCKS = 4000   # blocks used to read the steps (every k-th block of the region)
_DEBLOCK = 0.3          # deblocking limit in noise sigmas (chart skin grid 1.12/1.03/0.90; clean 0.99)
_STRIP_BLOCKS = 32      # block rows per strip (256 px): temporaries stay in cache, not in new pages
_SKIN_BLOCK = 0.1       # blocks whose mean skin weight is below this are left to the pyramid
_MIN_NOISE_VAR = 0.5    # skin noise variance (8-bit luma levels^2) below which the step is skipped


def block_dct(plane: np.ndarray) -> np.ndarray:
    """float32 (8h)×(8w) plane → (h, 8, w, 8) orthonormal DCT-II of its 8×8 blocks.

    Coefficient ``[i, u, j, v]`` is frequency (u vertical, v horizontal) of block (i, j): the
    layout two plain matrix products leave (rows of 8 samples, then columns of 8 rows),
    with no transposes of the whole array.
    """
    h, w = plane.shape
    along_x = (np.ascontiguousarray(plane).reshape(-1, 8) @ _DCT8.T).reshape(h // 8, 8, w)
    return np.matmul(_DCT8, along_x).reshape(h // 8, 8, w // 8, 8)


def block_idct(coefs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`block_dct`: (h, 8, w, 8) → float32 (8h)×(8w)."""
    bh, _, bw, _ = coefs.shape
    along_y = np.matmul(_DCT8.T, coefs.reshape(bh, 8, bw * 8))
    return (along_y.reshape(-1, 8) @ _DCT8).reshape(bh * 8, bw * 8)


def as_blocks(coefs: np.ndarray) -> np.ndarray:
    """(h, 8, w, 8) coefficients → (h * w, 8, 8), one 8×8 array per block."""
    bh, _, bw, _ = coefs.shape
    return coefs.transpose(0, 2, 1, 3).reshape(bh * bw, 8, 8)


def jfif_luma(linear_rgb: np.ndarray) -> np.ndarray:
    """float32 H×W×3 linear RGB → float32 H×W JFIF luma of its 8-bit sRGB encoding (0–255)."""
    return cv2.transform(srgb_power(linear_rgb), _JFIF_AFFINE).reshape(linear_rgb.shape[:2])


def estimate_quantisation(coefs: np.ndarray) -> np.ndarray | None:
    """Luma quantisation steps read back from decoded DCT coefficients.

    Parameters
    ----------
    coefs : np.ndarray
        float32 (n, 8, 8) block DCTs of JFIF luma (0–255 scale) of decoded blocks.

    Returns
    -------
    np.ndarray or None
        float64 (8, 8) steps, 1 where a frequency's step could not be read (too few surviving
        coefficients, or a step below 3); None when fewer than 6 frequencies show a step —
        the image was not JPEG-compressed on this block grid.
    """
    steps = np.ones((8, 8))
    cand = np.arange(_MIN_STEP, 64, dtype=np.float32)
    for u in range(8):
        for v in range(8):
            if u == 0 and v == 0:
                continue
            d = np.abs(coefs[:, u, v])
            d = d[d >= 2.0]  # clearly non-zero (the decoded pixels' rounding moves d by ~0.3)
            if d.size < _MIN_SURVIVING:
                continue
            d = d[:: max(1, d.size // 1000)]  # ~1000 votes are plenty (and keep this cheap)
            # Step q: the coefficients it rounds to k != 0 (|d| >= q / 2) sit on its multiples
            # (a divisor of the true step passes too, hence the largest q that does), and none
            # lie clearly between 0 and q / 2, where q would have rounded them to 0 (this
            # rejects a q far above most coefficients, whose few large ones score by chance).
            big = d[:, None] >= 0.5 * cand
            count = big.sum(axis=0)
            score = (np.cos((2 * np.pi) * d[:, None] / cand) * big).sum(axis=0) / np.maximum(count, 1)
            forbidden = (d[:, None] < 0.5 * cand - 1.0).mean(axis=0)
            passing = (count >= _MIN_SURVIVING) & (score > _PERIODICITY) & (forbidden <= 0.05)
            if passing.any():
                # Largest q scoring as well as the best: with only k = 1 present a q one above
                # the true step still scores fairly high (cos(2 pi 11 / 12) = 0.87), divisors
                # of the step score as high as the step itself.
                best = score[passing].max()
                steps[u, v] = cand[np.flatnonzero(passing & (score >= best - 0.05))[-1]]
    return steps if int((steps >= _MIN_STEP).sum()) >= _MIN_STEPS_FOUND else None


@functools.lru_cache(maxsize=1)
def _second_moment_table() -> tuple[np.ndarray, np.ndarray]:
    """(E[k^2], t) for k = round(x / Q), x ~ N(0, (t Q)^2), t on a log grid: monotone in t."""
    t = np.exp(np.linspace(np.log(0.02), np.log(60.0), 500))
    k = np.arange(-500, 501, dtype=np.float64)[:, None]
    p = ndtr((k + 0.5) / t) - ndtr((k - 0.5) / t)
    return (p * k * k).sum(axis=0), t


@functools.lru_cache(maxsize=1)
def _variance_table() -> tuple[float, float, np.ndarray]:
    """``t^2`` as a function of ``log E[k^2]`` on a uniform grid: (start, spacing, float32 table)."""
    m2, t = _second_moment_table()
    grid = np.linspace(np.log(1e-7), np.log(3000.0), 8192)
    return float(grid[0]), float(grid[1] - grid[0]), (np.interp(np.exp(grid), m2, t) ** 2).astype(np.float32)


def _total_variance(mean_k2: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """tau^2 whose quantised second moment ``E[round(x / Q)^2]`` equals ``mean_k2``."""
    start, spacing, table = _variance_table()
    index = (np.log(np.maximum(mean_k2, np.float32(1e-7))) - np.float32(start)) * np.float32(1 / spacing)
    t2 = table.take(np.clip(index + np.float32(0.5), 0, table.size - 1).astype(np.int32))
    # Past the table (tau > ~55 Q) Sheppard's correction is exact enough: E[k^2] = t^2 + 1/12.
    t2 = np.where(mean_k2 > 3000.0, mean_k2 - np.float32(1 / 12), t2)
    return t2 * np.square(steps)


def _posterior_mean(coefs, steps, signal_var, noise_var):
    """E[c | x in its quantisation bin] under c ~ N(0, s^2), x = c + n, n ~ N(0, sigma^2).

    ``coefs`` float32, ``steps`` and the variances broadcastable to its shape.
    """
    tau2 = np.broadcast_to(signal_var + noise_var, coefs.shape)
    gain = signal_var / np.maximum(tau2, np.float32(1e-12))
    q = np.broadcast_to(steps.astype(np.float32), coefs.shape)
    k = np.round(coefs / q)
    # Fine bins (unknown or tiny steps, or a prior much wider than the bin) carry x itself:
    # no rounding to undo. Coarse bins with k = 0 are symmetric: E[x | bin] = 0.
    coarse = (q >= _MIN_STEP) & (q * q >= 0.0025 * tau2)
    x = np.where(coarse, np.float32(0.0), coefs)
    sel = coarse & (k != 0)  # the few surviving coefficients: the only truncated-normal work
    if sel.any():
        tau = np.sqrt(tau2[sel].astype(np.float64))
        ks, qs = k[sel].astype(np.float64), q[sel].astype(np.float64)
        a, b = (ks - 0.5) * qs / tau, (ks + 0.5) * qs / tau
        mass = ndtr(b) - ndtr(a)
        mean = tau * (np.exp(-0.5 * a * a) - np.exp(-0.5 * b * b)) / (np.sqrt(2 * np.pi) * np.maximum(mass, 1e-300))
        x[sel] = np.where(mass > 1e-9, mean, ks * qs)
    return gain * x


def _deblock(luma: np.ndarray, estimated: np.ndarray, limit: np.ndarray) -> None:
    """Weak deblocking of the block-wise estimate ``luma`` (H×W, multiples of 8), in place.

    Each block's coefficients are shrunk on their own, so noise inside a block drops while the
    step between two blocks (which no coefficient of either describes) keeps it: the JPEG grid
    would show on smooth skin. At every boundary between two estimated blocks (``estimated``,
    the (H/8, W/8) block mask) the two pixels that meet move toward each other by
    ``(9 (q0 - p0) - 3 (q1 - p1)) / 16`` (the step less what the neighbouring gradient
    explains; the weak filter of H.264/HEVC deblocking, Norkin et al., IEEE TCSVT 2012),
    clipped to ``limit`` (per block, the smaller of the two blocks'): noise-sized steps are
    smoothed, real edges move by at most that much. Columns first, then rows.
    """
    for axis in (1, 0):
        v = np.moveaxis(luma, axis, 0)  # a view: boundaries lie between rows 8j - 1 and 8j
        mask = np.moveaxis(estimated, axis, 0)
        lim = np.moveaxis(limit, axis, 0)
        n = v.shape[0] // 8
        if n < 2:
            continue
        both = mask[:-1] & mask[1:]                       # (n - 1, m_blocks)
        clip = np.where(both, np.minimum(lim[:-1], lim[1:]), 0.0)
        clip = np.repeat(clip, 8, axis=1)[:, : v.shape[1]]  # per pixel along the boundary
        p1, p0, q0, q1 = v[6:-2:8][: n - 1], v[7:-1:8][: n - 1], v[8::8][: n - 1], v[9::8][: n - 1]
        step = np.clip((9.0 * (q0 - p0) - 3.0 * (q1 - p1)) * np.float32(1 / 16), -clip, clip)
        v[7:-1:8][: n - 1] += step
        v[8::8][: n - 1] -= step


def jpeg_skin_luma(image: np.ndarray, out: np.ndarray, skin_weight: np.ndarray, luma_noise: tuple[float, float], *,
                   prior_radius: int, noise_scale: float, ceiling: float) -> bool:
    """Replace the luma of ``out`` on skin by the quantisation-aware estimate (in place).

    Parameters
    ----------
    image : np.ndarray
        float32 H×W×3 linear RGB, the noisy input (as decoded from the JPEG).
    out : np.ndarray
        float32 H×W×3 linear RGB, the pyramid denoiser's result; modified in place on skin.
    skin_weight : np.ndarray
        float32 H×W skin weight in [0, 1] (the denoiser's refined skin matte).
    luma_noise : tuple of float
        ``(a, b)`` of the white-equivalent noise of linear luma (RGB mean), ``a * Y + b``.
    prior_radius : int
        Radius, in blocks, of the neighbourhood that sets each coefficient's prior. >= 1.
    noise_scale : float
        Factor on the noise variance (the denoiser's noise-to-texture scaling ``f^2`` on skin:
        below 1 the estimate keeps more grain as the noise nears the texture's contrast). > 0.
    ceiling : float
        Upper clip of the result (the denoiser's ``max(1, image.max())``).

    Returns
    -------
    bool
        True when applied; False when there is no skin, when the skin's noise is under
        ``_MIN_NOISE_VAR`` (0.7 of an 8-bit level), or when the image shows no JPEG
        quantisation. The 8×8 grid is looked for at the top-left pixel first (a file as
        decoded), then where block boundaries show (a JPEG cropped before denoising).
    """
    options = dict(prior_radius=prior_radius, noise_scale=noise_scale, ceiling=ceiling)
    applied = _jpeg_skin_luma_on_grid(image, out, skin_weight, luma_noise, **options)
    if applied is None:  # no grid at the top-left pixel: where do block boundaries show?
        dy, dx = _grid_offset(image, skin_weight)
        if (dy, dx) != (0, 0):
            applied = _jpeg_skin_luma_on_grid(image[dy:, dx:], out[dy:, dx:], skin_weight[dy:, dx:], luma_noise,
                                              **options)
    return bool(applied)


def grid_visibility(luma: np.ndarray, *, origin=(0, 0), mask: "np.ndarray | None" = None) -> float:
    """How visible an 8×8 block grid is in a luma plane: the mean |step| between pixels that
    straddle a block boundary over the mean |step| between pixels inside a block, averaged
    over the two axes. ~1 without a grid; JPEG blocking, or a filter that works on each block
    on its own, raises it.

    Parameters
    ----------
    luma : np.ndarray
        float H×W luma (any scale).
    origin : tuple of int
        (row, column) of ``luma[0, 0]`` in the image whose grid starts at (0, 0) (a crop's
        offset; only its value modulo 8 matters).
    mask : np.ndarray, optional
        bool H×W: steps count only between two pixels inside it.
    """
    ratios = []
    for axis in (0, 1):
        steps = np.abs(np.diff(luma, axis=axis))
        inside = np.ones(steps.shape, bool) if mask is None else (
            (mask[1:] & mask[:-1]) if axis == 0 else (mask[:, 1:] & mask[:, :-1]))
        boundary = (np.arange(origin[axis], origin[axis] + steps.shape[axis]) % 8) == 7
        boundary = boundary[:, None] if axis == 0 else boundary[None, :]
        ratios.append(steps[inside & boundary].mean() / steps[inside & ~boundary].mean())
    return float(np.mean(ratios))


def _grid_offset(image: np.ndarray, skin_weight: np.ndarray) -> tuple:
    """Where the JPEG's 8×8 grid most likely starts, (row, column) in 0..7: the offset whose
    row and column boundaries carry the largest luma steps (JPEG blocking), measured on a crop
    of at most 512×512 pixels around the skin's centre; (0, 0) when there is too little."""
    rows, cols = np.nonzero(skin_weight[::8, ::8] >= _SKIN_BLOCK)
    if rows.size == 0 or min(image.shape[:2]) < 64:
        return (0, 0)
    cy, cx = int(np.median(rows)) * 8, int(np.median(cols)) * 8
    y0, x0 = max(0, min(cy - 256, image.shape[0] - 512)), max(0, min(cx - 256, image.shape[1] - 512))
    luma = jfif_luma(image[y0:y0 + 512, x0:x0 + 512])
    offset = []
    for axis, start in ((0, y0), (1, x0)):
        steps = np.abs(np.diff(luma, axis=axis)).mean(axis=1 - axis)  # per boundary position
        phase = np.array([steps[j::8].mean() for j in range(8)])      # by position mod 8
        # A boundary between pixels 8k - 1 and 8k of the grid: diff index 8k - 1 - start.
        offset.append(int((np.argmax(phase) + 1 + start) % 8))
    return (offset[0], offset[1])


def _jpeg_skin_luma_on_grid(image: np.ndarray, out: np.ndarray, skin_weight: np.ndarray, luma_noise: tuple[float, float], *,
                   prior_radius: int, noise_scale: float, ceiling: float) -> "bool | None":
    """:func:`jpeg_skin_luma` for a JPEG grid anchored at the top-left pixel of these arrays;
    None when no quantisation shows on that grid (checked before anything costly)."""
    h8, w8 = (image.shape[0] // 8) * 8, (image.shape[1] // 8) * 8
    if h8 == 0 or w8 == 0:
        return False
    wb = cv2.resize(skin_weight[:h8, :w8], (w8 // 8, h8 // 8), interpolation=cv2.INTER_AREA)
    rows, cols = np.flatnonzero((wb >= _SKIN_BLOCK).any(axis=1)), np.flatnonzero((wb >= _SKIN_BLOCK).any(axis=0))
    if rows.size == 0:
        return False
    # The region: skin blocks plus the prior's neighbourhood (for the statistics only).
    r = prior_radius
    b0, b1 = max(0, rows[0] - r), min(wb.shape[0], rows[-1] + 1 + r)
    c0, c1 = max(0, cols[0] - r), min(wb.shape[1], cols[-1] + 1 + r)
    luma_coefs = lambda q0, q1: block_dct(jfif_luma(image[8 * q0:8 * q1, 8 * c0:8 * c1]))  # (rows, 8, cols, 8)

    # Steps and the skin's noise floor from a sample of block rows (~_SAMPLE_BLOCKS blocks).
    every = max(1, ((b1 - b0) * (c1 - c0)) // _SAMPLE_BLOCKS)
    sample_rows = range(b0, b1, every)
    sample = np.concatenate([luma_coefs(q, q + 1) for q in sample_rows])  # (n_rows, 8, bw, 8)
    steps = estimate_quantisation(as_blocks(sample))
    if steps is None:
        return None
    # Noise: the white-equivalent model carried into 8-bit sRGB luma at each block's colour.
    mean_lin = cv2.resize(out[:h8, :w8], (w8 // 8, h8 // 8), interpolation=cv2.INTER_AREA)
    a, b = luma_noise
    slope = srgb_slope(mean_lin) * (255.0 * _JFIF_LUMA)
    noise_all = ((slope * slope) * (3.0 * (a * np.maximum(mean_lin, 0.0) + b))).sum(axis=2)
    if float(np.median(noise_all[wb >= _SKIN_BLOCK])) < _MIN_NOISE_VAR:
        return False  # (nearly) clean skin: nothing for the quantisation model to tell apart
    q88 = steps.astype(np.float32)
    steps = q88[None, :, None, :]
    floor = None
    on_skin = wb[list(sample_rows), c0:c1] >= 0.5
    if on_skin.sum() >= _MIN_SURVIVING:
        k2s = np.square(np.round(sample / steps)).transpose(0, 2, 1, 3)[on_skin]  # (n, 8, 8)
        surviving = ((k2s > 0).mean(axis=0) >= 0.05) & (q88 >= _MIN_STEP)
        surviving[0, 0] = False
        if surviving.any():
            # Smallest tau^2 among frequencies where enough coefficients survive quantisation:
            # texture-free there, so it is the noise itself (an upper bound on it).
            floor = np.float32(_total_variance(k2s.mean(axis=0), q88)[surviving].min())

    ksize = (2 * r + 1, 2 * r + 1)
    # Blocks estimated: those with skin, and their neighbours (a block whose mean weight is
    # under the threshold can still hold pixels above it, at the matte's edge). Fixed here, so
    # that how the work is split into strips and threads cannot change the result.
    processed = cv2.dilate((wb >= _SKIN_BLOCK).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    noise_eff = noise_all if floor is None else np.minimum(noise_all, floor)
    noise_eff = noise_eff * np.float32(noise_scale)
    # Region planes (pixels of block rows b0..b1, columns c0..c1): the pyramid's luma and the
    # new estimate, filled strip by strip (blocks without skin keep new = old: no change).
    y_old = np.zeros((8 * (b1 - b0), 8 * (c1 - c0)), np.float32)
    y_new = np.zeros_like(y_old)
    p_old = np.zeros(y_old.shape + (3,), np.float32)  # the pyramid result's sRGB power (see srgb_power)

    def strip_columns(t0: int, t1: int):
        cols_here = np.flatnonzero(processed[t0:t1].any(axis=0))
        return (None, None) if cols_here.size == 0 else (int(cols_here[0]), int(cols_here[-1]) + 1)

    # The region's luma coefficients and the skin-weighted k^2 per block (one pass, by strips).
    bh, bw = b1 - b0, c1 - c0
    coefs_all = np.empty((bh, 8, bw, 8), np.float32)
    k2w_all = np.zeros((bh, bw, 64), np.float32)
    wreg = np.ascontiguousarray(wb[b0:b1, c0:c1])
    # Blocks whose coefficients are needed: within the prior's reach of an estimated block.
    needed = cv2.dilate(processed[b0:b1, c0:c1].astype(np.uint8), np.ones(ksize, np.uint8)).astype(bool)

    def transform(s0: int, s1: int) -> None:
        for t0 in range(s0, s1, _STRIP_BLOCKS):
            t1 = min(s1, t0 + _STRIP_BLOCKS)
            cols_here = np.flatnonzero(needed[t0:t1].any(axis=0))
            if cols_here.size == 0:
                continue
            n0, n1 = int(cols_here[0]), int(cols_here[-1]) + 1
            c = block_dct(jfif_luma(image[8 * (b0 + t0):8 * (b0 + t1), 8 * (c0 + n0):8 * (c0 + n1)]))
            coefs_all[t0:t1, :, n0:n1] = c
            k2w = np.square(np.round(c / steps)) * wreg[t0:t1, None, n0:n1, None]
            k2w_all[t0:t1, n0:n1] = k2w.transpose(0, 2, 1, 3).reshape(t1 - t0, n1 - n0, 64)

    # Strips are independent: one band of strips per thread (0.75 vs 0.82 s on one, same output).
    run_in_row_bands(transform, bh, 64 * bw, align=_STRIP_BLOCKS)
    # Skin-weighted mean of k^2 over (2r+1)^2 blocks per frequency: background blocks at the
    # skin's edge would otherwise inflate the prior with their edges.
    mean_k2 = cv2.blur(k2w_all, ksize, borderType=cv2.BORDER_REFLECT)
    mean_k2 /= np.maximum(cv2.blur(wreg, ksize, borderType=cv2.BORDER_REFLECT), np.float32(1e-6))[..., None]
    del k2w_all

    def estimate(s0: int, s1: int) -> None:
        """Block rows [b0 + s0, b0 + s1), strip by strip, on the columns holding skin in each
        strip's rows. Reads ``image`` and ``out`` only."""
        for t0 in range(b0 + s0, b0 + s1, _STRIP_BLOCKS):
            t1 = min(b0 + s1, t0 + _STRIP_BLOCKS)
            e0, e1 = strip_columns(t0, t1)
            if e0 is None:
                continue
            rr, rc = slice(t0 - b0, t1 - b0), slice(e0 - c0, e1 - c0)
            tau2 = _total_variance(mean_k2[rr, rc].reshape(t1 - t0, e1 - e0, 8, 8).transpose(0, 2, 1, 3), steps)
            noise_var = noise_eff[t0:t1, e0:e1][:, None, :, None]
            signal_var = np.maximum(tau2 - noise_var, np.float32(0.0))
            est = _posterior_mean(coefs_all[rr, :, rc], steps, signal_var, noise_var)
            ry, rx = slice(8 * (t0 - b0), 8 * (t1 - b0)), slice(8 * (e0 - c0), 8 * (e1 - c0))
            p = p_old[ry, rx] = srgb_power(out[8 * t0:8 * t1, 8 * e0:8 * e1])
            y_out = cv2.transform(p, _JFIF_AFFINE).reshape(p.shape[:2])
            # Block means stay the pyramid's: the orthonormal DCT's DC term is 8x the block mean.
            est[:, 0, :, 0] = cv2.resize(y_out, (y_out.shape[1] // 8, y_out.shape[0] // 8),
                                         interpolation=cv2.INTER_AREA) * np.float32(8.0)
            keep = processed[t0:t1, e0:e1]
            keep_px = np.repeat(np.repeat(keep, 8, axis=0), 8, axis=1)
            y_old[ry, rx] = y_out
            y_new[ry, rx] = np.where(keep_px, block_idct(est), y_out)

    def write(s0: int, s1: int) -> None:
        """Blend the new luma into ``out`` on skin, strip by strip (writes its own rows only)."""
        for t0 in range(b0 + s0, b0 + s1, _STRIP_BLOCKS):
            t1 = min(b0 + s1, t0 + _STRIP_BLOCKS)
            e0, e1 = strip_columns(t0, t1)
            if e0 is None:
                continue
            ys, xs = slice(8 * t0, 8 * t1), slice(8 * e0, 8 * e1)
            ry, rx = slice(8 * (t0 - b0), 8 * (t1 - b0)), slice(8 * (e0 - c0), 8 * (e1 - c0))
            sout = p_old[ry, rx] * np.float32(1.055)
            sout -= np.float32(0.055)
            # Blend weight: 0 below the skin-block threshold, 1 on full skin: no seam at the cut.
            wpix = np.clip((skin_weight[ys, xs] - np.float32(_SKIN_BLOCK)) * np.float32(1 / (1 - _SKIN_BLOCK)),
                           0.0, 1.0)
            wpix *= np.repeat(np.repeat(processed[t0:t1, e0:e1], 8, axis=0), 8, axis=1)
            if ceiling > 1.0:
                wpix[(out[ys, xs] > 1.0).any(axis=2)] = 0.0  # the 8-bit encoder model ends at 1
            sout += (wpix * ((y_new[ry, rx] - y_old[ry, rx]) * np.float32(1 / 255)))[..., None]
            # Only where the weight is positive: elsewhere the sRGB round trip would move the
            # last bit of the pyramid's result.
            np.clip(sout, 0.0, 1.0, out=sout)
            np.copyto(out[ys, xs], srgb_to_linear(sout), where=(wpix > 0)[..., None])

    run_in_row_bands(estimate, bh, 64 * bw, align=_STRIP_BLOCKS)
    _deblock(y_new, processed[b0:b1, c0:c1], np.sqrt(noise_eff[b0:b1, c0:c1]) * np.float32(_DEBLOCK))
    run_in_row_bands(write, bh, 64 * bw, align=_STRIP_BLOCKS)  # rows of its own only
    return True
