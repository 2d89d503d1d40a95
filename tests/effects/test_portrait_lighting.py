"""Tests for effects.portrait_lighting (stage, studio, contour, high-key mono looks)."""
import numpy as np
import pytest

from effects import (
    PORTRAIT_LIGHTING_LOOKS,
    PortraitLightingParams,
    contour_light,
    high_key_mono,
    portrait_lighting,
    stage_light,
    studio_light,
)

H, W = 64, 80


def _scene(rng):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = np.clip(20 - np.hypot(xx - W / 2, yy - H / 2) + 0.5, 0, 1).astype(np.float32)
    subject = np.array([0.5, 0.3, 0.2], np.float32)
    bg = np.array([0.2, 0.4, 0.6], np.float32)  # saturated blue: a fringe of it would show
    img = a[..., None] * subject + (1 - a[..., None]) * bg
    img = np.clip(img + rng.normal(0, 0.005, img.shape), 0, 1).astype(np.float32)
    skin = np.zeros((H, W), np.float32)
    skin[22:34, 32:48] = 1.0
    return img, a, skin


def _far_background(a):
    """Background more than 2 px from the subject's edge."""
    import cv2

    return cv2.dilate(a, np.ones((5, 5), np.uint8)) == 0


@pytest.mark.parametrize("look", sorted(PORTRAIT_LIGHTING_LOOKS))
def test_every_look_shape_dtype_range_inputs_unchanged(rng, look):
    img, a, skin = _scene(rng)
    copies = [x.copy() for x in (img, a, skin)]
    out = portrait_lighting(img, a, look=look, skin_mask=skin, hair_mask=a * 0.5)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and np.isfinite(out).all()
    for x, c in zip((img, a, skin), copies):
        np.testing.assert_array_equal(x, c)


def test_stage_light_black_background_and_clean_edges(rng):
    img, a, _ = _scene(rng)
    out = stage_light(img, a)
    far = _far_background(a)
    assert out[far].max() < 1e-6  # background is black
    assert out[a == 0].max() < 0.005  # and nothing visible right at the edge either
    # soft edge pixels carry subject colour only: no blue fringe from the old background
    edge = (a > 0.05) & (a < 0.95)
    assert edge.any()
    px = out[edge]
    assert (px[:, 2] <= px[:, 0] + 1e-3).all()  # subject is warm (R > B); blue would flip that
    # spot light: the top of the subject is brighter than its bottom
    col = out[:, W // 2, :].mean(axis=1)
    rows = np.nonzero(a[:, W // 2] >= 1)[0]
    assert col[rows[0] + 2] > col[rows[-1] - 2]


def test_stage_light_mono_is_gray_and_on_black(rng):
    img, a, _ = _scene(rng)
    out = stage_light(img, a, mono=True)
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)
    np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-6)
    assert out[_far_background(a)].max() < 1e-6
    assert out[a >= 1].mean() > 0.05


def test_high_key_mono_white_background_gray_subject(rng):
    img, a, _ = _scene(rng)
    out = high_key_mono(img, a)
    np.testing.assert_allclose(out[_far_background(a)], 1.0, atol=1e-6)
    assert out[a == 0].min() > 0.99
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-6)
    # metered to the high-key level: brighter than this photo's own luminance (0.33)
    y = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    assert out[a >= 1, 0].mean() > y[a >= 1].mean()


@pytest.mark.parametrize("exposure", [0.7, 1.0, 2.2])
def test_high_key_mono_meters_the_face_whatever_the_exposure(rng, exposure):
    # The same portrait under- and over-exposed: the face lands at high_key_level each time
    # (with the fixed +0.6 EV the dim one stayed grey and the bright one burned white).
    # An over-exposed face is not metered down: high-key never darkens a bright face (one was
    # taken down 0.39 EV to grey on the white background; photographer).
    img, a, skin = _scene(rng)
    img = np.clip(img * np.float32(exposure * 0.9), 0, 1).astype(np.float32)
    p = PortraitLightingParams()
    out = high_key_mono(img, a, skin_mask=skin, params=p)
    face = (skin > 0) & (a >= 1)
    y = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    if np.median(y[face] * 2 ** p.key_light_ev) < p.high_key_level:
        assert np.median(out[face, 0]) == pytest.approx(p.high_key_level, rel=0.08)
    else:
        assert np.median(out[face, 0]) >= np.median(y[face])  # not darker than it came
        assert (out[face, 0] >= 0.995).mean() < 0.05  # rolled off, not clipped


