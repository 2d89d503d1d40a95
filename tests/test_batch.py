"""camseg.batch: planning, fault tolerance, resumability, and kill-and-resume with the real model."""
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camseg import io as cio
from camseg.batch import (OVERLAY_NAME, STAMP_NAME, ItemResult, mask_overlay, plan_batch, run_batch,
                          write_segmentation)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "camseg" / "samples" / "astronaut.jpg"


def _photos(folder, n, size=(96, 128)):
    folder.mkdir(parents=True, exist_ok=True)
    base = np.asarray(Image.open(SAMPLE).resize(size[::-1]))
    paths = []
    for i in range(n):
        p = folder / f"img_{i:02d}.jpg"
        Image.fromarray(np.roll(base, 7 * i, axis=1)).save(p, quality=90)
        paths.append(p)
    return paths


def _finished(item):
    """Leave ``item``'s output as a finished run does: its record, then the file."""
    from camseg import records

    identity = records.photo_identity(item.source)
    records.write_pending(item.output, identity)
    item.output.write_bytes(item.source.read_bytes())
    records.write_final(item.output, identity, [item.output])


def _digest(paths):
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def _decodes_fully(path):
    with Image.open(path) as im:
        im.load()  # raises on truncated files
    return True


# --- planning ------------------------------------------------------------------------

def test_plan_maps_folders_and_files(tmp_path):
    _photos(tmp_path / "in" / "sub", 2)
    _photos(tmp_path / "in", 1)
    (tmp_path / "in" / "notes.txt").write_text("not a photo")
    todo, settled = plan_batch([tmp_path / "in"], tmp_path / "out")
    outs = sorted(str(i.output.relative_to(tmp_path / "out")) for i in todo)
    assert outs == ["img_00.jpg", "sub/img_00.jpg", "sub/img_01.jpg"] and not settled
    todo, _ = plan_batch([tmp_path / "in"], tmp_path / "out", output_format="png")
    assert all(i.output.suffix == ".png" for i in todo)
    todo, _ = plan_batch([tmp_path / "in"], tmp_path / "out", task="segment")
    assert all(i.output.suffix == "" for i in todo)


def test_plan_refuses_to_overwrite_inputs_and_collisions(tmp_path):
    (a,) = _photos(tmp_path / "a", 1)
    (b,) = _photos(tmp_path / "b", 1)
    todo, settled = plan_batch([a], tmp_path / "a")
    assert not todo and settled[0].status == "failed" and "overwrite an input" in settled[0].message
    todo, settled = plan_batch([a, b], tmp_path / "out")
    # The same name from two folders (two cards' IMG_0001.JPG) was told as a clash of case.
    assert len(todo) == 1 and "has the same output name" in settled[0].message
    assert "ignore case" not in settled[0].message and "another --out folder" in settled[0].message
    todo, settled = plan_batch([tmp_path / "missing.jpg"], tmp_path / "out")
    assert settled[0].status == "failed" and "no such file" in settled[0].message
    # A quoted pattern (or one from a Windows prompt) reached camseg unexpanded.
    todo, settled = plan_batch([tmp_path / "a" / "*.JPG"], tmp_path / "out")
    assert not todo and "does not expand patterns" in settled[0].message and "unquoted" in settled[0].message


def test_plan_skips_finished_outputs_and_ignores_its_own_output_folder(tmp_path):
    photos = _photos(tmp_path / "lib", 2)
    out = tmp_path / "lib" / "developed"
    _finished(plan_batch([photos[0]], out)[0][0])
    todo, settled = plan_batch([tmp_path / "lib"], out)
    assert [i.source.name for i in todo] == ["img_01.jpg"]
    assert [(r.source.name, r.status) for r in settled] == [("img_00.jpg", "skipped")]
    todo, _ = plan_batch([tmp_path / "lib"], out, overwrite=True)
    assert len(todo) == 2


def test_a_file_camseg_did_not_write_is_never_replaced_even_with_overwrite(tmp_path):
    """`camseg develop keep/IMG_1.png --format jpg --out keep` called the camera original
    keep/IMG_1.jpg "already finished", and with --overwrite replaced it by the develop."""
    (original,) = _photos(tmp_path / "keep", 1)
    png = original.with_suffix(".png")
    Image.open(original).rotate(180).save(png)
    before = _digest([original])
    for overwrite in (False, True):
        summary = run_batch([png], tmp_path / "keep", output_format="jpg", overwrite=overwrite, progress=False)
        assert [r.source.name for r in summary.failed] == [png.name] and not summary.skipped
        assert "camseg has no record of writing it (an original photo?)" in summary.failed[0].message
    assert _digest([original]) == before


def test_another_photo_of_the_same_name_from_an_earlier_run_is_not_finished(tmp_path):
    """Camera numbers repeat across cards: card2/IMG_0001.JPG, developed after card1's into the
    same folder, was called "already finished" (exit 0) and never developed. The record of each
    output names its photo by path and fingerprint: moved, a photo is still recognised; edited
    since, it is developed again."""
    (first,) = _photos(tmp_path / "card1", 1)
    (tmp_path / "card2").mkdir()
    Image.open(first).rotate(180).save(tmp_path / "card2" / first.name)
    out = tmp_path / "dev"
    _finished(plan_batch([tmp_path / "card1"], out)[0][0])  # card1's photo, an earlier run
    for overwrite in (False, True):
        todo, settled = plan_batch([tmp_path / "card2"], out, overwrite=overwrite)
        assert todo == [] and [r.status for r in settled] == ["failed"]
        assert "another photo of the same name" in settled[0].message and "card1" in settled[0].message
    (tmp_path / "card1").rename(tmp_path / "moved")
    todo, settled = plan_batch([tmp_path / "moved"], out)
    assert todo == [] and [r.status for r in settled] == ["skipped"]
    (tmp_path / "moved").rename(tmp_path / "card1")
    os.utime(first, ns=(0, 0))  # touched, the same bytes: still finished
    todo, settled = plan_batch([tmp_path / "card1"], out)
    assert todo == [] and [r.status for r in settled] == ["skipped"]
    Image.open(first).transpose(Image.FLIP_LEFT_RIGHT).save(first)  # edited since
    todo, settled = plan_batch([tmp_path / "card1"], out)
    assert [i.source for i in todo] == [first] and settled == []


def _with_capture_time(path, when):
    """Re-save the JPEG at ``path`` with EXIF DateTimeOriginal ``when``."""
    im = Image.open(path)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when
    im.save(path, exif=exif, quality=90)


def test_records_tell_finished_outputs_from_edits_other_photos_and_retouched_outputs(tmp_path):
    """Review findings: a redo stopped after its record left the old output "finished"; the next
    card's IMG_0001.JPG at the same mount path replaced the first card's develop silently; a
    run into a subfolder of the --out found no record; a retouched output was replaced; two
    scans with the same borders (the same fingerprint) were taken for one photo moved."""
    from camseg import records

    card = tmp_path / "EOS_DIGITAL"
    (photo,) = _photos(card, 1)
    _with_capture_time(photo, "2026:05:01 10:00:00")
    out = tmp_path / "dev"
    (item,) = plan_batch([card], out)[0]
    _finished(item)
    def status(**kw):  # of the photo in the card's folder
        todo, settled = plan_batch([photo], out, **kw)
        return "todo" if todo else [(r.status, r.message) for r in settled]

    assert status() == [("skipped", "output exists")]
    # A run into a subfolder of the --out: records live beside their outputs.
    (card / "trip").mkdir()
    (card / "trip" / "t.jpg").write_bytes(photo.read_bytes())
    _finished(plan_batch([card], out)[0][0])  # out/trip/t.jpg
    assert [r.status for r in plan_batch([card / "trip"], out / "trip")[1]] == ["skipped"]
    # Edited since (the same capture time): made again.
    Image.open(photo).transpose(Image.FLIP_LEFT_RIGHT).save(photo, exif=Image.open(photo).getexif(), quality=90)
    assert status() == "todo"
    # The redo stopped after its pending record (disk full, killed): not finished.
    records.write_pending(item.output, records.photo_identity(photo))
    assert status() == "todo"
    _finished(item)
    # The next card at the same path: another photo (its own capture time), never replaced.
    _with_capture_time(photo, "2026:06:02 11:00:00")
    for overwrite in (False, True):
        ((state, message),) = status(overwrite=overwrite)
        assert state == "failed" and "another photo of the same name" in message and "2026:05:01" in message
    # The output retouched by hand after camseg wrote it: not replaced either.
    _finished(item)
    with open(item.output, "ab") as fh:
        fh.write(b"retouched")
    ((state, message),) = status(overwrite=True)
    assert state == "failed" and "was changed after camseg wrote it" in message
    # Two files with the same fingerprint, both still there: not one photo moved.
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    body = os.urandom(200_000)
    (tmp_path / "a" / "scan.tif").write_bytes(body)
    (tmp_path / "b" / "scan.tif").write_bytes(body[:100_000] + bytes(100_000 - 5) + body[-5:])
    _finished(plan_batch([tmp_path / "a"], tmp_path / "scans")[0][0])
    ((state, message),) = [(r.status, r.message) for r in plan_batch([tmp_path / "b"], tmp_path / "scans")[1]]
    assert state == "failed" and "another photo of the same name" in message


def test_moved_and_edited_photos_and_mid_file_edits_are_told_apart(tmp_path):
    """A photo moved and then edited was "another photo" for good; an uncompressed TIFF
    retouched in its middle (same size, same two ends) was "already finished" (tester)."""
    from camseg import records

    (photo,) = _photos(tmp_path / "in", 1)
    _with_capture_time(photo, "2026:05:01 10:00:00")
    (item,) = plan_batch([photo], tmp_path / "out")[0]
    _finished(item)
    moved = tmp_path / "elsewhere" / photo.name
    moved.parent.mkdir()
    photo.rename(moved)
    Image.open(moved).transpose(Image.FLIP_LEFT_RIGHT).save(moved, exif=Image.open(moved).getexif(), quality=90)
    (again,) = plan_batch([moved], tmp_path / "out")[0]
    assert again.note.startswith("made again: the photo changed since")
    _with_capture_time(moved, "2026:07:07 07:07:07")  # another photo after all
    assert [r.status for r in plan_batch([moved], tmp_path / "out")[1]] == ["failed"]
    scan = tmp_path / "scans" / "scan.tif"
    scan.parent.mkdir()
    body = np.zeros((300, 400, 3), np.uint8)
    Image.fromarray(body).save(scan)  # uncompressed
    (item,) = plan_batch([scan], tmp_path / "scanned")[0]
    _finished(item)
    body[140:160, 190:210] = 255  # retouched in the middle: the same size and the same ends
    Image.fromarray(body).save(scan)
    (again,) = plan_batch([scan], tmp_path / "scanned")[0]
    assert again.note.startswith("made again") and records.read(item.output)[0] is not None


