"""Image I/O: the one place where pixels change encoding.

Everything inside camseg and effects works on one convention (see DESIGN.md §4):
``float32`` ``H×W×3`` linear-light RGB, nominal range [0, 1]. This module turns
files and caller arrays into that convention and back.

Transfer function: IEC 61966-2-1 (sRGB) piecewise curve.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io
import math
import os
import re
import struct
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl  # POSIX: writers lock their temporaries (see _atomic_write)
except ImportError:  # Windows
    fcntl = None

import cv2
import numpy as np

from effects._bands import run_in_row_bands
from effects._jit import clamp01, kernel, read_only_contiguous
# The sRGB curve is written once, in effects (its JPEG step models the encoder with it);
# this module is where photos are converted with it, and re-exports it.
from effects._srgb import linear_to_srgb, srgb_to_linear

__all__ = [
    "srgb_to_linear",
    "linear_to_srgb",
    "as_linear_rgb",
    "read_image",
    "Photo",
    "read_photo",
    "jpeg_leaves_out",
    "write_photo",
    "make_icc_profile",
    "DISPLAY_P3_PRIMARIES",
    "ADOBE_RGB_PRIMARIES",
    "PHOTO_FORMATS",
    "remove_stale_temp_files",
]


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
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        raise ValueError(f"{name} has shape {array.shape}, channels first; camseg takes H×W×3 "
                         f"(channels last): pass np.moveaxis({name}, 0, -1)")
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"{name} must have shape H×W, H×W×3 or H×W×4, got {array.shape}; "
                         "pass a grayscale, RGB or RGBA image")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass an image with at least one pixel")
    array = array[:, :, :3]
    if not array.dtype.isnative:  # big-endian ('>u2' from np.fromfile of a PGM, '>f4'): refused as "unsupported"
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype == np.uint8:  # table lookup: a 100 MP photo decodes in a fraction of the power() time
        return _decode(array, None, 8)
    if array.dtype == np.uint16:
        return _decode(array, None, 16)
    if array.dtype in (np.float16, np.float32, np.float64):
        out = array.astype(np.float32)  # always a copy: callers' arrays are never modified
        # A sum is one fast pass and any NaN/inf makes it non-finite; only then (or on a
        # float32 overflow of absurd values) is the exact, slower check needed.
        with np.errstate(over="ignore"):
            total = float(out.sum())
        if not math.isfinite(total) and not np.isfinite(out).all():
            raise ValueError(f"{name} contains NaN or infinite values; replace them "
                             "(e.g. np.nan_to_num) before calling")
        return out
    raise TypeError(f"{name} has unsupported dtype {array.dtype}; use uint8, uint16 "
                    "(sRGB-encoded) or float32 (linear RGB in [0, 1])")


def read_image(source: "str | os.PathLike | np.ndarray", *, name: str = "image") -> np.ndarray:
    """Read a photo (path or array) as float32 H×W×3 linear RGB in [0, 1].

    Files are decoded by :func:`read_photo` (EXIF orientation applied, 16-bit
    kept, linearised with the file's ICC tone curve or sRGB; pixels stay in the
    file's own primaries). Use :func:`read_photo` to also keep the metadata.

    Parameters
    ----------
    source : str, os.PathLike, Photo or np.ndarray
        An image file (JPEG, PNG, TIFF; 8 or 16 bit), a :class:`Photo`, or an
        array accepted by :func:`as_linear_rgb`.
    name : str
        Argument name used in error messages.

    Returns
    -------
    np.ndarray
        float32 H×W×3 linear RGB in [0, 1].
    """
    if isinstance(source, np.ndarray):
        return as_linear_rgb(source, name=name)
    if isinstance(source, Photo):
        return source.pixels.copy()
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path, a Photo or a numpy array, got {type(source).__name__}")
    return read_photo(source).pixels


# ---------------------------------------------------------------------------
# Photo files: decode with metadata, encode atomically.
# ---------------------------------------------------------------------------

#: Peak memory of developing a photo, per pixel, the model and runtime aside: measured as peak
#: RSS (VmHWM, reset after a warm-up develop) at 12 and 48 MP, about 80-90 bytes with the default settings, 100-110 with portrait
#: blur and 130-155 with the Portrait Lighting looks (stage_light_mono the most).
DEVELOP_BYTES_PER_PIXEL = 160

#: File extensions :func:`write_photo` understands, mapped to a format name.
PHOTO_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG", ".tif": "TIFF",
                 ".tiff": "TIFF"}

#: Suffix of the temporary files :func:`write_photo` writes before renaming.
TEMP_SUFFIX = ".camseg-tmp"
_NAME_MAX = 255  # bytes in a file name on the usual file systems (ext4, XFS, APFS, NTFS)

_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_EXIF_IFD_TAG = 0x8769
_ISO_TAG = 0x8827
#: Where EXIF 2.3 (CIPA DC-008-2012, PhotographicSensitivity) puts a sensitivity of 65535 or more,
#: whose PhotographicSensitivity then says 65535: RecommendedExposureIndex, ISOSpeed,
#: StandardOutputSensitivity.
_HIGH_ISO_TAGS = (0x8832, 0x8833, 0x8831)
_PHOTOMETRIC_TAG = 262


@dataclass(frozen=True, eq=False)
class Photo:
    """A decoded photo: linear pixels plus what is needed to write it back faithfully.

    Attributes
    ----------
    pixels : np.ndarray
        float32 H×W×3 linear-light RGB in [0, 1], upright (EXIF orientation
        applied), in the photo's own working colour space: the primaries of its
        ICC profile (e.g. Display P3), or sRGB when it has none.
    exif : bytes or None
        The EXIF block as a TIFF structure (starting ``II*\\0`` or ``MM\\0*``),
        with the orientation tag already reset to 1 (pixels are upright).
    icc_profile : bytes or None
        ICC profile describing ``pixels`` (after linearisation); ``None`` means sRGB.
        It is written back unchanged, so a Display P3 photo stays Display P3. A photo with
        none whose PNG chunks (cICP, cHRM, gAMA) or camera EXIF (Adobe RGB: ColorSpace
        uncalibrated, interoperability index R03) name another colour space gets an
        equivalent profile made from them.
    bit_depth : int
        8 or 16: bits per channel of the source file.
    format : str
        Source container: ``"JPEG"``, ``"PNG"`` or ``"TIFF"`` (Pillow's name for others).
    colour_space : str
        Human-readable name of the working colour space (the ICC description, or ``"sRGB"``).
    source : pathlib.Path or None
        The file it was read from; :func:`write_photo` refuses to overwrite it.
    iso : float or None
        ISO speed from EXIF, if recorded (used to set the denoising strength).
    notes : tuple of str
        What was done on decoding that a user may want to know (CMYK converted,
        orientation applied, profile not understood, ...).
    alpha : np.ndarray or None
        float32 H×W opacity in [0, 1] (straight, not premultiplied), upright like
        ``pixels``, of a PNG or TIFF with transparency; written back to PNG and TIFF
        (a JPEG cannot hold it: :func:`write_photo` flattens the photo onto white). The
        stages develop the colour under it unchanged.
    xmp : bytes or None
        The XMP packet (UTF-8 XML: ratings, keywords, captions, edit history), its
        orientation reset to 1 like the EXIF, and no longer naming files the source held after
        its image (a motion photo's video, a gain map); written back to JPEG, PNG and TIFF.
    jpeg_subsampling : str or None
        Chroma subsampling of a JPEG source (``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``), as the
        least of these that keeps every chroma sample of the upright photo (a 4:2:2 file turned
        a quarter by its orientation, or 4:4:0, is ``"4:4:4"``; 4:1:1 is ``"4:2:2"``); a JPEG
        written "like" it uses the same.
    dpi : tuple of float or None
        (x, y) print resolution of the source (JFIF density, PNG pHYs, TIFF resolution);
        written back to JPEG, PNG and TIFF.
    grayscale : bool
        The source stored one grey channel (with or without transparency). Its pixels are
        expanded to RGB for the stages; a result that stayed grey (every pixel's channels
        within 2/255 of each other once encoded) is written back as grey -- one channel, a
        third of the size -- while one a style tinted (warm, cool) is written as RGB.
    grey_profile : bytes or None
        The ICC profile of a grey source (a Gray ICC profile, e.g. "Gray Gamma 2.2"): its pixels
        are decoded with its tone curve, and a result that stayed grey is encoded with it and
        carries it again; one a style tinted is written as sRGB (no profile needed).
    iptc : bytes or None
        The IPTC-IIM records (copyright notice, caption, by-line, keywords: what Photo
        Mechanic and Lightroom write) of a JPEG (Photoshop APP13, resource 0x0404) or TIFF
        (tag 33723); written back to TIFF, and to JPEG when it fits one APP13 segment (64 KB).
        PNG has no standard place for them. A block that is not whole records is left out,
        with a note.
    comment : str or None
        A JPEG's comment (COM segment; UTF-8, else read as Latin-1) or a PNG's ``Comment``
        text; written back to JPEG (UTF-8; one over a JPEG segment's 65,533 bytes is left out)
        and PNG (tEXt, or iTXt when it is not Latin-1), and to TIFF as its ImageDescription
        where the EXIF has none.
    text : tuple of (str, str)
        A PNG's other text fields (PNG 3rd ed. §11.3.4: Title, Author, Copyright,
        Description, Creation Time, Software, ...), in file order; written back to PNG, and to
        a JPEG or TIFF without EXIF of its own as EXIF Artist, Copyright and ImageDescription.
    """

    pixels: np.ndarray
    exif: "bytes | None" = None
    icc_profile: "bytes | None" = None
    bit_depth: int = 8
    format: str = "JPEG"
    colour_space: str = "sRGB"
    source: "Path | None" = None
    iso: "float | None" = None
    notes: tuple = ()
    alpha: "np.ndarray | None" = None
    xmp: "bytes | None" = None
    jpeg_subsampling: "str | None" = None
    dpi: "tuple | None" = None
    grayscale: bool = False
    grey_profile: "bytes | None" = None
    iptc: "bytes | None" = None
    comment: "str | None" = None
    text: tuple = ()

    @property
    def shape(self) -> tuple:
        """``(H, W, 3)`` of :attr:`pixels`."""
        return self.pixels.shape

    def with_pixels(self, pixels: np.ndarray) -> "Photo":
        """A copy of this photo's metadata around new pixels (float32 H×W×3 linear, same space)."""
        return dataclasses.replace(self, pixels=pixels)

    def save(self, path: "str | os.PathLike", **options) -> Path:
        """Write this photo with :func:`write_photo` (metadata kept); returns the path written."""
        return write_photo(path, self.pixels, like=self, **options)


# --- transfer curves --------------------------------------------------------

def _srgb_curve(x: np.ndarray) -> np.ndarray:
    return srgb_to_linear(x).astype(np.float64)


@functools.lru_cache(maxsize=32)
def _decode_lut(curve_key: "bytes | None", bits: int) -> np.ndarray:
    """Table mapping every integer code of ``bits`` depth to linear float32."""
    curve = _curve_from_key(curve_key)
    codes = np.arange(2 ** bits, dtype=np.float64) / (2 ** bits - 1)
    return np.ascontiguousarray(np.clip(curve(codes), 0.0, 1.0).astype(np.float32))


# Encoding looks linear values up in a table indexed by sqrt(linear): the
# square root spreads the shadows (where every transfer curve is steep) over
# many entries, so one uniform table is accurate for gamma and sRGB curves alike.
_ENCODE_LUT_SIZE = 2 ** 17


@functools.lru_cache(maxsize=32)
def _encode_lut(curve_key: "bytes | None", bits: int) -> np.ndarray:
    """Table mapping sqrt(linear) on a uniform grid to an integer code of ``bits`` depth."""
    curve = _curve_from_key(curve_key)
    grid = np.linspace(0.0, 1.0, 2 ** 16 + 1)            # encoded values
    forward = np.maximum.accumulate(np.clip(curve(grid), 0.0, 1.0))  # monotone for np.interp
    targets = np.linspace(0.0, 1.0, _ENCODE_LUT_SIZE) ** 2  # linear values at sqrt-grid points
    encoded = np.interp(targets, forward, grid)
    top = 2 ** bits - 1
    return np.clip(np.rint(encoded * top), 0, top).astype(np.uint8 if bits == 8 else np.uint16)


@kernel
def _encode_rows(linear, lut, scale, out):  # pragma: no cover - compiled
    """Integer codes of float32 n×w×3 linear rows (any values) into ``out``, n×w×3, or n×w×4
    with the table's last (maximum) code in the fourth channel; ``out`` of the table's dtype.

    One pass for what numpy did in six over each chunk (clip, sqrt, scale, offset, truncate,
    look up; and OpenCV's RGB to RGBX), each step rounded as there: float32 ``sqrt`` (correctly
    rounded, as cv2.sqrt), then ``* scale`` and ``+ 0.5`` rounded apart (no fused multiply-add:
    Numba leaves none unless told). A NaN takes entry 0, as the x86 cast (INT_MIN) clipped by
    ``np.take(mode="clip")`` did: the clip below sends it to 0.
    """
    n, w = linear.shape[:2]
    four = out.shape[2] == 4
    half = np.float32(0.5)
    top = lut[lut.shape[0] - 1]
    index = np.empty(w * 3, np.int32)
    for i in range(n):
        row = linear[i].reshape(w * 3)
        # The arithmetic in one branch-free loop over the row (LLVM vectorises it), the table
        # lookups, which it cannot, in a second.
        for j in range(w * 3):
            t = np.sqrt(clamp01(row[j])) * scale  # (NaN: 0)
            index[j] = np.int32(t + half)  # (in [0, scale + 0.5]: the table's last entry at most)
        for x in range(w):
            out[i, x, 0] = lut[index[3 * x]]
            out[i, x, 1] = lut[index[3 * x + 1]]
            out[i, x, 2] = lut[index[3 * x + 2]]
            if four:
                out[i, x, 3] = top


def _encode(linear: np.ndarray, curve_key: "bytes | None", bits: int, *, padded: bool = False) -> np.ndarray:
    """Integer codes of ``bits`` depth for H×W×3 linear pixels (any float values; clipped to
    [0, 1], NaN to 0); ``padded`` adds a fourth channel of the maximum code, the RGBX layout
    Pillow stores RGB in. Returns uint8 (8 bits) or uint16, H×W×3 or H×W×4."""
    if linear.ndim != 3 or linear.shape[2] != 3:
        raise ValueError(f"expected H×W×3 linear pixels, got shape {linear.shape}")  # (the kernel's layout)
    lut = read_only_contiguous(_encode_lut(curve_key, bits))
    out = np.empty(linear.shape[:2] + (4,) if padded else linear.shape, dtype=lut.dtype)
    # Row bands, one per OpenCV thread (the kernel drops the GIL); the input made read-only
    # C-contiguous (a copy only of a strided view), so the kernel compiles once per table dtype.
    src = read_only_contiguous(linear.astype(np.float32, copy=False))
    scale = np.float32(_ENCODE_LUT_SIZE - 1)
    run_in_row_bands(lambda y0, y1: _encode_rows(src[y0:y1], lut, scale, out[y0:y1]),
                     linear.shape[0], linear.shape[1])
    return out


def _rgb_codes(img) -> np.ndarray:
    """The pixels of a loaded Pillow RGB image: uint8 H×W×3 (read-only), as ``np.asarray(img)``.

    In one call of Pillow's raw encoder into one buffer: ``np.asarray`` goes through
    ``Image.tobytes``, which packs 64 KB at a time and joins the pieces, a second copy (12 MP:
    ~55 ms against ~28 ms here, on a loaded machine). Any surprise falls back to ``np.asarray``.
    """
    from PIL import Image

    width, height = img.size
    size = width * height * 3
    if size == 0:
        return np.asarray(img)
    try:
        encoder = Image._getencoder("RGB", "raw", "RGB")  # (what Image.tobytes itself uses)
    except Exception:  # noqa: BLE001 - a Pillow without it: the public way
        return np.asarray(img)
    try:
        encoder.setimage(img.im, (0, 0, width, height))
        _, status, data = encoder.encode(size + 1)  # all rows at once (1: finished)
    finally:
        encoder.cleanup()
    if status != 1 or len(data) != size:
        return np.asarray(img)
    return np.frombuffer(data, np.uint8).reshape(height, width, 3)


def _decode(codes: np.ndarray, curve_key: "bytes | None", bits: int) -> np.ndarray:
    lut = _decode_lut(curve_key, bits)
    if codes.dtype == np.uint8 and codes.ndim == 3 and codes.shape[2] <= 4:
        return cv2.LUT(np.ascontiguousarray(codes), lut)  # multi-threaded table lookup
    return lut[codes]


# --- ICC profiles (matrix/TRC subset, ICC.1:2010 §10) ------------------------

@dataclass(frozen=True)
class _IccInfo:
    colour_space: str          # header signature, e.g. "RGB ", "GRAY", "CMYK"
    description: str
    curve_key: "bytes | None"  # serialised TRC (an RGB matrix/TRC profile's, a grey one's kTRC); None = none usable


def _s15f16(data: bytes, offset: int, n: int) -> list:
    return [v / 65536.0 for v in struct.unpack_from(f">{n}i", data, offset)]


def _icc_tags(icc: bytes) -> dict:
    count = struct.unpack_from(">I", icc, 128)[0]
    tags = {}
    for i in range(count):
        sig, off, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        tags[sig.decode("latin-1")] = icc[off:off + size]
    return tags


def _icc_description(tag: bytes) -> str:
    kind = tag[:4]
    if kind == b"desc":
        n = struct.unpack_from(">I", tag, 8)[0]
        return tag[12:12 + n].split(b"\x00")[0].decode("latin-1", "replace")
    if kind == b"mluc":
        records = struct.unpack_from(">I", tag, 8)[0]
        if records:
            length, off = struct.unpack_from(">II", tag, 16 + 4)
            return tag[off:off + length].decode("utf-16-be", "replace").rstrip("\x00")
    if kind == b"text":
        return tag[8:].split(b"\x00")[0].decode("latin-1", "replace")
    return ""


def _parse_icc(icc: bytes) -> _IccInfo:
    """Read the colour space, description and (for matrix/TRC RGB, and grey) the tone curve of a profile."""
    try:
        space = icc[16:20].decode("latin-1")
        tags = _icc_tags(icc)
        description = _icc_description(tags["desc"]) if "desc" in tags else ""
        curve_key = None
        trcs = [tags.get(k) for k in ("rTRC", "gTRC", "bTRC")]
        if space == "RGB " and all(t is not None for t in trcs) and all(
                k in tags for k in ("rXYZ", "gXYZ", "bXYZ")):
            # One curve for all channels is the norm (sRGB, Display P3, Adobe RGB,
            # ProPhoto); per-channel curves are rare in photos and use the green one.
            curve_key = trcs[1]
        elif space == "GRAY" and "kTRC" in tags:  # a grey profile: its one tone curve
            curve_key = tags["kTRC"]
        if curve_key is not None:
            _curve_from_key(curve_key)(np.array([0.5]))  # raises if the type is not understood
        return _IccInfo(space, description, curve_key)
    except (struct.error, KeyError, ValueError, IndexError):
        return _IccInfo(icc[16:20].decode("latin-1", "replace") if len(icc) >= 20 else "????",
                        "", None)


def _icc_damage(icc: bytes) -> "str | None":
    """What makes an embedded ICC profile unusable, or None when it is whole (ICC.1:2010 §7.2–7.3).

    A cut or garbled profile was used as far as it could be read, reported as "not a
    matrix/TRC profile" (with its garbled colour-space field in the note), and copied into the
    output; a tone curve of gamma 0 decoded every pixel to white.
    """
    if len(icc) < 132 or icc[36:40] != b"acsp":
        return "no ICC header"
    declared = struct.unpack_from(">I", icc, 0)[0]
    if declared > len(icc):
        return f"cut short: {len(icc)} of its {declared} bytes"
    try:
        count = struct.unpack_from(">I", icc, 128)[0]
        if 132 + 12 * count > len(icc):
            return "its tag table runs past its end"
        for i in range(count):
            _, off, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            if off + size > len(icc):
                return "a tag runs past its end"
        info = _parse_icc(icc)
        if info.curve_key is not None:
            y = _curve_from_key(info.curve_key)(np.linspace(0.0, 1.0, 65))
            if not (np.all(np.isfinite(y)) and y[-1] - y[0] > 0.5 and np.all(np.diff(y) >= -1e-3)):
                return "its tone curve is constant or falls (e.g. gamma 0)"
    except (struct.error, ValueError, OverflowError):
        return "its tags cannot be read"
    return None


def _curve_from_key(key: "bytes | None"):
    """Return a vectorised encoded->linear function for an ICC curv/para tag (None = sRGB)."""
    if key is None:
        return _srgb_curve
    kind = key[:4]
    if kind == b"curv":
        n = struct.unpack_from(">I", key, 8)[0]
        if n == 0:
            return lambda x: np.asarray(x, dtype=np.float64)
        if n == 1:
            gamma = struct.unpack_from(">H", key, 12)[0] / 256.0
            return lambda x: np.power(np.clip(x, 0.0, 1.0), gamma)
        table = np.array(struct.unpack_from(f">{n}H", key, 12), dtype=np.float64) / 65535.0
        positions = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(x, positions, table)
    if kind == b"para":
        ftype = struct.unpack_from(">H", key, 8)[0]
        nparams = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(ftype)
        if nparams is None:
            raise ValueError(f"unknown parametric curve type {ftype}")
        p = _s15f16(key, 12, nparams) + [0.0] * (7 - nparams)
        g, a, b, c, d, e, f = p

        def para(x):
            x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
            if ftype == 0:
                return np.power(x, g)
            if ftype in (1, 2):
                base = a * x + b
                y = np.power(np.maximum(base, 0.0), g) + (c if ftype == 2 else 0.0)
                return np.where(base >= 0.0, y, c if ftype == 2 else 0.0)
            if ftype == 3:
                return np.where(x >= d, np.power(np.maximum(a * x + b, 0.0), g), c * x)
            return np.where(x >= d, np.power(np.maximum(a * x + b, 0.0), g) + e, c * x + f)
        return para
    raise ValueError(f"unknown ICC curve type {kind!r}")


_D50 = np.array([0.9642, 1.0, 0.8249])  # the ICC profile connection space's white


def _colorants_d50(primaries_xy, white_xy) -> tuple:
    """RGB -> XYZ matrix (columns: the primaries, white mapped to white) adapted to D50 as ICC
    colorant tags hold it (Bradford, ICC.1:2010 Annex E), and the adaptation matrix."""

    def xyz(xy):
        x, y = xy
        return np.array([x / y, 1.0, (1 - x - y) / y])

    white = xyz(white_xy)
    cols = np.stack([xyz(p) for p in np.asarray(primaries_xy, np.float64)], axis=1)
    cols = cols * np.linalg.solve(cols, white)          # RGB->XYZ, white maps to white
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    adapt = np.linalg.inv(bradford) @ np.diag((bradford @ _D50) / (bradford @ white)) @ bradford
    return adapt @ cols, adapt


def _icc_colorants(icc_profile: "bytes | None") -> "np.ndarray | None":
    """The RGB -> XYZ (D50-adapted) matrix of a matrix/TRC profile's colorant tags, or None for
    no profile, a profile without them, or sRGB's own (to the tags' 16-bit fixed point)."""
    if not icc_profile:
        return None
    try:
        tags = _icc_tags(icc_profile)
        own = np.array([_s15f16(tags[k], 8, 3) for k in ("rXYZ", "gXYZ", "bXYZ")]).T
    except (KeyError, struct.error, IndexError):
        return None
    # Unusable colorants (zeros, NaN, a white far from Y = 1) are as good as none: read as sRGB
    # rather than hand the model a black image or fail the style (review).
    if not np.isfinite(own).all() or abs(np.linalg.det(own)) < 1e-6 or abs(float(own[1].sum()) - 1.0) > 0.05:
        return None
    if np.abs(np.linalg.solve(_SRGB_COLORANTS, own) - np.eye(3)).max() < 2e-3:
        return None
    return own


def rgb_to_xyz_d65(icc_profile: "bytes | None") -> "np.ndarray | None":
    """The linear RGB -> CIE XYZ matrix of a photo's primaries, white mapped to D65's.

    For colour maths defined on D65 XYZ (the styles' Oklab) on a photo kept in its own
    primaries: ICC colorants are adapted to D50, and this undoes that adaptation (Bradford),
    so the photo's white lands on D65 white whatever its profile's own white.

    Parameters
    ----------
    icc_profile : bytes or None
        The photo's profile (:attr:`Photo.icc_profile`).

    Returns
    -------
    np.ndarray or None
        float64 3×3, or None when the photo is sRGB (no profile, sRGB's primaries, or a
        profile without colorant tags): the callers' sRGB default applies.
    """
    own = _icc_colorants(icc_profile)
    return None if own is None else np.linalg.solve(_D65_TO_D50, own)


def to_srgb_primaries(pixels: np.ndarray, icc_profile: "bytes | None") -> np.ndarray:
    """Linear RGB in a photo's own primaries (its matrix ICC profile's) as linear sRGB primaries.

    For what must see colours as sRGB: the segmentation model was trained on sRGB photos, and
    a Display P3 photo's own values read as sRGB are duller (it found one person where the
    sRGB twin had two).

    Parameters
    ----------
    pixels : np.ndarray
        float32 H×W×3 linear RGB in [0, 1], in the primaries of ``icc_profile``.
    icc_profile : bytes or None
        The photo's profile (:attr:`Photo.icc_profile`); None means sRGB.

    Returns
    -------
    np.ndarray
        ``pixels`` itself when they are sRGB already (no profile, sRGB's primaries, or a
        profile without colorant tags), else a new float32 H×W×3 array, clipped to [0, 1]
        (colours outside sRGB's gamut are clipped per channel).
    """
    own = _icc_colorants(icc_profile)
    if own is None:
        return pixels
    out = cv2.transform(pixels, np.linalg.solve(_SRGB_COLORANTS, own).astype(np.float32))
    return np.clip(out, 0.0, 1.0, out=out)


def make_icc_profile(primaries_xy, white_xy=(0.3127, 0.3290), *, description: str = "camseg RGB",
                     trc: str = "srgb") -> bytes:
    """Build a minimal ICC v4 matrix/TRC display profile.

    Used to tag wide-gamut test and example images (Pillow's ImageCms can only
    create sRGB). The colorant tags are the primaries adapted to the ICC D50
    connection space with the linear Bradford transform (ICC.1:2010 Annex E).

    Parameters
    ----------
    primaries_xy : sequence of three (x, y) pairs, or None
        CIE 1931 chromaticities of red, green, blue, e.g. Display P3
        ``((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))``; None for a grey profile
        (colour space GRAY: the tone curve as ``kTRC``, no colorants).
    white_xy : (x, y)
        White point chromaticity (default D65).
    description : str
        Profile description (ASCII), shown by colour-managed viewers.
    trc : {"srgb", "linear"} or float
        Tone curve: the IEC 61966-2-1 curve (as Display P3 uses), linear, or a pure power
        law of that decoding exponent (e.g. 2.2; stored as a one-entry ``curv``, u8.8).

    Returns
    -------
    bytes
        The ICC profile.
    """
    if not (trc in ("srgb", "linear") or (isinstance(trc, float) and 0.1 <= trc <= 10.0)):
        raise ValueError(f"trc must be 'srgb', 'linear' or a decoding exponent in [0.1, 10], got {trc!r}")
    grey = primaries_xy is None
    if not grey:
        prim = np.asarray(primaries_xy, dtype=np.float64)
        if prim.shape != (3, 2):
            raise ValueError(f"primaries_xy must be three (x, y) pairs or None, got shape {prim.shape}")
        cols, adapt = _colorants_d50(prim, white_xy)

    def s15(values):
        return b"".join(struct.pack(">i", int(round(v * 65536))) for v in values)

    def xyz_tag(v):
        return b"XYZ \0\0\0\0" + s15(v)

    if trc == "srgb":
        curve = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + s15([2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045])
    elif trc == "linear":
        curve = b"curv\0\0\0\0" + struct.pack(">I", 0)
    else:
        curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, int(round(trc * 256))) + b"\0\0"
    text = description.encode("utf-16-be")
    desc = b"mluc\0\0\0\0" + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(text), 28) + text
    cprt_text = "No copyright, use freely".encode("utf-16-be")
    cprt = b"mluc\0\0\0\0" + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(cprt_text), 28) + cprt_text
    tags = [(b"desc", desc), (b"cprt", cprt), (b"wtpt", xyz_tag(_D50))]
    if grey:
        tags.append((b"kTRC", curve))
    else:
        tags += [(b"chad", b"sf32\0\0\0\0" + s15(adapt.ravel())),
                 (b"rXYZ", xyz_tag(cols[:, 0])), (b"gXYZ", xyz_tag(cols[:, 1])), (b"bXYZ", xyz_tag(cols[:, 2])),
                 (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    table = b""
    body = b""
    offset = 128 + 4 + 12 * len(tags)
    shared = {}
    for sig, data in tags:
        if data in shared:   # r/g/bTRC share one copy, as profile writers usually do
            table += struct.pack(">4sII", sig, *shared[data])
            continue
        while (offset + len(body)) % 4:
            body += b"\0"
        shared[data] = (offset + len(body), len(data))
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    size = 128 + 4 + len(table) + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"\0\0\0\0", 0x04300000, b"mntr", b"GRAY" if grey else b"RGB ",
                         b"XYZ ")
    header += struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 4 + struct.pack(">I", 0)
    header += b"\0" * 8 + b"\0" * 8 + struct.pack(">I", 0) + s15(_D50) + b"\0" * 4
    header = header.ljust(128, b"\0")
    return header + struct.pack(">I", len(tags)) + table + body


#: Display P3 (DCI-P3 primaries, D65 white, sRGB tone curve), as used by phone cameras.
DISPLAY_P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
#: sRGB's primaries (IEC 61966-2-1), D65 white.
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
_SRGB_COLORANTS, _D65_TO_D50 = _colorants_d50(SRGB_PRIMARIES, (0.3127, 0.3290))


# --- EXIF (TIFF structure, CIPA DC-008) ------------------------------------

_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def _exif_ifd0_entries(exif: bytes, ifd: "int | None" = None):
    """Yield ``(entry_offset, tag, type, count, value_field)`` for IFD0 of a TIFF-structured EXIF
    block (a TIFF file's first directory), or for the directory at offset ``ifd`` (the Exif
    sub-IFD)."""
    bo = "<" if exif[:2] == b"II" else ">"
    if ifd is None:
        ifd = struct.unpack_from(bo + "I", exif, 4)[0]
    n = struct.unpack_from(bo + "H", exif, ifd)[0]
    for i in range(n):
        pos = ifd + 2 + 12 * i
        tag, typ, count = struct.unpack_from(bo + "HHI", exif, pos)
        yield pos, tag, typ, count, exif[pos + 8:pos + 12]


def _entry_value_bytes(data: bytes, typ: int, count: int, field: bytes) -> "bytes | None":
    """The bytes of a directory entry's value: in its 4-byte ``field`` when they fit, else at the
    offset the field holds (None when that lies past the end of ``data``)."""
    size = _TIFF_TYPE_SIZES.get(typ, 1) * count
    if size <= 4:
        return field[:size]
    offset = struct.unpack(("<" if data[:2] == b"II" else ">") + "I", field)[0]
    return data[offset:offset + size] if offset + size <= len(data) else None


def _exif_reset_orientation(exif: bytes) -> bytes:
    """Return ``exif`` with orientation set to 1 and the thumbnail (IFD1) unlinked.

    Everything else stays byte-exact (maker notes keep their internal offsets).
    The embedded thumbnail shows the unprocessed, possibly unrotated photo, so a
    viewer that displays it would contradict the output; unlinking IFD1 (next-IFD
    offset of IFD0 set to 0) is how editors drop it without rewriting offsets.
    """
    bo = "<" if exif[:2] == b"II" else ">"
    data = bytearray(exif)
    entries = list(_exif_ifd0_entries(exif))
    for pos, tag, typ, count, _ in entries:
        if tag == _ORIENTATION_TAG:
            # Rewritten as the one SHORT that TIFF 6.0 specifies, whatever it was stored as:
            # readers also take a LONG (or a count over 1), and a LONG 6 left in place had
            # viewers turn the already upright output a second time.
            struct.pack_into(bo + "HIHH", data, pos + 2, 3, 1, 1, 0)
    ifd0 = struct.unpack_from(bo + "I", exif, 4)[0]
    next_ifd = ifd0 + 2 + 12 * len(entries)
    if next_ifd + 4 <= len(data):
        struct.pack_into(bo + "I", data, next_ifd, 0)
    return bytes(data)


#: Exif sub-IFD pointer (in IFD0), and the PixelXDimension / PixelYDimension tags in it.
_EXIF_IFD_TAG, _PIXEL_X_TAG, _PIXEL_Y_TAG = 34665, 40962, 40963


def _exif_with_pixel_size(exif: bytes, width: int, height: int) -> bytes:
    """Return ``exif`` whose size tags give the written image's width and height.

    A photo stored sideways (orientation 6 or 8) is written upright, so the camera's
    PixelXDimension and PixelYDimension (0xA002, 0xA003, Exif sub-IFD) described the output
    turned a quarter (640×321 for a 321×640 photo); so did the ImageWidth and ImageLength that
    some phones (Samsung's) also put in a JPEG's IFD0 (256, 257). The values are rewritten in
    place (SHORT or LONG, in the entry), so nothing moves; a block without them, or one they
    cannot be read from, is returned as it is.
    """
    bo = "<" if exif[:2] == b"II" else ">"
    data = bytearray(exif)

    def set_sizes(entries, tags):
        for pos, tag, typ, count, _ in entries:
            if tag in tags and count == 1 and typ in (3, 4):
                value = width if tag == tags[0] else height
                if typ == 3 and value > 0xFFFF:  # a SHORT cannot hold it: a LONG can
                    typ = 4
                struct.pack_into(bo + "HI", data, pos + 2, typ, 1)
                struct.pack_into(bo + ("HH" if typ == 3 else "I"), data, pos + 8,
                                 *((value, 0) if typ == 3 else (value,)))

    try:
        ifd0 = list(_exif_ifd0_entries(exif))
        # (For a TIFF output these two are the file's own structure tags, replaced anyway.)
        set_sizes(ifd0, (256, 257))
        set_sizes(_exif_sub_ifd_entries(exif, ifd0), (_PIXEL_X_TAG, _PIXEL_Y_TAG))
        return bytes(data)
    except struct.error:
        return exif


def _exif_sub_ifd_entries(exif: bytes, ifd0: list) -> list:
    """The entries of the Exif sub-IFD (as :func:`_exif_ifd0_entries` yields them) that IFD0's
    ``ifd0`` entries point to; [] when there is none. Raises struct.error on a damaged block."""
    bo = "<" if exif[:2] == b"II" else ">"
    pointer = next((struct.unpack_from(bo + "I", value)[0] for _, tag, typ, count, value
                    in ifd0 if tag == _EXIF_IFD_TAG and count == 1), None)
    return [] if pointer is None else list(_exif_ifd0_entries(exif, pointer))


def _exif_with_srgb_colour_space(exif: bytes) -> bytes:
    """Return ``exif`` with its ColorSpace (0xA001, Exif sub-IFD) set to 1, sRGB, in place; for
    pixels converted to sRGB (from CMYK), whose source said 0xFFFF, "uncalibrated". A block
    without the tag, or one it cannot be read from, is returned as it is."""
    bo = "<" if exif[:2] == b"II" else ">"
    data = bytearray(exif)
    try:
        for pos, tag, typ, count, _ in _exif_sub_ifd_entries(exif, list(_exif_ifd0_entries(exif))):
            if tag == _COLOUR_SPACE_TAG and typ == 3 and count == 1:
                struct.pack_into(bo + "HH", data, pos + 8, 1, 0)
        return bytes(data)
    except struct.error:
        return exif


def _normalise_exif(raw) -> "bytes | None":
    """EXIF bytes as a bare TIFF structure, or None if absent or not parseable."""
    if not raw:
        return None
    # Twice at most: Pillow prefixes a PNG eXIf chunk's bytes with "Exif\0\0", and some
    # writers put the JPEG APP1 prefix into the chunk as well (PNG 3rd ed. says not to).
    for _ in range(2):
        if raw.startswith(_EXIF_PREFIX):
            raw = raw[len(_EXIF_PREFIX):]
    if raw[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    try:
        list(_exif_ifd0_entries(raw))
    except struct.error:
        return None
    return raw


# --- reading ---------------------------------------------------------------

def _exif_or_none_damaged(img, notes: list):
    """``img.getexif()``, or, when the EXIF block is not one (a PNG eXIf chunk that is no TIFF
    structure), an empty one, with a note: Pillow raised SyntaxError ("not a TIFF file") and the
    whole photo was refused as damaged, where its pixels were whole."""
    try:
        return img.getexif()
    except (SyntaxError, struct.error, ValueError, TypeError, EOFError) as exc:
        if not img.info.get("exif"):
            raise  # (not from an EXIF block: the file's own decode, reported as such)
        notes.append(f"its EXIF block is damaged ({exc}): not read nor carried over")
        img.info["exif"] = b""  # (read as none; popped, a PNG would decode its pixels to look again)
        img._exif = None  # (Pillow's private cache of the failed parse: cleared so that getexif reads anew)
        return img.getexif()


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1-8 (TIFF 6.0 tag 274) to an H×W(×C) array."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return op(array) if op is not None else array


#: TIFF tags that describe how the source file stores its image, not the photo: never copied to
#: the EXIF kept. Among them the compression's own (T4/T6 options 292-293, JPEGTables 347, the
#: old-style JPEG tags 512-521), which an uncompressed output kept: libtiff warned reading it; and
#: SubIFDs (330: a pyramid TIFF's reduced images), whose offsets into the source file pointed into
#: the output's pixels (tifffile: "suspicious number of tags").
_STRUCTURAL_TIFF_TAGS = {254, 255, 256, 257, 258, 259, 262, 263, 266, 269, 273, 274, 277, 278, 279, 280,
                         281, 284, 292, 293, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 512, 513,
                         514, 515, 517, 518, 519, 520, 521, 530, 531, 532, 700, 33723, 34377, 34665, 34675,
                         34853, 37724, 50838, 50839}


@functools.lru_cache(maxsize=1)
def _opencv_orients_tiff() -> bool:
    """Whether this OpenCV build applies a TIFF's orientation tag itself when decoding (OpenCV 5
    does, even with ``IMREAD_UNCHANGED``; 4.x does not): probed once on a 2×3 16-bit TIFF
    tagged with orientation 3 (a half turn), so the turn is never applied twice or not at all."""
    codes = np.arange(18, dtype=np.uint16).reshape(2, 3, 3)
    decoded = cv2.imdecode(np.frombuffer(_tiff_bytes(codes, None, None, orientation=3), np.uint8),
                           cv2.IMREAD_UNCHANGED)
    return decoded is not None and decoded.shape[:2] == (2, 3) and int(decoded[0, 0, 2]) == int(codes[-1, -1, 0])


def _bit_depth(img, data: bytes) -> int:
    """Bits per sample of an opened Pillow image: 8 or 16, or 32 for a TIFF whose samples are
    wider than 16 bits, floating point or signed integers (any width), which camseg does not
    decode (Pillow read signed 8-bit samples as unsigned, OpenCV signed 16-bit ones as damaged)."""
    if img.format == "PNG" and len(data) > 24:
        return 16 if data[24] == 16 else 8
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        formats = img.tag_v2.get(339, (1,))  # SampleFormat: 1 unsigned, 2 signed integer, 3 floating point
        formats = formats if isinstance(formats, tuple) else (formats,)
        if max(bits) > 16 or 2 in formats or 3 in formats:
            return 32  # no layout camseg decodes (see read_photo)
        return 16 if max(bits) > 8 else 8
    return 16 if img.mode.startswith("I;16") else 8


#: What :func:`_tiff_layout` says of a TIFF whose first directory cannot be read.
_TIFF_TAGS_UNREADABLE = "its tags could not be read"


def _tiff_tags(data: bytes) -> "dict | None":
    """The SHORT and LONG tags of a TIFF's first directory, ``{tag: tuple of ints}`` (values stored
    out of line are read at their offset; one that lies past the end of the file is left out), or
    None when the directory cannot be read or ``data`` is not a (classic) TIFF."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    bo = "<" if data[:2] == b"II" else ">"
    tags = {}
    try:
        for _, tag, typ, count, field in _exif_ifd0_entries(data):
            if typ in (3, 4) and count:
                value = _entry_value_bytes(data, typ, count, field)
                if value is not None:
                    tags[tag] = struct.unpack(f"{bo}{count}{'H' if typ == 3 else 'I'}", value)
    except struct.error:
        return None
    return tags


#: TIFF compressions that OpenCV's and Pillow's libtiff are often built without (tag 259 value ->
#: name): a file that fails to decode with one of them is not necessarily damaged.
_TIFF_CODECS_OFTEN_MISSING = {34925: "LZMA", 50000: "Zstandard", 34887: "LERC", 50001: "WebP",
                              50002: "JPEG XL", 52546: "JPEG XL"}

#: TIFF compressions that code a strip or tile as one byte stream whatever its samples are (none,
#: LZW, Deflate, PackBits, LZMA, Zstandard): libtiff decodes such a strip of interleaved samples,
#: or one plane's, as well when told it holds one grey sample (see _tiff_samples).
_STREAM_COMPRESSIONS = {1, 5, 8, 32773, 32946, 34925, 50000}


def _opencv_reads_tiff16(tags: dict) -> bool:
    """Whether OpenCV decodes a 16-bit TIFF with these tags right by itself: interleaved grey, RGB
    or RGB + one extra sample, or a colour model camseg has no reader of its own for. (It returned
    a plane-by-plane RGB file as three grey copies side by side, and grey + alpha as 8 bits.)"""
    samples = tags.get(277, (1,))[0]
    photometric = tags.get(262, (None,))[0]
    planar = tags.get(284, (1,))[0]
    if photometric not in (0, 1, 2):
        return True
    # (One sample "plane by plane" is the same layout as interleaved.)
    return (planar == 1 or samples == 1) and samples in ((3, 4) if photometric == 2 else (1,))


_MAX_TIFF_SAMPLES = 8  # samples per pixel of a 16-bit TIFF camseg decodes (grey or RGB, alpha, others)
_OPENCV_MAX_SIDE = 1 << 20  # OpenCV's CV_IO_MAX_IMAGE_WIDTH and _HEIGHT: it asserts past them


def _tiff16_problem(tags: dict) -> "str | None":
    """What keeps :func:`_tiff_samples` from decoding a TIFF with these tags, or None when it can:
    unsigned 16-bit grey or RGB samples, any extra samples, interleaved or plane by plane, in
    strips or tiles, with a byte-stream compression and no predictor or the horizontal one."""
    bits = tags.get(258, (1,))
    formats = tags.get(339, (1,))
    samples = tags.get(277, (1,))[0]
    photometric = tags.get(262, (None,))[0]
    if set(formats) != {1}:
        return "signed or floating-point samples"
    if set(bits) != {16}:
        return f"samples of {'/'.join(map(str, bits))} bits"
    if photometric not in (0, 1, 2):
        return f"16-bit samples in colour model {photometric} (PhotometricInterpretation)"
    if samples < (3 if photometric == 2 else 1):
        return f"{'RGB' if photometric == 2 else 'grey'} in {samples} samples per pixel"
    if samples > _MAX_TIFF_SAMPLES:
        # (Each plane can point at the same few KB of compressed data: a 14 KB file of 1000
        # samples took 3.9 GB.)
        return f"{samples} samples per pixel (camseg reads up to {_MAX_TIFF_SAMPLES})"
    planar = tags.get(284, (1,))[0] == 2
    width, height = tags.get(256, (0,))[0], tags.get(257, (0,))[0]
    if width * (1 if planar else samples) > _OPENCV_MAX_SIDE or height > _OPENCV_MAX_SIDE:
        return f"an image of {width}×{height} pixels, {samples} samples each (too wide or tall for the decoder)"
    compression = tags.get(259, (1,))[0]
    if compression not in _STREAM_COMPRESSIONS:
        stored = "stored plane by plane (PlanarConfiguration 2)" if planar else f"{samples} to a pixel"
        return f"16-bit samples {stored} with compression {compression}"
    if tags.get(317, (1,))[0] not in (1, 2):
        return f"16-bit samples with predictor {tags[317][0]}"
    tiled = 324 in tags
    offsets, counts = tags.get(324 if tiled else 273), tags.get(325 if tiled else 279)
    if not offsets or counts is None or len(counts) != len(offsets) or (planar and len(offsets) % samples) \
            or 256 not in tags or 257 not in tags or (tiled and (322 not in tags or 323 not in tags)):
        return "its strip or tile tables are missing or do not match the image"
    return None


def _tiff_samples(data: bytes, tags: dict) -> np.ndarray:
    """The samples of a 16-bit TIFF's first image, decoded by libtiff (through OpenCV): every
    one of interleaved samples, the colour and first extra plane of planes.

    OpenCV decodes 16-bit TIFFs of one, three or four interleaved samples only. Any other layout
    :func:`_tiff16_problem` accepts is handed to it as one grey sample per pixel: the file gets a
    second directory, pointing at the same strips or tiles, that describes each plane (plane by
    plane) or each row of S interleaved samples (an image S times as wide) as 16-bit grey. The
    bytes decode the same, since these compressions do not depend on the samples' meaning; the
    horizontal predictor does (it differences each sample with the one S places before), so for
    interleaved samples it is undone here, per row of each strip or tile.

    Parameters
    ----------
    data : bytes
        The TIFF file.
    tags : dict
        Its first directory's tags (:func:`_tiff_tags`), for which :func:`_tiff16_problem` is None.

    Returns
    -------
    np.ndarray
        uint16 H×W×S, the samples in the file's order, as stored (orientation not applied);
        plane by plane, S is at most the colour samples + 1.

    Raises
    ------
    OSError
        If libtiff cannot decode them (damaged or truncated data, a codec this OpenCV lacks).
    """
    bo = "<" if data[:2] == b"II" else ">"
    width, height = tags[256][0], tags[257][0]
    samples = tags.get(277, (1,))[0]
    planar = tags.get(284, (1,))[0] == 2
    tiled = 324 in tags
    offsets, counts = (tags[324], tags[325]) if tiled else (tags[273], tags[279])
    predictor = tags.get(317, (1,))[0]
    if any(offset + count > len(data) for offset, count in zip(offsets, counts)):
        # (Checked here, not left to libtiff: the directories added below lie after the file's end,
        # and a strip cut short would be completed with their bytes, as if whole.)
        raise OSError("its pixel data ends early: a strip or tile runs past the end of the file")
    planes, wide = (samples, 1) if planar else (1, samples)  # grey images, and samples in each pixel of them
    per_plane = len(offsets) // planes
    if planar:
        # Only the planes that are read: the colour, and the first extra sample (its alpha).
        planes = min(planes, _tiff_sample_use(tags)[0] + 1)
    segment = tags[322][0] if tiled else width  # pixels a predictor row runs over
    buf = bytearray(data)
    directories = []
    for plane in range(planes):
        entries = {256: (4, [width * wide]), 257: (4, [height]), 258: (3, [16]), 259: (3, [tags.get(259, (1,))[0]]),
                   262: (3, [1]), 277: (3, [1]), 284: (3, [1])}
        if planar and predictor != 1:  # (a predictor tag without one: libtiff warns of an unknown tag)
            entries[317] = (3, [predictor])
        if 266 in tags:
            entries[266] = (3, [tags[266][0]])  # FillOrder
        part = slice(plane * per_plane, (plane + 1) * per_plane)
        if tiled:
            entries.update({322: (4, [segment * wide]), 323: (4, [tags[323][0]]),
                            324: (4, list(offsets[part])), 325: (4, list(counts[part]))})
        else:
            entries.update({273: (4, list(offsets[part])), 279: (4, list(counts[part])),
                            278: (4, [tags.get(278, (height,))[0]])})
        if len(buf) % 2:
            buf.append(0)
        directories.append(len(buf))
        values_at = len(buf) + 2 + 12 * len(entries) + 4
        table, values = struct.pack(bo + "H", len(entries)), b""
        for tag in sorted(entries):
            typ, numbers = entries[tag]
            payload = struct.pack(f"{bo}{len(numbers)}{'H' if typ == 3 else 'I'}", *numbers)
            if len(payload) <= 4:
                field = payload.ljust(4, b"\0")
            else:
                field = struct.pack(bo + "I", values_at + len(values))
                values += payload
            table += struct.pack(bo + "HHI", tag, typ, len(numbers)) + field
        buf += table + bytes(4) + values
    decoded = []
    for at in directories:
        struct.pack_into(bo + "I", buf, 4, at)  # the file's first directory is now this plane's
        try:
            grey = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:  # (its assertions on sizes and layouts)
            raise OSError(f"OpenCV could not decode the 16-bit pixels ({str(exc).strip().splitlines()[-1]})") from exc
        if grey is None or grey.dtype != np.uint16 or grey.shape != (height, width * wide):
            raise OSError("OpenCV could not decode the 16-bit pixels")
        decoded.append(grey.reshape(height, width, wide))
    if planar:
        return np.dstack(decoded)
    codes = decoded[0]
    if predictor == 2 and samples > 1:
        # Each sample was stored as its difference from the same sample of the pixel before, within
        # a row of a strip or tile: a running sum per row segment (modulo 2^16, as it was taken).
        columns = -(-width // segment) * segment
        padded = np.zeros((height, columns, samples), np.uint16)
        padded[:, :width] = codes
        rows = padded.reshape(height, columns // segment, segment, samples)  # H × tiles across × tile width × S
        np.cumsum(rows, axis=2, dtype=np.uint16, out=rows)
        codes = padded[:, :width]
    return codes


def _tiff_for_pillow(data: bytes) -> bytes:
    """A copy of a TIFF whose first directory says one 16-bit grey sample, interleaved.

    A hack: Pillow has no mode for 16-bit grey + alpha, or RGB with two extra samples, and will
    not open such a file, while camseg reads those pixels itself (:func:`_tiff_samples`). Opened
    as this copy, Pillow reads the rest of the directory: colour profile, EXIF, XMP, IPTC,
    resolution, orientation, pages. The tags changed describe the pixels only, and are left out
    of the kept EXIF with the other structural tags; the copy's pixels are never decoded.
    """
    bo = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack_from(bo + "I", data, 4)[0]
    stand_in = {258: 16, 262: 1, 277: 1, 284: 1, 339: 1}  # BitsPerSample ... SampleFormat
    entries = [struct.pack(bo + "HHIHH", tag, 3, 1, stand_in[tag], 0) if tag in stand_in else data[pos:pos + 12]
               for pos, tag, typ, count, _ in _exif_ifd0_entries(data) if tag != 338]  # (no ExtraSamples)
    n = struct.unpack_from(bo + "H", data, ifd)[0]
    table = struct.pack(bo + "H", len(entries)) + b"".join(entries) + data[ifd + 2 + 12 * n:ifd + 6 + 12 * n]
    copy = bytearray(data)
    copy[ifd:ifd + len(table)] = table  # (as long as the table it replaces, or shorter: nothing moves)
    return bytes(copy)


def _open_with_pillow(data: bytes):
    """Pillow's image of a file's bytes, opened (not decoded). A 16-bit TIFF in a layout that
    Pillow has no mode for and :func:`_tiff_samples` reads is opened as :func:`_tiff_for_pillow`'s
    copy, for its metadata."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        tags = _tiff_tags(data)
        if tags is None or _tiff16_problem(tags) is not None:
            raise
        return Image.open(io.BytesIO(_tiff_for_pillow(data)))


def _tiff_sample_use(tags: dict) -> tuple:
    """How the samples of a grey or RGB TIFF are read, from its tags: ``(colour samples, alpha,
    ignored)``. ``alpha`` is the ExtraSamples kind of the first extra sample when it is
    transparency (1 premultiplied, 2 straight), else None; ``ignored`` counts the extra samples of
    other data (ExtraSamples 0: infrared, a mask), which are no transparency. As Pillow and
    libtiff, only the first extra sample is taken as alpha, and one the tags leave undeclared is
    straight alpha (Pillow's reading of an RGBA file without ExtraSamples)."""
    colour = 3 if tags.get(_PHOTOMETRIC_TAG, (None,))[0] == 2 else 1
    extra = max(0, tags.get(277, (1,))[0] - colour)
    kinds = tags.get(338, ())
    alpha = (kinds[0] if kinds else 2) if extra else None
    alpha = alpha if alpha in (1, 2) else None
    return colour, alpha, extra - (alpha is not None)


def _tiff_colour_and_alpha(samples: np.ndarray, tags: dict) -> tuple:
    """The colour and alpha codes of a grey or RGB TIFF's samples, as :func:`_tiff_sample_use` says.

    Parameters
    ----------
    samples : np.ndarray
        uint16 H×W×S, every sample in the file's order.
    tags : dict
        The TIFF's first directory (:func:`_tiff_tags`).

    Returns
    -------
    tuple
        ``(codes, alpha)``: uint16 H×W grey (BlackIsZero) or H×W×3 RGB codes with straight
        colour, and uint16 H×W opacity codes or None.
    """
    colour, kind, _ = _tiff_sample_use(tags)
    top = np.iinfo(samples.dtype).max
    codes = samples[:, :, :3] if colour == 3 else samples[:, :, 0]
    if tags.get(_PHOTOMETRIC_TAG, (None,))[0] == 0:
        # WhiteIsZero grey (TIFF 6.0, PhotometricInterpretation 0), which OpenCV returns as
        # stored: it came out as a negative.
        codes = np.subtract(samples.dtype.type(top), codes)
    alpha = samples[:, :, colour] if kind is not None and samples.shape[2] > colour else None
    if alpha is not None and kind == 1:
        # Premultiplied (associated) alpha, ExtraSamples 1: the colour stored is colour × opacity,
        # and was read as the colour itself (half as bright under half opacity). Divided back on
        # the codes, as Pillow does at 8 bits; where nothing shows (opacity 0) it stays black.
        a = alpha.astype(np.float32)
        scale = np.divide(np.float32(top), a, out=np.zeros_like(a), where=a > 0)
        straight = codes.astype(np.float32) * (scale if codes.ndim == 2 else scale[:, :, None])
        codes = np.minimum(straight + np.float32(0.5), np.float32(top)).astype(samples.dtype)
    return codes, alpha


def _tiff_layout(data: bytes) -> str:
    """What makes a TIFF's first image one camseg cannot decode, read from its tags."""
    tags = _tiff_tags(data)
    if tags is None:
        return _TIFF_TAGS_UNREADABLE
    bits = max(tags.get(258, (1,)))
    formats = tags.get(339, (1,))
    if 3 in formats:
        return "floating-point samples"
    if 2 in formats:
        return f"signed {bits}-bit integer samples"
    if bits > 16:
        return f"{bits}-bit samples"
    if bits == 16 and not _opencv_reads_tiff16(tags) and (problem := _tiff16_problem(tags)):
        return problem
    if tags.get(284, (1,))[0] == 2:
        return "samples stored plane by plane (PlanarConfiguration 2)"
    return "e.g. 32-bit floating point, or an unusual compression"


def read_photo(path: "str | os.PathLike") -> Photo:
    """Decode a photo file to linear float32 pixels with its EXIF and colour profile.

    The whole file is read once; Pillow reads the metadata and 8-bit pixels,
    OpenCV the 16-bit ones (Pillow truncates 16-bit RGB to 8 bits): 16-bit TIFFs
    stored plane by plane or with extra samples (grey + alpha, RGB + alpha + other
    data) one grey plane at a time. A TIFF's extra samples are read as its tags
    say: premultiplied alpha is divided out, other data (infrared) left out with a
    note. EXIF orientation is applied to the pixels and reset in the kept EXIF block.

    Colour: a matrix/TRC ICC profile (sRGB, Display P3, Adobe RGB, ProPhoto,
    ...) is honoured by linearising with *its* tone curve and keeping *its*
    primaries; the profile is carried in :attr:`Photo.icc_profile` and written
    back by :func:`write_photo`. This keeps wide-gamut colours intact: the
    stages downstream work in linear light and need no particular primaries.
    CMYK files are converted to sRGB (through their embedded profile with
    LittleCMS when present). Grayscale files become three equal channels.

    Parameters
    ----------
    path : str or os.PathLike
        A JPEG, PNG or TIFF file, 8 or 16 bits per channel.

    Returns
    -------
    Photo
        ``pixels`` is float32 H×W×3 linear RGB in [0, 1], upright.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    IsADirectoryError
        If the path is a folder.
    ValueError
        If the file is empty, truncated, damaged or not an image (or not a regular file).
    """
    from PIL import Image, UnidentifiedImageError

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        # A folder (or a pipe) had been reported as a file that "does not exist".
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, f"image file {str(path)!r} is a folder, not a photo file; name "
                                                  "one photo in it (the camseg command takes folders)")
        if path.exists():
            raise ValueError(f"cannot read {str(path)!r}: not a regular file (a pipe, socket or device); "
                             "name a photo file")
        raise FileNotFoundError(f"image file {str(path)!r} does not exist; check the path")
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        raise PermissionError(exc.errno, f"cannot read {str(path)!r}: permission denied; give your user "
                                         "read access to the file (chmod u+r) or run as its owner") from exc
    if not data:
        raise ValueError(f"cannot read {str(path)!r}: the file is empty (0 bytes); re-export or re-copy the photo")
    hole = _zeroed_jpeg_data(data)
    if hole is not None:
        raise ValueError(f"cannot read {str(path)!r}: the file is damaged: {hole} bytes of zeros inside the "
                         "JPEG image data (an incomplete copy or download); re-export or re-copy the photo")
    notes = []
    if _missing_only_the_jpeg_end_marker(data):
        data += b"\xff\xd9"
        notes.append("JPEG end marker missing (all image data present); decoded as complete")
    elif _missing_only_the_png_end(data):
        data += _png_chunk(b"IEND", b"")
        notes.append("PNG end chunk missing (all image data present); decoded as complete")
    try:
        with _open_with_pillow(data) as img:
            # A phone's MPO (a JPEG with a second image after it: a gain or depth map, a stereo
            # view) is a JPEG to read and write: its comment and chroma subsampling were lost.
            fmt = "JPEG" if img.format == "MPO" else (img.format or "unknown")
            png_text = _png_text_chunks(data) if fmt == "PNG" else []
            bits = _bit_depth(img, data)
            if bits > 16:
                raise UnidentifiedImageError("32-bit or floating-point samples")
            if bits == 16 and img.mode == "CMYK":
                # OpenCV's 16-bit path has no CMYK, and the file was called "damaged": Pillow
                # reads it at 8 bits (the top byte of each sample) and converts it as any CMYK.
                bits = 8
                notes.append("16-bit CMYK read at 8 bits per sample")
            stored_orientation = int(_exif_or_none_damaged(img, notes).get(_ORIENTATION_TAG, 1) or 1)
            pages = getattr(img, "n_frames", 1)
            if fmt == "TIFF" and pages > 1:
                notes.append(f"a TIFF of {pages} pages: the first one read")
            elif fmt in ("GIF", "WEBP", "PNG") and pages > 1:  # (an animated PNG: APNG)
                notes.append(f"an animation of {pages} frames: the first one read")
            if bits != 16:
                # Full decode first: truncated files fail here, not later; and a Pillow that
                # turns a TIFF by its orientation tag (Pillow 13) does it here and drops the tag,
                # so the tag read below is what is left to apply. (Deleting the tag before the
                # decode left Pillow a turned frame it would not fill: a crash on orientations 5-8.)
                img.load()
            exif_obj = img.getexif()
            orientation = int(exif_obj.get(_ORIENTATION_TAG, 1) or 1)
            if orientation != stored_orientation:
                notes.append(f"EXIF orientation {stored_orientation} applied")  # by Pillow, above
            try:
                exif_ifd = exif_obj.get_ifd(_EXIF_IFD_TAG)
                iso = exif_ifd.get(_ISO_TAG)
                iso = float(iso[0] if isinstance(iso, (tuple, list)) else iso) if iso else None
                if iso == 65535:
                    # A camera at ISO 102400 says 65535 there (the field is 16 bits), and the
                    # denoiser took the photo for a third less noisy than it is.
                    iso = next((float(v) for v in map(exif_ifd.get, _HIGH_ISO_TAGS)
                                if isinstance(v, int) and v > 65535), iso)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not stop decoding
                iso = None
            if fmt == "TIFF":
                for tag in list(exif_obj.keys()):
                    # Image-structure tags describe the source file, not the photo; the
                    # Exif/GPS sub-IFD pointers stay so Pillow re-serialises those IFDs.
                    if tag in _STRUCTURAL_TIFF_TAGS and tag not in (34665, 34853):
                        del exif_obj[tag]
                try:
                    exif = _normalise_exif(exif_obj.tobytes()) if len(exif_obj) else None
                except (TypeError, ValueError, struct.error):
                    # Pillow cannot write some tags back as they were stored (a resolution
                    # stored as BYTEs): a TypeError escaped as the photo's failure.
                    exif = None
                    notes.append("its EXIF tags could not be carried over (stored in types that cannot be "
                                 "written back)")
            else:
                exif = _normalise_exif(img.info.get("exif"))
                if exif is None and fmt == "PNG":
                    exif = _exif_from_raw_profile(dict(png_text).get("Raw profile type exif"))
            icc = img.info.get("icc_profile") or None
            mode = img.mode
            grey_source = mode in ("1", "L", "LA", "I") or mode.startswith("I;16")
            cicp = _png_cicp(data) if fmt == "PNG" and icc is None and not grey_source else None
            if cicp is not None:
                icc, note = _png_cicp_profile(cicp)
                if note:
                    notes.append(note)
            elif fmt == "PNG" and icc is None and "srgb" not in img.info:
                icc, note = _png_colour_profile(img.info, grey=grey_source)
                if note:
                    notes.append(note)
            # What a camera's EXIF names, used below where no usable profile says otherwise. (Not
            # on CMYK: its pixels are converted to sRGB below, whatever the EXIF says.)
            exif_space = (_exif_colour_space(exif_obj) if not grey_source and img.mode != "CMYK"
                          and "srgb" not in img.info else None)
            xmp = _read_xmp(img)
            kept = _xmp_without_appended_files(xmp) if xmp else xmp
            if kept != xmp:
                notes.append("its motion photo video or HDR gain map (stored after the image) is not carried over; "
                             "the XMP written no longer says it is there")
                xmp = kept
            extended = _extended_xmp_bytes(data) if fmt == "JPEG" else 0
            if extended:
                notes.append(f"its Extended XMP ({max(1, extended // 1024)} KB in further JPEG segments, e.g. an "
                             "edit history) is not carried over; the main XMP packet is")
            iptc, comment = _read_iptc(img, notes, data), _read_comment(img)
            text = _read_png_text(png_text) if fmt == "PNG" else ()
            subsampling = _jpeg_subsampling(img, quarter_turn=stored_orientation >= 5) if fmt == "JPEG" else None
            dpi = _read_dpi(img)
            alpha_codes = None
            tiff_tags = _tiff_tags(data) if fmt == "TIFF" else None
            # A grey or RGB TIFF's extra samples are read as its tags say: alpha straight or
            # premultiplied, or other data (infrared, a mask), which is no transparency.
            by_tags = tiff_tags is not None and tiff_tags.get(_PHOTOMETRIC_TAG, (None,))[0] in (0, 1, 2)
            ignored = _tiff_sample_use(tiff_tags)[2] if by_tags else 0
            if ignored:
                notes.append(("a TIFF extra sample" if ignored == 1 else f"{ignored} TIFF extra samples")
                             + " of other data than transparency (ExtraSamples 0, e.g. infrared) not read")
            if bits == 16:
                if by_tags and not _opencv_reads_tiff16(tiff_tags):
                    problem = _tiff16_problem(tiff_tags)
                    if problem is not None:
                        raise UnidentifiedImageError(problem)  # (reported as _tiff_layout words it)
                    codes = _tiff_samples(data, tiff_tags)
                else:
                    if fmt == "PNG" and not _png_ends(data):
                        # Said here: libpng, under OpenCV, printed its own "libpng error" line on
                        # the terminal (libtiff's are silenced; libpng's cannot be).
                        raise OSError("the PNG is cut short: a chunk runs past the end, or its end chunk is missing")
                    pixel_data = _png_pixel_chunks(data) if fmt == "PNG" else data
                    codes = cv2.imdecode(np.frombuffer(pixel_data, np.uint8), cv2.IMREAD_UNCHANGED)
                    del pixel_data
                    if codes is None or codes.dtype != np.uint16:
                        raise OSError("OpenCV could not decode the 16-bit pixels")
                    if fmt == "TIFF" and orientation != 1 and _opencv_orients_tiff():
                        notes.append(f"EXIF orientation {orientation} applied")
                        orientation = 1  # already upright: OpenCV turned it
                    if by_tags:  # OpenCV's BGR(A) back in the file's order
                        codes = codes[:, :, [2, 1, 0, 3][:codes.shape[2]]] if codes.ndim == 3 else codes[:, :, None]
                if by_tags:
                    codes, alpha_codes = _tiff_colour_and_alpha(codes, tiff_tags)
                else:
                    # (Pillow opens a 16-bit grey + alpha PNG as RGBA: OpenCV's samples tell.)
                    if codes.ndim == 3:
                        if codes.shape[2] in (2, 4):  # gray + alpha, BGR + alpha
                            alpha_codes = codes[:, :, -1]
                        codes = codes[:, :, [2, 1, 0]] if codes.shape[2] >= 3 else codes[:, :, 0]
                    elif fmt == "PNG" and isinstance(img.info.get("transparency"), int):
                        # A 16-bit grey PNG's transparent grey level (tRNS): OpenCV expands an RGB
                        # PNG's to alpha but returns a grey one's single channel, and the
                        # transparency was lost. The key is compared at the full 16 bits (PNG 3rd
                        # ed. §11.3.2.1).
                        key = img.info["transparency"]
                        alpha_codes = np.where(codes == key, np.uint16(0), np.uint16(65535))
                grey_source = codes.ndim == 2
            else:
                if mode == "CMYK":
                    img, note = _cmyk_to_srgb(img, icc)
                    notes.append(note)
                    icc = None
                    # The metadata describes the pixels written, sRGB now.
                    exif = _exif_with_srgb_colour_space(exif) if exif else exif
                    xmp = _xmp_as_srgb(xmp) if xmp else xmp
                elif mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode in ("P", "L", "RGB")
                                                                     and "transparency" in img.info):
                    if mode == "La":  # premultiplied grey + alpha (a TIFF's): Pillow converts it via LA only
                        img = img.convert("LA")
                    img = img.convert("RGBA")  # (RGBa and La: the colour divided by the opacity)
                    alpha_codes = np.asarray(img.getchannel("A"))
                    img = img.convert("RGB")
                elif mode not in ("RGB", "L"):
                    notes.append(f"converted from mode {mode} to RGB")
                    img = img.convert("RGB")
                codes = _rgb_codes(img) if img.mode == "RGB" else np.asarray(img)
                if fmt == "JPEG" and mode in ("RGB", "L") and _jpeg_data_ends_early(data, codes):
                    raise OSError("its image data ends before the image does: the rest would be flat "
                                  "grey (a copy cut short, or a damaged image size in its header)")
    except Image.DecompressionBombError as exc:
        # Pillow's guard against "decompression bombs" (a tiny file that claims billions of
        # pixels): its own message spoke of a DOS attack, with a traceback.
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ValueError(f"cannot read {str(path)!r}: the image is larger than camseg develops ({limit:.0f} "
                         f"megapixels at most; developing needs up to about {DEVELOP_BYTES_PER_PIXEL} bytes per "
                         f"pixel, {144e6 * DEVELOP_BYTES_PER_PIXEL / 1e9:.0f} GB at 144 MP); downscale it or cut it "
                         "into parts first") from exc
    except UnidentifiedImageError as exc:
        if data[:4] in (b"II*\x00", b"MM\x00*"):  # a TIFF, in a layout Pillow cannot read
            layout = _tiff_layout(data)
            if layout == _TIFF_TAGS_UNREADABLE:
                # Its directory lies past the end of the file, or is cut short: a truncated copy
                # (writers put it last). It was reported as a layout to export differently.
                raise ValueError(f"cannot read {str(path)!r}: the file is damaged or truncated (its TIFF "
                                 "directory is missing or cut short); re-export or re-copy the photo") from exc
            raise ValueError(f"cannot read {str(path)!r}: a TIFF whose pixel layout camseg cannot decode "
                             f"({layout}); export it as an 8- or 16-bit unsigned integer TIFF with "
                             "interleaved samples, PNG or JPEG") from exc
        raise ValueError(f"cannot read {str(path)!r}: not an image format camseg can decode "
                         "(JPEG, PNG, TIFF)") from exc
    except (OSError, SyntaxError, struct.error, EOFError) as exc:
        codec = _TIFF_CODECS_OFTEN_MISSING.get((_tiff_tags(data) or {}).get(259, (1,))[0])
        if codec is not None:
            # (A 16-bit LZMA TIFF, which OpenCV's libtiff is built without, was called damaged,
            # and re-copying it, the advice, cannot help.)
            raise ValueError(f"cannot read {str(path)!r}: its pixels are compressed with {codec}, which the TIFF "
                             f"decoder camseg uses (OpenCV's libtiff) may not support here, or the file is damaged "
                             f"({exc}); re-save it with LZW, Deflate (ZIP) or no compression, or as PNG") from exc
        raise ValueError(f"cannot read {str(path)!r}: the file is damaged or truncated ({exc}); "
                         "re-export or re-copy the photo") from exc
    except TypeError as exc:
        # Pillow's TIFF reader raises TypeError on some damaged directories ("Missing dimensions");
        # one raised by camseg's own code is a bug, and is not dressed up as a damaged file.
        if not _raised_in_pillow(exc):
            raise
        raise ValueError(f"cannot read {str(path)!r}: the file is damaged ({exc}); "
                         "re-export or re-copy the photo") from exc

    colour_space, curve_key, grey_profile = "sRGB", None, None
    damage = _icc_damage(icc) if icc else None
    if damage:
        # (A camera's Adobe RGB photo whose profile was damaged on the way: its EXIF still says
        # what the pixels are; it was read as sRGB.)
        instead = "the EXIF names Adobe RGB" if exif_space == "Adobe RGB" else "the pixels are read as sRGB"
        notes.append(f"the embedded ICC profile is damaged ({damage}): not used nor written back; {instead}")
        icc = None
    if icc is None and exif_space == "Adobe RGB":
        # Read as sRGB, an Adobe RGB photo's colours came out dull (its green primary lies far
        # outside sRGB's).
        icc = make_icc_profile(ADOBE_RGB_PRIMARIES, trc=ADOBE_RGB_GAMMA, description="Adobe RGB (1998)")
        notes.append("EXIF colour space Adobe RGB (ColorSpace uncalibrated with interoperability index R03, or "
                     "ColorSpace 2; no usable ICC profile, as cameras write it): decoded as Adobe RGB (1998), "
                     "written back with an equivalent ICC profile")
    elif icc is None and exif_space == "uncalibrated" and not damage:
        notes.append("EXIF colour space uncalibrated and no ICC profile: the pixels are read as sRGB")
    if icc:
        info = _parse_icc(icc)
        if grey_source and info.colour_space == "GRAY":
            grey_profile = icc  # written back on a grey result (see Photo.grey_profile)
        if grey_source and info.colour_space == "GRAY" and info.curve_key is not None:
            # Decoded with its own curve (Gray Gamma 1.8 read as sRGB was up to 7 L* darker, and a
            # style's tint then wrote it out as sRGB with those codes); written back with it.
            colour_space, curve_key = info.description or "ICC grey", info.curve_key
            icc = None  # grey has no primaries: the stages see neutral sRGB-primaries pixels
        elif codes.ndim == 2 or info.colour_space != "RGB ":
            what = (f"an {info.colour_space.strip()} ICC profile ({info.description!r}) on a grey image"
                    if codes.ndim == 2 and info.colour_space != "GRAY" else
                    f"{info.colour_space.strip()} ICC profile {info.description!r}")
            notes.append(f"{what}: not used; the pixels are read as sRGB")
            icc = None
        elif info.curve_key is None:
            notes.append(f"ICC profile {info.description!r} is not a matrix/TRC profile; its tone curve "
                         "is approximated by sRGB (colours are kept: the profile is written back)")
            colour_space = info.description or "unknown ICC profile"
        else:
            colour_space, curve_key = info.description or "ICC RGB", info.curve_key
    if codes.ndim == 2:
        notes.append("grayscale expanded to RGB")
        codes = np.repeat(codes[:, :, None], 3, axis=2)
    if not 1 <= orientation <= 8:
        notes.append(f"EXIF orientation {orientation} is not one of 1-8: ignored")
        orientation = 1
    if orientation != 1:
        notes.append(f"EXIF orientation {orientation} applied")
        codes = _orient(codes, orientation)
        alpha_codes = _orient(alpha_codes, orientation) if alpha_codes is not None else None
    pixels = _decode(codes, curve_key, bits)
    alpha = None
    if alpha_codes is not None and int(alpha_codes.min()) < np.iinfo(alpha_codes.dtype).max:
        # Opacity is coverage, not light: stored linearly (PNG 3rd ed. §12.4), no transfer curve.
        alpha = np.ascontiguousarray(alpha_codes, dtype=np.float32) / np.float32(np.iinfo(alpha_codes.dtype).max)
    if exif is not None:
        exif = _exif_reset_orientation(exif)
    return Photo(pixels=pixels, exif=exif, icc_profile=icc, bit_depth=bits, format=fmt, grayscale=grey_source,
                 grey_profile=grey_profile,
                 colour_space=colour_space, source=path, iso=iso, notes=tuple(notes), alpha=alpha,
                 xmp=_xmp_reset_orientation(xmp) if xmp else None, jpeg_subsampling=subsampling, dpi=dpi,
                 iptc=iptc, comment=comment, text=text)


