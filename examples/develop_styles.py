"""Every Photographic Style and every portrait effect on one photo, as a contact sheet.

Technique: segmentation is the expensive, shared part of the pipeline, so it is
computed once (``develop(..., return_details=True).segmentation``) and passed to
every later ``develop(..., segmentation=...)`` call; only the stages rerun.
Styles change contrast and colour while the skin matte keeps faces natural;
portrait effects use the person matte (blur: a lens-shaped defocus of the
background; lighting looks: the background darkened around the subject).

Writes ``develop_styles.png`` (one tile per style, then one per portrait effect)
to ``--out`` (default ``examples/out/``).

    python examples/develop_styles.py [--input PHOTO] [--width 384]
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camseg.pipeline import available_portrait_effects, available_styles, develop  # noqa: E402
from _script import display_codes, out_folder, photo_file, positive, user_photo, write_image  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--input", type=photo_file, default=REPO / "camseg" / "samples" / "astronaut.jpg")
parser.add_argument("--out", type=Path, default=REPO / "examples" / "out")
parser.add_argument("--width", type=positive(int), default=384, help="tile width in the contact sheet")
args = parser.parse_args()
photo = user_photo(parser, args.input)
out_folder(parser, args.out)

first = develop(photo, return_details=True)  # segments once (all categories)
seg = first.segmentation


def tile(pixels, text):
    img = display_codes(pixels, photo.icc_profile)  # (the sheet is an untagged PNG)
    h = int(round(img.shape[0] * args.width / img.shape[1]))
    img = np.ascontiguousarray(cv2.resize(img, (args.width, h), interpolation=cv2.INTER_AREA))
    # A dark rim drawn at the text's own thickness around it (OpenCV 5 spaces letters by
    # thickness: a thick outline under thin text came out misaligned and garbled).
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (-2, 0), (2, 0), (0, -2), (0, 2)):
        cv2.putText(img, text, (8 + dx, 24 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return img


tiles = [tile(photo.pixels, "original")]
for style in available_styles():
    out = develop(photo, style=style, segmentation=seg)
    tiles.append(tile(out.pixels, f"style={style}"))
for effect in available_portrait_effects():
    res = develop(photo, portrait=effect, segmentation=seg, return_details=True)
    stage = res.report.stage("portrait")
    tiles.append(tile(res.image.pixels, f"portrait={effect}" + ("" if stage.status == "applied"
                                                                 else " (not applied: no person)")))
    print(f"{effect}: {res.report.stage('portrait').status} {res.report.stage('portrait').detail}")

cols = 4
blank = np.zeros_like(tiles[0])
tiles += [blank] * (-len(tiles) % cols)
rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)]
sheet = np.concatenate(rows, axis=0)
write_image(args.out / "develop_styles.png", sheet[:, :, ::-1])
print(f"wrote {args.out / 'develop_styles.png'}")
