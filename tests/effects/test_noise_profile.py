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


@pytest.mark.parametrize("iso", [None, 800])
def test_coarse_models_match_fine_on_white_noise(rng, iso):
    noisy = _noisy(_ramp(), 4e-4, 1e-5, rng)
    prof = estimate_noise(noisy, iso=iso)
    assert len(prof.coarse_a) >= 1 and len(prof.coarse_a) == len(prof.coarse_b)
    # White noise: the coarse models match the fine one (floored at it, close above).
    for lv in (1, 2):
        a, b = prof.model_at(lv, 0)
        assert prof.a[0] <= a <= 1.3 * prof.a[0] + 1e-9


def test_blind_coarse_model_reads_jpeg_like_noise_capped_at_8x(rng):
    import cv2
    img = _ramp()
    white = rng.standard_normal(img.shape).astype(np.float32) * np.sqrt(4e-4 * img + 1e-5).astype(np.float32)
    # Coarse noise only, strong: the half-resolution estimate alone would exceed 8x the fine.
    coarse = cv2.GaussianBlur(white, (0, 0), 2.0) * 6.0
    prof = estimate_noise(img + coarse)
    y = 0.3
    v0 = prof.a[0] * y + prof.b[0]
    a1, b1 = prof.model_at(1, 0)
    assert a1 * y + b1 > 3 * v0  # no ISO, yet the coarse scale is seen
    for lv in (1, 2):
        a, b = prof.model_at(lv, 0)
        assert a <= 8 * prof.a[0] * (1 + 1e-6) and b <= 8 * prof.b[0] * (1 + 1e-6) + 1e-15


def test_coarse_model_reads_jpeg_like_noise_and_is_capped(rng):
    import cv2
    img = _ramp()
    white = rng.standard_normal(img.shape).astype(np.float32) * np.sqrt(4e-4 * img + 1e-5).astype(np.float32)
    coarse = cv2.GaussianBlur(white, (0, 0), 1.5) * 2.5  # fine scales removed, coarse kept
    prof = estimate_noise(img + coarse, iso=800)
    prior = noise_profile_from_iso(800)
    y = 0.3
    v0 = prof.a[0] * y + prof.b[0]
    a1, b1 = prof.model_at(1, 0)
    assert a1 * y + b1 > 3 * v0  # coarse scale sees much more than the fine scale
    for lv in (1, 2):
        a, b = prof.model_at(lv, 0)
        assert a <= max(prior.a[0], prof.a[0]) + 1e-12 and b <= max(prior.b[0], prof.b[0]) + 1e-12


def test_model_at_and_scaled():
    prof = NoiseProfile((1.0, 2.0, 3.0), (0.1, 0.2, 0.3), 4, "estimated",
                        ((2.0, 4.0, 6.0),), ((0.2, 0.4, 0.6),))
    assert prof.model_at(0, 1) == (2.0, 0.2)
    assert prof.model_at(1, 2) == (6.0, 0.6)
    assert prof.model_at(5, 0) == (2.0, 0.2)  # coarser scales repeat the last entry
    s = prof.scaled(2.0)
    assert s.model_at(1, 0) == (8.0, 0.8) and s.a == (4.0, 8.0, 12.0)
    assert NoiseProfile((1.0,) * 3, (0.0,) * 3).model_at(3, 0) == (1.0, 0.0)  # white by default


def test_block_row_subsampling_on_large_images(rng, monkeypatch):
    """Above _MAX_BLOCKS blocks only every n-th row of blocks is measured: the model stays
    close to the full estimate (here 8 rows of 16×16 blocks out of 15 on a 256×384 ramp)."""
    import sys
    mod = sys.modules["effects.noise_profile"]
    a, b = 4e-4, 1e-5
    noisy = _noisy(_ramp(), a, b, rng)
    full = estimate_noise(noisy)
    monkeypatch.setattr(mod, "_MAX_BLOCKS", 180)  # 15 x 23 blocks -> every 2nd block row
    sub = estimate_noise(noisy)
    ys = np.array([0.05, 0.2, 0.6])
    np.testing.assert_allclose(sub.sigma(ys), full.sigma(ys), rtol=0.15)
    true_luma = np.sqrt((a * ys + b) / 3.0)
    np.testing.assert_allclose(sub.sigma(ys)[:, 0], true_luma, rtol=0.2)
    # Fewer blocks really were used: a bin count, or the fit, differs.
    assert sub != full


