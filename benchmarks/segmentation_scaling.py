"""Benchmark: how segmentation cost scales with the number of object queries N.

Reproduces Figure 4 of the HyperDETR seed paper (Apple ML Research, "On-device
Panoptic Segmentation for Camera Using Transformers", 2021) on this machine:
latency and peak memory of one forward pass versus N for

- **HyperDETR** — the dynamic head: each query's decoder output becomes the 16
  weights and the bias of a 1×1 convolution over the shared 16-channel mask map,
  so a mask costs one dot product per pixel and the total barely moves with N;
- **the DETR-style head** — DETR's panoptic mask head (Carion et al., "End-to-End
  Object Detection with Transformers", ECCV 2020, §4.4): attention maps plus an
  FPN conv stack that runs once per query, so its cost grows linearly with N;

both on the same backbone, U-Net decoder and transformer, exported with the
project's own exporter (:func:`camseg.train.export.export_onnx`, trailing decoder
layers pruned) and run with onnxruntime on the CPU with the session options the
runtime uses (:func:`camseg.segmenter._session`).

What is measured
----------------
- Latency: median of ``--runs`` forward passes per model after ``--warmup``
  passes, at 384×512 input, ``--threads`` intra-op threads. Measurements are
  *interleaved* round-robin across all models (the order rotates every round)
  so that load from other processes on this shared machine hits every model
  alike. Times are also given as ratios to HyperDETR at N=4 measured in the
  same run (DESIGN.md §4.10).
- Peak memory of a forward pass: each model is loaded in a fresh subprocess;
  the peak resident set size (``VmHWM``, reset via ``/proc/self/clear_refs``
  after the session is created; ``ru_maxrss`` where that is unavailable) minus
  the resident set before the first pass — the working memory of the forward
  pass (activations + arena), not the weights.
- The scene-only path (backbone + U-Net decoder + static scene channels, no
  transformer: ``export_onnx(scene_only=True)``) and the full HyperDETR N=4
  model with fp32 versus 8-bit weight storage (:mod:`camseg.train.quantize`):
  file size and latency, in the same interleaved rounds.
- FLOPs per part (backbone; conv decoder + scene head; transformer incl. input
  projection and class head; mask head) at N=4 and N=100 for both heads, counted
  by :class:`torch.utils.flop_counter.FlopCounterMode` on a meta-device model
  (shapes only, nothing computed). It counts matmuls and convolutions (2 FLOPs
  per multiply-add) — not element-wise ops, resampling or softmax. Against the
  measured float32 matrix-multiply rate of this machine (numpy 2048×2048 @ on
  the same thread count) each part gets an "ideal" time, compared with the
  measured latency.

Weights are random (seeded): latency and memory do not depend on the values.
The decoder is pruned to ``--decoder-layers`` (default 2, as shipped; the seed
also prunes 6 → 2).

Usage::

    nice -n 10 python benchmarks/segmentation_scaling.py [--backbone mobilenet_v3_large|mobilenet_v2]
        [--queries 1,2,4,10,25,50,100] [--runs 9] [--warmup 2] [--threads 2]
        [--decoder-layers 2] [--out benchmarks/out] [--models-dir DIR] [--quick]

``--quick`` (N in 1, 4, 100; 3 runs; 1 warm-up) is a smoke test. Results: a
table on stdout, ``segmentation_scaling_<backbone>[_quick].png`` and ``.json``
in ``--out``.

Run time is dominated by the 16 ONNX exports and by the CPU share this process
gets. Under ``nice -n 10`` beside a training job at normal priority on 2 cores
it gets a few per cent of the CPU: the quick run then took 23 minutes and every
latency was ~30× the idle-machine figure (ratios between models stay usable,
absolute times do not). ``--models-dir benchmarks/out/models`` keeps the
exported files so that a re-run only re-times. For absolute figures run it on
an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEADS = ("hyper", "detr")
HEAD_NAMES = {"hyper": "HyperDETR", "detr": "DETR-style head"}
BACKBONES = ("mobilenet_v3_large", "mobilenet_v2")
DEFAULT_QUERIES = (1, 2, 4, 10, 25, 50, 100)
QUICK_QUERIES = (1, 4, 100)
REFERENCE_N = 4  # the seed's query count: every latency is also a ratio to HyperDETR at this N
FLOP_QUERIES = (4, 100)
INPUT_SIZE = (384, 512)
MATMUL_SIZE = 2048

# Sources whose change makes a kept model stale (see --models-dir).
MODEL_SOURCES = ("camseg/train/model.py", "camseg/train/backbones.py", "camseg/train/export.py",
                 "camseg/train/quantize.py", "camseg/contract.py")

# (part name, submodules of HyperDetr counted in it) for the FLOP breakdown.
PARTS = (
    ("backbone", ("backbone",)),
    ("conv decoder + scene head", ("decoder", "scene_head")),
    ("transformer (+proj, class)", ("input_proj", "transformer", "class_head")),
    ("mask head", ("mask_head",)),
)

# Goals from the issue: HyperDETR flat, the DETR-style head growing several-fold,
# the 8-bit model no slower than fp32 and at most a quarter of its size.
GOAL_HYPER_GROWTH = 1.3
GOAL_DETR_GROWTH = 3.0  # "several-fold", read as at least 3×
GOAL_INT8_SIZE = 0.25
GOAL_INT8_LATENCY = 1.05  # 1.0 plus a 5 % allowance for timing noise on a shared machine


def log(message: str) -> None:
    """Print a progress line to stderr (stdout carries only the result tables)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- models


