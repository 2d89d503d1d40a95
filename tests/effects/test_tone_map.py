"""Tests for effects.tone_map (per-person semantic tone mapping)."""
import numpy as np
import pytest

from effects.tone_map import MONK_SKIN_TONES_SRGB, PersonExposure, ToneMapParams, tone_map_people

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
# Linear sRGB of MST-3 and MST-8 (decoded from the published hex values).
MST3 = np.array([0.930, 0.823, 0.631], np.float32)
MST8 = np.array([0.117, 0.053, 0.034], np.float32)
E0 = 0.5


def scene(ds, skins_rgb, rng, h=96, pw=48):
    """People on an 18 % grey background; person i lit by E0 * 2**ds[i]; face = skin."""
    n = len(ds)
    w = 40 + pw * n
    refl = np.full((h, w, 3), 0.18, np.float32) * np.exp(0.05 * rng.standard_normal((h, w, 1))).astype(np.float32)
    illum = np.full((h, w), E0, np.float32)
    persons, skins, inner = [], [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        cx = 20 + pw * i + pw // 2
        face = ((yy - 30) / 16) ** 2 + ((xx - cx) / (pw * 0.3)) ** 2 < 1
        body = (((yy - 80) / 30) ** 2 + ((xx - cx) / (pw * 0.42)) ** 2 < 1) & ~face
        refl[face] = skins_rgb[i]
        refl[body] = [0.3, 0.12, 0.08]
        illum[face | body] = E0 * 2.0 ** ds[i]
        persons.append((face | body).astype(np.float32))
        skins.append(face.astype(np.float32))
        inner.append(((yy - 30) / 10) ** 2 + ((xx - cx) / (pw * 0.18)) ** 2 < 1)
    img = np.clip(refl * illum[..., None], 0, 1).astype(np.float32)
    return img, persons, skins, inner


def face_ev(out, inner, skin_rgb):
    """Output face luminance relative to the same skin lit by the scene illumination (EV)."""
    return float(np.log2(np.median(out[inner] @ LUMA) / (E0 * float(skin_rgb @ LUMA))))


def test_backlit_person_corrected_to_scene_key(rng):
    img, persons, skins, inner = scene([-1.5, 0.0], [MST3, MST3], rng)
    out, gains = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert gains[0].illumination_ev == pytest.approx(-1.5, abs=0.15)
    assert gains[0].gain_ev == pytest.approx(1.5, abs=0.15)
    assert abs(gains[1].gain_ev) < 0.15
    for i in range(2):
        assert abs(face_ev(out, inner[i], MST3)) < 0.25


def test_high_key_portrait_on_a_white_backdrop_is_not_lifted(rng):
    """A light-skinned face and a white backdrop in the same bright light (a studio high-key
    portrait): the backdrop's key, read as an 18 % grey scene, put the scene's light 2.3 EV
    above the face's and lifted it by max_person_ev, blowing the skin out. The scene's light
    is held at the white point: the face keeps its exposure."""
    light = 0.9
    img, persons, skins, inner = scene([float(np.log2(light / E0))], [MST3], rng)
    backdrop = persons[0] == 0
    img[backdrop] = (0.85 * light) * np.exp(0.02 * rng.standard_normal((int(backdrop.sum()), 1))).astype(np.float32)
    out, gains = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert abs(gains[0].gain_ev) < 0.2
    before, after = (float(np.median(x[inner[0]] @ LUMA)) for x in (img, out))
    assert abs(np.log2(after / before)) < 0.2


def test_darker_skin_stays_darker_and_is_not_pushed_to_one_level(rng):
    img, persons, skins, inner = scene([0.0, 0.0], [MST3, MST8], rng)
    out, gains = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    # Both lit like the scene: neither face should move much, and MST-8 stays ~3.6 EV darker.
    assert all(abs(g.gain_ev) < 0.2 for g in gains)
    y3, y8 = (np.median(out[m] @ LUMA) for m in inner)
    assert np.log2(y3 / y8) == pytest.approx(np.log2(float(MST3 @ LUMA) / float(MST8 @ LUMA)), abs=0.3)


def test_eight_people_mixed_light_within_quarter_stop(rng):
    ds = [-2.0, -1.0, 0.5, 0.0, -1.5, 1.0, -0.5, -2.0]
    tones = [MST3, MST8, MST3, MST8, MST8, MST3, MST8, MST3]
    img, persons, skins, inner = scene(ds, tones, rng)
    out, gains = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert len(gains) == 8 and all(isinstance(g, PersonExposure) for g in gains)
    errs = [face_ev(out, inner[i], tones[i]) for i in range(8)]
    assert max(abs(e) for e in errs) < 0.25, errs


def test_shared_skin_matte_equals_per_person_skins(rng):
    img, persons, skins, _ = scene([-1.0, 0.5], [MST3, MST8], rng)
    a = tone_map_people(img, persons, skin_masks=skins)
    b = tone_map_people(img, persons, skin_masks=np.maximum(skins[0], skins[1]))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_invariants_shape_dtype_range_input_unchanged(rng):
    img, persons, skins, _ = scene([-1.0], [MST3], rng)
    before = [img.copy()] + [m.copy() for m in persons + skins]
    out = tone_map_people(img, persons, skin_masks=skins)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out is not img and 0.0 <= out.min() and out.max() <= 1.0
    for a, b in zip(before, [img] + persons + skins):
        np.testing.assert_array_equal(a, b)


def test_neutral_params_are_identity(rng):
    img, persons, skins, _ = scene([-1.0, 0.5], [MST3, MST8], rng)
    neutral = ToneMapParams(local_compression=0.0, person_strength=0.0, person_contrast=0.0, dim_floor=0.0)
    out = tone_map_people(img, persons, skin_masks=skins, params=neutral)
    np.testing.assert_allclose(out, img, atol=1e-5)


def test_no_person_flat_scene_unchanged(rng):
    img = np.full((32, 48, 3), 0.4, np.float32)  # (a flat 0.2 would count as a dim photo: lifted)
    out, gains = tone_map_people(img, [], return_gains=True)
    assert gains == ()
    np.testing.assert_allclose(out, img, atol=1e-5)


def test_a_dim_underexposed_photo_is_lifted_as_a_whole(rng):
    # Three stops under (its brightest 0.5 % at ~0.1): every later step, the scene key and each
    # person's target light, kept it dark. Lifted until that level reaches dim_floor, at most
    # max_dim_lift_ev, hue kept; a photo exposed as intended is left alone.
    from effects.tone_map import dim_photo_lift_ev
    img, persons, skins, _ = scene([0.0, 0.0], [MST3, MST8], rng)
    p = ToneMapParams()
    bright = float(np.percentile(img @ LUMA, 99.5))
    assert bright > p.dim_floor and dim_photo_lift_ev(img) == 0.0
    dark = (img / 8).astype(np.float32)
    lift = dim_photo_lift_ev(dark)
    assert lift == pytest.approx(min(p.max_dim_lift_ev, np.log2(p.dim_floor / (bright / 8))), abs=0.05)
    out = tone_map_people(dark, persons, skin_masks=skins)
    dark_key, out_key = (float(np.median(x @ LUMA)) for x in (dark, out))
    assert np.log2(out_key / dark_key) > lift - 0.3           # the whole photo, not only the people
    assert dim_photo_lift_ev(dark, params=ToneMapParams(dim_floor=0.0)) == 0.0
    assert dim_photo_lift_ev(np.zeros((16, 16, 3), np.float32)) == 0.0  # a black frame: nothing to lift
    # Under the cap the lift puts the brightest 0.5 % at the floor exactly.
    half = (img * np.float32(p.dim_floor / bright * 0.5)).astype(np.float32)
    assert dim_photo_lift_ev(half) == pytest.approx(1.0, abs=0.05)
    # A tiny lamp that would pass 1 is scaled as a whole: its hue stays.
    lamp = dark.copy()
    lamp[5, 5] = [0.9, 0.45, 0.1]
    lit = tone_map_people(lamp, [], params=ToneMapParams(local_compression=0.0))
    np.testing.assert_allclose(lit[5, 5] / lit[5, 5].max(), [1.0, 0.5, 1 / 9], rtol=1e-4)


def test_well_exposed_scene_keeps_its_exposure_and_only_deep_shadows_lift(rng):
    """Deep shadows pull a real scene's log-average key far below its midtones; lowering all that
    lies above the key darkened a sunlit building (0.27 linear) and its unclipped sky by up to a
    stop (ADE_val_00000002). Midtones between the key and the highlight knee keep their level."""
    h, w = 96, 128
    img = np.empty((h, w, 3), np.float32)
    img[:32] = 0.45                     # bright, unclipped sky-like band
    img[32:64] = 0.25                   # sunlit wall
    img[64:] = 0.004                    # deep shadow foreground
    img *= np.exp(0.02 * rng.standard_normal((h, w, 1))).astype(np.float32)
    out = tone_map_people(img, [])
    ev = lambda rows: float(np.log2(np.median(out[rows] @ LUMA) / np.median(img[rows] @ LUMA)))
    assert abs(ev(slice(40, 56))) < 0.05 and abs(ev(slice(4, 24))) < 0.05  # midtones and sky kept
    assert ev(slice(76, 96)) > 0.3                                         # shadows lifted
    # The old symmetric operator (knee at the key) is what darkened them:
    old = tone_map_people(img, [], params=ToneMapParams(highlight_knee=1e-6))
    assert float(np.log2(np.median(old[40:56] @ LUMA) / np.median(img[40:56] @ LUMA))) < -0.3


def test_empty_person_mask_reported_and_untouched(rng):
    img, persons, skins, _ = scene([-1.0], [MST3], rng)
    empty = np.zeros(img.shape[:2], np.float32)
    out, gains = tone_map_people(img, [persons[0], empty], skin_masks=[skins[0], empty], return_gains=True)
    assert gains[1].weight == 0.0 and gains[1].gain_ev == 0.0
    assert gains[0].gain_ev > 0.5


def test_all_sky_is_not_brightened_past_ceiling():
    img = np.full((40, 40, 3), 0.02, np.float32)  # dark evening sky would be lifted by the tone map
    img[:, :, 2] = 0.05
    sky = np.ones((40, 40), np.float32)
    bright = np.full((40, 40, 3), 0.97, np.float32)
    out = tone_map_people(bright, [], sky_mask=sky)
    assert out.max() <= 0.97 + 1e-6  # never brightened; held toward sky_ceiling
    assert (out @ LUMA).mean() <= 0.965  # darkened, less so near white (white_fade)
    out2 = tone_map_people(img, [], sky_mask=sky)
    assert np.isfinite(out2).all()


def test_bright_sky_darkens_monotonically_and_clipped_sky_stays_white():
    """Toward the sky ceiling the darkening fades as a pixel nears clipped white: a white frame
    read as sky stays white (it came out a flat 0.9 grey), and a sky ramp from 0.85 to 1 keeps
    its gradient, never brightened and never inverted (it was flattened to 0.9 above 0.9)."""
    sky = np.ones((48, 64), np.float32)
    white = tone_map_people(np.ones((48, 64, 3), np.float32), [], sky_mask=sky)
    np.testing.assert_allclose(white, 1.0, atol=1e-6)
    ramp = np.repeat(np.linspace(0.85, 1.0, 64, dtype=np.float32)[None, :, None], 48, 0).repeat(3, 2)
    out = tone_map_people(ramp, [], sky_mask=sky)[24, :, 0]
    assert (np.diff(out) >= -1e-6).all()                       # monotonic
    assert (out <= ramp[24, :, 0] + 1e-6).all()                 # never brightened
    above = ramp[24, :, 0] > 0.92
    assert np.ptp(out[above]) > 0.05                            # a gradient, not a flat ceiling
    assert (out[above][:-1] < ramp[24, :, 0][above][:-1]).all()  # bright, unclipped sky still darkened


def test_one_pixel_image():
    img = np.array([[[0.3, 0.2, 0.1]]], np.float32)
    out = tone_map_people(img, [np.ones((1, 1), np.float32)], skin_masks=[np.ones((1, 1), np.float32)])
    assert out.shape == (1, 1, 3) and np.isfinite(out).all()


def test_no_halo_at_bright_sky_dark_subject_edge():
    h, w = 64, 256
    img = np.empty((h, w, 3), np.float32)
    img[:, : w // 2] = [0.62, 0.8, 0.98]
    img[:, w // 2:] = [0.025, 0.02, 0.018]
    sky = np.zeros((h, w), np.float32)
    sky[:, : w // 2] = 1.0
    out = tone_map_people(img, [1.0 - sky], sky_mask=sky)
    y = (out @ LUMA).mean(axis=0)
    bright, dark = np.median(y[:20]), np.median(y[-20:])
    step = bright - dark
    assert y[: w // 2].max() - bright < 0.01 * step
    assert dark - y[w // 2:].min() < 0.01 * step
    din, dout = np.diff(img @ LUMA, axis=1), np.diff(out @ LUMA, axis=1)
    changing = np.abs(din) > 0
    assert changing.any()
    assert np.all(np.sign(dout[changing]) == np.sign(din[changing]))  # no gradient reversal


def test_monk_table_is_the_published_scale():
    assert len(MONK_SKIN_TONES_SRGB) == 10
    assert MONK_SKIN_TONES_SRGB[0] == "#f6ede4" and MONK_SKIN_TONES_SRGB[-1] == "#292420"


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(image=np.zeros((8, 8), np.float32)), ValueError, "image: expected shape H×W×3"),
        (dict(image=np.zeros((8, 8, 3), np.uint8)), TypeError, "as_linear_rgb"),
        (dict(image=np.full((8, 8, 3), 2.0, np.float32)), ValueError, r"image: expected linear RGB in \[0, 1\]"),
        (dict(image=np.full((8, 8, 3), np.nan, np.float32)), ValueError, "NaN"),
        (dict(person_masks=[np.zeros((4, 4), np.float32)]), ValueError, r"person_masks\[0\]: expected shape \(8, 8\)"),
        (dict(person_masks=[np.full((8, 8), 255.0, np.float32)]), ValueError, r"person_masks\[0\]: expected values in \[0, 1\]"),
        (dict(person_masks=np.zeros((8, 8), np.float32)), TypeError, "wrap it in a list"),
        (dict(skin_masks=[np.zeros((8, 8), np.float32)] * 2), ValueError, "skin_masks: expected 1 mattes"),
        (dict(sky_mask=np.zeros((8, 9), np.float32)), ValueError, "sky_mask: expected shape"),
        (dict(params="fast"), TypeError, "params: expected a ToneMapParams"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = dict(image=np.full((8, 8, 3), 0.2, np.float32), person_masks=[np.ones((8, 8), np.float32)])
    args.update(kwargs)
    image = args.pop("image")
    person_masks = args.pop("person_masks")
    with pytest.raises(exc, match=match):
        tone_map_people(image, person_masks, **args)


def test_bad_params():
    with pytest.raises(ValueError, match="ToneMapParams.local_compression"):
        ToneMapParams(local_compression=1.5)
    with pytest.raises(ValueError, match="ToneMapParams.contrast_limits"):
        ToneMapParams(contrast_limits=(1.2, 0.9))


def test_strip_size_does_not_change_the_result(rng, monkeypatch):
    """The full-resolution pass runs in strips; the strip height must not matter."""
    import effects.tone_map as tm

    img, persons, skins, _ = scene([-1.5, 0.5], [MST3, MST8], rng, h=200)
    sky = np.zeros(img.shape[:2], np.float32)
    sky[:20] = 1.0
    params = ToneMapParams(working_size=48)  # working grid smaller than the image: gains upsampled
    whole = tone_map_people(img, persons, skin_masks=skins, sky_mask=sky, params=params)
    monkeypatch.setattr(tm, "_STRIP_PIXELS", 7 * img.shape[1] + 3)
    np.testing.assert_allclose(tone_map_people(img, persons, skin_masks=skins, sky_mask=sky, params=params),
                               whole, atol=1e-6)


def test_person_without_skin_does_not_move_the_group_light(rng):
    """A 'person' with no skin (a false detection on a red flag, a back view) is measured on its
    clothes; that guess must not pull the group's light and re-expose a correctly lit face."""
    img, persons, skins, inner = scene([0.8, 0.0], [MST3, MST3], rng)
    alone = tone_map_people(img, persons[:1], skin_masks=skins[0])
    # The second person's face is clothes now: no skin in its matte at all.
    flag = persons[1] * (1.0 - skins[1])
    out, gains = tone_map_people(img, [persons[0], flag], skin_masks=skins[0], return_gains=True)
    assert abs(gains[0].gain_ev) < 0.05
    assert abs(face_ev(out, inner[0], MST3) - face_ev(alone, inner[0], MST3)) < 0.05
    # With both measured on skin the group light is their common one, as before.
    _, both = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert both[0].gain_ev < -0.2


def test_small_detection_with_some_skin_barely_moves_the_group_light(rng):
    """A small false detection whose matte holds a few skin-coloured pixels (the astronaut's flag)
    weighs by the skin it has: the big face the camera exposed for keeps its exposure."""
    img, persons, skins, inner = scene([0.8, 0.0], [MST3, MST3], rng)
    alone = tone_map_people(img, persons[:1], skin_masks=skins[0])
    # A small matte: 200 clothes pixels and 12 skin pixels of the second person (6 % skin, enough
    # to be measured on skin) against the big face's ~700 skin pixels.
    small = np.zeros_like(skins[1])
    ys, xs = np.nonzero(skins[1])
    small[ys[:12], xs[:12]] = 1.0
    speck = small.copy()
    ys, xs = np.nonzero(persons[1] - skins[1])
    small[ys[:200], xs[:200]] = 1.0
    out, gains = tone_map_people(img, [persons[0], small], skin_masks=[skins[0], speck], return_gains=True)
    assert gains[1].weight == pytest.approx(12)  # measured on its 12 skin pixels (212 on the whole matte)
    assert abs(gains[0].gain_ev) < 0.1
    assert abs(face_ev(out, inner[0], MST3) - face_ev(alone, inner[0], MST3)) < 0.1


@pytest.mark.parametrize("values", [[0.3], [-1.0, 2.0], [0.5, -0.2, 1.0], [3.0, 1.0, -2.0, 0.0]])
def test_midpoint_weighted_median_with_equal_weights_is_the_median(values):
    from effects.tone_map import _midpoint_weighted_median
    assert _midpoint_weighted_median(values, [2.0] * len(values)) == pytest.approx(np.median(values))


def test_midpoint_weighted_median_leans_to_the_heavy_values():
    from effects.tone_map import _midpoint_weighted_median
    assert _midpoint_weighted_median([0.0, 5.0], [1000.0, 1.0]) == pytest.approx(0.0, abs=0.01)
    # Unequal weights: centres at 0.25 and 0.75 of the total for weights 1 and 1, here 3 and 1.
    assert _midpoint_weighted_median([0.0, 4.0], [3.0, 1.0]) == pytest.approx(4.0 * (0.5 - 0.375) / (0.875 - 0.375))


def test_a_tiny_person_between_two_big_faces_does_not_set_the_group_light(rng):
    """A weighted median can still land on a tiny voter lying between two heavy ones; people
    under min_voter_weight of the largest do not vote."""
    img, persons, skins, inner = scene([0.0, 1.2, 0.1], [MST3, MST3, MST3], rng)
    both = tone_map_people(img, persons[:2], skin_masks=skins[:2], return_gains=True)[1]
    small = np.zeros_like(skins[2])
    ys, xs = np.nonzero(skins[2])
    small[ys[:12], xs[:12]] = 1.0
    _, gains = tone_map_people(img, [persons[0], persons[1], small], skin_masks=[skins[0], skins[1], small],
                               return_gains=True)
    assert gains[2].weight == pytest.approx(12)
    for i in range(2):
        assert gains[i].gain_ev == pytest.approx(both[i].gain_ev, abs=0.05)
    # Everyone votes when the floor is 0: the tiny one becomes the median and moves the others.
    _, all_vote = tone_map_people(img, [persons[0], persons[1], small], skin_masks=[skins[0], skins[1], small],
                                  params=ToneMapParams(min_voter_weight=0.0), return_gains=True)
    assert abs(all_vote[0].gain_ev - both[0].gain_ev) > 0.2


def test_person_without_skin_is_rendered_like_the_scene(rng):
    """With skin mattes given, a 'person' with no skin in it (a back view, or an elephant taken
    for a person) gets no exposure of its own: the output equals tone mapping without it."""
    img, persons, skins, _ = scene([-1.5, 0.0], [MST3, MST3], rng)
    furry = persons[0] * (1.0 - skins[0])  # the dark person, face removed: nothing to measure
    out, gains = tone_map_people(img, [furry, persons[1]], skin_masks=[np.zeros_like(furry), skins[1]],
                                 return_gains=True)
    without = tone_map_people(img, [persons[1]], skin_masks=[skins[1]])
    np.testing.assert_allclose(out, without, atol=1e-6)
    assert gains[0].weight == 0.0 and gains[0].gain_ev == 0.0 and gains[1].weight > 0
    # A faint skin response (0.25) over the whole coat is not skin either: decisive skin counts.
    faint = tone_map_people(img, [furry, persons[1]], skin_masks=[0.25 * furry, skins[1]])
    np.testing.assert_allclose(faint, without, atol=1e-6)
    # Without skin mattes at all the whole matte is still measured (and the dark one lifted).
    _, guessed = tone_map_people(img, [furry, persons[1]], return_gains=True)
    assert guessed[0].weight > 0 and guessed[0].gain_ev > 0.3


def test_sort_order_is_argsort_for_float32(rng):
    """The packed-key sort of the weighted quantiles orders float32 exactly like np.argsort."""
    from effects.tone_map import _sort_order

    for v in (rng.standard_normal(3000).astype(np.float32),
              np.round(rng.standard_normal(3000) * 2).astype(np.float32),  # many ties
              np.array([0.0, -0.0, -1.0, 1e-40, -1e-40, 3e38, -3e38, 1.0], np.float32)):  # signs, denormals
        np.testing.assert_array_equal(v[_sort_order(v)], np.sort(v))


def test_clip_free_path_equals_clipped_input(rng):
    """An in-range image skips the input clip; values within the rounding tolerance outside
    [0, 1] are clipped first, so both give the tone map of the clipped image."""
    img, persons, skins, _ = scene([-1.0], [MST3], rng, h=64)
    nudged = img.copy()
    nudged[0, 0] = [-5e-5, 1.0 + 5e-5, 0.5]
    clipped = np.clip(nudged, 0.0, 1.0)
    np.testing.assert_allclose(tone_map_people(nudged, persons, skin_masks=skins),
                               tone_map_people(clipped, persons, skin_masks=skins), atol=1e-6)


def test_rotated_view_input_gives_the_contiguous_result(rng):
    """A photo rotated by its EXIF orientation arrives as a non-contiguous view."""
    img, persons, skins, _ = scene([-1.0], [MST3], rng, h=64)
    view = np.rot90(img)
    pv, sv = [np.ascontiguousarray(np.rot90(persons[0]))], np.ascontiguousarray(np.rot90(skins[0]))
    np.testing.assert_array_equal(tone_map_people(view, pv, skin_masks=sv),
                                  tone_map_people(np.ascontiguousarray(view), pv, skin_masks=sv))


def test_brightened_saturated_pixels_are_scaled_as_a_whole(rng):
    """Where a lift would push a channel past 1, the pixel is scaled as a whole: its largest
    channel lands at <= 1 and its channel ratios (hue) are kept, on every channel."""
    img, persons, skins, inner = scene([-2.0], [MST3], rng, h=64)
    img = img.copy()
    # A small bright saturated patch on the body of a backlit person, lifted with them (the
    # person's bright end stays dark, so the highlight roll-off does not hold the lift back).
    patch = np.zeros(img.shape[:2], bool)
    patch[54:60, 38:46] = True
    assert persons[0][patch].min() == 1.0 and skins[0][patch].max() == 0.0
    img[patch] = np.array([0.9, 0.45, 0.2], np.float32)
    out, gains = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert gains[0].gain_ev > 1.5
    lifted = out[patch]
    assert lifted.max() <= 1.0 and lifted.min() > 0.0
    np.testing.assert_allclose(lifted[:, 1] / lifted[:, 0], 0.5, rtol=1e-4)
    np.testing.assert_allclose(lifted[:, 2] / lifted[:, 0], 0.2 / 0.9, rtol=1e-4)
    assert lifted[:, 0].max() > 0.99  # the limit was reached


def test_backlit_face_in_shade_is_lifted_without_blowing_out_sunlit_skin(rng):
    """A face in shade with sunlit shoulders (COCO 36: the face lifted 1.6 EV took 72 % of the
    skin to a channel at 1, washed out flat): the lift tapers above the skin median so the
    person's bright end keeps its gradation below clipping, while the face is still lifted."""
    img, persons, skins, inner = scene([-2.5], [MST3], rng, h=96)
    img = img.copy()
    sunlit = np.zeros(img.shape[:2], bool)
    sunlit[60:72, 36:52] = True
    assert persons[0][sunlit].min() == 1.0
    ramp = np.linspace(0.55, 0.8, 16, dtype=np.float32)[None, :, None]   # sunlit skin, brightening to the right
    img[60:72, 36:52] = MST3 / MST3.max() * ramp
    skins = [np.maximum(skins[0], sunlit.astype(np.float32))]
    out, gains = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert gains[0].gain_ev > 1.0
    assert face_ev(out, inner[0], MST3) > face_ev(img, inner[0], MST3) + 1.0
    lit = out[60:72, 36:52]
    assert (lit.max(axis=2) >= 0.99).mean() < 0.2                       # its brightest end only (all of it was)
    columns = np.median(lit @ LUMA, axis=0)
    assert (np.diff(columns) > 0).all() and columns[-1] / columns[0] > 1.1  # gradation kept


def test_clipped_white_stays_white_under_highlight_compression(rng):
    """The local tone map lowers highlights above the knee; a clipped white (a cloud, a white
    wall in sun) has no detail to recover and came out a flat sRGB 240 grey. It stays white,
    while bright unclipped areas are still compressed and the mapping stays monotonic."""
    h, w = 64, 96
    img = np.full((h, w, 3), 0.1, np.float32) * np.exp(0.05 * rng.standard_normal((h, w, 1))).astype(np.float32)
    img[:20] = 1.0                                                  # clipped white
    img[20:40] = np.linspace(0.55, 1.0, w, dtype=np.float32)[None, :, None]  # bright ramp to white
    out = tone_map_people(img, [])
    assert out[2:18, 2:-2].min() >= 0.99
    ramp = out[30, :, 0]
    assert (np.diff(ramp) >= -1e-6).all()
    assert ramp[0] < 0.55 - 0.01                                    # bright, unclipped: compressed


def test_saturated_clothes_do_not_flatten_a_lifted_face():
    """A red shirt has a channel near 1 at a low luminance: measured as the person's bright end
    against the face's luminance it set a full taper, and the lifted face's upper half came out
    flat and reversed (185 of 383 steps going down). The face keeps its gradation."""
    h, w = 256, 256
    img = np.full((h, w, 3), 0.3, np.float32)
    person = np.zeros((h, w), np.float32)
    person[30:250, 30:226] = 1.0
    skin = np.zeros((h, w), np.float32)
    ramp = (2.0 ** np.linspace(-4.8, -2.8, 196)).astype(np.float32)          # a face in shade, lit left to right
    hexa = MONK_SKIN_TONES_SRGB[0].lstrip("#")  # MST-1, linearised
    mst1 = (np.array([int(hexa[i:i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0) ** 2.2
    img[30:110, 30:226] = ramp[None, :, None] * mst1
    skin[30:110, 30:226] = 1.0
    img[110:165, 30:226] = 0.003                                               # dark hair
    img[165:250, 30:226] = np.array([0.95, 0.02, 0.02], np.float32)            # red shirt
    out, gains = tone_map_people(img, [person], skin_masks=skin, return_gains=True)
    assert gains[0].gain_ev > 1.0
    face = out[70, 36:220] @ LUMA
    assert (np.diff(face) > -2e-3).all()                                       # no reversal
    top = face[len(face) // 2:]
    assert top[-1] / top[0] > 2.0 ** 0.25                                      # upper half keeps contrast (input: 1 EV)


def test_a_faint_matte_everywhere_is_no_person(rng):
    """A matte of 1e-4 over the whole frame sums past the 'empty' threshold but is nowhere above
    the 1e-3 the statistics use: it raised IndexError; now it is a person that is not rendered."""
    img, persons, skins, _ = scene([0.0], [MST3], rng)
    haze = np.full(img.shape[:2], 1e-4, np.float32)
    out, gains = tone_map_people(img, [persons[0], haze], skin_masks=[skins[0], haze], return_gains=True)
    assert np.isfinite(out).all() and gains[1].weight == 0.0
    out2 = tone_map_people(img, [haze])  # without skin mattes too
    assert np.isfinite(out2).all()


def test_black_and_white_people_keep_the_light_they_have(rng):
    """In a black-and-white photo skin has no colour, so its tone cannot be told: the skin-tone
    match took every grey face for the palest tone and lifted a mid-grey face by 1.5 EV. Grey
    faces lit like the scene, pale or dark, keep their exposure; the same faces in colour are
    left alone too."""
    img, persons, skins, inner = scene([0.0, 0.0], [MST3, MST8], rng)
    grey = np.repeat((img @ LUMA)[..., None], 3, axis=2).astype(np.float32)
    out, gains = tone_map_people(grey, persons, skin_masks=skins, return_gains=True)
    assert all(abs(g.gain_ev) < 0.2 for g in gains), [g.gain_ev for g in gains]
    for m in inner:
        assert abs(np.log2(np.median(out[m] @ LUMA) / np.median(grey[m] @ LUMA))) < 0.2
    _, colour = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert all(abs(g.gain_ev) < 0.2 for g in colour)
    # With the match forced back on for grey skin, the dark face is read as pale and lifted.
    _, matched = tone_map_people(grey, persons, skin_masks=skins, return_gains=True,
                                 params=ToneMapParams(grey_skin_chroma=0.0))
    assert max(g.gain_ev for g in matched) > 0.5


def test_toned_black_and_white_people_keep_the_light_they_have(rng):
    """A sepia or cyanotype print is black and white too: its skin's colour is the toning's.
    Measured from neutral, a sepia face matched a pale skin tone read as under-lit and was lifted
    (real portraits, person_binary 56 and 97 toned sepia: +1.3 and +1.25 EV, their grey twins
    -0.01 and -0.03). Measured from the frame's tint, toned faces keep their light as grey ones."""
    img, persons, skins, inner = scene([0.0, 0.0], [MST3, MST8], rng)
    grey = np.repeat((img @ LUMA)[..., None], 3, axis=2)
    for tint in ([1.25, 1.0, 0.7], [0.75, 1.0, 1.2]):  # sepia, cyanotype
        toned = np.clip(grey * np.array(tint, np.float32), 0, 1).astype(np.float32)
        out, gains = tone_map_people(toned, persons, skin_masks=skins, return_gains=True)
        assert all(abs(g.gain_ev) < 0.2 for g in gains), (tint, [g.gain_ev for g in gains])
        for m in inner:
            assert abs(np.log2(np.median(out[m] @ LUMA) / np.median(toned[m] @ LUMA))) < 0.2
    # A colour photo is not toned: its skin tones are still told apart and matched.
    _, colour = tone_map_people(img, persons, skin_masks=skins, return_gains=True,
                                params=ToneMapParams(toned_chroma_spread=0.0))
    _, same = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert [g.skin_reflectance for g in same] == [g.skin_reflectance for g in colour]
    assert same[0].skin_reflectance > 4 * same[1].skin_reflectance
    with pytest.raises(ValueError, match="toned_chroma_spread"):
        ToneMapParams(toned_chroma_spread=1.0)


def test_monochrome_tint_tells_black_and_white_from_colour_and_checks_its_spread(rng):
    from effects import monochrome_tint

    grey = np.repeat(np.linspace(0.02, 0.8, 64 * 48, dtype=np.float32).reshape(48, 64, 1), 3, axis=2)
    np.testing.assert_allclose(monochrome_tint(grey), 0.0, atol=1e-6)
    colour = rng.random((48, 64, 3), dtype=np.float32)
    assert monochrome_tint(colour) is None and monochrome_tint(grey, spread=0) is None
    # (A NaN spread passed every comparison: every colour photo was called black and white.)
    for spread, exc in ((float("nan"), ValueError), (-0.1, ValueError), (1.0, ValueError), ("0.1", TypeError)):
        with pytest.raises(exc, match="spread: expected a number in"):
            monochrome_tint(colour, spread=spread)


def test_a_faint_skin_response_on_a_dark_coat_does_not_set_the_persons_light(rng):
    """person_binary 79: the skin matte's ~0.4 over a black coat outweighed the face in the
    soft-weighted skin median, read the coat's light as the face's and lifted the person 2 EV
    (black wool to charcoal). Only decisive skin (> 0.5) is measured now."""
    img, persons, skins, inner = scene([0.0], [MST3], rng)
    coat = (persons[0] > 0) & (skins[0] == 0)
    img = img.copy()
    img[coat] = 0.004
    skins = [np.where(coat, 0.48, skins[0]).astype(np.float32)]
    assert (skins[0] * coat).sum() > skins[0][~coat].sum()  # the coat's faint skin outweighs the face
    out, gains = tone_map_people(img, persons, skin_masks=skins, return_gains=True)
    assert abs(gains[0].gain_ev) < 0.2
    assert np.median(out[coat]) < 0.006



def test_an_empty_person_matte_is_reported_unmeasured():
    """The documented sentinel: weight 0, NaN skin figures, no gain (the other person still measured)."""
    rng = np.random.default_rng(0)
    img = rng.random((64, 64, 3)).astype(np.float32) * 0.5
    someone = np.zeros((64, 64), np.float32)
    someone[10:40, 10:40] = 1.0
    _, (empty, found) = tone_map_people(img, [np.zeros((64, 64), np.float32), someone], return_gains=True)
    assert empty.weight == 0.0 and empty.gain_ev == 0.0
    assert np.isnan(empty.skin_reflectance) and np.isnan(empty.skin_luminance)
    assert found.weight > 0 and np.isfinite(found.skin_luminance)


def test_compiled_strip_kernels_match_numpy(rng):
    """The full-resolution pass's fused kernels give the plain numpy chain's results, with
    pixels on every path (shoulder, sky ceiling, white fade with and without people, a factor
    limited by the largest channel); odd sizes."""
    from effects import tone_map as tm
    f32 = np.float32
    n, w = 7, 33
    log_y = np.log(rng.uniform(0.01, 1.0, (n, w))).astype(f32)
    # Four grids' rows (a_gain, b_gain, a_base, b_base) resized along x, one more row than the
    # strip; each output row blends grid row i and i + 1 by its weight.
    wide = np.stack([rng.uniform(-0.5, 1.5, (n + 1, w)), rng.uniform(-1.0, 1.5, (n + 1, w)),
                     rng.uniform(0.5, 1.0, (n + 1, w)), rng.uniform(-0.5, 0.2, (n + 1, w))]).astype(f32)
    grid_row = np.array([0, 0, 1, 2, 2, 3, 6], np.int64)
    weight = rng.uniform(0, 1, n).astype(f32)
    weight[0] = 0.0
    lerp = (wide[:, grid_row] + (wide[:, grid_row + 1] - wide[:, grid_row]) * weight[None, :, None]).astype(f32)
    sky = rng.uniform(0.0, 1.0, (n, w)).astype(f32)
    knee, ceil, sky_ceil, sky_floor, fade_start = f32(np.log(0.5)), f32(np.log(0.95)), f32(np.log(0.9)), f32(-1.04), f32(np.log(0.8))
    for has_sky in (True, False):
        base, gain = np.empty((n, w), f32), np.empty((n, w), f32)
        fading = tm._gain_rows(log_y, wide, grid_row, weight, sky, has_sky, knee, ceil, sky_ceil, sky_floor,
                               fade_start, base, gain)
        g = lerp[0] * log_y + lerp[1]
        b = lerp[2] * log_y + lerp[3]
        sel = (g > 0) & (b + g > knee)
        assert sel.any() and (~sel).any()
        m = np.maximum(b, knee)
        room = np.maximum(ceil - m, f32(1e-6))
        g = np.where(sel, (m - b) + np.tanh((b + g - m) / room) * room, g).astype(f32)
        if has_sky:
            t = np.minimum(np.minimum(np.maximum(sky_ceil - b, sky_floor), 0), g)
            g = g + (t - g) * sky
        np.testing.assert_allclose(gain, g, atol=1e-6)
        assert fading == int(((log_y > fade_start) & (g < 0)).sum()) > 0
    for people in (True, False):
        faded = gain.copy()
        tm._fade_to_white(faded, log_y, sky, people, fade_start, f32(5.0))
        keep = np.clip((1 - np.exp(log_y)) * f32(5.0), 0, 1)
        if people:
            keep = 1 - (1 - keep) * (1 - sky)
        ref = np.where((gain < 0) & (log_y > fade_start), gain * keep, gain)
        np.testing.assert_allclose(faded, ref, atol=1e-6)
    x = rng.uniform(0.0, 1.0, (n, w, 3)).astype(f32)
    factor = np.exp(gain).astype(f32)
    out = np.empty_like(x)
    tm._scale_rows(x, factor, out)
    over = (x * factor[..., None] > 1).any(axis=2)
    assert over.any() and (~over).any()
    limited = np.where(over, np.minimum(factor, 1 / np.maximum(x.max(axis=2), f32(1e-30))), factor)
    ref = np.where(over[..., None], np.minimum(x * limited[..., None], 1), x * limited[..., None])
    np.testing.assert_allclose(out, ref, atol=1e-6)
