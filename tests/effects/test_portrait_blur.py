"""Tests for effects.portrait_blur (layered disk lens blur with halo-free compositing)."""
import cv2
import numpy as np
import pytest

from effects import PortraitBlurParams, portrait_blur
from effects.portrait_blur import disk_kernel, estimate_noise_sigma

H, W = 72, 96


def _disc(cx=W / 2, cy=H / 2, R=18.0, h=H, w=W):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.clip(R - np.hypot(xx - cx, yy - cy) + 0.5, 0, 1).astype(np.float32)


def _red_on_grey():
    a = _disc()
    img = a[..., None] * np.array([0.8, 0.04, 0.03], np.float32) + (1 - a[..., None]) * np.float32(0.18)
    return img.astype(np.float32), a


def test_shape_dtype_range_and_inputs_unchanged(rng):
    img = rng.random((H, W, 3)).astype(np.float32)
    a = _disc()
    hair = np.clip(a * 0.5, 0, 1)
    depth = np.linspace(1, 5, W, dtype=np.float32)[None].repeat(H, 0)
    copies = [x.copy() for x in (img, a, hair, depth)]
    out = portrait_blur(img, a, hair_mask=hair, glasses_mask=hair, depth=depth)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and np.isfinite(out).all()
    for x, c in zip((img, a, hair, depth), copies):
        np.testing.assert_array_equal(x, c)
    assert out is not img