#: Adobe RGB (1998) (Adobe Systems, "Adobe RGB (1998) Color Image Encoding", 2005): primaries,
#: D65 white, and its pure power-law tone curve, exponent 563/256 = 2.19921875.
ADOBE_RGB_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
ADOBE_RGB_GAMMA = 563 / 256
_COLOUR_SPACE_TAG, _INTEROP_IFD_TAG, _INTEROP_INDEX_TAG = 0xA001, 0xA005, 0x0001
_UNCALIBRATED, _ADOBE_RGB_COLOUR_SPACE = 0xFFFF, 2


def _exif_colour_space(exif_obj) -> "str | None":
    """The colour space a camera's EXIF names for a photo with no ICC profile.

    Cameras shooting in Adobe RGB embed no profile: by the Design rule for Camera File system
    (DCF 2.0, option file; CIPA DC-009) they set EXIF ColorSpace (0xA001) to 0xFFFF,
    "uncalibrated", and the Interoperability IFD's InteroperabilityIndex to ``"R03"``. Returns
    ``"Adobe RGB"`` for that pair, and for ColorSpace 2 (not in the EXIF standard, but written by
    some cameras for Adobe RGB, and read so by ExifTool); ``"uncalibrated"`` for ColorSpace
    0xFFFF without R03; None otherwise (sRGB: ColorSpace 1, or no EXIF). A damaged EXIF block
    gives None.
    """
    try:
        colour_space = exif_obj.get_ifd(_EXIF_IFD_TAG).get(_COLOUR_SPACE_TAG)
        if colour_space == _ADOBE_RGB_COLOUR_SPACE:
            return "Adobe RGB"
        if colour_space != _UNCALIBRATED:
            return None
        index = exif_obj.get_ifd(_INTEROP_IFD_TAG).get(_INTEROP_INDEX_TAG)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop decoding
        return None
    if isinstance(index, bytes):
        index = index.decode("latin-1")
    return "Adobe RGB" if isinstance(index, str) and index.strip("\0 ").upper() == "R03" else "uncalibrated"


