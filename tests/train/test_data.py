"""Training data helpers: several-person composites for evaluation."""

import numpy as np

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
