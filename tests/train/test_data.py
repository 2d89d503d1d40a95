"""Training data helpers: several-person composites for evaluation."""

import cv2
import numpy as np
import pytest

from camseg.train.data import SKY, Record, group_composites


def _person(h=120, w=160, box=(20, 100, 60, 100)):
    img = np.full((h, w, 3), 90, np.uint8)
    m = np.zeros((h, w), np.uint8)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = 255
    img[m > 0] = (200, 150, 120)
    return Record(img, {}, [m], "person_binary")


def test_group_composites_have_several_exact_people_and_no_scene_labels():
    rng = np.random.default_rng(1)
    backgrounds = [Record(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8),
                          {SKY: np.zeros((120, 160), np.uint8)}, None, "ade_sky") for _ in range(3)]
    records = backgrounds + [_person(), _person(box=(10, 110, 30, 90))]
    groups = group_composites(records, count=5, seed=0)
    assert 1 <= len(groups) <= 5
    for g in groups:
        assert g.source == "group_composite" and g.scene == {}
        assert len(g.instances) >= 2
        stack = np.stack(g.instances) > 127
        assert stack.sum(0).max() <= 1  # occlusion: each pixel belongs to at most one person
        assert g.image.shape == (120, 160, 3)
    again = group_composites(records, count=5, seed=0)  # fixed seed: the same evaluation set every run
    assert all(np.array_equal(a.image, b.image) for a, b in zip(groups, again))


def test_zoom_out_leaves_the_padding_unknown_and_scene_photos_teach_no_glasses():
    from camseg.train.data import GLASSES, TEETH, AugmentParams, TrainingSet

    rec = Record(np.full((100, 200, 3), 128, np.uint8), {SKY: np.full((100, 200), 255, np.uint8)}, None, "ade_sky")
    ts = TrainingSet([rec], size=(64, 80), params=AugmentParams(p_zoom_out=1.0, max_zoom_out=2.0, p_copy_paste=0.0))
    fractions = []
    for _ in range(8):
        img, scene, valid, inst, n, inst_valid, inside = ts.sample(0)
        fractions.append(inside.mean())
        core = inside > 0.5
        assert scene[SKY][core].mean() > 0.95  # the label follows the photo, wherever it lands
        assert img[:, ~core].max(initial=0) < 0.3  # the padding is dark (and ignored by the loss)
        assert valid[GLASSES].all() and valid[TEETH].all() and scene[GLASSES].max() == 0
    assert min(fractions) < 0.9  # the photo no longer fills the frame


def test_letterbox_shows_a_portrait_photo_whole_and_upright():
    """p_letterbox: the whole standing person is in the frame, upright, as the runtime shows it."""
    from camseg.train.data import AugmentParams, TrainingSet

    h, w = 200, 120  # portrait photo, a standing person down its middle
    image = np.full((h, w, 3), 60, np.uint8)
    person = np.zeros((h, w), np.uint8)
    person[20:190, 45:75] = 255
    image[person > 0] = 200
    rec = Record(image, {}, [person], "person_binary")
    params = AugmentParams(p_letterbox=1.0, p_copy_paste=0.0, p_rotate=0.0, p_turn=0.0, brightness=0.0,
                           contrast=0.0, saturation=0.0, hue_deg=0.0)
    ts = TrainingSet([rec], size=(64, 80), params=params)
    for _ in range(8):
        img, scene, valid, inst, n, inst_valid, inside = ts.sample(0)
        assert n == 1
        ys, xs = np.nonzero(inst[0] > 0.5)
        assert np.ptp(ys) > 1.5 * np.ptp(xs)  # still standing: taller than wide
        rows = np.nonzero(inside.any(axis=1))[0]
        cols = np.nonzero(inside.any(axis=0))[0]
        assert 0.6 * 64 - 2 <= rows.size <= 64 and cols.size < 0.6 * 80 + 2  # the whole photo, fitted
        # every pixel of the person is inside the frame: the photo's top and bottom rows are in it
        assert inst[0].sum() > 0.9 * (person > 0).sum() * (rows.size / h) ** 2