def test_finished_outputs_made_with_other_settings_are_counted_from_their_records(tmp_path):
    """The folder's stamp only knew the last run's settings: `develop a --style warm`, `develop b
    --style cool`, then `develop a b --style cool` kept a's warm output without a word."""
    from camseg import records
    from camseg.batch import _made_with, _model_identity
    from camseg.pipeline import DevelopSettings

    photos = _photos(tmp_path / "in", 2)
    out = tmp_path / "out"
    for item, style in zip(plan_batch(photos, out)[0], ("warm", "cool")):
        identity = records.photo_identity(item.source)
        item.output.parent.mkdir(parents=True, exist_ok=True)
        item.output.write_bytes(item.source.read_bytes())
        records.write_final(item.output, identity, [item.output],
                            _made_with("develop", DevelopSettings(style=style), {"quality": 95},
                                       _model_identity(None)))
    summary = run_batch(photos, out, settings=DevelopSettings(style="cool"), progress=False)
    assert summary.skipped == 2 and len(summary.notes) == 1 and summary.notes[0].startswith("1 finished output(s)")
    summary = run_batch(photos, out, settings=DevelopSettings(style="warm"), progress=False)
    assert summary.notes[0].startswith("1 finished output(s)")


def test_records_review_findings(tmp_path):
    """Second review: names that differ only in case were two outputs (one file on macOS and
    Windows disks); `segment` wrote into a folder of the user's own named like the photo and
    removed their person_01.png; a hand-fixed mask was replaced with --overwrite; a byte-identical
    copy of a photo was "another photo"; an unreadable record stopped the whole batch; a
    segmentation folder `a.jpg` (of `a.jpg.png`) shared the developed `a.jpg`'s record."""
    from camseg import records

    (upper,) = _photos(tmp_path / "card1", 1)
    upper = upper.rename(upper.with_name("IMG_1.JPG"))
    (tmp_path / "card2").mkdir()
    Image.open(upper).rotate(90).save(tmp_path / "card2" / "img_1.jpg")
    todo, settled = plan_batch([tmp_path / "card1", tmp_path / "card2"], tmp_path / "fresh")
    assert len(todo) == 1 and "on disks that ignore case" in settled[0].message

    shots, album = tmp_path / "shots", tmp_path / "album"
    shots.mkdir()
    Image.open(upper).save(shots / "beach.jpg")
    (album / "beach").mkdir(parents=True)
    (album / "beach" / "person_01.png").write_bytes(b"the user's own")
    (_, (result,)) = plan_batch([shots / "beach.jpg"], album, task="segment")
    assert result.status == "failed" and "no record of writing it" in result.message

    (item,) = plan_batch([shots / "beach.jpg"], tmp_path / "seg", task="segment")[0]
    item.output.mkdir(parents=True)
    for name in ("person_00.png", OVERLAY_NAME):
        (item.output / name).write_bytes(name.encode())
    records.write_final(item.output, records.photo_identity(item.source),
                        [item.output / "person_00.png", item.output / OVERLAY_NAME], task="segment")
    assert [r.status for r in plan_batch([shots / "beach.jpg"], tmp_path / "seg", task="segment")[1]] == ["skipped"]
    (item.output / "person_00.png").write_bytes(b"fixed by hand")
    (_, (result,)) = plan_batch([shots / "beach.jpg"], tmp_path / "seg", task="segment", overwrite=True)
    assert result.status == "failed" and "person_00.png retouched?" in result.message

    (photo,) = _photos(tmp_path / "DCIM", 1)
    _finished(plan_batch([photo], tmp_path / "dev")[0][0])
    (tmp_path / "Pictures").mkdir()
    (tmp_path / "Pictures" / photo.name).write_bytes(photo.read_bytes())  # a copy; the card still there
    assert [r.status for r in plan_batch([tmp_path / "Pictures"], tmp_path / "dev")[1]] == ["skipped"]

    records.record_path(tmp_path / "dev" / photo.name).write_text('{"photo": {"source": null}}')
    (_, (result,)) = plan_batch([photo], tmp_path / "dev")
    assert result.status == "failed" and "record in .camseg-outputs that cannot be read" in result.message

    assert records.record_path(tmp_path / "a.jpg") != records.record_path(tmp_path / "a.jpg", "segment")


def test_a_mask_added_by_hand_survives_a_segmentation_made_again(tmp_path):
    """--overwrite removed every file named like one of camseg's masks that the new run did not
    write, a person_07.png the user had added too (review); now only what the record lists."""
    (photo,) = _photos(tmp_path / "in", 1, size=(96, 128))
    assert run_batch([photo], tmp_path / "seg", task="segment", in_process=True, progress=False).done == 1
    folder = tmp_path / "seg" / photo.stem
    (folder / "person_07.png").write_bytes((folder / "sky.png").read_bytes())
    again = run_batch([photo], tmp_path / "seg", task="segment", in_process=True, overwrite=True, progress=False)
    assert again.done == 1 and (folder / "person_07.png").exists()


def test_outputs_of_an_older_camseg_are_kept_even_with_overwrite_and_stay_its_own(tmp_path):
    """An older camseg's output (no record) was replaced with --overwrite, although it may be a
    file camseg did not write; and once a run rewrote the folder's stamp, those outputs were
    "no record of writing it" for good (review)."""
    photos = _photos(tmp_path / "in", 2, size=(96, 128))
    out = tmp_path / "out"
    out.mkdir()
    (out / photos[0].name).write_bytes(photos[0].read_bytes())
    (out / STAMP_NAME).write_text('{"task": "develop"}')  # an older camseg's stamp
    (_, (result,)) = plan_batch([photos[0]], out, overwrite=True)
    assert result.status == "failed" and "from before output records" in result.message
    assert run_batch([photos[1]], out, in_process=True, progress=False).done == 1  # rewrites the stamp
    assert [r.status for r in plan_batch([photos[0]], out)[1]] == ["skipped"]


def test_outputs_of_a_camseg_from_before_records_count_as_finished(tmp_path):
    """An output folder an older camseg wrote (its stamp has no "records") holds outputs without
    records: they are finished, as they were then, not files camseg "did not write"."""
    photos = _photos(tmp_path / "in", 1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / photos[0].name).write_bytes(photos[0].read_bytes())
    (tmp_path / "out" / STAMP_NAME).write_text('{"task": "develop"}')
    assert [r.status for r in plan_batch(photos, tmp_path / "out")[1]] == ["skipped"]
    (tmp_path / "out" / STAMP_NAME).write_text('{"task": "develop", "records": 1}')
    assert [r.status for r in plan_batch(photos, tmp_path / "out")[1]] == ["failed"]


def test_a_redo_that_fails_after_its_record_leaves_no_finished_output(tmp_path, monkeypatch):
    """The record was written before the output and said the photo was done: a redo that then
    failed (disk full) left the old output, called finished on the next run."""
    import errno

    import camseg.batch as batch

    (photo,) = _photos(tmp_path / "in", 1, size=(96, 128))
    assert run_batch([photo], tmp_path / "out", in_process=True, progress=False).done == 1
    Image.open(photo).transpose(Image.FLIP_LEFT_RIGHT).save(photo, quality=90)  # edited
    real = batch.write_photo

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(batch, "write_photo", full)
    assert len(run_batch([photo], tmp_path / "out", in_process=True, progress=False).failed) == 1
    monkeypatch.setattr(batch, "write_photo", real)
    again = run_batch([photo], tmp_path / "out", in_process=True, progress=False)
    assert again.done == 1 and again.skipped == 0


def test_earlier_outputs_among_the_inputs_are_passed_over(tmp_path):
    """`camseg develop ph --out ph/warm` after `--out ph/dev` developed dev's outputs again (the
    work doubled at every run), and `camseg develop * --out warm` failed originals whose names
    collided with dev's. An output has a record: found in a folder, it is passed over; named as
    a file itself, it is read. Originals beside outputs (`--out` the input folder) are read."""
    photos = _photos(tmp_path / "ph", 2)
    dev = tmp_path / "ph" / "dev"
    for item in plan_batch([tmp_path / "ph"], dev)[0]:
        _finished(item)
    todo, settled = plan_batch([tmp_path / "ph"], tmp_path / "ph" / "warm")
    assert [i.source for i in todo] == photos
    assert [r.status for r in settled] == ["passed over"] and "2 earlier output(s) of camseg" in settled[0].message
    todo, settled = plan_batch([*photos, dev], tmp_path / "warm")  # the shell's *
    assert [i.source for i in todo] == photos and [r.status for r in settled] == ["passed over"]
    named = sorted(dev.glob("*.jpg"))
    todo, settled = plan_batch(named, tmp_path / "again")
    assert [i.source for i in todo] == named and settled == []
    scans = tmp_path / "scans"
    (scans).mkdir()
    for p in photos:
        Image.open(p).save(scans / (p.stem + ".png"))
    for item in plan_batch([scans], scans, output_format="jpg")[0]:
        _finished(item)  # JPEG outputs beside the PNG originals
    todo, settled = plan_batch([scans], tmp_path / "dev2")
    assert [i.source.name for i in todo] == ["img_00.png", "img_01.png"]
    assert [r.status for r in settled] == ["passed over"]
    # A segmentation's masks and overlay (in a folder whose record is its parent's).
    masks = tmp_path / "ph" / "masks"
    from camseg import records

    for item in plan_batch([tmp_path / "ph"], masks, task="segment")[0]:
        item.output.mkdir(parents=True)
        for name in ("sky.png", OVERLAY_NAME):
            (item.output / name).write_bytes(item.source.read_bytes())
        records.write_final(item.output, records.photo_identity(item.source),
                            [item.output / "sky.png", item.output / OVERLAY_NAME], task="segment")
    todo, settled = plan_batch([tmp_path / "ph"], tmp_path / "dev3")
    assert [i.source for i in todo] == photos


def test_a_folder_says_which_photo_files_it_passes_over_and_reads_jfif(tmp_path):
    """A phone's folder of mostly HEIC photos "succeeded" on its few JPEGs, without a word about
    the others; .jfif and .jpe are JPEG files, and were passed over too."""
    folder = tmp_path / "phone"
    (photo,) = _photos(folder, 1)
    Image.open(photo).save(folder / "b.jfif", format="JPEG")
    for name in ("c.HEIC", "d.heic", "e.webp"):
        (folder / name).write_bytes(b"x")
    (folder / "img_00.xmp").write_text("<x/>")  # a sidecar, not a photo: not mentioned
    todo, settled = plan_batch([folder], tmp_path / "out")
    assert sorted(i.source.name for i in todo) == ["b.jfif", "img_00.jpg"]
    assert [r.status for r in settled] == ["passed over"]
    assert "3 photo file(s) of other types (2 .heic, 1 .webp): camseg searches folders for" in settled[0].message
    from camseg.batch import BatchSummary

    assert "1 passed over" in str(BatchSummary(results=settled))


