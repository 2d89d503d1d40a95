"""camseg.io: files from phones and other tools whose metadata was lost or misreported (an
adversarial pass over the I/O module); real files written in tmp_path and decoded."""
import io as pyio
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from camseg import io as cio


def _picture(w=160, h=120):
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], 2).astype(np.uint8))


def test_a_phone_mpo_keeps_its_comment_and_subsampling(tmp_path):
    """Pillow opens a JPEG with a second image after it (gain map, depth, stereo) as MPO: it
    was not taken as a JPEG, and its comment and 4:4:4 subsampling were lost."""
    im = _picture()
    src = tmp_path / "phone.jpg"
    im.save(src, "MPO", save_all=True, append_images=[im.convert("L").convert("RGB")], quality=95, subsampling=0,
            comment=b"Shot on phone")
    assert Image.open(src).format == "MPO"
    photo = cio.read_photo(src)
    assert photo.format == "JPEG" and photo.comment == "Shot on phone" and photo.jpeg_subsampling == "4:4:4"
    out = cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)
    with Image.open(out) as written:
        assert written.info.get("comment") == b"Shot on phone"
        assert JpegImagePlugin.get_sampling(written) == 0


def test_data_after_the_jpeg_end_is_not_a_missing_end_marker(tmp_path):
    """A motion photo's video after the JPEG holds FFDA bytes: the file was said to miss its
    end marker (and decoded twice more to check)."""
    buf = pyio.BytesIO()
    _picture().save(buf, "JPEG")
    rng = np.random.default_rng(1)
    video = bytes(rng.integers(0, 256, 20000, dtype=np.uint8)).replace(b"\xff\xd9", b"\xff\x00")
    path = tmp_path / "motion.jpg"
    path.write_bytes(buf.getvalue() + b"\0\0\0\x18ftypmp42" + video + b"\xff\xda\x00\x10" + b"x" * 100)
    photo = cio.read_photo(path)
    assert not any("end marker" in n for n in photo.notes), photo.notes
    # A JPEG really missing its end marker is still found and read.
    cut = tmp_path / "no_eoi.jpg"
    cut.write_bytes(buf.getvalue()[:-2])
    assert any("end marker missing" in n for n in cio.read_photo(cut).notes)


def test_an_invalid_orientation_is_said_to_be_ignored(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 9
    path = tmp_path / "o9.jpg"
    _picture(64, 48).save(path, exif=exif)
    photo = cio.read_photo(path)
    assert photo.pixels.shape == (48, 64, 3)
    assert not any("applied" in n for n in photo.notes)
    assert any("orientation 9 is not one of 1-8" in n for n in photo.notes)


def _with_icc(tmp_path, name, icc):
    path = tmp_path / name
    _picture().save(path, "JPEG", quality=95, icc_profile=icc)
    return path


@pytest.mark.parametrize("damage", ["cut", "garbage", "tags", "gamma0"])
def test_a_damaged_icc_profile_is_dropped_with_a_note(tmp_path, damage):
    """A cut or garbled profile was reported as "not a matrix/TRC profile" (a garbled one with
    its junk colour-space bytes in the note) and copied into the output; a gamma-0 curve
    decoded every pixel to white."""
    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, trc=2.2, description="g")
    icc = {"cut": p3[:len(p3) // 2], "garbage": bytes(np.random.default_rng(0).integers(0, 256, 600, np.uint8)),
           "tags": p3[:128] + b"\x7f\xff\xff\xff" + p3[132:]}.get(damage)
    if damage == "gamma0":
        broken = bytearray(p3)
        broken[broken.find(b"curv") + 12:broken.find(b"curv") + 14] = b"\0\0"
        icc = bytes(broken)
    path = _with_icc(tmp_path, f"{damage}.jpg", icc)
    photo = cio.read_photo(path)
    assert photo.icc_profile is None and photo.colour_space == "sRGB"
    assert [n for n in photo.notes if "ICC profile is damaged" in n], photo.notes
    plain = cio.read_photo(_with_icc(tmp_path, "plain.jpg", None))
    np.testing.assert_array_equal(photo.pixels, plain.pixels)  # read as sRGB, as if untagged
    out = cio.write_photo(tmp_path / f"{damage}_out.jpg", photo.pixels, like=photo)
    with Image.open(out) as written:
        assert written.info.get("icc_profile") is None


def test_a_whole_profile_is_not_called_damaged(tmp_path):
    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Display P3")
    photo = cio.read_photo(_with_icc(tmp_path, "p3.jpg", p3 + b"\0" * 7))  # padding after its declared size
    assert photo.icc_profile is not None and photo.colour_space == "Display P3" and not photo.notes


def _grey_gamma_profile(gamma: float) -> bytes:
    """A minimal ICC v2 Gray profile (ICC.1:2001-04 §6.3.1.1): desc, wtpt, kTRC as one gamma."""
    import struct

    def s15(values):
        return b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    text = b"Gray Gamma test\0"
    tags = [(b"desc", b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(8 + 70)),
            (b"wtpt", b"XYZ \0\0\0\0" + s15((0.9642, 1.0, 0.8249))),
            (b"kTRC", b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0")]
    offset, table, body = 132 + 12 * len(tags), b"", b""
    for sig, data in tags:
        body += bytes(-(offset + len(body)) % 4)
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    header = struct.pack(">I4sI4s4s4s", 132 + len(table) + len(body), b"none", 0x02100000, b"mntr", b"GRAY", b"XYZ ")
    header = (header + bytes(12) + b"acsp").ljust(68, b"\0") + s15((0.9642, 1.0, 0.8249))
    return header.ljust(128, b"\0") + struct.pack(">I", len(tags)) + table + body


def test_a_grey_profile_curve_is_honoured_both_ways(tmp_path):
    """Gray Gamma 1.8 codes were decoded as sRGB (code 64 read 7 L* darker), and a style's tint
    then wrote those codes out as sRGB: the photo's midtones darkened."""
    icc = _grey_gamma_profile(1.8)
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "g.png", icc_profile=icc)  # PNG: exact codes
    photo = cio.read_photo(tmp_path / "g.png")
    assert photo.grayscale and photo.grey_profile == icc and not any("not used" in n for n in photo.notes)
    np.testing.assert_allclose(photo.pixels[0, :, 1], (ramp[0] / 255.0) ** 1.8, atol=2e-3)
    # Unchanged: the same codes, with the profile.
    with Image.open(cio.write_photo(tmp_path / "same.png", photo.pixels, like=photo)) as im:
        assert im.mode == "L" and im.info.get("icc_profile") == icc
        np.testing.assert_array_equal(np.asarray(im), ramp)
    # Tinted: RGB written as sRGB, whose luminance is the grey's own.
    tint = np.array([1.02, 1.0, 0.9], np.float32)
    with Image.open(cio.write_photo(tmp_path / "tint.png", photo.pixels * tint, like=photo)) as im:
        assert im.mode == "RGB" and not im.info.get("icc_profile")
        green = cio.srgb_to_linear(np.asarray(im)[0, :, 1] / np.float32(255.0))
    np.testing.assert_allclose(green, (ramp[0] / 255.0) ** 1.8, atol=4e-3)


def _xmp(attributes: bytes) -> bytes:
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            b'<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
            b'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            + attributes + b"/></rdf:RDF></x:xmpmeta>")


def test_xmp_pixel_size_follows_the_upright_pixels(tmp_path):
    """Turned upright, a photo's XMP still gave its stored 160×240 on a 240×160 output."""
    exif = Image.Exif()
    exif[0x0112] = 6
    xmp = _xmp(b'tiff:Orientation="6" tiff:ImageWidth="160" tiff:ImageLength="240" '
               b'exif:PixelXDimension="160" exif:PixelYDimension="240"')
    _picture(240, 160).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "r.jpg", exif=exif, xmp=xmp)
    photo = cio.read_photo(tmp_path / "r.jpg")
    with Image.open(cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)) as im:
        written = im.info["xmp"]
        assert im.size == (240, 160)
    for field, value in ((b"tiff:Orientation", b"1"), (b"tiff:ImageWidth", b"240"), (b"tiff:ImageLength", b"160"),
                         (b"exif:PixelXDimension", b"240"), (b"exif:PixelYDimension", b"160")):
        assert field + b'="' + value + b'"' in written, (field, written)


