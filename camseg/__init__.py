"""camseg: camera-pipeline image processing driven by HyperDETR segmentation.

Upper layer of the project: the segmentation runtime (onnxruntime), image I/O,
the ``develop()`` pipeline and the command line. Pure image stages live in the
sibling package :mod:`effects`; training and export live in
:mod:`camseg.train` (the ``[train]`` extra, the only part that imports torch).

>>> import camseg                                              # doctest: +SKIP
>>> seg = camseg.segment("IMG_0042.jpg")                       # doctest: +SKIP
>>> seg.sky, seg.persons, seg.panoptic                         # doctest: +SKIP
>>> photo = camseg.develop("IMG_0042.jpg", style="warm", portrait="blur")   # doctest: +SKIP
"""

__version__ = "0.1.0"

from camseg.develop import DevelopReport, DevelopSettings, develop
from camseg.io import Photo, read_image, read_photo, write_photo
from camseg.segmenter import Segmentation, Segmenter, SegmenterOptions, segment

__all__ = [
    "segment", "Segmenter", "Segmentation", "SegmenterOptions",
    "develop", "DevelopSettings", "DevelopReport",
    "Photo", "read_image", "read_photo", "write_photo",
]
