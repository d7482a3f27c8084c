"""Batched, seeded, sharded generation of datasets -> ROOT (:class:`pfgraph.io.root.EventWriter`).

Event ``i`` of a dataset depends only on (master seed, i): its particles come from
``event_rng(seed, i)``, and jet events take the i-th Pythia jet of the dataset. So any
sharding or batching gives the same events. Simulation runs in worker processes and overlaps
with writing in the main process; on Linux the workers simulate straight into shared-memory
batch slots, so no image crosses a pipe, and also compress a few of the chunk's baskets there
(:data:`WORKER_COMPRESSED`) to share the writer's compression work. With several shards and
workers, each worker simulates and writes whole shards.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pfgraph.config import to_dict
from pfgraph.errors import PfgraphError
from pfgraph.io import schema
from pfgraph.io.root import ROOT_BLOCK, EventWriter, make_meta, parse_compression
from pfgraph.sim import showers
from pfgraph.sim.detector import SimConfig
from pfgraph.sim.particles import STREAM_NOISE, Particles, event_rng, sample_batch
from pfgraph.utils.atomic import clean_stale_temporaries
from pfgraph.utils.memory import reuse_cpu_memory

IMAGE_OUT = ("emcal", "hcal", "trk_neg", "trk_pos", "truth", "truth_neutral")


#: Whether the single-writer path compresses and writes each chunk in a background thread while
#: the next one is simulated (:class:`~pfgraph.io.root.EventWriter` ``background``). Off: on the
#: shared 2-core reference machine, with other jobs holding the cores, it gave 0.94x the rate of
#: writing in the calling thread (scripts/bench_simulate.py measures both, same run); its gain on
#: an idle machine is unmeasured.
BACKGROUND_WRITE = False

#: Threads that compress the single writer's large baskets ahead of uproot
#: (:class:`~pfgraph.io.root.EventWriter` ``threads``; 0 = compress inline); None = as many as
#: there are cores beyond the writer and the simulation workers, at most 2 (:func:`compress_threads`).
#: On the shared 2-core reference machine, where the simulation worker and other jobs hold the
#: cores, 2 threads gave 0.78-0.95x the rate of compressing inline (scripts/bench_simulate.py
#: measures both, same run), so that machine compresses inline.
COMPRESS_THREADS: int | None = None


def compress_threads(workers: int) -> int:
    """The writer's compression threads next to ``workers`` simulation processes
    (:data:`COMPRESS_THREADS`, or the idle cores: 0 on 2 cores with one worker, 2 on 4 cores)."""
    if COMPRESS_THREADS is not None:
        return COMPRESS_THREADS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(2, cores - 1 - workers))


#: Image channels whose baskets the simulation worker compresses itself (shared-memory path,
#: compressed TTree), into its slot next to the images: moves part of the writer's LZ4 work (two
#: thirds of the writer's time) to the worker, which has time to spare since simulation got
#: faster; the writer checks uproot's bytes against the images before using a result
#: (:meth:`pfgraph.io.root.EventWriter.write` ``compressed``), so the file is the same. Two
#: channels balance the two processes on the shared 2-core reference machine (with three, the
#: worker took ~15 % more CPU per event than the writer and became the slower one).
WORKER_COMPRESSED: tuple[str, ...] = ("truth", "emcal")

#: Events per vectorised response call: keeps the per-particle arrays cache-sized (with the heap
#: reused, 8/16/32/64 events were within noise of each other on the 2-core reference machine;
#: 32 was fastest in two of three runs).
SUB_BATCH = 32


def batch_layout(n: int, with_jet: bool, size: int, with_oracle: bool = False) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every array :func:`simulate_batch` fills for ``n`` events on the
    ``size`` x ``size`` grid: the image and scalar branches of the events tree, with the data
    contract's dtypes."""
    layout: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
    for b in schema.EVENT_BRANCHES:
        if b.name == schema.ORACLE_IMAGE:
            if with_oracle:
                layout[b.name] = (b.np_dtype, (n, size, size))
        elif b.kind == "image" and (with_jet or not b.optional):
            layout[b.name] = (b.np_dtype, (n, size, size))
        elif b.kind == "scalar" and (with_jet or not b.optional):
            layout[b.name] = (b.np_dtype, (n,))
    return layout