def test_extended_xmp_left_behind_is_said(tmp_path):
    import struct

    guid = b"0" * 32
    buf = pyio.BytesIO()
    _picture().save(buf, "JPEG", xmp=_xmp(b'xmpNote:HasExtendedXMP="' + guid + b'"'))
    history = _xmp(b'xmp:Label="' + b"x" * 70000 + b'"')
    segments = b""
    for at in range(0, len(history), 65000):
        payload = b"http://ns.adobe.com/xmp/extension/\0" + guid + struct.pack(">II", len(history), at) \
            + history[at:at + 65000]
        segments += b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    path = tmp_path / "ext.jpg"
    path.write_bytes(buf.getvalue()[:2] + segments + buf.getvalue()[2:])
    notes = cio.read_photo(path).notes
    assert any("Extended XMP (68 KB" in n for n in notes), notes
    assert not any("Extended XMP" in n for n in cio.read_photo(_with_icc(tmp_path, "plain.jpg", None)).notes)


def test_what_a_jpeg_cannot_hold_is_said_by_the_command(tmp_path, capsys):
    """An XMP over 64 KB (a PNG's) written to JPEG was dropped without a word."""
    from PIL import PngImagePlugin

    from camseg.cli import main

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(b'xmp:Rating="5" xmp:Label="' + b"y" * 80000 + b'"').decode())
    photos = tmp_path / "in"
    photos.mkdir()
    _picture(256, 192).save(photos / "big_xmp.png", pnginfo=info)
    assert cio.jpeg_leaves_out(cio.read_photo(photos / "big_xmp.png")) == [
        "its XMP (78 KB) left out: a JPEG segment holds 64 KB (--format png or tif keeps it)"]
    assert main(["develop", str(photos), "--out", str(tmp_path / "out"), "--format", "jpg", "--jobs", "1"]) == 0
    assert "its XMP (78 KB) left out" in capsys.readouterr().err


def test_a_16_bit_png_missing_only_its_end_chunk_is_read(tmp_path):
    """Pillow reads such a file at 8 bits; OpenCV's 16-bit decoder called it damaged."""
    import cv2

    codes = (np.asarray(_picture(64, 48)).astype(np.uint16) * 257)
    encoded = cv2.imencode(".png", codes[:, :, ::-1])[1].tobytes()
    assert encoded.endswith(b"IEND\xaeB`\x82")
    (tmp_path / "no_end.png").write_bytes(encoded[:-12])
    photo = cio.read_photo(tmp_path / "no_end.png")
    assert photo.bit_depth == 16 and any("PNG end chunk missing" in n for n in photo.notes)
    np.testing.assert_allclose(photo.pixels, cio.read_photo(_saved(tmp_path, "whole.png", encoded)).pixels)
    # Cut inside its image data: still reported as damaged.
    idat = encoded.find(b"IDAT")
    (tmp_path / "cut.png").write_bytes(encoded[:idat + 40])
    with pytest.raises(ValueError, match="damaged or truncated"):
        cio.read_photo(tmp_path / "cut.png")


