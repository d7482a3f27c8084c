// Histogram the per-pixel energy residual and the jet energy deviation of a pfgraph
// evaluation, with ROOT only (no pfgraph, no Python). Works for TTree and RNTuple files.
//
//   root -l -b -q 'scripts/examples/read_predictions.C("evals/x/predictions.root")'
//   root -l -b -q 'scripts/examples/read_predictions.C("evals/x/predictions.root", "residuals.png")'
//
// Tree `predictions`: pred[56][56], truth[56][56] (GeV per pixel, the 56x56 eta-phi grid).
// Tree `jets` (jet samples only): truth_jet_energy[ntruth_jet], pred_jet_energy[npred_jet], ...
// See docs/SCHEMA.md for every branch.
//
// Residual r = (E_pred - E_true) / E_true over pixels with E_true > 0 (1000 bins in [-5, 2]);
// jet energy deviation = (E_pred_jet - E_truth_jet) / E_truth_jet of the first stored jets.
// Prints one summary line per histogram: in-range entries, mean and standard deviation.

#include <ROOT/RDataFrame.hxx>
#include <ROOT/RVec.hxx>
#include <TCanvas.h>
#include <TFile.h>
#include <TH1D.h>
#include <TObjString.h>
#include <TStyle.h>

#include <cstdio>
#include <memory>
#include <string>

// Images are ROOT::RVecF of 3136 values in a TTree and RVec<RVecF> (56 rows) in an RNTuple:
// flatten both to 3136 values, row-major (element ieta * 56 + iphi).
ROOT::RVecF pfgraph_flat(const ROOT::RVecF &image) { return image; }
ROOT::RVecF pfgraph_flat(const ROOT::RVec<ROOT::RVecF> &image)
{
   ROOT::RVecF out;
   out.reserve(56 * 56);
   for (const auto &row : image)
      out.insert(out.end(), row.begin(), row.end());
   return out;
}

void pfgraph_summary(const char *what, TH1D &h)
{
   // Entries inside the axis range; ROOT's histogram statistics exclude under/overflow.
   std::printf("%s: entries %.0f mean %.6g std %.6g\n", what, h.Integral(), h.GetMean(), h.GetStdDev());
}

int read_predictions(const char *path = "predictions.root", const char *png = "read_predictions.png")
{
   std::unique_ptr<TFile> file(TFile::Open(path));
   if (!file || file->IsZombie()) {
      std::fprintf(stderr, "read_predictions: cannot open %s\n", path);
      return 1;
   }
   if (auto *meta = file->Get<TObjString>("pfgraph_meta"))
      std::printf("pfgraph_meta: %.200s\n", meta->GetString().Data());
   const bool hasJets = file->GetListOfKeys()->FindObject("jets") != nullptr;

   ROOT::RDataFrame predictions("predictions", path);
   auto residual = predictions
                      .Define("r",
                              "auto p = pfgraph_flat(pred); auto t = pfgraph_flat(truth); auto m = t > 0.f;"
                              "return ROOT::RVecD((p[m] - t[m]) / t[m]);")
                      .Histo1D<ROOT::RVecD>({"residual", ";(E_{pred} - E_{true}) / E_{true} per pixel;pixels", 1000, -5., 2.}, "r");

   ROOT::RDF::RResultPtr<TH1D> jet;
   if (hasJets) {
      ROOT::RDataFrame jets("jets", path);
      jet = jets.Filter("ntruth_jet > 0 && npred_jet > 0")
               .Define("djet", "double((pred_jet_energy[0] - truth_jet_energy[0]) / truth_jet_energy[0])")
               .Histo1D<double>({"jet_energy", ";(E_{pred jet} - E_{truth jet}) / E_{truth jet};jets", 100, -1., 1.}, "djet");
   }

   gStyle->SetOptStat(1110);
   TCanvas canvas("c", "pfgraph predictions", hasJets ? 1200 : 600, 450);
   if (hasJets)
      canvas.Divide(2, 1);
   canvas.cd(1);
   gPad->SetLogy();
   residual->DrawCopy("hist");
   pfgraph_summary("residual", *residual);
   if (hasJets) {
      canvas.cd(2);
      jet->DrawCopy("hist");
      pfgraph_summary("jet_energy", *jet);
   }
   canvas.SaveAs(png);
   return 0;
}
