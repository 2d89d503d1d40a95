"""Tests for effects.denoise (sky/skin-aware multiscale Wiener denoising)."""
import numpy as np
import pytest

from effects import DenoiseParams, NoiseProfile, denoise, estimate_noise


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
    (dict(skin_chroma_radius=-1), "skin_chroma_radius"),
    (dict(skin_chroma_eps=0.0), "skin_chroma_eps"),
    (dict(skin_texture_contrast=0.0), "skin_texture_contrast"),
    (dict(skin_luma_floor=(1.5,)), "skin_luma_floor"),
    (dict(skin_luma_floor=()), "skin_luma_floor"),
    (dict(skin_chroma_edge=0.0), "skin_chroma_edge"),
])
def test_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DenoiseParams(**kwargs)


def _skin_scene(h=96, w=96, seed=3):
    """Skin-coloured patch with multiplicative pore-like texture (5 % contrast) and dark dots."""
    r = np.random.default_rng(seed)
    pores = r.standard_normal((h, w)).astype(np.float32)
    import cv2
    pores = cv2.GaussianBlur(pores, (0, 0), 1.2) - cv2.GaussianBlur(pores, (0, 0), 4.0)
    pores /= pores.std()
    dots = cv2.GaussianBlur((r.random((h, w)) < 0.01).astype(np.float32), (0, 0), 1.3)
    tex = 1.0 + 0.05 * pores - 0.25 * dots / dots.max()
    return (np.array([0.55, 0.36, 0.27], np.float32) * tex[..., None]).astype(np.float32)


def _pore_band(x):
    import cv2
    y = x.mean(axis=2)
    return cv2.GaussianBlur(y, (0, 0), 0.8) - cv2.GaussianBlur(y, (0, 0), 3.0)


def test_skin_keeps_texture_and_removes_noise(rng):
    clean = _skin_scene()
    skin = np.ones(clean.shape[:2], np.float32)
    noisy = _noisy(clean, 3200, rng)
    out = denoise(noisy, skin_mask=skin)
    c = (slice(8, -8), slice(8, -8))
    bc, bo = _pore_band(clean)[c], _pore_band(out)[c]
    kept = float((bo * bc).sum() / (bc * bc).sum())
    removed = 1.0 - np.sqrt(_mse(out[c], clean[c], ...) / _mse(noisy[c], clean[c], ...))
    assert kept > 0.65, kept
    assert removed > 0.45, removed


def test_skin_chroma_follows_luma_texture(rng):
    """On skin, chroma that scales with luma (multiplicative texture) survives the luma-guided
    filter; independent chroma shrinkage (radius 0) erases much more of it."""
    clean = _skin_scene()
    skin = np.ones(clean.shape[:2], np.float32)
    noisy = _noisy(clean, 800, rng)
    chroma_rb = lambda x: x[8:-8, 8:-8, 0] - x[8:-8, 8:-8, 2]  # red-blue difference
    err = lambda x: float(np.sqrt(np.mean((chroma_rb(x) - chroma_rb(clean)) ** 2)))
    guided = denoise(noisy, skin_mask=skin)
    plain = denoise(noisy, skin_mask=skin, params=DenoiseParams(skin_chroma_radius=0))
    assert err(guided) < 0.75 * err(plain)
    assert err(guided) < 0.5 * err(noisy)


def test_no_colour_blowout_at_dark_skin_edge(rng):
    """A dark gap next to red lips inside the skin mask: the chroma ratio is clamped, so the
    dark pixels stay dark and near neutral instead of turning saturated red."""
    img = np.zeros((64, 64, 3), np.float32)
    img[:] = (0.5, 0.33, 0.25)
    img[28:36, 16:48] = (0.35, 0.08, 0.08)  # lips
    img[31:33, 16:48] = (0.004, 0.003, 0.003)  # dark gap between the lips
    noisy = np.clip(_noisy(img, 800, rng), 0, 1)
    out = denoise(noisy, skin_mask=np.ones((64, 64), np.float32))
    gap = out[31:33, 20:44]
    assert float(gap.max()) < 0.03  # clean gap 0.004; lips 0.35


