"""Tests for effects.styles (Photographic Styles)."""
import json
import sys
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():  # colour-science, the reference here, warns that it cannot plot
    warnings.filterwarnings("ignore", message='"Matplotlib" related API features are not available')
    import colour

from effects.styles import STYLE_PRESETS, Style, apply_style

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
SRGB = colour.RGB_COLOURSPACES["sRGB"]
SKIN = np.array([0.68, 0.509, 0.305], np.float32) * 0.6  # MST-5, linear


def delta_e(a, b):
    lab = lambda x: colour.XYZ_to_Lab(colour.RGB_to_XYZ(np.asarray(x, np.float64), SRGB, apply_cctf_decoding=False))
    return colour.delta_E(lab(a), lab(b), method="CIE 2000")


@pytest.fixture
def chart(rng):
    """Skin block (left), random colours (right), smooth sky (top rows)."""
    img = rng.uniform(0.02, 0.8, (40, 60, 3)).astype(np.float32)
    img[10:, :20] = SKIN
    skin = np.zeros((40, 60), np.float32)
    skin[10:, :20] = 1.0
    img[:10] = np.linspace(0.3, 0.6, 10, dtype=np.float32)[:, None, None] * np.array([0.6, 0.8, 1.0], np.float32)
    sky = np.zeros((40, 60), np.float32)
    sky[:10] = 1.0
    return img, skin, sky


def test_presets_and_round_trip():
    assert set(STYLE_PRESETS) == {"standard", "rich_contrast", "vibrant", "warm", "cool"}
    for style in STYLE_PRESETS.values():
        assert Style.from_dict(json.loads(json.dumps(style.to_dict()))) == style
    assert STYLE_PRESETS["standard"].is_neutral


def test_the_presets_cannot_be_changed_for_the_whole_process():
    """STYLE_PRESETS and the portrait lighting looks were plain dicts: an entry replaced there
    changed every later develop() of the process (a global configuration), silently."""
    from effects import PORTRAIT_LIGHTING_LOOKS

    with pytest.raises(TypeError):
        STYLE_PRESETS["vibrant"] = Style("vibrant", saturation=1.0)
    with pytest.raises(TypeError):
        PORTRAIT_LIGHTING_LOOKS["stage"] = PORTRAIT_LIGHTING_LOOKS["studio"]
    assert STYLE_PRESETS["vibrant"].saturation == 0.35


@pytest.mark.parametrize("name", ["rich_contrast", "vibrant", "warm", "cool"])
def test_skin_protected_rest_changes(chart, name):
    img, skin, sky = chart
    out = apply_style(img, name, skin_mask=skin, sky_mask=sky)
    de = delta_e(img, out)
    skin_de, rest_de = np.median(de[skin > 0]), np.median(de[skin == 0])
    assert skin_de <= 1.5
    assert rest_de >= 4 * skin_de and rest_de > 1.0


def test_without_skin_mask_skin_changes(chart):
    img, skin, _ = chart
    out = apply_style(img, "warm")
    assert np.median(delta_e(img, out)[skin > 0]) > 1.5  # protection really comes from the mask


def test_reference_values_warm_and_cool_on_grey():
    grey = np.full((4, 4, 3), 0.18, np.float32)
    warm = apply_style(grey, "warm")[0, 0]
    cool = apply_style(grey, "cool")[0, 0]
    assert warm[0] > warm[2] and cool[2] > cool[0]
    # Warmth keeps luminance (within the gain's tiny Oklab round-trip error).
    assert float(warm @ LUMA) == pytest.approx(0.18, rel=0.01)
    assert float(cool @ LUMA) == pytest.approx(0.18, rel=0.01)


