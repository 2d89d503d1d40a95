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
part of the *camera encoder's* model here; the kernels below evaluate the same curve a value at
a time (a branch-free polynomial log and exp that LLVM vectorises), to float32 rounding.

Cost (12 MP portrait whose hazy skin matte covers half the frame): the work follows the skin, in
strips of block rows and, within a strip, runs of columns, shared out to the threads as they come
free. Each of the two strip phases is one compiled kernel (:mod:`effects._jit`) per run of
blocks, one pass over its pixels where numpy made a pass per operation: *transform* (sRGB power,
JFIF luma, 8×8 DCT, skin-weighted ``k^2``), then, after the box filter of the ``k^2`` planes,
*estimate and write*, a block row at a time (the pyramid result's luma, each coefficient's
posterior, the inverse DCT, the vertical deblocking; then the horizontal deblocking, the blend
weight, the decode). The horizontal deblocking of a strip's edge rows needs the new luma of the
block row beside it, which the strip estimates again (a halo of one block row each side, 1/8
more estimates at 16 block rows a strip, read from copies of the pyramid's result since the
neighbouring strip writes those rows): in exchange the new luma never leaves a three-block-row
buffer and the pyramid's sRGB power is computed once a pixel (both had been a frame-sized
plane or a second pass: 390 instead of 430 ms of CPU on the benchmark). Coefficients are kept a
plane per frequency and read and written a plane at a time (sequential streams); the variance
table is indexed by the float's bit pattern. The result does not depend on the strips or threads
(``tests/effects/test_jpeg_skin.py``).
"""

from __future__ import annotations

import functools
import math

import cv2
import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import types as nb_types
from numba.extending import intrinsic

from ._bands import column_runs, run_in_row_bands, run_strips
from ._jit import fma, inline, kernel
from ._srgb import srgb_power, srgb_slope


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


# ---------------------------------------------------------------------------------------------
# Compiled per-pixel work (effects._jit.kernel): the strips' numpy chains fused into one pass.
# ---------------------------------------------------------------------------------------------
_F = np.float32
# JFIF luma of p (srgb_power's value) per channel: _JFIF_AFFINE as scalars (one constant each).
_LUMA_R, _LUMA_G, _LUMA_B, _LUMA_OFFSET = (_F(v) for v in _JFIF_AFFINE[0])
# The sRGB toes (IEC 61966-2-1, as effects/_srgb.py): linear below _LINEAR_TOE; p at or below
# _POWER_TOE, the power's value at the decoder's toe (0.04045).
_LINEAR_TOE = _F(0.0031308)
_POWER_TOE = _F((0.04045 + 0.055) / 1.055)
_DCT8_T = np.ascontiguousarray(_DCT8.T)


@intrinsic
def _float_bits(typingctx, value):
    """The bit pattern of a float32 as an int32 (a register move, no memory)."""
    if value != nb_types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(32))

    return nb_types.int32(nb_types.float32), codegen


@intrinsic
def _bits_float(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits``."""
    if bits != nb_types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())

    return nb_types.float32(nb_types.int32), codegen


if numba.config.DISABLE_JIT:  # Numba's debugging switch: kernels run as Python, where an intrinsic cannot
    def _float_bits(value):  # noqa: F811
        return np.float32(value).view(np.int32)

    def _bits_float(bits):  # noqa: F811
        return np.int32(bits).view(np.float32)


