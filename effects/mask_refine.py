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
memory bounded.

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

from ._validate import check_image
from ._validate import resize as _resize

__all__ = ["RefineMatteParams", "refine_matte"]


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
        well above ``eps`` are followed, flatter regions are smoothed.
    max_work_pixels : int
        Upper bound on the pixel count of the grid where coefficients are
        computed. A matte larger than this is area-downsampled first; this is
        what keeps refinement of an already full-resolution 12 MP matte fast.
    strip_rows : int
        Full-resolution output rows produced per pass. Bounds the temporary
        memory to a few ``strip_rows × W`` float32 planes per matte.
    """

    radius: int = 4
    eps: float = 1e-3
    max_work_pixels: int = 1_000_000
    strip_rows: int = 128

    def __post_init__(self):
        if not isinstance(self.radius, (int, np.integer)) or self.radius < 1:
            raise ValueError(f"RefineMatteParams.radius: expected an integer >= 1, got {self.radius!r}.")
        if not (np.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"RefineMatteParams.eps: expected a finite float > 0, got {self.eps!r}.")
        if not isinstance(self.max_work_pixels, (int, np.integer)) or self.max_work_pixels < 16:
            raise ValueError(
                f"RefineMatteParams.max_work_pixels: expected an integer >= 16, got {self.max_work_pixels!r}."
            )
        if not isinstance(self.strip_rows, (int, np.integer)) or self.strip_rows < 1:
            raise ValueError(f"RefineMatteParams.strip_rows: expected an integer >= 1, got {self.strip_rows!r}.")


def _check_guide(guide) -> np.ndarray:
    return check_image(guide, "guide")


def _check_matte(matte, guide_hw) -> np.ndarray:
    if not isinstance(matte, np.ndarray):
        raise TypeError(f"matte: expected a numpy array (h×w or h×w×K float32 in [0, 1]), got {type(matte).__name__}.")
    if matte.ndim not in (2, 3) or matte.shape[0] < 1 or matte.shape[1] < 1 or (matte.ndim == 3 and matte.shape[2] < 1):
        raise ValueError(f"matte: expected shape h×w or h×w×K, got {matte.shape}.")
    if not np.issubdtype(matte.dtype, np.floating):
        raise TypeError(
            f"matte: expected a float array in [0, 1], got dtype {matte.dtype}. "
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


def _guided_coefficients(I: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Mean linear coefficients of the colour guided filter (He et al. 2013, eq. 14-16).

    Parameters
    ----------
    I : np.ndarray
        h×w×3 float32, encoded guide.
    p : np.ndarray
        h×w×K float32, mattes to filter.

    Returns
    -------
    np.ndarray
        h×w×4K float32: box-averaged ``a`` laid out channel-major
        (``[..., c*K:(c+1)*K]`` is the coefficient of guide channel c for all K
        mattes), then ``b`` in ``[..., 3K:4K]``.
    """
    h, w, K = p.shape
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(x):
        out = cv2.boxFilter(x, -1, ksize, normalize=True, borderType=cv2.BORDER_REFLECT)
        return out.reshape(x.shape)

    r, g, b = I[..., 0], I[..., 1], I[..., 2]
    # One box-filter call over all statistics: 3 means, 6 second moments, K means, 3K cross moments.
    stats = np.concatenate(
        [I, np.stack([r * r, r * g, r * b, g * g, g * b, b * b], axis=2), p, I[..., :, None].repeat(K, 3).reshape(h, w, 3 * K) * np.tile(p, (1, 1, 3))],
        axis=2,
    ).astype(np.float32, copy=False)
    m = box(stats)
    mr, mg, mb = m[..., 0], m[..., 1], m[..., 2]
    # Covariance of the guide plus eps·Identity (eq. 14), in float64 for a stable inverse.
    vrr = (m[..., 3] - mr * mr).astype(np.float64) + eps
    vrg = (m[..., 4] - mr * mg).astype(np.float64)
    vrb = (m[..., 5] - mr * mb).astype(np.float64)
    vgg = (m[..., 6] - mg * mg).astype(np.float64) + eps
    vgb = (m[..., 7] - mg * mb).astype(np.float64)
    vbb = (m[..., 8] - mb * mb).astype(np.float64) + eps
    mean_p = m[..., 9 : 9 + K]  # h×w×K
    # cross moments laid out (h, w, 3, K): guide channel major
    cov_Ip = m[..., 9 + K :].reshape(h, w, 3, K) - m[..., :3, None] * mean_p[:, :, None, :]
    # Closed-form inverse of the symmetric 3×3 matrix via cofactors (vectorised; no per-pixel solve).
    c_rr = vgg * vbb - vgb * vgb
    c_rg = vgb * vrb - vrg * vbb
    c_rb = vrg * vgb - vgg * vrb
    c_gg = vrr * vbb - vrb * vrb
    c_gb = vrb * vrg - vrr * vgb
    c_bb = vrr * vgg - vrg * vrg
    rdet = 1.0 / (vrr * c_rr + vrg * c_rg + vrb * c_rb)
    # a = Σ⁻¹·cov(I, p) per pixel, entry by entry (h×w planes; a stacked (h, w, 3, 3) einsum
    # is several times slower for the same arithmetic).
    inv = [[(c * rdet).astype(np.float32)[..., None] for c in row]
           for row in ((c_rr, c_rg, c_rb), (c_rg, c_gg, c_gb), (c_rb, c_gb, c_bb))]
    cov = [cov_Ip[:, :, j, :] for j in range(3)]  # h×w×K each
    a = [inv[c][0] * cov[0] + inv[c][1] * cov[1] + inv[c][2] * cov[2] for c in range(3)]  # h×w×K each
    b_coef = mean_p - (a[0] * m[..., 0:1] + a[1] * m[..., 1:2] + a[2] * m[..., 2:3])  # h×w×K
    coef = np.concatenate([*a, b_coef], axis=2).astype(np.float32)
    # Average the coefficients of all windows covering a pixel (eq. 8).
    return box(coef)


