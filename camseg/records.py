"""Output records: which photo each batch output was made from, so a later run knows its own work.

Beside every output the batch writes, a small JSON record is kept in a hidden folder of the
output's own folder, ``.camseg-outputs/<output name>.json`` (so it moves with the folder, and
follows the file system's rules for names: on a case-insensitive disk ``IMG_1.JPG`` and
``IMG_1.jpg`` share one record as they share one file). It is written twice:

1. **pending**, just before the output is written: the photo's identity (path, size,
   modification time, fingerprint, capture time);
2. **final**, once the output is in place: the output's identity too (size, modification time,
   fingerprint).

A later run then tells apart (:func:`judge_existing_output`):

- an output **finished** from this photo (final record, output as written, same photo: by
  path and unchanged, or moved, renamed or copied, found by its fingerprint);
- one made from an **earlier version** of this photo (same path, changed, same capture time):
  made again;
- a file camseg **has no record of** (an original photo beside which the output would go),
  one **changed since camseg wrote it** (retouched by hand), or the output of **another photo**
  (another card's ``IMG_0001.JPG``, at another path or at the same path): never replaced;
- a **pending** record (a run stopped between the two writes, or an earlier output being
  made again): the output is not known to be whole and is made again.

Fingerprint: the file's size and the CRC-32 of all of it (about 1 GB/s: 20 ms for a 20 MB
photo, read when it is developed anyway). It is computed at planning time only for a photo
whose size or modification time changed, or that moved. (A hash of the file's two ends took
two uncompressed scans with the same black border for one photo.)
Capture time: EXIF DateTimeOriginal with its sub-seconds, and ImageUniqueID, which an edit
keeps and another photo does not share.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

from camseg.io import _atomic_write

__all__ = ["RECORDS_NAME", "record_path", "has_record", "photo_identity", "write_pending", "write_final",
           "read", "judge_existing_output", "FINISHED", "MAKE_AGAIN", "EDITED"]

#: Hidden folder, beside the outputs, that holds their records.
RECORDS_NAME = ".camseg-outputs"

#: Verdicts of :func:`judge_existing_output` other than a reason not to touch the output:
#: finished; not known to be whole (made again); made from an earlier version of the photo.
FINISHED, MAKE_AGAIN, EDITED = "finished", "make again", "edited"

_CHUNK = 1 << 20  # bytes read at a time for the fingerprint
_NAME_BYTES = 200  # record names longer than this are hashed (file names end at 255 bytes)
_EXIF_DATETIME_ORIGINAL, _EXIF_SUBSEC_ORIGINAL, _EXIF_IMAGE_UNIQUE_ID = 0x9003, 0x9291, 0xA420
_EXIF_IFD = 0x8769


def record_path(output: Path) -> Path:
    """Where the record of ``output`` (a file, or a ``segment`` folder) is kept."""
    name = output.name
    if len(os.fsencode(name)) > _NAME_BYTES:
        name = hashlib.sha1(os.fsencode(name)).hexdigest()
    return output.parent / RECORDS_NAME / (name + ".json")


def has_record(path: Path) -> bool:
    """Whether ``path`` is an output some camseg batch wrote (its record is there)."""
    return record_path(path).is_file()


def fingerprint(path: Path) -> str:
    """A file's size and the CRC-32 of its bytes."""
    crc, size = 0, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    return f"{size}:{crc:08x}"


