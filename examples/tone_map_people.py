"""Per-person semantic tone mapping on a real group photo.

Technique (``effects.tone_map_people``): the scene's large-scale luminance is compressed with
an edge-aware base layer (guided filter on log luminance, computed on a ~512-pixel grid and
brought back to full resolution with the fast guided filter, so gains follow the real edges:
no halo around people against the sky). Every person is then rendered individually: their
skin's luminance and chromaticity give a MAP estimate of their skin reflectance (Monk scale
prior) and of their illumination relative to the scene; the illumination is brought back to
the scene's, so a backlit face is lifted while a darker skin stays darker than a lighter one.
The sky is held below a ceiling so lifting the scene never blows it out.

Input: a COCO group photo with its real panoptic person instances and sky from
``/work/shared/data/coco_panoptic`` when that folder exists (read-only, never copied), else the
bundled ``camseg/samples/astronaut.jpg`` with a simple hand-made person mask. COCO has no skin
labels, so this example makes a crude skin matte (a YCrCb colour box inside each person,
Chai & Ngan 1999) -- a stand-in for ``Segmentation.skin`` -- labelled as such.

Writes ``tone_map_people.png`` (before | after | per-pixel gain in EV, blue -2 to red +2) to ``--out``
(default ``examples/out/``) and prints each person's gain.

    python examples/tone_map_people.py [--image 000000000110] [--out examples/out]
"""
import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camseg.io import linear_to_srgb, read_image  # noqa: E402
from camseg.train.data import labels_align  # noqa: E402  (numpy + OpenCV only, no torch)
from effects.tone_map import tone_map_people  # noqa: E402
from _script import out_folder, write_image  # noqa: E402

COCO = REPO.parent / "shared" / "data" / "coco_panoptic"


def load_scene(image_id, parser):
    """Linear image, person mattes, sky matte and a source label.

    An ``image_id`` the data set does not have, or whose label does not fit its photo, is refused
    through ``parser`` (exit status 2)."""
    if COCO.exists():
        meta = json.loads((COCO / "panoptic.json").read_text())
        ann = next((a for a in meta["annotations"] if a["file_name"] == f"{image_id}.png"), None)
        if ann is None or not (COCO / "images" / f"{image_id}.jpg").is_file():
            parser.error(f"argument --image: the COCO panoptic set ({COCO}) has no such photo as {image_id!r}; "
                         "give the id of one there, e.g. --image 000000000110 or 000000000529")
        image = read_image(COCO / "images" / f"{image_id}.jpg")
        rgb = np.asarray(Image.open(COCO / "panoptic" / ann["file_name"]).convert("RGB")).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        # Most label PNGs of the shared COCO snapshot belong to another photo (see
        # camseg/models/README.md): refuse a pair whose label edges do not sit on image edges.
        if not labels_align((linear_to_srgb(image) * 255).astype(np.uint8), ids):
            parser.error(f"argument --image: the panoptic label of COCO {image_id} does not match its photo (a "
                         "defect of the shared snapshot); use an aligned one, e.g. --image 000000000110 or 000000000529")
        persons = [(ids == s["id"]).astype(np.float32) for s in ann["segments_info"] if s["category_id"] == 1]
        sky = np.zeros(ids.shape, np.float32)
        for s in ann["segments_info"]:
            if s["category_id"] == 187:
                sky[ids == s["id"]] = 1.0
        # Panoptic masks are hard-edged; a 1-pixel blur gives the soft mattes camseg produces.
        soften = lambda m: np.clip(cv2.GaussianBlur(m, (0, 0), 1.0), 0, 1)
        return image, [soften(m) for m in persons], soften(sky), f"COCO {image_id} (panoptic masks)"
    image = read_image(REPO / "camseg" / "samples" / "astronaut.jpg")
    h, w = image.shape[:2]
    person = np.zeros((h, w), np.float32)
    cv2.ellipse(person, (int(w * 0.5), int(h * 0.62)), (int(w * 0.42), int(h * 0.55)), 0, 0, 360, 1.0, -1)
    return image, [cv2.GaussianBlur(person, (0, 0), 4)], None, "astronaut.jpg (hand-made mask)"


def crude_skin(image, persons):
    """HACK for the example only: YCrCb skin box inside the people (stand-in for a skin model)."""
    srgb8 = (linear_to_srgb(image) * 255 + 0.5).astype(np.uint8)
    ycc = cv2.cvtColor(srgb8, cv2.COLOR_RGB2YCrCb)
    box = (ycc[..., 1] >= 135) & (ycc[..., 1] <= 173) & (ycc[..., 2] >= 77) & (ycc[..., 2] <= 127) & (ycc[..., 0] > 30)
    skin = cv2.medianBlur(box.astype(np.uint8) * 255, 5).astype(np.float32) / 255
    union = np.clip(np.sum(persons, axis=0), 0, 1) if persons else np.zeros(image.shape[:2], np.float32)
    return np.clip(cv2.GaussianBlur(skin, (0, 0), 1.0), 0, 1) * union


def to8(img):
    return (linear_to_srgb(img) * 255 + 0.5).astype(np.uint8)


def gain_colours(ev):
    """sRGB uint8 colours (RGB, ...×3) of gains in EV: blue at -2, white at 0, red at +2, clipped.

    A diverging map, not a cyclic one: OpenCV's TWILIGHT_SHIFTED drew -2 EV and +2 EV in the same
    dark purple, so a face lifted the most could not be told from a sky held down the most."""
    t = np.clip(np.asarray(ev, np.float32) / 2, -1, 1)[..., None]
    white = np.float32([245, 245, 245])
    end = np.where(t < 0, np.float32([40, 90, 210]), np.float32([215, 50, 30]))
    return (white + np.abs(t) * (end - white) + 0.5).astype(np.uint8)


def label(img8, text):
    img8 = np.ascontiguousarray(img8)
    # A dark rim drawn at the text's own thickness around it (OpenCV 5 spaces letters by
    # thickness: a thick outline under thin text came out misaligned and garbled).
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (-2, 0), (2, 0), (0, -2), (0, 2)):
        cv2.putText(img8, text, (8 + dx, 22 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img8, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return img8


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="000000000110", help="COCO image id (when the data folder exists)")
    ap.add_argument("--out", type=Path, default=REPO / "examples" / "out")
    args = ap.parse_args()
    image, persons, sky, source = load_scene(args.image, ap)  # before --out is made: an unknown id leaves none
    out_folder(ap, args.out)

    skin = crude_skin(image, persons)
    out, gains = tone_map_people(image, persons, skin_masks=skin, sky_mask=sky, return_gains=True)

    print(f"{source}: {len(persons)} people")
    print(f"{'person':>6} {'area px':>8} {'skin Y':>7} {'est. light EV':>14} {'gain EV':>8} {'contrast':>9}")
    for g in gains:
        print(f"{g.index:>6} {g.weight:8.0f} {g.skin_luminance:7.3f} {g.illumination_ev:14.2f} {g.gain_ev:8.2f} {g.contrast:9.2f}")

    ratio = np.log2(np.maximum(out @ [0.2126, 0.7152, 0.0722], 1e-4) / np.maximum(image @ [0.2126, 0.7152, 0.0722], 1e-4))
    sheet = np.concatenate([label(to8(image), "input"), label(to8(out), "tone_map_people"),
                            label(gain_colours(ratio), "gain EV: blue -2, white 0, red +2")], axis=1)
    path = args.out / "tone_map_people.png"
    write_image(path, sheet[:, :, ::-1])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
