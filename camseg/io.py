"""Image I/O: the one place where pixels change encoding.

Everything inside camseg and effects works on one convention (see DESIGN.md §4):
``float32`` ``H×W×3`` linear-light RGB, nominal range [0, 1]. This module turns
files and caller arrays into that convention and back.

Transfer function: IEC 61966-2-1 (sRGB) piecewise curve.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "srgb_to_linear",
    "linear_to_srgb",
    "as_linear_rgb",
    "read_image",
]


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values to linear light (IEC 61966-2-1).

    Parameters
    ----------
    encoded : np.ndarray
        Any shape, float, sRGB-encoded values in [0, 1].

    Returns
    -------
    np.ndarray
        float32, same shape, linear light in [0, 1].
    """
    encoded = np.asarray(encoded, dtype=np.float32)
    low = encoded / np.float32(12.92)
    high = np.power((np.maximum(encoded, 0.04045) + np.float32(0.055)) / np.float32(1.055), np.float32(2.4))
    return np.where(encoded <= 0.04045, low, high).astype(np.float32, copy=False)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Encode linear light to sRGB values (IEC 61966-2-1).

    Parameters
    ----------
    linear : np.ndarray
        Any shape, float, linear light; values are clipped to [0, 1] first.

    Returns
    -------
    np.ndarray
        float32, same shape, sRGB-encoded values in [0, 1].
    """
    linear = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    low = linear * np.float32(12.92)
    high = np.float32(1.055) * np.power(np.maximum(linear, 0.0031308), np.float32(1.0 / 2.4)) - np.float32(0.055)
    return np.where(linear <= 0.0031308, low, high).astype(np.float32, copy=False)


def as_linear_rgb(array: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Convert a caller's pixel array to float32 H×W×3 linear RGB in [0, 1].

    Integer arrays (uint8, uint16) are taken as sRGB-encoded, the way files
    store them. Float arrays are taken as already linear (the library's own
    convention) and are only checked. Grayscale (H×W or H×W×1) is repeated to
    three channels; RGBA drops alpha.

    Parameters
    ----------
    array : np.ndarray
        H×W, H×W×1, H×W×3 or H×W×4; uint8, uint16, float16/32/64.
    name : str
        Argument name used in error messages.

    Returns
    -------
    np.ndarray
        float32 H×W×3 linear RGB in [0, 1] (a new array).

    Raises
    ------
    TypeError
        For an unsupported dtype.
    ValueError
        For a wrong shape, an empty image, or NaN/inf values.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a file path, got {type(array).__name__}; "
                        "pass an H×W×3 array or the path of an image file")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"{name} must have shape H×W, H×W×3 or H×W×4, got {array.shape}; "
                         "pass a grayscale, RGB or RGBA image")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass an image with at least one pixel")
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        return srgb_to_linear(array.astype(np.float32) / np.float32(255.0))
    if array.dtype == np.uint16:
        return srgb_to_linear(array.astype(np.float32) / np.float32(65535.0))
    if array.dtype in (np.float16, np.float32, np.float64):
        out = array.astype(np.float32)  # always a copy: callers' arrays are never modified
        if not np.isfinite(out).all():
            raise ValueError(f"{name} contains NaN or infinite values; replace them "
                             "(e.g. np.nan_to_num) before calling")
        return out
    raise TypeError(f"{name} has unsupported dtype {array.dtype}; use uint8, uint16 "
                    "(sRGB-encoded) or float32 (linear RGB in [0, 1])")


def read_image(source: "str | os.PathLike | np.ndarray", *, name: str = "image") -> np.ndarray:
    """Read a photo (path or array) as float32 H×W×3 linear RGB in [0, 1].

    Files are decoded with Pillow, EXIF orientation is applied, and the pixel
    values are decoded from sRGB.

    Parameters
    ----------
    source : str, os.PathLike or np.ndarray
        An image file (JPEG, PNG, TIFF; 8 or 16 bit) or an array accepted by
        :func:`as_linear_rgb`.
    name : str
        Argument name used in error messages.

    Returns
    -------
    np.ndarray
        float32 H×W×3 linear RGB in [0, 1].
    """
    if isinstance(source, np.ndarray):
        return as_linear_rgb(source, name=name)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path or a numpy array, got {type(source).__name__}")
    return as_linear_rgb(_decode_file(Path(source)), name=name)


def _decode_file(path: Path) -> np.ndarray:
    """Decode an image file to an uint8/uint16 array with EXIF orientation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.exists():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist; check the path")
    if path.stat().st_size == 0:
        raise ValueError(f"image file {str(path)!r} is empty (0 bytes); re-export or re-copy the photo")
    try:
        with Image.open(path) as img:
            img.load()  # forces a full decode so truncated files fail here, not later
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(img, dtype=np.uint16) if img.mode != "I" else np.clip(
                    np.asarray(img), 0, 65535).astype(np.uint16)
            if img.mode not in ("RGB", "L", "RGBA"):
                img = img.convert("RGB")
            return np.asarray(img)
    except UnidentifiedImageError as exc:
        raise ValueError(f"cannot read {str(path)!r}: not an image format camseg can decode "
                         "(JPEG, PNG, TIFF)") from exc
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: the file is damaged or truncated ({exc}); "
                         "re-export or re-copy the photo") from exc