def test_no_subject_colour_leaks_into_background():
    img, a = _red_on_grey()
    out = portrait_blur(img, a, params=PortraitBlurParams(f_number=1.4))
    dist = cv2.distanceTransform((a < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    band = (dist > 2) & (dist < 10)
    assert np.abs(out[band] - 0.18).max() < 1.0 / 255
    # while the naive Gaussian-and-paste would leak: check the test can fail
    naive = a[..., None] * img + (1 - a[..., None]) * cv2.GaussianBlur(img, (0, 0), 3)
    assert np.abs(naive[band] - 0.18).max() > 10.0 / 255


def test_subject_interior_is_kept_exactly(rng):
    img = rng.random((H, W, 3)).astype(np.float32)  # worst case for refinement: random colours
    a = _disc()
    out = portrait_blur(img, a)
    inner = cv2.erode(a, np.ones((7, 7), np.uint8)) >= 1
    np.testing.assert_allclose(out[inner], img[inner], atol=1e-5)
    assert np.abs(out[a == 0] - img[a == 0]).mean() > 0.05  # background did change


def test_neutral_cases_are_identity(rng):
    img = rng.random((H, W, 3)).astype(np.float32)
    # tiny aperture: blur radius < half a pixel
    np.testing.assert_array_equal(portrait_blur(img, _disc(), params=PortraitBlurParams(f_number=1e4)), img)
    # subject covers the whole frame
    np.testing.assert_array_equal(portrait_blur(img, np.ones((H, W), np.float32)), img)


def test_no_person_blurs_everything(rng):
    img = np.kron((rng.random((9, 12)) > 0.5), np.ones((8, 8)))[..., None].repeat(3, 2).astype(np.float32) * 0.8
    out = portrait_blur(img, np.zeros((H, W), np.float32), params=PortraitBlurParams(f_number=0.5, match_grain=False))
    assert out.std() < 0.6 * img.std()
    assert abs(out.mean() - img.mean()) < 0.02  # energy kept (no highlights to boost)


def test_tiny_image():
    out = portrait_blur(np.full((1, 1, 3), 0.3, np.float32), np.zeros((1, 1), np.float32))
    assert out.shape == (1, 1, 3) and np.isfinite(out).all()
    out = portrait_blur(np.full((3, 2, 3), 0.3, np.float32), np.zeros((3, 2), np.float32), params=PortraitBlurParams(f_number=0.01))
    np.testing.assert_allclose(out, 0.3, atol=1e-5)


def test_eight_people_share_the_focal_plane(rng):
    img = rng.random((H, W, 3)).astype(np.float32)
    people = np.stack([_disc(cx=8 + 11 * k, cy=36, R=4) for k in range(8)], axis=2)
    union = people.max(axis=2)
    a = portrait_blur(img, people, params=PortraitBlurParams(refine=False))
    b = portrait_blur(img, union, params=PortraitBlurParams(refine=False))
    np.testing.assert_allclose(a, b, atol=1e-6)
    for k in range(8):
        inner = cv2.erode(people[..., k], np.ones((3, 3), np.uint8)) >= 1
        np.testing.assert_allclose(a[inner], img[inner], atol=1e-5)


def test_bokeh_spot_is_a_flat_disc_of_the_lens_radius():
    h, w = 120, 160
    p = PortraitBlurParams(f_number=1.0, match_grain=False)
    r = p.blur_scale / p.f_number * np.hypot(h, w)  # 6 px
    img = np.full((h, w, 3), 0.02, np.float32)
    img[60, 80] = 1.0
    out = portrait_blur(img, np.zeros((h, w), np.float32), params=p).mean(axis=2) - 0.02
    plateau = np.median(out[57:64, 77:84])
    area = (out > 0.5 * plateau).sum()
    assert abs(np.sqrt(area / np.pi) - r) / r < 0.1
    yy, xx = np.mgrid[0:h, 0:w]
    inner = out[np.hypot(yy - 60, xx - 80) < 0.6 * r]
    assert inner.std() / inner.mean() < 0.15
    # highlight boost: the clipped pixel's energy is increased (brighter disc), not lost
    assert out.sum() > 2.0 * (1.0 - 0.02)


def test_polygonal_aperture_kernel():
    k = disk_kernel(5.0, blades=6)
    c = disk_kernel(5.0)
    assert k.shape == c.shape == (11, 11)
    assert abs(k.sum() - 1) < 1e-5 and abs(c.sum() - 1) < 1e-5
    assert not np.allclose(k, c)
    np.testing.assert_allclose(c, c.T, atol=1e-7)
    with pytest.raises(ValueError, match="radius"):
        disk_kernel(0.0)


def test_blur_grows_with_depth():
    img = np.full((H, W, 3), 0.05, np.float32)
    img[: H // 2] = 0.6
    a = _disc(cx=6, cy=H - 6, R=4)
    depth = np.where(np.arange(W)[None] < W // 2, 1.3, 6.0).astype(np.float32).repeat(H, 0)
    depth[a > 0] = 1.0
    out = portrait_blur(img, a, depth=depth, params=PortraitBlurParams(f_number=1.0, match_grain=False))

    def edge_width(x0, x1):
        prof = out[:, x0:x1].mean(axis=(1, 2))
        return ((prof > 0.1) & (prof < 0.55)).sum()

    assert edge_width(60, 90) > edge_width(15, 40) >= 1


def test_depth_with_no_subject_on_a_small_blur(rng):
    """With a depth map, a subject matte that leaves no hole (no person, or all of it under
    matte_floor) and a blur radius under 5 px, the pyramid had only its full-resolution
    level, no depth rung was blurred, and the call failed with "'>=' not supported between
    instances of 'NoneType' and 'float'"."""
    img = rng.random((H, W, 3), dtype=np.float32)
    depth = np.linspace(1, 5, W, dtype=np.float32)[None].repeat(H, 0)
    p = PortraitBlurParams(match_grain=False)
    for subject in (np.zeros((H, W), np.float32), np.full((H, W), 0.05, np.float32)):
        out = portrait_blur(img, subject, depth=depth, params=p)
        assert out.shape == img.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1
        # The nearest plane (the left column, depth 1) is in focus, the far right is blurred.
        assert np.abs(out[:, 0] - img[:, 0]).max() < 1e-6
        assert out[:, -8:].std() < 0.9 * img[:, -8:].std()


def test_grain_is_matched_and_deterministic(rng):
    img = np.clip(0.2 + rng.normal(0, 0.02, (96, 128, 3)), 0, 1).astype(np.float32)
    a = np.zeros((96, 128), np.float32)
    a[20:76, 40:88] = 1
    out = portrait_blur(img, a)
    kern = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32) / 6

    def sigma(sel):
        return 1.4826 * np.median(np.abs(cv2.filter2D(out.mean(axis=2), -1, kern)[sel]))

    inner = cv2.erode(a, np.ones((5, 5), np.uint8)) > 0.5
    outer = cv2.dilate(a, np.ones((25, 25), np.uint8)) < 0.5
    assert 0.7 < sigma(outer) / sigma(inner) < 1.4
    np.testing.assert_array_equal(out, portrait_blur(img, a))
    assert not np.array_equal(out, portrait_blur(img, a, params=PortraitBlurParams(seed=1)))
    # without grain matching the blurred background is much smoother
    smooth = portrait_blur(img, a, params=PortraitBlurParams(match_grain=False))
    assert smooth[outer].std() < 0.5 * out[outer].std()


def test_grain_follows_the_photos_noise_between_channels(rng):
    """A camera's noise is mostly luminance (the channels move together); grain drawn per channel
    turned a blurred background into coloured confetti. Luminance noise in, luminance grain out;
    independent noise in, independent grain out."""
    def background_correlation(noise):
        img, a = _red_on_grey()
        img = np.clip(img + noise, 0, 1).astype(np.float32)
        out = portrait_blur(img, a, params=PortraitBlurParams(refine=False))
        outer = cv2.dilate(a, np.ones((25, 25), np.uint8)) < 0.5
        kern = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
        hp = cv2.filter2D(out, -1, kern)[outer]  # N×3 high-pass of the background
        c = np.corrcoef(hp.T)
        return (c[0, 1] + c[0, 2] + c[1, 2]) / 3

    luma = rng.normal(0, 0.02, (H, W, 1)).astype(np.float32) * np.ones((1, 1, 3), np.float32)
    assert background_correlation(luma) > 0.8
    assert abs(background_correlation(rng.normal(0, 0.02, (H, W, 3)).astype(np.float32))) < 0.3


def test_noise_estimate_reference_value(rng):
    img = np.clip(0.4 + rng.normal(0, 0.01, (64, 64, 3)), 0, 1).astype(np.float32)
    _, sig = estimate_noise_sigma(img)
    np.testing.assert_allclose(np.median(sig), 0.01, rtol=0.15)


def test_noise_estimate_reads_the_plain_part_of_a_textured_photo(rng):
    # A plain wall (a sixth of the frame) beside foliage-like texture of ~1-2 px at the same
    # brightness, noise 0.01 on all of it: the texture inflated the whole-frame median to 0.013
    # (grain on a blurred jungle background came out as a sandstorm). The least textured tiles
    # read the noise.
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    tex = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.8)
    tex = np.clip(0.3 + 0.15 * tex / tex.std(), 0.02, 0.7)
    wall = (xx < w // 3) & (yy < h // 2)
    img = np.where(wall, np.float32(0.3), tex)[..., None] * np.ones(3, np.float32)
    img = np.clip(img + rng.normal(0, 0.01, (h, w, 1)), 0, 1).astype(np.float32)
    centers, sig = estimate_noise_sigma(img)
    assert 0.007 < float(np.interp(0.3, centers, sig[:, 1])) < 0.0115
    # Pure noise: the least textured tile reads it (a little low, the safe side for grain).
    flat = np.clip(0.4 + rng.normal(0, 0.01, (600, 800, 3)), 0, 1).astype(np.float32)
    np.testing.assert_allclose(np.median(estimate_noise_sigma(flat)[1]), 0.01, rtol=0.2)


def test_hair_matte_makes_soft_semi_transparent_edges(rng):
    img, a = _red_on_grey()
    yy, xx = np.mgrid[0:H, 0:W]
    d = np.hypot(xx - W / 2, yy - H / 2)
    ring = (d > 19) & (d < 23)
    hair = np.where(ring, 0.5, 0.0).astype(np.float32)  # half-transparent red fringe around the head
    img = img.copy()
    img[ring] = 0.5 * np.array([0.8, 0.04, 0.03], np.float32) + 0.5 * 0.18
    out = portrait_blur(img, a, hair_mask=hair, params=PortraitBlurParams(refine=False, f_number=1.0))
    sel = (d > 20) & (d < 22)
    frac = (out[sel][:, 0] - 0.18) / (0.8 - 0.18)  # red channel: how much subject shows
    # decontaminated: half-transparent pure subject colour over the blurred grey (a
    # half-transparent copy of the mixed pixel would give 0.25)
    assert np.all((frac > 0.4) & (frac < 0.6)), frac


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(image=np.zeros((H, W), np.float32)), ValueError, "image: expected shape H×W×3"),
        (dict(image=np.zeros((H, W, 3), np.uint8)), TypeError, "image: expected a float array"),
        (dict(image=np.full((H, W, 3), np.nan, np.float32)), ValueError, "image: contains NaN"),
        (dict(subject_mask=np.zeros((H, W + 1), np.float32)), ValueError, "subject_mask: expected shape"),
        (dict(subject_mask=np.full((H, W), 1.5, np.float32)), ValueError, r"subject_mask: expected values in \[0, 1\]"),
        (dict(subject_mask=np.full((H, W), np.nan, np.float32)), ValueError, "subject_mask: contains NaN"),
        (dict(hair_mask=np.zeros((H, W, 2), np.float32)), ValueError, "hair_mask: expected shape"),
        (dict(glasses_mask=np.zeros((H, W), np.int32)), TypeError, "glasses_mask: expected a float array"),
        (dict(depth=np.zeros((H, W), np.float32)), ValueError, "depth: expected finite float distances > 0"),
        (dict(depth=np.ones((H, 3), np.float32)), ValueError, "depth: expected an H×W array"),
        # An int or bool depth map raised ValueError, a list a message about its shape: now as the masks.
        (dict(depth=np.ones((H, W), np.int32)), TypeError, "depth: expected a float array.*astype"),
        (dict(depth=np.ones((H, W), bool)), TypeError, "depth: expected a float array.*dtype bool"),
        (dict(depth=np.ones((H, W)).tolist()), TypeError, "depth: expected a numpy array.*got list"),
        (dict(params=dict(f_number=2)), TypeError, "params: expected PortraitBlurParams"),
    ],
)
def test_invalid_arguments(kwargs, exc, match):
    args = dict(image=np.zeros((H, W, 3), np.float32), subject_mask=np.zeros((H, W), np.float32))
    args.update(kwargs)
    image, mask = args.pop("image"), args.pop("subject_mask")
    with pytest.raises(exc, match=match):
        portrait_blur(image, mask, **args)


