"""camseg.io: real files in tmp_path, every edge case a photo library contains."""
import io as pyio
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from camseg import io as cio

SAMPLE_JPEG = Path(__file__).resolve().parents[1] / "camseg" / "samples" / "astronaut.jpg"

P3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Display P3")


def _gradient(h=24, w=32):
    """uint8 sRGB test image with distinct values per pixel and channel."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // (w - 1)), (y * 255 // (h - 1)), ((x + y) * 127 // (h + w))], axis=2).astype(np.uint8)


def _exif(orientation=1):
    ex = Image.Exif()
    ex[0x0112] = orientation
    ex[0x010F] = "TestCam"
    ex.get_ifd(0x8769)[0x8827] = 1600
    ex.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
    return ex.tobytes()


def _encoded(photo_pixels, curve="srgb"):
    return np.rint(cio.linear_to_srgb(photo_pixels) * 255).astype(np.uint8)


# --- transfer functions (pre-existing API kept) -----------------------------

def test_srgb_reference_values():
    # IEC 61966-2-1: 0.5 encoded -> 0.21404 linear; 0.04045 is the segment joint.
    np.testing.assert_allclose(cio.srgb_to_linear(np.array([0.0, 0.04045, 0.5, 1.0])),
                               [0.0, 0.04045 / 12.92, 0.214041, 1.0], atol=1e-5)
    x = np.linspace(0, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(cio.linear_to_srgb(cio.srgb_to_linear(x)), x, atol=1e-5)


# --- reading ------------------------------------------------------------------

def test_png_8bit_roundtrip_is_exact(tmp_path):
    src = _gradient()
    Image.fromarray(src).save(tmp_path / "a.png")
    photo = cio.read_photo(tmp_path / "a.png")
    assert photo.pixels.dtype == np.float32 and photo.pixels.shape == (24, 32, 3)
    assert (photo.format, photo.bit_depth, photo.colour_space) == ("PNG", 8, "sRGB")
    np.testing.assert_array_equal(_encoded(photo.pixels), src)
    cio.write_photo(tmp_path / "b.png", photo.pixels, like=photo)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), src)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_in_and_out_keeps_precision(tmp_path, ext):
    ramp = np.linspace(0, 65535, 40 * 60 * 3).reshape(40, 60, 3).astype(np.uint16)
    cv2.imwrite(str(tmp_path / f"in.{ext}"), ramp[:, :, ::-1])  # cv2 wants BGR
    photo = cio.read_photo(tmp_path / f"in.{ext}")
    assert photo.bit_depth == 16
    # More than 256 distinct levels: not truncated to 8 bit on the way in.
    assert len(np.unique(photo.pixels)) > 2000
    cio.write_photo(tmp_path / f"out.{ext}", photo.pixels, like=photo)
    back = cv2.imread(str(tmp_path / f"out.{ext}"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    assert back.dtype == np.uint16
    assert np.abs(back.astype(int) - ramp.astype(int)).max() <= 1


def test_16bit_grayscale_png(tmp_path):
    gray = (np.arange(30 * 20).reshape(30, 20) * 100).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray)
    photo = cio.read_photo(tmp_path / "g16.png")
    assert photo.bit_depth == 16 and photo.pixels.shape == (30, 20, 3)
    np.testing.assert_array_equal(photo.pixels[..., 0], photo.pixels[..., 2])
    assert any("grayscale" in n for n in photo.notes)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    src = _gradient(10, 16)
    Image.fromarray(src).save(tmp_path / "o.png", exif=_exif(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    photo = cio.read_photo(tmp_path / "o.png")
    np.testing.assert_array_equal(_encoded(photo.pixels), expected)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_applied_once(tmp_path, orientation, bits):
    """TIFF orientation tags: Pillow 13 and OpenCV 5 turn TIFFs themselves while decoding (older
    ones do not). 8-bit orientations 5-8 crashed ("tile cannot extend outside image") and
    16-bit ones were turned twice."""
    src = _gradient(10, 16)
    Image.fromarray(src).save(tmp_path / "o.png", exif=_exif(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    if bits == 8:
        Image.fromarray(src).save(tmp_path / "o.tif", exif=_exif(orientation))
    else:
        (tmp_path / "o.tif").write_bytes(cio._tiff_bytes(src.astype(np.uint16) * 257, None, None,
                                                         orientation=orientation))
    photo = cio.read_photo(tmp_path / "o.tif")
    assert photo.bit_depth == bits
    np.testing.assert_array_equal(_encoded(photo.pixels), expected)
    assert any(f"orientation {orientation}" in n for n in photo.notes) == (orientation != 1)


@pytest.mark.parametrize("ext", ["jpg", "png", "tif"])
def test_exif_kept_and_orientation_reset(tmp_path, ext):
    Image.fromarray(_gradient(20, 30)).save(tmp_path / "r.jpg", exif=_exif(6), quality=95)
    photo = cio.read_photo(tmp_path / "r.jpg")
    assert photo.pixels.shape == (30, 20, 3)  # rotated upright
    assert photo.iso == 1600
    out = cio.write_photo(tmp_path / f"o.{ext}", photo.pixels, like=photo)
    with Image.open(out) as im:
        assert im.size == (20, 30)
        ex = im.getexif()
        assert ex.get(0x0112) == 1
        assert ex.get(0x010F) == "TestCam"
        assert ex.get_ifd(0x8769).get(0x8827) == 1600
        assert ex.get_ifd(0x8769).get(0x9003) == "2024:05:06 07:08:09"
    # Reading the output again does not rotate a second time.
    assert cio.read_photo(out).pixels.shape == (30, 20, 3)


@pytest.mark.parametrize("bits", [8, 16])
def test_exif_of_a_png_whose_exif_chunk_carries_the_jpeg_prefix_is_kept(tmp_path, bits):
    """An eXIf chunk starting "Exif\\0\\0" (the JPEG APP1 prefix some writers copy in) lost its EXIF."""
    codes = _gradient(12, 20).astype(np.uint16) * 257 if bits == 16 else _gradient(12, 20)
    ok, png = cv2.imencode(".png", codes)
    assert ok
    (tmp_path / "a.png").write_bytes(cio._png_with_metadata(png.tobytes(), None, _exif(6)))  # prefix kept
    photo = cio.read_photo(tmp_path / "a.png")
    assert photo.pixels.shape == (20, 12, 3)  # orientation 6 applied
    assert photo.iso == 1600 and photo.exif is not None and photo.exif[:4] in (b"II*\x00", b"MM\x00*")
    with Image.open(photo.save(tmp_path / "b.jpg")) as im:
        assert im.getexif().get(0x010F) == "TestCam"


@pytest.mark.parametrize("ext", ["jpg", "png", "tif"])
def test_an_orientation_stored_as_a_long_is_reset_too(tmp_path, ext):
    """Pillow (and viewers) read an orientation stored as LONG; the reset only rewrote a SHORT,
    so the upright output kept orientation 6 and was shown turned a second time."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 4, 1, 6) + struct.pack("<I", 0)
    Image.new("RGB", (40, 60), (40, 80, 120)).save(tmp_path / "a.jpg", exif=b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd)
    photo = cio.read_photo(tmp_path / "a.jpg")
    assert photo.pixels.shape == (40, 60, 3)  # turned upright
    with Image.open(photo.save(tmp_path / f"b.{ext}")) as im:
        assert im.size == (60, 40) and im.getexif().get(0x0112, 1) == 1
        assert ImageOps.exif_transpose(im).size == (60, 40)


