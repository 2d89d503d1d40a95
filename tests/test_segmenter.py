"""The onnxruntime segmentation runtime, on the real bundled model and real image files."""
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from camseg import io as cio
from camseg.contract import PANOPTIC_CATEGORIES
from camseg.segmenter import DEFAULT_MODEL, Segmenter, Segmentation, SegmenterOptions

SAMPLE = DEFAULT_MODEL.parent.parent / "samples" / "astronaut.jpg"
SCENE = ("sky", "hair", "skin", "teeth", "glasses")


@pytest.fixture(scope="module")
def segmenter():
    with Segmenter(threads=2) as s:
        yield s


@pytest.fixture(scope="module")
def photo():
    return np.asarray(Image.open(SAMPLE))  # 512×512 uint8 sRGB


@pytest.fixture(scope="module")
def landscape(photo):
    return np.ascontiguousarray(photo[:384, :])  # 384×512


def test_full_resolution_mattes_from_path(segmenter):
    seg = segmenter.segment(SAMPLE)
    assert isinstance(seg, Segmentation)
    assert seg.image_shape == (512, 512)
    for name in SCENE + ("person",):
        matte = getattr(seg, name)
        assert matte.shape == (512, 512) and matte.dtype == np.float32
        assert 0.0 <= matte.min() and matte.max() <= 1.0
    assert all(p.shape == (512, 512) and p.dtype == np.float32 for p in seg.persons)
    category, instance = seg.panoptic
    assert category.dtype == np.int32 and instance.dtype == np.int32
    assert category.max() < len(PANOPTIC_CATEGORIES)
    assert instance.max() == len(seg.persons) or (not seg.persons and instance.max() == 0)


def test_persons_sum_to_person_union(segmenter, photo):
    seg = segmenter.segment(photo)
    if not seg.persons:
        pytest.skip("model found nobody in the sample")
    np.testing.assert_allclose(np.sum(seg.persons, axis=0), seg.person, atol=1e-4)


def test_changing_the_persons_list_read_leaves_the_segmentation_as_it_was(segmenter):
    # (The list read was the cached one: seg.persons.pop(0) took that person out of seg.person
    # and seg.panoptic.)
    seg = segmenter.segment(SAMPLE)
    count = len(seg.persons)
    assert count >= 1
    seg.persons.pop(0)
    seg.mattes(["persons"])["persons"].clear()
    assert len(seg.persons) == count and len(seg.mattes(["persons"])["persons"]) == count
    np.testing.assert_array_equal(seg.person, segmenter.segment(SAMPLE).person)
    assert seg.panoptic[1].max() == count


def test_prefetch_gives_the_same_mattes_as_reading_one_by_one(segmenter, photo):
    lazy = segmenter.segment(photo)
    batched = segmenter.segment(photo)
    batched.prefetch(["sky", "skin", "hair", "persons"])
    assert set(batched._cache) >= {"sky", "skin", "hair", "persons"}  # computed by the one pass
    for name in ("sky", "skin", "hair", "person"):
        np.testing.assert_allclose(getattr(batched, name), getattr(lazy, name), atol=1e-5)
    assert len(batched.persons) == len(lazy.persons)
    for a, b in zip(batched.persons, lazy.persons):
        np.testing.assert_allclose(a, b, atol=1e-5)
    scene_only = segmenter.segment(photo, categories={"sky"})
    scene_only.prefetch(["sky", "persons"])  # persons were not computed: ignored here...
    with pytest.raises(AttributeError, match="not computed"):
        scene_only.persons  # ...and reading them still says why


def test_mattes_with_reduced_edge_detail_stay_close_to_full_detail(segmenter, photo):
    big = np.asarray(Image.fromarray(photo).resize((1536, 1536), Image.BICUBIC))  # 2.4 MP
    seg = segmenter.segment(big)
    names = ["sky", "skin", "hair", "person", "persons"]
    cheap = seg.mattes(names, max_pixels=250_000)
    assert "sky" not in seg._cache  # full-detail mattes are not replaced by the cheap ones
    full = seg.mattes(names)
    for name in ("sky", "skin", "hair", "person"):
        assert cheap[name].shape == (1536, 1536) and cheap[name].dtype == np.float32
        assert 0.0 <= cheap[name].min() and cheap[name].max() <= 1.0
        diff = np.abs(cheap[name] - full[name])
        # only edge detail finer than the reduced photo (3 px here) may differ
        assert diff.mean() < 0.005 and np.quantile(diff, 0.99) < 0.05, name
    assert len(cheap["persons"]) == len(full["persons"])
    if cheap["persons"]:
        np.testing.assert_allclose(np.sum(cheap["persons"], axis=0), np.minimum(cheap["person"], 1), atol=1e-4)
    assert seg.mattes(["sky"], max_pixels=250_000)["sky"] is cheap["sky"]  # cached per max_pixels
    small = segmenter.segment(photo)  # 0.26 MP: reducing would gain nothing, full detail is given
    np.testing.assert_array_equal(small.mattes(["sky"], max_pixels=10 ** 6)["sky"], small.sky)
    with pytest.raises(ValueError, match="max_pixels"):
        small.mattes(["sky"], max_pixels=0)


def test_two_people_get_their_own_mattes_that_sum_to_the_union():
    from effects import RefineMatteParams

    H, W = 1200, 1600  # above 1 MP, so the reduced-detail path is taken too
    img = np.full((H, W, 3), 0.2, np.float32)
    img[300:1100, 200:600] = (0.7, 0.5, 0.4)
    img[300:1100, 1000:1400] = (0.4, 0.5, 0.7)
    low = np.zeros((2, 60, 80), np.float32)
    low[0, 15:55, 10:30] = 1.0
    low[1, 15:55, 50:70] = 1.0
    seg = Segmentation(img, {}, (np.clip(low, 0.02, 0.98), np.array([0.9, 0.8], np.float32)),
                       RefineMatteParams())
    for max_pixels in (None, 500_000):
        got = seg.mattes(["persons", "person"], max_pixels=max_pixels)
        left, right = got["persons"]
        np.testing.assert_allclose(left + right, got["person"], atol=1e-4)
        assert left[700, 400] > 0.9 and left[700, 1200] < 0.1
        assert right[700, 1200] > 0.9 and right[700, 400] < 0.1
        assert got["person"][100, 800] < 0.1