def layout_views(buffer: Any, layout: Mapping[str, tuple[np.dtype, tuple[int, ...]]],
                 n: int | None = None) -> dict[str, np.ndarray]:
    """Numpy views of ``layout``'s arrays packed one after the other in ``buffer`` (8-byte
    aligned); with ``n``, only the first ``n`` events of each."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for name, (dtype, shape) in layout.items():
        size = int(np.prod(shape)) * dtype.itemsize
        arr = np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        out[name] = arr if n is None else arr[:n]
        offset += -(-size // 8) * 8
    return out


def layout_bytes(layout: Mapping[str, tuple[np.dtype, tuple[int, ...]]]) -> int:
    """Bytes :func:`layout_views` needs for ``layout``."""
    return sum(-(-int(np.prod(shape)) * dt.itemsize // 8) * 8 for dt, shape in layout.values())


def simulate_batch(cfg: SimConfig, event_ids: Sequence[int], jets: Sequence[Any] | None = None,
                   out: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Simulate events ``event_ids`` of dataset ``cfg``: float32 images + bookkeeping scalars.

    ``jets`` (jet datasets only) holds the Pythia jet of each event, aligned with ``event_ids``.
    ``out`` (arrays of :func:`batch_layout`, e.g. views of shared memory) is filled in place
    instead of allocating new arrays.
    """
    event_ids = [int(e) for e in event_ids]
    n = len(event_ids)
    with_jet = jets is not None
    with_oracle = cfg.output.oracle
    channels = IMAGE_OUT + (("jet",) if with_jet else ()) + ((schema.ORACLE_IMAGE,) if with_oracle else ())
    if out is None:
        batch = {k: np.empty(shape, dtype)
                 for k, (dtype, shape) in batch_layout(n, with_jet, cfg.detector.grid, with_oracle).items()}
    else:
        batch = dict(out)
    batch["event_id"][:] = event_ids
    det = cfg.detector
    for lo in range(0, n, SUB_BATCH):
        ids = event_ids[lo:lo + SUB_BATCH]
        p, rngs = sample_batch(cfg.seed, ids, cfg.particles, cfg.pileup)
        if with_jet:
            from pfgraph.sim.jets import jet_particles

            p = Particles.concatenate([p, *(jet_particles(jets[lo + b], b, rng) for b, rng in enumerate(rngs))])
        res = showers.respond(p, len(ids), det, oracle=with_oracle)
        for ch in ("emcal", "hcal"):
            res[ch] = showers.spread_showers(res[ch], det.shower_sigma_pixels(ch), det.phi_wrap)
        if det.noise_emcal > 0 or det.noise_hcal > 0:
            for b, eid in enumerate(ids):
                normals = event_rng(cfg.seed, eid, STREAM_NOISE).standard_normal((2, det.grid, det.grid))
                res["emcal"][b] = showers.add_noise(res["emcal"][b], det.noise_emcal, det.noise_threshold_sigma, normals[0])
                res["hcal"][b] = showers.add_noise(res["hcal"][b], det.noise_hcal, det.noise_threshold_sigma, normals[1])
        for ch in ("emcal", "hcal"):
            res[ch] = showers.zero_suppress(res[ch], getattr(det, f"cell_threshold_{ch}"))
        for ch in channels:
            batch[ch][lo:lo + len(ids)] = res[ch]
        for k in ("n_particles", "n_charged", "e_lost"):
            batch[k][lo:lo + len(ids)] = res[k]
    batch["e_total"][:] = batch["truth"].sum(axis=(1, 2), dtype=np.float64)
    if with_jet:
        for k in ("jet_pt", "jet_eta", "jet_phi", "jet_e", "n_jet_particles"):
            batch[k][:] = [getattr(j, k) for j in jets]
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
#: Shared-memory batch slots (anonymous shared mappings made before the pool forks) and their layout.
_WORKER_SLOTS: list[mmap.mmap] = []
_WORKER_LAYOUT: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
#: Per channel the worker compresses: where its compressed basket goes in a slot (after the batch
#: arrays; an 8-byte length, -1 when none, then room for the bytes) and how much room there is.
_WORKER_PACKED: dict[str, tuple[int, int]] = {}
_WORKER_COMPRESSION: Any = None
_LENGTH = struct.Struct("<q")