@pytest.mark.parametrize("bits", [8, 16])
def test_a_white_is_zero_grey_tiff_is_not_read_as_a_negative(tmp_path, bits):
    """16-bit grey TIFFs stored WhiteIsZero (PhotometricInterpretation 0) came out inverted."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    dark_to_light = np.tile(np.arange(256, dtype=np.uint16), (8, 1))
    stored = (255 - dark_to_light) * (257 if bits == 16 else 1)
    tifffile.imwrite(tmp_path / "w.tif", stored.astype(np.uint16 if bits == 16 else np.uint8), photometric="miniswhite")
    photo = cio.read_photo(tmp_path / "w.tif")
    assert photo.bit_depth == bits and photo.grayscale
    assert photo.pixels[:, :4].mean() < 0.01 and photo.pixels[:, -4:].mean() > 0.95


def test_exif_too_large_for_a_jpeg_keeps_its_small_tags(tmp_path):
    """EXIF over 65000 bytes (a PNG's or TIFF's, or a camera's of 65000-65527) was dropped whole
    from a JPEG output, silently; now only values over 1 KB go when it does not fit."""
    ex = Image.Exif()
    ex[0x010F] = "TestCam"
    ex[0x0131] = "x" * 70000  # a huge Software string
    ex.get_ifd(0x8769)[0x8827] = 800
    Image.fromarray(_gradient(16, 24)).save(tmp_path / "a.png", exif=ex.tobytes())
    photo = cio.read_photo(tmp_path / "a.png")
    assert len(photo.exif) > 70000
    with Image.open(photo.save(tmp_path / "b.jpg")) as im:
        kept = im.getexif()
        assert kept.get(0x010F) == "TestCam" and kept.get_ifd(0x8769).get(0x8827) == 800
        assert 0x0131 not in kept
    # One that fits, even just under the segment's limit, is kept byte for byte.
    assert cio._exif_fitting_a_jpeg(photo.exif[:8] + bytes(65519)) == photo.exif[:8] + bytes(65519)


def test_16_bit_cmyk_and_plane_by_plane_tiffs(tmp_path):
    """A 16-bit CMYK TIFF was "damaged or truncated"; a plane-by-plane one was "e.g. 32-bit
    floating point, or an unusual compression"."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    cmyk = np.zeros((6, 8, 4), np.uint16)
    cmyk[:, :4, 0] = 65535  # full cyan on the left half
    tifffile.imwrite(tmp_path / "c.tif", cmyk, photometric="separated")
    photo = cio.read_photo(tmp_path / "c.tif")
    assert "16-bit CMYK read at 8 bits per sample" in photo.notes
    left, right = photo.pixels[:, :4].mean(axis=(0, 1)), photo.pixels[:, 4:].mean(axis=(0, 1))
    assert left[0] < 0.01 and left[1] > 0.9 and left[2] > 0.9 and right.min() > 0.9  # cyan | white
    tifffile.imwrite(tmp_path / "p.tif", np.zeros((6, 8, 3), np.uint8), planarconfig="separate")
    with pytest.raises(ValueError, match="plane by plane"):
        cio.read_photo(tmp_path / "p.tif")


def _codes16(photo):
    """A photo's pixels as the 16-bit sRGB codes they were decoded from."""
    return cio._encode(photo.pixels, None, 16).astype(np.int64)


@pytest.mark.parametrize("options", [{}, {"compression": "zlib", "predictor": True, "rowsperstrip": 5},
                                     {"tile": (16, 16), "byteorder": ">"}])
def test_a_16_bit_plane_by_plane_tiff_is_decoded(tmp_path, options):
    """A 16-bit RGB TIFF stored plane by plane (PlanarConfiguration 2: scanners, GIMP, tifffile)
    was decoded by OpenCV as three grey copies of the planes side by side, with no note."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    rgb = np.random.default_rng(0).integers(0, 65536, (21, 35, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate",
                     **options)
    photo = cio.read_photo(tmp_path / "p.tif")
    assert photo.bit_depth == 16 and photo.alpha is None and not photo.grayscale
    np.testing.assert_array_equal(_codes16(photo), rgb)
    # Cut short (tifffile writes the directory first): reported, not completed with other bytes.
    (tmp_path / "cut.tif").write_bytes((tmp_path / "p.tif").read_bytes()[:-1])
    with pytest.raises(ValueError, match="damaged or truncated"):
        cio.read_photo(tmp_path / "cut.tif")


def test_premultiplied_alpha_of_a_16_bit_tiff_is_divided_out(tmp_path):
    """A 16-bit TIFF with premultiplied (associated, ExtraSamples 1) alpha was read as if straight:
    colour half as bright under half opacity (the 8-bit one, read by Pillow, was right)."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    rgb = np.random.default_rng(1).integers(0, 65536, (12, 20, 3)).astype(np.float64)
    alpha = np.full((12, 20), 65535.0)
    alpha[:, :10] = 32768
    stored = np.rint(np.dstack([rgb * alpha[:, :, None] / 65535, alpha])).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", stored, photometric="rgb", extrasamples=[1])
    photo = cio.read_photo(tmp_path / "a.tif")
    np.testing.assert_allclose(photo.alpha, alpha / 65535, atol=1e-6)
    assert np.abs(_codes16(photo) - rgb).max() <= 2  # (the premultiplied codes' rounding, doubled)
    # Written back with straight alpha, said so (ExtraSamples 2), and the straight colour.
    with tifffile.TiffFile(photo.save(tmp_path / "b.tif")) as tif:
        assert tif.pages[0].extrasamples == (2,)
        out = tif.pages[0].asarray()
    assert np.abs(out[:, :, :3].astype(np.int64) - rgb).max() <= 2
    np.testing.assert_array_equal(out[:, :, 3], stored[:, :, 3])


@pytest.mark.parametrize("bits", [8, 16])
def test_an_extra_tiff_sample_of_other_data_is_not_transparency(tmp_path, bits):
    """A fourth sample marked as other data (ExtraSamples 0: infrared, a mask) was made the photo's
    transparency at 16 bits (8 bits, read by Pillow, left it out); now left out at both, with a note."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    scale = 257 if bits == 16 else 1
    rgb = _gradient(10, 16).astype(np.uint16) * scale
    infrared = np.zeros((10, 16), np.uint16)
    infrared[:, :8] = 30 * scale
    tifffile.imwrite(tmp_path / "x.tif", np.dstack([rgb, infrared]).astype(np.uint16 if bits == 16 else np.uint8),
                     photometric="rgb", extrasamples=[0])
    photo = cio.read_photo(tmp_path / "x.tif")
    assert photo.alpha is None
    assert any("ExtraSamples 0" in note and "not read" in note for note in photo.notes)
    np.testing.assert_array_equal(_encoded(photo.pixels), _gradient(10, 16))
    with Image.open(photo.save(tmp_path / "x.png")) as im:
        assert im.mode == "RGB"


@pytest.mark.parametrize("options", [{}, {"compression": "zlib", "predictor": True, "tile": (16, 16)},
                                     {"planarconfig": "separate", "byteorder": ">"}])
def test_16_bit_grey_alpha_and_rgb_alpha_extra_tiffs_are_read(tmp_path, options):
    """16-bit grey + alpha, and RGB + alpha + one extra sample, were refused as "e.g. 32-bit
    floating point, or an unusual compression ... export it as an 8- or 16-bit integer TIFF":
    what they are. (Pillow has no mode for them; OpenCV read grey + alpha as 8 bits.)"""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 65536, (20, 33), dtype=np.uint16)
    alpha = np.where(rng.random((20, 33)) < 0.5, 65535, 20000).astype(np.uint16)
    infrared = rng.integers(0, 65536, (20, 33), dtype=np.uint16)

    def layout(samples):  # (plane by plane: samples first)
        return np.stack(samples, axis=0 if options.get("planarconfig") else -1)

    tifffile.imwrite(tmp_path / "ga.tif", layout([grey, alpha]), photometric="minisblack", extrasamples=[2],
                     resolution=(300, 300), resolutionunit="INCH", extratags=[(274, 3, 1, 6, True)], **options)
    photo = cio.read_photo(tmp_path / "ga.tif")  # its metadata as well: print resolution, orientation
    assert photo.bit_depth == 16 and photo.grayscale and photo.dpi == pytest.approx((300, 300))
    np.testing.assert_array_equal(_codes16(photo)[:, :, 1], np.rot90(grey, -1))
    np.testing.assert_allclose(photo.alpha * 65535, np.rot90(alpha, -1), atol=0.01)
    back = cio.read_photo(photo.save(tmp_path / "ga_out.tif"))
    np.testing.assert_array_equal(_codes16(back), _codes16(photo))
    np.testing.assert_allclose(back.alpha, photo.alpha, atol=1e-6)

    rgb = [rng.integers(0, 65536, (20, 33), dtype=np.uint16) for _ in range(3)]
    tifffile.imwrite(tmp_path / "rgbax.tif", layout(rgb + [alpha, infrared]), photometric="rgb",
                     extrasamples=[2, 0], **options)
    photo = cio.read_photo(tmp_path / "rgbax.tif")
    np.testing.assert_array_equal(_codes16(photo), np.dstack(rgb))
    np.testing.assert_allclose(photo.alpha * 65535, alpha, atol=0.01)
    assert any("ExtraSamples 0" in note for note in photo.notes)


def test_a_signed_16_bit_tiff_is_refused_saying_so(tmp_path):
    """Signed samples were refused as "e.g. 32-bit floating point, or an unusual compression"."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((6, 8, 3), np.int16), photometric="rgb")
    tifffile.imwrite(tmp_path / "g.tif", np.zeros((6, 8), np.int16), photometric="minisblack")  # Pillow opens it
    for name in ("s.tif", "g.tif"):
        with pytest.raises(ValueError, match=r"cannot decode \(signed 16-bit integer samples\); export it as an "
                                             "8- or 16-bit unsigned integer TIFF"):
            cio.read_photo(tmp_path / name)


def test_a_tiff_in_a_codec_libtiff_may_lack_is_not_just_called_damaged(tmp_path):
    """A 16-bit LZMA TIFF (OpenCV's libtiff here is built without LZMA) was called "damaged or
    truncated", with advice to re-copy it that cannot help."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    codes = (np.arange(6 * 8 * 3).reshape(6, 8, 3) * 700).astype(np.uint16)
    tifffile.imwrite(tmp_path / "lzma.tif", codes, photometric="rgb", compression="lzma")
    try:
        photo = cio.read_photo(tmp_path / "lzma.tif")
    except ValueError as exc:
        assert "compressed with LZMA" in str(exc) and "re-save it with LZW, Deflate (ZIP)" in str(exc)
    else:  # (a libtiff with LZMA)
        assert photo.bit_depth == 16
    # Any other codec's failure is still damage.
    tifffile.imwrite(tmp_path / "cut.tif", codes, photometric="rgb", compression="zlib")
    data = (tmp_path / "cut.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data.replace(zlib.compress(codes.tobytes())[:12], bytes(12)))
    with pytest.raises(ValueError, match="damaged or truncated"):
        cio.read_photo(tmp_path / "cut.tif")


def test_to_srgb_primaries_converts_display_p3_and_leaves_srgb_alone():
    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Display P3")
    v = np.array([[[0.5, 0.4, 0.3]]], np.float32)
    # The published linear Display P3 -> sRGB matrix (D65 both): rows (1.2249, -0.2247, 0),
    # (-0.0420, 1.0419, 0), (-0.0197, -0.0786, 1.0979).
    np.testing.assert_allclose(cio.to_srgb_primaries(v, p3)[0, 0], [0.5226, 0.3958, 0.2880], atol=2e-3)
    assert cio.to_srgb_primaries(v, None) is v
    assert cio.to_srgb_primaries(v, cio.make_icc_profile(cio.SRGB_PRIMARIES)) is v
    assert cio.to_srgb_primaries(np.ones((1, 1, 3), np.float32) * [[[1, 0, 0]]], p3).max() <= 1.0  # clipped


def test_icc_profile_builder_agrees_with_littlecms_and_colour_science():
    colour = pytest.importorskip("colour")
    vals = np.array([[[200, 100, 50], [60, 160, 90], [90, 100, 200], [128, 128, 128]]], np.uint8)
    prof = ImageCms.ImageCmsProfile(pyio.BytesIO(P3))
    assert ImageCms.getProfileDescription(prof).strip() == "Display P3"
    lcms = np.asarray(ImageCms.profileToProfile(Image.fromarray(vals), prof, ImageCms.createProfile("sRGB"),
                                                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC))
    ref = colour.RGB_to_RGB(vals / 255.0, colour.RGB_COLOURSPACES["Display P3"], colour.RGB_COLOURSPACES["sRGB"],
                            apply_cctf_decoding=True, apply_cctf_encoding=True) * 255
    mask = (ref >= 0).all(axis=-1)
    assert np.abs(lcms[mask].astype(float) - ref[mask]).max() <= 1.5


@pytest.mark.parametrize("ext", ["jpg", "png", "tif"])
def test_display_p3_stays_p3(tmp_path, ext):
    # A saturated P3 green that sRGB cannot show: converting to sRGB would clip it.
    src = np.zeros((16, 16, 3), np.uint8)
    src[:, :8] = (20, 230, 40)
    src[:, 8:] = (240, 40, 30)
    Image.fromarray(src).save(tmp_path / "p3.png", icc_profile=P3)
    photo = cio.read_photo(tmp_path / "p3.png")
    assert photo.colour_space == "Display P3" and photo.icc_profile == P3
    # Pixels are in P3 primaries (decoded with P3's sRGB-shaped curve), not converted to sRGB.
    np.testing.assert_array_equal(_encoded(photo.pixels), src)
    out = cio.write_photo(tmp_path / f"out.{ext}", photo.pixels, like=photo)
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == P3
        back = np.asarray(im.convert("RGB"))
    if ext == "jpg":  # lossy, chroma-subsampled: compare away from the colour edge
        back, src = back[:, [0, 1, 2, 13, 14, 15]], src[:, [0, 1, 2, 13, 14, 15]]
    assert np.abs(back.astype(int) - src.astype(int)).max() <= (6 if ext == "jpg" else 0)


def test_non_srgb_tone_curve_is_honoured(tmp_path):
    # A linear-TRC profile: code 128 means 128/255 of the light, not sRGB's 0.216.
    linear_profile = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Linear P3", trc="linear")
    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(tmp_path / "lin.png", icc_profile=linear_profile)
    photo = cio.read_photo(tmp_path / "lin.png")
    np.testing.assert_allclose(photo.pixels, 128 / 255, atol=1e-4)
    out = cio.write_photo(tmp_path / "lin_out.png", photo.pixels, like=photo)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), 128)


def test_cmyk_jpeg_is_converted(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (200, 30, 30)
    rgb[:, 4:] = (128, 128, 128)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    photo = cio.read_photo(tmp_path / "c.jpg")
    assert photo.pixels.shape == (8, 8, 3) and photo.icc_profile is None
    assert any("CMYK" in n for n in photo.notes)
    enc = _encoded(photo.pixels).astype(int)
    assert np.abs(enc[2, 1] - (200, 30, 30)).max() < 20 and np.abs(enc[2, 6] - 128).max() < 20


def test_grayscale_jpeg(tmp_path):
    Image.fromarray(_gradient()[:, :, 0]).save(tmp_path / "g.jpg")
    photo = cio.read_photo(tmp_path / "g.jpg")
    assert photo.pixels.shape == (24, 32, 3)
    np.testing.assert_array_equal(photo.pixels[..., 0], photo.pixels[..., 1])


@pytest.mark.parametrize("ext, bits", [(".jpg", 8), (".png", 8), (".png", 16), (".tif", 8), (".tif", 16)])
def test_a_grey_photo_that_stays_grey_is_written_grey(tmp_path, ext, bits):
    # A black-and-white photo came back as three equal channels (3x the size, and no longer a
    # grey file to a photo library); one a style tinted is RGB, as it must be.
    rng = np.random.default_rng(0)
    grey = (rng.integers(0, 256, (40, 60)) * (257 if bits == 16 else 1)).astype(np.uint16 if bits == 16 else np.uint8)
    src = tmp_path / f"bw{ext}"
    if ext == ".jpg":
        Image.fromarray(grey).save(src, quality=95)
    else:
        cv2.imwrite(str(src), grey)
    photo = cio.read_photo(src)
    assert photo.grayscale and photo.pixels.shape == (40, 60, 3)
    out = cio.write_photo(tmp_path / f"out{ext}", photo.pixels, like=photo)
    mode = Image.open(out).mode
    assert mode == "L" if bits == 8 else mode.startswith("I;16"), mode
    back = cio.read_photo(out)
    assert back.grayscale and back.bit_depth == bits
    np.testing.assert_allclose(back.pixels, photo.pixels, atol=0.04 if ext == ".jpg" else 1e-4)
    tinted = photo.pixels * np.array([1.0, 0.9, 0.75], np.float32)
    assert Image.open(cio.write_photo(tmp_path / f"tinted{ext}", tinted, like=photo)).mode in ("RGB", "RGBX")
    # A colour source stays colour even when its pixels are grey.
    colour = cio.read_photo(cio.write_photo(tmp_path / f"c{ext}", photo.pixels, bit_depth=bits))
    assert not colour.grayscale and Image.open(cio.write_photo(tmp_path / f"c2{ext}", colour.pixels,
                                                              like=colour)).mode in ("RGB", "RGBX")


def test_a_grey_jpeg_keeps_its_grey_profile(tmp_path):
    # A Gray ICC profile ("Gray Gamma 2.2", "Dot Gain 20%") cannot describe the RGB the stages
    # work in, so it is set aside on reading -- and put back on the grey file written.
    rgb = cio.make_icc_profile(((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), description="grey test")
    grey_icc = rgb[:16] + b"GRAY" + rgb[20:]  # the header's colour space: enough for this test
    Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8), (20, 1))).save(
        tmp_path / "g.jpg", quality=95, icc_profile=grey_icc)
    photo = cio.read_photo(tmp_path / "g.jpg")
    assert photo.grayscale and photo.icc_profile is None and photo.grey_profile == grey_icc
    # With transparency too (Pillow converts an LA source to RGBA on reading).
    Image.fromarray(np.dstack([np.full((8, 8), 90, np.uint8), np.full((8, 8), 100, np.uint8)]), "LA").save(
        tmp_path / "la.png", icc_profile=grey_icc)
    assert cio.read_photo(tmp_path / "la.png").grey_profile == grey_icc
    out = cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)
    with Image.open(out) as im:
        assert im.mode == "L" and im.info.get("icc_profile") == grey_icc
    tinted = cio.write_photo(tmp_path / "tinted.jpg", photo.pixels * np.array([1.0, 0.8, 0.6], np.float32),
                             like=photo)
    with Image.open(tinted) as im:
        assert im.mode == "RGB" and not im.info.get("icc_profile")  # a grey profile cannot tag RGB


def test_grey_codes_tolerance_and_rounding():
    # Grey when every pixel's channels lie within 2/255 of each other (the vibrant style leaves
    # ~1.4 codes near black on a grey photo), as the rounded mean; a visible tint stays RGB.
    c = np.array([[[10, 11, 12], [200, 200, 201], [0, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(cio._grey_codes(c)[..., 0], [[11, 200, 0]])
    assert cio._grey_codes(np.array([[[10, 11, 13]]], np.uint8)) is None
    c16 = np.array([[[1000, 1000 + 514, 1000], [65535, 65535, 65534]]], np.uint16)
    np.testing.assert_array_equal(cio._grey_codes(c16)[..., 0], [[1171, 65535]])
    assert cio._grey_codes(np.array([[[1000, 1515, 1000]]], np.uint16)) is None


@pytest.mark.parametrize("bits", [8, 16])
def test_grey_with_transparency_reads_back(tmp_path, bits):
    # Grey + alpha goes grey only at 8 bits: a 16-bit two-sample TIFF is one Pillow cannot read
    # back, and Pillow writes no 16-bit LA PNG: those stay RGBA.
    grey = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (20, 1))
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[:, :10] = 0
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    photo = cio.read_photo(tmp_path / "la.png")
    for ext in (".tif", ".png"):
        out = cio.write_photo(tmp_path / f"out{bits}{ext}", photo.pixels, like=photo, bit_depth=bits)
        back = cio.read_photo(out)
        np.testing.assert_allclose(back.alpha, photo.alpha, atol=1 / 255)
        np.testing.assert_allclose(back.pixels, photo.pixels, atol=2e-3)
        assert Image.open(out).mode == ("LA" if bits == 8 else "RGBA")


def test_a_16_bit_grey_png_keeps_its_transparent_grey_level(tmp_path):
    """A 16-bit grey PNG whose transparency is a grey level (tRNS): OpenCV, which decodes 16-bit
    PNGs, returns one channel for it and the transparency was lost (its RGB twin's was kept)."""
    grey = (np.arange(20 * 30).reshape(20, 30) * 101).astype(np.uint16)
    grey[:5, :5] = 777
    ok, png = cv2.imencode(".png", grey)
    png = png.tobytes()
    trns = struct.pack(">H", 777)
    chunk = struct.pack(">I", 2) + b"tRNS" + trns + struct.pack(">I", zlib.crc32(b"tRNS" + trns))
    at = png.find(b"IDAT") - 4
    (tmp_path / "g16t.png").write_bytes(png[:at] + chunk + png[at:])
    photo = cio.read_photo(tmp_path / "g16t.png")
    assert photo.bit_depth == 16 and photo.grayscale
    assert photo.alpha is not None
    expected = np.where(grey == 777, 0.0, 1.0).astype(np.float32)
    np.testing.assert_array_equal(photo.alpha, expected)
    back = cio.read_photo(cio.write_photo(tmp_path / "out.png", photo.pixels, like=photo))
    np.testing.assert_array_equal(back.alpha, expected)


def test_a_grey_tiff_keeps_its_transparency(tmp_path):
    grey = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (20, 1))
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[:, :10] = 0
    alpha[:, 10:20] = 128
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    photo = cio.read_photo(tmp_path / "la.png")
    assert photo.grayscale and photo.alpha is not None
    out = cio.write_photo(tmp_path / "la.tif", photo.pixels, like=photo)
    assert Image.open(out).mode == "LA"
    back = cio.read_photo(out)
    np.testing.assert_allclose(back.alpha, photo.alpha, atol=1 / 255)
    np.testing.assert_allclose(back.pixels, photo.pixels, atol=1e-4)
    png = cio.write_photo(tmp_path / "la_out.png", photo.pixels, like=photo)
    assert Image.open(png).mode == "LA"
    np.testing.assert_allclose(cio.read_photo(png).alpha, photo.alpha, atol=1 / 255)


@pytest.mark.parametrize("bits", [8, 16])
def test_transparency_is_kept_in_png_and_tiff(tmp_path, bits):
    """A PNG's alpha used to be dropped, so what it hid became visible in the developed photo."""
    rgb = _gradient(12, 20)
    alpha = np.tile(np.linspace(0, 255, 20).astype(np.uint8), (12, 1))
    if bits == 8:
        Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png", exif=_exif(6))
    else:  # OpenCV writes 16-bit BGRA; EXIF orientation 6 as an eXIf chunk
        ok, png = cv2.imencode(".png", np.dstack([rgb[:, :, ::-1], alpha]).astype(np.uint16) * 257)
        (tmp_path / "a.png").write_bytes(cio._png_with_metadata(png.tobytes(), None, _exif(6)[6:]))
    photo = cio.read_photo(tmp_path / "a.png")
    assert photo.bit_depth == bits and photo.alpha is not None and photo.alpha.dtype == np.float32
    np.testing.assert_allclose(photo.alpha, np.rot90(alpha, -1) / 255.0, atol=1e-6)  # turned with the pixels
    assert photo.pixels.shape == (20, 12, 3)
    for ext in ("png", "tif"):
        out = photo.save(tmp_path / f"b.{ext}")
        back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        assert back.shape == (20, 12, 4) and back.dtype == (np.uint8 if bits == 8 else np.uint16)
        scale = 1 if bits == 8 else 257
        np.testing.assert_array_equal(back[:, :, 3], np.rot90(alpha, -1).astype(back.dtype) * scale)
        np.testing.assert_allclose(cio.read_photo(out).alpha, photo.alpha, atol=1e-6)
    with Image.open(photo.save(tmp_path / "b.jpg")) as im:
        assert im.mode == "RGB"  # JPEG has no alpha


def test_transparent_photo_written_as_jpeg_is_flattened_onto_white(tmp_path):
    """A JPEG cannot hold alpha: what the transparent pixels kept (here black) used to show."""
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :12, 0] = 200  # red, half-transparent on the right; black under full transparency
    alpha = np.zeros((16, 16), np.uint8)
    alpha[:, :8] = 255
    alpha[:, 8:12] = 128
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    photo = cio.read_photo(tmp_path / "a.png")
    back = cv2.imread(str(photo.save(tmp_path / "b.jpg")))[:, :, ::-1].astype(int)
    assert np.abs(back[:, 13:] - 255).max() <= 4  # transparent: white, not black (JPEG rings a little)
    assert np.abs(back[:, :6] - [200, 0, 0]).max() <= 3  # opaque: unchanged
    mid = back[:, 9:11].reshape(-1, 3).mean(0)  # half-transparent red over white, as viewers draw it
    np.testing.assert_allclose(mid, 128 / 255 * np.array([200, 0, 0]) + 127 / 255 * 255, atol=3)
    np.testing.assert_array_equal(photo.pixels[:, 12:], 0)  # the photo itself is left as it was


