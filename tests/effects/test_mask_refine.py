"""Tests for effects.mask_refine (fast colour guided-filter matte refinement)."""
import cv2
import numpy as np
import pytest

from effects import RefineMatteParams, refine_matte
from effects.mask_refine import refine_matte_planes


def _chart(rng, H=96, W=128):
    """A photo composited from a known alpha: wavy disc (orange) over a blue textured background."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r = np.hypot(xx - W / 2, yy - H / 2)
    th = np.arctan2(yy - H / 2, xx - W / 2)
    R = 0.3 * H + 0.05 * H * np.sin(5 * th)
    alpha = np.clip(R - r + 0.5, 0, 1).astype(np.float32)
    fg = np.array([0.6, 0.3, 0.1], np.float32)
    bg = np.array([0.05, 0.15, 0.4], np.float32) * (1 + 0.1 * rng.standard_normal((H, W, 1))).astype(np.float32)
    img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return np.clip(img, 0, 1).astype(np.float32), alpha


def _band(alpha, width=5):
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    outer = cv2.dilate((alpha > 0.01).astype(np.uint8), k)
    inner = cv2.erode((alpha > 0.99).astype(np.uint8), k)
    return (outer - inner) > 0


def test_shape_dtype_range_and_inputs_unchanged(rng):
    img, alpha = _chart(rng)
    low = cv2.resize(alpha, (32, 24), interpolation=cv2.INTER_AREA)
    img0, low0 = img.copy(), low.copy()
    out = refine_matte(img, low)
    assert out.shape == alpha.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(img, img0)
    np.testing.assert_array_equal(low, low0)


def test_beats_bilinear_on_sad_and_gradient_in_band(rng):
    img, alpha = _chart(rng)
    low = cv2.resize(alpha, (32, 24), interpolation=cv2.INTER_AREA)
    bil = cv2.resize(low, (128, 96), interpolation=cv2.INTER_LINEAR)
    ref = refine_matte(img, low)
    band = _band(alpha)
    sad_bil, sad_ref = np.abs(bil - alpha)[band].sum(), np.abs(ref - alpha)[band].sum()
    gy, gx = np.gradient(alpha)
    def gerr(a):
        ay, ax = np.gradient(a)
        return (((ay - gy) ** 2 + (ax - gx) ** 2)[band]).sum()
    assert sad_ref < 0.6 * sad_bil
    assert gerr(ref) < 0.6 * gerr(bil)


def test_constant_mattes_are_kept(rng):
    img, _ = _chart(rng)
    mattes = np.stack([np.zeros((24, 32)), np.ones((24, 32)), np.full((24, 32), 0.25)], axis=2).astype(np.float32)
    out = refine_matte(img, mattes)
    assert out.shape == (96, 128, 3)
    np.testing.assert_allclose(out[..., 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[..., 1], 1.0, atol=1e-5)
    np.testing.assert_allclose(out[..., 2], 0.25, atol=1e-4)


def test_stacked_mattes_equal_individual_refinement(rng):
    img, alpha = _chart(rng)
    a = cv2.resize(alpha, (32, 24), interpolation=cv2.INTER_AREA)
    b = 1 - a
    c = rng.uniform(0, 1, (24, 32)).astype(np.float32)
    stacked = refine_matte(img, np.stack([a, b, c], axis=2))
    for k, m in enumerate((a, b, c)):
        np.testing.assert_allclose(stacked[..., k], refine_matte(img, m), atol=1e-5)


def test_strips_tile_seamlessly(rng):
    img, alpha = _chart(rng)
    low = cv2.resize(alpha, (32, 24), interpolation=cv2.INTER_AREA)
    whole = refine_matte(img, low, params=RefineMatteParams(strip_rows=1000))
    strips = refine_matte(img, low, params=RefineMatteParams(strip_rows=7))
    np.testing.assert_allclose(whole, strips, atol=1e-6)


def test_same_resolution_sharpens_a_blurred_edge():
    # Photo with a hard vertical step; matte blurred across it: refinement must pull it toward the step.
    img = np.zeros((40, 60, 3), np.float32)
    img[:, 30:] = 0.8
    truth = (np.arange(60) >= 30).astype(np.float32)[None].repeat(40, 0)
    blurred = cv2.GaussianBlur(truth, (0, 0), 3)
    out = refine_matte(img, blurred)
    # blurred crosses 0.43 → 0.57 between columns 29 and 30; refined must jump there.
    assert (out[:, 29] < 0.3).all() and (out[:, 30] > 0.7).all()
    assert (blurred[:, 29] > 0.4).all()


def test_work_cap_downsamples_large_mattes(rng):
    img, alpha = _chart(rng)
    out = refine_matte(img, alpha, params=RefineMatteParams(max_work_pixels=1000, radius=2))
    assert out.shape == alpha.shape
    assert np.abs(out - alpha).mean() < 0.05


def test_tiny_images():
    out = refine_matte(np.full((1, 1, 3), 0.5, np.float32), np.full((1, 1), 0.3, np.float32))
    assert out.shape == (1, 1) and abs(out[0, 0] - 0.3) < 1e-5
    out = refine_matte(np.random.default_rng(0).random((5, 7, 3)).astype(np.float32), np.full((1, 1, 2), 0.7, np.float32))
    assert out.shape == (5, 7, 2)
    np.testing.assert_allclose(out, 0.7, atol=1e-5)


@pytest.mark.parametrize(
    "guide, matte, exc, match",
    [
        (np.zeros((8, 8), np.float32), np.zeros((4, 4), np.float32), ValueError, "guide: expected shape H×W×3"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4), np.float32), TypeError, "guide: expected a float array"),
        (np.full((8, 8, 3), np.nan, np.float32), np.zeros((4, 4), np.float32), ValueError, "guide: contains NaN"),
        (np.zeros((8, 8, 3), np.float32), np.zeros((16, 4), np.float32), ValueError, "matte: expected a resolution at most"),
        (np.zeros((8, 8, 3), np.float32), np.full((4, 4), 2.0, np.float32), ValueError, r"matte: expected values in \[0, 1\]"),
        (np.zeros((8, 8, 3), np.float32), np.full((4, 4), np.nan, np.float32), ValueError, "matte: contains NaN"),
        (np.zeros((8, 8, 3), np.float32), np.zeros((4, 4), np.uint8), TypeError, "matte: expected a float array"),
        (np.zeros((8, 8, 3), np.float32), np.zeros((4, 4, 1, 1), np.float32), ValueError, "matte: expected shape"),
        ([[0.0]], np.zeros((4, 4), np.float32), TypeError, "guide: expected a numpy array"),
    ],
)
def test_invalid_arguments(guide, matte, exc, match):
    with pytest.raises(exc, match=match):
        refine_matte(guide, matte)


def test_invalid_params():
    with pytest.raises(ValueError, match="radius"):
        RefineMatteParams(radius=0)
    with pytest.raises(ValueError, match="eps"):
        RefineMatteParams(eps=-1.0)
    with pytest.raises(TypeError, match="params"):
        refine_matte(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.float32), params={"radius": 2})


# ----------------------------------------------------------------------------- strip helpers (internal)
@pytest.mark.parametrize("hw, grid_hw, cols, strip", [
    ((61, 83), (7, 9), (0, 83), 16), ((64, 50), (64, 50), (3, 47), 16), ((40, 30), (1, 1), (5, 6), 16),
    # the tone map's cases: strips of 5 rows start and end inside runs of rows sharing a grid row
    ((96, 128), (12, 16), (0, 128), 5), ((50, 33), (7, 5), (0, 33), 5), ((9, 9), (9, 9), (0, 9), 5),
    ((3, 4), (1, 1), (0, 4), 5)])
def test_row_upsampler_matches_cv2_resize(hw, grid_hw, cols, strip):
    from effects.mask_refine import RowUpsampler

    rng = np.random.default_rng(0)
    H, W = hw
    grids = [rng.random((*grid_hw, 3), dtype=np.float32), rng.random(grid_hw, dtype=np.float32)]
    cs = slice(*cols)
    refs = [cv2.resize(g, (W, H), interpolation=cv2.INTER_LINEAR)[:, cs] for g in grids]
    up = RowUpsampler(grids, H, W, cs, strip)
    for y0 in range(0, H, strip):  # strips delivered in order, as the callers do
        y1 = min(H, y0 + strip)
        for ref, got in zip(refs, up(y0, y1)):
            assert got.shape == ref[y0:y1].shape
            np.testing.assert_allclose(got, ref[y0:y1], atol=1e-6)
    # what kernels get instead (lerp_rows: grid rows resized along x, which one, the weight)
    lerp = RowUpsampler(grids, H, W, cs, strip)
    for y0 in range(0, H, strip):
        y1 = min(H, y0 + strip)
        rows, idx, frac = lerp.lerp_rows(y0, y1)
        got = rows[idx] + frac[:, None] * (rows[idx + 1] - rows[idx])
        want = np.concatenate([ref[y0:y1].reshape(y1 - y0, -1) for ref in refs], axis=1)
        np.testing.assert_allclose(got, want, atol=1e-6)
    # one grid, written into a given buffer
    single = RowUpsampler(grids[0], H, W, slice(0, W), 16)
    out = np.zeros((H, W, 3), np.float32)
    for y0 in range(0, H, 16):
        single(y0, min(H, y0 + 16), out=out[y0 : y0 + 16])
    np.testing.assert_allclose(out, cv2.resize(grids[0], (W, H), interpolation=cv2.INTER_LINEAR), atol=1e-6)


def test_guided_strips_match_refine_matte():
    from effects.mask_refine import GuidedStrips

    rng = np.random.default_rng(3)
    img, alpha = _chart(rng)
    H, W = alpha.shape
    mattes = np.stack([cv2.resize(cv2.resize(alpha, (W // 4, H // 4), interpolation=cv2.INTER_AREA), (W, H)),
                       np.clip(alpha[:, ::-1] * 0.7, 0, 1)], axis=2).astype(np.float32)
    p = RefineMatteParams(radius=3, max_work_pixels=2000)
    ref = refine_matte(img, mattes, params=p).max(axis=2)
    cs = slice(10, W - 7)
    gs = GuidedStrips(img, mattes, p, cs, 8)
    got = np.concatenate([gs(y0, min(H, y0 + 8)).copy() for y0 in range(0, H, 8)])
    np.testing.assert_allclose(got, ref[:, cs], atol=1e-5)


def test_planes_equal_refine_matte_in_any_strips(rng):
    from effects.mask_refine import refine_matte_planes

    img, alpha = _chart(rng)
    low = cv2.resize(alpha, (32, 24), interpolation=cv2.INTER_AREA)
    mattes = np.stack([low, 1 - low, np.full_like(low, 0.25)], axis=2)
    whole = refine_matte(img, mattes)
    planes = refine_matte_planes(img, mattes)
    assert len(planes) == 3 and all(p.shape == (96, 128) and p.flags.c_contiguous for p in planes)
    for k in range(3):
        np.testing.assert_array_equal(planes[k], whole[..., k])
    assert refine_matte_planes(img, low)[0].shape == (96, 128)
    # strips of any height (here 8 and 7 rows: some end inside a run of rows sharing a grid row)
    np.testing.assert_array_equal(refine_matte(img, mattes, params=RefineMatteParams(strip_rows=8)), whole)
    np.testing.assert_array_equal(refine_matte(img, mattes, params=RefineMatteParams(strip_rows=7)), whole)


@pytest.mark.parametrize("hw, low_hw, K", [((97, 131), (13, 17), 1), ((61, 45), (61, 45), 3), ((33, 301), (5, 40), 2)])
def test_fused_kernel_equals_the_numpy_formula(hw, low_hw, K):
    """The kernel path (guide encoded, coefficients interpolated per pixel, applied, clipped)
    equals the formula in numpy on coefficient planes upsampled whole by cv2.resize, on odd sizes
    (one where the grid is the frame's size), guide values outside [0, 1] included."""
    from effects.mask_refine import _fit, refine_matte_planes

    rng = np.random.default_rng(11)
    H, W = hw
    img = (rng.random((H, W, 3), dtype=np.float32) * 1.2 - 0.1).astype(np.float32)
    mattes = rng.random((*low_hw, K), dtype=np.float32)
    p = RefineMatteParams(radius=2, strip_rows=16)
    got = refine_matte_planes(img, mattes, params=p)
    coef, _ = _fit(img, mattes, p)
    c = [cv2.resize(plane, (W, H), interpolation=cv2.INTER_LINEAR) for plane in coef]
    enc = np.sqrt(np.clip(img, 0, 1))
    for k in range(K):
        want = np.clip(c[k] * enc[..., 0] + c[K + k] * enc[..., 1] + c[2 * K + k] * enc[..., 2] + c[3 * K + k], 0, 1)
        np.testing.assert_allclose(got[k], want, rtol=0, atol=2e-5)


def test_float32_coefficients_match_a_float64_reference():
    """The closed-form 3×3 inverse in float32 (eps on the diagonal keeps it well conditioned),
    against He et al.'s filter evaluated in float64, also for a grey guide (r = g = b)."""
    from effects.mask_refine import _coefficient_planes

    rng = np.random.default_rng(5)
    p = cv2.GaussianBlur(rng.random((60, 80)).astype(np.float32), (0, 0), 3)
    p = ((p - p.min()) / np.ptp(p))[..., None]
    colour = cv2.GaussianBlur(rng.random((60, 80, 3)).astype(np.float32), (0, 0), 1.5)
    for I in (colour, np.repeat(colour[..., :1], 3, axis=2), np.full((60, 80, 3), 0.3, np.float32)):
        got = _coefficient_planes(I, p, 3, 1e-3)

        def box(x):
            return cv2.boxFilter(x, -1, (7, 7), borderType=cv2.BORDER_REFLECT)

        I64, p64 = I.astype(np.float64), p[..., 0].astype(np.float64)
        mI = box(I64)
        cov = np.stack([box(I64[..., i] * I64[..., j]) - mI[..., i] * mI[..., j] for i in range(3) for j in range(3)],
                       axis=-1).reshape(60, 80, 3, 3) + 1e-3 * np.eye(3)
        cIp = box(I64 * p64[..., None]) - mI * box(p64)[..., None]
        a = np.linalg.solve(cov, cIp[..., None])[..., 0]
        b = box(p64) - (a * mI).sum(-1)
        ref = [box(a[..., c]) for c in range(3)] + [box(b)]
        for c in range(4):
            np.testing.assert_allclose(got[c], ref[c], atol=5e-5)  # float32 moments: ~1e-5


@pytest.mark.parametrize("shape", [(12, 16), (12, 16, 2)])
def test_a_bool_matte_is_taken_as_0_and_1(rng, shape):
    """A bool matte was refused with advice to divide by 255 (wrong for a bool); it is a hard
    mask, taken as 0/1 as the other effects' masks are."""
    guide = rng.random((48, 64, 3), dtype=np.float32)
    hard = rng.random(shape) > 0.5
    before = hard.copy()
    np.testing.assert_array_equal(refine_matte(guide, hard), refine_matte(guide, hard.astype(np.float32)))
    for got, want in zip(refine_matte_planes(guide, hard), refine_matte_planes(guide, hard.astype(np.float32))):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(hard, before)
