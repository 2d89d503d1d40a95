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

Cost (a third of the first version's CPU time on a 12 MP portrait whose hazy skin matte covers
half the frame): the work follows the skin, in strips of block rows and, within a strip, runs of
columns, shared out to the threads as they come free; coefficients are kept a plane per
frequency (the quantised ones in one slice, so that the posterior maths runs on the surviving
coefficients only, the zero bins' estimate being exactly 0); the variance table is indexed by
the float's bit pattern; the 3-channel steps use OpenCV where numpy would broadcast slowly.
The result does not depend on the strips or threads (``tests/effects/test_jpeg_skin.py``).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ._bands import column_runs, run_in_row_bands, run_strips
from ._srgb import srgb_power, srgb_power_to_linear_in_place, srgb_slope


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
_STRIP_BLOCKS = 16      # block rows per strip (128 px): temporaries stay in cache, not in new pages
_SKIN_BLOCK = 0.1       # blocks whose mean skin weight is below this are left to the pyramid
_MIN_NOISE_VAR = 0.5    # skin noise variance (8-bit luma levels^2) below which the step is skipped
_RUN_GAP = 8            # skin-free block columns bridged by one run of work (fewer, longer numpy calls)


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


def ndtr(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, ``scipy.special.ndtr``: imported at the first JPEG step rather than
    with the module (scipy.special costs ~0.3 s to import, paid by every process otherwise)."""
    from scipy.special import ndtr as scipy_ndtr

    return scipy_ndtr(x)


@functools.lru_cache(maxsize=1)
def _second_moment_table() -> tuple[np.ndarray, np.ndarray]:
    """(E[k^2], t) for k = round(x / Q), x ~ N(0, (t Q)^2), t on a log grid: monotone in t."""
    t = np.exp(np.linspace(np.log(0.02), np.log(60.0), 500))
    k = np.arange(-500, 501, dtype=np.float64)[:, None]
    p = ndtr((k + 0.5) / t) - ndtr((k - 0.5) / t)
    return (p * k * k).sum(axis=0), t


# Bits of a float32 dropped to index the variance table: 2^(23 - 13) = 1024 bins per octave of
# E[k^2] (0.07 % wide), read straight from the bit pattern (no logarithm per coefficient).
_TABLE_SHIFT = 13
_TABLE_TOP = 2.0 ** 24  # E[k^2] past this takes Sheppard's value directly (8-bit luma stays far below)


@functools.lru_cache(maxsize=1)
def _variance_table() -> tuple[int, np.ndarray]:
    """``t^2`` as a function of ``E[k^2]`` in bins of its float32 bit pattern: (first bin, float32
    table), each bin's value taken at its centre, from 1e-7 to ``_TABLE_TOP``."""
    m2, t = _second_moment_table()
    lo, hi = (int(np.array(v, np.float32).view(np.int32)) >> _TABLE_SHIFT for v in (1e-7, _TABLE_TOP))
    bins = np.arange(lo, hi + 1, dtype=np.int32)
    centre = ((bins << _TABLE_SHIFT) | (1 << (_TABLE_SHIFT - 1))).view(np.float32).astype(np.float64)
    # Past the table (tau > ~55 Q) Sheppard's correction is exact enough: E[k^2] = t^2 + 1/12.
    t2 = np.where(centre > 3000.0, centre - 1 / 12, np.interp(centre, m2, t) ** 2)
    return lo, t2.astype(np.float32)


def _total_variance(mean_k2: np.ndarray, steps) -> np.ndarray:
    """tau^2 whose quantised second moment ``E[round(x / Q)^2]`` equals ``mean_k2``.

    ``mean_k2`` float of any shape (values under 1e-7, negative ones from a box filter's
    rounding included, count as 1e-7), ``steps`` broadcastable to it; a new float32 array.
    """
    lo, table = _variance_table()
    m = np.ascontiguousarray(mean_k2, dtype=np.float32)
    # The bit pattern of a non-negative float32 grows with its value: exponent, then mantissa.
    # (intp: what take indexes with; mode="clip": negative and past-the-end indices clipped.)
    index = np.right_shift(m.view(np.int32), _TABLE_SHIFT, dtype=np.intp)
    index -= lo
    t2 = table.take(index, mode="clip")
    if m.size and float(m.max()) > _TABLE_TOP:
        big = m > _TABLE_TOP
        t2[big] = m[big] - np.float32(1 / 12)
    t2 *= np.square(steps)
    return t2


# Coarse-binned coefficients with k = 0 whose neighbourhood's mean_k2 is below this are
# certainly estimated as 0 (a bin is "fine" only from tau > 20 Q, where E[k^2] ~ 400).
_FINE_MEAN_K2 = 300.0


def _estimate_blocks(coefs: np.ndarray, mean_k2: np.ndarray, noise_var: np.ndarray, steps: np.ndarray,
                     n_fine: int) -> np.ndarray:
    """Posterior means E[c | x in its quantisation bin] of the AC coefficients of ``n`` blocks.

    The prior ``c ~ N(0, s^2)``, ``s^2 = max(tau^2 - sigma^2, 0)``, noise ``N(0, sigma^2)``
    (module docstring, step 3). Frequency-major arrays: each frequency's row is contiguous.

    Parameters
    ----------
    coefs : np.ndarray
        float32 (64, n) block DCTs (JFIF luma, 0–255 scale), frequencies in the order of
        ``steps``: first the ``n_fine`` with steps under 3 (fine bins: ``x`` itself is known),
        then the quantised ones, the DC term last.
    mean_k2 : np.ndarray
        float32 (63, n) the neighbourhood's mean ``round(x / Q)^2`` of each AC frequency.
    noise_var : np.ndarray
        float32 (n,) noise variance ``sigma^2`` of each block.
    steps : np.ndarray
        float32 (64,) quantisation steps in that order.
    n_fine : int
        How many frequencies come first with steps under 3.

    Returns
    -------
    np.ndarray
        float32 (64, n) estimates; the DC row is left for the caller.
    """
    coefs, mean_k2 = np.ascontiguousarray(coefs), np.ascontiguousarray(mean_k2)  # (flat indices below)
    n = coefs.shape[1]
    est = np.empty_like(coefs)
    # Fine bins (unknown or tiny steps): no rounding to undo, E[c | x] = s^2 / tau^2 x.
    tau2 = _total_variance(mean_k2[:n_fine], steps[:n_fine, None])
    gain = np.subtract(tau2, noise_var, out=est[:n_fine])
    np.maximum(gain, np.float32(0.0), out=gain)
    gain /= np.maximum(tau2, np.float32(1e-12), out=tau2)  # = s^2 / (s^2 + sigma^2) where s^2 > 0
    gain *= coefs[:n_fine]
    # Quantised frequencies: a coefficient in the zero bin is estimated as exactly 0 (the bin
    # is symmetric) unless its prior is much wider than the bin (then the bin is fine): the
    # posterior maths runs only on the surviving coefficients and those few fine ones.
    q = steps[n_fine:63]
    k = np.divide(coefs[n_fine:63], q[:, None])
    np.round(k, out=k)
    sel = k != 0
    sel |= mean_k2[n_fine:63] > np.float32(_FINE_MEAN_K2)
    if float(noise_var.max(initial=0.0)) * 0.0025 >= 0.9 * float(np.square(q).min(initial=np.inf)):
        sel |= noise_var * np.float32(0.0025) >= np.float32(0.9) * np.square(q)[:, None]  # noise alone: a fine bin
    est[n_fine:63] = 0.0
    # The selected coefficients by flat index (numpy's boolean indexing of each array would
    # scan the whole mask again).
    at = np.flatnonzero(sel)
    if at.size:
        freq, block = np.divmod(at, n)
        at += n_fine * n  # in the (64, n) and (63, n) arrays
        ks, cs, qs, nvs = k.ravel().take(at - n_fine * n), coefs.ravel().take(at), q.take(freq), noise_var.take(block)
        signal_var = np.maximum(_total_variance(mean_k2.ravel().take(at), qs) - nvs, np.float32(0.0))
        tau2 = signal_var + nvs
        gain = signal_var / np.maximum(tau2, np.float32(1e-12))
        coarse = (qs >= _MIN_STEP) & (qs * qs >= 0.0025 * tau2)
        x = np.where(coarse, np.float32(0.0), cs)
        trunc = coarse & (ks != 0)  # the truncated-normal mean of x over its bin
        if trunc.any():
            tau = np.sqrt(tau2[trunc].astype(np.float64))
            kt, qt = ks[trunc].astype(np.float64), qs[trunc].astype(np.float64)
            a, b = (kt - 0.5) * qt / tau, (kt + 0.5) * qt / tau
            mass = ndtr(b) - ndtr(a)
            mean = tau * (np.exp(-0.5 * a * a) - np.exp(-0.5 * b * b)) / (np.sqrt(2 * np.pi) * np.maximum(mass, 1e-300))
            x[trunc] = np.where(mass > 1e-9, mean, kt * qt)
        est.ravel()[at] = gain * x
    return est


def _deblock_steps(p1, p0, q0, q1, clip):
    """The weak deblocking filter's move of the two pixels ``p0 | q0`` that meet at a block
    boundary: ``(9 (q0 - p0) - 3 (q1 - p1)) / 16`` (the step less what the neighbouring
    gradient explains; the weak filter of H.264/HEVC deblocking, Norkin et al., IEEE TCSVT
    2012), clipped to ``±clip``: noise-sized steps are smoothed, real edges move by at most
    that much. Each block's coefficients are shrunk on their own, so noise inside a block
    drops while the step between two blocks (which no coefficient of either describes) keeps
    it: without this the JPEG grid would show on smooth skin."""
    return np.clip((9.0 * (q0 - p0) - 3.0 * (q1 - p1)) * np.float32(1 / 16), -clip, clip)


def _boundary_clip(keep_a: np.ndarray, keep_b: np.ndarray, lim_a: np.ndarray, lim_b: np.ndarray) -> np.ndarray:
    """Per block along a boundary: the smaller deblocking limit of the two blocks where both
    were estimated, else 0 (a boundary with a block the pyramid keeps does not move)."""
    return np.where(keep_a & keep_b, np.minimum(lim_a, lim_b), np.float32(0.0))


def _deblock_columns(luma: np.ndarray, keep: np.ndarray, limit: np.ndarray) -> None:
    """The vertical boundaries of :func:`_deblock_steps` in a strip, in place.

    ``luma`` float32 (8t)×(8e) (a view is fine), ``keep`` bool and ``limit`` float32 (t, e)
    per block. Done before the horizontal boundaries (columns first, then rows), and on whole
    rows, so a strip gives the whole frame's result.
    """
    if keep.shape[1] < 2:
        return
    clip = np.repeat(_boundary_clip(keep[:, :-1], keep[:, 1:], limit[:, :-1], limit[:, 1:]), 8, axis=0)
    p1, p0, q0, q1 = luma[:, 6:-2:8], luma[:, 7:-1:8], luma[:, 8::8], luma[:, 9::8]
    step = _deblock_steps(p1, p0, q0, q1, clip)
    p0 += step
    q0 -= step


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
        float32 skin weight in [0, 1] (the denoiser's refined skin matte): H×W, or on the
        half-resolution grid of ``cv2.pyrDown`` (``(H + 1) // 2`` × ``(W + 1) // 2``), in which
        case the weight is its ``cv2.pyrUp`` clipped to [0, 1], brought up where it is used
        (the denoiser's own grid: no frame-sized plane written and read again).
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
    h, w = image.shape[:2]
    if skin_weight.shape == (h, w):
        weight = _SkinWeight(skin_weight, None)
    elif skin_weight.shape == ((h + 1) // 2, (w + 1) // 2):
        weight = _SkinWeight(skin_weight, (h, w))
    else:
        raise ValueError(f"skin_weight must be {h}x{w} or {(h + 1) // 2}x{(w + 1) // 2}; got {skin_weight.shape}.")
    options = dict(prior_radius=prior_radius, noise_scale=noise_scale, ceiling=ceiling)
    applied = _jpeg_skin_luma_on_grid(image, out, weight, luma_noise, **options)
    if applied is None:  # no grid at the top-left pixel: where do block boundaries show?
        dy, dx = _grid_offset(image, skin_weight)
        if (dy, dx) != (0, 0):
            applied = _jpeg_skin_luma_on_grid(image[dy:, dx:], out[dy:, dx:], weight.cropped(dy, dx), luma_noise,
                                              **options)
    return bool(applied)


class _SkinWeight:
    """The skin weight at full resolution (``shape`` None) or as the half-resolution plane
    whose ``cv2.pyrUp`` to the frame's ``shape`` (clipped to [0, 1]) it stands for, seen from
    pixel ``origin`` of the frame on (a crop, for a grid found off the top-left pixel): block
    means and the pixels of a window, computed from whichever is held."""

    def __init__(self, plane: np.ndarray, shape: "tuple[int, int] | None", origin: tuple = (0, 0)):
        self.plane, self.shape, self.origin = plane, shape, origin

    def cropped(self, dy: int, dx: int) -> "_SkinWeight":
        """The weight of the crop ``[dy:, dx:]``."""
        if self.shape is None:
            return _SkinWeight(self.plane[dy:, dx:], None)
        return _SkinWeight(self.plane, self.shape, (self.origin[0] + dy, self.origin[1] + dx))

    def block_means(self, h8: int, w8: int) -> np.ndarray:
        """Mean weight of each 8×8 block of the top-left ``h8``×``w8`` pixels (multiples of 8).
        From the half-resolution plane, the mean of its 4×4 pixels under the block: pyrUp
        keeps local means, so it differs from the upsampled weight's block mean only by what
        its kernel moves across block edges (at a soft matte's edge; the blend weight is
        exact). On a crop by an odd offset the 4×4 pixels are half a pixel off."""
        if self.shape is None:
            return cv2.resize(self.plane[:h8, :w8], (w8 // 8, h8 // 8), interpolation=cv2.INTER_AREA)
        oy, ox = self.origin[0] // 2, self.origin[1] // 2
        return cv2.resize(self.plane[oy:oy + h8 // 2, ox:ox + w8 // 2], (w8 // 8, h8 // 8),
                          interpolation=cv2.INTER_AREA)

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The weight at pixels ``[y0, y1) × [x0, x1)``, unclipped: a view of the full-resolution
        plane, or the pyrUp of the half-resolution rows and columns under the window with two
        of margin (or the frame's edge), which equals the whole-frame pyrUp there."""
        if self.shape is None:
            return self.plane[y0:y1, x0:x1]
        (h, w), (h1, w1) = self.shape, self.plane.shape
        y0, y1, x0, x1 = y0 + self.origin[0], y1 + self.origin[0], x0 + self.origin[1], x1 + self.origin[1]
        q0, q1 = max(0, y0 // 2 - 2), min(h1, (y1 + 1) // 2 + 2)
        s0, s1 = max(0, x0 // 2 - 2), min(w1, (x1 + 1) // 2 + 2)
        u0, v0 = 2 * q0, 2 * s0
        up = cv2.pyrUp(self.plane[q0:q1, s0:s1], dstsize=(min(w, 2 * s1) - v0, min(h, 2 * q1) - u0))
        return up[y0 - u0:y1 - u0, x0 - v0:x1 - v0]


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
    of at most 512×512 pixels around the skin's centre; (0, 0) when there is too little.
    ``skin_weight``: H×W, or the half-resolution weight (see :func:`jpeg_skin_luma`)."""
    every = 8 if skin_weight.shape == image.shape[:2] else 4  # one sample per 8 pixels
    rows, cols = np.nonzero(skin_weight[::every, ::every] >= _SKIN_BLOCK)
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


def _row_runs(blocks: np.ndarray, t0: int, t1: int, c0: int, c1: int) -> list:
    """``(row, start, stop)``: the runs of set blocks in each block row ``t0 <= row < t1`` of
    ``blocks`` (bool) within columns ``[c0, c1)``, runs apart by at most ``_RUN_GAP`` columns
    merged (:func:`effects._bands.column_runs` of each row; a row's runs lie inside those of the rows together).

    The block DCTs are taken one block row and one such run at a time: BLAS's float32 products
    differ in the last bit with the shape of the call (and a row's place in it), and these calls
    depend on the row alone, not on how rows were grouped into strips and bands.
    """
    rows, cols = np.nonzero(blocks[t0:t1, c0:c1])
    if rows.size == 0:
        return []
    # Sorted by row, then column: a run starts at a new row or after more than _RUN_GAP empty columns.
    new = np.flatnonzero((np.diff(rows) != 0) | (np.diff(cols) > _RUN_GAP + 1)) + 1
    first, last = np.r_[0, new], np.r_[new - 1, rows.size - 1]
    return list(zip((rows[first] + t0).tolist(), (cols[first] + c0).tolist(), (cols[last] + c0 + 1).tolist()))


def _jpeg_skin_luma_on_grid(image: np.ndarray, out: np.ndarray, skin_weight: "_SkinWeight", luma_noise: tuple[float, float], *,
                   prior_radius: int, noise_scale: float, ceiling: float) -> "bool | None":
    """:func:`jpeg_skin_luma` for a JPEG grid anchored at the top-left pixel of these arrays;
    None when no quantisation shows on that grid (checked before anything costly)."""
    h8, w8 = (image.shape[0] // 8) * 8, (image.shape[1] // 8) * 8
    if h8 == 0 or w8 == 0:
        return False
    wb = skin_weight.block_means(h8, w8)
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
    noise_eff = (noise_eff * np.float32(noise_scale)).astype(np.float32)
    limit = np.sqrt(noise_eff) * np.float32(_DEBLOCK)  # deblocking limit per block
    # Frequencies in the order the estimate wants them (module docstring, step 3): those with
    # fine bins first, then the quantised ones, the DC term last, so that each group is one
    # slice of the frequency-major coefficient arrays. (u, v) of each: fu, fv.
    flat_steps = q88.ravel()
    ac = np.arange(1, 64)
    order = np.concatenate([ac[flat_steps[1:] < _MIN_STEP], ac[flat_steps[1:] >= _MIN_STEP], [0]])
    n_fine = int((flat_steps[1:] < _MIN_STEP).sum())
    steps_ordered = np.ascontiguousarray(flat_steps[order])
    fu, fv = np.divmod(order, 8)

    # The region's luma coefficients, frequency-major ((frequency, block row, block column):
    # a plane per frequency), and the skin-weighted k^2 of the AC frequencies (one pass, by strips).
    bh, bw = b1 - b0, c1 - c0
    coefs_all = np.empty((64, bh, bw), np.float32)
    # Both zeroed by each strip first (the box filter's running sums see every block), in the
    # threads: np.zeros' lazily zeroed pages would each cost a fault at their first write.
    k2w_all = np.empty((63, bh, bw), np.float32)
    wreg = np.ascontiguousarray(wb[b0:b1, c0:c1])
    # Blocks whose coefficients are needed: within the prior's reach of an estimated block.
    needed = cv2.dilate(processed[b0:b1, c0:c1].astype(np.uint8), np.ones(ksize, np.uint8)).astype(bool)

    def transform(t0: int) -> None:
        """Strip of region block rows [t0, t0 + _STRIP_BLOCKS)."""
        t1 = min(bh, t0 + _STRIP_BLOCKS)
        k2w_all[:, t0:t1] = 0.0
        # Also the coefficients: `estimate` works on runs of columns that may bridge blocks
        # no prior needs (their results are discarded), and must not read uninitialised memory.
        coefs_all[:, t0:t1] = 0.0
        for n0, n1 in column_runs(needed[t0:t1], _RUN_GAP):
            luma = jfif_luma(image[8 * (b0 + t0):8 * (b0 + t1), 8 * (c0 + n0):8 * (c0 + n1)])
            for i, a, b in _row_runs(needed, t0, t1, n0, n1):
                # (1, 8, n, 8) -> (64, 1, n): advanced indices apart put their axis first.
                c = block_dct(luma[8 * (i - t0):8 * (i - t0 + 1), 8 * (a - n0):8 * (b - n0)])[:, fu, :, fv]
                coefs_all[:, i, a:b] = c[:, 0]
                k = np.divide(c[:63, 0], steps_ordered[:63, None])
                np.round(k, out=k)
                k *= k
                k *= wreg[i, a:b]
                k2w_all[:, i, a:b] = k

    # Strips are independent: shared out to the threads (same output).
    run_strips(transform, range(0, bh, _STRIP_BLOCKS), bh, 64 * bw)
    # Skin-weighted mean of k^2 over (2r+1)^2 blocks per frequency: background blocks at the
    # skin's edge would otherwise inflate the prior with their edges. (The division by the
    # weights' sum happens in `estimate`, on the blocks estimated only.)
    sum_k2 = np.empty_like(k2w_all)

    def blur_planes(f0: int, f1: int) -> None:
        for f in range(f0, f1):  # a plane at a time: OpenCV's box filter is fastest on one channel
            cv2.blur(k2w_all[f], ksize, dst=sum_k2[f], borderType=cv2.BORDER_REFLECT)

    run_in_row_bands(blur_planes, 63, bh * bw)
    del k2w_all
    sum_w = np.maximum(cv2.blur(wreg, ksize, borderType=cv2.BORDER_REFLECT), np.float32(1e-6))

    # Region planes (pixels of block rows b0..b1, columns c0..c1): the pyramid's luma and the
    # new estimate, filled strip by strip (blocks without skin keep new = old: no change).
    # y_new is zeroed by each strip first (not left as it comes): the horizontal deblocking
    # reads the rows next to a strip's own, possibly unwritten (and masked out, but garbage
    # could be NaN). y_old is read where written only. (Not np.zeros: it hands out lazily
    # zeroed pages whose first write each costs a page fault, ~40 ms on a 12 MP frame.)
    y_old = np.empty((8 * bh, 8 * bw), np.float32)
    y_new = np.empty_like(y_old)
    # The pyramid result's sRGB power (see srgb_power) per (strip, run), from `estimate` to
    # `write` (both walk the same strips and runs): no frame-sized copy.
    p_old = {}

    def estimate(t0: int) -> None:
        """Strip of block rows [t0, t0 + _STRIP_BLOCKS), on the runs of columns holding skin
        in its rows. Reads ``image`` and ``out`` only."""
        t1 = min(b1, t0 + _STRIP_BLOCKS)
        y_new[8 * (t0 - b0):8 * (t1 - b0)] = 0.0
        for e0, e1 in column_runs(processed[t0:t1], _RUN_GAP):
            rr, rc = slice(t0 - b0, t1 - b0), slice(e0 - c0, e1 - c0)
            ry, rx = slice(8 * (t0 - b0), 8 * (t1 - b0)), slice(8 * (e0 - c0), 8 * (e1 - c0))
            p = p_old[t0, e0] = srgb_power(out[8 * t0:8 * t1, 8 * e0:8 * e1])
            y_out = cv2.transform(p, _JFIF_AFFINE).reshape(p.shape[:2])
            y_old[ry, rx] = y_out
            shape = (t1 - t0, e1 - e0)
            n = shape[0] * shape[1]
            # Every block of the run (the few without skin are put back below).
            est = _estimate_blocks(coefs_all[:, rr, rc].reshape(64, n),
                                   (sum_k2[:, rr, rc] / sum_w[rr, rc]).reshape(63, n),
                                   np.ascontiguousarray(noise_eff[t0:t1, e0:e1]).reshape(n), steps_ordered, n_fine)
            # Block means stay the pyramid's: the orthonormal DCT's DC term is 8x the block mean.
            est[63] = cv2.resize(y_out, shape[::-1], interpolation=cv2.INTER_AREA).reshape(n) * np.float32(8.0)
            blocks = np.empty((shape[0], 8, shape[1], 8), np.float32)  # block_idct's layout
            blocks[:, fu, :, fv] = est.reshape(64, *shape)
            for i, a, b in _row_runs(processed, t0, t1, e0, e1):  # every estimated block
                y_new[8 * (i - b0):8 * (i - b0 + 1), 8 * (a - c0):8 * (b - c0)] = \
                    block_idct(blocks[i - t0:i - t0 + 1, :, a - e0:b - e0])
            keep = processed[t0:t1, e0:e1]
            if not keep.all():  # the others (and those the runs bridge) keep the pyramid's luma
                drop = cv2.resize((~keep).view(np.uint8), y_out.shape[::-1], interpolation=cv2.INTER_NEAREST)
                cv2.copyTo(y_out, drop, y_new[ry, rx])
            _deblock_columns(y_new[ry, rx], keep, limit[t0:t1, e0:e1])

    def write(t0: int) -> None:
        """Blend the new luma into ``out`` on skin in a strip (writes its own rows only)."""
        t1 = min(b1, t0 + _STRIP_BLOCKS)
        for e0, e1 in column_runs(processed[t0:t1], _RUN_GAP):
            ys, xs = slice(8 * t0, 8 * t1), slice(8 * e0, 8 * e1)
            ry, rx = slice(8 * (t0 - b0), 8 * (t1 - b0)), slice(8 * (e0 - c0), 8 * (e1 - c0))
            delta = np.subtract(y_new[ry, rx], y_old[ry, rx])
            # Horizontal block boundaries touching this strip's rows, from the column-deblocked
            # planes (each boundary reads two rows either side and moves the two that meet, so
            # boundaries are independent): rows 8j - 1 and 8j of boundary j, b0 < j < b1.
            j0, j1 = max(t0, b0 + 1), min(t1, b1 - 1)
            if j1 >= j0:
                js = np.arange(j0, j1 + 1) - b0  # region block rows below each boundary
                rows = y_new.reshape(bh, 8, 8 * bw)[:, :, rx]  # a view: (block row, y, x)
                clip = np.repeat(_boundary_clip(processed[js + b0 - 1, e0:e1], processed[js + b0, e0:e1],
                                                limit[js + b0 - 1, e0:e1], limit[js + b0, e0:e1]), 8, axis=1)
                step = _deblock_steps(rows[js - 1, 6], rows[js - 1, 7], rows[js, 0], rows[js, 1], clip)
                strip_rows = delta.reshape(t1 - t0, 8, -1)
                above = js - 1 >= t0 - b0  # row 8j - 1 is in this strip
                strip_rows[js[above] - 1 - (t0 - b0), 7] += step[above]
                below = js < t1 - b0  # row 8j is in this strip
                strip_rows[js[below] - (t0 - b0), 0] -= step[below]
            # Blend weight: 0 below the skin-block threshold, 1 on full skin: no seam at the cut.
            # (The weight's clip to [0, 1] is implied by this one's.)
            wpix = np.subtract(skin_weight.window(8 * t0, 8 * t1, 8 * e0, 8 * e1), np.float32(_SKIN_BLOCK))
            wpix *= np.float32(1 / (1 - _SKIN_BLOCK))
            np.clip(wpix, 0.0, 1.0, out=wpix)
            keep = processed[t0:t1, e0:e1]
            if not keep.all():
                wpix *= cv2.resize(keep.astype(np.float32), wpix.shape[::-1], interpolation=cv2.INTER_NEAREST)
            if ceiling > 1.0:
                wpix[(out[ys, xs] > 1.0).any(axis=2)] = 0.0  # the 8-bit encoder model ends at 1
            # sRGB out = 1.055 p - 0.055 + w (y_new - y_old) / 255, decoded: in units of p,
            # u = p + w (y_new - y_old) / (255 * 1.055) and linear = u^2.4 above the toe.
            delta *= wpix
            delta *= np.float32(1 / (255 * 1.055))
            # (OpenCV's merge and add: numpy's broadcast of one channel over three runs ~5x slower.)
            u = srgb_power_to_linear_in_place(cv2.add(p_old.pop((t0, e0)), cv2.merge((delta, delta, delta))))
            # Only where the weight is positive: elsewhere the sRGB round trip would move the
            # last bit of the pyramid's result.
            dst, mask = out[ys, xs], wpix > 0
            if dst.strides[0] > 0 and dst.strides[1:] == (12, 4):  # rows of RGB pixels: an OpenCV Mat
                cv2.copyTo(u, mask.view(np.uint8), dst)  # (writes into the view: same size and type)
            else:  # a caller's Fortran-ordered or transposed frame (empty_like keeps the layout)
                np.copyto(dst, u, where=mask[..., None])

    run_strips(estimate, range(b0, b1, _STRIP_BLOCKS), bh, 64 * bw)
    # Then the horizontal boundaries, in `write`: it reads the rows next to its strip's.
    run_strips(write, range(b0, b1, _STRIP_BLOCKS), bh, 64 * bw)  # rows of its own only
    return True
