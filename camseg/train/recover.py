"""Rebuild a training checkpoint from a shipped ONNX model, to train on from it.

The float checkpoints a model was exported from live outside the repository
(``~/.cache/camseg``) and can be lost with the machine; the shipped file is
then the only copy of the weights. This inverts :mod:`camseg.train.export`:

1. The shipped file's weights are read back to float32: int8 weights times
   their per-channel scale (``DequantizeLinear``), float16 ones cast up.
2. A template model of the contract's architecture (its decoder-layer count:
   the pruned layers are gone) is exported the same way, with every parameter
   set to distinct random values and every BatchNorm set to the identity
   (weight 1, mean 0, variance 1 − eps) with a random bias. The exporter
   folds each BatchNorm into the convolution before it, so each template
   initializer now equals one parameter (or its transpose, for a ``MatMul``),
   and a folded bias equals the BatchNorm's bias. Nodes carry the same names in
   both exports, so each shipped weight is found through its node and input
   position.
3. Folded convolutions keep the folded weight and an identity BatchNorm with
   the folded bias. To let training normalise with batch statistics again,
   each BatchNorm's statistics are measured on real photos (``calibration``)
   and the layer is re-parametrised so that it computes the same function in
   eval mode: mean μ, variance σ², weight √(σ² + eps), bias μ + b.

The rebuilt model's outputs are compared with onnxruntime's on the shipped
file (:func:`check_recovered`); the int8 rounding is kept, not undone.

Usage::

    python -m camseg.train.recover camseg/models/hyperdetr.onnx --out ~/.cache/camseg/shipped.pt
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from camseg.contract import INPUT_NAME, METADATA_KEY, ModelContract
from camseg.train.export import export_onnx
from camseg.train.model import ExportWrapper, HyperDetr, HyperDetrConfig


def shipped_float_weights(proto: onnx.ModelProto) -> dict:
    """Every weight of an exported model as float32, by the name its consumers read.

    Parameters
    ----------
    proto : onnx.ModelProto
        A model written by :func:`camseg.train.export.export_onnx` (int8 or fp32).

    Returns
    -------
    dict of str to numpy.ndarray
        Initializers, plus the outputs of the ``DequantizeLinear`` and ``Cast``
        nodes that :mod:`camseg.train.quantize` put in front of stored weights,
        and of the ``Identity`` nodes through which the exporter shares equal ones.
    """
    values = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in values:
            q, scale = values[node.input[0]].astype(np.float32), values[node.input[1]].astype(np.float32)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            shape[axis] = -1
            values[node.output[0]] = q * (scale.reshape(shape) if scale.ndim else scale)
        elif node.op_type == "Cast" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].astype(np.float32)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]  # how the exporter shares equal weights
    return values


def _template_export(model: HyperDetr, input_size) -> onnx.ModelProto:
    """``model`` exported in fp32 by the exporter that wrote the shipped files (same node names)."""
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, Path(tmp) / "template.onnx", input_size=tuple(input_size))
        return onnx.load(str(Path(tmp) / "template.onnx"))


class SceneOnlyModelError(ValueError):
    """The file is a scene-only twin (``<stem>_scene.onnx``): it holds no transformer to recover."""


def recover_model(path: "str | Path") -> tuple[HyperDetr, ModelContract]:
    """Rebuild the float model of a shipped ONNX file (BatchNorms left as identities).

    Parameters
    ----------
    path : str or Path
        The full model's ``.onnx`` (not the scene-only twin).

    Returns
    -------
    model : HyperDetr
        Eval-mode model whose decoder has the file's layer count; every
        BatchNorm is an identity plus bias (see :func:`calibrate_batchnorm`).
    contract : ModelContract
        The file's contract.

    Raises
    ------
    SceneOnlyModelError
        If the file is a scene-only model.
    ValueError
        If a parameter of the architecture has no counterpart in the file.
    """
    proto = onnx.load(str(path))
    meta = {e.key: e.value for e in proto.metadata_props}
    contract = ModelContract.from_json(meta[METADATA_KEY])
    if contract.decoder_layers == 0:
        from camseg.segmenter import _full_model_path

        full = _full_model_path(Path(path))
        full = f"the full model beside it, {full}" if full is not None else "the full model exported with it"
        raise SceneOnlyModelError(f"{path} is a scene-only model (no transformer to recover); recover from {full}")
    config = HyperDetrConfig(decoder_layers=contract.decoder_layers, mask_channels=contract.mask_channels,
                             num_queries=contract.num_queries,
                             scene_categories=tuple(contract.scene_categories),
                             thing_categories=tuple(contract.thing_categories))
    template = HyperDetr(config).eval()
    modules = dict(template.named_modules())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in template.named_parameters():
            owner = modules[name.rpartition(".")[0]]
            if isinstance(owner, torch.nn.BatchNorm2d) and name.endswith(".weight"):
                param.fill_(1.0)  # identity scale: the folded weight is then the conv's own
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
        for module in template.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.zero_()
                module.running_var.fill_(1.0 - module.eps)
    exported = _template_export(template, contract.input_size)
    template_values = {i.name: numpy_helper.to_array(i) for i in exported.graph.initializer}
    shipped_values = shipped_float_weights(proto)
    shipped_nodes = {n.name: n for n in proto.graph.node}

    # template initializer name -> the shipped weight in the same place (node name, input position)
    paired = {}
    for node in exported.graph.node:
        twin = shipped_nodes.get(node.name)
        if twin is None or twin.op_type != node.op_type:
            continue
        for k, name in enumerate(node.input):
            if name in template_values and k < len(twin.input) and twin.input[k] in shipped_values:
                paired[name] = shipped_values[twin.input[k]]

    state = template.state_dict()
    # kept under their own names (ExportWrapper holds the model as ``model``)
    recovered = {key: paired["model." + key] for key in state if "model." + key in paired}
    by_size = {}  # by element count: the exporter may fold an Unsqueeze into a weight
    for name, value in template_values.items():
        if name in paired and value.dtype == np.float32:
            by_size.setdefault(value.size, []).append((name, value))
    for key, tensor in state.items():
        owner = modules[key.rpartition(".")[0]]
        if key in recovered or (isinstance(owner, torch.nn.BatchNorm2d) and not key.endswith(".bias")):
            continue  # a folded BatchNorm's scale and statistics stay the identity
        target = tensor.numpy()
        candidates = [(n, v, False) for n, v in by_size.get(target.size, []) if v.shape == target.shape
                      or v.squeeze().shape == target.squeeze().shape]
        if target.ndim == 2:
            candidates += [(n, v, True) for n, v in by_size.get(target.size, []) if v.shape == target.shape[::-1]]
        match = next(((n, t) for n, v, t in candidates
                      if np.allclose((v.T if t else v).reshape(target.shape), target, rtol=1e-4, atol=1e-6)),
                     None)
        if match is None:
            raise ValueError(f"{path}: no weight in the file matches the parameter {key} "
                             f"{tuple(target.shape)}; was it exported from another architecture, or by "
                             f"another torch version (whose node names differ: this is {torch.__version__})?")
        value = paired[match[0]]
        recovered[key] = np.ascontiguousarray(value.T if match[1] else value).reshape(target.shape)
    for key, value in recovered.items():  # (state_dict's tensors are the parameters themselves)
        state[key].copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)).reshape(state[key].shape))
    return template, contract


def _batchnorm_inputs(model: HyperDetr, images: torch.Tensor) -> dict:
    """Per-channel mean and variance of every BatchNorm's input over ``images`` (eval mode)."""
    sums, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            def hook(mod, inputs, output, name=name):
                x = inputs[0].detach().double()
                n = x.shape[0] * x.shape[2] * x.shape[3]
                s = sums.setdefault(name, [0, 0.0, 0.0])
                s[0] += n
                s[1] = s[1] + x.sum(dim=(0, 2, 3))
                s[2] = s[2] + (x * x).sum(dim=(0, 2, 3))
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for start in range(0, len(images), 4):
                model(images[start:start + 4])
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for name, (n, s1, s2) in sums.items():
        mean = s1 / n
        out[name] = (mean.float(), (s2 / n - mean * mean).clamp_min(0).float())
    return out