def test_person_free_scenes_become_person_negatives(tmp_path):
    """Scenes with nobody in them (the selfie segmenter's verdict, or a named list): an empty
    instance list (a negative), no glasses or teeth; scenes with someone in them stay
    person-unlabelled; held-out ones are skipped."""
    import cv2

    from camseg.train.data import GLASSES, TEETH, load_person_free_scenes, mark_person_free

    verdicts, photos = tmp_path / "person", tmp_path / "images"
    verdicts.mkdir()
    photos.mkdir()
    empty = np.zeros((40, 60), np.uint8)
    someone = empty.copy()
    someone[10:30, 20:30] = 255  # 8 % of the frame
    for stem, verdict in (("a", empty), ("b", someone), ("c", empty)):
        cv2.imwrite(str(verdicts / f"{stem}.png"), verdict)
        cv2.imwrite(str(photos / f"{stem}.jpg"), np.full((40, 60, 3), 90, np.uint8))
    recs = [Record(np.zeros((40, 60, 3), np.uint8), {SKY: empty}, None, "ade_sky") for _ in range(4)]
    mark_person_free(recs, verdicts, ["a", "b", "c", "missing"])
    assert [r.instances for r in recs] == [[], None, [], None]

    scenes = load_person_free_scenes(photos, {"a", "c"}, exclude={"c"})
    assert len(scenes) == 1 and scenes[0].instances == [] and scenes[0].source == "scene"
    assert set(scenes[0].scene) == {GLASSES, TEETH} and not any(m.any() for m in scenes[0].scene.values())

    # A sample from a person-free scene labels hair and skin as absent; from a scene that may
    # show someone, both stay unlabelled.
    from camseg.train.data import HAIR, SKIN, AugmentParams, TrainingSet

    params = AugmentParams(p_copy_paste=0.0)
    for rec, labelled in ((recs[0], True), (recs[1], False), (scenes[0], True)):
        _, scene, valid, *_ = TrainingSet([rec], size=(32, 48), params=params).sample(0)
        assert bool(valid[HAIR].all()) == labelled and bool(valid[SKIN].any()) == labelled
        assert not scene[HAIR].any() and not scene[SKIN].any()



def test_person_parts_are_negatives_off_the_people_of_fully_labelled_photos():
    """COCO labels every person: off them there is no hair, skin, teeth or glasses (known
    zeros); on them those channels stay unknown. person_binary's masks may miss bystanders:
    nothing is inferred there."""
    from camseg.train.data import HAIR, PERSON_PARTS, SKIN, AugmentParams, TrainingSet

    person = np.zeros((120, 160), np.uint8)
    person[20:110, 60:100] = 255
    params = AugmentParams(p_copy_paste=0.0, p_letterbox=1.0, min_letterbox=1.0, p_rotate=0.0, p_turn=0.0,
                           p_flip=0.0)
    image = np.zeros((120, 160, 3), np.uint8)
    image[:] = (200, 150, 120)  # skin-coloured everywhere, so the colour rule stays out
    coco = Record(image, {SKY: np.zeros((120, 160), np.uint8)}, [person], "coco")
    _, scene, known, inst, n, *_ = TrainingSet([coco], size=(96, 128), params=params).sample(0)
    on = inst[0] > 0.5
    for c in PERSON_PARTS:
        assert not known[c][on].any() and known[c][~on].mean() > 0.8 and not scene[c].any()
    assert known[SKY].all()  # a labelled channel stays known everywhere
    binary = Record(image, {}, [person], "person_binary")
    _, _, known, *_ = TrainingSet([binary], size=(96, 128), params=params).sample(0)
    assert not known[HAIR].any() and not known[SKIN].any()


def test_colours_no_skin_has_are_skin_negatives_where_skin_is_unlabelled():
    from camseg.train.data import SKIN, AugmentParams, TrainingSet

    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :40] = (90, 120, 200)  # sky blue: Cr - Cb far below 0
    image[:, 40:] = (200, 150, 120)  # skin tone
    image[50:, :] = (10, 10, 30)  # too dark to judge
    params = AugmentParams(p_copy_paste=0.0, p_letterbox=1.0, min_letterbox=1.0, p_rotate=0.0, p_turn=0.0,
                           p_flip=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue_deg=0.0)
    rec = Record(image, {SKY: np.zeros((60, 80), np.uint8)}, None, "ade_sky")
    _, scene, known, *_ = TrainingSet([rec], size=(60, 80), params=params).sample(0)
    assert known[SKIN][5:45, 5:35].all() and not known[SKIN][5:45, 45:75].any()
    assert not known[SKIN][53:, :].any() and not scene[SKIN].any()
    labelled = Record(image, {SKIN: np.zeros((60, 80), np.uint8)}, None, "fasseg")
    _, _, known, *_ = TrainingSet([labelled], size=(60, 80), params=params).sample(0)
    assert known[SKIN].all()  # a real skin label is used as it is


