"""Edge-aware matte refinement: upsample and feather soft mattes against the photo.

A segmentation model predicts soft mattes at a low resolution (e.g. 384×512).
Bilinear upsampling of such a matte gives a blurry band a few photo pixels wide
(worse, ~``H/h`` pixels) that ignores where the real edge is; hair turns into a
smudge and a blur effect then paints halos. The guided filter fits, in every
small window, the matte as a *linear function of the photo's colour*
(``q = a·I + b``); applying those linear coefficients to the full-resolution
photo transfers the photo's own edge detail (hair strands, glasses rims) into
the matte.

The fast guided filter computes the coefficients on a low-resolution grid and
only upsamples the (smooth) coefficients, so the full-resolution work is one
bilinear upsampling and one multiply-add per pixel, done in row strips to keep
memory bounded, the strips split into one band of rows per OpenCV thread. Per
strip and matte one compiled kernel (``effects._jit``, :func:`_apply_coefficients`)
encodes the guide, interpolates the four coefficients from the grid rows the
strip uses and applies them: one pass per pixel, where a chain of numpy/OpenCV
calls made about ten (and wrote the upsampled coefficients out first).

References
----------
K. He, J. Sun, X. Tang, "Guided Image Filtering", IEEE TPAMI 35(6), 2013
    (colour guide, eq. 14-16; box filters for O(N) cost).
K. He, J. Sun, "Fast Guided Filter", arXiv:1505.00996, 2015
    (coefficients at reduced resolution, upsampled and applied at full res).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np

from ._bands import run_in_row_bands
from ._jit import clamp01, kernel, lerp_at
from ._opencv import clip01
from ._validate import check_field_types, check_image
from ._validate import resize as _resize

__all__ = ["RefineMatteParams", "refine_matte", "refine_matte_planes"]


@dataclass(frozen=True)
class RefineMatteParams:
    """Options of :func:`refine_matte`.

    Attributes
    ----------
    radius : int
        Guided-filter window radius, in pixels of the *working* grid (the
        matte's own resolution, capped at ``max_work_pixels``). The window is
        ``2·radius+1`` square. Larger values follow the photo over a wider band
        (good for coarse mattes), smaller values keep thin structures local.
    eps : float
        Regularisation of the linear fit (He et al. 2013, eq. 3), in units of
        squared guide values; the guide is square-root encoded in [0, 1] (see
        Notes of :func:`refine_matte`). Edges whose colour contrast variance is
        well above ``eps`` are followed, flatter regions are smoothed. >= 1e-8.
    max_work_pixels : int
        Upper bound on the pixel count of the grid where coefficients are
        computed. A matte larger than this is area-downsampled first; this is
        what keeps refinement of an already full-resolution 12 MP matte fast.
    strip_rows : int
        Full-resolution output rows produced per pass. Bounds the temporary
        memory to the coefficient grid's rows those use, resized along x.
    """

    radius: int = 4
    eps: float = 1e-3
    max_work_pixels: int = 1_000_000
    strip_rows: int = 128

    def __post_init__(self):
        check_field_types(self)
        # (Upper limits: past them OpenCV fails on the kernel size, or memory runs out.)
        if not 1 <= self.radius <= 1024:
            raise ValueError(f"RefineMatteParams.radius: expected an integer in [1, 1024], got {self.radius!r}.")
        # The 3×3 inverse divides by a determinant of at least eps³, in float32: below ~1e-8 it
        # underflows on a flat guide (eps=1e-30 gave an all-zero matte).
        if not (np.isfinite(self.eps) and self.eps >= 1e-8):
            raise ValueError(f"RefineMatteParams.eps: expected a finite float >= 1e-8, got {self.eps!r}.")
        if self.max_work_pixels < 16:
            raise ValueError(
                f"RefineMatteParams.max_work_pixels: expected an integer >= 16, got {self.max_work_pixels!r}."
            )
        if not 1 <= self.strip_rows <= 65536:
            raise ValueError(f"RefineMatteParams.strip_rows: expected an integer in [1, 65536], got {self.strip_rows!r}.")


def _check_guide(guide) -> np.ndarray:
    return check_image(guide, "guide")


def _check_matte(matte, guide_hw) -> np.ndarray:
    if not isinstance(matte, np.ndarray):
        raise TypeError(f"matte: expected a numpy array (h×w or h×w×K float32 in [0, 1]), got {type(matte).__name__}.")
    if matte.ndim not in (2, 3) or matte.shape[0] < 1 or matte.shape[1] < 1 or (matte.ndim == 3 and matte.shape[2] < 1):
        raise ValueError(f"matte: expected shape h×w or h×w×K, got {matte.shape}.")
    if matte.dtype == bool:  # a hard mask, taken as 0/1 as every other effect's check_mask takes it
        matte = matte.astype(np.float32)
    if not np.issubdtype(matte.dtype, np.floating):
        raise TypeError(
            f"matte: expected a float array in [0, 1] (or bool), got dtype {matte.dtype}. "
            "Convert 0/255 masks with mask.astype(np.float32) / 255."
        )
    H, W = guide_hw
    if matte.shape[0] > H or matte.shape[1] > W:
        raise ValueError(
            f"matte: expected a resolution at most the guide's ({H}×{W}), got {matte.shape[0]}×{matte.shape[1]}. "
            "Downsample the matte (or pass the full-resolution photo as guide)."
        )
    if not np.isfinite(matte).all():
        raise ValueError("matte: contains NaN or infinite values; expected finite values in [0, 1].")
    lo, hi = float(matte.min()), float(matte.max())
    if lo < -1e-5 or hi > 1 + 1e-5:
        raise ValueError(
            f"matte: expected values in [0, 1], got range [{lo:.4g}, {hi:.4g}]. "
            "Apply a sigmoid to logits, or divide 0/255 masks by 255."
        )
    return matte


def _encode_guide(rgb: np.ndarray) -> np.ndarray:
    """Square-root encode linear RGB so the fit sees roughly perceptual contrast.

    Why: in linear light dark hair against a dark background differs by ~0.01,
    far below any useful ``eps``; a gamma-2 encoding (close to sRGB's curve and
    cheap: one sqrt) spreads the shadows the way the eye sees them.
    """
    return np.sqrt(np.clip(rgb, 0.0, 1.0, dtype=np.float32))


def _box(x: np.ndarray, ksize: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    return cv2.boxFilter(x, -1, ksize, dst=dst, normalize=True, borderType=cv2.BORDER_REFLECT)


def _box_planes(planes, ksize: tuple[int, int], out: np.ndarray) -> np.ndarray:
    """Box means of N h×w float32 planes into ``out`` (N×h×w), four planes per filter call.

    Why: ``cv2.boxFilter`` costs about 0.4× as much per plane on a 4-channel
    image as on a single plane (3- and 2-channel images are no faster than 4);
    merging into and splitting out of a reused 4-channel buffer is cheap next to it.
    """
    n = len(planes)
    h, w = out.shape[1:]
    four = np.empty((h, w, 4), np.float32)
    filtered = np.empty((h, w, 4), np.float32)
    for i in range(0, n, 4):
        group = list(planes[i : i + 4])
        if len(group) == 1:
            out[i] = _box(group[0], ksize)  # not in place: cv2 may filter row stripes in parallel
            continue
        dst = [out[j] for j in range(i, i + len(group))]
        if len(group) < 4:  # padded with copies; their results are dropped
            group += [group[-1]] * (4 - len(group))
            dst += [np.empty((h, w), np.float32) for _ in range(4 - len(dst))]
        cv2.merge(group, four)
        _box(four, ksize, dst=filtered)
        cv2.split(filtered, dst)  # into the views of ``out``
    return out


def _coefficient_planes(I: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Mean linear coefficients of the colour guided filter (He et al. 2013, eq. 14-16), as planes.

    Parameters
    ----------
    I : np.ndarray
        h×w×3 float32, encoded guide.
    p : np.ndarray
        h×w×K float32, mattes to filter.

    Returns
    -------
    np.ndarray
        4K×h×w float32 (each ``[i]`` a contiguous plane): box-averaged ``a``
        channel-major (``[c*K + k]`` is the coefficient of guide channel c for
        matte k), then ``b`` (``[3K + k]``).

    Notes
    -----
    Everything is float32, on whole planes written into preallocated arrays
    (fresh temporaries cost more than the arithmetic at this size). The 3×3
    inverse used to be evaluated in float64 "for stability", but its inputs
    (the box-filtered moments) are float32 already, and with ``eps`` on the
    diagonal the matrix is well conditioned: its determinant is at least
    eps³ (1e-9 by default, far above float32's smallest normal number) and the
    cofactor differences lose only ~1e-5 relatively even for a grey guide
    (r = g = b: eigenvalues 3v + eps, eps, eps). Measured: against the filter
    computed wholly in float64, the float32 and the float64 inverse err alike
    (≤ 1e-5, the float32 moments' error); on a 12 MP photo's 1 MP refinement
    they differ by ≤ 6e-5 in the mattes.
    """
    h, w, K = p.shape
    ksize = (2 * radius + 1, 2 * radius + 1)
    f32 = np.float32
    n_stats = 9 + 4 * K
    # stats: guide r, g, b; rr, rg, rb, gg, gb, bb; K mattes; 3K cross products (channel major)
    stats = np.empty((n_stats, h, w), f32)
    cv2.split(I, [stats[0], stats[1], stats[2]])
    r, g, b = stats[0], stats[1], stats[2]
    for j, (x, y) in enumerate(((r, r), (r, g), (r, b), (g, g), (g, b), (b, b))):
        cv2.multiply(x, y, dst=stats[3 + j])
    if K > 1:
        cv2.split(p, [stats[9 + k] for k in range(K)])
    else:
        stats[9] = p[:, :, 0]
    for c in range(3):
        for k in range(K):
            cv2.multiply(stats[c], stats[9 + k], dst=stats[9 + K + c * K + k])
    m = _box_planes(stats, ksize, stats)  # means in place: each group is read before it is written
    # Covariance of the guide plus eps·Identity (eq. 14), its closed-form inverse via cofactors
    # and a = Σ⁻¹·cov(I, p), b = mean(p) − a·mean(I) (eq. 15-16), per pixel in one kernel.
    coef = np.empty((4 * K, h, w), f32)  # a (3K planes, channel major), then b (K planes)
    inverse = np.empty((6, h, w), f32)
    _solve_coefficients(m.reshape(n_stats, -1), K, f32(eps), inverse.reshape(6, -1), coef.reshape(4 * K, -1))
    # Average the coefficients of all windows covering a pixel (eq. 8).
    return _box_planes(coef, ksize, coef)


@kernel
def _solve_coefficients(means, K, eps, inverse, coef):
    """The guided filter's per-window coefficients from the box-filtered moments (eq. 14-16).

    Fuses what were some 20 + 13K whole-plane numpy passes (centred moments, the six cofactors
    of the symmetric 3×3 covariance, its determinant and inverse, ``a = Σ⁻¹·cov(I, p)`` and
    ``b = mean(p) − a·mean(I)``) into two passes: float32, the same operations in the same
    order (see :func:`_coefficient_planes`, Notes, on float32 here).

    Parameters
    ----------
    means : np.ndarray
        (9 + 4K)×N float32 box means: guide r, g, b; rr, rg, rb, gg, gb, bb; the K mattes;
        the 3K cross products guide channel × matte (channel major).
    K : int
        Number of mattes.
    eps : np.float32
        Regularisation added to the covariance's diagonal.
    inverse : np.ndarray
        6×N float32 scratch: the inverse's distinct entries (rr, rg, rb, gg, gb, bb).
    coef : np.ndarray
        4K×N float32 output: ``a`` (3K, channel major), then ``b`` (K).
    """
    mr, mg, mb = means[0], means[1], means[2]
    rr, rg, rb, gg, gb, bb = means[3], means[4], means[5], means[6], means[7], means[8]
    i_rr, i_rg, i_rb, i_gg, i_gb, i_bb = inverse[0], inverse[1], inverse[2], inverse[3], inverse[4], inverse[5]
    one = np.float32(1.0)
    for j in range(mr.size):
        r, g, b = mr[j], mg[j], mb[j]
        vrr, vrg, vrb = (rr[j] - r * r) + eps, rg[j] - r * g, rb[j] - r * b
        vgg, vgb, vbb = (gg[j] - g * g) + eps, gb[j] - g * b, (bb[j] - b * b) + eps
        c_rr, c_rg, c_rb = vgg * vbb - vgb * vgb, vgb * vrb - vrg * vbb, vrg * vgb - vgg * vrb
        c_gg, c_gb, c_bb = vrr * vbb - vrb * vrb, vrb * vrg - vrr * vgb, vrr * vgg - vrg * vrg
        rdet = one / ((vrr * c_rr + vrg * c_rg) + vrb * c_rb)
        i_rr[j], i_rg[j], i_rb[j] = c_rr * rdet, c_rg * rdet, c_rb * rdet
        i_gg[j], i_gb[j], i_bb[j] = c_gg * rdet, c_gb * rdet, c_bb * rdet
    for k in range(K):
        mean_p, pr, pg, pb = means[9 + k], means[9 + K + k], means[9 + 2 * K + k], means[9 + 3 * K + k]
        a_r, a_g, a_b, b_k = coef[k], coef[K + k], coef[2 * K + k], coef[3 * K + k]
        for j in range(mr.size):
            p = mean_p[j]
            # cov(I_c, p_k) = mean(I_c·p_k) − mean(I_c)·mean(p_k)
            cr, cg, cb = pr[j] - mr[j] * p, pg[j] - mg[j] * p, pb[j] - mb[j] * p
            ar = (i_rr[j] * cr + i_rg[j] * cg) + i_rb[j] * cb
            ag = (i_rg[j] * cr + i_gg[j] * cg) + i_gb[j] * cb
            ab = (i_rb[j] * cr + i_gb[j] * cg) + i_bb[j] * cb
            a_r[j], a_g[j], a_b[j] = ar, ag, ab
            b_k[j] = ((p - ar * mr[j]) - ag * mg[j]) - ab * mb[j]


def _fit(g32: np.ndarray, m: np.ndarray, p: RefineMatteParams) -> tuple[np.ndarray, tuple[int, int]]:
    """Guided-filter coefficients on the working grid (the matte's resolution, capped).

    Returns the 4K×h×w coefficient planes (see :func:`_coefficient_planes`) and the grid's size.
    """
    H, W = g32.shape[:2]
    h, w = m.shape[:2]
    wh, ww = h, w
    if h * w > p.max_work_pixels:
        s = np.sqrt(p.max_work_pixels / (h * w))
        wh, ww = max(1, int(round(h * s))), max(1, int(round(w * s)))
        m = _resize(m, (wh, ww), cv2.INTER_AREA)
    g_low = g32 if (wh, ww) == (H, W) else _resize(g32, (wh, ww), cv2.INTER_AREA)
    return _coefficient_planes(_encode_guide(g_low), m, int(p.radius), float(p.eps)), (wh, ww)


class RowUpsampler:
    """Bilinear upsampling of reduced grids covering H×W, delivered strip by strip.

    Same mapping as ``cv2.resize`` (half-pixel centres, edge replicated): grid
    rows are resized along x (to the wanted columns) in blocks of 16, when a
    strip first needs them; each output row is then
    ``row_i + f·(row_{i+1} − row_i)``, one ``cv2.scaleAdd`` per row for all
    grids side by side (a single pass over the output, ~3× faster than
    gathering both rows for a whole strip and blending).

    Why: upsampling smooth grids to full frames (and the arithmetic on them) in
    whole 12 MP planes spends more time faulting in fresh memory and streaming
    it through the cache than computing; a strip of 32 rows stays in cache and
    its buffers are reused. Resizing a fine grid along x up front would be
    such a frame too. (Internal helper, shared with effects.portrait_blur and effects.tone_map.)

    Parameters
    ----------
    grids : np.ndarray or sequence of np.ndarray
        h×w or h×w×C float32 grids covering the H×W frame, all with the same h and w.
    H, W : int
        Full-resolution size the grids cover.
    cols : slice
        Columns of the frame wanted (``start`` and ``stop`` set).
    rows : int
        Most rows asked for in one call.
    """

    BLOCK = 16

    def __init__(self, grids, H: int, W: int, cols: slice, rows: int):
        self.single = isinstance(grids, np.ndarray)
        grids = [grids] if self.single else list(grids)
        self.grids = [np.ascontiguousarray(g, dtype=np.float32) for g in grids]
        h = self.grids[0].shape[0]
        assert all(g.shape[:2] == self.grids[0].shape[:2] for g in self.grids), "grids upsampled together share their size"
        w = cols.stop - cols.start
        # cv2 keeps a channel axis only for C > 1
        self.shapes = [(w,) + ((g.shape[2],) if g.ndim == 3 and g.shape[2] > 1 else ()) for g in self.grids]
        self.splits = np.cumsum([0] + [int(np.prod(s)) for s in self.shapes]).tolist()
        self.h, self.W, self.cols = h, W, cols
        sy = (np.arange(H, dtype=np.float64) + 0.5) * (h / H) - 0.5
        fl = np.floor(sy)
        self.i0 = np.clip(fl, 0, h - 1).astype(int).tolist()
        self.f = np.where((fl < 0) | (fl >= h - 1), 0.0, sy - fl).tolist()
        self.blocks = {}
        self.buf = np.empty((rows, self.splits[-1]), np.float32)

    def _block(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Grid rows [16k, 16k+16) resized along x, and their differences to the next row."""
        B, h = self.BLOCK, self.h
        r0, r1 = k * B, min(h, k * B + B + 1)  # one row more, for the last difference
        wide = np.empty((r1 - r0, self.splits[-1]), np.float32)
        for g, a, b in zip(self.grids, self.splits, self.splits[1:]):
            # same row count: the vertical mapping of cv2.resize is the identity
            wide[:, a:b] = cv2.resize(g[r0:r1], (self.W, r1 - r0), interpolation=cv2.INTER_LINEAR)[:, self.cols].reshape(r1 - r0, -1)
        diff = np.zeros_like(wide)  # 0 after the last grid row: the edge is replicated
        cv2.subtract(wide[1:], wide[:-1], dst=diff[:-1])
        return wide, diff

    def __call__(self, y0: int, y1: int, out: np.ndarray | None = None):
        """Rows y0..y1 of the upsampled grid(s): shape (y1−y0, w[, C]) each.

        A single array when one grid was given (written into ``out``,
        C-contiguous and of that shape, when given), else a tuple of views, one
        per grid, into an internal buffer that is valid until the next call.
        """
        n = y1 - y0
        dst = self.buf[:n] if out is None else out.reshape(n, -1)  # a view: out is contiguous
        B, blocks, i0, f = self.BLOCK, self.blocks, self.i0, self.f
        for k in [k for k in blocks if k < i0[y0] // B]:  # rows only ever move down: free what is behind
            del blocks[k]
        last = -1
        for r, row in enumerate(dst):
            i = i0[y0 + r]
            if i != last:  # consecutive output rows mostly share their grid row (coarse grids)
                k = i // B
                blk = blocks.get(k)
                if blk is None:
                    blk = blocks[k] = self._block(k)
                wide_i, diff_i, last = blk[0][i - k * B], blk[1][i - k * B], i
            cv2.scaleAdd(diff_i, f[y0 + r], wide_i, dst=row)
        views = tuple(dst[:, a:b].reshape((n,) + s) for a, b, s in zip(self.splits, self.splits[1:], self.shapes))
        return views[0] if self.single else views

    def lerp_rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a kernel needs to upsample rows y0..y1 itself, pixel by pixel (see :func:`lerp_at`).

        Instead of writing the upsampled strip (one pass over it per call, the grids side by
        side: 18 values a pixel for the portrait blur's alpha), the grid rows the strip
        interpolates between are resized along x and handed over, and a fused kernel forms
        each value where it needs it: ``rows[i, j] + frac·(rows[i + 1, j] − rows[i, j])``, the
        same float32 operations as :meth:`__call__` (``cv2.subtract``, then ``cv2.scaleAdd``).

        Returns
        -------
        rows : np.ndarray
            (m+1)×L float32 (L all the grids' values of a row side by side, grid g at
            ``splits[g]``, channels interleaved): the grid rows the strip uses, in order,
            resized along x, then the next one (the last grid row repeated past the grid's
            end: the edge is replicated). A view of an internal buffer, valid until the next call.
        idx : np.ndarray
            (y1−y0,) int64: the row of ``rows`` each output row interpolates from (and the next).
        frac : np.ndarray
            (y1−y0,) float32 in [0, 1): its weight of the next grid row.
        """
        n, h = y1 - y0, self.h
        if not hasattr(self, "lerp_buf"):
            rows = self.buf.shape[0]
            # grid rows a strip of `rows` output rows can use, and the next one
            most = min(h, int(np.ceil(rows * h / len(self.i0))) + 2) + 1
            self.lerp_buf = np.empty((most, self.splits[-1]), np.float32)
            self.lerp_idx = np.empty(rows, np.int64)
            self.lerp_frac = np.empty(rows, np.float32)
        g0, g1 = self.i0[y0], self.i0[y1 - 1] + 1  # grid rows used: g0 .. g1-1, then row g1
        src = self.lerp_buf[: g1 - g0 + 1]
        r1 = min(h, g1 + 1)
        for g, a, b in zip(self.grids, self.splits, self.splits[1:]):
            # same row count: the vertical mapping of cv2.resize is the identity
            wide = cv2.resize(g[g0:r1], (self.W, r1 - g0), interpolation=cv2.INTER_LINEAR)[:, self.cols]
            src[: r1 - g0, a:b] = wide.reshape(r1 - g0, -1)
        if r1 - g0 < len(src):  # past the last grid row: repeated, so its difference is 0
            src[-1] = src[-2]
        idx = self.lerp_idx[:n]
        idx[:] = self.i0[y0:y1]
        idx -= g0
        frac = self.lerp_frac[:n]
        frac[:] = self.f[y0:y1]
        return src, idx, frac


class GuidedStrips:
    """:func:`refine_matte` evaluated strip by strip, for callers that consume it in strips.

    The coefficients are fitted exactly as in :func:`refine_matte`; calling the
    object with a row range and a column slice returns the refined mattes
    there, their maximum over K (the union of the mattes), without ever
    forming the full-resolution result. Inputs are validated by the caller
    (internal helper).

    Parameters
    ----------
    guide : np.ndarray
        H×W×3 float32 linear RGB (the photo).
    matte : np.ndarray
        h×w×K float32 mattes in [0, 1] (not clipped here), h <= H, w <= W.
    params : RefineMatteParams
        Filter options.
    cols : slice
        Columns of the frame that will be asked for.
    rows : int
        Most rows asked for in one call.
    """

    def __init__(self, guide: np.ndarray, matte: np.ndarray, params: RefineMatteParams, cols: slice, rows: int):
        H, W = guide.shape[:2]
        self.K = matte.shape[2]
        self.g32 = guide.astype(np.float32, copy=False)
        self.cols = cols
        # matte is in [0, 1] (validated by the caller): no full-resolution clipped copy
        coef, (wh, ww) = _fit(self.g32, matte.astype(np.float32, copy=False), params)
        # Planar coefficient maps (a_r, a_g, a_b for every matte, then b), upsampled together.
        self.planes = RowUpsampler(list(coef), H, W, cols, rows)
        self.rows = rows
        self._buffers()

    def _buffers(self) -> None:
        w = self.cols.stop - self.cols.start
        self.q = np.empty((self.rows, w), np.float32)
        self.rgb = np.empty((self.rows, w, 3), np.float32)

    def for_band(self) -> "GuidedStrips":
        """The same fitted filter with its own upsampler and buffers, for one thread's band of rows."""
        band = copy.copy(self)
        H, W = self.g32.shape[:2]
        band.planes = RowUpsampler(self.planes.grids, H, W, self.cols, self.rows)
        band._buffers()
        return band

    def __call__(self, y0: int, y1: int, encoded: np.ndarray | None = None) -> np.ndarray:
        """(y1−y0)×w float32 union of the refined mattes in [0, 1]; valid until the next call.

        ``encoded``: the strip's guide already encoded as :func:`_encode_guide` does
        (``sqrt(clip(I, 0, 1))``, (y1−y0)×w×3), when the caller has it.
        """
        K, n = self.K, y1 - y0
        rgb = encoded
        if rgb is None:
            # guide encoding of _encode_guide (clip to [0, 1], sqrt) into a reused buffer
            rgb = cv2.max(self.g32[y0:y1, self.cols], 0.0, dst=self.rgb[:n])
            v = rgb.reshape(n, -1)  # 2-D view: a cv2 scalar on 3 channels is (v, 0, 0, 0)
            cv2.min(v, 1.0, dst=v)
            cv2.sqrt(v, dst=v)
        Ir, Ig, Ib = cv2.split(rgb)
        c = self.planes(y0, y1)
        out = self.q[:n]
        for k in range(K):
            # q = a_r·I_r + a_g·I_g + a_b·I_b + b (He et al. 2013, eq. 8), clipped
            q = cv2.multiply(c[k], Ir) if k else cv2.multiply(c[k], Ir, dst=out)
            cv2.accumulateProduct(c[K + k], Ig, q)
            cv2.accumulateProduct(c[2 * K + k], Ib, q)
            cv2.add(q, c[3 * K + k], dst=q)
            if k:
                cv2.max(out, q, dst=out)
        return clip01(out)


def sample_at(grid: np.ndarray, ys: np.ndarray, xs: np.ndarray, H: int, W: int) -> np.ndarray:
    """Bilinear samples of a reduced grid (h×w×C covering an H×W image) at pixels (ys, xs).

    Half-pixel-centre convention of ``cv2.resize``; cv2.remap over the pixel
    list folded into rows of 1024 (remap needs sides < 32767).

    Returns
    -------
    np.ndarray
        (N, C) float32.
    """
    h, w = grid.shape[:2]
    C = grid.shape[2] if grid.ndim == 3 else 1
    n = ys.size
    if n == 0:
        return np.zeros((0, C), np.float32)
    pad = (-n) % 1024
    mx = np.pad((xs + 0.5) * (w / W) - 0.5, (0, pad)).astype(np.float32).reshape(-1, 1024)
    my = np.pad((ys + 0.5) * (h / H) - 0.5, (0, pad)).astype(np.float32).reshape(-1, 1024)
    out = cv2.remap(grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, C)[:n]


def refine_matte(guide: np.ndarray, matte: np.ndarray, *, params: RefineMatteParams | None = None) -> np.ndarray:
    """Upsample and refine soft mattes against the full-resolution photo.

    Fast colour guided filter (He, Sun & Tang 2013; He & Sun 2015): linear
    coefficients relating matte to photo colour are fitted on a reduced grid,
    bilinearly upsampled, and applied to the full-resolution photo. Several
    mattes share the guide statistics and are refined in one pass.

    Parameters
    ----------
    guide : np.ndarray
        H×W×3, float32 (any float accepted), linear-light RGB, nominal range
        [0, 1] (values outside are clipped for the fit). The full-resolution
        photo.
    matte : np.ndarray
        h×w or h×w×K, float32 (any float accepted), soft mattes in [0, 1]
        (bool accepted too: a hard mask, False 0 and True 1), with ``h <= H``
        and ``w <= W``, covering the same field of view as ``guide`` (each
        axis is scaled independently).
    params : RefineMatteParams, optional
        Filter options; defaults to ``RefineMatteParams()``.

    Returns
    -------
    np.ndarray
        H×W (or H×W×K if ``matte`` was 3-D), float32, refined mattes in
        [0, 1]. A new array; inputs are not modified.

    Raises
    ------
    TypeError
        If an argument is not a float numpy array (``matte``: float or bool).
    ValueError
        On wrong shapes, a matte larger than the guide, NaN/inf values, or
        matte values outside [0, 1].

    Notes
    -----
    The guide is square-root encoded before fitting (an approximation of
    perceptual encoding) so that contrast in the shadows -- dark hair on a dark
    background -- counts as much as the eye sees it. Constant mattes (all 0, all
    1) are returned unchanged.
    """
    out = _refine(guide, matte, params, planar=False)
    return out[:, :, 0] if matte.ndim == 2 else out


def refine_matte_planes(guide: np.ndarray, matte: np.ndarray, *, params: RefineMatteParams | None = None) -> list:
    """:func:`refine_matte`, with the K refined mattes as separate H×W planes.

    For callers that use the mattes one by one (e.g. resize each, or keep them
    as separate arrays): each plane is written directly, with no H×W×K array
    interleaved and then split again. Arguments, validation and errors as
    :func:`refine_matte`.

    Returns
    -------
    list of np.ndarray
        K (1 for an h×w matte) C-contiguous H×W float32 mattes in [0, 1],
        each a new array.
    """
    return _refine(guide, matte, params, planar=True)


def _refine(guide, matte, params, *, planar: bool):
    """Validate, fit, then apply the coefficients in strips: K planes (``planar``) or H×W×K."""
    p = RefineMatteParams() if params is None else params
    if not isinstance(p, RefineMatteParams):
        raise TypeError(f"params: expected RefineMatteParams or None, got {type(p).__name__}.")
    guide = _check_guide(guide)
    matte = _check_matte(matte, guide.shape[:2])
    m = matte[:, :, None] if matte.ndim == 2 else matte
    m = np.clip(m, 0.0, 1.0).astype(np.float32)  # a copy: the caller's array is never touched
    H, W = guide.shape[:2]
    K = m.shape[2]
    g32 = np.ascontiguousarray(guide, dtype=np.float32)
    coef, grid_hw = _fit(g32, m, p)
    if planar or K == 1:
        planes = [np.empty((H, W), np.float32) for _ in range(K)]
        out = planes if planar else planes[0][:, :, None]
    else:
        planes, out = None, np.empty((H, W, K), np.float32)
    rows = int(p.strip_rows)

    def process_rows(ya: int, yb: int) -> None:
        # The coefficients are upsampled strip by strip (memory stays ~strip size), per pixel
        # inside the kernel, with this band's own upsampler.
        up = RowUpsampler(list(coef), H, W, slice(0, W), rows)
        for y0 in range(ya, yb, rows):
            y1 = min(yb, y0 + rows)
            src, idx, frac = up.lerp_rows(y0, y1)
            for k in range(K):
                # q = a_r·I_r + a_g·I_g + a_b·I_b + b (He et al. 2013, eq. 8) on the encoded guide, clipped
                q, channel = (planes[k][y0:y1, :, None], 0) if planes is not None else (out[y0:y1], k)
                _apply_coefficients(q, channel, g32[y0:y1], src, idx, frac, K, k)

    # Bands on OpenCV's threads. Each pixel costs about K planes' work, so the band-size
    # threshold of run_in_row_bands is counted in planes: a 1 MP frame with 3 mattes splits.
    run_in_row_bands(process_rows, H, W * K, align=rows)
    return out


@kernel
def _apply_coefficients(out, channel, guide, src, idx, frac, K, k):
    """Matte ``k`` of the guided filter at a strip of rows: ``q = a·sqrt(clip(I)) + b``, clipped.

    Fuses what were, per strip, the guide's encoding (clip, sqrt, split: three passes), the
    bilinear upsampling of the matte's four coefficient planes (:class:`RowUpsampler`, or
    whole-frame ``cv2.resize`` on frames up to ~1 MP) and ``multiply``, two
    ``accumulateProduct``, ``add`` and the clip (five passes): one pass, the same float32
    operations in the same order (which rows the bilinear weights come from aside: the
    whole-frame resize rounds differently, by ~1e-7).

    Parameters
    ----------
    out : np.ndarray
        n×W×C float32 output rows; channel ``channel`` is written, in [0, 1].
    channel : int
        Channel of ``out`` to write.
    guide : np.ndarray
        n×W×3 float32 linear RGB rows (the photo; encoded here as :func:`_encode_guide` does).
    src, idx, frac : np.ndarray
        :meth:`RowUpsampler.lerp_rows` of the 4K coefficient planes (W values each, in the
        order of :func:`_coefficient_planes`: ``a`` channel major, then ``b``).
    K, k : int
        Number of mattes, and the one to evaluate.
    """
    n, W = out.shape[0], out.shape[1]
    for r in range(n):
        f = frac[r]
        row, nxt = src[idx[r]], src[idx[r] + 1]
        # each plane's W values of this grid row and the next (sliced: loops from 0 vectorise)
        ar, ar1 = row[k * W:(k + 1) * W], nxt[k * W:(k + 1) * W]
        ag, ag1 = row[(K + k) * W:(K + k + 1) * W], nxt[(K + k) * W:(K + k + 1) * W]
        ab, ab1 = row[(2 * K + k) * W:(2 * K + k + 1) * W], nxt[(2 * K + k) * W:(2 * K + k + 1) * W]
        b, b1 = row[(3 * K + k) * W:(3 * K + k + 1) * W], nxt[(3 * K + k) * W:(3 * K + k + 1) * W]
        # rows as flat 1-D arrays: 2-D indexing in the loop kept it from vectorising (5× slower)
        g, o, C = guide[r].ravel(), out[r].ravel(), out.shape[2]
        for x in range(W):
            q = lerp_at(ar, ar1, f, x) * np.sqrt(clamp01(g[3 * x]))
            q = q + lerp_at(ag, ag1, f, x) * np.sqrt(clamp01(g[3 * x + 1]))
            q = q + lerp_at(ab, ab1, f, x) * np.sqrt(clamp01(g[3 * x + 2]))
            o[C * x + channel] = clamp01(q + lerp_at(b, b1, f, x))
