"""The camseg command line: exit statuses, messages, and real runs."""
import hashlib
import os
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from camseg import io as cio
from camseg.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "camseg" / "samples" / "astronaut.jpg"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "develop" in capsys.readouterr().err


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["develop", "--help"])
    assert exc.value.code == 0
    assert "--portrait" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "camseg" in capsys.readouterr().out


def test_list_styles(capsys):
    from camseg.pipeline import available_portrait_effects, available_styles

    assert main(["develop", "--list", SAMPLE.as_posix(), "--out", "unused"]) == 0
    assert "styles:" in capsys.readouterr().out
    assert main(["develop", "--list"]) == 0  # asked for photos and --out first
    listed = capsys.readouterr().out
    # The help listed three of the six portrait effects: it now takes them from the pipeline.
    with pytest.raises(SystemExit):
        main(["develop", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    for name in available_portrait_effects() + available_styles():
        assert name in listed and name in helptext


def test_saved_settings_are_checked_before_they_are_written(tmp_path, capsys):
    """A mistyped --style was saved over a good look file, then the run refused it."""
    look = tmp_path / "look.json"
    look.write_text('{"style": "warm"}')
    code = main(["develop", str(SAMPLE), "--out", str(tmp_path / "out"), "--settings", str(look),
                 "--style", "vibrnat", "--save-settings", str(look)])
    assert code == 2 and "not a Photographic Style" in capsys.readouterr().err
    assert look.read_text() == '{"style": "warm"}'


def test_a_portrait_effect_on_the_command_line_replaces_a_saved_one(tmp_path, capsys):
    """A saved blur's f_number made --portrait stage_light fail on an unknown field."""
    from camseg.pipeline import DevelopSettings

    look = tmp_path / "blur.json"
    assert main(["develop", str(SAMPLE), "--out", str(tmp_path / "a"), "--portrait", "Blur", "--f-number", "2.8",
                 "--save-settings", str(look), "-q", "--no-progress"]) == 0
    assert DevelopSettings.from_json(look.read_text()).params == {"portrait": {"f_number": 2.8}}
    again = tmp_path / "stage.json"
    assert main(["develop", str(SAMPLE), "--out", str(tmp_path / "b"), "--settings", str(look), "--portrait",
                 "stage_light", "--save-settings", str(again), "-q", "--no-progress"]) == 0
    saved = DevelopSettings.from_json(again.read_text())
    assert saved.portrait == "stage_light" and "portrait" not in saved.params
    assert DevelopSettings.from_json(again.read_text()) == saved


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["develop", str(SAMPLE), "--out", str(tmp_path), "--portrait", "fisheye"]) == 2
    assert "not a portrait effect" in capsys.readouterr().err
    assert main(["develop", str(SAMPLE), "--out", str(tmp_path), "--f-number", "2"]) == 2
    assert "--portrait blur" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["develop", str(SAMPLE), "--out", str(tmp_path), "--settings", str(tmp_path / "bad.json")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["develop", str(SAMPLE), "--out", str(tmp_path), "--jobs", "0"])
    assert exc.value.code == 2


def test_settings_file_and_save(tmp_path, capsys):
    (tmp_path / "s.json").write_text(json.dumps({"style": "warm", "denoise": False}))
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "zero.jpg").write_bytes(b"")
    rc = main(["develop", str(inp), "--out", str(tmp_path / "out"), "--settings", str(tmp_path / "s.json"),
               "--style-strength", "0.5", "--save-settings", str(tmp_path / "eff.json"), "--no-progress"])
    assert rc == 1  # the zero-byte file failed
    saved = json.loads((tmp_path / "eff.json").read_text())
    assert saved["style"] == "warm" and saved["denoise"] is False and saved["style_strength"] == 0.5