#: Photoshop image resource holding IPTC-IIM records, and the TIFF tag for them (IPTC/NAA).
_IPTC_RESOURCE, _IPTC_TIFF_TAG = 0x0404, 33723


def _read_iptc(img, notes: list, data: bytes = b"") -> "bytes | None":
    """A Pillow image's IPTC-IIM records as bytes: JPEG APP13 resource 0x0404, TIFF tag 33723.

    A TIFF's tag is read from the file's own bytes (``data``), whatever type it was stored as:
    writers store IPTC as BYTEs, UNDEFINED or LONGs, and Pillow gives a LONG tag's first value
    only. Kept only when it is whole records (Pillow returns a block split over several APP13
    segments cut short): a damaged block written back would be worse than none, and ``notes``
    says it was left out.
    """
    if img.format == "TIFF":
        value = _tiff_tag_bytes(data, _IPTC_TIFF_TAG)
        if value is None and _IPTC_TIFF_TAG not in getattr(img, "tag_v2", {}):
            return None
    else:
        value = (img.info.get("photoshop") or {}).get(_IPTC_RESOURCE)
    if value is None:
        return None
    if isinstance(value, tuple):  # stored as BYTEs: bytes
        value = bytes(value) if all(isinstance(v, int) and 0 <= v <= 255 for v in value) else None
    if isinstance(value, (bytes, bytearray)) and _iptc_is_whole(bytes(value)):
        return bytes(value)
    notes.append("IPTC data (copyright, caption) that camseg cannot read whole: not written to the output")
    return None