def quiet_worker() -> None:
    """In a worker process: leave Ctrl-C and SIGTERM to the parent, and die with it.

    Ctrl-C reaches the whole process group: the workers ignore it (no worker traceback) and the
    parent unwinds, removes its temporary files and stops the pool. SIGTERM (the pool's own
    stop signal) gets its default action back, since a forked worker inherits the command's
    handler. On Linux a worker also gets SIGTERM when its parent dies (kill -9), so no orphaned
    worker keeps running or holding memory.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() == 1:  # the parent died before the call above
            os._exit(1)


def _init_worker(cfg: SimConfig, jets: list[Any] | None) -> None:
    global _WORKER_CFG, _WORKER_JETS
    _WORKER_CFG, _WORKER_JETS = cfg, jets


def _init_pool_worker(cfg: SimConfig, jets: list[Any] | None) -> None:
    quiet_worker()
    _init_worker(cfg, jets)


def _work(ids: tuple[int, int]) -> dict[str, np.ndarray]:
    assert _WORKER_CFG is not None
    lo, hi = ids
    jets = _WORKER_JETS[lo:hi] if _WORKER_JETS is not None else None
    return simulate_batch(_WORKER_CFG, range(lo, hi), jets)


def _work_into(ids: tuple[int, int], slot: int) -> int:
    """Simulate events [lo, hi) into shared slot ``slot`` (nothing but the slot number returns)."""
    assert _WORKER_CFG is not None
    lo, hi = ids
    jets = _WORKER_JETS[lo:hi] if _WORKER_JETS is not None else None
    views = layout_views(_WORKER_SLOTS[slot], _WORKER_LAYOUT, hi - lo)
    simulate_batch(_WORKER_CFG, range(lo, hi), jets, out=views)
    buf = _WORKER_SLOTS[slot]
    for ch, (offset, room) in _WORKER_PACKED.items():
        # the codec's output for the channel's basket bytes (big-endian float32), as uproot asks for it
        packed = _WORKER_COMPRESSION.compress(views[ch].astype(views[ch].dtype.newbyteorder(">")))
        fits = len(packed) <= room
        if fits:
            buf[offset:offset + len(packed)] = packed
        _LENGTH.pack_into(buf, offset - _LENGTH.size, len(packed) if fits else -1)
    return slot


def _packed_layout(base: int, cfg: SimConfig) -> dict[str, tuple[int, int]]:
    """:data:`_WORKER_PACKED` for slots whose batch arrays take ``base`` bytes: room for each of
    :data:`WORKER_COMPRESSED`'s baskets (one compression block at most), with a margin for
    incompressible data; none for uncompressed or RNTuple output."""
    global _WORKER_COMPRESSION
    _WORKER_COMPRESSION = parse_compression(cfg.output.compression)
    size = cfg.output.chunk * cfg.detector.grid ** 2 * np.dtype(np.float32).itemsize
    if cfg.output.format != "ttree" or _WORKER_COMPRESSION is None or _WORKER_COMPRESSION.level == 0 \
            or size > ROOT_BLOCK or not cfg.dense_layout:
        return {}
    room = size + size // 16 + 4096
    out, offset = {}, base
    for ch in WORKER_COMPRESSED:
        out[ch] = (offset + _LENGTH.size, room)
        offset += _LENGTH.size + -(-room // 8) * 8
    return out


def _packed_bytes() -> int:
    """Bytes the compressed baskets of :data:`_WORKER_PACKED` need after the batch arrays."""
    return sum(_LENGTH.size + -(-room // 8) * 8 for _, room in _WORKER_PACKED.values())


def _shared_batches(pool: Any, ranges: Sequence[tuple[int, int]]) -> Iterator[tuple[dict[str, np.ndarray], dict[str, bytes]]]:
    """The batches of ``ranges`` in order, simulated by ``pool`` straight into shared memory, each
    with the baskets its worker compressed (channel -> compressed bytes).

    Each slot holds one chunk; a yielded batch is a view of its slot and stays valid until the
    next batch is requested, when the slot goes back to the workers. Handing over a 500-event
    chunk this way costs nothing, where pickling it through a pipe costs ~0.2 ms per event.
    """
    todo = iter(ranges)
    free = list(range(len(_WORKER_SLOTS)))
    pending: deque[tuple[tuple[int, int], Any]] = deque()

    def submit() -> None:
        r = next(todo, None)
        if r is not None:
            pending.append((r, pool.apply_async(_work_into, (r, free.pop()))))

    for _ in range(len(free)):
        submit()
    while pending:
        (lo, hi), result = pending.popleft()
        slot = result.get()
        buf = _WORKER_SLOTS[slot]
        packed = {}
        for ch, (offset, _room) in _WORKER_PACKED.items():
            (length,) = _LENGTH.unpack_from(buf, offset - _LENGTH.size)
            if length >= 0:
                packed[ch] = buf[offset:offset + length]
        yield layout_views(buf, _WORKER_LAYOUT, hi - lo), packed
        free.append(slot)
        submit()


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
    reuse_cpu_memory()  # ~40 MB batches are allocated per chunk: reuse the heap (workers inherit it)
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
    shared = workers > 0 and ctx.get_start_method() == "fork"
    if shared:  # slots first, so the forked workers share them
        _WORKER_LAYOUT.clear()
        _WORKER_LAYOUT.update(batch_layout(chunk, cfg.jets.enabled, cfg.detector.grid, cfg.output.oracle))
        _WORKER_PACKED.clear()
        _WORKER_PACKED.update(_packed_layout(layout_bytes(_WORKER_LAYOUT), cfg))
        _WORKER_SLOTS[:] = [mmap.mmap(-1, layout_bytes(_WORKER_LAYOUT) + _packed_bytes()) for _ in range(workers + 2)]
    pool = ctx.Pool(workers, initializer=_init_pool_worker, initargs=(cfg, jets)) if workers > 0 else None
    try:
        for k, plan in enumerate(plans):
            if k in skip:
                written.append(plan.path)
                continue
            meta = make_meta("events", cfg_dict, seed=cfg.seed, events=plan.stop - plan.start,
                             first_event=plan.start, shard=k, shards=len(plans), with_jet=cfg.jets.enabled)
            ranges = _chunks(plan.start, plan.stop, chunk)
            batches: Iterator[tuple[dict[str, np.ndarray], dict[str, bytes] | None]]
            if shared:
                batches = _shared_batches(pool, ranges)
            elif pool is not None:
                batches = ((b, None) for b in pool.imap(_work, ranges))
            else:
                _init_worker(cfg, jets)
                batches = ((_work(r), None) for r in ranges)
            with EventWriter(plan.path, meta, with_jet=cfg.jets.enabled, compression=cfg.output.compression,
                             format=cfg.output.format, background=BACKGROUND_WRITE, threads=compress_threads(workers),
                             with_oracle=cfg.output.oracle, dense=cfg.dense_layout) as w:
                for batch, packed in batches:
                    w.write(batch, compressed=packed)
                    if progress is not None:
                        progress(len(batch["event_id"]))
            written.append(plan.path)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _WORKER_SLOTS.clear()  # unmapped once the last batch view is gone
        _WORKER_PACKED.clear()
    return written


def _write_shard(cfg: SimConfig, plan: ShardPlan, k: int, n_shards: int, jets: Sequence[Any] | None,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Simulate and write one shard in this process."""
    meta = make_meta("events", to_dict(cfg), seed=cfg.seed, events=plan.stop - plan.start,
                     first_event=plan.start, shard=k, shards=n_shards, with_jet=cfg.jets.enabled)
    with EventWriter(plan.path, meta, with_jet=cfg.jets.enabled, compression=cfg.output.compression,
                     format=cfg.output.format, with_oracle=cfg.output.oracle, dense=cfg.dense_layout) as w:
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
    try:
        with ctx.Pool(min(workers, len(todo)), initializer=quiet_worker) as pool:
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
    except BaseException:
        # the pool is stopped and joined: what its workers were writing is now a dead process's
        for plan in plans:
            clean_stale_temporaries(plan.path)
        raise
    finally:
        _SHARD_STATE.clear()
    return [p.path for p in plans]


def timed_generate(cfg: SimConfig, out: str | os.PathLike[str], **kw: Any) -> tuple[list[Path], float]:
    """:func:`generate` and its wall time in seconds."""
    t0 = time.perf_counter()
    paths = generate(cfg, out, **kw)
    return paths, time.perf_counter() - t0
