"""Tests for effects.noise_profile (noise-level function estimation)."""
import dataclasses

import numpy as np
import pytest

from effects import NoiseProfile, estimate_noise, noise_profile_from_iso


def _ramp(h=256, w=384):
    """Smooth grey ramp covering shadows to highlights (no texture, no clipping)."""
    y = np.linspace(0.02, 0.9, w, dtype=np.float32)[None, :].repeat(h, 0)
    return np.stack([y, y, y], axis=-1)


def _noisy(clean, a, b, rng):
    sd = np.sqrt(a * clean + b).astype(np.float32)
    return (clean + rng.standard_normal(clean.shape).astype(np.float32) * sd).astype(np.float32)


def test_recovers_poisson_gaussian_model(rng):
    a, b = 4e-4, 1e-5
    prof = estimate_noise(_noisy(_ramp(), a, b, rng))
    ys = np.array([0.05, 0.2, 0.6])
    true_luma = np.sqrt((a * ys + b) / 3.0)  # luma = mean of 3 independent channels
    est = prof.sigma(ys)[:, 0]
    np.testing.assert_allclose(est, true_luma, rtol=0.15)
    assert prof.source == "estimated" and prof.n_bins >= 8


def test_noise_grows_with_brightness(rng):
    prof = estimate_noise(_noisy(_ramp(), 1e-3, 1e-6, rng))
    s = prof.sigma(np.array([0.05, 0.3, 0.8]))[:, 0]
    assert s[0] < s[1] < s[2]


def test_clean_image_has_near_zero_noise():
    prof = estimate_noise(_ramp())
    assert float(prof.sigma(0.5)[0]) < 1e-3


def test_input_unchanged(rng):
    img = _noisy(_ramp(64, 64), 1e-3, 1e-5, rng)
    before = img.copy()
    estimate_noise(img)
    np.testing.assert_array_equal(img, before)


def test_tiny_image_without_iso_is_zero_profile():
    prof = estimate_noise(np.full((1, 1, 3), 0.5, np.float32))
    assert prof.source == "none"
    assert np.all(prof.sigma(0.5) == 0)


def test_tiny_image_with_iso_uses_prior():
    prof = estimate_noise(np.full((4, 4, 3), 0.5, np.float32), iso=3200)
    assert prof.source == "iso"
    assert prof == noise_profile_from_iso(3200)


def test_iso_prior_scales_with_gain():
    lo, hi = noise_profile_from_iso(100), noise_profile_from_iso(1600)
    np.testing.assert_allclose(np.array(hi.a) / np.array(lo.a), 16.0)
    np.testing.assert_allclose(np.array(hi.b) / np.array(lo.b), 256.0)


def test_iso_prior_blends_with_estimate(rng):
    img = _noisy(_ramp(), 4e-4, 1e-5, rng)
    prof = estimate_noise(img, iso=400)
    assert prof.source == "estimated+iso"


def test_profile_is_frozen_and_shapes():
    prof = NoiseProfile((1e-3, 2e-3, 3e-3), (0.0, 0.0, 0.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        prof.a = (0, 0, 0)
    out = prof.sigma(np.zeros((5, 7)) + 0.25)
    assert out.shape == (5, 7, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], np.sqrt(np.array([1e-3, 2e-3, 3e-3]) * 0.25), rtol=1e-5)
    np.testing.assert_allclose(prof.scaled(2.0).sigma(0.25), 2.0 * prof.sigma(0.25), rtol=1e-5)


@pytest.mark.parametrize("bad, exc, match", [
    ([[0.5]], TypeError, "numpy array"),
    (np.zeros((8, 8), np.float32), ValueError, r"shape \(H, W, 3\)"),
    (np.zeros((8, 8, 3), np.uint8), TypeError, "float"),
    (np.full((8, 8, 3), np.nan, np.float32), ValueError, "NaN"),
])
def test_bad_image(bad, exc, match):
    with pytest.raises(exc, match=match):
        estimate_noise(bad)


@pytest.mark.parametrize("iso, exc", [(-5, ValueError), (float("nan"), ValueError), ("800", TypeError), (True, TypeError)])
def test_bad_iso(iso, exc):
    with pytest.raises(exc, match="iso"):
        estimate_noise(np.zeros((8, 8, 3), np.float32), iso=iso)
