"""Export a trained HyperDETR to the ONNX files the runtime loads.

Two files are written for one model, both carrying the contract
(:mod:`camseg.contract`) in their metadata:

- ``<stem>.onnx``: the full model (conv path + transformer + dynamic head),
  with trailing decoder layers pruned (``--decoder-layers``);
- ``<stem>_scene.onnx``: the scene-only model (backbone + U-Net decoder +
  static scene channels), so that a call asking only for sky/hair/skin/teeth/
  glasses never runs the transformer. onnxruntime runs every node of a graph
  whatever outputs are requested (measured: same latency), so skipping the
  transformer needs a graph without it.

Usage::

    python -m camseg.train.export CHECKPOINT --out camseg/models/hyperdetr --decoder-layers 2 --int8
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import tempfile
from pathlib import Path

import onnx
import torch

from camseg.contract import INPUT_NAME, METADATA_KEY, ModelContract
from camseg.train.model import ExportWrapper, HyperDetr, HyperDetrConfig
from camseg.train.quantize import quantize_weights

OPSET = 17


def load_checkpoint(path: "str | Path") -> tuple[HyperDetr, dict]:
    """Load a training checkpoint (``{"config", "model", ...}``) into an eval-mode model."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = HyperDetr(HyperDetrConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


def export_onnx(model: HyperDetr, path: "str | Path", *, input_size=(384, 512), decoder_layers=None,
                scene_only=False, int8=False, trained: dict | None = None) -> ModelContract:
    """Export ``model`` to ``path`` (written atomically) and return the embedded contract.

    Parameters
    ----------
    model : HyperDetr
        The trained model (left unmodified: a copy is pruned).
    path : str or Path
        Destination ``.onnx`` file.
    input_size : tuple of int
        (H, W) of the fixed model input, landscape, multiples of 32.
    decoder_layers : int, optional
        Decoder layers to keep (trailing ones are pruned); default all.
    scene_only : bool
        Export only the convolutional path and the scene channels.
    int8 : bool
        Store large weights as int8 (see :mod:`camseg.train.quantize`).
    trained : dict, optional
        Training facts recorded in the contract (data, steps, supervised categories).
    """
    config = model.config
    wrapper = ExportWrapper(copy.deepcopy(model).eval(), decoder_layers=decoder_layers,
                            scene_only=scene_only).eval()
    kept = len(wrapper.model.transformer.decoder)
    contract = ModelContract(
        input_size=tuple(input_size), scene_categories=tuple(config.scene_categories),
        thing_categories=tuple(config.thing_categories),
        num_queries=0 if scene_only else config.num_queries, mask_channels=config.mask_channels,
        decoder_layers=0 if scene_only else kept, weights="int8" if int8 else "fp32",
        trained=dict(trained or {}))
    dummy = torch.zeros(1, 3, *input_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad():
            torch.onnx.export(wrapper, (dummy,), str(raw), input_names=[INPUT_NAME],
                              output_names=list(contract.output_names()), opset_version=OPSET,
                              dynamo=False)
        proto = onnx.load(str(raw))
    if int8:
        proto = quantize_weights(proto)
    _save_with_contract(proto, contract, path)
    return contract


def set_logit_offsets(path: "str | Path", offsets: dict) -> ModelContract:
    """Write calibration offsets (category → logit offset) into an exported model's contract.

    The weights are untouched; the runtime adds the offsets before the sigmoid
    (see :class:`camseg.contract.ModelContract`). Returns the new contract.
    """
    path = Path(path)
    proto = onnx.load(str(path))
    meta = {e.key: e.value for e in proto.metadata_props}
    contract = dataclasses.replace(ModelContract.from_json(meta[METADATA_KEY]),
                                   logit_offsets={k: round(float(v), 4) for k, v in offsets.items()})
    _save_with_contract(proto, contract, path)
    return contract


def _save_with_contract(proto, contract: ModelContract, path: Path) -> None:
    """Embed ``contract`` and write ``proto`` to ``path`` atomically (temp file, then rename)."""
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, contract.to_json()
    onnx.checker.check_model(proto)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx.save(proto, tmp_name)
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600 files; a shipped model must be world-readable
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def export_paths(stem: "str | Path") -> tuple[Path, Path]:
    """``(<stem>.onnx, <stem>_scene.onnx)``, the pair the runtime finds together
    (``camseg.segmenter``); a stem given with ``.onnx`` is the full model's own name.

    The whole stem's name is kept: ``hyperdetr.v2`` wrote the full model over ``hyperdetr.onnx``
    (``with_suffix`` replaced ".v2") and its twin as ``hyperdetr.v2_scene.onnx``, which the
    runtime then never paired with it.
    """
    from camseg.segmenter import _scene_model_path

    stem = Path(stem)
    if stem.suffix.lower() == ".onnx":
        stem = stem.with_suffix("")
    full = stem.parent / (stem.name + ".onnx")
    return full, _scene_model_path(full)


def export_pair(model: HyperDetr, stem: "str | Path", **kwargs) -> tuple[Path, Path]:
    """Write ``<stem>.onnx`` (full) and ``<stem>_scene.onnx`` (scene-only); see :func:`export_paths`."""
    full, scene = export_paths(stem)
    # An earlier export's twin goes first: an export stopped between the two files (Ctrl-C, an
    # error) left the new full model beside the old twin, whose weights the runtime then used, without
    # a word, for every scene-only call. Without a twin it runs the full model: slower, not wrong.
    if scene.is_file() or scene.is_symlink():
        scene.unlink()
    export_onnx(model, full, **kwargs)
    export_onnx(model, scene, scene_only=True, **{k: v for k, v in kwargs.items() if k != "decoder_layers"})
    return full, scene


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="training checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="output stem, e.g. camseg/models/hyperdetr")
    parser.add_argument("--decoder-layers", type=int, default=None, help="keep this many decoder layers (>= 1)")
    parser.add_argument("--int8", action="store_true", help="8-bit weight storage")
    args = parser.parse_args(argv)
    if args.decoder_layers is not None and args.decoder_layers < 1:
        parser.error(f"--decoder-layers must be at least 1 (got {args.decoder_layers}); leave it out to keep them all")
    try:
        model, state = load_checkpoint(args.checkpoint)
    except Exception as exc:  # noqa: BLE001 - not a checkpoint: one line, not the unpickler's traceback
        parser.error(f"{args.checkpoint!r} is not a training checkpoint that can be read ({type(exc).__name__}: "
                     f"{str(exc)[:200]}); pass a .pt written by camseg.train.train or camseg.train.recover")
    # (More layers than trained failed in ExportWrapper with a traceback.)
    trained_layers = len(model.transformer.decoder)
    if args.decoder_layers is not None and args.decoder_layers > trained_layers:
        parser.error(f"--decoder-layers {args.decoder_layers}: {args.checkpoint!r} has {trained_layers} decoder "
                     f"layers; keep 1 to {trained_layers}, or leave it out to keep them all")
    full, scene = export_pair(model, args.out, decoder_layers=args.decoder_layers, int8=args.int8,
                              trained=state.get("trained", {}))
    if state.get("logit_offsets"):  # a recovered checkpoint's calibration (camseg.train.recover)
        for path in (full, scene):
            set_logit_offsets(path, state["logit_offsets"])
        print(f"calibration offsets carried over: {state['logit_offsets']}")
    for p in (full, scene):
        print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