def test_strips_equal_whole_frame(rng, monkeypatch):
    """The finest band is processed in row strips with a halo: any strip height gives the
    whole-frame result (up to float rounding)."""
    import sys
    mod = sys.modules["effects.denoise"]
    clean, sky = _scene(77, 65)
    noisy = _noisy(clean, 3200, rng)
    for skin_box in ((slice(50, 70), slice(10, 40)), (slice(60, None), slice(41, None))):  # inside / at the corner
        skin = np.zeros_like(sky)
        skin[skin_box] = 1.0
        monkeypatch.setattr(mod, "_STRIP", 10_000)
        whole = denoise(noisy, sky_mask=sky, skin_mask=skin)
        for strip in (1, 5, 16):
            monkeypatch.setattr(mod, "_STRIP", strip)
            np.testing.assert_allclose(denoise(noisy, sky_mask=sky, skin_mask=skin), whole, atol=1e-6)


def test_threads_and_strips_do_not_change_the_result(rng, monkeypatch):
    """The half-resolution band and the skin chromaticity are processed in row strips too, and
    all strips are shared out to the threads as they come free: any strip heights, on one
    thread or two, give the single-threaded whole-frame result (up to float rounding)."""
    import sys

    import cv2
    mod, bands = sys.modules["effects.denoise"], sys.modules["effects._bands"]
    clean, sky = _scene(150, 130)
    noisy = _noisy(clean, 3200, rng)
    skin = np.zeros_like(sky)
    skin[90:140, 20:90] = 1.0
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        for name, v in (("_STRIP", 10_000), ("_COEF_STRIP", 10_000), ("_COARSE_STRIPS_MIN", 1 << 40)):
            monkeypatch.setattr(mod, name, v)
        whole = denoise(noisy, sky_mask=sky, skin_mask=skin)
        monkeypatch.setattr(bands, "MIN_BAND_PIXELS", 1)  # split even this small frame
        monkeypatch.setattr(mod, "_COARSE_STRIPS_MIN", 0)
        for n in (1, 2):
            cv2.setNumThreads(n)
            for strip, coef_strip in ((8, 7), (5, 16)):
                monkeypatch.setattr(mod, "_STRIP", strip)
                monkeypatch.setattr(mod, "_COEF_STRIP", coef_strip)
                np.testing.assert_allclose(denoise(noisy, sky_mask=sky, skin_mask=skin), whole, atol=1e-6)
    finally:
        cv2.setNumThreads(threads)


def test_per_scale_model_used_with_iso(rng):
    """A JPEG-like sky (fine noise removed, coarse kept) is denoised more at coarse scales
    when the ISO is known (per-scale model) than without it."""
    import cv2
    y = np.linspace(0.1, 0.4, 384, dtype=np.float32)[None, :, None]
    clean = np.repeat(np.repeat(y, 256, axis=0), 3, axis=2)  # smooth ramp: brightness bins for the fit
    g = 3200 / 100.0
    white = rng.standard_normal(clean.shape).astype(np.float32) * np.sqrt(5e-5 * g * clean).astype(np.float32)
    coarse = cv2.GaussianBlur(white, (0, 0), 1.5) * 2.5  # fine scales gone, coarse kept
    noisy = clean + coarse
    sky = np.ones(clean.shape[:2], np.float32)  # a sky: denoised at every scale
    without = denoise(noisy, sky_mask=sky)
    with_iso = denoise(noisy, sky_mask=sky, iso=3200)
    assert _mse(with_iso, clean, ...) < 0.7 * _mse(without, clean, ...)


def test_blind_per_scale_model_helps_jpeg_like_noise(rng):
    """Without ISO, the coarse-scale noise left by compression is still measured (bounded at
    8x the fine-scale variance) and removed: better than a white-noise model of the same fit."""
    import cv2
    y = np.linspace(0.1, 0.4, 384, dtype=np.float32)[None, :, None]
    clean = np.repeat(np.repeat(y, 256, axis=0), 3, axis=2)
    sd = np.sqrt(5e-5 * 32 * clean).astype(np.float32)
    white = lambda: rng.standard_normal(clean.shape).astype(np.float32) * sd
    # Fine-scale noise mostly removed (0.3 of it left), coarse kept: like a JPEG's flat blocks.
    noisy = clean + 0.3 * white() + cv2.GaussianBlur(white(), (0, 0), 1.5) * 2.5
    sky = np.ones(clean.shape[:2], np.float32)
    prof = estimate_noise(noisy)
    assert prof.model_at(1, 0)[0] > 1.5 * prof.a[0]
    white_model = NoiseProfile(prof.a, prof.b, prof.n_bins, prof.source)  # no per-scale entries
    blind = denoise(noisy, sky_mask=sky)
    as_white = denoise(noisy, sky_mask=sky, noise=white_model)
    assert _mse(blind, clean, ...) < 0.85 * _mse(as_white, clean, ...)


