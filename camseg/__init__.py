"""camseg: camera-pipeline image processing driven by HyperDETR segmentation.

Upper layer of the project: the segmentation runtime (onnxruntime), image I/O,
the ``develop()`` pipeline and the command line. Pure image stages live in the
sibling package :mod:`effects`; training and export live in
:mod:`camseg.train` (the ``[train]`` extra, the only part that imports torch).

>>> import camseg                                              # doctest: +SKIP
>>> seg = camseg.segment("IMG_0042.jpg")                       # doctest: +SKIP
>>> seg.sky, seg.persons, seg.panoptic                         # doctest: +SKIP
>>> photo = camseg.develop("IMG_0042.jpg", style="warm", portrait="blur")   # doctest: +SKIP

Exports are resolved on first use, so ``import camseg`` (and ``camseg --help``)
does not pay for onnxruntime and scipy until they are needed.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "segment": "camseg.segmenter", "Segmenter": "camseg.segmenter", "Segmentation": "camseg.segmenter",
    "SegmenterOptions": "camseg.segmenter",
    "develop": "camseg.pipeline", "DevelopSettings": "camseg.pipeline", "DevelopReport": "camseg.pipeline",
    "DevelopResult": "camseg.pipeline",
    "Photo": "camseg.io", "read_image": "camseg.io", "read_photo": "camseg.io", "write_photo": "camseg.io",
    "run_batch": "camseg.batch",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # resolve once
        return value
    raise AttributeError(f"module 'camseg' has no attribute {name!r}")


def __dir__():
    return __all__
