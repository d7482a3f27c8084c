"""The readable per-particle reference implementation of paper-mode physics (DESIGN §2).

One particle at a time, plain Python floats and ``np.histogram2d`` for the binning. Given the
same pre-drawn random numbers (a :class:`pfgraph.sim.particles.Particles` record) it must give
images identical to the vectorised simulator.
"""

from __future__ import annotations

import math

import numpy as np

from pfgraph import geometry
from pfgraph.sim.detector import CHARGED_HADRON, ELECTRON, EM_NEUTRAL, MUON, NEUTRAL_HADRON, DetectorConfig
from pfgraph.sim.particles import Particles

RANGE = [[-geometry.MAX_ETA, geometry.MAX_ETA], [-math.pi, math.pi]]
CHANNELS = ("truth", "truth_neutral", "jet", "trk_neg", "trk_pos", "emcal", "hcal")


def _pixel(eta: float, phi: float) -> tuple[int, int] | None:
    """The (ieta, iphi) bin np.histogram2d puts one entry in, or None if outside."""
    h, _, _ = np.histogram2d([eta], [phi], bins=geometry.IMSIZE, range=RANGE)
    hit = np.argwhere(h > 0)
    return (int(hit[0][0]), int(hit[0][1])) if len(hit) else None


def simulate_particles(p: Particles, n_events: int, det: DetectorConfig) -> dict[str, np.ndarray]:
    """Per-particle loop over ``p``; returns float64 images (n_events, 56, 56) per channel."""
    img = {c: np.zeros((n_events, geometry.IMSIZE, geometry.IMSIZE)) for c in CHANNELS}
    for i in range(len(p)):
        ev = int(p.event[i])
        E = float(p.energy[i])
        eta, phi = float(p.eta[i]), float(p.phi[i])
        q = int(p.charge[i])
        species = int(p.species[i])
        at_production = _pixel(eta, phi)

        # truth: every particle at its production angle
        if at_production is not None:
            a, b = at_production
            if p.in_truth[i]:
                img["truth"][ev, a, b] += E
                if q == 0:
                    img["truth_neutral"][ev, a, b] += E
            if p.is_jet[i]:
                img["jet"][ev, a, b] += E
            # tracker: charged above threshold, smeared, undeflected
            if q != 0 and E > det.trk_threshold:
                smeared = E * (1.0 + det.trk_res * det.res_scale * float(p.n_trk[i]))
                img["trk_neg" if q < 0 else "trk_pos"][ev, a, b] += smeared

        # magnetic field: phi += q B / E
        if q != 0 and E > 0 and det.b_field != 0:
            phi = phi + q * det.b_field / E
        at_calo = _pixel(eta, phi)
        if at_calo is None:
            continue
        a, b = at_calo

        # ECAL
        kept = E
        if species in (EM_NEUTRAL, ELECTRON) and E > det.ecal_threshold:
            smear = 1.0 + det.emc_res * det.res_scale * float(p.n_ecal[i])
            img["emcal"][ev, a, b] += det.em_ecal_fraction * (E - det.nonlin * math.sqrt(E)) * smear
            kept = (1.0 - det.em_ecal_fraction) * E
        elif species in (NEUTRAL_HADRON, CHARGED_HADRON) and E > det.ecal_threshold:
            smear = 1.0 + det.emc_res * det.res_scale * float(p.n_ecal[i])
            img["emcal"][ev, a, b] += det.had_ecal_fraction * E * smear
            kept = (1.0 - det.had_ecal_fraction) * E
        if species == MUON:
            kept = 0.0

        # HCAL from the kept energy
        if kept > det.hcal_threshold:
            smear = 1.0 + det.hcal_res * det.res_scale * float(p.n_hcal[i])
            img["hcal"][ev, a, b] += det.hcal_fraction * (kept - det.nonlin * math.sqrt(kept)) * smear
    return img


def _invert(deposit: float, fraction: float, nonlin: float) -> float:
    """x with fraction * (x - nonlin * sqrt(x)) = deposit (the larger root)."""
    root = 0.5 * (nonlin + math.sqrt(max(nonlin * nonlin + 4.0 * deposit / fraction, 0.0)))
    return root * root


def oracle_particles(p: Particles, n_events: int, det: DetectorConfig) -> np.ndarray:
    """The ``oracle`` image, one particle at a time: each truth particle's own measurements (its smeared
    track, its ECAL and HCAL deposits where they land on the grid), each inverted on its own and
    combined with inverse-variance weights 1 / (res * res_scale)^2, summed at its production pixel."""
    img = np.zeros((n_events, geometry.IMSIZE, geometry.IMSIZE))
    weight = {name: 1.0 / max((res * det.res_scale) ** 2, 1e-12)
              for name, res in (("trk", det.trk_res), ("ecal", det.emc_res), ("hcal", det.hcal_res))}
    for i in range(len(p)):
        E, q, species = float(p.energy[i]), int(p.charge[i]), int(p.species[i])
        eta, phi = float(p.eta[i]), float(p.phi[i])
        at_production = _pixel(eta, phi)
        if at_production is None or not p.in_truth[i]:
            continue
        estimates: list[tuple[float, float]] = []  # (weight, energy estimate)
        if q != 0 and E > det.trk_threshold:
            estimates.append((weight["trk"], E * (1.0 + det.trk_res * det.res_scale * float(p.n_trk[i]))))
        if q != 0 and E > 0 and det.b_field != 0:
            phi = phi + q * det.b_field / E
        if _pixel(eta, phi) is not None:  # calorimeter deposits that land on the grid
            em = species in (EM_NEUTRAL, ELECTRON)
            hadron = species in (NEUTRAL_HADRON, CHARGED_HADRON)
            share = det.em_ecal_fraction if em else det.had_ecal_fraction if hadron else 0.0
            kept = E
            if (em or hadron) and E > det.ecal_threshold:
                smear = 1.0 + det.emc_res * det.res_scale * float(p.n_ecal[i])
                if em:
                    deposit = det.em_ecal_fraction * (E - det.nonlin * math.sqrt(E)) * smear
                    estimate = _invert(deposit, det.em_ecal_fraction, det.nonlin)
                else:
                    deposit = det.had_ecal_fraction * E * smear
                    estimate = deposit / det.had_ecal_fraction if share > 0 else 0.0
                if deposit > 0 and share > 0:
                    estimates.append((weight["ecal"], estimate))
                kept = (1.0 - share) * E
            if species != MUON and kept > det.hcal_threshold:
                smear = 1.0 + det.hcal_res * det.res_scale * float(p.n_hcal[i])
                deposit = det.hcal_fraction * (kept - det.nonlin * math.sqrt(kept)) * smear
                if deposit > 0 and kept > 0:
                    estimates.append((weight["hcal"], _invert(deposit, det.hcal_fraction, det.nonlin) * E / kept))
        if estimates:
            a, b = at_production
            img[int(p.event[i]), a, b] += sum(w * e for w, e in estimates) / sum(w for w, _ in estimates)
    return img
