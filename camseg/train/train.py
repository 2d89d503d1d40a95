"""Command-line trainer for HyperDETR (CPU or GPU), with checkpoints and resume.

Usage::

    python -m camseg.train.train --data ../shared/data --run ~/.cache/camseg/run1 --steps 6000

``--data`` is the shared data folder, or a pack of its training split written by
``python -m camseg.train.pack`` (for a machine that has no copy of the folder). On a GPU,
``--workers`` builds samples in parallel processes (one sample at 384×512 takes about 13 ms
of CPU), ``--amp`` runs the network in bfloat16 (the losses stay in float32), and
``--minutes`` fits the schedule to a wall-clock budget. Measured on an H200 with two runs side
by side: 2.7–3.2 steps/s at batch 16 (at most 51 photos/s) whatever the resolution while the
matching read each image's costs back separately (the host waited on the GPU 6 × 16 times a
step); with one batched transfer, 3.25 steps/s at batch 32 (104 photos/s).

Re-running the same command resumes from ``<run>/last.pt``. Checkpoints hold
the model config, weights, optimiser state, step and the recipe (batch, size,
backbone: a resume with other ones is refused), so a resumed run continues the
same learning-rate schedule; the data stream restarts from ``seed + step``, not
from the random state where it stopped, so a resumed run is not bit-identical to
an uninterrupted one. Ctrl-C or SIGTERM saves the step reached and stops.

``--init CKPT`` starts a new run (step 0, fresh optimiser and schedule) from
another run's weights — a fine-tune. Tensors whose shape changed with the
architecture are carried over where they can be (see :func:`warm_start`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from camseg.io import _atomic_write, remove_stale_temp_files
from camseg.train.data import (DEFAULT_FACE_LABELS, SOURCE_WEIGHTS, AugmentParams, TrainingSet,
                               data_folder_problem)
from camseg.train.pack import load_training_split
from camseg.train.losses import LossWeights, total_loss
from camseg.train.model import HyperDetr, HyperDetrConfig


def collate(samples):
    """Stack numpy samples into the tensors ``total_loss`` expects (counts and inst_valid stay
    host-side lists: the loss reads them on the host, and a device copy would cost a GPU stall)."""
    image, scene, valid, inst, n, inst_valid, inside = zip(*samples)
    kmax = max(max(n), 1)
    return (torch.from_numpy(np.stack(image)), torch.from_numpy(np.stack(scene)),
            torch.from_numpy(np.stack(valid)), torch.from_numpy(np.stack([i[:kmax] for i in inst])),
            list(n), [float(v) for v in inst_valid], torch.from_numpy(np.stack(inside)))


class _Samples(torch.utils.data.IterableDataset):
    """Endless augmented samples; each loader worker draws from its own seeded TrainingSet."""

    def __init__(self, records, size, params, source_weights, seed):
        self.args = (records, size, params, source_weights, seed)

    def __iter__(self):
        records, size, params, source_weights, seed = self.args
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        dataset = TrainingSet(records, size, params=params, source_weights=source_weights,
                              seed=seed + 7919 * worker)
        while True:
            yield dataset.sample()


def _leave_stopping_to_the_trainer(worker_id: int) -> None:
    """A loader worker's start (``worker_init_fn``): it ignores Ctrl-C and SIGTERM.

    Forked with the trainer's stop handler, each worker printed "stopping after step 1 and
    saving it" once more when a Ctrl-C at the terminal reached the whole process group. The
    training process decides when to stop and ends its workers itself
    (:func:`_end_loader_workers`: SIGTERM, which PyTorch's shutdown sends a stuck worker, is
    ignored here, so that ends with SIGKILL).
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _end_loader_workers(stream, children_before: set) -> None:
    """Close the batch stream (PyTorch's loader shuts its workers down), then kill any worker
    still there: one stuck past the loader's 5 s wait ignores the SIGTERM PyTorch sends it
    (:func:`_leave_stopping_to_the_trainer`), and the interpreter's exit would wait on it.
    ``children_before``: this process's children before the stream started, left alone (the
    trainer may run inside another program)."""
    stream.close()
    for child in set(multiprocessing.active_children()) - children_before:
        child.kill()
        child.join(timeout=5)


def batches(records, size, params, source_weights, *, batch: int, seed: int, workers: int):
    """Collated training batches forever, built in ``workers`` processes (0: in this one)."""
    samples = _Samples(records, size, params, source_weights, seed)
    if workers == 0:
        stream = iter(samples)
        while True:
            yield collate([next(stream) for _ in range(batch)])
    loader = torch.utils.data.DataLoader(samples, batch_size=batch, collate_fn=collate, num_workers=workers,
                                         pin_memory=torch.cuda.is_available(), prefetch_factor=4,
                                         persistent_workers=True, worker_init_fn=_leave_stopping_to_the_trainer)
    yield from loader


