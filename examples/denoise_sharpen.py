"""Sky- and skin-aware denoising and sharpening, as a camera does it.

Technique: the noise of a RAW-derived JPEG depends on brightness (shot + read noise,
``sigma^2 = a I + b``, Foi et al. 2008). ``effects.estimate_noise`` fits that model from the
image's flattest blocks; ``effects.denoise`` then shrinks Laplacian-pyramid bands with a local
Wiener gain measured against that noise (Mihçak et al. 1999): hard at every scale in the sky,
hard on colour noise but light on luma on skin (pores stay), light elsewhere, with
edge-aware (guided-filter) transitions. ``effects.sharpen`` is an unsharp mask on lightness,
gated by detail and clamped to the local min/max (no halos), off in the sky, gentle on skin.

This script adds realistic ISO-3200-like noise (in linear light, then 8-bit sRGB JPEG q90) to
real photos and writes, for each, ``denoise_<name>_crops.png`` (2× crops: noisy | global
denoise | sky/skin-aware | + sharpen | original) and ``denoise_<name>_full.png`` (the whole
photo: noisy | sky/skin-aware + sharpen) to ``--out`` (default ``examples/out/``):

* an ADE20K photo with its real sky mask (when ``/work/shared/data`` is present),
* a FASSEG face with its real skin mask (same), else the bundled astronaut portrait with a
  rough colour-based skin mask made here (good enough to show the effect).

Run: ``python examples/denoise_sharpen.py [--out examples/out] [--iso 3200]``
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camseg.io import linear_to_srgb, srgb_to_linear  # noqa: E402
from effects import denoise, estimate_noise, sharpen  # noqa: E402
from _script import out_folder, positive, write_image  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = Path(__file__).resolve().parents[1] / "camseg" / "samples" / "astronaut.jpg"


def load_srgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return srgb_to_linear(img[..., ::-1].astype(np.float32) / 255.0)


def add_camera_noise(clean, iso, rng):
    """Shot + read noise in linear light, then an 8-bit sRGB JPEG round trip (quality 90)."""
    g = iso / 100.0
    a, b = 5e-5 * g, (2.5 * 5e-5 * g) ** 2
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * np.sqrt(a * clean + b)
    enc = np.round(linear_to_srgb(np.clip(noisy, 0, 1)) * 255).astype(np.uint8)
    _, buf = cv2.imencode(".jpg", enc[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return srgb_to_linear(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0)


def photo_with_sky():
    """An ADE20K photo with its real sky mask (the COCO panoptic copy pairs masks with the wrong photos)."""
    root = DATA / "ade_sky" / "val"
    if not root.exists():
        return None
    for p in sorted((root / "images").glob("*")):
        m = cv2.imread(str(root / "masks" / (p.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        if m is None or (m > 127).mean() < 0.3:
            continue
        img = load_srgb(p)
        if img.shape[:2] != m.shape:
            continue
        # Hard-edged label: soften by a pixel, as a segmenter's matte would be.
        return "ade_" + p.stem, img, cv2.GaussianBlur((m > 127).astype(np.float32), (0, 0), 1.0), None
    return None


def face_with_skin():
    root = DATA / "fasseg" / "test"
    if root.exists():
        for p in sorted((root / "images").glob("*")):
            lab = cv2.imread(str(root / "masks" / (p.stem + ".png")), cv2.IMREAD_GRAYSCALE)
            if lab is not None and np.isin(lab, (1, 4)).mean() > 0.15:
                return "fasseg_" + p.stem, load_srgb(p), None, np.isin(lab, (1, 4)).astype(np.float32)
    img = load_srgb(SAMPLE)
    # Rough skin mask by chromaticity (only for the demo): warm, mid-saturation pixels.
    s = linear_to_srgb(img)
    ycrcb = cv2.cvtColor((s * 255).astype(np.uint8), cv2.COLOR_RGB2YCrCb)
    skin = cv2.inRange(ycrcb, (60, 135, 85), (255, 175, 130)).astype(np.float32) / 255.0
    return "astronaut", img, None, cv2.GaussianBlur(skin, (0, 0), 2.0)


def crop_around(mask, shape, size=200):
    h, w = shape
    if mask is None:
        return slice(h // 2 - size // 2, h // 2 + size // 2), slice(w // 2 - size // 2, w // 2 + size // 2)
    # Centre the crop on the mask's boundary area so both regions show.
    edge = cv2.morphologyEx((mask > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8))
    ys, xs = np.nonzero(edge)
    if ys.size == 0:
        ys, xs = np.nonzero(mask > 0.5)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    y0 = int(np.clip(cy - size // 2, 0, max(0, h - size)))
    x0 = int(np.clip(cx - size // 2, 0, max(0, w - size)))
    return slice(y0, y0 + size), slice(x0, x0 + size)


def to_u8(img):
    return np.round(linear_to_srgb(img) * 255).astype(np.uint8)[..., ::-1]


def put_label(img, text):
    """``img`` (uint8 BGR) with ``text`` at its top left, white on a dark rim so it reads on a
    white sky as on a face."""
    img = np.ascontiguousarray(img)
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (-2, 0), (2, 0), (0, -2), (0, 2)):
        cv2.putText(img, text, (6 + dx, 22 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(img, text, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return img


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    ap.add_argument("--iso", type=positive(float), default=3200)
    args = ap.parse_args(argv)
    out_folder(ap, args.out)
    rng = np.random.default_rng(0)
    for scene in (photo_with_sky(), face_with_skin()):
        if scene is None:
            continue
        name, clean, sky, skin = scene
        noisy = add_camera_noise(clean, args.iso, rng)
        prof = estimate_noise(noisy)
        glob = denoise(noisy)
        aware = denoise(noisy, sky_mask=sky, skin_mask=skin)
        final = sharpen(aware, sky_mask=sky, skin_mask=skin)
        ys, xs = crop_around(sky if sky is not None else skin, clean.shape[:2])
        tiles = [noisy, glob, aware, final, clean]
        labels = ["noisy", "global", "sky/skin-aware", "+ sharpen", "original"]
        row = []
        for t, lab in zip(tiles, labels):
            c = cv2.resize(to_u8(t[ys, xs]), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            row.append(put_label(c, lab))
        write_image(args.out / f"denoise_{name}_crops.png", np.concatenate(row, axis=1))
        write_image(args.out / f"denoise_{name}_full.png",
                    np.concatenate([put_label(to_u8(noisy), f"noisy (ISO {args.iso:g})"),
                                    put_label(to_u8(final), "sky/skin-aware + sharpen")], axis=1))
        print(f"{name}: noise at luma 0.1/0.5: {prof.sigma(np.array([0.1, 0.5]))[:, 0].round(4)} -> "
              f"{args.out}/denoise_{name}_crops.png, denoise_{name}_full.png")


if __name__ == "__main__":
    main()
