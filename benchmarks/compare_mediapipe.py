"""Person masks: camseg's HyperDETR vs MediaPipe's selfie segmenter, on the held-out photos.

MediaPipe's selfie segmenter (``selfie_segmentation.tflite``, 256×256 input,
one person-confidence channel) is the widely used, offline-runnable baseline
for "cut the person out". It is designed for selfies and video calls — one
person close to the camera — and is *not* a general person segmenter: on
group photos and small or distant people it is expected to do badly. It is
the baseline a user would otherwise reach for, not a state-of-the-art bar.

Validation set: exactly what the trainer holds out,
``camseg.train.data.load_all(data, split="val")``, keeping records with
person instance masks (``.instances is not None``): held-out COCO panoptic
photos (several people each) and every 6th single-blob ``person_binary``
photo. Ground truth = union of the instance masks > 127. Images are the
trainer's uint8 sRGB copies (long side ≤ 448 px). A separate row scores the
40 several-person composites that ``camseg.train.evaluate`` builds (held-out
people pasted onto held-out person-free scenes: exact truth, synthetic
photos); they are not part of "all". A diagnostic row scores person_binary
again with only the predicted regions that touch the truth, for both methods:
its machine-made masks outline the main subject and omit people behind them.

Both methods' masks are thresholded at 0.5:

- MediaPipe: ``ImageSegmenter`` (mediapipe Tasks API) confidence mask;
- camseg: ``Segmenter(model).segment(image).person`` (the runtime, guided-filter
  upsampling included).

Figures, per source and overall: person IoU as Σ intersection / Σ union
(pixels pooled over the set), mean per-image IoU, boundary F-score (Perazzi
et al., "A Benchmark Dataset and Evaluation Methodology for Video Object
Segmentation", CVPR 2016: precision/recall of boundary pixels within a
tolerance of 0.75 % of the image diagonal) and latency per image (median,
after one warm-up image; camseg's time is given as a ratio to MediaPipe's), as
wall time and as process CPU time (all threads summed; steadier on a loaded
machine). Person false positives on held-out scenes with nobody in them: the
COCO photos whose panoptic entry lists no person (animals, vases, clocks) and
the ADE scenes MediaPipe's own verdict calls empty — how many get a person
mask over 1 % of the frame, and its mean share.
MediaPipe runs in its own process (its own venv): its time covers
``segment()`` only (mp.Image wrapping included), camseg's covers
``segment()`` plus reading ``.person``. Both use their default CPU threading.

Setup of the MediaPipe side (a venv OUTSIDE the repository — mediapipe is not
a camseg dependency, and must not become one), exactly as done for this script::

    python3.11 -m venv ~/.cache/camseg/mp-venv
    ~/.cache/camseg/mp-venv/bin/pip install mediapipe==1.2.2
    # the selfie model file ships in the legacy 0.10.21 wheel; download it only to unzip it
    ~/.cache/camseg/mp-venv/bin/pip download --no-deps mediapipe==0.10.21 -d ~/.cache/camseg/wheel
    python3 -c "import zipfile, glob; z = zipfile.ZipFile(glob.glob('$HOME/.cache/camseg/wheel/*.whl')[0]); \
open('$HOME/.cache/camseg/selfie_segmentation.tflite', 'wb').write(\
z.read('mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite'))"

(sha256 of the .tflite used: 9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c.)

Run (from the repository root, project venv active)::

    python benchmarks/compare_mediapipe.py --data ../shared/data \\
        --model camseg/models/hyperdetr.onnx \\
        --mediapipe-python ~/.cache/camseg/mp-venv/bin/python \\
        --tflite ~/.cache/camseg/selfie_segmentation.tflite [--out benchmarks/out/mediapipe]

If the camseg model file does not exist, only MediaPipe is measured. ``--limit N``
runs the first N photos only (a quick check); ``--threads`` sets camseg's
onnxruntime threads.

Caveat on the truth: ``person_binary`` masks are machine-made (data README),
so a high score there partly measures agreement with another segmenter; the
hand-labelled COCO group photos are trustworthy but only two. Writes
``results.json``, ``per_image_iou.png`` and a few side-by-side overlays
(photo | truth | MediaPipe | camseg) to ``--out``.

The script re-invokes itself with ``--mediapipe-worker IN.npz OUT.npz`` under
the MediaPipe venv's python; that mode imports only numpy and mediapipe.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
THRESHOLD = 0.5
BOUNDARY_TOL = 0.0075  # of the image diagonal (DAVIS boundary measure)


# ----------------------------------------------------------------------------- MediaPipe worker
def mediapipe_worker(in_npz: str, out_npz: str, tflite: str) -> None:
    """Run in the MediaPipe venv: images from ``in_npz`` → confidence masks + seconds in ``out_npz``."""
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    data = np.load(in_npz)
    n = int(data["n"])
    options = vision.ImageSegmenterOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=tflite),
        running_mode=vision.RunningMode.IMAGE, output_confidence_masks=True, output_category_mask=False)
    out, seconds, cpu = {}, np.zeros(n), np.zeros(n)
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        def run(img):
            result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=img))
            # the selfie model has one output channel: person confidence in [0, 1], at image size
            return np.asarray(result.confidence_masks[0].numpy_view(), np.float32).reshape(img.shape[:2])

        run(np.ascontiguousarray(data["img_0"]))  # warm-up: graph and delegate set-up
        for i in range(n):
            img = np.ascontiguousarray(data[f"img_{i}"])
            t0, c0 = time.perf_counter(), time.process_time()
            conf = run(img)
            seconds[i], cpu[i] = time.perf_counter() - t0, time.process_time() - c0
            out[f"mask_{i}"] = conf.astype(np.float16)
    np.savez(out_npz, seconds=seconds, cpu=cpu, version=np.array(mp.__version__), **out)


def run_mediapipe(images, python: str, tflite: str):
    """Confidence masks (float32 H×W), per-image wall and CPU seconds, mediapipe version (worker subprocess)."""
    with tempfile.TemporaryDirectory(prefix="camseg-mp-") as tmp:
        src, dst = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(src, n=len(images), **{f"img_{i}": im for i, im in enumerate(images)})
        cmd = [python, str(Path(__file__).resolve()), "--mediapipe-worker", src, dst, "--tflite", tflite]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"MediaPipe worker failed (exit {proc.returncode}); command: {' '.join(cmd)}\n"
                               f"{proc.stderr[-3000:]}\nSee this script's docstring to set up the venv.")
        res = np.load(dst)
        masks = [res[f"mask_{i}"].astype(np.float32) for i in range(len(images))]
        return masks, res["seconds"], res["cpu"], str(res["version"])


# ----------------------------------------------------------------------------- camseg
def run_camseg(images, model: Path, threads: int | None):
    from camseg.segmenter import Segmenter

    segmenter = Segmenter(model, threads=threads)
    _ = segmenter.segment(images[0]).person  # warm-up
    masks, seconds, cpu, post_cpu = [], np.zeros(len(images)), np.zeros(len(images)), np.zeros(len(images))
    for i, img in enumerate(images):
        t0, c0 = time.perf_counter(), time.process_time()
        seg = segmenter.segment(img)  # decode + model run + query selection
        c1 = time.process_time()
        person = seg.person  # lazy: the guided-filter upsampling to full resolution happens here
        seconds[i], cpu[i] = time.perf_counter() - t0, time.process_time() - c0
        post_cpu[i] = time.process_time() - c1
        masks.append(person)
    return masks, seconds, cpu, post_cpu


# ----------------------------------------------------------------------------- measures
def boundary(mask: np.ndarray) -> np.ndarray:
    """Inner boundary pixels of a boolean mask (pixels with a 4-neighbour outside)."""
    import cv2

    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)) > 0


def boundary_f(pred: np.ndarray, gt: np.ndarray) -> float:
    """DAVIS boundary F-measure (Perazzi et al. 2016) with a distance tolerance."""
    import cv2

    bp, bg = boundary(pred), boundary(gt)
    if not bp.any() and not bg.any():
        return 1.0
    if not bp.any() or not bg.any():
        return 0.0
    tol = max(1.0, BOUNDARY_TOL * float(np.hypot(*gt.shape)))
    # distance of every pixel to the nearest boundary pixel of the other mask
    dist_to_gt = cv2.distanceTransform((~bg).astype(np.uint8), cv2.DIST_L2, 3)
    dist_to_pred = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((dist_to_gt[bp] <= tol).mean())
    recall = float((dist_to_pred[bg] <= tol).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score(pred: np.ndarray, gt: np.ndarray) -> dict:
    inter = int((pred & gt).sum())
    union = int((pred | gt).sum())
    return {"inter": inter, "union": union, "iou": inter / union if union else 1.0,
            "bf": boundary_f(pred, gt)}


def touching(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The connected regions (8-connected) of ``pred`` that overlap ``gt``; bool H×W."""
    import cv2

    n, labels = cv2.connectedComponents(pred.astype(np.uint8), connectivity=8)
    hit = np.zeros(n, bool)
    hit[np.unique(labels[gt & pred])] = True
    hit[0] = False
    return hit[labels]


