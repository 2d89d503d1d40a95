"""ONNX export: torch vs onnxruntime parity (fp32 and int8 weights), contract, scene-only graph.

Tolerances: fp32 export must match torch to 1e-3 absolute on logits (float
reordering only). int8 weight storage is a real approximation: we require the
sigmoid mattes to agree within 0.05 (max abs) and the class probabilities
within 0.05, on random weights whose logits are larger than a trained model's.
"""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
import onnxruntime as ort  # noqa: E402

from camseg.contract import METADATA_KEY, ModelContract  # noqa: E402
from camseg.train.export import export_onnx  # noqa: E402
from camseg.train.model import HyperDetr, HyperDetrConfig  # noqa: E402

SIZE = (128, 160)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HyperDetr(HyperDetrConfig(decoder_layers=3)).eval()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.random((1, 3, *SIZE), dtype=np.float32)


def run(path, image):
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, session.run(None, {"image": image})


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def reference(model, image):
    with torch.no_grad():
        scene, classes, masks = model(torch.from_numpy(image))
    return scene.numpy(), classes[1].numpy(), masks[1].numpy()  # layer 2 of 3: what pruning keeps


def test_fp32_parity_and_contract(tmp_path, model, image, reference):
    path = tmp_path / "m.onnx"
    contract = export_onnx(model, path, input_size=SIZE, decoder_layers=2, trained={"steps": 1})
    session, outputs = run(path, image)
    for got, want in zip(outputs, reference):
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-3)
    meta = session.get_modelmeta().custom_metadata_map
    embedded = ModelContract.from_json(meta[METADATA_KEY])
    assert embedded == contract
    assert embedded.decoder_layers == 2 and embedded.num_queries == 4
    assert [o.name for o in session.get_outputs()] == list(embedded.output_names())
    assert json.loads(meta[METADATA_KEY])["trained"] == {"steps": 1}


def test_int8_weights_quarter_size_and_close(tmp_path, model, image, reference):
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export_onnx(model, fp32, input_size=SIZE)
    export_onnx(model, int8, input_size=SIZE, decoder_layers=2, int8=True)
    assert int8.stat().st_size <= 0.3 * fp32.stat().st_size
    _, (scene, classes, masks) = run(int8, image)
    assert np.abs(sigmoid(scene) - sigmoid(reference[0])).max() < 0.05
    assert np.abs(sigmoid(masks) - sigmoid(reference[2])).max() < 0.05
    probs = np.exp(classes) / np.exp(classes).sum(-1, keepdims=True)
    ref = np.exp(reference[1]) / np.exp(reference[1]).sum(-1, keepdims=True)
    assert np.abs(probs - ref).max() < 0.05


def test_scene_only_graph_has_no_transformer(tmp_path, model, image, reference):
    path = tmp_path / "scene.onnx"
    contract = export_onnx(model, path, input_size=SIZE, scene_only=True)
    assert contract.scene_only and contract.output_names() == ("scene_logits",)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Softmax" not in ops  # attention is gone, not just unused
    _, (scene,) = run(path, image)
    np.testing.assert_allclose(scene, reference[0], atol=1e-3, rtol=1e-3)


def test_export_paths_keep_the_whole_stem():
    """``--out hyperdetr.v2`` wrote the full model over ``hyperdetr.onnx`` (with_suffix replaced
    ".v2") and its twin as ``hyperdetr.v2_scene.onnx``, which the runtime never paired with it."""
    from pathlib import Path

    from camseg.segmenter import _scene_model_path
    from camseg.train.export import export_paths

    for stem, full in (("m/hyperdetr.v2", "m/hyperdetr.v2.onnx"), ("m/a.onnx", "m/a.onnx"), ("m/b", "m/b.onnx")):
        got_full, got_scene = export_paths(stem)
        assert got_full == Path(full) and got_scene == _scene_model_path(got_full)  # the pair the runtime finds


def test_export_and_recover_refuse_a_file_that_is_no_checkpoint_or_model(tmp_path, capsys):
    """A text file, or the .onnx given to export, gave the unpickler's or protobuf's traceback."""
    from camseg.train.export import main as export_main
    from camseg.train.recover import main as recover_main

    junk = tmp_path / "notes.txt"
    junk.write_text("not a model")
    with pytest.raises(SystemExit) as exc:
        export_main([str(junk), "--out", str(tmp_path / "m")])
    assert exc.value.code == 2 and "is not a training checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        recover_main([str(junk), "--out", str(tmp_path / "r.pt"), "--data", str(tmp_path)])
    assert exc.value.code == 2 and "is not a camseg model file" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "r.pt").exists()


def test_export_refuses_more_decoder_layers_than_the_checkpoint_has(tmp_path, model, capsys):
    """--decoder-layers 99 on a 3-layer checkpoint failed in ExportWrapper with a traceback."""
    from camseg.train.export import main as export_main

    checkpoint = tmp_path / "c.pt"
    torch.save({"config": model.config.to_dict(), "model": model.state_dict(), "step": 0}, checkpoint)
    with pytest.raises(SystemExit) as exc:
        export_main([str(checkpoint), "--out", str(tmp_path / "m"), "--decoder-layers", "4"])
    assert exc.value.code == 2 and "has 3 decoder layers; keep 1 to 3" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_an_export_stopped_before_the_twin_leaves_no_old_twin_beside_the_new_model(tmp_path, model, monkeypatch):
    """The new full model was left beside the previous export's scene-only twin, which the runtime
    then used for every scene-only call."""
    import camseg.train.export as export_mod

    stem = tmp_path / "m"
    export_mod.export_pair(model, stem, input_size=SIZE, trained={"run": "old"})
    real = export_mod.export_onnx

    def stopped_at_the_twin(*args, scene_only=False, **kwargs):
        if scene_only:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(export_mod, "export_onnx", stopped_at_the_twin)
    with pytest.raises(KeyboardInterrupt):
        export_mod.export_pair(model, stem, input_size=SIZE, trained={"run": "new"})
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert ModelContract.from_json(meta[METADATA_KEY]).trained == {"run": "new"}
    assert not (tmp_path / "m_scene.onnx").exists()
