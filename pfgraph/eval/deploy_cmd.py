"""``pfgraph predict`` and ``pfgraph export``: a trained model used outside the evaluation.

    pfgraph predict runs/cnn --data new_events.root --out new_events_pred.root
    pfgraph export runs/cnn --format onnx --out cnn.onnx
    pfgraph predict cnn.onnx --data new_events.root --out new_events_pred.root

See :mod:`pfgraph.eval.predict` and :mod:`pfgraph.training.export` for what they write.
"""

from __future__ import annotations

import argparse
from typing import Any

from pfgraph.eval.predict import BACKENDS  # a light module: the CLI starts without torch


def register(sub: Any) -> None:
    """Add the ``predict`` and ``export`` sub-commands."""
    p = sub.add_parser(
        "predict", help="apply a trained run (or an exported .onnx) to events without truth -> a friend tree",
        description="Predict every event of an events file (truth not needed) and write a 'predictions' tree "
        "aligned entry for entry with the input's 'events' tree (ROOT: AddFriend). The input's detector config "
        "must match the training data's unless --allow-config-mismatch.")
    p.add_argument("run", metavar="RUN", help="run folder with a checkpoint (pfgraph train --out), or an exported .onnx")
    p.add_argument("--data", nargs="+", required=True, help="event file(s), glob(s) or list (truth not needed)")
    p.add_argument("--out", required=True, help="output ROOT file (replaced only if pfgraph predict wrote it)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch (default) or onnxruntime (the run exported in memory; always for a .onnx RUN)")
    p.add_argument("--allow-config-mismatch", action="store_true",
                   help="predict on data whose detector config differs from the training data's (recorded)")
    p.add_argument("--batch-size", type=int, default=64, help="events per inference batch (64)")
    p.add_argument("--max-events", type=int, help="predict only the first N events")
    p.add_argument("--device", default="auto", help="torch backend: auto | cpu | cuda | cuda:N")
    p.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of the run folder (best)")
    p.add_argument("--force", action="store_true", help="replace an existing --out that pfgraph predict did not write")
    p.set_defaults(func=run_predict)

    e = sub.add_parser(
        "export", help="export a trained run to ONNX (GeV in, GeV out), checked against torch",
        description="Write the run's model as an ONNX file with its normalisation inside (inputs and outputs in "
        "GeV), dynamic batch and point axes, opset 18, and metadata (pfgraph version, model, config hash, inputs "
        "and outputs with units). onnxruntime and torch are compared before the file is written.")
    e.add_argument("run", metavar="RUN", help="run folder with a checkpoint (pfgraph train --out)")
    e.add_argument("--format", choices=("onnx",), default="onnx", help="output format (onnx)")
    e.add_argument("--out", required=True, help="output file, ending in .onnx")
    e.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of the run folder (best)")
    e.add_argument("--force", action="store_true", help="replace an existing --out that pfgraph export did not write")
    e.set_defaults(func=run_export)


def run_predict(args: argparse.Namespace) -> int:
    """Run ``pfgraph predict``."""
    from pfgraph.errors import PfgraphError
    from pfgraph.eval.predict import predict

    if args.batch_size <= 0:
        raise PfgraphError(f"--batch-size {args.batch_size}: expected a positive number")
    result = predict(args.run, args.data, args.out, backend=args.backend,
                     allow_config_mismatch=args.allow_config_mismatch, batch_size=args.batch_size,
                     max_events=args.max_events, device=args.device, which=args.which, force=args.force)
    print(f"{result.summary} -> {result.out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Run ``pfgraph export``."""
    from pfgraph.training.export import export

    result = export(args.run, args.out, args.format, args.which, force=args.force)
    print(f"export: {result.model} ({result.repr}) -> {result.out} (ONNX opset {result.opset}, checked against torch)")
    return 0
