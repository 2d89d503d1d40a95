"""Portrait lens blur on a real photo, next to the naive Gaussian-and-paste.

Technique (``effects.portrait_blur``): the person matte is refined against the photo (guided
filter, plus a colour-line alpha in a band around the edge that resolves hair strands); the
background behind the person is removed and filled from its surroundings (pull-push) so no
subject colour can be blurred into it; the filled background is blurred in linear light with
a disk-shaped (lens aperture) kernel whose radius is set by the f-number -- each blur radius
computed on the pyramid level where the kernel is at most 11×11, so 12 MP stays fast; small
clipped highlights get their energy back and bloom into bright discs; the photo's own noise
is added back to the blurred background; and the person is composited with their edge
colours separated from the old background (multi-level blur-fusion foreground estimation), so
hair comes through as soft, semi-transparent strands with no halo.

The naive baseline blurs the whole frame with a Gaussian and pastes the person back with the
mask: a coloured halo where the person was blurred into the background, grey mush instead of
bokeh discs, and a cut-out edge.

Input: a photo with its person mask from ``/work/shared/data/person_binary`` when that folder
exists (read-only, never copied; the masks there are machine-made and coarse, which is a good
test of the refinement); with ``--input PHOTO``, or without that folder the bundled
``camseg/samples/astronaut.jpg``, the photo with its subject as ``camseg.develop`` makes it
from ``camseg.segment``'s person mattes.

Writes ``portrait_blur.png`` (input | naive | camseg, with 3× close-ups of the hair below) to
``--out`` (default ``examples/out/``).

    python examples/portrait_blur.py [--image 107 | --input PHOTO] [--f-number 1.4] [--out examples/out]
"""
import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import camseg  # noqa: E402
from camseg.io import linear_to_srgb, read_image, to_srgb_primaries  # noqa: E402
from camseg.pipeline import SUBJECT_STEEPNESS, decisive_alpha, portrait_subject, subject_midpoint  # noqa: E402
from effects import PortraitBlurParams, portrait_blur  # noqa: E402
from _script import out_folder, photo_file, positive, user_photo, write_image  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "person_binary" / "train"


def load(args, parser):
    """Linear sRGB photo, person matte, skin matte (None where the source has none), and a
    label saying where they came from.

    An ``--image`` id the data set does not have, or a ``--input`` photo camseg cannot read
    or finds nobody in, is refused through ``parser`` (exit status 2)."""
    if args.input is None and DATA.exists():
        image_id = args.image
        if not (DATA / "images" / f"{image_id}.jpg").is_file() or not (DATA / "masks" / f"{image_id}.png").is_file():
            parser.error(f"argument --image: person_binary has no such photo and mask as {image_id!r} ({DATA}/images/"
                         f"{image_id}.jpg, masks/{image_id}.png); give the id of one there, e.g. --image 107")
        image = read_image(DATA / "images" / f"{image_id}.jpg")
        mask = cv2.imread(str(DATA / "masks" / f"{image_id}.png"), cv2.IMREAD_GRAYSCALE)
        return image, (mask / 255.0).astype(np.float32), None, f"person_binary {image_id} (machine-made mask)"
    path = args.input if args.input is not None else REPO / "camseg" / "samples" / "astronaut.jpg"
    photo = user_photo(parser, path)
    seg = camseg.segment(photo)  # (a wide-gamut photo is brought to sRGB's primaries for the model)
    if not seg.persons:
        parser.error(f"argument --input: camseg.segment finds nobody in {str(path)!r}; give a photo of a person")
    # The subject as develop() makes it: the people in focus, their mattes made decisive.
    summed = portrait_subject(seg.persons)
    mask = decisive_alpha(summed, SUBJECT_STEEPNESS, subject_midpoint(summed))
    return to_srgb_primaries(photo.pixels, photo.icc_profile), mask, seg.skin, f"{path.name} (camseg.segment)"


def naive(image, mask, params):
    """Gaussian over the whole frame (σ = r/2), person pasted back with the mask."""
    r = params.blur_scale / params.f_number * np.hypot(*image.shape[:2])
    a = mask[..., None]
    return a * image + (1 - a) * cv2.GaussianBlur(image, (0, 0), r / 2)


def to_bgr8(linear):
    return (linear_to_srgb(linear)[..., ::-1] * 255 + 0.5).astype(np.uint8)


def label(img, text):
    out = img.copy()
    # A dark rim drawn at the text's own thickness around it (OpenCV 5 spaces letters by
    # thickness: a thick outline under thin text came out misaligned and garbled).
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (-2, 0), (2, 0), (0, -2), (0, 2)):
        cv2.putText(out, text, (8 + dx, 22 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main():
    ap = argparse.ArgumentParser(description="Portrait lens blur before/after.")
    ap.add_argument("--image", default="107", help="person_binary image id (when the shared data exists)")
    ap.add_argument("--input", type=photo_file, help="a photo of your own, masked by camseg.segment")
    ap.add_argument("--f-number", type=positive(float), default=1.4)
    ap.add_argument("--out", default=str(REPO / "examples" / "out"))
    args = ap.parse_args()
    image, mask, _, source = load(args, ap)  # before --out is made: an unknown id leaves none
    out_dir = out_folder(ap, args.out)

    params = PortraitBlurParams(f_number=args.f_number)
    t = time.perf_counter()
    ours = portrait_blur(image, mask, params=params)
    dt = time.perf_counter() - t
    base = naive(image, mask, params)

    plain = [to_bgr8(image), to_bgr8(base), to_bgr8(ours)]
    names = ["input", "naive Gaussian + paste", f"camseg portrait_blur f/{args.f_number:g}"]
    top = np.hstack([label(p, n) for p, n in zip(plain, names)])
    # 2x crops around the top of the person (hair), where halos and cut-out edges show.
    ys, xs = np.nonzero(mask > 0.5)
    h, w = mask.shape
    ch, cw = min(h, max(64, h // 3)), min(w, max(64, w // 3))
    cy = int(np.clip(ys.min() + ch // 3, ch // 2, h - ch // 2)) if ys.size else h // 2
    cx = int(np.clip(xs[ys == ys.min()].mean() if ys.size else w // 2, cw // 2, w - cw // 2))
    box = (slice(cy - ch // 2, cy - ch // 2 + ch), slice(cx - cw // 2, cx - cw // 2 + cw))
    crops = np.hstack([cv2.resize(p[box], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) for p in plain])
    crops = cv2.resize(crops, (top.shape[1], int(crops.shape[0] * top.shape[1] / crops.shape[1])), interpolation=cv2.INTER_AREA)
    path = write_image(out_dir / "portrait_blur.png", np.vstack([top, crops]))
    print(f"{source}: {w}x{h}, portrait_blur {dt * 1000:.0f} ms -> {path}")


if __name__ == "__main__":
    main()