def _saved(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def _png_with_chunks(tmp_path, name, picture, *chunks):
    import struct
    import zlib

    buf = pyio.BytesIO()
    picture.save(buf, "PNG")
    data = buf.getvalue()
    extra = b"".join(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
                     for kind, body in chunks)
    return _saved(tmp_path, name, data[:33] + extra + data[33:])  # after IHDR


def _read_and_written_back_as_display_p3(tmp_path, path, picture, chunk):
    """``path`` (a PNG of ``picture``'s 8-bit codes named Display P3 by its ``chunk``) is read
    in P3 primaries with the sRGB curve, with a note naming the chunk, and written back as the
    same codes with the equivalent ICC profile."""
    import colour

    photo = cio.read_photo(path)
    assert photo.icc_profile is not None and any(chunk in n for n in photo.notes), photo.notes
    p3 = colour.RGB_COLOURSPACES["Display P3"].matrix_RGB_to_XYZ
    np.testing.assert_allclose(cio.rgb_to_xyz_d65(photo.icc_profile), p3, atol=2e-3)
    np.testing.assert_allclose(photo.pixels, cio.srgb_to_linear(np.asarray(picture) / np.float32(255)), atol=1e-4)
    with Image.open(cio.write_photo(tmp_path / "out.png", photo.pixels, like=photo)) as im:
        assert im.info.get("icc_profile") == photo.icc_profile
        np.testing.assert_array_equal(np.asarray(im), np.asarray(picture))
    return photo


def _chrm(white, red, green, blue):
    import struct

    return b"cHRM", struct.pack(">8I", *(round(v * 100000) for xy in (white, red, green, blue) for v in xy))


def test_png_chromaticities_are_honoured(tmp_path):
    """cHRM with Display P3 primaries and no iCCP was read as sRGB, with no note, and written
    untagged: saturated colours dulled (ΔE2000 6.8 on red for a viewer that honours cHRM)."""
    import struct

    picture = _picture()
    path = _png_with_chunks(tmp_path, "p3.png", picture, (b"gAMA", struct.pack(">I", 45455)),
                            _chrm((0.3127, 0.3290), (0.680, 0.320), (0.265, 0.690), (0.150, 0.060)))
    # The codes decoded with the sRGB curve (gAMA 1/2.2 is taken as sRGB, as viewers do), in P3 primaries.
    _read_and_written_back_as_display_p3(tmp_path, path, picture, "cHRM")
    # sRGB's own chromaticities (as writers round them) change nothing.
    srgb = _png_with_chunks(tmp_path, "srgb.png", picture,
                            _chrm((0.3127, 0.329), (0.64, 0.33), (0.3, 0.6), (0.15, 0.06)))
    photo = cio.read_photo(srgb)
    assert photo.icc_profile is None and not photo.notes


def test_png_text_fields_are_kept(tmp_path):
    """Title, Author, Copyright, Description and Creation Time were dropped on every output."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    fields = [("Title", "Sunset"), ("Author", "Jane Doe"), ("Copyright", "© 2024 Jane Doe"),
              ("Description", "A sunset"), ("Creation Time", "2024-05-06T07:08:09")]
    for keyword, value in fields:
        info.add_itxt(keyword, value) if not value.isascii() else info.add_text(keyword, value)
    info.add_text("Comment", "hi")
    _picture(64, 48).save(tmp_path / "t.png", pnginfo=info)
    photo = cio.read_photo(tmp_path / "t.png")
    assert photo.text == tuple(fields) and photo.comment == "hi"
    with Image.open(cio.write_photo(tmp_path / "out.png", photo.pixels, like=photo)) as im:
        assert {k: im.text[k] for k, _ in fields} == dict(fields) and im.text["Comment"] == "hi"
    for ext in ("jpg", "tif"):  # no text fields there: EXIF's own, in a PNG without EXIF
        with Image.open(cio.write_photo(tmp_path / f"out.{ext}", photo.pixels, like=photo)) as im:
            exif = im.getexif()
            assert (exif.get(0x013B), exif.get(0x010E)) == ("Jane Doe", "A sunset")
            assert exif.get(0x8298).encode("latin-1").decode("utf-8") == "© 2024 Jane Doe"  # UTF-8 in ASCII


def test_png_text_fields_join_the_png_s_own_exif(tmp_path):
    """A PNG with an eXIf chunk and text fields lost the text fields in a JPEG or TIFF: only a
    PNG without EXIF had them written into one. They join its EXIF now, where it has no field
    of its own (the camera's Artist wins), and everything else in the EXIF is kept."""
    from PIL import PngImagePlugin

    for byte_order in ("<", ">"):
        exif = Image.Exif()
        exif._endian = byte_order  # (Pillow's writer follows it: both byte orders are tried)
        exif[0x010F] = "Cam"
        exif[0x013B] = "Camera Owner"
        exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
        info = PngImagePlugin.PngInfo()
        for keyword, value in (("Author", "Jane Doe"), ("Copyright", "© 2024 Jane Doe"), ("Title", "Sunset")):
            info.add_itxt(keyword, value) if not value.isascii() else info.add_text(keyword, value)
        _picture(64, 48).save(tmp_path / "t.png", pnginfo=info, exif=exif.tobytes())
        photo = cio.read_photo(tmp_path / "t.png")
        for ext in ("jpg", "tif"):
            with Image.open(cio.write_photo(tmp_path / f"out.{ext}", photo.pixels, like=photo)) as im:
                out = im.getexif()
                assert (out.get(0x010F), out.get(0x013B), out.get(0x010E)) == ("Cam", "Camera Owner", "Sunset")
                assert out.get(0x8298).encode("latin-1").decode("utf-8") == "© 2024 Jane Doe"
                assert out.get_ifd(0x8769).get(0x9003) == "2024:05:06 07:08:09"
                if ext == "jpg":  # IFD0 still in tag order (TIFF 6.0), as the JPEG holds it
                    tags = [tag for _, tag, _, _, _ in cio._exif_ifd0_entries(cio._normalise_exif(im.info["exif"]))]
                    assert tags == sorted(tags) and 0x013B in tags


def test_exif_in_an_imagemagick_png_text_chunk_is_kept(tmp_path):
    """ImageMagick keeps a PNG's EXIF as hex in a "Raw profile type exif" zTXt chunk: its
    orientation was applied (Pillow reads it), then the EXIF was dropped."""
    import binascii

    from PIL import PngImagePlugin

    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Cam"
    raw = exif.tobytes()
    raw = raw if raw.startswith(b"Exif\0\0") else b"Exif\0\0" + raw
    digits = binascii.hexlify(raw).decode()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", "\nexif\n" + f"{len(raw):8d}\n"
                  + "\n".join(digits[i:i + 72] for i in range(0, len(digits), 72)) + "\n", zip=True)
    _picture(120, 80).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "im.png", pnginfo=info)
    photo = cio.read_photo(tmp_path / "im.png")
    assert photo.pixels.shape == (80, 120, 3) and photo.exif is not None and photo.text == ()
    with Image.open(cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)) as im:
        assert im.getexif().get(0x010F) == "Cam" and im.getexif().get(0x0112, 1) == 1


def test_a_grey_profile_photo_with_transparency_is_flattened_onto_white_in_a_jpeg(tmp_path):
    """Re-encoded with the grey curve, the codes lost the flattening: transparent parts black."""
    la = np.zeros((8, 8, 2), np.uint8)
    la[:4, :, 1] = 255  # top half opaque black, bottom half transparent black
    Image.fromarray(la, "LA").save(tmp_path / "la.png", icc_profile=_grey_gamma_profile(2.2))
    photo = cio.read_photo(tmp_path / "la.png")
    with Image.open(cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)) as im:
        codes = np.asarray(im)
        assert im.mode == "L" and codes[6, 3] >= 250 and codes[1, 3] <= 5


