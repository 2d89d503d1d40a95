"""camseg: camera-pipeline image processing driven by HyperDETR segmentation.

Upper layer of the project: the segmentation runtime (onnxruntime), image I/O,
the ``develop()`` pipeline and the command line. Pure image stages live in the
sibling package :mod:`effects`.
"""

__version__ = "0.1.0"