def _tiff_tag_bytes(data: bytes, tag: int) -> "bytes | None":
    """The raw value bytes of ``tag`` in a TIFF file's first directory, or None."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    try:
        for pos, entry_tag, typ, count, field in _exif_ifd0_entries(data):
            if entry_tag == tag:
                return _entry_value_bytes(data, typ, count, field)
    except struct.error:
        return None
    return None


def _iptc_is_whole(data: bytes) -> bool:
    """Whether ``data`` is a run of whole IPTC-IIM datasets (tag 0x1C, record, dataset, size)."""
    pos = 0
    while pos < len(data):
        if data[pos] == 0 and not any(data[pos:]):  # zero padding at the end
            return pos > 0
        if data[pos] != 0x1C or pos + 5 > len(data):
            return False
        size = struct.unpack_from(">H", data, pos + 3)[0]
        if size & 0x8000:  # extended dataset: the next (size & 0x7FFF) bytes hold its length
            n = size & 0x7FFF
            if n > 4 or pos + 5 + n > len(data):
                return False
            size, pos = int.from_bytes(data[pos + 5:pos + 5 + n], "big"), pos + n
        pos += 5 + size
    return pos == len(data) and len(data) > 0


def _read_comment(img) -> "str | None":
    """A JPEG's COM segment (UTF-8, else Latin-1) or a PNG's ``Comment`` text chunk."""
    value = img.info.get("comment") if img.format in ("JPEG", "MPO") else img.info.get("Comment")
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            value = bytes(value).decode("latin-1")
    return value if isinstance(value, str) and value else None


#: PNG text keywords held elsewhere in a Photo: its comment and XMP. (The "Raw profile type ..."
#: hex dumps ImageMagick writes are not text for people either: the EXIF one is read as EXIF.)
_PNG_TEXT_HELD_ELSEWHERE = ("Comment", "XML:com.adobe.xmp")


def _exif_from_raw_profile(text) -> "bytes | None":
    """EXIF from the hex dump ImageMagick (and exiftool, reading it) keep in a PNG text chunk
    "Raw profile type exif": ``"\\nexif\\n  <length>\\n<hex digits over lines>"``. Pillow read the
    orientation from it, but the EXIF was not kept."""
    if not isinstance(text, str):
        return None
    parts = text.lstrip("\n").split("\n", 2)
    if len(parts) < 3:
        return None
    try:
        length = int(parts[1])
        raw = bytes.fromhex("".join(parts[2].split()))
    except ValueError:
        return None
    return _normalise_exif(raw[:length]) if 0 < length <= len(raw) else None


_PNG_TEXT_MAX = 1 << 20  # characters of one text chunk read (a zTXt can inflate without bound)


def _png_text_chunks(data: bytes) -> list:
    """Every tEXt, zTXt and iTXt chunk of a PNG (PNG 3rd ed. §11.3.4), before and after its
    image data, as (keyword, text) pairs: found by walking the chunk headers, so the pixels are
    not decoded (Pillow's ``img.text`` decodes the whole image to reach chunks after the
    data: 12 MP 16-bit PNGs read twice as slowly). Damaged chunks are skipped."""
    out = []
    for kind, start, end in _png_chunks(data):
        body = data[start:end - 4]
        if kind == b"IEND" or end - 4 > len(data):  # (a body cut short ends the walk)
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt") or b"\x00" not in body:
            continue
        keyword, rest = body.split(b"\x00", 1)
        try:
            if kind == b"tEXt":
                text = rest.decode("latin-1")
            elif kind == b"zTXt":
                text = zlib.decompressobj().decompress(rest[1:], _PNG_TEXT_MAX).decode("latin-1")
            else:
                compressed, rest = rest[:1] == b"\x01", rest[2:]
                _, _, rest = rest.split(b"\x00", 2)  # language tag, translated keyword
                raw = zlib.decompressobj().decompress(rest, _PNG_TEXT_MAX) if compressed else rest
                text = raw.decode("utf-8")
        except (zlib.error, UnicodeDecodeError, ValueError):
            continue
        out.append((keyword.decode("latin-1"), text))
    return out


def _read_png_text(chunks: list) -> tuple:
    """A PNG's text fields other than its comment and XMP (and the raw profiles), in file order."""
    return tuple((k, v) for k, v in chunks
                 if k not in _PNG_TEXT_HELD_ELSEWHERE and not k.startswith("Raw profile type") and v)