def test_opaque_alpha_and_palette_transparency(tmp_path):
    Image.fromarray(np.dstack([np.full((4, 4, 3), 200, np.uint8), np.full((4, 4), 255, np.uint8)]),
                    "RGBA").save(tmp_path / "opaque.png")
    assert cio.read_photo(tmp_path / "opaque.png").alpha is None  # nothing to keep
    pal = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4), "P")
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    photo = cio.read_photo(tmp_path / "p.png")
    assert photo.alpha is not None and photo.alpha[0, 0] == 0.0 and photo.alpha[0, 1] == 1.0


_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        b'xmp:Rating="5" tiff:Orientation="6"><tiff:Orientation>6</tiff:Orientation></rdf:Description>'
        b'</rdf:RDF></x:xmpmeta>')


def test_xmp_and_chroma_subsampling_are_kept(tmp_path):
    """Ratings and keywords live in XMP: it used to be dropped. Its copy of the orientation is
    reset with the EXIF one, or a viewer reading it would turn the upright pixels again."""
    Image.fromarray(_gradient(16, 24)).save(tmp_path / "a.jpg", exif=_exif(6), xmp=_XMP, subsampling=0,
                                            quality=95)
    photo = cio.read_photo(tmp_path / "a.jpg")
    assert photo.jpeg_subsampling == "4:4:4" and b'xmp:Rating="5"' in photo.xmp
    assert b'tiff:Orientation="1"' in photo.xmp and b"<tiff:Orientation>1</tiff:Orientation>" in photo.xmp
    from PIL import JpegImagePlugin

    for ext in ("jpg", "png", "tif"):
        out = photo.save(tmp_path / f"b.{ext}")
        back = cio.read_photo(out)
        assert back.xmp == photo.xmp, ext
        with Image.open(out) as im:
            assert im.getexif().get(0x010F) == "TestCam"
            if ext == "jpg":
                assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4 kept
    with Image.open(photo.save(tmp_path / "c.jpg", subsampling="4:2:0")) as im:
        assert JpegImagePlugin.get_sampling(im) == 2


