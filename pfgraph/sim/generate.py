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


def simulate_batch(cfg: SimConfig, event_ids: Sequence[int], jets: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
    """Simulate events ``event_ids`` of dataset ``cfg``: float32 images + bookkeeping scalars.

    ``jets`` (jet datasets only) holds the Pythia jet of each event, aligned with ``event_ids``.
    """
    parts: list[Particles] = []
    for b, eid in enumerate(event_ids):
        p, rng = sample_event(cfg.seed, int(eid), b, cfg.particles, cfg.pileup)
        parts.append(p)
        if jets is not None:
            from pfgraph.sim.jets import jet_particles

            parts.append(jet_particles(jets[b], b, rng))
    n = len(event_ids)
    allp = Particles.concatenate(parts) if parts else Particles.concatenate([])
    out = showers.respond(allp, n, cfg.detector)
    det = cfg.detector
    for ch, sigma in (("emcal", det.shower_sigma_emcal), ("hcal", det.shower_sigma_hcal)):
        out[ch] = showers.spread_showers(out[ch], sigma, det.phi_wrap)
    if det.noise_emcal > 0 or det.noise_hcal > 0:
        for b, eid in enumerate(event_ids):
            rng = event_rng(cfg.seed, int(eid), STREAM_NOISE)
            normals = rng.standard_normal((2, IMSIZE, IMSIZE))
            out["emcal"][b] = showers.add_noise(out["emcal"][b], det.noise_emcal, det.noise_threshold_sigma, normals[0])
            out["hcal"][b] = showers.add_noise(out["hcal"][b], det.noise_hcal, det.noise_threshold_sigma, normals[1])
    batch: dict[str, np.ndarray] = {"event_id": np.asarray(event_ids, dtype=np.int64)}
    for ch in IMAGE_OUT:
        batch[ch] = out[ch].astype(np.float32)
    batch["e_total"] = batch["truth"].sum(axis=(1, 2), dtype=np.float64).astype(np.float32)
    for k in ("n_particles", "n_charged", "e_lost"):
        batch[k] = out[k]
    if jets is not None:
        batch["jet"] = out["jet"].astype(np.float32)
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
    cfg_dict = to_dict(cfg)
    chunk = cfg.output.chunk
    written: list[Path] = []
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
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


def timed_generate(cfg: SimConfig, out: str | os.PathLike[str], **kw: Any) -> tuple[list[Path], float]:
    """:func:`generate` and its wall time in seconds."""
    t0 = time.perf_counter()
    paths = generate(cfg, out, **kw)
    return paths, time.perf_counter() - t0
