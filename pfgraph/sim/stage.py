"""The simulation stage as a Python function: :func:`simulate` (``pfgraph simulate`` maps its flags onto it).

    from pfgraph import simulate
    paths = simulate("gauss_b050", "data/b050.root", events=10000, seed=1)

Outputs are written atomically; an interrupted run's temporaries are removed by the next run of
the same output, and complete shards of an interrupted sharded run are kept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def simulate(config: str | Path = "gauss_b050", out: str | Path = "data/b050.root", *, events: int | None = None,
             seed: int | None = None, shards: int = 1, workers: int | None = None, compression: str | None = None,
             format: str | None = None, overrides: Sequence[str] = ()) -> list[Path]:
    """Simulate events with the sim preset or YAML file ``config`` into ``out``; returns the files written.

    ``events``, ``seed``, ``compression`` (``lz4:1``, ``zstd:1``, ...) and ``format`` (``ttree`` |
    ``rntuple``) override the config; ``overrides`` are dotted ``key=value`` settings
    (``detector.b_field=0.5``). ``shards`` > 1 writes ``stem.shardK.root`` files; ``workers``
    simulation processes feed the writer (default 1; 0 = in-process). Prints one summary line.
    """
    from pfgraph.config import load_config, resolve_config_path
    from pfgraph.errors import PfgraphError
    from pfgraph.sim.detector import SimConfig
    from pfgraph.sim.generate import generate, shard_paths
    from pfgraph.utils.atomic import clean_stale_temporaries, ensure_writable_dir
    from pfgraph.utils.progress import progress

    overrides = list(overrides)
    if events is not None:
        overrides.append(f"events={events}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    if compression is not None:
        overrides.append(f"output.compression={compression}")
    if format is not None:
        overrides.append(f"output.format={format}")
    cfg = load_config(SimConfig, resolve_config_path(config, "sim"), overrides)
    workers = 1 if workers is None else workers
    if workers < 0:
        raise PfgraphError(f"--workers {workers}: expected 0 or more worker processes")
    out = Path(out)
    if out.exists() and out.is_dir():
        raise PfgraphError(f"{out}: is a folder; --out expects a ROOT file name")
    ensure_writable_dir(out.parent if str(out.parent) else ".")
    plans = shard_paths(out, shards, cfg.events)
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
        paths = generate(cfg, out, shards=shards, workers=workers, progress=bar.update, skip=done)
    dt = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in paths) / 2**20
    n_new = sum(plans[k].stop - plans[k].start for k in todo)
    rate = f", {n_new / dt:.0f} events/s" if dt > 0 and n_new else ""
    where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files {paths[0].name} .. {paths[-1].name}"
    print(f"simulate: {cfg.events} events ({cfg.name}, seed {cfg.seed}) -> {where}, {size:.1f} MiB in {dt:.1f} s{rate}")
    return list(paths)


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
