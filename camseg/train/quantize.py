"""8-bit weight storage for camseg ONNX models, at fp32 inference speed.

Why not onnxruntime's dynamic quantization: it turns every convolution into
ConvInteger with activations quantised at run time, which on onnxruntime CPU
made a model 6–12× slower in our measurements (DESIGN.md §3).

What we do instead: *weight-only* quantisation. Each large weight initializer
is stored as int8 with a per-output-channel scale (symmetric, zero point 0)
and a ``DequantizeLinear`` node in front of its consumer. With no quantised
activations there is nothing for onnxruntime's QDQ fusions to fuse, so
``DequantizeLinear`` of a constant is constant-folded when the session is
created (with ``session.disable_quant_qdq = 1``): the file is ≈4× smaller and
the graph that runs is the fp32 graph. Accuracy cost: per-channel int8 weights,
typically < 1e-2 on logits (measured by ``tests/train/test_export.py``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Initializers smaller than this stay fp32 (biases, norms: tiny and sensitive).
MIN_ELEMENTS = 1024
#: Other float initializers with at least this many elements are stored as float16.
HALF_MIN_ELEMENTS = 16


def quantize_weights(model: onnx.ModelProto, *, min_elements: int = MIN_ELEMENTS) -> onnx.ModelProto:
    """Return a copy of ``model`` whose large float32 weights are stored as int8.

    Parameters
    ----------
    model : onnx.ModelProto
        An fp32 model.
    min_elements : int
        Initializers with fewer elements are left in fp32.

    Returns
    -------
    onnx.ModelProto
        A new model; per-output-channel (axis 0) symmetric int8 weights,
        each followed by a ``DequantizeLinear`` node producing the original name.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    new_inits, new_nodes = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        ops = consumers.get(init.name, [])
        if (arr.dtype != np.float32 or arr.size < min_elements or arr.ndim < 2
                or not ops or any(op not in ("Conv", "MatMul", "Gemm") for op in ops)):
            if arr.dtype == np.float32 and arr.size >= HALF_MIN_ELEMENTS and np.abs(arr).max() < 6e4:
                # Small tensors (biases, norms, per-channel vectors) are kept at float16 precision:
                # half the bytes, and a Cast of a constant is folded at load like the dequantisation.
                hname = init.name + "_fp16"
                new_inits.append(numpy_helper.from_array(arr.astype(np.float16), hname))
                new_nodes.append(helper.make_node("Cast", [hname], [init.name], to=TensorProto.FLOAT,
                                                  name=init.name + "_cast"))
            else:
                new_inits.append(init)
            continue
        # MatMul weights are (in, out): quantise per output column (axis 1); Conv/Gemm(transB) per row.
        axis = 1 if ops[0] == "MatMul" else 0
        moved = np.moveaxis(arr, axis, 0).reshape(arr.shape[axis], -1)
        scale = np.maximum(np.abs(moved).max(axis=1), 1e-12) / 127.0
        shape = [1] * arr.ndim
        shape[axis] = -1
        q = np.clip(np.round(arr / scale.reshape(shape)), -127, 127).astype(np.int8)
        qname, sname = init.name + "_int8", init.name + "_scale"
        new_inits += [numpy_helper.from_array(q, qname), numpy_helper.from_array(scale.astype(np.float32), sname)]
        # No zero-point input: symmetric quantisation, and the int8 input type fixes the output type.
        new_nodes.append(helper.make_node("DequantizeLinear", [qname, sname], [init.name],
                                          axis=axis, name=init.name + "_dequant"))
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + nodes)
    return model