def summarise(rows: list[dict]) -> dict:
    inter = sum(r["inter"] for r in rows)
    union = sum(r["union"] for r in rows)
    return {"n": len(rows), "iou_pooled": inter / union if union else float("nan"),
            "iou_mean": float(np.mean([r["iou"] for r in rows])),
            "bf_mean": float(np.mean([r["bf"] for r in rows]))}


def paired_bootstrap(rows_a: list[dict], rows_b: list[dict], resamples: int = 10000, seed: int = 0):
    """Pooled IoU difference ``a - b`` over the same photos and its 95 % interval.

    Photos are resampled with replacement, the same draw for both methods (a paired
    bootstrap, Efron & Tibshirani 1993, ch. 13), so what varies is which photos the set
    happened to hold: whether the difference would survive another set of photos like these.
    """
    ia, ua = (np.array([r[k] for r in rows_a], np.float64) for k in ("inter", "union"))
    ib, ub = (np.array([r[k] for r in rows_b], np.float64) for k in ("inter", "union"))
    draws = np.random.default_rng(seed).integers(0, len(rows_a), (resamples, len(rows_a)))
    diff = ia[draws].sum(1) / ua[draws].sum(1) - ib[draws].sum(1) / ub[draws].sum(1)
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return ia.sum() / ua.sum() - ib.sum() / ub.sum(), float(lo), float(hi), float(np.mean(diff > 0))


