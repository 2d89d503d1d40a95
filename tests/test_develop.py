"""camseg.pipeline (develop()): settings, the stage plan, and develop() on real photos."""
import dataclasses
import json
import types

import camseg
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from camseg import io as cio
from camseg.pipeline import (DevelopReport, DevelopResult, DevelopSettings, STAGES, available_styles,
                            check_settings, develop, skin_with_enclosed_gaps)

SAMPLE = Path(__file__).resolve().parents[1] / "camseg" / "samples" / "astronaut.jpg"


def _segmenter_or_skip():
    """The real default model (onnxruntime), or skip while it is not in the tree yet."""
    try:
        from camseg.segmenter import Segmenter
        return Segmenter()
    except (ImportError, FileNotFoundError, OSError) as exc:
        pytest.skip(f"default segmentation model not available: {exc}")


@pytest.fixture(scope="module")
def segmenter():
    return _segmenter_or_skip()


def _fake_segmentation(h, w, persons=1):
    """Masks from elsewhere (develop accepts any object with these mattes)."""
    sky = np.zeros((h, w), np.float32)
    sky[: h // 4] = 1.0
    mattes = []
    for i in range(persons):
        m = np.zeros((h, w), np.float32)
        x0 = (i * w) // max(1, persons)
        m[h // 3:, x0: x0 + w // max(2, persons + 1)] = 1.0
        mattes.append(m)
    person = np.maximum.reduce(mattes) if mattes else np.zeros((h, w), np.float32)
    return types.SimpleNamespace(sky=sky, skin=person * 0.5, persons=mattes, person=person,
                                 hair=np.zeros_like(sky), teeth=np.zeros_like(sky), glasses=np.zeros_like(sky))


def _photo_array(rng, h=48, w=64):
    base = np.linspace(0.05, 0.8, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    return np.clip(base + rng.normal(0, 0.02, (h, w, 3)).astype(np.float32), 0, 1)


# --- settings -------------------------------------------------------------------

def test_settings_json_roundtrip():
    s = DevelopSettings(style="warm", style_strength=0.7, portrait="blur", iso=800.0,
                        params={"denoise": {"strength": 1.3}})
    again = DevelopSettings.from_json(s.to_json())
    assert again == s
    assert DevelopSettings.from_dict(s.to_dict()) == s


def test_settings_validation_messages():
    with pytest.raises(ValueError, match="unknown settings"):
        DevelopSettings.from_dict({"stlye": "warm"})
    with pytest.raises(ValueError, match="style_strength"):
        DevelopSettings(style_strength=5)
    with pytest.raises(ValueError, match="unknown stage names"):
        DevelopSettings(params={"blurr": {}})
    with pytest.raises(TypeError, match="denoise must be True or False"):
        DevelopSettings(denoise="yes")
    with pytest.raises(ValueError, match="unknown develop options"):
        DevelopSettings().replace(colour="red")


def test_check_settings_rejects_bad_names_before_work():
    if available_styles():
        with pytest.raises(ValueError, match="valid names are"):
            check_settings(DevelopSettings(style="sepia"))
    with pytest.raises(ValueError, match="not a portrait effect"):
        check_settings(DevelopSettings(portrait="fisheye"))
    with pytest.raises(ValueError, match="unknown fields"):
        check_settings(DevelopSettings(params={"denoise": {"no_such_field": 1}}))
    names = [name for name, _, _ in check_settings(DevelopSettings())]
    assert names == [s.name for s in STAGES]
    # Values that passed these checks and then failed every photo (adversarial tester): a null
    # for a number, an infinite ISO.
    with pytest.raises(ValueError, match=r"params\['tone_map'\]\['dim_floor'\] must be a number"):
        check_settings(DevelopSettings(params={"tone_map": {"dim_floor": None}}))
    with pytest.raises(ValueError, match="must be true or false"):
        check_settings(DevelopSettings(params={"denoise": {"jpeg_skin": 1}}))
    with pytest.raises(ValueError, match="iso must be"):
        DevelopSettings(iso=float("inf"))
    with pytest.raises(ValueError, match=r"params\['style'\]: the style stage takes no params; choose a preset"):
        check_settings(DevelopSettings(params={"style": {"saturation": 0.5}}))  # was a raw KeyError
    check_settings(DevelopSettings(params={"tone_map": {"contrast_limits": [0.5, 2], "dim_floor": 0}}))
    # A stage turned off: its params were never looked at, a typo there passed silently.
    with pytest.raises(ValueError, match="unknown fields"):
        check_settings(DevelopSettings(denoise=False, params={"denoise": {"strenght": 2}}))
    report = dict((name, why) for name, _, why in check_settings(
        DevelopSettings(denoise=False, params={"denoise": {"strength": 2}, "portrait": {"f_number": 2.0}})))
    assert "params['denoise'] are not used" in report["denoise"]
    assert "params['portrait'] are not used" in report["portrait"]  # no effect chosen: nothing to check


def test_skin_with_enclosed_gaps_fills_lips_not_the_background():
    skin = np.zeros((200, 300), np.float32)
    cv2.ellipse(skin, (100, 100), (60, 80), 0, 0, 360, 1.0, -1)  # a face
    cv2.ellipse(skin, (100, 140), (20, 8), 0, 0, 360, 0.1, -1)   # its lips: a gap it encloses
    skin[:, 250:] = 1.0
    skin[20:40, 270:] = 0.0  # a gap in skin open to the frame's edge: may be background
    filled = skin_with_enclosed_gaps(skin)
    assert filled[140, 100] > 0.95 and filled[140, 85] > 0.95  # lips protected as skin
    assert filled[30, 290] == 0.0 and filled[5, 5] == 0.0  # open to the edge: left alone
    assert np.all(filled >= skin) and filled.dtype == np.float32
    big = np.ones((100, 100), np.float32)
    big[10:90, 10:90] = 0.0  # a "gap" larger than the skin around it is not a face's
    np.testing.assert_array_equal(skin_with_enclosed_gaps(big), big)
    small = skin_with_enclosed_gaps(cv2.resize(skin, (3000, 2000), interpolation=cv2.INTER_LINEAR))
    assert small.shape == (2000, 3000) and small[1400, 1000] > 0.95  # found on the reduced grid


def test_a_style_leaves_lips_as_it_leaves_skin():
    """The skin matte leaves the lips out: vibrant painted them lipstick red (here a change of
    0.107 in linear RGB on the lips, 0.005 on the skin around them)."""
    img = np.full((200, 300, 3), 0.2, np.float32)
    img[:, :40] = (0.1, 0.3, 0.5)  # a blue the style saturates
    face = np.zeros((200, 300), np.float32)
    cv2.ellipse(face, (150, 100), (70, 90), 0, 0, 360, 1.0, -1)
    lips = np.zeros((200, 300), np.uint8)
    cv2.ellipse(lips, (150, 140), (24, 9), 0, 0, 360, 1, -1)
    img[face > 0] = (0.45, 0.3, 0.22)
    img[lips > 0] = (0.5, 0.12, 0.12)
    seg = _fake_segmentation(200, 300, persons=0)
    seg.skin = np.where(lips > 0, 0.05, face).astype(np.float32)
    common = dict(segmentation=seg, denoise=False, sharpen=False, tone_map=False)
    changed = np.abs(develop(img, style="vibrant", **common) - develop(img, style="standard", **common)).max(axis=2)
    assert changed[140, 150] < 0.02 and changed[100, 120] < 0.01  # lips kept like the skin
    assert changed[100, 10] > 0.05  # the blue styled


# --- develop with masks from elsewhere (no model needed) -------------------------

def test_develop_array_keeps_shape_dtype_range_and_input(rng):
    img = _photo_array(rng)
    before = img.copy()
    seg = _fake_segmentation(*img.shape[:2])
    out = develop(img, segmentation=seg, style="vibrant" if "vibrant" in available_styles() else "standard")
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and np.isfinite(out).all()
    np.testing.assert_array_equal(img, before)
    assert not np.array_equal(out, img)


def test_all_stages_off_is_identity(rng):
    img = _photo_array(rng)
    seg = _fake_segmentation(*img.shape[:2])
    res = develop(img, segmentation=seg, denoise=False, sharpen=False, tone_map=False,
                  style_strength=0.0, return_details=True)
    np.testing.assert_array_equal(res.image, img)
    assert {s.name: s.status for s in res.report.stages}["denoise"] == "skipped"


def test_report_lists_every_stage_and_explains_skips(rng):
    img = _photo_array(rng)
    res = develop(img, segmentation=_fake_segmentation(*img.shape[:2], persons=0),
                  portrait="blur", return_details=True)
    assert isinstance(res, DevelopResult) and isinstance(res.report, DevelopReport)
    names = [s.name for s in res.report.stages]
    assert names == ["segment"] + [s.name for s in STAGES]
    portrait = res.report.stage("portrait")
    # Nobody in the photo: the portrait stage says so instead of blurring everything.
    assert portrait.status == "skipped" and "no person" in portrait.detail
    assert res.report.persons == 0 and res.report.sky_fraction == pytest.approx(0.25, abs=0.02)
    assert "total" in str(res.report)
    assert res.report.to_dict()["settings"]["portrait"] == "blur"


def test_eight_people(rng):
    img = _photo_array(rng, 64, 96)
    res = develop(img, segmentation=_fake_segmentation(64, 96, persons=8), return_details=True)
    assert res.report.persons == 8 and res.image.shape == img.shape


def test_one_pixel_image():
    img = np.full((1, 1, 3), 0.3, np.float32)
    out = develop(img, segmentation=_fake_segmentation(1, 1, persons=0), denoise=False, sharpen=False)
    assert out.shape == (1, 1, 3) and np.isfinite(out).all()


def test_develop_errors(rng):
    img = _photo_array(rng)
    with pytest.raises(ValueError, match="segmentation.sky has shape"):
        develop(img, segmentation=_fake_segmentation(10, 10))
    with pytest.raises(ValueError, match=r"linear RGB in \[0, 1\]"):
        develop(img * 3, segmentation=_fake_segmentation(*img.shape[:2]))
    with pytest.raises(TypeError, match="settings must be a DevelopSettings"):
        develop(img, {"style": "warm"})
    with pytest.raises(ValueError, match="unknown develop options"):
        develop(img, segmentation=_fake_segmentation(*img.shape[:2]), colour="red")


def test_a_segmenter_that_is_not_one_is_explained(rng):
    """A model's path or a function as segmenter= failed as "'str' object has no attribute
    'segment'" (tester)."""
    img = _photo_array(rng)
    for wrong in ("hyperdetr.onnx", lambda pixels: None):
        with pytest.raises(TypeError, match=r"segmenter must be a camseg.Segmenter .*got (str|function).*"
                                            r"camseg.Segmenter\(path\)"):
            develop(img, segmenter=wrong)


def test_a_segmenter_returning_a_dict_of_masks_is_refused_by_name(rng):
    """A segmenter of one's own whose segment() returns a dict of masks: develop read it as a
    segmentation without any mattes, silently (no sky or skin treatment, nobody to tone)."""
    img = _photo_array(rng)

    class DictSegmenter:
        def segment(self, pixels, categories=None):
            return vars(_fake_segmentation(*pixels.shape[:2]))

    with pytest.raises(TypeError, match=r"segmenter.segment must return the mattes as attributes.*"
                                        r"'persons'.*SimpleNamespace"):
        develop(img, segmenter=DictSegmenter())


def test_develop_file_returns_photo_with_metadata(tmp_path, rng):
    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Display P3")
    enc = np.rint(cio.linear_to_srgb(_photo_array(rng)) * 255).astype(np.uint8)
    Image.fromarray(enc).save(tmp_path / "p3.jpg", icc_profile=p3)
    res = develop(tmp_path / "p3.jpg", segmentation=_fake_segmentation(48, 64), return_details=True)
    photo = res.image
    assert isinstance(photo, cio.Photo) and photo.icc_profile == p3
    assert res.report.colour_space == "Display P3"
    assert res.report.stages[0].name == "decode"
    out = photo.save(tmp_path / "out.jpg")
    assert Image.open(out).info["icc_profile"] == p3


# --- the real model ----------------------------------------------------------------

def test_develop_sample_with_the_default_model(segmenter):
    res = develop(SAMPLE, segmenter=segmenter, return_details=True)
    img = res.image.pixels
    assert img.shape == (512, 512, 3) and np.isfinite(img).all()
    assert res.report.stage("segment").status == "applied"
    assert [s.name for s in res.report.stages][:2] == ["decode", "segment"]
    # The developed photo stays close to the original overall (no wild colour casts).
    orig = cio.read_photo(SAMPLE).pixels
    assert abs(float(img.mean()) - float(orig.mean())) < 0.1


def test_returned_segmentation_ignores_later_edits_of_the_callers_photo(segmenter):
    """develop reads the photo without a copy, except when its own pixels could change under a
    segmentation it hands back: a Photo's pixels are the caller's."""
    photo = cio.read_photo(SAMPLE)
    res = develop(photo, segmenter=segmenter, return_details=True)
    fresh = segmenter.segment(photo.pixels)
    photo.pixels[:] = 0.5
    # hair is not among develop's mattes (no portrait effect): refined against the photo when read
    np.testing.assert_array_equal(res.segmentation.hair, fresh.hair)
    res = develop(SAMPLE, segmenter=segmenter, return_details=True)  # develop's own pixels
    np.testing.assert_array_equal(res.segmentation.hair, fresh.hair)


def test_returned_segmentation_ignores_later_edits_of_the_returned_image(segmenter):
    """With every stage off develop returns its input pixels unchanged; the segmentation it
    hands back reads those pixels without a copy when they are develop's own (an array
    argument, a clipped Photo), so the result must be a copy of them."""
    # Over develop's 1 MP stage mattes, so full-detail mattes are left to be made when read.
    pixels = cv2.resize(cio.read_photo(SAMPLE).pixels, (1280, 1024), interpolation=cv2.INTER_LINEAR)
    off = dict(denoise=False, sharpen=False, tone_map=False, style_strength=0.0)
    fresh = segmenter.segment(pixels)
    for image in (pixels, cio.read_photo(SAMPLE).with_pixels(pixels * np.float32(1.00005))):
        res = develop(image, segmenter=segmenter, return_details=True, **off)
        out = res.image if isinstance(res.image, np.ndarray) else res.image.pixels
        out[:] = 0.5
        # Full-detail sky: refined against the photo when first read (develop used 1 MP mattes).
        # (The scaled photo is clipped, so not bit-equal; edits of the result moved it by 0.25.)
        np.testing.assert_allclose(res.segmentation.sky, fresh.sky, atol=1e-3)


def test_no_hair_or_glasses_mattes_without_people(segmenter):
    from camseg.segmenter import SegmenterOptions, Segmenter

    with Segmenter(options=SegmenterOptions(person_threshold=1.0)) as nobody:
        res = develop(SAMPLE, segmenter=nobody, portrait="blur", return_details=True)
    assert res.report.persons == 0 and res.report.stage("portrait").status == "skipped"
    cached = {n for cache in [res.segmentation._cache, *res.segmentation._reduced_cache.values()] for n in cache}
    assert {"sky", "skin"} <= cached and not cached & {"hair", "glasses", "teeth"}


def test_scene_level_only_when_no_stage_needs_persons(segmenter):
    res = develop(SAMPLE, segmenter=segmenter, tone_map=False, return_details=True)
    assert "scene-level" in res.report.stage("segment").detail
    assert res.report.persons == 0


@pytest.mark.parametrize("portrait", ["blur", "studio", "stage_light_mono"])
def test_portrait_effects_end_to_end_with_the_default_model(portrait):
    """The bundled model finds the astronaut, so each portrait effect really runs."""
    sample = Path(camseg.__file__).parent / "samples" / "astronaut.jpg"
    res = develop(str(sample), portrait=portrait, return_details=True)
    assert res.report.persons >= 1
    assert res.report.stage("portrait").status == "applied"
    plain = develop(str(sample), return_details=True)
    changed = np.abs(res.image.pixels - plain.image.pixels).mean()
    assert changed > 0.01  # the background really changed


def test_decisive_alpha():
    from camseg.pipeline import decisive_alpha
    matte = np.array([[0.0, 0.3, 0.5, 0.9, 1.0]], np.float32)
    out = decisive_alpha(matte)
    assert out.dtype == np.float32 and out[0, 2] == pytest.approx(0.5)
    assert out[0, 0] == 0 and out[0, 4] == 1 and out[0, 1] < 0.08 and out[0, 3] > 0.998
    assert (matte == np.array([[0.0, 0.3, 0.5, 0.9, 1.0]], np.float32)).all()  # input untouched
    assert np.allclose(decisive_alpha(matte, 1.0), matte)


def test_portrait_blur_keeps_the_dark_table_beside_the_astronaut(segmenter):
    """The black table right of her (behind the helmet) must stay black: with the model's soft
    matte over it taken as a half-subject alpha, the blur filled it with the bright backdrop."""
    orig = cio.read_photo(SAMPLE).pixels
    out = develop(SAMPLE, segmenter=segmenter, portrait="blur").pixels
    table = (slice(300, 360), slice(440, 500))
    assert float(orig[table].mean()) < 0.03 and float(out[table].mean()) < 0.05


def test_under_confident_subject_is_rendered_whole_not_as_a_ghost(rng):
    """A person whose whole matte sits at 0.6 (a flash photo of people in dark clothes: COCO 536)
    is the subject; with a 0.6 alpha the portrait blur drew them half over a background filled
    in behind them from the bright wall, a ghost. They must keep their own dark, textured look."""
    h, w = 120, 160
    img = np.full((h, w, 3), 0.7, np.float32)  # bright wall
    body = np.zeros((h, w), bool)
    body[30:, 50:110] = True
    img[body] = np.clip(0.05 + 0.04 * rng.standard_normal((int(body.sum()), 1)), 0.0, 1.0)  # dark dress
    seg = _fake_segmentation(h, w, persons=0)
    seg.persons = [body.astype(np.float32) * 0.6]
    seg.person = seg.persons[0]
    seg.skin = np.zeros((h, w), np.float32)
    out = develop(img, segmentation=seg, portrait="blur", denoise=False, sharpen=False, tone_map=False,
                  style="standard")
    inner = np.zeros_like(body)
    inner[45:, 62:98] = True  # away from the matte's edge
    assert float(out[inner].mean()) < 0.1                                     # not washed with the wall
    assert float(out[inner].std()) > 0.8 * float(img[inner].std())            # texture kept, not blurred


def test_decisive_alpha_midpoint():
    from camseg.pipeline import decisive_alpha
    matte = np.linspace(0.0, 1.0, 101, dtype=np.float32)[None, :]
    out = decisive_alpha(matte, 8.0, 0.35)
    assert out[0, 35] == pytest.approx(0.5, abs=1e-5)              # the midpoint maps to 0.5
    assert (np.diff(out[0]) >= 0).all() and out[0, 0] == 0 and out[0, 100] == 1
    assert out[0, 50] > 0.99 and out[0, 20] < 0.02                   # 0.5 is decisively in, 0.2 out
    assert np.allclose(decisive_alpha(matte, 8.0, 0.5), decisive_alpha(matte, 8.0))
    with pytest.raises(ValueError, match="midpoint"):
        decisive_alpha(matte, 8.0, 0.0)
    # Steep, or far from 0.5: (m / (1 - m))^k overflowed, 0 * inf and 0 / 0 gave NaN.
    for k, m in ((20.0, 0.99), (8.0, 1e-6), (1000.0, 0.9), (12.0, 0.999)):
        out = decisive_alpha(matte, k, m)
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, (k, m)
        assert (np.diff(out[0]) >= 0).all() and out[0, 0] == 0 and out[0, 100] == 1


def test_subject_midpoint_follows_an_under_confident_matte(rng):
    from camseg.pipeline import SUBJECT_MIDPOINT_RANGE, subject_midpoint
    h, w = 300, 400
    body = np.zeros((h, w), bool)
    body[60:, 150:260] = True
    confident = np.where(body, 0.97, 0.01).astype(np.float32)
    assert subject_midpoint(confident) == 0.5  # a close-up's matte keeps the calibrated cut
    # A whole person at 0.4-0.5 on a background at ~0.05 (COCO's tennis player: 0.53): the cut
    # falls between the two, so the person is the subject.
    unsure = np.where(body, 0.45, 0.05) + 0.03 * rng.standard_normal((h, w))
    unsure = np.clip(unsure, 0.0, 1.0).astype(np.float32)
    mid = subject_midpoint(unsure)
    assert SUBJECT_MIDPOINT_RANGE[0] <= mid < 0.4
    # Never below the range: the haze beside people (0.2-0.35) stays background.
    faint = np.where(body, 0.25, 0.02).astype(np.float32)
    assert subject_midpoint(faint) == SUBJECT_MIDPOINT_RANGE[0]


def test_under_confident_whole_person_is_kept_sharp_by_the_blur(rng):
    """A person the model puts at 0.45 everywhere, on a background at 0.05 (COCO 415: a tennis
    player at 0.53, half of him blurred into the court when cut at 0.5; here, cut at 0.5, there
    was no subject at all and no effect). The subject's cut follows the matte: the person keeps
    their texture and the background is blurred."""
    h, w = 120, 160
    img = np.clip(rng.uniform(0.2, 0.8, (h, w, 3)), 0, 1).astype(np.float32)  # texture everywhere
    body = np.zeros((h, w), bool)
    body[30:, 50:110] = True
    seg = _fake_segmentation(h, w, persons=0)
    seg.persons = [np.where(body, 0.45, 0.05).astype(np.float32)]
    seg.person = seg.persons[0]
    seg.skin = np.zeros((h, w), np.float32)
    res = develop(img, segmentation=seg, portrait="blur", denoise=False, sharpen=False, tone_map=False,
                  style="standard", return_details=True)
    out = res.image
    inner = np.zeros_like(body)
    inner[45:, 62:98] = True  # away from the matte's edge
    outside = np.zeros_like(body)
    outside[10:, 5:35] = True
    assert float(np.abs(out[inner] - img[inner]).mean()) < 0.02                # the person untouched
    assert float(np.abs(out[outside] - img[outside]).mean()) > 0.05            # the background blurred
    from camseg.pipeline import SUBJECT_MIDPOINT_RANGE
    assert f"subject cut at matte {SUBJECT_MIDPOINT_RANGE[0]:.2f}" in res.report.stage("portrait").detail


def test_portrait_subject_keeps_the_people_that_matter():
    from camseg.pipeline import portrait_subject
    big = np.zeros((40, 60), np.float32)
    big[5:40, 5:35] = 1.0  # 1050 px
    small = np.zeros_like(big)
    small[2:8, 50:58] = 1.0  # 48 px: under a tenth of the big one, background to a portrait
    near = np.zeros_like(big)
    near[10:40, 36:56] = 1.0  # 600 px: a second subject
    assert (portrait_subject([big, small]) == big).all()
    both = portrait_subject([big, small, near])
    assert both[20, 45] == 1 and both[4, 54] == 0 and both.dtype == np.float32
    # The segmenter's mattes split an overlap between people (they sum to the union): the subject
    # has no hole there. Mattes that each claim the overlap stay at 1.
    half = big * 0.5
    assert portrait_subject([half, half]).max() == pytest.approx(1.0)
    assert portrait_subject([big, big]).max() == 1.0
    assert portrait_subject([big, small], min_relative_area=0.0)[4, 54] == 1


def test_portrait_blur_leaves_a_small_distant_person_to_the_background(rng):
    h, w = 64, 96
    img = np.clip(rng.uniform(0.1, 0.9, (h, w, 3)), 0, 1).astype(np.float32)  # texture everywhere
    seg = _fake_segmentation(h, w, persons=1)
    far = np.zeros((h, w), np.float32)
    far[2:10, 80:90] = 1.0  # 80 px against the subject's ~2000
    seg.persons = seg.persons + [far]
    seg.person = np.maximum(seg.person, far)
    out = develop(img, segmentation=seg, portrait="blur", denoise=False, sharpen=False, tone_map=False,
                  style="standard")
    plain = develop(img, segmentation=seg, denoise=False, sharpen=False, tone_map=False, style="standard")
    # The far person's texture is blurred like the background around it; the subject's is not.
    far_change = np.abs(out[3:9, 82:88] - plain[3:9, 82:88]).mean()
    subject_change = np.abs(out[40:60, 10:40] - plain[40:60, 10:40]).mean()
    assert far_change > 0.05 and subject_change < 0.02, (far_change, subject_change)


def test_portrait_subject_errors():
    from camseg.pipeline import portrait_subject
    m = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="at least one person"):
        portrait_subject([])
    with pytest.raises(ValueError, match=r"min_relative_area .* \[0, 1\]"):
        portrait_subject([m], min_relative_area=1.5)
    with pytest.raises(ValueError, match=r"min_relative_area"):
        portrait_subject([m], min_relative_area=float("nan"))
    with pytest.raises(ValueError, match=r"persons\[1\] has shape \(4, 4\)"):
        portrait_subject([m, np.ones((4, 4), np.float32)])


def test_develop_rejects_person_mattes_of_another_size(rng):
    img = _photo_array(rng)
    seg = _fake_segmentation(*img.shape[:2])
    seg.persons = [np.ones((10, 10), np.float32)]
    with pytest.raises(ValueError, match=r"segmentation.persons\[0\] has shape \(10, 10\)"):
        develop(img, segmentation=seg, portrait="blur")


def test_develop_rejects_hair_glasses_and_teeth_mattes_of_another_size_before_any_stage(rng):
    """Checked with sky, skin and persons: they failed in the portrait effect, as "hair_mask:
    expected shape", after denoise, sharpen, tone map and style had run (tester)."""
    img = _photo_array(rng)
    for name in ("hair", "glasses", "teeth"):
        seg = _fake_segmentation(*img.shape[:2])
        setattr(seg, name, np.zeros((10, 10), np.float32))
        with pytest.raises(ValueError, match=rf"segmentation.{name} has shape \(10, 10\)"):
            develop(img, segmentation=seg, portrait="blur")


def _standing(h=120, w=100, top=20, feet=90, x0=40, x1=60):
    m = np.zeros((h, w), np.float32)
    m[top:feet + 1, x0:x1] = 1.0
    return m


def test_ground_plane_depth_puts_the_feet_in_focus():
    from camseg.pipeline import ground_plane_depth
    person = _standing()
    depth = ground_plane_depth([person], person)
    assert depth.dtype == np.float32 and depth.shape == person.shape and (depth > 0).all()
    assert (depth[person > 0.5] == 1).all()
    assert depth[90, 5] == pytest.approx(1.0)  # the ground beside the feet: the people's distance
    horizon = 20 + 0.15 * 70
    assert depth[int(horizon) - 2, 5] == 30.0  # above the horizon: far
    assert depth[60, 5] > depth[80, 5] > 1.0  # the ground recedes toward the horizon
    assert depth[110, 5] < 1.0  # below the feet: nearer than the people
    # No ground seen at the feet: feet out of the frame, or people who do not stand.
    assert ground_plane_depth([_standing(feet=119)], _standing(feet=119)) is None
    seated = _standing(top=50, feet=90, x0=10, x1=80)
    assert ground_plane_depth([seated], seated) is None
    assert ground_plane_depth([person, seated], np.maximum(person, seated)) is None


def test_portrait_blur_keeps_the_ground_at_a_standing_persons_feet_sharp(rng):
    h, w = 128, 96
    img = np.clip(rng.uniform(0.1, 0.9, (h, w, 3)), 0, 1).astype(np.float32)
    person = _standing(h=h, w=w, top=20, feet=95, x0=40, x1=60)
    seg = types.SimpleNamespace(sky=np.zeros((h, w), np.float32), skin=person * 0.5, persons=[person],
                                person=person, hair=np.zeros((h, w), np.float32),
                                teeth=np.zeros((h, w), np.float32), glasses=np.zeros((h, w), np.float32))
    kw = dict(segmentation=seg, denoise=False, sharpen=False, tone_map=False, style="standard")
    res = develop(img, portrait="blur", return_details=True, **kw)
    plain = develop(img, **kw)
    change = np.abs(res.image - plain).mean(axis=2)
    at_feet, far_away = change[92:98, 5:30].mean(), change[5:12, 5:30].mean()
    assert at_feet < 0.5 * far_away, (at_feet, far_away)
    assert "ground in focus" in res.report.stage("portrait").detail


def test_a_faint_hair_haze_does_not_leak_sharp_background_into_the_portrait(rng):
    """The hair matte's haze (0.2-0.45) around a person must not become subject alpha: the
    background there would keep some of its sharp texture, a glow around the person."""
    h, w = 96, 96
    img = np.clip(rng.uniform(0.05, 0.95, (h, w, 3)), 0, 1).astype(np.float32)
    person = np.zeros((h, w), np.float32)
    person[30:, 35:60] = 1.0
    hazy = np.where(person > 0, 0.0, 0.3).astype(np.float32)

    def seg(hair):
        return types.SimpleNamespace(sky=np.zeros((h, w), np.float32), skin=person * 0.5, persons=[person],
                                     person=person, hair=hair, teeth=np.zeros((h, w), np.float32),
                                     glasses=np.zeros((h, w), np.float32))
    kw = dict(denoise=False, sharpen=False, tone_map=False, style="standard", portrait="blur")
    with_haze = develop(img, segmentation=seg(hazy), **kw)
    without = develop(img, segmentation=seg(np.zeros((h, w), np.float32)), **kw)
    beside = (slice(40, 90), slice(26, 35))  # background just left of the person
    assert np.abs(with_haze[beside] - without[beside]).mean() < 0.002


@pytest.mark.parametrize("portrait, sides", [("blur", ((12, False), (16, True))),
                                             ("stage_light", ((16, False), (20, False), (25, True)))])
def test_portrait_effects_skip_a_subject_too_small_for_a_portrait(rng, portrait, sides):
    """A far figure (under PORTRAIT_MIN_SUBJECT_SHARE of the frame, PORTRAIT_LIGHTING_MIN_SUBJECT_SHARE
    for a look that replaces the whole background) is no portrait subject: the effect is skipped
    and the report says why, instead of blurring or darkening the whole photo."""
    from camseg.pipeline import PORTRAIT_LIGHTING_MIN_SUBJECT_SHARE, PORTRAIT_MIN_SUBJECT_SHARE

    needed = PORTRAIT_MIN_SUBJECT_SHARE if portrait == "blur" else PORTRAIT_LIGHTING_MIN_SUBJECT_SHARE
    h, w = 100, 100
    img = np.clip(rng.uniform(0.1, 0.9, (h, w, 3)), 0, 1).astype(np.float32)
    kw = dict(denoise=False, sharpen=False, tone_map=False, style="standard", portrait=portrait,
              return_details=True)
    for side, applied in sides:  # 1.44 %, 2.56 %, 4 %, 6.25 % of the frame
        person = np.zeros((h, w), np.float32)
        person[40:40 + side, 40:40 + side] = 1.0
        seg = types.SimpleNamespace(sky=np.zeros((h, w), np.float32), skin=person * 0.5, persons=[person],
                                    person=person, hair=np.zeros((h, w), np.float32),
                                    teeth=np.zeros((h, w), np.float32), glasses=np.zeros((h, w), np.float32))
        res = develop(img, segmentation=seg, **kw)
        stage = res.report.stage("portrait")
        assert (stage.status == "applied") == applied, (side, stage)
        assert (side * side / (h * w) >= needed) == applied
        if not applied:
            assert "no portrait subject" in stage.detail and f"{side * side / 100:.1f} %" in stage.detail
            assert f"{portrait} needs {100 * needed:.0f} %" in stage.detail
            assert np.array_equal(res.image, develop(img, segmentation=seg, **{**kw, "portrait": None}).image)


def test_tone_map_report_names_people_without_skin(rng):
    """A 'person' with no skin in it is rendered like the scene, and the report says so."""
    img = _photo_array(rng, 64, 96)
    seg = _fake_segmentation(64, 96, persons=2)
    seg.skin = seg.persons[0] * 0.8  # the second person shows no skin (a back view, or a false detection)
    res = develop(img, segmentation=seg, denoise=False, sharpen=False, style="standard", return_details=True)
    assert res.report.stage("tone_map").detail == "2 person(s), 1 without skin rendered like the scene"
    seg.skin = np.maximum(seg.persons[0], seg.persons[1]) * 0.8
    res = develop(img, segmentation=seg, denoise=False, sharpen=False, style="standard", return_details=True)
    assert res.report.stage("tone_map").detail == "2 person(s)"


def test_develop_cleans_the_skin_of_a_noisy_jpeg_in_its_own_blocks(tmp_path):
    """A noisy JPEG file through develop(): the denoiser's JPEG-block step (on by default) brings
    the skin closer to the clean scene than the pyramid alone does, and leaves no 8x8 grid."""
    rng = np.random.default_rng(7)
    h, w = 192, 256
    texture = rng.standard_normal((h, w)).astype(np.float32)
    import cv2
    texture = cv2.GaussianBlur(texture, (0, 0), 1.2) - cv2.GaussianBlur(texture, (0, 0), 4.0)
    clean = np.array([0.55, 0.36, 0.27], np.float32) * (1 + 0.05 * texture / texture.std())[..., None]
    sigma = np.sqrt(1.6e-3 * clean + 2.6e-5)  # ~ISO 3200 shot + read noise in linear light
    noisy = np.clip(clean + rng.standard_normal(clean.shape).astype(np.float32) * sigma, 0, 1)
    path = tmp_path / "noisy.jpg"
    Image.fromarray(np.rint(cio.linear_to_srgb(noisy) * 255).astype(np.uint8)).save(path, quality=90)
    seg = _fake_segmentation(h, w)
    seg.skin = np.zeros((h, w), np.float32)
    seg.skin[24:168, 32:224] = 1.0
    common = dict(segmentation=seg, sharpen=False, tone_map=False)
    on = develop(path, **common).pixels
    off = develop(path, params={"denoise": {"jpeg_skin": False}}, **common).pixels
    inner = (slice(40, 152), slice(48, 208))
    err = lambda x: float(np.mean((cio.linear_to_srgb(x[inner]) - cio.linear_to_srgb(clean[inner])) ** 2))
    assert err(on) < 0.8 * err(off), (err(on), err(off))
    from effects._jpeg import grid_visibility
    grid = lambda x: grid_visibility(cio.linear_to_srgb(x[inner]).mean(axis=2), origin=(40, 48))
    decoded = cio.read_photo(path).pixels
    assert grid(on) <= grid(decoded) + 0.05, (grid(decoded), grid(off), grid(on))  # the grid shows no more


def test_stage_light_keeps_the_teeth_of_a_broad_smile(rng):
    """The person matte sits near 0.45 on a smile's bright teeth: stage light blacked them out
    (celeb_hair test 28405). The teeth matte joins the subject near it; teeth of nobody in the
    subject (a stray response) stay background."""
    h, w = 120, 160
    img = np.full((h, w, 3), 0.3, np.float32)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    person = np.zeros((h, w), np.float32)
    person[20:, 40:120] = 1.0
    teeth = np.zeros((h, w), np.float32)
    teeth[50:58, 64:96] = 1.0                 # the smile
    person[50:58, 64:96] = 0.45
    img[50:58, 64:96] = 0.85                  # bright teeth
    teeth[10:14, 140:150] = 1.0               # a stray response far from the subject
    img[10:14, 140:150] = 0.85
    seg = types.SimpleNamespace(sky=np.zeros((h, w), np.float32), skin=person * 0.5, persons=[person],
                                person=person, hair=np.zeros((h, w), np.float32), teeth=teeth,
                                glasses=np.zeros((h, w), np.float32))
    kw = dict(denoise=False, sharpen=False, tone_map=False, style="standard", portrait="stage_light")
    out = develop(img, segmentation=seg, **kw)
    assert float(out[52:56, 68:92].mean()) > 0.5    # the teeth stay lit
    assert float(out[10:14, 140:150].mean()) < 0.1  # the stray response is background (dark)
    seg.teeth = np.zeros((h, w), np.float32)
    assert float(develop(img, segmentation=seg, **kw)[52:56, 68:92].mean()) < 0.5  # what happened before


def test_a_vivid_style_leaves_teeth_as_they_are():
    """Teeth are protected from a style like skin (a vivid style yellowed them): a region the
    segmentation calls teeth keeps its colour through the style stage, and is styled without
    it. The real photo's red flag stripes stand in for a mouth."""
    photo = cio.read_photo(SAMPLE)
    img = photo.pixels
    h, w = img.shape[:2]
    seg = _fake_segmentation(h, w, persons=1)
    seg.skin = np.zeros((h, w), np.float32)  # (its 0.5 over the region would protect it as skin)
    teeth = np.zeros((h, w), np.float32)
    teeth[150:250, 0:60] = 1.0  # the flag's red and white stripes
    only_style = dict(denoise=False, sharpen=False, tone_map=False, style="vibrant")
    plain = develop(img, segmentation=seg, **only_style)
    seg.teeth = teeth
    kept = develop(img, segmentation=seg, **only_style)
    region = (slice(150, 250), slice(0, 60))
    assert float(np.abs(plain[region] - img[region]).mean()) > 0.004  # the style does change it
    np.testing.assert_allclose(kept[region], img[region], atol=1e-5)
    np.testing.assert_array_equal(kept[300:], plain[300:])  # elsewhere the same


def test_teeth_matte_is_computed_only_for_styles_that_need_it(segmenter, monkeypatch):
    """The standard style (identity) needs no teeth matte; a colour style asks for it only when
    the model sees teeth (most photos show none: no full-resolution refinement for them), on
    the full model and on the scene-only one alike."""
    from camseg.pipeline import _shows_teeth
    from camseg.segmenter import Segmentation
    asked = []
    real = Segmentation.mattes

    def recording(self, names, **kwargs):
        asked.append(list(names))
        return real(self, names, **kwargs)

    monkeypatch.setattr(Segmentation, "mattes", recording)
    img = cio.read_photo(SAMPLE).pixels
    seg = segmenter.segment(img)
    assert _shows_teeth(seg) == (float(seg.low_resolution("teeth").max()) >= 0.5) == False  # noqa: E712
    develop(img, segmenter=segmenter, style="vibrant")
    assert "teeth" not in asked[-1]  # she shows none
    # A photo that shows teeth (the bundled one does not): read on the full model and on the
    # scene-only one (no tone map: no persons needed), not for the identity style.
    monkeypatch.setattr("camseg.pipeline._shows_teeth", lambda seg: True)
    for style, tone, expect in [("vibrant", True, True), ("vibrant", False, True), ("standard", True, False)]:
        asked.clear()
        res = develop(img, segmenter=segmenter, style=style, tone_map=tone, return_details=True)
        assert ("teeth" in asked[-1]) == expect, (style, tone, asked)
        assert ("teeth" in res.segmentation.categories) == (expect or tone)
    assert _shows_teeth(types.SimpleNamespace(teeth=np.full((4, 4), 0.9, np.float32)))
    assert not _shows_teeth(types.SimpleNamespace(sky=np.zeros((4, 4), np.float32)))


def test_small_gaps_inside_the_subject_are_filled_but_background_gaps_stay():
    """A smile's teeth sit under the subject's cut in the person mattes (stage light blacked
    out the teeth the teeth matte missed, CelebA 28405): an enclosed gap the mattes still see
    as person is filled; an enclosed gap they see as background (between arm and body) and a
    gap open to the frame's edge stay; a big frame is handled through its reduced copy."""
    from camseg.pipeline import _tidy_subject
    for h, w in [(200, 300), (2000, 3000)]:
        k = h // 200
        subject = np.zeros((h, w), np.float32)
        subject[20 * k:180 * k, 50 * k:250 * k] = 1.0
        mattes = subject * 0.9
        mouth = (slice(60 * k, 66 * k), slice(100 * k, 130 * k))
        arm_gap = (slice(120 * k, 130 * k), slice(200 * k, 215 * k))
        notch = (slice(150 * k, 180 * k), slice(60 * k, 70 * k))  # reaches the subject's edge
        for region, seen in [(mouth, 0.35), (arm_gap, 0.02), (notch, 0.35)]:
            subject[region] = 0.05
            mattes[region] = seen
        subject[:, :50 * k] = 0.0
        out = _tidy_subject(subject, mattes)
        assert (out[mouth] == 1.0).all()
        assert (out[arm_gap] == subject[arm_gap]).all() and (out[notch] == subject[notch]).all()
        assert (out[:20 * k] == 0).all() and out is not subject
        solid = np.ones((h, w), np.float32)
        assert _tidy_subject(solid, mattes) is solid


def test_bigger_gaps_are_filled_only_on_stronger_evidence():
    """A dark shirt between a jacket's lapels (COCO 395: 1.2 % of the subject, mattes 0.45)
    was blurred into the background; the same gap at 0.16 stays background."""
    from camseg.pipeline import _tidy_subject
    subject = np.zeros((200, 300), np.float32)
    subject[20:180, 50:250] = 1.0
    shirt = (slice(60, 80), slice(100, 120))  # 400 px: 1.25 % of the subject
    subject[shirt] = 0.05
    for seen, filled in [(0.45, True), (0.16, False)]:
        mattes = subject * 0.9
        mattes[shirt] = seen
        out = _tidy_subject(subject, mattes)
        assert (out[shirt] == 1.0).all() == filled


def test_far_islands_leave_the_subject_and_near_ones_stay():
    """A stray bit of person matte far from the people (a ceiling lamp stage light left lit on
    black, COCO 536) leaves the subject with its soft fringe; a hand the matte cut off from
    its arm, close by, stays."""
    from camseg.pipeline import _tidy_subject
    subject = np.zeros((300, 400), np.float32)
    subject[100:300, 150:250] = 1.0  # the person
    subject[20:30, 350:360] = 1.0  # a lamp: 100 px, 0.5 % of the person, far away
    subject[18:32, 348:362] = np.maximum(subject[18:32, 348:362], 0.3)  # its fringe
    subject[120:135, 256:266] = 1.0  # a hand, 6 px from the arm
    out = _tidy_subject(subject, subject * 0.9)
    assert (out[15:35, 345:365] == 0).all()
    assert (out[120:135, 256:266] == 1).all() and (out[100:300, 150:250] == 1).all()


def test_a_person_standing_apart_is_no_island():
    """Four touching adults make one piece of the subject; a child beside them at 15 % of an
    adult, 200 px away, was under 5 % of that piece and erased as an island (blurred, or blacked
    out by stage light). An island must also be under half the smallest person kept."""
    from camseg.pipeline import _tidy_subject
    subject = np.zeros((400, 900), np.float32)
    subject[100:400, 50:450] = 1.0  # four adults, touching: 120 000 px
    subject[340:400, 650:700] = 1.0  # the child: 3 000 px (2.5 % of the group)
    out = _tidy_subject(subject, subject * 0.9, smallest_person=3000 / subject.size)
    assert (out[340:400, 650:700] == 1.0).all()
    assert (_tidy_subject(subject, subject * 0.9)[340:400, 650:700] == 0.0).all()  # no bound: an island


def test_tidying_a_speckled_subject_stays_fast():
    """Per-piece statistics are one pass each: a matte from elsewhere with thousands of specks
    and holes costs about as much as a clean one (it took seconds in a loop over pieces)."""
    import time
    from camseg.pipeline import _tidy_subject
    rng = np.random.default_rng(0)
    subject = np.zeros((1000, 1000), np.float32)
    subject[rng.integers(0, 1000, 4000), rng.integers(0, 1000, 4000)] = 1.0  # specks
    subject[200:800, 300:700] = 1.0
    subject[rng.integers(210, 790, 3000), rng.integers(310, 690, 3000)] = 0.0  # holes
    t = time.perf_counter()
    out = _tidy_subject(subject, np.full_like(subject, 0.5))
    assert time.perf_counter() - t < 1.0
    assert out[200:800, 300:700].min() == 1.0  # every hole filled
    assert out[:120].max() == 0.0 and out[880:].max() == 0.0  # far specks gone


def test_a_style_strength_above_one_develops(rng):
    """style_strength accepts 0..2 (as the CLI's help says), but the style refused anything
    over 1: every photo failed after its segmentation."""
    img = (0.1 + 0.6 * rng.random((48, 64, 3))).astype(np.float32)
    sky = np.zeros((48, 64), np.float32)
    seg = types.SimpleNamespace(sky=sky, skin=sky, hair=sky, teeth=sky, glasses=sky, persons=[], person=sky,
                                categories=("sky", "skin", "hair", "teeth", "glasses"))
    one, twice = (develop(img, segmentation=seg, style="vibrant", style_strength=k, denoise=False, sharpen=False)
                  for k in (1.0, 2.0))
    assert np.abs(twice - img).mean() > 1.5 * np.abs(one - img).mean()


def test_settings_take_numpy_scalars_copy_their_params_and_hash():
    """np.float32(1.5) was refused as "must be a number", a numpy value in params could not be
    written as JSON, the caller's params dict could change checked settings, and hash() raised."""
    params = {"denoise": {"strength": np.float32(1.5)}}
    s = DevelopSettings(style_strength=np.float32(1.5), iso=np.int64(800), denoise=np.bool_(False), params=params)
    params["denoise"]["strength"] = 9.0
    assert s.params == {"denoise": {"strength": 1.5}} and s.style_strength == 1.5 and s.denoise is False
    assert DevelopSettings.from_json(s.to_json()) == s and hash(DevelopSettings.from_json(s.to_json())) == hash(s)
    twins = [DevelopSettings(style_strength=1, iso=100, params={"denoise": {"strength": 2}}),
             DevelopSettings(style_strength=1.0, iso=np.float32(100), params={"denoise": {"strength": 2.0}})]
    assert twins[0] == twins[1] and len(set(twins)) == 1  # equal settings hash alike (review)


def test_bad_arrays_and_photos_are_explained():
    with pytest.raises(ValueError, match=r"channels first.*np.moveaxis"):
        develop(np.zeros((3, 64, 48), np.float32))
    photo = cio.read_photo(SAMPLE)
    with pytest.raises(TypeError, match="Photo.pixels must be a float32 H×W×3 linear RGB array.*read_photo"):
        develop(dataclasses.replace(photo, pixels=np.zeros((64, 48, 3), np.uint8)))


def test_a_photo_with_nan_pixels_is_refused_even_with_every_stage_off(rng):
    """An array's NaN was refused up front; a Photo's was left for the first stage to name, and
    with every stage off it came back as NaN, out of [0, 1] (tester)."""
    pixels = _photo_array(rng)
    pixels[3, 3, 0] = np.nan
    photo = dataclasses.replace(cio.read_photo(SAMPLE), pixels=pixels)
    with pytest.raises(ValueError, match=r"image contains NaN values.*nan_to_num"):
        develop(photo, segmentation=_fake_segmentation(*pixels.shape[:2]), denoise=False, sharpen=False,
                tone_map=False, style_strength=0.0)


def test_a_segmentation_without_people_is_refused_where_people_are_needed():
    """A scene-only segmentation given to develop read as "nobody here": the portrait effect
    was left out and everyone toned alike, without a word."""
    from camseg.segmenter import segment

    seg = segment(SAMPLE, categories={"sky", "skin"})
    photo = cio.read_photo(SAMPLE)
    with pytest.raises(ValueError, match="no people computed.*tone_map and portrait need them"):
        develop(photo, segmentation=seg, portrait="blur")
    with pytest.raises(ValueError, match="tone_map need them"):
        develop(photo, segmentation=seg)
    out = develop(photo, segmentation=seg, tone_map=False)  # nothing needs them: fine
    assert out.pixels.shape == photo.pixels.shape


def test_settings_read_back_from_json_equal_the_settings_written():
    """A tuple in params (a denoise band list) compared unequal to the list JSON gives back."""
    s = DevelopSettings(params={"denoise": {"luma_base": (1.0, 0.8, 0.6, 0.4, 0.3)}})
    again = DevelopSettings.from_json(s.to_json())
    assert again == s and {s: 1}.get(again) == 1


def test_a_nan_parameter_is_refused_even_in_a_stage_turned_off():
    """A NaN in the params of a stage turned off was never checked, and to_json() wrote NaN,
    which is not JSON (another tool refused the settings file)."""
    with pytest.raises(ValueError, match=r"params\['portrait'\]\['f_number'\] is NaN"):
        DevelopSettings(portrait=None, params={"portrait": {"f_number": float("nan")}})
    with pytest.raises(ValueError, match=r"params\['denoise'\]\['luma_base'\]\[2\] is NaN"):
        DevelopSettings(params={"denoise": {"luma_base": (1.0, 0.8, np.float32("nan"), 0.4, 0.3)}})
    json.loads(DevelopSettings(portrait=None, params={"portrait": {"f_number": 2.8}}).to_json())


def test_a_new_portrait_effect_drops_the_options_only_the_old_one_had():
    blur = DevelopSettings(portrait="blur", params={"portrait": {"f_number": 2.8, "refine_band": 0.03}})
    check_settings(blur)
    stage = blur.replace(portrait="stage_light")
    assert stage.params == {"portrait": {"refine_band": 0.03}}  # an option both effects have: kept
    check_settings(stage)
    assert blur.replace(portrait="blur", style="warm").params == blur.params
    explicit = blur.replace(portrait="stage_light", params={"portrait": {"f_number": 2.8}})
    with pytest.raises(ValueError, match="unknown fields"):  # asked for outright: still an error
        check_settings(explicit)


def test_checking_a_given_segmentation_for_people_makes_no_full_size_mattes():
    """The check read .persons, which upsampled every person to the photo's size for nothing."""
    from camseg.segmenter import segment

    from camseg.pipeline import STAGE_MATTE_PIXELS

    side = int(np.sqrt(STAGE_MATTE_PIXELS * 2))  # past what the stages read at full size
    pixels = cv2.resize(cio.read_photo(SAMPLE).pixels, (side, side), interpolation=cv2.INTER_LINEAR)
    seg = segment(pixels)
    develop(pixels, segmentation=seg, denoise=False, sharpen=False)
    assert "persons" not in seg._cache


def test_a_nested_params_dataclass_is_written_and_read_as_json(rng):
    """The portrait effects' ``refine_params`` (a RefineMatteParams) could not be set from JSON
    (a dict was refused as "must be a RefineMatteParams"), and given as the object it made the
    settings unwritable: develop(..., return_details=True) raised "not JSON serializable" after
    developing the photo, as did to_json() and --save-settings."""
    import effects

    img = _photo_array(rng)
    seg = _fake_segmentation(48, 64)
    as_object = DevelopSettings(portrait="blur", params={"portrait": {"refine_params": effects.RefineMatteParams(radius=8)}})
    again = DevelopSettings.from_json(as_object.to_json())
    assert again == as_object
    result = develop(img, as_object, segmentation=seg, return_details=True)
    assert result.report.settings["params"]["portrait"]["refine_params"]["radius"] == 8
    as_json = DevelopSettings.from_json('{"portrait": "stage_light", "params": {"portrait": {"refine_params": {"radius": 8}}}}')
    check_settings(as_json)
    assert develop(img, as_json, segmentation=seg).shape == img.shape
    with pytest.raises(ValueError, match=r"params\['portrait'\]\['refine_params'\] has unknown fields \['radiu'\]"):
        check_settings(as_json.replace(params={"portrait": {"refine_params": {"radiu": 8}}}))
    with pytest.raises(ValueError, match=r"\['refine_params'\] must be a dict of RefineMatteParams fields"):
        check_settings(as_json.replace(params={"portrait": {"refine_params": 8}}))


def test_person_mattes_given_as_one_stacked_array(rng):
    """``segmentation.persons`` as an N×H×W array (np.stack of the mattes) failed with numpy's
    "truth value of an array with more than one element is ambiguous"."""
    img = _photo_array(rng)
    listed = _fake_segmentation(48, 64, persons=2)
    stacked = types.SimpleNamespace(**{**vars(listed), "persons": np.stack(listed.persons)})
    for portrait in (None, "blur"):
        expected = develop(img, segmentation=listed, portrait=portrait)
        np.testing.assert_array_equal(develop(img, segmentation=stacked, portrait=portrait), expected)
    one = types.SimpleNamespace(**{**vars(listed), "persons": listed.persons[0]})  # a matte, not a list of one
    with pytest.raises(ValueError, match=r"list of H×W mattes or one N×H×W array.*pass \[matte\]"):
        develop(img, segmentation=one)


def test_a_dict_of_masks_as_segmentation_is_refused_by_name(rng):
    """A dict of masks was read through attributes it does not have: taken for a segmentation
    without any (no sky treatment, silently), or refused for "no people computed"."""
    img = _photo_array(rng)
    masks = vars(_fake_segmentation(48, 64, persons=1))
    for options in ({}, {"tone_map": False}):
        with pytest.raises(TypeError, match="as attributes.*SimpleNamespace"):
            develop(img, segmentation=dict(masks), **options)
    develop(img, segmentation=types.SimpleNamespace(**masks))  # the fix the message names


def test_a_style_protects_skin_the_model_calls_likely_not_half_of_it():
    """The skin matte is a probability (real skin at 0.4–0.8): protected as ``0.9 × skin``, a
    neck at 0.5 kept half of vibrant's look and turned orange. The style's matte is made
    decisive about 0.3 (``style_skin_matte``), and haze off skin (0.1) gets the look."""
    from camseg.pipeline import decisive_alpha, style_skin_matte

    ramp = style_skin_matte(np.array([[0.0, 0.1, 0.3, 0.5, 0.8, 1.0]], np.float32))
    np.testing.assert_allclose(ramp, decisive_alpha(np.array([[0.0, 0.1, 0.3, 0.5, 0.8, 1.0]], np.float32), 3.0, 0.3),
                               atol=1e-6)
    assert ramp[0, 1] < 0.05 and abs(ramp[0, 2] - 0.5) < 1e-6 and ramp[0, 3] > 0.9
    h, w = 48, 64
    img = np.empty((h, w, 3), np.float32)
    img[...] = (0.45, 0.25, 0.16)  # linear RGB of a light skin tone, on both halves
    skin = np.zeros((h, w), np.float32)
    skin[:, : w // 2] = 0.5  # the model's "maybe skin" on the left half
    seg = types.SimpleNamespace(sky=np.zeros((h, w), np.float32), skin=skin, persons=[],
                                person=np.zeros((h, w), np.float32), teeth=np.zeros((h, w), np.float32))
    off = dict(segmentation=seg, denoise=False, sharpen=False, tone_map=False)
    change = np.abs(develop(img, style="vibrant", **off) - develop(img, style="standard", **off)).sum(axis=2)
    left, right = float(change[:, 8:w // 2 - 8].mean()), float(change[:, w // 2 + 8:-8].mean())
    assert right > 0.01 and left < 0.3 * right, (left, right)  # (0.9 × 0.5 protection left 0.55 of it)


def test_a_style_tones_a_black_and_white_photo_whole_faces_included():
    """In a black-and-white photo a style's warmth is a toning: kept from the skin, as in a
    colour photo, faces stayed grey on a warm-toned print (person_binary 97 under warm: R - B
    of sRGB mid-tones +2 on the face, +18 around it). A grey or sepia photo is toned whole; a
    colour photo's skin is still kept."""
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w]
    grey = (0.02 + 0.6 * xx / w + 0.1 * (yy / h)).astype(np.float32)  # a grey ramp, 5 EV
    face = ((yy - 24) / 14.0) ** 2 + ((xx - 32) / 10.0) ** 2 < 1
    seg = types.SimpleNamespace(sky=np.zeros((h, w), np.float32), skin=face.astype(np.float32),
                                persons=[], person=np.zeros((h, w), np.float32),
                                teeth=np.zeros((h, w), np.float32))
    off = dict(segmentation=seg, denoise=False, sharpen=False, tone_map=False)
    for tint in ((1.0, 1.0, 1.0), (1.25, 1.0, 0.7)):  # grey, sepia
        img = np.clip(np.repeat(grey[..., None], 3, axis=2) * np.array(tint, np.float32), 0, 1)
        change = np.log(develop(img, style="warm", **off) / develop(img, style="standard", **off))
        warmth = change[..., 0] - change[..., 2]  # ln R/B added by the style
        on_face, off_face = float(np.median(warmth[face])), float(np.median(warmth[~face]))
        assert off_face > 0.05 and on_face > 0.8 * off_face, (tint, on_face, off_face)
    # In colour (a hue that varies across the frame), the face keeps its colour.
    colour = np.stack([grey, grey * (0.5 + 0.5 * yy / h), grey * (1.0 - 0.6 * xx / w)], axis=2).astype(np.float32)
    change = np.log(develop(colour, style="warm", **off) / develop(colour, style="standard", **off))
    warmth = change[..., 0] - change[..., 2]
    assert float(np.median(warmth[face])) < 0.3 * float(np.median(warmth[~face]))
    # The tone map's toned_chroma_spread of 0 ("off") turns the test off for the style too.
    img = np.repeat(grey[..., None], 3, axis=2)
    off_test = dict(off, params={"tone_map": {"toned_chroma_spread": 0.0}})
    change = np.log(develop(img, style="warm", **off_test) / develop(img, style="standard", **off_test))
    warmth = change[..., 0] - change[..., 2]
    assert float(np.median(warmth[face])) < 0.3 * float(np.median(warmth[~face]))


def test_the_portrait_effects_table_cannot_be_changed_for_the_whole_process():
    """PORTRAIT_EFFECTS was a plain dict: an entry replaced there changed every later develop()."""
    from camseg.pipeline import PORTRAIT_EFFECTS

    with pytest.raises(TypeError):
        PORTRAIT_EFFECTS["blur"] = PORTRAIT_EFFECTS["studio"]
