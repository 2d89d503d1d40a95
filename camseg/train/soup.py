"""Average the weights of training checkpoints ("model soup").

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves
accuracy without increasing inference time", ICML 2022: fine-tunes that start from the same
weights stay in one basin of the loss, so their average is a model too, often better than
either. The shipped default model is the average of run5 and its continuation run11 (see
``camseg/models/README.md``).

Usage::

    python -m camseg.train.soup A.pt B.pt [...] --out SOUP.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from camseg.train.train import load_checkpoint_file, save_atomic


def soup(paths: list, weights: list | None = None) -> dict:
    """A checkpoint whose floating-point tensors are the (weighted) mean of the given ones'.

    Parameters
    ----------
    paths : list of str or Path
        Training checkpoints (``{"config", "model", "step", "trained"}``) of one architecture.
    weights : list of float, optional
        One non-negative weight per checkpoint (normalised); equal by default.

    Returns
    -------
    dict
        A checkpoint (the first one's config; integer tensors such as BatchNorm's counters
        from the first one), ``trained["soup"]`` naming the ingredients.

    Raises
    ------
    ValueError
        Fewer than two checkpoints, one that cannot be read as a checkpoint, different
        architectures, or bad weights.
    """
    if len(paths) < 2:
        raise ValueError(f"a soup needs at least two checkpoints, got {len(paths)}")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"weights must be one non-negative number per checkpoint with a positive sum; got {weights}")
    # (An .onnx, a damaged or a missing file stopped with the unpickler's traceback.)
    try:
        states = [load_checkpoint_file(Path(p).expanduser()) for p in paths]
    except ValueError as exc:
        raise ValueError(f"{exc}; a soup averages .pt checkpoints written by camseg.train.train (rebuild one "
                         "from an .onnx with camseg.train.recover)") from exc
    first = states[0]
    for p, st in zip(paths[1:], states[1:]):
        if st["config"] != first["config"] or st["model"].keys() != first["model"].keys():
            raise ValueError(f"{p} has another architecture than {paths[0]}; only fine-tunes of one model average")
    total = sum(weights)
    model = {}
    for key, value in first["model"].items():
        if value.is_floating_point():
            model[key] = sum(w / total * st["model"][key].float() for w, st in zip(weights, states)).to(value.dtype)
        else:
            model[key] = value
    trained = dict(first.get("trained", {}))
    trained.pop("steps", None)
    trained["soup"] = [f"{Path(p).name} (step {st.get('step')}, weight {w / total:.2f})"
                       for p, st, w in zip(paths, states, weights)]
    return {"config": first["config"], "model": model, "step": max(st.get("step", 0) for st in states),
            "trained": trained}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--weights", type=float, nargs="+", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out).expanduser()
    if out.is_dir():  # (it failed at the rename with an IsADirectoryError traceback)
        parser.error(f"--out {args.out!r} is a folder; name the checkpoint to write, e.g. "
                     f"{str(Path(args.out) / 'soup.pt')!r}")
    if any(out.resolve() == Path(c).expanduser().resolve() for c in args.checkpoints):
        parser.error(f"--out {args.out!r} is one of the checkpoints to average; write the soup to a new file")
    try:
        averaged = soup(args.checkpoints, args.weights)
    except ValueError as exc:  # (another architecture, a file that is no checkpoint: a traceback before)
        parser.error(str(exc))
    save_atomic(averaged, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