def test_photos_of_the_users_own_in_an_out_folder_inside_the_input_are_said(tmp_path):
    """`camseg develop lib --out lib/a`, where lib/a held photos: they were left out without a
    word."""
    (top,) = _photos(tmp_path / "lib", 1)
    (kept,) = _photos(tmp_path / "lib" / "a", 1)
    kept = kept.rename(kept.with_name("own.jpg"))
    todo, settled = plan_batch([tmp_path / "lib"], tmp_path / "lib" / "a")
    assert [i.source for i in todo] == [top]
    assert [(r.source, r.status) for r in settled] == [(tmp_path / "lib", "passed over")]
    assert "1 photo(s) inside the --out folder" in settled[0].message and str(kept) in settled[0].message
    (tmp_path / "lib" / "a" / STAMP_NAME).write_text('{"task": "develop"}')  # a camseg from before records
    assert [r.status for r in plan_batch([tmp_path / "lib"], tmp_path / "lib" / "a")[1]] == []
    (tmp_path / "lib" / "a" / STAMP_NAME).unlink()
    _finished(todo[0])  # an output there is no photo of the user's
    kept.unlink()
    assert plan_batch([tmp_path / "lib"], tmp_path / "lib" / "a")[1] == [
        ItemResult(top, todo[0].output, "skipped", "output exists")]


def test_plan_when_out_is_the_input_folder_or_above_it(tmp_path):
    """--out equal to the input folder refused photo by photo, by name (it hid every photo and
    reported "0 done" with exit 0); --out above the input folder develops them."""
    photos = _photos(tmp_path / "lib" / "sub", 2)
    todo, settled = plan_batch([tmp_path / "lib" / "sub"], tmp_path / "lib" / "sub")
    assert todo == [] and [r.status for r in settled] == ["failed", "failed"]
    assert all("overwrite an input" in r.message for r in settled)
    todo, settled = plan_batch([tmp_path / "lib" / "sub"], tmp_path / "lib")
    assert [i.source for i in todo] == photos and settled == []
    assert [i.output for i in todo] == [tmp_path / "lib" / p.name for p in photos]


def test_the_out_folder_among_the_inputs_is_passed_over(tmp_path):
    """`camseg develop * --out dev`, run again, finds dev among its inputs: every photo failed
    as "output would overwrite an input" and the exit status said failure for good."""
    photos = _photos(tmp_path, 2)
    out = tmp_path / "dev"
    for item in plan_batch(photos, out)[0]:
        _finished(item)  # the first run's outputs
    todo, settled = plan_batch([*photos, out], out)
    assert todo == [] and sorted(r.status for r in settled) == ["passed over", "skipped", "skipped"]
    (out / STAMP_NAME).write_text('{"records": 1}')  # run_batch writes it into every --out folder
    todo, settled = plan_batch([*photos, out], out)
    assert todo == [] and sorted(r.status for r in settled) == ["passed over", "skipped", "skipped"]
    assert any("2 earlier output(s) of camseg" in r.message for r in settled)
    # A photo new in an --out folder named among other inputs is read, not passed over with the
    # folder's outputs (it was: "its photos are earlier outputs", exit 0; review).
    lib = tmp_path / "lib"
    (first,) = _photos(lib, 1)
    for item in plan_batch([lib], lib, output_format="png")[0]:
        _finished(item)  # PNGs beside their JPEG originals
    Image.open(first).rotate(90).save(lib / "new.jpg")
    (tmp_path / "more").mkdir()
    Image.open(first).rotate(45).save(tmp_path / "more" / "c.jpg")
    todo, settled = plan_batch([lib, tmp_path / "more"], lib, output_format="png")
    assert sorted(i.source.name for i in todo) == ["c.jpg", "new.jpg"]
    # A folder of the user's own photos as --out among the inputs is not passed over (the first
    # version passed a real photo folder over as "earlier outputs", exit 0; review): refused by name.
    mine = _photos(tmp_path / "mine", 2)
    todo, settled = plan_batch([*photos, tmp_path / "mine"], tmp_path / "mine")
    assert todo == [] and sum("overwrite an input" in r.message for r in settled) == 4 and mine


def test_a_photo_with_a_long_name_is_written(tmp_path):
    """A temporary name of the photo's name + process id + suffix passed 255 bytes for names of
    ~230 bytes: "File name too long", for good."""
    (photo,) = _photos(tmp_path / "in", 1)
    long = photo.with_name("é" * 60 + "a" * 120 + ".jpg")  # 244 bytes
    photo.rename(long)
    written = cio.write_photo(tmp_path / "out" / long.name, cio.read_photo(long).pixels)
    assert written.name == long.name and _decodes_fully(written)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(cio.TEMP_SUFFIX)]


def test_one_path_given_as_a_string_is_one_input(tmp_path, monkeypatch):
    """run_batch('a.jpg', ...) walked the string letter by letter: its '.' developed every photo
    under the current folder."""
    (photo,) = _photos(tmp_path / "here", 1)
    _photos(tmp_path / "here" / "holidays", 2)
    monkeypatch.chdir(tmp_path / "here")
    for one in ("img_00.jpg", Path("img_00.jpg"), str(photo)):
        todo, settled = plan_batch(one, tmp_path / "out")
        assert [i.source.name for i in todo] == ["img_00.jpg"] and settled == []


def test_plan_takes_a_photo_named_twice_once(tmp_path):
    photos = _photos(tmp_path / "lib", 2)
    todo, settled = plan_batch([photos[0], photos[0], tmp_path / "lib", tmp_path / "lib" / ".." / "lib"],
                               tmp_path / "out")
    assert sorted(i.source.name for i in todo) == ["img_00.jpg", "img_01.jpg"] and settled == []


def test_an_output_folder_that_cannot_be_made_is_one_clear_error(tmp_path):
    photos = _photos(tmp_path / "lib", 1)
    (tmp_path / "taken").write_bytes(b"a file")
    with pytest.raises(ValueError, match="is a file, not a folder; choose another --out"):
        run_batch(photos, tmp_path / "taken", jobs=1, progress=False)
    with pytest.raises(ValueError, match="cannot be created"):
        run_batch(photos, tmp_path / "taken" / "below", jobs=1, progress=False)
    assert (tmp_path / "taken").read_bytes() == b"a file"


def test_bad_files_are_reported_and_the_rest_goes_on(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "zero.jpg").write_bytes(b"")
    (inp / "trunc.jpg").write_bytes(SAMPLE.read_bytes()[:3000])
    seen = []
    summary = run_batch([inp], tmp_path / "out", jobs=1, progress=False, on_result=seen.append)
    assert not summary.ok and len(summary.failed) == 2 and len(seen) == 2
    messages = " ".join(r.message for r in summary.failed)
    assert "empty" in messages and "truncated" in messages
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_a_photo_deleted_after_the_batch_was_planned_is_reported_with_the_fix(tmp_path):
    """A photo moved or deleted while the batch ran failed with the record's bare
    "[Errno 2] No such file or directory", which named no fix."""
    from camseg.batch import _process
    from camseg.pipeline import DevelopSettings

    (photo,) = _photos(tmp_path / "in", 1)
    (item,) = plan_batch([photo], tmp_path / "out")[0]
    photo.unlink()
    result = _process(item, "develop", DevelopSettings(), {"quality": 95},
                      {"segmenter": None, "error": None, "model_identity": None})
    assert result.status == "failed" and "does not exist; check the path" in result.message
    assert str(photo) in result.message


def test_a_transparent_png_developed_to_jpeg_is_flattened_with_a_note(tmp_path):
    rgba = np.dstack([np.asarray(Image.open(SAMPLE).resize((128, 96))), np.full((96, 128), 255, np.uint8)])
    rgba[:, 64:, 3] = 0
    (tmp_path / "in").mkdir()
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in" / "cut.png")
    seen = []
    summary = run_batch([tmp_path / "in"], tmp_path / "out", output_format="jpg", jobs=1, progress=False,
                        on_result=seen.append)
    assert summary.ok and "transparency flattened onto white" in seen[0].message
    back = np.asarray(Image.open(tmp_path / "out" / "cut.jpg"))
    assert back[:, 70:].min() >= 250  # white where the photo was transparent
    seen.clear()
    assert run_batch([tmp_path / "in"], tmp_path / "png", jobs=1, progress=False, on_result=seen.append).ok
    assert "transparency" not in seen[0].message  # a PNG keeps it
    assert np.asarray(Image.open(tmp_path / "png" / "cut.png")).shape[2] == 4


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        run_batch([SAMPLE], tmp_path, jobs=0)
    with pytest.raises(ValueError, match="8-bit only"):
        run_batch([SAMPLE], tmp_path, output_format="jpg", bit_depth=16)
    with pytest.raises(ValueError, match="task"):
        plan_batch([SAMPLE], tmp_path, task="paint")
    # 16 bits asked for JPEG inputs developed as JPEG: one usage error, not a failure per photo.
    with pytest.raises(ValueError, match="16-bit output cannot be JPEG.*--format png"):
        run_batch([SAMPLE], tmp_path / "out", bit_depth=16)
    assert not (tmp_path / "out").exists()


# --- segmentation outputs --------------------------------------------------------------

def test_mask_overlay_and_write_segmentation(tmp_path):
    h, w = 20, 30
    person = np.zeros((h, w), np.float32)
    person[5:, 10:20] = 1.0
    sky = np.zeros((h, w), np.float32)
    sky[:4] = 1.0
    seg = types.SimpleNamespace(sky=sky, hair=np.zeros_like(sky), skin=person * 0.5, teeth=np.zeros_like(sky),
                                glasses=np.zeros_like(sky), person=person, persons=[person])
    img = np.full((h, w, 3), 0.2, np.float32)
    over = mask_overlay(img, seg)
    assert over.dtype == np.uint8 and over.shape == (h, w, 3)
    assert over[1, 1, 2] > over[1, 1, 0]        # sky tinted blue
    assert over[15, 1].tolist() == [124, 124, 124]  # untouched: sRGB of linear 0.2
    photo = cio.Photo(pixels=img)
    written = write_segmentation(tmp_path / "m", photo, seg)
    assert written[-1].name == OVERLAY_NAME
    back = np.asarray(Image.open(tmp_path / "m" / "person_00.png"))
    np.testing.assert_array_equal(back, (person * 255).astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m" / "skin.png")),
                                  np.rint(person * 127.5 + 1e-3).astype(np.uint8))
    # A transparent photo's preview is drawn over white, not over the colour its transparent
    # pixels keep (here black).
    alpha = np.ones((h, w), np.float32)
    alpha[10:, :5] = 0.0
    write_segmentation(tmp_path / "t", cio.Photo(pixels=np.zeros((h, w, 3), np.float32), alpha=alpha), seg)
    preview = np.asarray(Image.open(tmp_path / "t" / OVERLAY_NAME))
    assert preview[15, 2].min() > 240 and preview[8, 2].max() < 20


