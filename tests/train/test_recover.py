"""Rebuilding a training checkpoint from an exported ONNX file (camseg.train.recover).

The model's BatchNorms get random statistics and affine terms first, so that
the exporter's folding changes every convolution's weights: a wrong pairing of
file weights to parameters, or a BatchNorm left out, changes the outputs.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from camseg.contract import METADATA_KEY, ModelContract  # noqa: E402
from camseg.train.export import export_onnx, load_checkpoint  # noqa: E402
from camseg.train.model import ExportWrapper, HyperDetr, HyperDetrConfig  # noqa: E402
from camseg.train.recover import (calibrate_batchnorm, check_recovered, main, recover_model,  # noqa: E402
                                  shipped_float_weights)

SIZE = (128, 160)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = HyperDetr(HyperDetrConfig(decoder_layers=2)).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return torch.from_numpy(rng.random((3, 3, *SIZE), dtype=np.float32))


def outputs(net, images):
    with torch.no_grad():
        return [t.numpy() for t in ExportWrapper(net.eval()).eval()(images)]


def test_fp32_file_gives_back_the_model(tmp_path, model, images):
    path = tmp_path / "m.onnx"
    export_onnx(model, path, input_size=SIZE)
    recovered, contract = recover_model(path)
    assert contract.decoder_layers == 2 and len(recovered.transformer.decoder) == 2
    for got, want in zip(outputs(recovered, images), outputs(model, images)):
        np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-3)
    # folded BatchNorms come back as identities carrying the folded bias
    folded = recovered.backbone.features[0][1]
    assert torch.all(folded.weight == 1) and torch.all(folded.running_mean == 0)
    assert not torch.allclose(folded.bias, torch.zeros_like(folded.bias))


def test_int8_file_matches_onnxruntime(tmp_path, model, images):
    path = tmp_path / "q.onnx"
    export_onnx(model, path, input_size=SIZE, int8=True)
    values = shipped_float_weights(onnx.load(str(path)))
    assert any(name.endswith("_int8") for name in values)  # the int8 path was exercised
    recovered, _ = recover_model(path)
    worst = check_recovered(recovered, path, images)
    assert max(worst.values()) < 2e-3, worst


def test_calibration_keeps_the_function_and_gives_batch_statistics(tmp_path, model, images):
    path = tmp_path / "m.onnx"
    export_onnx(model, path, input_size=SIZE)
    recovered, _ = recover_model(path)
    before = outputs(recovered, images)
    changed = calibrate_batchnorm(recovered, images)
    assert changed == sum(isinstance(m, torch.nn.BatchNorm2d) for m in recovered.modules()) - 1  # one unfolded
    for got, want in zip(outputs(recovered, images), before):
        np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-3)
    # in training mode each layer now normalises with statistics like the ones it was given, so the
    # function barely moves; with the identity statistics it would be rescaled wholesale
    bn = recovered.backbone.features[0][1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var), atol=0.05)
    recovered.train()
    with torch.no_grad():
        scene_train = recovered.conv_path(images)[2].numpy()
    recovered.eval()
    assert np.abs(scene_train - before[0]).mean() < 0.1 * np.abs(before[0]).mean()


def test_scene_only_file_is_refused(tmp_path, model, capsys):
    path = tmp_path / "m_scene.onnx"
    export_onnx(model, path, input_size=SIZE, scene_only=True)
    with pytest.raises(ValueError, match="scene-only"):
        recover_model(path)
    # The command says so in one usage line (it raised the traceback before).
    with pytest.raises(SystemExit) as stop:
        main([str(path), "--out", str(tmp_path / "r.pt"), "--data", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "scene-only" in err and f"beside it, {tmp_path / 'm.onnx'}" in err


def test_command_writes_a_checkpoint_the_trainer_and_exporter_read(tmp_path, model, monkeypatch):
    path = tmp_path / "m.onnx"
    export_onnx(model, path, input_size=SIZE, int8=True)
    monkeypatch.setattr("camseg.train.recover.calibration_images",
                        lambda data, count, size, seed=0: torch.rand(4, 3, *size))
    out = tmp_path / "r.pt"
    assert main([str(path), "--out", str(out), "--half"]) == 0
    loaded, state = load_checkpoint(out)
    assert state["model"]["backbone.features.0.0.weight"].dtype == torch.float16
    assert len(loaded.transformer.decoder) == 2 and state["step"] == 0


def test_the_calibration_offsets_go_through_recover_and_export(tmp_path, model, monkeypatch):
    """Exported again, a recovered model had no offsets: its person matte flipped on up to 27 %
    of a photo's pixels at 0.5 against the shipped model's."""
    from camseg.train.export import main as export_main
    from camseg.train.export import set_logit_offsets

    path = tmp_path / "m.onnx"
    export_onnx(model, path, input_size=SIZE, int8=True)
    set_logit_offsets(path, {"person": 0.619, "sky": 0.5})
    monkeypatch.setattr("camseg.train.recover.calibration_images",
                        lambda data, count, size, seed=0: torch.rand(4, 3, *size))
    assert main([str(path), "--out", str(tmp_path / "r.pt")]) == 0
    assert export_main([str(tmp_path / "r.pt"), "--out", str(tmp_path / "again"), "--int8"]) == 0
    for name in ("again.onnx", "again_scene.onnx"):
        meta = {p.key: p.value for p in onnx.load(str(tmp_path / name)).metadata_props}
        assert ModelContract.from_json(meta[METADATA_KEY]).logit_offsets == {"person": 0.619, "sky": 0.5}