def test_two_column_nnls_matches_scipy():
    """The noise fit's own two-variable NNLS (scipy.optimize is not imported at run time)."""
    from scipy.optimize import nnls

    from effects.noise_profile import _nnls_two

    rng = np.random.default_rng(3)
    faces = 0
    for _ in range(300):
        n = int(rng.integers(2, 12))
        A = np.stack([rng.uniform(0, 1, n), np.ones(n)], axis=1) * rng.uniform(0.1, 10, n)[:, None]
        y = A @ rng.normal(0, 1, 2) + rng.normal(0, 0.3, n)
        expected, _ = nnls(A, y)
        got = _nnls_two(A, y)
        faces += bool((expected == 0).any())
        assert (got >= 0).all()
        np.testing.assert_allclose(got, expected, atol=1e-9)
    assert faces > 50  # the constrained cases were exercised


def test_written_calibration_is_what_is_measured():
    """The white-noise calibration constants written into the module (so a process's first
    estimate need not draw 13 M samples) are what the measurement gives."""
    import sys

    module = sys.modules["effects.noise_profile"]
    assert set(module._CALIBRATION) >= {0, 1, 2}
    for level, written in module._CALIBRATION.items():
        np.testing.assert_allclose(module._measure_calibration(level), written, rtol=1e-5)


def test_opponent_transforms_equal_numpy_and_do_not_depend_on_the_split(rng):
    """rgb_to_opponent / opponent_to_rgb (a compiled per-pixel kernel) against the matrix
    product in numpy, on an odd size; a pixel's result is the same whichever rows it is
    converted with (cv2.transform's was not, in the last bit), and ``dst`` may be a row
    slice or a column crop of a frame."""
    from effects.noise_profile import _OPP_TO_RGB, _RGB_TO_OPP, opponent_to_rgb, rgb_to_opponent
    img = rng.uniform(0.0, 1.0, (37, 53, 3)).astype(np.float32)
    opp = rgb_to_opponent(img)
    np.testing.assert_allclose(opp, img @ _RGB_TO_OPP.T, rtol=0, atol=3e-7)
    np.testing.assert_allclose(opponent_to_rgb(opp), img, rtol=0, atol=1e-6)
    np.testing.assert_allclose(opponent_to_rgb(opp), opp @ _OPP_TO_RGB.T, rtol=0, atol=3e-7)
    banded = np.empty_like(opp)
    for y0, y1 in ((0, 1), (1, 18), (18, 37)):
        assert rgb_to_opponent(img[y0:y1], dst=banded[y0:y1]) is not None
    np.testing.assert_array_equal(banded, opp)
    frame = np.zeros((37, 60, 3), np.float32)
    assert rgb_to_opponent(img, dst=frame[:, 4:57]) is not None  # rows with gaps between them
    np.testing.assert_array_equal(frame[:, 4:57], opp)
    assert not frame[:, :4].any() and not frame[:, 57:].any()
    with pytest.raises(ValueError, match="dst"):
        rgb_to_opponent(img, dst=np.empty((37, 53, 3), np.float64))
    with pytest.raises(ValueError, match="dst"):
        rgb_to_opponent(img, dst=np.empty((37, 53, 4), np.float32)[..., :3])