def _upsample_maps(h: int, w: int, H: int, W: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates for bilinear upsampling h×w → H×W (half-pixel centres, as cv2.resize).

    Returns the x map for a strip of ``rows`` rows (identical for every strip)
    and the y coordinate of every output row.
    """
    xs = ((np.arange(W, dtype=np.float64) + 0.5) * (w / W) - 0.5).astype(np.float32)
    ys = ((np.arange(H, dtype=np.float64) + 0.5) * (h / H) - 0.5).astype(np.float32)
    return np.ascontiguousarray(np.broadcast_to(xs, (rows, W))), ys


def _fit(g32: np.ndarray, m: np.ndarray, p: RefineMatteParams) -> tuple[np.ndarray, tuple[int, int]]:
    """Guided-filter coefficients on the working grid (the matte's resolution, capped).

    Returns the h×w×4K coefficient grid (see :func:`_guided_coefficients`) and its size.
    """
    H, W = g32.shape[:2]
    h, w = m.shape[:2]
    wh, ww = h, w
    if h * w > p.max_work_pixels:
        s = np.sqrt(p.max_work_pixels / (h * w))
        wh, ww = max(1, int(round(h * s))), max(1, int(round(w * s)))
        m = _resize(m, (wh, ww), cv2.INTER_AREA)
    g_low = g32 if (wh, ww) == (H, W) else _resize(g32, (wh, ww), cv2.INTER_AREA)
    return _guided_coefficients(_encode_guide(g_low), m, int(p.radius), float(p.eps)), (wh, ww)


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
    such a frame too. (Internal helper, shared with effects.portrait_blur.)

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
        self.planes = RowUpsampler([coef[..., i] for i in range(4 * self.K)], H, W, cols, rows)
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
        cv2.max(out, 0.0, dst=out)
        cv2.min(out, 1.0, dst=out)
        return out


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


def refine_matte_at(guide: np.ndarray, matte: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                    *, params: RefineMatteParams | None = None) -> np.ndarray:
    """:func:`refine_matte` evaluated only at the full-resolution pixels (ys, xs).

    For callers that need the refined matte in a band only (e.g. the unknown
    region of a trimap): the coefficients are fitted exactly as in
    :func:`refine_matte`, then sampled and applied at those pixels, so the
    cost no longer scales with the photo's size. Inputs are validated by the
    caller (internal helper).

    Returns
    -------
    np.ndarray
        (N, K) float32 refined values in [0, 1].
    """
    p = RefineMatteParams() if params is None else params
    m = matte[:, :, None] if matte.ndim == 2 else matte
    H, W = guide.shape[:2]
    K = m.shape[2]
    g32 = guide.astype(np.float32, copy=False)
    coef, _ = _fit(g32, np.clip(m, 0.0, 1.0).astype(np.float32), p)
    c = sample_at(coef, ys, xs, H, W)
    I = _encode_guide(g32[ys, xs])
    q = c[:, 3 * K :] + sum(c[:, ch * K : (ch + 1) * K] * I[:, ch : ch + 1] for ch in range(3))
    return np.clip(q, 0.0, 1.0)


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
        h×w or h×w×K, float32 (any float accepted), soft mattes in [0, 1],
        with ``h <= H`` and ``w <= W``, covering the same field of view as
        ``guide`` (each axis is scaled independently).
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
        If an argument is not a float numpy array.
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
    p = RefineMatteParams() if params is None else params
    if not isinstance(p, RefineMatteParams):
        raise TypeError(f"params: expected RefineMatteParams or None, got {type(p).__name__}.")
    guide = _check_guide(guide)
    matte = _check_matte(matte, guide.shape[:2])
    squeeze = matte.ndim == 2
    m = matte[:, :, None] if squeeze else matte
    m = np.clip(m, 0.0, 1.0).astype(np.float32)  # a copy: the caller's array is never touched
    H, W = guide.shape[:2]
    K = m.shape[2]
    g32 = guide.astype(np.float32, copy=False)
    coef, (wh, ww) = _fit(g32, m, p)

    out = np.empty((H, W, K), dtype=np.float32)
    same = (wh, ww) == (H, W)
    # Planar coefficient maps: per-plane cv2.remap is the fastest bilinear path and
    # numpy's inner loops then run over W rather than over the tiny K axis.
    coef_planes = [np.ascontiguousarray(coef[..., i]) for i in range(4 * K)]
    del coef
    if not same:
        map_x, ys = _upsample_maps(wh, ww, H, W, p.strip_rows)
    for y0 in range(0, H, p.strip_rows):
        y1 = min(H, y0 + p.strip_rows)
        if same:
            def plane(i):
                return coef_planes[i][y0:y1]
        else:
            map_y = np.ascontiguousarray(np.broadcast_to(ys[y0:y1, None], (y1 - y0, W)))
            mx = map_x[: y1 - y0]

            def plane(i):
                # Bilinear upsampling of this strip's rows only (memory stays ~strip size).
                return cv2.remap(coef_planes[i], mx, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

        Ir, Ig, Ib = cv2.split(_encode_guide(g32[y0:y1]))
        qs = []
        for k in range(K):
            # q = a_r·I_r + a_g·I_g + a_b·I_b + b, clipped (cv2 ops: SIMD, ~2× numpy here).
            q = cv2.multiply(plane(k), Ir)
            cv2.accumulateProduct(plane(K + k), Ig, q)
            cv2.accumulateProduct(plane(2 * K + k), Ib, q)
            cv2.add(q, plane(3 * K + k), dst=q)
            cv2.max(q, 0.0, dst=q)
            cv2.min(q, 1.0, dst=q)
            qs.append(q)
        out[y0:y1] = cv2.merge(qs).reshape(y1 - y0, W, K) if K > 1 else qs[0][..., None]
    return out[..., 0] if squeeze else out