#: EXIF IFD0 tags (TIFF 6.0) that PNG's standard keywords correspond to, first keyword found wins.
_PNG_TEXT_EXIF = ((0x013B, ("Author",)), (0x8298, ("Copyright",)), (0x010E, ("Description", "Title")))


def _png_text_exif_values(text: tuple) -> dict:
    """EXIF IFD0 tag -> a PNG's text for it (:data:`_PNG_TEXT_EXIF`), for the tags it has text for."""
    fields = dict(text)
    values = {tag: next((fields[k] for k in keywords if fields.get(k)), None) for tag, keywords in _PNG_TEXT_EXIF}
    return {tag: value for tag, value in values.items() if value is not None}


def _exif_from_png_text(text: tuple) -> "bytes | None":
    """A new EXIF block holding a PNG's Author, Copyright and Description (or Title), for a JPEG or
    TIFF written from a PNG without EXIF (those formats have no PNG text fields), or None."""
    from PIL import Image

    exif = Image.Exif()
    for tag, value in _png_text_exif_values(text).items():
        # (EXIF's ASCII type: other text as UTF-8 bytes, as cameras and exiftool write it;
        # Pillow would write a str's "©" as "?")
        exif[tag] = value if value.isascii() else value.encode("utf-8")
    return _normalise_exif(exif.tobytes()) if len(exif) else None


def _exif_with_png_text(exif: bytes, text: tuple) -> bytes:
    """``exif`` with the PNG's Author, Copyright and Description (or Title) added where its IFD0
    has no Artist, Copyright or ImageDescription of its own (the camera's own fields win).

    A JPEG or TIFF written from a PNG that has both an eXIf chunk and text fields lost the text
    fields. IFD0 is written again, with the new entries, after the block's end and the header
    pointed at it: nothing else moves, so the sub-IFDs and maker notes keep their offsets (the
    old directory stays behind, unreferenced: 12 bytes an entry, and a block that then no
    longer fits a JPEG's 64 KB segment loses what ``_exif_fitting_a_jpeg`` drops). ``exif``
    itself where nothing is added or its IFD0 cannot be read.
    """
    bo = "<" if exif[:2] == b"II" else ">"
    try:
        entries = list(_exif_ifd0_entries(exif))
        ifd0 = struct.unpack_from(bo + "I", exif, 4)[0]
    except struct.error:
        return exif
    have = {tag for _, tag, _, _, _ in entries}
    added = [(tag, value.encode("utf-8") + b"\0")  # ASCII type, UTF-8 as exiftool writes it
             for tag, value in _png_text_exif_values(text).items() if tag not in have]
    if not added:
        return exif
    link_at = ifd0 + 2 + 12 * len(entries)  # the next-IFD offset (IFD1, the thumbnail)
    next_ifd = struct.unpack_from(bo + "I", exif, link_at)[0] if link_at + 4 <= len(exif) else 0
    data = bytearray(exif)
    data += b"\0" * (len(data) % 2)  # TIFF 6.0: a directory begins on a word boundary
    start, count = len(data), len(entries) + len(added)
    values, records = bytearray(), [(tag, exif[pos:pos + 12]) for pos, tag, _, _, _ in entries]
    for tag, raw in added:
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack(bo + "I", start + 2 + 12 * count + 4 + len(values))
            values += raw + b"\0" * (len(raw) % 2)
        records.append((tag, struct.pack(bo + "HHI", tag, 2, len(raw)) + field))
    records.sort(key=lambda r: r[0])  # TIFF 6.0: entries in ascending tag order
    data += struct.pack(bo + "H", count) + b"".join(r for _, r in records) + struct.pack(bo + "I", next_ifd)
    data += values
    struct.pack_into(bo + "I", data, 4, start)
    return bytes(data)


