"""The written contract between the training side and the runtime.

The exporter (``camseg.train.export``) writes this contract as JSON into the
ONNX file's metadata (key ``camseg.contract``); the runtime
(``camseg.segmenter``) reads it back from the file and checks it against the
graph's inputs and outputs. Nothing else is shared between the two sides: the
runtime never imports torch, and the trainer never imports the runtime.

Contract (version 1)
--------------------
Input ``image``
    float32, shape (1, 3, H, W) with H×W = ``input_size`` (384×512, landscape),
    sRGB-encoded RGB in [0, 1]. ImageNet mean/std normalisation happens inside
    the graph, so callers only encode and resize. Every photo is letterboxed by
    the runtime (aspect kept, placed at the top left, zero padded): never squashed,
    and portrait photos stay upright (people are learned upright).
Output ``scene_logits``
    float32 (1, S, H, W): one logit map per scene-level category, in
    ``scene_categories`` order. Sigmoid gives a soft matte. Computed by the
    convolutional path only.
Output ``query_class_logits``
    float32 (1, N, T + 1): per object query, logits over ``thing_categories``
    followed by "no object". Softmax gives probabilities.
Output ``query_mask_logits``
    float32 (1, N, H, W): per object query, the mask logits of HyperDETR's
    dynamic 1×1 convolution over the 16-channel decoder map.

A *scene-only* model has only ``scene_logits``; it does not contain the
transformer at all.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields

CONTRACT_VERSION = 1
METADATA_KEY = "camseg.contract"

INPUT_NAME = "image"
SCENE_OUTPUT = "scene_logits"
CLASS_OUTPUT = "query_class_logits"
MASK_OUTPUT = "query_mask_logits"

#: The category table. Data, not code: a new scene-level category is a new row
#: here and a retrain; the runtime builds its attributes from whatever the
#: model's embedded contract lists.
SCENE_CATEGORIES = ("sky", "hair", "skin", "teeth", "glasses")
THING_CATEGORIES = ("person",)

#: Panoptic category ids: 0 is "unlabelled", then things, then the scene-level
#: categories that are exclusive regions of the frame (sky). Hair, skin, teeth
#: and glasses are attributes that overlap a person, so they are not panoptic
#: segments.
PANOPTIC_CATEGORIES = ("unlabelled", "person", "sky")

#: Names a scene-level category cannot take: the runtime's own names for the persons and the
#: other attributes of a segmentation (a category "person" or "mattes" would be hidden behind
#: them), and ``person_…``, the persons' mask files (``person_00.png``). A name is also lower-case
#: letters, digits and ``_``, starting with a letter: an attribute, and a safe file name
#: (``camseg segment`` writes ``NAME.png``).
RESERVED_NAMES = ("person", "persons", "panoptic", "panoptic_categories", "categories", "image_shape", "matte",
                  "mattes", "low_resolution", "prefetch")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _is_finite_number(x) -> bool:
    """A JSON number that is finite as a float (a 400-digit integer raised OverflowError)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