def test_a_blur_wider_than_the_frame_is_capped_at_it():
    """f/1e-9 asked for a blur radius of 3e7 diagonals: every photo failed allocating exabytes."""
    img = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    a = _disc()
    out = portrait_blur(img, a, params=PortraitBlurParams(f_number=1e-9, match_grain=False))
    same = portrait_blur(img, a, params=PortraitBlurParams(f_number=0.03, match_grain=False))  # radius = diagonal
    np.testing.assert_allclose(out, same, atol=1e-6)


@pytest.mark.parametrize("field, value", [("f_number", 0.0), ("f_number", float("nan")), ("aperture_blades", 2), ("radius_ratio", 5.0), ("highlight_threshold", 0.0)])
def test_invalid_params(field, value):
    with pytest.raises(ValueError, match=f"PortraitBlurParams.{field}"):
        PortraitBlurParams(**{field: value})


def test_model_matte_floor_does_not_black_out_background():
    """Segmentation mattes carry a faint floor everywhere; the background must keep its brightness."""
    img, a = _red_on_grey()
    floor = np.full((H, W), 0.05, np.float32)  # e.g. an untrained glasses channel
    hair = floor.copy()
    hair[:4, :4] = 0.9  # a stray hair response far from the subject
    out = portrait_blur(img, np.maximum(a, 0.03), hair_mask=hair, glasses_mask=floor)
    bg = a < 0.01
    assert abs(out[bg].mean() - img[bg].mean()) < 0.01 * img[bg].mean() + 1e-3