def build_model(backbone: str, head: str, num_queries: int, *, device: str = "cpu"):
    """Build a HyperDETR model with seeded random weights.

    Parameters
    ----------
    backbone : str
        ``"mobilenet_v3_large"`` (width 1.5, the seed's) or ``"mobilenet_v2"``.
    head : str
        ``"hyper"`` (dynamic 1×1 conv head) or ``"detr"`` (DETR's panoptic head).
    num_queries : int
        Number of object queries N.
    device : str
        ``"meta"`` builds a shape-only model (for FLOP counting).

    Returns
    -------
    camseg.train.model.HyperDetr
        The model in eval mode, gradients off. The same seed gives the parts
        shared between heads and query counts the same weights.
    """
    import torch

    from camseg.train.model import HyperDetr, HyperDetrConfig

    torch.manual_seed(0)
    config = HyperDetrConfig(backbone=backbone, num_queries=num_queries, mask_head=head)
    with torch.device(device):
        model = HyperDetr(config)
    return model.eval().requires_grad_(False)


def model_key(backbone: str, decoder_layers: int) -> str:
    """Short hash of the model/export sources and export settings.

    A model kept in ``--models-dir`` is reused only while this key matches, so an
    edit to the model or the exporter never times a stale file.
    """
    digest = hashlib.sha1(repr((backbone, decoder_layers, INPUT_SIZE)).encode())
    for rel in MODEL_SOURCES:
        digest.update((REPO / rel).read_bytes())
    return digest.hexdigest()[:10]


