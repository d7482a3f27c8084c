"""``pfgraph simulate``: the command line of :func:`pfgraph.sim.stage.simulate`."""

from __future__ import annotations

import argparse
from typing import Any

from pfgraph.utils.cli_common import add_overrides


def register(sub: Any) -> None:
    """Add the ``simulate`` sub-command."""
    p = sub.add_parser("simulate", help="simulate a dataset (paper mode by default) into ROOT files",
                       description="Simulate events with the stochastic detector model and write them to ROOT "
                       "(dense G x G images + sparse point clouds).")
    p.add_argument("--config", default="gauss_b050", help="sim config file or preset name (pfgraph/presets/sim; default gauss_b050)")
    p.add_argument("--events", type=int, help="number of events (overrides the config)")
    p.add_argument("--seed", type=int, help="master seed (overrides the config)")
    p.add_argument("--out", required=True, help="output ROOT file (with --shards N: stem.shardK.root)")
    p.add_argument("--shards", type=int, default=1, help="number of output files (default 1)")
    p.add_argument("--workers", type=int, default=None,
                   help="simulation processes feeding the writer (default: 1; 0 = in-process)")
    p.add_argument("--compression", help="e.g. lz4:1, zstd:1, zlib:1 (overrides output.compression)")
    p.add_argument("--format", choices=("ttree", "rntuple"),
                   help="on-disk layout: ttree (default) or rntuple, ROOT 6.34+ (overrides output.format)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file pfgraph did not write")
    add_overrides(p, "detector.b_field=0.5 particles.charged_acceptance=0.9")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph simulate``: map the arguments onto :func:`pfgraph.sim.stage.simulate`."""
    from pfgraph.sim.stage import simulate

    simulate(args.config, args.out, events=args.events, seed=args.seed, shards=args.shards, workers=args.workers,
             compression=args.compression, format=args.format, overrides=args.overrides, force=args.force)
    return 0