def test_a_grey_result_the_profile_curve_would_tint_is_written_as_rgb(tmp_path):
    """Grey by the sRGB codes (within 2/255), not by the gamma-2.2 codes: write_photo failed
    with an AttributeError."""
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "g.png", icc_profile=_grey_gamma_profile(2.2))
    photo = cio.read_photo(tmp_path / "g.png")
    pixels = photo.pixels.copy()
    pixels[0, 0] = (0.0, 0.0006, 0.0)  # sRGB codes (0, 2, 0); gamma 2.2 codes (0, 8, 0)
    with Image.open(cio.write_photo(tmp_path / "out.png", pixels, like=photo)) as im:
        assert im.mode == "RGB" and not im.info.get("icc_profile")
        assert tuple(np.asarray(im)[0, 0]) == (0, 2, 0)


DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name, outcome", [
    ("fuzzed_missing_dimensions.tif", "damaged"),   # Pillow's TypeError escaped read_photo
    ("fuzzed_opencv_assertion.tif", "samples per pixel"),  # cv2.error escaped (planes 50949 samples wide)
    ("fuzzed_byte_resolution.tif", None),            # Pillow's TypeError re-writing its EXIF escaped
])
def test_fuzzed_tiffs_are_read_or_refused_clearly(name, outcome):
    """Three of 1500 byte mutations of a 16-bit TIFF (review of the TIFF reader) that escaped
    read_photo as raw TypeError and cv2.error."""
    if outcome is None:
        photo = cio.read_photo(DATA / name)
        assert photo.pixels.dtype == np.float32 and any("EXIF tags could not be carried" in n for n in photo.notes)
    else:
        with pytest.raises(ValueError, match=outcome):
            cio.read_photo(DATA / name)


def _tiff16(path, samples, planar, extra):
    import tifffile

    data = np.random.default_rng(0).integers(0, 65535, (samples, 64, 96) if planar else (64, 96, samples), np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="separate" if planar else "contig",
                     extrasamples=[extra] * (samples - 1), compression="zlib")
    return path


def test_a_16_bit_tiff_of_many_samples_is_refused_before_decoding(tmp_path):
    """Every plane can point at the same few KB: 1000 samples of a 1000×1000 file (14 KB) took
    3.9 GB and 22 s to read."""
    with pytest.raises(ValueError, match="200 samples per pixel"):
        cio.read_photo(_tiff16(tmp_path / "many.tif", 200, True, 0))
    photo = cio.read_photo(_tiff16(tmp_path / "four.tif", 5, True, 0))  # grey + 4 others: the grey plane read
    assert photo.pixels.shape == (64, 96, 3) and photo.alpha is None
    assert any("4 TIFF extra samples" in n for n in photo.notes)


def test_a_16_bit_tiff_too_wide_for_the_decoder_is_refused_clearly(tmp_path):
    """Grey + alpha 600000 px wide is read as one grey image 1.2 M samples wide: OpenCV's size
    assertion escaped as cv2.error."""
    import tifffile

    tifffile.imwrite(tmp_path / "wide.tif", np.zeros((2, 600000, 2), np.uint16), photometric="minisblack",
                     extrasamples=[2])
    with pytest.raises(ValueError, match="too wide or tall for the decoder"):
        cio.read_photo(tmp_path / "wide.tif")


def test_png_text_after_the_image_data_is_read_without_decoding_it(tmp_path, monkeypatch):
    """Text chunks may follow the image data; they were reached through Pillow's img.text, which
    decodes the whole image (a 12 MP 16-bit PNG read in 1.2 s instead of 0.6)."""
    import struct
    import zlib

    from PIL import PngImagePlugin

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    buf = pyio.BytesIO()
    _picture(64, 48).save(buf, "PNG")
    data = buf.getvalue()
    tail = (chunk(b"zTXt", b"Author\x00\x00" + zlib.compress(b"Jane Doe"))
            + chunk(b"iTXt", b"Title\x00\x01\x00en\x00Titel\x00" + zlib.compress("Sonnenuntergang ☀".encode())))
    path = _saved(tmp_path, "late.png", data[:-12] + tail + data[-12:])
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "text", property(lambda self: pytest.fail("img.text read")))
    photo = cio.read_photo(path)
    assert photo.text == (("Author", "Jane Doe"), ("Title", "Sonnenuntergang ☀"))


def test_data_after_a_png_end_is_not_read_through(tmp_path, monkeypatch):
    """With more than 64 bytes after IEND, every chunk was checked and the image data inflated
    to learn that the end chunk was there (150 ms more on a 12 MP PNG)."""
    buf = pyio.BytesIO()
    _picture(64, 48).save(buf, "PNG")
    path = _saved(tmp_path, "tail.png", buf.getvalue() + b"appended payload " * 10)
    monkeypatch.setattr(cio.zlib, "decompressobj", lambda *a: pytest.fail("the image data was inflated"))
    photo = cio.read_photo(path)
    assert photo.pixels.shape == (48, 64, 3) and not photo.notes


def test_a_grey_png_with_chromaticities_gets_no_contradicting_notes():
    """A grey PNG's cHRM became an RGB profile, then was refused as "an RGB ICC profile on a
    grey image": two notes saying opposite things."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = _png_with_chunks(Path(folder), "g.png", _picture().convert("L"),
                                _chrm((0.3127, 0.3290), (0.680, 0.320), (0.265, 0.690), (0.150, 0.060)))
        photo = cio.read_photo(path)
    assert photo.grayscale and photo.icc_profile is None and photo.notes == ("grayscale expanded to RGB",)


@pytest.mark.skipif(cio.fcntl is None, reason="POSIX file locks")
def test_a_temporary_swept_away_before_its_lock_is_replaced(tmp_path, monkeypatch):
    """Another batch's sweep of stale temporaries could delete one between its creation and its
    writer's lock: the write failed with FileNotFoundError (6 of 3000 against a sweeping process)."""
    real = cio.fcntl.flock
    swept = []

    def flock(fd, operation):
        if not swept and operation == cio.fcntl.LOCK_EX:
            for tmp in tmp_path.glob(f".*{cio.TEMP_SUFFIX}"):
                assert not cio._temp_file_in_use(tmp)  # as a sweeper sees it: no writer holds it yet
                tmp.unlink()
                swept.append(tmp)
        return real(fd, operation)

    monkeypatch.setattr(cio.fcntl, "flock", flock)
    cio._atomic_write(tmp_path / "f.bin", lambda fh: fh.write(b"whole"))
    assert swept and (tmp_path / "f.bin").read_bytes() == b"whole"
    assert not list(tmp_path.glob(f".*{cio.TEMP_SUFFIX}"))


