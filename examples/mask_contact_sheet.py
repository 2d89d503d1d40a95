"""A contact sheet of the segmentation masks over a photo.

Technique: one ``Segmenter.segment`` call gives soft mattes at full resolution
for the scene-level categories (sky, hair, skin, teeth, glasses) and one matte
per person (instance-aware). Each tile shows the photo dimmed with one matte
lit in colour, so the matte's softness and its edges against hair and sky are
visible; the first tile overlays all of them (persons in distinct colours).

Uses the bundled portrait unless ``--input`` names another photo (a group photo
shows the per-person instance mattes best).

Writes ``mask_contact_sheet.png`` to ``--out`` (default ``examples/out/``).

    python examples/mask_contact_sheet.py [--input PHOTO]
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camseg.batch import mask_overlay  # noqa: E402
from camseg.io import linear_to_srgb, to_srgb_primaries  # noqa: E402
from camseg.segmenter import Segmenter  # noqa: E402
from _script import out_folder, photo_file, positive, user_photo, write_image  # noqa: E402


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--input", type=photo_file, default=REPO / "camseg" / "samples" / "astronaut.jpg")
parser.add_argument("--out", type=Path, default=REPO / "examples" / "out")
parser.add_argument("--width", type=positive(int), default=320)
args = parser.parse_args()
source = args.input
photo = user_photo(parser, source)
out_folder(parser, args.out)

with Segmenter() as segmenter:
    # The Photo, not its pixels: a wide-gamut photo (Display P3) is brought to the sRGB
    # primaries the model learnt before it looks.
    seg = segmenter.segment(photo)

# The sheet is an untagged PNG, which viewers show as sRGB: the photo in sRGB's primaries.
pixels = to_srgb_primaries(photo.pixels, photo.icc_profile)
display = linear_to_srgb(pixels) * 255.0


def tile(img, text):
    h = int(round(img.shape[0] * args.width / img.shape[1]))
    img = np.ascontiguousarray(cv2.resize(img, (args.width, h), interpolation=cv2.INTER_AREA))
    # A dark rim drawn at the text's own thickness around it (OpenCV 5 spaces letters by
    # thickness: a thick outline under thin text came out misaligned and garbled).
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (-2, 0), (2, 0), (0, -2), (0, 2)):
        cv2.putText(img, text, (6 + dx, 20 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def lit(matte, colour):
    m = np.asarray(matte, np.float32)[:, :, None]
    # The tint strong enough to find a small or faint matte (at 0.2 of the colour a person
    # matte on a red flag, or a sky matte at 0.8 on a grey backdrop, could not be seen).
    out = display * 0.3 + m * (0.35 * display + 0.5 * np.asarray(colour, np.float32))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


tiles = [tile((display + 0.5).astype(np.uint8), source.name), tile(mask_overlay(pixels, seg), "all masks")]
for name, colour in (("sky", (70, 150, 255)), ("hair", (255, 160, 60)), ("skin", (255, 120, 120)),
                     ("teeth", (255, 255, 255)), ("glasses", (0, 255, 255))):
    matte = getattr(seg, name)
    tiles.append(tile(lit(matte, colour), f"{name} (max {float(matte.max()):.2f})"))
for i, matte in enumerate(seg.persons):
    tiles.append(tile(lit(matte, (255, 60, 60)), f"person {i}"))

cols = 4
blank = np.zeros_like(tiles[0])
tiles += [blank] * (-len(tiles) % cols)
sheet = np.concatenate([np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)], axis=0)
write_image(args.out / "mask_contact_sheet.png", sheet[:, :, ::-1])
print(f"{len(seg.persons)} person(s); wrote {args.out / 'mask_contact_sheet.png'}")