def test_high_key_mono_lifts_a_dark_face_by_at_most_one_stop(rng):
    # Dark skin (or a very dim photo) is brightened by +1 EV at most, not metered up to the
    # high-key level: +1.5 EV turned a dark-skinned face pale grey with a white forehead.
    img, a, skin = _scene(rng)
    img = (img * np.float32(0.3)).astype(np.float32)
    p = PortraitLightingParams(skin_feather=0.0, high_key_contrast=1.0)
    out = high_key_mono(img, a, skin_mask=skin, params=p)
    face = (skin > 0) & (a >= 1)
    y = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    lift = np.median(out[face, 0]) / np.median(y[face] * 2 ** p.key_light_ev)
    assert lift == pytest.approx(2.0, rel=0.03)


def test_high_key_mono_rolls_bright_skin_off_instead_of_clipping(rng):
    # A bright, textured face (luminance 0.5-0.8, a blonde on a white backdrop): the old look
    # (+0.95 EV and a contrast slope around 0.18) put 84 % of such skin at white.
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = np.ones((H, W), np.float32)
    y = 0.5 + 0.3 * (0.5 + 0.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0))
    img = np.repeat(y[..., None], 3, axis=2).astype(np.float32)
    p = PortraitLightingParams(refine=False)
    out = high_key_mono(img, a, skin_mask=a, params=p)[..., 0]
    assert (out >= 0.99).mean() < 0.02 and out.max() < 1.0
    # Not darkened (high-key never meters a bright face down); its brightest part rolls off
    # in the shoulder instead of clipping.
    assert np.median(out) >= 0.97 * np.median(img[..., 0]) and np.percentile(out, 95) < 0.97
    # texture kept and in order: brighter in, brighter out
    order = np.argsort(img[..., 0].ravel())
    assert (np.diff(out.ravel()[order]) >= -1e-6).all() and out.std() > 0.05


def test_studio_key_light_on_skin_only(rng):
    img, a, skin = _scene(rng)
    p = PortraitLightingParams(skin_feather=0.0)
    out = studio_light(img, a, skin_mask=skin, params=p)
    gain_skin = out[skin > 0].mean() / img[skin > 0].mean()
    inner = (a >= 1) & (skin == 0)
    np.testing.assert_allclose(out[inner], img[inner], atol=1e-5)  # rest of the subject untouched
    np.testing.assert_allclose(gain_skin, 2 ** p.key_light_ev, rtol=0.02)
    assert out[a == 0].mean() < img[a == 0].mean()  # background a touch darker


@pytest.mark.parametrize("low, high, lit", [(0.65, 0.95, False), (0.55, 0.85, True), (0.2, 0.45, True)])
def test_key_light_brightens_skin_up_to_a_ceiling_and_keeps_its_hue(rng, low, high, lit):
    # Skin whose largest channel spans low..high. +0.35 EV with a hard clip put a third of a
    # bright face at a channel of 1, flat and yellowed; rolled off, a fair face lit by stage
    # light still went waxy (46 % of a FASSEG face at sRGB 250+). The key light now brings the
    # skin's bright side (95th percentile) up to key_light_ceiling at most, and leaves skin
    # already past it as it is; the hue is kept.
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = np.ones((H, W), np.float32)
    level = low + (high - low) * (0.5 + 0.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0))
    img = (level[..., None] * np.array([1.0, 0.8, 0.65], np.float32)).astype(np.float32)
    p = PortraitLightingParams(refine=False, skin_feather=0.0)
    out = studio_light(img, a, skin_mask=a, params=p)
    gain = out.max(axis=2) / img.max(axis=2)
    if not lit:
        np.testing.assert_allclose(out, img, atol=1e-6)  # past the ceiling already: left as it is
    else:
        assert out.mean() > img.mean() and (gain >= 1 - 1e-6).all()
        knee = p.highlight_knee
        ceiling = knee + (1 - knee) * np.tanh((p.key_light_ceiling - knee) / (1 - knee))  # after the shoulder
        assert np.percentile(out.max(axis=2), 95) <= ceiling + 0.01
        wanted = min(2 ** p.key_light_ev, p.key_light_ceiling / np.percentile(img.max(axis=2), 95))
        assert gain.max() == pytest.approx(wanted, rel=0.01)  # given whole below the shoulder
    assert (out.max(axis=2) >= 0.99).mean() < 0.01
    np.testing.assert_allclose(out[..., 1] / out[..., 0], 0.8, rtol=1e-3)
    np.testing.assert_allclose(out[..., 2] / out[..., 0], 0.65, rtol=1e-3)