@pytest.mark.parametrize("ext", ["gif", "webp", "png"])
def test_an_animation_says_only_its_first_frame_is_read(tmp_path, ext):
    frames = [_picture(32, 24), _picture(32, 24).transpose(Image.Transpose.FLIP_LEFT_RIGHT), _picture(32, 24)]
    frames[0].save(tmp_path / f"anim.{ext}", save_all=True, append_images=frames[1:])
    photo = cio.read_photo(tmp_path / f"anim.{ext}")
    assert any("an animation of 3 frames: the first one read" in n for n in photo.notes), photo.notes


def test_a_big_exif_and_comment_that_a_jpeg_cannot_hold_are_named(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Cam"
    exif.get_ifd(0x8769)[0x927C] = bytes(150000)  # a maker note over one JPEG segment
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("Comment", "c" * 70000)
    _picture().save(tmp_path / "big.png", exif=exif, pnginfo=info)
    left = cio.jpeg_leaves_out(cio.read_photo(tmp_path / "big.png"))
    assert any(n.startswith("its EXIF (146 KB) written without its values over 1 KB") for n in left), left
    assert any(n.startswith("its comment (68 KB) left out") for n in left), left


def test_a_grey_png_gamma_is_honoured(tmp_path):
    """gAMA 1.0 on a grey PNG became an RGB profile, set aside on a grey image: code 128 read as
    sRGB's 0.216 instead of 0.502."""
    import struct

    ramp = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1)))
    photo = cio.read_photo(_png_with_chunks(tmp_path, "g.png", ramp, (b"gAMA", struct.pack(">I", 100000))))
    np.testing.assert_allclose(photo.pixels[0, 32], 128 / 255, atol=1e-3)
    assert photo.grey_profile is not None and [n for n in photo.notes if "PNG gamma 1" in n]
    assert not any("not used" in n for n in photo.notes)
    with Image.open(cio.write_photo(tmp_path / "out.png", photo.pixels, like=photo)) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), np.asarray(ramp))
        assert cio._parse_icc(im.info["icc_profile"]).colour_space == "GRAY"


