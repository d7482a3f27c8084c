"""``pfgraph report`` (compare evaluations) and ``pfgraph demo`` (the embedded end-to-end run)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``report`` and ``demo`` sub-commands."""
    p = sub.add_parser("report", help="compare evaluation folders: index.html, PNGs, summary.json/.md",
                       description="Compare models and representations side by side from 'pfgraph evaluate' folders.")
    p.add_argument("evals", nargs="+", help="evaluation folders (each with metrics.json and predictions.root)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_report)
    d = sub.add_parser("demo", help="small end-to-end run on CPU: simulate, train, evaluate, report",
                       description="The embedded default: simulates small B=0.5 training and Pythia jet sets, trains "
                       "baselines, unet_attn and edgeconv briefly, evaluates them and writes the comparison report.")
    d.add_argument("--out", default="demo", help="output folder (default demo/)")
    d.add_argument("--quick", action="store_true", help="smaller, faster variant (used in CI)")
    d.add_argument("--seed", type=int, default=1)
    d.set_defaults(func=run_demo)


def run_report(args: argparse.Namespace) -> int:
    """Run ``pfgraph report``: :func:`pfgraph.reporting.stage.report`."""
    from pfgraph.reporting.stage import report

    report(args.evals, args.out)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Run ``pfgraph demo``."""
    from pfgraph.reporting.demo import run_demo as demo

    demo(args.out, quick=args.quick, seed=args.seed)
    return 0
