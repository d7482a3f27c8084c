"""``pfgraph simulate``: generate a dataset into ROOT files."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pfgraph.utils.cli_common import add_overrides


def register(sub: Any) -> None:
    """Add the ``simulate`` sub-command."""
    p = sub.add_parser("simulate", help="simulate a dataset (paper mode by default) into ROOT files",
                       description="Simulate events with the stochastic detector model and write them to ROOT "
                       "(dense 56x56 images + sparse point clouds).")
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
    add_overrides(p, "detector.b_field=0.5 particles.charged_acceptance=0.9")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph simulate``."""
    from pfgraph.config import load_config, resolve_config_path
    from pfgraph.errors import PfgraphError
    from pfgraph.sim.detector import SimConfig
    from pfgraph.sim.generate import generate, shard_paths
    from pfgraph.utils.atomic import clean_stale_temporaries, ensure_writable_dir
    from pfgraph.utils.progress import progress

    overrides = list(args.overrides)
    if args.events is not None:
        overrides.append(f"events={args.events}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.compression is not None:
        overrides.append(f"output.compression={args.compression}")
    if args.format is not None:
        overrides.append(f"output.format={args.format}")
    cfg = load_config(SimConfig, resolve_config_path(args.config, "sim"), overrides)
    workers = 1 if args.workers is None else args.workers
    if workers < 0:
        raise PfgraphError(f"--workers {workers}: expected 0 or more worker processes")
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise PfgraphError(f"{out}: is a folder; --out expects a ROOT file name")
    ensure_writable_dir(out.parent if str(out.parent) else ".")
    plans = shard_paths(out, args.shards, cfg.events)
    n_stale = size = 0
    for plan in plans:
        n, b = clean_stale_temporaries(plan.path)
        n_stale, size = n_stale + n, size + b
    if n_stale:
        print(f"removed {n_stale} temporary folder(s) of an interrupted run ({size / 2**20:.1f} MiB) beside {out}")
    done = _complete_shards(cfg, plans)
    if done:
        print(f"resuming: {len(done)}/{len(plans)} shards already complete, skipping them")
    t0 = time.perf_counter()
    todo = [k for k in range(len(plans)) if k not in done]
    with progress(sum(plans[k].stop - plans[k].start for k in todo), f"simulate {cfg.name}") as bar:
        paths = generate(cfg, out, shards=args.shards, workers=workers, progress=bar.update, skip=done)
    dt = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in paths) / 2**20
    n_new = sum(plans[k].stop - plans[k].start for k in todo)
    rate = f", {n_new / dt:.0f} events/s" if dt > 0 and n_new else ""
    where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files {paths[0].name} .. {paths[-1].name}"
    print(f"simulate: {cfg.events} events ({cfg.name}, seed {cfg.seed}) -> {where}, {size:.1f} MiB in {dt:.1f} s{rate}")
    return 0


def _complete_shards(cfg: Any, plans: list[Any]) -> set[int]:
    """Shards already on disk, written with the same config and event range."""
    if len(plans) <= 1:
        return set()
    from pfgraph.config import to_dict
    from pfgraph.errors import PfgraphError
    from pfgraph.io.root import EventFiles

    want = to_dict(cfg)
    done = set()
    for k, plan in enumerate(plans):
        if not plan.path.exists():
            continue
        try:
            files = EventFiles(plan.path)
        except PfgraphError:
            continue
        meta = files.meta
        if (meta.get("config") == want and meta.get("first_event") == plan.start
                and files.num_events == plan.stop - plan.start):
            done.add(k)
    return done