@dataclass(frozen=True)
class ModelContract:
    """What a camseg ONNX model promises about its inputs and outputs.

    Attributes
    ----------
    input_size : tuple of int
        (H, W) of the model input and of every output map, landscape.
    scene_categories : tuple of str
        Names of the channels of ``scene_logits``, in order.
    thing_categories : tuple of str
        Instance categories of ``query_class_logits`` (no-object is last, implicit).
    num_queries : int
        Number of object queries N (0 for a scene-only model).
    mask_channels : int
        Channels of the dynamic-convolution feature map (16 in the seed).
    decoder_layers : int
        Transformer decoder layers kept at export (after pruning).
    weights : str
        ``"fp32"`` or ``"int8"`` (8-bit weight storage).
    trained : dict
        Free-form training facts (data, steps, which categories were supervised).
    logit_offsets : dict
        Calibration, category name → offset the runtime adds to that category's
        logits before the sigmoid ("person" applies to every person query's
        mask). Chosen on held-out photos so that matte > 0.5 is the
        IoU-best decision (``python -m camseg.train.evaluate --calibrate``);
        empty means none.
    """

    input_size: tuple = (384, 512)
    scene_categories: tuple = SCENE_CATEGORIES
    thing_categories: tuple = THING_CATEGORIES
    num_queries: int = 4
    mask_channels: int = 16
    decoder_layers: int = 6
    weights: str = "fp32"
    input_encoding: str = "sRGB [0,1], NCHW, normalised inside the graph"
    version: int = CONTRACT_VERSION
    trained: dict = field(default_factory=dict)
    logit_offsets: dict = field(default_factory=dict)

    @property
    def scene_only(self) -> bool:
        """True when the model has no transformer (no queries)."""
        return self.num_queries == 0

    def output_names(self) -> tuple:
        """Names of the graph outputs, in order."""
        if self.scene_only:
            return (SCENE_OUTPUT,)
        return (SCENE_OUTPUT, CLASS_OUTPUT, MASK_OUTPUT)

    def to_json(self) -> str:
        """Serialise for the ONNX metadata."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelContract":
        """Parse the ONNX metadata; raises ValueError on a version mismatch or a damaged contract."""
        # A damaged contract (hand-edited, or written by another tool) is refused here with what is
        # wrong: it had failed as a bare JSONDecodeError, KeyError, TypeError or AttributeError
        # naming no model, or, with a non-number logit offset, only once a photo was segmented.
        fix = "re-export the model with `python -m camseg.train.export`"
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"its {METADATA_KEY!r} metadata is not JSON ({exc}); {fix}") from None
        if not isinstance(data, dict):
            raise ValueError(f"its {METADATA_KEY!r} metadata is {json.dumps(data)[:40]}, not a JSON object; {fix}")
        version = data.get("version")
        if type(version) is not int or version != CONTRACT_VERSION:  # (true and 1.0 equal 1 in Python)
            raise ValueError(f"model contract version {version} is not supported by this camseg "
                             f"(expects {CONTRACT_VERSION}); re-export the model with this camseg version")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("input_size", "scene_categories", "thing_categories") if k not in data]
        unknown = sorted(set(data) - known)
        if missing or unknown:
            what = ([f"lacks {missing}"] if missing else []) + ([f"has unknown fields {unknown}"] if unknown else [])
            raise ValueError(f"its contract {' and '.join(what)}; {fix}")

        def is_count(v):
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        def is_names(v):
            return isinstance(v, list) and all(isinstance(n, str) for n in v) and len(set(v)) == len(v)

        def is_scene_names(v):
            return is_names(v) and all(re.fullmatch(r"[a-z][a-z0-9_]*", n) and n not in RESERVED_NAMES
                                       and not n.startswith("person_") for n in v)

        # Each field: its check, and what it must be (said in the error: "is not valid" alone named no fix).
        checks = {
            "input_size": (lambda v: isinstance(v, list) and len(v) == 2 and all(is_count(n) and n > 0 for n in v),
                           "[height, width], two integers > 0"),
            "scene_categories": (is_scene_names, "a list of distinct names of lower-case letters, digits and _, "
                                 "none of camseg.contract.RESERVED_NAMES nor person_..."),
            "thing_categories": (is_names, "a list of distinct names"),
            "num_queries": (is_count, "an integer >= 0"), "mask_channels": (is_count, "an integer >= 0"),
            "decoder_layers": (is_count, "an integer >= 0"),
            "weights": (lambda v: isinstance(v, str), "a string"),
            "input_encoding": (lambda v: isinstance(v, str), "a string"),
            "trained": (lambda v: isinstance(v, dict), "an object"),
            "logit_offsets": (lambda v: isinstance(v, dict) and all(_is_finite_number(x) for x in v.values()),
                              "an object of finite numbers"),
        }
        wrong = [k for k, (ok, _) in checks.items() if k in data and not ok(data[k])]
        if wrong:
            raise ValueError(f"its contract's {', '.join(f'{k}={data[k]!r} (expected {checks[k][1]})' for k in wrong)} "
                             f"{'is' if len(wrong) == 1 else 'are'} not valid (see camseg.contract.ModelContract); "
                             f"{fix}")
        for key in ("input_size", "scene_categories", "thing_categories"):
            data[key] = tuple(data[key])
        return cls(**data)
