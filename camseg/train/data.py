"""Training data over ``../shared/data`` with partial labels.

Each labelled set supervises only some categories (see the data README). A
sample therefore carries, beside its targets, *which* targets are known:

- ``scene_valid`` (S,) — 1 where the scene channel is labelled for this image
  (e.g. ade_sky labels sky; celeb_hair labels hair); the loss ignores the rest
  instead of calling them background;
- ``instances_valid`` — 1 when every person in the image has an instance mask
  (COCO panoptic, and copy-paste composites built from it).

Person negatives: ADE train scenes the selfie segmenter finds nobody in (``mark_person_free``;
verdicts from ``face_labels.py --scenes-only``) and the COCO photos whose ``panoptic.json`` entry
lists no person (``coco_person_free``, ``load_person_free_scenes``: animals, vases, clocks — the
salient objects the selfie segmenter itself calls people) get an empty instance list. Without
them the instance head learned "nobody here" only around pasted people, and took buildings,
rocks and cars, then zebras and elephants, in unseen scenes for people.

Augmentation follows the HyperDETR seed: random resize–crop–resize, random
orientation (180° turns, flips) and small rotation, colour jitter, and optionally the whole
photo letterboxed upright as the runtime shows it (``AugmentParams.p_letterbox``). Copy-paste
(Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for
Instance Segmentation", CVPR 2021) composes several-person scenes by pasting
labelled people onto person-free COCO scenes.

Data defect handled here: in the shared ``coco_panoptic`` snapshot most
panoptic PNGs do not belong to the photo of the same name (88 of 100 differ
in size; of the 12 that match in size only about 8 have segment boundaries on
image edges). :func:`load_coco` keeps only pairs whose boundaries align with
image edges (:func:`labels_align`).

Teeth and eyes come from MediaPipe's face mesh, run once by
``camseg/train/face_labels.py`` (its own venv) over the portrait sets
(celeb_hair, FASSEG) and passed in as ``face_labels``: teeth are the bright,
low-saturation, not-red pixels inside the inner-lip polygon; a closed mouth
is a real "no teeth" label. Without that folder, FASSEG's teeth fall back to
the filled lip outline (class 5) and celeb_hair leaves teeth unlabelled.
Synthetic glasses: frames and lenses drawn with alpha at the eyes (face-mesh
eye contours, or FASSEG's eye class 3), which yields exact glasses masks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from camseg.contract import SCENE_CATEGORIES

SKY, HAIR, SKIN, TEETH, GLASSES = (SCENE_CATEGORIES.index(n) for n in ("sky", "hair", "skin", "teeth", "glasses"))
#: Skin chroma floor (8-bit YCrCb): labelled skin pixels have Cr - Cb >= 2 but for 0.4 % of them
#: (percentiles over FASSEG and fullbody_skin: 0.1 % -5, 0.5 % 4, 50 % 41).
NOT_SKIN_CR_MINUS_CB = 2
#: Scene channels that only occur on people.
PERSON_PARTS = (HAIR, SKIN, TEETH, GLASSES)
MAX_SIDE = 448  # images are cached at this long side: training crops are smaller
MAX_INSTANCES = 16
#: Held-out COCO photos (both have aligned labels and several people: 10 and 2).
COCO_VAL = ("000000000110", "000000000529")
#: Every third person-free COCO photo is held out (:func:`coco_person_free_val`).
COCO_PERSON_FREE_VAL_EVERY = 3
#: person_binary has no val split: every 6th photo is held out.
PERSON_VAL_EVERY = 6
#: Sets whose person masks are whole people: copy-paste sources and targets.
PEOPLE_SOURCES = ("coco", "person_binary")
#: Sets whose instance labels include every person in the photo.
COMPLETE_PEOPLE_SOURCES = ("coco",)
#: Where ``camseg/train/face_labels.py`` writes face-mesh teeth and eye labels by default.
DEFAULT_FACE_LABELS = Path.home() / ".cache" / "camseg" / "face_labels"


@dataclass
class Record:
    """One labelled photo held in memory (uint8 sRGB, masks uint8 0/255)."""

    image: np.ndarray
    scene: dict = field(default_factory=dict)  # channel index -> H×W uint8 mask
    instances: list | None = None  # list of H×W uint8 masks, or None if unknown
    source: str = ""
    eyes: np.ndarray | None = None  # H×W uint8, nonzero on both eyes: where synthetic glasses go


def off_every_person(people: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels more than 3 px from every person (``people``: bool union), the
    margin leaving room for label slop at person edges."""
    return ~(cv2.dilate(people.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)


def _fit(img: np.ndarray, interp) -> np.ndarray:
    h, w = img.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1:
        return img
    return cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=interp)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # labels are stored unrotated
    if img is None:
        raise ValueError(f"cannot read training image {path}")
    return _fit(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), cv2.INTER_AREA)