def test_mask_overlay_outlines_each_person_and_names_the_layers():
    """Overlapping soft fills alone read as one muddy tint: each instance is outlined in its own
    colour where its matte crosses 0.5 and the legend names what is shown."""
    h, w = 200, 300
    a, b = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    a[40:180, 40:140] = 1.0
    b[40:180, 120:220] = 1.0  # overlaps a
    zero = np.zeros((h, w), np.float32)
    seg = types.SimpleNamespace(sky=zero, hair=zero, skin=zero, teeth=zero, glasses=zero, persons=[a, b],
                                person_scores=np.array([0.99, 0.8], np.float32))
    img = np.full((h, w, 3), 0.2, np.float32)
    over = mask_overlay(img, seg)
    assert over.shape == (h, w, 3) and over.dtype == np.uint8
    from camseg.batch import _PERSON_COLOURS

    # the left edge of a and the right edge of b: each outline in its own colour
    np.testing.assert_allclose(over[100, 40], _PERSON_COLOURS[0], atol=40)
    np.testing.assert_allclose(over[100, 219], _PERSON_COLOURS[1], atol=40)
    assert over[100, 260].tolist() == [124, 124, 124]  # away from everything: the photo itself
    # the legend (bottom-left): dimmed box with a swatch per person
    corner = over[h - 30:h - 4, 4:60]
    assert (corner < 60).mean() > 0.5
    assert np.abs(corner.reshape(-1, 3).astype(int) - _PERSON_COLOURS[0]).sum(axis=1).min() < 30


def test_rewriting_a_segmentation_removes_the_earlier_runs_extra_masks(tmp_path):
    """Re-segmenting into the same folder (--overwrite) left the old person_01.png of a person
    the new run did not find: two segmentations mixed in one folder."""
    h, w = 20, 30
    people = [np.zeros((h, w), np.float32) for _ in range(2)]
    people[0][5:, 2:8], people[1][5:, 20:26] = 1.0, 1.0
    photo = cio.Photo(pixels=np.full((h, w, 3), 0.2, np.float32))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.png").write_bytes(b"the user's own file")
    write_segmentation(tmp_path / "m", photo, types.SimpleNamespace(sky=people[1], persons=people))
    assert (tmp_path / "m" / "person_01.png").exists() and (tmp_path / "m" / "sky.png").exists()
    write_segmentation(tmp_path / "m", photo, types.SimpleNamespace(skin=people[0], persons=people[:1]))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([OVERLAY_NAME, "notes.png", "person_00.png",
                                                                         "skin.png"])


def test_segment_command_sees_a_display_p3_photo_in_srgb_like_its_srgb_twin(tmp_path):
    """`camseg segment` handed the model a P3 photo's own values, read as sRGB (duller): its skin
    matte differed from the sRGB twin's by 0.026 on average (develop and the Python API convert);
    and the untagged overlay showed those values as sRGB too."""
    photo = cio.read_photo(SAMPLE)
    p3 = cio.make_icc_profile(cio.DISPLAY_P3_PRIMARIES, description="Display P3")
    own = np.array([cio._s15f16(cio._icc_tags(p3)[k], 8, 3) for k in ("rXYZ", "gXYZ", "bXYZ")]).T
    in_p3 = np.clip(photo.pixels @ np.linalg.solve(own, cio._SRGB_COLORANTS).T.astype(np.float32), 0, 1)
    encode = lambda x: Image.fromarray(np.round(cio.linear_to_srgb(x) * 255).astype(np.uint8))
    (tmp_path / "in").mkdir()
    encode(in_p3).save(tmp_path / "in" / "p3.png", icc_profile=p3)
    encode(photo.pixels).save(tmp_path / "in" / "srgb.png")
    assert run_batch([tmp_path / "in"], tmp_path / "out", task="segment", jobs=1, progress=False).ok
    read = lambda name, f: np.asarray(Image.open(tmp_path / name / f), np.float32)
    assert np.abs(read("out/p3", "skin.png") - read("out/srgb", "skin.png")).mean() < 0.005 * 255
    # The overlay (here without mattes: the photo alone) is an untagged JPEG, seen as sRGB.
    for name, pixels, profile in (("p3", in_p3, p3), ("srgb", photo.pixels, None)):
        write_segmentation(tmp_path / "bare" / name, cio.Photo(pixels=pixels, icc_profile=profile),
                           types.SimpleNamespace(persons=[]))
    assert np.abs(read("bare/p3", OVERLAY_NAME) - read("bare/srgb", OVERLAY_NAME)).mean() < 1.0