def test_synthetic_glasses_sit_on_the_eyes_and_the_label_covers_what_was_drawn():
    from camseg.train.data import draw_glasses
    h, w = 160, 200
    face = np.full((h, w, 3), (200, 160, 130), np.uint8)
    eyes = np.zeros((h, w), np.uint8)
    eyes[70:78, 62:78] = 1
    eyes[70:78, 122:138] = 1
    styles = set()
    for seed in range(40):
        out, mask = draw_glasses(face, eyes, np.random.default_rng(seed))
        assert out.shape == face.shape and out.dtype == np.uint8 and mask.dtype == np.uint8
        assert (face == (200, 160, 130)).all()  # the input is not modified
        on = mask > 0
        # both eyes are inside the glasses, the rest of the face mostly is not
        assert on[74, 70] and on[74, 130] and not on[10, 10] and not on[150, 100]
        # what changed is (antialiased) glasses: nothing changes far from the label
        changed = np.abs(out.astype(int) - face).max(axis=2) > 2
        near = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
        assert not (changed & ~near).any()
        styles.add("clear" if np.abs(out[74, 70].astype(int) - face[74, 70]).max() < 25 else "tinted")
    assert styles == {"clear", "tinted"}  # both kinds of lens are drawn
    one_eye = eyes.copy()
    one_eye[:, 100:] = 0
    assert draw_glasses(face, one_eye, np.random.default_rng(0)) is None


def test_coco_person_free_reads_the_panoptic_entries(tmp_path):
    """A COCO photo is person-free when its panoptic.json entry lists no person segment; every
    third of them (name order) is held out for evaluation, never trained on."""
    import json

    from camseg.train.data import coco_person_free, coco_person_free_val

    cats = [{"id": 1, "name": "person"}, {"id": 24, "name": "zebra"}, {"id": 187, "name": "sky-other-merged"}]
    entries = {"p1": [1, 187], "z1": [24], "z2": [24, 187], "e": [], "p2": [24, 1], "z3": [187]}
    meta = {"categories": cats, "annotations": [
        {"file_name": f"{stem}.png", "segments_info": [{"id": i + 1, "category_id": c} for i, c in enumerate(ids)]}
        for stem, ids in entries.items()]}
    (tmp_path / "panoptic.json").write_text(json.dumps(meta))
    assert coco_person_free(tmp_path) == ["e", "z1", "z2", "z3"]
    assert coco_person_free_val(tmp_path) == {"e", "z3"}


def test_defocus_blurs_the_background_only_without_a_halo_of_the_people():
    from camseg.train.data import defocus_background

    rng = np.random.default_rng(0)
    h, w = 64, 96
    image = rng.random((h, w, 3)).astype(np.float32) * 0.5  # textured background
    people = np.zeros((h, w), np.float32)
    people[16:48, 40:56] = 1.0
    image[16:48, 40:56] = (1.0, 0.9, 0.8)                   # a bright person
    valid = np.ones((h, w), bool)
    valid[:, :8] = False                                     # letterbox padding
    image[:, :8] = 0.0
    out = defocus_background(image, people, 4.0, valid=valid)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out[20:44, 43:53], image[20:44, 43:53], atol=1e-6)  # the person stays sharp
    np.testing.assert_array_equal(out[:, :8], 0.0)                                  # the padding untouched
    bg = np.ones((h, w), bool)
    bg[12:52, 36:60] = False
    bg[:, :14] = False
    assert out[bg].std() < 0.5 * image[bg].std()            # background texture blurred away
    # Normalised convolution: next to the person the background keeps its own level (~0.25),
    # not the person's brightness smeared into it.
    assert abs(float(out[30, 32:37].mean()) - float(image[bg].mean())) < 0.05


def test_no_held_out_coco_photo_is_trained_on():
    """The held-out person-free COCO photos were loaded for training as person negatives too
    (000000000092): a training photo in evaluate's false-positive figure."""
    from pathlib import Path

    from camseg.train.data import COCO_VAL, coco_person_free_val, coco_split_names

    coco = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_panoptic"
    if not coco.is_dir():
        pytest.skip("../shared/data is not here")
    train = coco_split_names(coco, "train", set(COCO_VAL))
    assert train and not train & (set(COCO_VAL) | coco_person_free_val(coco))
