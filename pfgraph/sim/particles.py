"""Particle sampling: multiplicity, species fractions, spectra, directions; per-event seeds.

Every random number a particle needs is drawn here, up front, so that the response
(:mod:`pfgraph.sim.showers`) is a deterministic function of a :class:`Particles` record. The
readable per-particle oracle in the tests consumes the same record and must give identical
images.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from pfgraph import geometry as schema  # the grid; alias keeps this import-only change out of the body
from pfgraph.sim.detector import (
    CHARGED_HADRON,
    EM_NEUTRAL,
    NEUTRAL_HADRON,
    ParticleConfig,
    PileupConfig,
)

# sample_background builds species codes arithmetically from one uniform.
assert (EM_NEUTRAL, NEUTRAL_HADRON, CHARGED_HADRON) == (0, 1, 2)

#: Stream labels mixed into each event's seed, so streams never overlap.
STREAM_PARTICLES, STREAM_NOISE, STREAM_PYTHIA = 0, 1, 2


def event_rng(seed: int, event_id: int, stream: int = STREAM_PARTICLES) -> np.random.Generator:
    """The generator of one event: depends only on (master seed, event id, stream)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, event_id, stream])))


@dataclass
class Particles:
    """Flat per-particle arrays over a batch of events (``event`` = index within the batch).

    The smearing normals (``n_trk``, ``n_ecal``, ``n_hcal``) are pre-drawn, one per particle.
    """

    event: np.ndarray  # int64
    energy: np.ndarray  # float64, GeV
    eta: np.ndarray  # float64
    phi: np.ndarray  # float64
    species: np.ndarray  # int8, see detector.SPECIES_NAMES
    charge: np.ndarray  # int8, -1/0/+1
    in_truth: np.ndarray  # bool: False for pile-up
    is_jet: np.ndarray  # bool: injected Pythia constituent
    n_trk: np.ndarray  # float64 ~ N(0,1)
    n_ecal: np.ndarray  # float64 ~ N(0,1)
    n_hcal: np.ndarray  # float64 ~ N(0,1)

    def __len__(self) -> int:
        return len(self.energy)

    @staticmethod
    def concatenate(parts: list[Particles]) -> Particles:
        """Join records (their ``event`` indices are kept as they are)."""
        return Particles(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Particles)})

    def select(self, mask: np.ndarray) -> Particles:
        """The particles where ``mask`` holds."""
        return Particles(**{f.name: getattr(self, f.name)[mask] for f in fields(Particles)})


def sample_background(rng: np.random.Generator, n: int, cfg: ParticleConfig, event: int = 0,
                      energy_scale: float = 1.0, in_truth: bool = True) -> Particles:
    """Draw ``n`` particles of the paper's model (DESIGN §2, steps 1-3) for one event.

    Energy ``|g1 + g2|`` with g1 ~ N(0, g1_sigma), g2 ~ N(0, g2_sigma), drawn as one normal of
    width ``hypot(g1_sigma, g2_sigma)`` (the same distribution: a sum of independent normals is
    normal); species from one uniform ``u`` (EM neutral below ``neutral_pi_frac``, neutral
    hadron below ``neutral_had_frac``, else charged hadron), and the charge from where ``u``
    falls in the charged range (lower half -1, upper half +1: 50/50, independent of the
    species draw); eta, phi uniform over the grid, shrunk by ``charged_acceptance`` for charged
    particles. Per particle: 3 uniforms, 4 normals (energy and the three smearing normals).
    """
    u = rng.random((3, n))
    g = rng.standard_normal((4, n))
    energy = np.abs(g[0]) * (float(np.hypot(cfg.g1_sigma, cfg.g2_sigma)) * energy_scale)
    species = (u[0] >= cfg.neutral_pi_frac).astype(np.int8)
    species += u[0] >= cfg.neutral_had_frac  # EM_NEUTRAL 0, NEUTRAL_HADRON 1, CHARGED_HADRON 2
    charged = species == CHARGED_HADRON
    positive = u[0] >= cfg.neutral_had_frac + 0.5 * (1.0 - cfg.neutral_had_frac)
    charge = (2 * positive.view(np.int8) - 1) * charged.view(np.int8)
    eta = (2.0 * u[1] - 1.0) * schema.MAX_ETA
    phi = (2.0 * u[2] - 1.0) * np.pi
    if cfg.charged_acceptance != 1.0:
        eta[charged] *= cfg.charged_acceptance
        phi[charged] *= cfg.charged_acceptance
    return Particles(
        event=np.full(n, event, dtype=np.int64), energy=energy, eta=eta, phi=phi, species=species,
        charge=charge, in_truth=np.full(n, in_truth), is_jet=np.zeros(n, dtype=bool),
        n_trk=g[1], n_ecal=g[2], n_hcal=g[3],
    )


def sample_event(seed: int, event_id: int, batch_index: int, cfg: ParticleConfig,
                 pileup: PileupConfig) -> tuple[Particles, np.random.Generator]:
    """Background (and pile-up) particles of one event; returns the event's generator too."""
    rng = event_rng(seed, event_id)
    parts = [sample_background(rng, cfg.multiplicity, cfg, batch_index)]
    if pileup.mu > 0:
        n_pu = int(rng.poisson(pileup.mu))
        parts.append(sample_background(rng, n_pu, cfg, batch_index, pileup.energy_scale, in_truth=False))
    return (parts[0] if len(parts) == 1 else Particles.concatenate(parts)), rng