def test_plan_reports_a_folder_without_photos_and_unwritable_formats(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.heic").write_bytes(b"x")
    (tmp_path / "raw" / "b.CR2").write_bytes(b"x")
    Image.new("RGB", (16, 16)).save(tmp_path / "c.webp")
    todo, settled = plan_batch([tmp_path / "raw", tmp_path / "c.webp"], tmp_path / "out")
    assert todo == [] and [r.status for r in settled] == ["failed", "failed"]
    assert "no JPEG, PNG or TIFF photo in this folder (other files: 1 .cr2, 1 .heic)" in settled[0].message
    assert "pass --format jpg" in settled[1].message
    todo, settled = plan_batch([tmp_path / "c.webp"], tmp_path / "out", output_format="jpg")
    assert [i.output.name for i in todo] == ["c.jpg"] and settled == []
    with pytest.raises(ValueError, match="quality must be a JPEG quality 1..100, got 101"):
        run_batch([tmp_path / "c.webp"], tmp_path / "out", quality=101, progress=False)


# --- with the real model -----------------------------------------------------------------

def test_batch_develop_two_workers_and_resume(tmp_path):
    photos = _photos(tmp_path / "in", 4)
    before = _digest(photos)
    summary = run_batch([tmp_path / "in"], tmp_path / "out", jobs=2, progress=False)
    assert summary.ok and summary.done == 4, summary.failed
    for p in photos:
        assert _decodes_fully(tmp_path / "out" / p.name)
    again = run_batch([tmp_path / "in"], tmp_path / "out", jobs=2, progress=False)
    assert again.ok and again.done == 0 and again.skipped == 4
    assert _digest(photos) == before


def _start_cli_batch(tmp_path, n, size=(240, 320), stderr=subprocess.DEVNULL):
    """A `camseg develop --jobs 2` run on ``n`` new photos in its own process group, once its
    first output is written: (process, output folder, photos, their digests before the run,
    command line)."""
    photos = _photos(tmp_path / "in", n, size=size)
    before = _digest(photos)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "camseg.cli", "develop", str(tmp_path / "in"), "--out", str(out),
           "--jobs", "2", "--no-progress", "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and any(p.suffix == ".jpg" for p in out.iterdir()):
            break
        time.sleep(0.05)
    return proc, out, photos, before, cmd


def test_kill_mid_run_then_resume(tmp_path):
    """A batch killed with SIGKILL mid-run and restarted completes; outputs whole, inputs untouched."""
    proc, out, photos, before, cmd = _start_cli_batch(tmp_path, 6, size=(144, 192))
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: parent and workers
    proc.wait()
    finished = [p for p in out.glob("*.jpg")]
    assert len(finished) < len(photos), "batch finished before it could be killed; use more photos"
    for p in finished:  # nothing visible under a final name is partial
        assert _decodes_fully(p)
    from camseg.cli import main  # restart in-process (saves an interpreter start in the test)

    assert main(cmd[3:-4] + ["--jobs", "1", "--no-progress", "--quiet"]) == 0
    for p in photos:
        assert _decodes_fully(out / p.name)
    leftovers = list(out.glob(f".*{cio.TEMP_SUFFIX}"))
    assert not leftovers, f"stale temporaries of killed writers not cleaned: {leftovers}"
    assert _digest(photos) == before


def _descendants_rss(root: int, *, with_parents: bool = False) -> list:
    """(pid, resident bytes) of every process below ``root`` (Linux /proc); with
    ``with_parents``, (pid, parent pid, resident bytes)."""
    rows = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                rows.append((int(d.name), int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")))
            except (OSError, ValueError, IndexError):
                pass  # gone meanwhile
    mine, out, grew = {root}, [], True
    while grew:
        grew = False
        for pid, ppid, rss in rows:
            if ppid in mine and pid not in mine:
                mine.add(pid)
                out.append((pid, ppid, rss) if with_parents else (pid, rss))
                grew = True
    return out


@contextlib.contextmanager
def _oom_killer(limit_bytes: float = float("inf"), *, over_parent: float = float("inf")):
    """A thread playing the kernel's OOM killer: any process below this one over ``limit_bytes``
    resident, or over its parent's resident size by ``over_parent`` (a worker's growth over the
    forkserver it was forked from), is killed. Yields the list of the pids it killed."""
    kills, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            rows = _descendants_rss(os.getpid(), with_parents=True)
            resident = {pid: rss for pid, _, rss in rows}
            for pid, ppid, rss in rows:
                over = rss > limit_bytes or (ppid in resident and rss > resident[ppid] + over_parent)
                if over and pid not in kills:  # (a dying process may still show its memory)
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                        kills.append(pid)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield kills
    finally:
        stop.set()
        watcher.join()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker memory from Linux /proc")
def test_a_photo_whose_worker_runs_out_of_memory_fails_alone(tmp_path):
    """A worker killed by the system (out of memory) broke the process pool, and every photo not
    yet finished failed with it (8 of 10). Here any worker over 600 MB is killed, which only
    the 7-MP photo's worker reaches (the small photos' stay under 300 MB). That photo alone
    fails, named; the others are developed."""
    (tmp_path / "in").mkdir()
    with Image.open(SAMPLE) as im:
        for i in range(5):
            im.resize((192, 144)).save(tmp_path / "in" / f"a{i}.jpg", quality=90)
        im.resize((3000, 2250)).save(tmp_path / "in" / "a1_big.jpg", quality=90)
    with _oom_killer(600e6) as kills:
        summary = run_batch([tmp_path / "in"], tmp_path / "out", jobs=2, progress=False)
    assert len(kills) >= 2  # in the shared pool, then alone
    assert [r.source.name for r in summary.failed] == ["a1_big.jpg"]
    message = summary.failed[0].message
    assert "killed" in message and "6.8 MP" in message and "1.1 GB of memory" in message
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == [f"a{i}.jpg" for i in range(5)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker memory from Linux /proc")
def test_a_batch_whose_every_worker_is_killed_stops_trying(tmp_path):
    """When every worker dies (the machine is out of memory, not the photos at fault), each
    photo is not retried alone at a worker start apiece: after 3 in a row and one more photo
    tried alone, the rest fail at once."""
    photos = _photos(tmp_path / "in", 12)
    # Workers are killed once they grow 45 MB past the forkserver they come from: one with the
    # model loaded is 5-30 MB past it, one developing 60-200 MB (the compiled kernels loaded).
    # Absolute sizes vary too much for a fixed limit: the forkserver took 150 MB here and 260
    # MB in a fresh CI install (where 180 and 200 MB limits killed the workers as they started).
    with _oom_killer(over_parent=45e6) as kills:
        summary = run_batch([tmp_path / "in"], tmp_path / "out", jobs=2, progress=False)
    assert len(summary.failed) == len(photos) and not list((tmp_path / "out").glob("*.jpg"))
    messages = [r.message for r in summary.failed]
    assert sum("while developing it alone" in m for m in messages) == 4
    assert sum("4 worker processes in a row" in m for m in messages) == len(photos) - 4
    assert len(kills) <= 4 + 2  # the shared pool's workers, then 4 alone: not one per photo


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker memory from Linux /proc")
def test_three_big_photos_in_a_row_fail_alone_and_the_rest_is_developed(tmp_path):
    """Three photos in a row that each kill their worker looked like a machine out of memory:
    the photos after them were given up untried, and every run again did the same. One more
    photo tried alone tells the two apart."""
    (tmp_path / "in").mkdir()
    with Image.open(SAMPLE) as im:
        for name in ("a0", "a1", "c0", "c1", "c2"):
            im.resize((192, 144)).save(tmp_path / "in" / f"{name}.jpg", quality=90)
        for name in ("b1", "b2", "b3"):
            im.resize((3000, 2250)).save(tmp_path / "in" / f"{name}.jpg", quality=90)
    with _oom_killer(600e6):
        summary = run_batch([tmp_path / "in"], tmp_path / "out", jobs=2, progress=False)
    assert sorted(r.source.name for r in summary.failed) == ["b1.jpg", "b2.jpg", "b3.jpg"]
    assert all("killed by the system while developing it alone" in r.message for r in summary.failed)
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.jpg")) == ["a0", "a1", "c0", "c1", "c2"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker memory from Linux /proc")
def test_four_big_photos_then_a_small_one(tmp_path):
    """After three kills in a row the photo tried next was the next in line, another big one:
    its death gave the rest up, the small photo untried, on every run."""
    (tmp_path / "in").mkdir()
    with Image.open(SAMPLE) as im:
        for name in ("b1", "b2", "b3", "b4"):
            im.resize((3000, 2250)).save(tmp_path / "in" / f"{name}.jpg", quality=90)
        im.resize((192, 144)).save(tmp_path / "in" / "c0.jpg", quality=90)
    with _oom_killer(600e6):
        summary = run_batch([tmp_path / "in"], tmp_path / "out", jobs=2, progress=False)
    assert sorted(r.source.name for r in summary.failed) == ["b1.jpg", "b2.jpg", "b3.jpg", "b4.jpg"]
    assert all("killed by the system while developing it alone" in r.message for r in summary.failed)
    assert [p.name for p in (tmp_path / "out").glob("*.jpg")] == ["c0.jpg"]


def test_one_photo_left_or_one_job_is_developed_in_a_worker_unless_in_process_is_asked(tmp_path, monkeypatch):
    """A resumed run with one photo left went into the command's own process (jobs = photos
    left), where a photo that exhausts memory kills the command ("Killed", 137) unnamed."""
    import camseg.batch as batch

    photos = _photos(tmp_path / "in", 1)
    pools = []
    real = batch._run_in_pool
    monkeypatch.setattr(batch, "_run_in_pool", lambda items, workers, *a: pools.append(workers) or real(items, workers, *a))
    assert run_batch(photos, tmp_path / "out", jobs=2, progress=False).ok and pools == [1]
    assert run_batch(photos, tmp_path / "one", jobs=1, progress=False).ok and pools == [1, 1]
    assert run_batch(photos, tmp_path / "here", in_process=True, progress=False).ok and pools == [1, 1]
    assert (tmp_path / "here" / photos[0].name).is_file()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker memory from Linux /proc")
def test_one_job_names_the_photo_whose_worker_runs_out_of_memory_and_goes_on(tmp_path):
    """With one job (--jobs 1, or the default on a one-core machine) the photos were developed in
    the command's own process: a photo that exhausts memory killed the command, unnamed, and
    killed it again at the same photo on every resumed run, so the batch could never finish."""
    (tmp_path / "in").mkdir()
    with Image.open(SAMPLE) as im:
        im.resize((192, 144)).save(tmp_path / "in" / "a0.jpg", quality=90)
        im.resize((3000, 2250)).save(tmp_path / "in" / "a1_big.jpg", quality=90)
        im.resize((192, 144)).save(tmp_path / "in" / "a2.jpg", quality=90)
    with _oom_killer(600e6) as kills:
        summary = run_batch([tmp_path / "in"], tmp_path / "out", jobs=1, progress=False)
    assert kills and os.getpid() not in kills
    assert [r.source.name for r in summary.failed] == ["a1_big.jpg"]
    assert "killed by the system while developing it alone (6.8 MP" in summary.failed[0].message
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["a0.jpg", "a2.jpg"]


@pytest.mark.parametrize("quiet_start", [False, True])
@pytest.mark.parametrize("failing", ["waiting for the server", "the pool's first worker"])
def test_a_worker_that_could_not_be_started_is_started_again(tmp_path, monkeypatch, failing, quiet_start):
    """The forkserver killed as it started a worker ended the command with an EOFError traceback
    (tester); the photos now go again in a fresh pool. Also when it dies while the batch waits
    for it to be ready (batch._start_forkserver), which gave the traceback again (review)."""
    import multiprocessing.forkserver as forkserver

    real, calls = forkserver.read_signed, []
    fail_at = 0 if failing == "waiting for the server" else 1

    def read_signed(fd):  # a new process's pid, as it is started: the server is gone
        calls.append(fd)
        if len(calls) == fail_at + 1:
            raise EOFError("unexpected EOF")
        return real(fd)

    monkeypatch.setattr(forkserver, "read_signed", read_signed)
    _photos(tmp_path / "in", 2, size=(96, 128))
    summary = run_batch([tmp_path / "in"], tmp_path / "out", jobs=1, progress=False, quiet_start=quiet_start)
    assert len(calls) > fail_at + 1 and summary.done == 2 and summary.ok


def test_an_output_folder_that_became_read_only_is_refused_before_any_photo(tmp_path, monkeypatch):
    """With the folder's stamp unchanged, nothing checked the folder first: each photo was
    developed, then failed to be written (tester)."""
    import errno

    import camseg.batch as batch

    photos = _photos(tmp_path / "in", 2, size=(96, 128))
    _finished(plan_batch([photos[0]], tmp_path / "out")[0][0])
    (tmp_path / "out" / STAMP_NAME).write_text(json.dumps({"records": 1}))  # a stamp that will not change
    monkeypatch.setattr(batch, "_atomic_write", lambda *a: pytest.fail("the stamp was to stay as it is"))

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(batch.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(batch, "_process", lambda *a: pytest.fail("a photo was developed"))
    with pytest.raises(ValueError, match="cannot write to the output folder .*Permission denied"):
        run_batch([tmp_path / "in"], tmp_path / "out", in_process=True, progress=False)


def test_a_record_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    """A read-only records folder was reported as the output being unwritable (review)."""
    import errno

    from camseg import records

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(records, "write_pending", read_only)
    (photo,) = _photos(tmp_path / "in", 1, size=(96, 128))
    (result,) = run_batch([photo], tmp_path / "out", in_process=True, progress=False).failed
    assert "cannot write" in result.message and ".camseg-outputs" in result.message
    assert not (tmp_path / "out" / photo.name).exists()


def test_workers_that_die_before_the_model_loads_blame_no_photo(tmp_path):
    """A program read from standard input (`python - <<EOF`) cannot start worker processes (each
    re-reads the main file, "<stdin>"): the photo was reported as killed "for memory that other
    programs hold". The workers are counted in as they load the model; when none gets there,
    twice, the photos are reported together with the cause."""
    photos = _photos(tmp_path / "in", 2)
    script = (f"from camseg.batch import run_batch\n"
              f"s = run_batch({[str(p) for p in photos]!r}, {str(tmp_path / 'out')!r}, jobs=2, progress=False)\n"
              "print(s)\n"
              "print('\\n'.join(r.message for r in s.failed))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    lines = run.stdout.splitlines()
    assert lines and lines[0].startswith("0 done, 0 already finished, 2 failed"), run.stdout + run.stderr
    assert all("died while starting, before any photo reached them" in m and "save it to a file" in m
               for m in lines[1:3]) and "memory" not in "".join(lines[1:3])


@pytest.mark.parametrize("options, expected", [
    (dict(in_process=True, jobs=2), "cannot run 2 jobs"),
    (dict(in_process=True, dask_scheduler="local"), "pass one of them"),
    (dict(in_process="yes"), "in_process must be True or False"),
])
def test_in_process_refuses_options_it_cannot_honour(tmp_path, options, expected):
    photos = _photos(tmp_path / "in", 1)
    with pytest.raises((ValueError, TypeError), match=expected):
        run_batch(photos, tmp_path / "out", progress=False, **options)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("to_group", [False, True])
def test_ctrl_c_stops_a_two_worker_batch_after_the_photos_in_progress(tmp_path, to_group):
    """Ctrl-C used to print "interrupted" and then develop every queued photo before exiting.
    In a terminal it reaches the whole process group: the workers printed KeyboardInterrupt
    tracebacks and dropped their photos; they now leave it to the batch."""
    proc, out, _, _, _ = _start_cli_batch(tmp_path, 16, stderr=subprocess.PIPE)
    (os.killpg if to_group else os.kill)(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode(errors="replace")[-2000:]
    finished = list(out.glob("*.jpg"))
    assert len(finished) <= 10, f"{len(finished)} of 16 developed after Ctrl-C"
    for p in finished:
        assert _decodes_fully(p)


def test_workers_exit_when_the_batch_process_is_killed(tmp_path):
    """SIGKILL to the batch's own process (not its group) left its workers, their forkserver and
    resource tracker running for good (~300 MB a worker). They now go within seconds, and the
    resource tracker, which removes the pool's semaphores, no longer warns of "leaked semaphore
    objects" on the terminal."""
    proc, out, _, _, _ = _start_cli_batch(tmp_path, 8, stderr=subprocess.PIPE)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)  # anything left in the batch's process group?
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the batch's worker processes outlived it by 20 s")
    for p in out.glob("*.jpg"):
        assert _decodes_fully(p)
    assert "leaked semaphore" not in proc.stderr.read().decode()


def test_plan_prefers_a_photos_own_name_to_a_link_and_reports_what_it_cannot_read(tmp_path):
    """A link beside the photo it points to used to take its place silently (only
    `a_link.jpg` was written); broken links and pipes named like photos were passed over."""
    folder = tmp_path / "in"
    (photo,) = _photos(folder, 1)
    real = folder / "photo.jpg"
    photo.rename(real)
    (folder / "a_link.jpg").symlink_to("photo.jpg")
    (folder / "broken.jpg").symlink_to("nowhere.jpg")
    os.mkfifo(folder / "pipe.jpg")
    todo, settled = plan_batch([folder], tmp_path / "out")
    assert [i.source.name for i in todo] == ["photo.jpg"]
    why = {r.source.name: (r.status, r.message) for r in settled}
    assert why["a_link.jpg"][0] == "passed over" and "photo.jpg" in why["a_link.jpg"][1]
    assert why["broken.jpg"][0] == "failed" and "broken link" in why["broken.jpg"][1]
    assert why["pipe.jpg"][0] == "failed" and "not a regular file" in why["pipe.jpg"][1]
    _, settled = plan_batch([folder / "pipe.jpg"], tmp_path / "out")
    assert "not a regular file" in settled[0].message
    # A loop of links, with --out inside the input folder (every entry's place is then looked
    # up): planning stopped with "RuntimeError: Symlink loop".
    (folder / "loop1.jpg").symlink_to("loop2.jpg")
    (folder / "loop2.jpg").symlink_to("loop1.jpg")
    todo, settled = plan_batch([folder], folder / "out")
    assert [i.source.name for i in todo] == ["photo.jpg"]
    assert {r.source.name for r in settled if "loop" in r.message} >= {"loop1.jpg", "loop2.jpg"}


def test_a_linked_folder_in_a_library_is_searched_once_and_a_link_above_is_no_loop(tmp_path):
    """A linked subfolder (a year kept on another disk) was left out without a word: rglob
    does not enter links to folders."""
    _photos(tmp_path / "lib", 1)
    _photos(tmp_path / "disk" / "2023", 2)
    _photos(tmp_path / "lib" / "real", 1)
    (tmp_path / "lib" / "2023").symlink_to(tmp_path / "disk" / "2023")
    (tmp_path / "lib" / "again").symlink_to("2023")  # the same folder twice: entered once
    (tmp_path / "lib" / "a_real").symlink_to("real")  # a link to a folder there: its own name wins
    (tmp_path / "lib" / "up").symlink_to("..")  # a loop: not entered
    todo, settled = plan_batch([tmp_path / "lib"], tmp_path / "out")
    outs = sorted(str(i.output.relative_to(tmp_path / "out")) for i in todo)
    assert outs == ["2023/img_00.jpg", "2023/img_01.jpg", "img_00.jpg", "real/img_00.jpg"] and not settled


def test_a_folder_that_cannot_be_looked_into_is_reported(tmp_path):
    """A subfolder without read permission was left out without a word (rglob, like os.walk,
    passes over the folders it cannot list)."""
    _photos(tmp_path / "lib", 1)
    _photos(tmp_path / "lib" / "locked", 1)
    code = ("import sys; from camseg.batch import plan_batch; todo, settled = plan_batch([sys.argv[1]], sys.argv[2]); "
            "print([i.source.name for i in todo]); print([(r.source.name, r.status, r.message) for r in settled])")
    command = [sys.executable, "-c", code, str(tmp_path / "lib"), str(tmp_path / "out")]
    if os.geteuid() == 0:  # root reads any folder: run the planning without that power
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and setpriv is not here to drop the power to read any folder")
        command = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                   "--bounding-set=-dac_override,-dac_read_search", *command]
    (tmp_path / "lib" / "locked").chmod(0)
    try:
        run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        (tmp_path / "lib" / "locked").chmod(0o755)
    if run.returncode != 0 and run.stderr.startswith("setpriv"):  # (a container that may not drop it)
        pytest.skip(f"setpriv cannot drop the power to read any folder here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    todo, settled = run.stdout.splitlines()
    assert todo == "['img_00.jpg']"
    assert "('locked', 'failed', 'cannot look into this folder (Permission denied)" in settled
    assert "chmod u+rx" in settled


def test_an_empty_file_at_an_outputs_name_is_done_again(tmp_path):
    """camseg writes whole files or none, so an empty one there is not a finished output."""
    photos = _photos(tmp_path / "in", 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / photos[0].name).write_bytes(b"")
    _finished(plan_batch([photos[1]], tmp_path / "out")[0][0])
    todo, settled = plan_batch([tmp_path / "in"], tmp_path / "out")
    assert [i.source.name for i in todo] == [photos[0].name]
    assert [r.status for r in settled] == ["skipped"]


def test_resume_with_other_settings_is_flagged(tmp_path):
    photos = _photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    _finished(plan_batch(photos, out)[0][0])  # a finished output
    from camseg.batch import STAMP_NAME
    from camseg.pipeline import DevelopSettings
    first = run_batch([tmp_path / "in"], out, settings=DevelopSettings(style="standard"), progress=False)
    assert first.ok and first.skipped == 1 and not first.notes and (out / STAMP_NAME).exists()
    second = run_batch([tmp_path / "in"], out, settings=DevelopSettings(style="warm"), progress=False)
    assert second.skipped == 1 and "different settings" in second.notes[0]


def test_only_the_write_options_of_an_outputs_format_count_as_other_settings(tmp_path):
    """--quality 50 after a default run counted every PNG output as made with other settings
    (a JPEG quality changes nothing in a PNG), and --bit-depth 16 every JPEG."""
    (jpeg,) = _photos(tmp_path / "in", 1)
    Image.open(jpeg).save(tmp_path / "in" / "b.png")
    out = tmp_path / "out"
    assert run_batch([tmp_path / "in"], out, progress=False, jobs=1).done == 2
    lower = run_batch([tmp_path / "in"], out, progress=False, quality=50)
    assert lower.skipped == 2 and "1 finished output(s)" in lower.notes[0]
    deeper = run_batch([tmp_path / "in"], out, progress=False, bit_depth=16)
    assert deeper.skipped == 2 and "1 finished output(s)" in deeper.notes[0]


def _other_model(folder):
    """The bundled model with one weight changed (a real, loadable model that segments otherwise)."""
    import shutil

    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from camseg.segmenter import DEFAULT_MODEL

    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(DEFAULT_MODEL))
    weight = next(i for i in model.graph.initializer if i.name.endswith("_fp16"))
    changed = numpy_helper.to_array(weight).copy()
    changed.flat[0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(changed, weight.name))
    onnx.save(model, str(folder / "other.onnx"))
    shutil.copy(DEFAULT_MODEL.with_name("hyperdetr_scene.onnx"), folder / "other_scene.onnx")
    return folder / "other.onnx"


def test_resume_with_another_model_is_flagged(tmp_path):
    """Another --model gives other masks: its finished outputs are named as a style change is."""
    photos = _photos(tmp_path / "in", 1)
    other = _other_model(tmp_path / "model")
    for task in ("develop", "segment"):
        out = tmp_path / task
        first = run_batch(photos, out, task=task, jobs=1, progress=False)
        assert first.done == 1 and not first.notes
        again = run_batch(photos, out, task=task, jobs=1, progress=False)
        assert again.skipped == 1 and not again.notes
        second = run_batch(photos, out, task=task, jobs=1, progress=False, model_path=other)
        assert second.skipped == 1 and "another model" in second.notes[0]
    # (Review) A byte-identical copy of the model under another name is the same model.
    import shutil

    from camseg.segmenter import DEFAULT_MODEL

    copy = tmp_path / "copy" / "renamed.onnx"
    copy.parent.mkdir()
    shutil.copy(DEFAULT_MODEL, copy)
    shutil.copy(DEFAULT_MODEL.with_name("hyperdetr_scene.onnx"), copy.with_name("renamed_scene.onnx"))
    same = run_batch(photos, tmp_path / "develop", jobs=1, progress=False, model_path=copy)
    assert same.skipped == 1 and not same.notes


def test_a_record_from_before_models_were_recorded_is_not_flagged(tmp_path):
    from camseg import records

    photos = _photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    assert run_batch(photos, out, jobs=1, progress=False).done == 1
    output = out / photos[0].name
    record, _ = records.read(output, "develop")
    del record["made_with"]["model"]
    records.write_final(output, record["photo"], [output], record["made_with"], "develop")
    again = run_batch(photos, out, jobs=1, progress=False)
    assert again.skipped == 1 and not again.notes


@pytest.mark.parametrize("which", ["missing", "scene-only", "not a model", "damaged scene-only twin"])
def test_a_bad_model_is_refused_before_any_photo(tmp_path, which):
    """(A damaged scene-only twin beside a good model passed the check, and each worker's model
    load failed: every photo failed with it, one by one.)"""
    import shutil

    from camseg.segmenter import DEFAULT_MODEL

    photos = _photos(tmp_path / "in", 2)
    (tmp_path / "m").mkdir()
    shutil.copy(DEFAULT_MODEL, tmp_path / "m" / "m.onnx")
    (tmp_path / "m" / "m_scene.onnx").write_bytes(DEFAULT_MODEL.with_name("hyperdetr_scene.onnx").read_bytes()[:5000])
    path = {"missing": tmp_path / "nowhere.onnx", "scene-only": DEFAULT_MODEL.with_name("hyperdetr_scene.onnx"),
            "not a model": photos[0], "damaged scene-only twin": tmp_path / "m" / "m.onnx"}[which]
    expected = {"missing": "does not exist", "scene-only": "scene-only model", "not a model": "cannot load",
                "damaged scene-only twin": "scene-only twin beside it that cannot be used.*m_scene.onnx"}[which]
    with pytest.raises((ValueError, FileNotFoundError), match=expected):
        run_batch(photos, tmp_path / "out", jobs=1, progress=False, model_path=path)
    assert not (tmp_path / "out").exists()


# --- Dask ---------------------------------------------------------------------------

def test_dask_local_cluster_matches_the_process_pool(tmp_path):
    """The same batch on a local Dask cluster: same outputs, bad files reported, resumable."""
    distributed = pytest.importorskip("distributed")
    photos = _photos(tmp_path / "in", 3)
    (tmp_path / "in" / "zero.jpg").write_bytes(b"")
    before = _digest(photos)
    reference = run_batch([tmp_path / "in"], tmp_path / "ref", jobs=1, progress=False)
    summary = run_batch([tmp_path / "in"], tmp_path / "dask", jobs=2, progress=False, dask_scheduler="local")
    assert summary.done == 3 and len(summary.failed) == 1 and "empty" in summary.failed[0].message
    assert reference.done == 3
    for p in photos:
        a = np.asarray(Image.open(tmp_path / "ref" / p.name), dtype=int)
        b = np.asarray(Image.open(tmp_path / "dask" / p.name), dtype=int)
        assert np.abs(a - b).max() <= 1  # same pipeline, other process: at most JPEG rounding
    (tmp_path / "dask" / photos[0].name).unlink()  # resume on a running cluster, by its address
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        again = run_batch([tmp_path / "in"], tmp_path / "dask", progress=False,
                          dask_scheduler=cluster.scheduler_address)
    assert again.done == 1 and again.skipped == 2
    assert _decodes_fully(tmp_path / "dask" / photos[0].name)
    assert _digest(photos) == before
    assert not list((tmp_path / "dask").glob(f".*{cio.TEMP_SUFFIX}"))


def test_ctrl_c_on_a_local_dask_cluster_stops_after_the_photos_in_progress(tmp_path):
    """On Dask, Ctrl-C cancelled every photo, those a worker was developing too: their work was
    lost, each printed a "CancelledError" warning (tester). The photos in progress now finish,
    as on the process pool; the next run completes the batch."""
    pytest.importorskip("distributed")
    photos = _photos(tmp_path / "in", 12, size=(240, 320))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "camseg.cli", "develop", str(tmp_path / "in"), "--out", str(out),
           "--jobs", "2", "--dask", "local", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("*.jpg")):
        time.sleep(0.02)
    text = _ctrl_c(proc)
    assert proc.returncode == 130 and "Traceback" not in text and "CancelledError" not in text, text[-2000:]
    finished = list(out.glob("*.jpg"))
    assert 0 < len(finished) < len(photos) and all(_decodes_fully(p) for p in finished)
    assert not list(out.rglob(f"*{cio.TEMP_SUFFIX}"))
    again = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(p.stem for p in out.glob("*.jpg")) == sorted(p.stem for p in photos)


def _task_keys(dask_scheduler=None):
    """The scheduler's task keys (``client.run_on_scheduler``), as strings."""
    return [str(key) for key in dask_scheduler.tasks]


def test_a_lost_dask_worker_does_not_make_finished_photos_again(tmp_path):
    """The batch held every result until the end, so each stayed in its worker's memory: when a
    worker died, Dask developed again every photo that worker had finished, and rewrote their
    outputs after they were reported done (tester). Now only the photos in progress are redone."""
    distributed = pytest.importorskip("distributed")
    _photos(tmp_path / "in", 6, size=(240, 320))
    inodes = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)  # worker address -> its process

        def on_result(result):
            inodes[result.output] = result.output.stat().st_ino
            if len(inodes) == 3:  # every worker, those that held the first two results among them
                # Released asynchronously: killed before the scheduler forgot the first two, a
                # worker would take them with it even with the fix. Wait for that.
                first_two = [p.name for p in list(inodes)[:2]]
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and any(
                        key.endswith(name) for key in client.run_on_scheduler(_task_keys) for name in first_two):
                    time.sleep(0.05)
                for pid in pids.values():
                    os.kill(pid, signal.SIGKILL)

        summary = run_batch([tmp_path / "in"], tmp_path / "out", progress=False, on_result=on_result,
                            dask_scheduler=cluster.scheduler_address)
        time.sleep(2)  # (a photo made again after the batch returned would be rewritten meanwhile)
    assert summary.done == 6 and not summary.failed
    first_two = list(inodes.items())[:2]  # (the third's release may reach the scheduler after the kill)
    assert [p.name for p, ino in first_two if p.stat().st_ino != ino] == []


def _dask_worker_in_this_process(monkeypatch):
    """camseg.batch, readied for a Dask worker whose threads run in this process (a
    ``LocalCluster(processes=False)``): its worker state fresh, and _init_worker's process-wide
    settings, which would outlive the test in pytest's process, left alone."""
    import camseg.batch as batch

    import cv2

    for key in batch._WORKER:
        monkeypatch.setitem(batch._WORKER, key, None)
    monkeypatch.setattr(batch, "quiet_decoder_warnings", lambda: None)
    monkeypatch.setattr(batch, "reuse_freed_memory", lambda: None)
    monkeypatch.setattr(cv2, "setNumThreads", lambda n: None)
    return batch


def _run_on_a_two_thread_dask_worker(tmp_path):
    """run_batch of ``tmp_path/in`` to ``tmp_path/out`` on a cluster of one worker of two threads, in this process."""
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        return run_batch([tmp_path / "in"], tmp_path / "out", progress=False,
                         dask_scheduler=cluster.scheduler_address)


def test_a_dask_worker_of_several_threads_loads_the_model_once(tmp_path, monkeypatch):
    """A Dask worker runs a task per thread (`dask worker` and `LocalCluster()`: one per core):
    the photos that started while its first photo loaded the model failed with "the
    segmentation model is not loaded" (tester: 5 of 6 with a model read from a slow disk)."""
    pytest.importorskip("distributed")
    import camseg.segmenter as segmenter

    _dask_worker_in_this_process(monkeypatch)
    loads, load = [], segmenter.Segmenter.__init__

    def slow_load(self, *args, **kwargs):
        loads.append(1)
        time.sleep(1)  # a model on a slow shared disk
        load(self, *args, **kwargs)

    monkeypatch.setattr(segmenter.Segmenter, "__init__", slow_load)
    _photos(tmp_path / "in", 4)
    summary = _run_on_a_two_thread_dask_worker(tmp_path)
    assert summary.done == 4 and not summary.failed, [r.message for r in summary.failed]
    assert len(loads) == 1


def test_a_dask_cluster_worker_sizes_its_tasks_by_its_own_cores(tmp_path, monkeypatch):
    """A cluster's worker got the threads of the client's cores over the photos left: a resumed
    run with one photo left gave it every core of the client, on a worker running two tasks."""
    pytest.importorskip("distributed")
    batch = _dask_worker_in_this_process(monkeypatch)
    _photos(tmp_path / "in", 1)
    summary = _run_on_a_two_thread_dask_worker(tmp_path)
    assert summary.done == 1 and not summary.failed, [r.message for r in summary.failed]
    assert batch._WORKER["model"][1] == max(1, (os.cpu_count() or 1) // 2)


def test_relative_paths_reach_dask_workers_in_another_folder(tmp_path, monkeypatch):
    """`camseg develop photos --out developed --dask tcp://...` sent the relative paths as given:
    a worker started in another folder (any `dask worker` on another machine) failed every photo
    with "No such file or directory", or would have read and written beside its own folder
    (tester). They go as absolute paths now, and results still name them as given."""
    distributed = pytest.importorskip("distributed")
    from camseg.segmenter import DEFAULT_MODEL

    _photos(tmp_path / "in", 2)
    (tmp_path / "m").mkdir()
    for model in DEFAULT_MODEL.parent.glob(DEFAULT_MODEL.stem + "*.onnx"):  # (and its scene-only twin)
        shutil.copy(model, tmp_path / "m" / model.name)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        monkeypatch.chdir(tmp_path)  # the worker stays in the folder it started in
        summary = run_batch(["in"], "out", progress=False, dask_scheduler=cluster.scheduler_address,
                            model_path=f"m/{DEFAULT_MODEL.name}")  # (a relative model path failed the same way)
    assert summary.done == 2 and not summary.failed, [r.message for r in summary.failed]
    assert sorted(str(r.source) for r in summary.results) == ["in/img_00.jpg", "in/img_01.jpg"]
    assert all(_decodes_fully(tmp_path / "out" / name) for name in ("img_00.jpg", "img_01.jpg"))


def test_two_batches_on_one_dask_cluster_each_make_their_own_photos(tmp_path):
    """Two batches on one cluster (two `camseg develop --dask ADDRESS` to other --out folders) gave
    their photos the same task keys: Dask handed the second batch the first's tasks, and it
    reported its photos done without writing them (tester)."""
    distributed = pytest.importorskip("distributed")
    from camseg.pipeline import DevelopSettings

    _photos(tmp_path / "in", 3)
    second = []
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:

        def on_result(result):  # the first batch still holds its other photos' tasks
            if not second:
                second.append(run_batch([tmp_path / "in"], tmp_path / "b", progress=False,
                                        settings=DevelopSettings(style="warm"),
                                        dask_scheduler=cluster.scheduler_address))

        first = run_batch([tmp_path / "in"], tmp_path / "a", progress=False, on_result=on_result,
                          dask_scheduler=cluster.scheduler_address)
    assert first.done == 3 and second[0].done == 3
    for out in ("a", "b"):
        assert sorted(p.name for p in (tmp_path / out).glob("*.jpg")) == ["img_00.jpg", "img_01.jpg", "img_02.jpg"]
        assert all(_decodes_fully(p) for p in (tmp_path / out).glob("*.jpg"))


def test_a_finished_batch_needs_no_dask_scheduler(tmp_path):
    """A resumed run with every photo finished still connected to the scheduler: with the
    cluster gone it failed after 30 s ("Timed out trying to connect") where the process pool
    says "2 already finished" (tester)."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    photos = _photos(tmp_path / "in", 2)
    todo, _ = plan_batch(photos, tmp_path / "out")
    for item in todo:
        _finished(item)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):  # (failing, it fails soon)
        summary = run_batch(photos, tmp_path / "out", progress=False, dask_scheduler="tcp://127.0.0.1:1")
    assert summary.skipped == 2 and summary.ok


def test_dask_scheduler_argument_is_checked(tmp_path):
    _photos(tmp_path / "in", 1)
    with pytest.raises(ValueError, match="dask_scheduler must be a scheduler address"):
        run_batch([tmp_path / "in"], tmp_path / "out", progress=False, dask_scheduler="")


def test_reuse_freed_memory_keeps_big_frames_in_the_heap():
    import subprocess
    import sys

    # Fresh processes (the setting is process-wide): write a 64 MB frame, free it, write a new one,
    # and count the page faults of the second write. Reused heap pages are already mapped.
    code = (
        "import numpy as np, resource, sys\n"
        "from camseg.batch import reuse_freed_memory\n"
        "if sys.argv[1] == 'on' and not reuse_freed_memory(): sys.exit(3)\n"
        "a = np.ones(16 << 20, np.float32); del a\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "b = np.ones(16 << 20, np.float32)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {}
    for mode in ("off", "on"):
        run = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True)
        if run.returncode == 3:
            pytest.skip("not glibc: nothing to tune")
        assert run.returncode == 0, run.stderr
        faults[mode] = int(run.stdout)
    # 64 MB of fresh pages by default: 16 k faults, or 32 with transparent huge pages
    assert faults["off"] >= 16
    assert faults["on"] <= faults["off"] // 10


def test_progress_in_a_log_is_plain_lines(tmp_path):
    """With stderr a file (a cron job's log), tqdm's carriage-return redraws piled up in it."""
    _photos(tmp_path / "in", 2)
    log = tmp_path / "log.txt"
    code = ("import sys; from camseg.cli import main; "
            f"sys.exit(main(['develop', {str(tmp_path / 'in')!r}, '--out', {str(tmp_path / 'out')!r}, '-j', '1']))")
    with open(log, "w") as fh:
        done = subprocess.run([sys.executable, "-c", code], stderr=fh, cwd=REPO, timeout=300)
    text = log.read_text()
    assert done.returncode == 0 and "\r" not in text
    assert f"develop [{'#' * 30}] 2/2" in text


def test_a_second_ctrl_c_stops_the_batch_at_once(tmp_path):
    """A second Ctrl-C while the photos in progress finished hung the command for good (5 of 5
    tries with 0.1-0.5 s between the two): it broke the pool's wait, and the idle workers were
    never told to exit. It now stops the workers at once; the next run completes the batch."""
    proc, out, photos, before, cmd = _start_cli_batch(tmp_path, 12, size=(960, 1280), stderr=subprocess.PIPE)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the batch hung after a second Ctrl-C")
    assert proc.returncode == 130 and b"Traceback" not in err, err.decode(errors="replace")[-2000:]
    from camseg.cli import main

    assert main(cmd[3:]) == 0
    assert sorted(p.stem for p in out.glob("*.jpg")) == sorted(p.stem for p in photos)
    assert all(_decodes_fully(p) for p in out.glob("*.jpg")) and _digest(photos) == before


def _ctrl_c(proc) -> str:
    """Ctrl-C to ``proc``'s process group, as a terminal sends it; its stderr, read to the end
    (the group is killed if it has not exited within 60 s)."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return err.decode(errors="replace")


def _session_processes(session: int) -> dict:
    """pid -> command line of the processes in a session (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[3]) == session:  # field 6, the session id
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("when", ["importing", "forkserver starting", "dask cluster starting"])
def test_ctrl_c_in_the_first_second_prints_no_traceback(tmp_path, when):
    """A Ctrl-C in a batch's first second printed a traceback (3 of 30 random Ctrl-C and
    SIGTERM trials in 0-2.5 s): the command's own while it imported numpy, OpenCV and
    onnxruntime; the forkserver's, which reaches the whole process group too, while it
    imported them; or a half-started worker's FileNotFoundError after the command had gone.
    With ``--dask local``, each starting Dask worker printed its own (about 80 lines). The
    command now says "interrupted" (130) and the next run completes the batch."""
    if when.startswith("dask"):
        pytest.importorskip("distributed")
    photos = _photos(tmp_path / "in", 4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "camseg.cli", "develop", str(tmp_path / "in"), "--out", str(out),
           "--jobs", "2", "--no-progress", "--quiet"] + (["--dask", "local"] if when.startswith("dask") else [])
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if when == "importing":
            if "/cv2/" in Path(f"/proc/{proc.pid}/maps").read_text():
                break  # the command imports OpenCV, then onnxruntime (camseg.batch's imports)
        elif when == "forkserver starting":
            if any(b"multiprocessing.forkserver" in c for c in _session_processes(proc.pid).values()):
                time.sleep(0.1)  # the server is importing the batch's modules (about a second)
                break
        elif sum(b"multiprocessing.forkserver" in c for c in _session_processes(proc.pid).values()) >= 3:
            # The server and two processes forked from it: Dask's workers starting (a
            # second or so; the batch's own process that waits for the server lives
            # milliseconds, and one at a time).
            break
        time.sleep(0.005)
    text = _ctrl_c(proc)  # (read to its end: what a half-started worker printed after the command exited)
    assert proc.returncode == 130 and "camseg: interrupted" in text, text[-2000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-2000:]
    from camseg.cli import main

    assert main(cmd[3:]) == 0
    assert sorted(p.stem for p in out.glob("*.jpg")) == sorted(p.stem for p in photos)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_while_a_slow_forkserver_starts_stops_at_once(tmp_path):
    """While the worker processes' server imports its libraries (a second here; far longer from
    a cold or network disk), a Ctrl-C stops the command at once: held until the server was
    ready, it did nothing for 20 s (tester, slow start simulated as here)."""
    photos = _photos(tmp_path / "in", 2)
    slow = tmp_path / "slow"
    slow.mkdir()
    # The forkserver is `python -c "from multiprocessing.forkserver import main; ..."`.
    (slow / "sitecustomize.py").write_text("import sys, time\nif sys.argv[:1] == ['-c']:\n    time.sleep(30)\n")
    cmd = [sys.executable, "-m", "camseg.cli", "develop", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
           "--jobs", "2", "--no-progress", "--quiet"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(slow), str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any(b"multiprocessing.forkserver" in c for c in _session_processes(proc.pid).values()):
                break
            time.sleep(0.01)
        time.sleep(0.5)  # the command now waits for the server
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=25)
        took = time.monotonic() - sent
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # (the server still sleeping, and whatever is left)
    err = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == 130 and "camseg: interrupted" in err and "Traceback" not in err, err[-2000:]
    assert took < 10, f"the command took {took:.1f} s to stop after Ctrl-C"
    assert not (tmp_path / "out").exists() or len(list((tmp_path / "out").glob("*.jpg"))) < len(photos)


def test_held_interrupts_are_raised_once_and_the_handlers_come_back(monkeypatch):
    """What the batch holds while its workers start (batch._InterruptsHeld): a signal then
    reaches the caller's handler when released, once; a second Ctrl-C at once; the handlers
    are the caller's again afterwards. And a quiet forkserver start that fails leaves SIGINT
    unblocked (batch._start_forkserver)."""
    import multiprocessing
    from multiprocessing import resource_tracker

    from camseg.batch import _InterruptsHeld, _start_forkserver

    got = []

    def mine(signum, frame):
        got.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt

    old = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _InterruptsHeld() as held:
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
            assert got == []  # held
            held.release()
            assert got == [signal.SIGTERM]  # once
            held.release()
            assert got == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):
            with _InterruptsHeld():
                signal.raise_signal(signal.SIGINT)
                assert got == [signal.SIGTERM]  # held
                signal.raise_signal(signal.SIGINT)  # a second Ctrl-C: raised at once
                pytest.fail("a second Ctrl-C was held too")
        assert got == [signal.SIGTERM, signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
        if "forkserver" in multiprocessing.get_all_start_methods():
            def fail():
                raise OSError("no sockets here")

            monkeypatch.setattr(resource_tracker, "ensure_running", fail)
            with pytest.raises(OSError, match="no sockets"):
                _start_forkserver(multiprocessing.get_context("forkserver"), quiet=True)
            assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
            assert got == [signal.SIGTERM, signal.SIGINT]
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def test_more_jobs_than_cores_are_reduced_with_a_note(tmp_path):
    """--jobs 1000 started a worker (and a model) per photo: 7 GB for 40 small photos."""
    photos = _photos(tmp_path / "in", 3)
    summary = run_batch(photos, tmp_path / "out", jobs=(os.cpu_count() or 1) + 5, progress=False)
    assert summary.ok and len(summary.results) == 3
    assert any(f"reduced to {os.cpu_count() or 1}, the CPU cores" in n for n in summary.notes), summary.notes


def test_sigterm_stops_the_batch_as_ctrl_c_does(tmp_path):
    """kill, systemd and docker stop send SIGTERM: the command died at once with no word, its
    workers mid-photo, leaving temporaries in --out until the next run."""
    proc, out, photos, before, cmd = _start_cli_batch(tmp_path, 12, size=(960, 1280), stderr=subprocess.PIPE)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and b"stopped (SIGTERM); run the same command again" in err, err[-2000:]
    assert b"Traceback" not in err
    assert not list(out.rglob(f"*{cio.TEMP_SUFFIX}"))
    assert all(_decodes_fully(p) for p in out.glob("*.jpg")) and _digest(photos) == before


def test_a_ctrl_c_that_onnxruntime_turns_into_an_import_error_is_an_interruption(tmp_path, monkeypatch, capsys):
    """onnxruntime's import turns a Ctrl-C into "ImportError: initialization failed" (its cause
    the KeyboardInterrupt): the command reported "error: initialization failed", exit 2. An
    ImportError of its own (a package missing) is still that error."""
    import camseg.cli as cli

    photos = _photos(tmp_path / "in", 1)
    real = cli.importlib.import_module

    def interrupted(name, *args):
        if name == "camseg.segmenter":
            raise ImportError("initialization failed") from KeyboardInterrupt()
        return real(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    assert cli.main(["develop", str(photos[0]), "--out", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err.strip().endswith("camseg: interrupted")
    assert not (tmp_path / "out").exists()

    def missing(name, *args):
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert cli.main(["develop", str(photos[0]), "--out", str(tmp_path / "out")]) == 2
    assert "camseg develop: error: No module named 'onnxruntime'" in capsys.readouterr().err


def test_an_empty_output_folder_is_refused(tmp_path, monkeypatch, capsys):
    """--out "$DEST" with DEST unset wrote the outputs into the current folder."""
    from camseg.cli import main

    photos = _photos(tmp_path / "in", 1)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["develop", str(photos[0]), "--out", ""])
    assert exc.value.code == 2 and "the output folder is empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_an_output_name_too_long_is_refused_when_planned(tmp_path):
    """A 254-byte name developed --format jpg needs a 258-byte output name: it failed only after
    the photo was developed ("File name too long", with an orphan record), and the next run
    blamed the folder's permissions."""
    (photo,) = _photos(tmp_path / "in", 1)
    long = photo.with_name("a" * 254)
    photo.rename(long)
    for _ in range(2):
        summary = run_batch([long], tmp_path / "out", output_format="jpg", in_process=True, progress=False)
        (result,) = summary.failed
        assert "would be 258 bytes, more than a file name can have (255); rename the photo" in result.message
    assert not list((tmp_path / "out").glob(".camseg-outputs/*"))  # no orphan record


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "foo"])
def test_an_unreachable_dask_scheduler_is_named_with_the_fix(tmp_path, address):
    """Distributed said only "Timed out trying to connect to tcp://..." or "missing port number
    in address 'foo'", naming no fix (tester)."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    photos = _photos(tmp_path / "in", 1)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):  # (failing, it fails soon)
        with pytest.raises(OSError, match=r"cannot reach the Dask scheduler .*tcp://HOST:PORT.*--dask local"):
            run_batch(photos, tmp_path / "out", progress=False, dask_scheduler=address)
    assert not any((tmp_path / "out").glob("*.jpg"))


def test_a_panorama_too_wide_for_a_jpeg_fails_before_it_is_developed(tmp_path, monkeypatch):
    """A photo wider than a JPEG holds (65,500 pixels) was developed whole, then its write failed
    as "broken data stream when writing image file"."""
    import camseg.batch as batch

    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((4, 65501, 3), 120, np.uint8)).save(tmp_path / "in" / "pano.png")
    developed = []
    monkeypatch.setattr(batch, "develop", lambda photo, *a, **k: developed.append(photo) or photo)
    summary = run_batch([tmp_path / "in"], tmp_path / "out", output_format="jpg", in_process=True, progress=False)
    assert len(summary.failed) == 1 and not developed
    assert "at most 65500 pixels a side" in summary.failed[0].message and "--format png" in summary.failed[0].message


def test_a_panoramas_overlay_is_shrunk_to_fit_a_jpeg(tmp_path):
    """The overlay preview is a JPEG, which holds no side over 65,500 pixels: a wider panorama's
    segmentation failed at its overlay, after its masks were written, on every run."""
    wide = np.zeros((8, 65501), np.float32)
    wide[:, :30000] = 1.0
    seg = types.SimpleNamespace(persons=[wide], sky=1.0 - wide)
    photo = types.SimpleNamespace(pixels=np.full((8, 65501, 3), 0.2, np.float32), icc_profile=None, alpha=None)
    written = write_segmentation(tmp_path / "pano", photo, seg)
    assert [p.name for p in written] == ["sky.png", "person_00.png", OVERLAY_NAME]
    with Image.open(tmp_path / "pano" / "sky.png") as img:
        assert img.size == (65501, 8)  # the masks keep the photo's size
    with Image.open(tmp_path / "pano" / OVERLAY_NAME) as img:
        assert img.format == "JPEG" and img.size == (65500, 8)


def test_photos_in_hidden_folders_are_passed_over_and_said(tmp_path):
    """A card's .Trashes and a viewer's .thumbnails were developed with the library (hidden
    files were passed over, photos in hidden folders were not)."""
    _photos(tmp_path / "card" / "DCIM", 1)
    _photos(tmp_path / "card" / ".Trashes" / "501", 2)
    _photos(tmp_path / "card" / "DCIM" / ".thumbnails", 1)
    todo, settled = plan_batch([tmp_path / "card"], tmp_path / "out")
    assert [str(i.source.relative_to(tmp_path / "card")) for i in todo] == ["DCIM/img_00.jpg"]
    (note,) = [r for r in settled if r.status == "passed over"]
    assert "3 photo(s) in hidden folders (.Trashes/501, DCIM/.thumbnails)" in note.message
    # Named themselves (the hidden folder as the input), they are read.
    todo, _ = plan_batch([tmp_path / "card" / ".Trashes"], tmp_path / "out2")
    assert len(todo) == 2
    # A library with photos only there says so rather than "no photo in this folder".
    _photos(tmp_path / "only" / ".thumbnails", 1)
    todo, settled = plan_batch([tmp_path / "only"], tmp_path / "out3")
    assert not todo and [r.status for r in settled] == ["passed over"]
