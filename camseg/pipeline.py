"""``develop()``: the whole camera pipeline in one call.

Segmentation runs once and its mattes feed every stage::

    segment ─► denoise (sky/skin aware) ─► sharpen (sky/skin aware)
            ─► tone map (per person) ─► Photographic Style ─► portrait effect (optional)

Every choice lives in one plain-data, JSON-serialisable :class:`DevelopSettings`;
the same settings object drives the Python API, the ``camseg develop`` command
and batch jobs. The stages themselves are the pure functions of the
:mod:`effects` package; this module only wires segmentation into them.

The stage list is data (:data:`STAGES`): each entry holds its effect function,
how to call it, and when it applies. A stage that is off, or has nothing to do
(no person for a person stage), is reported as ``"skipped"`` — never faked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from types import MappingProxyType
from dataclasses import dataclass, field

from typing import Any, Callable

import cv2
import numpy as np

import effects
from effects._bands import run_in_row_bands
from effects._jit import kernel, read_only_contiguous
from effects._srgb import pow_in_place
from effects._validate import clip_unit_in_place, min_max, vouch, vouched_ranges
from camseg.io import Photo, as_linear_rgb, read_photo, rgb_to_xyz_d65, to_srgb_primaries

__all__ = [
    "DevelopSettings",
    "DevelopReport",
    "StageReport",
    "DevelopResult",
    "STAGES",
    "PORTRAIT_EFFECTS",
    "develop",
    "check_settings",
    "available_styles",
    "available_portrait_effects",
]


def _nan_in(value, where: str = "") -> "str | None":
    """The index path (``"['portrait']['f_number']"``) of the first NaN in nested dicts and lists, or None."""
    if isinstance(value, float):
        return where if value != value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _nan_in(item, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None


def _plain(value):
    """A deep copy of nested dicts / lists / tuples with numpy scalars as Python values and
    tuples as lists, JSON's form: ``from_json(s.to_json()) == s`` (a tuple in params compared
    unequal to the list read back). A params dataclass given as a value (``refine_params=
    effects.RefineMatteParams(...)``) becomes the dict of its fields, which ``params`` also
    takes: kept as an object, it made ``to_json()``, ``develop(..., return_details=True)``
    and ``--save-settings`` fail with "not JSON serializable", after the photo was developed."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class DevelopSettings:
    """Every choice :func:`develop` makes, as plain serialisable data.

    Attributes
    ----------
    style : str
        Photographic Style preset name (see :func:`available_styles`), e.g.
        ``"standard"``, ``"rich_contrast"``, ``"vibrant"``, ``"warm"``, ``"cool"``.
    style_strength : float
        In [0, 2]: 0 = style off, 1 = full preset, 2 = twice its change.
    portrait : str or None
        Portrait effect (see :func:`available_portrait_effects`): ``"blur"``
        (background blur) or a lighting look such as ``"stage_light"``,
        ``"stage_light_mono"``; None = no portrait effect.
    denoise, sharpen, tone_map : bool
        Switch the corresponding stage on or off.
    iso : float or None
        ISO speed for the noise model; None = from the photo's EXIF, else estimated.
    params : dict
        Per-stage overrides of the effects' params dataclasses, keyed by stage
        name, e.g. ``{"denoise": {"strength": 1.5}, "portrait": {"f_number": 1.8}}``.
        Values must be JSON types (lists become tuples where the field is a tuple, and a
        dict of fields makes a nested params dataclass such as ``refine_params``).
    """

    style: str = "standard"
    style_strength: float = 1.0
    portrait: "str | None" = None
    denoise: bool = True
    sharpen: bool = True
    tone_map: bool = True
    iso: "float | None" = None
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        # numpy scalars (np.float32(1.5), np.bool_(False)) are taken as the Python values they
        # hold: refused before as "must be a number", and unwritable as JSON. The params are
        # copied, so the caller's dict cannot change them after they were checked.
        for name in ("style_strength", "denoise", "sharpen", "tone_map", "iso"):
            value = getattr(self, name)
            if isinstance(value, np.generic):
                object.__setattr__(self, name, value.item())
        if isinstance(self.params, dict):
            object.__setattr__(self, "params", _plain(self.params))
        if not isinstance(self.style, str) or not self.style:
            raise TypeError(f"style must be a preset name (str), got {self.style!r}; "
                            "see camseg.pipeline.available_styles()")
        if isinstance(self.style_strength, bool) or not isinstance(self.style_strength, (int, float)) \
                or not 0.0 <= float(self.style_strength) <= 2.0:
            raise ValueError(f"style_strength must be a number in [0, 2], got {self.style_strength!r}")
        if self.portrait is not None and (not isinstance(self.portrait, str) or not self.portrait):
            raise TypeError(f"portrait must be an effect name or None, got {self.portrait!r}; "
                            "see camseg.pipeline.available_portrait_effects()")
        for name in ("denoise", "sharpen", "tone_map"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.iso is not None and (isinstance(self.iso, bool) or not isinstance(self.iso, (int, float))
                                     or not 1 <= self.iso <= 10_000_000):
            raise ValueError(f"iso must be an EXIF ISO value in [1, 1e7] or None, got {self.iso!r}")
        if not isinstance(self.params, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in self.params.items()):
            raise TypeError("params must be a dict of stage name -> dict of parameter overrides, "
                            f"got {self.params!r}")
        unknown = set(self.params) - {s.name for s in STAGES}
        if unknown:
            raise ValueError(f"params has unknown stage names {sorted(unknown)}; "
                             f"valid names are {[s.name for s in STAGES]}")
        # No parameter is NaN. (One in a stage turned off is not checked by its effect, and
        # to_json() wrote it as NaN, which is not JSON: other tools refused the settings file.)
        where = _nan_in(self.params)
        if where is not None:
            raise ValueError(f"params{where} is NaN; give a number (see the stage's params dataclass)")

    def __hash__(self) -> int:
        # The fields, with the params as nested sorted tuples: a frozen dataclass's own hash
        # raised on the dict. Numbers hash by value (1, 1.0 and True alike), as == compares them.
        def frozen(value):
            if isinstance(value, dict):
                return tuple(sorted((k, frozen(v)) for k, v in value.items()))
            return tuple(frozen(v) for v in value) if isinstance(value, (list, tuple)) else value

        return hash(tuple(frozen(getattr(self, f.name)) for f in dataclasses.fields(self)))

    def to_dict(self) -> dict:
        """Plain dict (JSON-compatible) of every setting."""
        out = dataclasses.asdict(self)
        out["params"] = json.loads(json.dumps(self.params))  # deep copy, tuples -> lists
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "DevelopSettings":
        """Inverse of :meth:`to_dict`; unknown keys are an error (typos must not pass silently)."""
        if not isinstance(data, dict):
            raise TypeError(f"settings data must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; valid keys are {sorted(names)}")
        return cls(**data)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DevelopSettings":
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def replace(self, **changes) -> "DevelopSettings":
        """A copy with some fields changed (unknown names raise ValueError)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown develop options {sorted(unknown)}; valid options are {sorted(names)}")
        portrait = changes.get("portrait", self.portrait)
        if ("params" not in changes and portrait != self.portrait and portrait in PORTRAIT_EFFECTS
                and self.params.get("portrait")):
            # Options of the effect replaced mean nothing to the new one (a saved blur's f_number
            # made `--settings blur.json --portrait stage_light` fail on an unknown field): the
            # ones the new effect lacks are dropped, the ones it shares are kept.
            known = {f.name for f in dataclasses.fields(_params_class(PORTRAIT_EFFECTS[portrait][0], "portrait"))}
            params = {stage: dict(values) for stage, values in self.params.items()}
            params["portrait"] = {k: v for k, v in params["portrait"].items() if k in known}
            if not params["portrait"]:
                del params["portrait"]
            changes["params"] = params
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class StageReport:
    """What one stage did: ``status`` is "applied" or "skipped" (off, or nothing to do)."""

    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class DevelopReport:
    """A small account of a :func:`develop` run (all plain data; see :meth:`to_dict`)."""

    stages: tuple
    image_shape: tuple
    colour_space: str
    persons: int
    sky_fraction: float
    skin_fraction: float
    settings: dict
    notes: tuple = ()

    @property
    def total_seconds(self) -> float:
        return float(sum(s.seconds for s in self.stages))

    def stage(self, name: str) -> StageReport:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage named {name!r}; stages are {[s.name for s in self.stages]}")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["total_seconds"] = self.total_seconds
        return out

    def __str__(self) -> str:
        h, w = self.image_shape[:2]
        lines = [f"developed {w}×{h} ({self.colour_space}): {self.persons} person(s), "
                 f"sky {self.sky_fraction:.0%}, skin {self.skin_fraction:.0%}"]
        for s in self.stages:
            lines.append(f"  {s.name:<13} {s.status:<11} {s.seconds * 1000:8.0f} ms  {s.detail}")
        lines.append(f"  {'total':<13} {'':<11} {self.total_seconds * 1000:8.0f} ms")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class DevelopResult:
    """Returned by ``develop(..., return_details=True)``.

    ``image`` is what :func:`develop` returns by default (a :class:`~camseg.io.Photo`
    for a file or Photo input, an array for an array input); ``segmentation``
    is the segmentation all stages used; ``report`` a :class:`DevelopReport`.
    """

    image: Any
    segmentation: Any
    report: DevelopReport


# ---------------------------------------------------------------------------
# Stage table
# ---------------------------------------------------------------------------

def _params_class(fn: Callable, stage: str) -> type:
    """The params dataclass of effect ``fn`` (the annotation of its ``params`` argument)."""
    import inspect
    import typing

    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - fall back to the raw annotation below
        hints = {}
    if "params" not in inspect.signature(fn).parameters:
        raise ValueError(f"params[{stage!r}]: the {stage} stage takes no params; "
                         + ("choose a preset with style=... and its strength with style_strength"
                            if stage == "style" else "remove it"))
    annotation = hints.get("params") or inspect.signature(fn).parameters["params"].annotation
    candidates = [a for a in typing.get_args(annotation) or (annotation,) if dataclasses.is_dataclass(a)]
    if not candidates:
        raise TypeError(f"cannot find the params class of effects.{fn.__name__} to apply params[{stage!r}]")
    return candidates[0]


def _params_for(fn: Callable, overrides: dict, stage: str):
    """Build ``fn``'s params dataclass from its defaults plus ``overrides`` (None if no overrides)."""
    if not overrides:
        return None
    cls = _params_class(fn, stage)
    return _with_overrides(cls(), overrides, f"params[{stage!r}]")


def _with_overrides(defaults, overrides: dict, where: str):
    """``defaults`` (a params dataclass instance) with ``overrides`` (JSON values) applied.

    A field whose default is itself a params dataclass (``refine_params``, a
    ``RefineMatteParams``) takes a dict of that class's fields, checked the same way: JSON
    has no other way to write it, and it was refused as "must be a RefineMatteParams".
    """
    cls = type(defaults)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"{where} has unknown fields {sorted(unknown)}; "
                         f"{cls.__name__} fields are {sorted(names)}")
    fixed = {}
    for name, value in overrides.items():
        default = getattr(defaults, name)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = _with_overrides(default, value, f"{where}[{name!r}]")
        # A value of another kind than the default's (null, a string for a number) reached the
        # effects' range checks as a raw "'<=' not supported between 'float' and 'NoneType'".
        kind = (bool if isinstance(default, bool) else (int, float) if isinstance(default, (int, float))
                else type(default))
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, kind):
            raise ValueError(f"{where}[{name!r}] must be {_kind_name(default)} like the default "
                             f"{default!r}, got {value!r}")
        fixed[name] = value
    return dataclasses.replace(defaults, **fixed)