@inline
def _log_f32(x):
    """Natural log of a positive normal float32, in float32 (Cephes ``logf``: the exponent from
    the bit pattern, a degree-9 polynomial of the mantissa in fused multiply-adds: the sRGB
    powers built on it and :func:`_exp_f32` stay within 1e-7 of the exact values). Branch-free,
    so that the loops calling it vectorise (Numba's ``math.log`` is a libm call per value, ~3x
    slower than OpenCV's SIMD ``log`` here)."""
    bits = _float_bits(x)
    exponent = _F((bits >> 23) - 127)
    m = _bits_float(np.int32((bits & 0x7FFFFF) | 0x3F800000))  # mantissa in [1, 2)
    high = m > _F(1.41421356)  # to [sqrt(1/2), sqrt(2)): the polynomial's range
    m = m * _F(0.5) if high else m
    exponent = exponent + _F(1.0) if high else exponent
    x = m - _F(1.0)
    z = x * x
    y = fma(_F(7.0376836292e-2), x, _F(-1.1514610310e-1))
    y = fma(y, x, _F(1.1676998740e-1))
    y = fma(y, x, _F(-1.2420140846e-1))
    y = fma(y, x, _F(1.4249322787e-1))
    y = fma(y, x, _F(-1.6668057665e-1))
    y = fma(y, x, _F(2.0000714765e-1))
    y = fma(y, x, _F(-2.4999993993e-1))
    y = fma(y, x, _F(3.3333331174e-1))
    y = y * x * z
    y = fma(exponent, _F(-2.12194440e-4), y)
    y = fma(_F(-0.5), z, y)
    return fma(exponent, _F(0.693359375), x + y)


@inline
def _exp_f32(x):
    """``exp(x)`` in float32 for ``-87 < x <= 0`` (Cephes ``expf``: ``2^n`` by the bit pattern,
    a degree-7 polynomial of the rest in fused multiply-adds). Branch-free, as
    :func:`_log_f32`."""
    n = np.floor(fma(x, _F(1.44269504088896341), _F(0.5)))
    x = fma(n, _F(-0.693359375), x)
    x = fma(n, _F(2.12194440e-4), x)
    z = x * x
    y = fma(_F(1.9875691500e-4), x, _F(1.3981999507e-3))
    y = fma(y, x, _F(8.3334519073e-3))
    y = fma(y, x, _F(4.1665795894e-2))
    y = fma(y, x, _F(1.6666665459e-1))
    y = fma(y, x, _F(5.0000001201e-1))
    y = fma(y, z, x) + _F(1.0)
    return y * _bits_float(np.int32((np.int32(n) + 127) << 23))


@inline
def _srgb_power_value(linear):
    """:func:`effects._srgb.srgb_power` of one float32 value (clipped to [0, 1]; the linear toe
    ``(12.92 x + 0.055) / 1.055``, else ``x ** (1/2.4)``). Both branches are computed and one
    kept, so that a loop of it vectorises."""
    x = min(max(linear, _F(0.0)), _F(1.0))
    toe = x * _F(12.92 / 1.055) + _F(0.055 / 1.055)
    power = _exp_f32(_log_f32(max(x, _LINEAR_TOE)) * _F(1.0 / 2.4))
    return toe if x < _LINEAR_TOE else power


@inline
def _linear_from_power(p):
    """The inverse of :func:`_srgb_power_value` for one float32 value: the linear light of
    ``sRGB = 1.055 p - 0.055`` clipped to [0, 1] (IEC 61966-2-1 decoding in units of ``p``, for
    an adjustment of sRGB added as ``Δ / 1.055``; branch-free, as :func:`_srgb_power_value`)."""
    toe = max(p * _F(1.055 / 12.92) + _F(-0.055 / 12.92), _F(0.0))
    power = _exp_f32(_log_f32(max(min(p, _F(1.0)), _POWER_TOE)) * _F(2.4))
    return toe if p <= _POWER_TOE else power


@inline
def _total_variance_value(mean_k2, step_squared, table, first_bin):
    """:func:`_total_variance` of one coefficient: ``t^2`` from the table bin of ``mean_k2``'s
    float32 bit pattern (clipped to the table; Sheppard's value past ``_TABLE_TOP``), times
    the squared step. float32."""
    if mean_k2 > _F(_TABLE_TOP):
        t2 = mean_k2 - _F(1 / 12)
    else:
        index = min(max((_float_bits(mean_k2) >> _TABLE_SHIFT) - first_bin, 0), table.shape[0] - 1)
        t2 = table[index]
    return t2 * step_squared


