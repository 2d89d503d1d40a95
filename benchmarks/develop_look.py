"""Benchmark: what ``develop()`` does to real photos, in the numbers a photographer looks at first.

Runs ``develop`` (default settings, or a portrait effect) on real photos from
``../shared/data`` — close-up portraits (CelebAMask-HQ test, FASSEG test), scenes with sky
(ADE20K val) and everyday photos with people (COCO) — and measures per photo:

* ``face EV``: change of the skin's median luminance (skin matte > 0.5), in stops;
* ``scene EV`` and ``sky EV``: the same over pixels that are neither person nor sky, and over sky;
* ``blown``: the share of pixels whose *smallest* channel is at or above 0.98 (linear),
  before and after — highlights turned white (a saturated colour with one channel at the
  gamut's edge is not counted: a vivid style puts sky blue there); ``skin blown``: the share
  of the skin with its *largest* channel at or above 0.99 — skin washed out;
* ``crushed``: the share whose largest channel is at or below 0.002 — shadows it crushed;
* with a look that replaces the background (stage light, high-key mono) blown and crushed
  count on the portrait subject only (as develop cuts it), and scene and sky exposure are not measured;
* ``main face sharp``: the mean |Laplacian of Gaussian| (sigma 1.5 px) of the main person's skin
  over its mean sRGB luma (the largest person
  matte, skin matte > 0.5) after over before — with a portrait effect, under 0.5 means the
  subject's own face was blurred.

A photo is flagged when develop blows out more than 2 % of the frame or 5 % of the skin that
was not blown before, crushes more than 2 % of the frame that had shadow detail (at least
twice the crushed level; near-black hair going a little blacker under a contrast style is
not flagged), or moves a face by more than
1.5 stops, or blurs the main person's face to under half its sharpness. The table gives each set's median and worst values; the flagged photos and the
worst of each metric are written as before/after sheets to look at (``--out``). This is how
a high-key portrait lifted by +1.8 EV (its skin blown out) was found; it is not a test:
the thresholds say what to look at, not what is right.

Usage::

    python benchmarks/develop_look.py [--data ../shared/data] [--per-set 25] [--portrait blur]
"""
import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camseg.pipeline import DevelopSettings, develop, portrait_subject, subject_midpoint  # noqa: E402
from camseg.io import linear_to_srgb, read_photo  # noqa: E402
from camseg.segmenter import Segmenter  # noqa: E402

SETS = {  # name -> image folder under the data root
    "portraits (CelebAMask-HQ test)": "celeb_hair/test/images",
    "faces (FASSEG test)": "fasseg/test/images",
    "sky scenes (ADE20K val)": "ade_sky/val/images",
    "people (COCO)": "coco_panoptic/images",
}
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
WHITE, SKIN_BLOWN, CRUSHED = 0.98, 0.99, 0.002  # linear: smallest, largest, largest channel
MIN_REGION = 0.005  # a region (skin, sky, scene) counts when it covers this share of the frame
#: Portrait looks that replace the background by design (black stage, white high-key): blown and
#: crushed are measured on the people only, and scene and sky exposure are not measured.
NEW_BACKGROUND = {"stage_light", "stage_light_mono", "high_key_mono"}


@dataclass
class Look:
    set_name: str
    path: Path
    face_ev: float      # nan when there is (almost) no skin
    scene_ev: float
    sky_ev: float
    blown_in: float
    blown_out: float
    skin_blown_in: float
    skin_blown_out: float
    crushed_in: float
    crushed_out: float
    newly_crushed: float  # crushed in the output, at least twice the level in the input
    main_face_sharp: float  # nan without a person with skin
    lifted: bool = False  # the tone map lifted the whole photo as dim (develop's report says so)

    @property
    def flags(self) -> list:
        out = []
        if self.blown_out - self.blown_in > 0.02:
            out.append(f"blew out {100 * (self.blown_out - self.blown_in):.1f} % of the frame")
        if self.skin_blown_out - self.skin_blown_in > 0.05:
            out.append(f"blew out {100 * (self.skin_blown_out - self.skin_blown_in):.0f} % of the skin")
        if self.newly_crushed > 0.02:
            out.append(f"crushed {100 * self.newly_crushed:.1f} % of the frame")
        if np.isfinite(self.face_ev) and abs(self.face_ev) > 1.5:
            out.append(f"face moved {self.face_ev:+.1f} EV")
        if np.isfinite(self.main_face_sharp) and self.main_face_sharp < 0.5:
            out.append(f"main face blurred (sharpness x{self.main_face_sharp:.2f})")
        return out


