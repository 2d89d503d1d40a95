"""Benchmark: where to cut a portrait subject's person mattes, against people's labels.

The portrait effects take the subject as ``decisive_alpha(mattes, 8, midpoint)``: what lies
above ``midpoint`` is the subject. This script cuts the summed mattes of
``camseg.pipeline.portrait_people`` at fixed values and at ``camseg.pipeline.subject_midpoint``
(Otsu's threshold of the matte, held to ``SUBJECT_MIDPOINT_RANGE``) and prints the mean IoU of
each cut with the union of the labelled people, and its worst decile, on:

* ``coco``: the COCO photos whose panoptic labels fit them (``camseg.train.data.load_coco``);
* ``composites``: the 40 several-person composites of held-out people on held-out scenes
  that ``camseg.train.evaluate`` scores person PQ on;
* ``person photos``: the held-out person_binary photos (machine-made union labels).

Usage::

    python benchmarks/subject_midpoint.py [--data ../shared/data] [--model PATH] [--limit N]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camseg.pipeline import portrait_subject, subject_midpoint  # noqa: E402
from camseg.segmenter import DEFAULT_MODEL, Segmenter  # noqa: E402
from camseg.train.data import group_composites, load_all, load_coco  # noqa: E402

FIXED = (0.3, 0.35, 0.4, 0.45, 0.5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos of each set (a quick check)")
    args = parser.parse_args(argv)
    if not (args.data / "coco_panoptic").is_dir():
        parser.error(f"--data {args.data} has no coco_panoptic/; pass the shared data folder (../shared/data)")
    val = load_all(args.data, split="val")
    sets = {
        "coco": [r for r in load_coco(args.data / "coco_panoptic") if r.instances],
        "composites": group_composites(val),
        "person photos": [r for r in val if r.source == "person_binary" and r.instances],
    }
    if args.limit:
        sets = {name: records[:args.limit] for name, records in sets.items()}
    cuts = [f"{c:g}" for c in FIXED] + ["subject_midpoint"]
    print(f"mean IoU (worst decile) of the subject cut with the labelled people; model {args.model.name}")
    print(f"{'set':<15}{'n':>4}" + "".join(f"{c:>18}" for c in cuts))
    with Segmenter(args.model) as segmenter:
        for name, records in sets.items():
            scores, midpoints = {c: [] for c in cuts}, []
            for rec in records:
                persons = segmenter.segment(rec.image).persons
                labelled = np.zeros(rec.image.shape[:2], bool)
                for m in rec.instances:
                    labelled |= m > 127
                subject = portrait_subject(persons) if persons else np.zeros(labelled.shape, np.float32)
                midpoint = subject_midpoint(subject) if persons else 0.5
                midpoints.append(midpoint)
                for c, value in zip(cuts, list(FIXED) + [midpoint]):
                    cut = subject > value
                    scores[c].append((cut & labelled).sum() / max(1, (cut | labelled).sum()))
            print(f"{name:<15}{len(records):>4}" + "".join(
                f"{np.mean(scores[c]):>10.3f} ({np.quantile(scores[c], 0.1):.3f})" for c in cuts))
            print(f"{'':<19}subject_midpoint: median {np.median(midpoints):.2f}, "
                  f"{np.mean(np.array(midpoints) < 0.5):.0%} of photos cut below 0.5")


if __name__ == "__main__":
    main()
