"""A trained residual run of the cpu_paper study evaluated with and without ``cap_features``.

The probe behind docs/BENCHMARKS.md "Residual models: the training range's edge": the cap only changes
the features of pixels above the training range S, so applying it to a run trained without it shows
what it does there. Usage::

    python scripts/probe_feature_cap.py cap|nocap [residual_cnn|residual_gnn] [--study studies/cpu_paper]

It evaluates ``<study>/runs/<model>/seed1`` on the study's ``jet300``, ``jet`` and ``test`` files into
``/tmp/probe_<model>_<cap|nocap>_<set>/`` and prints the headline figures and the r half-width per
E_true bin from 8 GeV.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pfgraph.eval.stage import evaluate
from pfgraph.models import residual


def main() -> None:
    """Parse the arguments, evaluate, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cap", choices=("cap", "nocap"))
    ap.add_argument("model", nargs="?", default="residual_cnn", choices=("residual_cnn", "residual_gnn"))
    ap.add_argument("--study", default="studies/cpu_paper")
    args = ap.parse_args()
    cap = args.cap == "cap"
    features = residual._ResidualBase.features

    def forced(self: residual._ResidualBase, inputs, parts):  # noqa: ANN001, ANN202
        self.cap_features = cap  # the run's own setting replaced by the probe's
        return features(self, inputs, parts)

    residual._ResidualBase.features = forced  # type: ignore[method-assign]
    study = Path(args.study)
    for ds in ("jet300", "jet", "test"):
        out = Path(f"/tmp/probe_{args.model}_{args.cap}_{ds}")
        evaluate(study / "runs" / args.model / "seed1", study / "data" / f"{ds}.root", out, bootstrap=20, plots=False)
        doc = json.loads((out / "metrics.json").read_text())
        figs = doc["headline"]["figures"]
        keys = ("residual_half_width_68", "mse_per_image", "jet_energy_rel_median", "jet_energy_rel_half_width_68")
        head = {k: round(figs[k]["value"], 4) for k in keys if k in figs and figs[k]["value"] is not None}
        bins = [(b["lo"], round(b["robust"]["half_width_68"], 3)) for b in doc["energy"]["residual_vs_etrue"]["bins"]
                if b["lo"] >= 8]
        print(ds, args.cap, head, bins, flush=True)


if __name__ == "__main__":
    main()
