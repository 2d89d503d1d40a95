"""camseg effects: pure image stages on float32 H×W×3 linear RGB in [0, 1].

This is the lower layer of camseg: it never imports ``camseg``. Every stage is a
pure function (image first, keyword-only options, inputs never modified) with a
frozen params dataclass beside it, usable with masks from any source.
"""

from effects._validate import ParamTypeError
from effects.mask_refine import RefineMatteParams, refine_matte

__all__ = [
    "ParamTypeError",  # a params field of the wrong type (a TypeError and a ValueError)
    "RefineMatteParams",
    "refine_matte",
]

from effects.noise_profile import NoiseProfile, estimate_noise, noise_profile_from_iso
from effects.denoise import DenoiseParams, denoise
from effects.sharpen import SharpenParams, sharpen

__all__ += [
    "NoiseProfile", "estimate_noise", "noise_profile_from_iso",
    "DenoiseParams", "denoise",
    "SharpenParams", "sharpen",
]

from effects.tone_map import PersonExposure, ToneMapParams, dim_photo_lift_ev, monochrome_tint, tone_map_people
from effects.styles import STYLE_PRESETS, Style, apply_style

__all__ += [
    "ToneMapParams", "PersonExposure", "tone_map_people", "dim_photo_lift_ev", "monochrome_tint",
    "Style", "STYLE_PRESETS", "apply_style",
]

from effects.portrait_blur import PortraitBlurParams, portrait_blur

__all__ += ["PortraitBlurParams", "portrait_blur"]

from effects.portrait_lighting import (
    LOOKS as PORTRAIT_LIGHTING_LOOKS,
    PortraitLightingParams,
    contour_light,
    high_key_mono,
    portrait_lighting,
    stage_light,
    studio_light,
)

__all__ += [
    "PortraitLightingParams", "PORTRAIT_LIGHTING_LOOKS", "portrait_lighting",
    "stage_light", "studio_light", "contour_light", "high_key_mono",
]