@inline
def _normal_cdf(x):
    """Standard normal CDF in float64, by scipy's (Cephes') formula: ``erf`` near 0, ``erfc``
    of |x| in the tails (so that tail masses keep their digits as they do in scipy)."""
    y = x * 0.70710678118654752440
    z = abs(y)
    if z < 0.70710678118654752440:
        return 0.5 + 0.5 * math.erf(y)
    tail = 0.5 * math.erfc(z)
    return 1.0 - tail if y > 0.0 else tail


@inline
def _fine_bin_mean(coef, mean_k2, noise_var, step, table, first_bin):
    """E[c | x] of one AC coefficient whose step is under 3 (a fine bin: ``x`` itself is known,
    so a Wiener gain ``s^2 / tau^2`` only). float32."""
    tau2 = _total_variance_value(mean_k2, step * step, table, first_bin)
    return (max(tau2 - noise_var, _F(0.0)) / max(tau2, _F(1e-12))) * coef


@inline
def _quantised_bin_mean(coef, mean_k2, noise_var, step, table, first_bin):
    """E[c | x in its quantisation bin] of one AC coefficient of a quantised frequency (module
    docstring, step 3): float32, except the truncated-normal mean (float64, as scipy's
    ``ndtr``).

    A coefficient in the zero bin is 0 unless its prior is much wider than the bin
    (``mean_k2`` above ``_FINE_MEAN_K2``) or the noise alone is (then the bin is fine too).
    """
    step_squared = step * step
    k = np.rint(coef / step)
    if not (k != _F(0.0) or mean_k2 > _F(_FINE_MEAN_K2) or noise_var * _F(0.0025) >= _F(0.9) * step_squared):
        return _F(0.0)
    signal_var = max(_total_variance_value(mean_k2, step_squared, table, first_bin) - noise_var, _F(0.0))
    tau2 = signal_var + noise_var
    gain = signal_var / max(tau2, _F(1e-12))
    if not (step >= _F(_MIN_STEP) and step_squared >= _F(0.0025) * tau2):
        return gain * coef  # a fine bin after all
    if k == _F(0.0):
        return _F(0.0)
    # The mean of the truncated normal N(0, tau^2) over the bin [(k - 1/2) Q, (k + 1/2) Q].
    tau = math.sqrt(np.float64(tau2))
    kt, qt = np.float64(k), np.float64(step)
    a, b = (kt - 0.5) * qt / tau, (kt + 0.5) * qt / tau
    mass = _normal_cdf(b) - _normal_cdf(a)
    if mass > 1e-9:
        x = _F(tau * (math.exp(-0.5 * a * a) - math.exp(-0.5 * b * b)) / (math.sqrt(2 * math.pi) * max(mass, 1e-300)))
    else:
        x = _F(kt * qt)
    return gain * x