def _capture(path: Path) -> "str | None":
    """EXIF capture time (with sub-seconds) and unique id, or None when the file has neither."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            exif = im.getexif().get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001 - no EXIF to read: the capture time is unknown
        return None
    when, subsec, unique = (str(exif.get(tag, "")).strip("\x00 ") for tag in
                            (_EXIF_DATETIME_ORIGINAL, _EXIF_SUBSEC_ORIGINAL, _EXIF_IMAGE_UNIQUE_ID))
    text = when + (f".{subsec}" if subsec else "") + (f" (id {unique})" if unique else "")
    return text.strip() or None


def _identity(path: Path, *, capture: bool) -> dict:
    stat = path.stat()
    out = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "fingerprint": fingerprint(path)}
    if capture:
        out["capture"] = _capture(path)
    return out


def photo_identity(photo: Path) -> dict:
    """What a record says of the photo: taken before the photo is read, so that a photo changed
    while it was being developed is not recorded as the version developed."""
    return {"source": str(photo.resolve()), **_identity(photo, capture=True)}


def _write(output: Path, record: dict) -> None:
    _atomic_write(record_path(output), lambda fh: fh.write(json.dumps(record, indent=1).encode()))


def write_pending(output: Path, photo: dict) -> None:
    """Before the output is written: the photo (:func:`photo_identity`), no output yet."""
    _write(output, {"photo": photo})


def write_final(output: Path, photo: dict, marker: Path, made_with: "dict | None" = None) -> None:
    """Once the output is in place: ``marker`` is the file whose identity stands for it (the
    output itself, or a ``segment`` folder's overlay, written last); ``made_with``, the settings
    it was made with (plain data), so a later run can say which finished outputs differ."""
    _write(output, {"photo": photo, "output": _identity(marker, capture=False), "made_with": made_with})


def read(output: Path) -> "dict | None":
    """The record of ``output``; None when there is none (or it cannot be read)."""
    try:
        record = json.loads(record_path(output).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and isinstance(record.get("photo"), dict) and "source" in record["photo"]
    return record if ok else None


def _unchanged(path: Path, known: dict) -> bool:
    """Whether the file is the one ``known`` describes: same size and time, or same fingerprint
    (copied, or touched)."""
    stat = path.stat()
    if stat.st_size != known.get("size"):
        return False
    return stat.st_mtime_ns == known.get("mtime_ns") or fingerprint(path) == known.get("fingerprint")


def judge_existing_output(photo: Path, output: Path, marker: Path, task: str, *,
                          before_records: bool = False) -> str:
    """What a run may do with an output that exists: :data:`FINISHED` (skip it, or redo it with
    overwrite), :data:`MAKE_AGAIN` (not known to be whole), :data:`EDITED` (made from an earlier
    version of this photo: made again), or why it must not be touched (a message naming the fix).

    ``marker`` is the output file, or a ``segment`` folder's overlay. ``before_records``: the
    output folder was written by a camseg from before records, whose outputs have none: one
    without a record counts as finished, as it did then.
    """
    made = "develop" if task == "develop" else "segmentation"
    record = read(output)
    if record is None and before_records:
        return FINISHED
    if record is None:
        # An original photo beside which the output would go (`--format jpg` of IMG_1.png next to
        # IMG_1.jpg): it was called finished, and --overwrite replaced it.
        return (f"{str(output)!r} exists and camseg has no record of writing it (an original photo?); camseg "
                "never replaces a file it did not write: choose another --out folder, or move that file away "
                f"(if camseg made it and its record in {RECORDS_NAME} was lost, delete it to make it again)")
    known = record["photo"]
    try:
        same_path = known["source"] == str(photo.resolve())
        if same_path:
            this_photo = _unchanged(photo, known) or "edited"
            if this_photo == "edited":
                # Changed at the same path: an edit keeps the capture time, another photo (the
                # next card at the same mount point) has its own. Without one, taken for an edit
                # (and said so).
                before, now = known.get("capture"), _capture(photo)
                this_photo = "edited" if before is None or now is None or before == now else False
        elif Path(known["source"]).exists():
            this_photo = False  # the photo it was made from is still there: this is another one
        elif fingerprint(photo) == known.get("fingerprint"):
            this_photo = True  # moved or renamed since
        else:  # moved and edited (the same capture time), or another photo
            before, now = known.get("capture"), _capture(photo)
            this_photo = "edited" if before is not None and before == now else False
        output_whole = "output" in record and _unchanged(marker, record["output"])
    except OSError as exc:
        return f"cannot read the photo or its output ({exc.strerror or exc})"
    if this_photo is False:
        return (f"{str(output)!r} holds the {made} of another photo of the same name, {known['source']!r} "
                f"(taken {known.get('capture') or 'at a time not recorded'}), from an earlier run; {task} this "
                "one into another --out folder, or delete that output to replace it")
    if "output" not in record:
        return MAKE_AGAIN  # a run stopped while writing it: not known to be whole
    if not output_whole:
        return (f"{str(output)!r} was changed after camseg wrote it (retouched?); camseg does not replace it: "
                "move it away to make it again")
    return EDITED if this_photo == "edited" else FINISHED
