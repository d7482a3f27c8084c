"""A residual run's truth-jet energy error against the formula's, split by the class of the jet's pixels.

The probe behind docs/BENCHMARKS.md "Residual models: where the jet width goes". Per event of a jet
file, the truth jet is the evaluation's (anti-kt R = 0.4 over truth pixels above 0.1 GeV, the jet
nearest (0, 0)); its energy error sum(E_pred - E_true) / E_jet over the jet's pixels is split into the
jet's charged-only pixels (neutral truth below 1 % of the pixel's), neutral-only (above 99 %) and mixed
ones. Prints the median and 68 % half-width over jets of each part, for the model and for the analytic
inversion it starts from, and the classes' shares of the jet energy. Usage::

    python scripts/probe_jet_classes.py RUN JET.root [--events 400]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pfgraph.eval.antikt import cluster_images, pixel_positions
from pfgraph.geometry import INPUT_CHANNELS
from pfgraph.io.datasets import read_images
from pfgraph.io.root import EventFiles
from pfgraph.training.predict import load_run


def main() -> None:
    """Parse the arguments, predict, cluster the truth, print the split."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--events", type=int, default=400)
    args = ap.parse_args()
    run = load_run(args.run)
    files = EventFiles(args.data)
    n, g = args.events, files.grid.size
    x = np.zeros((n, len(INPUT_CHANNELS), g, g), np.float32)
    read_images(files, list(INPUT_CHANNELS), np.arange(n), list(run.norm.input_scale), x)
    t = np.zeros((n, 2, g, g), np.float32)
    read_images(files, ["truth", "truth_neutral"], np.arange(n), [1.0, 1.0], t)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        images = {"model": (run.model(xt)[:, 0].double() * float(run.norm.target_scale)).numpy(),
                  "analytic": run.model.analytic.parts(xt)["truth"].numpy()}
    truth, neutral = t[:, 0].astype(np.float64), t[:, 1].astype(np.float64)
    owner = cluster_images(truth, 0.4, 0.1, backend="torch").pixel_jet().numpy().reshape(n, g, g)
    eta, phi = pixel_positions(size=g)
    parts: dict[str, list[float]] = {}
    for i in range(n):
        def distance(j: int, i: int = i) -> float:
            sel = owner[i] == j
            e = truth[i][sel]
            return float(np.hypot((eta[sel] * e).sum() / e.sum(), np.angle((np.exp(1j * phi[sel]) * e).sum())))
        jets = np.unique(owner[i][owner[i] >= 0])
        if not len(jets):
            continue
        sel = owner[i] == min(jets, key=distance)
        e_jet = truth[i][sel].sum()
        share = np.where(truth[i] > 0, neutral[i] / np.maximum(truth[i], 1e-12), 0.0)
        classes = {"all": sel, "charged-only": sel & (share < 0.01), "neutral-only": sel & (share > 0.99),
                   "mixed": sel & (share >= 0.01) & (share <= 0.99)}
        for c, mask in classes.items():
            parts.setdefault(f"share of E_jet: {c}", []).append(truth[i][mask].sum() / e_jet)
            for label, img in images.items():
                parts.setdefault(f"{label}: {c}", []).append((img[i][mask] - truth[i][mask]).sum() / e_jet)
    for key, values in parts.items():
        lo, med, hi = np.percentile(values, [16, 50, 84])
        print(f"{key:30s} median {med:+.4f}  68 % half-width {(hi - lo) / 2:.4f}  ({len(values)} jets)")


if __name__ == "__main__":
    main()
