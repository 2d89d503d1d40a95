"""Benchmark: what each Photographic Style does to lips, eyes and skin of real faces.

A style protects skin (``StyleParams.skin_protection``); the skin matte leaves lips and eyes
out, which ``camseg.develop`` fills back in for the style (``skin_with_enclosed_gaps``):
without that, vibrant painted lips lipstick red. On the held-out FASSEG test faces, whose
labels separate skin (classes 1 and 4), eyes (3) and lips (5), each style is compared with
the standard one on the same photo: the mean change of CIELAB chroma C*ab (8-bit sRGB, D65)
over the lips, the eyes, the skin and everything else. ``--raw-skin`` runs the styles on the
plain skin matte instead (the behaviour before the gaps were filled), for comparison.

``--fullbody`` measures skin beyond faces instead: on the 49 ``fullbody_skin`` photos (necks,
arms, legs; labels 0/255), the mean CIELAB ΔE*ab (8-bit sRGB, D65) of each style against the
standard one over the labelled skin and over the pixels more than 5 px from it.
``--probable-skin`` runs the styles on the model's skin probability as it is, before
``camseg.pipeline.STYLE_SKIN_MIDPOINT`` made skin rated 0.4–0.8 count as skin (the behaviour
before that change), for comparison.

Usage::

    python benchmarks/style_lips.py --data ../shared/data [--styles vibrant warm] [--raw-skin]
    python benchmarks/style_lips.py --data ../shared/data --fullbody [--probable-skin]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import camseg  # noqa: E402
import camseg.pipeline as pipeline  # noqa: E402
from camseg.io import linear_to_srgb, read_photo  # noqa: E402

REGIONS = {"lips": (5,), "eyes": (3,), "skin": (1, 4)}


def chroma(linear: np.ndarray) -> np.ndarray:
    """CIELAB C*ab (H×W float32) of linear sRGB pixels, through 8-bit codes as a viewer sees them."""
    codes = (np.clip(linear_to_srgb(np.clip(linear, 0.0, 1.0)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    lab = cv2.cvtColor(codes, cv2.COLOR_RGB2LAB).astype(np.float32)
    return np.hypot(lab[:, :, 1] - 128.0, lab[:, :, 2] - 128.0)


def lab(linear: np.ndarray) -> np.ndarray:
    """CIELAB (H×W×3 float32, L* in [0, 100]) of linear sRGB pixels, through 8-bit codes as a viewer sees them."""
    codes = (np.clip(linear_to_srgb(np.clip(linear, 0.0, 1.0)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(codes.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def fullbody(args) -> int:
    """Mean ΔE*ab of each style against the standard one on the labelled skin of the
    fullbody_skin photos, and away from it."""
    images = sorted((Path(args.data) / "fullbody_skin" / "train" / "images").glob("*.jpg"))
    if args.limit:
        images = images[:args.limit]
    if not images:
        raise SystemExit(f"no fullbody_skin photos under {args.data!r}; pass --data ../shared/data")
    changes = {s: {"skin": [], "away from skin": []} for s in args.styles}
    for path in images:
        labels = cv2.imread(str(path.parent.parent / "masks" / (path.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        photo = read_photo(path)
        if labels is None or labels.shape != photo.pixels.shape[:2]:
            continue
        skin = labels > 127
        away = cv2.dilate(skin.astype(np.uint8), np.ones((11, 11), np.uint8)) == 0
        seg = camseg.segment(photo)
        base = lab(camseg.develop(photo, style="standard", segmentation=seg).pixels)
        for style in args.styles:
            de = np.linalg.norm(lab(camseg.develop(photo, style=style, segmentation=seg).pixels) - base, axis=2)
            for region, where in (("skin", skin), ("away from skin", away)):
                if where.sum() >= 20:
                    changes[style][region].append(float(de[where].mean()))
    n = len(next(iter(changes.values()))["skin"])
    print(f"{n} fullbody_skin photos; skin matte for the style: "
          f"{'the model probability as it is' if args.probable_skin else 'camseg.pipeline.style_skin_matte'}")
    print("mean CIELAB ΔE*ab against the standard style (8-bit sRGB)")
    print(f"{'style':<14}{'skin':>10}{'away from skin':>16}")
    for style in args.styles:
        print(f"{style:<14}" + "".join(f"{np.mean(v):>{w}.2f}" for v, w in zip(changes[style].values(), (10, 16))))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--styles", nargs="+", default=[s for s in pipeline.available_styles() if s != "standard"])
    ap.add_argument("--raw-skin", action="store_true", help="style with the plain skin matte (lips left out)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos")
    ap.add_argument("--fullbody", action="store_true", help="ΔE on the skin of the fullbody_skin photos")
    ap.add_argument("--probable-skin", action="store_true",
                    help="style with the model's skin probability as it is (before STYLE_SKIN_MIDPOINT)")
    args = ap.parse_args(argv)
    if args.raw_skin:
        pipeline.skin_with_enclosed_gaps = lambda skin: skin
    if args.probable_skin:
        pipeline.style_skin_matte = lambda skin: pipeline.skin_with_enclosed_gaps(skin)
    if args.fullbody:
        return fullbody(args)
    images = sorted((Path(args.data) / "fasseg" / "test" / "images").glob("*.jpg"))
    if args.limit:
        images = images[:args.limit]
    if not images:
        raise SystemExit(f"no FASSEG test photos under {args.data!r}; pass --data ../shared/data")
    changes = {s: {r: [] for r in (*REGIONS, "rest")} for s in args.styles}
    measured = 0
    for path in images:
        labels = cv2.imread(str(path.parent.parent / "masks" / (path.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        photo = read_photo(path)
        if labels is None or labels.shape != photo.pixels.shape[:2]:
            continue
        measured += 1
        regions = {r: np.isin(labels, ids) for r, ids in REGIONS.items()}
        regions["rest"] = ~np.logical_or.reduce(list(regions.values()))
        seg = camseg.segment(photo)
        base = chroma(camseg.develop(photo, style="standard", segmentation=seg).pixels)
        for style in args.styles:
            c = chroma(camseg.develop(photo, style=style, segmentation=seg).pixels)
            for r, where in regions.items():
                if where.sum() >= 20:
                    changes[style][r].append(float((c - base)[where].mean()))
    print(f"{measured} FASSEG test faces ({len(images) - measured} without fitting labels); skin matte for the style: "
          f"{'plain (lips left out)' if args.raw_skin else 'with enclosed gaps filled'}")
    print("mean change of CIELAB chroma against the standard style (photos with the region labelled)")
    print(f"{'style':<14}" + "".join(f"{r:>14}" for r in (*REGIONS, "rest")))
    for style in args.styles:
        print(f"{style:<14}" + "".join(f"{np.mean(v):>+11.2f} ({len(v):>2})" if v else f"{'-':>14}"
                                        for v in changes[style].values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
