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


def test_ctrl_c_at_the_terminal_is_answered_once_with_loader_workers(tmp_path, rng):
    """The loader workers, forked with the trainer's stop handler, each printed "stopping after
    step 1 and saving it" too when Ctrl-C reached the whole process group."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from camseg.train.pack import pack_records
    from tests.train.test_pack import _records

    pack = tmp_path / "pack.npz"
    pack_records(_records(rng) * 2, pack)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "camseg.train.train", "--data", str(pack), "--run",
                             str(tmp_path / "run"), "--batch", "2", "--size", "64", "80", "--threads", "1",
                             "--workers", "1", "--face-labels", str(tmp_path / "none"), "--steps", "100000",
                             "--save-every", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo)}, cwd=tmp_path, start_new_session=True)
    # A first step saved: the loader's worker has started and made a batch (no fixed sleep).
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal's Ctrl-C does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert err.count("stopping after step") == 1, err[-2000:]
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] >= 1
    assert not list((tmp_path / "run").glob(".*")), "a temporary file left"


def test_a_checkpoint_without_optimiser_state_is_not_resumed(tmp_path, capsys):
    """A soup's or recover's checkpoint copied in as last.pt stopped the resume with a bare
    KeyError: 'optim' (it has config, model and step)."""
    from camseg.train.model import HyperDetr, HyperDetrConfig

    run = tmp_path / "run"
    run.mkdir()
    model = HyperDetr(HyperDetrConfig())
    torch.save({"config": model.config.to_dict(), "model": model.state_dict(), "step": 0}, run / "last.pt")
    with pytest.raises(SystemExit) as exc:
        train_main(_args(tmp_path))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no optimiser state" in err and "--init" in err, err


def test_the_schedule_is_fitted_during_the_warm_up_or_for_an_old_checkpoint():
    from camseg.train.train import WARMUP_STEPS, refits_schedule

    assert [s for s in range(400) if refits_schedule(s, 0, False)] == [20, 60, 120, 199]
    assert [s for s in range(400) if refits_schedule(s, 150, True)] == [170]  # resumed in its warm-up
    assert not any(refits_schedule(s, 300, True) for s in range(300, 600))  # a fitted schedule goes on
    assert [s for s in range(300, 600) if refits_schedule(s, 300, False)] == [320, 360, 420, 499]
    assert WARMUP_STEPS == 200


@pytest.mark.parametrize("folders", [[], ["ade_sky", "fasseg"]])
def test_a_data_folder_without_coco_is_refused_before_any_work(tmp_path, capsys, folders):
    """An empty --data folder, or one without coco_panoptic (../shared instead of ../shared/data),
    stopped with FileNotFoundError on panoptic.json after the model was built."""
    data = tmp_path / "data"
    data.mkdir()
    for name in folders:
        (data / name).mkdir()
    args = _args(tmp_path)
    args[args.index("--data") + 1] = str(data)
    with pytest.raises(SystemExit) as exc:
        train_main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no coco_panoptic/panoptic.json" in err and "../shared/data" in err, err
    assert ", ".join(folders) in err
    assert not (tmp_path / "run").exists()


def test_init_from_a_checkpoint_of_another_backbone_asks_for_it(tmp_path, capsys):
    """--init of a MobileNetV3 checkpoint without --backbone trained V3 and ignored the option; the
    same command, run again to resume, was then refused as a change of backbone (V3 -> V2)."""
    from camseg.train.model import HyperDetr, HyperDetrConfig

    model = HyperDetr(HyperDetrConfig(backbone="mobilenet_v3_large"))
    init = tmp_path / "v3.pt"
    torch.save({"config": model.config.to_dict(), "model": model.state_dict(), "step": 5}, init)
    with pytest.raises(SystemExit) as exc:
        train_main(_args(tmp_path, "--init", str(init)))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "has a mobilenet_v3_large backbone" in err, err
    assert "pass --backbone mobilenet_v3_large" in err
    assert not (tmp_path / "run" / "last.pt").exists()
