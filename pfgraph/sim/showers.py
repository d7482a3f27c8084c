"""Detector response: tracker, B-field kick, ECAL/HCAL deposition, shower spreading, noise.

Vectorised over all particles of a batch of events: every image is one ``np.bincount`` over
flat (event, eta-bin, phi-bin) indices. Deposits are accumulated in float64 in particle order,
exactly as the per-particle oracle in the tests does.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pfgraph.io import schema
from pfgraph.sim.detector import CHARGED_HADRON, ELECTRON, EM_NEUTRAL, MUON, NEUTRAL_HADRON, DetectorConfig
from pfgraph.sim.particles import Particles

NPIX = schema.IMSIZE * schema.IMSIZE


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value exactly as ``np.histogram2d`` assigns it; -1 outside the range.

    Bins are half-open [lo, hi) except the last, which includes its upper edge. A fast
    arithmetic guess is corrected against the edges themselves, so values on or next to an
    edge land where ``searchsorted`` on ``edges`` puts them.
    """
    n = len(edges) - 1
    lo, hi = edges[0], edges[-1]
    idx = np.floor((values - lo) * (n / (hi - lo))).astype(np.int64)
    np.clip(idx, 0, n - 1, out=idx)
    idx -= values < edges[idx]
    idx += (values >= edges[np.minimum(idx + 1, n)]) & (idx < n - 1)
    idx[(values < lo) | (values > hi) | np.isnan(values)] = -1
    return idx


