import pytest
import torch

from camseg.train.soup import main, soup


def _ckpt(path, value, *, config=None, step=10):
    torch.save({"config": config or {"backbone": "mobilenet_v2"}, "step": step, "trained": {"steps": step},
                "model": {"w": torch.full((2, 3), float(value)), "n": torch.tensor(step)}}, path)
    return path


def test_soup_averages_float_tensors_and_names_its_ingredients(tmp_path):
    a, b = _ckpt(tmp_path / "a.pt", 1.0, step=800), _ckpt(tmp_path / "b.pt", 3.0, step=600)
    s = soup([a, b])
    assert torch.allclose(s["model"]["w"], torch.full((2, 3), 2.0))
    assert s["model"]["n"].item() == 800  # integer counters come from the first checkpoint
    assert "steps" not in s["trained"] and len(s["trained"]["soup"]) == 2
    w = soup([a, b], [3.0, 1.0])
    assert torch.allclose(w["model"]["w"], torch.full((2, 3), 1.5))
    main([str(a), str(b), "--out", str(tmp_path / "s.pt")])
    assert torch.allclose(torch.load(tmp_path / "s.pt", weights_only=False)["model"]["w"], s["model"]["w"])


def test_soup_refuses_other_architectures_and_bad_weights(tmp_path):
    a = _ckpt(tmp_path / "a.pt", 1.0)
    other = _ckpt(tmp_path / "o.pt", 1.0, config={"backbone": "mobilenet_v3_large"})
    with pytest.raises(ValueError, match="another architecture"):
        soup([a, other])
    with pytest.raises(ValueError, match="at least two"):
        soup([a])
    with pytest.raises(ValueError, match="non-negative"):
        soup([a, a], [1.0, -1.0])


def test_soup_writes_into_a_new_folder_and_never_over_an_ingredient(tmp_path, capsys):
    """--out in a missing folder stopped with a traceback; --out naming one of the checkpoints
    replaced it with the soup."""
    a, b = _ckpt(tmp_path / "a.pt", 1.0), _ckpt(tmp_path / "b.pt", 3.0)
    before = a.read_bytes()
    with pytest.raises(SystemExit) as exc:
        main([str(a), str(b), "--out", str(a)])
    assert exc.value.code == 2 and "one of the checkpoints" in capsys.readouterr().err
    assert a.read_bytes() == before
    out = tmp_path / "new" / "soup.pt"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    assert torch.load(out, weights_only=False)["model"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["soup.pt"]  # no temporary file left


def test_save_atomic_leaves_the_old_file_and_no_temporary_one_when_interrupted(tmp_path, monkeypatch):
    import camseg.train.train as train_mod

    path = tmp_path / "last.pt"
    train_mod.save_atomic({"step": 1}, path)

    def interrupted(obj, f):
        f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_mod.save_atomic({"step": 2}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    monkeypatch.undo()
    assert torch.load(path, weights_only=False) == {"step": 1}


def test_the_command_refuses_an_onnx_a_missing_file_or_another_architecture_in_one_line(tmp_path, capsys):
    """Each stopped with a traceback (the unpickler's, FileNotFoundError, the ValueError)."""
    a = _ckpt(tmp_path / "a.pt", 1.0)
    other = _ckpt(tmp_path / "o.pt", 1.0, config={"backbone": "mobilenet_v3_large"})
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"\x08\x07onnx model")
    for second, message in [(onnx_file, "cannot be read as a checkpoint"), (tmp_path / "gone.pt", "cannot be read"),
                            (other, "another architecture")]:
        with pytest.raises(SystemExit) as exc:
            main([str(a), str(second), "--out", str(tmp_path / "s.pt")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and str(second) in err, err
    assert not (tmp_path / "s.pt").exists()


def test_out_naming_a_folder_is_refused_by_soup_and_recover(tmp_path, capsys):
    """Both failed at the rename with an IsADirectoryError traceback, recover after the whole
    recovery (the photos read, the BatchNorm statistics measured)."""
    from camseg.segmenter import DEFAULT_MODEL
    from camseg.train.recover import main as recover_main

    a, b = _ckpt(tmp_path / "a.pt", 1.0), _ckpt(tmp_path / "b.pt", 3.0)
    (tmp_path / "out").mkdir()
    for command, argv in [(main, [str(a), str(b)]), (recover_main, [str(DEFAULT_MODEL), "--data", str(a)])]:
        with pytest.raises(SystemExit) as exc:
            command([*argv, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "is a folder" in err, err
    assert list((tmp_path / "out").iterdir()) == []
