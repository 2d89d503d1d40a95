"""Benchmark: ``develop()`` on a 12-megapixel JPEG, stage by stage, and batch throughput.

Reference, measured in the same run: decoding and encoding the same JPEG with
OpenCV (``cv2.imread`` + ``cv2.imwrite`` at quality 95) — the least any photo
tool must spend per photo. Every stage time is printed as a ratio to it.

Peak memory (Linux): one ``develop`` of the same photo in a fresh process with the model
loaded and one warm-up develop done, as the ``camseg`` command's workers run, with the chosen
settings and the default ones: the peak resident memory above the process before it, and in all.

Batch throughput: ``camseg.batch.run_batch`` on a folder of smaller photos with
1 and 2 worker processes (model load included, as a user would experience it).

The test photo is the bundled public-domain portrait, resized to 4000×3000 with
mild sensor-like noise added (a smooth upscaled image would decode and encode
unrealistically fast).

Usage::

    python benchmarks/develop.py [--out benchmarks/out] [--megapixels 12] [--batch-photos 8]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camseg.batch import run_batch  # noqa: E402
from camseg.pipeline import DevelopSettings, develop  # noqa: E402
from camseg.io import read_photo, write_photo  # noqa: E402

SAMPLE = REPO / "camseg" / "samples" / "astronaut.jpg"


def make_photo(path: Path, width: int, height: int, seed: int = 0) -> None:
    """Write a ``width``×``height`` JPEG from the sample (aspect kept by cropping) with mild noise."""
    src = cv2.imread(str(SAMPLE))
    h, w = src.shape[:2]
    scale = max(width / w, height / h)
    big = cv2.resize(src, (int(np.ceil(w * scale)), int(np.ceil(h * scale))), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    big = big[y0:y0 + height, x0:x0 + width]
    noise = np.random.default_rng(seed).normal(0, 2.0, big.shape).astype(np.float32)
    cv2.imwrite(str(path), np.clip(big + noise, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])


_CPU = {}  # function -> median process CPU seconds of its last timed() call


def timed(fn, repeats=1):
    """Median wall seconds and the result; the median process CPU time (all threads) goes to _CPU.

    CPU time is what to compare when another job shares the cores: wall time then mostly
    measures waiting.
    """
    times, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    _CPU["last"] = statistics.median(cpus)
    return statistics.median(times), result


#: Run in a fresh process by :func:`peak_memory`: the model loaded, one warm-up develop of the
#: sample, then VmHWM reset to the current size (/proc/self/clear_refs 5) and one develop.
_PEAK_SCRIPT = """
import sys
from camseg.batch import reuse_freed_memory
from camseg.pipeline import DevelopSettings, develop
from camseg.io import read_photo
from camseg.segmenter import Segmenter
def kb(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))
reuse_freed_memory()
segmenter = Segmenter()
settings = DevelopSettings.from_json(sys.argv[2])
develop(sys.argv[3], settings, segmenter=segmenter)
photo = read_photo(sys.argv[1])
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
before = kb("VmRSS")
develop(photo, settings, segmenter=segmenter)
print(before, kb("VmHWM"))
"""


def peak_memory(photo: Path, settings: DevelopSettings) -> "tuple | None":
    """``(peak resident bytes of one develop above the process before it, the process's peak)``,
    measured in a fresh process (one warm-up develop first, as the camseg command's workers run,
    with freed frames reused); None where VmHWM cannot be reset (not Linux)."""
    import subprocess

    if not os.path.exists("/proc/self/clear_refs"):
        return None
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(photo), settings.to_json(), str(SAMPLE)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        print(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "peak memory run failed")
        return None
    before, peak = map(int, done.stdout.split()[-2:])
    return (peak - before) * 1024, peak * 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--batch-photos", type=int, default=8)
    parser.add_argument("--batch-size", default="1600x1200", help="WxH of the batch photos")
    parser.add_argument("--portrait", default="blur", help="portrait effect for the single-photo run ('none' = off)")
    parser.add_argument("--only", choices=("develop", "batch"), default=None, help="run only one of the two parts")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (the camseg command calls reuse_freed_memory())")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.default_malloc:
        from camseg.batch import reuse_freed_memory

        print(f"freed frames reused (as in the camseg command): {reuse_freed_memory()}")
    work = Path(tempfile.mkdtemp(prefix="camseg-bench-"))
    try:
        rows, ref, throughput = [], 1.0, {}
        width = height = 0
        if args.only != "batch":
            width = int(round(np.sqrt(args.megapixels * 1e6 * 4 / 3)))
            height = int(round(width * 3 / 4))
            jpeg = work / "photo.jpg"
            make_photo(jpeg, width, height)

            # Reference: OpenCV JPEG decode + encode of the same file.
            dec, img = timed(lambda: cv2.imread(str(jpeg)), repeats=3)
            enc, _ = timed(lambda: cv2.imwrite(str(work / "ref.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95]), repeats=3)
            ref = dec + enc
            ref_cpu = _CPU["last"]
            timed(lambda: cv2.imread(str(jpeg)), repeats=3)
            ref_cpu += _CPU["last"]

            from camseg.segmenter import Segmenter

            load, segmenter = timed(lambda: Segmenter())
            portrait = None if args.portrait == "none" else args.portrait
            settings = DevelopSettings(style="vibrant", portrait=portrait)
            develop(SAMPLE, settings, segmenter=segmenter)  # warm-up (first-call allocations, lazy imports)
            read_t, photo = timed(lambda: read_photo(jpeg))
            read_cpu = _CPU["last"]
            _, result = timed(lambda: develop(photo, settings, segmenter=segmenter, return_details=True), repeats=3)
            dev_cpu = _CPU["last"]
            write_t, _ = timed(lambda: write_photo(work / "developed.jpg", result.image.pixels, like=photo))
            write_cpu = _CPU["last"]
            # The same photo with the default settings (standard style, no portrait effect).
            _, plain = timed(lambda: develop(photo, DevelopSettings(), segmenter=segmenter, return_details=True))
            plain_cpu = _CPU["last"]

            rows = [("reference: cv2 decode+encode", ref)]
            cpu = {0: ref_cpu}
            rows.append(("read_photo (decode, linearise)", read_t))
            cpu[1] = read_cpu
            for stage in result.report.stages:
                label = f"{stage.name} [{stage.status}]"
                rows.append((label, stage.seconds))
            rows.append(("write_photo (encode, atomic)", write_t))
            cpu[len(rows) - 1] = write_cpu
            total = read_t + result.report.total_seconds + write_t
            rows.append(("total develop, file to file", total))
            cpu[len(rows) - 1] = read_cpu + dev_cpu + write_cpu
            rows.append(("same, default settings (no portrait)", read_t + plain.report.total_seconds + write_t))
            cpu[len(rows) - 1] = read_cpu + plain_cpu + write_cpu

            print(f"\ndevelop() on a {width}×{height} ({width * height / 1e6:.1f} MP) JPEG, "
                  f"style=vibrant, portrait={portrait}; model load {load:.2f} s (once)")
            print("(per-stage CPU time is not recorded by develop(); see the totals, and "
                  "time the effects directly when the machine is loaded)")
            print(f"{'stage':<36}{'seconds':>9}{'× ref':>8}{'CPU s':>9}{'CPU × ref':>11}")
            for i, (label, seconds) in enumerate(rows):
                extra = f"{cpu[i]:9.3f}{cpu[i] / max(1e-9, ref_cpu):11.1f}" if i in cpu else ""
                print(f"{label:<36}{seconds:9.3f}{seconds / ref:8.1f}{extra}")
            # Peak memory of one develop (no details kept), after the runs above: the README's
            # "Out of memory" figures (bytes a pixel above the process with the model loaded).
            for name, chosen in ((f"style=vibrant, portrait={portrait}", settings), ("default settings", DevelopSettings())):
                memory = peak_memory(jpeg, chosen)
                if memory is None:
                    print("peak memory: not measured here (needs Linux's /proc/self/clear_refs)")
                    break
                above, peak = memory
                print(f"peak memory, {name}: {above / 1e9:.2f} GB above the process before it "
                      f"({above / (width * height):.0f} bytes a pixel), {peak / 1e9:.2f} GB in all")

        if args.only != "develop":
            # Batch throughput with 1 and 2 workers.
            bw, bh = (int(v) for v in args.batch_size.lower().split("x"))
            folder = work / "batch"
            folder.mkdir()
            for i in range(args.batch_photos):
                make_photo(folder / f"img_{i:02d}.jpg", bw, bh, seed=i)
            throughput, steady = {}, {}
            load_before = os.getloadavg()[0]
            for jobs in (1, 2):
                out = work / f"out{jobs}"
                stamps = []
                summary = run_batch([folder], out, settings=DevelopSettings(style="vibrant"), jobs=jobs,
                                    progress=False, on_result=lambda r: stamps.append(time.perf_counter()))
                if not summary.ok:
                    print("batch failures:", [(str(r.source), r.message) for r in summary.failed])
                throughput[jobs] = summary.done / summary.seconds
                # Steady state: photos completed after the first one, over the time they took
                # (excludes worker start-up: interpreter, imports, model load).
                steady[jobs] = (len(stamps) - 1) / max(1e-9, stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
                shutil.rmtree(out)
            print(f"\nbatch: {args.batch_photos} photos of {bw}×{bh}, style=vibrant; {os.cpu_count()} CPU cores, "
                  f"load average before {load_before:.1f}")
            print(f"{'workers':<10}{'photos/s (wall, incl. start-up)':>34}{'steady photos/s':>18}{'speed-up':>10}")
            for jobs in throughput:
                print(f"{jobs:<10}{throughput[jobs]:34.2f}{steady[jobs]:18.2f}{steady[jobs] / max(1e-9, steady[1]):10.2f}")
            throughput = steady

        try:
            import matplotlib

            # colour-science puts a MagicMock in sys.modules when matplotlib is missing: an
            # import that "succeeds" is not enough (`pip install -e '.[bench]'` gives the real one).
            if not isinstance(matplotlib, types.ModuleType):
                raise ImportError("matplotlib is not installed")
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            panels = [p for p in ("develop", "batch") if args.only in (None, p)]
            fig, axes = plt.subplots(1, len(panels), figsize=(4 + 7 * ("develop" in panels), 4), squeeze=False,
                                     gridspec_kw={"width_ratios": [3 if p == "develop" else 1 for p in panels]})
            axes = dict(zip(panels, axes[0]))
            if "develop" in axes:
                a = axes["develop"]
                labels = [r[0] for r in rows]
                a.barh(labels[::-1], [r[1] / ref for r in rows][::-1], color="tab:blue")
                a.set_xlabel("time / (cv2 JPEG decode + encode)")
                a.set_title(f"develop() on {width * height / 1e6:.0f} MP")
            if "batch" in axes:
                b = axes["batch"]
                b.bar([str(j) for j in throughput], list(throughput.values()), color="tab:green")
                b.set_xlabel("workers")
                b.set_ylabel("photos / s (steady state)")
                b.set_title("batch throughput")
            fig.tight_layout()
            fig.savefig(args.out / "develop_benchmark.png", dpi=100)
            print(f"\nplot: {args.out / 'develop_benchmark.png'}")
        except ImportError:
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