#: The longest side libjpeg writes (JPEG_MAX_DIMENSION; the format's own limit is 65535).
_JPEG_MAX_SIDE = 65500


def _jpeg_size_problem(height: int, width: int) -> "str | None":
    """Why a JPEG cannot hold an image of ``height`` × ``width`` pixels, with the fix, or None.

    libjpeg refuses a side over 65,500 pixels: the write failed, after the whole photo was
    developed, as "broken data stream when writing image file", with libjpeg's own line on
    the terminal.
    """
    if max(height, width) <= _JPEG_MAX_SIDE:
        return None
    return (f"a JPEG holds at most {_JPEG_MAX_SIDE} pixels a side, and this image is {width}×{height}; "
            "write PNG or TIFF (--format png or tif) or downscale it")


#: The largest print resolution a JPEG's JFIF header holds (16-bit density fields, dots per inch).
_JFIF_MAX_DENSITY = 0xFFFF

#: Bytes a JPEG marker segment's payload can hold: its 16-bit length counts its own 2 bytes.
_JPEG_SEGMENT_ROOM = 0xFFFF - 2


def _photoshop_iptc_segment(iptc: bytes) -> "bytes | None":
    """The APP13 payload holding ``iptc`` as Photoshop image resource 0x0404, or None if too big."""
    data = iptc + (b"\0" if len(iptc) % 2 else b"")  # resource data is padded to an even size
    payload = (b"Photoshop 3.0\x00" + b"8BIM" + struct.pack(">H", _IPTC_RESOURCE) + b"\x00\x00"
               + struct.pack(">I", len(iptc)) + data)
    return payload if len(payload) <= _JPEG_SEGMENT_ROOM else None


def _read_dpi(img) -> "tuple | None":
    """(x, y) dots per inch a Pillow image records, or None (unset, zero, or nonsense)."""
    tags = getattr(img, "tag_v2", None)
    if img.format == "TIFF" and tags is not None and not (282 in tags and 283 in tags):
        # Pillow gives a TIFF without XResolution and YResolution 1 dpi (its default for them),
        # and every output claimed 1 dpi: the file sets none.
        return None
    try:
        x, y = (float(v) for v in img.info.get("dpi", ()))
    except (TypeError, ValueError):
        return None
    return (x, y) if 1.0 <= x <= 100000.0 and 1.0 <= y <= 100000.0 else None


_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"


def _read_xmp(img) -> "bytes | None":
    """The XMP packet of a Pillow image as UTF-8 bytes: JPEG APP1, PNG iTXt, TIFF tag 700."""
    value = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if value is None and img.format == "TIFF":
        value = getattr(img, "tag_v2", {}).get(700)
    if isinstance(value, str):
        value = value.encode("utf-8")
    elif isinstance(value, tuple):  # some Pillow versions give TIFF BYTE tags as tuples
        value = bytes(value)
    return bytes(value) if value else None


def _xmp_with_number(xmp: bytes, name: bytes, number: int, digits: bytes = rb"\d+") -> bytes:
    """``xmp`` with the numeric property ``name`` (e.g. ``b"tiff:Orientation"``), in attribute or
    element form, set to ``number``; ``digits`` is the pattern of the value it replaces."""
    value = str(int(number)).encode()
    xmp = re.sub(rb"(" + name + rb'\s*=\s*["\'])' + digits + rb'(["\'])', rb"\g<1>" + value + rb"\g<2>", xmp)
    return re.sub(rb"(<" + name + rb">\s*)" + digits + rb"(\s*</" + name + rb">)", rb"\g<1>" + value + rb"\g<2>", xmp)


def _xmp_reset_orientation(xmp: bytes) -> bytes:
    """``tiff:Orientation`` set to 1 (attribute or element form): the pixels are upright now, and a
    viewer reading the XMP copy of the tag would turn them again."""
    return _xmp_with_number(xmp, b"tiff:Orientation", 1, digits=rb"\d")


def _xmp_as_srgb(xmp: bytes) -> bytes:
    """Photoshop's XMP colour mode and profile name (``photoshop:ColorMode``,
    ``photoshop:ICCProfile``) and the XMP copy of EXIF ColorSpace (``exif:ColorSpace``),
    attribute or element form, set to RGB (3), sRGB and 1 (sRGB), for pixels
    converted to sRGB: a CMYK photo's output said "CMYK, U.S. Web Coated (SWOP) v2" in Photoshop's
    and Lightroom's file info."""
    xmp = _xmp_with_number(xmp, b"photoshop:ColorMode", 3)
    # (A profile's name is text, in either quote: replaced whole.)
    xmp = re.sub(rb'(photoshop:ICCProfile\s*=\s*)(?:"[^"]*"|\'[^\']*\')', rb'\g<1>"' + _SRGB_NAME + rb'"', xmp)
    xmp = re.sub(rb"(<photoshop:ICCProfile>)[^<]*(</photoshop:ICCProfile>)", rb"\g<1>" + _SRGB_NAME + rb"\g<2>", xmp)
    # The XMP copy of EXIF ColorSpace (65535, "uncalibrated", in Photoshop's CMYK files) as the EXIF's.
    return _xmp_with_number(xmp, b"exif:ColorSpace", 1)


_SRGB_NAME = b"sRGB IEC61966-2.1"


def _xmp_without_appended_files(xmp: bytes) -> bytes:
    """``xmp`` no longer saying that files follow the image in the same file: a phone's motion
    photo video (Google's ``GCamera:MotionPhoto`` and older ``GCamera:MicroVideo``, set to 0) and
    an Ultra HDR gain map (``hdrgm:Version``, removed), and the ``Container:Directory`` that lists
    them with their lengths (removed). A written photo holds its image alone: a motion photo's
    output still said a video of N bytes ended the file, and a reader took the output's last N
    bytes of JPEG data for it."""
    xmp = re.sub(rb"<Container:Directory\b(?:[^>]*/>|.*?</Container:Directory>)", b"", xmp, flags=re.S)
    xmp = _xmp_with_number(_xmp_with_number(xmp, b"GCamera:MotionPhoto", 0), b"GCamera:MicroVideo", 0)
    xmp = re.sub(rb"""\s+hdrgm:Version\s*=\s*(?:"[^"]*"|'[^']*')""", b"", xmp)
    return re.sub(rb"<hdrgm:Version>[^<]*</hdrgm:Version>", b"", xmp)


def _xmp_with_pixel_size(xmp: bytes, width: int, height: int) -> bytes:
    """The XMP copies of the pixel size (``tiff:ImageWidth``/``ImageLength``,
    ``exif:PixelXDimension``/``PixelYDimension``, attribute or element form) set to the pixels
    written: a photo turned upright kept its stored 160×240 on a 240×160 output."""
    for name, value in ((b"tiff:ImageWidth", width), (b"tiff:ImageLength", height),
                        (b"exif:PixelXDimension", width), (b"exif:PixelYDimension", height)):
        xmp = _xmp_with_number(xmp, name, value)
    return xmp


_XMP_EXTENSION_APP1 = b"http://ns.adobe.com/xmp/extension/\x00"


def _extended_xmp_bytes(data: bytes) -> int:
    """Bytes of Extended XMP (XMP spec part 3, §1.1.3.1: the part of a large packet, e.g. an edit
    history, that a JPEG holds in further APP1 segments) in a JPEG's segments before its image data."""
    total, pos = 0, 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] not in (0xDA, 0xD9):
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if data[pos + 1] == 0xE1 and data.startswith(_XMP_EXTENSION_APP1, pos + 4):
            total += max(0, length - 2 - len(_XMP_EXTENSION_APP1) - 40)  # less the GUID, size and offset
        pos += 2 + length
    return total


def jpeg_leaves_out(photo: "Photo") -> list:
    """What a JPEG written like ``photo`` cannot hold, in words (empty when nothing): its
    transparency (flattened onto white), an XMP packet, IPTC block or comment over one
    segment's 64 KB, and an EXIF block over it (compacted, or left out)."""
    left = []
    if photo.alpha is not None:
        left.append("transparency flattened onto white: JPEG holds none (--format png or tif keeps it)")
    if photo.xmp and _xmp_segment(photo.xmp) is None:
        left.append(f"its XMP ({len(photo.xmp) // 1024} KB) left out: a JPEG segment holds 64 KB "
                    "(--format png or tif keeps it)")
    if photo.iptc and _photoshop_iptc_segment(photo.iptc) is None:
        left.append(f"its IPTC ({len(photo.iptc) // 1024} KB) left out: a JPEG segment holds 64 KB "
                    "(--format tif keeps it)")
    if photo.comment and len(photo.comment.encode("utf-8")) > _JPEG_SEGMENT_ROOM:
        left.append(f"its comment ({len(photo.comment.encode('utf-8')) // 1024} KB) left out: a JPEG "
                    "segment holds 64 KB (--format png keeps it)")
    if photo.dpi and max(round(v) for v in photo.dpi) > _JFIF_MAX_DENSITY:
        left.append(f"its print resolution ({photo.dpi[0]:.0f} × {photo.dpi[1]:.0f} dpi) not in its JFIF "
                    f"header, which holds {_JFIF_MAX_DENSITY} dpi at most (--format png or tif keeps it)")
    fitted = _exif_fitting_a_jpeg(photo.exif) if photo.exif else photo.exif
    if fitted is not photo.exif:  # (the block itself when it fits)
        left.append(f"its EXIF ({len(photo.exif) // 1024} KB) " + (
            "left out" if fitted is None else "written without its values over 1 KB (maker notes)")
            + ": a JPEG segment holds 64 KB (--format png or tif keeps it)")
    return left


def _jpeg_subsampling(img, quarter_turn: bool = False) -> "str | None":
    """The chroma subsampling to write a Pillow JPEG image's photo with (``"4:4:4"``, ``"4:2:2"``
    or ``"4:2:0"``, the ones Pillow writes): the least that keeps every chroma sample of the file,
    upright (``quarter_turn``: its EXIF orientation turns the stored pixels a quarter, so the
    stored axes swap). None for a file that is not three-component (grey, CMYK).

    A 4:2:2 photo turned upright, or turned losslessly by an editor (4:4:0), has its chroma halved
    down the picture, not across: written as 4:2:2 (or 4:2:0, as 4:4:0 was), it lost half its
    chroma across. 4:1:1 (a quarter across) is written 4:2:2.
    """
    try:
        layers = img.layer  # (component id, horizontal and vertical sampling factors, table)
        if len(layers) != 3 or layers[1][1:3] != layers[2][1:3]:
            return None
        (h_luma, v_luma), (h_chroma, v_chroma) = layers[0][1:3], layers[1][1:3]
        across, down = h_luma / h_chroma, v_luma / v_chroma  # luma samples per chroma sample
    except Exception:  # noqa: BLE001 - metadata only: never stops decoding
        return None
    if quarter_turn:
        across, down = down, across
    if across >= 2 and down >= 2:
        return "4:2:0"
    return "4:2:2" if across >= 2 else "4:4:4"


def _exif_fitting_a_jpeg(exif: bytes) -> "bytes | None":
    """``exif`` if it fits one JPEG APP1 segment (65533 bytes with the "Exif\\0\\0" prefix), else
    the same block rebuilt without its large values (maker notes, over 1 KB each), else None.

    A camera's own EXIF always fits (it came in one segment); a PNG's or TIFF's need not, and
    was dropped whole, as was a camera's of 65000-65527 bytes (a limit 500 bytes too low).
    """
    from PIL import Image

    room = _JPEG_SEGMENT_ROOM - len(_EXIF_PREFIX)
    if len(exif) <= room:
        return exif
    try:
        rebuilt = Image.Exif()
        rebuilt.load(_EXIF_PREFIX + exif)
        for ifd in (rebuilt, rebuilt.get_ifd(_EXIF_IFD_TAG)):
            for tag in [t for t, v in ifd.items() if isinstance(v, (bytes, str, tuple)) and len(v) > 1024]:
                del ifd[tag]
        compact = _normalise_exif(rebuilt.tobytes())
    except Exception:  # noqa: BLE001 - metadata only: the photo is written without it
        return None
    return compact if compact and len(compact) <= room else None


def _jpeg_with_segment(jpeg: bytes, marker: int, payload: bytes, after: tuple) -> bytes:
    """Insert an APPn segment into ``jpeg`` after its leading segments of the ``after`` markers."""
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and jpeg[pos + 1] in after:
        pos += 2 + struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
    return jpeg[:pos] + bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload + jpeg[pos:]


def _xmp_segment(xmp: bytes) -> "bytes | None":
    """The APP1 payload holding ``xmp`` (XMP spec part 3, §1.1.3), or None when it does not fit one
    segment (larger packets need Extended XMP across several: not written)."""
    segment = _XMP_APP1 + xmp
    return segment if len(segment) <= _JPEG_SEGMENT_ROOM else None


def _jpeg_with_xmp(jpeg: bytes, xmp: bytes) -> bytes:
    """Insert an XMP APP1 segment after the JFIF/EXIF segments of ``jpeg`` (none when too big)."""
    segment = _xmp_segment(xmp)
    return jpeg if segment is None else _jpeg_with_segment(jpeg, 0xE1, segment, (0xE0, 0xE1))


_ZERO_RUN = 64  # zero bytes in a row that mark a hole (see _zeroed_jpeg_data)


def _jpeg_structure(data: bytes) -> "dict | None":
    """The marker segments of a JPEG (ITU-T T.81 §B.1), walked by their lengths, so that bytes
    inside APPn segments (an EXIF thumbnail, maker notes) are never taken for image data.

    Returns ``{"sof": SOFn marker or None, "tables": [(class, (bits, values)) of every Huffman
    table definition, in order], "scans": [(start, end) of each scan's entropy-coded data],
    "eoi": bool}``, or None when ``data`` is not a JPEG or its segments cannot be followed.
    """
    if data[:2] != b"\xff\xd8":
        return None
    info = {"sof": None, "tables": [], "scans": [], "eoi": False}
    pos, n = 2, len(data)
    try:
        while pos + 2 <= n:
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker == 0xD9:
                info["eoi"] = True
                return info
            if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
                pos += 2
                continue
            if pos + 4 > n:
                break
            length = struct.unpack_from(">H", data, pos + 2)[0]
            body = data[pos + 4:pos + 2 + length]
            if marker == 0xC4:  # DHT: one or more tables
                at = 0
                while at + 17 <= len(body):
                    bits = tuple(body[at + 1:at + 17])
                    values = bytes(body[at + 17:at + 17 + sum(bits)])
                    info["tables"].append((body[at] >> 4, (bits, values)))
                    at += 17 + sum(bits)
            elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and info["sof"] is None:
                info["sof"] = marker
            pos += 2 + length
            if marker == 0xDA:  # the entropy-coded data runs to the next marker that is not RSTn
                start = end = pos
                while True:
                    end = data.find(b"\xff", end)
                    if end < 0 or end + 1 >= n:
                        end = n
                        break
                    if data[end + 1] == 0x00 or 0xD0 <= data[end + 1] <= 0xD7 or data[end + 1] == 0xFF:
                        end += 2 if data[end + 1] != 0xFF else 1
                        continue
                    break
                info["scans"].append((start, end))
                pos = end
    except struct.error:
        return None
    return info


