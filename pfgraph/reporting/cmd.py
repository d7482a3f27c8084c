"""``pfgraph report``: compare evaluations."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``report`` sub-command."""
    p = sub.add_parser("report", help="compare evaluation folders: index.html, PNGs, summary.json/.md",
                       description="Compare models and representations side by side from 'pfgraph evaluate' folders.")
    p.add_argument("evals", nargs="+", help="evaluation folders (each with metrics.json and predictions.root)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Run ``pfgraph report``: :func:`pfgraph.reporting.stage.report`."""
    from pfgraph.reporting.stage import report

    report(args.evals, args.out)
    return 0