def test_key_light_meters_each_face_on_its_own():
    # Metered together, a fair face past the ceiling switched the key light off for a darker
    # face beside it; a large ceiling switches the ceiling off.
    img = np.full((H, W, 3), 0.2, np.float32)
    skin = np.zeros((H, W), np.float32)
    skin[10:40, 5:30] = 1.0
    skin[10:40, 50:75] = 1.0
    img[10:40, 5:30] = (0.95, 0.8, 0.7)  # fair, past the ceiling
    img[10:40, 50:75] = (0.3, 0.2, 0.15)  # darker
    a = np.ones((H, W), np.float32)
    p = PortraitLightingParams(refine=False, skin_feather=0.0)
    out = studio_light(img, a, skin_mask=skin, params=p)
    np.testing.assert_allclose(out[20, 15], img[20, 15], atol=1e-6)  # no key light: past it
    np.testing.assert_allclose(out[20, 60] / img[20, 60], 2 ** p.key_light_ev, rtol=1e-3)  # all of it
    off = studio_light(img, a, skin_mask=skin, params=PortraitLightingParams(refine=False, skin_feather=0.0,
                                                                             key_light_ceiling=10.0))
    assert off[20, 15, 2] > img[20, 15, 2] + 0.02  # lit (into the roll-off), the old behaviour
    with pytest.raises(ValueError, match="key_light_ceiling"):
        PortraitLightingParams(key_light_ceiling=0.0)


