"""Develop one photo with the whole camera pipeline: ``camseg.develop``.

Technique: the photo is segmented once (sky, skin, hair, persons, ...) and the
mattes steer every stage — strong denoising in the sky, gentle on skin, detail
sharpened everywhere except sky and (mostly) skin, each person's exposure set
from their own skin tone, a Photographic Style that protects skin, and an
optional portrait effect (lens blur of the background). EXIF and the colour
profile of the input are kept in the output.

Writes to ``--out`` (default ``examples/out/``):
``developed_<name>.jpg`` (the result, same metadata as the input) and
``develop_photo_comparison.png`` (before | after, each at most ``--width`` pixels wide).

    python examples/develop_photo.py [--input PHOTO] [--style vibrant] [--portrait blur] [--width 1024]
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
parser.add_argument("--style", default="standard", choices=available_styles())
parser.add_argument("--portrait", default="blur", choices=[*available_portrait_effects(), "none"])
parser.add_argument("--width", type=positive(int), default=1024,
                    help="largest width of each half of the comparison (the developed JPEG keeps its full size)")
args = parser.parse_args()
photo = user_photo(parser, args.input)
out_folder(parser, args.out)

result = develop(photo, style=args.style, portrait=None if args.portrait == "none" else args.portrait,
                 return_details=True)
print(result.report)
try:
    out_path = result.image.save(args.out / f"developed_{args.input.stem}.jpg")
except OSError as exc:
    raise SystemExit(f"cannot write {args.out / f'developed_{args.input.stem}.jpg'}: {exc.strerror or exc}") from None


def label(img, text):
    # A camera's 24 MP photo side by side at full size is a 12000-pixel-wide PNG whose labels
    # vanish when it is viewed whole: each half is brought down to --width.
    if img.shape[1] > args.width:
        img = cv2.resize(img, (args.width, int(round(img.shape[0] * args.width / img.shape[1]))),
                         interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(img)
    # A dark rim drawn at the text's own thickness around it (OpenCV 5 spaces letters by
    # thickness: a thick outline under thinner text came out misaligned and garbled).
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (-2, 0), (2, 0), (0, -2), (0, 2)):
        cv2.putText(img, text, (10 + dx, 30 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(img, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return img


# The comparison is an untagged PNG: both sides in sRGB's primaries (the developed JPEG keeps its profile).
before = display_codes(photo.pixels, photo.icc_profile)
after = display_codes(result.image.pixels, result.image.icc_profile)
portrait = result.report.stage("portrait")
note = args.portrait if portrait.status == "applied" else f"{args.portrait}: {portrait.status}"
sheet = np.concatenate([label(before, "original"), label(after, f"style={args.style}, portrait={note}")], axis=1)
write_image(args.out / "develop_photo_comparison.png", sheet[:, :, ::-1])
print(f"wrote {out_path} and {args.out / 'develop_photo_comparison.png'}")