def test_soft_matte_over_whole_frame_keeps_input_and_colour(rng):
    """A model-like matte that is soft everywhere (the band is the whole frame)."""
    img = (rng.random((H, W, 3)) * 0.2 + np.array([0.5, 0.3, 0.1])).astype(np.float32)
    before = img.copy()
    yy, xx = np.mgrid[0:H, 0:W]
    soft = np.clip(1.2 - np.hypot(xx - W / 2, yy - H / 2) / 40, 0, 1).astype(np.float32) * 0.9 + 0.05
    out = portrait_blur(img, soft)
    np.testing.assert_array_equal(img, before)  # the caller's image is untouched
    # every channel keeps its level: nothing zeroes green/blue or darkens the frame
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), img.reshape(-1, 3).mean(0), rtol=0.05)


# ----------------------------------------------------------------------------- strip-wise internals
def test_dense_composite_matches_the_per_pixel_formula(rng):
    """The strip-wise dense composite equals α·F + (1 − α)·B with F from the sparse decontamination."""
    from effects.portrait_blur import _STRIP_ROWS, _Compositor, _decontaminate

    h, w = 83, 70
    img = rng.random((h, w, 3), dtype=np.float32)
    alpha = np.clip(rng.random((h, w), dtype=np.float32) * 3 - 1, 0, 1)  # 0, 1 and soft pixels
    bg = rng.random((h, w, 3), dtype=np.float32)
    box = (slice(5, 80), slice(3, 66))
    inside = np.zeros_like(alpha)
    inside[box] = alpha[box]
    soft = np.nonzero((inside > 0) & (inside < 1))
    ref = bg.copy()
    ref[box] = np.where((alpha[box] >= 1)[..., None], img[box], bg[box])
    a = alpha[soft][:, None]
    ref[soft] = a * _decontaminate(img, alpha, soft, float(np.hypot(h, w))) + (1 - a) * bg[soft]
    out = bg.copy()
    comp = _Compositor(img, alpha, box, _STRIP_ROWS)
    for y0 in range(0, h, _STRIP_ROWS):
        comp(out, y0, y0 + _STRIP_ROWS)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert np.array_equal(out[:5], bg[:5]) and np.array_equal(out[:, 66:], bg[:, 66:])  # outside the box: untouched