def test_stage_light_mono_rolls_bright_skin_off_instead_of_clipping():
    # Its contrast slope around 0.18 took a fair face's skin past white, clipped: 21 % of FASSEG
    # train 03_030's skin at sRGB 250 or more.
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = np.ones((H, W), np.float32)
    y = 0.45 + 0.3 * (0.5 + 0.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0))
    img = np.repeat(y[..., None], 3, axis=2).astype(np.float32)
    out = stage_light(img, a, mono=True, skin_mask=a, params=PortraitLightingParams(refine=False, spot_falloff=0))
    out = out[..., 0].ravel()
    order = np.argsort(img[..., 0].ravel())
    assert (np.diff(out[order]) >= -1e-6).all()  # in order
    top = out[order[-len(order) // 10:]]  # the brightest tenth: rolled off, not flat white
    assert top.max() < 1.0 and top.std() > 1e-3


def test_stage_light_mono_exposure_has_no_step_between_a_face_and_a_hand():
    # Each face is exposed on its own; the exposure also applies to the clothes between a
    # fair face and a darker hand, where a map of the nearest region's value put a 0.1 step.
    img = np.full((200, 160, 3), 0.3, np.float32)
    skin = np.zeros((200, 160), np.float32)
    skin[10:60, 50:110] = 1.0
    img[10:60, 50:110] = 0.8
    skin[150:190, 60:100] = 1.0
    img[150:190, 60:100] = 0.1
    out = stage_light(img, np.ones((200, 160), np.float32), mono=True, skin_mask=skin,
                      params=PortraitLightingParams(refine=False, spot_falloff=0))
    assert np.abs(np.diff(out[:, 20, 0])).max() < 0.01


def test_a_negative_key_light_darkens_the_face(rng):
    # The roll-off keeps brightening from ending below the unlit pixel; it must not also undo a
    # key light asked to darken (key_light_ev < 0 left the skin as it was).
    img, a, skin = _scene(rng)
    p = PortraitLightingParams(skin_feather=0.0, key_light_ev=-1.0)
    out = studio_light(img, a, skin_mask=skin, params=p)
    np.testing.assert_allclose(out[skin > 0].mean() / img[skin > 0].mean(), 0.5, rtol=0.02)


def test_contour_on_a_frame_filling_subject_and_on_one_row(rng):
    # No silhouette, nothing to shade: float rounding in the flat relief was scaled up into
    # blotches of shade (0.93 on 300x300); one row had no gradient at all (ValueError).
    img = np.full((300, 300, 3), 0.5, np.float32)
    full = np.ones((300, 300), np.float32)
    for skin in (None, full):
        out = contour_light(img, full, skin_mask=skin, params=PortraitLightingParams(refine=False))
        assert out.max() - out.min() < 1e-4  # evenly lit (the key light brightens skin evenly)
    row = contour_light(np.full((1, 7, 3), 0.5, np.float32), np.ones((1, 7), np.float32))
    assert row.shape == (1, 7, 3) and np.isfinite(row).all()


def test_contour_darkens_the_side_away_from_the_light(rng):
    img, a, _ = _scene(rng)
    out = contour_light(img, a, params=PortraitLightingParams(light_angle=180.0))  # from the left
    left = out[28:36, 24:30].mean()
    right = out[28:36, 50:56].mean()
    assert right < 0.9 * left


def test_contour_shading_has_no_crease_down_the_middle():
    # A relief from the distance to the edge flips its normal along the medial axis: it drew a
    # hard light/shadow line down the middle of every face and left the far half in full shadow.
    h, w = 300, 250
    yy, xx = np.mgrid[0:h, 0:w]
    a = (((xx - 125) / 75.0) ** 2 + ((yy - 150) / 110.0) ** 2 <= 1).astype(np.float32)
    img = np.full((h, w, 3), 0.5, np.float32)
    p = PortraitLightingParams(light_angle=180.0, refine=False)  # light from the left
    row = contour_light(img, a, params=p)[150, 60:190, 0]
    assert np.abs(np.diff(row)).max() < 0.03                   # gradual, no line
    assert row[:40].min() > 0.49 and row[-10:].mean() < 0.4     # lit side kept, far side shaded
    assert (np.diff(row) <= 1e-6).all()                         # light falls off one way


def test_strength_zero_is_identity_and_half_is_between(rng):
    img, a, _ = _scene(rng)
    np.testing.assert_array_equal(stage_light(img, a, params=PortraitLightingParams(strength=0.0)), img)
    full = stage_light(img, a)
    half = stage_light(img, a, params=PortraitLightingParams(strength=0.5))
    np.testing.assert_allclose(half, 0.5 * (img + full), atol=1e-5)


def test_no_person_and_tiny_image(rng):
    img, _, _ = _scene(rng)
    out = stage_light(img, np.zeros((H, W), np.float32))
    assert out.max() < 1e-6  # nobody on stage: all black
    out = high_key_mono(np.full((1, 1, 3), 0.3, np.float32), np.ones((1, 1), np.float32))
    assert out.shape == (1, 1, 3) and np.isfinite(out).all()


def test_eight_people(rng):
    img = rng.random((H, W, 3)).astype(np.float32)
    people = np.zeros((H, W, 8), np.float32)
    for k in range(8):
        people[20:40, 2 + 10 * k : 8 + 10 * k, k] = 1.0
    out = stage_light(img, people, params=PortraitLightingParams(refine=False, spot_falloff=0.0))
    union = people.max(axis=2)
    np.testing.assert_allclose(out[union >= 1], img[union >= 1], atol=1e-6)
    assert out[union == 0].max() < 1e-6


@pytest.mark.parametrize("look", ["stage", "high_key_mono"])
def test_a_hair_matte_far_from_the_subject_is_not_lit(rng, look):
    """The hair matte fires on every head in the frame; the looks took it anywhere, so a
    stranger's head far behind the subject stayed lit on the black stage and dark on the white
    one (person_binary 131, COCO 110's diners). As in portrait_blur, hair counts only within
    three refine bands of the subject: the subject's own hair, just outside its matte, stays."""
    img, a, _ = _scene(rng)
    hair = np.zeros((H, W), np.float32)
    hair[4:12, 4:12] = 1.0  # a far head: over 20 px from the subject's edge
    img[4:12, 4:12] = (0.3, 0.2, 0.1)
    yy, xx = np.mgrid[0:H, 0:W]
    own = (np.hypot(xx - W / 2, yy - H / 2) > 20.5) & (np.hypot(xx - W / 2, yy - H / 2) < 22) & (yy < H / 2)
    hair[own] = 1.0  # the subject's own hair, just outside its matte
    img[own] = (0.3, 0.2, 0.1)
    params = PortraitLightingParams(spot_falloff=0.0)
    out = portrait_lighting(img, a, look=look, hair_mask=hair, params=params)
    background = 0.0 if look == "stage" else 1.0
    assert np.abs(out[5:11, 5:11] - background).max() < 1e-3
    assert np.abs(out[own] - background).max(axis=1).mean() > 0.1
    with pytest.raises(ValueError, match="PortraitLightingParams.matte_floor"):
        PortraitLightingParams(matte_floor=1.0)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(look="sunset"), ValueError, "look: expected one of"),
        (dict(image=np.zeros((H, W, 4), np.float32)), ValueError, "image: expected shape H×W×3"),
        (dict(image=np.full((H, W, 3), np.inf, np.float32)), ValueError, "image: contains NaN"),
        (dict(subject_mask=np.full((H, W), -0.5, np.float32)), ValueError, r"subject_mask: expected values in \[0, 1\]"),
        (dict(skin_mask=np.zeros((H + 1, W), np.float32)), ValueError, "skin_mask: expected shape"),
        (dict(skin_mask=np.zeros((H, W), np.uint8)), TypeError, "skin_mask: expected a float array"),
        (dict(params=PortraitLightingParams), TypeError, "params: expected PortraitLightingParams"),
    ],
)
def test_invalid_arguments(kwargs, exc, match):
    args = dict(image=np.zeros((H, W, 3), np.float32), subject_mask=np.zeros((H, W), np.float32), look="stage")
    args.update(kwargs)
    image, mask = args.pop("image"), args.pop("subject_mask")
    with pytest.raises(exc, match=match):
        portrait_lighting(image, mask, **args)