def flat_pixel(eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Flat pixel index ``ieta * 56 + iphi``, or -1 if (eta, phi) falls outside the grid."""
    ie = bin_index(eta, schema.ETA_EDGES)
    ip = bin_index(phi, schema.PHI_EDGES)
    return np.where((ie >= 0) & (ip >= 0), ie * schema.IMSIZE + ip, -1)


def histogram(event: np.ndarray, pixel: np.ndarray, weight: np.ndarray, n_events: int) -> np.ndarray:
    """Energy-weighted images (n_events, 56, 56) in float64; entries with pixel -1 dropped."""
    return histograms(event, pixel, [weight], n_events)[0]


def histograms(event: np.ndarray, pixel: np.ndarray, weights: list[np.ndarray], n_events: int) -> list[np.ndarray]:
    """Several energy-weighted images at the same positions with one ``np.bincount``.

    Each image's bins receive their entries in particle order, as a per-particle loop would;
    entries with pixel -1 are dropped. The images are views of one channel-major array.
    """
    k = len(weights)
    valid = pixel >= 0
    span = n_events * NPIX
    base = (event * NPIX + pixel)[valid]
    idx = np.concatenate([base + c * span for c in range(k)])
    w = np.concatenate([wt[valid] for wt in weights])
    flat = np.bincount(idx, weights=w, minlength=k * span)
    return list(flat.reshape(k, n_events, schema.IMSIZE, schema.IMSIZE))


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Map phi into [-pi, pi)."""
    return np.mod(phi + np.pi, 2 * np.pi) - np.pi


def respond(p: Particles, n_events: int, det: DetectorConfig) -> dict[str, np.ndarray]:
    """Images (float64) and per-event bookkeeping for particles ``p`` (DESIGN §2, steps 4-8).

    Returns ``truth``, ``truth_neutral``, ``trk_neg``, ``trk_pos``, ``emcal``, ``hcal``,
    ``jet`` (true energy of injected jet constituents) and scalars ``n_particles``,
    ``n_charged``, ``e_lost``.
    """
    E = p.energy
    charged = p.charge != 0
    ieta = bin_index(p.eta, schema.ETA_EDGES)
    iphi0 = bin_index(p.phi, schema.PHI_EDGES)
    pix0 = np.where((ieta >= 0) & (iphi0 >= 0), ieta * schema.IMSIZE + iphi0, -1)
    zero = np.zeros_like(E)

    # 4. truth at the production angle: every (non pile-up) particle, no threshold.
    w_truth = np.where(p.in_truth, E, zero)
    w_neutral = np.where(charged, zero, w_truth)
    w_jet = np.where(p.is_jet, E, zero)
    # 5. tracker at the undeflected position.
    trk = np.where(charged & (E > det.trk_threshold), E * (1.0 + det.trk_res * det.res_scale * p.n_trk), zero)
    w_neg = np.where(p.charge < 0, trk, zero)
    w_pos = np.where(p.charge > 0, trk, zero)
    truth, truth_neutral, jet, trk_neg, trk_pos = histograms(
        p.event, pix0, [w_truth, w_neutral, w_jet, w_neg, w_pos], n_events)
    out: dict[str, np.ndarray] = {"truth": truth, "truth_neutral": truth_neutral, "jet": jet,
                                  "trk_neg": trk_neg, "trk_pos": trk_pos}

    # 6. B-field kick q * B / E (E, not pT; no kick for E = 0).
    pix1 = pix0
    if det.b_field != 0:
        kick = charged & (E > 0)
        phi = p.phi.copy()
        phi[kick] += p.charge[kick] * det.b_field / E[kick]
        if det.phi_wrap:
            phi = wrap_phi(phi)
        iphi1 = bin_index(phi, schema.PHI_EDGES)
        pix1 = np.where((ieta >= 0) & (iphi1 >= 0), ieta * schema.IMSIZE + iphi1, -1)

    # 7. ECAL at the deflected position.
    species = p.species
    em = (species == EM_NEUTRAL) | (species == ELECTRON)
    had = (species == NEUTRAL_HADRON) | (species == CHARGED_HADRON)
    above = E > det.ecal_threshold
    em_hit = em & above
    had_hit = had & above
    ecal_smear = 1.0 + det.emc_res * det.res_scale * p.n_ecal
    ecal = np.where(em_hit, det.em_ecal_fraction * (E - det.nonlin * np.sqrt(E)) * ecal_smear, zero)
    ecal = np.where(had_hit, det.had_ecal_fraction * E * ecal_smear, ecal)
    kept = np.where(em_hit, (1.0 - det.em_ecal_fraction) * E, E)
    kept = np.where(had_hit, (1.0 - det.had_ecal_fraction) * E, kept)
    kept = np.where(species == MUON, zero, kept)

    # 8. HCAL at the same position from the kept energy.
    hcal = np.where(kept > det.hcal_threshold,
                    det.hcal_fraction * (kept - det.nonlin * np.sqrt(kept))
                    * (1.0 + det.hcal_res * det.res_scale * p.n_hcal), zero)
    out["emcal"], out["hcal"] = histograms(p.event, pix1, [ecal, hcal], n_events)

    # Bookkeeping.
    out["n_particles"] = np.bincount(p.event, minlength=n_events).astype(np.int32)
    out["n_charged"] = np.bincount(p.event, weights=charged, minlength=n_events).astype(np.int32)
    lost = charged & (pix1 < 0) & (pix0 >= 0)
    out["e_lost"] = np.bincount(p.event, weights=np.where(lost, E, zero), minlength=n_events)
    return out


def spread_showers(image: np.ndarray, sigma_pixels: float, phi_wrap: bool) -> np.ndarray:
    """Lateral Gaussian shower spreading of calorimeter images (n, 56, 56), sigma in pixels.

    Energy is conserved except what spreads beyond the eta edges (and beyond the phi edges
    unless ``phi_wrap``).
    """
    if sigma_pixels <= 0:
        return image
    mode = ("constant", "constant", "wrap" if phi_wrap else "constant")
    return ndimage.gaussian_filter(image, sigma=(0, sigma_pixels, sigma_pixels), mode=mode, truncate=4.0)


def add_noise(image: np.ndarray, sigma: float, threshold_sigma: float, normals: np.ndarray) -> np.ndarray:
    """Add Gaussian electronic noise per pixel, then zero-suppress below ``threshold_sigma``.

    ``normals`` has the image's shape (pre-drawn N(0,1)).
    """
    if sigma <= 0:
        return image
    noisy = image + sigma * normals
    noisy[np.abs(noisy) < threshold_sigma * sigma] = 0.0
    return noisy
