"""The example scripts as a user runs them: bad arguments refused in one line, images written
whole and where they say, or a failure said."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
COCO = REPO.parent / "shared" / "data" / "coco_panoptic"
PERSON_BINARY = REPO.parent / "shared" / "data" / "person_binary" / "train"


def _run(script, *args, cwd):
    # From another folder, without PYTHONPATH: as a user runs `python examples/x.py`.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("script, args, message", [
    ("develop_photo.py", ["--input", "{tmp}/missing.jpg"], "does not exist"),
    ("develop_styles.py", ["--input", "{tmp}"], "is a folder"),
    ("mask_contact_sheet.py", ["--input", "{tmp}", "--out", "{tmp}/out"], "is a folder"),
    ("develop_photo.py", ["--style", "nope", "--out", "{tmp}/out"], "invalid choice: 'nope'"),
    ("develop_styles.py", ["--width", "0", "--out", "{tmp}/out"], "expected an integer above 0, got '0'"),
    ("mask_contact_sheet.py", ["--width", "1.5", "--out", "{tmp}/out"], "expected an integer above 0, got '1.5'"),
    ("denoise_sharpen.py", ["--iso", "-5", "--out", "{tmp}/out"], "expected a number above 0, got '-5'"),
    ("portrait_blur.py", ["--f-number", "0", "--out", "{tmp}/out"], "expected a number above 0, got '0'"),
    ("stage_light.py", ["--out", "{tmp}/a_file/out"], "cannot use"),
    ("photographic_styles.py", ["--out", "{tmp}/a_file"], "cannot use"),
    ("develop_photo.py", ["--input", "{tmp}/a_file", "--out", "{tmp}/out"], "not an image format camseg can decode"),
    ("develop_styles.py", ["--input", "{tmp}/empty.jpg", "--out", "{tmp}/out"], "the file is empty"),
    ("mask_contact_sheet.py", ["--input", "{tmp}/truncated.jpg", "--out", "{tmp}/out"], "damaged or truncated"),
])
def test_bad_arguments_are_refused_without_a_traceback(tmp_path, script, args, message):
    """A missing photo, a folder for a photo, an --out that cannot be a folder, a width or ISO
    of 0 ended in a traceback (a width of 0 in OpenCV's assertion; an ISO of -5 ran on with NaN
    noise and exit 0); so did a file that is not a photo (camseg's ValueError from reading it,
    after --out had been made)."""
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes((REPO / "camseg" / "samples" / "astronaut.jpg").read_bytes()[:5000])
    done = _run(script, *[a.format(tmp=tmp_path) for a in args], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script, data, image, message", [
    ("tone_map_people.py", COCO, "99999", "has no such photo as '99999'"),
    ("photographic_styles.py", COCO, "99999", "has no such photo as '99999'"),
    ("tone_map_people.py", COCO, "000000000009", "does not match its photo"),  # label of another photo
    ("portrait_blur.py", PERSON_BINARY, "99999", "has no such photo and mask as '99999'"),
    ("stage_light.py", PERSON_BINARY, "99999", "has no such photo and mask as '99999'"),
])
def test_unknown_photo_id_is_refused_like_other_bad_arguments(tmp_path, script, data, image, message):
    """An unknown --image id ended in StopIteration, then in SystemExit (exit 1) after --out had
    been made, while argparse refused every other bad argument with exit 2."""
    if not data.exists():
        pytest.skip(f"needs the shared data set {data}")
    done = _run(script, "--image", image, "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "error: argument --image: " in done.stderr and message in done.stderr
    assert not (tmp_path / "out").exists()


def test_image_is_written_whole_or_the_failure_said(tmp_path):
    """cv2.imwrite's False was not looked at: with the image's name taken by a folder the script
    printed that it had written it, and exited 0."""
    done = _run("portrait_blur.py", "--out", tmp_path / "ok", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["portrait_blur.png"]  # no temporary left
    (tmp_path / "taken" / "portrait_blur.png").mkdir(parents=True)
    done = _run("portrait_blur.py", "--out", tmp_path / "taken", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot write" in done.stderr and str(tmp_path / "taken" / "portrait_blur.png") in done.stderr
    assert "->" not in done.stdout
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["portrait_blur.png"]


def test_an_image_written_again_keeps_its_mode(tmp_path):
    """The examples' own temp-and-rename writer gave every image 0o666 less the umask (read by
    setting the process umask to 0 for a moment), so a replaced image lost its permissions;
    camseg.io's writer keeps the mode of the file it replaces."""
    out = tmp_path / "out"
    assert _run("portrait_blur.py", "--out", out, cwd=tmp_path).returncode == 0
    image = out / "portrait_blur.png"
    image.chmod(0o640)
    done = _run("portrait_blur.py", "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert image.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in out.iterdir()) == ["portrait_blur.png"]  # no temporary left


@pytest.mark.parametrize("script, sheet_name", [
    ("mask_contact_sheet.py", "mask_contact_sheet.png"),
    ("develop_photo.py", "develop_photo_comparison.png"),
    ("develop_styles.py", "develop_styles.png"),
])
def test_the_sheets_show_a_display_p3_photo_in_srgb(tmp_path, script, sheet_name):
    """The contact sheet (an untagged PNG, shown as sRGB) drew a Display P3 photo's own values,
    duller than the photo, and segmented them as if they were sRGB; the develop examples'
    sheets drew them so too."""
    from PIL import Image

    import camseg.io as cio

    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Display P3")
    codes = np.zeros((300, 400, 3), np.uint8)
    codes[:] = (200, 90, 60)  # a warm colour that P3 and sRGB encode differently
    Image.fromarray(codes).save(tmp_path / "p3.png", icc_profile=p3)
    done = _run(script, "--input", tmp_path / "p3.png", "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sheet = np.asarray(Image.open(tmp_path / "out" / sheet_name).convert("RGB"))
    shown = sheet[200, 160].astype(int)  # the first tile (the photo as read), below its caption
    photo = cio.read_photo(tmp_path / "p3.png")
    expected = np.round(cio.linear_to_srgb(cio.to_srgb_primaries(photo.pixels, photo.icc_profile))[0, 0] * 255)
    assert np.abs(shown - expected).max() <= 2, (shown, expected)
    assert np.abs(shown - codes[0, 0]).max() >= 10  # (the colour does differ between the two)


@pytest.mark.parametrize("script", ["portrait_blur.py", "stage_light.py"])
def test_the_portrait_examples_take_a_photo_of_ones_own_masked_by_camseg(tmp_path, script):
    """Without the shared data the portrait examples fell back to a GrabCut mask of the bundled
    photo (the rocket behind the astronaut in the subject), and took no photo of one's own."""
    sample = REPO / "camseg" / "samples" / "astronaut.jpg"
    done = _run(script, "--input", sample, "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "astronaut.jpg (camseg.segment)" in done.stdout
    assert len(list((tmp_path / "out").glob("*.png"))) == 1
    from PIL import Image

    Image.fromarray(np.full((64, 96, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    done = _run(script, "--input", tmp_path / "grey.png", "--out", tmp_path / "out2", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "finds nobody" in done.stderr and not (tmp_path / "out2").exists()


def test_the_gain_map_tells_a_lift_from_a_cut():
    """tone_map_people drew its gain map with OpenCV's cyclic TWILIGHT_SHIFTED: -2 EV and +2 EV
    came out the same dark purple, so the people lifted most looked like the parts held down most."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from tone_map_people import gain_colours
    finally:
        sys.path.remove(str(EXAMPLES))
    down, none, up, beyond = gain_colours(np.array([-2.0, 0.0, 2.0, 5.0])).astype(int)
    assert np.abs(down - up).max() >= 100 and np.abs(none - up).max() >= 100 and np.abs(none - down).max() >= 100
    assert down[2] > down[0] and up[0] > up[2] and none.min() >= 230  # blue, red, white
    assert (beyond == up).all()  # clipped, not wrapped round


def test_the_denoise_images_say_which_side_is_which(tmp_path):
    """denoise_sharpen's whole-photo image (noisy | result) had no labels, and neither its
    docstring nor its printed line named it: which half was the result had to be guessed."""
    from PIL import Image

    done = _run("denoise_sharpen.py", "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    fulls = sorted((tmp_path / "out").glob("denoise_*_full.png"))
    assert fulls and all(p.name in done.stdout for p in fulls)
    for path in fulls:
        full = np.asarray(Image.open(path).convert("L")).astype(int)
        for half in (full[:, :full.shape[1] // 2], full[:, full.shape[1] // 2:]):
            corner = half[4:30, 4:120]  # where the label is: white letters on a dark rim
            assert (corner >= 250).sum() > 50 and (corner <= 10).sum() > 50, path.name


def test_the_develop_comparison_of_a_large_photo_is_brought_down(tmp_path):
    """develop_photo's comparison put a photo and its result side by side at full size: a
    camera's 24 MP photo made a 12000-pixel-wide PNG whose labels vanished when it was seen whole."""
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(60, 200, (600, 900, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    done = _run("develop_photo.py", "--input", tmp_path / "big.png", "--width", 300, "--out", tmp_path / "out",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out" / "develop_photo_comparison.png").size == (600, 200)
    assert Image.open(tmp_path / "out" / "developed_big.jpg").size == (900, 600)  # the result keeps its size
