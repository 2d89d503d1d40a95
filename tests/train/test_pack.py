"""The training pack: records survive the round trip, and the trainer trains from one."""

import cv2
import numpy as np
import pytest
import torch

from camseg.train.data import GLASSES, HAIR, SKY, Record
from camseg.train.pack import load_packed, pack_records
from camseg.train.train import main as train_main


def _records(rng):
    def photo():
        # smooth, photo-like content (JPEG keeps it within a few levels), different each time
        coarse = rng.integers(0, 255, (12, 16, 3)).astype(np.float32)
        return np.clip(cv2.resize(coarse, (128, 96), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)

    def blob(y0, y1, x0, x1):
        m = np.zeros((96, 128), np.uint8)
        m[y0:y1, x0:x1] = 255
        return m

    eyes = np.zeros((96, 128), np.uint8)
    eyes[30:36, 40:50] = eyes[30:36, 70:80] = 1
    return [
        Record(photo(), {SKY: blob(0, 40, 0, 128)}, None, "ade_sky"),  # instances unknown
        Record(photo(), {SKY: blob(0, 0, 0, 0)}, [], "scene"),  # a person negative
        Record(photo(), {}, [blob(20, 90, 10, 50), blob(30, 96, 60, 120)], "coco"),
        Record(photo(), {HAIR: blob(0, 30, 20, 100), GLASSES: blob(0, 0, 0, 0)}, [blob(0, 96, 10, 110)],
               "celeb_hair", eyes),
    ]


def test_pack_round_trip_keeps_labels_exact_and_known_from_unknown(tmp_path, rng):
    records = _records(rng)
    path = tmp_path / "pack.npz"
    assert pack_records(records, path) == path.stat().st_size
    assert not list(tmp_path.glob("*.tmp*"))  # written through a temp file, then renamed
    back = load_packed(path)
    assert len(back) == len(records)
    for a, b in zip(records, back):
        assert a.source == b.source
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 4  # JPEG, q 90
        assert a.scene.keys() == b.scene.keys()
        assert all(np.array_equal(a.scene[c], b.scene[c]) for c in a.scene)  # masks are lossless
        assert (a.instances is None) == (b.instances is None)  # unknown stays unknown; [] stays []
        assert all(np.array_equal(x, y) for x, y in zip(a.instances or [], b.instances or []))
        assert (a.eyes is None) == (b.eyes is None)
    assert back[1].instances == []
    assert np.array_equal(back[3].eyes, records[3].eyes)


def test_a_damaged_or_foreign_file_is_refused_with_the_fix(tmp_path):
    bad = tmp_path / "pack.npz"
    bad.write_bytes(b"not a pack")
    with pytest.raises(ValueError, match="python -m camseg.train.pack"):
        load_packed(bad)


def test_a_pack_cut_short_or_damaged_is_refused_by_the_trainer_with_the_fix(tmp_path, rng, capsys):
    """A pack cut short (an interrupted copy) stopped the trainer with zipfile's BadZipFile
    traceback, a damaged byte inside with "Bad CRC-32", a foreign file with load_packed's
    ValueError traceback."""
    pack = tmp_path / "pack.npz"
    pack_records(_records(rng), pack)
    whole = pack.read_bytes()
    damaged = bytearray(whole)
    damaged[3000] ^= 0xFF  # inside the first image's bytes
    for content, message in [(whole[: len(whole) // 2], "is not a camseg training pack"),
                             (bytes(damaged), "the pack file is damaged"),
                             (b"\x08\x07onnx" * 100, "is not a camseg training pack")]:
        bad = tmp_path / "bad.npz"
        bad.write_bytes(content)
        with pytest.raises(SystemExit) as exc:
            train_main(["--data", str(bad), "--run", str(tmp_path / "run"), "--steps", "1", "--batch", "1",
                        "--size", "32", "32", "--face-labels", str(tmp_path / "none")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and "--data" in err, err


def test_trainer_trains_from_a_pack_with_loader_workers_and_resumes(tmp_path, rng):
    pack = tmp_path / "pack.npz"
    pack_records(_records(rng) * 2, pack)
    run = tmp_path / "run"
    args = ["--data", str(pack), "--run", str(run), "--batch", "2", "--size", "64", "80",
            "--workers", "1", "--threads", "1", "--save-every", "2", "--face-labels", str(tmp_path / "none")]
    assert train_main(args + ["--steps", "2"]) == 0
    first = torch.load(run / "last.pt", weights_only=False)
    assert first["step"] == 2
    assert sorted(first["trained"]["data"]) == ["ade_sky", "celeb_hair", "coco", "scene"]
    assert train_main(args + ["--steps", "3"]) == 0  # resumes at step 2, runs one more
    again = torch.load(run / "last.pt", weights_only=False)
    assert again["step"] == 3
    changed = [k for k, v in again["model"].items() if v.is_floating_point() and not torch.equal(v, first["model"][k])]
    assert changed  # the resumed step trained the weights


def test_trainer_saves_the_step_reached_at_ctrl_c_and_keeps_its_recipe(tmp_path, rng):
    """Ctrl-C lost up to --save-every - 1 steps (with a traceback); a resume with another batch,
    size or backbone was taken silently, and the checkpoint then said the whole run used them."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    pack = tmp_path / "pack.npz"
    pack_records(_records(rng) * 2, pack)
    run = tmp_path / "run"
    args = ["--data", str(pack), "--run", str(run), "--batch", "2", "--size", "64", "80", "--threads", "1",
            "--face-labels", str(tmp_path / "none")]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "camseg.train.train", *args, "--steps", "100000",
                             "--save-every", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo)}, cwd=tmp_path)
    for line in proc.stdout:  # training starts after this line
        if "training photos" in line:
            break
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    saved = torch.load(run / "last.pt", weights_only=False)
    assert saved["step"] >= 1 and "stopping after step" in err
    with pytest.raises(SystemExit) as exc:
        train_main([a if a != "2" else "4" for a in args] + ["--steps", str(saved["step"] + 1)])  # batch 2 -> 4
    assert exc.value.code == 2


def test_a_resumed_minutes_run_continues_its_fitted_schedule(tmp_path, rng):
    """A resumed --minutes run started again from --steps: the learning rate of a far longer
    schedule (back toward its peak) until the next fit, then another total; a finished run
    trained again."""
    from camseg.train.train import schedule_total

    pack = tmp_path / "pack.npz"
    pack_records(_records(rng) * 2, pack)
    run = tmp_path / "run"
    args = ["--data", str(pack), "--run", str(run), "--batch", "2", "--size", "64", "80", "--threads", "1",
            "--lr", "1e-3", "--face-labels", str(tmp_path / "none")]
    assert train_main(args + ["--steps", "3"]) == 0  # as if fitted to 3 steps and stopped at 3
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["schedule_total"] == 3
    assert schedule_total(1000, 30.0, state) == 3 and schedule_total(1000, None, state) == 1000
    assert schedule_total(2, 30.0, state) == 2 and schedule_total(1000, 30.0, None) == 1000
    assert train_main(args + ["--steps", "1000", "--minutes", "30"]) == 0  # finished: nothing more
    again = torch.load(run / "last.pt", weights_only=False)
    assert again["step"] == 3 and again["schedule_total"] == 3
    state["step"], state["schedule_total"] = 2, 5  # stopped at step 2 of a 5-step schedule
    torch.save(state, run / "last.pt")
    assert train_main(args + ["--steps", "1000", "--minutes", "30"]) == 0
    resumed = torch.load(run / "last.pt", weights_only=False)
    assert resumed["step"] == 5 and resumed["schedule_total"] == 5


def test_pack_out_naming_a_folder_is_refused_before_the_photos_are_read(tmp_path, capsys):
    """It failed at the rename with IsADirectoryError, after reading every photo, and left a
    '<folder>.tmp.npz' of the whole pack beside the folder."""
    from camseg.train.pack import main

    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(tmp_path / "no data"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "is a folder" in err and "train_pack.npz" in err, err


def test_an_interrupted_pack_write_leaves_no_partial_file(tmp_path, rng, monkeypatch):
    """Ctrl-C (or a full disk) during the write left the partial 'pack.npz.tmp.npz' beside it."""
    from pathlib import Path

    import camseg.train.pack as pack_mod

    def interrupted(file, **arrays):
        Path(file).write_bytes(b"half a pack")
        raise KeyboardInterrupt

    monkeypatch.setattr(pack_mod.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack_records(_records(rng), tmp_path / "pack.npz")
    assert list(tmp_path.iterdir()) == []


def test_pack_reads_a_data_folder_given_with_a_tilde(tmp_path, monkeypatch):
    """--data=~/data (no shell expands a tilde after '=') passed the check, expanded, then failed
    with FileNotFoundError on '~/data/coco_panoptic/panoptic.json'."""
    import json

    from camseg.train.pack import main

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data" / "coco_panoptic").mkdir(parents=True)
    (tmp_path / "data" / "coco_panoptic" / "panoptic.json").write_text(
        json.dumps({"annotations": [], "categories": []}))
    assert main(["--data=~/data", "--out=~/pack.npz", "--face-labels", str(tmp_path / "none")]) == 0
    assert load_packed(tmp_path / "pack.npz") == []


def test_a_pack_with_nothing_to_draw_is_refused_before_training(tmp_path, rng, capsys):
    """An empty pack, or every set in it weighted 0, failed at the first batch with numpy's
    "a must be a positive integer" or "Probabilities contain NaN"."""
    empty, pack = tmp_path / "empty.npz", tmp_path / "pack.npz"
    pack_records([], empty)
    pack_records(_records(rng), pack)
    zero = [a for name in ("ade_sky", "scene", "coco", "celeb_hair") for a in ("--source-weight", f"{name}=0")]
    for data, more, message in [(empty, [], "holds no training photos"), (pack, zero, "is weighted 0")]:
        with pytest.raises(SystemExit) as exc:
            train_main(["--data", str(data), "--run", str(tmp_path / "run"), "--steps", "1", "--batch", "1",
                        "--size", "32", "32", "--face-labels", str(tmp_path / "none"), *more])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err, err
    assert not (tmp_path / "run" / "last.pt").exists()
