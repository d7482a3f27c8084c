"""Per-pixel energy residual and jet energy deviation of a pfgraph evaluation with uproot,
awkward and hist: no ROOT, no pfgraph needed. Works for TTree and RNTuple files.

    python scripts/examples/read_predictions_uproot.py evals/x/predictions.root [--out residuals.png]

Same definitions and binning as read_predictions.C and read_predictions_rdf.py:
residual r = (E_pred - E_true) / E_true over pixels with E_true > 0 (1000 bins in [-5, 2]);
jet energy deviation = (E_pred_jet - E_truth_jet) / E_truth_jet of the first stored jets
(100 bins in [-1, 1]). Prints one line per histogram: in-range entries, mean, std.
"""

from __future__ import annotations

import argparse

import awkward as ak
import hist
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import uproot  # noqa: E402


def summary(name: str, values: np.ndarray, h: hist.Hist) -> str:
    """In-range entries, mean and standard deviation (as ROOT's TH1 statistics)."""
    lo, hi = h.axes[0].edges[0], h.axes[0].edges[-1]
    v = values[(values >= lo) & (values < hi)]
    mean = float(v.mean()) if v.size else 0.0
    std = float(v.std()) if v.size else 0.0
    return f"{name}: entries {h.sum():.0f} mean {mean:.6g} std {std:.6g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="predictions.root written by pfgraph evaluate")
    parser.add_argument("--out", default="read_predictions_uproot.png", help="PNG to write")
    parser.add_argument("--step", type=int, default=1000, help="events read at a time")
    args = parser.parse_args()

    f = uproot.open(args.file)
    if "pfgraph_meta" in f:
        print(f"pfgraph_meta: {str(f['pfgraph_meta'])[:200]}")

    residual = hist.Hist(hist.axis.Regular(1000, -5.0, 2.0, name="r", label="(E_pred - E_true) / E_true per pixel"))
    values = []
    tree = f["predictions"]
    for start in range(0, tree.num_entries, args.step):  # stream: a file may not fit in memory
        chunk = tree.arrays(["pred", "truth"], entry_start=start, entry_stop=start + args.step, library="np")
        pred, truth = chunk["pred"].astype(np.float64), chunk["truth"].astype(np.float64)
        mask = truth > 0
        r = (pred[mask] - truth[mask]) / truth[mask]
        residual.fill(r)
        values.append(r)
    hists = [("residual", residual, np.concatenate(values) if values else np.zeros(0))]

    if "jets" in f:
        jets = f["jets"].arrays(["truth_jet_energy", "pred_jet_energy"])
        ok = (ak.num(jets.truth_jet_energy) > 0) & (ak.num(jets.pred_jet_energy) > 0)
        truth_e = ak.to_numpy(jets.truth_jet_energy[ok][:, 0]).astype(np.float64)
        pred_e = ak.to_numpy(jets.pred_jet_energy[ok][:, 0]).astype(np.float64)
        d = (pred_e - truth_e) / truth_e
        jet = hist.Hist(hist.axis.Regular(100, -1.0, 1.0, name="djet", label="(E_pred jet - E_truth jet) / E_truth jet"))
        jet.fill(d)
        hists.append(("jet_energy", jet, d))

    fig, axes = plt.subplots(1, len(hists), figsize=(6 * len(hists), 4.5), squeeze=False)
    for ax, (name, h, v) in zip(axes[0], hists):
        ax.stairs(h.values(), h.axes[0].edges)
        ax.set_xlabel(h.axes[0].label)
        ax.set_ylabel("pixels" if name == "residual" else "jets")
        if name == "residual":
            ax.set_yscale("log")
        print(summary(name, v, h))
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
