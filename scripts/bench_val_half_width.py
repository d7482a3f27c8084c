"""Per-epoch cost of the trainer's validation half-width (metrics.csv ``val_half_width``).

    python scripts/bench_val_half_width.py DATA.root [--val-events 1000] [--model cnn] [--rounds 3] [--threads 1]

Times the trainer's validation pass over ``--val-events`` events of DATA with and without the
per-pixel residual collection and its 68 % half-width, taking turns round by round (the machine
is shared and noisy), and prints the best time of each and their difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PFGRAPH_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pfgraph.io.root import EventFiles  # noqa: E402
from pfgraph.training.config import build_run_config, load_model_section, train_preset_data  # noqa: E402
from pfgraph.training.trainer import Trainer, build_model, validation_half_width  # noqa: E402


def main() -> None:
    """Parse the arguments, time both validation passes, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--val-events", type=int, default=1000)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = EventFiles(args.data)
    cfg = build_run_config(load_model_section(args.model), train_preset_data("default"), ["train.device=cpu"])
    trainer = Trainer(cfg, "/nonexistent", files, log=lambda _m: None)
    from pfgraph.repr.base import fit_normalisation

    idx = np.arange(min(args.val_events, files.num_events))
    norm = fit_normalisation(files, idx)
    ds = trainer.repr.make_dataset(files, idx, norm)
    model = build_model(trainer.entry, cfg.model.params, 1)
    configure = getattr(model, "configure_from_data", None)
    if callable(configure):
        configure(files.meta, norm)
    plain, with_hw = [], []
    hw = float("nan")
    for _ in range(args.rounds):
        t = time.perf_counter()
        trainer.evaluate(model, ds)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        residuals: list[np.ndarray] = []
        trainer.evaluate(model, ds, residuals)
        hw = validation_half_width(residuals)
        with_hw.append(time.perf_counter() - t)
    n_r = sum(len(r) for r in residuals)
    print(f"{args.model}, {len(idx)} validation events, {n_r} truth pixels, {args.threads} thread(s), "
          f"best of {args.rounds}: validation {min(plain):.3f} s, with half-width {min(with_hw):.3f} s "
          f"(+{min(with_hw) - min(plain):.3f} s, x{min(with_hw) / min(plain):.3f}); half-width {hw:.4g}")


if __name__ == "__main__":
    main()