def test_panoptic_of_overlapping_people_without_a_stack_of_them():
    # (It stacked the persons and took an int64 argmax over them: 41 bytes a pixel at the peak,
    # 2 GB for a 50 MP photo, and 2.4 s of its 4.8 s there.)
    import tracemalloc

    from effects import RefineMatteParams

    H, W = 600, 800
    img = np.random.default_rng(0).random((H, W, 3), dtype=np.float32)
    low = np.zeros((3, 60, 80), np.float32)
    low[0, 10:50, 5:30], low[1, 10:50, 25:55], low[2, 5:20, 50:75] = 0.9, 0.8, 0.95  # 0 and 1 overlap
    seg = Segmentation(img, {"sky": np.zeros((60, 80), np.float32)},
                       (low, np.array([0.9, 0.8, 0.7], np.float32)), RefineMatteParams())
    persons, person = seg.persons, seg.person
    seg.sky  # noqa: B018 - read before the measure, as the mattes are
    tracemalloc.start()
    category, instance = seg.panoptic
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 30 * H * W  # the two int32 maps are 8 bytes a pixel
    stack = np.stack(persons)
    on = person > 0.5
    np.testing.assert_array_equal(instance, np.where(on, np.argmax(stack, axis=0) + 1, 0))
    np.testing.assert_array_equal(category, np.where(on, 1, 0))
    assert instance.dtype == category.dtype == np.int32 and set(np.unique(instance)) == {0, 1, 2, 3}


def test_portrait_is_letterboxed_upright(segmenter, landscape):
    """A portrait photo goes into the landscape input upright, padded on the right.

    Padding the same photo with black columns to the input's aspect gives the model the
    very same input, so the mattes over the photo must agree; a quarter turn would not.
    """
    portrait = np.ascontiguousarray(landscape[:, :288])  # 384×288 → fills the input's height
    padded = np.zeros_like(landscape)
    padded[:, :288] = portrait
    upright = segmenter.segment(portrait)
    assert upright.image_shape == (384, 288)
    reference = segmenter.segment(padded)
    for name in ("skin", "sky"):
        np.testing.assert_allclose(upright.low_resolution(name), reference.low_resolution(name)[:, :288], atol=1e-4)


def test_exif_orientation_applied(segmenter, tmp_path, landscape):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a phone held upright
    Image.fromarray(landscape).save(path, exif=exif, quality=95)
    seg = segmenter.segment(path)
    assert seg.image_shape == (512, 384)  # displayed orientation, not the stored one


def test_scene_only_skips_transformer_and_matches(segmenter, landscape):
    full = segmenter.segment(landscape)
    scene = segmenter.segment(landscape, categories={"sky", "skin"})
    assert set(scene.categories) == {"sky", "skin"}
    with pytest.raises(AttributeError, match="persons.*not computed"):
        scene.persons
    # (a generator or iterator of names was read twice, and refused as "categories is empty")
    for names in (iter(["sky", "skin"]), (n for n in ("sky", "skin"))):
        assert set(segmenter.segment(landscape, categories=names).categories) == {"sky", "skin"}
    with pytest.raises(AttributeError, match="'hair' was not computed.*include it"):
        scene.hair  # (it said "Segmentation has no attribute 'hair'", not how to get it)
    # same conv path, same weights: the scene-only graph must agree with the full one
    np.testing.assert_allclose(scene.low_resolution("sky"), full.low_resolution("sky"), atol=1e-4)
    with pytest.raises(AttributeError, match="low_resolution gives scene mattes.*person mattes are .person"):
        full.low_resolution("person")  # (said "'person' was not computed for this photo", though it was)
    # A misspelt name is unknown, as mattes() says, not "not computed ... include it".
    for read in (scene.matte, scene.low_resolution, lambda name: scene.mattes([name])):
        with pytest.raises(ValueError, match="unknown matte name.*skyy"):
            read("skyy")


@pytest.mark.parametrize("make", [
    lambda p: p.astype(np.uint16) * 257,  # 16-bit
    lambda p: p[:, :, 0],  # grayscale
    lambda p: np.dstack([p, np.full(p.shape[:2], 255, np.uint8)]),  # RGBA
    lambda p: (p / 255.0).astype(np.float32) ** 2.2,  # float linear
], ids=["uint16", "gray", "rgba", "float"])
def test_input_kinds(segmenter, photo, make):
    array = make(photo)
    before = array.copy()
    seg = segmenter.segment(array, categories={"skin"})
    assert seg.skin.shape == photo.shape[:2]
    np.testing.assert_array_equal(array, before)  # caller's array untouched


@pytest.mark.parametrize("make", [
    lambda p: p.astype(np.uint16) * 257,
    lambda p: ((p / 255.0).astype(np.float32) ** 2.2).astype(np.float32),
    lambda p: ((p / 255.0) ** 2.2).astype(np.float64),
], ids=["uint16", "float32", "float64"])
def test_big_endian_arrays_are_segmented_like_native_ones(segmenter, photo, make):
    # (np.fromfile(..., ">u2") of a 16-bit PGM, or FITS data: refused as "unsupported dtype >u2;
    # use uint8, uint16 ...", naming the dtype it was.)
    native = make(photo)
    swapped = native.astype(native.dtype.newbyteorder(">"))
    want = segmenter.segment(native, categories={"skin"}).skin
    np.testing.assert_array_equal(segmenter.segment(swapped, categories={"skin"}).skin, want)


def test_mattes_follow_edges_not_bilinear(segmenter, photo):
    """Full-res mattes come from the guided filter: they differ from a bilinear blow-up."""
    import cv2
    seg = segmenter.segment(photo)
    name = max(SCENE, key=lambda n: np.ptp(seg.low_resolution(n)))  # the matte with most structure
    low = seg.low_resolution(name)
    assert np.ptp(low) > 0.5, "the model should find something in a portrait"
    bilinear = cv2.resize(low, (512, 512), interpolation=cv2.INTER_LINEAR)
    assert np.abs(getattr(seg, name) - bilinear).max() > 0.05