# ----------------------------------------------------------------------------- pictures
def overlay(image: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """The photo kept inside the mask, dimmed grey outside, mask outline drawn in ``colour``.

    Dimming instead of a colour tint reads the same on any background (a red tint vanishes on red).
    """
    img = image.astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    out = np.where(mask[..., None], img, 0.25 * grey + 20)
    import cv2

    out[cv2.dilate(boundary(mask).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = colour  # visible when shrunk
    return out.clip(0, 255).astype(np.uint8)


def side_by_side(image, gt, panels, title_rows) -> np.ndarray:
    import cv2

    tiles = [image, overlay(image, gt, (0, 230, 0))]
    tiles += [overlay(image, m, c) for m, c in panels]
    h = 260
    resized = [cv2.resize(t, (max(1, round(t.shape[1] * h / t.shape[0])), h), interpolation=cv2.INTER_AREA)
               for t in tiles]
    for t, label in zip(resized, title_rows):
        cv2.rectangle(t, (0, 0), (t.shape[1], 18), (0, 0, 0), -1)
        cv2.putText(t, label, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    gap = np.full((h, 4, 3), 255, np.uint8)
    row = [resized[0]]
    for t in resized[1:]:
        row += [gap, t]
    return np.concatenate(row, axis=1)


def plot_ious(results: dict, sources: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(results)
    fig, ax = plt.subplots(figsize=(6, 5))
    if len(methods) == 2:
        a, b = (np.array([r["iou"] for r in results[m]]) for m in methods)
        for src, marker in zip(sorted(set(sources)), "os^"):
            sel = np.array([s == src for s in sources])
            ax.scatter(a[sel], b[sel], marker=marker, label=src, alpha=0.7)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel(f"{methods[0]} IoU")
        ax.set_ylabel(f"{methods[1]} IoU")
        ax.set_title("Per-image person IoU (above the diagonal: camseg better)")
        ax.legend()
    else:
        ax.hist([r["iou"] for r in results[methods[0]]], bins=20)
        ax.set_xlabel(f"{methods[0]} IoU")
        ax.set_title("Per-image person IoU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


COMPOSITE = "group_composite"
MAIN_SUBJECT = "pb main subj."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=REPO / "camseg" / "models" / "hyperdetr.onnx")
    parser.add_argument("--mediapipe-python", default=os.path.expanduser("~/.cache/camseg/mp-venv/bin/python"))
    parser.add_argument("--tflite", default=os.path.expanduser("~/.cache/camseg/selfie_segmentation.tflite"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "mediapipe")
    parser.add_argument("--threads", type=int, default=None,
                        help="camseg onnxruntime threads (default: the runtime's default, as users get it)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos (a quick check)")
    parser.add_argument("--overlays", type=int, default=6, help="how many side-by-side images to write")
    parser.add_argument("--mediapipe-worker", nargs=2, metavar=("IN_NPZ", "OUT_NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.mediapipe_worker:
        mediapipe_worker(*args.mediapipe_worker, args.tflite)
        return 0

    for name, path in (("--mediapipe-python", args.mediapipe_python), ("--tflite", args.tflite)):
        if not Path(path).exists():
            parser.error(f"{name}: {path!r} does not exist; set it up as this script's docstring shows")
    if not (args.data / "coco_panoptic").is_dir():
        parser.error(f"--data: {str(args.data)!r} has no coco_panoptic/; pass the shared data folder")

    sys.path.insert(0, str(REPO))
    from camseg.train.data import DEFAULT_FACE_LABELS, group_composites, load_all
    from camseg.train.evaluate import PERSON_FREE_KINDS, false_positive_figures

    t0 = time.perf_counter()
    # The face labels mark which held-out ADE scenes are person-free: the composites' backgrounds,
    # exactly as ``camseg.train.evaluate`` builds them.
    have_face_labels = DEFAULT_FACE_LABELS.is_dir()
    val = load_all(args.data, split="val", face_labels=DEFAULT_FACE_LABELS if have_face_labels else None)
    records = [r for r in val if r.instances]
    if have_face_labels:
        records += group_composites(val)
    else:
        print(f"NOTE: no face labels at {DEFAULT_FACE_LABELS} (camseg/train/face_labels.py writes them): the held-out "
              "scenes cannot be told person-free, so the composites row is left out")
    records = records[:args.limit]
    # Scenes with nobody in them, for the false-positive figure: the COCO photos whose panoptic
    # entry lists no person (animals, vases, clocks: unbiased), and the ADE scenes that MediaPipe's
    # own verdict calls empty (so it scores ~0 there by construction).
    free = [r for r in val if r.instances == [] and r.source in PERSON_FREE_KINDS][:args.limit]
    images = [np.ascontiguousarray(r.image) for r in records]
    free_images = [np.ascontiguousarray(r.image) for r in free]
    truths = [np.any(np.stack(r.instances) > 127, axis=0) for r in records]
    sources = [r.source for r in records]
    print(f"validation set: {len(records)} photos with person masks "
          f"({', '.join(f'{s} {sources.count(s)}' for s in sorted(set(sources)))}), "
          f"loaded in {time.perf_counter() - t0:.0f} s")

    masks, seconds, cpu = {}, {}, {}
    free_masks = {}
    masks["mediapipe"], seconds["mediapipe"], cpu["mediapipe"], mp_version = run_mediapipe(
        images + free_images, args.mediapipe_python, args.tflite)
    model_info, post_cpu = None, None
    if args.model.exists():
        stat = args.model.stat()
        model_info = {"path": str(args.model), "sha256": sha256(args.model), "bytes": stat.st_size,
                      "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stat.st_mtime))}
        masks["camseg"], seconds["camseg"], cpu["camseg"], post_cpu = run_camseg(images + free_images, args.model,
                                                                                 args.threads)
    else:
        print(f"NOTE: camseg model {str(args.model)!r} does not exist yet: measuring MediaPipe only")

    n = len(images)
    for m in masks:  # the person-free scenes' masks apart from the person photos'
        free_masks[m] = masks[m][n:]
        masks[m], seconds[m], cpu[m] = masks[m][:n], np.asarray(seconds[m])[:n], np.asarray(cpu[m])[:n]
    if post_cpu is not None:
        post_cpu = post_cpu[:n]
    free_summary = {m: {kind: false_positive_figures([np.mean(fm > THRESHOLD)
                                                      for fm, r in zip(free_masks[m], free) if r.source == kind])
                        for kind in PERSON_FREE_KINDS if any(r.source == kind for r in free)} for m in masks}
    results = {m: [score(masks[m][i] > THRESHOLD, truths[i]) for i in range(len(images))] for m in masks}
    # "all" is the real photos; the composites (real people pasted onto real scenes) are their own row.
    real = [s for s in sorted(set(sources)) if s != COMPOSITE]
    groups = real + ["all"] + ([COMPOSITE] if COMPOSITE in sources else [])
    summary = {m: {g: summarise([r for r, s in zip(results[m], sources)
                                 if s == g or (g == "all" and s != COMPOSITE)]) for g in groups}
               for m in masks}
    # Diagnostic, the same for both methods: person_binary's machine-made truth outlines the main
    # subject only, so a person found behind them counts as a false positive. Scored again with only
    # the predicted regions that touch the truth.
    subject_rows = {m: [score(touching(masks[m][i] > THRESHOLD, truths[i]), truths[i])
                        for i in range(len(images)) if sources[i] == "person_binary"] for m in masks}
    if subject_rows.get("mediapipe"):
        for m in masks:
            summary[m][MAIN_SUBJECT] = summarise(subject_rows[m])
    # Latency over the real photos only: the composites are scene-sized images with 2-3 people.
    on_real = np.array([s != COMPOSITE for s in sources])
    median_s = {m: float(np.median(np.asarray(seconds[m])[on_real])) for m in masks}
    median_cpu = {m: float(np.median(np.asarray(cpu[m])[on_real])) for m in masks}

    print()
    print("MediaPipe selfie segmenter = the widely used offline baseline, designed for selfies "
          "(one person close to the camera), not a general person segmenter.")
    if model_info:
        print(f"camseg model: {model_info['path']} ({model_info['bytes'] / 1e6:.1f} MB, "
              f"written {model_info['mtime']}, sha256 {model_info['sha256'][:12]})")
    print(f"mediapipe {mp_version}, model {Path(args.tflite).name}; masks thresholded at {THRESHOLD}")
    print("Truth: coco = hand-labelled panoptic masks (group photos, few); person_binary = machine-made masks "
          "(data README), so scores there partly measure agreement with another segmenter.")
    print()
    head = f"{'method':<10} {'source':<16} {'n':>3} {'IoU pooled':>10} {'IoU mean':>9} {'BF mean':>8}"
    print(head)
    print("-" * len(head))
    for m in masks:
        for g in summary[m]:
            s = summary[m][g]
            print(f"{m:<10} {g:<16} {s['n']:>3} {s['iou_pooled']:>10.3f} {s['iou_mean']:>9.3f} {s['bf_mean']:>8.3f}")
    if "camseg" in masks:
        print()
        print(f"{'camseg - MediaPipe':<20} {'source':<16} {'n':>3} {'IoU pooled':>10} {'95 % interval':>17} "
              f"{'share > 0':>9}")
        for g in groups:
            pick = [i for i, s in enumerate(sources) if s == g or (g == "all" and s != COMPOSITE)]
            d, lo, hi, above = paired_bootstrap([results["camseg"][i] for i in pick],
                                                [results["mediapipe"][i] for i in pick])
            print(f"{'':<20} {g:<16} {len(pick):>3} {d:>+10.3f} {f'[{lo:+.3f}, {hi:+.3f}]':>17} {above:>9.2f}")
        print("paired bootstrap over the photos (10 000 resamples): the interval the difference would fall in "
              "on another set of photos like these; share > 0 = resamples where camseg is ahead")
        print()
    print("IoU pooled = Σ intersection / Σ union over the set; IoU mean = mean of per-image IoU; "
          f"BF = boundary F-score, tolerance {BOUNDARY_TOL:.2%} of the diagonal")
    print(f"all = the real held-out photos; {COMPOSITE} = 2-3 held-out people pasted onto held-out person-free "
          "scenes (camseg.train.data.group_composites, as in evaluate): exact truth, synthetic photos")
    print(f"{MAIN_SUBJECT} = diagnostic: person_binary scored with only the predicted regions that touch "
          "the truth (its machine-made masks omit people behind the main subject), same rule for both methods")
    print()
    print(f"{'method':<10} {'person-free scenes':<34} {'n':>3} {'over 1 %':>8} {'mean area':>9}")
    for m in masks:
        for kind, fp in free_summary[m].items():
            print(f"{m:<10} {PERSON_FREE_KINDS[kind]:<34} {fp['scenes']:>3} {fp['fp_photos']:>8} "
                  f"{100 * fp['fp_area']:>8.2f}%")
    print("person false positives: photos whose person mask (> 0.5) covers over 1 % of the frame, and the mean "
          "share of the frame; the ADE scenes are those MediaPipe's own verdict finds empty (~0 for it by "
          "construction), the COCO ones list no person in their panoptic labels")
    print()
    ref, ref_cpu = median_s["mediapipe"], median_cpu["mediapipe"]
    print(f"{'method':<10} {'wall ms/image':>13} {'× MediaPipe':>11} {'CPU ms/image':>13} {'× MediaPipe':>11}   (medians)")
    for m in masks:
        print(f"{m:<10} {median_s[m] * 1e3:>13.1f} {median_s[m] / ref:>11.2f} "
              f"{median_cpu[m] * 1e3:>13.1f} {median_cpu[m] / ref_cpu:>11.2f}")
    if "camseg" in masks:
        print(f"camseg CPU time spent reading .person (guided-filter upsampling): median "
              f"{np.median(post_cpu) * 1e3:.1f} ms of it")
    print("CPU time = process CPU seconds, all threads summed: steadier than wall time when other jobs load the "
          "cores; wall time is what a user waits on an idle machine only.")

    args.out.mkdir(parents=True, exist_ok=True)
    per_image = [{"index": i, "source": sources[i], "shape": list(images[i].shape[:2]),
                  "people": len(records[i].instances),
                  **{f"{m}_iou": results[m][i]["iou"] for m in masks},
                  **{f"{m}_bf": results[m][i]["bf"] for m in masks},
                  **{f"{m}_ms": float(seconds[m][i] * 1e3) for m in masks},
                  **{f"{m}_cpu_ms": float(cpu[m][i] * 1e3) for m in masks}} for i in range(len(images))]
    report = {"note": "MediaPipe selfie segmenter: widely used baseline designed for selfies, "
                      "not a general person segmenter. person_binary truth is machine-made; coco truth is hand-labelled; "
                      f"{COMPOSITE}: held-out people pasted onto held-out scenes (exact truth, synthetic, not in 'all'); "
                      "latency medians over the real photos only",
              "threshold": THRESHOLD, "boundary_tolerance_of_diagonal": BOUNDARY_TOL,
              "mediapipe": {"version": mp_version, "tflite": str(args.tflite), "sha256": sha256(Path(args.tflite))},
              "camseg_model": model_info, "summary": summary, "person_free_scenes": free_summary,
              "median_ms": {m: v * 1e3 for m, v in median_s.items()},
              "median_cpu_ms": {m: v * 1e3 for m, v in median_cpu.items()}, "camseg_threads": args.threads,
              "camseg_median_upsampling_cpu_ms": None if post_cpu is None else float(np.median(post_cpu) * 1e3),
              "per_image": per_image}
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    plot_ious(results, sources, args.out / "per_image_iou.png")

    # overlays: every COCO group photo, then the photos where the methods disagree most (or MP's worst)
    import cv2

    if "camseg" in masks:
        gap = [abs(results["camseg"][i]["iou"] - results["mediapipe"][i]["iou"]) for i in range(len(images))]
    else:
        gap = [1 - results["mediapipe"][i]["iou"] for i in range(len(images))]
    by_gap = [int(i) for i in np.argsort(gap)[::-1]]
    chosen = [i for i in range(len(images)) if sources[i] == "coco"]
    chosen += [i for i in by_gap if sources[i] == COMPOSITE][:1]  # one composite: what that row measures
    chosen += [i for i in by_gap if i not in chosen and sources[i] != COMPOSITE]
    colours = {"mediapipe": (255, 60, 200), "camseg": (40, 160, 255)}
    for stale in args.out.glob("overlay_*.png"):  # from an earlier run: would be mistaken for this one's
        stale.unlink()
    for i in chosen[:args.overlays]:
        labels = ["photo", f"truth ({sources[i]})"] + [f"{m} IoU {results[m][i]['iou']:.2f}" for m in masks]
        panel = side_by_side(images[i], truths[i], [(masks[m][i] > THRESHOLD, colours[m]) for m in masks], labels)
        cv2.imwrite(str(args.out / f"overlay_{i:02d}_{sources[i]}.png"), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    print(f"\nwrote {args.out}/results.json, per_image_iou.png and {min(args.overlays, len(chosen))} overlays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
