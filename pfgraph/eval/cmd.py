"""``pfgraph evaluate``: the command line of :func:`pfgraph.eval.stage.evaluate`.

    pfgraph evaluate runs/unet_attn --data data/b050_jet.root --out evals/unet_attn_jet

One evaluation for every model -> metrics.json, predictions.root, plots; see
:mod:`pfgraph.eval.stage` for what it writes.
"""

from __future__ import annotations

import argparse
from typing import Any

from pfgraph.eval.stage import JET_BACKENDS  # a light module: the CLI starts without torch


def register(sub: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p = sub.add_parser(
        "evaluate", help="evaluate a trained run (or a predictions file) -> metrics.json, predictions.root, plots",
        description="Evaluate a model on one data set with the common metrics (DESIGN 5): per-pixel energy "
        "residuals with a Gaussian core fit and robust figures, fake energy, out-of-reach share, and on jet "
        "samples anti-kt jets of truth and prediction (position and energy deviations).")
    p.add_argument("run", metavar="RUN", help="run folder with a checkpoint (pfgraph train --out), or a predictions.root")
    p.add_argument("--data", nargs="+", required=True, help="event file(s), glob(s) or list")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--jet-backend", choices=JET_BACKENDS, default="auto",
                   help="anti-kt implementation: torch (CPU/CUDA), fastjet, auto = torch on CUDA, fastjet on CPU")
    p.add_argument("--jet-threshold", type=float, default=0.1,
                   help="pixels above this energy (GeV) enter the jet clustering, truth and prediction alike (0.1)")
    p.add_argument("--radius", type=float, default=0.4, help="anti-kt radius R (0.4)")
    p.add_argument("--max-events", type=int, help="evaluate only the first N events")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (model and torch anti-kt)")
    p.add_argument("--batch-size", type=int, default=128, help="events per inference batch (128)")
    p.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of the run folder (best)")
    p.add_argument("--missed-threshold", type=float, default=0.0,
                   help="truth pixels predicted at or below this energy (GeV) count as missed (0)")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap replicas over events for the 68%% intervals of the headline figures (200; 0: none)")
    p.add_argument("--bootstrap-seed", type=int, default=12345, help="seed of the bootstrap replicas (12345)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--format", choices=("ttree", "rntuple"), default="ttree",
                   help="layout of predictions.root: ttree (default) or rntuple (ROOT 6.34+)")
    p.add_argument("--force", action="store_true",
                   help="replace an --out folder holding files evaluate did not write (they are deleted)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph evaluate``: map the arguments onto :func:`pfgraph.eval.stage.evaluate`."""
    from pfgraph.eval.stage import EvaluateSettings, evaluate

    settings = EvaluateSettings(
        jet_backend=args.jet_backend, jet_threshold=args.jet_threshold, radius=args.radius, max_events=args.max_events,
        device=args.device, batch_size=args.batch_size, which=args.which, missed_threshold=args.missed_threshold,
        bootstrap=args.bootstrap, bootstrap_seed=args.bootstrap_seed, plots=not args.no_plots, format=args.format,
        force=args.force)
    result = evaluate(args.run, args.data, args.out, settings)
    print(f"{result.summary} -> {result.out}")
    return 0