@pytest.mark.parametrize("bad, error, match", [
    (np.full((32, 32, 3), np.nan, np.float32), ValueError, "NaN"),
    # finite, but the reduced photo overflows (it recursed between segment and segment_borrowed)
    (np.full((768, 1024, 3), 1e38, np.float32), ValueError, "too large to segment"),
    (np.zeros((1, 1, 3), np.uint8), ValueError, "at least 8"),
    # width × height, as photographers read sizes (it said "7×9" for a 9-wide, 7-high photo)
    (np.zeros((7, 9, 3), np.uint8), ValueError, r"image is 9×7 pixels \(width × height\)"),
    (np.zeros((32, 32, 3), np.int64), TypeError, "dtype"),
    (np.zeros((32, 32, 5), np.uint8), ValueError, "shape"),
    (42, TypeError, "file path.*numpy array"),
])
def test_bad_arrays(segmenter, bad, error, match):
    with pytest.raises(error, match=match):
        segmenter.segment(bad)


def test_bad_files(segmenter, tmp_path, photo):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        segmenter.segment(empty)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ValueError, match="truncated"):
        segmenter.segment(truncated)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        segmenter.segment(tmp_path / "missing.jpg")


def test_bad_arguments(tmp_path, photo):
    for threads in (0, True, 1.5):  # (True was taken as one thread)
        with pytest.raises(ValueError, match="threads"):
            Segmenter(threads=threads)
    with pytest.raises(FileNotFoundError, match="model file"):
        Segmenter(tmp_path / "nope.onnx")
    for options in ({"person_threshold": 0.3}, {}):  # (AttributeError on 'grey_logit_offsets'; {} ignored)
        with pytest.raises(TypeError, match=r"options must be a SegmenterOptions.*SegmenterOptions\(\*\*"):
            Segmenter(options=options)
    with Segmenter() as s:
        with pytest.raises(ValueError, match="valid names"):
            s.segment(photo, categories={"cat"})
        for nothing in (set(), [], ()):  # (gave a segmentation with nothing in it)
            with pytest.raises(ValueError, match="categories is empty"):
                s.segment(photo, categories=nothing)
        # (3 failed as "'int' object is not iterable", b"sky" as "unknown [107, 115, 121]", and a
        # name beside a number in sorted(): "'<' not supported")
        for wrong in (3, b"sky"):
            with pytest.raises(TypeError, match="categories must be a set of names"):
                s.segment(photo, categories=wrong)
        with pytest.raises(ValueError, match=r"unknown \['skyy', 1\]; valid names"):
            s.segment(photo, categories={"skyy", 1})
    with pytest.raises(RuntimeError, match="closed"):
        s.segment(photo)


def test_the_default_model_closed_by_a_caller_is_loaded_again(photo, monkeypatch):
    """`with camseg.segmenter.default_segmenter() as s:` closed the process-wide model, and every
    later camseg.segment() and develop() failed with "this Segmenter was closed"."""
    import camseg.segmenter as segmenter_mod

    monkeypatch.setattr(segmenter_mod, "_default", None)  # (a default of this test's own)
    with segmenter_mod.default_segmenter() as s:
        s.segment(photo, categories={"sky"})
    assert segmenter_mod.segment(photo, categories={"sky"}).sky.shape == photo.shape[:2]
    assert segmenter_mod.default_segmenter() is not s


def test_a_segmenter_closed_by_another_thread_during_a_call_says_it_was_closed(photo, monkeypatch):
    # (close() between the call's check and the model run failed it with "'NoneType' object has no
    # attribute 'run'"; here the close comes while the photo is prepared, as from another thread.)
    from camseg import segmenter as module
    prepare = module._prepare
    for categories in (None, {"sky"}):
        s = Segmenter()

        def close_then_prepare(*args):
            s.close()
            return prepare(*args)

        monkeypatch.setattr(module, "_prepare", close_then_prepare)
        with pytest.raises(RuntimeError, match="this Segmenter was closed; create a new one"):
            s.segment(photo, categories=categories)


def test_nobody_when_threshold_unreachable(photo):
    with Segmenter(options=SegmenterOptions(person_threshold=1.0)) as s:
        seg = s.segment(photo)
    assert seg.persons == [] and seg.person.max() == 0.0
    assert seg.panoptic[1].max() == 0


def test_runtime_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import camseg, camseg.segmenter, camseg.io, effects\n"
            "seg = camseg.segmenter.segment(str(camseg.segmenter.DEFAULT_MODEL.parent.parent / 'samples' / 'astronaut.jpg'))\n"
            "assert seg.sky.shape == (512, 512)\n"
            "assert 'torch' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_person_selection_drops_fragments_and_keeps_separate_people():
    """Query post-processing: a fragment inside another query's person is not a person of its own."""
    from camseg.segmenter import _Frame, _select_persons
    h, w = 40, 60
    logits = np.full((4, h, w), -8.0, np.float32)
    logits[0, 5:35, 5:25] = 8.0  # person A
    logits[1, 10:20, 8:20] = 6.0  # fragment of A (IoU with A 0.2: not a "duplicate")
    logits[2, 5:35, 35:55] = 8.0  # person B, apart from A
    logits[3, 38, 58] = 8.0  # a one-pixel speck: below the minimum area
    classes = np.array([[4.0, -4.0]] * 4, np.float32)  # all four confidently "person"
    frame = _Frame((h, w), (h, w))
    masks, scores = _select_persons(classes, logits, frame, SegmenterOptions())
    assert len(masks) == 2 and len(scores) == 2
    got = sorted((m > 0.5).nonzero()[1].mean() for m in masks)
    assert got[0] < 30 < got[1]  # A on the left, B on the right
    vague = logits.copy()
    vague[2, 5:35, 35:55] = 0.3  # B's matte barely above 0.5 ...
    unsure = classes.copy()
    unsure[2] = (0.7, -0.7)  # ... and its class only 0.8 sure: 0.8 × 0.57 is below min_mask_score
    masks, _ = _select_persons(unsure, vague, frame, SegmenterOptions())
    assert len(masks) == 1
    masks, _ = _select_persons(unsure, vague, frame, SegmenterOptions(min_mask_score=0.4))
    assert len(masks) == 2


