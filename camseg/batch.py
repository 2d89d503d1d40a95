"""Batch processing of photo folders: parallel, resumable, crash-safe.

``run_batch`` is what ``camseg develop`` and ``camseg segment`` run:

* **parallel**: a process pool with one model load per worker (the worker
  initializer builds one :class:`~camseg.segmenter.Segmenter` and reuses it for
  every photo); the cores are split between workers so they do not oversubscribe;
* **resumable**: an output that exists, made from the same photo, is finished (see next
  point), so a second run skips it; ``overwrite=True`` makes this photo's outputs again.
  Each output's record (:mod:`camseg.records`) names the photo it was made from;
* **crash-safe**: every file is written to a temporary name and renamed into
  place (:func:`camseg.io.write_photo`), so a kill leaves no half-written output;
  stale temporary files of dead writers are removed at the next start;
* **never touches inputs or files it did not write**: an output path that is an input is
  refused, and so is one where a file without camseg's record stands (an original photo),
  an output retouched since camseg wrote it, or the output of another photo of the same
  name from an earlier run;
* **fault-tolerant**: a photo that cannot be read or processed is reported and
  skipped, the rest goes on; :attr:`BatchSummary.ok` says whether anything failed.

The same job runs on a Dask cluster (``dask_scheduler=``; the ``[dask]``
extra) for libraries larger than one machine: each photo is one task, each
Dask worker process loads the model once (on its first photo) and keeps it,
and a worker lost mid-photo has its task retried elsewhere by Dask. Every
guarantee above holds, because the workers write through the same atomic
writer; inputs, the output folder and a model file of the caller's own must
be at the same paths on every worker (a shared file system; relative paths go
as absolute ones).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import errno
import json
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from camseg import records
from camseg.pipeline import DevelopSettings, check_settings, develop, optional_matte
from camseg.io import (_JPEG_MAX_SIDE, _NAME_MAX, DEVELOP_BYTES_PER_PIXEL, PHOTO_FORMATS, _atomic_write,
                       _jpeg_size_problem, jpeg_leaves_out, linear_to_srgb, read_photo, remove_stale_temp_files,
                       srgb_to_linear, to_srgb_primaries, write_photo)

__all__ = ["BatchItem", "ItemResult", "BatchSummary", "plan_batch", "run_batch", "mask_overlay",
           "write_segmentation", "reuse_freed_memory", "TASKS"]

#: What a batch can do to each photo.
TASKS = ("develop", "segment")

#: Scene-level mattes written by the ``segment`` task, in this order (with the default model; a
#: model of one's own writes each of its scene categories, then ``person``).
SCENE_MASKS = ("sky", "hair", "skin", "teeth", "glasses", "person")

#: Settings record written into the output folder (hidden file).
STAMP_NAME = ".camseg-batch.json"

#: Name of the file the ``segment`` task writes last: its presence marks a finished photo.
OVERLAY_NAME = "overlay.jpg"

#: Image files that camseg does not read, reported when a folder holds them (sidecars, notes and
#: the like are not): HEIF/AVIF/WebP/JPEG XL/GIF/BMP/PSD and camera raw formats.
_OTHER_IMAGE_SUFFIXES = frozenset(
    ".heic .heif .hif .avif .webp .jxl .gif .bmp .psd .jp2 .dng .cr2 .cr3 .crw .nef .nrw .arw .srf .sr2 .raf "
    ".orf .rw2 .pef .srw .x3f .3fr .iiq .erf .mos .mrw .kdc .rwl".split())

#: The photo files a folder is searched for, as messages name them.
_READABLE = "/".join(PHOTO_FORMATS)


@dataclass(frozen=True)
class BatchItem:
    """One photo to process and where its result goes (a file, or a folder for ``segment``).

    ``recorded``: the output gets a record of its photo (:mod:`camseg.records`), as every
    output :func:`plan_batch` plans does. ``note``: said with the result (why it is made again).
    """

    source: Path
    output: Path
    recorded: bool = False
    note: str = ""


@dataclass(frozen=True)
class ItemResult:
    """Outcome for one input: ``status`` is "done", "skipped" (already finished), "passed over"
    (not a photo to process: photo files of other types, earlier outputs, the same photo named
    twice) or "failed"."""

    source: Path
    output: "Path | None"
    status: str
    message: str = ""
    seconds: float = 0.0


@dataclass
class BatchSummary:
    """Totals of a batch run; ``ok`` is False if any input failed."""

    results: list = field(default_factory=list)
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(r.status == "done" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.status == "skipped" for r in self.results)

    @property
    def passed_over(self) -> int:
        return sum(r.status == "passed over" for r in self.results)

    @property
    def failed(self) -> list:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        passed = f", {self.passed_over} passed over" if self.passed_over else ""
        return (f"{self.done} done, {self.skipped} already finished{passed}, {len(self.failed)} failed "
                f"in {self.seconds:.1f} s ({rate:.2f} photos/s)")


# ---------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------

def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_FORMATS and not path.name.startswith(".")


def _hidden_under(path: Path, folder: Path) -> bool:
    """Whether ``path`` is hidden, or in a hidden folder, below ``folder`` (a name starting with ".")."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def _resolved(path: Path) -> "Path | None":
    """``path`` resolved, or None for a link loop (RuntimeError before Python 3.13)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` resolves to somewhere under ``folder`` (a link loop resolves nowhere)."""
    resolved = _resolved(path)
    return resolved is not None and folder in resolved.parents


def _folder_entries(folder: Path) -> tuple:
    """Every name under ``folder``, as ``folder.rglob("*")`` lists them, and under the folders
    linked from it too: rglob does not enter a link to a folder, and a library's linked year or
    card folder was left out without a word. Each real folder is entered once: under its own
    name where it has one there, else under the first link to it (in name order). A link to a
    folder above it (a loop) is not entered. Returns the names, and the errors of the folders
    that could not be looked into (OSError, ``filename`` set)."""
    entries, seen, links, errors = [], set(), [], []

    def walk(top) -> None:
        for here, dirs, files in os.walk(top, onerror=errors.append):  # (links to folders: listed, not entered)
            seen.add(os.path.realpath(here))
            entries.extend(Path(here) / name for name in dirs + files)
            links.extend(Path(here) / name for name in dirs if os.path.islink(os.path.join(here, name)))
            dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(here, d)) not in seen]

    walk(folder)
    while links:
        links.sort()
        link = links.pop(0)
        real = os.path.realpath(link)
        if real not in seen and not Path(os.path.realpath(link.parent)).is_relative_to(real):
            walk(link)
    return entries, errors


def _not_a_photo_file(path: Path) -> str:
    """Why ``path``, which exists as a name but is neither a file nor a folder, is not read."""
    if path.is_symlink() and not path.exists():
        return (f"a broken link or a loop of links (to {os.readlink(path)!r}); "
                "restore the photo it points to or remove the link")
    return "not a regular file (a pipe, socket or device); camseg reads photo files"


def _read_stamp(out_dir: Path) -> "dict | None":
    """The settings stamp an earlier run left in ``out_dir``; None when there is none (or it is
    not one)."""
    try:
        stamp = json.loads((out_dir / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _holds_older_outputs(stamp: "dict | None") -> bool:
    """Whether a camseg from before output records wrote into the folder of ``stamp``: its
    outputs have none (the stamp keeps saying so once a later run rewrites it)."""
    return stamp is not None and ("records" not in stamp or bool(stamp.get("older_outputs")))


def _counted(paths: list) -> str:
    """"3 .heic, 1 .webp": the files' types, most frequent first."""
    kinds = collections.Counter(p.suffix.lower() or "no extension" for p in paths)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))