def test_bad_files_exit_1_and_are_named(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "zero.jpg").write_bytes(b"")
    (inp / "trunc.jpg").write_bytes(SAMPLE.read_bytes()[:2000])
    rc = main(["develop", str(inp), "--out", str(tmp_path / "out"), "--jobs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "FAILED" in err and "zero.jpg" in err and "trunc.jpg" in err and "2 failed" in err


def test_out_folder_equal_to_input_folder_never_overwrites(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    Image.open(SAMPLE).resize((64, 64)).save(inp / "a.jpg")
    before = (inp / "a.jpg").read_bytes()
    assert main(["develop", str(inp / "a.jpg"), "--out", str(inp), "--no-progress"]) == 1
    assert "overwrite an input" in capsys.readouterr().err
    assert (inp / "a.jpg").read_bytes() == before


# --- real runs -------------------------------------------------------------------------------

def _edge_case_library(folder):
    """One photo of each kind a real library holds, plus two broken files."""
    folder.mkdir()
    base = np.asarray(Image.open(SAMPLE).resize((160, 120)))
    Image.fromarray(base).save(folder / "plain.jpg", quality=92)
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(base).save(folder / "rotated.jpg", exif=ex.tobytes())
    Image.fromarray(base).save(folder / "p3.jpg", icc_profile=cio.make_icc_profile(
        cio.DISPLAY_P3_PRIMARIES, description="Display P3"))
    Image.fromarray(base[:, :, 1]).save(folder / "gray.jpg")
    Image.fromarray(base).convert("CMYK").save(folder / "cmyk.jpg")
    cv2.imwrite(str(folder / "deep.png"), (base[:, :, ::-1].astype(np.uint16) * 257))
    cv2.imwrite(str(folder / "deep.tif"), (base[:, :, ::-1].astype(np.uint16) * 257))
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes((folder / "plain.jpg").read_bytes()[:1500])


def test_develop_edge_case_library(tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out"
    _edge_case_library(inp)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in inp.iterdir()}
    # One worker (--jobs 1) to keep the test light; two are covered in test_batch.py.
    args = ["develop", str(inp), "--out", str(out), "--jobs", "1", "--no-progress", "--style", "vibrant",
            "--portrait", "blur"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "zero.jpg" in err and "truncated.jpg" in err and "2 failed" in err and "7 done" in err
    assert "CMYK" in err and "orientation 6" in err  # conversions are reported, not silent
    with Image.open(out / "rotated.jpg") as im:
        assert im.size == (120, 160) and im.getexif().get(0x0112, 1) == 1
    with Image.open(out / "p3.jpg") as im:
        assert b"Display P3" in im.info["icc_profile"].replace(b"\x00", b"")
    assert cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cio.read_photo(out / "deep.tif").bit_depth == 16
    for name, mode in (("plain.jpg", "RGB"), ("gray.jpg", "L"), ("cmyk.jpg", "RGB")):
        with Image.open(out / name) as im:
            im.load()
            assert im.mode == mode, name  # a black-and-white photo the vibrant style left grey stays grey
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in inp.iterdir()}
    assert after == before
    assert main(args) == 1
    assert "7 already finished" in capsys.readouterr().err


def test_a_truncated_16_bit_tiff_is_reported_without_opencvs_log_lines(tmp_path):
    """OpenCV's decoder printed libtiff's errors ("[ERROR:0@0.514] ... TIFFReadEncodedStrip")
    on stderr, even with --quiet, beside camseg's own report of the truncated file."""
    import subprocess
    import sys

    codes = (np.asarray(Image.open(SAMPLE).convert("L").resize((320, 240))).astype(np.uint16) * 257)
    Image.fromarray(codes).save(tmp_path / "grey16.tif")  # its directory comes first: Pillow reads it
    data = (tmp_path / "grey16.tif").read_bytes()
    (tmp_path / "grey16.tif").write_bytes(data[: int(len(data) * 0.6)])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    run = subprocess.run([sys.executable, "-m", "camseg.cli", "develop", str(tmp_path / "grey16.tif"), "--out",
                          str(tmp_path / "out"), "--quiet", "--no-progress"], env=env, capture_output=True, text=True)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2 and "damaged or truncated" in lines[0] and "1 failed" in lines[1], run.stderr


def test_a_first_run_says_it_compiles_the_image_kernels_and_the_next_does_not(tmp_path):
    """On a new installation the first run compiles the Numba kernels (15-25 s for develop):
    the command says so instead of sitting at 0 %, once; with the cache warm it says nothing.
    (An empty NUMBA_CACHE_DIR stands in for the new installation; segment compiles the fewest
    kernels.)"""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(REPO), NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    said = []
    for run in range(2):
        done = subprocess.run([sys.executable, "-m", "camseg.cli", "segment", str(SAMPLE), "--out",
                               str(tmp_path / f"masks{run}"), "--jobs", "1", "--no-progress"],
                              env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        said.append("compiling the image kernels" in done.stderr)
    assert said == [True, False]


def test_segment_command(tmp_path):
    rc = main(["segment", str(SAMPLE), "--out", str(tmp_path / "masks"), "--jobs", "1", "--no-progress"])
    assert rc == 0
    folder = tmp_path / "masks" / "astronaut"
    names = {p.name for p in folder.iterdir()}
    assert {"sky.png", "skin.png", "hair.png", "person.png", "overlay.jpg"} <= names
    person = np.asarray(Image.open(folder / "person.png"))
    assert person.shape == (512, 512) and person.dtype == np.uint8
    with Image.open(folder / "overlay.jpg") as im:
        assert im.size == (512, 512)


def test_saved_settings_go_through_a_link_and_to_a_device(tmp_path, capfd):
    """(Review) The atomic write replaced a link to the user's look file with a plain file, and
    --save-settings /dev/stdout with a file (or nothing, for a normal user)."""
    real = tmp_path / "dotfiles" / "look.json"
    real.parent.mkdir()
    real.write_text('{"style": "warm"}')
    link = tmp_path / "look.json"
    link.symlink_to(real)
    args = ["develop", str(SAMPLE), "--out", str(tmp_path / "out"), "--style", "cool", "-q", "--no-progress"]
    assert main(args + ["--save-settings", str(link)]) == 0
    assert link.is_symlink() and json.loads(real.read_text())["style"] == "cool"
    capfd.readouterr()
    assert main(args + ["--save-settings", "/dev/stdout"]) == 0
    assert json.loads(capfd.readouterr().out)["style"] == "cool"


def test_f_number_with_a_new_portrait_effect_over_saved_settings(tmp_path, capsys):
    """(Review) --f-number kept the old effect's options: a saved stage light's key_light_ev made
    `--portrait blur --f-number 2` fail."""
    from camseg.pipeline import DevelopSettings

    look = tmp_path / "stage.json"
    look.write_text(DevelopSettings(portrait="stage_light", params={"portrait": {"key_light_ev": 0.5}}).to_json())
    saved = tmp_path / "blur.json"
    assert main(["develop", str(SAMPLE), "--out", str(tmp_path / "out"), "--settings", str(look), "--portrait",
                 "blur", "--f-number", "2", "--save-settings", str(saved), "-q", "--no-progress"]) == 0
    assert DevelopSettings.from_json(saved.read_text()).params == {"portrait": {"f_number": 2.0}}


def test_version_and_usage_errors_do_not_import_the_pipeline():
    """(Review) Listing the styles in the help imported the pipeline (~0.3 s) for --version too."""
    import subprocess
    import sys

    code = ("import sys\nfrom camseg.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print('camseg.pipeline' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr


def test_python_dash_m_camseg_runs_the_command_with_workers(tmp_path):
    """``python -m camseg``, for a venv whose scripts folder is not on PATH; its worker processes
    import the main module again, which must not start a second command."""
    import subprocess
    import sys

    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(SAMPLE.read_bytes())
    run = subprocess.run([sys.executable, "-m", "camseg", "segment", str(photos), "--out", str(tmp_path / "out"),
                          "--jobs", "2", "--quiet"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    for name in ("a", "b"):  # one folder of mask PNGs per photo
        assert (tmp_path / "out" / name / "person.png").is_file(), sorted((tmp_path / "out").rglob("*"))


def test_settings_file_with_a_byte_order_mark_or_another_encoding(tmp_path, capsys):
    """A settings file saved with a UTF-8 byte order mark (Windows Notepad) failed as "Unexpected
    UTF-8 BOM"; one in Latin-1 as a bare "'utf-8' codec can't decode byte", naming no file."""
    from camseg.cli import _settings_from_args, build_parser

    look = tmp_path / "bom.json"
    look.write_bytes(b'\xef\xbb\xbf{"style": "warm"}')
    args = build_parser().parse_args(["develop", str(SAMPLE), "--out", str(tmp_path / "out"), "--settings", str(look)])
    assert _settings_from_args(args).style == "warm"  # (the settings alone: no photo developed)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"style": "wärm"}'.encode("latin-1"))
    assert main(["develop", str(SAMPLE), "--out", str(tmp_path / "out2"), "--settings", str(latin)]) == 2
    err = capsys.readouterr().err
    assert "latin.json" in err and "not UTF-8 text" in err and "save it as UTF-8" in err


def test_settings_a_file_cannot_hold_are_refused_naming_the_file(tmp_path, capsys):
    """A misspelt key or a list in --settings was refused as "unknown settings ['styl']", naming
    no file (the look file may be one of many)."""
    for text, expected in (('{"styl": "warm"}', "unknown settings ['styl']"), ("[1, 2]", "must be a dict")):
        (tmp_path / "look.json").write_text(text)
        assert main(["develop", str(SAMPLE), "--out", str(tmp_path / "out"), "--settings",
                     str(tmp_path / "look.json")]) == 2
        err = capsys.readouterr().err
        assert f"--settings {str(tmp_path / 'look.json')!r}: " in err and expected in err
    assert not (tmp_path / "out").exists()


def test_save_settings_never_replaces_a_photo(tmp_path, capsys):
    """(Review) `--save-settings *.jpg` (a glob after the option) wrote the look's JSON over the
    first photo, which was lost; only a settings file (a JSON object) is replaced now."""
    photo = tmp_path / "IMG_1.jpg"
    photo.write_bytes(SAMPLE.read_bytes())
    code = main(["develop", "--save-settings", str(photo), str(SAMPLE), "--out", str(tmp_path / "out"),
                 "--style", "warm", "-q", "--no-progress"])
    assert code == 2 and "not a settings file" in capsys.readouterr().err
    assert photo.read_bytes() == SAMPLE.read_bytes() and not (tmp_path / "out").exists()
    look = tmp_path / "look.json"
    look.write_text('\n  {"style": "cool"}')  # a settings file is still replaced
    from camseg.cli import _save_settings
    _save_settings(look, '{"style": "warm"}\n')
    assert json.loads(look.read_text())["style"] == "warm"


def test_save_settings_to_a_folder_names_the_option(tmp_path, capsys):
    """(Review) --save-settings naming a folder failed as a bare "[Errno 21] Is a directory",
    which named neither the option nor what to give instead."""
    (tmp_path / "looks").mkdir()
    assert main(["develop", str(SAMPLE), "--out", str(tmp_path / "out"), "--save-settings",
                 str(tmp_path / "looks")]) == 2
    err = capsys.readouterr().err
    assert "cannot write --save-settings" in err and "looks" in err and "name a file" in err


def test_a_portrait_effect_that_finds_nobody_is_said(tmp_path, capsys):
    """`camseg develop --portrait blur` on a photo with nobody in it wrote the photo without the
    effect and said nothing (develop's report said it, but the command asks for none)."""
    # A landscape: sky over a graded ground, nobody in it.
    ramp = np.linspace(0, 1, 240, dtype=np.float32)[:, None, None]
    sky, ground = np.array([90, 150, 230], np.float32), np.array([70, 110, 50], np.float32)
    codes = np.where(ramp < 0.5, sky * (1.2 - ramp), ground * (0.6 + ramp)).repeat(320, axis=1)
    Image.fromarray(np.clip(codes, 0, 255).astype(np.uint8)).save(tmp_path / "field.jpg", quality=92)
    assert main(["develop", str(tmp_path / "field.jpg"), "--out", str(tmp_path / "out"), "--portrait", "blur",
                 "--jobs", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "note" in err and "portrait blur: no person found: portrait effect not applied" in err, err
    assert (tmp_path / "out" / "field.jpg").is_file()


def test_a_stage_a_settings_file_turns_off_can_be_turned_on_again(tmp_path):
    """There was --no-denoise but no --denoise: a look file that turned a stage off could not be
    overridden back on from the command line, as every other setting can."""
    from camseg.cli import _settings_from_args, build_parser

    look = tmp_path / "look.json"
    look.write_text('{"denoise": false, "sharpen": false, "tone_map": false}')
    base = ["develop", str(SAMPLE), "--out", str(tmp_path / "out"), "--settings", str(look)]
    parse = lambda *extra: _settings_from_args(build_parser().parse_args(base + list(extra)))  # noqa: E731
    assert (parse().denoise, parse().sharpen, parse().tone_map) == (False, False, False)
    on = parse("--denoise", "--sharpen", "--tone-map")
    assert (on.denoise, on.sharpen, on.tone_map) == (True, True, True)
    off = _settings_from_args(build_parser().parse_args(["develop", str(SAMPLE), "--out", "o", "--no-denoise"]))
    assert off.denoise is False and off.sharpen is True


def test_an_empty_style_and_a_bad_f_number_are_said_as_command_options(tmp_path, capsys):
    """`--style ""` pointed to camseg.pipeline.available_styles(), a Python name; `--f-number 0`
    named PortraitBlurParams.f_number instead of the option."""
    out = str(tmp_path / "out")
    assert main(["develop", str(SAMPLE), "--out", out, "--style", ""]) == 2
    err = capsys.readouterr().err
    assert "--style is empty" in err and "camseg develop --list" in err and "available_styles()" not in err
    for bad in ("0", "-2", "nan", "wide"):
        with pytest.raises(SystemExit):
            main(["develop", str(SAMPLE), "--out", out, "--portrait", "blur", "--f-number", bad])
        err = capsys.readouterr().err
        assert "argument --f-number: expected an aperture above 0" in err and "PortraitBlurParams" not in err
    assert not (tmp_path / "out").exists()


def test_a_bad_value_in_a_settings_file_names_the_file(tmp_path, capsys):
    """A settings file's bad value (style "bogus", a blur f_number of 0) was reported without the
    file's name; one the command line overrides is no error."""
    look = tmp_path / "look.json"
    look.write_text('{"style": "bogus", "portrait": "blur", "params": {"portrait": {"f_number": 0}}}')
    base = ["develop", str(SAMPLE), "--out", str(tmp_path / "out"), "--settings", str(look)]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert f"--settings {str(look)!r}: style='bogus' is not a Photographic Style" in err
    assert main(base + ["--style", "warm"]) == 2
    err = capsys.readouterr().err
    assert f"--settings {str(look)!r}: PortraitBlurParams.f_number" in err
    from camseg.cli import _settings_from_args, build_parser

    fixed = _settings_from_args(build_parser().parse_args(base + ["--style", "warm", "--f-number", "2.8"]))
    assert fixed.style == "warm" and fixed.params["portrait"]["f_number"] == 2.8
    assert not (tmp_path / "out").exists()