def test_near_equal_duplicates_of_one_person_do_not_cancel_each_other():
    """Two queries with one person's mask and near-equal confidence split her pixels between
    them (each pixel to the slightly surer one), each kept under 0.65 of its mask, and both
    were dropped as fragments: nobody found (COCO 36 enlarged to 12 MP; COCO 436 as it is).
    Duplicates are now removed before the pixels are shared out."""
    from camseg.segmenter import _Frame, _select_persons
    h, w = 40, 60
    rng = np.random.default_rng(5)
    logits = np.full((4, h, w), -8.0, np.float32)
    person = (slice(5, 35), slice(10, 40))
    for q in (1, 3):  # the same person, with pixel-level differences in confidence
        logits[q][person] = 3.0 + rng.normal(0.0, 1.0, (30, 30)).astype(np.float32)
    classes = np.array([[-4.0, 4.0], [1.6, -1.6], [-4.0, 4.0], [1.62, -1.62]], np.float32)
    masks, scores = _select_persons(classes, logits, _Frame((h, w), (h, w)), SegmenterOptions())
    assert len(masks) == 1 and (masks[0][person] > 0.5).mean() > 0.9
    assert scores[0] == pytest.approx(1.0 / (1.0 + np.exp(-3.24)), abs=1e-4)  # the surer query


def test_overlapping_queries_that_split_one_person_still_give_one_person():
    """Two queries on one person under the duplicate IoU (0.58), each surest on its own side,
    split her pixels so that neither keeps 0.65 of its mask: the surest is kept, not neither."""
    from camseg.segmenter import _Frame, _select_persons
    h, w = 40, 60
    logits = np.full((4, h, w), -8.0, np.float32)
    ramp = np.linspace(4.0, 2.0, 30, dtype=np.float32)
    logits[0, 5:35, 10:40] = ramp  # surest on the left
    logits[1, 5:35, 18:48] = ramp[::-1]  # surest on the right
    classes = np.array([[1.62, -1.62], [1.6, -1.6], [-4.0, 4.0], [-4.0, 4.0]], np.float32)
    masks, scores = _select_persons(classes, logits, _Frame((h, w), (h, w)), SegmenterOptions())
    assert len(masks) == 1 and (masks[0][5:35, 10:40] > 0.5).all()


def test_logit_offsets_from_the_contract_shift_the_mattes(tmp_path, photo):
    """Calibration offsets written into a model's contract are applied by the runtime before the sigmoid."""
    pytest.importorskip("onnx")
    import shutil

    from camseg.train.export import set_logit_offsets
    model = tmp_path / "m.onnx"
    shutil.copy(DEFAULT_MODEL, model)
    set_logit_offsets(model, {"sky": 0.0, "person": 0.0})
    with Segmenter(model) as s:
        assert s.contract.logit_offsets == {"sky": 0.0, "person": 0.0}
        base = s.segment(photo)
        sky0, union0 = base.low_resolution("sky"), base.person
    contract = set_logit_offsets(model, {"sky": 2.0, "person": 1.0})
    assert contract.logit_offsets == {"sky": 2.0, "person": 1.0}
    with Segmenter(model) as s:
        shifted = s.segment(photo)
        sky1 = shifted.low_resolution("sky")
        logit = lambda p: np.log(p / (1 - p))  # noqa: E731
        inside = (sky0 > 0.01) & (sky0 < 0.99) & (sky1 < 0.99)
        np.testing.assert_allclose(logit(sky1[inside]) - logit(sky0[inside]), 2.0, atol=1e-3)
        assert shifted.person.sum() >= union0.sum()  # a positive person offset widens people


def test_glasses_only_on_faces():
    """A glasses region with face (skin or hair) around it stays; one away from any face goes,
    its faint fringe with it."""
    from camseg.segmenter import _glasses_on_faces
    h, w = 80, 120
    face = np.zeros((h, w), bool)
    face[10:50, 10:50] = True  # a face on the left
    glasses = np.full((h, w), -6.0, np.float32)
    glasses[25:32, 18:42] = 5.0  # spectacles across it (the lenses hide the skin below them)
    face[25:32, 18:42] = False
    glasses[40:70, 80:110] = 4.0  # a dark round thing on the right, nowhere near the face
    glasses[38:40, 78:112] = -1.0  # its fringe: visible (sigmoid 0.27) but below 0.5
    out = _glasses_on_faces(glasses, face, 0.3)
    assert (out[25:32, 18:42] == glasses[25:32, 18:42]).all() and (out[22:35, 14:46] == glasses[22:35, 14:46]).all()
    assert out[36:75, 75:115].max() <= -20.0
    assert (glasses[40:70, 80:110] == 4.0).all()  # the input is not modified
    assert (_glasses_on_faces(glasses, face, 0.0) == glasses).all()  # 0: every region stays


def test_a_speck_on_an_eye_is_not_glasses():
    """A glasses region must cover a share of the face it sits on: the matte's specks on light
    irises cover a few thousandths of a face, real glasses (or one lens) more than 0.7 %."""
    from camseg.segmenter import _glasses_on_faces
    h, w = 120, 200
    face = np.zeros((h, w), bool)
    face[10:110, 10:90] = True  # 8000 px
    face[10:110, 110:190] = True
    glasses = np.full((h, w), -6.0, np.float32)
    glasses[50:53, 30:33] = 5.0  # 9 px on the left face's eye: 0.1 % of it
    glasses[45:60, 120:180] = 5.0  # a pair of glasses on the right face: 11 %
    out = _glasses_on_faces(glasses, face, 0.3, 0.005)
    assert out[50:53, 30:33].max() <= -20.0
    assert (out[45:60, 120:180] == 5.0).all()
    assert (_glasses_on_faces(glasses, face, 0.3, 0.0)[50:53, 30:33] == 5.0).all()  # 0 keeps it


def test_no_glasses_on_the_astronauts_helmet(segmenter):
    """The bundled photo: her helmet visor (bottom right) drew a glasses matte before the
    face-context rule. (Her mission patch keeps a small one, 0.6 % of the frame: the skin
    matte covers her orange suit, so the patch looks framed by a face.)"""
    seg = segmenter.segment(SAMPLE)
    assert float((seg.glasses[300:, 300:] > 0.5).mean()) < 0.002 and float((seg.glasses > 0.5).mean()) < 0.01
    unfiltered = Segmenter(options=SegmenterOptions(glasses_face_context=0.0)).segment(SAMPLE)
    assert float((unfiltered.glasses[300:, 300:] > 0.5).mean()) > 0.05  # the rule is what removed it


