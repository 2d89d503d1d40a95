"""Inputs at the edges of what the effects accept, from an adversarial pass over the package:
params that made NaN or failed deep inside, one-pixel-wide and Fortran-ordered images that
OpenCV failed on, and early exits that skipped the promised clip."""
import dataclasses
import math

import numpy as np
import pytest

import effects
from effects import (NoiseProfile, PortraitBlurParams, PortraitLightingParams, ToneMapParams, denoise,
                     dim_photo_lift_ev, portrait_blur, portrait_lighting, sharpen)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("field", ["base_eps", "gain_eps", "scene_grey"])
def test_an_infinite_tone_map_param_is_refused(field):
    """Accepted as "> 0", each turned the whole image into NaN."""
    with pytest.raises(ValueError, match=f"{field}.*finite"):
        ToneMapParams(**{field: math.inf})


@pytest.mark.parametrize("a, b", [((math.nan, 0, 0), (0, 0, 0)), ((-1e-4, 0, 0), (0, 0, 0)),
                                  ((1e-4, 0, 0), (math.inf, 0, 0)), ((1e-4,), (0, 0, 0)), (("x", 0, 0), (0, 0, 0))])
def test_a_noise_profile_is_checked_when_built(a, b):
    """A NaN or negative slope made denoise return NaN, b=inf a flat grey, a short tuple an IndexError."""
    with pytest.raises(ValueError, match="NoiseProfile"):
        NoiseProfile(a=a, b=b)
    with pytest.raises(ValueError, match="coarse_a"):
        NoiseProfile(a=(1e-4, 0, 0), b=(0, 0, 0), coarse_a=((math.nan, 0, 0),), coarse_b=((0, 0, 0),))


def test_a_fortran_ordered_image_is_blurred(rng):
    image = np.asfortranarray(rng.random((40, 50, 3), dtype=np.float32))
    mask = np.zeros((40, 50), np.float32)
    mask[10:30, 15:35] = 1.0
    out = portrait_blur(image, mask)
    np.testing.assert_array_equal(out, portrait_blur(np.ascontiguousarray(image), mask))


@pytest.mark.parametrize("height", [1, 4, 33, 68])
def test_one_pixel_wide_images(rng, height):
    """OpenCV took a one-column array of up to 4 values for a scalar: sharpen failed on 4×1, the
    lighting looks on 33×1 and 1×1."""
    image = rng.random((height, 1, 3), dtype=np.float32)
    mask = np.full((height, 1), 0.5, np.float32)
    outs = [sharpen(image), portrait_blur(image, mask)]
    outs += [portrait_lighting(image, mask, look=look) for look in ("studio", "stage", "high_key_mono")]
    for out in outs:
        assert out.shape == image.shape and out.dtype == np.float32 and out.flags.c_contiguous
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("field", ["key_light_ev", "background_ev", "subject_ev"])
def test_lighting_exposures_are_bounded(field):
    """2000 EV gave NaN (studio) or an OverflowError (contour, high_key_mono)."""
    with pytest.raises(ValueError, match=f"{field}.*\\[-20, 20\\]"):
        PortraitLightingParams(**{field: 2000.0})
    PortraitLightingParams(**{field: 3.0})


@pytest.mark.parametrize("cls", [PortraitBlurParams, PortraitLightingParams])
@pytest.mark.parametrize("band", [math.inf, math.nan, None, -1.0])
def test_refine_band_is_checked_when_built(cls, band):
    with pytest.raises(ValueError, match="refine_band"):
        cls(refine_band=band)


@pytest.mark.parametrize("changes", [{"seed": None}, {"seed": -1}, {"seed": 1.5}, {"match_grain": "no"},
                                     {"refine": None}, {"aperture_rotation": math.nan}])
def test_blur_params_are_checked_when_built(changes):
    """seed=None made two calls differ (the docstring says deterministic); the others failed late."""
    with pytest.raises(ValueError, match=next(iter(changes))):
        PortraitBlurParams(**changes)


