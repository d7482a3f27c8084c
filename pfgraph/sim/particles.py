"""Particle sampling: multiplicity, species fractions, spectra, directions; per-event seeds.

Every random number a particle needs is drawn here, up front, so that the response
(:mod:`pfgraph.sim.showers`) is a deterministic function of a :class:`Particles` record. The
readable per-particle oracle in the tests consumes the same record and must give identical
images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from pfgraph import geometry
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


def _background(u: np.ndarray, g: np.ndarray, cfg: ParticleConfig, energy_scale: float) -> dict[str, np.ndarray]:
    """The particle columns of :func:`sample_background` from its draws, flat in C order.

    ``u`` (..., 3, n) uniforms and ``g`` (..., 4, n) normals, as one event's generator draws them
    (``rng.random((3, n))``, ``rng.standard_normal((4, n))``), for one event or stacked for a
    batch: the same arithmetic either way, so a batch gives each event's values bit for bit.
    """
    u0 = u[..., 0, :]
    energy = np.abs(g[..., 0, :]).reshape(-1)
    energy *= float(np.hypot(cfg.g1_sigma, cfg.g2_sigma)) * energy_scale
    if cfg.hard_tail_fraction > 0:  # two more uniforms per particle: in the tail?, and where
        tail = (u[..., 3, :] < cfg.hard_tail_fraction).reshape(-1)
        energy[tail] = power_law(u[..., 4, :].reshape(-1)[tail], cfg.hard_tail_index, cfg.hard_tail_min,
                                 cfg.hard_tail_max) * energy_scale
    species = (u0 >= cfg.neutral_pi_frac).view(np.int8).reshape(-1).copy()
    species += (u0 >= cfg.neutral_had_frac).reshape(-1)  # EM_NEUTRAL 0, NEUTRAL_HADRON 1, CHARGED_HADRON 2
    charged = species == CHARGED_HADRON
    positive = (u0 >= cfg.neutral_had_frac + 0.5 * (1.0 - cfg.neutral_had_frac)).reshape(-1)
    charge = positive.view(np.int8) * np.int8(2)
    charge -= 1
    charge *= charged.view(np.int8)
    eta = (2.0 * u[..., 1, :] - 1.0).reshape(-1)
    eta *= geometry.MAX_ETA
    phi = (2.0 * u[..., 2, :] - 1.0).reshape(-1)
    phi *= np.pi
    if cfg.charged_acceptance != 1.0:
        eta[charged] *= cfg.charged_acceptance
        phi[charged] *= cfg.charged_acceptance
    return dict(energy=energy, eta=eta, phi=phi, species=species, charge=charge,
                n_trk=g[..., 1, :].reshape(-1), n_ecal=g[..., 2, :].reshape(-1), n_hcal=g[..., 3, :].reshape(-1))


def n_uniforms(cfg: ParticleConfig) -> int:
    """Uniforms drawn per particle: species, eta, phi, and with a hard tail two more (tail or not, energy)."""
    return 5 if cfg.hard_tail_fraction > 0 else 3


def power_law(v: np.ndarray, index: float, lo: float, hi: float) -> np.ndarray:
    """Inverse CDF of the density E^-index on [lo, hi] at the uniforms ``v`` (index 1: log-uniform)."""
    if abs(index - 1.0) < 1e-12:
        return lo * np.exp(v * np.log(hi / lo))
    k = 1.0 - index
    return (lo**k + v * (hi**k - lo**k)) ** (1.0 / k)


def sample_background(rng: np.random.Generator, n: int, cfg: ParticleConfig, event: int = 0,
                      energy_scale: float = 1.0, in_truth: bool = True) -> Particles:
    """Draw ``n`` particles of the paper's model (DESIGN §2, steps 1-3) for one event.

    Energy ``|g1 + g2|`` with g1 ~ N(0, g1_sigma), g2 ~ N(0, g2_sigma), drawn as one normal of
    width ``hypot(g1_sigma, g2_sigma)`` (the same distribution: a sum of independent normals is
    normal); species from one uniform ``u`` (EM neutral below ``neutral_pi_frac``, neutral
    hadron below ``neutral_had_frac``, else charged hadron), and the charge from where ``u``
    falls in the charged range (lower half -1, upper half +1: 50/50, independent of the
    species draw); eta, phi uniform over the grid, shrunk by ``charged_acceptance`` for charged
    particles. Per particle: 3 uniforms, 4 normals (energy and the three smearing normals); with
    a hard tail (``hard_tail_fraction`` > 0, not in the paper) 2 more uniforms: a particle below
    the fraction takes its energy from :func:`power_law` instead.
    """
    u = rng.random((n_uniforms(cfg), n))
    g = rng.standard_normal((4, n))
    return Particles(event=np.full(n, event, dtype=np.int64), in_truth=np.full(n, in_truth),
                     is_jet=np.zeros(n, dtype=bool), **_background(u, g, cfg, energy_scale))


def sample_batch(seed: int, event_ids: Sequence[int], cfg: ParticleConfig,
                 pileup: PileupConfig) -> tuple[Particles, list[np.random.Generator]]:
    """The particles of events ``event_ids`` (batch indices 0..n-1) and each event's generator.

    Exactly the values of :func:`sample_event` for each event: every event draws from its own
    generator in the same order, into one stacked buffer, and the arithmetic runs once over the
    batch. The background particles of all events come first (event by event), then each
    event's pile-up; within an event the order is :func:`sample_event`'s, so every pixel sums
    the same deposits in the same order. The generators are returned positioned after the
    event's particles (jet smearing draws from them next).
    """
    n, b_events = cfg.multiplicity, len(event_ids)
    u = np.empty((b_events, n_uniforms(cfg), n))
    g = np.empty((b_events, 4, n))
    rngs = []
    for b, eid in enumerate(event_ids):
        rng = event_rng(seed, int(eid))
        rng.random(out=u[b])
        rng.standard_normal(out=g[b])
        rngs.append(rng)
    total = b_events * n
    p = Particles(event=np.repeat(np.arange(b_events, dtype=np.int64), n), in_truth=np.ones(total, dtype=bool),
                  is_jet=np.zeros(total, dtype=bool), **_background(u, g, cfg, 1.0))
    if pileup.mu > 0:
        extra = [sample_background(rng, int(rng.poisson(pileup.mu)), cfg, b, pileup.energy_scale, in_truth=False)
                 for b, rng in enumerate(rngs)]
        p = Particles.concatenate([p, *extra])
    return p, rngs


def sample_event(seed: int, event_id: int, batch_index: int, cfg: ParticleConfig,
                 pileup: PileupConfig) -> tuple[Particles, np.random.Generator]:
    """Background (and pile-up) particles of one event; returns the event's generator too."""
    rng = event_rng(seed, event_id)
    parts = [sample_background(rng, cfg.multiplicity, cfg, batch_index)]
    if pileup.mu > 0:
        n_pu = int(rng.poisson(pileup.mu))
        parts.append(sample_background(rng, n_pu, cfg, batch_index, pileup.energy_scale, in_truth=False))
    return (parts[0] if len(parts) == 1 else Particles.concatenate(parts)), rng