def _kind_name(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if dataclasses.is_dataclass(value):
        return f"a dict of {type(value).__name__} fields"
    return "a list" if isinstance(value, tuple) else f"a {type(value).__name__}"


@dataclass(frozen=True)
class _Context:
    """Everything a stage may read: the segmentation, the settings, the photo's ISO and primaries."""

    seg: Any
    settings: DevelopSettings
    iso: "float | None"
    persons: list
    skin: "np.ndarray | None"
    sky: "np.ndarray | None"
    subject: "np.ndarray | None"
    teeth: "np.ndarray | None" = None
    portrait_people: list = field(default_factory=list)
    hair: "np.ndarray | None" = None
    glasses: "np.ndarray | None" = None
    subject_midpoint: float = 0.5
    rgb_to_xyz: "np.ndarray | None" = None  # the photo's primaries; None = sRGB


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: an effect function, when it applies, and how to call it.

    ``call(fn, image, ctx, params)`` returns ``(image, detail)`` or ``(None, why)``
    when there is nothing to do (e.g. no person for a person-only stage).
    """

    name: str
    function: Callable
    enabled: Callable
    call: Callable
    needs_persons: bool = False


def _call_denoise(fn, image, ctx, params):
    iso = ctx.settings.iso or ctx.iso
    out = fn(image, sky_mask=ctx.sky, skin_mask=ctx.skin, iso=iso, params=params)
    return out, f"iso={iso:g}" if iso else "noise estimated from the image"


def _call_sharpen(fn, image, ctx, params):
    return fn(image, sky_mask=ctx.sky, skin_mask=ctx.skin, params=params), ""


def _call_tone_map(fn, image, ctx, params):
    out, exposures = fn(image, ctx.persons, skin_masks=ctx.skin, sky_mask=ctx.sky, params=params,
                        return_gains=True)
    unmeasured = sum(e.weight == 0.0 for e in exposures)
    lift = effects.dim_photo_lift_ev(image, params=params)
    return out, (f"{len(ctx.persons)} person(s)"
                 + (f", {unmeasured} without skin rendered like the scene" if unmeasured else "")
                 + (f", dim photo lifted {lift:+.1f} EV" if lift >= 0.05 else ""))


def _call_style(fn, image, ctx, params):
    s = ctx.settings
    if s.style_strength == 0:
        return None, "strength 0"
    skin, teeth = (None if ctx.skin is None else style_skin_matte(ctx.skin)), ctx.teeth
    # (With the tone map's own test and spread: its toned_chroma_spread of 0 turns both off.)
    spread = s.params.get("tone_map", {}).get("toned_chroma_spread", effects.ToneMapParams.toned_chroma_spread)
    if skin is not None and not effects.STYLE_PRESETS[s.style].is_neutral \
            and effects.monochrome_tint(image, spread=spread) is not None:
        # A black-and-white photo's skin has no colour to keep: a style's warmth or coolness
        # is its toning and tones it whole. Kept from it, faces stayed grey on a warm-toned
        # print (R - B of sRGB mid-tones: skin +2, the rest +17 levels under warm).
        skin = teeth = None
    kwargs = dict(skin_mask=skin, sky_mask=ctx.sky, teeth_mask=teeth, strength=float(s.style_strength))
    if ctx.rgb_to_xyz is not None:  # a wide-gamut photo styled in its own primaries
        kwargs["rgb_to_xyz"] = ctx.rgb_to_xyz
    if params is not None:
        kwargs["params"] = params
    return fn(image, s.style, **kwargs), f"{s.style} at {s.style_strength:g}"


def _call_portrait(fn, image, ctx, params):
    if ctx.subject is None or float(ctx.subject.max(initial=0.0)) < 0.5:
        return None, "no person found: portrait effect not applied"
    share = float(np.mean(ctx.subject > 0.5))
    kind = ctx.settings.portrait
    needed = PORTRAIT_LIGHTING_MIN_SUBJECT_SHARE if fn is effects.portrait_lighting else PORTRAIT_MIN_SUBJECT_SHARE
    if share < needed:
        return None, (f"no portrait subject: the people cover {100 * share:.1f} % of the frame, {kind} "
                      f"needs {100 * needed:.0f} % (move closer or zoom in); effect not applied")
    kwargs = dict(PORTRAIT_EFFECTS[kind][1])
    # Hair and glasses mattes sharpen the subject edge where the person matte is weakest, made
    # decisive like the subject's alpha they extend. Raw, the hair matte's haze of 0.2-0.45
    # around a person in a light coat (a back view on foliage) entered the alpha at ~0.15 and
    # left a bright glow of sharp leaves around the coat. Lighting looks also treat the face
    # with the skin matte.
    for name in ("hair", "glasses"):
        if getattr(ctx, name) is not None:
            kwargs[f"{name}_mask"] = decisive_alpha(getattr(ctx, name))
    if fn is effects.portrait_lighting and ctx.skin is not None:
        kwargs["skin_mask"] = ctx.skin
    detail = f"{kind}, subject cut at matte {ctx.subject_midpoint:.2f}"
    if fn is effects.portrait_blur:
        depth = ground_plane_depth(ctx.portrait_people, ctx.subject)
        if depth is not None:
            kwargs["depth"] = depth
            detail += ", ground in focus at the feet"
    if params is not None:
        kwargs["params"] = params
    return fn(image, ctx.subject, **kwargs), detail


#: Portrait effects: settings/CLI name -> (effect function, fixed keyword arguments). Read-only,
#: as effects.STYLE_PRESETS (no global configuration).
PORTRAIT_EFFECTS = MappingProxyType({
    "blur": (effects.portrait_blur, {}),
    "stage_light": (effects.portrait_lighting, {"look": "stage"}),
    "stage_light_mono": (effects.portrait_lighting, {"look": "stage_mono"}),
    "studio": (effects.portrait_lighting, {"look": "studio"}),
    "contour": (effects.portrait_lighting, {"look": "contour"}),
    "high_key_mono": (effects.portrait_lighting, {"look": "high_key_mono"}),
})

#: The pipeline, in order. Segmentation runs before and is reported as the first stage.
STAGES = (
    Stage("denoise", effects.denoise, lambda s: s.denoise, _call_denoise),
    Stage("sharpen", effects.sharpen, lambda s: s.sharpen, _call_sharpen),
    Stage("tone_map", effects.tone_map_people, lambda s: s.tone_map, _call_tone_map, needs_persons=True),
    Stage("style", effects.apply_style, lambda s: True, _call_style),
    Stage("portrait", None, lambda s: s.portrait is not None, _call_portrait, needs_persons=True),
)


def _stage_function(stage: Stage, settings: DevelopSettings) -> Callable:
    if stage.name == "portrait":
        if settings.portrait not in PORTRAIT_EFFECTS:
            raise ValueError(f"portrait={settings.portrait!r} is not a portrait effect; "
                             f"valid names are {sorted(PORTRAIT_EFFECTS)} (or None)")
        return PORTRAIT_EFFECTS[settings.portrait][0]
    return stage.function


def available_styles() -> list:
    """Photographic Style preset names."""
    return sorted(effects.STYLE_PRESETS)


def available_portrait_effects() -> list:
    """Portrait effect names accepted by ``DevelopSettings.portrait``."""
    return sorted(PORTRAIT_EFFECTS)


# ---------------------------------------------------------------------------
# develop()
# ---------------------------------------------------------------------------

#: Edge detail of the mattes the stages read (pixels of the photo they are refined
#: against): about 5× the model's output. Denoise, sharpen, tone and style use them as
#: smooth region weights, and the portrait stage re-refines its subject edge against
#: the full-resolution photo itself; full detail would cost ~4× more on a 12 MP photo.
STAGE_MATTE_PIXELS = 1_000_000

def _shows_teeth(seg) -> bool:
    """Whether the segmentation has teeth anywhere (matte over 0.5), read at model resolution
    when it can be (a full-resolution teeth matte costs a refinement most photos do not need)."""
    if hasattr(seg, "low_resolution") and "teeth" in getattr(seg, "categories", ()):
        return float(seg.low_resolution("teeth").max(initial=0.0)) >= 0.5
    teeth = optional_matte(seg, "teeth")
    return teeth is not None and float(teeth.max(initial=0.0)) >= 0.5


def _has_people(seg) -> bool:
    """Whether a segmentation computed people, without making their full-size mattes.

    camseg's Segmentation says so in ``categories`` (reading ``persons`` would upsample every
    person's matte to the photo's size: 64 MB each at 16 MP, which the stages, reading reduced
    mattes, never use). Masks from elsewhere need only a ``persons`` attribute.
    """
    computed = getattr(seg, "categories", None)
    if computed is not None and "persons" in computed:
        return True
    if "persons" in getattr(seg, "__dict__", {}):
        return True
    if computed is not None:
        return False
    try:
        getattr(seg, "persons")
    except (AttributeError, RuntimeError, ValueError, KeyError):
        return False
    return True


def optional_matte(seg, name):
    """``seg.<name>`` as float32, or None when the segmentation did not compute it."""
    try:
        m = getattr(seg, name)
    except (AttributeError, RuntimeError, ValueError, KeyError):
        return None
    return None if m is None else np.asarray(m, dtype=np.float32)


#: A person smaller than this fraction of the biggest one is background to a portrait (see
#: :func:`portrait_subject`).
PORTRAIT_SUBJECT_MIN_RELATIVE_AREA = 0.1

#: Portrait effects need their subject to cover at least this fraction of the frame. A phone's
#: portrait mode asks the photographer to come closer past about 2.5 m; a standing person at
#: 2.5 m fills about 6 % of a 4:3 frame through a 26 mm-equivalent lens, at 4–5 m about 2 %.
#: Below that the "subject" is a far figure (a snowboarder mid-air, 0.4 % of the frame) and
#: blurring or relighting everything around it only ruins the photo.
PORTRAIT_MIN_SUBJECT_SHARE = 0.02

#: The lighting looks light a face (stage and high-key also replace the whole background with
#: black or white): they need the subject a phone asks for, about 2.5 m away (6 % of the frame).
#: At 3-6 % a far figure in a bus station or a baseball field was left as a small lit cut-out in
#: black.
PORTRAIT_LIGHTING_MIN_SUBJECT_SHARE = 0.06


def portrait_people(persons, min_relative_area: float = PORTRAIT_SUBJECT_MIN_RELATIVE_AREA) -> list:
    """The people a portrait effect keeps in focus: those with at least ``min_relative_area`` of
    the biggest one's matte area.

    A portrait lens focuses on its subjects; a person with a tenth of the biggest one's area is
    about three times farther away (area falls with the square of distance) and lies far outside
    a wide-aperture depth of field, so the effect treats them as background. Such small
    detections are also where the model's false positives live (run17 took 2.7 % of the
    astronaut photo, the red stripes of the flag, for a person, and the blur kept that patch of
    flag sharp).

    Parameters
    ----------
    persons : sequence of np.ndarray
        Person mattes, float32 H×W in [0, 1], at least one.
    min_relative_area : float
        A person is kept when its matte area (sum) is at least this fraction in [0, 1] of the
        largest.

    Returns
    -------
    list of np.ndarray
        The kept mattes (the same arrays, in the given order).
    """
    persons = list(persons)
    if not persons:
        raise ValueError("portrait_people: expected at least one person matte, got none; "
                         "a portrait effect needs a subject")
    if not (isinstance(min_relative_area, (int, float, np.floating)) and 0.0 <= min_relative_area <= 1.0):
        raise ValueError(f"portrait_people: min_relative_area must be a number in [0, 1], got {min_relative_area!r}")
    shape = np.shape(persons[0])
    for i, m in enumerate(persons):
        if np.ndim(m) != 2 or np.shape(m) != shape:
            raise ValueError(f"portrait_people: persons[{i}] has shape {np.shape(m)}, expected one H×W shape for "
                             f"all mattes ({shape}); pass mattes of the same photo")
    areas = [float(np.sum(m, dtype=np.float64)) for m in persons]
    largest = max(areas)
    return [m for m, a in zip(persons, areas) if a >= min_relative_area * largest]


def portrait_subject(persons, min_relative_area: float = PORTRAIT_SUBJECT_MIN_RELATIVE_AREA) -> np.ndarray:
    """The subject of a portrait effect: the mattes of :func:`portrait_people`, summed.

    Parameters
    ----------
    persons : sequence of np.ndarray
        Person mattes, float32 H×W in [0, 1], at least one.
    min_relative_area : float
        See :func:`portrait_people`.

    Returns
    -------
    np.ndarray
        float32 H×W in [0, 1]: the kept mattes summed and clipped to 1 (a new array).
    """
    return _summed_mattes(portrait_people(persons, min_relative_area))


def _summed_mattes(mattes: list) -> np.ndarray:
    """float32 H×W: the mattes (at least one, same shape) summed and clipped to 1, a new array."""
    # The sum, not the maximum: the segmenter's person mattes split the union between people
    # (they sum to it), so where two people overlap each holds half and the maximum would open
    # a hole in the subject. Mattes that each claim the whole overlap are clipped back to 1.
    subject = np.zeros(np.shape(mattes[0]), np.float32)
    for m in mattes:
        subject += m
    return np.minimum(subject, 1.0, out=subject)


def ground_plane_depth(people, subject: np.ndarray, *, horizon: float = 0.15, far: float = 30.0,
                       min_standing_ratio: float = 1.6) -> "np.ndarray | None":
    """Relative depth of the ground under standing people, for a portrait blur that keeps the
    ground at their feet in focus; None where that geometry is not seen.

    Blurring the whole background by one amount makes a full-length shot look like a cut-out: the
    pavement the person stands on is as soft as the far houses. A real lens keeps the ground
    at the feet sharp and blurs it more with distance. With the camera level and the people on a
    ground plane, the plane's distance at image row ``y`` is ``z(y) = z_s · (y_f − y_h) / (y −
    y_h)`` (Hoiem, Efros, Hebert, "Putting Objects in Perspective", CVPR 2006): ``y_f`` the feet
    row (depth ``z_s`` = 1, the people), ``y_h`` the horizon, taken ``horizon`` of the tallest
    person's height below their top (a camera at chest to eye height); rows above it are ``far``.
    Rows below the feet come nearer than the people and blur as foreground.

    Applied only when every kept person stands (matte height at least ``min_standing_ratio``
    times its width) with their lowest point inside the frame: a head-and-shoulders portrait or
    a seated group keeps the one background blur (None). The depth-driven blur costs about three
    times the constant one (12 MP: 2.4 vs 0.7 s of CPU, ``effects.portrait_blur``).

    Parameters
    ----------
    people : sequence of np.ndarray
        The in-focus people's mattes (:func:`portrait_people`), float32 H×W in [0, 1].
    subject : np.ndarray
        Their union (the portrait subject alpha), float32 H×W in [0, 1]; depth 1 where > 0.5.
    horizon, far, min_standing_ratio : float
        As above.

    Returns
    -------
    np.ndarray or None
        float32 H×W relative distance (> 0, the people at 1), or None.
    """
    H, W = subject.shape
    tops, feet = [], []
    for m in people:
        on = m > 0.5
        rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
        if rows.size == 0:
            return None
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        if height < min_standing_ratio * width or rows[-1] >= H - 1 - max(2, 0.01 * H):
            return None  # not standing, or the feet are out of the frame: no ground seen at them
        tops.append(rows[0])
        feet.append(rows[-1])
    y_f = float(max(feet))
    tallest = int(np.argmax(np.subtract(feet, tops)))
    y_h = tops[tallest] + horizon * (feet[tallest] - tops[tallest])
    y = np.arange(H, dtype=np.float32)
    below = y > y_h + 0.5
    z = np.full(H, far, np.float32)
    z[below] = (y_f - y_h) / (y[below] - y_h)
    np.clip(z, 1.0 / far, far, out=z)
    depth = np.repeat(z[:, None], W, axis=1)
    depth[subject > 0.5] = 1.0
    return depth


#: The skin matte value a Photographic Style protects half-way (a cubed logit ramp about it,
#: :func:`style_skin_matte`). The model's skin matte is a calibrated probability: on labelled
#: skin of 24 fullbody_skin photos its quartiles are 0.61 / 0.82 / 0.95 and a tenth is under
#: 0.42, so the style's protection ``0.9 × skin`` left half the look on much real skin (vibrant
#: turned necks and chests orange). Measured with the style's skin matte as is vs this ramp
#: (mean CIELAB ΔE against the standard style, on the labelled skin / away from it):
#: vibrant 3.14 → 1.66 / 4.68 → 4.69, warm 1.94 → 1.10 / 5.36 → 5.42, cool 1.59 → 0.89 /
#: 4.93 → 4.97, rich_contrast 2.32 → 1.34 / 5.46 → 5.50; on 25 FASSEG faces
#: (``benchmarks/style_lips.py``) vibrant's skin chroma +1.61 → +1.07, its lips +2.72 → +2.26.
#: The haze the matte leaves off skin (0.1–0.2) now gets the look instead (0.1 → 0.02).
STYLE_SKIN_MIDPOINT = 0.3


def style_skin_matte(skin: np.ndarray) -> np.ndarray:
    """The skin matte a Photographic Style protects: the model's, made decisive about
    :data:`STYLE_SKIN_MIDPOINT`, then with the gaps skin encloses filled
    (:func:`skin_with_enclosed_gaps`).

    The ramp is ``sigmoid(3 (logit s - logit m))`` (:func:`decisive_alpha`, steepness 3):
    0.42 → 0.83, 0.6 → 0.98, 0.2 → 0.17, 0.1 → 0.02.

    Parameters
    ----------
    skin : np.ndarray
        float32 H×W skin matte in [0, 1].

    Returns
    -------
    np.ndarray
        New float32 H×W array in [0, 1].
    """
    return skin_with_enclosed_gaps(decisive_alpha(skin, 3.0, STYLE_SKIN_MIDPOINT))


#: A gap in the skin matte wholly enclosed by skin is a face's lips, eyes or eyebrows when it
#: is under this share of all the skin (at the grid of :func:`skin_with_enclosed_gaps`).
ENCLOSED_SKIN_GAP_MAX_SHARE = 0.15
#: Longer side of the grid the gaps are found on (about the model's resolution).
_SKIN_GAP_GRID = 512


def _enclosed_gaps(inside: np.ndarray, *, connectivity: int) -> tuple:
    """The pieces of the background (``inside`` 0) that touch no edge of the frame.

    ``inside``: uint8 H×W, 1 on the region (a subject, skin). Returns ``(labels, enclosed,
    area)``: the int32 H×W labels of the background's pieces (``connectivity`` 4 or 8), and for
    pieces 1…n−1 whether each is enclosed and its area in pixels.
    """
    _, labels, stats, _ = cv2.connectedComponentsWithStats(1 - inside, connectivity=connectivity)
    h, w = inside.shape
    x, y, bw, bh, area = (stats[1:, i] for i in range(5))
    return labels, (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h), area


def skin_with_enclosed_gaps(skin: np.ndarray) -> np.ndarray:
    """The skin matte with the gaps that skin wholly encloses (lips, eyes, eyebrows) filled in,
    for the Photographic Style's skin protection.

    The skin matte leaves a face's lips out (FASSEG labels them apart from skin), so a style
    protected the face and not the mouth: vibrant painted lips lipstick red (CIELAB chroma of
    the 50 held-out FASSEG test faces' lips +6.7 against the standard style, skin +1.7; +2.6
    with the gaps filled, ``python benchmarks/style_lips.py``). Hole filling (what
    reconstruction from the frame's edge does not reach: Soille, *Morphological Image
    Analysis*, 2nd ed. 2003), held to small holes: a gap counts when, on a grid of about
    512 px (the model's resolution), it is an 8-connected region of matte ≤ 0.5 that touches
    no edge of the frame and holds under :data:`ENCLOSED_SKIN_GAP_MAX_SHARE` of all the skin
    there; it is grown by a pixel of that grid and softened (σ 1.5 px there) over the border
    where the matte falls off, then brought up to the photo's size. Anything else that skin
    wholly encloses is kept from the style too: a pendant on a bare chest, a sticker or paint
    on a face, a small object held in two hands.

    Parameters
    ----------
    skin : np.ndarray
        float32 H×W skin matte in [0, 1].

    Returns
    -------
    np.ndarray
        float32 H×W in [0, 1]: ``max(skin, filled gaps)``; ``skin`` itself when it encloses none.
    """
    h, w = skin.shape
    step = max(1, int(round(max(h, w) / _SKIN_GAP_GRID)))
    small = cv2.resize(skin, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA) \
        if step > 1 else skin
    on = (small > 0.5).astype(np.uint8)
    total = int(on.sum())
    if total == 0:
        return skin
    labels, enclosed, area = _enclosed_gaps(on, connectivity=8)
    enclosed &= area <= ENCLOSED_SKIN_GAP_MAX_SHARE * total
    if not enclosed.any():
        return skin
    gaps = np.concatenate([[False], enclosed])[labels].astype(np.uint8)
    gaps = cv2.dilate(gaps, np.ones((3, 3), np.uint8)).astype(np.float32)
    gaps = cv2.GaussianBlur(gaps, (0, 0), 1.5)
    # Brought up to the photo's size only around the gaps (a face's features, not the frame).
    gh, gw = on.shape
    rows, cols = np.flatnonzero(gaps.max(axis=1) > 1e-3), np.flatnonzero(gaps.max(axis=0) > 1e-3)
    r0, r1, c0, c1 = max(0, rows[0] - 1), min(gh, rows[-1] + 2), max(0, cols[0] - 1), min(gw, cols[-1] + 2)
    sy, sx = h / gh, w / gw  # photo pixels per grid pixel (the reduced grid's exact scale)
    y0, y1, x0, x1 = int(r0 * sy), min(h, int(np.ceil(r1 * sy))), int(c0 * sx), min(w, int(np.ceil(c1 * sx)))
    # The crop's pixel centres mapped onto the grid, as a whole-frame bilinear resize maps them.
    map_x = ((np.arange(x0, x1, dtype=np.float32) + 0.5) / sx - 0.5)[None, :].repeat(y1 - y0, axis=0)
    map_y = ((np.arange(y0, y1, dtype=np.float32) + 0.5) / sy - 0.5)[:, None].repeat(x1 - x0, axis=1)
    up = cv2.remap(gaps, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = skin.copy()
    np.maximum(out[y0:y1, x0:x1], up, out=out[y0:y1, x0:x1])
    return out


def _with_teeth(subject: np.ndarray, teeth: "np.ndarray | None") -> np.ndarray:
    """The subject alpha with its people's teeth in it (a new array when there are any).

    The person mattes sit near 0.45 on a broad smile's teeth (bright, unlike skin), so stage
    light blacked the teeth out of a laughing face and blur softened them. The teeth matte
    joins the subject where the subject is already present around it (within a few pixels of
    its alpha over 0.1): teeth of someone left out of the subject stay background.
    """
    if teeth is None or float(teeth.max(initial=0.0)) < 0.5:
        return subject
    near = cv2.dilate((subject > 0.1).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(np.float32)
    return np.maximum(subject, decisive_alpha(teeth) * near)


#: An enclosed gap in the subject is filled when the person mattes still give it at least
#: ENCLOSED_GAP_MIN_MATTE on average, and it is smaller than ENCLOSED_GAP_MAX_SHARE of the
#: subject, times its mean matte over that minimum (more evidence, bigger gaps: a dark shirt
#: between a jacket's lapels, 1.2 % of the subject at 0.45, COCO 395). See :func:`_tidy_subject`.
ENCLOSED_GAP_MAX_SHARE = 0.01
ENCLOSED_GAP_MIN_MATTE = 0.15
#: A piece of the subject smaller than this fraction of its largest piece, and farther than
#: ISLAND_MIN_DISTANCE (a fraction of the frame's diagonal) from every bigger piece, is not
#: part of it (a ceiling lamp lit by stage light, COCO 536). See :func:`_tidy_subject`.
ISLAND_MAX_SHARE = 0.05
ISLAND_MIN_DISTANCE = 0.05


def _tidy_subject(subject: np.ndarray, mattes: np.ndarray, smallest_person: float = 0.0) -> np.ndarray:
    """The portrait subject's alpha with small gaps inside it filled and far islands outside it
    removed, the usual clean-up of a segmentation matte, measured against the person mattes.

    Gaps: a broad smile's teeth and a bright mouth sit at 0.2–0.6 in the person mattes, under
    the subject's cut: stage light blacked out the middle teeth that the teeth matte missed
    (CelebA 28405), and blur blurred a dark shirt between a jacket's lapels into the street
    (COCO 395). A gap wholly enclosed by the subject (alpha over 0.5, not reaching the frame's
    edge) is filled when the person mattes still see the person there (mean ``mattes`` ``m``
    at least ``ENCLOSED_GAP_MIN_MATTE``) and it is small: under ``ENCLOSED_GAP_MAX_SHARE * m /
    ENCLOSED_GAP_MIN_MATTE`` of the subject. The gap between an arm and the body shows
    background, which the mattes put near 0, and stays. A gap is filled one pixel wider (of
    the reduced grid below) than found: the ring around it is subject.

    Islands: a piece of the subject under ``ISLAND_MAX_SHARE`` of its largest piece and under
    half the smallest kept person, farther than ``ISLAND_MIN_DISTANCE`` of the frame's
    diagonal from every bigger piece, is a stray bit of a person matte (a ceiling lamp stage
    light left lit on black, COCO 536). It leaves the subject with its soft fringe (up to 0.4
    of that distance around it). A hand the matte cut off from its arm lies close, and a
    person standing apart from a group is as big as a person: both stay.

    Both are found on the frame reduced to about 1 MP (a 12 MP frame's connected components
    cost 0.25 s), with per-piece statistics in one pass each, and applied at full resolution.

    Parameters
    ----------
    subject : np.ndarray
        float32 H×W subject alpha in [0, 1].
    mattes : np.ndarray
        float32 H×W in [0, 1]: the summed person mattes the subject was cut from.
    smallest_person : float
        Matte area (fraction of the frame in [0, 1]) of the smallest person kept in focus; an
        island must be under half of it. 0: no such bound.

    Returns
    -------
    np.ndarray
        float32 H×W alpha in [0, 1]: ``subject`` itself when nothing changed, else a new array.
    """
    from scipy import ndimage  # (installed with scikit-image; imported here, only for portraits)

    h, w = subject.shape
    scale = min(1.0, float(np.sqrt(1e6 / max(1, h * w))))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def reduce(x):
        return x if scale == 1.0 else cv2.resize(x, size, interpolation=cv2.INTER_AREA)

    def enlarge(mask):  # a uint8 mask of the reduced grid -> bool H×W
        return (mask if scale == 1.0 else cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)).astype(bool)

    inside = (reduce(subject) > 0.5).astype(np.uint8)
    area = int(inside.sum())
    if area == 0:
        return subject
    sh, sw = inside.shape

    # Gaps: the background's pieces that touch no frame edge.
    labels, enclosed, count = _enclosed_gaps(inside, connectivity=4)
    most = ENCLOSED_GAP_MAX_SHARE * area / ENCLOSED_GAP_MIN_MATTE  # at a mean matte of 1
    ids = 1 + np.flatnonzero(enclosed & (count <= most))
    fill = None
    if ids.size:
        seen = np.asarray(ndimage.mean(reduce(mattes), labels, ids))
        ids = ids[(seen >= ENCLOSED_GAP_MIN_MATTE) & (count[ids - 1] <= most * seen)]
        if ids.size:
            fill = cv2.dilate(np.isin(labels, ids).astype(np.uint8), np.ones((3, 3), np.uint8))

    # Islands: small pieces far from every big one.
    clear = None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
    if n > 2:
        sizes = stats[1:, cv2.CC_STAT_AREA]
        small = sizes < ISLAND_MAX_SHARE * sizes.max()
        if smallest_person > 0:
            small &= sizes < 0.5 * smallest_person * sh * sw
        far = ISLAND_MIN_DISTANCE * float(np.hypot(sh, sw))
        if small.any():
            big = np.isin(labels, 1 + np.flatnonzero(~small))
            distance = cv2.distanceTransform((~big).astype(np.uint8), cv2.DIST_L2, 3)
            ids = 1 + np.flatnonzero(small)
            ids = ids[np.asarray(ndimage.minimum(distance, labels, ids)) > far]
            if ids.size:
                grow = max(1, min(int(round(0.4 * far)), int(far) - 1))  # never reaches a big piece
                clear = cv2.dilate(np.isin(labels, ids).astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8))
                clear[(labels > 0) & ~np.isin(labels, ids)] = 0  # other pieces stay as they are

    if fill is None and clear is None:
        return subject
    out = subject.copy()
    if fill is not None:
        out[enlarge(fill)] = 1.0
    if clear is not None:
        out[enlarge(clear)] = 0.0
    return out


#: Steepness of :func:`decisive_alpha` for the portrait subject (the person mattes); the
#: hair, glasses and teeth mattes that extend it keep the function's default.
SUBJECT_STEEPNESS = 8.0


def decisive_alpha(matte: np.ndarray, steepness: float = 3.0, midpoint: float = 0.5) -> np.ndarray:
    """A person matte made decisive enough to serve as a portrait effect's subject alpha.

    The model's mattes are calibrated probabilities: a subject's interior often sits at
    0.8–0.95 and a dark region beside it at 0.2–0.35; in group photos (flash, dark clothes,
    touching people) whole bodies sit at 0.55–0.75. The portrait effects build their trimap
    from cores at >= 0.99 and <= 0.01 and fill what the subject covers from the background, so
    such a matte leaves them almost no core and renders half-transparent people over a
    background filled in behind them: a dark table beside the astronaut turned a grey haze,
    three women in a COCO photo (536) ghosts. ``sigmoid(steepness · logit(p))`` keeps 0.5
    where it is; steepness 3 (the default, for the hair, glasses and teeth mattes, whose faint
    strands matter) moves 0.9 to 0.9986 and 0.3 to 0.073, but left a group's 0.6 at 0.77 (the
    ghosts), so the subject's person mattes use ``SUBJECT_STEEPNESS`` = 8: 0.6 to 0.96, 0.7 to
    0.999, 0.4 to 0.04. The effects then refine the edge against the photo. ``midpoint`` moves
    the value kept at 0.5, ``sigmoid(steepness · (logit p - logit midpoint))``: the subject's
    is :func:`subject_midpoint`, which follows a matte that is under-confident as a whole.

    Parameters
    ----------
    matte : np.ndarray
        float32 H×W in [0, 1]. Not modified.
    steepness : float
        Factor on the logit (> 0); 1 with ``midpoint`` 0.5 returns the matte unchanged in value.
    midpoint : float
        The matte value that maps to 0.5, in (0, 1).

    Returns
    -------
    np.ndarray
        New float32 H×W array in [0, 1].
    """
    if not 0.0 < midpoint < 1.0:
        raise ValueError(f"decisive_alpha: midpoint must be in (0, 1), got {midpoint!r}")
    # sigmoid(k · (logit p - logit m)) = a^k / (a^k + b^k) with a = p (1 - m), b = (1 - p) m:
    # a, b in [0, 1], so no overflow. Their larger one is at least min(m, 1 - m) / 2; where its
    # k-th power could underflow float32 (0/0) both are first divided by it (one becomes 1).
    rescale = bool(steepness * np.log(2.0 / min(midpoint, 1.0 - midpoint)) > 80.0)
    if float(steepness).is_integer():
        # Every caller's case: one compiled pass of the same float32 operations as the numpy
        # ones below, the power by squaring as cv2.pow's integer path takes it (12 MP: 16 ms on
        # 2 threads, not 67).
        values = read_only_contiguous(np.asarray(matte, dtype=np.float32)).reshape(-1)
        out = np.empty(np.shape(matte), np.float32)
        flat, c = out.reshape(-1), _DECISIVE_CHUNK
        # Value by value: the same result however the values are split over the threads.
        run_in_row_bands(lambda y0, y1: _decisive_values(
            values[y0 * c:y1 * c], int(steepness), np.float32(1.0 - midpoint), np.float32(midpoint),
            midpoint != 0.5, rescale, flat[y0 * c:y1 * c]), -(-values.size // c), c)
        return out
    p = np.clip(matte, 0.0, 1.0, out=np.empty(np.shape(matte), np.float32))
    q = np.float32(1.0) - p
    if midpoint != 0.5:
        p *= np.float32(1.0 - midpoint)
        q *= np.float32(midpoint)
    if rescale:
        top = np.maximum(p, q)
        p /= top
        q /= top
    pow_in_place(p, steepness)
    pow_in_place(q, steepness)
    q += p
    p /= q
    return p


#: Values per chunk of :func:`_decisive_values` (16 KB of float32 a buffer: they stay in L1).
_DECISIVE_CHUNK = 4096


@kernel
def _decisive_values(matte, power, p_scale, q_scale, scaled, rescale, out):
    """:func:`decisive_alpha` of float32 values (1-D, C-contiguous) into ``out`` for an integer
    steepness ``power`` >= 1: the numpy path's operations, value by value (``scaled``: multiply
    by ``p_scale`` = 1 - m and ``q_scale`` = m; ``rescale``: divide both by the larger first),
    the powers by squaring in cv2.pow's order (``a = 1``; while ``power > 1``: ``a *= x`` for
    an odd power, ``x *= x``, halve it; then ``a * x``). A chunk at a time, each step one loop
    over it (LLVM vectorises those; a loop over the power's bits per value it did not)."""
    one, zero = np.float32(1.0), np.float32(0.0)
    n = matte.shape[0]
    chunk = max(1, min(n, _DECISIVE_CHUNK))
    x_p, x_q = np.empty(chunk, np.float32), np.empty(chunk, np.float32)
    a_p, a_q = np.empty(chunk, np.float32), np.empty(chunk, np.float32)
    for c0 in range(0, n, chunk):
        m = min(chunk, n - c0)
        for i in range(m):
            p = matte[c0 + i]
            p = zero if p < zero else p  # (np.clip's: a NaN stays NaN)
            p = one if p > one else p
            q = one - p
            if scaled:
                p *= p_scale
                q *= q_scale
            if rescale:
                top = p if p >= q else q
                p /= top
                q /= top
            x_p[i], x_q[i], a_p[i], a_q[i] = p, q, one, one
        k = power
        while k > 1:
            if k & 1:
                for i in range(m):
                    a_p[i] *= x_p[i]
                    a_q[i] *= x_q[i]
            for i in range(m):
                x_p[i] *= x_p[i]
                x_q[i] *= x_q[i]
            k >>= 1
        for i in range(m):
            p = a_p[i] * x_p[i]
            out[c0 + i] = p / (a_q[i] * x_q[i] + p)


#: Bounds of :func:`subject_midpoint`. Below 0.35 the haze the model leaves around people and
#: over what touches them (dark furniture at 0.2–0.35, a red flag behind two people in COCO
#: 165) joins the subject; held at 0.35 the cut scores as well (benchmarks/subject_midpoint.py).
SUBJECT_MIDPOINT_RANGE = (0.35, 0.5)


def subject_midpoint(subject: np.ndarray) -> float:
    """Where a portrait subject's summed person mattes divide person from background.

    The model's person mattes are calibrated on close-up portraits (matte > 0.5 is the IoU-best
    cut there), but whole people in everyday and group photos often sit at 0.4–0.6 against a
    background near 0.05 (a tennis player at 0.53, a woman's dark trousers at about 0.37): cut
    at 0.5, the portrait effects blurred or blacked out half of such a subject. The cut is
    instead Otsu's threshold of the matte's histogram (the value that best separates its two classes;
    Otsu 1979, "A threshold selection method from gray-level histograms", IEEE SMC 9(1)),
    held to ``SUBJECT_MIDPOINT_RANGE``: a confident matte (0 and 1) keeps 0.5, an under-confident
    one is cut lower. Cut of the subject against the people's labels
    (``python benchmarks/subject_midpoint.py``), mean IoU fixed 0.5 → this: several-person
    composites 0.823 → 0.890, COCO photos 0.539 → 0.576, person photos 0.873 → 0.878.

    Parameters
    ----------
    subject : np.ndarray
        float32 H×W in [0, 1], the summed mattes of :func:`portrait_people`.

    Returns
    -------
    float
        The midpoint for :func:`decisive_alpha`, within ``SUBJECT_MIDPOINT_RANGE``.
    """
    # A subsample of ~250k pixels: a histogram needs no more, and a 12 MP frame costs ms.
    step = max(1, int(np.sqrt(subject.size / 250_000)))
    levels = np.clip(subject[::step, ::step] * np.float32(255.0) + np.float32(0.5), 0, 255).astype(np.uint8)
    p = np.bincount(levels.ravel(), minlength=256).astype(np.float64)
    p /= p.sum()
    # Between-class variance of each cut between level t and t + 1 (t = 0..254).
    w0 = np.cumsum(p)[:-1]
    m0 = np.cumsum(p * np.arange(256))[:-1]
    mean = m0[-1] + 255.0 * p[-1]
    between = (mean * w0 - m0) ** 2 / np.maximum(w0 * (1.0 - w0), 1e-12)
    # Across an empty gap between the classes the criterion is flat and every cut in it is as
    # good: the calibrated one (0.5, between levels 127 and 128) when it lies there, else the
    # gap's middle (a matte of 0.01 and 0.97 only must not be cut just above 0.01).
    best = np.flatnonzero(between >= between.max() * (1.0 - 1e-9))
    low, high = SUBJECT_MIDPOINT_RANGE
    if best[0] <= 127 <= best[-1]:
        return float(min(high, max(low, 0.5)))
    cut = (0.5 * (best[0] + best[-1]) + 0.5) / 255.0
    return float(min(high, max(low, cut)))


def _segment(pixels, segmenter, categories, *, keep_copy: bool = True):
    """Segment develop's ``pixels`` (float32 linear RGB, never written to by develop).

    A camseg Segmenter reads them without its defensive copy unless ``keep_copy``
    (see ``Segmenter.segment_borrowed``), and reduces the photo for the stage
    mattes while its model runs; any other segmenter gets ``segment(pixels)``.
    """
    if segmenter is None:
        try:
            from camseg.segmenter import default_segmenter
        except ImportError as exc:
            raise ImportError("camseg.segmenter is not available, so develop() cannot segment the photo; "
                              "pass segmentation=... (masks from elsewhere) or install the full package") from exc
        segmenter = default_segmenter()
    if categories is not None and "teeth" in categories and "teeth" not in getattr(segmenter, "categories", ("teeth",)):
        categories = categories - {"teeth"}  # a model trained without teeth: the style goes without
    if hasattr(segmenter, "segment_borrowed"):
        return segmenter.segment_borrowed(pixels, categories=categories, guide_pixels=STAGE_MATTE_PIXELS,
                                          keep_copy=keep_copy)
    if not callable(getattr(segmenter, "segment", None)):
        # A model's path or a function failed as "'str' object has no attribute 'segment'".
        raise TypeError(f"segmenter must be a camseg.Segmenter (or an object with a .segment(pixels, "
                        f"categories=...) method), got {type(segmenter).__name__}; load a model file with "
                        "camseg.Segmenter(path), or leave segmenter out for the default model")
    seg = segmenter.segment(pixels, categories=categories)
    if isinstance(seg, Mapping):
        # As for segmentation= (see develop): a dict of masks was read as a segmentation without
        # any, silently (no sky or skin treatment, nobody to tone).
        raise TypeError(f"segmenter.segment must return the mattes as attributes (.sky, .skin, .persons, ...), "
                        f"got a {type(seg).__name__} with keys {sorted(map(str, seg))}; return "
                        "types.SimpleNamespace(**masks)")
    return seg


def _plan(settings: DevelopSettings) -> list:
    """Resolve every stage to ``(stage, function or None, params or reason)``; raises for bad names."""
    styles = available_styles()
    if settings.style not in styles:
        raise ValueError(f"style={settings.style!r} is not a Photographic Style; valid names are {styles}")
    plan = []
    for stage in STAGES:
        if not stage.enabled(settings):
            why = "off in settings"
            if settings.params.get(stage.name):
                # Checked all the same where the function is known: a typo in a stage turned
                # off for now would otherwise fail only the day it is turned on.
                if stage.function is not None:
                    _params_for(stage.function, settings.params[stage.name], stage.name)
                why += f"; its params[{stage.name!r}] are not used" + (
                    "" if stage.function is not None else " (nor checked: no effect is chosen)")
            plan.append((stage, None, why))
            continue
        fn = _stage_function(stage, settings)
        plan.append((stage, fn, _params_for(fn, settings.params.get(stage.name, {}), stage.name)))
    return plan


def check_settings(settings: DevelopSettings) -> list:
    """Validate settings against the installed effects before any work.

    Returns a list of ``(stage name, status, detail)`` with status "ready",
    "skipped" (off).

    Raises
    ------
    ValueError
        Unknown style or portrait effect name, or unknown params fields.
    """
    if not isinstance(settings, DevelopSettings):
        raise TypeError(f"settings must be a DevelopSettings, got {type(settings).__name__}")
    out = []
    for stage, fn, why in _plan(settings):
        if fn is not None:
            out.append((stage.name, "ready", ""))
        else:
            out.append((stage.name, "skipped", why))
    return out


def develop(image, settings: "DevelopSettings | None" = None, *, segmenter=None, segmentation=None,
            return_details: bool = False, **options):
    """Develop a photo: segment once, then denoise, sharpen, tone-map, style and portrait.

    Parameters
    ----------
    image : str, os.PathLike, Photo or np.ndarray
        A photo file (JPEG/PNG/TIFF, read with :func:`camseg.io.read_photo`), a
        :class:`~camseg.io.Photo`, or an array: float32 H×W×3 linear RGB in
        [0, 1], or uint8/uint16 sRGB-encoded (see :func:`camseg.io.as_linear_rgb`).
    settings : DevelopSettings, optional
        All choices; default ``DevelopSettings()``.
    segmenter : camseg.segmenter.Segmenter, optional
        A loaded segmenter to reuse; default: the process-wide cached default model.
    segmentation : Segmentation, optional
        Precomputed masks for this image, skipping segmentation: anything with the mattes
        as attributes (``.sky``, ``.skin``, ``.person``: float32 H×W; ``.persons``: a list
        of H×W or one N×H×W array), e.g. ``types.SimpleNamespace(**masks)``; a dict is
        refused (TypeError).
    return_details : bool
        Also return the segmentation and a :class:`DevelopReport`.
    **options
        Any :class:`DevelopSettings` field, overriding ``settings``
        (e.g. ``style="warm", portrait="blur"``).

    Returns
    -------
    Photo or np.ndarray or DevelopResult
        For a file or Photo input, a :class:`~camseg.io.Photo` (same EXIF, ICC
        profile and bit depth; save it with ``.save(path)``; its ``notes`` add what develop
        did not do that was asked, e.g. a portrait effect without a person); for an array input,
        a float32 H×W×3 linear RGB array in [0, 1]. With ``return_details``,
        a :class:`DevelopResult` wrapping that.

    Raises
    ------
    TypeError, ValueError
        For invalid images or settings (messages name the argument).

    Notes
    -----
    A program developing many large photos should call
    :func:`camseg.batch.reuse_freed_memory` once at start (each worker of the ``camseg``
    command does): with glibc's default malloc every full-size frame is a fresh mapping, and a
    12 MP develop took 1.6 s instead of 1.15 s file to file (``benchmarks/develop.py
    --default-malloc``).
    """
    # The stages' checks reuse the ranges develop knows (its clipped stage outputs, its mattes
    # checked once) instead of reading each 12 MP frame and matte again (effects._validate.vouch).
    with vouched_ranges():
        return _develop(image, settings, segmenter, segmentation, return_details, options)


def _develop(image, settings, segmenter, segmentation, return_details, options):
    """:func:`develop`, inside its :func:`~effects._validate.vouched_ranges` block."""
    if settings is None:
        settings = DevelopSettings()
    elif not isinstance(settings, DevelopSettings):
        raise TypeError(f"settings must be a DevelopSettings, got {type(settings).__name__}; "
                        "build one with DevelopSettings(...) or DevelopSettings.from_dict(...)")
    if options:
        settings = settings.replace(**options)

    timings = []
    photo = None
    t0 = time.perf_counter()
    if isinstance(image, (str, os.PathLike)):
        photo = read_photo(image)
        pixels = photo.pixels
        timings.append(StageReport("decode", "applied", time.perf_counter() - t0,
                                   f"{photo.format} {photo.bit_depth}-bit {photo.colour_space}"))
    elif isinstance(image, Photo):
        photo = image
        pixels = photo.pixels
        if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.float32 and pixels.ndim == 3
                and pixels.shape[2] == 3):
            raise TypeError(f"Photo.pixels must be a float32 H×W×3 linear RGB array, got "
                            f"{getattr(pixels, 'dtype', type(pixels).__name__)} "
                            f"{getattr(pixels, 'shape', '')}; make a Photo with camseg.io.read_photo, or "
                            "photo.with_pixels(camseg.io.as_linear_rgb(codes)), or pass the array itself")
    else:
        pixels = as_linear_rgb(image, name="image")
    lo, hi = min_max(pixels)  # one pass for both, NaN in both
    if np.isnan(lo):
        # (An array's were refused by as_linear_rgb; a Photo's were left for the first stage to
        # name, and with every stage off, or a style at 0 alone, came back as NaN.)
        raise ValueError("image contains NaN values; replace them (e.g. np.nan_to_num) before calling")
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(f"image must be linear RGB in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                         "clip it or scale it (e.g. image / image.max())")
    if lo < 0.0 or hi > 1.0:
        pixels = np.clip(pixels, 0.0, 1.0)  # a new array: the caller's is never modified
        lo, hi = max(lo, 0.0), min(hi, 1.0)  # (clipping is monotonic: the new extremes)
    if pixels.dtype == np.float32 and pixels.flags.c_contiguous:
        vouch(pixels, lo, hi)  # develop never writes into it

    # Resolve stage functions first, so a bad style or portrait name fails before any work.
    plan = _plan(settings)

    # Segmentation: once. Person instances cost the transformer, so ask for them
    # only when an enabled stage uses them.
    wants_persons = any(fn is not None and stage.needs_persons for stage, fn, _ in plan)
    # A style that changes colours protects teeth as well as skin (a vivid style yellowed them).
    styles_teeth = (any(fn is not None and stage.name == "style" for stage, fn, _ in plan)
                    and settings.style_strength > 0 and not effects.STYLE_PRESETS[settings.style].is_neutral)
    t = time.perf_counter()
    if segmentation is not None:
        if isinstance(segmentation, Mapping):
            # Its masks are read as attributes (.sky, .persons): a dict of them was taken for a
            # segmentation without any, silently (the sky got no sky treatment), or refused
            # for "no people computed".
            raise TypeError("segmentation must have the mattes as attributes (.sky, .skin, .persons, ...), "
                            f"got a {type(segmentation).__name__} with keys {sorted(map(str, segmentation))}; "
                            "pass types.SimpleNamespace(**masks), or the Segmentation camseg.segment returns")
        if wants_persons and not _has_people(segmentation):
            # Read as "nobody in the photo", it gave the photo no portrait effect and one tone
            # for everyone without a word.
            uses = " and ".join(stage.name for stage, fn, _ in plan if fn is not None and stage.needs_persons)
            computed = getattr(segmentation, "categories", None)
            raise ValueError(
                "segmentation has no people computed" + (f" (only {', '.join(computed)})" if computed else "")
                + f", and {uses} need them; segment the photo without categories= (or with 'persons' "
                "among them), or turn those stages off")
        seg, status, detail = segmentation, "skipped", "precomputed segmentation given"
    else:
        categories = None if wants_persons else {"sky", "skin"} | ({"teeth"} if styles_teeth else set())
        # develop never writes to ``pixels``, so the segmenter need not copy them, except when
        # they are the caller's own array (a Photo's) and the segmentation is handed back: the
        # caller's later edits must not change it.
        # The model sees sRGB: a Display P3 photo's own values read as sRGB are duller.
        model_pixels = to_srgb_primaries(pixels, photo.icc_profile) if photo is not None else pixels
        callers = isinstance(image, Photo) and model_pixels is image.pixels
        seg = _segment(model_pixels, segmenter, categories, keep_copy=return_details and callers)
        status = "applied"
        detail = "all categories" if wants_persons else f"scene-level only ({', '.join(sorted(categories))})"
    # Hair and glasses only serve the portrait effect (they refine its subject edge; the subject
    # itself is made from the person mattes, and teeth only mend it): not computed without it,
    # nor when nobody was found. Teeth also serve a style that changes colours (it leaves them
    # as they are, as it leaves skin), when the photo shows any.
    wants_portrait = any(fn is not None and stage.name == "portrait" for stage, fn, _ in plan)
    nobody = getattr(seg, "person_scores", None) is not None and len(seg.person_scores) == 0
    portrait_parts = wants_portrait and not nobody
    names = (["sky", "skin"] + (["persons"] if wants_persons else [])
             + (["hair", "glasses", "teeth"] if portrait_parts else [])
             + (["teeth"] if styles_teeth and not portrait_parts and _shows_teeth(seg) else []))
    if hasattr(seg, "mattes"):
        # One guided-filter pass for every matte the stages read, with edges refined at
        # about 1 MP: the stages use them as smooth region weights, and the portrait stage
        # refines its subject edge against the full-resolution photo itself.
        mattes = seg.mattes(names, max_pixels=STAGE_MATTE_PIXELS)
    else:  # precomputed masks from elsewhere: plain attributes
        mattes = {n: m for n in names if n != "persons" and (m := optional_matte(seg, n)) is not None}
        if wants_persons:
            # Not ``persons or []``: an N×H×W array of mattes (np.stack of them) raised numpy's
            # "truth value of an array ... is ambiguous" there.
            given = getattr(seg, "persons", None)
            if np.ndim(given) == 2:  # (listed, it became H rows of W values: "persons[0] has shape (W,)")
                raise ValueError(f"segmentation.persons must be a list of H×W mattes or one N×H×W array, got one "
                                 f"{np.shape(given)} matte; pass [matte]")
            mattes["persons"] = [] if given is None else list(given)
    # The stage's time includes the full-resolution mattes, which are most of its cost on big photos.
    timings.append(StageReport("segment", status, time.perf_counter() - t, detail))
    sky, skin = mattes.get("sky"), mattes.get("skin")
    persons = [np.asarray(p, dtype=np.float32) for p in mattes.get("persons", [])] if wants_persons else []
    # (Hair, glasses and teeth too: of another size, they failed in the portrait effect or style,
    # as "hair_mask: expected shape", after the stages before it had run.)
    for name, m in [(n, mattes.get(n)) for n in ("sky", "skin", "hair", "glasses", "teeth")] \
            + [(f"persons[{i}]", p) for i, p in enumerate(persons)]:
        if m is not None and m.shape != pixels.shape[:2]:
            raise ValueError(f"segmentation.{name} has shape {m.shape} but the image is {pixels.shape[:2]}; "
                             "the segmentation must come from this image")
    # Each matte checked once here for every stage that reads it (denoise, sharpen, tone_map and
    # style each checked sky and skin again); only mattes already in [0, 1] are vouched for, so
    # any other still meets each stage's own check and its message.
    for m in [sky, skin, mattes.get("teeth")] + persons:
        if isinstance(m, np.ndarray) and m.dtype == np.float32 and m.flags.c_contiguous and m.size:
            m_lo, m_hi = min_max(m)
            if 0.0 <= m_lo and m_hi <= 1.0:
                vouch(m, m_lo, m_hi)
    subject, people, midpoint = None, [], 0.5
    if persons and wants_portrait:
        people = portrait_people(persons)
        summed = _summed_mattes(people)
        midpoint = subject_midpoint(summed)
        subject = _with_teeth(decisive_alpha(summed, SUBJECT_STEEPNESS, midpoint), mattes.get("teeth"))
        smallest = min(float(np.count_nonzero(p > 0.5)) for p in people) / max(1, summed.size)
        subject = _tidy_subject(subject, summed, smallest)
    ctx = _Context(seg=seg, settings=settings, iso=photo.iso if photo is not None else None,
                   persons=persons, skin=skin, sky=sky, teeth=mattes.get("teeth"), subject=subject,
                   portrait_people=people,
                   subject_midpoint=midpoint, hair=mattes.get("hair") if subject is not None else None,
                   glasses=mattes.get("glasses") if subject is not None else None,
                   rgb_to_xyz=rgb_to_xyz_d65(photo.icc_profile) if photo is not None else None)

    current = pixels
    develop_notes = []
    for stage, fn, params_or_why in plan:
        if fn is None:
            timings.append(StageReport(stage.name, "skipped", 0.0, params_or_why))
            continue
        t = time.perf_counter()
        out, detail = stage.call(fn, current, ctx, params_or_why)
        if out is None:
            timings.append(StageReport(stage.name, "skipped", time.perf_counter() - t, detail))
            if stage.name == "portrait":
                # Asked for and not made: said on the photo (the camseg command prints a photo's
                # notes), where only a report asked for had said it.
                develop_notes.append(f"portrait {settings.portrait}: {detail}")
            continue
        if out.shape != current.shape:
            raise RuntimeError(f"effects stage {stage.name} returned shape {out.shape} for input "
                               f"{current.shape}; this is a bug in the effect")
        # Stages may overshoot [0, 1] by rounding; the next stage validates its range, which
        # the clip finds in the same pass (a NaN is left there for that check to report).
        if np.may_share_memory(out, current) or out.dtype != np.float32 or not out.flags.c_contiguous \
                or not out.flags.writeable:
            out = np.array(out, dtype=np.float32, order="C")  # never write into the input's memory
        current = out
        vouch(current, *clip_unit_in_place(current))
        timings.append(StageReport(stage.name, "applied", time.perf_counter() - t, detail))

    if current is pixels:
        # Every stage was off: never hand back the caller's own buffer, nor the one the
        # segmentation may hold (it reads it again for full-resolution mattes later).
        current = current.copy()
    result_image = current if photo is None else dataclasses.replace(
        photo, pixels=current, notes=tuple(photo.notes) + tuple(develop_notes))
    if not return_details:
        return result_image
    n = max(1, pixels.shape[0] * pixels.shape[1])
    report = DevelopReport(
        stages=tuple(timings),
        image_shape=tuple(pixels.shape),
        colour_space=photo.colour_space if photo is not None else "linear RGB (caller's)",
        persons=len(persons),
        sky_fraction=float(sky.sum() / n) if sky is not None else 0.0,
        skin_fraction=float(skin.sum() / n) if skin is not None else 0.0,
        settings=settings.to_dict(),
        notes=tuple(photo.notes) if photo is not None else (),
    )
    return DevelopResult(image=result_image, segmentation=seg, report=report)