def export_models(backbone: str, queries, decoder_layers: int, workdir: Path) -> dict:
    """Export every model the benchmark times into ``workdir`` (reusing matching files there).

    Parameters
    ----------
    backbone : str
        Backbone name (see :func:`build_model`).
    queries : sequence of int
        Query counts N; one model per N and head.
    decoder_layers : int
        Decoder layers kept at export (trailing ones pruned).
    workdir : Path
        Directory for the ``.onnx`` files. A file whose name carries the current
        :func:`model_key` is reused instead of exported again.

    Returns
    -------
    dict
        label → ``{"path", "head", "n", "kind", "size_mb", "export_s"}``
        (``export_s`` is None for a reused file). Labels
        are ``"hyper/N"``, ``"detr/N"``, ``"scene"`` (scene-only path) and
        ``"hyper/4/int8"`` (8-bit weights).
    """
    from camseg.train.export import export_onnx

    models = {}
    key = model_key(backbone, decoder_layers)

    def export(label, model, **kwargs):
        path = workdir / f"{backbone}_{label.replace('/', '_')}_{key}.onnx"
        models[label]["path"] = str(path)
        models[label]["export_s"] = None
        if not path.exists():  # export_onnx writes atomically, so an existing file is complete
            log(f"export {label}")
            t0 = time.perf_counter()
            export_onnx(model, path, input_size=INPUT_SIZE, **kwargs)
            models[label]["export_s"] = time.perf_counter() - t0
        models[label]["size_mb"] = path.stat().st_size / 1e6

    for head in HEADS:
        for n in queries:
            model = build_model(backbone, head, n)
            label = f"{head}/{n}"
            models[label] = {"head": head, "n": n, "kind": "fp32"}
            export(label, model, decoder_layers=decoder_layers)
            if head == "hyper" and n == REFERENCE_N:
                models["scene"] = {"head": None, "n": 0, "kind": "scene-only"}
                export("scene", model, scene_only=True)
                int8_label = f"hyper/{REFERENCE_N}/int8"
                models[int8_label] = {"head": "hyper", "n": n, "kind": "int8"}
                export(int8_label, model, decoder_layers=decoder_layers, int8=True)
    return models


def make_session(path: "str | Path", threads: int):
    """Open an onnxruntime CPU session with the runtime's options.

    The options copy :func:`camseg.segmenter._session` (kept in step by hand:
    that function also validates the contract, which a benchmark does not need,
    and importing it would pull the whole runtime into the memory probes).

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file.
    threads : int
        onnxruntime intra-op threads.

    Returns
    -------
    onnxruntime.InferenceSession
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    # int8-stored weights: constant-fold DequantizeLinear so the fp32 graph runs (camseg.train.quantize).
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def make_input(seed: int = 0) -> np.ndarray:
    """Random sRGB-encoded image, float32 (1, 3, 384, 512) in [0, 1] (the model's input contract)."""
    return np.random.default_rng(seed).random((1, 3, *INPUT_SIZE), dtype=np.float32)


# --------------------------------------------------------------------------- latency


def time_interleaved(paths: dict, threads: int, warmup: int, runs: int) -> dict:
    """Time forward passes of several models round-robin.

    Each round runs every model once; the starting model rotates from round
    to round so no model always follows the same neighbour. Background load
    on the machine therefore spreads over all models alike, which keeps the
    ratios between them meaningful even when absolute times drift.

    Parameters
    ----------
    paths : dict
        label → ``.onnx`` path.
    threads : int
        onnxruntime intra-op threads.
    warmup : int
        Untimed rounds first (arena allocation, first-run graph work).
    runs : int
        Timed rounds.

    Returns
    -------
    dict
        label → list of ``runs`` wall-clock times in milliseconds.
    """
    image = make_input()
    labels = list(paths)
    sessions, feeds = {}, {}
    for label in labels:
        log(f"session {label}")
        sessions[label] = make_session(paths[label], threads)
        feeds[label] = {sessions[label].get_inputs()[0].name: image}
    times = {label: [] for label in labels}
    for r in range(warmup + runs):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        t_round = time.perf_counter()
        for label in order:
            t0 = time.perf_counter()
            sessions[label].run(None, feeds[label])
            dt = (time.perf_counter() - t0) * 1e3
            if r >= warmup:
                times[label].append(dt)
        kind = "warm-up" if r < warmup else "timed"
        log(f"round {r + 1}/{warmup + runs} ({kind}) {time.perf_counter() - t_round:.1f} s")
    return times


def summarize(samples) -> dict:
    """Median and quartiles (ms) of a list of times."""
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(min(samples))}


# --------------------------------------------------------------------------- child probes


