"""Teeth and eye labels from MediaPipe's face mesh, for faces that no set labels them on.

No training set labels teeth, and glasses are drawn synthetically at the eyes
(``data.draw_glasses``), so both need the face's geometry. This script runs
MediaPipe's face mesh (Kartynnik et al., "Real-time Facial Surface Geometry
from Monocular Video on Mobile GPUs", CVPR-W 2019; 468 landmarks) over the
portrait sets and writes, per photo where a face is found:

- ``teeth/<set>/<split>/<stem>.png`` (0/255): bright, low-saturation,
  not-red pixels inside the inner-lip polygon — the mouth opening minus
  the dark cavity, tongue and gums. A closed mouth gives an all-zero mask,
  which is a real label ("no teeth here"), not a missing one.
- ``eyes/<set>/<split>/<stem>.png`` (0/255): both eye contours filled, the
  anchor ``data.draw_glasses`` places synthetic glasses on.
- ``person/<set>/<split>/<stem>.png`` (0/255): a person pseudo-label from
  MediaPipe's selfie segmenter (same wheel, ``mp.solutions.selfie_segmentation``,
  confidence > 0.5). No set labels people on close-up portraits, and a model
  trained only on full- and half-body people learns to leave big faces out
  of the person matte — fatal for portrait blur on a headshot. The selfie
  segmenter is built for exactly these photos. Used for training only (the
  evaluation keeps its human-made person labels).

- ``person/<scene folder>/<stem>.png`` (0/255) for the scene photos of
  ``SCENE_FOLDERS`` (also alone, with ``--scenes-only``): the selfie
  segmenter's verdict, from which the loader takes the scenes with nobody in
  them as person negatives (``data.mark_person_free``).

A photo with no face found gets no file: the loader then leaves teeth
unlabelled for it (ignored by the loss, never "background").

It runs in its own virtual environment, because the face mesh ships only in
the legacy ``mediapipe==0.10.21`` wheel (``mp.solutions.face_mesh``, models
inside the wheel, offline), which pins ``numpy<2``; it imports nothing from
camseg and needs only numpy, OpenCV and mediapipe::

    python3.11 -m venv ~/.cache/camseg/mp10-venv
    ~/.cache/camseg/mp10-venv/bin/pip install mediapipe==0.10.21
    ~/.cache/camseg/mp10-venv/bin/python camseg/train/face_labels.py \\
        --data ../shared/data --out ~/.cache/camseg/face_labels

The trainer and the evaluator read the output with ``--face-labels DIR``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

# Face-mesh landmark indices (MediaPipe's canonical 468-point topology).
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
LEFT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
RIGHT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)

# (set, split) pairs holding portraits large enough for a face mesh.
PORTRAIT_SETS = (("celeb_hair", "train"), ("celeb_hair", "val"), ("celeb_hair", "test"),
                 ("fasseg", "train"), ("fasseg", "test"))
#: Scene photos (no person labels) whose person-free ones become person negatives (train) or
#: count person false positives (``evaluate``, val): name -> folder.
SCENE_FOLDERS = (("ade_sky/train", "ade_sky/train/images"), ("ade_sky/val", "ade_sky/val/images"),
                 ("coco_panoptic", "coco_panoptic/images"))


def teeth_in_mouth(image_rgb: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    """Teeth pixels inside a mouth-opening mask.

    Parameters
    ----------
    image_rgb : (H, W, 3) uint8 sRGB.
    mouth : (H, W) bool, the filled inner-lip polygon.

    Returns
    -------
    (H, W) uint8, 255 on teeth. Teeth are the bright, weakly saturated,
    not-red part of the opening: the cavity is dark, tongue and gums are red.
    Brightness is judged against the face around the mouth, so a dim photo
    still finds its (dim) teeth.
    """
    out = np.zeros(mouth.shape, np.uint8)
    if mouth.sum() < 12:
        return out
    hsv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2HSV)
    lab = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2LAB)
    ring = cv2.dilate(mouth.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    ring &= ~mouth
    face_l = float(np.median(lab[:, :, 0][ring])) if ring.any() else 128.0
    teeth = (mouth & (lab[:, :, 0] > 0.8 * face_l) & (hsv[:, :, 1] < 110)
             & (lab[:, :, 1].astype(np.int16) < 150))
    # Specks (a glint on closed lips, JPEG ringing) are not teeth: drop components under 2 % of the opening.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(teeth.astype(np.uint8), connectivity=8)
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= max(6, 0.02 * mouth.sum()))
    keep = keep[keep > 0]
    out[np.isin(labels, keep)] = 255
    return out


def _polygon(shape, points) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask > 0


def _write_png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    if not cv2.imwrite(tmp, mask):
        os.unlink(tmp)
        raise OSError(f"could not write {path}")
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default=str(Path.home() / ".cache" / "camseg" / "face_labels"))
    parser.add_argument("--scenes-only", action="store_true", help="only the person verdicts on scene photos")
    args = parser.parse_args(argv)
    try:
        import mediapipe as mp  # only in the face-mesh venv (see the module docstring)
    except ImportError as exc:
        raise SystemExit("camseg.train.face_labels needs mediapipe==0.10.21 (the legacy face mesh), kept in a "
                         "venv of its own: see this module's docstring (python3.11 -m venv ~/.cache/camseg/mp10-venv "
                         "&& ~/.cache/camseg/mp10-venv/bin/pip install mediapipe==0.10.21), and run this file with "
                         "that venv's python") from exc

    data, out = Path(args.data), Path(args.out)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=False,
                                           min_detection_confidence=0.5)
    selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    for name, split in () if args.scenes_only else PORTRAIT_SETS:
        folder = data / name / split / "images"
        if not folder.is_dir():
            continue
        found = with_teeth = 0
        files = sorted(folder.iterdir())
        for f in files:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            person = selfie.process(rgb).segmentation_mask
            if person is not None:
                _write_png(out / "person" / name / split / (f.stem + ".png"), (person > 0.5).astype(np.uint8) * 255)
            result = mesh.process(rgb)
            if not result.multi_face_landmarks:
                continue
            h, w = rgb.shape[:2]
            teeth = np.zeros((h, w), np.uint8)
            eyes = np.zeros((h, w), np.uint8)
            for face in result.multi_face_landmarks:
                pts = np.array([(p.x * w, p.y * h) for p in face.landmark], np.float32)
                teeth = np.maximum(teeth, teeth_in_mouth(rgb, _polygon((h, w), pts[list(INNER_LIPS)])))
                for eye in (LEFT_EYE, RIGHT_EYE):
                    eyes[_polygon((h, w), pts[list(eye)])] = 255
            _write_png(out / "teeth" / name / split / (f.stem + ".png"), teeth)
            _write_png(out / "eyes" / name / split / (f.stem + ".png"), eyes)
            found += 1
            with_teeth += bool(teeth.any())
        print(f"{name}/{split}: {len(files)} photos, face found in {found}, teeth visible in {with_teeth}",
              flush=True)
    # Scenes: only the selfie segmenter's verdict, to find the photos with nobody in them (the
    # loader makes those person negatives; where it sees someone the photo stays unlabelled).
    for name, folder in SCENE_FOLDERS:
        folder = data / folder
        if not folder.is_dir():
            continue
        files = sorted(folder.glob("*.jpg"))
        empty = 0
        for f in files:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            person = selfie.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).segmentation_mask
            if person is not None:
                mask = (person > 0.5).astype(np.uint8) * 255
                _write_png(out / "person" / name / (f.stem + ".png"), mask)
                empty += not mask.any()
        print(f"{name}: {len(files)} scenes, nobody found in {empty}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