@pytest.mark.parametrize("field, value", [("strength", 1.5), ("spot_falloff", -0.1), ("mono_contrast", 0.0), ("key_light_ev", float("nan")),
                                          ("high_key_level", 1.0), ("highlight_knee", 0.0)])
def test_invalid_params(field, value):
    with pytest.raises(ValueError, match=f"PortraitLightingParams.{field}"):
        PortraitLightingParams(**{field: value})


@pytest.mark.parametrize("feather", [0.11, 1.0, 1e6, 1e9])
def test_a_skin_feather_wider_than_a_tenth_of_the_frame_is_refused_when_built(rng, feather):
    """Taken as "a number >= 0", the feather is mirrored out by three sigmas at full resolution:
    1e6 of the diagonal asked OpenCV for 3.7e18 bytes, 1e9 failed in copyMakeBorder ("integer
    won't fit into a C int"), both only when a look ran; 1.0 then took 9 GB on a 12 MP photo (its
    memory grows with the feather's square). A tenth of the diagonal is the widest taken."""
    with pytest.raises(ValueError, match=r"PortraitLightingParams.skin_feather.*\[0, 0.1\]"):
        PortraitLightingParams(skin_feather=feather)
    img, a, skin = _scene(rng)
    out = studio_light(img, a, skin_mask=skin, params=PortraitLightingParams(skin_feather=0.1))
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_stage_light_lights_the_face_fully_and_falls_off_below_it(rng):
    """The spot fell off from the subject's top, so a close-up's face, half-way down, came out
    0.3-0.6 EV darker than without the look (photographer). It now falls off below the face."""
    img, a, skin = _scene(rng)  # a disc of subject rows 10-50, skin rows 22-34
    p = PortraitLightingParams(skin_feather=0.0, refine=False)
    out = stage_light(img, a, skin_mask=skin, params=p)
    face = skin > 0
    assert np.median(out[face] / img[face]) == pytest.approx(2 ** p.key_light_ev, rel=0.03)
    low = (a >= 1) & (np.arange(H)[:, None] > 45)
    assert np.median(out[low] / img[low]) < 0.75  # still a spot: the bottom in shadow


@pytest.mark.parametrize("knee", [0.8, 0.5])
def test_key_lit_kernel_equals_the_numpy_chain(knee):
    """_key_lit's fused kernel equals its formula in numpy (channel maximum, lit, shoulder, gain),
    on odd sizes, with brightening and darkening keys and black pixels."""
    from effects.portrait_lighting import _key_lit, _shoulder

    rng = np.random.default_rng(4)
    F = rng.random((37, 53, 3), dtype=np.float32)
    F[3, 4] = 0.0  # black: the key itself is the gain
    key = (rng.random((37, 53, 1), dtype=np.float32) * 2.5 + 0.3).astype(np.float32)  # darkening too
    m0 = F.max(axis=2)
    lit = m0 * key[..., 0]
    rolled = np.maximum(_shoulder(lit.copy(), knee), np.minimum(m0, lit))
    gain = np.where(m0 > 1e-6, rolled / np.maximum(m0, 1e-6), key[..., 0]).astype(np.float32)
    np.testing.assert_allclose(_key_lit(F, key, knee), F * gain[..., None], rtol=0, atol=1e-6)
    assert _key_lit(F, 1.0, knee) is F