def test_dim_lift_checks_its_input(rng):
    """It checked nothing: NaN pixels gave a 1.5 EV lift, 0-255 values none."""
    with pytest.raises(ValueError, match="NaN"):
        dim_photo_lift_ev(np.full((16, 16, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dim_photo_lift_ev(rng.random((16, 16, 3), dtype=np.float32) * 255)
    with pytest.raises(TypeError):
        dim_photo_lift_ev(rng.random((16, 16, 3), dtype=np.float32), ToneMapParams())  # keyword-only
    with pytest.raises(TypeError, match="ToneMapParams"):
        dim_photo_lift_ev(rng.random((16, 16, 3), dtype=np.float32), params="x")


def test_early_exits_keep_the_promised_range(rng):
    """strength 0, a zero noise profile, blur_scale 0 or a full matte returned the input as it
    was, values outside [0, 1] included."""
    image = rng.random((32, 32, 3), dtype=np.float32) * 1.4 - 0.2
    image[0, 0] = (-0.2, 1.4, 0.5)
    zero = NoiseProfile(a=(0, 0, 0), b=(0, 0, 0))
    for out in (denoise(image, params=effects.DenoiseParams(strength=0.0)), denoise(image, noise=zero)):
        assert out.min() >= 0.0
    full = np.ones((32, 32), np.float32)
    for out in (portrait_blur(image, full), portrait_blur(image, full * 0.5, params=PortraitBlurParams(blur_scale=0.0)),
                portrait_lighting(image, full, look="studio", params=PortraitLightingParams(strength=0.0))):
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert denoise(image, noise=zero) is not image


def test_every_effect_takes_a_matte_a_rounding_step_over_one(rng):
    """denoise and sharpen refused a matte at 1.0000001 that the others took, saying
    "got range [0, 1]"."""
    image = rng.random((16, 16, 3), dtype=np.float32)
    matte = np.full((16, 16), 1.0000001, np.float32)
    denoise(image, sky_mask=matte)
    sharpen(image, skin_mask=matte)
    effects.apply_style(image, "vibrant", skin_mask=matte)
    effects.tone_map_people(image, [matte])
    with pytest.raises(ValueError, match=r"got range \[1\.1000001"):
        sharpen(image, skin_mask=matte * np.float32(1.1))


def test_tone_map_takes_a_stack_of_mattes_as_the_portrait_effects_do(rng):
    """An H×W×N stack was read as H mattes of W×N: "person_masks[0] … got (64, 2)"."""
    image = rng.random((48, 64, 3), dtype=np.float32) * 0.5
    a, b = np.zeros((48, 64), np.float32), np.zeros((48, 64), np.float32)
    a[5:30, 5:25], b[10:40, 35:60] = 1.0, 1.0
    skin = np.full((48, 64), 0.5, np.float32)
    stacked = effects.tone_map_people(image, np.stack([a, b], axis=2), skin_masks=np.stack([skin, skin], axis=2))
    listed = effects.tone_map_people(image, [a, b], skin_masks=[skin, skin])
    np.testing.assert_array_equal(stacked, listed)


def test_small_params_and_argument_checks():
    """DenoiseParams refused np.float32(0.5) as "must be a finite number" and took any
    refine_masks; a look in a list was "unhashable"; noise_profile_from_iso(None) an arithmetic
    TypeError."""
    p = effects.DenoiseParams(strength=np.float32(0.5), levels=np.int64(3), luma_base=(np.float32(1.0),))
    assert p.strength == 0.5 and p.levels == 3 and type(p.luma_base[0]) is float
    with pytest.raises(ValueError, match="refine_masks"):
        effects.DenoiseParams(refine_masks="no")
    image = np.full((8, 8, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match="look"):
        portrait_lighting(image, np.ones((8, 8), np.float32), look=["studio"])
    with pytest.raises(TypeError, match="iso"):
        effects.noise_profile_from_iso(None)


@pytest.mark.parametrize("make", [lambda: effects.SharpenParams(radius=1e9), lambda: effects.SharpenParams(clamp_radius=10**10),
                                  lambda: effects.RefineMatteParams(radius=10**12),
                                  lambda: effects.RefineMatteParams(strip_rows=10**12),
                                  lambda: effects.DenoiseParams(window=10**6),
                                  lambda: effects.DenoiseParams(skin_texture_contrast=1e-300),
                                  lambda: PortraitBlurParams(edge_dilation=10**12)])
def test_sizes_past_what_can_run_are_refused_when_built(make):
    """Each failed in OpenCV ("Can't parse 'ksize'"), ran out of memory, divided by zero or
    ran for minutes."""
    with pytest.raises(ValueError, match=r"must be|expected"):
        make()


_PARAMS_CLASSES = [effects.DenoiseParams, effects.SharpenParams, ToneMapParams, effects.Style, PortraitBlurParams,
                   PortraitLightingParams, effects.RefineMatteParams]


@pytest.mark.parametrize("cls", _PARAMS_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("wrong", ["x", None, object()], ids=["str", "None", "object"])
def test_a_wrong_typed_param_names_its_field(cls, wrong):
    """A string or None given for a number failed inside the range checks with Python's
    "'<' not supported between instances of 'float' and 'str'", naming no field; a string for a
    bool (``refine='x'``) was taken as True."""
    for f in dataclasses.fields(cls):
        if f.name == "name" and wrong == "x":
            continue  # Style.name is a string
        with pytest.raises(ValueError, match=rf"{cls.__name__}\.{f.name} must be") as caught:
            cls(**{f.name: wrong})
        assert isinstance(caught.value, TypeError)  # and a TypeError, for code that catches that


def test_params_take_numpy_scalars_and_json_lists():
    p = effects.DenoiseParams(strength=np.float32(0.5), levels=np.int64(4), luma_base=[1.0, np.float32(0.5)])
    assert type(p.strength) is float and type(p.levels) is int
    assert p.luma_base == (1.0, 0.5) and type(p.luma_base[1]) is float
    assert hash(p) == hash(effects.DenoiseParams(strength=0.5, levels=4, luma_base=(1.0, 0.5)))
    with pytest.raises(ValueError, match=r"SharpenParams.clamp_radius must be an integer"):
        effects.SharpenParams(clamp_radius=True)
    with pytest.raises(ValueError, match=r"NoiseProfile.a must be a tuple of 3 values"):
        NoiseProfile(a=(1e-4, 0), b=(0, 0, 0))


def test_refine_eps_too_small_for_float32_is_refused():
    """eps=1e-30 underflowed the 3×3 inverse's determinant on a flat guide: an all-zero matte."""
    with pytest.raises(ValueError, match="eps.*1e-8"):
        effects.RefineMatteParams(eps=1e-30)
    guide = np.full((64, 64, 3), 0.5, np.float32)
    matte = np.zeros((16, 16), np.float32)
    matte[:, 8:] = 1.0
    out = effects.refine_matte(guide, matte, params=effects.RefineMatteParams(eps=1e-8))
    assert 0.45 < float(out.mean()) < 0.55


def test_field_checks_take_arrays_and_numpy_strings_and_word_nested_tuples():
    p = ToneMapParams(contrast_limits=np.array([0.9, 1.1]))
    assert p.contrast_limits == (0.9, 1.1) and type(p.contrast_limits[0]) is float
    assert type(effects.Style(name=np.str_("mine")).name) is str
    with pytest.raises(effects.ParamTypeError, match=r"coarse_a must be a tuple of tuples of 3 values \(a number"):
        NoiseProfile(a=(0, 0, 0), b=(0, 0, 0), coarse_a=(("x", 0, 0),), coarse_b=((0, 0, 0),))


@pytest.mark.parametrize("flag", ["no", None, 1, np.array([True, False])], ids=["str", "None", "int", "array"])
def test_boolean_options_of_the_functions_take_only_booleans(rng, flag):
    """tone_map_people(return_gains="no") returned a tuple and stage_light(mono="no") a black
    and white look (any truthy value was taken as True); an array failed inside the call."""
    image = rng.random((16, 16, 3), dtype=np.float32)
    matte = np.full((16, 16), 0.5, np.float32)
    with pytest.raises(TypeError, match="return_gains: expected True or False"):
        effects.tone_map_people(image, [matte], return_gains=flag)
    with pytest.raises(TypeError, match="mono: expected True or False"):
        effects.stage_light(image, matte, mono=flag)
    out, gains = effects.tone_map_people(image, [matte], return_gains=np.bool_(True))
    assert len(gains) == 1
    assert effects.stage_light(image, matte, mono=np.bool_(False)).shape == image.shape
