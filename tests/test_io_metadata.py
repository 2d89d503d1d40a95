"""camseg.io: files from phones and other tools whose metadata was lost or misreported (an
adversarial pass over the I/O module); real files written in tmp_path and decoded."""
import io as pyio

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
