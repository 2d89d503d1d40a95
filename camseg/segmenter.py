"""The segmentation runtime: HyperDETR on onnxruntime, no torch.

``Segmenter`` loads a model once (the full model and, beside it, its
scene-only twin) and turns photos into a :class:`Segmentation`: soft mattes
for the scene-level categories and one matte per person, at the photo's full
resolution.

Pipeline (DESIGN.md §4.8, postprocessing on a budget):

1. the photo (any size, any orientation) is resized to fit the model input
   with its aspect kept, then zero padded — never squashed, never turned: a
   portrait photo sits upright at the left of the landscape input, because
   the model finds upright people far better than sideways ones (held-out person
   IoU 0.862 upright vs 0.762 turned a quarter, ``python -m camseg.train.evaluate``);
2. one onnxruntime call; the scene-only model when only scene-level
   categories are asked for (the transformer is not run at all);
3. queries are selected on their class probability *before* any mask work,
   duplicates are removed at model resolution;
4. mattes are upsampled to full resolution only when read, with the guided
   filter (``effects.refine_matte``) so edges follow the photo, not bilinear
   blobs.

The model file's embedded contract (:mod:`camseg.contract`) says which
categories it has; attribute names come from that table.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from camseg.contract import (CLASS_OUTPUT, INPUT_NAME, MASK_OUTPUT, METADATA_KEY, PANOPTIC_CATEGORIES,
                             SCENE_CATEGORIES, SCENE_OUTPUT, ModelContract)
from camseg.io import Photo, linear_to_srgb, read_image, read_photo, to_srgb_primaries
from effects import RefineMatteParams
from effects.mask_refine import refine_matte_planes

__all__ = ["Segmenter", "Segmentation", "SegmenterOptions", "segment", "DEFAULT_MODEL"]

DEFAULT_MODEL = Path(__file__).parent / "models" / "hyperdetr.onnx"
MIN_SIDE = 8  # below this a photo has no content a segmentation could describe
PERSON_NAMES = ("person", "persons")

#: (luma, Cr) knots of the reddest skin: 8-bit YCrCb (OpenCV's BT.601 full range) of sRGB,
#: the 99.9th percentile of Cr among the labelled skin pixels of FASSEG (train and test) and
#: fullbody_skin at their full resolution (24 M pixels) in luma bins of 32 levels,
#: interpolated linearly between bin centres. Skin is reddest in the mid-tones; shadows and
#: highlights carry less chroma (the top bin holds 71 k pixels).
SKIN_CR_ENVELOPE = ((16.0, 162.0), (48.0, 170.0), (80.0, 177.0), (112.0, 183.0), (144.0, 183.0),
                    (176.0, 177.0), (208.0, 170.0), (240.0, 150.0))
_ENVELOPE_KNOTS = np.array(SKIN_CR_ENVELOPE, np.float32)
#: (0.01th, 0.1th) percentiles of the 8-bit luma of labelled skin (FASSEG and fullbody_skin,
#: 24 M pixels), each pixel's luma averaged with the skin weight as the runtime averages it.
#: On a black-and-white photo the skin matte fades out between them: the grey offsets put
#: skin on black things (the grey astronaut's helmet, luma 0; trousers, 10).
SKIN_LUMA_FLOOR = (9.7, 21.7)
_SKIN_COLOUR_FADE = 10.0    # Cr levels over which the skin matte fades, past the margin
_SKIN_COLOUR_SIGMA = 0.008  # σ of the skin colour's smoothing, a fraction of the input's longer side (~4 px)


@dataclass(frozen=True)
class SegmenterOptions:
    """Postprocessing choices of :class:`Segmenter`.

    Attributes
    ----------
    person_threshold : float
        Minimum class probability for a query to count as a person.
    min_person_area : float
        Minimum person area as a fraction of the frame (at mask > 0.5).
    duplicate_iou : float
        Two person queries whose masks overlap more than this are one person.
    min_visible_fraction : float
        A person query must own at least this fraction of its own mask once
        every pixel goes to the most confident query; less means it is a
        fragment of a stronger query's person (Mask2Former's panoptic
        inference, Cheng et al. 2022, uses 0.8). 0.65 here, measured with
        ``python -m camseg.train.evaluate`` on the run5 model of the time: on the several-person
        composites person PQ 0.335 -> 0.369 and person IoU 0.805 -> 0.863 (at 0.8, people
        partly covered by a neighbour were dropped as fragments), the real held-out photos
        unchanged; at 0.6 and below fragments came back (the bundled astronaut split in two,
        real-photo PQ fell from 0.55). The shipped model, with duplicates removed first
        (``duplicate_iou``), keeps the astronaut whole at any value down to 0.
    min_mask_score : float
        Minimum of class probability × mean matte value inside the mask
        ("maskness", SOLOv2, Wang et al. 2020): drops confident queries with
        vague masks.
    glasses_face_context : float
        Glasses are worn on faces: a glasses region (matte > 0.5, one connected
        component at model resolution) is kept only if at least this fraction of
        the ring around it (as wide as half its larger side) is skin or hair;
        otherwise it is removed. Without it the matte fired on dark glossy
        things away from any face (the bundled astronaut's helmet visor: 0.14 of
        its ring is face; synthetic glasses on held-out FASSEG faces: 0.72–0.96,
        fragments down to 0.47). 0 keeps every region.
    glasses_min_face_share : float
        A glasses region must also cover at least this fraction of the face it sits on (the
        largest connected skin-or-hair region its ring touches, at model resolution). Measured
        on held-out CelebA faces: the specks the matte put on light irises of 5 glasses-free faces
        covered 0.12–0.45 % of their face; the regions on 7 faces with real glasses 0.71–12 %
        (one fragment of a lens 0.39 %). 0.5 % removes the specks; 0 keeps every region.
    skin_colour_margin : float
        The skin matte fades out where the colour under it is redder than any skin: its
        8-bit YCrCb Cr above the skin envelope (:data:`SKIN_CR_ENVELOPE`, the 99.9th
        percentile of labelled skin at each luma) by more than this margin, to 0 at 10 levels
        further. Luma and Cr are skin-weighted averages over a Gaussian of σ = 0.8 % of the
        model input's longer side, about 4 px (the colour of a region, not of a pixel: a face
        under orange stage light keeps its matte, which per pixel lost specks). A
        luma-dependent skin cluster in YCbCr as in Hsu, Abdel-Mottaleb & Jain (IEEE TPAMI
        2002), measured here on FASSEG and fullbody_skin. It removes what the model takes for
        skin on red jackets, hats, flags and red hair; skin-coloured orange (the bundled
        astronaut's suit, Cr 6 over the envelope) stays. Measured with
        ``python -m camseg.train.evaluate``; ``inf`` switches it off.
    grey_logit_offsets : tuple of (str, float)
        Logit offsets added, on top of the model's calibration, when the photo is grey
        (black and white: at model resolution, all but 0.1 % of its pixels have sRGB channels
        within 2/255 of each other).
        The model learnt skin mostly from colour, and on grey photos its skin matte is
        under-confident: on held-out FASSEG faces turned grey the IoU-best cut of the matte
        is about 0.3, not 0.5. Chosen on half of the held-out photos turned grey and
        measured on the other half with ``python benchmarks/grey_photos.py``.
    in_front_of_sky : tuple of str
        Scene categories the sky is always behind: the sky matte is capped to ``1 - q`` of
        their mattes. The model takes teeth for sky (white, bright: on 9 held-out CelebA
        smiles the sky matte over the teeth was 0.82–0.93, so develop() saturated and
        smoothed teeth like sky); teeth are in front of any sky.
    refine : RefineMatteParams
        Guided-filter upsampling options (``effects.refine_matte``).
    """

    person_threshold: float = 0.5
    min_person_area: float = 0.001
    duplicate_iou: float = 0.7
    min_visible_fraction: float = 0.65
    min_mask_score: float = 0.5
    glasses_face_context: float = 0.3
    glasses_min_face_share: float = 0.005
    skin_colour_margin: float = 5.0
    grey_logit_offsets: tuple = (("skin", 0.8), ("sky", 0.4), ("person", -0.6))
    in_front_of_sky: tuple = ("teeth",)
    refine: RefineMatteParams = RefineMatteParams()

    def __post_init__(self):
        # Checked here, not on the first photo that uses them (a black-and-white one, say).
        # (A threshold given as a string failed on the first photo with numpy's UFuncTypeError, and
        # a NaN one silently found nobody.)
        for name in ("person_threshold", "min_person_area", "duplicate_iou", "min_visible_fraction",
                     "min_mask_score", "glasses_face_context", "glasses_min_face_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value):
                # (An infinite person_threshold found nobody, as a NaN did, without a word.)
                raise ValueError(f"SegmenterOptions.{name} must be a finite number (a fraction or a probability, "
                                 f"see SegmenterOptions), got {value!r}")
        margin = self.skin_colour_margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)) \
                or np.isnan(margin) or margin == -np.inf:
            raise ValueError(f"SegmenterOptions.skin_colour_margin must be a number of 8-bit Cr levels "
                             f"(inf switches the skin-colour rule off), got {margin!r}")
        pairs = self.grey_logit_offsets
        if not isinstance(pairs, tuple) or not all(
                isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str)
                and isinstance(x[1], (int, float, np.integer, np.floating)) and not isinstance(x[1], bool)
                and np.isfinite(x[1]) for x in pairs):
            raise ValueError(f"SegmenterOptions.grey_logit_offsets must be a tuple of (category, finite "
                             f"number) pairs, e.g. (('skin', 0.8),), got {pairs!r}")
        names = self.in_front_of_sky
        if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names) or "sky" in names:
            raise ValueError(f"SegmenterOptions.in_front_of_sky must be a tuple of category names other "
                             f"than 'sky', e.g. ('teeth',), got {names!r}")


def _session(path: Path, threads: int | None) -> tuple[ort.InferenceSession, ModelContract]:
    if not path.exists():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist; pass the .onnx file written by "
                                "`python -m camseg.train.export` (--model on the command line, model_path= "
                                "in Python), or leave it out for the bundled model")
    # What onnxruntime says of these ("Protobuf parsing failed" for a folder, "No graph was found
    # in the protobuf" for an empty file) named neither the problem nor the fix.
    if path.is_dir():
        inside = sorted(str(p) for p in path.glob("*.onnx") if not p.stem.endswith("_scene"))
        raise ValueError(f"model file {str(path)!r} is a folder; pass the model's .onnx file itself"
                         + (f" (in it: {', '.join(map(repr, inside[:3]))})" if inside else ""))
    if path.stat().st_size == 0:
        raise ValueError(f"model file {str(path)!r} is empty (0 bytes): an incomplete copy or download? "
                         "Copy it again, or export it with `python -m camseg.train.export`")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    # int8-stored weights: lets onnxruntime constant-fold DequantizeLinear so the fp32 graph runs
    # (see camseg.train.quantize); harmless for fp32 files.
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        if "INVALID_PROTOBUF" in str(exc):
            raise ValueError(f"cannot load model {str(path)!r}: it is not an ONNX model, or a damaged or truncated "
                             f"copy of one ({str(exc).strip()}); copy it again, or export it with "
                             "`python -m camseg.train.export`") from exc
        raise ValueError(f"cannot load model {str(path)!r}: {exc}") from exc
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ValueError(f"{str(path)!r} is not a camseg model (no {METADATA_KEY!r} metadata); "
                         "export it with `python -m camseg.train.export`")
    try:
        contract = ModelContract.from_json(meta[METADATA_KEY])
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from None
    names = tuple(o.name for o in session.get_outputs())
    if names != contract.output_names() or session.get_inputs()[0].name != INPUT_NAME:
        raise ValueError(f"{str(path)!r}: graph outputs {names} do not match its contract "
                         f"{contract.output_names()}; re-export the model")
    # The shapes the contract promises (the runtime sizes its input and names the channels by
    # it): a contract of another input size had loaded and failed every photo with onnxruntime's
    # "Got invalid dimensions for input", and fewer category names than channels silently left
    # channels out. Dimensions the graph leaves free (named, or None) are not compared.
    h, w = contract.input_size
    n, scene, things = contract.num_queries, len(contract.scene_categories), len(contract.thing_categories)
    if n and contract.thing_categories[:1] != ("person",):
        # The runtime reads the first thing category's probability as a person's: another
        # model's queries (a contract listing only "dog") had been returned as persons.
        raise ValueError(f"{str(path)!r}: its contract's thing_categories are {list(contract.thing_categories)}; "
                         "camseg finds people, and needs 'person' first; re-export the model")
    promised = {INPUT_NAME: (1, 3, h, w), SCENE_OUTPUT: (1, scene, h, w), CLASS_OUTPUT: (1, n, things + 1),
                MASK_OUTPUT: (1, n, h, w)}
    for arg in (session.get_inputs()[0], *session.get_outputs()):
        graph = tuple(arg.shape)
        want = promised[arg.name]
        if len(graph) != len(want) or any(isinstance(g, int) and g != p for g, p in zip(graph, want)):
            raise ValueError(f"{str(path)!r}: {arg.name!r} is {graph} in the graph but {want} by its contract "
                             f"(input_size {contract.input_size}, {scene} scene_categories, num_queries {n}, "
                             f"{things} thing_categories); re-export the model")
    return session, contract


def _check_full_model(path: Path, contract: ModelContract) -> None:
    """Refuse a scene-only file where the full model is needed (it finds no people)."""
    if contract.num_queries == 0:
        full = _full_model_path(path)
        raise ValueError(f"{str(path)!r} is a scene-only model (sky, hair, skin, teeth, glasses; no people): "
                         f"pass the full model" + (f" beside it, {full.name!r}" if full is not None else "")
                         + "; the scene-only twin is used by itself when only scene categories are asked for")


def check_model_file(path: "str | os.PathLike | None" = None) -> ModelContract:
    """Load a model file's graph and contract once, to refuse a bad one before any photo.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The full model's ``.onnx``; None for the bundled model.

    Returns
    -------
    ModelContract
        Its contract.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a camseg model, cannot be loaded (a folder, an empty, damaged or
        truncated file), is a scene-only model, has a damaged contract or one that does not
        match its graph's shapes, or has a scene-only twin beside it that cannot be used with it.
    """
    path = Path(DEFAULT_MODEL if path is None else path)
    contract = _session(path, 1)[1]
    _check_full_model(path, contract)
    _scene_twin(path, contract, 1)
    return contract


def _scene_model_path(path: Path) -> Path:
    return path.with_name(path.stem + "_scene.onnx")


def _scene_twin(path: Path, contract: ModelContract, threads: "int | None") -> "ort.InferenceSession | None":
    """The scene-only twin beside the full model ``path``, checked against ``contract``; None when
    there is none.

    It is loaded with the full model, so a bad one is refused here (and by
    :func:`check_model_file`, before any photo): a damaged one had passed the batch's check and
    failed every photo in each worker, a copy of the full model under its name failed every
    scene-only call with "too many values to unpack", and one whose channels are in another
    order gave, e.g., the glasses matte as teeth.
    """
    scene_path = _scene_model_path(path)
    if not scene_path.exists() and not scene_path.is_symlink() and path.is_symlink():
        # A link to the model (in a project folder, say): its twin lies beside the file linked to,
        # and was not found, so every scene-only call ran the whole model.
        scene_path = _scene_model_path(path.resolve())
    if not scene_path.exists():
        return None
    fix = (f"replace it with the scene-only model exported with {path.name!r}, or remove it (scene-only "
           "calls then run the full model)")
    if scene_path.is_dir():  # (_session's advice for a folder, "pass the model's .onnx file itself", is not this fix)
        raise ValueError(f"{str(path)!r} has a folder beside it named as its scene-only twin, {scene_path.name!r}; "
                         f"rename the folder, or {fix}")
    try:
        session, twin = _session(scene_path, threads)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} has a scene-only twin beside it that cannot be used: {exc}; {fix}") from None
    if not twin.scene_only:
        raise ValueError(f"{str(scene_path)!r}, beside the model {path.name!r}, is not a scene-only model (it has "
                         f"{twin.num_queries} queries); {fix}")
    if (twin.scene_categories, twin.input_size) != (contract.scene_categories, contract.input_size):
        raise ValueError(f"{str(scene_path)!r}, beside the model {path.name!r}, does not match it: scene categories "
                         f"{list(twin.scene_categories)} at {twin.input_size}, the model's "
                         f"{list(contract.scene_categories)} at {contract.input_size}; {fix}")
    return session


def _full_model_path(path: Path) -> "Path | None":
    """The full model a scene-only ``<stem>_scene.onnx`` is the twin of (the inverse of
    :func:`_scene_model_path`), or None for a file not named so."""
    return path.with_name(path.stem.removesuffix("_scene") + ".onnx") if path.stem.endswith("_scene") else None


class Segmenter:
    """A loaded HyperDETR model; reusable across photos and threads.

    Parameters
    ----------
    model_path : str or Path, optional
        The full model (``.onnx``). A scene-only model named
        ``<stem>_scene.onnx`` beside it is used for scene-only calls when present.
        Defaults to the bundled model.
    threads : int, optional
        onnxruntime intra-op threads (default: onnxruntime's choice, one per core).
    options : SegmenterOptions, optional
        Postprocessing thresholds and refinement options.

    Examples
    --------
    >>> with Segmenter(threads=2) as segmenter:          # doctest: +SKIP
    ...     seg = segmenter.segment("IMG_0042.jpg")
    ...     sky, people = seg.sky, seg.persons
    """

    def __init__(self, model_path: "str | os.PathLike | None" = None, *, threads: int | None = None,
                 options: SegmenterOptions | None = None):
        if threads is not None and (not isinstance(threads, (int, np.integer)) or isinstance(threads, bool)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        if options is not None and not isinstance(options, SegmenterOptions):
            # (a dict failed as "'dict' object has no attribute 'grey_logit_offsets'"; an empty one
            # was taken as the defaults)
            raise TypeError(f"options must be a SegmenterOptions or None, got {type(options).__name__}; "
                            "pass SegmenterOptions(**your_options)")
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        self.options = options or SegmenterOptions()
        self._full, self.contract = _session(self.model_path, threads)
        _check_full_model(self.model_path, self.contract)
        self._scene = _scene_twin(self.model_path, self.contract, threads)
        self.scene_categories = self.contract.scene_categories
        self.categories = self.scene_categories + PERSON_NAMES
        o = self.options
        # A category camseg knows but this model lacks (a model trained without teeth) is
        # simply not in front of its sky; a name camseg does not know is a mistake.
        for what, names, valid in (("grey_logit_offsets", [n for n, _ in o.grey_logit_offsets],
                                    self.scene_categories + ("person",)),
                                   ("in_front_of_sky", list(o.in_front_of_sky),
                                    tuple(dict.fromkeys(self.scene_categories + SCENE_CATEGORIES)))):
            unknown = sorted(set(names) - set(valid))
            if unknown:
                raise ValueError(f"SegmenterOptions.{what} names {unknown}, which this model does not "
                                 f"have; valid names are {list(valid)}")

    def close(self) -> None:
        """Release the onnxruntime sessions."""
        self._full = self._scene = None

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_categories(self, categories):
        if categories is None:
            return None
        if isinstance(categories, str):
            categories = {categories}
        if isinstance(categories, (bytes, bytearray)) or not hasattr(categories, "__iter__"):
            # (3 failed as "'int' object is not iterable", b"sky" as "unknown [107, 115, 121]")
            raise TypeError(f"categories must be a set of names, e.g. {{'sky', 'skin'}}, or None for all; "
                            f"got {categories!r}")
        categories = set(categories)
        unknown = categories - set(self.categories)
        if unknown:  # (sorted by repr: {"skyy", 1} failed in sorted() as "'<' not supported")
            raise ValueError(f"categories: unknown {sorted(unknown, key=repr)}; "
                             f"valid names are {list(self.categories)}")
        if not categories:
            # (An empty set gave a segmentation with nothing in it, without a word.)
            raise ValueError(f"categories is empty; name at least one of {list(self.categories)}, "
                             "or pass None for all")
        return frozenset(categories)

    def segment(self, image, *, categories=None) -> "Segmentation":
        """Segment one photo.

        Parameters
        ----------
        image : str, os.PathLike, Photo or np.ndarray
            A file path (EXIF orientation applied; a colour profile's primaries, e.g.
            Display P3, converted to sRGB's for the model), a :class:`~camseg.io.Photo`,
            or an array: uint8/uint16 sRGB-encoded, or float32 H×W×3 linear RGB in
            [0, 1] with sRGB primaries; grayscale and RGBA accepted.
        categories : set of str, optional
            What is needed. Only scene-level names (e.g. ``{"sky", "skin"}``)
            runs the scene-only model without the transformer; ``"person"``
            needs the full model. Default: everything. An empty set is refused.

        Returns
        -------
        Segmentation
            Mattes at the photo's full resolution, computed when read.
        """
        if self._full is None:
            raise RuntimeError("this Segmenter was closed; create a new one")
        # Before reading a file; kept as checked (a generator of names, read here, was empty when
        # segment_borrowed checked it again: "categories is empty").
        categories = self._check_categories(categories)
        # A copy (the Segmentation reads it later, whatever the caller does), with sRGB primaries
        # where a file or Photo has others (Display P3): the model learnt sRGB colours.
        if isinstance(image, (str, os.PathLike)):
            image = read_photo(image)
        if isinstance(image, Photo):
            linear = to_srgb_primaries(image.pixels, image.icc_profile)
            linear = linear.copy() if linear is image.pixels else linear
        else:
            linear = read_image(image)
        # (float32 H×W×3, finite: segment_borrowed takes it as it is and does not call back here.)
        return self.segment_borrowed(linear, categories=categories, keep_copy=False)

    def segment_borrowed(self, pixels: np.ndarray, *, categories=None, guide_pixels: "int | None" = None,
                         keep_copy: bool = True) -> "Segmentation":
        """:meth:`segment` for a caller that does not modify ``pixels`` while it works (camseg.develop).

        The same segmentation as ``segment(pixels)``, without its defensive copy of the
        photo (12 MP: ~30 ms) where none is needed, and with the photo reduced for
        ``Segmentation.mattes(max_pixels=guide_pixels)`` while the model runs.

        Parameters
        ----------
        pixels : np.ndarray
            float32 H×W×3 linear RGB in [0, 1]; anything else goes through :meth:`segment`.
            It is only read, and only during this call unless ``keep_copy`` is False.
        categories : set of str, optional
            As :meth:`segment`.
        guide_pixels : int, optional
            The ``max_pixels`` the caller will ask mattes for next: the photo reduced to that
            size (as :meth:`Segmentation.mattes` would) is made on a second thread while
            onnxruntime runs, and kept by the Segmentation.
        keep_copy : bool
            True (default): the Segmentation keeps its own copy of ``pixels`` (made on the
            second thread too), so it does not change when the caller later writes to
            ``pixels``, as with :meth:`segment`. False: it keeps ``pixels`` itself — only for a
            caller that owns the array and never writes to it while the Segmentation is in use.

        Returns
        -------
        Segmentation

        Raises
        ------
        ValueError
            As :meth:`segment` (NaN or infinite values, too small a photo, unknown
            categories), or for a ``guide_pixels`` that is not a positive integer.
        """
        if guide_pixels is not None and (isinstance(guide_pixels, bool)
                                         or not isinstance(guide_pixels, (int, np.integer)) or guide_pixels < 1):
            raise ValueError(f"guide_pixels must be a positive integer or None, got {guide_pixels!r}")
        if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.float32 or pixels.ndim != 3
                or pixels.shape[2] != 3):
            return self.segment(pixels, categories=categories)
        if self._full is None:
            raise RuntimeError("this Segmenter was closed; create a new one")
        wanted = self._check_categories(categories)
        self._check_size(pixels)
        H, W = pixels.shape[:2]
        guide_size = None
        if guide_pixels is not None and H * W > guide_pixels:
            # the size Segmentation.mattes(max_pixels=guide_pixels) will reduce the photo to
            low_hw = _Frame(_input_placement((H, W), self.contract.input_size)[0], (H, W)).restored_hw
            guide_size = _reduced_size((H, W), low_hw, guide_pixels)

        def side_work():
            # Passes over the whole photo that need no model output: on a second thread while
            # onnxruntime computes (its two threads leave gaps; the copy is memory-bound).
            guide = None if guide_size is None else cv2.resize(pixels, guide_size, interpolation=cv2.INTER_AREA)
            return guide, (pixels.copy() if keep_copy else pixels)

        with ThreadPoolExecutor(max_workers=1) as pool:
            side = pool.submit(side_work)
            prepared = _prepare(pixels, self.contract.input_size)
            if prepared is None:  # a NaN or an infinity
                side.result()
                read_image(pixels)  # raises its error for a NaN or an infinity in the photo
                # Finite, yet the reduced photo is not: values near float32's limit overflow
                # the area average (not a photo's linear RGB).
                raise ValueError(f"image values reach {float(np.abs(pixels).max()):.3g}, too large to segment; "
                                 "pass linear RGB in [0, 1] (e.g. image / image.max())")
            parts = self._infer(*prepared, wanted)
            guide, kept = side.result()
        seg = Segmentation(kept, *parts, self.options.refine)
        seg._model_scene_categories = self.scene_categories  # (what categories= could have asked for)
        if guide is not None:
            seg._reduced_guides[guide_size] = guide
        return seg

    @staticmethod
    def _check_size(linear: np.ndarray) -> None:
        h, w = linear.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ValueError(f"image is {w}×{h} pixels (width × height); segmentation needs at least "
                             f"{MIN_SIDE}×{MIN_SIDE} (a photo, not a thumbnail)")

    def _infer(self, batch: np.ndarray, frame: "_Frame", wanted) -> tuple:
        """One model run on a prepared batch → (scene logits by name, persons or None) at model resolution."""
        # Read once: a close() from another thread after the caller's check had failed this call
        # with "'NoneType' object has no attribute 'run'".
        full, scene_model = self._full, self._scene
        if full is None:
            raise RuntimeError("this Segmenter was closed; create a new one")
        scene_only = wanted is not None and not (wanted & set(PERSON_NAMES))
        if scene_only and scene_model is not None:
            (scene_logits,) = scene_model.run(None, {INPUT_NAME: batch})
            class_logits = mask_logits = None
        else:
            scene_logits, class_logits, mask_logits = full.run(None, {INPUT_NAME: batch})
        # The model's calibration (see ModelContract), plus the grey photos' own.
        offsets = dict(self.contract.logit_offsets)
        grey = _is_grey(batch[0], frame.valid_hw)
        if grey:
            for name, extra in self.options.grey_logit_offsets:
                offsets[name] = offsets.get(name, 0.0) + extra
        margin = self.options.skin_colour_margin
        grid_logits = {}  # by name: the sky's rule reads the teeth logits the teeth matte uses too

        def on_model_grid(name):
            # The runtime's rules work on the whole model input: a matte then depends on the
            # input alone (a photo and the same photo padded to the input's aspect agree).
            if name in grid_logits:
                return grid_logits[name]
            logits = scene_logits[0, self.scene_categories.index(name)] + np.float32(offsets.get(name, 0.0))
            if name == "skin" and np.isfinite(margin):
                logits = _skin_colour_gated(logits, batch[0], margin, dark_floor=grey)
            if name == "sky":
                in_front = [on_model_grid(n) for n in self.options.in_front_of_sky if n in self.scene_categories]
                if in_front:
                    logits = _behind(logits, in_front)
            grid_logits[name] = logits
            return logits

        def restored(name):
            return frame.restore(on_model_grid(name))

        scene = {name: restored(name) for name in self.scene_categories if wanted is None or name in wanted}
        if "glasses" in scene and {"skin", "hair"} <= set(self.scene_categories):
            face = [scene[n] if n in scene else restored(n) for n in ("skin", "hair")]  # restored once
            # Checked when the glasses matte is first read (most callers never read it).
            scene["glasses"] = _Deferred(_glasses_where_faces, scene["glasses"], face[0], face[1],
                                         self.options.glasses_face_context, self.options.glasses_min_face_share)
        persons = None
        if not scene_only:
            persons = _select_persons(class_logits[0], mask_logits[0] + np.float32(offsets.get("person", 0.0)),
                                      frame, self.options)
        return scene, persons


class _Frame:
    """How a photo was placed in the model input, to map outputs back."""

    def __init__(self, valid_hw: tuple[int, int], photo_hw: tuple[int, int]):
        self.valid_hw = valid_hw
        self.photo_hw = photo_hw

    @property
    def restored_hw(self) -> tuple[int, int]:
        """(h, w) of the planes :meth:`restore` gives."""
        (vh, vw), (h, w) = self.valid_hw, self.photo_hw
        return (h, w) if vh > h or vw > w else (vh, vw)

    def restore(self, plane: np.ndarray) -> np.ndarray:
        """Model-input plane (..., H, W) → plane in the photo's orientation and aspect.

        A photo smaller than the model input was enlarged to fit it; its planes
        are brought back down to the photo's own size, so the result is never
        larger than the photo.
        """
        vh, vw = self.valid_hw
        plane = np.ascontiguousarray(plane[..., :vh, :vw], dtype=np.float32)
        h, w = self.photo_hw
        if plane.shape[-2] > h or plane.shape[-1] > w:
            flat = plane.reshape(-1, *plane.shape[-2:]).transpose(1, 2, 0)  # h, w, K for cv2
            flat = cv2.resize(np.ascontiguousarray(flat), (w, h), interpolation=cv2.INTER_AREA)
            plane = flat.reshape(h, w, -1).transpose(2, 0, 1).reshape(*plane.shape[:-2], h, w)
            plane = np.ascontiguousarray(plane)
        return plane


def _input_placement(photo_hw, input_size) -> tuple[tuple[int, int], float]:
    """(valid rows, valid columns) of the photo in the model input, and its scale."""
    H, W = input_size
    h, w = photo_hw
    scale = min(H / h, W / w)
    return (max(1, min(H, round(h * scale))), max(1, min(W, round(w * scale)))), scale


def _reduced_size(photo_hw, low_hw, max_pixels: int) -> tuple[int, int]:
    """cv2 (width, height) of the photo reduced to about ``max_pixels``, never below the low-res mattes."""
    H, W = photo_hw
    s = np.sqrt(max_pixels / (H * W))
    return max(low_hw[1], int(round(W * s))), max(low_hw[0], int(round(H * s)))


def _prepare(linear: np.ndarray, input_size) -> "tuple[np.ndarray, _Frame] | None":
    """Photo → model batch (1, 3, H, W) sRGB [0, 1], letterboxed upright at the top left.

    None when the photo holds a NaN or an infinity. Every pixel
    takes part in the resized photo (by a sum, or a product with a weight), so one
    non-finite value anywhere leaves one there — a check of 0.2 MP instead of 12.
    """
    H, W = input_size
    photo_hw = linear.shape[:2]
    (vh, vw), scale = _input_placement(photo_hw, input_size)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(np.ascontiguousarray(linear), (vw, vh), interpolation=interp)
    if not np.isfinite(small).all():
        return None
    batch = np.zeros((1, 3, H, W), np.float32)
    batch[0, :, :vh, :vw] = linear_to_srgb(small).transpose(2, 0, 1)
    return batch, _Frame((vh, vw), photo_hw)


class _Deferred:
    """A low-resolution plane whose last step runs when it is first needed (see Segmentation._logits)."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __call__(self) -> np.ndarray:
        return self.fn(*self.args)


def _glasses_where_faces(glasses: np.ndarray, skin: np.ndarray, hair: np.ndarray, min_context: float,
                         min_face_share: float) -> np.ndarray:
    """:func:`_glasses_on_faces` with the face (skin or hair matte > 0.5) taken from their logits."""
    return _glasses_on_faces(glasses, (skin > 0) | (hair > 0), min_context, min_face_share)


def _glasses_on_faces(glasses: np.ndarray, face: np.ndarray, min_context: float,
                      min_face_share: float = 0.0) -> np.ndarray:
    """Keep the glasses matte only around glasses regions that sit on a face.

    ``glasses``: float32 (h, w) logits at model resolution; ``face``: bool (h, w), skin or hair
    (matte > 0.5). A region is a connected component of ``glasses > 0``; it is on a face when
    at least ``min_context`` of its surrounding ring — pixels within half the region's larger
    side, outside it — is face, and it holds at least ``min_face_share`` of the area of the
    largest face region (connected skin-or-hair component) its ring touches. Everything farther
    than a quarter of its size (at least 3 pixels) from every region on a face, soft fringes
    and faint blobs included, gets a logit of -20. Returns a new array (or ``glasses`` itself
    when nothing is removed).
    """
    if min_context <= 0 and min_face_share <= 0:
        return glasses
    count, labels, stats, _ = cv2.connectedComponentsWithStats((glasses > 0).astype(np.uint8), connectivity=8)
    if count > 1 and min_face_share > 0:
        _, face_labels, face_stats, _ = cv2.connectedComponentsWithStats(face.astype(np.uint8), connectivity=8)
    h, w = glasses.shape
    keep = np.zeros((h, w), np.uint8)
    for i in range(1, count):  # few regions: glasses are rare and compact
        x, y, bw, bh = stats[i, :4]
        r = max(2, int(0.5 * max(bw, bh)))
        y0, y1, x0, x1 = max(0, y - r), min(h, y + bh + r), max(0, x - r), min(w, x + bw + r)
        region = (labels[y0:y1, x0:x1] == i).astype(np.uint8)
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        ring = cv2.dilate(region, disc).astype(bool) & ~region.astype(bool)
        if not ring.any() or face[y0:y1, x0:x1][ring].mean() < min_context:
            continue
        if min_face_share > 0:
            touched = np.unique(face_labels[y0:y1, x0:x1][ring])
            face_area = face_stats[touched[touched > 0], cv2.CC_STAT_AREA].max(initial=0)
            if stats[i, cv2.CC_STAT_AREA] < min_face_share * face_area:
                continue  # a speck on an eye, not a pair of glasses
        m = max(3, r // 2)
        grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * m + 1, 2 * m + 1))
        keep[y0:y1, x0:x1] |= cv2.dilate(region, grow)
    if keep.all():
        return glasses
    return np.where(keep.astype(bool), glasses, np.float32(-20.0)).astype(np.float32)


def _behind(logits: np.ndarray, in_front: list) -> np.ndarray:
    """Logits (h, w) of a matte ``p`` capped to what the mattes in front leave visible:
    ``min(p, 1 - max(q))`` over the ``in_front`` logit planes (h, w); float32."""
    p = _sigmoid(logits)
    visible = 1.0 - np.maximum.reduce([_sigmoid(q) for q in in_front])
    if (p <= visible).all():
        return logits
    return _logit(np.minimum(p, visible))


def _logit(p: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_sigmoid` for mattes the runtime changed, kept off 0 and 1 (logits
    within ±13.8); float32."""
    q = np.clip(p, np.float32(1e-6), np.float32(1 - 1e-6))
    return (np.log(q) - np.log1p(-q)).astype(np.float32)


def _is_grey(srgb: np.ndarray, valid_hw: tuple) -> bool:
    """Whether the model input (3, H, W) sRGB in [0, 1] shows a grey photo: all but 0.1 % of
    the pixels of its valid region have channels within 2/255 of each other (a black-and-white
    photo whose channels a colour encoder or a resize rounded apart; a colour date stamp or
    logo on a scan leaves it grey)."""
    vh, vw = valid_hw
    r, g, b = srgb[:, :vh, :vw]
    tol = np.float32(2.5 / 255.0)  # 2 levels, with room for float rounding
    tinted = np.count_nonzero((np.abs(r - g) > tol) | (np.abs(g - b) > tol))
    return tinted <= 0.001 * vh * vw


def _skin_colour_gated(skin_logits: np.ndarray, srgb: np.ndarray, margin: float, *,
                       dark_floor: bool = False) -> np.ndarray:
    """Skin logits (h, w) with the matte faded where the skin's colour is redder than any skin's
    (and, with ``dark_floor``, darker than any skin's).

    ``srgb``: the model input under them, (3, h, w) sRGB in [0, 1] (letterbox padding
    included: black, Cr 128, never gated by colour). The matte ``p`` becomes ``p * g`` with
    ``g = clip(1 - (Cr - envelope(Y) - margin) / 10, 0, 1)``, Y and Cr (8-bit YCrCb) averaged
    with the matte's weight over a Gaussian of σ = ``_SKIN_COLOUR_SIGMA`` of the input's
    longer side (see ``SegmenterOptions.skin_colour_margin``). With ``dark_floor`` (a
    black-and-white photo, where colour says nothing) ``g`` also falls from 1 to 0 as that
    luma falls through :data:`SKIN_LUMA_FLOOR`. Returns float32 (h, w) logits:
    ``skin_logits`` itself when nothing is faded.
    """
    r, g, b = srgb
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    cr = 0.713 * (r - luma)  # (Cr - 128) / 255
    p = _sigmoid(skin_logits)
    sigma = _SKIN_COLOUR_SIGMA * max(p.shape)

    def smooth(x):
        return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    weight = np.maximum(smooth(p), np.float32(1e-4))
    luma_255 = smooth(p * luma) / weight * 255.0
    cr_255 = smooth(p * cr) / weight * 255.0 + 128.0
    envelope = np.interp(luma_255, _ENVELOPE_KNOTS[:, 0], _ENVELOPE_KNOTS[:, 1]).astype(np.float32)
    excess = cr_255 - envelope - np.float32(margin)
    gate = np.clip(1.0 - excess / np.float32(_SKIN_COLOUR_FADE), 0.0, 1.0).astype(np.float32)
    if dark_floor:
        lo, hi = SKIN_LUMA_FLOOR
        gate *= np.clip((luma_255 - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)
    if gate.min() >= 1.0:
        return skin_logits
    return _logit(p * gate)  # (the calibration offset is already in)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # overflow-free logistic


def _select_persons(class_logits, mask_logits, frame: _Frame, options: SegmenterOptions):
    """Pick person queries (before any mask work), drop duplicates, return low-res mattes (K, h, w)."""
    logits = class_logits - class_logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    person_prob = probs[:, 0]
    keep = np.flatnonzero(person_prob > options.person_threshold)
    if keep.size == 0:
        return np.zeros((0, *frame.restore(mask_logits[0]).shape), np.float32), np.zeros(0, np.float32)
    masks = _sigmoid(frame.restore(mask_logits[keep]))  # K, h, w: only the selected queries
    flat = masks.reshape(len(keep), -1)
    hard = (flat > 0.5).astype(np.float32)
    area = hard.sum(1)
    maskness = (flat * hard).sum(1) / np.maximum(area, 1)
    score = person_prob[keep] * maskness
    inter = hard @ hard.T
    union = area[:, None] + area[None, :] - inter
    iou = inter / np.maximum(union, 1)
    # Duplicates first: a query whose mask is another, more confident query's person is dropped
    # (at most N (4) iterations: queries, not pixels).
    candidates = []
    for i in np.argsort(-score):
        if area[i] < options.min_person_area * hard.shape[1] or score[i] < options.min_mask_score:
            continue
        if all(iou[i, j] <= options.duplicate_iou for j in candidates):
            candidates.append(i)
    # Then every pixel goes to its most confident remaining query; one left with little of its
    # own mask is a fragment of another's person. (Done the other way round, two near-equal
    # duplicates split one person's pixels between them, each kept under 0.65 of its mask, and
    # both were dropped as fragments: nobody found in a photo of one woman, COCO 36 enlarged.)
    chosen = []
    if candidates:
        owner = np.asarray(candidates)[np.argmax(flat[candidates] * score[candidates, None], axis=0)]
        chosen = [i for i in candidates if hard[i, owner == i].sum() >= options.min_visible_fraction * area[i]]
        # A fragment is a piece of someone found: when near-equal queries under the duplicate
        # IoU split one person so that none keeps enough, the surest of them is that person.
        # (Sharing pixels out one query at a time instead kept more true fragments: person PQ
        # 0.762 -> 0.753 on the held-out photos.)
        if not chosen:
            chosen = [candidates[0]]
    chosen = sorted(chosen, key=lambda i: -area[i])  # biggest person first: a stable, useful order
    return masks[chosen], person_prob[keep][chosen]


class Segmentation:
    """Soft mattes of one photo; each is computed at full resolution when first read.

    Attributes
    ----------
    sky, hair, skin, teeth, glasses : np.ndarray
        float32 H×W mattes in [0, 1] at the photo's resolution (any category of
        the model's table is an attribute).
    person : np.ndarray
        float32 H×W union of the person mattes.
    persons : list of np.ndarray
        One float32 H×W matte per person (biggest first); they sum to ``person``.
    panoptic : tuple of np.ndarray
        (category ids, instance ids), int32 H×W. Category ids index
        ``PANOPTIC_CATEGORIES`` (0 unlabelled, 1 person, 2 sky: only where sky was computed,
        so ``categories={"person"}`` labels no sky); instance ids are 0 off-person and 1…K for
        ``persons[0…K-1]``.
    person_scores : np.ndarray or None
        float32 (K,) class probability of each person; None when ``categories=`` left the
        persons out (then ``persons``, ``person`` and ``panoptic`` raise, saying so).
    image_shape : tuple
        (H, W) of the photo.
    """

    panoptic_categories = PANOPTIC_CATEGORIES

    def __init__(self, image, scene_low, persons_low, refine: RefineMatteParams):
        self._image = image
        self._scene_low = scene_low
        self._refine = refine
        self._model_scene_categories = None  # the model's (Segmenter.segment_borrowed sets them)
        self._cache: dict = {}
        self._reduced_cache: dict = {}  # max_pixels -> {name: matte} (see mattes())
        self._reduced_guides: dict = {}  # (w, h) -> the photo reduced to that size
        self._lock = threading.Lock()
        if persons_low is None:
            self._persons_low, self.person_scores = None, None
        else:
            self._persons_low, self.person_scores = persons_low
        self.image_shape = image.shape[:2]

    @property
    def categories(self) -> tuple:
        """Names that this segmentation can give."""
        names = tuple(self._scene_low)
        return names + (PERSON_NAMES if self._persons_low is not None else ())

    def low_resolution(self, name: str) -> np.ndarray:
        """A scene matte at model resolution (aspect kept), float32 in [0, 1], without upsampling;
        at the photo's own size when the photo is smaller than the model's input (never larger
        than the photo)."""
        if name in PERSON_NAMES and self._persons_low is not None:  # ("'person' was not computed", though it was)
            raise AttributeError(f"low_resolution gives scene mattes ({list(self._scene_low)}); the person "
                                 "mattes are .person and .persons, at full resolution")
        if name not in self._scene_low:
            if name not in set(SCENE_CATEGORIES) | set(PERSON_NAMES) | set(self.categories):
                # A typo ("skyy") was told it "was not computed" and to include it, where
                # mattes() calls it unknown.
                raise ValueError(f"unknown matte name {name!r}; this segmentation has {list(self.categories)}")
            raise self._missing(name)
        return _sigmoid(self._logits(name))

    def _logits(self, name: str) -> np.ndarray:
        """A scene category's logits at model resolution, finishing a deferred plane on first use."""
        logits = self._scene_low[name]
        if isinstance(logits, _Deferred):
            # Computed once; a concurrent first read computes the same array (the dict update is atomic).
            logits = self._scene_low[name] = logits()
        return logits

    def _missing(self, name):
        model = self._model_scene_categories
        if model is not None and name not in PERSON_NAMES and name != "panoptic" and name not in model:
            # (A model of one's own without it: "include it" sent the caller to an "unknown" error.)
            return AttributeError(f"this model has no {name!r} matte; its scene mattes are {list(model)}")
        return AttributeError(f"{name!r} was not computed for this photo (available: {list(self.categories)}); "
                              "call segment(image) without categories=, or include it")

    def _upsample(self, stack_low: np.ndarray, max_pixels: "int | None" = None) -> list:
        """(h, w, K) low-res mattes → K edge-aware (H, W) mattes, as separate contiguous planes.

        With ``max_pixels`` (and a photo bigger than that), the guided filter is
        applied to the photo reduced to about ``max_pixels`` pixels and each
        refined matte is then upsampled bilinearly: edges keep the detail of
        the reduced photo (a 12 MP photo at 3 MP: 2 px), at a fraction of the
        cost — most of which is evaluating 4 coefficient planes per matte at
        every full-resolution pixel.
        """
        H, W = self.image_shape
        if max_pixels is None or H * W <= max_pixels:
            return refine_matte_planes(self._image, stack_low, params=self._refine)
        return [cv2.resize(plane, (W, H), interpolation=cv2.INTER_LINEAR)
                for plane in self._upsample_reduced(stack_low, max_pixels)]

    def _upsample_reduced(self, stack_low: np.ndarray, max_pixels: int) -> list:
        """The guided filter against the photo reduced to about ``max_pixels`` pixels (planes)."""
        size = _reduced_size(self.image_shape, stack_low.shape[:2], max_pixels)
        guide = self._reduced_guides.get(size)  # Segmenter.segment_borrowed may have made it
        if guide is None:
            guide = self._reduced_guides[size] = cv2.resize(self._image, size, interpolation=cv2.INTER_AREA)
        return refine_matte_planes(guide, stack_low, params=self._refine)

    def matte(self, name: str) -> np.ndarray:
        """The full-resolution matte of a scene category or of the person union."""
        if name in PERSON_NAMES:
            return self.person
        with self._lock:
            if name not in self._cache:
                low = self.low_resolution(name)
                self._cache[name] = self._upsample(low[:, :, None])[0]
            return self._cache[name]

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.__dict__.get("_scene_low", {}):
            return self.matte(name)
        if name in PERSON_NAMES or name == "panoptic":  # a property raised: persons were not computed
            raise self._missing(name)
        if name in SCENE_CATEGORIES:  # left out by categories= ("no attribute 'hair'" said not how to get it)
            raise self._missing(name)
        raise AttributeError(f"Segmentation has no attribute {name!r}; mattes: {list(self.categories)}")

    @property
    def persons(self) -> list:
        if self._persons_low is None:
            raise self._missing("persons")
        with self._lock:
            if "persons" not in self._cache:
                self._cache["persons"] = self._compute_persons()
            # A new list each time: the cached one makes ``person`` and ``panoptic``, and a caller's
            # ``seg.persons.pop(0)`` had taken that person out of both.
            return list(self._cache["persons"])

    def _persons_stack_low(self) -> np.ndarray:
        """(h, w, 1 + K): the person union, then each person's soft share, at model resolution."""
        low = self._persons_low
        # Refine the union once (one guided filter), then split it by soft shares computed at
        # model resolution: the instance mattes then sum exactly to the person matte, and
        # overlapping people divide contested pixels instead of both claiming them.
        union_low = low.max(axis=0)
        scores = (low * self.person_scores[:, None, None]) ** 4
        shares_low = scores / np.maximum(scores.sum(axis=0, keepdims=True), 1e-12)
        return np.concatenate([union_low[:, :, None], shares_low.transpose(1, 2, 0)], axis=2)

    @staticmethod
    def _split_persons(planes: list) -> list:
        """[union, share_1 … share_K] planes → K person mattes that sum to the union."""
        union, shares = planes[0], planes[1:]
        if len(shares) <= 1:  # one person (its share, 1 wherever the union is not ~0, is not computed)
            return [union]
        total = shares[0].copy()
        for sh in shares[1:]:
            total += sh
        np.maximum(total, 1e-6, out=total)
        np.divide(union, total, out=total)  # union / Σ shares, then × each share
        return [np.multiply(sh, total, out=sh) for sh in shares]

    def _persons_planes_low(self) -> np.ndarray:
        """The person union, and each person's share when there are several (h, w, 1 [+ K])."""
        stack = self._persons_stack_low()
        return stack[:, :, :1] if stack.shape[2] == 2 else stack

    def _compute_persons(self) -> list:
        if len(self._persons_low) == 0:
            return []
        return self._split_persons(self._upsample(np.ascontiguousarray(self._persons_planes_low())))

    def prefetch(self, names) -> None:
        """Compute several full-resolution mattes in one guided-filter pass.

        Reading mattes one by one runs the edge-aware upsampling once per
        matte; most of its cost (reading the photo, upsampling the
        coefficients' grid) is shared, so asking for all the mattes a job
        needs at once is cheaper (12 MP, 2 cores: 6 mattes one by one about
        1.4 s CPU, together about 0.9 s). Results are cached; later reads
        are free. Names: scene categories, ``"person"`` or ``"persons"``;
        ones not computed for this photo are ignored (reading them still
        raises), names no segmentation has raise ValueError.
        """
        self.mattes(names)

    def mattes(self, names, *, max_pixels: "int | None" = None) -> dict:
        """Several mattes at full resolution, computed together in one guided-filter pass.

        Parameters
        ----------
        names : iterable of str
            Scene categories, ``"person"`` (the union) and/or ``"persons"``
            (the list of instance mattes). Names this segmentation did not
            compute are left out of the result; names no segmentation has
            raise ValueError.
        max_pixels : int, optional
            Refine edges against the photo reduced to about this many pixels,
            then upsample bilinearly (see :meth:`_upsample`): for stages that
            only need smooth region weights (denoise, tone, style strengths),
            at a fraction of the cost on big photos. None (default): full
            detail, the same mattes as the attributes.

        Returns
        -------
        dict
            name → float32 H×W matte in [0, 1] (``"persons"`` → list of them).
            Results are cached per ``max_pixels``.
        """
        if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer))
                                       or max_pixels < 1):
            raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
        if isinstance(names, str):  # iterated letter by letter it gave {} without a word
            raise TypeError(f"names must be a list of category names, e.g. [{names!r}], got the string {names!r}")
        names = list(dict.fromkeys(names))
        known = set(SCENE_CATEGORIES) | set(PERSON_NAMES) | set(self.categories)
        unknown = [n for n in names if n not in known]
        if unknown:  # a typo ("skyy") was dropped as "not computed"
            raise ValueError(f"unknown matte names {unknown}; this segmentation has {list(self.categories)}")
        H, W = self.image_shape
        if max_pixels is not None and H * W <= max_pixels:
            max_pixels = None  # the photo is small: full detail costs nothing more
        cache = self._cache if max_pixels is None else self._reduced_cache.setdefault(max_pixels, {})
        with self._lock:
            scene = [n for n in names if n in self._scene_low and n not in cache]
            want_persons = (any(n in PERSON_NAMES for n in names) and self._persons_low is not None
                            and "persons" not in cache)
            if want_persons and len(self._persons_low) == 0:
                cache["persons"], want_persons = [], False
            if scene or want_persons:
                parts = [_sigmoid(self._logits(n))[:, :, None] for n in scene]
                if want_persons:
                    parts.append(self._persons_planes_low())
                planes = self._upsample(np.ascontiguousarray(np.concatenate(parts, axis=2)), max_pixels)
                for n, plane in zip(scene, planes):
                    cache[n] = plane
                if want_persons:
                    cache["persons"] = self._split_persons(planes[len(scene):])
            out = {n: list(cache[n]) if n == "persons" else cache[n] for n in names if n in cache}
        if "person" in names and self._persons_low is not None:
            out["person"] = self._union(cache)  # the instance mattes are in this cache by now
        return out

    def _union(self, cache: dict) -> np.ndarray:
        """Sum of the cached person mattes, capped at 1 (zeros when nobody was found)."""
        with self._lock:
            if "person" not in cache:
                persons = cache["persons"]
                if not persons:
                    cache["person"] = np.zeros(self.image_shape, np.float32)
                else:
                    total = persons[0].copy()
                    for p in persons[1:]:
                        total += p
                    cache["person"] = np.minimum(total, 1.0, out=total)
            return cache["person"]

    @property
    def person(self) -> np.ndarray:
        self.persons  # noqa: B018 - computes and caches the instance mattes
        return self._union(self._cache)

    @property
    def panoptic(self) -> tuple:
        persons = self.persons
        H, W = self.image_shape
        category = np.zeros((H, W), np.int32)
        instance = np.zeros((H, W), np.int32)
        if "sky" in self._scene_low:
            category[self.sky > 0.5] = PANOPTIC_CATEGORIES.index("sky")
        if persons:
            # The person most present at each pixel, the first on ties (as argmax), by one pass per
            # person: argmax over a K×H×W stack made int64 planes, 41 bytes a pixel at the peak
            # (2 GB at 50 MP) and 2.4 s of the 4.8 s a 50 MP panoptic took.
            on_person = self.person > 0.5  # the union: instance ids > 0 exactly where it is over 0.5
            best, owner = persons[0], np.ones((H, W), np.int32)
            for k, matte in enumerate(persons[1:], start=2):  # K people (at most the queries), not pixels
                ahead = matte > best
                np.copyto(owner, k, where=ahead)
                best = np.maximum(best, matte)
            np.copyto(instance, owner, where=on_person)
            np.copyto(category, PANOPTIC_CATEGORIES.index("person"), where=on_person)
        return category, instance


_default: Segmenter | None = None
_default_lock = threading.Lock()


def default_segmenter() -> Segmenter:
    """The bundled model, loaded once per process."""
    global _default
    with _default_lock:
        # Loaded again if a caller closed it (``with default_segmenter():`` does): every later
        # camseg.segment() and develop() of the process failed with "this Segmenter was closed".
        if _default is None or _default._full is None:
            _default = Segmenter()
        return _default


def segment(image, *, categories=None) -> Segmentation:
    """Segment a photo with the bundled default model (loaded once per process).

    See :meth:`Segmenter.segment` for the arguments.
    """
    return default_segmenter().segment(image, categories=categories)