def _status_kb(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else None


def probe_memory(path: str, threads: int, runs: int) -> dict:
    """Measure, in this (fresh) process, the memory a model's forward pass needs.

    Parameters
    ----------
    path : str
        ``.onnx`` file.
    threads : int
        onnxruntime intra-op threads.
    runs : int
        Forward passes after session creation (the peak is over all of them).

    Returns
    -------
    dict
        ``rss_session_mb`` (resident set after session creation, weights and
        graph included), ``forward_peak_mb`` (peak minus that: the working memory
        of a forward pass), ``peak_mb`` (absolute peak after the reset) and
        ``method``.
    """
    # Deliberately no camseg import here: importing the package pulls in the whole runtime
    # (effects, colour-science), which would only add noise to the probe and slow it down.
    session = make_session(path, threads)
    feed = {session.get_inputs()[0].name: make_input()}
    base_kb = _status_kb("VmRSS")
    method = "VmHWM after clear_refs"
    try:
        # Linux ≥ 4.0: writing 5 resets the peak RSS to the current RSS, so session
        # creation's own transient peak (graph optimisation) does not mask the forward's.
        Path("/proc/self/clear_refs").write_text("5")
        if base_kb is None or _status_kb("VmHWM") is None:
            raise OSError("no /proc/self/status")
    except OSError:
        method = "ru_maxrss (includes session creation's peak)"
        base_kb = base_kb or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(runs):
        session.run(None, feed)
    if method.startswith("VmHWM"):
        peak_kb = _status_kb("VmHWM")
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    return {"rss_session_mb": base_kb / 1024, "forward_peak_mb": (peak_kb - base_kb) / 1024,
            "peak_mb": peak_kb / 1024, "method": method}


def probe_matmul(size: int = MATMUL_SIZE, repeats: int = 7) -> dict:
    """Measure the float32 matrix-multiply rate of numpy's BLAS in this process.

    The parent sets ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS``
    before starting this process, which is how the thread count is fixed.

    Parameters
    ----------
    size : int
        Square matrix size.
    repeats : int
        Timed products (after one warm-up).

    Returns
    -------
    dict
        ``median_gflops`` and ``best_gflops`` (2·size³ FLOPs per product).
    """
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    flops = 2.0 * size ** 3
    return {"median_gflops": flops / statistics.median(times) / 1e9, "best_gflops": flops / min(times) / 1e9}


def run_child(args: list, threads: int) -> dict:
    """Run this script as a fresh subprocess in a probe mode and parse its JSON line.

    Parameters
    ----------
    args : list of str
        Probe arguments (``--probe-memory PATH`` or ``--probe-matmul``).
    threads : int
        Thread count, passed on the command line and as BLAS/OpenMP env variables.

    Returns
    -------
    dict
        The probe's result.
    """
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(threads), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"probe {args} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- FLOPs


def count_flops(backbone: str, head: str, num_queries: int, decoder_layers: int) -> dict:
    """FLOPs of one forward pass of the exported graph, per part.

    The model is built on the meta device (shapes only) and wrapped exactly as
    the exporter wraps it (:class:`camseg.train.model.ExportWrapper`, pruned to
    ``decoder_layers``), so the count matches what onnxruntime runs.

    Parameters
    ----------
    backbone, head : str
        See :func:`build_model`.
    num_queries : int
        Number of object queries N.
    decoder_layers : int
        Decoder layers kept.

    Returns
    -------
    dict
        part name (see ``PARTS``) → GFLOP, plus ``"total"``. FLOPs outside the
        listed parts, if any, are reported as ``"other"``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from camseg.train.model import ExportWrapper

    model = build_model(backbone, head, num_queries, device="meta")
    wrapper = ExportWrapper(model, decoder_layers=decoder_layers).eval()
    image = torch.zeros(1, 3, *INPUT_SIZE, device="meta")
    counter = FlopCounterMode(display=False, depth=None)
    # No torch.no_grad(): its module tracker needs grad_fn bookkeeping; gradients are off anyway.
    with counter:
        wrapper(image)
    per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    total = counter.get_total_flops()
    prefix = "ExportWrapper.model."
    result = {}
    for part, modules in PARTS:
        result[part] = sum(per_module.get(prefix + m, 0) for m in modules) / 1e9
    other = total / 1e9 - sum(result.values())
    if abs(other) > 1e-6:
        result["other"] = other
    result["total"] = total / 1e9
    return result


# --------------------------------------------------------------------------- report


def format_table(header: list, rows: list, align: str | None = None) -> str:
    """Plain-text table with right-aligned columns (``align`` 'l'/'r' per column)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = align or "l" + "r" * (len(header) - 1)
    lines = []
    for k, row in enumerate(cells):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Save latency and forward-pass memory versus N (log x) for both heads.

    Parameters
    ----------
    results : dict
        The benchmark's results (see :func:`main`).
    path : Path
        PNG file to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queries = results["config"]["queries"]
    lat, mem = results["latency_ms"], results["memory"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    styles = {"hyper": dict(color="tab:blue", marker="o"), "detr": dict(color="tab:red", marker="s")}
    for head in HEADS:
        med = [lat[f"{head}/{n}"]["median"] for n in queries]
        lo = [lat[f"{head}/{n}"]["q1"] for n in queries]
        hi = [lat[f"{head}/{n}"]["q3"] for n in queries]
        axes[0].plot(queries, med, label=HEAD_NAMES[head], **styles[head])
        axes[0].fill_between(queries, lo, hi, color=styles[head]["color"], alpha=0.2, lw=0)
        axes[1].plot(queries, [mem[f"{head}/{n}"]["forward_peak_mb"] for n in queries],
                     label=HEAD_NAMES[head], **styles[head])
    axes[0].axhline(lat["scene"]["median"], color="gray", ls="--", label="scene-only path (no transformer)")
    axes[1].axhline(mem["scene"]["forward_peak_mb"], color="gray", ls="--", label="scene-only path")
    cfg = results["config"]
    axes[0].set_ylabel("latency, median ms (band: quartiles)")
    axes[1].set_ylabel("peak forward-pass memory, MB")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(queries)
        ax.set_xticklabels([str(n) for n in queries])
        ax.set_xlabel("object queries N")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{cfg['backbone']} · {cfg['input_size'][0]}×{cfg['input_size'][1]} · "
                 f"{cfg['decoder_layers']} decoder layers · onnxruntime CPU, {cfg['threads']} threads · "
                 "random weights", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: dict) -> str:
    """Format the result tables (plain text) from the results dict."""
    cfg = results["config"]
    queries = cfg["queries"]
    lat, mem, sizes = results["latency_ms"], results["memory"], results["size_mb"]
    ref = lat[f"hyper/{REFERENCE_N}"]["median"]
    out = []
    out.append(f"Segmentation scaling — backbone {cfg['backbone']}"
               f"{' ×' + str(cfg['backbone_width']) if cfg['backbone'] == 'mobilenet_v3_large' else ''}, "
               f"input {cfg['input_size'][0]}×{cfg['input_size'][1]}, decoder layers {cfg['decoder_layers']} "
               f"(pruned), onnxruntime {cfg['onnxruntime']} CPU, {cfg['threads']} intra-op threads")
    out.append(f"Random (seeded) weights. Median of {cfg['runs']} interleaved runs after {cfg['warmup']} "
               f"warm-up; ×ref = ratio to HyperDETR N={REFERENCE_N} ({ref:.1f} ms) in this run. "
               f"Load average {cfg['loadavg_start'][0]:.1f} → {cfg['loadavg_end'][0]:.1f} "
               f"on {cfg['cpus']} CPUs.")
    out.append("")
    rows = []
    for n in queries:
        h, d = lat[f"hyper/{n}"], lat[f"detr/{n}"]
        rows.append([n, f"{h['median']:.1f}", f"{h['q1']:.0f}–{h['q3']:.0f}", f"{h['median'] / ref:.2f}",
                     f"{d['median']:.1f}", f"{d['q1']:.0f}–{d['q3']:.0f}", f"{d['median'] / ref:.2f}",
                     f"{d['median'] / h['median']:.2f}",
                     f"{mem[f'hyper/{n}']['forward_peak_mb']:.0f}", f"{mem[f'detr/{n}']['forward_peak_mb']:.0f}"])
    out.append("Latency and forward-pass peak memory vs N")
    out.append(format_table(["N", "Hyper ms", "IQR", "×ref", "DETR ms", "IQR", "×ref", "DETR/Hyper",
                             "Hyper MB", "DETR MB"], rows, "r" * 10))
    out.append("(MB: peak resident memory of a forward pass above the loaded session, fresh process per model.)")
    out.append("")

    fp32, int8, scene = f"hyper/{REFERENCE_N}", f"hyper/{REFERENCE_N}/int8", "scene"
    rows = []
    for label, name in ((fp32, f"HyperDETR N={REFERENCE_N}, fp32 weights"),
                        (int8, f"HyperDETR N={REFERENCE_N}, 8-bit weights"),
                        (scene, "scene-only path (no transformer), fp32")):
        rows.append([name, f"{sizes[label]:.2f}", f"{lat[label]['median']:.1f}",
                     f"{lat[label]['q1']:.0f}–{lat[label]['q3']:.0f}", f"{lat[label]['median'] / ref:.2f}",
                     f"{mem[label]['forward_peak_mb']:.0f}", f"{mem[label]['rss_session_mb']:.0f}"])
    out.append("Scene-only path and 8-bit weights")
    out.append(format_table(["model", "file MB", "ms", "IQR", "×ref", "fwd MB", "session RSS MB"], rows))
    paired = results["int8_paired_ratio"]
    out.append(f"int8/fp32: size {sizes[int8] / sizes[fp32]:.3f}, latency {lat[int8]['median'] / lat[fp32]['median']:.3f} "
               f"(median of per-round ratios {paired['median']:.3f}, quartiles {paired['q1']:.3f}–{paired['q3']:.3f})")
    out.append("")

    flops, rate = results["gflop"], results["matmul_gflops"]["median_gflops"]
    cols = [f"{head}/{n}" for head in HEADS for n in FLOP_QUERIES]
    names = [f"{'Hyper' if head == 'hyper' else 'DETR'} N={n}" for head in HEADS for n in FLOP_QUERIES]
    parts = [p for p, _ in PARTS] + (["other"] if any("other" in flops[c] for c in cols) else [])
    rows = []
    for part in parts:
        row = [part]
        for c in cols:
            g = flops[c].get(part, 0.0)
            row.append(f"{g:.2f} / {g / rate * 1e3:.1f}")
        rows.append(row)
    rows.append(["total"] + [f"{flops[c]['total']:.2f} / {flops[c]['total'] / rate * 1e3:.1f}" for c in cols])
    rows.append(["measured latency, ms"] + [f"{lat[c]['median']:.1f}" if c in lat else "—" for c in cols])
    rows.append(["ideal / measured"] + [f"{flops[c]['total'] / rate * 1e3 / lat[c]['median']:.0%}"
                                        if c in lat else "—" for c in cols])
    rows.append(["achieved GFLOP/s"] + [f"{flops[c]['total'] / lat[c]['median'] * 1e3:.0f}"
                                        if c in lat else "—" for c in cols])
    out.append(f"FLOPs per part: GFLOP / ideal ms at the measured matmul rate "
               f"({rate:.0f} GFLOP/s median, {results['matmul_gflops']['best_gflops']:.0f} best; numpy "
               f"{MATMUL_SIZE}² float32 @, {cfg['threads']} threads)")
    out.append(format_table(["part"] + names, rows))
    out.append("(Matmul and convolution FLOPs only, 2 per multiply-add, counted by torch FlopCounterMode "
               "on the pruned export graph.)")
    out.append("")

    out.append("Goals (latency ratios: median over rounds of the per-round ratio)")
    rows = []
    for goal in results["goals"]:
        rows.append([goal["name"], f"{goal['value']:.3f}", goal["target"], "met" if goal["met"] else "MISSED"])
    out.append(format_table(["goal", "value", "target", ""], rows, "lrll"))
    return "\n".join(out)


def paired_ratio(raw: dict, label: str, reference: str) -> float:
    """Median over rounds of ``label``'s time / ``reference``'s time in the same round.

    Both ran in the same interleaved round, so load that changed between rounds
    cancels; on a shared machine this is steadier than a ratio of medians.
    """
    return float(np.median(np.asarray(raw[label]) / np.asarray(raw[reference])))


def evaluate_goals(results: dict) -> list:
    """Check the issue's goals (paired per-round ratios); returns a list of ``{name, value, target, met}``."""
    raw, sizes = results["latency_raw_ms"], results["size_mb"]
    queries = results["config"]["queries"]
    goals = []
    top = max(queries)
    if top != REFERENCE_N:
        hyper = paired_ratio(raw, f"hyper/{top}", f"hyper/{REFERENCE_N}")
        detr = paired_ratio(raw, f"detr/{top}", f"detr/{REFERENCE_N}")
        goals.append({"name": f"HyperDETR latency N={top} / N={REFERENCE_N}", "value": hyper,
                      "target": f"≤ {GOAL_HYPER_GROWTH}", "met": hyper <= GOAL_HYPER_GROWTH})
        goals.append({"name": f"DETR-style head latency N={top} / N={REFERENCE_N}", "value": detr,
                      "target": f"≥ {GOAL_DETR_GROWTH} (several-fold)", "met": detr >= GOAL_DETR_GROWTH})
    fp32, int8 = f"hyper/{REFERENCE_N}", f"hyper/{REFERENCE_N}/int8"
    lat_ratio = paired_ratio(raw, int8, fp32)
    size_ratio = sizes[int8] / sizes[fp32]
    goals.append({"name": "int8 / fp32 latency", "value": lat_ratio,
                  "target": f"≤ 1 (+{GOAL_INT8_LATENCY - 1:.0%} noise)", "met": lat_ratio <= GOAL_INT8_LATENCY})
    goals.append({"name": "int8 / fp32 file size", "value": size_ratio,
                  "target": f"≤ {GOAL_INT8_SIZE}", "met": size_ratio <= GOAL_INT8_SIZE})
    return goals


def parse_queries(text: str) -> tuple:
    """Parse ``"1,4,100"`` into sorted unique positive ints (argparse type)."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--queries: expected comma-separated integers like 1,4,100, got {text!r}")
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"--queries: expected positive integers, got {text!r}")
    return tuple(values)


def main(argv=None) -> int:
    """Run the benchmark (or, with a hidden ``--probe-*`` option, one child probe)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", choices=BACKBONES, default="mobilenet_v3_large",
                        help="seed: mobilenet_v3_large ×1.5 (default); the shipped model uses mobilenet_v2")
    parser.add_argument("--queries", type=parse_queries, default=None,
                        help=f"comma-separated N values (default {','.join(map(str, DEFAULT_QUERIES))}; "
                             f"N={REFERENCE_N} is always added as the reference)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per model (default 9, --quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up runs per model (default 2, --quick 1)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    parser.add_argument("--decoder-layers", type=int, default=2,
                        help="decoder layers kept at export (default 2, the pruned count shipped)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out", help="output directory")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="keep the exported .onnx files here and reuse them on later runs while the model "
                             "code and settings are unchanged (default: a temporary directory, removed)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: N in {','.join(map(str, QUICK_QUERIES))}, 3 runs, 1 warm-up")
    parser.add_argument("--probe-memory", metavar="ONNX", help=argparse.SUPPRESS)
    parser.add_argument("--probe-runs", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--probe-matmul", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads: expected a positive integer, got {args.threads}")

    # Child modes: a fresh process so peak memory and BLAS threads are this model's / this setting's alone.
    if args.probe_memory:
        print(json.dumps(probe_memory(args.probe_memory, args.threads, args.probe_runs)))
        return 0
    if args.probe_matmul:
        print(json.dumps(probe_matmul()))
        return 0

    queries = args.queries or (QUICK_QUERIES if args.quick else DEFAULT_QUERIES)
    queries = tuple(sorted(set(queries) | {REFERENCE_N}))
    runs = args.runs if args.runs is not None else (3 if args.quick else 9)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if runs < 1 or warmup < 0:
        parser.error(f"--runs must be ≥ 1 and --warmup ≥ 0, got {runs} and {warmup}")
    if runs < 7 and not args.quick:
        log(f"note: {runs} timed runs; the benchmark's figures are meant for ≥ 7")
    if args.decoder_layers < 1:
        parser.error(f"--decoder-layers: expected a positive integer, got {args.decoder_layers}")

    import onnxruntime as ort
    import torch

    from camseg.train.model import HyperDetrConfig

    torch.set_num_threads(args.threads)
    if args.decoder_layers > HyperDetrConfig.decoder_layers:
        parser.error(f"--decoder-layers: at most {HyperDetrConfig.decoder_layers} (the trained count), "
                     f"got {args.decoder_layers}")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = {"backbone": args.backbone, "backbone_width": HyperDetrConfig.backbone_width,
              "queries": list(queries), "runs": runs, "warmup": warmup, "threads": args.threads,
              "decoder_layers": args.decoder_layers, "input_size": list(INPUT_SIZE),
              "onnxruntime": ort.__version__, "torch": torch.__version__, "numpy": np.__version__,
              "cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
              "loadavg_start": list(os.getloadavg()), "weights": "random (torch.manual_seed(0))"}

    log("matmul rate")
    matmul = run_child(["--probe-matmul"], args.threads)
    if args.models_dir is not None:
        args.models_dir.mkdir(parents=True, exist_ok=True)
        workdir = contextlib.nullcontext(str(args.models_dir))
    else:
        workdir = tempfile.TemporaryDirectory(prefix="camseg-scaling-")
    with workdir as tmp:
        models = export_models(args.backbone, queries, args.decoder_layers, Path(tmp))
        memory = {}
        for label, info in models.items():
            log(f"memory probe {label}")
            memory[label] = run_child(["--probe-memory", info["path"]], args.threads)
        raw = time_interleaved({label: info["path"] for label, info in models.items()},
                               args.threads, warmup, runs)
    gflop = {}
    for head in HEADS:
        for n in FLOP_QUERIES:
            log(f"FLOPs {head}/{n}")
            gflop[f"{head}/{n}"] = count_flops(args.backbone, head, n, args.decoder_layers)
    config["loadavg_end"] = list(os.getloadavg())

    fp32, int8 = f"hyper/{REFERENCE_N}", f"hyper/{REFERENCE_N}/int8"
    # int8 and fp32 ran in the same rounds: the per-round ratio cancels load that changed between rounds.
    paired = [a / b for a, b in zip(raw[int8], raw[fp32])]
    results = {
        "config": config,
        "latency_ms": {label: summarize(t) for label, t in raw.items()},
        "latency_raw_ms": raw,
        "memory": memory,
        "size_mb": {label: info["size_mb"] for label, info in models.items()},
        "export_s": {label: info["export_s"] for label, info in models.items()},
        "int8_paired_ratio": summarize(paired),
        "matmul_gflops": matmul,
        "gflop": gflop,
    }
    results["goals"] = evaluate_goals(results)
    results["elapsed_s"] = time.perf_counter() - started

    print(report(results))
    stem = args.out / f"segmentation_scaling_{args.backbone}{'_quick' if args.quick else ''}"
    plot(results, stem.with_suffix(".png"))
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {stem.with_suffix('.png')} and {stem.with_suffix('.json')} "
          f"({results['elapsed_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
