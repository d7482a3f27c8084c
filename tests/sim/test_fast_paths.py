"""The simulator's fast paths equal their plain versions bit for bit: batched sampling (one stacked draw buffer
per sub-batch) against per-event sampling, the truncating bin finder against the edge comparisons, and the
default threaded writer against inline compression (issue 16.13)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import pfgraph.sim.generate as generate_module
from pfgraph import geometry
from pfgraph.config import load_config, resolve_config_path
from pfgraph.sim import showers
from pfgraph.sim.detector import SimConfig
from pfgraph.sim.generate import generate
from pfgraph.sim.particles import Particles, sample_batch, sample_event


def cfg_of(*overrides: str) -> SimConfig:
    return load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), list(overrides))


@pytest.mark.parametrize("overrides", [(), ("particles.charged_acceptance=0.9",), ("pileup.mu=30",),
                                       ("particles.multiplicity=3", "seed=11")])
def test_sample_batch_equals_sample_event_per_event(overrides: tuple[str, ...]) -> None:
    cfg = cfg_of(*overrides)
    ids = [3, 17, 4, 250]
    batch, rngs = sample_batch(cfg.seed, ids, cfg.particles, cfg.pileup)
    singles = [sample_event(cfg.seed, eid, b, cfg.particles, cfg.pileup) for b, eid in enumerate(ids)]
    for b, (p, rng) in enumerate(singles):
        mine = batch.select(batch.event == b)
        for f in fields(Particles):
            got, want = getattr(mine, f.name), getattr(p, f.name)
            assert got.dtype == want.dtype, f.name
            np.testing.assert_array_equal(got, want, err_msg=f.name)
        # the event's generator continues where the per-event one does (jets draw from it next)
        assert np.array_equal(rngs[b].standard_normal(5), rng.standard_normal(5))


def test_sample_batch_keeps_each_events_particles_in_per_event_order() -> None:
    """Background of all events first, then each event's pile-up: within an event the order of
    sample_event, so every pixel sums the same deposits in the same order."""
    cfg = cfg_of("pileup.mu=30")
    ids = [0, 1, 2]
    batch, _ = sample_batch(cfg.seed, ids, cfg.particles, cfg.pileup)
    merged = Particles.concatenate([sample_event(cfg.seed, e, b, cfg.particles, cfg.pileup)[0] for b, e in enumerate(ids)])
    fast = showers.respond(batch, 3, cfg.detector)
    slow = showers.respond(merged, 3, cfg.detector)
    for ch in ("truth", "emcal", "hcal", "trk_pos", "trk_neg", "e_lost", "n_particles", "n_charged"):
        assert np.array_equal(fast[ch], slow[ch]), ch


def test_bin_index_equals_the_edge_comparisons() -> None:
    rng = np.random.default_rng(7)
    for edges in (geometry.ETA_EDGES, geometry.PHI_EDGES):
        near = np.concatenate([edges, np.nextafter(edges, 10), np.nextafter(edges, -10), edges + 1e-12,
                               edges - 1e-12, edges + 2e-9 * (edges[1] - edges[0])])
        values = np.concatenate([near, rng.uniform(-4, 4, 200_000), rng.uniform(edges[0], edges[-1], 200_000),
                                 [np.inf, -np.inf, np.nan, 1e300, -1e300, 0.0, -0.0]])
        np.testing.assert_array_equal(showers.bin_index(values, edges), showers._bin_index_exact(values, edges))


def test_writer_threads_give_the_inline_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """120 events in 60-event chunks: large enough baskets for the compression threads."""
    cfg = cfg_of("events=120", "output.chunk=60")
    monkeypatch.setattr(generate_module, "COMPRESS_THREADS", 2)
    threaded = generate(cfg, tmp_path / "a" / "d.root", workers=1)[0]
    monkeypatch.setattr(generate_module, "COMPRESS_THREADS", 0)
    inline = generate(cfg, tmp_path / "b" / "d.root", workers=0)[0]
    assert threaded.read_bytes() == inline.read_bytes()


def test_compress_threads_use_the_cores_beyond_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate_module, "COMPRESS_THREADS", None)
    for cores, workers, threads in [(2, 1, 0), (3, 1, 1), (4, 1, 2), (16, 1, 2), (4, 2, 1), (1, 0, 0)]:
        monkeypatch.setattr(generate_module.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert generate_module.compress_threads(workers) == threads, (cores, workers)
    monkeypatch.setattr(generate_module, "COMPRESS_THREADS", 3)
    assert generate_module.compress_threads(1) == 3


def test_worker_compressed_baskets_give_the_inline_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulation worker compresses WORKER_COMPRESSED's baskets; the writer serves them to uproot."""
    import pfgraph.io.writing as root

    served: list[int] = []
    close = root._CompressAhead.close

    def counting_close(self: root._CompressAhead) -> None:
        served.append(self.matched)
        close(self)

    monkeypatch.setattr(root._CompressAhead, "close", counting_close)
    monkeypatch.setattr(generate_module, "COMPRESS_THREADS", 0)
    cfg = cfg_of("events=150", "output.chunk=60")  # 3 chunks, the last one short
    shared = generate(cfg, tmp_path / "a" / "d.root", workers=1)[0]
    inline = generate(cfg, tmp_path / "b" / "d.root", workers=0)[0]
    assert shared.read_bytes() == inline.read_bytes()
    assert served == [3 * len(generate_module.WORKER_COMPRESSED), 0]
    assert generate_module.WORKER_COMPRESSED and not generate_module._WORKER_PACKED  # cleared after the run


@pytest.mark.parametrize("override", ["output.compression=none", "output.format=rntuple", "output.chunk=2000"])
def test_no_worker_compression_without_a_compressed_ttree_block(override: str) -> None:
    assert generate_module._packed_layout(0, cfg_of(override)) == {}
    assert set(generate_module._packed_layout(0, cfg_of())) == set(generate_module.WORKER_COMPRESSED)