def test_tone_curve_fixes_black_white_and_grey_and_adds_contrast():
    ramp = np.repeat(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], 3, axis=2)
    out = apply_style(ramp, Style(tone=1.0))
    y = out[0] @ LUMA
    assert y[0] == pytest.approx(0.0, abs=1e-5) and y[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.all(np.diff(y) > 0)  # monotonic: no reversals
    grey = apply_style(np.full((1, 1, 3), 0.18, np.float32), Style(tone=1.0))
    assert float(grey[0, 0] @ LUMA) == pytest.approx(0.18, rel=0.02)
    assert y[8] < ramp[0, 8, 0]  # shadows deeper


def test_zero_strength_is_exact_identity_and_input_unchanged(chart):
    img, skin, sky = chart
    before = img.copy(), skin.copy(), sky.copy()
    for name in STYLE_PRESETS:
        out = apply_style(img, name, skin_mask=skin, sky_mask=sky, strength=0.0)
        assert out is not img
        np.testing.assert_array_equal(out, img)
        full = apply_style(img, name, skin_mask=skin, sky_mask=sky)
        assert full.shape == img.shape and full.dtype == np.float32
        assert 0.0 <= full.min() and full.max() <= 1.0
    for a, b in zip(before, (img, skin, sky)):
        np.testing.assert_array_equal(a, b)


def test_sky_gets_more_saturation(chart):
    img, skin, sky = chart
    with_sky = apply_style(img, "vibrant", sky_mask=sky)
    without = apply_style(img, "vibrant")
    chroma = lambda x: np.hypot(*colour.XYZ_to_Oklab(colour.RGB_to_XYZ(x[:10], SRGB, apply_cctf_decoding=False))[..., 1:].transpose(2, 0, 1))
    assert chroma(with_sky).mean() > chroma(without).mean() * 1.05


def test_no_new_clipping_on_saturated_colours(rng):
    img = rng.uniform(0.01, 0.99, (32, 32, 3)).astype(np.float32)
    out = apply_style(img, Style(saturation=1.0, tone=1.0, warmth=1.0))
    clipped = lambda x: (x.max(axis=2) >= 0.999) | (x.min(axis=2) <= 0.0005)
    assert np.mean(clipped(out) & ~clipped(img)) <= 0.001


def test_a_bright_saturated_sky_keeps_its_gradation_and_headroom():
    """A vibrant style pressed 26-66 % of three blue skies' pixels onto the gamut boundary (blue
    at 254-255): flat patches of one electric blue. The soft knee eases colours off before it."""
    t = np.linspace(0.0, 1.0, 400, dtype=np.float32)
    # A clear sky's blue, brighter toward the horizon (right), in linear RGB.
    img = np.stack([0.12 + 0.45 * t, 0.30 + 0.45 * t, 0.70 + 0.23 * t], axis=-1)[None].repeat(3, axis=0)
    sky = np.ones(img.shape[:2], np.float32)
    out = apply_style(img, "vibrant", sky_mask=sky)
    codes = lambda x: np.round(255 * colour.cctf_encoding(np.clip(x[1], 0, 1))).astype(int)
    assert codes(out).max() <= 251  # headroom: nothing pressed onto 252-255 (the ramp's top is 247)
    # Gradation: the ramp's 8-bit colours stay (almost) as many as the input's, and in order.
    assert len(np.unique(codes(out), axis=0)) >= 0.9 * len(np.unique(codes(img), axis=0))
    assert (np.diff(out[1].sum(axis=1)) > 0).all()
    # Still more vivid: chroma (Oklab) up along the whole ramp.
    chroma = lambda x: np.hypot(*colour.XYZ_to_Oklab(colour.RGB_to_XYZ(x[1], SRGB, apply_cctf_decoding=False))[:, 1:].T)
    assert (chroma(out) > chroma(img)).all() and chroma(out).mean() > 1.2 * chroma(img).mean()


def test_teeth_protected():
    img = np.full((8, 8, 3), [0.62, 0.58, 0.5], np.float32)
    teeth = np.ones((8, 8), np.float32)
    out = apply_style(img, "warm", teeth_mask=teeth)
    assert np.max(delta_e(img, out)) < 0.5


def test_one_pixel_and_all_sky():
    px = np.array([[[0.2, 0.3, 0.6]]], np.float32)
    assert apply_style(px, "vibrant", sky_mask=np.ones((1, 1), np.float32)).shape == (1, 1, 3)


def test_unknown_style_lists_valid_names():
    with pytest.raises(ValueError, match="valid names are .*cool.*rich_contrast.*"):
        apply_style(np.zeros((2, 2, 3), np.float32), "sepia")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(image=np.zeros((4, 4), np.float32)), ValueError, "image: expected shape H×W×3"),
        (dict(image=np.zeros((4, 4, 3), np.uint8)), TypeError, "as_linear_rgb"),
        (dict(image=np.full((4, 4, 3), -1.0, np.float32)), ValueError, r"\[0, 1\]"),
        (dict(style=3), TypeError, "style: expected a preset name"),
        (dict(skin_mask=np.zeros((3, 4), np.float32)), ValueError, "skin_mask: expected shape"),
        (dict(sky_mask=np.full((4, 4), 2.0, np.float32)), ValueError, r"sky_mask: expected values in \[0, 1\]"),
        (dict(strength=2.5), ValueError, r"strength: expected a number in \[0, 2\]"),
        (dict(strength="full"), TypeError, "strength"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = dict(image=np.full((4, 4, 3), 0.2, np.float32), style="warm")
    args.update(kwargs)
    image, style = args.pop("image"), args.pop("style")
    with pytest.raises(exc, match=match):
        apply_style(image, style, **args)


def test_style_validation():
    with pytest.raises(ValueError, match=r"Style.tone: expected a number in \[-1.0, 1.0\]"):
        Style(tone=2.0)
    with pytest.raises(TypeError, match="Style.warmth"):
        Style(warmth="hot")
    with pytest.raises(ValueError, match="unknown Style keys .*valid keys"):
        Style.from_dict({"tone": 0.1, "contrast": 1})
    with pytest.raises(TypeError, match="data: expected a dict"):
        Style.from_dict([("tone", 0.1)])


def reference_style(img, style, skin=None, sky=None, teeth=None, strength=1.0):
    """The module docstring's algorithm, written per pixel with colour-science's own Oklab."""
    rgb = np.asarray(img, np.float64)
    to_lab = lambda x: colour.XYZ_to_Oklab(colour.RGB_to_XYZ(x, SRGB, apply_cctf_decoding=False))
    g = np.array([2.0 ** (0.2 * style.warmth), 1.0, 2.0 ** (-0.4 * style.warmth)])
    g /= float(LUMA.astype(np.float64) @ g)
    lab0, lab = to_lab(rgb), to_lab(rgb * g)
    L = lab[..., 0]
    lab[..., 0] = L + 1.2 * style.tone * L * (1 - L) * (L - np.cbrt(0.18))
    c = 1.0 + style.saturation + (style.sky_saturation * sky if sky is not None else 0.0)
    lab[..., 1:] *= np.asarray(c)[..., None] if np.ndim(c) else c
    protect = np.zeros(rgb.shape[:2]) if skin is None else style.skin_protection * skin
    if teeth is not None:
        protect = np.maximum(protect, teeth)
    wt = (strength * (1.0 - protect))[..., None]
    out = lab0 + wt * (lab - lab0)
    # Back with the exact inverse of RGB -> XYZ (colour-science's sRGB XYZ -> RGB is the rounded
    # published IEC matrix, which differs by ~1e-4).
    return colour.Oklab_to_XYZ(out) @ np.linalg.inv(SRGB.matrix_RGB_to_XYZ).T


@pytest.mark.parametrize("name,strength", [("vibrant", 1.0), ("warm", 0.7), ("rich_contrast", 1.0), ("cool", 0.4),
                                           ("warm", 1.6)])  # above 1 (develop's style_strength goes to 2)
def test_matches_per_pixel_reference_across_strips(chart, monkeypatch, name, strength):
    """Strip processing and the LMS' closed form equal the plain Oklab algorithm (where in gamut)."""
    import effects.styles as styles

    img, skin, sky = chart
    img = 0.2 + 0.5 * img  # mid-range colours: the gamut step leaves (almost) all of them alone
    teeth = np.zeros_like(skin)
    teeth[30:34, 30:40] = 1.0
    monkeypatch.setattr(styles, "_STRIP_PIXELS", 7 * 60)  # 7-row strips, a partial last one
    out = apply_style(img, name, skin_mask=skin, sky_mask=sky, teeth_mask=teeth, strength=strength)
    ref = reference_style(img, STYLE_PRESETS[name], skin, sky, teeth, strength)
    # Where the gamut step's soft knee leaves the colour alone: the path stays inside its
    # bounds out to 1.6 times the change.
    far = reference_style(img, STYLE_PRESETS[name], skin, sky, teeth, 1.6 * strength)
    inside = ((far > 0.001) & (far < 0.95)).all(axis=2)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(out[inside], ref[inside], atol=2e-5)


def test_strip_size_does_not_change_the_result(rng, monkeypatch):
    import effects.styles as styles

    img = rng.uniform(0.0, 1.0, (23, 31, 3)).astype(np.float32)  # many pixels pulled into gamut
    img[:, :5, 2] = 0.0
    sky = np.zeros((23, 31), np.float32)
    sky[:8] = 1.0
    whole = apply_style(img, "vibrant", sky_mask=sky)
    monkeypatch.setattr(styles, "_STRIP_PIXELS", 3 * 31 + 5)
    # SIMD lanes vs scalar tails round differently (~1e-6); a strip bug would be far larger.
    np.testing.assert_allclose(apply_style(img, "vibrant", sky_mask=sky), whole, atol=1e-5)


def test_gamut_pull_is_stable_for_a_channel_at_zero():
    """A colour with a channel at exactly 0 starts its gamut path on the bound: the result must
    not depend on float rounding (it used to jump by ~0.02 for a 1e-6 change of the input)."""
    base = np.array([0.0915, 0.0406, 0.0], np.float32)
    img = np.tile(base, (16, 16, 1))
    img *= (1.0 + np.linspace(-1e-6, 1e-6, 256, dtype=np.float32).reshape(16, 16, 1))
    out = apply_style(img, "cool")
    assert np.ptp(out.reshape(-1, 3), axis=0).max() < 1e-5
    assert out.min() >= 0.0


def test_spread_order_is_a_permutation_whose_halves_interleave():
    from effects.styles import _spread_order

    for n in (1, 2, 7, 10, 94):
        order = _spread_order(n)
        assert sorted(order.tolist()) == list(range(n))
    assert sorted(_spread_order(10)[:5].tolist()) == [0, 2, 4, 6, 8]  # two bands: even and odd strips


def test_thread_bands_do_not_change_the_result(rng, monkeypatch):
    """Strips are dealt to the threads in a spread order; any split gives the same image."""
    import cv2

    import effects._bands as bands
    import effects.styles as styles

    img = rng.uniform(0.0, 1.0, (64, 50, 3)).astype(np.float32)  # many pixels pulled into gamut
    img[:, :7, 1] = 0.0
    sky = np.zeros((64, 50), np.float32)
    sky[:20] = 1.0
    monkeypatch.setattr(styles, "_STRIP_PIXELS", 5 * 50)  # 13 strips, a partial last one
    monkeypatch.setattr(bands, "MIN_BAND_PIXELS", 200)  # room for several bands
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = apply_style(img, "vibrant", sky_mask=sky)
        cv2.setNumThreads(3)
        three = apply_style(img, "vibrant", sky_mask=sky)
    finally:
        cv2.setNumThreads(before)
    assert np.array_equal(one, three)


def test_oklab_constants_are_colour_sciences():
    """The published matrices written into effects.styles are colour-science's, digit for digit
    (so the styles' colour maths is the reference library's without importing it at run time)."""
    from colour.models import oklab

    styles = sys.modules["effects.styles"]
    assert np.array_equal(np.array(styles._SRGB_TO_XYZ), SRGB.matrix_RGB_to_XYZ)
    assert np.array_equal(np.array(styles._OKLAB_M1), oklab.MATRIX_1_XYZ_TO_LMS)
    assert np.array_equal(np.array(styles._OKLAB_M2), oklab.MATRIX_2_LMS_TO_LAB)



@pytest.mark.parametrize("name", ["warm", "vibrant", "rich_contrast"])
def test_a_wide_gamut_image_styled_in_its_own_primaries_matches_its_srgb_twin(rng, name):
    """develop keeps a ProPhoto or Display P3 photo in its own primaries, and the style read them
    as sRGB: under warm a ProPhoto blue sky turned violet (11 levels off on average)."""
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    pro = colour.RGB_COLOURSPACES["ProPhoto RGB"]
    adapt = colour.adaptation.matrix_chromatic_adaptation_VonKries(
        colour.xy_to_XYZ(pro.whitepoint), colour.xy_to_XYZ(d65), "Bradford")
    pro_to_xyz = adapt @ pro.matrix_RGB_to_XYZ
    srgb_to_xyz = np.linalg.inv(SRGB.matrix_XYZ_to_RGB)  # the exact inverse, as in reference_style
    img = (0.15 + 0.4 * rng.random((24, 32, 3))).astype(np.float32)  # colours well inside both gamuts
    img[:8] = [0.12, 0.25, 0.55]  # a blue sky
    in_pro = (img @ np.linalg.solve(pro_to_xyz, srgb_to_xyz).T).astype(np.float32)
    out = apply_style(in_pro, name, strength=0.6, rgb_to_xyz=pro_to_xyz)
    back = out @ np.linalg.solve(srgb_to_xyz, pro_to_xyz).T
    np.testing.assert_allclose(back, apply_style(img, name, strength=0.6), atol=2e-3)
    with pytest.raises(ValueError, match="rgb_to_xyz"):
        apply_style(img, name, rgb_to_xyz=np.eye(3) * 2)


@pytest.mark.parametrize("name,sign", [("warm", 1), ("cool", -1)])
def test_near_white_highlights_still_take_a_tint(name, sign):
    """The soft knee first capped a bright pixel at its own maximum: grey 250 stayed neutral
    under warm (it was 255/250/240 before the knee) while the midtones were tinted (review)."""
    img = np.full((4, 4, 3), 0.955, np.float32)  # sRGB 250
    out = apply_style(img, name)[0, 0]
    assert sign * (out[0] - out[2]) > 0.02  # red over blue for warm, blue over red for cool
    assert out.max() < 0.998


def test_a_saturated_colour_keeps_its_weakest_channel_off_the_floor():
    """Pressed onto 0.001, a turquoise backdrop's red went flat over a quarter of it and vibrant
    foliage went neon (photographer); the knee eases a lowered channel toward 0.005 (sRGB 16)."""
    t = np.linspace(0.0, 1.0, 300, dtype=np.float32)
    img = np.stack([0.03 + 0.05 * t, 0.35 + 0.3 * t, 0.4 + 0.3 * t], axis=-1)[None].repeat(3, axis=0)
    out = apply_style(img, "vibrant", sky_mask=np.ones(img.shape[:2], np.float32))
    codes = lambda x: np.round(255 * colour.cctf_encoding(np.clip(x[1], 0, 1))).astype(int)
    assert codes(out)[:, 0].min() >= 14  # the red stays off the floor (it was pressed to ~3)
    # Its gradation, within a few levels: the reach's bisection is quantised (a level's
    # sawtooth), and a channel's path is a cubic that can dip under the bound and come back
    # (a step of 3 levels near sRGB 16 where the reach check switches; hard to see).
    assert np.diff(codes(out)[:, 0]).min() >= -3
    chroma = lambda x: np.hypot(*colour.XYZ_to_Oklab(colour.RGB_to_XYZ(x[1], SRGB, apply_cctf_decoding=False))[:, 1:].T)
    assert (chroma(out) > chroma(img)).all()  # still more vivid


def _eased_into_gamut_reference(p0, change, lo, hi, lms_to_rgb):
    """The gamut step written out in numpy: float32 (N, 3) LMS' of the original colours and the
    style's changes, (N,) bounds; the linear RGB of ``p0 + t change`` with ``t`` the soft
    knee ``reach / (1 + reach**8)**(1/8)`` of the largest fraction up to _KNEE_REACH (bisection)
    whose colour lies in ``[lo, hi]`` on every channel, float32 (N, 3); and which pixels came
    within float32 rounding of a bound on the way (bool (N,))."""
    import effects.styles as styles
    f = np.float32
    rgb_at = lambda t: ((p0 + t[:, None] * change) ** 3) @ lms_to_rgb.T
    t_ok = np.zeros(len(lo), f)
    close_call = np.zeros(len(lo), bool)
    step = float(styles._KNEE_REACH)
    for _ in range(styles._KNEE_STEPS):
        step *= 0.5
        t = t_ok + f(step)
        rgb = rgb_at(t)
        fits = ((rgb >= lo[:, None]) & (rgb <= hi[:, None])).all(axis=1)
        # A colour within float32 rounding of a bound: the kernel's fused products may decide
        # the other way (by the SIMD width the CPU has), and its t then differs by a step.
        margin = np.minimum(np.abs(rgb - lo[:, None]), np.abs(rgb - hi[:, None])).min(axis=1)
        close_call |= margin < 1e-6
        t_ok = np.where(fits, t, t_ok)
    reach = np.maximum(t_ok, f(1e-6))
    return rgb_at((reach / (reach.astype(np.float64) ** 8 + 1) ** 0.125).astype(f)), close_call


def test_compiled_gamut_step_matches_numpy(rng):
    """The gathering kernel selects the pixels and bounds the numpy selection does, and the
    bisection kernel gives the numpy gamut step's colours (to float32 rounding: OpenCV's and
    numpy's 3×3 products round differently, the SIMD width depending on the CPU)."""
    import cv2
    import effects.styles as styles
    n, w = 5, 37
    x = rng.random((n, w, 3)).astype(np.float32)
    p0 = np.cbrt(cv2.transform(x, styles._RGB_TO_LMS_64.astype(np.float32))).astype(np.float32)
    q = ((rng.random((n, w, 3)) - 0.5) * 0.4).astype(np.float32)
    y_reach = cv2.transform((p0 + np.float32(1.6) * q) ** 3, styles._LMS_TO_RGB)
    ok = cv2.inRange(y_reach, styles._FIT_BOUNDS[0], styles._FIT_BOUNDS[1])
    bad_idx, lo, hi, t_ok = np.empty(n * w, np.int64), *(np.empty(n * w, np.float32) for _ in range(3))
    p0_bad, q_bad = np.empty((3, n * w), np.float32), np.empty((3, n * w), np.float32)
    count = styles._gamut_candidates(x, y_reach, ok, p0, q, bad_idx, lo, hi, p0_bad, q_bad)
    assert 10 < count < n * w
    # The numpy selection the kernel replaces.
    lo_ref = np.minimum(x.min(axis=2), np.float32(1.0))
    lo_ref = np.minimum(lo_ref - np.float32(0.5) * np.maximum(lo_ref - np.float32(0.001), 0), np.float32(0.005)) - np.float32(1e-6)
    hi_ref = x.max(axis=2)
    hi_ref = np.maximum(hi_ref + np.float32(0.5) * (np.float32(0.998) - hi_ref), np.float32(0.95)) + np.float32(1e-6)
    outside = (ok == 0) & ((y_reach < lo_ref[..., None]) | (y_reach > hi_ref[..., None])).any(axis=2)
    np.testing.assert_array_equal(bad_idx[:count], np.flatnonzero(outside))
    np.testing.assert_array_equal(lo[:count], lo_ref.ravel()[outside.ravel()])
    np.testing.assert_array_equal(hi[:count], hi_ref.ravel()[outside.ravel()])
    y = np.zeros((n, w, 3), np.float32)
    styles._eased_paths(p0_bad, q_bad, lo, hi, count, styles._LMS_TO_RGB, bad_idx, t_ok, y)
    ref, close_call = _eased_into_gamut_reference(p0_bad[:, :count].T, q_bad[:, :count].T, lo[:count],
                                                  hi[:count], styles._LMS_TO_RGB)
    got = y.reshape(-1, 3)[bad_idx[:count]]
    assert close_call.sum() <= 2  # (the comparison below stays meaningful)
    np.testing.assert_allclose(got[~close_call], ref[~close_call], rtol=0, atol=1e-6)
    untouched = np.ones(n * w, bool)
    untouched[bad_idx[:count]] = False
    assert not y.reshape(-1, 3)[untouched].any()


@pytest.mark.parametrize("warm", [False, True])
def test_compiled_adjustment_matches_numpy(rng, warm):
    """_styled_rows gives the plain numpy chain's adjusted LMS', change and reach point."""
    import effects.styles as styles
    n, w = 3, 29
    f = np.float32
    p0, pw = rng.random((n, w, 3)).astype(f), rng.random((n, w, 3)).astype(f)
    lum = rng.random((n, w)).astype(f)
    sky, skin, teeth = (rng.random((n, w)).astype(f) for _ in range(3))
    cube, change, cube_reach = (np.empty((n, w, 3), f) for _ in range(3))
    sky_gain, share, strength, chroma, tone = f(0.2), f(0.9), f(1.5), f(1.35), f(0.12)
    styles._styled_rows(p0, pw, lum, sky, skin, teeth, True, True, True, True, warm, sky_gain, share,
                        strength, chroma, tone, cube, change, cube_reach)
    c = sky * sky_gain + chroma
    wt = (f(1) - np.maximum(skin * share, teeth)) * strength
    u = (f(1) - c) * lum + (f(1) - lum) * lum * tone * (lum - f(styles._GREY_L))
    if warm:
        res = p0 * (f(1) - wt)[..., None] + pw * (c * wt)[..., None] + (u * wt)[..., None]
    else:
        res = p0 * ((c - f(1)) * wt + f(1))[..., None] + (u * wt)[..., None]
    np.testing.assert_allclose(cube, res ** 3, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(change, res - p0, atol=1e-7)
    np.testing.assert_allclose(cube_reach, (p0 + f(1.6) * (res - p0)) ** 3, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("matrix", ["srgb", [["a", 0, 0], [0, 1, 0], [0, 0, 1]], {"r": 1}])
def test_a_rgb_to_xyz_that_is_not_numbers_names_the_argument(rng, matrix):
    """numpy's own "could not convert string to float: 'srgb'" came out, naming no argument; then
    a ValueError, where every other effect's argument of the wrong kind raises a TypeError."""
    img = rng.random((8, 8, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="rgb_to_xyz: expected a 3×3 array of numbers"):
        apply_style(img, "warm", rgb_to_xyz=matrix)