def test_skin_matte_leaves_red_clothes(segmenter, photo):
    """The model takes red clothes for skin; the skin-colour envelope removes them (the real
    model on the bundled photo with her orange suit dyed red) and leaves her face alone."""
    srgb = photo.astype(np.float32) / 255.0
    r, g, b = srgb[..., 0], srgb[..., 1], srgb[..., 2]
    suit = (r > 0.55) & (g < 0.6 * r) & (b < 0.4 * r)
    suit[:256] = False  # the lower half: her suit, not the flag's stripes
    red = srgb.copy()
    red[..., 1] = np.where(suit, 0.3 * g, g)
    red[..., 2] = np.where(suit, 0.5 * b, b)
    red = (red * 255.0 + 0.5).astype(np.uint8)
    face = (slice(95, 165), slice(195, 255))
    ungated = Segmenter(options=SegmenterOptions(skin_colour_margin=float("inf")))
    before, after = ungated.segment(red, categories={"skin"}).skin, segmenter.segment(red, categories={"skin"}).skin
    assert before[suit].mean() > 0.4  # the model alone: a red suit is skin
    assert after[suit].mean() < 0.05
    assert abs(float(after[face].mean()) - float(before[face].mean())) < 0.01


def test_skin_colour_envelope_keeps_every_skin_tone():
    """Skin colours from pale to deep, and a face under warm orange light, keep their matte
    exactly; saturated red loses it; the other categories are not touched."""
    from camseg.segmenter import _sigmoid, _skin_colour_gated
    h, w = 60, 60
    logits = np.full((h, w), 3.0, np.float32)
    for rgb in [(0.95, 0.80, 0.72), (0.80, 0.60, 0.50), (0.55, 0.36, 0.26), (0.30, 0.19, 0.14),
                (0.90, 0.62, 0.38)]:
        srgb = np.broadcast_to(np.array(rgb, np.float32)[:, None, None], (3, h, w))
        assert _skin_colour_gated(logits, srgb, 5.0) is logits, rgb
    red = np.broadcast_to(np.array([0.85, 0.12, 0.10], np.float32)[:, None, None], (3, h, w))
    gated = _skin_colour_gated(logits, red, 5.0)
    assert gated.dtype == np.float32 and gated.shape == (h, w) and gated.max() < -5.0
    # At the edge: orange-red (luma 126, Cr 7.5 over the envelope) fades over 10 levels past
    # the margin: a quarter, a half, three quarters, all of the matte kept.
    edge = np.broadcast_to(np.array([0.9, 0.45, 0.2], np.float32)[:, None, None], (3, h, w))
    two = np.full((h, w), 2.0, np.float32)
    for margin, kept in [(0.0, 0.25), (2.5, 0.5), (5.0, 0.75), (7.5, 1.0)]:
        ratio = _sigmoid(_skin_colour_gated(two, edge, margin)) / _sigmoid(two)
        assert np.allclose(ratio, kept, atol=0.01), (margin, float(ratio.mean()))
    # The envelope follows luma: Cr 185 is skin's in the mid-tones (luma 128), not in the
    # shadows (luma 41), where skin carries less chroma.
    for rgb, kept in [((0.8135, 0.3792, 0.3), True), ((0.4735, 0.025, 0.03), False)]:
        colour = np.broadcast_to(np.array(rgb, np.float32)[:, None, None], (3, h, w))
        gated = _sigmoid(_skin_colour_gated(two, colour, 5.0))
        assert (np.allclose(gated, _sigmoid(two)) if kept else gated.max() < 0.01), rgb
    half = np.array(red)  # red on the right half only: the left keeps its matte
    half[:, :, :30] = np.array([0.80, 0.60, 0.50], np.float32)[:, None, None]
    gated = _skin_colour_gated(logits, half, 5.0)
    assert np.allclose(gated[:, :20], 3.0, atol=1e-3) and gated[:, 40:].max() < -5.0


def test_grey_photo_detection():
    """Grey = the pixels' channels within 2/255 (a black-and-white photo whose channels a
    colour encoder or a resize rounded apart by a level); the letterbox padding is not looked
    at; a colour speck (a date stamp) leaves a photo grey, a tinted patch makes it colour."""
    from camseg.segmenter import _is_grey
    rng = np.random.default_rng(3)
    grey = np.repeat(rng.integers(1, 255, (64, 96, 1)), 3, axis=2) + rng.integers(-1, 2, (64, 96, 3))
    batch = np.zeros((3, 80, 120), np.float32)
    batch[:, :64, :96] = grey.transpose(2, 0, 1) / 255.0
    assert _is_grey(batch, (64, 96))
    batch[0, 70, 100] = 1.0  # outside the photo's region
    assert _is_grey(batch, (64, 96))
    batch[0, 10, 10] += 5.0 / 255.0  # one tinted pixel: a speck
    assert _is_grey(batch, (64, 96))
    batch[0, 10:14, 10:14] += 5.0 / 255.0  # 16 pixels, 0.26 % of the photo: colour
    assert not _is_grey(batch, (64, 96))


def test_grey_photos_get_their_own_calibration(segmenter, photo):
    """On a black-and-white photo the skin matte is under-confident (FASSEG faces turned grey:
    IoU-best cut 0.3): the grey offsets raise it on her face; a colour photo is unaffected."""
    face = (slice(95, 165), slice(195, 255))
    grey = np.repeat((photo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
                      + 0.5).astype(np.uint8)[:, :, None], 3, axis=2)
    plain = Segmenter(options=SegmenterOptions(grey_logit_offsets=()))
    before, after = plain.segment(grey, categories={"skin"}).skin, segmenter.segment(grey, categories={"skin"}).skin
    assert float(after[face].mean()) > float(before[face].mean()) + 0.05
    assert float((after[face] > 0.5).mean()) > float((before[face] > 0.5).mean())
    np.testing.assert_array_equal(plain.segment(photo).skin, segmenter.segment(photo).skin)


def test_black_and_white_skin_is_never_black():
    """On a grey photo colour cannot rule skin out, and the grey offsets put skin on black
    things (the grey astronaut's helmet): there the matte fades below the darkest labelled
    skin's luma; mid-grey keeps it; a colour photo's dark skin is not touched."""
    from camseg.segmenter import _sigmoid, _skin_colour_gated
    h, w = 40, 40
    two = np.full((h, w), 2.0, np.float32)
    for level, kept in [(0.0, 0.0), (0.06, (15.3 - 9.7) / 12.0), (0.5, 1.0)]:  # luma 0, 15.3, 127.5
        grey = np.full((3, h, w), level, np.float32)
        ratio = _sigmoid(_skin_colour_gated(two, grey, 5.0, dark_floor=True)) / _sigmoid(two)
        assert np.allclose(ratio, kept, atol=0.01), (level, float(ratio.mean()))
    dark_skin = np.broadcast_to(np.array([0.06, 0.04, 0.03], np.float32)[:, None, None], (3, h, w))
    assert _skin_colour_gated(two, dark_skin, 5.0) is two