@functools.lru_cache(maxsize=1)
def _standard_huffman_tables() -> frozenset:
    """The example Huffman tables of ITU-T T.81 Annex K.3 (the ones encoders use unless they
    optimise), read from a JPEG that libjpeg writes with its defaults."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 140, 200)).save(out, format="JPEG", quality=90, optimize=False)
    return frozenset(_jpeg_structure(out.getvalue())["tables"])


def _zeroed_jpeg_data(data: bytes) -> "int | None":
    """The length of a run of zero bytes that marks a JPEG as damaged, or None.

    Copies and downloads that stop early often leave the rest of the file as zeros (space
    allocated up front, a sparse file), and a decoder reads zeros as codes: the photo's lower
    part decodes to garbage with no error. Two cases are certain:

    - the last scan runs to the end of the file, with no end marker, and ends in zeros;
    - a run of 64 zero bytes inside the image data of a baseline JPEG coded with the standard
      Huffman tables (Annex K.3). There, zero bits are the code for an AC coefficient of -1,
      again and again: no encoder writes that (no run of 8 in 1855 JPEGs of ../shared/data).
      With optimised tables or in a progressive file, zero bits can be the code of an empty
      block, and a black frame is a long zero run: those are not judged.
    """
    info = _jpeg_structure(data)
    if info is None or not info["scans"]:
        return None
    start, end = info["scans"][-1]
    if not info["eoi"] and end == len(data) and data[-_ZERO_RUN:] == bytes(_ZERO_RUN):
        return len(data) - len(data.rstrip(b"\x00"))
    standard = info["sof"] in (0xC0, 0xC1) and info["tables"] and all(
        table in _standard_huffman_tables() for table in info["tables"])
    if not standard:
        return None
    for start, end in info["scans"]:
        at = data.find(b"\x00" * _ZERO_RUN, start, end)
        if at >= 0:
            return len(data[at:end]) - len(data[at:end].lstrip(b"\x00"))
    return None


def _missing_only_the_jpeg_end_marker(data: bytes) -> bool:
    """A baseline JPEG whose EOI marker (FFD9) is missing but whose entropy-coded data is whole
    (some cameras and copy tools write such files; viewers show them complete).

    Told apart from a truncated file by decoding it twice with the marker appended, once right
    after the data and once after 64 filler bytes. A whole stream ends with its last block, so
    the decoder never reads the filler and both decodes agree; a cut stream reads the filler as
    the missing blocks' codes, and they differ. (Looking only at the last block was not enough:
    a file cut 3–50 bytes short decodes its last block from the decoder's own zero fill, not
    flat grey, and was accepted with up to 260 pixels wrong.)
    Progressive JPEGs are not judged (a cut one still decodes, only blurrier).
    """
    if data[:2] != b"\xff\xd8":
        return False
    info = _jpeg_structure(data)
    if info is not None:
        # Walked segment by segment: the end marker of the image itself, whatever follows it (a
        # motion photo's video holds FFDA bytes, which the search below took for a last scan).
        if info["eoi"]:
            return False
    # FFD9 cannot occur inside entropy-coded data (a coded FF is followed by 00 or a restart
    # marker), so any FFD9 after the last start-of-scan is the end marker (data may follow it).
    elif data.find(b"\xff\xd9", max(0, data.rfind(b"\xff\xda"))) != -1:
        return False
    return _filler_changes_the_decode(data, b"\xff\xd9") is False


def _filler_changes_the_decode(head: bytes, tail: bytes, *, eighth: bool = False) -> "bool | None":
    """Whether a baseline JPEG stream ``head + tail`` decodes otherwise with 64 filler bytes
    between them: True for a stream cut short before ``tail`` (the decoder reads the filler as
    the missing blocks' codes), False for a whole one (it ends with its last block and never
    reads them); None when either cannot be decoded or the file is not a baseline JPEG (a cut
    progressive one still decodes, only blurrier). ``eighth``: decode at an eighth of the size
    (libjpeg's DCT scaling, from each block's DC term), enough when whole blocks are missing.
    """
    from PIL import Image

    decoded = []
    # 0xAA bits differ from the decoder's zero fill; no 0xFF byte, so no marker is formed.
    for filler in (b"", b"\xaa" * 64):
        try:
            with Image.open(io.BytesIO(head + filler + tail)) as img:
                if img.format != "JPEG" or img.info.get("progressive") or img.info.get("progression"):
                    return None
                if eighth:
                    img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
                img.load()
                decoded.append(np.asarray(img))
        except Exception:  # noqa: BLE001 - not decodable even so: the normal error path reports it
            return None
    return not np.array_equal(decoded[0], decoded[1])


def _jpeg_data_ends_early(data: bytes, codes: np.ndarray) -> bool:
    """Whether a baseline JPEG, decoded to ``codes`` (uint8 H×W or H×W×3, as stored), has an end
    marker but image data that ends before its last blocks.

    A copy cut short and closed with an end marker (some recovery and transfer tools write
    one), or a header whose image size was damaged (a bit flipped in its height), decodes with
    no error: libjpeg leaves every block it finds no data for at zero, flat grey 128, and the
    photo was developed as if whole (an 8×8 JPEG whose header said 12000×12000 became 144 MP of
    grey, in 16 GB). Such a file's last block, bottom right, is then flat 128. Only then, which
    a whole photo almost never is, is it decoded again with 64 filler bytes before the end
    marker: a whole stream ends with its last block and never reads them (both decodes agree);
    a short one reads them as the missing blocks' codes. Progressive and arithmetic-coded
    JPEGs are not judged (a short progressive one still decodes, only blurrier).
    """
    corner = codes[-8:, -8:]
    if corner.size == 0 or not (corner == 128).all():
        return False
    info = _jpeg_structure(data)
    if info is None or not info["eoi"] or info["sof"] not in (0xC0, 0xC1) or not info["scans"]:
        return False
    end = info["scans"][-1][1]  # where the last scan's data stops: its end marker follows
    # At an eighth of the size: whole blocks are missing here, and whole-size decodes took 0.5 s
    # more on 12 MP, and 3 × 432 MB for a header claiming 12000×12000.
    return _filler_changes_the_decode(data[:end], data[end:], eighth=True) is True


def _png_colour_profile(info: dict, *, grey: bool) -> tuple:
    """``(ICC profile, note)`` equivalent to a PNG's cHRM and gAMA chunks, for a PNG without an
    iCCP or sRGB chunk (PNG 3rd ed. §11.3.3); ``(None, None)`` when they say sRGB or are absent.

    - cHRM: its primaries (Display P3 ones, say) were ignored and its colours read as sRGB's,
      duller. They become the photo's own profile, with the gAMA curve (else sRGB's). Not on a
      grey PNG: its chromaticities say nothing a grey image can use.
    - gAMA alone: its file gamma was ignored, so a linear PNG (gAMA 1.0) was decoded as sRGB, far
      too bright. 1/2.2 is taken as sRGB, as viewers do; another gamma becomes the photo's own
      profile (sRGB primaries, that power law; on a grey PNG a grey profile: an RGB one was set
      aside on a grey image, and its gamma ignored), written back with the photo.
    """
    file_gamma = float(info.get("gamma") or 0.0)
    curve = round(1.0 / file_gamma, 3) if file_gamma > 0 and abs(file_gamma - 1 / 2.2) > 0.01 else "srgb"
    chromaticity = None if grey else info.get("chromaticity")
    if _other_than_srgb(chromaticity):
        wx, wy, rx, ry, gx, gy, bx, by = (float(v) for v in chromaticity)
        gamma = f", gamma {1 / file_gamma:.3g}" if curve != "srgb" else ""
        return (make_icc_profile(((rx, ry), (gx, gy), (bx, by)), (wx, wy), trc=curve,
                                 description="PNG cHRM primaries" + gamma),
                "PNG chromaticities (cHRM, no colour profile): decoded with them, written back as an "
                "equivalent ICC profile")
    if curve == "srgb":
        return None, None
    kind = "grey" if grey else "sRGB primaries"
    return (make_icc_profile(None if grey else SRGB_PRIMARIES, trc=curve,
                             description=f"{kind}, gamma {1 / file_gamma:.3g} (PNG gAMA)"),
            f"PNG gamma {file_gamma:.5g} (no colour profile): decoded with it, written back as an "
            "equivalent ICC profile")


def _png_cicp(data: bytes) -> "tuple | None":
    """A PNG's cICP chunk (PNG 3rd ed. §11.3.2.6; ITU-T H.273 code points) as ``(colour
    primaries, transfer characteristics, matrix coefficients, full range)``, or None; Pillow does
    not read it."""
    for kind, start, end in _png_chunks(data):
        if kind in (b"IDAT", b"IEND") or end > len(data):
            break
        if kind == b"cICP" and end - 4 - start == 4:
            return tuple(data[start:start + 4])
    return None


def _png_cicp_profile(cicp: tuple) -> tuple:
    """``(ICC profile, note)`` for a PNG's cICP code points (ITU-T H.273), which take precedence
    over its sRGB, cHRM and gAMA chunks (PNG 3rd ed. §4.3): Display P3 (primaries 12) with the
    sRGB curve (transfer 13) gets a Display P3 profile, as Apple's and Android's P3 PNGs carry;
    sRGB (1, 13) needs none. Read as sRGB, a Display P3 PNG's colours came out dull, and it was
    written back as sRGB. Others (HDR: PQ, HLG) are read as sRGB, with a note."""
    primaries, transfer, matrix, full_range = cicp
    if matrix == 0 and full_range == 1 and transfer == 13 and primaries in (1, 12):
        if primaries == 1:
            return None, None
        return (make_icc_profile(DISPLAY_P3_PRIMARIES, description="Display P3 (PNG cICP)"),
                "PNG colour space Display P3 (cICP, no colour profile): decoded as such, written back as an "
                "equivalent ICC profile")
    return None, (f"PNG colour space cICP {primaries}/{transfer}/{matrix}/{full_range} (ITU-T H.273: e.g. an HDR "
                  "transfer) is not one camseg decodes: the pixels are read as sRGB")


def _other_than_srgb(chromaticity) -> bool:
    """True for PNG cHRM values (white x, y, then red, green, blue) that are valid and not
    sRGB's (within 0.01: writers round them); None or nonsense is False."""
    try:
        values = np.asarray(chromaticity, dtype=np.float64).reshape(4, 2)
    except (TypeError, ValueError):
        return False
    srgb = np.array([(0.3127, 0.3290), *SRGB_PRIMARIES])
    valid = np.all(np.isfinite(values)) and np.all(values > 0) and np.all(values.sum(axis=1) <= 1.0 + 1e-6)
    if not valid:
        return False
    # A degenerate triangle (collinear primaries) has no matrix.
    (rx, ry), (gx, gy), (bx, by) = values[1:]
    if abs((gx - rx) * (by - ry) - (bx - rx) * (gy - ry)) < 1e-4:
        return False
    return bool(np.abs(values - srgb).max() > 0.01)


def _raised_in_pillow(exc: BaseException) -> bool:
    """Whether an exception was raised inside Pillow (the innermost frame of its traceback)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}PIL{os.sep}" in tb.tb_frame.f_code.co_filename


def _png_chunks(data: bytes):
    """Yield ``(kind, start, end)`` of each chunk of a PNG whose 12-byte frame begins within
    ``data``, walked by their headers alone: its body is ``data[start:end - 4]``, its CRC the 4
    bytes before ``end``. The last one may run past the end of a cut file."""
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        yield kind, pos + 8, pos + 12 + length
        pos += 12 + length


#: The chunks OpenCV needs to decode a PNG's pixels (tRNS: a colour key it turns into alpha).
_PNG_PIXEL_CHUNKS = (b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND")


def _png_pixel_chunks(data: bytes) -> bytes:
    """A whole PNG with only the chunks that hold its pixels, for OpenCV's 16-bit decode.

    Pillow has read the metadata already. libpng, under OpenCV, checks the other chunks too
    and prints its warnings on the terminal, where they broke the progress bar ("libpng
    warning: eXIf: invalid" for an eXIf chunk that starts with the JPEG "Exif" prefix, which
    camseg reads); libtiff's are silenced, libpng's cannot be.
    """
    kept = [data[:8]]
    for kind, start, end in _png_chunks(data):
        if kind in _PNG_PIXEL_CHUNKS:
            kept.append(data[start - 8:end])
        if kind == b"IEND":
            break
    return b"".join(kept)


def _png_ends(data: bytes) -> bool:
    """Whether a PNG's chunks, walked by their headers alone, reach an IEND chunk within the file."""
    for kind, _, end in _png_chunks(data):
        if end > len(data):
            return False
        if kind == b"IEND":
            return True
    return False