def _read_mask(path: Path) -> np.ndarray:
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise ValueError(f"cannot read training mask {path}")
    if m.ndim == 3:
        m = m[:, :, 0]
    return _fit(m, cv2.INTER_NEAREST)


def _pairs(folder: Path):
    for img in sorted((folder / "images").glob("*.jpg")):
        mask = folder / "masks" / (img.stem + ".png")
        if mask.exists():
            yield img, mask


def load_coco(root: Path, names: set | None = None) -> list[Record]:
    """COCO panoptic: person instances (category 1) and sky (187); every other pixel is known non-sky."""
    meta = json.loads((root / "panoptic.json").read_text())
    records = []
    for ann in meta["annotations"]:
        stem = Path(ann["file_name"]).stem
        if names is not None and stem not in names:
            continue
        image = _read_rgb(root / "images" / (stem + ".jpg"))
        pan = cv2.imread(str(root / "panoptic" / ann["file_name"]), cv2.IMREAD_COLOR)
        pan = _fit(cv2.cvtColor(pan, cv2.COLOR_BGR2RGB), cv2.INTER_NEAREST).astype(np.int64)
        ids = pan[:, :, 0] + 256 * pan[:, :, 1] + 65536 * pan[:, :, 2]
        if not labels_align(image, ids):
            continue  # see the module docstring: most COCO label files here do not fit their photo
        sky = np.zeros(ids.shape, np.uint8)
        instances = []
        for seg in ann["segments_info"]:
            m = (ids == seg["id"])
            if seg["category_id"] == 187:
                sky[m] = 255
            elif seg["category_id"] == 1 and m.sum() > 64:
                instances.append(m.astype(np.uint8) * 255)
        records.append(Record(image, {SKY: sky}, instances, "coco"))
    return records


def labels_align(image: np.ndarray, ids: np.ndarray, threshold: float = 1.6) -> bool:
    """True when segment boundaries of a label map sit on image edges.

    Score: mean normalised gradient magnitude of the photo on the (dilated)
    label boundaries; ≈1 means unrelated, aligned labels score ≥ 1.8.
    """
    if image.shape[:2] != ids.shape:
        return False
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    edges = (np.diff(ids, axis=0, prepend=ids[:1]) != 0) | (np.diff(ids, axis=1, prepend=ids[:, :1]) != 0)
    edges = cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if not edges.any():
        return False
    return float(grad[edges].mean() / (grad.mean() + 1e-6)) >= threshold


def coco_names(root: Path) -> list[str]:
    meta = json.loads((root / "panoptic.json").read_text())
    return sorted(Path(a["file_name"]).stem for a in meta["annotations"])


def coco_person_free(root: Path) -> list[str]:
    """COCO photos with nobody in them: no person segment in their ``panoptic.json`` entry.

    The per-photo category lists fit their photos (a zebra photo lists a zebra) even where the
    label PNGs do not (see the module docstring), and COCO labels every person, so an entry
    without one is a person-free photo. These are the hard negatives: zebras, elephants, dogs,
    a vase, a clock — salient objects that the selfie segmenter's verdict calls people (it marks
    8–84 % of such photos), so its verdicts never offered them as negatives, and a model
    trained without them took every salient object for a person.
    """
    meta = json.loads((root / "panoptic.json").read_text())
    people = {c["id"] for c in meta["categories"] if c["name"] == "person"}
    return sorted(Path(a["file_name"]).stem for a in meta["annotations"]
                  if not any(s["category_id"] in people for s in a["segments_info"]))


def coco_person_free_val(root: Path) -> set:
    """The person-free COCO photos held out from training (every third, in name order), for
    evaluate's false-positive figure on scenes of animals and objects."""
    return set(coco_person_free(root)[::COCO_PERSON_FREE_VAL_EVERY])


def load_binary(folder: Path, channel: int, source: str, face_labels: Path | None = None,
                persons: bool = False) -> list[Record]:
    """A set of 0/255 masks supervising one scene channel (plus face-mesh teeth/eyes where given)."""
    records = []
    for i, m in _pairs(folder):
        rec = Record(_read_rgb(i), {channel: (_read_mask(m) > 127).astype(np.uint8) * 255}, None, source)
        _attach_face_labels(rec, face_labels, folder, i.stem, persons)
        records.append(rec)
    return records


def _attach_face_labels(rec: Record, face_labels: Path | None, folder: Path, stem: str,
                        persons: bool = False) -> bool:
    """Set ``rec``'s teeth channel and eyes from ``face_labels/{teeth,eyes}/<set>/<split>/<stem>.png``.

    With ``persons``, also its person instance from the selfie-segmenter pseudo-label
    (``face_labels/person/...``) when that is one clear blob (as for ``person_binary``).
    Returns False (teeth and eyes unchanged) when the face mesh found no face there.
    """
    if face_labels is None:
        return False
    rel = Path(folder.parent.name) / folder.name / (stem + ".png")
    person = face_labels / "person" / rel
    if persons and person.exists():
        instance = _single_person((_read_mask(person) > 127).astype(np.uint8))
        if instance is not None:
            rec.instances = [instance * 255]
    teeth, eyes = face_labels / "teeth" / rel, face_labels / "eyes" / rel
    if not (teeth.exists() and eyes.exists()):
        return False
    rec.scene[TEETH] = (_read_mask(teeth) > 127).astype(np.uint8) * 255
    rec.eyes = (_read_mask(eyes) > 127).astype(np.uint8)
    return True