def save_atomic(obj, path: Path):
    """``torch.save(obj, path)`` by :func:`camseg.io._atomic_write`, as photos are written: a
    temporary file beside ``path``, synced, then renamed over it, so an interruption or a power
    loss leaves the previous file whole; a killed writer's temporary file is removed by
    :func:`camseg.io.remove_stale_temp_files` (the trainer sweeps its run folder at start). The
    folder is made when missing (``soup --out new/x.pt`` stopped with a traceback)."""
    _atomic_write(Path(path), lambda fh: torch.save(obj, fh))


def load_checkpoint_file(path: Path) -> dict:
    """Read a training checkpoint written by this trainer (or ``recover``, ``soup``).

    Parameters
    ----------
    path : Path
        The ``.pt`` file.

    Returns
    -------
    dict
        The checkpoint, with at least its ``config``, ``model`` and ``step``.

    Raises
    ------
    ValueError
        The file cannot be unpickled (cut short, damaged, not a torch file) or is not a
        camseg checkpoint (another program's state dict): the message names the file and
        what it lacks. Without this check the trainer stopped with the unpickler's traceback
        (``invalid literal for int()``) or a bare ``KeyError: 'config'``.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch and pickle raise many types for a damaged file
        raise ValueError(f"{str(path)!r} cannot be read as a checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from exc
    missing = [k for k in ("config", "model", "step") if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{str(path)!r} is not a camseg training checkpoint (no {', '.join(missing)})")
    return state


def warm_start(model: HyperDetr, state: dict) -> list:
    """Load a checkpoint's weights into ``model``, whose architecture may be newer.

    Same-shape tensors are copied. The dynamic mask head's output layer grew
    position weights (``mask_coords``): its rows for the mask-map weights and
    the bias are copied and the new position rows start at zero, so the warm
    model first predicts exactly what the checkpoint did. Returns the names
    that could not be carried over.
    """
    own = model.state_dict()
    skipped = []
    old_cfg = HyperDetrConfig.from_dict(state["config"])
    c = old_cfg.mask_channels
    for name, tensor in state["model"].items():
        if name not in own:
            skipped.append(name)
        elif own[name].shape == tensor.shape:
            own[name].copy_(tensor)
        elif name.startswith("mask_head.weights.layers.") and tensor.shape[0] == c + old_cfg.mask_coords + 1:
            target = own[name]
            target.zero_()
            target[:c] = tensor[:c]
            target[-1] = tensor[-1]
            target[c:c + old_cfg.mask_coords] = tensor[c:c + old_cfg.mask_coords]
        else:
            skipped.append(name)
    model.load_state_dict(own)
    return skipped


def freeze_batchnorm_statistics(model) -> int:
    """Put every BatchNorm layer in eval mode (normalise with, and keep, its running statistics)
    while the rest of ``model`` trains; its scale and shift still learn. Returns how many layers.

    At batch 8 a layer's batch statistics are noisy and the running averages drift with every
    step of a fine-tune; frozen, that drift is ruled out. (Tried in run22, model card step 10: it
    did not stop the person-free negatives from costing person IoU.)"""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)


#: Steps of the learning rate's linear warm-up (:func:`learning_rate`).
WARMUP_STEPS = 200


def learning_rate(step, total, base, warmup=WARMUP_STEPS):
    """Linear warm-up then cosine decay to 5 % of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def schedule_total(steps: int, minutes, state) -> int:
    """The step total of the learning-rate schedule at the start of a run.

    Parameters
    ----------
    steps : int
        ``--steps``.
    minutes : float or None
        ``--minutes``.
    state : dict or None
        The run's checkpoint, when it resumes.

    Returns
    -------
    int
        ``steps``; for a resumed ``--minutes`` run, the total its checkpoint was fitted to
        (at most ``steps``): the schedule continues where it stopped. Started again from
        ``steps``, a resumed run took the learning rate of a far longer schedule (back up
        toward its peak) until the next fit, then fitted another total, so the decay was
        patched twice; and a finished run trained again.
    """
    if minutes is not None and state is not None and state.get("schedule_total"):
        return min(steps, int(state["schedule_total"]))
    return steps


