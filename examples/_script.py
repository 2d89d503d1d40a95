"""What every example does at its edges: check its arguments, and write its images whole.

A photo that is missing, a folder or not a photo camseg can read, an ``--out`` that cannot be a folder, a width or an ISO
of zero are refused by argparse (a one-line message naming the argument, exit status 2), not
met later as a traceback; an image that cannot be written ends the script with its path and
the reason (exit status 1) instead of ``cv2.imwrite`` returning False unseen and the script
printing "wrote". Images are written by ``camseg.io.write_photo`` (a temporary file in the same
folder, renamed), so an interrupted run leaves the previous image or none, never half of one.
"""
import argparse
import os
from pathlib import Path

import numpy as np

from camseg.io import linear_to_srgb, read_photo, to_srgb_primaries, write_photo


def photo_file(text):
    """argparse ``type=``: an existing photo file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; name one photo file (JPEG, PNG or TIFF)")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist (or is not a regular file); check the path")
    return path


def positive(kind):
    """argparse ``type=``: a number of ``kind`` (int or float) above zero."""
    what = "an integer" if kind is int else "a number"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} above 0, got {text!r}") from None
        if not 0 < value < float("inf"):  # NaN fails both
            raise argparse.ArgumentTypeError(f"expected {what} above 0, got {text!r}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def user_photo(parser, path, option="--input"):
    """Read the user's photo with ``camseg.io.read_photo``; refuse one camseg cannot read (not an
    image, empty, truncated, unreadable) through ``parser`` (exit status 2, one line).

    Call it before :func:`out_folder`, so a photo that is refused leaves no ``--out`` behind."""
    try:
        return read_photo(path)
    except ValueError as exc:  # its message names the file, what is wrong and the fix
        parser.error(f"argument {option}: {exc}")
    except OSError as exc:
        parser.error(f"argument {option}: cannot read {str(path)!r}: {exc.strerror or exc}")


def out_folder(parser, path):
    """Create ``--out`` (and the folders above it); refuse it through ``parser`` when it cannot be one."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"argument --out: cannot use {str(path)!r} as the output folder "
                     f"({exc.strerror or exc}); name a folder you can write to")
    if not os.access(path, os.W_OK | os.X_OK):
        parser.error(f"argument --out: {str(path)!r} is not writable; name a folder you can write to")
    return path


def display_codes(pixels, icc_profile=None):
    """uint8 H×W×3 sRGB codes of ``pixels`` (float32 linear RGB in the primaries ``icc_profile``
    names; None: sRGB's) for an untagged sheet, which viewers show as sRGB: a Display P3 photo's
    own values drawn as sRGB look dull, so they are brought to sRGB's primaries first."""
    return (linear_to_srgb(to_srgb_primaries(pixels, icc_profile)) * 255 + 0.5).astype(np.uint8)


def write_image(path, bgr):
    """Write ``bgr`` (uint8 H×W×3 sRGB codes, OpenCV's BGR order) to ``path`` (its suffix picks
    PNG, JPEG or TIFF) with camseg's public writer, :func:`camseg.io.write_photo`: a locked
    temporary file in the same folder, then a rename; the new file gets the mode of the one it
    replaces, or the umask's. Exit with a message on failure."""
    path = Path(path)
    try:
        return write_photo(path, np.ascontiguousarray(bgr[:, :, ::-1]))  # uint8: taken as sRGB codes, exactly
    except OSError as exc:
        raise SystemExit(f"cannot write {path}: {exc.strerror or exc}") from None