def calibrate_batchnorm(model: HyperDetr, images: torch.Tensor) -> int:
    """Give each identity BatchNorm the statistics of its input, same function in eval mode.

    Parameters
    ----------
    model : HyperDetr
        From :func:`recover_model` (changed in place).
    images : torch.Tensor
        float32 (N, 3, H, W) sRGB in [0, 1]: photos like the training set's.

    Returns
    -------
    int
        BatchNorm layers re-parametrised (those still the identity).
    """
    stats = _batchnorm_inputs(model.eval(), images)
    changed = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if not isinstance(module, torch.nn.BatchNorm2d):
                continue
            identity = (torch.all(module.weight == 1) and torch.all(module.running_mean == 0)
                        and torch.allclose(module.running_var, torch.full_like(module.running_var, 1 - module.eps)))
            if not identity:
                continue
            mean, var = stats[name]
            # eval: (x - μ) / √(σ² + eps) · √(σ² + eps) + μ + b = x + b, as before
            module.bias.add_(mean)
            module.weight.copy_(torch.sqrt(var + module.eps))
            module.running_mean.copy_(mean)
            module.running_var.copy_(var)
            changed += 1
    return changed


def check_recovered(model: HyperDetr, path: "str | Path", images: torch.Tensor) -> dict:
    """Largest absolute differences between the rebuilt model and onnxruntime on the shipped file.

    Returns
    -------
    dict
        ``scene_logits``, ``query_class_logits``, ``query_mask_logits``: max |torch − onnx|.
    """
    from camseg.segmenter import _session

    session = _session(Path(path), None)[0]  # opened as the runtime opens it (its fp32 graph)
    names = [o.name for o in session.get_outputs()]
    wrapper = ExportWrapper(model.eval()).eval()
    worst = {n: 0.0 for n in names}
    with torch.no_grad():
        for image in images:
            ours = [t.numpy() for t in wrapper(image[None])]
            theirs = session.run(names, {INPUT_NAME: image[None].numpy()})
            for n, a, b in zip(names, ours, theirs):
                worst[n] = max(worst[n], float(np.abs(a - b).max()))
    return worst