def _add_grain(grain, bg, sigma, y0, y1):
    """``bg += noise·sigma`` for frame rows y0..y1 (within one row of grain cells), in place: the
    grain of :class:`effects.portrait_blur._Grain` as ``_background_rows`` adds it, in numpy.
    ``bg`` and ``sigma`` are (y1−y0)×W×3 float32 strips of those rows."""
    T = grain.T
    cy = y0 // T
    assert (y1 - 1) // T == cy, "strips must not cross a grain cell boundary"
    dy, n = y0 - cy * T, y1 - y0
    for cx, (k, oy, ox) in enumerate(grain.cells[cy]):
        x0, x1 = cx * T, min(bg.shape[1], cx * T + T)
        noise = grain.tiles[k, oy + dy : oy + dy + n, ox : ox + x1 - x0]
        bg[:, x0:x1] += noise * sigma[:, x0:x1]


def test_grain_is_independent_of_the_strip_split_and_has_the_given_sigma():
    from effects.portrait_blur import _Grain

    h, w = 300, 520
    sigma = np.full((h, w, 3), 0.02, np.float32)
    sigma[:, :, 1] = 0.05
    by_strip = {}
    for S in (32, 64, 256):
        g = _Grain(h, w, seed=7)
        bg = np.zeros((h, w, 3), np.float32)
        for y0 in range(0, h, S):
            y1 = min(h, y0 + S)
            _add_grain(g, bg[y0:y1], sigma[y0:y1], y0, y1)
        by_strip[S] = bg
    assert np.array_equal(by_strip[32], by_strip[64]) and np.array_equal(by_strip[32], by_strip[256])
    np.testing.assert_allclose(by_strip[32].std(axis=(0, 1)), [0.02, 0.05, 0.02], rtol=0.05)
    assert not np.array_equal(by_strip[32], _grain_with_seed(h, w, sigma, 8))


