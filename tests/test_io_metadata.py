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
