"""Benchmark: the mattes on black-and-white photos, and the runtime's grey-photo offsets.

The model learnt skin mostly from colour. On a grey photo its mattes are shifted: the skin
matte under-confident, the person matte over-confident. ``SegmenterOptions.grey_logit_offsets``
adds a logit offset per category when the photo is grey (and the skin matte then fades where a
region is darker than any labelled skin, ``camseg.segmenter.SKIN_LUMA_FLOOR``, in every
column). This script chooses the offsets and measures them. It turns the held-out photos grey (``cv2.COLOR_RGB2GRAY``, repeated to three
channels) and prints pooled IoU at the matte's 0.5 cut for each category, for a grid of
offsets, on the even-numbered photos (where the offset is chosen) and on the odd-numbered
ones (which no choice has seen). The colour photos' IoU is printed beside them.

Sets (``camseg.train.data.load_all(split="val")``): skin on FASSEG test, sky on ADE20K val,
hair on CelebAMask val, and person on the photos with person instances (COCO and every
sixth person_binary photo). The last table gives skin false positives: the share of the
pixels of grey ADE20K val scenes where the skin matte is over 0.5, and the photos where it
covers more than 1 % of the frame.

Usage::

    python benchmarks/grey_photos.py [--data ../shared/data] [--model PATH] [--limit N]
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camseg.segmenter import DEFAULT_MODEL, Segmenter, SegmenterOptions  # noqa: E402
from camseg.train.data import HAIR, SKIN, SKY, load_all  # noqa: E402

GRID = (-0.9, -0.6, -0.3, 0.0, 0.4, 0.8, 1.2)


def grey(image: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 sRGB → the same photo in black and white, three equal channels."""
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def pooled_iou(segmenter: Segmenter, photos: list, name: str) -> tuple:
    """(even photos, odd photos) pooled IoU of the ``name`` matte > 0.5 with the labels."""
    inter, union = np.zeros(2), np.zeros(2)
    for k, (image, truth) in enumerate(photos):
        seg = segmenter.segment(image, categories=None if name == "person" else {name})
        found = getattr(seg, name) > 0.5
        inter[k % 2] += (found & truth).sum()
        union[k % 2] += (found | truth).sum()
    return tuple(inter / np.maximum(union, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos of each set (a quick check)")
    args = parser.parse_args(argv)
    if not (args.data / "coco_panoptic").is_dir():
        parser.error(f"--data {args.data} has no coco_panoptic/; pass the shared data folder (../shared/data)")
    val = load_all(args.data, split="val")
    labelled = {
        "skin": [(r.image, r.scene[SKIN] > 127) for r in val if r.source == "fasseg" and SKIN in r.scene],
        "sky": [(r.image, r.scene[SKY] > 127) for r in val if r.source == "ade_sky" and SKY in r.scene],
        "hair": [(r.image, r.scene[HAIR] > 127) for r in val if r.source == "celeb_hair" and HAIR in r.scene],
        "person": [(r.image, np.any([m > 127 for m in r.instances], axis=0)) for r in val
                   if r.instances],
    }
    if args.limit:
        labelled = {name: photos[:args.limit] for name, photos in labelled.items()}
    shipped = dict(SegmenterOptions().grey_logit_offsets)
    plain = Segmenter(args.model, options=SegmenterOptions(grey_logit_offsets=()))
    print(f"model {args.model.name}; shipped grey offsets {shipped}\n")
    print(f"{'category':9s} {'photos':>6s} {'colour':>13s}   grey at offset (even / odd photos)")
    for name, photos in labelled.items():
        colour = pooled_iou(plain, photos, name)
        cells = []
        for offset in GRID:
            s = Segmenter(args.model, options=SegmenterOptions(grey_logit_offsets=((name, offset),)))
            even, odd = pooled_iou(s, [(grey(i), t) for i, t in photos], name)
            mark = "*" if abs(offset - shipped.get(name, 0.0)) < 1e-6 else " "
            cells.append(f"{offset:+.1f}{mark} {even:.3f}/{odd:.3f}")
        print(f"{name:9s} {len(photos):6d} {colour[0]:.3f}/{colour[1]:.3f}   " + "  ".join(cells), flush=True)
    print("(* the shipped offset; 0.0 is the model's own calibration for colour photos)\n")

    scenes = [grey(r.image) for r in val if r.source == "ade_sky"][:args.limit or None]
    print(f"skin false positives on {len(scenes)} grey ADE20K val scenes")
    print(f"{'offset':>7s} {'share > 0.5':>12s} {'photos > 1 %':>13s}")
    for offset in sorted({0.0, shipped.get("skin", 0.0)}):
        s = Segmenter(args.model, options=SegmenterOptions(grey_logit_offsets=(("skin", offset),)))
        shares = [float((s.segment(x, categories={"skin"}).skin > 0.5).mean()) for x in scenes]
        print(f"{offset:+7.2f} {100 * np.mean(shares):11.2f}% {sum(x > 0.01 for x in shares):13d}")


if __name__ == "__main__":
    main()
