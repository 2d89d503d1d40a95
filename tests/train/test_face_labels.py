"""Face-mesh label helpers: teeth picked inside the mouth; labels attached to the right records."""

import cv2
import numpy as np

from camseg.train import data
from camseg.train.face_labels import teeth_in_mouth


def _mouth_scene():
    """Skin-coloured face with an open mouth: white teeth, red tongue, dark cavity."""
    img = np.full((60, 80, 3), (200, 150, 120), np.uint8)
    mouth = np.zeros((60, 80), bool)
    mouth[20:40, 20:60] = True
    img[20:40, 20:60] = (40, 10, 10)  # cavity
    img[20:27, 22:58] = (235, 230, 220)  # upper teeth
    img[32:40, 30:50] = (190, 60, 70)  # tongue
    return img, mouth


def test_teeth_are_the_bright_unsaturated_part_of_the_opening():
    img, mouth = _mouth_scene()
    teeth = teeth_in_mouth(img, mouth) > 0
    truth = np.zeros_like(mouth)
    truth[20:27, 22:58] = True
    iou = (teeth & truth).sum() / (teeth | truth).sum()
    assert iou > 0.9
    assert not teeth[32:40, 30:50].any()  # tongue
    assert not teeth[~mouth].any()  # never outside the lips


def test_closed_mouth_gives_an_empty_label():
    img, _ = _mouth_scene()
    assert not teeth_in_mouth(img, np.zeros(img.shape[:2], bool)).any()


def test_face_labels_attach_by_set_split_and_stem(tmp_path):
    img, mouth = _mouth_scene()
    folder = tmp_path / "data" / "celeb_hair" / "train"
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    cv2.imwrite(str(folder / "images" / "a.jpg"), img[:, :, ::-1])
    cv2.imwrite(str(folder / "images" / "b.jpg"), img[:, :, ::-1])
    for stem in ("a", "b"):
        cv2.imwrite(str(folder / "masks" / f"{stem}.png"), np.zeros(img.shape[:2], np.uint8))
    labels = tmp_path / "face_labels"
    for kind in ("teeth", "eyes"):
        (labels / kind / "celeb_hair" / "train").mkdir(parents=True)
        cv2.imwrite(str(labels / kind / "celeb_hair" / "train" / "a.png"), mouth.astype(np.uint8) * 255)
    a, b = data.load_binary(folder, data.HAIR, "celeb_hair", labels)
    assert data.TEETH in a.scene and a.eyes is not None
    assert (a.scene[data.TEETH] > 0).sum() == mouth.sum()
    # no face found for b: teeth stay unlabelled (ignored by the loss), not "no teeth"
    assert data.TEETH not in b.scene and b.eyes is None
