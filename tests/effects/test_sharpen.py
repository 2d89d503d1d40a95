"""Tests for effects.sharpen (sky/skin-aware, detail-gated, overshoot-clamped unsharp mask)."""
import numpy as np
import pytest

from effects import SharpenParams, sharpen


def _step(h=32, w=32, lo=0.1, hi=0.6):
    img = np.full((h, w, 3), lo, np.float32)
    img[:, w // 2:] = hi
    return img


def _texture(rng, h=64, w=64):
    base = 0.3 + 0.2 * rng.random((h, w)).astype(np.float32)
    return np.repeat(base[..., None], 3, axis=2) * np.array([1.0, 0.8, 0.6], np.float32)


def test_sharpens_texture(rng):
    img = _texture(rng)
    out = sharpen(img)
    # Local contrast increases on texture.
    assert out.std() > img.std() * 1.05


def test_step_overshoot_is_clamped():
    img = _step()
    out = sharpen(img, params=SharpenParams(amount=5.0))
    y = out.mean(axis=2)
    step = 0.5
    assert y.max() <= 0.6 + 0.05 * step
    assert y.min() >= 0.1 - 0.05 * step
    # ...and it did sharpen (some overshoot within the allowance).
    assert y.max() > 0.6 + 1e-4


def test_no_sharpening_in_sky(rng):
    img = _texture(rng)
    out = sharpen(img, sky_mask=np.ones(img.shape[:2], np.float32))
    np.testing.assert_allclose(out, img, atol=1e-6)


def test_skin_gentler_than_texture(rng):
    img = _texture(rng)
    full = sharpen(img)
    skin = sharpen(img, skin_mask=np.ones(img.shape[:2], np.float32))
    assert 0 < np.abs(skin - img).mean() < 0.6 * np.abs(full - img).mean()


def test_hue_kept(rng):
    img = _texture(rng)
    out = sharpen(img)
    # RGB scaled by a luma ratio: channel ratios unchanged.
    np.testing.assert_allclose(out[..., 1] / out[..., 0], img[..., 1] / img[..., 0], rtol=1e-4)


def test_hue_kept_where_a_bright_saturated_pixel_is_brightened(rng):
    """A brightening that would take the largest channel past 1 scales the whole pixel, stopping
    there, instead of clipping that channel alone: flowers, shirts and signs beside brighter,
    paler detail changed hue (yellow toward green, 10-29 degrees at the 95th percentile of such
    pixels in everyday photos: ADE_val_00001666, COCO 308)."""
    h = w = 64
    pick = rng.random((h, w))[..., None]
    shade = (0.8 + 0.2 * rng.random((h, w))).astype(np.float32)[..., None]
    yellow, white, green = (np.array(c, np.float32) for c in ([0.95, 0.72, 0.06], [0.95] * 3, [0.1, 0.2, 0.03]))
    # Yellow flowers among white specks (whose lightness lets the yellow rise) on dark leaves.
    img = shade * np.where(pick < 0.5, yellow, np.where(pick < 0.7, white, green))
    out = sharpen(img)
    assert (out.max(axis=2) > 0.9999).sum() > 500  # brightened up to the top: the case at stake
    np.testing.assert_allclose(out[..., 1] / out[..., 0], img[..., 1] / img[..., 0], rtol=1e-4)
    np.testing.assert_allclose(out[..., 2] / out[..., 0], img[..., 2] / img[..., 0], rtol=1e-4)
    assert out.max() <= 1.0


def test_invariants(rng):
    img = _texture(rng)
    before = img.copy()
    out = sharpen(img, params=SharpenParams(amount=3.0))
    np.testing.assert_array_equal(img, before)
    assert out.shape == img.shape and out.dtype == np.float32 and out is not img
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_zero_amount_is_identity(rng):
    img = _texture(rng)
    out = sharpen(img, params=SharpenParams(amount=0.0, skin_amount=0.0, sky_amount=0.0))
    np.testing.assert_array_equal(out, img)
    assert out is not img


def test_identity_exits_keep_the_promised_range(rng):
    """Zero gains (no amount anywhere, or all sky at sky_amount 0) returned the input as it
    was, negative values included, where the docstring promises [0, max(1, image.max())]."""
    img = rng.random((32, 32, 3), dtype=np.float32) * 1.4 - 0.2
    zero = SharpenParams(amount=0.0, skin_amount=0.0, sky_amount=0.0)
    sky = np.ones((32, 32), np.float32)
    for out in (sharpen(img, params=zero), sharpen(img, params=SharpenParams(amount=0.0)), sharpen(img, sky_mask=sky)):
        np.testing.assert_array_equal(out, np.maximum(img, 0.0))
        assert out is not img


def test_flat_and_tiny_images():
    flat = np.full((16, 16, 3), 0.4, np.float32)
    np.testing.assert_allclose(sharpen(flat), flat, atol=1e-6)
    one = np.full((1, 1, 3), 0.4, np.float32)
    assert sharpen(one).shape == (1, 1, 3)
    black = np.zeros((8, 8, 3), np.float32)
    np.testing.assert_array_equal(sharpen(black), black)


def test_errors():
    img = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="sky_mask"):
        sharpen(img, sky_mask=np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"skin_mask.*\[0, 1\]"):
        sharpen(img, skin_mask=np.full((8, 8), 2.0, np.float32))
    with pytest.raises(TypeError, match="params"):
        sharpen(img, params={"amount": 1})
    with pytest.raises(ValueError, match="radius"):
        SharpenParams(radius=0)
    with pytest.raises(ValueError, match="amount"):
        SharpenParams(amount=-1)
    with pytest.raises(ValueError, match="clamp_radius"):
        SharpenParams(clamp_radius=0)


