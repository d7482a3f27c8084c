"""Where a trained residual model moves the analytic inversion's pieces, summed over events.

The probe behind docs/BENCHMARKS.md "Residual models: where the jet width goes": for the first
``--events`` events of a data file it reads the head's per-pixel weights exp(a_c), exp(a_had),
exp(a_em) of a residual run, and prints, per piece (pixels where the piece is above 0.5 GeV), the
energy-weighted mean weight and the pixel weights' median and 16-84 % range; then the event-sum
dE/E of the formula and of the model, and how much each piece's weights move the event sum (mean and
standard deviation over events). Usage::

    python scripts/probe_residual_weights.py RUN DATA.root [--events 100] [--cap]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pfgraph.geometry import INPUT_CHANNELS
from pfgraph.io.datasets import read_images
from pfgraph.io.root import EventFiles
from pfgraph.training.predict import load_run


def main() -> None:
    """Parse the arguments, run the model once over the events, print the summaries."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--cap", action="store_true", help="force cap_features on (a run trained before it existed)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run)
    model = run.model
    if args.cap:
        model.cap_features = True
    files = EventFiles(args.data)
    n = min(args.events, files.num_entries) if hasattr(files, "num_entries") else args.events
    g = files.grid.size
    x = np.zeros((n, len(INPUT_CHANNELS), g, g), np.float32)
    read_images(files, list(INPUT_CHANNELS), np.arange(n), list(run.norm.input_scale), x)
    truth = np.zeros((n, 1, g, g), np.float32)
    read_images(files, ["truth"], np.arange(n), [1.0], truth)
    seen: list[torch.Tensor] = []
    hook = model.head.out.register_forward_hook(lambda mod, i, o: seen.append(o.detach().double()))
    with torch.no_grad():
        xt = torch.from_numpy(x)
        pred = model(xt)[:, 0].double() * float(run.norm.target_scale)
        parts = model.analytic.parts(xt)
    hook.remove()
    weights = torch.exp(seen[0][..., :3])
    t = torch.from_numpy(truth[:, 0]).double()
    total = t.sum((1, 2))
    for k, name in enumerate(("charged", "e_had", "e_em")):
        comp, w = parts[name], weights[..., k]
        sel = comp > 0.5
        mean = float((comp * w)[sel].sum() / comp[sel].sum())
        lo, hi = np.percentile(w[sel].numpy(), [16, 84])
        moved = (comp * (w - 1)).sum((1, 2)) / total
        print(f"{name}: energy-weighted mean weight {mean:.4f}, pixel median {float(w[sel].median()):.4f}, "
              f"16-84 % [{lo:.4f}, {hi:.4f}]; moves the event sum by {float(moved.mean()):+.4f} "
              f"(s.d. {float(moved.std()):.4f})")
    for label, img in (("analytic", parts["truth"]), ("model", pred)):
        d = (img - t).sum((1, 2)) / total
        print(f"{label}: event-sum dE/E mean {float(d.mean()):+.4f}, s.d. {float(d.std()):.4f}")


if __name__ == "__main__":
    main()