def test_skin_luma_floor(rng):
    """Floor 1 keeps skin luma exactly (chroma still denoised). The default floor keeps more
    pore texture than a plain Wiener gain (floor 0), and some grain on flat skin."""
    clean = _skin_scene()
    skin = np.ones(clean.shape[:2], np.float32)
    noisy = np.clip(_noisy(clean, 3200, rng), 0, 1)
    keep = denoise(noisy, skin_mask=skin, params=DenoiseParams(skin_luma_floor=(1.0,)))
    np.testing.assert_allclose(keep.mean(axis=2), noisy.mean(axis=2), atol=2e-5)
    assert np.abs(keep - noisy).max() > 1e-3  # chroma changed
    c = (slice(8, -8), slice(8, -8))
    kept = lambda x: float((_pore_band(x)[c] * _pore_band(clean)[c]).sum() / (_pore_band(clean)[c] ** 2).sum())
    plain_p = DenoiseParams(skin_luma_floor=(0.0,))
    assert kept(denoise(noisy, skin_mask=skin)) > kept(denoise(noisy, skin_mask=skin, params=plain_p)) + 0.03
    flat = np.full_like(clean, 0.3)
    noisy_flat = _noisy(flat, 3200, rng)
    grain = lambda x: float(np.std(x.mean(axis=2)[c]))
    g_default = grain(denoise(noisy_flat, skin_mask=skin))
    assert grain(denoise(noisy_flat, skin_mask=skin, params=plain_p)) < g_default < grain(noisy_flat)


def test_no_colour_halo_at_chroma_edge_inside_skin_mask(rng):
    """Orange and purple of similar luma side by side, both under the skin mask (a patch on
    clothing that a soft matte covers): the colour-edge guard keeps the orange next to the
    edge orange; without it the luma-guided chroma spreads purple into it (a halo)."""
    img = np.zeros((64, 96, 3), np.float32)
    img[:, :48] = (0.60, 0.15, 0.05)  # orange
    img[:, 48:] = (0.30, 0.10, 0.45)  # purple, similar luma
    noisy = np.clip(_noisy(img, 800, rng), 0, 1)
    skin = np.ones(img.shape[:2], np.float32)
    near = (slice(8, -8), slice(40, 46))  # 2-8 px left of the edge
    err = lambda x: float(np.sqrt(np.mean((x[near] - img[near]) ** 2)))
    guarded = denoise(noisy, skin_mask=skin)
    unguarded = denoise(noisy, skin_mask=skin, params=DenoiseParams(skin_chroma_edge=float("inf")))
    assert err(guarded) < 0.5 * err(unguarded), (err(guarded), err(unguarded))


# ----------------------------------------------------------------- fused kernels vs numpy
# The compiled kernels of effects.denoise replaced chains of numpy/OpenCV calls; each is
# checked here against a plain numpy transcription of the chain it fuses, on odd sizes.

def _mod():
    import sys
    return sys.modules["effects.denoise"]


