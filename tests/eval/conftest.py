"""Fixtures of the evaluation tests: a jet-sample file without Pythia and a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def synthetic_jets(n: int, seed: int) -> list:
    """Pythia-free stand-ins for the injected jets: 20-40 particles near (0, 0), 150-300 GeV."""
    from pfgraph.sim.detector import CHARGED_HADRON, EM_NEUTRAL, NEUTRAL_HADRON
    from pfgraph.sim.jets import JetEvent

    rng = np.random.default_rng(seed)
    jets = []
    for _ in range(n):
        k = int(rng.integers(20, 41))
        energy = rng.dirichlet(np.full(k, 0.4)) * rng.uniform(150.0, 300.0)
        r, a = np.abs(rng.normal(0.0, 0.08, k)), rng.uniform(0.0, 2 * np.pi, k)
        eta, phi = r * np.cos(a), r * np.sin(a)
        species = rng.choice([EM_NEUTRAL, NEUTRAL_HADRON, CHARGED_HADRON], size=k, p=[0.3, 0.2, 0.5]).astype(np.int8)
        charge = np.where(species == CHARGED_HADRON, rng.choice([-1, 1], size=k), 0).astype(np.int8)
        pdg = np.where(species == EM_NEUTRAL, 22,
                       np.where(species == NEUTRAL_HADRON, 130, 211 * charge.astype(np.int32))).astype(np.int32)
        pt = energy / np.cosh(eta)
        jets.append(JetEvent(pdg=pdg, energy=energy, eta=eta, phi=phi, charge=charge, species=species, pt=pt,
                             jet_pt=float(pt.sum()), jet_e=float(energy.sum()), n_jet_particles=k))
    return jets


def make_jet_file(path: Path, events: int, seed: int = 5, *overrides: str) -> Path:
    """A jet-sample events file (``jet`` image and jet scalars) with synthetic jets (``overrides``: sim settings)."""
    from pfgraph.config import load_config, resolve_config_path, to_dict
    from pfgraph.io.root import EventWriter, make_meta
    from pfgraph.sim.detector import SimConfig
    from pfgraph.sim.generate import simulate_batch

    cfg = load_config(SimConfig, resolve_config_path("gauss_b050_jet", "sim"), [f"events={events}", f"seed={seed}", *overrides])
    batch = simulate_batch(cfg, list(range(events)), synthetic_jets(events, seed))
    meta = make_meta("events", to_dict(cfg), seed=cfg.seed, events=events, first_event=0, shard=0, shards=1,
                     with_jet=True)
    with EventWriter(path, meta, with_jet=True, with_oracle=cfg.output.oracle) as w:
        w.write(batch)
    return path


@pytest.fixture(scope="session")
def jet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 jet-sample events (synthetic jets in the paper detector, B = 0.5)."""
    return make_jet_file(tmp_path_factory.mktemp("jetdata") / "jets.root", 24)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> Path:
    """A tiny cnn trained for one epoch through the real command line (checkpoint + normalisation)."""
    import torch

    from pfgraph.cli import main

    run = tmp_path_factory.mktemp("evalrun") / "cnn"
    threads = torch.get_num_threads()
    try:
        rc = main(["train", "--model", "cnn", "--data", str(events_file), "--out", str(run), "--epochs", "1",
                   "model.encoder=[4,8]", "model.decoder=[4]", "train.threads=1", "train.batch_size=16"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return run