@pytest.mark.parametrize("sampling, orientation, written", [
    ("422", 1, "4:2:2"), ("422", 3, "4:2:2"),
    ("422", 6, "4:4:4"), ("422", 8, "4:4:4"),  # halved down the upright picture: none lost
    ("440", 1, "4:4:4"), ("440", 6, "4:2:2"),  # (an editor's lossless quarter turn of a 4:2:2 photo)
    ("411", 1, "4:2:2"), ("420", 6, "4:2:0"), ("444", 6, "4:4:4"),
])
def test_a_jpeg_is_written_with_the_least_subsampling_that_keeps_its_chroma(tmp_path, sampling, orientation,
                                                                              written):
    """A 4:2:2 photo turned upright by its EXIF orientation has its chroma halved down the
    picture: written 4:2:2 across, half its chroma detail across was lost. 4:4:0 and 4:1:1 files
    were written 4:2:0."""
    codes = cv2.cvtColor(_gradient(32, 48), cv2.COLOR_RGB2BGR)
    flag = getattr(cv2, f"IMWRITE_JPEG_SAMPLING_FACTOR_{sampling}")
    ok, data = cv2.imencode(".jpg", codes, [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, flag])
    assert ok
    exif = _exif(orientation)  # ("Exif\0\0" + TIFF data) as an APP1 segment after the SOI marker
    (tmp_path / "a.jpg").write_bytes(data[:2].tobytes() + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
                                     + data[2:].tobytes())
    with Image.open(tmp_path / "a.jpg") as im:
        assert im.getexif().get(0x0112) == orientation
    assert cio.read_photo(tmp_path / "a.jpg").jpeg_subsampling == written