@inline
def _vector_times_matrix(vector, start, matrix, out, out_start):
    """``out[out_start + v] = sum_x vector[start + x] * matrix[x, v]`` for an 8×8 float32
    ``matrix``, the terms added in order of ``x``: eight accumulators in registers (LLVM packs
    them into one vector register), where a loop over ``out`` reloaded and stored them."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _F(0.0)
    for x in range(8):
        value = vector[start + x]
        a0 += value * matrix[x, 0]
        a1 += value * matrix[x, 1]
        a2 += value * matrix[x, 2]
        a3 += value * matrix[x, 3]
        a4 += value * matrix[x, 4]
        a5 += value * matrix[x, 5]
        a6 += value * matrix[x, 6]
        a7 += value * matrix[x, 7]
    out[out_start] = a0
    out[out_start + 1] = a1
    out[out_start + 2] = a2
    out[out_start + 3] = a3
    out[out_start + 4] = a4
    out[out_start + 5] = a5
    out[out_start + 6] = a6
    out[out_start + 7] = a7


@inline
def _jfif_luma_row(pixels, start, n, power, luma):
    """The JFIF luma (0–255) of the 8-bit sRGB encoding of ``n`` linear RGB pixels from flat
    index ``start`` of ``pixels`` (float32, RGB interleaved) into ``luma[:n]``, their sRGB power
    into ``power[:3 n]`` (:func:`jfif_luma`'s srgb_power and cv2.transform, fused)."""
    for k in range(3 * n):  # contiguous: vectorised
        power[k] = _srgb_power_value(pixels[start + k])
    for x in range(n):
        luma[x] = _LUMA_R * power[3 * x] + _LUMA_G * power[3 * x + 1] + _LUMA_B * power[3 * x + 2] + _LUMA_OFFSET


@kernel
def _luma_coefficients(image, y0, x0, runs, order, steps, weight, coefs, k2_weighted):
    """Transform step of a strip: the JFIF luma of the image's pixels (srgb_power, then the
    luma row of ``_JFIF_AFFINE``), its 8×8 block DCTs, and each AC coefficient's skin-weighted
    ``round(x / Q)^2``, in one pass over the pixels (the numpy version: srgb_power's eight
    passes, cv2.transform, two matrix products, a gather into frequency planes and four more
    passes for k^2).

    Parameters
    ----------
    image : np.ndarray
        float32 H×W×3 linear RGB, C-contiguous (the whole frame).
    y0, x0 : int
        Pixel of region block (0, 0) in ``image``.
    runs : np.ndarray
        int64 (r, 3): (region block row, first column, stop column) of each run of blocks.
    order : np.ndarray
        int64 (64,) flat frequency ``8 u + v`` of each coefficient plane (the estimate's order).
    steps : np.ndarray
        float32 (64,) quantisation step of each plane.
    weight : np.ndarray
        float32 (bh, bw) skin weight of each region block.
    coefs, k2_weighted : np.ndarray
        float32 (64, bh, bw) and (63, bh, bw), C-contiguous: written at the runs' blocks.
    """
    width = image.shape[1]
    pixels = image.reshape(-1)
    widest = 0
    for r in range(runs.shape[0]):
        widest = max(widest, 8 * (runs[r, 2] - runs[r, 1]))
    power = np.empty(3 * widest, np.float32)
    luma = np.empty((8, widest), np.float32)
    along_x = np.empty((8, widest), np.float32)
    block_coefs = np.empty((8, widest), np.float32)
    for r in range(runs.shape[0]):
        i, first, stop = runs[r, 0], runs[r, 1], runs[r, 2]
        n = 8 * (stop - first)
        for y in range(8):
            _jfif_luma_row(pixels, ((y0 + 8 * i + y) * width + x0 + 8 * first) * 3, n, power, luma[y])
        # D X D^T, the rows' products first (as block_dct): along x within each block, ...
        for y in range(8):
            for j in range(0, n, 8):
                _vector_times_matrix(luma[y], j, _DCT8_T, along_x[y], j)
        # ... then along y, over the whole run at once.
        for u in range(8):
            for x in range(n):
                block_coefs[u, x] = 0.0
            for y in range(8):
                d = _DCT8[u, y]
                for x in range(n):
                    block_coefs[u, x] += d * along_x[y, x]
        # Into the frequency planes a plane at a time (sequential writes, as in `_estimate_write_run`).
        for f in range(64):
            u, v = order[f] >> 3, order[f] & 7
            for j in range(stop - first):
                c = block_coefs[u, 8 * j + v]
                coefs[f, i, first + j] = c
                if f < 63:
                    k = np.rint(c / steps[f])
                    k2_weighted[f, i, first + j] = k * k * weight[i, first + j]


@inline
def _deblock_step(p1, p0, q0, q1, clip):
    """The weak deblocking filter's move of the two pixels ``p0 | q0`` that meet at a block
    boundary: ``(9 (q0 - p0) - 3 (q1 - p1)) / 16`` (the step less what the neighbouring
    gradient explains; the weak filter of H.264/HEVC deblocking, Norkin et al., IEEE TCSVT
    2012), clipped to ``±clip``: noise-sized steps are smoothed, real edges move by at most
    that much. Each block's coefficients are shrunk on their own, so noise inside a block
    drops while the step between two blocks (which no coefficient of either describes) keeps
    it: without this the JPEG grid would show on smooth skin."""
    return min(max((_F(9.0) * (q0 - p0) - _F(3.0) * (q1 - p1)) * _F(1 / 16), -clip), clip)


@inline
def _boundary_clip(processed, limit, ta, ea, tb, eb):
    """The deblocking limit of the boundary between blocks (ta, ea) and (tb, eb): the smaller
    of their limits where both were estimated, else 0 (a block the pyramid keeps does not move)."""
    if processed[ta, ea] and processed[tb, eb]:
        return min(limit[ta, ea], limit[tb, eb])
    return _F(0.0)


@kernel
def _estimate_write_run(out, above, below, y0, x0, t0, t1, e0, e1, b0, b1, c0, coefs, sum_k2, sum_w, noise_var,
                        processed, limit, steps, order, n_fine, table, first_bin, window, ceiling_above_one):
    """Estimate and write one run of blocks of a strip, a block row at a time: the pyramid
    result's JFIF luma, each estimated block's posterior coefficients (its DC: the pyramid
    luma's block mean), their inverse DCT and the vertical block boundaries' deblocking
    (*estimate*); then the horizontal boundaries' deblocking, the blend weight, and the new
    luma put into ``out`` in units of sRGB power and decoded (*write*).

    The horizontal deblocking of a strip's first and last pixel rows reads the new luma of the
    block rows beside the strip: those (its halo, one block row on each side inside the
    region) are estimated here too, from ``above`` and ``below``, copies of the pyramid's
    result taken before any strip wrote (another strip writes those rows meanwhile). The new
    luma lives in three block rows of buffer and the pyramid's sRGB power in two, from the
    estimate of a block row to its write: no region-sized plane, and the power is computed
    once a pixel, not again for the write.

    Parameters
    ----------
    out : np.ndarray
        float32 H×W×3 linear RGB, C-contiguous: the pyramid's result, read at the strip's rows
        and replaced there where the blend weight is positive.
    above, below : np.ndarray
        float32 (8, 8 bw, 3), C-contiguous: the pyramid's result at region block rows
        ``t0 - 1`` and ``t1`` (all the region's columns), read when ``t0 > b0`` and
        ``t1 < b1`` respectively (any float32 3-D C array otherwise, (0, 0, 3) say).
    y0, x0 : int
        Pixel of grid block (0, 0) in ``out``.
    t0, t1, e0, e1 : int
        The run: grid block rows [t0, t1) (the strip's), columns [e0, e1).
    b0, b1, c0 : int
        Grid block rows [b0, b1) of the region, and its first block column.
    coefs, sum_k2, sum_w : np.ndarray
        float32 (64, bh, bw) image coefficients in ``order``, (63, bh, bw) skin-weighted sums
        of k^2 and (bh, bw) the weights' sums over each block's neighbourhood.
    noise_var, limit : np.ndarray
        float32 per grid block: noise variance (8-bit luma levels^2) and deblocking limit.
    processed : np.ndarray
        bool per grid block: estimated (the others keep the pyramid's luma).
    steps, order : np.ndarray
        float32 (64,) quantisation step and int64 (64,) flat frequency ``8 u + v`` of each
        coefficient plane (the estimate's order, as :func:`_luma_coefficients` wrote them).
    n_fine : int
        How many planes come first with steps under 3 (fine bins: ``x`` itself is known).
    table, first_bin
        The variance table and its first bin (:func:`_variance_table`).
    window : np.ndarray
        float32 (8 (t1 - t0), 8 (e1 - e0)), C-contiguous: the skin weight at the run's
        pixels, unclipped.
    ceiling_above_one : bool
        Pixels with a channel above 1 are left alone (the 8-bit encoder model ends at 1).
    """
    width = out.shape[1]
    pixels, above_pixels, below_pixels = out.reshape(-1), above.reshape(-1), below.reshape(-1)
    region_width = 8 * coefs.shape[2]
    nb = e1 - e0
    n = 8 * nb
    h0 = t0 - 1 if t0 > b0 else t0  # block rows estimated: the strip's and its halo
    h1 = t1 + 1 if t1 < b1 else t1
    power = np.empty((2, 8, 3 * n), np.float32)  # block row t's pyramid sRGB power in slot t % 2
    y_old = np.empty((2, 8, n), np.float32)      # ... its pyramid luma
    y_new = np.empty((3, 8, n), np.float32)      # ... its new luma in slot t % 3
    est = np.empty((nb, 64), np.float32)  # natural order (8 u + v), a row per block
    along_y = np.empty(8, np.float32)
    delta = np.empty(3 * n, np.float32)
    linear = np.empty(3 * n, np.float32)
    blend = np.empty(n, np.bool_)
    for step_row in range(h0, h1 + 1):
        if step_row < h1:  # estimate block row `step_row`
            t, ps, ns = step_row, step_row % 2, step_row % 3
            for y in range(8):
                # (One call site: the helper is inlined, and three would compile its sRGB power thrice.)
                source, start = pixels, ((y0 + 8 * t + y) * width + x0 + 8 * e0) * 3
                if t < t0 or t >= t1:  # a halo row: from the copy
                    source, start = above_pixels if t < t0 else below_pixels, (y * region_width + 8 * (e0 - c0)) * 3
                _jfif_luma_row(source, start, n, power[ps, y], y_old[ps, y])
            # A frequency plane at a time: each plane is read as one sequential stream (127
            # planes interleaved block by block defeat the hardware prefetcher). Every block of
            # the run is estimated (branch-free loops; the transform step zeroed the
            # coefficients of blocks no prior needs), those not processed then put back.
            bi, bj0 = t - b0, e0 - c0
            for f in range(63):
                step, at = steps[f], order[f]
                if f < n_fine:  # (two loops: the fine one has no branches)
                    for j in range(nb):
                        est[j, at] = _fine_bin_mean(coefs[f, bi, bj0 + j], sum_k2[f, bi, bj0 + j] / sum_w[bi, bj0 + j],
                                                    noise_var[t, e0 + j], step, table, first_bin)
                else:
                    for j in range(nb):
                        est[j, at] = _quantised_bin_mean(coefs[f, bi, bj0 + j],
                                                         sum_k2[f, bi, bj0 + j] / sum_w[bi, bj0 + j],
                                                         noise_var[t, e0 + j], step, table, first_bin)
            for j in range(nb):
                px = 8 * j
                if not processed[t, e0 + j]:
                    for y in range(8):
                        for x in range(8):
                            y_new[ns, y, px + x] = y_old[ps, y, px + x]
                    continue
                # The DC term stays the pyramid's: 8x the block mean (orthonormal DCT).
                total = _F(0.0)
                for y in range(8):
                    for x in range(8):
                        total += y_old[ps, y, px + x]
                est[j, 0] = total * _F(1 / 64) * _F(8.0)
                # D^T C D, along y first.
                coefficients = est[j].reshape(8, 8)
                for y in range(8):
                    _vector_times_matrix(_DCT8_T[y], 0, coefficients, along_y, 0)  # sum_u D[u, y] C[u, :]
                    _vector_times_matrix(along_y, 0, _DCT8, y_new[ns, y], px)
            # Vertical block boundaries inside the run (each moves its own two columns and
            # reads the two beside them, which no other boundary moves: order does not matter).
            for e in range(e0, e1 - 1):
                clip = _boundary_clip(processed, limit, t, e, t, e + 1)
                if clip == _F(0.0):
                    continue
                px = 8 * (e + 1 - e0)
                for y in range(8):
                    s = _deblock_step(y_new[ns, y, px - 2], y_new[ns, y, px - 1], y_new[ns, y, px],
                                      y_new[ns, y, px + 1], clip)
                    y_new[ns, y, px - 1] += s
                    y_new[ns, y, px] -= s
        t = step_row - 1  # write block row t: the new luma of t - 1, t and t + 1 is there
        if t < t0 or t >= t1:
            continue
        ps, ns = t % 2, t % 3
        for in_block in range(8):
            y = 8 * (t - t0) + in_block
            start = ((y0 + 8 * t + in_block) * width + x0 + 8 * e0) * 3
            # Horizontal boundary j (rows 8j - 1 | 8j), b0 < j < b1, when this row is one of
            # its two: its step is added to the row above it and taken from the row below.
            j = t + 1 if in_block == 7 else (t if in_block == 0 else -1)
            boundary = b0 < j < b1
            above_slot, below_slot = (j + 2) % 3, (j + 3) % 3  # block rows j - 1 and j
            sign = _F(1.0) if in_block == 7 else _F(-1.0)
            for block in range(nb):
                e = e0 + block
                keep = _F(1.0) if processed[t, e] else _F(0.0)
                clip = _boundary_clip(processed, limit, j - 1, e, j, e) if boundary else _F(0.0)
                for x in range(8 * block, 8 * block + 8):
                    d = y_new[ns, in_block, x] - y_old[ps, in_block, x]
                    if boundary:
                        d = d + sign * _deblock_step(y_new[above_slot, 6, x], y_new[above_slot, 7, x],
                                                     y_new[below_slot, 0, x], y_new[below_slot, 1, x], clip)
                    # Blend weight: 0 below the skin-block threshold, 1 on full skin: no seam
                    # at the cut; 0 on blocks not estimated.
                    w = min(max((window[y, x] - _F(_SKIN_BLOCK)) * _F(1 / (1 - _SKIN_BLOCK)), _F(0.0)), _F(1.0)) * keep
                    # sRGB out = 1.055 p - 0.055 + w (y_new - y_old) / 255: in units of p,
                    # u = p + w (y_new - y_old) / (255 * 1.055).
                    d = d * w * _F(1 / (255 * 1.055))
                    delta[3 * x] = d
                    delta[3 * x + 1] = d
                    delta[3 * x + 2] = d
                    # Only where the weight is positive: elsewhere the sRGB round trip would
                    # move the last bit of the pyramid's result.
                    blend[x] = w > _F(0.0)
            if ceiling_above_one:  # the 8-bit encoder model ends at 1
                for x in range(n):
                    if pixels[start + 3 * x] > _F(1.0) or pixels[start + 3 * x + 1] > _F(1.0) or \
                            pixels[start + 3 * x + 2] > _F(1.0):
                        blend[x] = False
            row_power = power[ps, in_block]
            for k in range(3 * n):  # contiguous: vectorised
                linear[k] = _linear_from_power(row_power[k] + delta[k])
            for x in range(n):
                if blend[x]:
                    for c in range(3):
                        pixels[start + 3 * x + c] = linear[3 * x + c]


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
    # The kernels read and write C-contiguous float32 frames (a caller's other layout: a copy,
    # written back at the end).
    frame = np.ascontiguousarray(image, dtype=np.float32)
    result = out if out.flags.c_contiguous and out.dtype == np.float32 else np.ascontiguousarray(out, np.float32)
    applied = _jpeg_skin_luma_on_grid(frame, result, weight, luma_noise, (0, 0), **options)
    if applied is None:  # no grid at the top-left pixel: where do block boundaries show?
        dy, dx = _grid_offset(image, skin_weight)
        if (dy, dx) != (0, 0):
            applied = _jpeg_skin_luma_on_grid(frame, result, weight.cropped(dy, dx), luma_noise, (dy, dx), **options)
    if applied and result is not out:
        out[...] = result
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


def _jpeg_skin_luma_on_grid(frame: np.ndarray, frame_out: np.ndarray, skin_weight: "_SkinWeight",
                            luma_noise: tuple[float, float], origin: tuple, *, prior_radius: int, noise_scale: float,
                            ceiling: float) -> "bool | None":
    """:func:`jpeg_skin_luma` for a JPEG grid anchored at pixel ``origin`` (row, column) of the
    C-contiguous float32 frames ``frame`` (the input) and ``frame_out`` (modified in place);
    ``skin_weight`` seen from ``origin``. None when no quantisation shows on that grid (checked
    before anything costly)."""
    oy, ox = origin
    image, out = frame[oy:, ox:], frame_out[oy:, ox:]  # the grid's views (the kernels take the frames)
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
    # slice of the frequency-major coefficient arrays (each one's flat index 8 u + v in `order`).
    flat_steps = q88.ravel()
    ac = np.arange(1, 64)
    order = np.concatenate([ac[flat_steps[1:] < _MIN_STEP], ac[flat_steps[1:] >= _MIN_STEP], [0]])
    n_fine = int((flat_steps[1:] < _MIN_STEP).sum())
    steps_ordered = np.ascontiguousarray(flat_steps[order])

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
        # Also the coefficients: `estimate` reads runs of columns that may bridge blocks no prior
        # needs (their results are discarded), and must not read uninitialised memory.
        coefs_all[:, t0:t1] = 0.0
        runs = _row_runs(needed, t0, t1, 0, bw)
        if runs:
            _luma_coefficients(frame, oy + 8 * b0, ox + 8 * c0, np.array(runs, np.int64), order, steps_ordered, wreg,
                               coefs_all, k2w_all)

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
    lo, table = _variance_table()

    # Each strip estimates its own block rows and the one beside it on each side (the
    # horizontal deblocking of its edge rows reads their new luma), then writes its own rows of
    # ``out``. Those halo rows belong to a neighbouring strip, which may be writing them
    # meanwhile: the estimate reads them from copies of the pyramid's result taken here first.
    starts = range(b0, b1, _STRIP_BLOCKS)
    edge = lambda t: frame_out[oy + 8 * t:oy + 8 * t + 8, ox + 8 * c0:ox + 8 * c1].copy()  # (a copy even where C-contiguous)
    no_rows = np.empty((0, 0, 3), np.float32)
    halo = {t0: (edge(t0 - 1) if t0 > b0 else no_rows, edge(t0 + _STRIP_BLOCKS) if t0 + _STRIP_BLOCKS < b1 else no_rows)
            for t0 in starts}

    def estimate_and_write(t0: int) -> None:
        """Strip of block rows [t0, t0 + _STRIP_BLOCKS), on the runs of columns holding
        estimated blocks in its rows or its halo's: writes its own rows of ``out`` only."""
        t1 = min(b1, t0 + _STRIP_BLOCKS)
        above, below = halo[t0]
        for e0, e1 in column_runs(processed[max(b0, t0 - 1):min(b1, t1 + 1)], _RUN_GAP):
            window = np.ascontiguousarray(skin_weight.window(8 * t0, 8 * t1, 8 * e0, 8 * e1), np.float32)
            _estimate_write_run(frame_out, above, below, oy, ox, t0, t1, e0, e1, b0, b1, c0, coefs_all, sum_k2, sum_w,
                                noise_eff, processed, limit, steps_ordered, order, n_fine, table, lo, window,
                                ceiling > 1.0)

    run_strips(estimate_and_write, starts, bh, 64 * bw)
    return True
