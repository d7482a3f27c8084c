"""Batched, seeded, sharded generation of datasets -> ROOT (:class:`pfgraph.io.root.EventWriter`).

Event ``i`` of a dataset depends only on (master seed, i): its particles come from
``event_rng(seed, i)``, and jet events take the i-th Pythia jet of the dataset. So any
sharding or batching gives the same events. Simulation runs in worker processes and overlaps
with writing in the main process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pfgraph.config import to_dict
from pfgraph.errors import PfgraphError
from pfgraph.io.root import EventWriter, make_meta
from pfgraph.io.schema import IMSIZE
from pfgraph.sim import showers
from pfgraph.sim.detector import SimConfig
from pfgraph.sim.particles import STREAM_NOISE, Particles, event_rng, sample_event

IMAGE_OUT = ("emcal", "hcal", "trk_neg", "trk_pos", "truth", "truth_neutral")


#: Events per vectorised response call: keeps the per-particle arrays cache-sized (measured
#: 0.27 ms/event at 16 vs 0.45 ms/event at 512 on the 2-core reference machine).
SUB_BATCH = 16


def simulate_batch(cfg: SimConfig, event_ids: Sequence[int], jets: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
    """Simulate events ``event_ids`` of dataset ``cfg``: float32 images + bookkeeping scalars.

    ``jets`` (jet datasets only) holds the Pythia jet of each event, aligned with ``event_ids``.
    """
    event_ids = [int(e) for e in event_ids]
    n = len(event_ids)
    with_jet = jets is not None
    channels = IMAGE_OUT + (("jet",) if with_jet else ())
    batch: dict[str, np.ndarray] = {"event_id": np.asarray(event_ids, dtype=np.int64)}
    for ch in channels:
        batch[ch] = np.empty((n, IMSIZE, IMSIZE), dtype=np.float32)
    scalars = {"n_particles": np.empty(n, np.int32), "n_charged": np.empty(n, np.int32), "e_lost": np.empty(n)}
    det = cfg.detector
    for lo in range(0, n, SUB_BATCH):
        ids = event_ids[lo:lo + SUB_BATCH]
        parts: list[Particles] = []
        for b, eid in enumerate(ids):
            p, rng = sample_event(cfg.seed, eid, b, cfg.particles, cfg.pileup)
            parts.append(p)
            if with_jet:
                from pfgraph.sim.jets import jet_particles

                parts.append(jet_particles(jets[lo + b], b, rng))
        out = showers.respond(Particles.concatenate(parts), len(ids), det)
        for ch, sigma in (("emcal", det.shower_sigma_emcal), ("hcal", det.shower_sigma_hcal)):
            out[ch] = showers.spread_showers(out[ch], sigma, det.phi_wrap)
        if det.noise_emcal > 0 or det.noise_hcal > 0:
            for b, eid in enumerate(ids):
                normals = event_rng(cfg.seed, eid, STREAM_NOISE).standard_normal((2, IMSIZE, IMSIZE))
                out["emcal"][b] = showers.add_noise(out["emcal"][b], det.noise_emcal, det.noise_threshold_sigma, normals[0])
                out["hcal"][b] = showers.add_noise(out["hcal"][b], det.noise_hcal, det.noise_threshold_sigma, normals[1])
        for ch in channels:
            batch[ch][lo:lo + len(ids)] = out[ch]
        for k, arr in scalars.items():
            arr[lo:lo + len(ids)] = out[k]
    batch["e_total"] = batch["truth"].sum(axis=(1, 2), dtype=np.float64).astype(np.float32)
    batch.update(scalars)
    if with_jet:
        for k in ("jet_pt", "jet_eta", "jet_phi", "jet_e", "n_jet_particles"):
            batch[k] = np.array([getattr(j, k) for j in jets])
    return batch


@dataclass
class ShardPlan:
    """Which events go to which file."""

    path: Path
    start: int
    stop: int


def shard_paths(out: Path, shards: int, events: int) -> list[ShardPlan]:
    """Split ``events`` into ``shards`` contiguous ranges; one file each (``stem.shardK.root``)."""
    if shards <= 0:
        raise PfgraphError(f"--shards {shards}: expected a positive number of shards")
    if shards == 1:
        return [ShardPlan(out, 0, events)]
    bounds = np.linspace(0, events, shards + 1).astype(int)
    width = max(3, len(str(shards - 1)))
    return [ShardPlan(out.with_name(f"{out.stem}.shard{k:0{width}d}{out.suffix or '.root'}"), int(bounds[k]), int(bounds[k + 1]))
            for k in range(shards)]


_WORKER_CFG: SimConfig | None = None
_WORKER_JETS: list[Any] | None = None


def _init_worker(cfg: SimConfig, jets: list[Any] | None) -> None:
    global _WORKER_CFG, _WORKER_JETS
    _WORKER_CFG, _WORKER_JETS = cfg, jets


def _work(ids: tuple[int, int]) -> dict[str, np.ndarray]:
    assert _WORKER_CFG is not None
    lo, hi = ids
    jets = _WORKER_JETS[lo:hi] if _WORKER_JETS is not None else None
    return simulate_batch(_WORKER_CFG, range(lo, hi), jets)


def _chunks(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def generate(cfg: SimConfig, out: str | os.PathLike[str], shards: int = 1, workers: int = 1,
             progress: Callable[[int], None] | None = None, skip: set[int] | frozenset[int] = frozenset()) -> list[Path]:
    """Simulate dataset ``cfg`` into ``out`` (or ``shards`` files); returns all shard paths.

    ``workers`` simulation processes feed the writer in the main process (0 = all in-process).
    Every file is written atomically: an interrupted run leaves no complete-looking file.
    Shards listed in ``skip`` (already complete on disk) are not written again.
    """
    out = Path(out)
    plans = shard_paths(out, shards, cfg.events)
    jets = None
    if cfg.jets.enabled and len(skip) < len(plans):
        from pfgraph.sim.jets import generate_jets

        jets = generate_jets(cfg.events, cfg.seed, cfg.jets)
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    todo = [k for k in range(len(plans)) if k not in skip]
    if workers > 1 and len(todo) > 1:
        return _generate_parallel_shards(ctx, cfg, plans, todo, workers, jets, progress)
    cfg_dict = to_dict(cfg)
    chunk = cfg.output.chunk
    written: list[Path] = []
    pool = ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, jets)) if workers > 0 else None
    try:
        for k, plan in enumerate(plans):
            if k in skip:
                written.append(plan.path)
                continue
            meta = make_meta("events", cfg_dict, seed=cfg.seed, events=plan.stop - plan.start,
                             first_event=plan.start, shard=k, shards=len(plans), with_jet=cfg.jets.enabled)
            ranges = _chunks(plan.start, plan.stop, chunk)
            if pool is not None:
                batches: Iterator[dict[str, np.ndarray]] = pool.imap(_work, ranges)
            else:
                _init_worker(cfg, jets)
                batches = (_work(r) for r in ranges)
            with EventWriter(plan.path, meta, with_jet=cfg.jets.enabled, compression=cfg.output.compression) as w:
                for batch in batches:
                    w.write(batch)
                    if progress is not None:
                        progress(len(batch["event_id"]))
            written.append(plan.path)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return written


def _write_shard(cfg: SimConfig, plan: ShardPlan, k: int, n_shards: int, jets: Sequence[Any] | None,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Simulate and write one shard in this process."""
    meta = make_meta("events", to_dict(cfg), seed=cfg.seed, events=plan.stop - plan.start,
                     first_event=plan.start, shard=k, shards=n_shards, with_jet=cfg.jets.enabled)
    with EventWriter(plan.path, meta, with_jet=cfg.jets.enabled, compression=cfg.output.compression) as w:
        for lo, hi in _chunks(plan.start, plan.stop, cfg.output.chunk):
            w.write(simulate_batch(cfg, range(lo, hi), jets[lo:hi] if jets is not None else None))
            if progress is not None:
                progress(hi - lo)
    return plan.path