@pytest.mark.parametrize("ext", ["jpg", "png", "tif"])
def test_print_resolution_is_kept(tmp_path, ext):
    """The JFIF density / PNG pHYs of a photo set for print (300 dpi) was dropped (72 dpi out)."""
    Image.fromarray(_gradient(16, 24)).save(tmp_path / f"a.{ext}", dpi=(300, 300))
    photo = cio.read_photo(tmp_path / f"a.{ext}")
    assert photo.dpi is not None and np.allclose(photo.dpi, 300, atol=0.5)
    with Image.open(photo.save(tmp_path / f"b.{ext}")) as im:
        assert np.allclose(im.info["dpi"], 300, atol=0.5)


def test_a_jpeg_missing_only_its_end_marker_is_read_a_cut_one_is_not(tmp_path):
    data = SAMPLE_JPEG.read_bytes()
    assert data[-2:] == b"\xff\xd9"
    (tmp_path / "no_eoi.jpg").write_bytes(data[:-2])
    photo = cio.read_photo(tmp_path / "no_eoi.jpg")
    np.testing.assert_array_equal(photo.pixels, cio.read_photo(SAMPLE_JPEG).pixels)
    assert any("end marker missing" in n for n in photo.notes)
    # Cut inside the image data: still refused. A cut of 3-50 bytes (the last blocks' codes) was
    # accepted as "end marker missing" with up to 260 pixels decoded from the decoder's zero fill.
    for end in (int(len(data) * 0.9), int(len(data) * 0.99), len(data) - 50, len(data) - 10, len(data) - 3):
        (tmp_path / "cut.jpg").write_bytes(data[:end])
        with pytest.raises(ValueError, match="truncated"):
            cio.read_photo(tmp_path / "cut.jpg")


def test_a_jpeg_whose_image_data_ends_before_its_end_marker_is_refused(tmp_path):
    """A JPEG cut short and closed with an end marker, or one whose header's image size is
    damaged, decoded with no error: libjpeg leaves the blocks it has no data for flat grey 128,
    and the photo was developed as if whole (an 8×8 JPEG whose header said 3000×3000 became
    9 MP of grey). A whole photo that ends in flat grey 128 is still read."""
    data = SAMPLE_JPEG.read_bytes()
    for end in (int(len(data) * 0.5), len(data) - 200):
        (tmp_path / "closed.jpg").write_bytes(data[:end] + b"\xff\xd9")
        with pytest.raises(ValueError, match="image data ends before the image does"):
            cio.read_photo(tmp_path / "closed.jpg")
    small = pyio.BytesIO()
    Image.fromarray(_gradient(8, 8)).save(small, format="JPEG", quality=90)
    damaged = bytearray(small.getvalue())
    sof = damaged.find(b"\xff\xc0")
    damaged[sof + 5:sof + 9] = struct.pack(">HH", 3000, 3000)  # height, width
    (tmp_path / "size.jpg").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="image data ends before the image does"):
        cio.read_photo(tmp_path / "size.jpg")
    # Whole photos with a flat grey 128 bottom-right corner (the check's trigger) are read.
    for mode, value in (("RGB", (128, 128, 128)), ("L", 128)):
        Image.new(mode, (40, 24), value).save(tmp_path / "grey128.jpg", quality=95)
        photo = cio.read_photo(tmp_path / "grey128.jpg")
        assert photo.pixels.shape == (24, 40, 3)


def test_a_jpeg_with_zeroed_image_data_is_refused(tmp_path):
    """2000 zero bytes in the middle of the image data (or a zeroed tail: a download that
    stopped early into preallocated space) decoded to garbage rows with no message. Also when
    an EXIF thumbnail comes first (almost every camera JPEG): its own scan was checked instead."""
    photo = Image.open(SAMPLE_JPEG).resize((384, 384))
    thumb = pyio.BytesIO()
    photo.resize((64, 64)).save(thumb, format="JPEG", quality=80)
    ex = Image.Exif()
    ex[0x010F] = "TestCam"
    plain, with_thumb = pyio.BytesIO(), pyio.BytesIO()
    photo.save(plain, format="JPEG", quality=90)
    photo.save(with_thumb, format="JPEG", quality=90,
               exif=ex.tobytes() + bytes(8) + thumb.getvalue())  # a thumbnail's bytes inside APP1
    for data in (bytearray(plain.getvalue()), bytearray(with_thumb.getvalue())):
        assert data.count(b"\xff\xda") >= 1
        mid = (data.rfind(b"\xff\xda") + len(data)) // 2
        for hole in (slice(mid, mid + 2000), slice(mid, len(data))):
            damaged = bytearray(data)
            damaged[hole] = bytes(len(damaged[hole]))
            (tmp_path / "d.jpg").write_bytes(damaged)
            with pytest.raises(ValueError, match="damaged: .* bytes of zeros inside the JPEG image data"):
                cio.read_photo(tmp_path / "d.jpg")


@pytest.mark.parametrize("options", [dict(progressive=True), dict(optimize=True)])
def test_black_areas_coded_as_zero_bytes_are_not_damage(tmp_path, options):
    """With optimised tables or in a progressive file an all-black block codes as zero bits: a
    letterboxed or crushed-black photo holds long zero runs and was refused as damaged."""
    frame = np.zeros((1536, 2048, 3), np.uint8)
    frame[192:1344] = np.asarray(Image.open(SAMPLE_JPEG).resize((2048, 1152)))
    Image.fromarray(frame).save(tmp_path / "letterbox.jpg", quality=85, **options)
    assert b"\x00" * 64 in (tmp_path / "letterbox.jpg").read_bytes()
    assert cio.read_photo(tmp_path / "letterbox.jpg").pixels.shape == (1536, 2048, 3)
    # Bytes that look like a start of scan and zeros inside an APP segment are not image data.
    note = b"\xff\xda" + bytes(200)
    Image.open(SAMPLE_JPEG).save(tmp_path / "note.jpg", quality=90, exif=b"Exif\x00\x00" + note)
    cio.read_photo(tmp_path / "note.jpg")