@pytest.mark.parametrize("keyed", [True, False])
def test_high_key_kernel_equals_the_numpy_chain(keyed):
    """high_key_mono's fused passes equal its numpy chain (lit luminance, metering gain, contrast,
    shoulder, grey on white), on odd sizes, with and without a key-light map."""
    from effects.portrait_lighting import (_contrast, _grey_rgb, _high_key_gain, _look_high_key_mono, _luminance,
                                           _shoulder)

    rng = np.random.default_rng(8)
    H, W = 41, 67
    img = rng.random((H, W, 3), dtype=np.float32)
    F = rng.random((H, W, 3), dtype=np.float32)
    alpha = np.clip(rng.random((H, W), dtype=np.float32) * 2 - 0.5, 0, 1)
    skin = (rng.random((H, W)) > 0.4).astype(np.float32) * alpha
    key = (1.0 + 0.8 * skin)[..., None].astype(np.float32) if keyed else 1.0
    p = PortraitLightingParams()
    y = _luminance(F * key)
    y *= np.float32(_high_key_gain(y, alpha, skin, p))
    y = _shoulder(_contrast(y, p.high_key_contrast, p.high_key_level), p.highlight_knee)
    want = alpha[..., None] * _grey_rgb(y) + (1 - alpha[..., None])
    np.testing.assert_allclose(_look_high_key_mono(img, alpha, F, key, skin, p), want, rtol=0, atol=1e-6)


def test_the_wide_feather_on_a_coarse_grid_is_the_full_resolution_gaussian():
    """The skin feather (sigma 1 % of the diagonal) is blurred on a coarser grid: within 2e-3
    of OpenCV's full-resolution Gaussian, a face at the frame's edge included; small sigmas
    are the full-resolution blur itself."""
    import cv2

    from effects.portrait_lighting import _wide_gaussian

    yy, xx = np.mgrid[0:601, 0:803].astype(np.float32)
    face = ((yy - 250) ** 2 / 160 ** 2 + (xx - 700) ** 2 / 130 ** 2 < 1).astype(np.float32)  # cut by the right edge
    face += 0.3 * (np.random.default_rng(0).random(face.shape, np.float32) < 0.01)  # specks
    for sigma in (17.0, 33.0, 50.0):
        exact = cv2.GaussianBlur(face, (0, 0), sigma)
        assert np.abs(_wide_gaussian(face, sigma) - exact).max() < 2e-3, sigma
    np.testing.assert_array_equal(_wide_gaussian(face, 9.0), cv2.GaussianBlur(face, (0, 0), 9.0))


@pytest.mark.parametrize("look, frames", [("stage", 1.6), ("studio", 2.6)])
def test_the_looks_light_the_subject_in_place(look, frames):
    """Each look writes into its lit frame instead of making a new frame at each product and sum:
    its allocations peak at most ``frames`` image frames (stage 2.0 -> 1.4, studio 3.0 -> 2.4 on
    this 300×400 scene; at 12 MP the stage light develop's peak RSS 2.28 -> 1.93 GB)."""
    import tracemalloc

    from effects.portrait_lighting import LOOKS, _key_light

    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.2 + 0.5 * xx / w, 0.3 + 0.4 * yy / h, np.full_like(xx, 0.4)], axis=2)
    alpha = np.zeros((h, w), np.float32)
    alpha[60:280, 120:280] = 1.0
    skin = np.zeros((h, w), np.float32)
    skin[80:140, 160:240] = 1.0
    p = PortraitLightingParams()
    key = _key_light(skin, p, float(np.hypot(h, w)), img)
    LOOKS[look](img, alpha, img.copy(), key, skin, p)  # (the kernels compiled, before the measure)
    F = img.copy()
    tracemalloc.start()
    LOOKS[look](img, alpha, F, key, skin, p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < frames * img.nbytes