def refits_schedule(step: int, first: int, fitted_before: bool) -> bool:
    """Whether a ``--minutes`` run fits its step total to the measured speed at ``step``.

    At 20, 60, 120 and 199 steps into this invocation (which began at ``first``), during the
    warm-up: :func:`learning_rate`'s first ``WARMUP_STEPS`` steps do not depend on the total, so
    the cosine decay that follows is one schedule, not a patched one. A run resumed from a
    checkpoint without a fitted total (``fitted_before`` False: written before checkpoints kept
    one) fits at those points whatever its step, as every resumed run did.
    """
    return step - first in (20, 60, 120, 199) and (step < WARMUP_STEPS or not fitted_before)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train HyperDETR on ../shared/data")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--run", default=str(Path.home() / ".cache" / "camseg" / "run"))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"))
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "mobilenet_v3_large"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--init", default=None, metavar="CKPT",
                        help="start a new run from this checkpoint's weights (fine-tune; ignored when resuming)")
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--face-labels", default=str(DEFAULT_FACE_LABELS),
                        help="teeth/eye labels written by camseg/train/face_labels.py (skipped if missing)")
    parser.add_argument("--p-copy-paste", type=float, default=AugmentParams.p_copy_paste,
                        help="probability of pasting extra people into a photo with known instances")
    parser.add_argument("--p-zoom-out", type=float, default=AugmentParams.p_zoom_out,
                        help="probability of zooming out (the photo smaller than the frame, the rest unknown)")
    parser.add_argument("--p-letterbox", type=float, default=AugmentParams.p_letterbox,
                        help="probability of showing the whole photo letterboxed upright, as the runtime does")
    parser.add_argument("--p-defocus", type=float, default=AugmentParams.p_defocus,
                        help="probability of blurring the background off the labelled people (portrait mode)")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes building samples (0: the training process itself; on a GPU, one per spare core)")
    parser.add_argument("--amp", action="store_true",
                        help="run the network in bfloat16 autocast (for a GPU; losses stay in float32). Measured: "
                             "it cost sky IoU (0.882 vs 0.897 in float32, same run otherwise) and no speed")
    parser.add_argument("--freeze-bn", action="store_true",
                        help="keep every BatchNorm layer's running statistics as loaded (eval mode) while the "
                             "weights train: for fine-tuning at small batches, whose batch statistics are noisy "
                             "(model card step 10: tried, no gain in person IoU)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="wall-clock budget: the step count is fitted to the measured speed during "
                             "warm-up (--steps is then an upper bound), and training stops in time; "
                             "a resumed run gets the budget anew and continues the schedule fitted before")
    parser.add_argument("--source-weight", action="append", default=[], metavar="SET=W",
                        help="sampling weight of one training set, e.g. person_binary=3 (repeatable; "
                             "defaults in camseg.train.data.SOURCE_WEIGHTS)")
    args = parser.parse_args(argv)
    # Checked before any work (--save-every 0 and --size 0 0 divided by zero, --batch 0 failed to
    # unpack, --steps 0 wrote an untrained checkpoint, probabilities of 5 or -3 were taken).
    for name in ("steps", "batch", "save_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if min(args.size) < 32:
        parser.error(f"--size H W must be at least 32 32 (the backbone halves it 5 times), got {args.size}")
    if not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    for name in ("p_copy_paste", "p_zoom_out", "p_letterbox", "p_defocus"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} is a probability in [0, 1], got {getattr(args, name)}")
    # (--threads -2 and --workers -1 failed in torch, the latter after loading every photo;
    # --minutes 0 or below trained nothing and saved the untrained model as "done".)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}; leave it out for torch's choice")
    if args.workers < 0:
        parser.error(f"--workers must be 0 (samples built in the training process) or more, got {args.workers}")
    if args.minutes is not None and not args.minutes > 0:
        parser.error(f"--minutes must be > 0, got {args.minutes}; leave it out to train --steps steps")
    if args.init and not Path(args.init).expanduser().is_file():
        parser.error(f"--init {args.init!r}: no such checkpoint file")
    if Path(args.run).expanduser().exists() and not Path(args.run).expanduser().is_dir():
        parser.error(f"--run {args.run!r} is a file, not a folder")
    if not (Path(args.data).expanduser().is_dir() or Path(args.data).expanduser().is_file()):
        parser.error(f"--data {args.data!r}: no such folder (../shared/data) or pack file")
    if Path(args.data).expanduser().is_dir() and data_folder_problem(Path(args.data).expanduser()):
        parser.error(f"--data: {data_folder_problem(Path(args.data).expanduser())} (or a pack file)")
    source_weights = {}
    for item in args.source_weight:
        name, _, value = item.partition("=")
        try:
            source_weights[name] = float(value)
        except ValueError:
            parser.error(f"--source-weight expects SET=NUMBER (e.g. person_binary=3), got {item!r}")
        if name not in SOURCE_WEIGHTS or source_weights[name] < 0:
            parser.error(f"--source-weight {item!r}: the set must be one of {sorted(SOURCE_WEIGHTS)} "
                         "and the weight >= 0")

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run = Path(args.run).expanduser()
    run.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(run)  # (a save killed midway)
    torch.manual_seed(args.seed)

    config = HyperDetrConfig(backbone=args.backbone)
    model = HyperDetr(config)
    last = run / "last.pt"
    try:
        state = load_checkpoint_file(last) if last.exists() else None
    except ValueError as exc:
        # Never overwritten or deleted here: it may be the only copy of a long run.
        parser.error(f"cannot resume: {exc}; move it away to start this --run afresh (or restore it "
                     "from a copy), or give another --run")
    if state is not None and "optim" not in state:
        # (A soup's or recover's checkpoint copied in as last.pt stopped with KeyError: 'optim'.)
        parser.error(f"cannot resume: {str(last)!r} has no optimiser state (a soup or recover checkpoint?); "
                     "start a new --run with --init on it")
    if state is not None:
        model = HyperDetr(HyperDetrConfig.from_dict(state["config"]))
        model.load_state_dict(state["model"])
        # A resumed run keeps its recipe: a changed batch, size or backbone was taken silently
        # (the checkpoint then said the whole run had used the new ones; --backbone was ignored).
        recorded = state.get("trained", {})
        changed = [f"{name} {recorded[name]} -> {now}" for name, now in
                   (("batch", args.batch), ("size", list(args.size)), ("backbone", args.backbone))
                   if name in recorded and recorded[name] != now]
        if changed:
            parser.error(f"{last} was trained with other settings ({'; '.join(changed)}): resume with the same "
                         "ones, or start a new --run (--init it from this checkpoint)")
        print(f"resuming {last} at step {state['step']}")
    elif args.init:
        try:
            init = load_checkpoint_file(Path(args.init).expanduser())
        except ValueError as exc:
            parser.error(f"--init: {exc}; pass a .pt written by camseg.train.train, recover or soup")
        # (--backbone was ignored, the checkpoint's taken: the run's checkpoint then recorded that one,
        # and the same command, run again to resume, was refused as a change of backbone.)
        init_backbone = HyperDetrConfig.from_dict(init["config"]).backbone
        if init_backbone != args.backbone:
            parser.error(f"--init {args.init!r} has a {init_backbone} backbone, not --backbone {args.backbone}: "
                         f"pass --backbone {init_backbone} (a fine-tune keeps its checkpoint's architecture)")
        # the checkpoint's architecture, brought up to this version's head
        model = HyperDetr(dataclasses.replace(HyperDetrConfig.from_dict(init["config"]),
                                              mask_coords=HyperDetrConfig.mask_coords))
        skipped = warm_start(model, init)
        print(f"initialised from {args.init} (step {init['step']}); not carried over: {skipped or 'nothing'}")
    elif args.backbone == "mobilenet_v2":
        print(f"loaded {model.backbone.load_imagenet()} ImageNet tensors into the MobileNetV2 backbone")
    model.to(device).train()
    if args.freeze_bn:
        frozen = freeze_batchnorm_statistics(model)
        print(f"BatchNorm running statistics frozen in {frozen} layers")
    backbone_params = list(model.backbone.parameters())
    ids = {id(p) for p in backbone_params}
    other = [p for p in model.parameters() if id(p) not in ids]
    # DETR's recipe: a 10× lower rate for the pretrained backbone.
    optim = torch.optim.AdamW([{"params": other, "lr_scale": 1.0},
                               {"params": backbone_params, "lr_scale": 0.1 if state is None and
                                args.backbone == "mobilenet_v2" else 1.0}],
                              lr=args.lr, weight_decay=1e-4)
    step = 0
    if state is not None:
        optim.load_state_dict(state["optim"])
        step = state["step"]

    face_labels = Path(args.face_labels).expanduser()
    if not face_labels.is_dir() and Path(args.data).expanduser().is_file():
        face_labels = None  # a pack carries the face labels it was made with
    elif not face_labels.is_dir():
        print(f"no face labels at {face_labels}: teeth only from FASSEG lips, glasses only on FASSEG "
              "(run camseg/train/face_labels.py first for face-mesh teeth on every portrait)")
        face_labels = None
    data = Path(args.data).expanduser()
    try:
        records = load_training_split(data, face_labels)
    except ValueError as exc:  # (a damaged or foreign pack, an unreadable photo: a traceback before)
        parser.error(f"--data: {exc}")
    # Nothing to draw from (no photo, or every set present weighted 0) failed at the first batch
    # with numpy's "a must be a positive integer" or "Probabilities contain NaN".
    present = sorted({r.source for r in records})
    if not present:
        parser.error(f"--data {args.data!r} holds no training photos")
    if not any({**SOURCE_WEIGHTS, **source_weights}.get(name, 1.0) > 0 for name in present):
        parser.error(f"--source-weight: every set in --data ({', '.join(present)}) is weighted 0, so no photo "
                     "can be drawn; give one of them a weight > 0")
    params = AugmentParams(p_copy_paste=args.p_copy_paste, p_zoom_out=args.p_zoom_out, p_letterbox=args.p_letterbox,
                           p_defocus=args.p_defocus)
    paste_sources = len(TrainingSet(records, tuple(args.size), params=params).paste_sources)
    print(f"{len(records)} training photos; {paste_sources} people for copy-paste; "
          f"device {device}; size {args.size}; {args.workers} loader workers")
    children_before = set(multiprocessing.active_children())
    stream = batches(records, tuple(args.size), params, source_weights, batch=args.batch,
                     seed=args.seed + step, workers=args.workers)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    weights = LossWeights()
    try:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=step, dynamic_ncols=True, mininterval=5)
    except ImportError:  # tqdm comes with the [train] extra; degrade to plain lines
        bar = None
    def save():
        save_atomic({"config": model.config.to_dict(), "model": model.state_dict(),
                     "optim": optim.state_dict(), "step": step, "schedule_total": total,
                     "trained": {"steps": step, "batch": args.batch, "size": list(args.size),
                                 "backbone": model.config.backbone,
                                 "data": sorted({r.source for r in records})}}, last)

    t0, ema = time.time(), None
    total, first = schedule_total(args.steps, args.minutes, state), step
    fitted_before = state is not None and bool(state.get("schedule_total"))
    if bar is not None:
        bar.total = total
    if step >= total:
        print(f"{last}: its schedule ended at step {step}; start a new --run with --init {last} to train more")
    probe = (step, t0)
    # Ctrl-C and SIGTERM stop at the end of the step in progress, and the step reached is saved
    # (they lost up to --save-every - 1 steps, Ctrl-C with a traceback); a second Ctrl-C stops at once.
    stop = []

    def request_stop(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)
        print(f"\nstopping after step {step + 1} and saving it; Ctrl-C again to stop at once", file=sys.stderr)

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while step < total and not stop:
            if args.minutes is not None:
                elapsed = (time.time() - t0) / 60
                if elapsed > args.minutes:
                    print(f"wall-clock budget of {args.minutes} min spent at step {step}")
                    break
                if refits_schedule(step, first, fitted_before):
                    # The rate is the latest interval's: the first steps include start-up (cuDNN's search).
                    rate = (step - probe[0]) / max(time.time() - probe[1], 1e-6)
                    probe = (step, time.time())
                    total = min(args.steps, step + int(rate * (args.minutes - elapsed) * 60 * 0.97))
                    if bar is not None:
                        bar.total = total
                    print(f"{rate:.2f} steps/s: {total} steps fit in {args.minutes} min")
            for group in optim.param_groups:
                group["lr"] = learning_rate(step, total, args.lr) * group["lr_scale"]
            batch = next(stream)
            batch = tuple(t.to(device, non_blocking=True) if torch.is_tensor(t) else t for t in batch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
                outputs = model(batch[0])
            # matching hands costs to scipy and the focal terms need float32's range
            outputs = tuple(x.float() for x in outputs)
            loss, parts = total_loss(outputs, batch, weights)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1 * 10)
            optim.step()
            step += 1
            # kept on the device and read every 10 steps: a read waits for the GPU to finish the step
            value = loss.detach()
            ema = value if ema is None else 0.95 * ema + 0.05 * value
            if bar is not None:
                bar.update(1)
            if step % 10 == 0:
                shown = {"loss": f"{float(ema):.3f}", "scene": f"{float(parts['scene']):.3f}",
                         "inst": f"{abs(float(parts['instances'])):.3f}"}  # (>= 0: no "-0.000")
                if bar is not None:
                    bar.set_postfix(shown)
                else:
                    print(f"step {step}/{total} {shown} {time.time() - t0:.0f}s", flush=True)
            if step % args.save_every == 0:
                save()
        save()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        _end_loader_workers(stream, children_before)
    if bar is not None:
        bar.close()
    print(f"{'stopped' if stop else 'done'}: {step} steps, checkpoint {last}")
    return 130 if stop and stop[0] == signal.SIGINT else 143 if stop else 0


if __name__ == "__main__":
    raise SystemExit(main())
