"""Output records: which photo each batch output was made from, so a later run knows its own work.

Beside every output the batch writes, a small JSON record is kept in a hidden folder of the
output's own folder, ``.camseg-outputs/<output name>.json`` (so it moves with the folder, and
follows the file system's rules for names: on a case-insensitive disk ``IMG_1.JPG`` and
``IMG_1.jpg`` share one record as they share one file). It is written twice:

1. **pending**, just before the output is written: the photo's identity (path, size,
   modification time, fingerprint, capture time);
2. **final**, once the output is in place: the identity (size, modification time,
   fingerprint) of every file written -- the developed photo, or a segmentation's masks and
   overlay -- and the settings used.

A developed photo's record is ``<name>.json``, a segmentation folder's ``<name>.segment.json``
(a photo ``a.jpg.png`` segmented into the folder ``a.jpg`` must not share ``a.jpg``'s record).

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

Fingerprint: the file's size and the CRC-32 of all of it (7 ms for 20 MB in the page cache on
this machine; the photo is read when it is developed anyway). It is computed at planning time only for a photo
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
           "read", "judge_existing_output", "FINISHED", "MAKE_AGAIN", "EDITED", "EDITED_UNSURE", "OLDER"]

#: Hidden folder, beside the outputs, that holds their records.
RECORDS_NAME = ".camseg-outputs"

#: Verdicts of :func:`judge_existing_output` other than a reason not to touch the output:
#: finished; not known to be whole (made again); made from an earlier version of the photo (with
#: or without a capture time that says so); an output of a camseg from before records (kept,
#: never replaced).
FINISHED, MAKE_AGAIN, EDITED, EDITED_UNSURE, OLDER = "finished", "make again", "edited", "edited?", "older"

_CHUNK = 1 << 20  # bytes read at a time for the fingerprint
_NAME_BYTES = 200  # record names longer than this are hashed (file names end at 255 bytes)
_EXIF_DATETIME_ORIGINAL, _EXIF_SUBSEC_ORIGINAL, _EXIF_IMAGE_UNIQUE_ID = 0x9003, 0x9291, 0xA420
_EXIF_IFD = 0x8769


def record_path(output: Path, task: str = "develop") -> Path:
    """Where the record of ``output`` (a developed file, or a ``segment`` folder) is kept."""
    name = output.name
    if len(os.fsencode(name)) > _NAME_BYTES:
        name = hashlib.sha1(os.fsencode(name)).hexdigest()
    return output.parent / RECORDS_NAME / (name + (".json" if task == "develop" else ".segment.json"))


def has_record(path: Path, task: str = "develop") -> bool:
    """Whether ``path`` is an output some camseg batch wrote (a record of it is there; one that
    cannot even be looked up counts as none)."""
    try:
        return record_path(path, task).is_file()
    except OSError:
        return False


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


def _identity(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "fingerprint": fingerprint(path)}


def photo_identity(photo: Path) -> dict:
    """What a record says of the photo: taken before the photo is read, so that a photo changed
    while it was being developed is not recorded as the version developed."""
    return {"source": str(photo.resolve()), **_identity(photo), "capture": _capture(photo)}


def _write(output: Path, task: str, record: dict) -> None:
    _atomic_write(record_path(output, task), lambda fh: fh.write(json.dumps(record, indent=1).encode()))


def write_pending(output: Path, photo: dict, task: str = "develop") -> None:
    """Before the output is written: the photo (:func:`photo_identity`), no output yet."""
    _write(output, task, {"photo": photo})


def write_final(output: Path, photo: dict, files: list, made_with: "dict | None" = None,
                task: str = "develop") -> None:
    """Once the output is in place: ``files`` are all the files written (the developed photo, or
    a segmentation's masks and overlay); ``made_with``, the settings used (plain data), so a
    later run can say which finished outputs differ."""
    written = {os.path.relpath(f, output.parent): _identity(Path(f)) for f in files}
    _write(output, task, {"photo": photo, "files": written, "made_with": made_with})


def _is_identity(x) -> bool:
    return isinstance(x, dict) and isinstance(x.get("size"), int) and isinstance(x.get("mtime_ns"), int) \
        and isinstance(x.get("fingerprint"), str)


def read(output: Path, task: str = "develop") -> "tuple[dict | None, str | None]":
    """``(record, None)``; ``(None, None)`` when there is no record; ``(None, why)`` when there
    is one that cannot be read or is not a record."""
    path = record_path(output, task)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, getattr(exc, "strerror", None) or str(exc)
    photo = record.get("photo") if isinstance(record, dict) else None
    files = record.get("files", {}) if isinstance(record, dict) else None
    if not (_is_identity(photo) and isinstance(photo.get("source"), str) and isinstance(files, dict)
            and all(isinstance(k, str) and _is_identity(v) for k, v in files.items())):
        return None, "not a camseg record"
    return record, None


def _unchanged(path: Path, known: dict) -> bool:
    """Whether the file is the one ``known`` describes: same size and time, or same fingerprint
    (copied, or touched)."""
    stat = path.stat()
    if stat.st_size != known["size"]:
        return False
    return stat.st_mtime_ns == known["mtime_ns"] or fingerprint(path) == known["fingerprint"]


def judge_existing_output(photo: Path, output: Path, task: str, *, before_records: bool = False) -> str:
    """What a run may do with an output that exists (a developed file, or a non-empty
    ``segment`` folder): :data:`FINISHED` (skip it, or redo it with overwrite),
    :data:`MAKE_AGAIN` (not known to be whole), :data:`EDITED` / :data:`EDITED_UNSURE` (made
    from an earlier version of this photo; unsure when no capture time tells an edit from
    another photo), :data:`OLDER` (``before_records``: an output folder of a camseg from before
    records, whose outputs have none: kept, never replaced), or why it must not be touched (a
    message naming the fix).
    """
    made = "develop" if task == "develop" else "segmentation"
    record, unreadable = read(output, task)
    if unreadable is not None:
        return (f"{str(output)!r} has a record in {RECORDS_NAME} that cannot be read ({unreadable}); camseg does "
                "not replace it: delete the output and its record to make it again")
    if record is None and before_records:
        return OLDER
    if record is None:
        # An original photo beside which the output would go (`--format jpg` of IMG_1.png next to
        # IMG_1.jpg; a folder of the user's own named like a photo, for segment): it was called
        # finished, and --overwrite replaced it.
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
                this_photo = ("edited?" if before is None or now is None else
                              "edited" if before == now else False)
        elif fingerprint(photo) == known["fingerprint"]:
            this_photo = True  # moved, renamed or copied since
        elif Path(known["source"]).exists():
            this_photo = False  # the photo it was made from is still there: this is another one
        else:  # moved and edited (the same capture time), or another photo
            before, now = known.get("capture"), _capture(photo)
            this_photo = "edited" if before is not None and before == now else False
        if this_photo is not False and "files" in record:
            files = [(output.parent / name, ident) for name, ident in record["files"].items()]
            missing = any(not f.exists() for f, _ in files)
            changed = [f.name for f, ident in files if f.exists() and not _unchanged(f, ident)]
    except OSError as exc:
        return f"cannot read the photo or its output ({exc.strerror or exc})"
    if this_photo is False:
        return (f"{str(output)!r} holds the {made} of another photo of the same name, {known['source']!r} "
                f"(taken {known.get('capture') or 'at a time not recorded'}), from an earlier run; {task} this "
                "one into another --out folder, or delete that output to replace it")
    if "files" not in record:
        return MAKE_AGAIN  # a run stopped while writing it: not known to be whole
    if changed:
        return (f"{str(output)!r} was changed after camseg wrote it ({', '.join(changed[:3])} retouched?); camseg "
                "does not replace it: move it away to make it again")
    if missing:
        return MAKE_AGAIN  # files of it deleted since: nothing of the user's to lose
    return {"edited": EDITED, "edited?": EDITED_UNSURE}.get(this_photo, FINISHED)
