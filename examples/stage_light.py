"""Portrait Lighting looks on a real photo: stage light (colour and mono), high-key mono,
studio and contour.

Technique (``effects.portrait_lighting``): the person matte is refined against the photo
(guided filter plus a colour-line alpha in a band around the edge, which resolves hair), and
at soft edges the person's colour is separated from the old background (multi-level
blur-fusion foreground estimation, Germer et al. 2020). Only then is the person put on the
new background -- black for stage light, white for high-key -- so hair stays
semi-transparent without a fringe of the old wall. Stage light adds a spotlight falling off
down the body; mono looks use BT.709 luminance with a log-exposure contrast slope; the face
gets a soft key light through the skin matte; contour light shades the side turned away from
the light using a relief built from the matte.

Input: as the portrait blur example's: a photo with its person mask from
``/work/shared/data/person_binary`` when that folder exists (read-only, never copied), which
has no skin labels, so this example makes a crude skin matte for it (a YCrCb colour box inside
the person, Chai & Ngan 1999); with ``--input PHOTO``, or without that folder the bundled
``camseg/samples/astronaut.jpg``, the photo with ``camseg.segment``'s subject and skin mattes.

Writes ``stage_light.png`` (input and the five looks, with labelled close-ups of the hair edge) to
``--out`` (default ``examples/out/``).

    python examples/stage_light.py [--image 126 | --input PHOTO] [--out examples/out]
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camseg.io import linear_to_srgb  # noqa: E402
from effects import contour_light, high_key_mono, stage_light, studio_light  # noqa: E402

from portrait_blur import label, load, to_bgr8  # noqa: E402  (same photos, masks and sheet helpers as the blur example)
from _script import out_folder, photo_file, write_image  # noqa: E402


def crude_skin(image, mask):
    """Stand-in skin matte: Chai & Ngan (1999) Cr/Cb box, inside the person, softened."""
    ycrcb = cv2.cvtColor((linear_to_srgb(image) * 255).astype(np.uint8), cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[..., 1].astype(int), ycrcb[..., 2].astype(int)
    skin = ((cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)).astype(np.float32) * (mask > 0.5)
    skin = cv2.morphologyEx(skin, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    return np.clip(cv2.GaussianBlur(skin, (0, 0), 2), 0, 1).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description="Portrait Lighting looks before/after.")
    ap.add_argument("--image", default="126", help="person_binary image id (when the shared data exists)")
    ap.add_argument("--input", type=photo_file, help="a photo of your own, masked by camseg.segment")
    ap.add_argument("--out", default=str(REPO / "examples" / "out"))
    args = ap.parse_args()
    image, mask, skin, source = load(args, ap)  # before --out is made: an unknown id leaves none
    out_dir = out_folder(ap, args.out)

    if skin is None:
        skin = crude_skin(image, mask)
    looks = {
        "input": image,
        "stage light": stage_light(image, mask, skin_mask=skin),
        "stage light mono": stage_light(image, mask, mono=True, skin_mask=skin),
        "high-key mono": high_key_mono(image, mask, skin_mask=skin),
        "studio": studio_light(image, mask, skin_mask=skin),
        "contour": contour_light(image, mask, skin_mask=skin),
    }
    plain = {k: to_bgr8(v) for k, v in looks.items()}
    grid = [label(v, k) for k, v in plain.items()]
    rows = [np.hstack(grid[:3]), np.hstack(grid[3:])]
    # 2x crops of the head edge (hair) on the input and the black / white backgrounds.
    ys, xs = np.nonzero(mask > 0.5)
    h, w = mask.shape
    ch, cw = min(h, max(64, h // 3)), min(w, max(64, w // 3))
    cy = int(np.clip(ys.min() + ch // 3, ch // 2, h - ch // 2)) if ys.size else h // 2
    cx = int(np.clip(xs[ys == ys.min()].mean() if ys.size else w // 2, cw // 2, w - cw // 2))
    box = (slice(cy - ch // 2, cy - ch // 2 + ch), slice(cx - cw // 2, cx - cw // 2 + cw))
    crops = np.hstack([cv2.resize(plain[k][box], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
                       for k in ("input", "stage light", "high-key mono")])
    width = rows[0].shape[1]
    crops = cv2.resize(crops, (width, int(crops.shape[0] * width / crops.shape[1])), interpolation=cv2.INTER_AREA)
    # Labelled: the row above them is high-key mono | studio | contour, not these three.
    third = width // 3
    crops = np.hstack([label(crops[:, i * third:(i + 1) * third if i < 2 else width], k)
                       for i, k in enumerate(("input (crop)", "stage light (crop)", "high-key mono (crop)"))])
    path = write_image(out_dir / "stage_light.png", np.vstack(rows + [crops]))
    print(f"{source}: {w}x{h} -> {path}")


if __name__ == "__main__":
    main()
