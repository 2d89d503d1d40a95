"""The trainer's command line: checks made before any work, and the checkpoints it reads."""

import pytest
import torch

from camseg.train.train import main as train_main


def _args(tmp_path, *more):
    data = tmp_path / "pack.npz"  # never read: every case here is refused before the photos load
    data.write_bytes(b"")
    return ["--data", str(data), "--run", str(tmp_path / "run"), "--steps", "1", "--size", "32", "32",
            "--batch", "1", "--face-labels", str(tmp_path / "none"), *more]


@pytest.mark.parametrize("content, message", [(b"garbage\n", "cannot be read as a checkpoint"),
                                              ({"foo": 1}, "not a camseg training checkpoint (no config")])
def test_a_damaged_or_foreign_checkpoint_is_refused_and_kept(tmp_path, capsys, content, message):
    """A damaged last.pt stopped the trainer with the unpickler's traceback, a foreign one with
    KeyError: 'config'; --init likewise."""
    bad = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        torch.save(content, bad)
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(bad.read_bytes())
    with pytest.raises(SystemExit) as exc:
        train_main(_args(tmp_path))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "cannot resume" in err and message in err and "move it away" in err, err
    assert (run / "last.pt").read_bytes() == bad.read_bytes()  # left as it was
    (run / "last.pt").unlink()
    with pytest.raises(SystemExit) as exc:
        train_main(_args(tmp_path, "--init", str(bad)))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--init" in err and message in err, err


@pytest.mark.parametrize("argv, message", [(["--threads", "-2"], "--threads must be at least 1"),
                                           (["--workers", "-1"], "--workers must be 0"),
                                           (["--minutes", "0"], "--minutes must be > 0"),
                                           (["--minutes", "-1"], "--minutes must be > 0")])
def test_threads_workers_and_minutes_are_checked_before_any_work(tmp_path, capsys, argv, message):
    """--threads -2 and --workers -1 failed inside torch (the latter after loading the photos);
    --minutes 0 saved the untrained model at step 0 and said "done"."""
    with pytest.raises(SystemExit) as exc:
        train_main(_args(tmp_path, *argv))
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()