def plan_batch(inputs, out_dir, *, task: str = "develop", output_format: "str | None" = None,
               overwrite: bool = False):
    """Map inputs to outputs.

    Parameters
    ----------
    inputs : iterable of str or os.PathLike
        Photo files and/or folders (searched recursively, linked folders included, for .jpg/.jpeg/
        .jpe/.jfif/.png/.tif/.tiff; the folder structure is kept under ``out_dir``). Passed over in folders: files
        inside ``out_dir`` (photos there that are no outputs are counted in a note), hidden files,
        and photos in hidden folders (``.Trashes``, ``.thumbnails``; counted in a note), outputs of
        earlier runs (they have a record; named as files themselves, they are read), and photo
        files of other types (counted in a note).
    out_dir : str or os.PathLike
        Destination folder.
    task : {"develop", "segment"}
    output_format : {"jpg", "png", "tif"} or None
        Output file type for ``develop``; None = same as each input.
    overwrite : bool
        Redo photos whose output camseg already made from them.

    Returns
    -------
    todo : list of BatchItem
        Photos to process.
    results : list of ItemResult
        Inputs settled without processing: "skipped" (already finished), "passed over" (another
        name of a photo processed under its own name, such as a link to it; earlier outputs;
        photo files of other types) or "failed" (missing file, broken link, link loop, pipe or
        device, a folder that cannot be looked into, name collision, output would overwrite an input, or an existing file there
        that must not be replaced).

    Notes
    -----
    Each output has a record of the photo it was made from (:mod:`camseg.records`). An output
    is finished only when its record names this very photo (moved or renamed, it is still
    recognised) and the output is as camseg wrote it. A file camseg has no record of (an
    original photo beside which the output would go), an output changed since camseg wrote
    it, and the output of another photo of the same name from an earlier run (photo numbers
    repeat across a camera's cards) are never replaced, even with ``overwrite``: the photo
    fails, named. An output made from an earlier version of the photo (edited since: the same
    capture time, or none to tell, which its note says) is made again, as is one whose writing
    a stopped run left unconfirmed. In an output folder of a camseg from before records,
    existing outputs count as finished, and are never replaced.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if output_format is not None:
        output_format = output_format.lower().lstrip(".")
        if "." + output_format not in PHOTO_FORMATS:
            raise ValueError(f"output_format must be one of {sorted(e[1:] for e in PHOTO_FORMATS)} or None, "
                             f"got {output_format!r}")
    out_dir = Path(out_dir)
    out_abs = out_dir.resolve()
    candidates, results = [], []
    if isinstance(inputs, (str, bytes, os.PathLike)):
        # One path, not an iterable of them: a str was walked letter by letter, and its "." (or
        # "/") developed every photo under the current folder (or tried the whole disk).
        inputs = [inputs]
    inputs = [Path(os.fsdecode(raw)) for raw in inputs]
    before_records = _holds_older_outputs(_read_stamp(out_dir))
    # (The --out folder among the inputs, `camseg develop * --out dev` run again, needs no rule
    # of its own: its outputs have records, and are passed over below one by one; new photos
    # put there are read.)
    for path in inputs:
        if path.is_dir():
            # An --out folder inside this one holds earlier outputs, not photos to develop. (An
            # --out that is this folder or above it hides nothing: every photo is then checked
            # against its output below, and refused by name where it would be overwritten.)
            skip_out = path.resolve() in out_abs.parents
            entries, in_out = [], []
            listed, unreadable = _folder_entries(path)
            for p in listed:
                (in_out if skip_out and _inside(p, out_abs) else entries).append(p)
            # A folder that cannot be looked into: its photos were left out without a word.
            results.extend(ItemResult(Path(exc.filename), None, "failed", f"cannot look into this folder "
                                      f"({exc.strerror or exc}); its photos were not processed: give your user "
                                      "read access to it (chmod u+rx) or run as its owner") for exc in unreadable)
            # Said, not silent: photos of the user's own kept in the chosen --out folder (an existing
            # subfolder) were left out without a word.
            # (A camseg from before records left outputs without any: not counted.)
            kept_out = [p for p in in_out if _is_photo(p) and p.is_file() and not records.has_record(p)
                        and not records.has_record(p.parent, "segment")] if not before_records else []
            if kept_out:
                results.append(ItemResult(path, None, "passed over", f"{len(kept_out)} photo(s) inside the --out "
                                          f"folder {str(out_dir)!r} (e.g. {str(kept_out[0])!r}) not read: files "
                                          "there are taken for outputs; name them themselves to process them, "
                                          "or choose an --out folder that holds no photos"))
            files = [p for p in entries if p.is_file()]
            # Photo names that are not files (a broken link, a pipe) are reported, not passed over.
            results.extend(ItemResult(p, None, "failed", _not_a_photo_file(p)) for p in sorted(entries)
                           if _is_photo(p) and not p.is_file() and not p.is_dir())
            found = sorted(p for p in files if _is_photo(p))
            # Photos in hidden folders (a card's .Trashes, a viewer's .thumbnails) are not the
            # library's, as hidden files are not: passed over, and said.
            hidden = [p for p in found if _hidden_under(p, path)]  # (a photo's own name is never hidden)
            if hidden:
                hidden_set = set(hidden)  # (built once: inside the comprehension, once a photo)
                found = [p for p in found if p not in hidden_set]
                folders = sorted({str(p.parent.relative_to(path)) for p in hidden})
                results.append(ItemResult(path, None, "passed over", f"{len(hidden)} photo(s) in hidden folders "
                                          f"({', '.join(folders[:3])}{', ...' if len(folders) > 3 else ''}) not "
                                          "read, as hidden files are not; name the folder or the files themselves "
                                          "to process them"))
            # So are outputs of earlier runs found there (`camseg develop photos --out photos/warm`
            # after `--out photos/dev`): developed again, dev's photos doubled the work at every
            # run, and their names collided with the originals'. Named as files, they are read.
            # (A developed photo has its own record; a segmentation's masks and overlay, their
            # folder's.)
            earlier = [p for p in found if records.has_record(p) or records.has_record(p.parent, "segment")]
            if earlier:
                outputs = set(earlier)
                found = [p for p in found if p not in outputs]
                folders = sorted({str(p.parent) for p in earlier})
                results.append(ItemResult(path, None, "passed over", f"{len(earlier)} earlier output(s) of camseg "
                                          f"(recorded in {records.RECORDS_NAME}, in {', '.join(folders[:3])}"
                                          f"{', ...' if len(folders) > 3 else ''}); name the files themselves "
                                          "to process them again"))
            others = [p for p in files if not _is_photo(p) and not _hidden_under(p, path)]
            if not found and not earlier and not kept_out and not unreadable and not hidden:
                results.append(ItemResult(path, None, "failed", "no JPEG, PNG or TIFF photo in this folder"
                                          + (f" (other files: {_counted(others)})" if others else "")
                                          + f"; camseg reads {_READABLE} files"))
            elif images := [p for p in others if p.suffix.lower() in _OTHER_IMAGE_SUFFIXES]:
                # Said, not silent: a phone's folder of mostly HEIC photos "succeeded" on its few JPEGs.
                results.append(ItemResult(path, None, "passed over", f"{len(images)} photo file(s) of other "
                                          f"types ({_counted(images)}): camseg searches folders for {_READABLE} "
                                          "only; name a WebP, BMP or GIF file itself, with --format jpg, to develop "
                                          "it, and convert HEIC, AVIF or raw files first"))
            candidates.extend((p, p.relative_to(path)) for p in found)
        elif path.is_file():
            if task == "develop" and output_format is None and path.suffix.lower() not in PHOTO_FORMATS:
                results.append(ItemResult(path, None, "failed", f"camseg writes JPEG, PNG or TIFF, not "
                                          f"{path.suffix or 'files without an extension'}; pass --format jpg "
                                          "(or png, tif) to develop it into one of those"))
                continue
            candidates.append((path, Path(path.name)))
        elif os.path.lexists(path):
            results.append(ItemResult(path, None, "failed", _not_a_photo_file(path)))
        elif any(c in str(path) for c in "*?["):
            # A pattern the shell did not expand (quoted, or a Windows prompt): "no such file" alone
            # left the user looking for a typo.
            results.append(ItemResult(path, None, "failed", "no such file or folder, and camseg does not expand "
                                      "patterns (* ? [...]): leave it unquoted for the shell to expand, or "
                                      "name the folder (searched for photos)"))
        else:
            results.append(ItemResult(path, None, "failed", "no such file or folder"))
    # The same photo named twice (a file and its folder, a repeated argument, a link to it) is
    # one photo: the first naming of each resolved path is kept, in order, except that a link
    # gives way to the photo's own name. A dropped name that would have had an output of its
    # own is reported.
    unique = {}
    for path, rel in candidates:
        key = path.resolve()
        kept = unique.setdefault(key, (path, rel))
        if kept[0] is path:
            continue
        if kept[0].is_symlink() and not path.is_symlink():
            unique[key], (path, rel) = (path, rel), kept
        if rel != unique[key][1]:
            results.append(ItemResult(path, None, "passed over", f"the same photo as {str(unique[key][0])!r}: "
                                      "processed once, under that name"))
    candidates, input_set = list(unique.values()), set(unique)
    claimed = {}
    todo = []
    for path, rel in candidates:
        if task == "develop":
            out = out_dir / (rel.with_suffix("." + output_format) if output_format else rel)
        else:
            out = out_dir / rel.parent / rel.stem
        if len(os.fsencode(out.name)) > _NAME_MAX:
            # (It failed only after the photo was developed, with the system's "File name too long",
            # and the next run blamed the folder's permissions.)
            results.append(ItemResult(path, out, "failed", f"the output name would be {len(os.fsencode(out.name))} "
                                      f"bytes, more than a file name can have ({_NAME_MAX}); rename the photo"))
            continue
        key = out.resolve()
        if key in input_set or (task == "segment" and any(key in i.parents for i in input_set)):
            results.append(ItemResult(path, out, "failed", "output would overwrite an input photo; "
                                      "choose another --out folder"))
            continue
        # Names that differ only in case (IMG_1.JPG, img_1.jpg) are one file on macOS and
        # Windows disks and on memory cards: the second photo would replace the first.
        if str(key).casefold() in claimed:
            other, other_key = claimed[str(key).casefold()]
            why = (f"{str(other)!r} has the same output name" if other_key == key else
                   f"output name collides with {str(other)!r} (on disks that ignore case, one file)")
            # (Photos of one name from two folders, two cards' IMG_0001.JPG: each folder's photos
            # go straight into --out, without the folder's name.)
            results.append(ItemResult(path, out, "failed", f"{why}; {task} one of them into another --out "
                                      "folder (one --out per folder or card), or rename one"))
            continue
        claimed[str(key).casefold()] = (path, key)
        try:
            verdict = _existing_output_verdict(path, out, task, before_records)
        except OSError as exc:  # an output folder that cannot be looked into
            verdict = f"cannot look at {str(out)!r} ({exc.strerror or exc}); check the --out folder's permissions"
        if verdict is None or verdict == records.MAKE_AGAIN:
            todo.append(BatchItem(path, out, recorded=True))
        elif verdict in (records.FINISHED, records.OLDER) and not overwrite:
            results.append(ItemResult(path, out, "skipped", "output exists"))
        elif verdict == records.FINISHED:
            todo.append(BatchItem(path, out, recorded=True))
        elif verdict == records.OLDER:
            results.append(ItemResult(path, out, "failed", f"{str(out)!r} was made by a camseg from before "
                                      "output records, and has none: camseg does not replace it; delete it to "
                                      "make it again"))
        elif verdict in (records.EDITED, records.EDITED_UNSURE):
            unsure = (" (it has no EXIF capture time to tell an edit from another photo of the same name: if "
                      "it is another, its earlier output is replaced)") if verdict == records.EDITED_UNSURE else ""
            todo.append(BatchItem(path, out, recorded=True, note=f"made again: the photo changed since "
                                  f"{str(out)!r} was made from it{unsure}"))
        else:
            results.append(ItemResult(path, out, "failed", verdict))
    return todo, results


def _existing_output_verdict(photo: Path, out: Path, task: str, before_records: bool) -> "str | None":
    """None when there is no output yet at ``out``, else :func:`camseg.records.judge_existing_output`'s
    verdict (or why a ``segment`` output cannot go there)."""
    if task == "develop":
        # camseg writes whole files or none (temporary file, then rename): an empty one at the
        # output's name is not its work and is done again.
        if not out.exists() or (out.is_file() and out.stat().st_size == 0):
            return None
    else:
        if out.exists() and not out.is_dir():
            return f"{str(out)!r} is a file, where the segmentation's folder would go; choose another --out folder"
        # A folder of the user's own named like the photo: judged like any existing output (the
        # masks written into it replaced and removed the user's sky.png, person_01.png).
        if not out.is_dir() or not any(p for p in out.iterdir() if not p.name.startswith(".")):
            return None
    return records.judge_existing_output(photo, out, task, before_records=before_records)


# ---------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------

_WORKER = {"segmenter": None, "error": None, "model": None, "model_identity": None}
#: Held by a Dask task while it checks and loads its worker's model (a Dask worker runs a task
#: per thread): see _process_on_dask_worker.
_DASK_WORKER_LOCK = threading.Lock()

# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed large blocks for reuse instead of returning them to the OS.

    ``develop()`` allocates and frees several full-size float32 frames per photo
    (144 MB each at 12 MP). By default glibc maps each with ``mmap`` and unmaps
    it when freed, so every new frame is faulted in and zeroed by the kernel
    page by page. Keeping them in the heap (mmap threshold and trim threshold
    1 GiB) measured, on this 2-core machine, 12 MP ``develop`` with default
    settings 1.9–3.1 s → 1.5–1.6 s wall, and much steadier. The process keeps
    its peak heap instead of returning it between photos, which a batch worker
    reaches on every photo anyway.

    Process-wide, so it is called by the batch workers (the ``camseg`` command's and
    :func:`run_batch`'s), never on import; a program developing many large photos may call
    it once at start. Returns False where the C library is not glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def _exit_with(parent_pid: int, every: float = 0.5) -> None:
    """Make this worker process exit soon after the batch's process ``parent_pid`` is gone.

    A killed batch (SIGKILL, or SIGTERM, which skips the pool's shutdown) left its workers,
    their forkserver and its resource tracker running with no one to hand them work: about
    300 MB a worker, until the next reboot. A daemon thread waits on a pidfd of the batch's
    process (Linux 5.3+: readable once it has exited, even before it is reaped, and never
    another process that got its number); elsewhere it polls the number every ``every``
    seconds. An output being written when it goes is a temporary file, never a half-written
    photo, and the next run removes it.
    """
    import threading

    try:
        import select

        handle = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        os._exit(1)  # gone already
    except (AttributeError, OSError):  # no pidfd here: poll the process number
        handle = None

    def watch():
        if handle is not None:
            select.select([handle], [], [])
            os._exit(1)
        while True:
            time.sleep(every)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except OSError:  # alive, owned by someone else
                pass

    threading.Thread(target=watch, name="camseg-parent-watch", daemon=True).start()


def quiet_decoder_warnings() -> None:
    """Keep the decoders' own warnings off a batch's stderr, where they broke the progress bar
    and repeated what camseg reports itself: Pillow's ("Corrupt EXIF data",
    DecompressionBombWarning; camseg reads past a damaged EXIF block and reports its own size
    limit) and OpenCV's log lines (libtiff's "TIFFReadEncodedStrip" errors on a truncated
    TIFF, which camseg reports as truncated). Process-wide, so only the command and its
    workers call it (a library call that changed the warning filters or OpenCV's log level
    would change them for its caller too)."""
    warnings.filterwarnings("ignore", module=r"PIL\.")
    try:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_FATAL)
    except (ImportError, AttributeError):  # an OpenCV build without its logging module
        pass


def _init_worker(model_path, threads, parent_pid=None, started=None, quiet=True):
    """Process-pool initializer: limit threads, reuse freed frames, load the model once for this
    worker; with ``parent_pid``, exit when that process (the batch's) is gone, and leave Ctrl-C
    to it; with ``started`` (a shared flag), say that a worker got past its model load (loaded,
    or failed to load, which each photo then reports). ``quiet``: silence the decoders'
    warnings (process-wide: not in a caller's own process, ``in_process=True``)."""
    if parent_pid is not None:
        _exit_with(parent_pid)
        # Ctrl-C in a terminal reaches the whole process group: the batch stops handing out
        # photos and waits for those in progress, which the workers finish (a KeyboardInterrupt
        # in a worker printed its traceback and lost its photo).
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if quiet:
        quiet_decoder_warnings()
    _WORKER["model"] = (str(model_path), threads)
    reuse_freed_memory()
    try:
        import cv2

        cv2.setNumThreads(max(1, int(threads)))
    except Exception:  # noqa: BLE001 - thread tuning is an optimisation only
        pass
    try:
        from camseg.segmenter import Segmenter

        _WORKER["segmenter"] = Segmenter(model_path, threads=threads)
        _WORKER["model_identity"] = _model_identity(model_path)  # what each output's record keeps
        _WORKER["error"] = None
    except Exception as exc:  # noqa: BLE001 - reported for every photo instead of killing the pool
        _WORKER["segmenter"] = None
        _WORKER["error"] = f"cannot load the segmentation model: {type(exc).__name__}: {exc}"
    if started is not None:
        started.value = 1


def _process_on_dask_worker(item: BatchItem, task: str, settings: DevelopSettings, write_options: dict,
                            model_path, threads: "int | None") -> ItemResult:
    """A Dask task: load the model on this worker's first photo (and keep it), then process.
    ``threads`` None: the worker's cores over the tasks it runs at once."""
    # A Dask worker runs one task per thread (`dask worker` and `LocalCluster()`: one per core).
    # _init_worker marks the model as this worker's before it is loaded: the photos that started
    # meanwhile found none and failed ("the segmentation model is not loaded"). They wait for it
    # now (uncontended once it is loaded: microseconds a photo).
    # The task keeps the model it checked: another batch on the same cluster with another model
    # may load its own meanwhile, and this photo would have been made, and recorded, with that.
    if threads is None:
        # A cluster's worker (not this machine's local cluster): its own cores shared among the
        # tasks it runs at once. The client's cores and the photos left had set it: 8 threads a
        # task on a 32-core worker running 32 tasks, and another model load on every worker
        # when a resumed run had fewer photos left.
        from distributed import get_worker

        threads = max(1, (os.cpu_count() or 1) // max(1, get_worker().state.nthreads))
    with _DASK_WORKER_LOCK:
        if _WORKER["model"] != (str(model_path), threads):
            _init_worker(model_path, threads)
        worker = dict(_WORKER)
    return _process(item, task, settings, write_options, worker)


#: What to do when an output cannot be written, by errno.
_WRITE_FIXES = {errno.ENOSPC: "free some space and run the same command again (finished photos are kept)",
                errno.EDQUOT: "free some space and run the same command again (finished photos are kept)",
                errno.EROFS: "choose an --out folder on a writable disk",
                errno.EACCES: "choose an --out folder you may write to, or change its permissions",
                errno.EPERM: "choose an --out folder you may write to, or change its permissions"}


@contextlib.contextmanager
def _write_errors_explained(output: Path):
    """Re-raise an OSError from writing ``output`` with the path and the fix in its message."""
    try:
        yield
    except OSError as exc:
        fix = _WRITE_FIXES.get(exc.errno)
        if fix is None:
            raise
        raise OSError(exc.errno, f"cannot write {str(output)!r}: {exc.strerror}; {fix}") from exc


def _made_with(task: str, settings: DevelopSettings, write_options: dict, model: dict) -> dict:
    """The settings an output is made with, as its record keeps them (plain data).

    ``model`` is :func:`_model_identity` of the segmentation model: another model gives
    other masks, so its outputs differ as another style's do.
    """
    return {"task": task, "settings": settings.to_dict() if task == "develop" else None,
            "write": dict(write_options) if task == "develop" else None, "model": model}


def _model_identity(path) -> dict:
    """What records keep of the model: the SHA-256 of its file and of the scene-only twin beside
    it, which serves the calls that need no people (6 MB: milliseconds). Not the file's name: a
    copy of the same model elsewhere is the same model."""
    import hashlib

    from camseg.segmenter import DEFAULT_MODEL, _scene_model_path

    def sha256(file: Path) -> "str | None":
        if not file.is_file():
            return None
        digest = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    path = Path(DEFAULT_MODEL if path is None else path)
    return {"sha256": sha256(path), "scene_sha256": sha256(_scene_model_path(path))}


def _for_format(made: dict, output: Path) -> dict:
    """``made`` (a ``made_with``) with only the write options that apply to ``output``'s format:
    a JPEG's quality, a PNG's or TIFF's bit depth."""
    write = made.get("write")
    if not isinstance(write, dict):
        return made
    jpeg = PHOTO_FORMATS.get(output.suffix.lower()) == "JPEG"
    return {**made, "write": {k: v for k, v in write.items() if k != ("bit_depth" if jpeg else "quality")}}


def _made_otherwise(made: dict, now: dict) -> bool:
    """Whether a record's ``made_with`` differs from this run's in what both record.

    A record written before a field existed (the model, before session 19) does not know it:
    it is not counted as different for that.
    """
    return any(key in made and made[key] != value for key, value in now.items())


def _process(item: BatchItem, task: str, settings: DevelopSettings, write_options: dict,
             worker: "dict | None" = None) -> ItemResult:
    """Read, develop or segment, and write one photo, with ``worker``'s model (this process's
    ``_WORKER`` by default): its result, done or failed (an error is reported, not raised)."""
    worker = _WORKER if worker is None else worker
    t0 = time.perf_counter()
    try:
        # Before it is read: a photo changed while it is developed is not recorded as developed.
        try:
            identity = records.photo_identity(item.source) if item.recorded else None
        except OSError:
            # Gone since the batch was planned, or unreadable: read_photo says which, with the fix
            # (the record's bare "[Errno 2] No such file or directory" named none).
            read_photo(item.source)
            raise
        photo = read_photo(item.source)  # bad files fail here, before the model is needed
        if worker["segmenter"] is None:
            raise RuntimeError(worker["error"] or "the segmentation model is not loaded")
        jpeg_out = task == "develop" and PHOTO_FORMATS.get(item.output.suffix.lower()) == "JPEG"
        if task == "develop":
            too_big = _jpeg_size_problem(*photo.shape[:2]) if jpeg_out else None
            if too_big:  # before developing it: the write would fail only after all that work
                raise ValueError(too_big)
            result = develop(photo, settings, segmenter=worker["segmenter"])

            def write() -> list:
                return [write_photo(item.output, result.pixels, like=photo, **write_options)]
        else:
            # The Photo, not its pixels: a Display P3 or ProPhoto photo is converted to sRGB's
            # primaries for the model (its own values read as sRGB are duller).
            seg = worker["segmenter"].segment(photo)

            # What the segmentation made again wrote, from its final record: what else is in its
            # folder is the user's. (A pending record lists nothing: camseg's mask names then.)
            previous = records.read(item.output, task)[0] if item.output.is_dir() else None
            earlier = {Path(name).name for name in previous["files"]} if previous and "files" in previous else None

            def write() -> list:
                return write_segmentation(item.output, photo, seg, earlier=earlier)
        # Pending record, output, final record: stopped anywhere between, the output is not
        # called finished (an earlier one being made again included), and is not taken for a
        # file camseg did not write. A failed write names the file that failed.
        record = records.record_path(item.output, task)
        if identity is not None:
            with _write_errors_explained(record):
                records.write_pending(item.output, identity, task)
        with _write_errors_explained(item.output):
            written = write()
        if identity is not None:
            with _write_errors_explained(record):
                records.write_final(item.output, identity, written,
                                    _made_with(task, settings, write_options, worker["model_identity"]), task)
        # (A developed photo's notes are its reading's and develop's: a portrait effect asked for
        # and not applied, for want of a person, had passed without a word.)
        notes = ([item.note] if item.note else []) + list(result.notes if task == "develop" else photo.notes)
        if jpeg_out:
            notes += jpeg_leaves_out(photo)
        return ItemResult(item.source, item.output, "done", "; ".join(notes), time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one bad photo must not stop the batch
        message = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError)):
            message += "\n" + traceback.format_exc(limit=3)
        return ItemResult(item.source, item.output, "failed", message, time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# Segmentation outputs
# ---------------------------------------------------------------------------

#: Overlay colours (sRGB 0-255) for the scene-level mattes; persons cycle through _PERSON_COLOURS.
_MASK_COLOURS = {"sky": (70, 150, 255), "hair": (170, 90, 40), "skin": (255, 170, 120),
                 "teeth": (255, 255, 255), "glasses": (0, 230, 230)}
_PERSON_COLOURS = ((230, 60, 60), (60, 200, 80), (150, 80, 230), (240, 200, 40), (40, 200, 220),
                   (230, 90, 200), (140, 140, 140), (255, 130, 0))


def mask_overlay(image: np.ndarray, seg, *, opacity: float = 0.4) -> np.ndarray:
    """Render mattes over a photo for inspection.

    Each person gets a colour of their own (instances), filled by their soft matte, outlined
    where it crosses 0.5 and numbered; sky, hair, skin, teeth and glasses their own colours on
    top, also outlined. Persons are numbered from 0, as their files (``person_00.png``). Fills
    blend in display (sRGB) space weighted by the matte, so the preview shows softness at the
    edges, and the outlines tell overlapping mattes apart. On
    photos of 160 px and more a legend in the bottom-left corner names what is shown (each
    person with their class probability when the segmentation has them).

    Parameters
    ----------
    image : np.ndarray
        float32 H×W×3 linear RGB in [0, 1].
    seg : Segmentation
        Object with float32 H×W mattes ``.persons`` (list), ``.sky``, ``.hair``,
        ``.skin``, ``.teeth``, ``.glasses`` (missing ones are left out), and optionally
        ``.person_scores``.
    opacity : float
        Fill opacity where a matte is 1.

    Returns
    -------
    np.ndarray
        uint8 H×W×3 sRGB preview, the photo's size.
    """
    import cv2

    h, w = image.shape[:2]
    out = linear_to_srgb(image) * np.float32(255.0)
    persons = list(getattr(seg, "persons", None) or [])
    scores = getattr(seg, "person_scores", None)
    layers = [(f"person {i}" + (f" {float(scores[i]):.2f}" if scores is not None and i < len(scores) else ""),
               m, _PERSON_COLOURS[i % len(_PERSON_COLOURS)]) for i, m in enumerate(persons)]
    layers += [(name, optional_matte(seg, name), colour) for name, colour in _MASK_COLOURS.items()]
    layers = [(name, np.asarray(m, dtype=np.float32), colour) for name, m, colour in layers if m is not None]
    for _, matte, colour in layers:
        alpha = (matte * np.float32(opacity))[:, :, None]
        out = out * (1.0 - alpha) + np.asarray(colour, np.float32) * alpha
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)

    # Outlines at 0.5 (on top of every fill, so no later fill hides one), person numbers.
    thick = max(1, int(round(min(h, w) / 300)))
    shown = []
    for k, (name, matte, colour) in enumerate(layers):
        contours, _ = cv2.findContours((matte >= 0.5).view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        shown.append((name, colour))
        cv2.drawContours(out, contours, -1, colour, thick, cv2.LINE_AA)
        if k < len(persons) and min(h, w) >= 160:
            top = min((tuple(c[c[:, 0, 1].argmin(), 0]) for c in contours if cv2.contourArea(c) > 0),
                      key=lambda pt: pt[1], default=None)
            if top is not None:
                _label(out, str(k), (int(top[0]), int(top[1]) + 4), colour, min(h, w))
    if shown and min(h, w) >= 160:
        _legend(out, shown)
    return out


def _label(out: np.ndarray, text: str, anchor: tuple, colour, side: int) -> None:
    """``text`` centred below ``anchor`` in ``colour`` with a dark rim (readable on any photo)."""
    import cv2

    scale = max(0.4, side / 700)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(np.clip(anchor[0] - tw // 2, 0, out.shape[1] - tw))
    y = int(np.clip(anchor[1] + th, th, out.shape[0] - 2))
    thick = max(1, int(round(scale * 2)))
    # The rim at the text's own thickness, drawn around it: OpenCV 5 spaces letters by thickness,
    # and a thicker outline under the text came out misaligned ("10" as a smear).
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (-2, 0), (2, 0), (0, -2), (0, 2)):
        cv2.putText(out, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def _legend(out: np.ndarray, entries: list) -> None:
    """A dimmed box in the bottom-left corner: a swatch and a name per entry, one per line."""
    import cv2

    h, w = out.shape[:2]
    scale = max(0.35, min(h, w) / 900)
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    line = th + base + 4
    width = max(cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for name, _ in entries) + line + 12
    rows = min(len(entries), max(1, (h - 8) // line))
    y0, x0 = h - 6 - rows * line, 4
    box = out[max(0, y0 - 4):h - 2, x0:min(w, x0 + width)]
    box[:] = (box.astype(np.float32) * 0.35).astype(np.uint8)  # dimmed, photo still faintly visible
    for r, (name, colour) in enumerate(entries[:rows]):
        y = y0 + r * line
        cv2.rectangle(out, (x0 + 4, y + 2), (x0 + 4 + th, y + 2 + th), colour, -1)
        cv2.putText(out, name, (x0 + th + 10, y + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)


def write_segmentation(folder, photo, seg, *, earlier: "set | None" = None) -> list:
    """Write one 8-bit grayscale PNG per matte plus ``overlay.jpg`` (written last) into ``folder``.

    Mattes are coverage values (not light), so they are stored as ``round(255 * matte)``
    without a transfer curve, at the photo's size. The overlay is too, unless a side is over the
    65,500 pixels a JPEG holds: then it is shrunk to fit. Masks of an earlier segmentation in
    ``folder`` that this one does not write are removed: those named in ``earlier`` (file names,
    from its record), or, when None, any file named like one of camseg's masks. Returns the
    written paths.
    """
    import cv2
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def save_png(name, matte):
        codes = np.clip(np.asarray(matte, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        ok, data = cv2.imencode(".png", codes)
        if not ok:
            raise OSError(f"cannot encode {name}")
        path = folder / name
        _atomic_write(path, lambda fh: fh.write(data.tobytes()))
        written.append(path)

    # Every scene matte the model gives (a model of one's own may add categories; the contract
    # keeps their names safe as file names), then the person union.
    names = tuple(n for n in getattr(seg, "categories", SCENE_MASKS) if n not in ("person", "persons")) + ("person",)
    for name in names:
        matte = optional_matte(seg, name)
        if matte is not None and matte.ndim == 2:
            save_png(f"{name}.png", matte)
    for i, matte in enumerate(getattr(seg, "persons", None) or []):
        save_png(f"person_{i:02d}.png", matte)
    # Masks of an earlier run that this one did not make (a person fewer, --overwrite) would
    # mix two segmentations in one folder: removed before the overlay marks the folder done.
    # (With the earlier one's record, only what it wrote: a mask the user added is left alone.)
    ours = {f"{name}.png" for name in SCENE_MASKS + names}
    for old in folder.glob("*.png"):
        if earlier is not None:
            stale = old.name in earlier
        else:
            stale = old.name in ours or re.fullmatch(r"person_\d{2,}\.png", old.name) is not None
        if stale and old not in written:
            old.unlink()
    # The overlay is an untagged JPEG, which viewers show as sRGB: a wide-gamut photo's own
    # values (Display P3, ProPhoto) would look duller there, so it gets sRGB's primaries.
    pixels = to_srgb_primaries(photo.pixels, photo.icc_profile)
    if photo.alpha is not None and photo.alpha.shape == pixels.shape[:2]:
        # The preview shows the photo as a viewer does, over white on its encoded values (as
        # write_photo flattens a JPEG), not the colour its transparent pixels happen to keep.
        encoded = 1.0 - (1.0 - linear_to_srgb(pixels)) * np.clip(photo.alpha, 0.0, 1.0)[:, :, None]
        pixels = srgb_to_linear(encoded.astype(np.float32))
    preview = mask_overlay(pixels, seg)
    if _jpeg_size_problem(*preview.shape[:2]):
        # A JPEG holds no side over 65,500 pixels: a wider panorama's overlay failed after its
        # masks were written, and every run segmented it again. The preview is shrunk to fit (the
        # masks stay full size).
        scale = _JPEG_MAX_SIDE / max(preview.shape[:2])
        size = (max(1, round(preview.shape[1] * scale)), max(1, round(preview.shape[0] * scale)))
        preview = cv2.resize(preview, (min(size[0], _JPEG_MAX_SIDE), min(size[1], _JPEG_MAX_SIDE)),
                             interpolation=cv2.INTER_AREA)
    overlay = Image.fromarray(preview)
    path = folder / OVERLAY_NAME
    _atomic_write(path, lambda fh: overlay.save(fh, format="JPEG", quality=90))
    written.append(path)
    return written


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------

class _SimpleProgress:
    """Minimal stderr progress bar: when tqdm is not installed, or stderr is not a terminal (a
    line every 5 s and at the end, for logs)."""

    def __init__(self, total, desc):
        self.total, self.desc, self.n, self.failed = total, desc, 0, 0
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, failed=False):
        self.n += 1
        self.failed += bool(failed)
        now = time.perf_counter()
        if self.tty or now - self._last > 5 or self.n == self.total:
            self._last = now
            width = 30
            filled = int(width * self.n / max(1, self.total))
            rate = self.n / max(1e-9, now - self.t0)
            line = (f"{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.n}/{self.total} "
                    f"{rate:.2f}/s failed={self.failed}")
            sys.stderr.write(("\r" if self.tty else "") + line + ("" if self.tty else "\n"))
            sys.stderr.flush()

    def close(self):
        if self.tty:
            sys.stderr.write("\n")

    def external(self):
        if self.tty:
            sys.stderr.write("\r\033[K")
        return contextlib.nullcontext()


class _TqdmProgress:
    def __init__(self, total, desc):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="photo", file=sys.stderr, dynamic_ncols=True)
        self.failed = 0

    def update(self, failed=False):
        self.failed += bool(failed)
        if failed:
            self.bar.set_postfix(failed=self.failed)
        self.bar.update(1)

    def close(self):
        self.bar.close()

    def external(self):
        """Context in which other output may be printed without garbling the bar."""
        return self.bar.external_write_mode(file=sys.stderr)


class _NoProgress:
    def update(self, failed=False):
        pass

    def close(self):
        pass

    def external(self):
        return contextlib.nullcontext()


def _progress(total, desc, enabled):
    if not enabled or total == 0:
        return _NoProgress()
    if not sys.stderr.isatty() and "ipykernel" not in sys.modules:
        # A log file or a pipe: tqdm's carriage-return redraws piled up in it; one plain line
        # every few seconds instead. (A notebook's stderr is no terminal either, but it draws
        # tqdm's bar.)
        return _SimpleProgress(total, desc)
    try:
        return _TqdmProgress(total, desc)
    except ImportError:  # tqdm is optional
        return _SimpleProgress(total, desc)


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

#: Environment variables that fix BLAS/OpenMP thread counts in a worker process.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _thread_env(threads):
    """Set BLAS/OpenMP thread counts for spawned workers (they read them at import)."""
    saved = {n: os.environ.get(n) for n in _THREAD_VARS}
    os.environ.update({n: str(threads) for n in _THREAD_VARS})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def _pool_context():
    """Start method for worker processes.

    ``forkserver`` where available: a clean single-threaded server process
    imports numpy, OpenCV, onnxruntime and the effects once, and every worker is
    forked from it, so starting a worker costs little more than its model load.
    Plain ``fork`` of the caller is not used: native thread pools (OpenCV,
    OpenMP, BLAS) that the caller has already started deadlock forked children.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Also what the effects import at first use (scipy.special, for the JPEG skin step):
        # once in the server, not once per worker at its first photo.
        context.set_forkserver_preload(["camseg.batch", "camseg.segmenter", "effects", "effects.denoise",
                                        "effects.sharpen", "effects.tone_map", "effects.styles",
                                        "effects.portrait_blur", "scipy.special"])
        return context
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _dask_client(scheduler: str, jobs: int, threads: int, quiet_start: bool = False):
    """A ``distributed.Client`` on ``scheduler``, or on a local cluster started (and stopped) here."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError("running a batch on Dask needs the distributed scheduler: "
                          "pip install 'camseg[dask]' (or pip install 'dask[distributed]')") from exc
    if scheduler == "local":
        import dask

        options = {}
        if quiet_start:
            # The workers are forked from the batch's own forkserver, started with SIGINT blocked:
            # a Ctrl-C while the cluster started printed a traceback from each worker importing
            # or starting (about 80 lines). They never receive it now; the batch stops them with
            # the cluster.
            context = _pool_context()
            _start_forkserver(context, quiet=True)
            options["distributed.worker.multiprocessing-method"] = context.get_start_method()
        # Held while the cluster starts: interrupted, it failed its exit with an AssertionError.
        # One thread per worker task: the effects and onnxruntime use `threads` each inside it.
        with _InterruptsHeld() as held, dask.config.set(options), \
                LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                             env={k: str(threads) for k in _THREAD_VARS}) as cluster, Client(cluster) as client:
            held.release()
            yield client
    else:
        try:
            client = Client(scheduler)
        except (OSError, ValueError) as exc:  # (a timeout is an OSError: distributed's and the builtin)
            # Distributed said only "Timed out trying to connect to tcp://...", or "missing port
            # number in address 'foo'", naming no fix.
            raise OSError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); give the address "
                          "`dask scheduler` prints (tcp://HOST:PORT) of a scheduler that is running, or "
                          "--dask local for a cluster on this machine") from exc
        with client:
            yield client


def _run_on_dask(client, todo, task, settings, write_options, model_path, threads, record):
    from distributed import as_completed, wait

    # Absolute paths, the photos' and the model's: a relative one was read in the worker's own
    # folder ("No such file or directory" for every photo, from a `dask worker` started anywhere
    # else). Not resolved: a link is processed under its own name, as in the process pool.
    if model_path is not None:  # (likewise: "model file 'm/hyperdetr.onnx' does not exist" on every worker)
        model_path = os.path.abspath(model_path)
    # Keys of this run alone: two batches on one cluster (two `camseg develop --dask ADDRESS`, to
    # other --out folders) gave their photos the same keys, and Dask handed the second the
    # first's tasks: it reported every photo done and wrote none.
    run = os.urandom(6).hex()
    futures = {client.submit(_process_on_dask_worker, replace(item, source=Path(os.path.abspath(item.source)),
                                                              output=Path(os.path.abspath(item.output))),
                             task, settings, write_options, model_path, threads, pure=False,
                             key=f"camseg-{task}-{run}-{i}-{item.source.name}"): item
               for i, item in enumerate(todo)}
    try:
        # The results come with the futures (fetched on the client's own thread): a Ctrl-C that
        # landed in a blocking `future.result()` made Dask log a NameError traceback from its
        # cancel callback (distributed 2026.8, 1 in about 10 stopped runs).
        for future, result in as_completed(futures, with_results=True, raise_errors=False):
            # Released at once: a result the client still holds is kept in its worker's memory,
            # and when that worker died, Dask developed every photo it had finished again and
            # wrote their outputs anew (tester: 2 of 2 held results made again). Released, a
            # lost worker costs only the photos it had in progress. (The status is read first:
            # a released future is soon marked cancelled.)
            item, finished = futures.pop(future), future.status == "finished"
            future.release()
            if finished:
                record(replace(result, source=item.source, output=item.output))  # (as the caller named them)
                continue
            # An error (e.g. KilledWorker after Dask's retries) comes as (type, exception, traceback).
            exc = result[1] if isinstance(result, tuple) and len(result) == 3 else result
            record(ItemResult(item.source, item.output, "failed", f"Dask task failed: {type(exc).__name__}: {exc}"))
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            # Ctrl-C (or SIGTERM): stop after the photos in progress, as the process pool does.
            # Every photo was cancelled, those in a worker's hands too: their work lost, and a
            # "CancelledError" warning from each. The scheduler's "processing" tasks are those
            # sent to a worker.
            try:
                sent = {key for keys in client.processing().values() for key in keys}
                client.cancel([f for f in futures if f.key not in sent])
                wait([f for f in futures if f.key in sent])
            except KeyboardInterrupt:  # a second Ctrl-C: now
                pass
        client.cancel(list(futures))
        raise


#: Photos in a row that kill their worker alone, with none finished between them, after which
#: the batch stops trying (see run_batch).
_MAX_KILLS_IN_A_ROW = 3


def _idle() -> None:
    """A worker process's target that does nothing (see :func:`_start_forkserver`)."""


def _start_forkserver(context, *, quiet: bool) -> None:
    """Start ``context``'s forkserver (unless it runs already) and wait until it has imported
    its modules, in a step a Ctrl-C stops at once; a no-op unless the start method is
    forkserver.

    The wait: the pool's first ``Process.start`` waits for the server's imports (about a
    second; far longer from a cold or network disk). A Ctrl-C that interrupted it there left a
    worker the server then forked, which the pool never knew of, and which failed on its
    semaphores after the command had gone (a FileNotFoundError traceback). Here the process
    waited for does nothing; left half started, it exits quietly.

    ``quiet``: the server is started with SIGINT blocked, which the fork and exec that start it
    keep: a terminal's Ctrl-C reaches every process of the command, and the server's imports
    printed a KeyboardInterrupt traceback; now it, and every worker it forks, keeps SIGINT
    pending for good (the workers ignore it anyway: the batch stops them itself). The block
    is this thread's only: a Ctrl-C meanwhile goes to Python's handler through another thread,
    or waits here until the block ends, and is raised then. The server is the whole program's,
    so its later forkserver processes cannot receive SIGINT either: for the camseg command
    (``run_batch(quiet_start=True)``).
    """
    if context.get_start_method() != "forkserver":
        return
    if quiet:
        from multiprocessing import forkserver, resource_tracker

        mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())  # (a query: nothing changes yet)
        try:
            # The resource tracker blocks SIGINT itself while it starts its process, and
            # unblocks it after: the block for the server is taken after that.
            resource_tracker.ensure_running()
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            forkserver.ensure_running()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        waiting = context.Process(target=_idle, daemon=True)
        waiting.start()
        waiting.join()
    except (EOFError, ConnectionError):
        pass  # the server died as it started: the pool starts it again, and says so if it cannot


class _InterruptsHeld:
    """Ctrl-C and SIGTERM held back while the worker processes start, and raised when released.

    A KeyboardInterrupt inside ``Process.start`` could leave a worker the forkserver had
    already forked, which the pool then never knew of: it read its start-up data after the
    command had exited and removed the pool's semaphores, and printed a FileNotFoundError
    traceback. A SIGINT or SIGTERM that arrives while the workers start (a few milliseconds
    each once the server is ready, see :func:`_start_forkserver`; a local Dask cluster, a
    second or so) is recorded and raised by :meth:`release`, once the pool knows every worker
    it started: the batch then stops as after any Ctrl-C. A second Ctrl-C meanwhile is
    raised at once. Nothing is held outside the main thread (Python runs signal handlers there
    only) or where a handler is not Python's; the caller's handlers are back after
    :meth:`release`.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self._caught, self._handlers = [], None
        if threading.current_thread() is not threading.main_thread():
            return
        self._handlers = {s: signal.getsignal(s) for s in self._SIGNALS}
        for s in self._SIGNALS:
            if callable(self._handlers[s]):  # (an ignored or default signal stays as it is)
                signal.signal(s, self._record)

    def _record(self, signum, frame) -> None:
        if signum == signal.SIGINT and signum in self._caught:
            self.release()  # Ctrl-C twice: now, whatever is left half started
        self._caught.append(signum)

    def __enter__(self) -> "_InterruptsHeld":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """Back to the handlers as they were, then raise what was held (once)."""
        if self._handlers is None:
            return
        for s, handler in self._handlers.items():
            signal.signal(s, handler)
        self._handlers = None
        for s in dict.fromkeys(self._caught):
            signal.raise_signal(s)


def _run_in_pool(items, workers, task, settings, write_options, model_path, threads, record,
                 start_bar, quiet_start=False) -> "tuple[list, bool]":
    """Process ``items`` on ``workers`` worker processes; record each result as it comes.

    Returns the items left unfinished because a worker died (the pool broke), in the order
    they were handed to the pool (those it broke before taking last), empty when every item
    got a result; and whether any worker got as far as loading the model (a pool whose
    workers all died before that failed no photo of its own).
    """
    unfinished, unsubmitted = [], []
    context = _pool_context()
    try:
        # Whether any worker got past its model load (set by _init_worker). A raw value: no lock
        # (a named semaphore, reported "leaked" by Python's resource tracker whenever the
        # command is killed), and none needed: workers only ever set it to 1.
        started = context.RawValue("i", 0)
    except OSError as exc:  # no shared memory or semaphores here (some sandboxes, AWS Lambda)
        raise OSError(f"cannot start worker processes here ({exc.strerror or exc}); pass in_process=True to "
                      "process the photos in this process") from exc
    _start_forkserver(context, quiet=quiet_start)
    with _InterruptsHeld() as held, _thread_env(threads), cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(model_path, threads, os.getpid(), started)) as pool:
        futures = {}
        try:
            for i, item in enumerate(items):
                try:
                    futures[pool.submit(_process, item, task, settings, write_options)] = item
                except cf.process.BrokenProcessPool:  # a worker died while photos were still handed over
                    unsubmitted = list(items[i:])
                    break
                except (EOFError, OSError):
                    # The pool could not start a worker: its forkserver killed as it started one
                    # (an EOFError traceback ended the command), or already gone (it too
                    # imports the main module, and one it cannot re-read, "<stdin>", ends it:
                    # "Bad file descriptor" from its socket, 1 run in 6). The photos not handed
                    # over go again, as after a worker's death.
                    unsubmitted = list(items[i:])
                    break
            held.release()  # a Ctrl-C while the workers started stops the batch here
            # The bar (tqdm runs a monitor thread) starts only after the workers exist.
            start_bar()
            for future in cf.as_completed(futures):
                item = futures[future]
                try:
                    record(future.result())
                except cf.process.BrokenProcessPool:
                    unfinished.append(item)
                except Exception as exc:  # noqa: BLE001 - one bad photo must not stop the batch
                    record(ItemResult(item.source, item.output, "failed",
                                      f"worker failed: {type(exc).__name__}: {exc}"))
        except BaseException:
            # Ctrl-C: stop after the photos in progress. Each waiting photo is cancelled
            # here: the pool's own exit calls shutdown() again, which would clear
            # shutdown(cancel_futures=True)'s request before the pool acted on it, and
            # every queued photo was developed before the command stopped.
            for future in futures:
                future.cancel()
            # (shutdown forgets them)
            processes = list((getattr(pool, "_processes", None) or {}).values())
            manager = getattr(pool, "_executor_manager_thread", None)
            pool.shutdown(wait=False, cancel_futures=True)
            try:
                cf.wait([future for future in futures if not future.cancelled()])
            except KeyboardInterrupt:
                # A second Ctrl-C: stop now. (It used to break the pool's wait at exit instead,
                # and the command hung joining idle workers until killed: 5 of 5 tries with
                # 0.1-0.5 s between the two.) What they had in progress is left as a killed
                # run leaves it: the next run makes it again.
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.join(timeout=10)
            if manager is not None:
                # The pool's own thread ends here, not during the interpreter's exit, where
                # waking it raced with its closing of its pipe ("Bad file descriptor" traceback).
                manager.join(timeout=30)
            raise
    order = {id(item): i for i, item in enumerate(items)}
    return sorted(unfinished, key=lambda item: order[id(item)]) + unsubmitted, started.value > 0


def _workers_could_not_start(task: str) -> str:
    """The failure of the photos of a batch whose worker processes died while starting, twice."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if main is not None and not os.path.isabs(main):
        main = os.path.join(multiprocessing.process.ORIGINAL_DIR or "", main)
    if main is not None and not os.path.exists(main):
        # `python - <<EOF`: each worker re-reads the program's main file, here "<stdin>".
        why = (f"this program was read from {os.path.basename(main)!r}, which a worker process cannot read "
               "again: save it to a file and run that, or pass in_process=True")
    else:
        why = ("the causes seen: memory running out while they load the segmentation model (about 300 MB "
               "each: free memory and run the same command again); from Python, a script that calls run_batch "
               "outside `if __name__ == \"__main__\":` (each worker re-runs the main file: put the call under "
               "it, or pass in_process=True); the model runtime crashing; the error above, if any, tells which")
    return (f"not {'developed' if task == 'develop' else 'segmented'}: the worker processes died while starting, "
            f"before any photo reached them, twice; {why}")


def _photo_pixels(item: BatchItem) -> "int | None":
    """The photo's pixel count from its header (None when it cannot be read)."""
    try:
        from PIL import Image

        with Image.open(item.source) as im:
            return im.width * im.height
    except Exception:  # noqa: BLE001 - a hint only: the worker reports unreadable photos
        return None


def _killed_worker_result(item: BatchItem, task: str) -> ItemResult:
    """The failure of a photo whose worker process died while it alone was being processed."""
    doing = "developing" if task == "develop" else "segmenting"
    pixels = _photo_pixels(item)
    megapixels = "" if pixels is None else f"{pixels / 1e6:.{1 if pixels >= 1e5 else 2}f} MP"
    need = None if pixels is None or task != "develop" else pixels * DEVELOP_BYTES_PER_PIXEL
    if pixels is not None and pixels < _SMALL_PHOTO_PIXELS:
        # A photo this small does not exhaust memory by itself.
        return ItemResult(item.source, item.output, "failed",
                          f"its worker process died while {doing} it alone ({megapixels}, which needs "
                          "little memory): it crashed, or the system killed it for memory that other programs "
                          "hold; the other photos went on")
    size = "" if pixels is None else f" ({megapixels})" if need is None else \
        f" ({megapixels}: {doing} it needs up to about {need / 1e9:.1f} GB of memory)"
    return ItemResult(item.source, item.output, "failed",
                      f"its worker process was killed by the system while {doing} it alone{size}; most "
                      "likely memory ran out: close other programs or downscale the photo (the other photos "
                      "went on)")


#: Pixels under which a photo's dead worker is not put down to the photo's own memory need
#: (developing 4 MP takes at most about 0.65 GB beside the model, with a Portrait Lighting look; see
#: DEVELOP_BYTES_PER_PIXEL).
_SMALL_PHOTO_PIXELS = 4e6


def run_batch(inputs, out_dir, *, task: str = "develop", settings: "DevelopSettings | None" = None,
              jobs: "int | None" = None, output_format: "str | None" = None, quality: int = 95,
              bit_depth: "int | None" = None, overwrite: bool = False, model_path=None,
              progress: bool = True, on_result=None, dask_scheduler: "str | None" = None,
              in_process: bool = False, quiet_start: bool = False) -> BatchSummary:
    """Develop or segment many photos in parallel; see the module docstring for the guarantees.

    Parameters
    ----------
    inputs : iterable of str or os.PathLike
        Photo files and/or folders (see :func:`plan_batch`).
    out_dir : str or os.PathLike
        Destination folder (created if needed).
    task : {"develop", "segment"}
        ``develop``: one developed photo per input (same name; EXIF/ICC kept).
        ``segment``: a folder per input with one PNG per matte and ``overlay.jpg``.
    settings : DevelopSettings, optional
        For ``develop``.
    jobs : int, optional
        Worker processes; default, and at most (a note says so), the number of CPU cores
        (with a Dask scheduler of your own, the cluster's workers are its own, and each of their
        tasks uses the worker's cores over its threads). One is a worker process too, never
        this one: a photo whose worker the system kills (out of memory) is then reported by
        name and the rest go on, where in this process it would kill the caller with it, at
        the same photo on every resumed run.
    output_format : {"jpg", "png", "tif"}, optional
        Output type for ``develop``; default: same as each input.
    quality : int
        JPEG quality.
    bit_depth : {8, 16}, optional
        Output bits per channel; default: the input's (8 for JPEG output).
    overwrite : bool
        Redo photos whose output exists (default: skip them, which makes runs resumable).
    model_path : str or os.PathLike, optional
        ONNX model; default: the bundled one.
    progress : bool
        Show a progress bar on stderr.
    on_result : callable, optional
        Called with each :class:`ItemResult` as it completes (in this process).
    dask_scheduler : str, optional
        Run on Dask instead of a local process pool: a scheduler address
        (``"tcp://host:8786"``), or ``"local"`` to start a local cluster of
        ``jobs`` worker processes for this run. Needs ``pip install camseg[dask]``.
    in_process : bool
        Process the photos one by one in this process, with no worker processes (to debug,
        or where processes cannot be started); ``jobs`` must then be None or 1. A photo that
        exhausts memory kills this process.
    quiet_start : bool
        Start the worker processes with SIGINT blocked from the first instant (the camseg
        command does): a terminal's Ctrl-C reaches every process of a program, and one that
        came while they imported their libraries (about a second) printed their tracebacks. The
        batch stops them itself. Process-wide: the forkserver that starts them is the
        program's, so the program's own later forkserver processes cannot receive SIGINT
        either; off by default. (Where the start method is not forkserver, it changes nothing.)

    Returns
    -------
    BatchSummary

    Raises
    ------
    ValueError, TypeError
        Bad arguments or settings, found before any photo is processed.
    ImportError
        ``dask_scheduler`` without Dask's distributed scheduler installed.
    OSError
        The output folder cannot be made, worker processes cannot start, or the Dask
        scheduler at ``dask_scheduler`` cannot be reached.
    KeyboardInterrupt
        Ctrl-C: the run stops; what was written is whole, and the same call resumes. (A
        photo that fails is reported in the summary, not raised.)
    """
    t0 = time.perf_counter()
    settings = settings if settings is not None else DevelopSettings()
    if not isinstance(settings, DevelopSettings):
        raise TypeError(f"settings must be a DevelopSettings, got {type(settings).__name__}")
    if task == "develop":
        check_settings(settings)
    # A missing, foreign or scene-only model refused once, not once per photo by each worker.
    from camseg.segmenter import check_model_file

    check_model_file(model_path)
    cpus = os.cpu_count() or 1
    jobs = (1 if in_process else cpus) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if not isinstance(in_process, bool):
        raise TypeError(f"in_process must be True or False, got {in_process!r}")
    if in_process and jobs != 1:
        raise ValueError(f"in_process=True develops the photos in this process, one at a time; it cannot "
                         f"run {jobs} jobs: pass jobs=1 (or leave jobs out), or in_process=False")
    if in_process and dask_scheduler is not None:
        raise ValueError("in_process=True and dask_scheduler are two different places to run the photos; "
                         "pass one of them")
    if dask_scheduler is not None and (not isinstance(dask_scheduler, str) or not dask_scheduler):
        raise ValueError(f"dask_scheduler must be a scheduler address like 'tcp://host:8786' or 'local', "
                         f"got {dask_scheduler!r}")
    if bit_depth is not None and bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8, 16 or None, got {bit_depth!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be a JPEG quality 1..100, got {quality!r}")  # before any photo is decoded
    if output_format and output_format.lower().lstrip(".") in ("jpg", "jpeg") and bit_depth == 16:
        raise ValueError("JPEG output is 8-bit only; for 16 bits write PNG or TIFF (output_format='png' or "
                         "'tif'; on the command line --format png or --format tif)")
    out_dir = Path(out_dir)
    todo, settled = plan_batch(inputs, out_dir, task=task, output_format=output_format, overwrite=overwrite)
    as_jpeg = [item for item in todo if PHOTO_FORMATS.get(item.output.suffix.lower()) == "JPEG"]
    if task == "develop" and bit_depth == 16 and as_jpeg:
        # Refused before any work: each of those photos would fail alike.
        raise ValueError(f"16-bit output cannot be JPEG (8 bits per channel), and {len(as_jpeg)} of these photos "
                         f"would be written as JPEG (e.g. {as_jpeg[0].source.name!r}); add --format png or --format "
                         "tif (in Python output_format='png' or 'tif'), or leave --bit-depth out: each photo then "
                         "keeps its own bit depth")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = "is a file, not a folder" if out_dir.is_file() else f"cannot be created ({exc.strerror or exc})"
        raise ValueError(f"the output folder {str(out_dir)!r} {what}; choose another --out folder") from exc
    remove_stale_temp_files(out_dir)
    summary = BatchSummary(results=list(settled))
    # Remember what produced the outputs, so a resumed run with other settings is flagged:
    # skipped outputs would otherwise silently mix two looks in one folder.
    stamp = {"task": task, "output_format": output_format, "quality": quality, "bit_depth": bit_depth,
             "settings": settings.to_dict() if task == "develop" else None,
             "records": 1}  # outputs here have records (camseg.records); an older camseg's do not
    stamp_path = out_dir / STAMP_NAME
    previous = _read_stamp(out_dir)
    if _holds_older_outputs(previous):
        stamp["older_outputs"] = True  # outputs without records stay theirs once the stamp is rewritten
    skipped = sum(r.status == "skipped" for r in settled)
    write_options = {"quality": quality}
    if bit_depth is not None:
        write_options["bit_depth"] = bit_depth
    # Each finished output's record says what it was made with (the folder's stamp only says
    # what the last run used: `develop a --style warm`, `develop b --style cool`, then `develop a
    # b --style cool` kept a's warm outputs without a word); an older camseg's outputs have no
    # record, and the stamp speaks for them.
    now = json.loads(json.dumps(_made_with(task, settings, write_options, _model_identity(model_path))))
    settings_only = lambda d: {k: v for k, v in d.items() if k not in ("records", "older_outputs")}  # noqa: E731
    same_stamp = previous is not None and settings_only(previous) == settings_only(stamp)
    differ = 0
    for r in settled:
        if r.status == "skipped":
            made = (records.read(r.output, task)[0] or {}).get("made_with")
            # Only the write options that apply to this output's format (a segmentation has none):
            # --quality 50 after a default run counted every PNG and TIFF output as made
            # otherwise, and --bit-depth every JPEG.
            differ += (_made_otherwise(_for_format(made, r.output), _for_format(now, r.output)) if made is not None
                       else (previous is not None and not same_stamp))
    if differ and not overwrite:
        summary.notes.append(f"{differ} finished output(s) in {str(out_dir)!r} were made with different "
                             "settings or another model and were kept; --overwrite (overwrite=True) makes "
                             "them again")
    try:  # checked before any photo: a folder nothing can be written to
        if previous != stamp and (previous is None or overwrite or not skipped):
            _atomic_write(stamp_path, lambda fh: fh.write(json.dumps(stamp, indent=2, sort_keys=True).encode()))
        elif todo:
            # (The stamp unchanged: without this, each photo was developed before its write failed.)
            with tempfile.TemporaryFile(dir=out_dir):
                pass
    except OSError as exc:
        raise ValueError(f"cannot write to the output folder {str(out_dir)!r} ({exc.strerror or exc}); "
                         "choose a folder you can write to (--out)") from exc
    if on_result is not None:
        for r in settled:
            on_result(r)
    # Worker processes even for one photo left (a resumed run) or one job (a one-core machine,
    # --jobs 1 to save memory): a photo whose worker the system kills is then reported by name,
    # where in this process it killed the command ("Killed", exit status 137), unnamed, at the
    # same photo on every run resumed after it.
    if jobs > cpus and dask_scheduler in (None, "local"):
        # Each worker loads the model (~150 MB) and develops a photo in up to ~1.9 GB at 12 MP
        # (DEVELOP_BYTES_PER_PIXEL); past the cores they add memory, not speed (--jobs 1000 took
        # 7 GB for 40 small photos).
        summary.notes.append(f"{jobs} jobs reduced to {cpus}, the CPU cores here: more workers than cores "
                             "would only take more memory")
        jobs = cpus
    jobs = max(1, min(jobs, len(todo)))
    threads = max(1, cpus // jobs)
    bar = _NoProgress()

    def record(result):
        summary.results.append(result)
        if on_result is not None:
            with bar.external():
                on_result(result)
        bar.update(failed=result.status == "failed")

    try:
        if dask_scheduler is not None and todo:  # (nothing left: no cluster to reach, see below)
            with _dask_client(dask_scheduler, jobs, threads, quiet_start) as client:
                bar = _progress(len(todo), task, progress)
                # A local cluster's workers share this machine's cores as the process pool's do; a
                # cluster's worker sizes its tasks by its own (threads None).
                _run_on_dask(client, todo, task, settings, write_options, model_path,
                             threads if dask_scheduler == "local" else None, record)
        elif in_process or not todo:
            # Nothing left to do needs no workers: on Dask a resumed run that had finished
            # connected anyway, and failed after 30 s ("Timed out trying to connect", exit status
            # 2) once the cluster was gone, or started a local one for nothing.
            bar = _progress(len(todo), task, progress)
            if todo:
                _init_worker(model_path, threads, quiet=False)
            for item in todo:
                record(_process(item, task, settings, write_options))
        else:
            def start_bar():  # once, when the first pool's workers exist
                nonlocal bar
                if isinstance(bar, _NoProgress):
                    bar = _progress(len(todo), task, progress)

            # A worker killed by the system (out of memory, most likely) breaks the whole pool:
            # every photo not yet finished fails with it. The others go on in a fresh pool; the
            # photos that were in a worker's hands are retried afterwards one by one in a pool
            # of one worker, which names the photo that kills its worker.
            remaining, alone = list(todo), []
            start_failures = 0  # pools whose every worker died before loading the model
            kills_in_a_row = 0  # photos that killed their worker alone, with nothing finished between
            probe = None  # a photo not under suspicion, tried alone before the machine is blamed
            stalled = False
            start_again = False  # the last pool's workers died while starting: its photos go again
            while remaining or alone:
                # (Not when the last pool never started: the probe it held has not been tried.)
                if kills_in_a_row >= _MAX_KILLS_IN_A_ROW and not start_again:
                    if probe is not None and (_photo_pixels(probe) or 0) >= _SMALL_PHOTO_PIXELS:
                        probe = None  # it died, but a big photo may: one more big photo, named
                    if probe is None:
                        # Several photos in a row killed their worker: big photos side by side,
                        # or a machine out of memory. The smallest photo left, alone, tells which.
                        pool_left = alone + remaining
                        probe = min(pool_left, key=lambda item: _photo_pixels(item) or float("inf"))
                        alone = [probe] + [item for item in alone if item is not probe]
                        remaining = [item for item in remaining if item is not probe]
                    else:
                        # It died too: the machine (memory taken by other programs), not the
                        # photos. Trying each alone would take a worker start per photo.
                        for item in alone + remaining:
                            record(ItemResult(item.source, item.output, "failed",
                                              f"not {'developed' if task == 'develop' else 'segmented'}: "
                                              f"{kills_in_a_row} worker processes in a row "
                                              "were killed by the system, most likely for want of memory; "
                                              "free memory (close other programs) and run the same command "
                                              "again"))
                        break
                start_again = False
                finished = len(summary.results)
                in_shared_pool = bool(remaining) and not (stalled and alone)
                if in_shared_pool:
                    unfinished, started = _run_in_pool(remaining, jobs, task, settings, write_options,
                                                       model_path, threads, record, start_bar, quiet_start)
                else:
                    unfinished, started = _run_in_pool(alone, 1, task, settings, write_options, model_path,
                                                       cpus, record, start_bar, quiet_start)
                if unfinished and not started:
                    # No worker got as far as the model: no photo is at fault. Once more, then the
                    # photos are reported together (one per worker start would be blamed).
                    start_failures += 1
                    if start_failures < 2:
                        if in_shared_pool:
                            remaining = unfinished
                        else:
                            alone = unfinished
                        start_again = True
                        continue
                    for item in unfinished + (alone if in_shared_pool else remaining):
                        record(ItemResult(item.source, item.output, "failed", _workers_could_not_start(task)))
                    break
                start_failures = 0  # (twice in a row, not twice in a long run)
                if in_shared_pool:
                    # In a worker's hands: at most `jobs` photos running and `jobs` + 1 queued
                    # for them, the first unfinished ones in the order they were submitted.
                    in_hands = 2 * jobs + 1
                    alone, remaining = alone + unfinished[:in_hands], unfinished[in_hands:]
                    # A pool that broke before finishing anything: the suspects first, one by one.
                    stalled = len(summary.results) == finished
                    if not stalled:
                        kills_in_a_row, probe = 0, None
                else:
                    lived = len(summary.results) > finished  # photos finished before any kill
                    if unfinished:  # one worker, first in first out: the first unfinished killed it
                        record(_killed_worker_result(unfinished[0], task))
                        kills_in_a_row = 1 if lived else kills_in_a_row + 1
                    if lived:
                        probe = None
                        if not unfinished:
                            kills_in_a_row = 0
                    alone = unfinished[1:]
    finally:
        bar.close()
        # Writers killed just before this run started may have still held their temporaries'
        # locks at the first sweep (the kernel releases them as the process is torn down).
        remove_stale_temp_files(out_dir)
        summary.seconds = time.perf_counter() - t0
    return summary