def test_an_image_too_large_to_develop_is_refused_clearly(tmp_path):
    """A 20000×20000 PNG header raised Pillow's "could be decompression bomb DOS attack"."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(bytes(99)))
                                       + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match="larger than camseg develops .* megapixels at most.*downscale it"):
        cio.read_photo(tmp_path / "big.png")


def test_a_float_tiff_is_reported_as_a_tiff_camseg_cannot_decode(tmp_path):
    """It was reported as "not an image format camseg can decode (JPEG, PNG, TIFF)": a TIFF."""
    ok, data = cv2.imencode(".tiff", np.random.default_rng(0).random((8, 8, 3)).astype(np.float32))
    assert ok
    (tmp_path / "f.tif").write_bytes(data.tobytes())
    with pytest.raises(ValueError, match="a TIFF whose pixel layout camseg cannot decode \\(floating-point samples\\)"
                                         ".*8- or 16-bit unsigned integer TIFF"):
        cio.read_photo(tmp_path / "f.tif")  # (the layout's reason read 3 samples' offset as "914-bit")
    # A float TIFF Pillow opens (one 32-bit float channel) was "damaged or truncated (OpenCV
    # could not decode the 16-bit pixels)".
    Image.fromarray(np.random.default_rng(1).random((8, 8)).astype(np.float32), mode="F").save(tmp_path / "g.tif")
    with pytest.raises(ValueError, match="a TIFF whose pixel layout camseg cannot decode"):
        cio.read_photo(tmp_path / "g.tif")


def test_a_multi_page_tiff_says_which_page_was_read(tmp_path):
    pages = [Image.fromarray(np.full((8, 12, 3), v, np.uint8)) for v in (40, 200)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    photo = cio.read_photo(tmp_path / "m.tif")
    assert "a TIFF of 2 pages: the first one read" in photo.notes
    assert abs(float(cio.linear_to_srgb(photo.pixels).mean()) - 40 / 255) < 0.01


def test_bad_files_raise_clear_errors(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        cio.read_photo(tmp_path / "zero.jpg")
    Image.fromarray(_gradient(64, 64)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        cio.read_photo(tmp_path / "trunc.jpg")
    (tmp_path / "text.jpg").write_text("not a photo")
    with pytest.raises(ValueError, match="not an image"):
        cio.read_photo(tmp_path / "text.jpg")
    # A TIFF cut short where its writer put the directory last (Pillow, OpenCV): it was "a TIFF
    # whose pixel layout camseg cannot decode ... export it as an 8- or 16-bit integer TIFF".
    codes = _gradient(64, 64)
    Image.fromarray(codes).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    cv2.imwrite(str(tmp_path / "cv16.tif"), codes.astype(np.uint16) * 257)
    for name in ("lzw.tif", "cv16.tif"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: int(len(data) * 0.6)])
        with pytest.raises(ValueError, match=r"damaged or truncated \(its TIFF directory is missing or cut short\)"):
            cio.read_photo(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cio.read_photo(tmp_path / "missing.jpg")
    with pytest.raises(TypeError, match="path"):
        cio.read_photo(42)


def test_folder_or_pipe_is_not_called_missing(tmp_path):
    """A folder passed as a photo (``examples/develop_photo.py --input photos/``) was reported as a
    file that "does not exist"; so was a pipe."""
    (tmp_path / "photos.jpg").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder, not a photo file"):
        cio.read_photo(tmp_path / "photos.jpg")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        cio.read_image(tmp_path)
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ValueError, match="not a regular file"):
        cio.read_photo(tmp_path / "pipe.jpg")


def test_read_image_uses_read_photo(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "a.png", exif=_exif(8))
    photo = cio.read_photo(tmp_path / "a.png")
    np.testing.assert_array_equal(cio.read_image(tmp_path / "a.png"), photo.pixels)
    np.testing.assert_array_equal(cio.read_image(photo), photo.pixels)
    np.testing.assert_array_equal(cio.read_image(_gradient()), cio.as_linear_rgb(_gradient()))


# --- writing ------------------------------------------------------------------

def test_write_refuses_to_overwrite_the_input(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "a.jpg")
    before = (tmp_path / "a.jpg").read_bytes()
    photo = cio.read_photo(tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="refusing to overwrite the input"):
        cio.write_photo(tmp_path / "a.jpg", photo.pixels, like=photo)
    assert (tmp_path / "a.jpg").read_bytes() == before


def test_write_argument_errors(tmp_path):
    img = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="extension"):
        cio.write_photo(tmp_path / "a.gif", img)
    with pytest.raises(ValueError, match="8 bits"):
        cio.write_photo(tmp_path / "a.jpg", img, bit_depth=16)
    with pytest.raises(ValueError, match="NaN"):
        cio.write_photo(tmp_path / "a.png", np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(FileExistsError):
        cio.write_photo(tmp_path / "b.png", img)
        cio.write_photo(tmp_path / "b.png", img, overwrite=False)
    assert not list(tmp_path.glob(f"*{cio.TEMP_SUFFIX}"))


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.jpg"
    target.write_bytes(b"old")

    def broken(fh):
        fh.write(b"half a photo")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cio._atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.jpg"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_FSIZE (Linux)")
@pytest.mark.parametrize("ext", ["jpg", "png", "tif"])
def test_a_write_the_disk_cuts_short_fails_and_leaves_nothing(tmp_path, ext):
    """A real short write (the kernel's file-size limit, as a full disk does): the photo is
    reported as failed and no partial file takes its name. Pillow's JPEG encoder ignored the
    short write and a truncated JPEG was renamed into place as if whole."""
    target = tmp_path / f"out.{ext}"
    script = (
        "import resource, signal, sys, numpy as np\n"
        "from camseg import io as cio\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "img = np.random.default_rng(0).random((100, 100, 3), dtype=np.float32)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (10000, resource.RLIM_INFINITY))\n"
        "try:\n    cio.write_photo(sys.argv[1], img)\n"
        "except OSError as exc:\n    print('failed:', exc)\n"
        "else:\n    print('written')\n")
    done = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("failed:"), done.stdout  # the unlimited file is 12-30 kB: it cannot fit
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    """A temporary whose writer died is removed; one a live writer is still filling is kept."""
    target = tmp_path / "a.jpg"
    killed = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib; from camseg import io as cio\n"
         "def hang(fh):\n    fh.write(b'partial'); fh.flush(); print('writing', flush=True); time.sleep(60)\n"
         f"cio._atomic_write(pathlib.Path({str(target)!r}), hang)"],
        stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "writing"
    live_started = threading.Event()
    release = threading.Event()

    def slow(fh):
        fh.write(b"being written")
        live_started.set()
        release.wait(30)

    live = threading.Thread(target=cio._atomic_write, args=(tmp_path / "b.jpg", slow))
    live.start()
    assert live_started.wait(30)
    assert cio.remove_stale_temp_files(tmp_path) == 0  # both writers alive
    killed.kill()
    killed.wait()
    try:
        assert cio.remove_stale_temp_files(tmp_path) == 1  # only the killed writer's temporary
        assert not target.exists()
        assert len(list(tmp_path.glob(f".b.jpg.*{cio.TEMP_SUFFIX}"))) == 1
    finally:
        release.set()
        live.join()
    assert (tmp_path / "b.jpg").read_bytes() == b"being written"
    assert list(tmp_path.glob(f".*{cio.TEMP_SUFFIX}")) == []


def test_encoding_is_accurate_in_shadows_and_highlights():
    # Every 16-bit sRGB code survives decode -> encode (LUT inversion accuracy).
    codes = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1).repeat(3, axis=2)
    lin = cio._decode(codes, None, 16)
    back = cio._encode(lin, None, 16)
    assert np.abs(back.astype(int) - codes.astype(int)).max() <= 1
    codes8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    np.testing.assert_array_equal(cio._encode(cio._decode(codes8, None, 8), None, 8), codes8)


def test_encoding_equals_the_sqrt_table_lookup_and_the_jpeg_gets_those_codes(tmp_path):
    # The banded, buffered encoder must give exactly the codes of the plain formula
    # lut[int(sqrt(clip(x)) * (N - 1) + 0.5)], also just outside [0, 1] and in the RGBX layout
    # handed to Pillow (fourth channel = the maximum code).
    rng = np.random.default_rng(3)
    lin = np.concatenate([np.linspace(-0.01, 1.01, 3 * 40_000, dtype=np.float32),
                          rng.random(3 * 20_000, dtype=np.float32) ** 4]).reshape(-1, 100, 3)
    for bits in (8, 16):
        lut = cio._encode_lut(None, bits)
        index = (np.sqrt(np.clip(lin, 0.0, 1.0)) * np.float32(cio._ENCODE_LUT_SIZE - 1) + np.float32(0.5))
        np.testing.assert_array_equal(cio._encode(lin, None, bits), lut[index.astype(np.int32)])
    padded = cio._encode(lin, None, 8, padded=True)
    np.testing.assert_array_equal(padded[..., :3], cio._encode(lin, None, 8))
    assert (padded[..., 3] == 255).all()
    # The JPEG written from the RGBX buffer is byte for byte Pillow's JPEG of the RGB codes.
    image = rng.random((64, 48, 3), dtype=np.float32)
    path = cio.write_photo(tmp_path / "q.jpg", image, quality=90, subsampling="4:2:0")
    expected = pyio.BytesIO()
    Image.fromarray(cio._encode(image, None, 8), "RGB").save(expected, format="JPEG", quality=90, subsampling=2)
    assert path.read_bytes() == expected.getvalue()


def test_photo_save_and_with_pixels(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "a.png", icc_profile=P3)
    photo = cio.read_photo(tmp_path / "a.png")
    darker = photo.with_pixels(photo.pixels * 0.5)
    assert darker.icc_profile == P3 and photo.pixels.max() > darker.pixels.max()
    out = darker.save(tmp_path / "dark.tif", bit_depth=16)
    again = cio.read_photo(out)
    assert again.bit_depth == 16 and again.icc_profile == P3
    np.testing.assert_allclose(again.pixels, darker.pixels, atol=2e-4)


def test_exif_survives_tiff_to_jpeg(tmp_path):
    # A TIFF keeps EXIF in its own tag structure; it must come out in the JPEG's APP1.
    Image.fromarray(_gradient(10, 20)).save(tmp_path / "a.tif", exif=_exif(3))
    photo = cio.read_photo(tmp_path / "a.tif")
    assert photo.iso == 1600 and any("orientation 3" in n for n in photo.notes)
    out = cio.write_photo(tmp_path / "a.jpg", photo.pixels, like=photo)
    with Image.open(out) as im:
        ex = im.getexif()
        assert ex.get(0x010F) == "TestCam" and ex.get(0x0112, 1) == 1
        assert ex.get_ifd(0x8769).get(0x9003) == "2024:05:06 07:08:09"
        assert 0x0111 not in ex  # no stale StripOffsets from the TIFF


def test_exif_thumbnail_is_unlinked(tmp_path):
    # EXIF whose IFD0 links to an IFD1 (where cameras keep the thumbnail).
    ex = Image.Exif()
    ex[0x0112] = 6
    ex[0x010F] = "TestCam"
    raw = bytearray(ex.tobytes()[6:])  # bare TIFF structure
    bo = "<" if raw[:2] == b"II" else ">"
    ifd0 = struct.unpack_from(bo + "I", raw, 4)[0]
    n = struct.unpack_from(bo + "H", raw, ifd0)[0]
    link = ifd0 + 2 + 12 * n
    struct.pack_into(bo + "I", raw, link, len(raw))
    raw += struct.pack(bo + "HI", 0, 0)  # an empty IFD1
    Image.fromarray(_gradient(20, 30)).save(tmp_path / "t.jpg", exif=b"Exif\x00\x00" + bytes(raw))
    assert Image.open(tmp_path / "t.jpg").getexif().get(0x010F) == "TestCam"
    photo = cio.read_photo(tmp_path / "t.jpg")
    assert struct.unpack_from(bo + "I", raw, link)[0] != 0
    assert struct.unpack_from(bo + "I", photo.exif, link)[0] == 0
    parsed = Image.Exif()
    parsed.load(b"Exif\x00\x00" + photo.exif)
    assert parsed.get(0x0112) == 1 and parsed.get(0x010F) == "TestCam"


def test_a_photo_whose_name_is_not_utf8_is_written(tmp_path):
    """Cutting the temporary name encoded the photo's name as strict UTF-8: a name with a
    Latin-1 byte (old memory cards, archives) could no longer be written (review)."""
    name = os.fsdecode(b"caf\xe9.png")
    written = cio.write_photo(tmp_path / name, np.full((8, 8, 3), 0.5, np.float32))
    assert os.fsencode(written.name) == b"caf\xe9.png"


def test_a_profile_with_unusable_colorants_is_read_as_srgb():
    broken = bytearray(cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="P3"))
    tags = cio._icc_tags(bytes(broken))
    at = bytes(broken).find(tags["rXYZ"])
    broken[at + 8:at + 20] = bytes(12)  # red colorant zeroed
    pixels = np.full((2, 2, 3), 0.4, np.float32)
    assert cio.to_srgb_primaries(pixels, bytes(broken)) is pixels and cio.rgb_to_xyz_d65(bytes(broken)) is None


def test_a_png_gamma_without_a_profile_is_honoured(tmp_path):
    """A linear PNG (gAMA 1.0, no iCCP or sRGB chunk) was decoded as sRGB: far too bright."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    linear = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (8, 1))
    Image.fromarray(np.dstack([np.round(linear * 255).astype(np.uint8)] * 3)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    for gamma, expect in ((100000, linear), (45455, None)):  # 1.0; 1/2.2 reads as sRGB, as viewers do
        (tmp_path / "g.png").write_bytes(data[:33] + chunk(b"gAMA", struct.pack(">I", gamma)) + data[33:])
        photo = cio.read_photo(tmp_path / "g.png")
        if expect is None:
            assert photo.icc_profile is None and not photo.notes
            continue
        np.testing.assert_allclose(photo.pixels[..., 1], expect, atol=2.5e-3)
        back = cio.read_photo(photo.save(tmp_path / "out.png"))  # written with an equivalent profile
        np.testing.assert_allclose(back.pixels, photo.pixels, atol=1e-6)


@pytest.mark.parametrize("umask, expected", [(0o077, 0o600), (0o002, 0o664), (0o022, 0o644)])
def test_written_files_take_the_umasks_permissions(tmp_path, umask, expected):
    """Every output was 0644 whatever the umask: a private folder's photos readable to all,
    a shared folder's not writable by its group."""
    from camseg.io import _new_file_mode

    old = os.umask(umask)
    try:
        assert _new_file_mode() == 0o666 & ~umask
        path = cio.write_photo(tmp_path / "out.png", np.full((8, 8, 3), 0.5, np.float32))
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == expected


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "out.png"
    cio.write_photo(path, np.full((8, 8, 3), 0.5, np.float32))
    os.chmod(path, 0o640)
    cio.write_photo(path, np.full((8, 8, 3), 0.25, np.float32))
    assert os.stat(path).st_mode & 0o7777 == 0o640
    os.chmod(path, 0o4750)  # a set-user-id bit is not carried onto data (review)
    cio.write_photo(path, np.full((8, 8, 3), 0.5, np.float32))
    assert os.stat(path).st_mode & 0o7777 == 0o750


@pytest.mark.parametrize("source", ["jpg", "png", "tif"])
@pytest.mark.parametrize("target", ["jpg", "png", "tif"])
def test_print_resolution_is_kept_in_every_format(tmp_path, source, target):
    """A JPEG or PNG developed to TIFF lost its 300 dpi (TIFF kept only a TIFF source's)."""
    pixels = (np.random.default_rng(0).random((12, 16, 3)) * 255).astype(np.uint8)
    src = tmp_path / f"in.{source}"
    Image.fromarray(pixels).save(src, dpi=(300, 240))
    photo = cio.read_photo(src)
    assert photo.dpi == pytest.approx((300, 240), abs=0.5)
    out = cio.write_photo(tmp_path / f"out.{target}", photo.pixels, like=photo)
    with Image.open(out) as img:
        assert tuple(float(v) for v in img.info["dpi"]) == pytest.approx((300, 240), abs=0.5)


def test_a_tiff_without_resolution_tags_gets_none(tmp_path):
    """Pillow reports 1 dpi for a TIFF with no XResolution/YResolution, and every output claimed
    1 dpi (JFIF density 1 dpi, TIFF 1/1 inch, PNG pHYs 39 px/m)."""
    Image.fromarray(_gradient(12, 16)).save(tmp_path / "a.tif")  # Pillow writes no resolution tags
    photo = cio.read_photo(tmp_path / "a.tif")
    assert photo.dpi is None
    for name in ("a.tif", photo.save(tmp_path / "b.tif")):
        with Image.open(tmp_path / name) as im:
            assert 282 not in im.tag_v2 and 283 not in im.tag_v2
    with Image.open(photo.save(tmp_path / "b.jpg")) as im:
        assert im.info.get("jfif_unit") == 0 and "dpi" not in im.info  # an aspect ratio only
    assert b"pHYs" not in photo.save(tmp_path / "b.png").read_bytes()


def test_a_jpeg_compressed_tiffs_tables_are_not_copied(tmp_path):
    """A JPEG-compressed TIFF written to an (uncompressed) TIFF kept its JPEGTables tag (347):
    libtiff warned reading the output."""
    Image.fromarray(_gradient(16, 24)).save(tmp_path / "j.tif", compression="jpeg", dpi=(300, 300))
    assert 347 in Image.open(tmp_path / "j.tif").tag_v2
    photo = cio.read_photo(tmp_path / "j.tif")
    out = photo.save(tmp_path / "out.tif")
    with Image.open(out) as im:
        assert 347 not in im.tag_v2 and im.tag_v2[259] == 1
        assert im.info["dpi"] == pytest.approx((300, 300))  # (the photo's tags are still copied)
    np.testing.assert_allclose(cio.read_photo(out).pixels, photo.pixels, atol=1e-4)


def test_exif_pixel_size_follows_the_upright_output(tmp_path):
    """A photo stored sideways is written upright: its EXIF PixelX/YDimension kept the stored
    (turned) size."""
    pixels = (np.random.default_rng(0).random((20, 32, 3)) * 255).astype(np.uint8)  # stored 32 wide, 20 high
    exif = Image.Exif()
    exif[274] = 6  # shown turned a quarter: 20 wide, 32 high
    sub = exif.get_ifd(0x8769)
    sub[0xA002], sub[0xA003] = 32, 20
    sub[0x9003] = "2024:05:01 10:00:00"
    src = tmp_path / "sideways.jpg"
    Image.fromarray(pixels).save(src, exif=exif, quality=95)
    photo = cio.read_photo(src)
    assert photo.pixels.shape[:2] == (32, 20)
    for ext in ("jpg", "png", "tif"):
        out = cio.write_photo(tmp_path / f"out.{ext}", photo.pixels, like=photo)
        with Image.open(out) as img:
            written = img.getexif()
            sub = written.get_ifd(0x8769)
            assert (sub[0xA002], sub[0xA003]) == (20, 32), ext
            assert written.get(274, 1) == 1 and sub[0x9003] == "2024:05:01 10:00:00"


def _iptc_jpeg(path, pixels):
    """A JPEG with IPTC-IIM records (copyright notice 2:116, caption 2:120) in a Photoshop APP13
    segment and a COM comment, as Photo Mechanic writes them."""
    from camseg.io import _jpeg_with_segment, _photoshop_iptc_segment

    def dataset(number, text):
        return b"\x1c\x02" + bytes([number]) + len(text).to_bytes(2, "big") + text

    iptc = dataset(116, b"(c) Jane Doe 2024") + dataset(120, b"Harbour at dawn")
    buffer = pyio.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, comment=b"shot on film")
    path.write_bytes(_jpeg_with_segment(buffer.getvalue(), 0xED, _photoshop_iptc_segment(iptc), (0xE0, 0xE1)))
    return iptc


def test_iptc_and_comment_are_kept(tmp_path):
    """Copyright and caption (IPTC) and the JPEG comment were dropped without a word."""
    from PIL import IptcImagePlugin

    pixels = (np.random.default_rng(0).random((16, 24, 3)) * 255).astype(np.uint8)
    src = tmp_path / "in.jpg"
    iptc = _iptc_jpeg(src, pixels)
    photo = cio.read_photo(src)
    assert photo.iptc == iptc and photo.comment == "shot on film"
    for ext in ("jpg", "tif", "png"):
        out = cio.write_photo(tmp_path / f"out.{ext}", photo.pixels, like=photo)
        again = cio.read_photo(out)
        with Image.open(out) as img:
            info = IptcImagePlugin.getiptcinfo(img) or {}
        if ext == "png":  # no standard place for IPTC in a PNG; the comment goes in a tEXt chunk
            assert again.iptc is None and again.comment == "shot on film"
        else:
            assert again.iptc == iptc and info[(2, 116)] == b"(c) Jane Doe 2024", ext
            assert again.comment == ("shot on film" if ext == "jpg" else None)
        assert again.pixels.shape == photo.pixels.shape


def test_comments_keep_their_text_and_a_long_one_does_not_stop_a_jpeg(tmp_path):
    """(Review) A non-Latin-1 PNG comment came back as '?ód? ? ?? ©', and a PNG comment over a
    JPEG segment's 65,533 bytes made the JPEG fail to write."""
    from PIL import PngImagePlugin

    pixels = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    for text, as_jpeg in (("Łódź – 東京 ©", "Łódź – 東京 ©"), ("x" * 70_000, None)):
        info = PngImagePlugin.PngInfo()
        info.add_itxt("Comment", text)
        src = tmp_path / "in.png"
        Image.fromarray(pixels).save(src, pnginfo=info)
        photo = cio.read_photo(src)
        assert photo.comment == text
        assert cio.read_photo(cio.write_photo(tmp_path / "out.png", photo.pixels, like=photo)).comment == text
        assert cio.read_photo(cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)).comment == as_jpeg