_SHARD_STATE: dict[str, Any] = {}


def _shard_worker(k: int) -> str:
    st = _SHARD_STATE
    counter = st["counter"]

    def bump(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    return str(_write_shard(st["cfg"], st["plans"][k], k, len(st["plans"]), st["jets"], bump))


def _generate_parallel_shards(ctx: Any, cfg: SimConfig, plans: list[ShardPlan], todo: list[int], workers: int,
                              jets: Sequence[Any] | None, progress: Callable[[int], None] | None) -> list[Path]:
    """Each worker process simulates and writes whole shards (no data crosses processes)."""
    counter = ctx.Value("q", 0)
    _SHARD_STATE.update(cfg=cfg, plans=plans, jets=jets, counter=counter)
    seen = 0
    with ctx.Pool(min(workers, len(todo))) as pool:
        result = pool.map_async(_shard_worker, todo, chunksize=1)
        while True:
            result.wait(0.25)
            if progress is not None:
                now = counter.value
                if now > seen:
                    progress(now - seen)
                    seen = now
            if result.ready():
                break
        result.get()  # re-raise a worker's error
    _SHARD_STATE.clear()
    return [p.path for p in plans]


def timed_generate(cfg: SimConfig, out: str | os.PathLike[str], **kw: Any) -> tuple[list[Path], float]:
    """:func:`generate` and its wall time in seconds."""
    t0 = time.perf_counter()
    paths = generate(cfg, out, **kw)
    return paths, time.perf_counter() - t0