def _planes(rng, *shape, lo=0.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def _gain_reference(energy, thresh):
    return np.maximum(np.float32(1.0) - thresh / np.maximum(energy, np.float32(1e-20)), np.float32(0.0))


@pytest.mark.parametrize("skin, chroma, floor", [(False, False, 0.0), (True, False, 0.45), (True, True, 0.45),
                                                 (True, True, 0.0)])
def test_finest_rows_kernel_equals_numpy(rng, skin, chroma, floor):
    from effects.noise_profile import _OPP_TO_RGB
    mod = _mod()
    n, w, row0, n_out, col0, cols = 13, 37, 2, 9, 5, 23
    band = _planes(rng, n, w, 3, lo=-0.05, hi=0.05)
    energy = _planes(rng, n, w, 3, hi=2e-3)
    energy[0, :4] = 0.0  # flat zero band: gain 0, not NaN
    root_t = _planes(rng, n, w, 3, hi=0.05)
    up_rec = _planes(rng, n, w, 3, lo=-0.2, hi=1.1)
    kw = _planes(rng, n, cols, lo=-0.1, hi=1.1) if skin else mod._NO_PLANE  # pyrUp overshoot: clipped
    ratio = _planes(rng, n, cols, 3, lo=-1.0, hi=1.0) if chroma else None
    weight = _planes(rng, n, cols, 3) if chroma else None
    out = np.full((n_out, w, 3), np.nan, np.float32)
    # (The kernel reads them packed as _skin_chroma_coefs makes them: ratio_1, ratio_2, weight_1, weight_2.)
    packed = mod._rows(np.concatenate([ratio[..., 1:], weight[..., 1:]], axis=-1)) if chroma else mod._NO_PLANE
    mod._finest_rows(mod._rows(band), mod._rows(energy), mod._rows(root_t), mod._rows(up_rec), row0, kw, col0,
                     np.float32(floor), packed, _OPP_TO_RGB, np.float32(1.0), mod._rows(out))

    g = _gain_reference(energy, root_t * root_t)
    cs = slice(col0, col0 + cols)
    if skin:
        g[:, cs, 0] = np.maximum(g[:, cs, 0], np.clip(kw, 0.0, 1.0) * np.float32(floor))
    v = up_rec + band * g
    if chroma:
        sub = v[:, cs]
        sub[..., 1:] += (sub[..., :1] * ratio[..., 1:] - sub[..., 1:]) * weight[..., 1:]
    expected = np.clip(v[row0:row0 + n_out] @ _OPP_TO_RGB.T, 0.0, 1.0)
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("regions", [(False, False), (True, False), (True, True)])
def test_coarse_rows_kernel_equals_numpy(rng, regions):
    mod = _mod()
    n, w, row0, n_out = 11, 29, 1, 8
    band = _planes(rng, n, w, 3, lo=-0.05, hi=0.05)
    energy = _planes(rng, n, w, 3, hi=2e-3)
    up_noisy = _planes(rng, n, w, 3, lo=-0.1, hi=1.0)
    up_rec = _planes(rng, n, w, 3)
    sky = _planes(rng, n, w) if regions[0] else None
    skin = _planes(rng, n, w) * (1 - sky) if regions[1] else None
    profile_l, profile_c = ((1.0, 0.8), (2.0, 1.5), (1.0, 0.5)), ((1.0, 1.0), (4.0, 3.0), (4.0, 4.0))
    k_l, k_c = mod._strengths(profile_l, 1, 1.3), mod._strengths(profile_c, 1, 1.3)
    coef_a = np.array([3e-4, 2e-4, 1e-4], np.float32)
    coef_b = np.array([2e-6, 1e-6, 5e-7], np.float32)
    floor = np.float32(0.3)
    out = np.empty((n_out, w, 3), np.float32)
    mod._coarse_rows(mod._rows(band), mod._rows(energy), mod._rows(up_noisy), mod._rows(up_rec), row0,
                     mod._plane(sky), mod._plane(skin), k_l, k_c, coef_a, coef_b, floor, mod._rows(out))

    zero = np.zeros((n, w), np.float32)
    s, t = (zero if x is None else x for x in (sky, skin))
    k2 = [np.square(s * k[1] + t * k[2] + k[0]) for k in (k_l, k_c, k_c)]
    y = np.maximum(up_noisy[..., 0], 0.0)
    thresh = np.stack([(y * coef_a[c] + coef_b[c]) * k2[c] for c in range(3)], axis=-1)
    g = _gain_reference(energy, thresh)
    g[..., 0] = np.maximum(g[..., 0], t * floor)
    expected = (up_rec + band * g)[row0:row0 + n_out]
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-7)


def test_root_threshold_kernel_equals_numpy(rng):
    mod = _mod()
    h, w = 7, 19
    luma = _planes(rng, h, w, lo=-0.1, hi=1.0)
    sky = _planes(rng, h, w)
    skin = (1 - sky) * _planes(rng, h, w)
    k_l = mod._strengths(((1.0,), (2.0,), (0.7,)), 0, 1.0)
    k_c = mod._strengths(((1.0,), (4.0,), (4.0,)), 0, 1.0)
    coef_a = np.array([3e-4, 2e-4, 1e-4], np.float32)
    coef_b = np.array([2e-6, 1e-6, 5e-7], np.float32)
    for s, t in ((sky, skin), (None, skin), (None, None)):
        out = np.empty((h, w, 3), np.float32)
        mod._root_threshold_rows(luma, mod._plane(s), mod._plane(t), k_l, k_c, coef_a, coef_b, mod._rows(out))
        s0, t0 = (np.zeros_like(luma) if x is None else x for x in (s, t))
        y = np.maximum(luma, 0.0)
        k2 = [np.square(s0 * k[1] + t0 * k[2] + k[0]) for k in (k_l, k_c, k_c)]
        expected = np.sqrt(np.stack([(y * coef_a[c] + coef_b[c]) * k2[c] for c in range(3)], axis=-1))
        np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-9)