def test_strips_equal_whole_frame(rng, monkeypatch):
    """Row strips with a halo give the whole-frame result for any strip height."""
    import sys
    mod = sys.modules["effects.sharpen"]
    img = rng.random((70, 50, 3)).astype(np.float32)
    img[:5] = 0.0  # near-black rows take the additive path
    sky = np.zeros((70, 50), np.float32)
    sky[:20] = 1.0
    skin = np.zeros((70, 50), np.float32)
    skin[40:60, 10:30] = 1.0
    monkeypatch.setattr(mod, "_STRIP", 10_000)
    whole = sharpen(img, sky_mask=sky, skin_mask=skin)
    for strip in (1, 7, 32):
        monkeypatch.setattr(mod, "_STRIP", strip)
        np.testing.assert_allclose(sharpen(img, sky_mask=sky, skin_mask=skin), whole, atol=1e-6)


def test_rotated_view_input_gives_the_contiguous_result(rng):
    """A photo rotated by its EXIF orientation arrives as a non-contiguous view."""
    img = _texture(rng, 40, 56)
    view = np.rot90(img)
    sky = np.zeros(view.shape[:2], np.float32)
    sky[:10] = 1.0
    out = sharpen(view, sky_mask=sky)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, sharpen(np.ascontiguousarray(view), sky_mask=sky))


def test_dark_pixels_take_the_additive_path(rng):
    """Near-black pixels (luma <= 1e-4) get the luma change added to every channel instead of
    a luma ratio (which would amplify their noise)."""
    img = _texture(rng, 48, 48)
    img[10:20, 5:30] *= 1e-4  # a dark patch with texture
    out = sharpen(img)
    dark = (img.mean(axis=2) <= 1e-4) & (out > 0).all(axis=2)  # dark and not clipped at 0
    assert dark.sum() > 100
    # Where dark, every channel moved by the same amount (additive), unlike the ratio path.
    d = (out - img)[dark]
    np.testing.assert_allclose(d[:, 0], d[:, 1], atol=1e-7)
    np.testing.assert_allclose(d[:, 0], d[:, 2], atol=1e-7)


def _numpy_sharpen(img, sky, skin, p):
    """The whole-frame numpy chain the compiled strip kernel fuses (the reference)."""
    import cv2
    y = np.maximum(img.mean(axis=2, dtype=np.float32), np.float32(0.0))
    light = cv2.pow(y, 1.0 / 3.0)
    k = 2 * int(np.ceil(4 * p.radius)) + 1
    blur = cv2.GaussianBlur(light, (k, k), p.radius, borderType=cv2.BORDER_REFLECT)
    win = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * p.clamp_radius + 1,) * 2)
    lo = cv2.erode(light, win, borderType=cv2.BORDER_REFLECT)
    hi = cv2.dilate(light, win, borderType=cv2.BORDER_REFLECT)
    d = light - blur
    if p.threshold > 0:
        d = d * (d * d / (d * d + np.float32(p.threshold ** 2)))
    gain = (np.float32(p.sky_amount - p.amount) * sky + np.float32(p.skin_amount - p.amount) * skin)
    gain = gain / np.maximum(sky + skin, np.float32(1.0)) + np.float32(p.amount)
    ov = np.float32(p.overshoot)
    sharp = np.clip(light + gain * d, np.maximum(lo + ov * (lo - hi), 0), hi + ov * (hi - lo))
    y_new = sharp ** 3
    dark = y <= np.float32(1e-4)
    top = np.float32(max(1.0, float(img.max())))
    ceiling = top / np.maximum(img.max(axis=2), np.float32(1e-6))  # the largest channel stops at top
    ratio = np.where(dark, 1.0, np.minimum(y_new / np.maximum(y, np.float32(1e-6)), ceiling))
    shift = np.where(dark, y_new - y, 0.0)
    return np.clip(img * ratio[..., None] + shift[..., None], 0.0, max(1.0, float(img.max())))


@pytest.mark.parametrize("params", [SharpenParams(), SharpenParams(threshold=0.0, amount=2.0, sky_amount=0.5),
                                    SharpenParams(skin_amount=1.0, clamp_radius=2, overshoot=0.3)])
def test_compiled_strips_match_the_numpy_chain(rng, params):
    """The fused per-pixel kernel gives the plain numpy chain's result (odd sizes, dark pixels,
    overlapping mattes, every region combination)."""
    img = rng.random((37, 53, 3)).astype(np.float32)
    img[3:9, 4:20] *= 1e-4  # near black: the additive path
    sky = np.clip(rng.random((37, 53)) * 2 - 0.5, 0, 1).astype(np.float32)
    skin = np.clip(rng.random((37, 53)) * 2 - 0.5, 0, 1).astype(np.float32)
    for s, k in ((sky, skin), (sky, None), (None, skin), (None, None)):
        out = sharpen(img, sky_mask=s, skin_mask=k, params=params)
        zeros = np.zeros((37, 53), np.float32)
        ref = _numpy_sharpen(img, zeros if s is None else s, zeros if k is None else k, params)
        np.testing.assert_allclose(out, ref, atol=2e-6)


@pytest.mark.parametrize("threshold", [1e30, 1e200])
def test_a_huge_threshold_sharpens_nothing_without_an_overflow_warning(rng, threshold):
    """threshold=1e30 (all detail below it) squared past float32's range with numpy's 'overflow
    encountered in cast' RuntimeWarning, and 1e200 failed with Python's OverflowError; the
    detail is cored away entirely, the image comes back."""
    import warnings
    img = _texture(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sharpen(img, params=SharpenParams(threshold=threshold))
    np.testing.assert_allclose(out, img, rtol=0, atol=1e-6)