def test_grey_offsets_reach_sky_and_person(segmenter, photo):
    """The grey offsets are wired to every category they name: on the grey photo the sky and
    person mattes move with them (and a colour photo's do not)."""
    grey = np.repeat((photo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
                      + 0.5).astype(np.uint8)[:, :, None], 3, axis=2)
    plain = Segmenter(options=SegmenterOptions(grey_logit_offsets=()))
    a, b = plain.segment(grey), segmenter.segment(grey)
    assert float(b.low_resolution("sky").mean()) > float(a.low_resolution("sky").mean()) + 0.005
    assert float(b.person.mean()) < float(a.person.mean()) - 0.005
    np.testing.assert_array_equal(plain.segment(photo).person, segmenter.segment(photo).person)


@pytest.mark.parametrize("options, match", [
    (dict(grey_logit_offsets=("skin", 0.8)), "pairs"),
    (dict(grey_logit_offsets=(("skin", float("nan")),)), "pairs"),
    (dict(skin_colour_margin=float("nan")), "skin_colour_margin"),
    (dict(skin_colour_margin=None), "skin_colour_margin"),
    (dict(in_front_of_sky="teeth"), "in_front_of_sky"),
    (dict(in_front_of_sky=("sky",)), "other than 'sky'"),
    (dict(person_threshold="0.5"), "person_threshold must be a finite number"),  # (UFuncTypeError on the first photo)
    (dict(person_threshold=float("nan")), "person_threshold must be a finite number"),  # (silently found nobody)
    (dict(person_threshold=float("inf")), "person_threshold must be a finite number"),  # (so did inf)
    (dict(min_visible_fraction=None), "min_visible_fraction must be a finite number"),
    (dict(glasses_face_context=True), "glasses_face_context must be a finite number"),
])
def test_bad_options_fail_when_made(options, match):
    with pytest.raises(ValueError, match=match):
        SegmenterOptions(**options)


def test_options_naming_categories_the_model_lacks_fail_at_load():
    with pytest.raises(ValueError, match=r"'Sky'.*valid names"):
        Segmenter(options=SegmenterOptions(grey_logit_offsets=(("Sky", 0.4),)))
    with pytest.raises(ValueError, match="persons"):
        Segmenter(options=SegmenterOptions(in_front_of_sky=("persons",)))


def test_sky_stays_behind_what_is_in_front_of_it():
    """The sky matte is capped to 1 - q of the categories in front of it (teeth by default:
    the model takes white teeth for sky); where nothing is in front it is untouched."""
    from camseg.segmenter import _behind, _sigmoid
    sky = np.full((4, 6), 2.5, np.float32)  # 0.92 everywhere
    teeth = np.full((4, 6), -8.0, np.float32)
    teeth[1:3, 2:4] = 4.0  # 0.98: a smile
    capped = _behind(sky, [teeth])
    assert capped.dtype == np.float32 and capped.shape == sky.shape
    p = _sigmoid(capped)
    assert (p[1:3, 2:4] < 0.03).all()
    assert np.allclose(p[0], _sigmoid(sky)[0], atol=1e-3)
    assert _behind(sky, [np.full((4, 6), -20.0, np.float32)]) is sky  # nothing in front: as it was
    hair = np.zeros((4, 6), np.float32)  # 0.5 in front: at most half the sky shows
    assert np.allclose(_sigmoid(_behind(sky, [teeth, hair]))[0], 0.5, atol=1e-3)


def test_in_front_of_sky_is_applied_by_the_runtime(photo):
    """On the bundled photo the sky matte reaches 0.13 over 1 - hair at the hair's edge; with
    hair in front of the sky it never does (the runtime wires the option to the matte)."""
    over = lambda seg: float((seg.low_resolution("sky") - (1.0 - seg.low_resolution("hair"))).max())
    assert over(Segmenter(options=SegmenterOptions(in_front_of_sky=())).segment(photo)) > 0.05
    assert over(Segmenter(options=SegmenterOptions(in_front_of_sky=("hair",))).segment(photo)) <= 1e-5
    assert SegmenterOptions().in_front_of_sky == ("teeth",)


# --- the borrowed path camseg.develop uses ---------------------------------------------

