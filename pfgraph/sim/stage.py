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
             format: str | None = None, overrides: Sequence[str] = (), force: bool = False) -> list[Path]:
    """Simulate events with the sim preset or YAML file ``config`` into ``out``; returns the files written.

    ``events``, ``seed``, ``compression`` (``lz4:1``, ``zstd:1``, ...) and ``format`` (``ttree`` |
    ``rntuple``) override the config; ``overrides`` are dotted ``key=value`` settings
    (``detector.b_field=0.5``). ``shards`` > 1 writes ``stem.shardK.root`` files; ``workers``
    simulation processes feed the writer (default 1; 0 = in-process; at most the machine's cores).
    An existing output is replaced only if pfgraph wrote it, or with ``force``; the config file
    read is never an output. Prints one summary line.
    """
    from pfgraph.config import load_config, resolve_config_path
    from pfgraph.errors import PfgraphError
    from pfgraph.sim.detector import SimConfig
    from pfgraph.sim.generate import generate, shard_paths
    from pfgraph.utils import args as check
    from pfgraph.utils.atomic import clean_stale_temporaries, ensure_writable_dir
    from pfgraph.utils.ownership import check_not_input, check_replaceable
    from pfgraph.utils.progress import progress

    check.check_path("simulate", "config", config)
    check.check_path("simulate", "out", out)
    for name, value in (("events", events), ("seed", seed), ("workers", workers)):
        check.check_type("simulate", name, value, (int,), "an integer", optional=True)
    check.check_type("simulate", "shards", shards, (int,), "an integer")
    check.check_type("simulate", "compression", compression, (str,), "a codec such as 'lz4:1'", optional=True)
    check.check_type("simulate", "format", format, (str,), "'ttree' or 'rntuple'", optional=True)
    overrides = check.check_overrides("simulate", overrides)
    if events is not None:
        overrides.append(f"events={events}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    if compression is not None:
        overrides.append(f"output.compression={compression}")
    if format is not None:
        overrides.append(f"output.format={format}")
    config_path = resolve_config_path(config, "sim")
    cfg = load_config(SimConfig, config_path, overrides)
    workers = 1 if workers is None else workers
    if workers < 0:
        raise PfgraphError(f"--workers {workers}: expected 0 or more worker processes")
    workers = _cap_workers(workers)
    out = Path(out)
    if out.exists() and out.is_dir():
        raise PfgraphError(f"{out}: is a folder; --out expects a ROOT file name")
    ensure_writable_dir(out.parent if str(out.parent) else ".")
    plans = shard_paths(out, shards, cfg.events)
    for plan in plans:  # an input is never an output; a file pfgraph did not write is not replaced
        check_not_input(plan.path, [config_path], "the sim config being read")
        check_replaceable(plan.path, force)
    check_disk(out, cfg.events, cfg.output.compression)
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


#: Bytes per event a simulated file takes at least, by codec (measured: 55 KiB with lz4:1, 44 KiB
#: with zstd:1, 110 KiB uncompressed, for paper-mode events; jet samples take more).
MIN_EVENT_BYTES = {"none": 100 << 10, "lz4": 45 << 10, "zstd": 36 << 10, "zlib": 38 << 10, "lzma": 30 << 10}


def check_disk(out: Path, events: int, compression: str) -> None:
    """Refuse, before any work, a simulation whose files cannot fit the free space of ``out``'s disk."""
    import os

    from pfgraph.errors import PfgraphError

    codec = str(compression).split(":")[0].lower()
    per_event = MIN_EVENT_BYTES.get(codec, min(MIN_EVENT_BYTES.values()))
    need = events * per_event
    try:
        st = os.statvfs(out.parent if str(out.parent) else ".")
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise PfgraphError(f"{out}: no space left on device for {events:,} events: they need about {_bytes(need)} "
                           f"(at least {per_event >> 10} KiB per event with {codec}), its disk has {_bytes(free)} free; "
                           "simulate fewer events or write elsewhere")


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _cap_workers(workers: int) -> int:
    """At most one simulation process per core (a note when ``workers`` asks for more)."""
    import os
    import sys

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if workers > cores:
        print(f"pfgraph: note: --workers {workers} capped at {cores} (the cores this process may use)",
              file=sys.stderr)
        return cores
    return workers