def load_person_binary(folder: Path) -> list[Record]:
    """Machine-made union person masks: kept only as one instance when the mask is one blob."""
    records = []
    for i, m in _pairs(folder):
        mask = _single_person((_read_mask(m) > 127).astype(np.uint8))
        if mask is not None:
            records.append(Record(_read_rgb(i), {}, [mask * 255], "person_binary"))
    return records


def _single_person(mask: np.ndarray) -> np.ndarray | None:
    """A 0/1 union person mask, if it is one person (one blob over 2 % of the frame); else None."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    big = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] > 0.02 * mask.size]
    return mask if len(big) == 1 else None


def teeth_from_lips(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Teeth mask: bright, low-saturation pixels inside the mouth (filled lip outline minus lips)."""
    lips = (labels == 5).astype(np.uint8)
    if lips.sum() == 0:
        return np.zeros(labels.shape, np.uint8)
    contours, _ = cv2.findContours(lips, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(lips)
    cv2.drawContours(filled, [cv2.convexHull(np.concatenate(contours))], -1, 1, -1)
    inside = (filled > 0) & (lips == 0)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    teeth = inside & (hsv[:, :, 2] > 110) & (hsv[:, :, 1] < 90)
    return teeth.astype(np.uint8) * 255


def load_fasseg(folder: Path, face_labels: Path | None = None, persons: bool = False) -> list[Record]:
    """FASSEG faces: skin = classes 1 (skin) and 4 (nose); hair = 2; teeth from the face mesh (else lips)."""
    records = []
    for i, m in _pairs(folder):
        image, labels = _read_rgb(i), _read_mask(m)
        if labels.shape != image.shape[:2]:
            labels = cv2.resize(labels, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        rec = Record(image, {SKIN: (np.isin(labels, (1, 4))).astype(np.uint8) * 255,
                             HAIR: (labels == 2).astype(np.uint8) * 255}, None, "fasseg")
        if not _attach_face_labels(rec, face_labels, folder, i.stem, persons):
            rec.scene[TEETH] = teeth_from_lips(image, labels)
            rec.eyes = (labels == 3).astype(np.uint8)
        records.append(rec)
    return records


def _lens_outline(centre, rx: float, ry: float, exponent: float, angle_deg: float) -> np.ndarray:
    """One lens rim as a closed polygon (int32 N×2): a superellipse |x/rx|^n + |y/ry|^n = 1 turned by
    ``angle_deg`` -- n = 2 an oval, 3–5 the rounded rectangles of most real frames."""
    t = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = rx * np.sign(c) * np.abs(c) ** (2.0 / exponent)
    y = ry * np.sign(s) * np.abs(s) ** (2.0 / exponent)
    a = math.radians(angle_deg)
    px = centre[0] + x * math.cos(a) - y * math.sin(a)
    py = centre[1] + x * math.sin(a) + y * math.cos(a)
    return np.round(np.stack([px, py], 1)).astype(np.int32)


def draw_glasses(image: np.ndarray, eyes: np.ndarray, rng: np.random.Generator):
    """Draw synthetic glasses (rims, bridge, temple arms, lenses, with alpha) at the labelled eyes.

    The styles span what portraits show: oval to rectangular rims (superellipse exponent 2–5),
    thin metal to thick acetate (rim width 1.5–8 % of the eye distance, log-uniform), dark,
    metallic or coloured frames, clear lenses (half of them, tint alpha <= 0.08, sometimes a
    specular streak) or tinted ones up to sunglasses. Until this version every lens was tinted and
    every rim an oval at least 3 % of the eye distance wide, and the model found sunglasses but
    not a held-out CelebA face's thin clear glasses.

    Returns (new image uint8, glasses mask uint8 0/255), or None if two eyes are not found.
    """
    n, _, stats, cents = cv2.connectedComponentsWithStats(eyes)
    comps = sorted(range(1, n), key=lambda k: -stats[k, cv2.CC_STAT_AREA])[:2]
    if len(comps) < 2:
        return None
    (x1, y1), (x2, y2) = sorted((tuple(cents[k]) for k in comps))
    dist = math.hypot(x2 - x1, y2 - y1)
    if dist < 8:
        return None
    angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
    ux, uy = (x2 - x1) / dist, (y2 - y1) / dist  # along the eye line
    rx = dist * rng.uniform(0.36, 0.5)
    ry = dist * rng.uniform(0.25, 0.4)
    exponent = rng.uniform(2.0, 5.0)
    thick = max(1, int(round(dist * math.exp(rng.uniform(math.log(0.015), math.log(0.08))))))
    frame = np.zeros(eyes.shape, np.uint8)
    lens = np.zeros(eyes.shape, np.uint8)
    rims = [_lens_outline((cx, cy), rx, ry, exponent, angle) for cx, cy in ((x1, y1), (x2, y2))]
    cv2.fillPoly(lens, rims, 255, cv2.LINE_AA)
    cv2.polylines(frame, rims, True, 255, thick, cv2.LINE_AA)
    # Bridge between the inner rims, a little above the lens centres (where real bridges sit).
    lift = ry * rng.uniform(0.0, 0.4)
    bridge_a = (int(round(x1 + rx * ux + lift * uy)), int(round(y1 + rx * uy - lift * ux)))
    bridge_b = (int(round(x2 - rx * ux + lift * uy)), int(round(y2 - rx * uy - lift * ux)))
    cv2.line(frame, bridge_a, bridge_b, 255, thick, cv2.LINE_AA)
    if rng.random() < 0.7:  # temple arms, running from the outer rims toward the ears
        arm = dist * rng.uniform(0.15, 0.4)
        for (cx, cy), sign in (((x1, y1), -1.0), ((x2, y2), 1.0)):
            a = (cx + sign * rx * ux, cy + sign * rx * uy)
            b = (a[0] + sign * arm * ux, a[1] + sign * arm * uy)
            cv2.line(frame, tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b), 255,
                     max(1, thick), cv2.LINE_AA)
    style = rng.random()
    colour = (rng.uniform(0, 70, 3) if style < 0.55 else  # black / dark acetate
              rng.uniform(110, 230) * np.array([1.0, rng.uniform(0.8, 1.0), rng.uniform(0.5, 1.0)]) if style < 0.8
              else rng.uniform(30, 230, 3))  # metal (silver to gold) / coloured
    out = image.astype(np.float32)
    if rng.random() < 0.5:  # clear lenses: a faint grey or blue cast, sometimes a reflection
        tint, tint_alpha = rng.uniform(150, 255, 3), rng.uniform(0.0, 0.08)
    else:
        tint, tint_alpha = rng.uniform(0, 1, 3) * 60, rng.uniform(0.1, 0.7)
    la = (lens / 255.0)[:, :, None] * tint_alpha
    out = out * (1 - la) + tint * la
    if rng.random() < 0.4:  # a specular streak across each lens (clipped to the lens)
        streak = np.zeros(eyes.shape, np.uint8)
        for cx, cy in ((x1, y1), (x2, y2)):
            off = rx * rng.uniform(-0.3, 0.3)
            p0 = (int(round(cx - 0.6 * rx + off)), int(round(cy + 0.6 * ry)))
            p1 = (int(round(cx + 0.2 * rx + off)), int(round(cy - 0.7 * ry)))
            cv2.line(streak, p0, p1, 255, max(1, int(round(rx * rng.uniform(0.08, 0.3)))), cv2.LINE_AA)
        sa = (np.minimum(streak, lens) / 255.0)[:, :, None] * rng.uniform(0.1, 0.45)
        out = out * (1 - sa) + 255.0 * sa
    fa = (frame / 255.0)[:, :, None]
    out = out * (1 - fa) + colour * fa
    mask = np.maximum(frame, lens)
    return np.clip(out, 0, 255).astype(np.uint8), mask


#: A scene is person-free when the selfie segmenter marks less than this fraction of it.
PERSON_FREE_FRACTION = 0.002


def _person_free(verdict: Path) -> bool:
    return verdict.exists() and float((_read_mask(verdict) > 127).mean()) < PERSON_FREE_FRACTION


def mark_person_free(records: list[Record], verdicts: Path, stems: list[str]) -> None:
    """Give scene records with nobody in them (the selfie segmenter's verdict, written by
    ``camseg/train/face_labels.py --scenes-only``) an empty instance list: a person negative.

    Without them the instance head only ever learned "nobody here" around pasted people, and
    on unseen scenes it took buildings, rocks and cars for people. Scenes where the segmenter
    sees someone stay person-unlabelled: its masks of people in scenes are not instance labels.
    """
    for rec, stem in zip(records, stems):
        if rec.instances is None and _person_free(verdicts / (stem + ".png")):
            rec.instances = []


def load_person_free_scenes(folder: Path, free: set, *, exclude: set = frozenset()) -> list[Record]:
    """The photos of ``folder`` named in ``free`` (nobody in them) and not in ``exclude``, as
    person negatives that also show no glasses and no teeth; every other channel unlabelled."""
    records = []
    for path in sorted(folder.glob("*.jpg")):
        if path.stem in exclude or path.stem not in free:
            continue
        image = _read_rgb(path)
        zeros = np.zeros(image.shape[:2], np.uint8)
        records.append(Record(image, {GLASSES: zeros, TEETH: zeros.copy()}, [], "scene"))
    return records


def coco_split_names(coco_root: Path, split: str, coco_val: set) -> set:
    """The COCO photos (stems) of ``split`` loaded with their panoptic labels: ``coco_val`` for
    val; for train every other one, less the held-out person-free photos (training once took
    them too, as person negatives: a training photo in evaluate's false-positive figure)."""
    if split == "val":
        return set(coco_val)
    return set(coco_names(coco_root)) - set(coco_val) - coco_person_free_val(coco_root)


def data_folder_problem(root: Path) -> str | None:
    """Why :func:`load_all` cannot read ``root`` as the shared data folder, or None.

    It needs COCO's ``coco_panoptic/panoptic.json`` (the other sets are read where present). An
    empty folder, or the folder above the data (``../shared``), stopped the trainer, ``evaluate``
    and ``pack`` with a FileNotFoundError traceback naming panoptic.json, after the model was built.
    """
    if (root / "coco_panoptic" / "panoptic.json").is_file():
        return None
    inside = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return (f"{str(root)!r} is not the shared data folder: it has no coco_panoptic/panoptic.json"
            + (f" (its folders: {', '.join(inside[:6])})" if inside else " (nor any folder)")
            + "; pass ../shared/data, the folder holding coco_panoptic, ade_sky, celeb_hair, fasseg, ...")


def load_all(root: Path, *, split: str = "train", coco_val: set | None = None,
             face_labels: Path | None = None) -> list[Record]:
    """Load every training set's ``split``; COCO uses ``coco_val`` to hold out its own val split.

    ``face_labels``: the folder written by ``camseg/train/face_labels.py`` (teeth and eyes from
    the face mesh), or None to do without (see the module docstring).
    """
    records: list[Record] = []
    if coco_val is None:
        coco_val = set(COCO_VAL)
    coco_free_val = coco_person_free_val(root / "coco_panoptic")
    records += load_coco(root / "coco_panoptic", coco_split_names(root / "coco_panoptic", split, coco_val))
    if (root / "ade_sky" / split).exists():
        scenes = load_binary(root / "ade_sky" / split, SKY, "ade_sky")
        if face_labels is not None:  # val: for evaluate's person false-positive figure
            mark_person_free(scenes, face_labels / "person" / "ade_sky" / split,
                             [p.stem for p, _ in _pairs(root / "ade_sky" / split)])
        records += scenes
    if split == "train":
        # COCO photos as plain scenes (their labels mostly do not fit them); never the held-out ones.
        # Person-free by their panoptic.json entries (the selfie segmenter's verdicts, used before,
        # called zebras and vases people and missed 5 photos' small people).
        records += load_person_free_scenes(root / "coco_panoptic" / "images", set(coco_person_free(root / "coco_panoptic")),
                                           exclude=set(coco_val) | coco_free_val)
    if (root / "celeb_hair" / split).exists():
        # person pseudo-labels for training only: held-out person figures stay on human labels
        records += load_binary(root / "celeb_hair" / split, HAIR, "celeb_hair", face_labels,
                               persons=split == "train")
    people = load_person_binary(root / "person_binary" / "train")
    if split == "train":
        records += load_fasseg(root / "fasseg" / "train", face_labels, persons=True)
        records += [r for i, r in enumerate(people) if i % PERSON_VAL_EVERY]
        records += load_binary(root / "fullbody_skin" / "train", SKIN, "fullbody_skin")
    elif split == "val":
        records += load_fasseg(root / "fasseg" / "test", face_labels)
        records += [r for i, r in enumerate(people) if i % PERSON_VAL_EVERY == 0]
        # Last, so the earlier records keep their indices (evaluate's calibration halves).
        records += [Record(_read_rgb(root / "coco_panoptic" / "images" / (stem + ".jpg")), {}, [], "scene")
                    for stem in sorted(coco_free_val)]
    return records


def group_composites(records: list[Record], count: int = 40, *, seed: int = 0) -> list[Record]:
    """Several-person photos composed from held-out records, for evaluating instance separation.

    The shared data hold only two real held-out photos with several labelled
    people, too few to measure whether the model tells people apart. This
    pastes 2–3 held-out people (``records`` with instance masks) onto
    held-out person-free scenes (``ade_sky`` records) with the training
    copy-paste (same occlusion rules, a fixed seed): synthetic, but every
    person's mask is exact. Returns up to ``count`` records (source
    ``"group_composite"``) with at least two visible people each.
    """
    composer = TrainingSet(records, augment=False, seed=seed)
    backgrounds = [r for r in records if r.source == "ade_sky" and not r.instances]
    out = []
    for attempt in range(count * 4):
        if len(out) == count or not backgrounds or not composer.paste_sources:
            break
        bg = backgrounds[attempt % len(backgrounds)]
        image, _, instances = composer._copy_paste(bg.image, dict(bg.scene), [])
        if len(instances) >= 2:
            # scene labels left out: the background photos already count once in the sky figures
            out.append(Record(image, {}, instances, "group_composite"))
    return out


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class AugmentParams:
    """Seed augmentations; probabilities and ranges."""

    min_scale: float = 0.5  # crop side as a fraction of the largest crop of the output aspect
    # Zoom out (crop larger than the photo, the rest unknown): portraits' faces at the size of a
    # face in a half-body shot, where teeth and glasses were missed (the bundled astronaut).
    p_zoom_out: float = 0.25
    max_zoom_out: float = 2.0
    # Letterbox: the whole photo fitted into the frame (scale 0.6–1 of the fit), upright, the rest
    # unknown — how the runtime shows the model every portrait photo (camseg.segmenter._prepare).
    # Crops with the frame's landscape aspect cut a standing person in a portrait photo in half.
    p_letterbox: float = 0.0
    min_letterbox: float = 0.6
    rotate_deg: float = 12.0
    p_rotate: float = 0.3
    p_turn: float = 0.15  # random orientation: a 180° turn (the runtime never turns a photo a quarter)
    p_flip: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue_deg: float = 8.0
    p_copy_paste: float = 0.5
    p_glasses: float = 0.5
    # Portrait-mode backgrounds: everything off the labelled people blurred by a lens-like disc
    # (radius a fraction of the frame). The model's person matte bled into warm out-of-focus
    # backgrounds of close-ups (model card: held-out photos 40 and 41) — appearance it learnt
    # from sharp training backgrounds. On every photo with person labels (a bystander the
    # machine-made portrait masks miss is blurred as background, as the label already says).
    p_defocus: float = 0.0
    defocus_radius: tuple = (0.006, 0.03)  # disc radius as a fraction of the frame's diagonal


#: Sampling weight of each set. The small person-instance sets are what matter most; person_binary
#: is low trust. Measured at step 300: sky (100 ADE photos, 7.6 % sky pixels) and people lagged far
#: behind hair and skin, so they are drawn more often.
SOURCE_WEIGHTS = {"coco": 4.0, "person_binary": 1.0, "fullbody_skin": 0.5, "fasseg": 1.0, "ade_sky": 2.5,
                  "celeb_hair": 0.4, "scene": 1.0}


def defocus_background(image: np.ndarray, people: np.ndarray, radius: float,
                       valid: "np.ndarray | None" = None) -> np.ndarray:
    """Blur everything off ``people`` as a wide aperture would (a portrait-mode photo).

    ``image`` float32 H×W×3 in [0, 1]; ``people`` float32 H×W coverage in [0, 1]; ``radius`` the
    defocus disc's radius in pixels; ``valid`` bool H×W, where the frame shows the photo (the
    padding outside is neither averaged in nor changed). The background is convolved with a uniform disc (the
    geometric-optics point spread of a defocused lens) by normalised convolution — only
    background pixels are averaged, so the people's colours do not bleed into it as a halo
    (Knutsson & Westin 1993) — and the people are composited back sharp over it.
    """
    r = max(1, int(round(radius)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(np.float32)
    disc /= disc.sum()
    alpha = cv2.GaussianBlur(np.clip(people, 0.0, 1.0), (3, 3), 0)
    background = 1.0 - alpha
    if valid is not None:
        background *= valid
    weight = cv2.filter2D(background, -1, disc, borderType=cv2.BORDER_REFLECT)
    blurred = cv2.filter2D(image * background[:, :, None], -1, disc, borderType=cv2.BORDER_REFLECT)
    blurred /= np.maximum(weight, 1e-4)[:, :, None]
    # Deep inside a person no background reaches the disc: those pixels stay the person's anyway.
    out = image * (1.0 - background)[:, :, None] + np.clip(blurred, 0.0, 1.0) * background[:, :, None]
    return out.astype(np.float32)


class TrainingSet:
    """Random augmented samples as numpy arrays at a fixed (H, W)."""

    def __init__(self, records, size=(256, 320), *, augment=True, params=AugmentParams(), seed=0,
                 source_weights: dict | None = None):
        """``source_weights``: sampling weight per set (``Record.source``), overriding
        :data:`SOURCE_WEIGHTS` for the sets it names."""
        self.records = records
        self.size = size
        self.augment = augment
        self.params = params
        self.rng = np.random.default_rng(seed)
        # Whole people only: the portrait sets' pseudo-labelled people are heads cut by the frame.
        self.paste_sources = [(r, k) for r in records if r.instances and r.source in PEOPLE_SOURCES
                              for k in range(len(r.instances)) if r.instances[k].sum() > 255 * 400]
        self.paste_targets = [r for r in records if r.source == "coco"]
        weight = {**SOURCE_WEIGHTS, **(source_weights or {})}
        w = np.array([weight.get(r.source, 1.0) for r in records])
        self.p = w / w.sum()

    def __len__(self):
        return len(self.records)

    def sample(self, index=None):
        """Return (image float32 3×H×W sRGB [0,1], scene S×H×W float32 targets, scene_known S×H×W
        uint8 (1 where the target is known: the loss ignores the rest), instances K×H×W, n,
        inst_valid, inside H×W float32 (1 where the output shows the source photo))."""
        rng = self.rng
        rec = self.records[index] if index is not None else self.records[rng.choice(len(self.records), p=self.p)]
        image = rec.image
        scene = dict(rec.scene)
        instances = list(rec.instances) if rec.instances is not None else None
        if self.augment and rec.eyes is not None and rng.random() < self.params.p_glasses:
            drawn = draw_glasses(image, rec.eyes, rng)
            if drawn is not None:
                image, scene[GLASSES] = drawn
        if self.augment and rec.source == "fasseg" and GLASSES not in scene:
            scene[GLASSES] = np.zeros(image.shape[:2], np.uint8)  # FASSEG faces wear no glasses
        if rec.source == "ade_sky":
            # Scenes without people: no glasses, no teeth anywhere. Without these negatives the
            # two face channels only ever saw faces, and fired on face-coloured things elsewhere
            # (the bundled astronaut's orange sleeve). Pasted people below make them unknown again.
            for c in (GLASSES, TEETH):
                scene.setdefault(c, np.zeros(image.shape[:2], np.uint8))
        if instances == [] and rec.source in ("ade_sky", "scene"):
            # Nobody in the scene (the selfie segmenter's verdict): no hair and no skin either.
            # Without these negatives hair and skin only ever saw people, and fired on dark
            # glossy things and black fabric (the bundled astronaut's helmet and collar).
            for c in (HAIR, SKIN):
                scene.setdefault(c, np.zeros(image.shape[:2], np.uint8))
        if (self.augment and not instances and rec.source in ("ade_sky", "scene")
                and rng.random() < self.params.p_copy_paste):
            # scenes as backgrounds for pasted people (ADE sky scenes rarely show people); a
            # person-free one (instances == []) stays a person negative when nobody is pasted
            image, scene, instances = self._copy_paste(image, scene, [])
        elif (self.augment and instances is not None and rec.source in PEOPLE_SOURCES
              and rng.random() < self.params.p_copy_paste):
            # (not on portraits: pasting would take away their hair/skin/teeth labels)
            image, scene, instances = self._copy_paste(image, scene, instances)
        # COCO labels every person; a person-free scene (instances == []) has nobody but the
        # people pasted into it. person_binary's machine-made masks can miss bystanders.
        people_complete = instances is not None and (rec.source in COMPLETE_PEOPLE_SOURCES or rec.instances == [])
        return self._geometric_and_colour(image, scene, instances, people_complete)

    def _copy_paste(self, image, scene, instances):
        rng = self.rng
        image = image.copy()
        h, w = image.shape[:2]
        for _ in range(rng.integers(1, 4)):
            src, k = self.paste_sources[rng.integers(len(self.paste_sources))]
            m = src.instances[k]
            ys, xs = np.nonzero(m)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            patch, pm = src.image[y0:y1, x0:x1], m[y0:y1, x0:x1]
            scale = rng.uniform(0.3, 0.9) * h / max(patch.shape[0], 1)
            ph, pw = max(4, int(patch.shape[0] * scale)), max(4, int(patch.shape[1] * scale))
            if ph >= h or pw >= w:
                continue
            patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
            pm = cv2.resize(pm, (pw, ph), interpolation=cv2.INTER_LINEAR)
            oy, ox = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
            alpha = cv2.GaussianBlur(pm, (3, 3), 0).astype(np.float32)[:, :, None] / 255.0
            region = image[oy:oy + ph, ox:ox + pw].astype(np.float32)
            image[oy:oy + ph, ox:ox + pw] = (region * (1 - alpha) + patch * alpha).astype(np.uint8)
            full = np.zeros((h, w), np.uint8)
            full[oy:oy + ph, ox:ox + pw] = (pm > 127) * 255
            keep = full == 0
            instances = [inst * keep for inst in instances] + [full]
            for c in list(scene):  # pasted people cover sky; other channels become unknown there
                if c == SKY:
                    scene[c] = scene[c] * keep
                else:
                    del scene[c]
        instances = [i for i in instances if i.sum() > 255 * 32]
        return image, scene, instances

    def _geometric_and_colour(self, image, scene, instances, people_complete=False):
        rng, p = self.rng, self.params
        H, W = self.size
        h, w = image.shape[:2]
        channels = sorted(scene)
        stack = [scene[c] for c in channels] + (instances or [])
        if self.augment:
            # random resize–crop–resize: a crop with the output aspect, random scale and position
            aspect = W / H
            if p.p_letterbox and rng.random() < p.p_letterbox:  # (no draw when off: old runs replay)
                fit = min(H / h, W / w) * rng.uniform(p.min_letterbox, 1.0)
                ch, cw = H / fit, W / fit
                # half at the runtime's place (top left), half anywhere in the frame
                cy, cx = (0.0, 0.0) if rng.random() < 0.5 else (rng.uniform(h - ch, 0), rng.uniform(w - cw, 0))
            else:
                s = rng.uniform(1.0, p.max_zoom_out) if rng.random() < p.p_zoom_out else rng.uniform(p.min_scale, 1.0)
                ch = min(h, w / aspect) * s
                cw = ch * aspect
                cy, cx = rng.uniform(min(0, h - ch), max(0, h - ch)), rng.uniform(min(0, w - cw), max(0, w - cw))
            angle = rng.uniform(-p.rotate_deg, p.rotate_deg) if rng.random() < p.p_rotate else 0.0
            turn = rng.random() < p.p_turn
        else:
            s = min(H / h, W / w)  # letterbox: fit, keep aspect
            ch, cw = H / s, W / s
            cy, cx = (h - ch) / 2, (w - cw) / 2
            angle, turn = 0.0, False
        # affine from output pixels to source pixels, then invert for warpAffine
        scale = W / cw
        centre = (cx + cw / 2, cy + ch / 2)
        m = cv2.getRotationMatrix2D(centre, angle, scale)
        m[0, 2] += W / 2 - centre[0]
        m[1, 2] += H / 2 - centre[1]
        img = cv2.warpAffine(image, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        # pixels outside the source are unknown for every label: tracked by a validity map
        inside = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (W, H), flags=cv2.INTER_NEAREST) > 0
        warped = [cv2.warpAffine(t, m, (W, H), flags=cv2.INTER_LINEAR) for t in stack]
        if self.augment and rng.random() < p.p_flip:
            img = img[:, ::-1]
            inside = inside[:, ::-1]
            warped = [t[:, ::-1] for t in warped]
        if turn:  # random orientation: turn 180° (keeps the landscape shape of the batch)
            img, inside = img[::-1, ::-1], inside[::-1, ::-1]
            warped = [t[::-1, ::-1] for t in warped]
        # before the colour jitter: the skin-colour rule below reads the photo's own colours
        ycc = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2YCrCb) if SKIN not in channels else None
        img = img.astype(np.float32) / 255.0
        if (self.augment and p.p_defocus and len(warped) > len(channels)
                and rng.random() < p.p_defocus):  # (no draw when off: old runs replay)
            people = np.max(warped[len(channels):], axis=0).astype(np.float32) / 255.0
            img = defocus_background(img, people, float(rng.uniform(*p.defocus_radius)) * np.hypot(H, W),
                                     valid=inside)
        if self.augment:
            img = self._colour_jitter(img)
        S = len(SCENE_CATEGORIES)
        scene_t = np.zeros((S, H, W), np.float32)
        scene_known = np.zeros((S, H, W), np.uint8)
        for c, t in zip(channels, warped[:len(channels)]):
            scene_t[c] = t / 255.0
            scene_known[c] = 1
        inst = np.zeros((MAX_INSTANCES, H, W), np.float32)
        n = 0
        if instances is not None:
            for t in warped[len(channels):]:
                if n < MAX_INSTANCES and (t > 127).sum() > 16:
                    inst[n] = t / 255.0
                    n += 1
        if people_complete:
            # Every person here is an instance, so hair, skin, teeth and glasses are absent
            # wherever nobody is: negatives off the people (grown by 3 px for label slop),
            # unknown on them. Without these, skin fired on walls, skies and backgrounds.
            people = (np.max(warped[len(channels):], axis=0) if len(warped) > len(channels)
                      else np.zeros((H, W), np.uint8)) > 0
            off_people = off_every_person(people)
            for c in PERSON_PARTS:
                if c not in channels:
                    scene_known[c] = off_people
        if ycc is not None:
            # Pixels no skin has: Cr - Cb below NOT_SKIN_CR_MINUS_CB where not dark (neutral
            # greys, blues, greens: skies, walls, most jackets). Of the labelled skin pixels in
            # FASSEG and fullbody_skin 0.4 % fall there. A weak label where skin is unlabelled:
            # skin fired on clothes and skies, and no set labels clothes as non-skin.
            y, cr, cb = (ycc[..., i].astype(np.int16) for i in range(3))
            scene_known[SKIN] |= ((y > 40) & (cr - cb < NOT_SKIN_CR_MINUS_CB)).astype(np.uint8)
        return (np.ascontiguousarray(img.transpose(2, 0, 1)), scene_t, scene_known, inst, n,
                float(instances is not None), np.ascontiguousarray(inside, dtype=np.float32))

    def _colour_jitter(self, img):
        rng, p = self.rng, self.params
        img = img * rng.uniform(1 - p.brightness, 1 + p.brightness)
        mean = img.mean()
        img = (img - mean) * rng.uniform(1 - p.contrast, 1 + p.contrast) + mean
        grey = img.mean(axis=2, keepdims=True)
        img = (img - grey) * rng.uniform(1 - p.saturation, 1 + p.saturation) + grey
        if p.hue_deg:
            hsv = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2HSV)
            hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(-p.hue_deg, p.hue_deg)) % 360
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return np.clip(img, 0, 1).astype(np.float32)
