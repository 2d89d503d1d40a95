"""Pack the loaded training set into one file, to train where ``../shared/data`` is not.

A GPU machine lent for a training run sees only what is sent to it (here: at most 64 MiB).
This writes the records :func:`camseg.train.data.load_all` builds — already filtered (COCO
labels that fit their photo, single-blob person masks), face-mesh teeth/eyes and person-free
verdicts attached, at the cached long side — as one ``.npz``: images JPEG-encoded, masks
PNG-encoded (lossless), and a JSON index saying which labels each record has (an empty
instance list, a person negative, stays distinct from unknown instances). ``python -m
camseg.train.train --data PACK.npz`` trains from it exactly as from the folder.

Usage::

    python -m camseg.train.pack --data ../shared/data --out ~/.cache/camseg/train_pack.npz
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from camseg.train.data import DEFAULT_FACE_LABELS, Record, data_folder_problem, load_all

#: JPEG quality of packed images: at 90 the re-encoding error (about 1/255 RMS) is far below the
#: colour jitter every sample gets. The 1308 training photos take 50.5 MiB at 90 and 41.5 MiB at 85
#: (what was sent to the GPU machine, beside the repository, within its 64 MiB).
PACK_QUALITY = 90


def _encode(ext: str, array: np.ndarray, params: list) -> np.ndarray:
    ok, buf = cv2.imencode(ext, array, params)
    if not ok:
        raise ValueError(f"cannot encode a {array.shape} {array.dtype} array as {ext}")
    return buf.ravel()


def _decode(buf: np.ndarray, flags: int) -> np.ndarray:
    out = cv2.imdecode(buf, flags)
    if out is None:
        raise ValueError("a packed image or mask does not decode: the pack file is damaged; write it again")
    return out


def pack_records(records: list[Record], path: Path, *, quality: int = PACK_QUALITY) -> int:
    """Write ``records`` to ``path`` (``.npz``) atomically; returns the file's size in bytes.

    Parameters
    ----------
    records : list of Record
        Images uint8 H×W×3 sRGB; scene masks, instance masks and eyes uint8 H×W (0/255, or
        nonzero on the eyes), as :func:`camseg.train.data.load_all` returns them.
    path : Path
        The ``.npz`` to write (a temp file beside it, then renamed).
    quality : int
        JPEG quality of the images (masks are lossless PNG).
    """
    arrays, index = {}, []
    png = [cv2.IMWRITE_PNG_COMPRESSION, 9]
    for i, rec in enumerate(records):
        arrays[f"{i}_image"] = _encode(".jpg", cv2.cvtColor(rec.image, cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, quality])
        for channel, mask in rec.scene.items():
            arrays[f"{i}_scene{channel}"] = _encode(".png", mask, png)
        for k, mask in enumerate(rec.instances or []):
            arrays[f"{i}_instance{k}"] = _encode(".png", mask, png)
        if rec.eyes is not None:
            arrays[f"{i}_eyes"] = _encode(".png", rec.eyes, png)
        index.append({"source": rec.source, "scene": sorted(int(c) for c in rec.scene),
                      "instances": None if rec.instances is None else len(rec.instances),
                      "eyes": rec.eyes is not None})
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), np.uint8)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:  # (a failed or interrupted write left the partial pack beside the file)
        if tmp.exists():
            tmp.unlink()
    return path.stat().st_size


def load_packed(path: Path) -> list[Record]:
    """Read a pack written by :func:`pack_records` back into records (same arrays, same flags)."""
    # (A pack cut short by an interrupted copy raised zipfile's BadZipFile, a damaged member its
    # "Bad CRC-32", with a traceback: neither is an OSError or a ValueError.)
    try:
        data = np.load(Path(path), allow_pickle=False)
        index = json.loads(bytes(data["index"]).decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a camseg training pack ({exc}); write one with "
                         "python -m camseg.train.pack --data ../shared/data --out PACK.npz") from exc
    records = []
    try:
        for i, entry in enumerate(index):
            image = cv2.cvtColor(_decode(data[f"{i}_image"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            scene = {c: _decode(data[f"{i}_scene{c}"], cv2.IMREAD_GRAYSCALE) for c in entry["scene"]}
            instances = (None if entry["instances"] is None else
                         [_decode(data[f"{i}_instance{k}"], cv2.IMREAD_GRAYSCALE) for k in range(entry["instances"])])
            eyes = _decode(data[f"{i}_eyes"], cv2.IMREAD_GRAYSCALE) if entry["eyes"] else None
            records.append(Record(image, scene, instances, entry["source"], eyes))
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: the pack file is damaged ({exc}); write it again") from exc
    return records


def load_training_split(data: Path, face_labels: "Path | None" = DEFAULT_FACE_LABELS) -> list[Record]:
    """The training split's records: from a pack file, or from the shared data folder (with the
    face-mesh labels in ``face_labels``, None for none)."""
    return load_packed(data) if data.is_file() else load_all(data, split="train", face_labels=face_labels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Pack the training split into one .npz")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--face-labels", default=str(DEFAULT_FACE_LABELS))
    parser.add_argument("--quality", type=int, default=PACK_QUALITY)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    # (A folder failed at the rename after 40 s of work, leaving '<folder>.tmp.npz' beside it.)
    if Path(args.out).expanduser().is_dir():
        parser.error(f"--out {args.out!r} is a folder; name the pack file to write, e.g. "
                     f"{str(Path(args.out) / 'train_pack.npz')!r}")
    # Made before the photos are read (a missing folder failed after 40 s of work).
    Path(args.out).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if not Path(args.data).expanduser().is_dir():
        parser.error(f"--data {args.data!r}: no such folder (../shared/data)")
    if data_folder_problem(Path(args.data).expanduser()):
        parser.error(f"--data: {data_folder_problem(Path(args.data).expanduser())}")
    face_labels = Path(args.face_labels).expanduser()
    # (Checked expanded, then read as given: --data=~/data failed on '~/data/coco_panoptic/panoptic.json'.)
    records = load_all(Path(args.data).expanduser(), split="train",
                       face_labels=face_labels if face_labels.is_dir() else None)
    size = pack_records(records, Path(args.out).expanduser(), quality=args.quality)
    print(f"packed {len(records)} training photos into {args.out} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
