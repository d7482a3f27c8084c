"""``pfgraph train``: the command line of :func:`pfgraph.training.stage.train` (one trainer for all).

    pfgraph train --repr image --model unet_attn --data data/b050.root --out runs/unet_attn \\
        [--epochs E] [--max-events N] [--batch-size B] [--config F] [--device D] [--seed S] [key=value ...]

Re-running into a run folder that holds a checkpoint resumes it (``--epochs`` is the total).
Multi-process: ``torchrun --standalone --nproc_per_node 2 -m pfgraph.cli train ...``.
"""

from __future__ import annotations

import argparse
from typing import Any

from pfgraph.utils.cli_common import add_overrides


def register(sub: Any) -> None:
    """Add the ``train`` sub-command."""
    p = sub.add_parser(
        "train", help="train a model (image or graph representation); resumes an existing run folder",
        description="Train a registered model with the one trainer: MSE/Adam, LR schedule and early stopping on "
        "the validation loss, best-on-validation checkpoint, progressive training-set schedule, AMP on CUDA, "
        "resume from the last checkpoint, DDP under torchrun.")
    p.add_argument("--model", required=True, help="model name or preset (see 'pfgraph models'), or a model YAML file")
    p.add_argument("--repr", help="representation: image | graph (default: the model's own; 'pfgraph models' lists them)")
    p.add_argument("--data", nargs="+", help="event file(s), glob(s) or list (default: the train config's "
                   "data.default, data/b050.root; make it first with pfgraph simulate)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, config.yaml, metrics.csv, loss.png)")
    p.add_argument("--config", help="train config file or preset (pfgraph/presets/train; default: default)")
    p.add_argument("--epochs", type=int, help="total number of epochs (a resumed run continues up to it)")
    p.add_argument("--max-events", type=int, help="use only the first N events of the data")
    p.add_argument("--batch-size", type=int, help="training batch size")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--seed", type=int, help="training seed (initialisation and shuffling)")
    p.add_argument("--force", action="store_true", help="write the run's files into a folder that is not a run folder, "
                   "or over files of the run's names pfgraph did not write")
    add_overrides(p, "train.lr=5e-4 train.early_stop.patience=3", "model hyper-parameters as model.<param>=value")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph train``: map the arguments onto :func:`pfgraph.training.stage.train`."""
    from pfgraph.training import ddp
    from pfgraph.training.stage import train

    info = ddp.init(args.device or "auto")
    try:
        result = train(args.model, args.out, args.data, repr=args.repr, config=args.config, epochs=args.epochs,
                       max_events=args.max_events, batch_size=args.batch_size, device=args.device, seed=args.seed,
                       overrides=args.overrides, dist=info, force=args.force)
    finally:
        ddp.shutdown(info)
    if info.is_main:
        print(result.summary_line())
    return 0