def test_iptc_that_is_not_whole_records_is_left_out_with_a_note(tmp_path):
    from camseg.io import _iptc_is_whole, _jpeg_with_segment, _photoshop_iptc_segment

    record = b"\x1c\x02\x74" + (17).to_bytes(2, "big") + b"(c) Jane Doe 2024"
    assert _iptc_is_whole(record) and _iptc_is_whole(record + b"\x00\x00")
    assert not _iptc_is_whole(record[:-3]) and not _iptc_is_whole(b"") and not _iptc_is_whole(b"\x00" * 4)
    buffer = pyio.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="JPEG")
    src = tmp_path / "cut.jpg"
    src.write_bytes(_jpeg_with_segment(buffer.getvalue(), 0xED, _photoshop_iptc_segment(record[:-3]), (0xE0,)))
    photo = cio.read_photo(src)
    assert photo.iptc is None and any("IPTC" in n for n in photo.notes)


def test_iptc_stored_as_longs_in_a_tiff_is_read_whole(tmp_path):
    """(Review) Photoshop-style writers store the IPTC tag as LONGs; Pillow gives its first value
    only, so the copyright was left out."""
    from camseg.io import _tiff_bytes

    record = b"\x1c\x02\x74" + (17).to_bytes(2, "big") + b"(c) Jane Doe 2024"
    record += b"\x00" * (-len(record) % 4)
    data = bytearray(_tiff_bytes(np.zeros((4, 4, 3), np.uint8), None, None, iptc=record))
    # retype tag 33723 from UNDEFINED (7) to LONG (4): count / 4, the bytes unchanged
    from camseg.io import _exif_ifd0_entries

    for pos, tag, typ, count, _ in _exif_ifd0_entries(bytes(data)):
        if tag == 33723:
            struct.pack_into("<HI", data, pos + 2, 4, count // 4)
    path = tmp_path / "longs.tif"
    path.write_bytes(bytes(data))
    photo = cio.read_photo(path)
    assert photo.iptc == record and not any("IPTC" in n for n in photo.notes)


def test_encoding_kernel_equals_the_numpy_formula_on_odd_sizes_views_and_non_finite_values():
    # _encode_rows (one compiled pass) against the numpy steps it replaced: clip, sqrt, scale,
    # + 0.5, truncate, look up; a NaN takes entry 0 (np.take's clip of the x86 cast), ±inf clip.
    rng = np.random.default_rng(11)
    base = (rng.random((37, 53, 3), dtype=np.float32) * 1.2 - 0.1) ** 1
    base.flat[::7] = rng.random(base.size // 7 + 1, dtype=np.float32)[:base.flat[::7].size] ** 6
    base.flat[5::101], base.flat[7::103], base.flat[9::107] = np.nan, np.inf, -np.inf
    scale, half = np.float32(cio._ENCODE_LUT_SIZE - 1), np.float32(0.5)
    for lin in (base, base[1::2, ::3], base[:1, :1], np.ascontiguousarray(base[:, 2:])):
        ro = lin.copy()
        ro.flags.writeable = False
        for bits in (8, 16):
            lut = cio._encode_lut(None, bits)
            with np.errstate(invalid="ignore"):
                t = np.sqrt(np.clip(lin, 0.0, 1.0)) * scale + half
            index = np.where(np.isnan(t), 0, t).astype(np.int32)
            expected = lut[np.clip(index, 0, lut.size - 1)]
            np.testing.assert_array_equal(cio._encode(lin, None, bits), expected)
            np.testing.assert_array_equal(cio._encode(ro, None, bits), expected)
        padded = cio._encode(lin, None, 8, padded=True)
        assert padded.shape == lin.shape[:2] + (4,) and padded.flags.c_contiguous
        np.testing.assert_array_equal(padded[..., :3], cio._encode(lin, None, 8))
        assert (padded[..., 3] == 255).all()


def test_rgb_codes_equal_numpy_asarray_of_the_pillow_image():
    # _rgb_codes (one raw-encoder call into one buffer) against the public np.asarray(img).
    from PIL import Image

    rng = np.random.default_rng(12)
    for h, w in ((1, 1), (3, 5), (37, 53), (600, 601)):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        codes = cio._rgb_codes(img)
        expected = np.asarray(img)
        assert codes.dtype == np.uint8 and codes.shape == (h, w, 3) and not codes.flags.writeable
        np.testing.assert_array_equal(codes, expected)


@pytest.mark.parametrize("quality", [0, 101, 100.9, True, None, "95"])
def test_write_photo_refuses_a_quality_that_is_not_an_integer_in_range(tmp_path, quality):
    """int() let 100.9 and True through (as 100 and 1) and gave None a bare TypeError."""
    image = np.full((16, 16, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"quality must be a JPEG quality, an integer in 1\.\.100"):
        cio.write_photo(tmp_path / "out.jpg", image, quality=quality)
    assert not list(tmp_path.iterdir())
    cio.write_photo(tmp_path / "ok.jpg", image, quality=np.int64(90))  # (a numpy integer is one)


def test_a_write_that_cannot_start_names_the_file_asked_for():
    """The error named the temporary file ('.out.png.1234.xxxxxxxx.camseg-tmp'), not the photo's
    path. (/proc: a folder no one can create files in, root included.)"""
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    target = Path("/proc/out.png")
    with pytest.raises(OSError) as exc:
        cio.write_photo(target, np.full((8, 8, 3), 0.5, np.float32))
    assert exc.value.filename == str(target) and "camseg-tmp" not in str(exc.value), str(exc.value)