def _missing_only_the_png_end(data: bytes) -> bool:
    """A PNG whose IEND chunk is all that is missing: every chunk whole (its length and CRC), and
    the image data's zlib stream complete. Pillow reads such a file; OpenCV's 16-bit decoder
    called it damaged (with libpng's own error line on the terminal)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or b"IEND" in data[-64:]:
        return False  # (the usual case decided without reading the file through)
    if _png_ends(data):  # the chunk headers alone first: an IEND followed by other data
        return False
    stream, seen_data, end = zlib.decompressobj(), False, 8
    for kind, start, end in _png_chunks(data):
        if end > len(data) or zlib.crc32(data[start - 4:end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            return False
        if kind == b"IDAT":
            seen_data = True
            try:
                # (The pixels are not kept: 64 KB at a time, only to find where the stream ends.)
                chunk = data[start:end - 4]
                while chunk and not stream.eof:
                    stream.decompress(chunk, 1 << 16)
                    chunk = stream.unconsumed_tail
            except zlib.error:
                return False
    return end == len(data) and seen_data and stream.eof  # (bytes after the last whole chunk: cut)


def _cmyk_to_srgb(img, icc):
    from PIL import ImageCms

    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(img, src, dst, outputMode="RGB",
                                            renderingIntent=ImageCms.Intent.PERCEPTUAL)
            return out, "CMYK converted to sRGB through its embedded ICC profile"
        except (ImageCms.PyCMSError, OSError):
            pass
    return img.convert("RGB"), "CMYK converted to sRGB without a profile (naive conversion; colours approximate)"


# --- writing ---------------------------------------------------------------

_UMASK_LOCK = threading.Lock()


def _new_file_mode() -> int:
    """The permissions a file created now gets from ``open()``: 0o666 less the process umask."""
    try:  # Linux says it without changing it
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere it can only be read by setting it (briefly stricter, never looser)
        mask = os.umask(0o077)
        os.umask(mask)
    return 0o666 & ~mask


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place.

    A crash or kill at any moment leaves either the old file or the new,
    complete one at ``path`` — never a partial file (POSIX rename is atomic).
    The writer holds an exclusive ``flock`` on its temporary file until the
    rename, so :func:`remove_stale_temp_files` can tell a live writer from a
    killed one without trusting process ids (which get reused, and differ
    between containers sharing a folder). The name also embeds the process id,
    the fallback where ``fcntl`` is missing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The photo's name is cut to fit: with the process id, mkstemp's 8 characters and the
    # suffix, a name of 230 bytes or more made a temporary name over the 255-byte limit, and a
    # photo with a long name could never be written ("File name too long").
    stem = f".{os.getpid()}."
    room = _NAME_MAX - len(stem) - 8 - len(TEMP_SUFFIX) - 1
    raw = os.fsencode(path.name)
    if len(raw) > room:  # cut back to a whole UTF-8 character (names that are not UTF-8 are cut as bytes)
        raw = raw[:room]
        while raw and (raw[-1] & 0xC0) == 0x80:
            raw = raw[:-1]
        if raw and raw[-1] >= 0xC0:
            raw = raw[:-1]
    name = os.fsdecode(raw)
    try:
        fh, tmp = _locked_temp_file(f".{name}{stem}", path.parent)
    except OSError as exc:
        # Named after the temporary file ('.x.jpg.1234.ab12cd34.camseg-tmp'), which the caller
        # never asked for: the same error, naming the file being written.
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    try:
        with fh:
            # The writer fills memory, not the file: Pillow's encoders write straight to a
            # file's descriptor and ignore a short write, so a full disk left a truncated
            # JPEG that was renamed into place as if whole. Python's own writes raise instead.
            buffer = io.BytesIO()
            write(buffer)
            data = buffer.getbuffer()
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            written = os.fstat(fh.fileno()).st_size
            if written != data.nbytes:
                raise OSError(errno.EIO, f"only {written} of {data.nbytes} bytes of {str(path)!r} reached "
                              "the disk; free some space and run again")
            del data
            # mkstemp makes 0600 files: give the new file what open() would have given it (the
            # umask's), or the mode of the file it replaces. (A fixed 0644 made a private
            # folder's photos readable to all, and a shared folder's not writable by its group.)
            try:
                mode = os.stat(path).st_mode & 0o777  # (not a set-user-id bit: the new file is data)
            except OSError:
                mode = _new_file_mode()
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            else:
                os.chmod(tmp, mode)
            if fcntl is not None:  # renamed while open and locked: never an unlocked live temporary
                os.replace(tmp, path)
        if fcntl is None:  # Windows cannot rename an open file
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _locked_temp_file(prefix: str, folder: Path) -> tuple:
    """A new temporary file in ``folder``, open for writing and (on POSIX) flock-ed: (file, path).

    Between its creation and its lock another batch's :func:`remove_stale_temp_files` could
    take it for a killed writer's and delete it (the write then failed with FileNotFoundError:
    6 of 3000 writes against a sweeping process). Once locked, it is checked to be still there
    as this file; one swept away is replaced by a new one.
    """
    for _ in range(10):
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=folder)
        fh = os.fdopen(fd, "wb")
        if fcntl is None:
            return fh, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fh, tmp
        except FileNotFoundError:
            pass
        except BaseException:
            fh.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fh.close()  # swept away before it was locked: another
    raise OSError(errno.EAGAIN, f"cannot keep a temporary file in {str(folder)!r}: another process removes "
                                "them as they are made")


def remove_stale_temp_files(directory: "str | os.PathLike") -> int:
    """Delete temporary files left in ``directory`` (recursively) by killed writers.

    Only files named by :func:`write_photo` whose writer is gone are removed:
    on POSIX a temporary whose ``flock`` can be taken has no live writer (the
    kernel drops the lock when the writer dies); elsewhere the process id in
    the name is checked. A writer killed moments ago may still hold its lock
    while the kernel tears it down, so callers sweep again when they finish.
    Returns how many files were removed.
    """
    removed = 0
    for tmp in Path(directory).rglob(f".*{TEMP_SUFFIX}"):
        if _temp_file_in_use(tmp):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed


def _temp_file_in_use(tmp: Path) -> bool:
    """True if a live writer still owns temporary file ``tmp``."""
    if fcntl is not None:
        try:
            with open(tmp, "rb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False  # vanished meanwhile (renamed into place or removed)
        return False
    try:
        pid = int(tmp.name[:-len(TEMP_SUFFIX)].rsplit(".", 2)[-2])
    except (ValueError, IndexError):
        return True  # not ours to judge: leave it
    return pid == os.getpid() or _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie (a killed writer nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass  # no /proc (macOS, Windows): ask the kernel directly
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_text_chunk(keyword: str, text: str) -> bytes:
    """A tEXt chunk (Latin-1), or an iTXt one (uncompressed, no language: UTF-8) for other text;
    b"" for a keyword PNG does not allow (1-79 Latin-1 characters)."""
    text = text.replace("\x00", " ")
    try:
        key = keyword.encode("latin-1")
    except UnicodeEncodeError:
        return b""
    if not 1 <= len(key) <= 79 or b"\x00" in key:
        return b""
    try:
        return _png_chunk(b"tEXt", key + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_chunk(b"iTXt", key + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def _png_with_metadata(png: bytes, icc: "bytes | None", exif: "bytes | None", xmp: "bytes | None" = None,
                       dpi: "tuple | None" = None, comment: "str | None" = None, text: tuple = ()) -> bytes:
    """Insert iCCP, eXIf, XMP iTXt, pHYs, ``Comment`` and other text chunks (PNG 3rd ed. §11.3;
    XMP spec part 3, §1.1.5) after IHDR of an encoded PNG."""
    extra = b""
    if comment:
        extra += _png_text_chunk("Comment", comment)
    for keyword, value in text:
        extra += _png_text_chunk(keyword, value)
    if dpi:  # pixels per metre, unit 1 (metre)
        extra += _png_chunk(b"pHYs", struct.pack(">IIB", *(round(v / 0.0254) for v in dpi), 1))
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif)
    if xmp:  # keyword, no compression, no language, no translated keyword, UTF-8 text
        extra += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _tiff_bytes(codes: np.ndarray, icc: "bytes | None", exif: "bytes | None", *, orientation: int = 1,
                xmp: "bytes | None" = None, dpi: "tuple | None" = None, iptc: "bytes | None" = None) -> bytes:
    """Encode an uncompressed baseline RGB or grey TIFF (TIFF 6.0), 8 or 16 bit, with ICC, EXIF,
    XMP (tag 700) and, given ``dpi`` (x, y dots per inch), the print resolution (tags 282, 283,
    296). ``codes`` H×W×3 (RGB) or H×W×1 (grey, BlackIsZero), each optionally with straight
    alpha last (H×W×4, H×W×2; ExtraSamples = 2).

    EXIF is kept by a trick that needs no offset relocation: the EXIF block is
    itself a TIFF structure, so the file *starts* with it unchanged (all its
    internal offsets stay valid), the pixels follow, and a new IFD0 at the end
    holds the image tags plus the original IFD0 entries (copied verbatim, so
    their out-of-line values and the Exif/GPS sub-IFD pointers still resolve).
    """
    h, w, samples = codes.shape
    bits = codes.dtype.itemsize * 8
    if exif:
        bo = "<" if exif[:2] == b"II" else ">"
        buf = bytearray(exif)
        kept = {tag: raw for pos, tag, typ, count, _ in _exif_ifd0_entries(exif)
                if tag not in _STRUCTURAL_TIFF_TAGS or tag in (34665, 34853)
                for raw in [exif[pos:pos + 12]]}
    else:
        bo = "<"
        buf = bytearray(b"II*\x00\x00\x00\x00\x00")
        kept = {}

    def align():
        if len(buf) % 2:
            buf.append(0)

    def entry(tag, typ, values):
        count = len(values) // 2 if typ == 5 else len(values)  # a RATIONAL is two LONGs
        size = _TIFF_TYPE_SIZES[typ] * count
        fmt = {3: "H", 4: "I", 5: "I", 7: "B", 1: "B"}[typ]
        payload = struct.pack(f"{bo}{len(values)}{fmt}", *values)
        if size <= 4:
            return struct.pack(bo + "HHI", tag, typ, count) + payload.ljust(4, b"\0")
        align()
        offset = len(buf)
        buf.extend(payload)
        return struct.pack(bo + "HHII", tag, typ, count, offset)

    align()
    strip_offset = len(buf)
    pixels = codes.astype(codes.dtype.newbyteorder(bo), copy=False) if bits == 16 else codes
    buf.extend(np.ascontiguousarray(pixels).tobytes())
    entries = dict(kept)
    entries[256] = entry(256, 4, [w])
    entries[257] = entry(257, 4, [h])
    entries[258] = entry(258, 3, [bits] * samples)
    entries[259] = entry(259, 3, [1])
    entries[262] = entry(262, 3, [1 if samples <= 2 else 2])  # BlackIsZero grey, or RGB
    entries[273] = entry(273, 4, [strip_offset])
    entries[274] = entry(274, 3, [orientation])  # 1: upright (other values only to probe decoders)
    entries[277] = entry(277, 3, [samples])
    entries[278] = entry(278, 4, [h])
    entries[279] = entry(279, 4, [h * w * samples * bits // 8])
    entries[284] = entry(284, 3, [1])
    if samples in (2, 4):
        entries[338] = entry(338, 3, [2])  # the last sample is unassociated (straight) alpha
    if dpi:  # the photo's own, as read (a JPEG's or PNG's too: TIFF keeps it in these tags)
        for tag, value in zip((282, 283), dpi):
            entries[tag] = entry(tag, 5, [round(value * 1000), 1000])
        entries[296] = entry(296, 3, [2])  # inches
    if xmp:
        entries[700] = entry(700, 1, list(xmp))
    if iptc:
        entries[_IPTC_TIFF_TAG] = entry(_IPTC_TIFF_TAG, 7, list(iptc))
    if icc:
        entries[34675] = entry(34675, 7, list(icc))
    align()
    ifd_offset = len(buf)
    buf.extend(struct.pack(bo + "H", len(entries)))
    for tag in sorted(entries):
        buf.extend(entries[tag])
    buf.extend(struct.pack(bo + "I", 0))
    struct.pack_into(bo + "I", buf, 4, ifd_offset)
    return bytes(buf)


def _grey_codes(codes: np.ndarray) -> "np.ndarray | None":
    """H×W×1 grey codes (the mean of R, G and B, rounded) when every pixel's three channels lie
    within 2/255 of the range of each other, else None. ``codes``: H×W×3, or H×W×4 RGBX."""
    rgb = codes[:, :, :3]
    tol = 2 * (int(np.iinfo(codes.dtype).max) // 255)
    spread = cv2.subtract(rgb.max(axis=2), rgb.min(axis=2))
    if int(spread.max(initial=0)) > tol:
        return None
    total = rgb.sum(axis=2, dtype=np.uint32)
    return ((total + 1) // 3).astype(codes.dtype)[:, :, None]


def _flatten_onto_white(codes: np.ndarray, alpha: np.ndarray) -> None:
    """Integer codes drawn over white, in place: ``α·code + (1 − α)·max`` on the colour channels.

    Parameters
    ----------
    codes : np.ndarray
        uint8 or uint16 H×W×3 (or H×W×4 RGBX: the fourth channel is left alone) encoded pixels.
    alpha : np.ndarray
        float32 H×W straight opacity in [0, 1].
    """
    top = np.float32(np.iinfo(codes.dtype).max)
    a = np.clip(alpha, 0.0, 1.0)[:, :, None]
    rgb = codes[:, :, :3].astype(np.float32)
    rgb -= top
    rgb *= a
    rgb += top + np.float32(0.5)
    np.copyto(codes[:, :, :3], rgb, casting="unsafe")


def write_photo(path: "str | os.PathLike", image: np.ndarray, *, like: "Photo | None" = None,
                bit_depth: "int | None" = None, quality: int = 95, subsampling: "str | None" = None,
                overwrite: bool = True) -> Path:
    """Encode linear pixels to a JPEG, PNG or TIFF file, atomically.

    The file is written to a temporary name in the destination folder and
    renamed into place, so an interrupted write never leaves a partial file.
    With ``like``, the result keeps that photo's colour profile (pixels are
    encoded with its tone curve and the same ICC profile is embedded) and its
    EXIF and XMP (orientation reset to 1, since pixels are stored upright), its
    transparency (PNG and TIFF; a JPEG, which has none, gets the photo flattened onto
    white) and its JPEG chroma subsampling; when ``like``
    is a grey photo and the result is grey too (every pixel's channels within
    2/255 of each other once encoded, an invisible difference), it is written
    as one grey channel with the photo's Gray profile (see :class:`Photo`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; the extension (.jpg/.jpeg/.png/.tif/.tiff) picks the format.
    image : np.ndarray
        float32 H×W×3 linear RGB in [0, 1] in the working space of ``like``
        (sRGB without ``like``); values outside [0, 1] are clipped.
        uint8/uint16 arrays are taken as sRGB-encoded (see :func:`as_linear_rgb`).
    like : Photo, optional
        Source photo whose ICC profile, EXIF and bit depth to keep. Its file is
        never overwritten. Its transparency is used only when ``image`` has its size
        (an image cropped or resized from it is written without).
    bit_depth : {8, 16}, optional
        Bits per channel. Default: ``like.bit_depth`` for PNG/TIFF, else 8. JPEG is 8-bit only.
    quality : int
        JPEG quality, 1-100.
    subsampling : {"4:4:4", "4:2:2", "4:2:0"}, optional
        JPEG chroma subsampling. Default: ``like``'s, when it was a JPEG; else "4:2:0".
    overwrite : bool
        If False, raise FileExistsError when ``path`` exists.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from PIL import Image

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    fmt = PHOTO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"path {str(path)!r} has extension {path.suffix!r}; use one of "
                         f"{sorted(PHOTO_FORMATS)} to choose JPEG, PNG or TIFF")
    if like is not None and not isinstance(like, Photo):
        raise TypeError(f"like must be a Photo (from read_photo) or None, got {type(like).__name__}")
    if like is not None and like.source is not None and path.exists() and like.source.exists() \
            and os.path.samefile(path, like.source):
        raise ValueError(f"refusing to overwrite the input photo {str(path)!r}; write to another path")
    if not overwrite and path.exists():
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    if bit_depth is None:
        bit_depth = like.bit_depth if (like is not None and fmt != "JPEG") else 8
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if fmt == "JPEG" and bit_depth != 8:
        raise ValueError("JPEG stores 8 bits per channel only; got bit_depth=16. "
                         "Write a .png or .tif file for 16-bit output")
    # (int() let 100.9 and True through as 100 and 1, and gave None a bare TypeError.)
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be a JPEG quality, an integer in 1..100, got {quality!r}")
    subsamplings = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
    if subsampling is None:
        subsampling = (like.jpeg_subsampling if like is not None else None) or "4:2:0"
    if subsampling not in subsamplings:
        raise ValueError(f"subsampling must be one of {list(subsamplings)}, got {subsampling!r}")
    if fmt == "JPEG" and getattr(image, "ndim", 0) >= 2 and _jpeg_size_problem(*image.shape[:2]):
        raise ValueError(f"cannot write {str(path)!r}: {_jpeg_size_problem(*image.shape[:2])}")
    linear = as_linear_rgb(image, name="image") if image.dtype != np.float32 or image.ndim != 3 \
        or image.shape[2] != 3 else image
    if not np.isfinite(linear[:: max(1, linear.shape[0] // 64), :: max(1, linear.shape[1] // 64)]).all():
        raise ValueError("image contains NaN or infinite values; fix the pipeline stage that produced them")

    icc = like.icc_profile if like is not None else None
    exif = like.exif if like is not None else None
    if exif:
        exif = _exif_with_pixel_size(exif, linear.shape[1], linear.shape[0])
    curve_key = _parse_icc(icc).curve_key if icc else None
    xmp = like.xmp if like is not None else None
    if xmp:
        xmp = _xmp_with_pixel_size(xmp, linear.shape[1], linear.shape[0])
    dpi = like.dpi if like is not None else None
    iptc = like.iptc if like is not None else None
    comment = like.comment if like is not None else None
    text = like.text if like is not None else ()
    if fmt == "TIFF" and comment and not any(k in ("Description", "Title") and v for k, v in text):
        # TIFF has no comment field: its ImageDescription (270) takes a JPEG's or PNG's comment
        # where the EXIF names no description of its own (the comment was lost in TIFF output).
        text = tuple(text) + (("Description", comment),)
    if text and fmt != "PNG":  # (a PNG output keeps them as text fields)
        exif = _exif_with_png_text(exif, text) if exif else _exif_from_png_text(text)
    # JPEG: the codes are made in Pillow's own RGBX layout so that Image.frombuffer maps them
    # instead of repacking the whole frame (a 12-MP Image.fromarray took as long as the encoder).
    alpha = like.alpha if like is not None else None
    if alpha is not None and alpha.shape != linear.shape[:2]:
        alpha = None
    codes = _encode(linear, curve_key, bit_depth, padded=fmt == "JPEG")
    flattened = None
    if alpha is not None and fmt == "JPEG":
        # A JPEG holds no transparency: the photo is flattened onto white instead of showing
        # whatever colour the transparent pixels kept (often black). On the encoded values, as
        # viewers and browsers draw a transparent PNG on a white page and editors export it.
        _flatten_onto_white(codes, alpha)
        flattened, alpha = alpha, None
    # A grey source whose result stayed grey goes back as grey. Grey + alpha only at 8 bits
    # (Pillow's LA): Pillow reads no 16-bit two-sample TIFF (tools built on it could not read it
    # back) and writes no 16-bit LA PNG, so those stay RGBA.
    grey_alpha_ok = bit_depth == 8
    grey = _grey_codes(codes) if like is not None and like.grayscale and (alpha is None or grey_alpha_ok) \
        else None
    grey_curve = _parse_icc(like.grey_profile).curve_key if grey is not None and like.grey_profile else None
    if grey_curve is not None:
        # Encoded with the grey profile's own curve, as it was decoded (and flattened as the
        # sRGB codes were). Its steeper toe can spread channels that sRGB's kept within the
        # tolerance: then the result is written as the sRGB RGB codes, untagged, as a tinted one is.
        own = _encode(linear, grey_curve, bit_depth)
        if flattened is not None:
            _flatten_onto_white(own, flattened)
        grey = _grey_codes(own)
    if grey is not None:
        codes, icc = grey, like.grey_profile  # (an RGB profile cannot describe one channel)
    elif like is not None and like.grayscale and xmp:
        xmp = _xmp_as_srgb(xmp)  # a grey photo a style tinted is written as sRGB RGB, not "Grayscale"
    if alpha is not None:
        top = np.float32(np.iinfo(codes.dtype).max)
        codes = np.dstack([codes, (np.clip(alpha, 0.0, 1.0) * top + np.float32(0.5)).astype(codes.dtype)])

    if fmt == "JPEG":
        options = {"quality": int(quality)}
        if comment and len(comment.encode("utf-8")) <= _JPEG_SEGMENT_ROOM:  # one COM segment
            options["comment"] = comment.encode("utf-8")
        if grey is None:
            options["subsampling"] = subsamplings[subsampling]  # (a grey JPEG has no chroma)
        if icc:
            options["icc_profile"] = icc
        exif = _exif_fitting_a_jpeg(exif) if exif else None
        if exif:
            options["exif"] = _EXIF_PREFIX + exif
        if dpi and max(round(v) for v in dpi) <= _JFIF_MAX_DENSITY:
            # (Pillow stores the density in JFIF's 16-bit fields modulo 65536: a 70000 dpi
            # microscope TIFF came out at 4464 dpi. One over that is left out, as jpeg_leaves_out says.)
            options["dpi"] = dpi
        encoded = io.BytesIO()
        height, width = codes.shape[:2]
        if grey is not None:
            image = Image.fromarray(np.ascontiguousarray(codes[:, :, 0]), "L")
        else:
            # Mode RGBX is written as a 3-component JPEG (Pillow's rawmode "RGB"), byte for byte as RGB.
            image = Image.frombuffer("RGBX", (width, height), codes, "raw", "RGBX", 0, 1)
        image.save(encoded, format="JPEG", **options)
        data = _jpeg_with_xmp(encoded.getvalue(), xmp) if xmp else encoded.getvalue()
        segment = _photoshop_iptc_segment(iptc) if iptc else None
        if segment is not None:  # (after the JFIF, EXIF, XMP and ICC segments, as Photoshop puts it)
            data = _jpeg_with_segment(data, 0xED, segment, (0xE0, 0xE1, 0xE2))
        _atomic_write(path, lambda fh: fh.write(data))
    elif fmt == "PNG":
        if codes.shape[2] == 2:  # grey + alpha, 8 bit: Pillow (OpenCV writes no two-channel PNG)
            encoded = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(codes), "LA").save(encoded, format="PNG", compress_level=3)
            png = encoded.getvalue()
        else:
            channels = {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[codes.shape[2]]  # OpenCV's BGR(A) order
            ok, encoded = cv2.imencode(".png", np.ascontiguousarray(codes[:, :, channels]),
                                       [cv2.IMWRITE_PNG_COMPRESSION, 3])
            if not ok:
                raise OSError(f"OpenCV failed to encode {str(path)!r} as PNG")
            png = encoded.tobytes()
        data = _png_with_metadata(png, icc, exif, xmp, dpi, comment, text)
        _atomic_write(path, lambda fh: fh.write(data))
    else:
        data = _tiff_bytes(codes, icc, exif, xmp=xmp, dpi=dpi, iptc=iptc)
        _atomic_write(path, lambda fh: fh.write(data))
    return path