def _skin_chroma_reference(y1, g1, skin1, noise, p, rows, cols):
    """The skin chromaticity's numpy/OpenCV chain as it was before the kernels, on the whole
    region at once (no strips)."""
    import cv2
    mod = _mod()
    box = lambda x: cv2.boxFilter(x, -1, (2 * p.skin_chroma_radius + 1,) * 2, borderType=cv2.BORDER_REFLECT)
    square3 = np.ones((3, 3), np.uint8)
    h1, w1 = y1.shape
    m = 2 * p.skin_chroma_radius + 4
    ys = slice(max(0, rows[0] - m), min(h1, rows[1] + m))
    xs = slice(max(0, cols[0] - m), min(w1, cols[1] + m))
    a0, b0 = noise.model_at(0, 0)
    y = np.ascontiguousarray(y1[ys, xs])
    yf = np.maximum(y, mod._RATIO_FLOOR)
    mean_y = box(y)
    my = np.maximum(mean_y, 0)
    eps = np.maximum(my * np.float32(a0 * p.skin_chroma_eps) + np.float32(b0 * p.skin_chroma_eps), np.float32(1e-12))
    denom = np.maximum(box(y * y) - mean_y * mean_y, 0) + eps
    inv_y2 = np.float32(1) / np.square(np.maximum(mean_y, mod._RATIO_FLOOR))
    ratio3, weight3 = np.zeros((h1, w1, 3), np.float32), np.zeros((h1, w1, 3), np.float32)
    for c in (1, 2):
        ratio = g1[ys, xs, c] / yf
        mean_r = box(ratio)
        cov = box(y * ratio) - mean_y * mean_r
        a = cov / denom
        b = mean_r - a * mean_y
        fit = box(a) * y + box(b)
        fit = np.minimum(np.maximum(fit, cv2.erode(mean_r, square3, borderType=cv2.BORDER_REFLECT)),
                         cv2.dilate(mean_r, square3, borderType=cv2.BORDER_REFLECT))
        weight = skin1[ys, xs].copy()
        if np.isfinite(p.skin_chroma_edge):
            resid = box(ratio * ratio) - mean_r * mean_r - a * cov
            a1, b1 = noise.model_at(1, c)
            nv = (my * np.float32(mod._PYRDOWN_VAR * a1) + np.float32(mod._PYRDOWN_VAR * b1)) * inv_y2
            nv = np.maximum(nv, np.float32(p.skin_chroma_edge) ** 2) * mod._EDGE_KAPPA
            wedge = np.float32(1) / (np.square(resid / nv) + np.float32(1))
            weight *= cv2.erode(wedge, square3, borderType=cv2.BORDER_REFLECT)
        ratio3[ys, xs, c], weight3[ys, xs, c] = fit, weight
    return ratio3, weight3


