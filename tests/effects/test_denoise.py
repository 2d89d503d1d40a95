"""Tests for effects.denoise (sky/skin-aware multiscale Wiener denoising)."""
import numpy as np
import pytest

from effects import DenoiseParams, NoiseProfile, denoise


def _scene(h=96, w=128):
    """Top half: smooth blue sky gradient. Bottom half: strong fine texture."""
    rng = np.random.default_rng(7)
    img = np.zeros((h, w, 3), np.float32)
    t = np.linspace(0, 1, h // 2, dtype=np.float32)[:, None, None]
    img[: h // 2] = (1 - t) * np.array([0.08, 0.15, 0.5]) + t * np.array([0.35, 0.45, 0.65])
    tex = 0.15 + 0.35 * (rng.random((h - h // 2, w)) > 0.5).astype(np.float32)
    img[h // 2:] = tex[..., None] * np.array([0.6, 0.9, 0.4], np.float32)
    sky = np.zeros((h, w), np.float32)
    sky[: h // 2] = 1.0
    return img, sky


def _noisy(clean, iso, rng):
    g = iso / 100.0
    a, b = 5e-5 * g, (2.5 * 5e-5 * g) ** 2
    sd = np.sqrt(a * clean + b)
    return (clean + rng.standard_normal(clean.shape).astype(np.float32) * sd).astype(np.float32)


def _mse(x, y, sel):
    return float(np.mean((x[sel] - y[sel]) ** 2))


def test_reduces_noise_in_sky(rng):
    clean, sky = _scene()
    noisy = _noisy(clean, 3200, rng)
    out = denoise(noisy, sky_mask=sky)
    s = sky > 0.5
    s[40:] = False  # stay clear of the boundary
    assert _mse(out, clean, s) < 0.2 * _mse(noisy, clean, s)


def test_sky_mask_denoises_sky_harder_but_not_texture(rng):
    clean, sky = _scene()
    noisy = _noisy(clean, 3200, rng)
    aware = denoise(noisy, sky_mask=sky)
    glob = denoise(noisy)
    s = np.zeros(sky.shape, bool)
    s[:40] = True
    t = np.zeros(sky.shape, bool)
    t[60:] = True
    assert _mse(aware, clean, s) < 0.8 * _mse(glob, clean, s)
    # Coarse bands straddle the boundary, so texture pixels may change, but not for the worse.
    assert _mse(aware, clean, t) <= 1.05 * _mse(glob, clean, t)
    far = np.zeros(sky.shape, bool)
    far[88:] = True
    assert np.abs(aware[far] - glob[far]).max() < 0.02


def test_texture_kept(rng):
    clean, sky = _scene()
    noisy = _noisy(clean, 800, rng)
    out = denoise(noisy, sky_mask=sky)
    t = np.zeros(sky.shape, bool)
    t[60:] = True
    # Strong binary texture stays: error far below the texture's own variance.
    assert _mse(out, clean, t) < 0.05 * float(clean[t].var())


def test_known_noise_profile_is_used(rng):
    clean, _ = _scene()
    noisy = _noisy(clean, 3200, rng)
    zero = NoiseProfile((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0, "none")
    np.testing.assert_array_equal(denoise(noisy, noise=zero), noisy)
    big = denoise(noisy, noise=NoiseProfile((1e-2,) * 3, (1e-4,) * 3))
    small = denoise(noisy, noise=NoiseProfile((1e-5,) * 3, (1e-7,) * 3))
    assert np.abs(big - noisy).mean() > 3 * np.abs(small - noisy).mean()


def test_iso_prior_used_on_textureless_noise_free_input():
    # A flat clean image: nothing to estimate from noise, but ISO says there is noise: still fine.
    flat = np.full((64, 64, 3), 0.3, np.float32)
    out = denoise(flat, iso=6400)
    np.testing.assert_allclose(out, flat, atol=1e-5)


def test_invariants(rng):
    clean, sky = _scene()
    noisy = np.clip(_noisy(clean, 3200, rng), 0, 1)
    before, sky_before = noisy.copy(), sky.copy()
    out = denoise(noisy, sky_mask=sky, skin_mask=np.zeros_like(sky))
    np.testing.assert_array_equal(noisy, before)
    np.testing.assert_array_equal(sky, sky_before)
    assert out.shape == noisy.shape and out.dtype == np.float32 and out is not noisy
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_zero_strength_is_identity(rng):
    clean, sky = _scene()
    noisy = _noisy(clean, 3200, rng)
    out = denoise(noisy, sky_mask=sky, params=DenoiseParams(strength=0.0))
    np.testing.assert_array_equal(out, noisy)
    assert out is not noisy


def test_all_sky_and_skin_overlap(rng):
    clean, _ = _scene(64, 64)
    noisy = _noisy(clean, 3200, rng)
    ones = np.ones(clean.shape[:2], np.float32)
    out = denoise(noisy, sky_mask=ones, skin_mask=ones)  # overlap is renormalised, no error
    assert np.isfinite(out).all()
    assert denoise(noisy, sky_mask=ones.astype(bool)).shape == noisy.shape


def test_float64_and_tiny_images(rng):
    clean, _ = _scene(32, 32)
    out = denoise(_noisy(clean, 800, rng).astype(np.float64))
    assert out.dtype == np.float32
    one = np.full((1, 1, 3), 0.5, np.float32)
    np.testing.assert_array_equal(denoise(one), one)
    assert denoise(np.full((3, 7, 3), 0.5, np.float32), iso=800).shape == (3, 7, 3)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(sky_mask=np.zeros((5, 5), np.float32)), ValueError, "sky_mask.*height and width"),
    (dict(skin_mask=np.full((16, 16), -0.5, np.float32)), ValueError, r"skin_mask.*\[0, 1\]"),
    (dict(skin_mask=np.zeros((16, 16), np.uint8)), TypeError, "skin_mask.*255"),
    (dict(sky_mask=np.full((16, 16), np.nan, np.float32)), ValueError, "sky_mask.*NaN"),
    (dict(iso=0), ValueError, "iso"),
    (dict(noise=(1, 2)), TypeError, "noise"),
    (dict(params=dict(strength=2)), TypeError, "params"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        denoise(np.zeros((16, 16, 3), np.float32), **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(strength=-1.0), "strength"),
    (dict(luma_sky=()), "luma_sky"),
    (dict(chroma_base=(1.0, -2.0)), "chroma_base"),
    (dict(levels=0), "levels"),
    (dict(window=1.5), "window"),
    (dict(refine_eps=0.0), "refine_eps"),
])
def test_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DenoiseParams(**kwargs)