def calibration_images(data: "str | Path", count: int, size=(384, 512), seed: int = 0) -> torch.Tensor:
    """``count`` training photos (from a data folder or a pack), resized to ``size``: (N, 3, H, W) float32."""
    import cv2

    from camseg.train.pack import load_training_split

    records = load_training_split(Path(data).expanduser())
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(records), size=min(count, len(records)), replace=False)
    batch = []
    for i in picks:
        image = records[i].image  # uint8 sRGB
        batch.append(cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(batch).astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the full model's .onnx, e.g. camseg/models/hyperdetr.onnx")
    parser.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    parser.add_argument("--data", default="../shared/data", help="training photos for the BatchNorm statistics")
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--half", action="store_true",
                        help="store the weights as float16 (half the bytes, to send to a training machine; "
                             "they were int8 in the file)")
    args = parser.parse_args(argv)
    if args.photos < 1:
        parser.error(f"--photos must be at least 1, got {args.photos}")
    if not Path(args.data).expanduser().exists():
        parser.error(f"--data {args.data!r}: no such folder (../shared/data) or pack file")
    if Path(args.out).expanduser().is_dir():  # (it failed at the rename, after the whole recovery, with a traceback)
        parser.error(f"--out {args.out!r} is a folder; name the checkpoint to write, e.g. "
                     f"{str(Path(args.out) / 'recovered.pt')!r}")
    try:
        model, contract = recover_model(args.model)
    except SceneOnlyModelError as exc:
        parser.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - a file that is no camseg model: one line, not protobuf's traceback
        parser.error(f"{args.model!r} is not a camseg model file that can be read ({type(exc).__name__}: "
                     f"{str(exc)[:200]}); pass the full model, e.g. camseg/models/hyperdetr.onnx")
    from camseg.train.data import data_folder_problem

    if Path(args.data).expanduser().is_dir() and data_folder_problem(Path(args.data).expanduser()):
        parser.error(f"--data: {data_folder_problem(Path(args.data).expanduser())} (or a pack file)")
    images = calibration_images(args.data, args.photos, size=contract.input_size)
    worst = check_recovered(model, args.model, images[:8])
    changed = calibrate_batchnorm(model, images)
    worst_after = check_recovered(model, args.model, images[:8])
    print(f"BatchNorm layers re-parametrised: {changed}")
    print("max |torch - onnxruntime| before / after:",
          json.dumps({k: [round(worst[k], 5), round(worst_after[k], 5)] for k in worst}))
    from camseg.train.train import save_atomic

    out = Path(args.out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: (v.half() if args.half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    # The calibration offsets go along: exported again without them, the recovered model's
    # person matte flipped on up to 27 % of a photo's pixels at 0.5 against the shipped one's.
    save_atomic({"config": model.config.to_dict(), "model": weights, "step": 0,
                 "trained": dict(contract.trained, recovered_from=str(args.model)),
                 "logit_offsets": dict(contract.logit_offsets)}, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