def _grain_with_seed(h, w, sigma, seed):
    from effects.portrait_blur import _Grain

    bg = np.zeros((h, w, 3), np.float32)
    g = _Grain(h, w, seed=seed)
    for y0 in range(0, h, 32):
        _add_grain(g, bg[y0 : y0 + 32], sigma[y0 : y0 + 32], y0, min(h, y0 + 32))
    return bg


def test_highlights_and_level1_of_the_background_pyramid(rng):
    """Highlights are pixels with any channel above the threshold; the strip-built pyramid level 1
    equals INTER_AREA halving of the masked, boosted photo."""
    from effects.portrait_blur import _background_level1, _highlight_gains

    h, w = 90, 124
    img = (0.5 * rng.random((h, w, 3))).astype(np.float32)
    img[10, 20, 1] = 1.0  # one channel clipped
    img[50, 7] = 0.97
    img[80, 100, 2] = 0.95  # at the threshold: not a highlight
    ys, xs, factor = _highlight_gains(img, 0.95, 4.0, 20.0)
    assert list(zip(ys.tolist(), xs.tolist())) == [(10, 20), (50, 7)]
    assert factor[0] > factor[1] > 1.0
    keep = (rng.random((h, w)) > 0.3).astype(np.uint8)
    P1, W1 = _background_level1(img, keep, (ys, xs, factor))
    premult = img * keep[..., None]
    premult[ys, xs] *= factor[:, None]
    np.testing.assert_allclose(P1, cv2.resize(premult, (w // 2, h // 2), interpolation=cv2.INTER_AREA), atol=1e-6)
    np.testing.assert_allclose(W1, cv2.resize(keep.astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA), atol=1e-6)
    assert _highlight_gains(img, 0.95, 0.0, 20.0)[0].size == 0  # gain 0: nothing boosted


def test_odd_and_even_sizes_agree(rng):
    """Even sizes build the pyramid's first level strip-wise, odd sizes the whole-frame way:
    one more column must not change the result away from that column (a wrong strip-wise
    level, e.g. flipped, differs by ~0.65 here)."""
    img = cv2.resize(rng.random((9, 12, 3)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    a = _disc()
    p = PortraitBlurParams(f_number=0.5, match_grain=False)  # radius ~7 px: pyramid level 1 is used
    out_even = portrait_blur(img, a, params=p)
    out_odd = portrait_blur(np.concatenate([img, img[:, -1:]], axis=1), np.concatenate([a, a[:, -1:]], axis=1), params=p)
    assert np.abs(out_odd[:, : W // 2] - out_even[:, : W // 2]).max() < 0.1


def test_column_runs_cover_every_set_column_and_merge_small_gaps():
    from effects._bands import column_runs

    m = np.zeros((4, 300), np.uint8)
    m[1, [3, 4, 50, 200, 299]] = 1
    m[3, 120] = 255
    assert column_runs(m, 63) == [(3, 51), (120, 121), (200, 201), (299, 300)]
    assert column_runs(m, 69) == [(3, 121), (200, 201), (299, 300)]
    assert column_runs(m, 99) == [(3, 300)]
    assert column_runs(np.zeros((2, 9), np.uint8), 63) == []
    assert column_runs(m[:, 100:].astype(bool), 0) == [(20, 21), (100, 101), (199, 200)]  # bool, a view


def test_threads_and_side_steps_do_not_change_the_result(rng, monkeypatch):
    """Row bands and the side thread (noise, grain, highlights, colour grids) give the same image
    as one thread doing everything in order."""
    import effects._bands as bands

    h, w = 96, 128
    img = cv2.resize(rng.random((12, 16, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    img = img.clip(0, 1)
    img[10:13, 100:103] = 1.0  # a highlight
    a = _disc(cx=w / 2, cy=h / 2, R=30.0, h=h, w=w)
    hair = np.clip(_disc(cx=w / 2, cy=h / 2 - 10, R=36.0, h=h, w=w) - a, 0, 1)
    monkeypatch.setattr(bands, "MIN_BAND_PIXELS", 500)  # several bands on a small frame, and the side thread
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = portrait_blur(img, a, hair_mask=hair)
        cv2.setNumThreads(2)
        two = portrait_blur(img, a, hair_mask=hair)
    finally:
        cv2.setNumThreads(before)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9, 1.0])
def test_correlated_grain_keeps_unit_variance(rho):
    from effects.portrait_blur import _Grain

    grain = _Grain(512, 512, seed=0)
    grain.correlate(rho)
    noise = grain.tiles.reshape(-1, 3)
    np.testing.assert_allclose(noise.std(axis=0), 1.0, atol=0.01)
    c = np.corrcoef(noise.T)
    assert abs((c[0, 1] + c[0, 2] + c[1, 2]) / 3 - rho) < 0.01


# ----------------------------------------------------------------------------- fused kernels
@pytest.mark.parametrize("strip", ["frame loop's", 64])
@pytest.mark.parametrize("grain, sharp", [(True, False), (False, False), (True, True), (False, True)])
def test_background_kernel_equals_the_numpy_chain(rng, grain, sharp, strip):
    """_background_rows (upsampled blur + grain·σ·(1 − w0), sharp fill mixed in, clipped) equals
    the unfused chain: RowUpsampler rows, _add_grain, the mix and np.clip, on odd sizes, in
    strips of the frame loop's height and of another (the grain does not depend on them)."""
    from effects.mask_refine import RowUpsampler
    from effects.portrait_blur import _STRIP_ROWS, _background_rows, _Grain

    S = _STRIP_ROWS if strip == "frame loop's" else strip
    H, W = 301, 523  # neither a multiple of the strip nor of the grain cell
    low = rng.random((37, 61, 3), dtype=np.float32) * 1.2 - 0.1  # some values to clip
    sigma = rng.random((37, 61, 3), dtype=np.float32) * 0.05
    w0 = rng.random((H, W), dtype=np.float32)
    fill = rng.random((H, W, 3), dtype=np.float32)
    g = _Grain(H, W, seed=3)
    g.correlate(0.6)
    up = RowUpsampler([low, sigma] if grain else [low], H, W, slice(0, W), S)
    ref_bg, ref_sigma = RowUpsampler(low, H, W, slice(0, W), S), RowUpsampler(sigma, H, W, slice(0, W), S)
    out = np.empty((H, W, 3), np.float32)
    ref = np.empty((H, W, 3), np.float32)
    no_w0, no_fill = np.zeros((1, 1), np.float32), np.zeros((1, 1, 3), np.float32)
    for y0 in range(0, H, S):
        y1 = min(H, y0 + S)
        _background_rows(out[y0:y1], *up.lerp_rows(y0, y1), grain, g.tiles, g.cells[y0 // _Grain.T],
                         y0 % _Grain.T, _Grain.T, sharp, w0[y0:y1] if sharp else no_w0,
                         fill[y0:y1] if sharp else no_fill)
        r = ref[y0:y1]
        ref_bg(y0, y1, out=r)
        if grain:
            s = ref_sigma(y0, y1).copy()
            if sharp:
                s *= (1.0 - w0[y0:y1])[..., None]
            _add_grain(g, r, s, y0, y1)
        if sharp:
            r += w0[y0:y1, :, None] * (fill[y0:y1] - r)
        np.clip(r, 0.0, 1.0, out=r)
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)


def test_band_alpha_kernel_equals_the_numpy_formulas(rng):
    """_band_alpha_rows equals the colour-line / guided-filter / spatial-prior formulas of
    subject_alpha written out in numpy on the upsampled grids, and writes band pixels only."""
    from effects.mask_refine import RowUpsampler
    from effects.portrait_blur import _band_alpha_rows

    H, W, S = 77, 131, 32
    x0, x1 = 9, 120
    img = rng.random((H, W, 3), dtype=np.float32) * 1.1 - 0.05
    band = rng.random((H, W)) > 0.3
    K = 2
    grids = {
        "k": rng.standard_normal((7, 11, 3)).astype(np.float32), "sB": rng.random((7, 11, 3), dtype=np.float32),
        "e": rng.standard_normal((7, 11, 3)).astype(np.float32) * 0.3,
        "k0": rng.standard_normal((7, 11)).astype(np.float32),
        "conf0": rng.random((7, 11), dtype=np.float32), "inv": rng.random((7, 11), dtype=np.float32) * 20,
    }
    dist = [rng.random((19, 33), dtype=np.float32) * 8 - 2, rng.random((19, 33), dtype=np.float32) * 8]
    coef = [rng.standard_normal((23, 40)).astype(np.float32) for _ in range(4 * K)]
    s_out, s_in, t = 5.0, 10.0, 0.03
    cs = slice(x0, x1)
    cl = RowUpsampler(list(grids.values()), H, W, cs, S)
    du = RowUpsampler(dist, H, W, cs, S)
    gu = RowUpsampler(coef, H, W, cs, S)
    alpha = np.full((H, W), -1.0, np.float32)  # untouched outside the band
    for r0 in range(0, H, S):
        r1 = min(H, r0 + S)
        _band_alpha_rows(img[r0:r1], band[r0:r1], alpha[r0:r1], x0, x1, *cl.lerp_rows(r0, r1), *du.lerp_rows(r0, r1),
                         *gu.lerp_rows(r0, r1), K, np.float32(-1 / s_out), np.float32(-1 / s_in), np.float32(t),
                         np.float32(1 / (1 - 2 * t)))

    def full(gs):
        return [np.concatenate(parts) for parts in zip(*(RowUpsampler(gs, H, W, cs, S)(r0, min(H, r0 + S))
                                                         for r0 in range(0, H, S)))]

    k, sB, e, k0, conf0, inv = [np.array(v) for v in full(list(grids.values()))]
    d_out, d_in = full(dist)
    c = full(coef)
    I = img[:, cs]
    enc = np.sqrt(np.clip(I, 0, 1))
    gd = np.clip(np.max([c[j] * enc[..., 0] + c[K + j] * enc[..., 1] + c[2 * K + j] * enc[..., 2] + c[3 * K + j]
                         for j in range(K)], axis=0), 0, 1)
    a_col = np.clip((k * I).sum(axis=2) + k0, 0, 1)
    resid = ((enc - sB - e * a_col[..., None]) ** 2).sum(axis=2)
    conf = conf0 * np.exp(-resid * inv)
    est = gd + conf * (a_col - gd)
    est = np.where(d_out > 0, est * np.exp(-d_out / s_out), 1 - (1 - est) * np.exp(-d_in / s_in))
    want = np.where(band[:, cs], np.clip((est - t) / (1 - 2 * t), 0, 1), -1.0)
    np.testing.assert_allclose(alpha[:, cs], want, rtol=0, atol=2e-5)
    assert (alpha[:, :x0] == -1).all() and (alpha[:, x1:] == -1).all()
