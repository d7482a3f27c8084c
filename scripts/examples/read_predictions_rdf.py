"""Per-pixel energy residual and jet energy deviation of a pfgraph evaluation with ROOT's
RDataFrame from Python (no pfgraph needed). Works for TTree and RNTuple files.

    python scripts/examples/read_predictions_rdf.py evals/x/predictions.root [--out residuals.png]

Residual r = (E_pred - E_true) / E_true over pixels with E_true > 0 (1000 bins in [-5, 2]);
jet energy deviation = (E_pred_jet - E_truth_jet) / E_truth_jet of the first stored jets
(100 bins in [-1, 1]). Prints one line per histogram: in-range entries, mean, std.
See docs/SCHEMA.md for the branches and scripts/examples/read_predictions.C for C++.
"""

from __future__ import annotations

import argparse
import warnings

# Images are RVecF (TTree, 3136 values) or RVec<RVecF> (RNTuple, 56 rows): flatten both.
FLATTEN = """
ROOT::RVecF pfgraph_flat(const ROOT::RVecF &image) { return image; }
ROOT::RVecF pfgraph_flat(const ROOT::RVec<ROOT::RVecF> &image) {
   ROOT::RVecF out; out.reserve(56 * 56);
   for (const auto &row : image) out.insert(out.end(), row.begin(), row.end());
   return out;
}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="predictions.root written by pfgraph evaluate")
    parser.add_argument("--out", default="read_predictions_rdf.png", help="PNG to write")
    args = parser.parse_args()

    with warnings.catch_warnings():  # the PyPI build of ROOT warns that it is an alpha release
        warnings.simplefilter("ignore")
        import ROOT
    ROOT.gROOT.SetBatch(True)
    ROOT.gInterpreter.Declare(FLATTEN)

    f = ROOT.TFile.Open(args.file)
    if not f or f.IsZombie():
        raise SystemExit(f"read_predictions_rdf: cannot open {args.file}")
    meta = f.Get("pfgraph_meta")
    if meta:
        print(f"pfgraph_meta: {str(meta.GetString())[:200]}")
    has_jets = bool(f.GetListOfKeys().FindObject("jets"))

    residual = (ROOT.RDataFrame("predictions", args.file)
                .Define("r", "auto p = pfgraph_flat(pred); auto t = pfgraph_flat(truth); auto m = t > 0.f;"
                             "return ROOT::RVecD((p[m] - t[m]) / t[m]);")
                .Histo1D(("residual", ";(E_{pred} - E_{true}) / E_{true} per pixel;pixels", 1000, -5.0, 2.0), "r"))
    hists = [("residual", residual)]
    if has_jets:
        jet = (ROOT.RDataFrame("jets", args.file)
               .Filter("ntruth_jet > 0 && npred_jet > 0")
               .Define("djet", "double((pred_jet_energy[0] - truth_jet_energy[0]) / truth_jet_energy[0])")
               .Histo1D(("jet_energy", ";(E_{pred jet} - E_{truth jet}) / E_{truth jet};jets", 100, -1.0, 1.0), "djet"))
        hists.append(("jet_energy", jet))

    canvas = ROOT.TCanvas("c", "pfgraph predictions", 600 * len(hists), 450)
    canvas.Divide(len(hists), 1)
    for i, (name, h) in enumerate(hists, start=1):
        canvas.cd(i)
        if name == "residual":
            ROOT.gPad.SetLogy()
        h.DrawCopy("hist")
        # in-range entries; ROOT's histogram statistics exclude under/overflow
        print(f"{name}: entries {h.Integral():.0f} mean {h.GetMean():.6g} std {h.GetStdDev():.6g}")
    canvas.SaveAs(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
