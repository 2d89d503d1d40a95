"""Portrait Lighting looks: studio, contour, stage (colour / mono) and high-key mono.

The looks popularised by phone cameras' "Portrait Lighting" relight the subject
with the person matte (and the skin matte for the face):

- ``studio``: a soft key light on the face (skin brightened), background a
  touch darker so the subject separates;
- ``contour``: directional light from ``light_angle``; the side of the subject
  turned away from it falls into shadow, shaped by a pseudo-relief built from
  the matte (the silhouette blurred into a dome, the face's own dome from the
  skin matte added, its normals lit Lambert-style);
- ``stage``: the subject under a spotlight on a black stage -- background to
  black, light falling off down the body;
- ``stage_mono``: the same in black and white, with more contrast;
- ``high_key_mono``: black-and-white subject on pure white, metered so the face sits at
  ``high_key_level`` whatever the photo's exposure, its highlights rolled off below white
  instead of clipped (a fixed +0.6 EV burned bright skin to flat white).

Edges stay clean because the matte is refined against the photo (guided
filter) and, at soft edges, the subject's colour is separated from the old
background (Germer et al., "Fast Multi-Level Foreground Estimation", ICPR 2020)
before compositing on the new black/white background: no grey fringe on black,
no dark fringe on white, hair strands stay semi-transparent.

Luminance is Rec. ITU-R BT.709 relative luminance of linear sRGB
(Y = 0.2126 R + 0.7152 G + 0.0722 B). Contrast is applied as a slope in log
exposure around a pivot -- mid grey 0.18, or the metered level for high-key
(a straight line on a log-log characteristic curve), which keeps black at
black and needs no perceptual conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import cv2
import numpy as np

from effects._bands import run_in_row_bands
from effects._jit import clamp01, kernel
from effects.mask_refine import RefineMatteParams
from effects._validate import check_field_types, check_flag, through_two_columns
from effects.portrait_blur import (_REFINE_BAND_EXPECTED, _check_image, _check_mask, _is_refine_band, _subject_mattes,
                                   foreground_colour, subject_alpha)

__all__ = [
    "PortraitLightingParams",
    "LOOKS",
    "portrait_lighting",
    "stage_light",
    "studio_light",
    "contour_light",
    "high_key_mono",
]

_Y709 = np.array([0.2126, 0.7152, 0.0722], np.float32)


#: Widest skin feather, as a fraction of the image diagonal (see PortraitLightingParams).
SKIN_FEATHER_MAX = 0.1


@dataclass(frozen=True)
class PortraitLightingParams:
    """Options of :func:`portrait_lighting` (each look uses the fields it names).

    Attributes
    ----------
    strength : float
        0 … 1 blend between the photo and the full look; 0 returns the photo.
    key_light_ev : float
        Exposure added to the face/skin (all looks; needs ``skin_mask``), EV: all of it where
        the skin is not bright, less or none where it is (``key_light_ceiling``).
    key_light_ceiling : float
        Linear level, > 0, that a brightening key light brings the skin's bright side up to at
        most (the 95th percentile of its largest channel, each face -- connected region of
        skin over 0.5 -- on its own); skin already past it gets none. 0.92 comes out at 0.90,
        sRGB 243, after the ``highlight_knee`` roll-off: +0.35 EV on a fair, well-lit face had
        pushed it deep into the roll-off, flat and waxy (stage light put 46 % of FASSEG train
        03_030's skin at sRGB 250 or more, 2 % without the look; now 2 %). On 101 faces
        (FASSEG, CelebA test, person_binary) under stage light, skin at sRGB 250 or more 4.8 %
        -> 0.9 % (the plain develop's 1.0 %), faces with a tenth of their skin there 19 -> 2; the
        face is still lit +0.22 EV at the median (+0.26 before; a ceiling at the knee, 0.75,
        left +0.05). ``stage_mono`` also exposes each face so that its bright side ends there
        after its contrast slope. ``high_key_mono`` meters the lit face itself and takes the
        whole key light. A large value (e.g. 10) switches the ceiling off.
    background_ev : float
        Exposure change of the background in ``studio`` and ``contour``, EV.
    subject_ev : float
        ``high_key_mono``: exposure offset from the metered level, EV (0 = skin at
        ``high_key_level``).
    high_key_level : float
        ``high_key_mono``: luminance the subject is metered to, in (0, 1): the median of its
        skin (of the whole subject without a skin matte) after the key light. 0.45 is sRGB 179,
        the bright face of a high-key portrait with its texture kept. The metering gain is held
        to ``HIGH_KEY_GAIN_RANGE`` (a dark-skinned face is brightened, not turned pale grey; a
        bright face is metered down no further than undoing the key light: not to grey) and
        kept from pushing the skin's highlights past ``highlight_knee``: on 25 CelebA test
        portraits in ``develop`` 0.01 % of the skin ends at 0.99 or more, against 30 % with the
        former fixed +0.6 EV (``benchmarks/develop_look.py --portrait high_key_mono``).
    highlight_knee : float
        Value in (0, 1) above which highlights roll off smoothly toward white (tanh shoulder)
        instead of clipping: the key light's brightening, on the largest channel (hue kept),
        in every look; the metered luminance in ``high_key_mono``.
    spot_falloff : float
        ``stage`` / ``stage_mono``: fraction of light lost from the top of the
        subject (from below the face, with a skin matte) to its bottom (0 = even light,
        1 = feet in darkness).
    contour_depth : float
        ``contour``: strength of the directional shading, 0 … 1.
    light_angle : float
        ``contour``: direction the light comes from, degrees (0 = from the
        right, 90 = from above, 180 = from the left).
    mono_contrast : float
        ``stage_mono``: log-exposure slope around mid grey (1 = unchanged).
    high_key_contrast : float
        ``high_key_mono``: log-exposure slope around ``high_key_level`` (high-key is a soft,
        bright look: 1.25, stage_mono's, pushed bright skin into the shoulder).
    skin_feather : float
        Blur of the skin matte (Gaussian sigma, a fraction of the image diagonal, in
        [0, ``SKIN_FEATHER_MAX``] = [0, 0.1]) so the key light has no edge.
    refine, refine_params, refine_band
        Matte refinement, as in :class:`effects.PortraitBlurParams`.
    matte_floor : float
        As in :class:`effects.PortraitBlurParams`: matte values below it are taken as 0, and
        the hair and glasses mattes count only within three ``refine_band`` of the subject. The
        looks had taken the hair matte anywhere in the frame: a stranger standing behind the
        subject (person_binary 131) or the diners behind a table (COCO 110) stayed lit on the
        black stage and dark on the white one.
    """

    strength: float = 1.0
    key_light_ev: float = 0.35
    key_light_ceiling: float = 0.92
    background_ev: float = -0.5
    subject_ev: float = 0.0
    high_key_level: float = 0.45
    highlight_knee: float = 0.75
    spot_falloff: float = 0.6
    contour_depth: float = 0.6
    light_angle: float = 135.0
    mono_contrast: float = 1.25
    high_key_contrast: float = 1.1
    skin_feather: float = 0.01
    refine: bool = True
    refine_params: RefineMatteParams = field(default_factory=lambda: RefineMatteParams(radius=4, eps=1e-3, max_work_pixels=250_000))
    refine_band: float = 0.02
    matte_floor: float = 0.1

    def __post_init__(self):
        check_field_types(self)
        def bad(name, expected):
            raise ValueError(f"PortraitLightingParams.{name}: expected {expected}, got {getattr(self, name)!r}.")

        for name in ("strength", "spot_falloff", "contour_depth"):
            v = getattr(self, name)
            if not (np.isfinite(v) and 0 <= v <= 1):
                bad(name, "a number in [0, 1]")
        for name in ("key_light_ev", "background_ev", "subject_ev"):
            # (2000 EV overflowed to NaN or an OverflowError; a camera's whole range is ~30 EV)
            if not (np.isfinite(getattr(self, name)) and -20 <= getattr(self, name) <= 20):
                bad(name, "a number of EV in [-20, 20]")
        if not np.isfinite(self.light_angle):
            bad("light_angle", "a finite number")
        if not _is_refine_band(self.refine_band):
            bad("refine_band", _REFINE_BAND_EXPECTED)
        for name in ("high_key_level", "highlight_knee"):
            if not (np.isfinite(getattr(self, name)) and 0 < getattr(self, name) < 1):
                bad(name, "a number in (0, 1)")
        for name in ("mono_contrast", "high_key_contrast"):
            if not (np.isfinite(getattr(self, name)) and 0.2 <= getattr(self, name) <= 5):
                bad(name, "a number in [0.2, 5]")
        if not (np.isfinite(self.key_light_ceiling) and self.key_light_ceiling > 0):
            bad("key_light_ceiling", "a number > 0")
        # The feather is mirrored out by three sigmas at full resolution (_wide_gaussian), so its
        # memory grows with its square: 1e6 asked for exabytes, 1e9 overflowed OpenCV's int, and
        # 1.0 (a whole diagonal) took 9 GB on a 12 MP photo. A tenth of the diagonal (ten times the
        # default) is already wider than any face, and costs about 0.35 GB at 12 MP.
        if not (np.isfinite(self.skin_feather) and 0 <= self.skin_feather <= SKIN_FEATHER_MAX):
            bad("skin_feather", f"a number in [0, {SKIN_FEATHER_MAX}] (a fraction of the image diagonal)")
        if not isinstance(self.refine_params, RefineMatteParams):
            bad("refine_params", "a RefineMatteParams")
        if not (0 <= self.matte_floor < 1):
            bad("matte_floor", "a number in [0, 1)")


# --------------------------------------------------------------------------- helpers
def _luminance(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ _Y709).astype(np.float32)


def _contrast(y: np.ndarray, contrast: float, pivot: float) -> np.ndarray:
    """A log-exposure slope ``contrast`` around ``pivot`` (kept where it is), float32."""
    if contrast == 1.0:
        return y.astype(np.float32, copy=False)
    ratio = np.maximum(y, 0.0) / np.float32(pivot)
    return (np.float32(pivot) * np.power(ratio, np.float32(contrast))).astype(np.float32)


def _grey_rgb(y: np.ndarray) -> np.ndarray:
    """H×W luminance clipped to [0, 1], as H×W×3 grey."""
    return np.repeat(np.clip(y, 0.0, 1.0)[..., None], 3, axis=2)


def _mono(rgb: np.ndarray, p: PortraitLightingParams, skin: "np.ndarray | None") -> np.ndarray:
    """BT.709 luminance with a log-exposure slope ``mono_contrast`` around 0.18, as H×W×3 gray.

    The slope brightens what is bright: each face (see :func:`_per_face`) is first exposed no
    brighter than brings its bright side to ``key_light_ceiling`` after the slope, and the
    highlights roll off above ``highlight_knee`` (:func:`_shoulder`). Clipped, the slope put
    21 % of a fair face's skin at sRGB 250 or more (FASSEG train 03_030), flat white.
    """
    y = _luminance(rgb)
    c = p.mono_contrast
    if skin is not None:
        def exposure(level):  # (0.18 (g level / 0.18)^c = ceiling)
            return min(1.0, 0.18 / max(level, 1e-6) * (p.key_light_ceiling / 0.18) ** (1.0 / c))

        y *= _per_face(skin, lambda step: y[::step, ::step], exposure, 1.0, smooth=_MONO_EXPOSURE_SMOOTH)
    return _grey_rgb(_shoulder(_contrast(y, c, 0.18), p.highlight_knee))


#: Bounds of the metering gain of ``high_key_mono``: at most +1 EV (+1.5 turned a dark-skinned
#: face pale grey with a white forehead), at least -1 EV.
HIGH_KEY_GAIN_RANGE = (0.5, 2.0)


def _high_key_gain(y: np.ndarray, alpha: np.ndarray, skin: "np.ndarray | None", p: PortraitLightingParams) -> float:
    """Exposure gain that puts the median luminance of the subject's skin (``skin`` over 0.5 where
    the subject is, when that is at least 64 px; else the whole subject, alpha over 0.5) at
    ``high_key_level`` times ``2 ** subject_ev``, held to ``HIGH_KEY_GAIN_RANGE``, and no more
    than keeps the brightest 5 % of it at or below ``highlight_knee`` after the contrast slope
    (where the roll-off starts: skin keeps its texture; a brightening gain is never forced below
    1 by it)."""
    core = alpha > 0.5
    metered = core & (skin > 0.5) if skin is not None else core
    on_skin = skin is not None and np.count_nonzero(metered) >= 64
    if not on_skin:
        metered = core
    if not metered.any():
        return 1.0
    median, bright = (float(v) for v in np.percentile(y[metered], [50, 95]))
    # A bright face is metered down no further than undoing the key light on it: to the level
    # it went grey on the white background, 0.39 EV darker than it came (photographer); not
    # metered down at all, a flash-lit face blew out (8 % of the frame at white).
    floor = max(HIGH_KEY_GAIN_RANGE[0], _ev(-p.key_light_ev) if on_skin else 1.0)
    gain = float(np.clip(p.high_key_level * _ev(p.subject_ev) / max(median, 1e-4), floor, HIGH_KEY_GAIN_RANGE[1]))
    if gain < 1.0:
        return gain
    # After the slope c around the level L, g * bright becomes L (g * bright / L)^c: at most the
    # knee for g <= (L / bright) (knee / L)^(1/c).
    level, c = p.high_key_level, p.high_key_contrast
    cap = level / max(bright, 1e-4) * (p.highlight_knee / level) ** (1.0 / c)
    return min(gain, max(1.0, cap))


def _shoulder(y: np.ndarray, knee: float) -> np.ndarray:
    """Identity below ``knee``, above it ``knee + (1 - knee) tanh((y - knee) / (1 - knee))``:
    slope 1 at the knee, monotone, approaching 1 (white), which float32 reaches only far above
    the knee; in place, returned."""
    over = y > knee
    if over.any():
        y[over] = knee + (1.0 - knee) * np.tanh((y[over] - knee) / (1.0 - knee))
    return y


#: Percentile of a face's brightness that ``key_light_ceiling`` holds, and the fewest pixels
#: (on the metering grid) a connected region of skin needs to be metered on its own.
_FACE_PERCENTILE = 95
_MIN_FACE = 16
#: Longer side of the grid faces are metered on (a percentile needs no 12 MP).
_FACE_GRID = 512
#: Blur of stage_mono's per-face exposure map, a fraction of the frame's diagonal: it applies
#: to the whole subject, whose clothes lie between a face and a hand metered apart.
_MONO_EXPOSURE_SMOOTH = 0.1


def _per_face(skin: np.ndarray, brightness, value_of, default: float, *,
              smooth: float = 0.0) -> "np.ndarray | float":
    """A value per face, from the face's bright side: ``value_of(level)`` with ``level`` the
    ``_FACE_PERCENTILE`` th percentile of the brightness over the face (``brightness(step)``
    gives it on the grid ``[::step, ::step]``).

    Faces are the connected regions of ``skin`` over 0.5 on a grid of about 512 px, each with
    at least ``_MIN_FACE`` pixels there; every other pixel takes the value of the nearest face
    (a face's soft edge, the body under it, a hand too small to meter), by a distance transform
    with labels (Borgefors 1986). Metered together, one fair face had switched the key light off
    for a darker face beside it. ``default`` where there is no face. ``smooth``: the map is
    blurred with a Gaussian of that fraction of the frame's diagonal, for a value that applies
    beyond the skin (a sharp map put a step where two regions' nearest areas meet). Returns a
    float32 H×W map, or a float when the value is the same everywhere.
    """
    H, W = skin.shape
    step = max(1, -(-max(H, W) // _FACE_GRID))  # rounded up: the grid's longer side is at most 512
    on = (skin[::step, ::step] > 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(on, connectivity=8)
    sizes = np.bincount(labels.ravel(), minlength=count)
    faces = [k for k in range(1, count) if sizes[k] >= _MIN_FACE]
    if not faces:
        return float(default)
    grid_brightness = brightness(step)
    values = np.zeros(count, np.float32)
    for k in faces:
        values[k] = value_of(float(np.percentile(grid_brightness[labels == k], _FACE_PERCENTILE)))
    if np.all(values[faces] == values[faces[0]]):
        return float(values[faces[0]])
    metered = np.isin(labels, faces)
    # Each pixel: the label of the nearest metered pixel (zero pixels of the input, numbered in
    # scan order), hence its face.
    _, nearest = cv2.distanceTransformWithLabels((~metered).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    grid = values[labels[metered][nearest - 1]].astype(np.float32)
    if smooth > 0:
        grid = cv2.GaussianBlur(grid, (0, 0), smooth * float(np.hypot(*grid.shape)), borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(grid, (W, H), interpolation=cv2.INTER_LINEAR)


def _key_light(skin: np.ndarray | None, p: PortraitLightingParams, diag: float,
               F: "np.ndarray | None" = None) -> np.ndarray | float:
    """Multiplicative gain from a feathered skin matte (1 where no skin); with the subject's
    colours ``F``, a brightening key light is held per face to ``key_light_ceiling``."""
    if skin is None or p.key_light_ev == 0:
        return 1.0
    gain = float(2.0 ** p.key_light_ev - 1.0)
    if p.key_light_ev > 0 and F is not None:
        def held(level):  # 2^ev - 1, ev held so that the face's bright side reaches the ceiling
            return 2.0 ** min(p.key_light_ev, max(0.0, float(np.log2(p.key_light_ceiling / max(level, 1e-6))))) - 1.0

        gain = _per_face(skin, lambda step: F[::step, ::step].max(axis=2), held, gain)
        if np.isscalar(gain) and gain == 0:
            return 1.0
    s = skin
    if p.skin_feather > 0:
        s = _wide_gaussian(skin, max(0.5, p.skin_feather * diag))
    return (1.0 + gain * s)[..., None]


def _wide_gaussian(plane: np.ndarray, sigma: float) -> np.ndarray:
    """``cv2.GaussianBlur(plane, (0, 0), sigma)``, on a grid ``f = sigma // 8`` times coarser
    where ``f >= 2``.

    Why: the skin feather of a 12 MP portrait is a Gaussian of sigma 50 px, which OpenCV took
    4 s for at full resolution (over half of every lighting look). The plane is mirrored out by
    ``3 sigma`` as OpenCV's blur would (``BORDER_REFLECT_101``), so the coarse grid's own
    border is out of reach; area-reduced by ``f`` (a box of width ``f``: variance
    ``f^2 / 12``), blurred by the rest of the sigma, and brought up bilinearly (a triangle:
    ``f^2 / 6``): variances add, so ``sigma_small^2 = (sigma^2 - f^2 / 4) / f^2``, about 8
    cells or more. On the benchmark portrait's skin matte (sigma 50): 0.04 s instead of 1.8-4 s,
    within 2e-3 of the full-resolution blur (``tests/effects/test_portrait_lighting.py``).

    ``plane``: float32 H×W; returns a new float32 H×W array.
    """
    f = int(sigma // 8)
    if f < 2:
        return cv2.GaussianBlur(plane, (0, 0), sigma)
    h, w = plane.shape
    pad = int(np.ceil(3 * sigma / f)) * f  # a whole number of cells: the grids stay aligned
    padded = cv2.copyMakeBorder(plane, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    ph, pw = padded.shape
    small_w, small_h = -(-pw // f), -(-ph // f)
    small = cv2.resize(padded, (small_w, small_h), interpolation=cv2.INTER_AREA)
    f_exact = pw / small_w
    small_sigma = float(np.sqrt(max(sigma * sigma - f_exact * f_exact / 4.0, 0.25))) / f_exact
    small = cv2.GaussianBlur(small, (0, 0), small_sigma)
    return cv2.resize(small, (pw, ph), interpolation=cv2.INTER_LINEAR)[pad:pad + h, pad:pad + w]


def _key_lit(F: np.ndarray, key: "np.ndarray | float", knee: float) -> np.ndarray:
    """``F * key`` with the brightening rolled off: where the lit pixel's largest channel passes
    ``knee`` it follows :func:`_shoulder` (all channels scaled alike, so the hue is kept), never
    ending below the unlit pixel; a key light below 1 (a negative ``key_light_ev``) darkens as
    asked. With a hard clip the studio look put 12.8 % of the skin of 25 CelebA test portraits
    at a channel of 1, now 0.2 % (``benchmarks/develop_look.py --portrait studio``); unlit
    pixels are unchanged.

    ``F``: H×W×3 float32; ``key``: 1.0, or H×W×1 float32 gains (:func:`_key_light`). Returns
    ``F`` itself for a key of 1, else a new H×W×3 float32 array, made by :func:`_key_lit_rows`
    in row bands (one pass; the numpy chain made ten, and a strided channel maximum).
    """
    if np.isscalar(key) and key == 1.0:
        return F
    H, W = F.shape[:2]
    F = np.ascontiguousarray(F, dtype=np.float32)
    key = np.ascontiguousarray(key, dtype=np.float32).reshape(H, W)
    out = np.empty((H, W, 3), np.float32)
    knee32, span = np.float32(knee), np.float32(1.0 - knee)

    def rows(y0: int, y1: int) -> None:
        _key_lit_rows(F[y0:y1].reshape(-1), key[y0:y1].reshape(-1), out[y0:y1].reshape(-1), knee32, span)

    run_in_row_bands(rows, H, W)
    return out


@kernel
def _key_lit_rows(F, key, out, knee, span):
    """:func:`_key_lit` on a band of pixels (flat), float32 as its numpy chain was.

    Fuses, per pixel: ``m0 = max over channels``, ``lit = m0·key``, the shoulder above ``knee``
    (``knee + span·tanh((lit − knee)/span)``, ``span = 1 − knee``), ``max(shoulder,
    min(m0, lit))``, the gain ``rolled / max(m0, 1e-6)`` (``key`` where m0 <= 1e-6) and
    ``F·gain``.

    Parameters
    ----------
    F : np.ndarray
        (3N,) float32 colours, channel-interleaved.
    key : np.ndarray
        (N,) float32 key-light gains.
    out : np.ndarray
        (3N,) float32 output, ``F`` times the rolled-off gain.
    knee, span : np.float32
        ``highlight_knee`` and ``1 − highlight_knee``.
    """
    tiny = np.float32(1e-6)
    for i in range(key.size):
        f0, f1, f2, k = F[3 * i], F[3 * i + 1], F[3 * i + 2], key[i]
        m0 = f0 if f0 > f1 else f1
        m0 = m0 if m0 > f2 else f2
        lit = m0 * k
        shoulder = knee + span * np.tanh((lit - knee) / span) if lit > knee else lit
        low = m0 if m0 < lit else lit
        rolled = shoulder if shoulder > low else low
        gain = rolled / m0 if m0 > tiny else k  # (m0 > 1e-6: the maximum with 1e-6 is m0)
        out[3 * i], out[3 * i + 1], out[3 * i + 2] = f0 * gain, f1 * gain, f2 * gain


def _spot(alpha: np.ndarray, p: PortraitLightingParams, skin: "np.ndarray | None" = None) -> np.ndarray:
    """Light falling off toward the bottom of the subject (per image row), from the top of the
    subject, or with a skin matte from below the face (the 80th percentile row of the skin):
    from the top, a close-up's face sat half-way down the falloff and came out 0.3-0.6 EV
    darker than without the look, muddy on black instead of lit."""
    rows = np.nonzero(alpha.max(axis=1) > 0.5)[0]
    H = alpha.shape[0]
    if rows.size == 0 or p.spot_falloff == 0:
        return np.ones((H, 1, 1), np.float32)
    top, bottom = rows[0], rows[-1]
    if skin is not None:
        per_row = (skin * (alpha > 0.5)).sum(axis=1)
        if per_row.sum() > 0:
            face_low = int(np.searchsorted(np.cumsum(per_row), 0.8 * per_row.sum()))
            top = min(max(top, face_low), bottom)
    t = np.clip((np.arange(H) - top) / max(1, bottom - top), 0.0, 1.0)
    t = t * t * (3 - 2 * t)  # smoothstep: no visible band where the falloff starts
    return (1.0 - p.spot_falloff * t).astype(np.float32)[:, None, None]


#: Blur of the contour relief (the subject's silhouette), as a fraction of the frame's longer
#: side, and the relief's steepest slope (1 = 45 degrees) within the subject.
_CONTOUR_BLUR = 0.06
_CONTOUR_SLOPE = 0.8


def _contour_shading(alpha: np.ndarray, skin: "np.ndarray | None", p: PortraitLightingParams) -> np.ndarray:
    """Lambert shading of a pseudo-relief of the subject lit from ``light_angle``.

    The relief is the subject's silhouette blurred (a soft dome, highest where the subject is
    widest) plus, with a skin matte, the skin's own dome blurred at its scale (a face is
    rounded on its own, not a flat top of the body's dome), scaled so its steepest slope inside
    the subject is ``_CONTOUR_SLOPE``; normals from its gradient. The surface facing the camera
    keeps its light (shade 1), the side turned away from the light darkens by up to
    ``contour_depth``, gradually. (A relief built from the distance to the edge has a crease
    along the subject's medial axis, where the normal flips: it drew a hard light/shadow line
    down the middle of every face, and put the whole far half in full shadow.)
    """
    H, W = alpha.shape
    f = max(1, int(max(H, W) // 512))  # the relief is smooth: build it on a small grid
    small = cv2.resize(alpha, (max(1, W // f), max(1, H // f)), interpolation=cv2.INTER_AREA)
    inside = small > 0.5
    if not inside.any() or min(small.shape) < 2:  # nothing to shade, or no gradient to take
        return np.ones((H, W, 1), np.float32)
    h = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(1.0, _CONTOUR_BLUR * max(small.shape)),
                         borderType=cv2.BORDER_REPLICATE)
    if skin is not None:
        face = cv2.resize(skin, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA) > 0.5
        face &= inside
        if face.any():
            # Blur at a quarter of the skin's size (its area's square root): the face's sides slope.
            sigma = max(1.0, 0.25 * float(np.sqrt(np.count_nonzero(face))))
            h += cv2.GaussianBlur(face.astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    gy, gx = np.gradient(h)
    steepest = float(np.percentile(np.hypot(gx, gy)[inside], 99))
    # A subject that fills the frame has no silhouette to shade: its relief is flat up to float
    # rounding (~1e-7), which a scale to _CONTOUR_SLOPE would turn into blotches of shade. Real
    # silhouettes give slopes of ~1 / (2.5 sigma) ~ 1e-2 per pixel here.
    k = _CONTOUR_SLOPE / max(steepest, 1e-3)
    n = np.stack([-k * gx, k * gy, np.ones_like(h)], axis=2)  # image y points down: flip for "up"
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    a = np.deg2rad(p.light_angle)
    light = np.array([np.cos(a), np.sin(a), 0.6], np.float32)
    light /= np.linalg.norm(light)
    lam = np.clip(n @ light, 0.0, 1.0) / light[2]  # 1 on surfaces facing the camera
    shade = 1.0 - p.contour_depth * np.clip(1.0 - lam, 0.0, 1.0)
    return cv2.resize(shade.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)[..., None]


def _ev(x: float) -> float:
    return float(2.0 ** x)


# --------------------------------------------------------------------------- looks
# Each look: (image, alpha, foreground colour, key-light gain, skin matte or None, params) -> image.
# The looks work in place on the lit frame, or on ``F`` itself (portrait_lighting's own new array,
# which _key_lit returns for a key of 1): written as products and sums of whole frames, each step
# was a new 12 MP frame (144 MB): a 12 MP develop with stage light peaked at 2.28 GB RSS, now 1.93.
def _on_background(lit, alpha, img, ev):
    """``alpha·lit + (1 − alpha)·img·ev``, written into ``lit`` (H×W×3 float32)."""
    a = alpha[..., None]
    np.multiply(a, lit, out=lit)
    background = (1 - a) * img
    background *= ev
    lit += background
    return lit


def _look_studio(img, alpha, F, key, skin, p):
    return _on_background(_key_lit(F, key, p.highlight_knee), alpha, img, _ev(0.5 * p.background_ev))


def _look_contour(img, alpha, F, key, skin, p):
    lit = _key_lit(F, key, p.highlight_knee)
    lit *= _contour_shading(alpha, skin, p)
    return _on_background(lit, alpha, img, _ev(p.background_ev))


def _look_stage(img, alpha, F, key, skin, p):
    lit = _key_lit(F, key, p.highlight_knee)
    np.multiply(alpha[..., None], lit, out=lit)
    lit *= _spot(alpha, p, skin)
    return lit


def _look_stage_mono(img, alpha, F, key, skin, p):
    lit = _key_lit(F, key, p.highlight_knee)
    lit *= _spot(alpha, p, skin)
    grey = _mono(lit, p, skin)
    return np.multiply(alpha[..., None], grey, out=grey)


def _look_high_key_mono(img, alpha, F, key, skin, p):
    # Metered, not a fixed lift: the face goes to high_key_level, contrast pivots there (so it
    # does not move the metered level), and highlights roll off toward the white background.
    # Two passes over row bands (_high_key_rows): the lit luminance, then, once the metering
    # gain is known, gain, contrast, shoulder and the composite on white.
    H, W = alpha.shape
    F = np.ascontiguousarray(F, dtype=np.float32)
    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    keyed = not np.isscalar(key)
    key = np.ascontiguousarray(key, dtype=np.float32).reshape(H, W) if keyed else np.ones((1, 1), np.float32)
    y = np.empty((H, W), np.float32)
    out = np.empty((H, W, 3), np.float32)
    weights = _Y709.astype(np.float32)
    c, level, knee = p.high_key_contrast, p.high_key_level, p.highlight_knee

    def run(*finish) -> None:
        """One pass of _high_key_rows over row bands (``finish``: its last seven arguments)."""
        def rows(y0: int, y1: int) -> None:
            k = key[y0:y1].reshape(-1) if keyed else key.reshape(-1)
            _high_key_rows(F[y0:y1].reshape(-1), k, keyed, weights, y[y0:y1].reshape(-1),
                           alpha[y0:y1].reshape(-1), out[y0:y1].reshape(-1), *finish)

        run_in_row_bands(rows, H, W)

    run(False, np.float32(1), False, np.float32(1), np.float32(1), np.float32(1), np.float32(0))  # y only
    gain = np.float32(_high_key_gain(y, alpha, skin, p))
    run(True, gain, c != 1.0, np.float32(level), np.float32(c), np.float32(knee), np.float32(1.0 - knee))
    return out


@kernel
def _high_key_rows(F, key, keyed, weights, y, alpha, out, finish, gain, contrast, pivot, slope, knee, span):
    """:func:`_look_high_key_mono` on a band of pixels (flat): its numpy chain, fused.

    Without ``finish``: ``y = luminance(F·key)`` (BT.709 weights; the metering reads it).
    With ``finish``: ``y·gain``, the contrast slope around ``pivot`` (:func:`_contrast`), the
    shoulder above ``knee`` (:func:`_shoulder`), clipped to [0, 1] and composited on white,
    ``α·y + (1 − α)`` in all three channels. Float32 with the numpy chain's operations in its
    order; one pass each, where the chain made about twelve (and a strided ``np.repeat``).

    Parameters
    ----------
    F : np.ndarray
        (3N,) float32 subject colours, channel-interleaved.
    key : np.ndarray
        (N,) float32 key-light gains when ``keyed``, else unused.
    keyed : bool
        Multiply by ``key`` (else the key light is 1).
    weights : np.ndarray
        (3,) float32 luminance weights.
    y : np.ndarray
        (N,) float32 luminance: written without ``finish``, read with it.
    alpha : np.ndarray
        (N,) float32 subject alpha in [0, 1] (read with ``finish``).
    out : np.ndarray
        (3N,) float32 grey subject on white (written with ``finish``).
    finish : bool
        Which pass (see above).
    gain : np.float32
        The metering gain.
    contrast : bool
        Apply the slope (its exponent is not 1).
    pivot, slope : np.float32
        The slope's pivot (``high_key_level``) and exponent (``high_key_contrast``).
    knee, span : np.float32
        ``highlight_knee`` and ``1 − highlight_knee``.
    """
    zero, one = np.float32(0.0), np.float32(1.0)
    w0, w1, w2 = weights[0], weights[1], weights[2]
    if not finish:
        for i in range(y.size):
            k = key[i] if keyed else one
            y[i] = ((F[3 * i] * k) * w0 + (F[3 * i + 1] * k) * w1) + (F[3 * i + 2] * k) * w2
        return
    for i in range(y.size):
        v = y[i] * gain
        if contrast:
            v = pivot * np.power((v if v > zero else zero) / pivot, slope)
        if v > knee:
            v = knee + span * np.tanh((v - knee) / span)
        v = clamp01(v)
        a = alpha[i]
        g = a * v + (one - a)
        out[3 * i], out[3 * i + 1], out[3 * i + 2] = g, g, g


#: The looks, name -> function. Read-only, as ``effects.STYLE_PRESETS`` (no global configuration).
LOOKS = MappingProxyType({
    "studio": _look_studio,
    "contour": _look_contour,
    "stage": _look_stage,
    "stage_mono": _look_stage_mono,
    "high_key_mono": _look_high_key_mono,
})


@through_two_columns
def portrait_lighting(
    image: np.ndarray,
    subject_mask: np.ndarray,
    *,
    look: str,
    skin_mask: np.ndarray | None = None,
    hair_mask: np.ndarray | None = None,
    glasses_mask: np.ndarray | None = None,
    params: PortraitLightingParams | None = None,
) -> np.ndarray:
    """Relight a portrait with one of the Portrait Lighting looks (see module docstring).

    Parameters
    ----------
    image : np.ndarray
        H×W×3 float32 linear-light RGB in [0, 1].
    subject_mask : np.ndarray
        H×W float32 matte in [0, 1], or H×W×N (one matte per person).
    look : str
        One of ``LOOKS``: "studio", "contour", "stage", "stage_mono",
        "high_key_mono".
    skin_mask : np.ndarray, optional
        H×W float32 skin matte in [0, 1]; the face/skin gets the key light.
    hair_mask, glasses_mask : np.ndarray, optional
        H×W float32 mattes in [0, 1], part of the subject (soft edges).
    params : PortraitLightingParams, optional
        Options; defaults to ``PortraitLightingParams()``.

    Returns
    -------
    np.ndarray
        H×W×3 float32 linear RGB in [0, 1], a new array.

    Raises
    ------
    TypeError, ValueError
        On an unknown look, non-float or non-array inputs, wrong shapes,
        NaN/inf, masks outside [0, 1].
    """
    if not isinstance(look, str) or look not in LOOKS:
        raise ValueError(f"look: expected one of {sorted(LOOKS)}, got {look!r}.")
    p = PortraitLightingParams() if params is None else params
    if not isinstance(p, PortraitLightingParams):
        raise TypeError(f"params: expected PortraitLightingParams or None, got {type(p).__name__}.")
    img = _check_image(image)
    H, W = img.shape[:2]
    subj = _check_mask(subject_mask, "subject_mask", (H, W), allow_stack=True)
    extra = [_check_mask(m, n, (H, W)) for m, n in ((hair_mask, "hair_mask"), (glasses_mask, "glasses_mask")) if m is not None]
    skin = None if skin_mask is None else _check_mask(skin_mask, "skin_mask", (H, W), own=False)  # (np.minimum below)
    if p.strength == 0:
        return np.clip(img, 0.0, 1.0)  # (a new array, in range as the docstring says)

    mattes = _subject_mattes(subj, extra, p.matte_floor, p.refine_band)
    alpha = subject_alpha(img, mattes, refine=p.refine, refine_params=p.refine_params, band=p.refine_band)
    F = foreground_colour(img, alpha)
    if skin is not None:
        skin = np.minimum(skin, alpha)  # light only skin that belongs to the subject
    # (high_key_mono meters the lit face itself, bright faces included: its key light is whole.)
    key = _key_light(skin, p, float(np.hypot(H, W)), None if look == "high_key_mono" else F)
    out = LOOKS[look](img, alpha, F, key, skin, p)
    if p.strength < 1:
        out = img + np.float32(p.strength) * (out - img)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)  # (out: a new array of the look's)


def stage_light(
    image: np.ndarray,
    subject_mask: np.ndarray,
    *,
    mono: bool = False,
    skin_mask: np.ndarray | None = None,
    hair_mask: np.ndarray | None = None,
    glasses_mask: np.ndarray | None = None,
    params: PortraitLightingParams | None = None,
) -> np.ndarray:
    """Stage light: the subject spotlit on a black background (``mono`` for black and white).

    Thin wrapper of :func:`portrait_lighting` with ``look="stage"`` or
    ``"stage_mono"``; arguments and return value as there.
    """
    check_flag(mono, "mono")  # (a truthy "no" was taken as black and white)
    return portrait_lighting(image, subject_mask, look="stage_mono" if mono else "stage", skin_mask=skin_mask,
                             hair_mask=hair_mask, glasses_mask=glasses_mask, params=params)


def studio_light(
    image: np.ndarray,
    subject_mask: np.ndarray,
    *,
    skin_mask: np.ndarray | None = None,
    hair_mask: np.ndarray | None = None,
    glasses_mask: np.ndarray | None = None,
    params: PortraitLightingParams | None = None,
) -> np.ndarray:
    """Studio light: key light on the face, background slightly darker (see :func:`portrait_lighting`)."""
    return portrait_lighting(image, subject_mask, look="studio", skin_mask=skin_mask, hair_mask=hair_mask,
                             glasses_mask=glasses_mask, params=params)


def contour_light(
    image: np.ndarray,
    subject_mask: np.ndarray,
    *,
    skin_mask: np.ndarray | None = None,
    hair_mask: np.ndarray | None = None,
    glasses_mask: np.ndarray | None = None,
    params: PortraitLightingParams | None = None,
) -> np.ndarray:
    """Contour light: directional shading of the subject (see :func:`portrait_lighting`)."""
    return portrait_lighting(image, subject_mask, look="contour", skin_mask=skin_mask, hair_mask=hair_mask,
                             glasses_mask=glasses_mask, params=params)


def high_key_mono(
    image: np.ndarray,
    subject_mask: np.ndarray,
    *,
    skin_mask: np.ndarray | None = None,
    hair_mask: np.ndarray | None = None,
    glasses_mask: np.ndarray | None = None,
    params: PortraitLightingParams | None = None,
) -> np.ndarray:
    """High-key mono: black-and-white subject on white (see :func:`portrait_lighting`)."""
    return portrait_lighting(image, subject_mask, look="high_key_mono", skin_mask=skin_mask, hair_mask=hair_mask,
                             glasses_mask=glasses_mask, params=params)