def test_segment_borrowed_matches_segment_and_keeps_the_copy_promise(segmenter, photo):
    from PIL import Image as _Image

    from camseg.io import as_linear_rgb

    big = as_linear_rgb(np.asarray(_Image.fromarray(photo).resize((1200, 1000), _Image.BICUBIC)))  # 1.2 MP
    names = ["sky", "skin", "persons", "glasses"]
    ref = segmenter.segment(big)
    want = ref.mattes(names, max_pixels=500_000)
    kept = segmenter.segment_borrowed(big, guide_pixels=500_000)  # the photo reduced while the model ran
    got = kept.mattes(names, max_pixels=500_000)
    assert len(kept._reduced_guides) == 1  # the guide made while the model ran was the one used
    for name in ("sky", "skin", "glasses"):
        np.testing.assert_array_equal(got[name], want[name])
    assert len(got["persons"]) == len(want["persons"])
    for a, b in zip(got["persons"], want["persons"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(kept.low_resolution("glasses"), ref.low_resolution("glasses"))
    # keep_copy (default): later edits of the caller's array do not reach the segmentation
    sky = ref.sky
    edited = big.copy()
    kept = segmenter.segment_borrowed(edited, categories={"sky"})
    edited[:] = 0.5
    np.testing.assert_array_equal(kept.sky, sky)
    # keep_copy=False: the segmentation reads the caller's array itself (no 144 MB copy at 12 MP)
    shared = segmenter.segment_borrowed(big, categories={"sky"}, keep_copy=False)
    assert np.shares_memory(shared._image, big)
    np.testing.assert_array_equal(shared.sky, sky)


def test_segment_borrowed_errors_and_other_inputs(segmenter, photo):
    nan = np.full((32, 32, 3), 0.5, np.float32)
    nan[3, 5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        segmenter.segment_borrowed(nan, guide_pixels=100)
    for shape in ((32, 32, 3), (600, 1100, 3)):  # enlarged / reduced for the model
        inf = np.full(shape, 0.5, np.float32)
        inf[30, 2, 0] = np.inf
        with pytest.raises(ValueError, match="infinite"):
            segmenter.segment_borrowed(inf, keep_copy=False)
    with pytest.raises(ValueError, match="at least 8"):
        segmenter.segment_borrowed(np.zeros((4, 40, 3), np.float32))
    with pytest.raises(ValueError, match="guide_pixels"):
        segmenter.segment_borrowed(nan, guide_pixels=0)
    # anything but float32 H×W×3 goes through segment() (validated and converted there)
    seg = segmenter.segment_borrowed(photo, categories={"skin"})
    np.testing.assert_array_equal(seg.skin, segmenter.segment(photo, categories={"skin"}).skin)


def test_a_display_p3_photo_is_segmented_in_srgb_like_its_srgb_twin(tmp_path, segmenter):
    """The model read a P3 file's own values as sRGB (duller): its skin differed from the sRGB
    twin's by 0.026 on average; converted to sRGB's primaries, by 0.001."""
    photo = cio.read_photo(SAMPLE)
    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Display P3")
    own = np.array([cio._s15f16(cio._icc_tags(p3)[k], 8, 3) for k in ("rXYZ", "gXYZ", "bXYZ")]).T
    in_p3 = np.clip(photo.pixels @ np.linalg.solve(own, cio._SRGB_COLORANTS).T.astype(np.float32), 0, 1)
    encode = lambda x: Image.fromarray(np.round(cio.linear_to_srgb(x) * 255).astype(np.uint8))
    encode(in_p3).save(tmp_path / "p3.png", icc_profile=p3)
    encode(photo.pixels).save(tmp_path / "srgb.png")
    twin = segmenter.segment(tmp_path / "srgb.png").skin
    assert np.abs(segmenter.segment(tmp_path / "p3.png").skin - twin).mean() < 0.005
    assert np.abs(segmenter.segment(cio.read_photo(tmp_path / "p3.png")).skin - twin).mean() < 0.005
    assert np.abs(segmenter.segment(cio.read_photo(tmp_path / "p3.png").pixels).skin - twin).mean() > 0.015
    from camseg.pipeline import develop  # develop segments the photo it develops the same way

    res = develop(cio.read_photo(tmp_path / "p3.png"), segmenter=segmenter, return_details=True, denoise=False)
    assert np.abs(res.segmentation.skin - twin).mean() < 0.005


def test_the_scene_only_model_is_refused_as_the_full_model():
    """It has no people: loaded as the full model it failed on each photo with an unpacking error."""
    with pytest.raises(ValueError, match="scene-only model.*'hyperdetr.onnx'"):
        Segmenter(DEFAULT_MODEL.with_name("hyperdetr_scene.onnx"))


def test_mattes_refuses_a_bare_string_and_unknown_names():
    """`mattes("sky")` and `mattes(["skyy"])` returned {} without a word."""
    seg = Segmenter().segment(str(SAMPLE), categories={"sky", "skin"})
    with pytest.raises(TypeError, match=r"\['sky'\]"):
        seg.mattes("sky")
    with pytest.raises(ValueError, match="unknown matte names \\['skyy'\\]"):
        seg.mattes(["skyy"])
    assert set(seg.mattes(["sky", "hair", "persons"])) == {"sky"}  # known but not computed: left out
    with pytest.raises(ValueError, match="unknown matte names"):  # prefetch too (it was ignored)
        seg.prefetch(["sky", "no_such_matte"])


def _model_with_contract(path, edit):
    """A copy of the bundled model at ``path`` whose ``camseg.contract`` metadata is
    ``edit(contract as a dict)``: a dict is written as JSON, a str as it is."""
    import json

    onnx = pytest.importorskip("onnx")
    from camseg.contract import METADATA_KEY

    model = onnx.load(str(DEFAULT_MODEL))
    prop = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    new = edit(json.loads(prop.value))
    prop.value = new if isinstance(new, str) else json.dumps(new)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("edit, match", [
    (lambda c: "{not json", "metadata is not JSON"),
    (lambda c: "null", "metadata is null, not a JSON object"),
    (lambda c: {k: v for k, v in c.items() if k != "scene_categories"}, r"lacks \['scene_categories'\]"),
    (lambda c: {**c, "new_field": 1}, r"unknown fields \['new_field'\]"),
    (lambda c: {**c, "input_size": "384x512"}, r"input_size='384x512' \(expected \[height, width\], two integers > 0\) is not valid"),
    (lambda c: {**c, "logit_offsets": {"sky": "x"}}, r"logit_offsets=\{'sky': 'x'\} \(expected an object of finite numbers\) is not valid"),
    # (a 400-digit offset escaped as OverflowError; a version of true passed as 1)
    (lambda c: {**c, "logit_offsets": {"sky": 10 ** 400}}, r"logit_offsets=\{'sky': 1000.* is not valid"),
    (lambda c: {**c, "version": True}, "contract version True is not supported"),
    # (Names that hide the runtime's own attributes, or are no safe file name for camseg segment.)
    (lambda c: {**c, "scene_categories": ["sky", "hair", "skin", "person", "glasses"]}, r"scene_categories=.*not valid"),
    (lambda c: {**c, "scene_categories": ["sky", "hair", "skin", "../teeth", "glasses"]}, r"scene_categories=.*not valid"),
    (lambda c: {**c, "scene_categories": ["sky", "hair", "skin", "person_00", "glasses"]}, r"scene_categories=.*not valid"),
    (lambda c: {**c, "scene_categories": ["sky", "hair", "skin", "mattes", "glasses"]}, r"scene_categories=.*not valid"),
])
def test_a_damaged_contract_is_refused_at_load_naming_the_model(tmp_path, edit, match):
    """It failed as a bare JSONDecodeError, KeyError, TypeError or AttributeError that named no model
    (a traceback from the command), and a non-number logit offset only when a photo was segmented."""
    from camseg.segmenter import check_model_file

    model = _model_with_contract(tmp_path / "m.onnx", edit)
    for load in (Segmenter, check_model_file):
        with pytest.raises(ValueError, match=f"'.*m.onnx': .*{match}.*re-export the model"):
            load(model)


@pytest.mark.parametrize("edit, match", [
    (lambda c: {**c, "input_size": [256, 256]}, r"'image' is \(1, 3, 384, 512\) in the graph but \(1, 3, 256, 256\)"),
    (lambda c: {**c, "scene_categories": ["sky", "hair", "skin"]}, r"'scene_logits' is \(1, 5, 384, 512\) in the graph"),
    (lambda c: {**c, "num_queries": 8}, r"'query_class_logits' is \(1, 4, 2\) in the graph but \(1, 8, 2\)"),
    # (Loaded, and its "dog" queries came back as persons.)
    (lambda c: {**c, "thing_categories": ["dog"]}, r"its contract's thing_categories are \['dog'\]; camseg finds"),
])
def test_a_contract_that_does_not_match_its_graph_is_refused_at_load(tmp_path, edit, match):
    """Another input size loaded and failed every photo with onnxruntime's 'Got invalid dimensions for
    input' (in a batch, once per photo); three category names for five channels loaded and silently
    left teeth and glasses out."""
    from camseg.segmenter import check_model_file

    model = _model_with_contract(tmp_path / "m.onnx", edit)
    for load in (Segmenter, check_model_file):
        with pytest.raises(ValueError, match=f"'.*m.onnx': {match}.*re-export the model"):
            load(model)


def test_no_scene_category_name_can_hide_an_attribute_of_the_segmentation():
    # (prefetch and panoptic_categories were not reserved: a model's category "prefetch" passed the
    # contract, and seg.prefetch gave the method, never the matte.)
    from camseg.contract import RESERVED_NAMES
    from effects import RefineMatteParams

    seg = Segmentation(np.zeros((8, 8, 3), np.float32), {"sky": np.zeros((8, 8), np.float32)},
                       (np.zeros((1, 8, 8), np.float32), np.array([0.9], np.float32)), RefineMatteParams())
    public = {n for n in dir(seg) if not n.startswith("_") and not n.startswith("person_")} - {"sky"}
    assert public - set(RESERVED_NAMES) == set()


def test_scene_category_names_are_the_models_own(tmp_path, photo):
    """The graph's shape check counts channels; what the contract calls them is data."""
    from camseg.batch import write_segmentation
    from camseg.io import read_photo

    cats = ["sky", "hair", "skin", "tooth", "glasses"]
    with Segmenter(_model_with_contract(tmp_path / "r.onnx", lambda c: {**c, "scene_categories": cats})) as s:
        assert s.segment(photo).tooth.shape == photo.shape[:2]
        with pytest.raises(AttributeError, match=r"this model has no 'teeth' matte; its scene mattes are \["):
            s.segment(photo).teeth  # (it said 'not computed ... include it', and including it was refused)
        # camseg segment writes each of them (it wrote the six default names only: no tooth.png)
        sample = read_photo(DEFAULT_MODEL.parents[1] / "samples" / "astronaut.jpg")
        written = write_segmentation(tmp_path / "masks", sample, s.segment(sample))
    names = sorted(p.name for p in written)
    assert {"tooth.png", "sky.png", "person.png", "overlay.jpg"} <= set(names) and "teeth.png" not in names


@pytest.mark.parametrize("twin, match", [
    ("full", "is not a scene-only model"),
    ("reordered", r"does not match it: scene categories \['sky', 'hair', 'skin', 'glasses', 'teeth'\]"),
    ("damaged", "cannot be used: cannot load model"),
    ("folder", r"a folder beside it named as its scene-only twin, 'm_scene.onnx'; rename the folder, or "),
])
def test_a_bad_scene_only_twin_is_refused_at_load(tmp_path, twin, match):
    """A copy of the full model as ``<stem>_scene.onnx`` loaded and failed every scene-only call with
    'too many values to unpack'; a twin with its channels in another order silently gave the glasses
    matte as teeth (and teeth as glasses) on scene-only calls."""
    import shutil

    from camseg.segmenter import check_model_file

    model = tmp_path / "m.onnx"
    shutil.copy(DEFAULT_MODEL, model)
    scene = DEFAULT_MODEL.with_name("hyperdetr_scene.onnx")
    if twin == "full":
        shutil.copy(DEFAULT_MODEL, tmp_path / "m_scene.onnx")
    elif twin == "damaged":
        (tmp_path / "m_scene.onnx").write_bytes(scene.read_bytes()[:5000])
    elif twin == "folder":
        (tmp_path / "m_scene.onnx").mkdir()
    else:
        onnx = pytest.importorskip("onnx")
        import json

        from camseg.contract import METADATA_KEY

        proto = onnx.load(str(scene))
        prop = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
        prop.value = json.dumps({**json.loads(prop.value),
                                 "scene_categories": ["sky", "hair", "skin", "glasses", "teeth"]})
        onnx.save(proto, str(tmp_path / "m_scene.onnx"))
    for load in (Segmenter, check_model_file):
        with pytest.raises(ValueError, match=match + ".*replace it with the scene-only model exported with 'm.onnx'"):
            load(model)


def test_a_folder_an_empty_file_and_a_truncated_copy_are_refused_with_the_fix(tmp_path):
    """A folder failed as onnxruntime's 'Protobuf parsing failed', an empty file as 'No graph was
    found in the protobuf', a truncated copy as the former: neither said what was wrong nor what to do."""
    from camseg.segmenter import check_model_file

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(DEFAULT_MODEL.read_bytes())
    (tmp_path / "empty.onnx").touch()
    (tmp_path / "cut.onnx").write_bytes(DEFAULT_MODEL.read_bytes()[:1_000_000])
    for path, match in ((tmp_path / "models", r"is a folder; pass the model's .onnx file itself \(in it: '.*m.onnx"),
                        (tmp_path / "empty.onnx", r"is empty \(0 bytes\).*Copy it again"),
                        (tmp_path / "cut.onnx", "not an ONNX model, or a damaged or truncated copy.*copy it again")):
        for load in (Segmenter, check_model_file):
            with pytest.raises(ValueError, match=match):
                load(path)


def test_a_link_to_the_model_finds_the_scene_only_twin_beside_its_target(tmp_path, photo):
    """Through a link, the twin was looked for beside the link only: not found, every scene-only
    call ran the whole model (the transformer too)."""
    link = tmp_path / "my_model.onnx"
    link.symlink_to(DEFAULT_MODEL)
    with Segmenter(link) as through_link, Segmenter(DEFAULT_MODEL) as direct:
        assert through_link._scene is not None
        np.testing.assert_array_equal(through_link.segment(photo, categories={"sky"}).sky,
                                      direct.segment(photo, categories={"sky"}).sky)