def test_an_8_bit_grey_tiff_with_premultiplied_alpha_keeps_it(tmp_path):
    """Pillow opens it as mode "La": converted to RGB, its transparency was dropped."""
    import tifffile

    grey = np.full((8, 8), 100, np.uint8)
    alpha = np.full((8, 8), 255, np.uint8)
    alpha[4:] = 128
    stored = np.dstack([np.where(alpha == 255, grey, (grey.astype(int) * 128 + 127) // 255), alpha]).astype(np.uint8)
    tifffile.imwrite(tmp_path / "la.tif", stored, photometric="minisblack", extrasamples=[1])  # 1: premultiplied
    photo = cio.read_photo(tmp_path / "la.tif")
    assert photo.alpha is not None and abs(float(photo.alpha[6, 0]) - 128 / 255) < 1e-3
    codes = np.rint(cio.linear_to_srgb(photo.pixels[:, :, 1]) * 255)
    assert np.abs(codes - 100).max() <= 1  # the colour divided back by the opacity


def test_a_cut_16_bit_png_is_reported_without_libpng_on_the_terminal(tmp_path):
    """libpng's own "libpng error: ..." line reached the terminal (stderr, fd 2) under OpenCV."""
    import subprocess
    import sys

    import cv2

    codes = (np.random.default_rng(0).random((48, 64, 3)) * 65535).astype(np.uint16)
    encoded = cv2.imencode(".png", codes)[1].tobytes()
    cut = _saved(tmp_path, "cut.png", encoded[:-20])  # the end chunk and the last bytes of the data
    script = ("import sys\nfrom camseg import io\ntry:\n    io.read_photo(sys.argv[1])\n"
              "except ValueError as e:\n    print('refused:', e)\n")
    run = subprocess.run([sys.executable, "-c", script, str(cut)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "refused:" in run.stdout and "damaged or truncated" in run.stdout, run.stdout + run.stderr
    assert "libpng" not in run.stderr, run.stderr


def test_a_16_bit_png_with_a_prefixed_exif_chunk_is_read_without_libpng_on_the_terminal(tmp_path):
    """A 16-bit PNG whose eXIf chunk starts with the JPEG "Exif" prefix (some writers copy it in;
    camseg reads it) is decoded by OpenCV, where libpng printed "libpng warning: eXIf: invalid"
    on the terminal (stderr, fd 2), through the progress bar. OpenCV now gets only the chunks
    that hold the pixels; the EXIF is still read and kept."""
    import subprocess
    import sys

    import cv2

    codes = (np.random.default_rng(0).random((20, 12, 3)) * 65535).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    assert exif.tobytes().startswith(b"Exif\0\0")  # (Pillow writes the prefix)
    png = cio._png_with_metadata(cv2.imencode(".png", codes)[1].tobytes(), None, exif.tobytes())
    path = _saved(tmp_path, "a.png", png)
    script = ("import sys\nfrom camseg import io\np = io.read_photo(sys.argv[1])\n"
              "print(p.bit_depth, p.pixels.shape, p.exif is not None)\n")
    run = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[0] == "16 (12, 20, 3) True", run.stdout  # orientation 6 applied
    assert "libpng" not in run.stderr, run.stderr
    # The pixels are those of the whole file.
    photo = cio.read_photo(path)
    np.testing.assert_array_equal(photo.pixels, cio.read_photo(_saved(tmp_path, "plain.png", cv2.imencode(
        ".png", np.rot90(codes, -1).copy())[1].tobytes())).pixels)


@pytest.mark.parametrize("bits", [8, 16])
def test_a_png_whose_exif_chunk_is_no_exif_is_read_without_it(tmp_path, bits):
    """An eXIf chunk that is no TIFF structure made Pillow raise "not a TIFF file" (SyntaxError),
    and the whole photo was refused as damaged or truncated, where its pixels were whole."""
    import cv2

    codes = (np.random.default_rng(0).random((20, 12, 3)) * 255).astype(np.uint8)
    codes = codes.astype(np.uint16) * 257 if bits == 16 else codes
    encoded = cv2.imencode(".png", codes)[1].tobytes()
    path = _saved(tmp_path, "bad_exif.png", cio._png_with_metadata(encoded, None, b"not an EXIF block"))
    photo = cio.read_photo(path)
    assert photo.exif is None and photo.bit_depth == bits
    assert any("EXIF block is damaged" in note for note in photo.notes), photo.notes
    np.testing.assert_array_equal(photo.pixels, cio.read_photo(_saved(tmp_path, "plain.png", encoded)).pixels)


def test_a_phones_ifd0_image_size_follows_the_upright_output(tmp_path):
    """Samsung phones also record the stored size as ImageWidth/ImageLength in a JPEG's IFD0: a
    sideways photo written upright kept the turned size there (JPEG and PNG outputs)."""
    exif = Image.Exif()
    exif[274], exif[256], exif[257] = 6, 160, 120  # stored 160 wide, 120 high; shown 120 × 160
    src = tmp_path / "phone.jpg"
    _picture().save(src, exif=exif, quality=95)
    photo = cio.read_photo(src)
    assert photo.pixels.shape[:2] == (160, 120)
    for ext in ("jpg", "png", "tif"):
        with Image.open(cio.write_photo(tmp_path / f"out.{ext}", photo.pixels, like=photo)) as img:
            written = img.getexif()
            assert img.size == (120, 160) and (written[256], written[257]) == (120, 160), ext
            assert written.get(274, 1) == 1


def test_a_pyramid_tiffs_sub_images_are_not_pointed_at_from_the_output(tmp_path):
    """A pyramid TIFF (reduced images in SubIFDs, tag 330: microscopy, vips, tifffile) kept tag 330
    in the EXIF carried over, its offsets into the source file pointing into the output's pixels."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency
    full = np.asarray(_picture(64, 48))
    src = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(src) as tif:
        tif.write(full, subifds=1, photometric="rgb")
        tif.write(full[::2, ::2], subfiletype=1, photometric="rgb")
    with tifffile.TiffFile(src) as tif:
        assert tif.pages[0].subifds
    photo = cio.read_photo(src)
    np.testing.assert_array_equal(np.rint(cio.linear_to_srgb(photo.pixels) * 255), full)
    for ext in ("tif", "jpg", "png"):
        out = cio.write_photo(tmp_path / f"out.{ext}", photo.pixels, like=photo)
        with Image.open(out) as img:
            assert 330 not in img.getexif(), ext
        if ext == "tif":
            with tifffile.TiffFile(out) as tif:
                assert not tif.pages[0].subifds


def test_a_print_resolution_a_jpeg_cannot_hold_is_left_out_not_wrapped(tmp_path):
    """JFIF keeps the density in 16 bits: a 70000 dpi TIFF (a microscope's 0.36 µm pixels) was
    written to JPEG as 4464 dpi (70000 modulo 65536), without a word."""
    src = tmp_path / "micro.tif"
    _picture().save(src, dpi=(70000, 70000))
    photo = cio.read_photo(src)
    assert round(photo.dpi[0]) == 70000
    out = cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)
    with Image.open(out) as img:
        assert img.info.get("jfif_unit") == 0  # (the TIFF's own XResolution, in its EXIF, still says 70000)
    assert cio.read_photo(out).dpi in (None, photo.dpi)
    assert any("70000 × 70000 dpi" in note for note in cio.jpeg_leaves_out(photo))
    assert round(cio.read_photo(cio.write_photo(tmp_path / "out.png", photo.pixels, like=photo)).dpi[0]) == 70000
    ordinary = photo.__class__(pixels=photo.pixels, dpi=(300.0, 300.0))
    with Image.open(cio.write_photo(tmp_path / "300.jpg", ordinary.pixels, like=ordinary)) as img:
        assert img.info["dpi"] == (300, 300)
    assert cio.jpeg_leaves_out(ordinary) == []


def test_an_image_too_wide_for_a_jpeg_is_refused_naming_the_fix(tmp_path):
    """libjpeg writes no side over 65,500 pixels: a wide panorama written as JPEG failed as
    "broken data stream when writing image file", libjpeg's own line on the terminal."""
    wide = np.full((4, 65501, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"at most 65500 pixels a side.*65501×4.*PNG or TIFF"):
        cio.write_photo(tmp_path / "pano.jpg", wide)
    assert not list(tmp_path.iterdir())
    assert cio.read_photo(cio.write_photo(tmp_path / "pano.png", wide)).shape == (4, 65501, 3)
    cio.write_photo(tmp_path / "edge.jpg", wide[:, :65500])  # the longest side libjpeg writes


def test_a_comment_goes_into_a_tiffs_image_description(tmp_path):
    """TIFF has no comment field: a JPEG's comment was lost in TIFF output. It goes into the
    ImageDescription, unless the EXIF names a description of its own (the camera's wins)."""
    src = tmp_path / "c.jpg"
    _picture().save(src, quality=95, comment="Harbour at dusk, Ålesund".encode("utf-8"))
    photo = cio.read_photo(src)
    out = cio.write_photo(tmp_path / "c.tif", photo.pixels, like=photo)
    with Image.open(out) as written:
        # (UTF-8 in EXIF's ASCII type, as cameras and exiftool write it; Pillow reads it as Latin-1)
        assert written.getexif().get(0x010E).encode("latin-1").decode("utf-8") == "Harbour at dusk, Ålesund"
    exif = Image.Exif()
    exif[0x010E] = "camera's own"
    own = tmp_path / "own.jpg"
    _picture().save(own, quality=95, comment=b"a comment", exif=exif.tobytes())
    photo = cio.read_photo(own)
    with Image.open(cio.write_photo(tmp_path / "own.tif", photo.pixels, like=photo)) as written:
        assert written.getexif().get(0x010E) == "camera's own"


def _camera_exif(colour_space, interop_index=None):
    """EXIF as a camera writes it: ColorSpace (0xA001) in the Exif IFD, InteroperabilityIndex in
    the Interoperability IFD under it."""
    exif = Image.Exif()
    exif[0x0110] = "Camera"
    ifd = exif.get_ifd(0x8769)
    ifd[0xA001] = colour_space
    if interop_index is not None:
        ifd[0xA005] = {0x0001: interop_index}
    return exif.tobytes()


def _xy_of_primaries(icc):
    """CIE xy of the red, green and blue primaries of a matrix profile, D65-adapted."""
    xyz = cio.rgb_to_xyz_d65(icc)
    return (xyz / xyz.sum(axis=0))[:2].T


def test_an_adobe_rgb_camera_jpeg_without_a_profile_is_read_as_adobe_rgb(tmp_path):
    """Cameras in Adobe RGB mode embed no ICC profile: the EXIF says ColorSpace "uncalibrated"
    and InteroperabilityIndex "R03" (DCF option file). It was read as sRGB: the green primary
    at sRGB's (0.30, 0.60) instead of (0.21, 0.71), every saturated colour duller, and the
    output written untagged."""
    codes = np.zeros((32, 48, 3), np.uint8)
    codes[:, :16, 1] = 200
    codes[:, 16:32] = (180, 90, 40)
    codes[:, 32:] = 128
    src = tmp_path / "_DSC0001.JPG"
    Image.fromarray(codes).save(src, "JPEG", exif=_camera_exif(0xFFFF, "R03"), quality=100, subsampling=0)
    photo = cio.read_photo(src)
    assert "Adobe RGB" in photo.colour_space
    assert any("Adobe RGB" in n and "R03" in n for n in photo.notes), photo.notes
    np.testing.assert_allclose(_xy_of_primaries(photo.icc_profile), cio.ADOBE_RGB_PRIMARIES, atol=2e-3)
    # Decoded with Adobe RGB's own curve, a 563/256 power (sRGB's curve gives 0.216 for 128).
    np.testing.assert_allclose(photo.pixels[5, 40], (128 / 255) ** (563 / 256), atol=2e-3)
    np.testing.assert_allclose(photo.pixels[5, 5, 1], (200 / 255) ** (563 / 256), atol=2e-3)
    # Written back with an equivalent profile and the same codes: a viewer shows what the camera took.
    out = cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo, quality=100)
    with Image.open(out) as written:
        icc = written.info.get("icc_profile")
        back = np.asarray(written.convert("RGB"))
    assert icc
    np.testing.assert_allclose(_xy_of_primaries(icc), cio.ADOBE_RGB_PRIMARIES, atol=2e-3)
    assert np.abs(back.astype(int) - codes).max() <= 2


def test_exif_colour_space_2_is_read_as_adobe_rgb(tmp_path):
    """ColorSpace 2 is not in the EXIF standard, but some cameras write it for Adobe RGB (ExifTool
    reads it so); it was read as sRGB without a word."""
    src = tmp_path / "cam2.jpg"
    _picture(48, 32).save(src, "JPEG", exif=_camera_exif(2))
    photo = cio.read_photo(src)
    assert "Adobe RGB" in photo.colour_space
    np.testing.assert_allclose(_xy_of_primaries(photo.icc_profile), cio.ADOBE_RGB_PRIMARIES, atol=2e-3)


@pytest.mark.parametrize("colour_space, interop_index, note", [
    (0xFFFF, "R98", "uncalibrated"),   # uncalibrated, not the Adobe RGB option: sRGB, said so
    (0xFFFF, None, "uncalibrated"),
    (1, "R03", None),                  # ColorSpace sRGB wins over a stray R03
])
def test_other_camera_colour_spaces_are_read_as_srgb(tmp_path, colour_space, interop_index, note):
    src = tmp_path / "cam.jpg"
    _picture(48, 32).save(src, "JPEG", exif=_camera_exif(colour_space, interop_index))
    photo = cio.read_photo(src)
    assert photo.icc_profile is None and photo.colour_space == "sRGB"
    said = [n for n in photo.notes if "colour space" in n]
    assert (note in said[0]) if note else not said, photo.notes


def test_an_embedded_profile_wins_over_the_exif_colour_space(tmp_path):
    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Display P3")
    src = tmp_path / "p3.jpg"
    _picture(48, 32).save(src, "JPEG", exif=_camera_exif(0xFFFF, "R03"), icc_profile=p3)
    photo = cio.read_photo(src)
    assert photo.icc_profile == p3 and photo.colour_space == "Display P3"
    assert not any("Adobe RGB" in n for n in photo.notes)


def test_a_cmyk_photos_metadata_describes_the_srgb_it_became(tmp_path):
    """A CMYK JPEG is converted to sRGB on reading, but its Photoshop XMP (ColorMode 4, ICCProfile
    "U.S. Web Coated (SWOP) v2") and EXIF ColorSpace ("uncalibrated") were written back as they
    were: the output called itself CMYK in Photoshop's file info, and read again it was
    "uncalibrated"."""
    xmp = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
           b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
           b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:ColorMode="4" '
           b'photoshop:ICCProfile="U.S. Web Coated (SWOP) v2" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
           b'exif:ColorSpace="65535"><photoshop:Headline>Print</photoshop:Headline>'
           b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
    src = tmp_path / "print.jpg"
    _picture().convert("CMYK").save(src, "JPEG", exif=_camera_exif(0xFFFF), xmp=xmp, quality=95)
    photo = cio.read_photo(src)
    assert any("CMYK converted" in n for n in photo.notes)
    # (The EXIF's "uncalibrated" said nothing of the sRGB it became: "read as sRGB" was noted beside
    # "CMYK converted", and with R03 "decoded as Adobe RGB, written back with a profile".)
    assert not any("colour space" in n for n in photo.notes), photo.notes
    assert b'photoshop:ColorMode="3"' in photo.xmp and b"SWOP" not in photo.xmp
    assert b'exif:ColorSpace="1"' in photo.xmp
    assert b'photoshop:ICCProfile="sRGB IEC61966-2.1"' in photo.xmp and b"Print</photoshop:Headline>" in photo.xmp
    out = cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)
    with Image.open(out) as written:
        assert written.getexif().get_ifd(0x8769).get(0xA001) == 1
        assert written.getexif().get(0x0110) == "Camera"
    again = cio.read_photo(out)
    assert not any("colour space" in n for n in again.notes), again.notes


def test_element_form_photoshop_colour_mode_is_rewritten_too():
    xmp = (b"<photoshop:ColorMode> 4 </photoshop:ColorMode>"
           b"<photoshop:ICCProfile>Coated FOGRA39 (ISO 12647-2:2004)</photoshop:ICCProfile>"
           b"<exif:ColorSpace>65535</exif:ColorSpace>")
    assert cio._xmp_as_srgb(xmp) == (b"<photoshop:ColorMode> 3 </photoshop:ColorMode>"
                                     b"<photoshop:ICCProfile>sRGB IEC61966-2.1</photoshop:ICCProfile>"
                                     b"<exif:ColorSpace>1</exif:ColorSpace>")
    # A profile name holding the other quote character is replaced whole.
    assert cio._xmp_as_srgb(b'photoshop:ICCProfile="John\'s FOGRA39" x="1"') == \
        b'photoshop:ICCProfile="sRGB IEC61966-2.1" x="1"'
    assert cio._xmp_as_srgb(b"photoshop:ICCProfile='Say \"SWOP\"'") == b'photoshop:ICCProfile="sRGB IEC61966-2.1"'


def test_a_grey_photo_written_as_colour_no_longer_says_grayscale_in_its_xmp(tmp_path):
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:ColorMode="1" '
           b'photoshop:ICCProfile="Dot Gain 20%"/></rdf:RDF></x:xmpmeta>')
    src = tmp_path / "grey.jpg"
    _picture().convert("L").save(src, "JPEG", xmp=xmp)
    photo = cio.read_photo(src)
    assert photo.grayscale
    tinted = photo.pixels * np.array([1.0, 0.9, 0.7], np.float32)  # a warm tint: no longer grey
    for name, pixels, mode in (("tinted.jpg", tinted, b'"3"'), ("grey.jpg", photo.pixels, b'"1"')):
        out = cio.write_photo(tmp_path / "out" / name, pixels, like=photo)
        with Image.open(out) as written:
            assert written.mode == ("RGB" if mode == b'"3"' else "L")
            assert b"photoshop:ColorMode=" + mode in written.info["xmp"]


def test_a_damaged_profile_gives_way_to_the_exifs_adobe_rgb(tmp_path):
    """A camera's Adobe RGB JPEG whose embedded profile was damaged on the way was read as sRGB,
    though its EXIF (uncalibrated + R03) still says Adobe RGB."""
    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="cut")
    src = tmp_path / "_DSC0002.JPG"
    _picture(48, 32).save(src, "JPEG", exif=_camera_exif(0xFFFF, "R03"), icc_profile=p3[:len(p3) // 2])
    photo = cio.read_photo(src)
    assert "Adobe RGB" in photo.colour_space
    assert any("ICC profile is damaged" in n and "Adobe RGB" in n for n in photo.notes), photo.notes
    np.testing.assert_allclose(_xy_of_primaries(photo.icc_profile), cio.ADOBE_RGB_PRIMARIES, atol=2e-3)
    # Without the EXIF's word, a damaged profile still means sRGB.
    plain = tmp_path / "plain.jpg"
    _picture(48, 32).save(plain, "JPEG", icc_profile=p3[:len(p3) // 2])
    assert cio.read_photo(plain).colour_space == "sRGB"


@pytest.mark.parametrize("kind", ["motion photo", "micro video", "ultra hdr"])
def test_a_written_photo_no_longer_says_a_video_or_gain_map_follows_its_image(tmp_path, kind):
    """A phone's motion photo (or Ultra HDR photo) says in its XMP that a video (gain map) of N
    bytes follows the JPEG image; the output, which holds the image alone, said so too, and a
    reader took its last N bytes of JPEG data for the video."""
    items = ('<Container:Directory><rdf:Seq><rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" '
             'Item:Semantic="Primary" Item:Length="0"/></rdf:li><rdf:li rdf:parseType="Resource"><Container:Item '
             'Item:Mime="video/mp4" Item:Semantic="MotionPhoto" Item:Length="220"/></rdf:li></rdf:Seq>'
             '</Container:Directory>')
    flags = {"motion photo": 'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1"',
             "micro video": 'GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1" GCamera:MicroVideoOffset="220"',
             "ultra hdr": 'hdrgm:Version="1.0"'}[kind]
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
           'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
           'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" '
           f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4" {flags}>'
           f'{items if kind != "micro video" else ""}</rdf:Description></rdf:RDF></x:xmpmeta>').encode()
    buf = pyio.BytesIO()
    _picture(48, 32).save(buf, "JPEG", xmp=xmp)
    src = tmp_path / "PXL_0001.MP.jpg"
    src.write_bytes(buf.getvalue() + b"\0\0\0\x18ftypmp42" + bytes(208))
    photo = cio.read_photo(src)
    assert any("motion photo video or HDR gain map" in n for n in photo.notes), photo.notes
    out = cio.write_photo(tmp_path / "out.jpg", photo.pixels, like=photo)
    with Image.open(out) as written:
        kept = written.info["xmp"]
    for claim in (b'GCamera:MotionPhoto="1"', b'GCamera:MicroVideo="1"', b"hdrgm:Version", b"Container:Directory",
                  b"video/mp4"):
        assert claim not in kept, claim
    assert b'xmp:Rating="4"' in kept  # the rest of the packet stays
    # An ordinary photo's XMP is left as it was, without a note.
    plain = tmp_path / "plain.jpg"
    _picture(48, 32).save(plain, "JPEG", xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>')
    assert cio.read_photo(plain).notes == ()


@pytest.mark.parametrize("tag", [0x8832, 0x8833, 0x8831])
def test_an_iso_over_65535_is_read_from_where_exif_puts_it(tmp_path, tag):
    """EXIF 2.3 records a sensitivity of 65535 or more as 65535 in PhotographicSensitivity and
    the value itself in RecommendedExposureIndex, ISOSpeed or StandardOutputSensitivity: a
    photo at ISO 204800 was read as ISO 65535 (and denoised as such)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x8827: 65535, 0x8830: 2, tag: 204800})
    path = tmp_path / "night.jpg"
    _picture(32, 24).save(path, exif=exif)
    assert cio.read_photo(path).iso == 204800
    # 65535 itself, with nothing higher beside it, stays 65535.
    exif.get_ifd(0x8769).pop(tag)
    _picture(32, 24).save(path, exif=exif)
    assert cio.read_photo(path).iso == 65535


def test_a_png_s_cicp_colour_space_is_honoured(tmp_path):
    """A PNG whose colour space is said by a cICP chunk alone (PNG 3rd ed.: Display P3, primaries
    12 with the sRGB curve, 13) was read as sRGB, with no note, and written untagged: dull reds."""

    picture = _picture()
    path = _png_with_chunks(tmp_path, "p3.png", picture, (b"cICP", bytes([12, 13, 0, 1])),
                            (b"sRGB", b"\x00"))  # (cICP takes precedence over an sRGB chunk)
    _read_and_written_back_as_display_p3(tmp_path, path, picture, "cICP")
    # sRGB's own code points change nothing; an HDR one (BT.2020, PQ) is read as sRGB, saying so.
    photo = cio.read_photo(_png_with_chunks(tmp_path, "srgb.png", picture, (b"cICP", bytes([1, 13, 0, 1]))))
    assert photo.icc_profile is None and not photo.notes
    photo = cio.read_photo(_png_with_chunks(tmp_path, "pq.png", picture, (b"cICP", bytes([9, 16, 0, 1]))))
    assert photo.icc_profile is None and any("cICP 9/16/0/1" in n for n in photo.notes), photo.notes
