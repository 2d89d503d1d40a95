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