def _median_ev(before: np.ndarray, after: np.ndarray, where: np.ndarray) -> float:
    """Stops between the median luminances of ``after`` and ``before`` over ``where`` (nan if too small)."""
    if where.mean() < MIN_REGION:
        return float("nan")
    y0, y1 = (np.median(x[where] @ _LUMA) for x in (before, after))
    return float(np.log2(max(y1, 1e-6) / max(y0, 1e-6)))


def measure(set_name: str, path: Path, settings: DevelopSettings, segmenter: Segmenter):
    """Develop one photo; its Look and the before/after 8-bit sRGB frames."""
    photo = read_photo(path)
    result = develop(photo, settings, segmenter=segmenter, return_details=True)
    before, after = photo.pixels, result.image.pixels
    seg = result.segmentation
    skin = seg.skin > 0.5
    sky = seg.sky > 0.5
    person = seg.person > 0.5 if len(seg.persons) else np.zeros_like(skin)
    scene = ~(person | sky)
    top_in, top_out = before.max(axis=2), after.max(axis=2)
    low_in, low_out = before.min(axis=2), after.min(axis=2)
    if settings.portrait in NEW_BACKGROUND and len(seg.persons):
        # What develop keeps of the photo: its portrait subject, cut where develop cuts it (small
        # people and false positives such as the astronaut's flag go with the background).
        subject = portrait_subject(seg.persons)
        kept = subject > subject_midpoint(subject)
    else:
        kept = np.ones_like(person) if settings.portrait not in NEW_BACKGROUND else np.zeros_like(person)
    if settings.portrait in NEW_BACKGROUND:
        scene = sky = np.zeros_like(person)  # replaced by design: nothing to measure there
    frac = lambda m: float(m[kept].mean()) if kept.any() else 0.0  # noqa: E731
    skin_frac = lambda m: float(m[skin].mean()) if skin.mean() >= MIN_REGION else 0.0  # noqa: E731
    main_face_sharp = float("nan")
    if len(seg.persons):
        main = max(seg.persons, key=lambda m: float(m.sum()))
        face = (main > 0.5) & skin
        if face.mean() >= MIN_REGION / 5:
            def detail(x):
                # Mean |Laplacian of Gaussian| (sigma 1.5: features, not the noise the denoiser
                # removes) of the face's sRGB luma over its mean (a face only made darker by stage
                # light's spot is not "blurred"). Per-pixel |Laplacian| read x0.47 on FASSEG 02_5
                # and x0.48 on 02_14, whose faces are as sharp as before.
                y = linear_to_srgb(x) @ _LUMA
                band = cv2.Laplacian(cv2.GaussianBlur(y, (0, 0), 1.5), cv2.CV_32F)
                return np.abs(band)[face].mean() / max(float(y[face].mean()), 1e-6)
            main_face_sharp = float(detail(after) / max(detail(before), 1e-6))
    look = Look(set_name, path,
                face_ev=_median_ev(before, after, skin), scene_ev=_median_ev(before, after, scene),
                sky_ev=_median_ev(before, after, sky),
                blown_in=frac(low_in >= WHITE), blown_out=frac(low_out >= WHITE),
                skin_blown_in=skin_frac(top_in >= SKIN_BLOWN), skin_blown_out=skin_frac(top_out >= SKIN_BLOWN),
                crushed_in=frac(top_in <= CRUSHED), crushed_out=frac(top_out <= CRUSHED),
                newly_crushed=frac((top_out <= CRUSHED) & (top_in > 2 * CRUSHED)), main_face_sharp=main_face_sharp,
                lifted=any("dim photo lifted" in s.detail for s in result.report.stages))
    to8 = lambda x: cv2.cvtColor((linear_to_srgb(x) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)  # noqa: E731
    return look, to8(before), to8(after)


def _sheet(pairs, path: Path, height: int = 260) -> None:
    """Rows of before | after (each scaled to ``height``) with the file name and what was flagged."""
    rows = []
    for (before, after), caption in pairs:
        tiles = [cv2.resize(x, (int(round(x.shape[1] * height / x.shape[0])), height), interpolation=cv2.INTER_AREA)
                 for x in (before, after)]
        row = np.hstack([tiles[0], np.zeros((height, 6, 3), np.uint8), tiles[1]])
        bar = np.zeros((22, row.shape[1], 3), np.uint8)
        cv2.putText(bar, caption[:150], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.vstack([bar, row]))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0))) for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--per-set", type=int, default=25, help="photos per set (evenly spread over its folder)")
    parser.add_argument("--portrait", default=None, help="portrait effect (blur, stage_light, ...); default none")
    parser.add_argument("--style", default="standard")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "develop_look")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder; pass the shared data folder (../shared/data)")
    settings = DevelopSettings(style=args.style, portrait=args.portrait)
    segmenter = Segmenter()
    looks, frames = [], {}
    for set_name, folder in SETS.items():
        files = sorted((args.data / folder).glob("*.jpg"))
        if not files:
            print(f"{set_name}: no photos in {args.data / folder}, skipped")
            continue
        step = max(1, len(files) // max(1, args.per_set))
        for path in files[::step][: args.per_set]:
            look, before, after = measure(set_name, path, settings, segmenter)
            looks.append(look)
            frames[path] = (before, after)

    print(f"develop({settings.to_dict()}) on {len(looks)} real photos; EV = stops of median luminance "
          f"change; blown = % of pixels white (smallest channel >= {WHITE}), skin blown = % of skin with a "
          f"channel >= {SKIN_BLOWN}, crushed = % with the largest channel <= {CRUSHED}; before -> after\n")
    header = (f"{'set':32s}{'n':>4s}{'face EV med':>12s}{'face EV max|':>13s}{'scene EV':>10s}{'sky EV':>8s}"
              f"{'blown %':>14s}{'skin blown %':>14s}{'crushed %':>14s}{'flagged':>9s}")
    print(header)
    for set_name in SETS:
        rows = [lk for lk in looks if lk.set_name == set_name]
        if not rows:
            continue
        med = lambda v: float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")  # noqa: E731
        face = np.array([lk.face_ev for lk in rows])
        worst_face = face[np.nanargmax(np.abs(face))] if np.isfinite(face).any() else float("nan")
        blown = f"{100 * np.mean([lk.blown_in for lk in rows]):.2f}->{100 * np.mean([lk.blown_out for lk in rows]):.2f}"
        skin = f"{100 * np.mean([lk.skin_blown_in for lk in rows]):.2f}->{100 * np.mean([lk.skin_blown_out for lk in rows]):.2f}"
        crushed = f"{100 * np.mean([lk.crushed_in for lk in rows]):.2f}->{100 * np.mean([lk.crushed_out for lk in rows]):.2f}"
        print(f"{set_name:32s}{len(rows):4d}{med(face):+12.2f}{worst_face:+13.2f}"
              f"{med(np.array([lk.scene_ev for lk in rows])):+10.2f}{med(np.array([lk.sky_ev for lk in rows])):+8.2f}"
              f"{blown:>14s}{skin:>14s}{crushed:>14s}{sum(bool(lk.flags) for lk in rows):9d}")

    lifted = [lk for lk in looks if lk.lifted]
    print(f"\ndim photo lifted as a whole (develop's report): {len(lifted)} of {len(looks)}"
          + "".join(f"\n  {lk.path.relative_to(args.data)}" for lk in lifted))
    flagged = [lk for lk in looks if lk.flags]
    print(f"\nflagged: {len(flagged)} of {len(looks)}")
    for lk in flagged:
        print(f"  {lk.path.relative_to(args.data)}: {'; '.join(lk.flags)}")
    # To look at: every flagged photo, and the biggest face move and blow-out even when under the flags.
    picks = {lk.path: lk for lk in flagged}
    faces = [lk for lk in looks if np.isfinite(lk.face_ev)]
    for pool, key in ((faces, lambda lk: abs(lk.face_ev)), (looks, lambda lk: lk.blown_out - lk.blown_in)):
        for lk in sorted(pool, key=key, reverse=True)[:3]:
            picks.setdefault(lk.path, lk)
    pairs = [(frames[p], f"{p.name}: face {lk.face_ev:+.2f} EV, blown {100 * lk.blown_in:.1f}->{100 * lk.blown_out:.1f} %"
              + (f" | {'; '.join(lk.flags)}" if lk.flags else "")) for p, lk in picks.items()]
    sheet = args.out / "to_look_at.jpg"
    _sheet(pairs, sheet)
    print(f"\nbefore | after of {len(pairs)} photos to look at: {sheet}")


if __name__ == "__main__":
    main()
