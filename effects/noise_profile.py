"""Noise-level estimation: a brightness-dependent noise model fitted from one image.

RAW-derived JPEGs carry shot noise (Poisson, variance proportional to the signal) plus
read noise (Gaussian, constant variance), and no noise profile. This module fits the
Poissonian-Gaussian model of Foi et al. (2008)

    sigma^2(I) = a * I + b

separately for the three opponent channels the denoiser works in (one luma, two chroma),
each as a function of the local luma ``I``, from the image alone:

1. the image is cut into 16×16 blocks; each block gets its mean luma and a noise estimate
   from the Immerkær (1996) operator, a 3×3 second-difference mask that cancels constant
   and linear-ramp signal, so only noise and texture remain;
2. blocks are binned by brightness and, as in the weak-texture patch selection of
   Liu, Tanaka & Okutomi (2013), only the flattest blocks of each bin are trusted: the bin's
   noise is a low percentile of its block estimates, corrected by the ratio between the median
   and that percentile measured once on pure white noise;
3. ``a`` and ``b`` come from non-negative weighted least squares over the bins. An EXIF ISO,
   when the caller knows it, adds a prior (typical sensor constants scaled by gain) as
   pseudo-observations, which is what is used when the image has no flat area at all;
4. steps 1–3 are repeated at half and quarter resolution (noise colour: JPEG removes
   fine-scale noise from flat blocks but keeps the coarse), bounded by the ISO prior when the
   ISO is known, else by 8x the full-resolution variance.

References
----------
A. Foi, M. Trimeche, V. Katkovnik, K. Egiazarian, "Practical Poissonian-Gaussian noise
modeling and fitting for single-image raw-data", IEEE TIP 17(10), 2008.
J. Immerkær, "Fast noise variance estimation", CVIU 64(2), 1996.
X. Liu, M. Tanaka, M. Okutomi, "Single-image noise level estimation for blind denoising",
IEEE TIP 22(12), 2013.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ._jit import kernel
from ._validate import check_field_types, check_image, check_mask

__all__ = ["NoiseProfile", "estimate_noise", "noise_profile_from_iso"]

CHANNELS = ("luma", "chroma_rb", "chroma_gm")

# Opponent transform used by estimation and denoising. Luma is the plain RGB mean (not
# Rec. 709 weights) so its noise is the average of the three channels' noise; the two
# chroma axes are red-blue and green-magenta differences. Rows are orthogonal, so
# independent RGB noise stays independent across the three opponent channels.
_RGB_TO_OPP = np.array(
    [[1 / 3, 1 / 3, 1 / 3],
     [1 / 2, 0.0, -1 / 2],
     [1 / 4, -1 / 2, 1 / 4]],
    dtype=np.float32,
)
_OPP_TO_RGB = np.linalg.inv(_RGB_TO_OPP.astype(np.float64)).astype(np.float32)

_BLOCK = 16          # block side for the local estimates (pixels)
_N_BINS = 16         # brightness bins, uniform in sqrt(luma) to resolve the shadows
_PERCENTILE = 10.0   # flattest 10 % of each bin's blocks are trusted
_MIN_BLOCKS = 6      # a bin needs this many blocks to count
_MAX_BLOCKS = 6000   # above this, rows of blocks are subsampled (see _block_stats)
# Without an ISO, the half/quarter-resolution models are bounded by this multiple of the
# full-resolution variance instead of by the ISO prior. JPEG q90 removes about 11x of the
# fine-scale noise variance from flat blocks at ISO 800 (0.30x in sigma, benchmarks/denoise.py),
# less at higher ISO; image structure read as coarse "noise" on clean portraits reaches 30-60x,
# so 8x keeps most of the compressed-noise case while limiting what a clean photo loses.
_BLIND_RATIO = 8.0
_SCALE_LEVELS = 2     # coarser scales measured for the noise colour (JPEG)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32) / 6.0

# ISO prior: a sensor with ~20 000 e- full well at ISO 100 and ~2.5 e- read noise (typical
# of current APS-C / 1-inch sensors). Shot-noise variance scales with gain (ISO), read-noise
# variance with gain squared. Values are for linear RGB in [0, 1] per channel.
_ISO_A_PER_100 = 1.0 / 20000.0
_ISO_READ_E = 2.5


@dataclass(frozen=True)
class NoiseProfile:
    """Fitted noise-level function ``sigma^2(I) = a * I + b`` per opponent channel.

    Attributes
    ----------
    a : tuple of 3 float
        Shot-noise slope (variance per unit luma) for (luma, chroma_rb, chroma_gm), >= 0.
    b : tuple of 3 float
        Read-noise variance at zero luma for the same channels, >= 0.
    n_bins : int
        Number of brightness bins that supported the fit (0 when no data was usable).
    source : str
        ``"estimated"`` (image only), ``"estimated+iso"`` (image with ISO prior),
        ``"iso"`` (prior only: no flat area found) or ``"none"`` (no information: zero noise).
    coarse_a, coarse_b : tuple of (float, float, float)
        Noise *colour*: entry ``l - 1`` is the ``(a, b)`` model measured at pyramid scale
        ``l`` (image halved ``l`` times), expressed as the white noise at full resolution that
        would show that much noise there; the two tuples have the same length. Empty (default) =
        white noise (every scale follows ``a, b``); coarser scales than given repeat the last
        entry. JPEG compression removes fine-scale noise but keeps the coarse, so on a
        compressed image these exceed ``a, b``.
    """

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    n_bins: int = 0
    source: str = "estimated"
    coarse_a: tuple[tuple[float, float, float], ...] = ()
    coarse_b: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self):
        check_field_types(self)  # three floats each (a short tuple failed deep inside), as tuples
        # Checked when built: a NaN or negative slope made denoise return NaN, b=inf a flat grey image.
        triples = [("a", self.a), ("b", self.b)] + [(f"{name}[{k}]", v) for name in ("coarse_a", "coarse_b")
                                                    for k, v in enumerate(getattr(self, name))]
        for name, values in triples:
            if not all(0.0 <= v < math.inf for v in values):
                raise ValueError(f"NoiseProfile.{name}: expected 3 finite numbers >= 0 (luma, chroma_rb, "
                                 f"chroma_gm), got {values!r}")
        if len(self.coarse_a) != len(self.coarse_b):  # model_at paired them up to the shorter one
            raise ValueError(f"NoiseProfile.coarse_a and coarse_b: expected one (a, b) model per scale, i.e. "
                             f"tuples of the same length, got {len(self.coarse_a)} and {len(self.coarse_b)} "
                             "entries. Give both for every scale, or neither (white noise).")
        if self.n_bins < 0:
            raise ValueError(f"NoiseProfile.n_bins: expected an integer >= 0 (brightness bins behind the fit, "
                             f"0 when none), got {self.n_bins}")

    def model_at(self, level: int, channel: int) -> tuple[float, float]:
        """``(a, b)`` of one opponent channel at pyramid scale ``level`` (0 = full resolution)."""
        n = len(self.coarse_a)  # (coarse_b has as many: checked when built)
        if level <= 0 or n == 0:
            return float(self.a[channel]), float(self.b[channel])
        k = min(level, n) - 1
        return float(self.coarse_a[k][channel]), float(self.coarse_b[k][channel])

    def sigma(self, brightness) -> np.ndarray:
        """Noise standard deviation at the given luma.

        Parameters
        ----------
        brightness : float or np.ndarray
            Luma (RGB mean) in linear light, any shape, nominal range [0, 1];
            negative values are treated as 0.

        Returns
        -------
        np.ndarray
            float32, shape ``brightness.shape + (3,)``: sigma for (luma, chroma_rb, chroma_gm)
            in the same linear units as the image.
        """
        y = np.maximum(np.asarray(brightness, dtype=np.float32), 0.0)[..., None]
        a = np.asarray(self.a, dtype=np.float32)
        b = np.asarray(self.b, dtype=np.float32)
        return np.sqrt(a * y + b).astype(np.float32)

    def scaled(self, factor: float) -> "NoiseProfile":
        """The same profile with every sigma multiplied by ``factor`` (variances by factor²).

        Parameters
        ----------
        factor : float
            The sigma multiplier, a finite number >= 0 (0 gives a zero-noise profile) whose
            square is finite in float64.

        Returns
        -------
        NoiseProfile
            A new profile; ``source`` and ``n_bins`` as this one's.

        Raises
        ------
        TypeError
            If ``factor`` is not a number (bools included).
        ValueError
            If it is negative, not finite, or so large that its square is not (1e160: Python's
            bare OverflowError, naming nothing, before).
        """
        if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, float, np.integer, np.floating)):
            raise TypeError(f"NoiseProfile.scaled: `factor` must be a number (the sigma multiplier, e.g. 1.5); "
                            f"got {type(factor).__name__}.")
        try:
            f = float(factor)
            f2 = f * f
        except OverflowError:  # an int past float's range (10**400)
            f = f2 = math.inf
        # A negative factor was squared into a positive one: refused rather than guessed at.
        if not (0.0 <= f < math.inf and f2 < math.inf):
            raise ValueError(f"NoiseProfile.scaled: `factor` must be a finite number >= 0 whose square is finite "
                             f"(sigma is multiplied by it, variance by its square); got {factor!r}. Pass "
                             "abs(factor), or 0 for no noise.")
        sc = lambda t: tuple(tuple(x * f2 for x in row) for row in t)
        return NoiseProfile(tuple(x * f2 for x in self.a), tuple(x * f2 for x in self.b),
                            self.n_bins, self.source, sc(self.coarse_a), sc(self.coarse_b))


# --------------------------------------------------------------------------- validation

def _check_image(image, name: str = "image") -> np.ndarray:
    """Validate an H×W×3 float image; return it as float32 (no copy if already float32)."""
    return check_image(image, name)


def _check_mask(mask, shape: tuple[int, int], name: str) -> np.ndarray | None:
    """Validate an optional H×W soft mask in [0, 1]; return float32 or None."""
    return check_mask(mask, name, shape, allow_none=True)


def _check_iso(iso) -> float | None:
    if iso is None:
        return None
    if isinstance(iso, bool) or not isinstance(iso, (int, float, np.integer, np.floating)):
        raise TypeError(f"`iso` must be a number (EXIF ISOSpeedRatings, e.g. 800) or None; got {type(iso).__name__}.")
    iso = float(iso)
    if not math.isfinite(iso) or not (1.0 <= iso <= 10_000_000.0):
        raise ValueError(f"`iso` must be a finite EXIF ISO value in [1, 1e7]; got {iso}.")
    return iso


# --------------------------------------------------------------------------- helpers

def rgb_to_opponent(image: np.ndarray, dst: "np.ndarray | None" = None) -> np.ndarray:
    """float32 H×W×3 linear RGB -> float32 H×W×3 (luma, chroma_rb, chroma_gm): a new array, or
    written into ``dst`` (float32 H×W×3 whose rows are contiguous pixels, e.g. a row slice of
    a frame) and returned. Each pixel's result depends on that pixel alone (not on where a
    frame is cut into row bands)."""
    return _transform(image, _RGB_TO_OPP, dst)


def opponent_to_rgb(opp: np.ndarray, dst: "np.ndarray | None" = None) -> np.ndarray:
    """Inverse of :func:`rgb_to_opponent` (``dst`` as there)."""
    return _transform(opp, _OPP_TO_RGB, dst)


def _transform(x: np.ndarray, matrix: np.ndarray, dst: "np.ndarray | None") -> np.ndarray:
    """``matrix @ pixel`` for every pixel of the H×W×3 ``x``, by :func:`_pixels_times`.

    Not ``cv2.transform``: its result for a pixel depended on where the pixel fell in the
    rows it was given (vector body or scalar tail differ in the last bit), so converting a
    frame in row bands, one per thread, changed the result with the thread count.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got shape {x.shape}")
    if dst is None:
        dst = np.empty(x.shape, np.float32)
    elif not (isinstance(dst, np.ndarray) and dst.dtype == np.float32 and dst.shape == x.shape
              and dst.strides[1:] == (12, 4)):
        raise ValueError(f"dst must be a float32 array of shape {x.shape[:2] + (3,)} with contiguous rows")
    if dst.flags.c_contiguous:
        _pixels_times(matrix, x.reshape(-1), dst.reshape(-1))
    else:  # rows with gaps between them (a column crop): row by row
        for y in range(x.shape[0]):
            _pixels_times(matrix, x[y].reshape(-1), dst[y].reshape(-1))
    return dst


