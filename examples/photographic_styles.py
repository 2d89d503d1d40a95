"""Photographic Styles on a real group photo, side by side.

Technique (``effects.apply_style``): each style is plain data (tone, warmth, saturation, sky
saturation, skin protection). Warmth is a luminance-preserving white-balance shift; tone an
S-curve on Oklab lightness with black, white and 18 % grey fixed; saturation a chroma scale in
Oklab (hue kept). The adjusted colour is blended back toward the original where the skin
matte is (teeth fully), the sky may take extra chroma, and colours that would leave the RGB
cube are pulled back toward the original instead of being clipped.

The photo is first tone-mapped per person (``effects.tone_map_people``), as in the develop()
pipeline (tone -> style). Input and masks as in ``examples/tone_map_people.py``: a COCO group
photo with its real panoptic person and sky masks when ``/work/shared/data/coco_panoptic``
exists (read-only), else the bundled astronaut; the skin matte is a crude YCrCb colour box
inside the people (example-only stand-in for ``Segmentation.skin``).

Writes ``photographic_styles.png`` (input, tone-mapped, then one tile per preset) to ``--out``
(default ``examples/out/``).

    python examples/photographic_styles.py [--image 000000000529] [--out examples/out]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples"))

from effects.styles import STYLE_PRESETS, apply_style  # noqa: E402
from effects.tone_map import tone_map_people  # noqa: E402
from tone_map_people import crude_skin, label, load_scene, to8  # noqa: E402
from _script import out_folder, write_image  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="000000000529", help="COCO image id (when the data folder exists)")
    ap.add_argument("--out", type=Path, default=REPO / "examples" / "out")
    args = ap.parse_args()
    image, persons, sky, source = load_scene(args.image, ap)  # before --out is made: an unknown id leaves none
    out_folder(ap, args.out)

    skin = crude_skin(image, persons)
    toned = tone_map_people(image, persons, skin_masks=skin, sky_mask=sky)
    tiles = [label(to8(image), "input"), label(to8(toned), "tone mapped")]
    for name in STYLE_PRESETS:
        styled = apply_style(toned, name, skin_mask=skin, sky_mask=sky)
        tiles.append(label(to8(styled), name))
    rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in range(0, 8, 4)]
    rows[-1] = np.concatenate([rows[-1], np.zeros((rows[0].shape[0], rows[0].shape[1] - rows[-1].shape[1], 3), np.uint8)], axis=1)
    path = args.out / "photographic_styles.png"
    write_image(path, np.concatenate(rows, axis=0)[:, :, ::-1])
    print(f"{source}: wrote {path}")


if __name__ == "__main__":
    main()