def _block_stats_reference(opp, max_blocks):
    """The block statistics as cv2.filter2D, abs and area resizes computed them (before the
    kernel)."""
    import math

    import cv2

    from effects.noise_profile import _BLOCK, _IMMERKAER
    h, w, _ = opp.shape
    hb, wb = (h - 2) // _BLOCK, (w - 2) // _BLOCK
    step = max(1, -(-hb * wb // max_blocks))
    res = cv2.filter2D(opp[: hb * _BLOCK + 2, : wb * _BLOCK + 2], cv2.CV_32F, _IMMERKAER,
                       borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    core = opp[1:1 + hb * _BLOCK, 1:1 + wb * _BLOCK]
    keep = np.concatenate([np.arange(k * _BLOCK, (k + 1) * _BLOCK) for k in range(0, hb, step)])
    res, core = np.abs(res[keep]), core[keep]
    n = len(range(0, hb, step))
    area = lambda z: cv2.resize(np.ascontiguousarray(z), (wb, n), interpolation=cv2.INTER_AREA)
    sig = area(res).reshape(-1, 3) * np.float32(math.sqrt(math.pi / 2))
    luma = core[..., 0]
    return area(luma).ravel(), sig, area(((luma >= 0.995) | (luma <= 1e-4)).astype(np.float32)).ravel() > 0


@pytest.mark.parametrize("max_blocks", [6000, 7])
def test_block_stats_kernel_equals_opencv_chain(rng, monkeypatch, max_blocks):
    """Block means, Immerkær sigmas and clipping flags of the kernel against the filter2D /
    area-resize chain, on an odd size with clipped pixels; every block row, and every
    step-th when there are too many blocks."""
    import effects.noise_profile as npm
    monkeypatch.setattr(npm, "_MAX_BLOCKS", max_blocks)
    img = np.clip(_ramp(83, 101) + rng.normal(0, 0.02, (83, 101, 3)).astype(np.float32), 0, 1)
    img[40:45, 60:70] = 1.0
    img[5:9, 20:30] = 0.0  # (in the first block row, which the subsampled case keeps)
    opp = npm.rgb_to_opponent(img)
    mean_y, sig, clipped = npm._block_stats(opp)
    ref_mean, ref_sig, ref_clipped = _block_stats_reference(opp, max_blocks)
    assert mean_y.shape == ref_mean.shape and sig.shape == ref_sig.shape == (mean_y.size, 3)
    np.testing.assert_array_equal(mean_y, ref_mean)  # the same sums in the same order
    np.testing.assert_array_equal(clipped, ref_clipped)
    assert clipped.any() and not clipped.all()
    np.testing.assert_allclose(sig, ref_sig, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("factor, error", [("x", TypeError), (None, TypeError), (True, TypeError),
                                           (-1, ValueError), (-0.5, ValueError), (float("nan"), ValueError),
                                           (float("inf"), ValueError), (1e160, ValueError),
                                           (10 ** 400, ValueError)])
def test_scaled_refuses_a_factor_that_is_not_a_finite_number_at_least_0(factor, error):
    """'x' failed with numpy's 'could not convert string to float' (no argument named) and -1
    was squared into 1 without a word."""
    prof = NoiseProfile((1e-3, 2e-3, 3e-3), (1e-5, 1e-5, 1e-5))
    with pytest.raises(error, match="scaled: `factor` must be"):
        prof.scaled(factor)
    assert prof.scaled(np.float32(0.0)).a == (0.0, 0.0, 0.0) and prof.scaled(2).b == prof.scaled(2.0).b


def test_a_negative_n_bins_is_refused():
    """n_bins=-1 was accepted: a count of bins cannot be negative."""
    with pytest.raises(ValueError, match=r"NoiseProfile.n_bins: expected an integer >= 0.*got -1"):
        NoiseProfile((1e-3,) * 3, (1e-5,) * 3, n_bins=-1)
    assert NoiseProfile((1e-3,) * 3, (1e-5,) * 3, n_bins=0).n_bins == 0


@pytest.mark.parametrize("n_a, n_b", [(2, 1), (0, 1), (1, 0)])
def test_coarse_models_of_different_lengths_are_refused(n_a, n_b):
    """coarse_a with 2 scales and coarse_b with 1 was accepted, and model_at silently used
    only the first scale of both (the longer tuple truncated to the shorter)."""
    rows = ((2e-3, 2e-3, 2e-3), (4e-3, 4e-3, 4e-3))
    with pytest.raises(ValueError, match=rf"coarse_a and coarse_b: .*same length, got {n_a} and {n_b}"):
        NoiseProfile((1e-3,) * 3, (1e-5,) * 3, coarse_a=rows[:n_a], coarse_b=rows[:n_b])