@kernel
def _pixels_times(matrix, pixels, out):
    """``matrix @ pixel`` for every pixel of ``pixels`` into ``out``: the opponent transform.

    ``matrix`` float32 3×3; ``pixels``, ``out`` float32 (3P,), P pixels' channels interleaved.
    One pass in float32 as ``cv2.transform`` computed it (a row's three products summed left
    to right), but the same arithmetic for every pixel, so the result does not depend on how
    the pixels are split into calls. (Flat arrays: LLVM vectorises the interleaved loads and
    stores here, not with P×3 indexing.)
    """
    m00, m01, m02 = matrix[0, 0], matrix[0, 1], matrix[0, 2]
    m10, m11, m12 = matrix[1, 0], matrix[1, 1], matrix[1, 2]
    m20, m21, m22 = matrix[2, 0], matrix[2, 1], matrix[2, 2]
    for p in range(pixels.shape[0] // 3):
        k = 3 * p
        r, g, b = pixels[k], pixels[k + 1], pixels[k + 2]
        out[k] = m00 * r + m01 * g + m02 * b
        out[k + 1] = m10 * r + m11 * g + m12 * b
        out[k + 2] = m20 * r + m21 * g + m22 * b


def _block_stats(opp: np.ndarray):
    """Per-block mean luma, per-channel Immerkær sigma and a clipping flag.

    On large images only every ``step``-th row of blocks is used (at most about
    ``_MAX_BLOCKS`` blocks): a 12-MP image has ~47 000, far more than the 16 brightness
    bins need, and this pass is one of the few over every full-resolution pixel.

    Returns ``(mean_y, sig, clipped)``: float32 (N,), float32 (N, 3) and bool (N,) over the
    N blocks used, row-major; or None when the image holds no whole block. Computed by
    :func:`_block_sums` straight from ``opp`` (it was a stack of the block rows, a
    ``cv2.filter2D``, an abs, three area resizes and a comparison, each a pass).
    """
    h, w, _ = opp.shape
    hb, wb = (h - 2) // _BLOCK, (w - 2) // _BLOCK
    if hb < 1 or wb < 1:
        return None
    step = max(1, -(-hb * wb // _MAX_BLOCKS))
    block_rows = np.arange(0, hb, step, dtype=np.int64)
    n = block_rows.size * wb
    mean_y, sig, clipped = np.empty(n, np.float32), np.empty((n, 3), np.float32), np.empty(n, np.bool_)
    opp_rows = np.ascontiguousarray(opp, dtype=np.float32).reshape(h, w * 3)
    _block_sums(opp_rows, block_rows, wb, mean_y, sig, clipped)
    return mean_y, sig, clipped


# Immerkær mask entries (corner, side, centre), float32 as cv2.filter2D used them.
_K_CORNER, _K_SIDE, _K_CENTRE = _IMMERKAER[0, 0], _IMMERKAER[0, 1], _IMMERKAER[1, 1]
_BLOCK_AREA_SCALE = np.float32(1.0 / (_BLOCK * _BLOCK))  # cv2.resize INTER_AREA's 1 / area
_SIGMA_PER_MEAN_ABS = np.float32(math.sqrt(math.pi / 2))  # mean |r| * sqrt(pi/2) = sigma (Gaussian r)
_CLIPPED_HIGH, _CLIPPED_LOW = np.float32(0.995), np.float32(1e-4)  # luma at which a block counts as clipped


@kernel
def _block_sums(opp_rows, block_rows, n_cols, mean_y, sig, clipped):
    """Block statistics of :func:`_block_stats` for the blocks of the given block rows.

    For each 16×16 block (its pixels at rows ``16 k + 1 ..``, columns ``16 j + 1 ..`` of the
    image, so every 3×3 neighbourhood is real pixels): the mean luma, ``sqrt(pi/2)`` times
    the mean absolute Immerkær residual per channel, and whether any luma is >= 0.995 or
    <= 1e-4. The residual of a block row is computed into a scratch row by row (a loop LLVM
    vectorises); the block sums add the 256 values in ``cv2.resize``'s INTER_AREA order
    (rows, then columns, four at a time), so the mean luma is the one it gave, bit for bit.

    Parameters
    ----------
    opp_rows : np.ndarray
        float32 H×(3W): the opponent image's rows (luma, chroma_rb, chroma_gm interleaved).
    block_rows : np.ndarray
        int64 (R,): the block rows to use, each < (H - 2) // 16.
    n_cols : int
        Blocks per row, (W - 2) // 16.
    mean_y, sig, clipped : np.ndarray
        float32 (R n_cols,), float32 (R n_cols, 3), bool (R n_cols,): written, row-major.
    """
    size = _BLOCK
    span = n_cols * size * 3
    residual = np.empty((size, span), np.float32)  # |residual| of one block row
    for bi in range(block_rows.shape[0]):
        top = block_rows[bi] * size
        for yy in range(size):
            up, mid, down, r = opp_rows[top + yy], opp_rows[top + yy + 1], opp_rows[top + yy + 2], residual[yy]
            for f in range(span):
                q = f + 3  # the same channel of the pixel one column to the right (core starts at 1)
                v = (_K_CORNER * up[q - 3] + _K_SIDE * up[q] + _K_CORNER * up[q + 3]
                     + _K_SIDE * mid[q - 3] + _K_CENTRE * mid[q] + _K_SIDE * mid[q + 3]
                     + _K_CORNER * down[q - 3] + _K_SIDE * down[q] + _K_CORNER * down[q + 3])
                r[f] = abs(v)
        for bx in range(n_cols):
            s0 = s1 = s2 = sy = np.float32(0.0)
            bad = False
            for yy in range(size):
                r, luma = residual[yy], opp_rows[top + yy + 1]
                for x4 in range(0, size, 4):
                    f = (bx * size + x4) * 3
                    s0 += ((r[f] + r[f + 3]) + r[f + 6]) + r[f + 9]
                    s1 += ((r[f + 1] + r[f + 4]) + r[f + 7]) + r[f + 10]
                    s2 += ((r[f + 2] + r[f + 5]) + r[f + 8]) + r[f + 11]
                    y0, y1, y2, y3 = luma[f + 3], luma[f + 6], luma[f + 9], luma[f + 12]
                    sy += ((y0 + y1) + y2) + y3
                    for y in (y0, y1, y2, y3):
                        if y >= _CLIPPED_HIGH or y <= _CLIPPED_LOW:
                            bad = True
            b = bi * n_cols + bx
            mean_y[b] = sy * _BLOCK_AREA_SCALE
            sig[b, 0] = (s0 * _BLOCK_AREA_SCALE) * _SIGMA_PER_MEAN_ABS
            sig[b, 1] = (s1 * _BLOCK_AREA_SCALE) * _SIGMA_PER_MEAN_ABS
            sig[b, 2] = (s2 * _BLOCK_AREA_SCALE) * _SIGMA_PER_MEAN_ABS
            clipped[b] = bad


def _pyr_down(opp: np.ndarray, level: int) -> np.ndarray:
    for _ in range(level):
        opp = cv2.pyrDown(opp)
    return opp


# _measure_calibration(level) for the levels every estimate uses, written down: measuring
# them draws up to 13 M normal samples (0.5 s of each process's first estimate, which a
# batch worker's first photo paid). tests/effects/test_noise_profile.py measures them again.
_CALIBRATION = {0: (1.1183654069900513, 1.0028479099273682), 1: (1.096003770828247, 0.12862750887870789),
                2: (1.0931003093719482, 0.0471460223197937), 3: (1.0921251773834229, 0.021992681547999382)}


def _calibration(level: int) -> tuple[float, float]:
    """:func:`_measure_calibration` of ``level``: the table above, or measured."""
    known = _CALIBRATION.get(level)
    return known if known is not None else _measure_calibration(level)


@functools.lru_cache(maxsize=None)
def _measure_calibration(level: int) -> tuple[float, float]:
    """White-noise calibration of the block estimator at pyramid ``level``.

    Returns ``(corr, c)``: ``corr`` = median / P-th percentile of the block sigmas (makes the
    low-percentile estimate unbiased when the flattest blocks are pure noise) and ``c`` =
    median block sigma at this level for unit white noise at full resolution (how much of
    white noise the operator sees after ``level`` pyrDowns). Deterministic, measured once.
    """
    rng = np.random.default_rng(0)
    side = 32 * _BLOCK * 2 ** level + 8  # ~1000 blocks at this level
    noise = rng.standard_normal((side, side, 3)).astype(np.float32)
    _, sig, _ = _block_stats(_pyr_down(noise + 0.5, level))
    s = sig[:, 0]
    return float(np.median(s) / np.percentile(s, _PERCENTILE)), float(np.median(s))


def _bin_estimates(opp: np.ndarray, level: int):
    """Per brightness bin: median luma, per-channel noise sigma (n, 3), weight; or None.

    Sigmas are at this pyramid level's scale (not yet divided by the white-noise factor).
    """
    stats = _block_stats(opp)
    if stats is None:
        return None
    mean_y, sig, clipped = stats
    ok = ~clipped
    mean_y, sig = mean_y[ok], sig[ok]
    if not mean_y.size:
        return None
    corr = _calibration(level)[0]
    edges = np.linspace(0.0, 1.0, _N_BINS + 1) ** 2
    idx = np.clip(np.searchsorted(edges, mean_y, side="right") - 1, 0, _N_BINS - 1)
    xs, ss, ws = [], [], []
    for k in range(_N_BINS):
        sel = idx == k
        n = int(sel.sum())
        if n < _MIN_BLOCKS:
            continue
        s_bin = sig[sel]
        # Flattest blocks by luma sigma; chroma taken from those same blocks.
        order = np.argsort(s_bin[:, 0])
        keep = order[: max(2, int(round(n * _PERCENTILE / 100.0)))]
        # Luma: low percentile, de-biased. Chroma: median over the luma-flat blocks
        # (chroma noise is independent of the luma noise that chose them, so no bias).
        sig_c = np.empty(3)
        sig_c[0] = corr * np.percentile(s_bin[:, 0], _PERCENTILE)
        sig_c[1:] = np.median(s_bin[keep, 1:], axis=0)
        xs.append(float(np.median(mean_y[sel][keep])))
        ss.append(sig_c)
        ws.append(math.sqrt(n))
    if not xs:
        return None
    return np.asarray(xs), np.asarray(ss), np.asarray(ws)


def _fit(xs, vs, ws, prior):
    """Weighted NNLS fit of ``var = a x + b`` per channel; ``vs`` (n, 3) variances."""
    xs_a, vs_a, ws_a = np.asarray(xs, np.float64), np.asarray(vs, np.float64), np.asarray(ws, np.float64)
    if prior is not None:
        # Prior as pseudo-observations on a grid, worth about 3 well-populated bins in total.
        grid = np.linspace(0.02, 0.9, 5)
        w_prior = 3.0 * float(ws_a.max()) / grid.size
        prior_var = np.stack([np.asarray(prior.a) * g + np.asarray(prior.b) for g in grid])
        xs_a = np.concatenate([xs_a, grid])
        vs_a = np.concatenate([vs_a, prior_var])
        ws_a = np.concatenate([ws_a, np.full(grid.size, w_prior)])
    # Variances are weighted relative to their size so dark and bright bins count alike.
    a_out, b_out = [], []
    for c in range(3):
        scale = np.maximum(vs_a[:, c], 1e-12)
        w = ws_a / scale
        A = np.stack([xs_a, np.ones_like(xs_a)], axis=1) * w[:, None]
        coef = _nnls_two(A, vs_a[:, c] * w)
        a_out.append(float(coef[0]))
        b_out.append(float(coef[1]))
    return tuple(a_out), tuple(b_out)


def _nnls_two(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``argmin ||A x - y||`` over ``x >= 0`` for a two-column ``A`` (n×2), exactly.

    The minimum is the unconstrained least-squares solution when it is non-negative, else
    the better of the two one-variable fits (each clamped at 0) on a face of the orthant
    (the problem is convex, so the best feasible candidate is the optimum). Written out
    because scipy.optimize, for this one call, cost every process ~0.1-0.4 s to import.
    """
    x, *_ = np.linalg.lstsq(A, y, rcond=None)
    if (x >= 0).all():
        return x
    candidates = [np.zeros(2)]
    for j in range(2):
        col = A[:, j]
        norm2 = float(col @ col)
        if norm2 > 0:
            c = np.zeros(2)
            c[j] = max(0.0, float(col @ y) / norm2)
            candidates.append(c)
    return min(candidates, key=lambda c: float(np.sum((A @ c - y) ** 2)))


def _coarse_models(opp: np.ndarray, a0, b0, prior: NoiseProfile | None, levels: int, half=None, quarter=None):
    """The ``(a, b)`` model refitted after 1 .. ``levels`` pyrDowns (white-noise equivalent).

    JPEG's quantisation removes mostly the finest-scale noise (and 4:2:0 subsampling most
    fine chroma noise), so a model fitted at full resolution under-states the noise that
    remains at coarser scales. The same block statistic after ``l`` pyrDowns, divided by
    what unit white noise gives there, measures it — but on real photos it also reads
    coarse image structure (gradients, JPEG blocking, fine texture) as noise, by as much as
    30x in variance on a clean portrait, so it is only used with an upper bound that the
    image itself cannot provide: the sensor's white noise from the ISO prior (compression
    removes noise, it never adds sensor noise). Without ISO (``prior`` None) the cap is
    ``_BLIND_RATIO`` (8) times the full-resolution model: compression at usual qualities
    removes up to ~11x of the fine noise variance from flat blocks, while structure read as
    noise on clean portraits reaches 30-60x (a compromise: a clean JPEG portrait then loses
    some fine texture on skin, 0.94 -> 0.88 pore band kept on FASSEG faces). Each scale is
    floored at the full-resolution model (camera noise is never bluer than white) and
    capped, coefficient by coefficient. The walk stops when a scale has too few flat blocks (coarser scales then
    repeat the last one).
    """
    ca, cb = [], []
    prev_a, prev_b = np.asarray(a0), np.asarray(b0)
    if prior is not None:
        cap_a, cap_b = np.asarray(prior.a), np.asarray(prior.b)
    else:
        cap_a, cap_b = _BLIND_RATIO * np.asarray(a0), _BLIND_RATIO * np.asarray(b0)
    g = opp
    for lv in range(1, levels + 1):
        known = {1: half, 2: quarter}.get(lv)  # pyrDowns the caller already has
        g = known if known is not None else cv2.pyrDown(g)
        est = _bin_estimates(g, lv)
        if est is None or len(est[0]) < 2:
            break
        xs, ss, ws = est
        c = _calibration(lv)[1]
        a_l, b_l = (np.asarray(x) for x in _fit(xs, (ss / c) ** 2, ws, None))
        a_l = np.maximum(np.minimum(a_l, np.maximum(cap_a, prev_a)), prev_a)
        b_l = np.maximum(np.minimum(b_l, np.maximum(cap_b, prev_b)), prev_b)
        ca.append(tuple(float(x) for x in a_l))
        cb.append(tuple(float(x) for x in b_l))
        prev_a, prev_b = a_l, b_l
    return tuple(ca), tuple(cb)


def noise_profile_from_iso(iso: float) -> NoiseProfile:
    """Prior noise profile for an EXIF ISO value (typical sensor constants).

    Shot-noise variance grows with gain (∝ ISO) and read-noise variance with gain² for a
    sensor of ~20 000 e⁻ full well at ISO 100 and ~2.5 e⁻ read noise; opponent-channel
    variances follow from independent per-channel RGB noise through the opponent transform.

    Parameters
    ----------
    iso : float
        EXIF ISO speed, >= 1.

    Returns
    -------
    NoiseProfile
        ``source="iso"``.
    """
    iso = _check_iso(iso)
    if iso is None:  # (None fell through to an arithmetic TypeError)
        raise TypeError("iso: expected an EXIF ISO value (a number >= 1, e.g. 800), got None; without one, "
                        "estimate the noise from the image (estimate_noise)")
    gain = iso / 100.0
    a_rgb = _ISO_A_PER_100 * gain
    b_rgb = (_ISO_READ_E * _ISO_A_PER_100 * gain) ** 2
    # Var of a row-weighted sum of independent channels = (sum of squared weights) * var.
    w2 = (_RGB_TO_OPP.astype(np.float64) ** 2).sum(axis=1)
    return NoiseProfile(tuple(float(a_rgb * x) for x in w2), tuple(float(b_rgb * x) for x in w2), 0, "iso")


def estimate_noise(image: np.ndarray, *, iso: float | None = None) -> NoiseProfile:
    """Estimate the brightness-dependent noise of an image (Poissonian-Gaussian model).

    Fits ``sigma^2(I) = a * I + b`` per opponent channel (luma = RGB mean, and two chroma
    differences), ``I`` being the local luma, from the flattest 16×16 blocks of each brightness
    bin (Immerkær 1996 residuals, weak-texture selection after Liu et al. 2013, model and
    fitting after Foi et al. 2008). See the module docstring for the method.

    Parameters
    ----------
    image : np.ndarray
        float32 (any float accepted) H×W×3 linear-light RGB, nominal range [0, 1]. Not modified.
    iso : float, optional
        EXIF ISO speed when known. Adds a prior from typical sensor constants
        (:func:`noise_profile_from_iso`) as pseudo-observations; it decides the result when the
        image has no usable flat area. It also bounds the per-scale models
        (``coarse_a``/``coarse_b``, see Notes).

    Returns
    -------
    NoiseProfile
        Frozen dataclass; ``profile.sigma(brightness)`` evaluates sigma per channel. With no
        usable data and no ISO the profile is all zeros (``source="none"``), i.e. "no noise known".

    Raises
    ------
    TypeError, ValueError
        On a non-array, non-float, wrongly shaped or non-finite image, or a bad ``iso``.

    Notes
    -----
    JPEG compression removes most of the finest-scale noise in flat blocks but keeps the
    coarse-scale noise (at ISO 800 and quality 90 the full-resolution estimate reads 0.30x
    the true sigma), so ``a, b`` describe the noise left at the finest scale. The model is
    refitted after 1 and 2 pyrDowns (``coarse_a``/``coarse_b``), floored at the
    full-resolution model and capped at the ISO prior, or without ``iso`` at 8x the
    full-resolution variance: on real photos the coarse-scale statistic also reads image
    structure as noise (30-60x in variance on clean portraits), and only an outside bound
    keeps it in check. On white (raw-like) noise the coarse models equal the fine one.
    """
    img = _check_image(image)
    iso = _check_iso(iso)
    return _estimate_from_opponent(rgb_to_opponent(img), iso)


def _estimate_from_opponent(opp: np.ndarray, iso: float | None, half: np.ndarray | None = None,
                            quarter: np.ndarray | None = None) -> NoiseProfile:
    """:func:`estimate_noise` on an already converted, validated opponent image (the denoiser
    converts once and shares it, its ``cv2.pyrDown`` as ``half`` and that one's as ``quarter``)."""
    prior = noise_profile_from_iso(iso) if iso is not None else None
    est = _bin_estimates(opp, 0)
    xs, vs, ws = ([], [], []) if est is None else (list(est[0]), list(est[1] ** 2), list(est[2]))

    if not xs:
        if prior is not None:
            return prior
        return NoiseProfile((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0, "none")

    a_out, b_out = _fit(xs, vs, ws, prior)
    ca, cb = _coarse_models(opp, a_out, b_out, prior, _SCALE_LEVELS, half, quarter)
    return NoiseProfile(a_out, b_out, len(xs), "estimated+iso" if prior is not None else "estimated", ca, cb)