@pytest.mark.parametrize("edge", [0.02, float("inf")])
def test_skin_chroma_kernels_equal_numpy(rng, monkeypatch, edge):
    """The skin chromaticity's three kernels, in strips, against the whole-region numpy chain
    (a region taller than a strip, ending inside the frame on two sides)."""
    mod = _mod()
    monkeypatch.setattr(mod, "_COEF_STRIP", 40)
    h1, w1 = 101, 47
    y1 = _planes(rng, h1, w1, lo=-0.01, hi=0.8)
    # Chroma mostly following luma (skin), with noise and a colour edge (the guard's two sides).
    chroma = y1[..., None] * np.float32([0.1, -0.05]) + _planes(rng, h1, w1, 2, lo=-2e-3, hi=2e-3)
    chroma[:, 30:] += np.float32([0.08, 0.0])
    g1 = np.ascontiguousarray(np.concatenate([y1[..., None], chroma], axis=-1))
    skin1 = _planes(rng, h1, w1)
    noise = NoiseProfile((1e-3, 5e-4, 5e-4), (1e-5, 5e-6, 5e-6), coarse_a=((3e-3, 1e-3, 2e-3),),
                         coarse_b=((3e-5, 1e-5, 2e-5),))
    p = DenoiseParams(skin_chroma_edge=edge)
    rows, cols = (3, 90), (11, 40)
    got = mod._skin_chroma_coefs(y1, g1, skin1, noise, p, rows, cols)  # (ratio_1, ratio_2, weight_1, weight_2)
    ratio, weight = _skin_chroma_reference(y1, g1, skin1, noise, p, rows, cols)
    assert got.shape == (h1, w1, 4)
    np.testing.assert_allclose(got[..., :2], ratio[..., 1:], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[..., 2:], weight[..., 1:], rtol=0, atol=1e-5)
    assert 0.5 < float(weight[..., 1:].max()) <= 1.0  # (the weight is not all but vanishing)


@pytest.mark.parametrize("regions", [(True, True), (True, False), (False, True)])
def test_region_weight_kernel_equals_numpy(rng, regions):
    """sqrt-luma guide, then a * guide + b clipped to [0, 1] per region and, with both
    regions, divided by their sum where it passes 1: against the numpy chain."""
    mod = _mod()
    h, w = 9, 31
    luma = _planes(rng, h, w, lo=-0.05, hi=1.0)
    guide = np.empty_like(luma)
    mod._sqrt_relu(luma, guide)
    np.testing.assert_array_equal(guide, np.sqrt(np.maximum(luma, 0.0)))
    coefs = [(_planes(rng, h, w, lo=-1, hi=2), _planes(rng, h, w, lo=-0.5, hi=1)) if on else None for on in regions]
    out = [np.full((h, w), np.nan, np.float32) if on else mod._NO_PLANE for on in regions]
    planes = [x for ab in coefs for x in (ab if ab is not None else (mod._NO_PLANE, mod._NO_PLANE))]
    mod._region_weight_rows(guide, *planes, *out)
    expected = [np.clip(ab[0] * guide + ab[1], 0.0, 1.0) if ab is not None else None for ab in coefs]
    if all(regions):
        over = np.maximum(expected[0] + expected[1], 1.0)
        expected = [e / over for e in expected]
    for got, e in zip(out, expected):
        if e is None:
            assert got.size == 0
        else:
            np.testing.assert_allclose(got, e, rtol=0, atol=1e-7)


def test_scratch_arrays_are_per_thread_and_reused():
    """Strip work arrays: the shape asked for, C-contiguous, the same memory for the same
    thread and name (grown when a larger one is asked for), never another thread's."""
    import threading
    scratch = _mod()._Scratch()
    a = scratch.get("band", (10, 7, 3))
    assert a.shape == (10, 7, 3) and a.dtype == np.float32 and a.flags.c_contiguous
    b = scratch.get("band", (6, 7, 3))  # a shorter (last) strip: a row prefix of the same array
    assert b.flags.c_contiguous and np.shares_memory(a, b)
    assert not np.shares_memory(a, scratch.get("energy", (10, 7, 3)))
    c = scratch.get("band", (12, 7, 3))
    assert c.shape == (12, 7, 3) and scratch.get("band", (12, 7, 3)).ctypes.data == c.ctypes.data
    other = []
    t = threading.Thread(target=lambda: other.append(scratch.get("band", (12, 7, 3))))
    t.start()
    t.join()
    assert not np.shares_memory(other[0], c)


def test_a_huge_finite_skin_chroma_edge_is_off_without_an_overflow_warning(rng):
    """skin_chroma_edge=1e30 (as good as off) squared past float32's range with numpy's
    'overflow encountered in scalar power' RuntimeWarning; the result was right (the guard off)."""
    import warnings
    img = np.clip(_noisy(np.full((48, 64, 3), (0.6, 0.3, 0.2), np.float32), 800, rng), 0, 1)
    skin = np.ones(img.shape[:2], np.float32)
    off = denoise(img, skin_mask=skin, params=DenoiseParams(skin_chroma_edge=float("inf")))
    for edge in (1e30, 1e50):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = denoise(img, skin_mask=skin, params=DenoiseParams(skin_chroma_edge=edge))
        np.testing.assert_array_equal(got, off)
