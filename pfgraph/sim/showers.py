"""Detector response: tracker, B-field kick, ECAL/HCAL deposition, shower spreading, noise.

Vectorised over all particles of a batch of events: every image is one ``np.bincount`` over
the flat (event, eta-bin, phi-bin) cells of the particles that deposit in it. Deposits are
accumulated in float64 in particle order, exactly as the per-particle oracle in the tests does.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pfgraph import geometry
from pfgraph.sim.detector import (
    CHARGED_HADRON,
    ELECTRON,
    EM_NEUTRAL,
    MUON,
    NEUTRAL_HADRON,
    SPECIES_NAMES,
    DetectorConfig,
)
from pfgraph.sim.particles import Particles

#: How far (in bins) a value's computed position must be from a bin edge for its truncation to
#: be trusted: the position and the edges each carry rounding errors of ~1e-14 bins.
_EDGE_MARGIN = 1e-9


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value exactly as ``np.histogram2d`` assigns it; -1 outside the range.

    Bins are half-open [lo, hi) except the last, which includes its upper edge. The bin is the
    truncated arithmetic position ``(value - lo) * n / (hi - lo)`` wherever that position is
    more than ``_EDGE_MARGIN`` away from a whole number (rounding cannot move it across an
    edge). The rest (values within ~1e-9 bins of an edge, outside the range, NaN: none at all
    for most batches) are placed against the edges themselves (:func:`_bin_index_exact`).
    """
    n = len(edges) - 1
    lo, hi = edges[0], edges[-1]
    pos = values - lo
    pos *= n / (hi - lo)
    with np.errstate(invalid="ignore"):  # NaN and huge values give garbage here: redone below
        idx = pos.astype(np.int64)
    frac = pos - idx
    sure = frac > _EDGE_MARGIN
    sure &= frac < 1.0 - _EDGE_MARGIN
    sure &= idx < n  # and idx >= 0, since a negative position has a negative fraction
    if not sure.all():
        unsure = np.flatnonzero(~sure)
        idx[unsure] = _bin_index_exact(values[unsure], edges)
    return idx


def _bin_index_exact(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """:func:`bin_index` by comparison with the edges: an arithmetic guess (truncation; values
    below the range clip to bin 0 anyway) corrected so that values on or next to an edge land
    where ``searchsorted`` on ``edges`` puts them."""
    n = len(edges) - 1
    lo, hi = edges[0], edges[-1]
    guess = (values - lo) * (n / (hi - lo))
    with np.errstate(invalid="ignore"):
        idx = guess.astype(np.int64)  # NaN and huge values give garbage here: masked below
    np.clip(idx, 0, n - 1, out=idx)
    idx -= values < edges[idx]
    idx += (values >= edges[idx + 1]) & (idx < n - 1)
    idx[~((values >= lo) & (values <= hi))] = -1  # also catches NaN
    return idx


def flat_pixel(eta: np.ndarray, phi: np.ndarray, grid: geometry.Grid = geometry.PAPER_GRID) -> np.ndarray:
    """Flat pixel index ``ieta * grid.size + iphi``, or -1 if (eta, phi) falls outside the grid."""
    ie = bin_index(eta, grid.eta_edges)
    ip = bin_index(phi, grid.phi_edges)
    return np.where((ie >= 0) & (ip >= 0), ie * grid.size + ip, -1)


def _deposit(cells: np.ndarray, weights: np.ndarray, span: int) -> np.ndarray:
    """Sum ``weights`` into ``span`` flat (event, eta-bin, phi-bin) cells, in particle order.

    ``cells`` may hold ``span`` (the overflow cell, dropped) for particles off the grid. A
    particle that does not deposit carries weight +0.0: adding +0.0 leaves every float64 sum
    exactly as it was, so each bin gets exactly the oracle's sum of the particles it adds.
    """
    return np.bincount(cells, weights=weights, minlength=span + 1)[:span]


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Map phi into [-pi, pi)."""
    return np.mod(phi + np.pi, 2 * np.pi) - np.pi


def respond(p: Particles, n_events: int, det: DetectorConfig, oracle: bool = False) -> dict[str, np.ndarray]:
    """Images (float64) and per-event bookkeeping for particles ``p`` (DESIGN §2, steps 4-8).

    Returns ``truth``, ``truth_neutral``, ``trk_neg``, ``trk_pos``, ``emcal``, ``hcal``,
    ``jet`` (true energy of injected jet constituents) and scalars ``n_particles``,
    ``n_charged``, ``e_lost``; with ``oracle``, also the ``oracle`` image (:func:`oracle_energy`
    of every truth particle at its production pixel). Each image is one ``np.bincount`` over all particles (flat
    (event, eta-bin, phi-bin) cells, an overflow cell for those off the grid), weighted by
    the particle's deposit or +0.0 where it deposits nothing: whole-array arithmetic, no
    per-image selection, and the same float64 sums as the per-particle oracle.
    """
    g = det.pixel_grid
    shape = (n_events, g.size, g.size)
    span = n_events * g.npix
    E = p.energy
    charge = p.charge
    charged = charge != 0
    ieta = bin_index(p.eta, g.eta_edges)
    iphi0 = bin_index(p.phi, g.phi_edges)
    in_eta = ieta >= 0
    base = p.event * g.npix
    base += ieta * g.size  # the cell is base + iphi where both bins exist
    at0 = in_eta & (iphi0 >= 0)
    cell0 = _cells(base, iphi0, at0, span)

    # 4. truth at the production angle: every (non pile-up) particle, no threshold.
    w_truth = E if p.in_truth.all() else np.where(p.in_truth, E, 0.0)
    out: dict[str, np.ndarray] = {
        "truth": _deposit(cell0, w_truth, span).reshape(shape),
        "truth_neutral": _deposit(cell0, np.where(charged, 0.0, w_truth), span).reshape(shape),
    }
    out["jet"] = (_deposit(cell0, np.where(p.is_jet, E, 0.0), span).reshape(shape) if p.is_jet.any()
                  else np.zeros(shape))
    # 5. tracker at the undeflected position: negative tracks in the first span, positive in the second.
    trk = charged & (E > det.trk_threshold)
    w_trk = np.where(trk, E * (1.0 + det.trk_res * det.res_scale * p.n_trk), 0.0)
    trk_cells = cell0 + (charge > 0) * (span + 1)  # off-grid: the overflow cell of either span
    both = np.bincount(trk_cells, weights=w_trk, minlength=2 * (span + 1)).reshape(2, span + 1)
    out["trk_neg"], out["trk_pos"] = both[0, :span].reshape(shape), both[1, :span].reshape(shape)

    # 6. B-field kick q * B / E (E, not pT; no kick for E = 0).
    cell1, at1, lost = cell0, at0, None
    if det.b_field != 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            kick = charge * det.b_field / E  # +-0.0 for neutral particles
        no_kick = ~(E > 0)
        if no_kick.any():
            kick[no_kick] = 0.0
        phi = p.phi + kick  # + 0.0 leaves neutral (and E = 0) particles exactly where they are
        if det.phi_wrap:
            phi = wrap_phi(phi)
        iphi1 = bin_index(phi, g.phi_edges)
        at1 = in_eta & (iphi1 >= 0)
        cell1 = _cells(base, iphi1, at1, span)
        lost = charged & ~at1 & at0

    # 7. ECAL at the deflected position (off the grid: the overflow cell). Per species code: the
    # share of E the ECAL takes and the share kept for the HCAL (0 / 1 for muons, which pass).
    species = p.species
    above = E > det.ecal_threshold
    em = (species == EM_NEUTRAL) | (species == ELECTRON)
    ecal_share, keep_share = np.zeros(len(SPECIES_NAMES)), np.ones(len(SPECIES_NAMES))
    ecal_share[[EM_NEUTRAL, ELECTRON]], keep_share[[EM_NEUTRAL, ELECTRON]] = det.em_ecal_fraction, 1.0 - det.em_ecal_fraction
    hadrons = [NEUTRAL_HADRON, CHARGED_HADRON]
    ecal_share[hadrons], keep_share[hadrons] = det.had_ecal_fraction, 1.0 - det.had_ecal_fraction
    index = species.astype(np.intp)
    with np.errstate(invalid="ignore"):  # formulas run for every particle; only depositing ones keep them
        # EM: f (E - c sqrt E) s; hadrons: f (E - 0) s = f E s, bit for bit
        w_ecal = ecal_share.take(index) * (E - det.nonlin * np.sqrt(E) * em) * (1.0 + det.emc_res * det.res_scale * p.n_ecal)
    out["emcal"] = _deposit(cell1, np.where(above, w_ecal, 0.0), span).reshape(shape)

    # 8. HCAL at the same position from the kept energy (muons keep nothing).
    kept = np.where(above, keep_share.take(index) * E, E)
    deposit = (kept > det.hcal_threshold) & (species != MUON)
    with np.errstate(invalid="ignore"):
        w_hcal = det.hcal_fraction * (kept - det.nonlin * np.sqrt(kept)) * (1.0 + det.hcal_res * det.res_scale * p.n_hcal)
    out["hcal"] = _deposit(cell1, np.where(deposit, w_hcal, 0.0), span).reshape(shape)
    if oracle:
        est = oracle_energy(det, species, w_trk, np.where(above & at1, w_ecal, 0.0),
                            np.where(deposit & at1, w_hcal, 0.0), above)
        out["oracle"] = _deposit(cell0, np.where(p.in_truth, est, 0.0), span).reshape(shape)

    # Bookkeeping.
    counts = np.bincount(2 * p.event + charged, minlength=2 * n_events).reshape(n_events, 2)
    out["n_particles"] = counts.sum(axis=1, dtype=np.int32)
    out["n_charged"] = counts[:, 1].astype(np.int32)
    if lost is None:
        out["e_lost"] = np.zeros(n_events)
    else:
        gone = np.flatnonzero(lost)
        out["e_lost"] = np.bincount(p.event[gone], weights=E[gone], minlength=n_events)
    return out


def invert_nonlinear(deposit: np.ndarray, fraction: float, nonlin: float) -> np.ndarray:
    """Solve ``fraction * (x - nonlin * sqrt(x)) = deposit`` for x (the larger root; float64).

    The simulator's response without its smearing factor, inverted: the numpy twin of
    :func:`pfgraph.models.analytic.invert_response` for one particle's own deposit (no threshold:
    the oracle knows which particles deposited)."""
    d = deposit / fraction
    root = 0.5 * (nonlin + np.sqrt(np.maximum(nonlin * nonlin + 4.0 * d, 0.0)))
    return root * root


def oracle_energy(det: DetectorConfig, species: np.ndarray, trk: np.ndarray, ecal: np.ndarray, hcal: np.ndarray,
                  above_ecal: np.ndarray) -> np.ndarray:
    """Each particle's energy estimated from its own measurements alone (docs/METRICS.md, "oracle").

    ``trk``, ``ecal``, ``hcal``: the particle's own smeared track energy and calorimeter deposits
    (0 where it left none; calorimeter deposits off the grid count as none), ``above_ecal``:
    whether it was above the ECAL threshold (then the HCAL saw the kept share of its energy).
    Every measurement is inverted on its own (the track as is; the ECAL deposit through the EM
    non-linearity for EM species, divided by the hadron fraction for hadrons; the HCAL deposit
    through the non-linearity, divided by the share of E the HCAL received), and the estimates
    are combined by inverse variance with the nominal relative resolutions as weights,
    w = 1 / (res * res_scale)^2 (trk_res, emc_res, hcal_res): every measurement's spread is
    proportional to E, so the weights do not depend on the energy (no bias towards low
    measurements). A particle with no measurement gets 0.
    """
    k = det.nonlin
    em = (species == EM_NEUTRAL) | (species == ELECTRON)
    hadron = (species == NEUTRAL_HADRON) | (species == CHARGED_HADRON)
    ecal_frac = np.where(em, det.em_ecal_fraction, np.where(hadron, det.had_ecal_fraction, 0.0))
    keep = np.where(above_ecal, 1.0 - ecal_frac, 1.0)
    has_t, has_e, has_h = trk > 0, (ecal > 0) & (ecal_frac > 0), (hcal > 0) & (keep > 0) & (det.hcal_fraction > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        est_e = np.where(em, invert_nonlinear(ecal, det.em_ecal_fraction, k), ecal / ecal_frac)
        est_h = invert_nonlinear(hcal, det.hcal_fraction, k) / keep
    w_t, w_e, w_h = (1.0 / max((res * det.res_scale) ** 2, 1e-12) for res in (det.trk_res, det.emc_res, det.hcal_res))
    num = np.where(has_t, w_t * trk, 0.0) + np.where(has_e, w_e * est_e, 0.0) + np.where(has_h, w_h * est_h, 0.0)
    den = np.where(has_t, w_t, 0.0) + np.where(has_e, w_e, 0.0) + np.where(has_h, w_h, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 0.0)


def _cells(base: np.ndarray, iphi: np.ndarray, on_grid: np.ndarray, span: int) -> np.ndarray:
    """Flat cells ``base + iphi``, and the overflow cell ``span`` where ``on_grid`` is False."""
    cells = base + iphi
    if not on_grid.all():
        cells[~on_grid] = span
    return cells


def spread_showers(image: np.ndarray, sigma_pixels: float | tuple[float, float], phi_wrap: bool) -> np.ndarray:
    """Lateral Gaussian shower spreading of calorimeter images (n, G, G), sigma in pixels
    (one value, or (eta, phi); :meth:`DetectorConfig.shower_sigma_pixels` converts a physical width).

    Energy is conserved except what spreads beyond the eta edges (and beyond the phi edges
    unless ``phi_wrap``).
    """
    s_eta, s_phi = (sigma_pixels, sigma_pixels) if np.isscalar(sigma_pixels) else sigma_pixels
    if s_eta <= 0 and s_phi <= 0:
        return image
    mode = ("constant", "constant", "wrap" if phi_wrap else "constant")
    return ndimage.gaussian_filter(image, sigma=(0, s_eta, s_phi), mode=mode, truncate=4.0)


def add_noise(image: np.ndarray, sigma: float, threshold_sigma: float, normals: np.ndarray) -> np.ndarray:
    """Add Gaussian electronic noise per pixel, then zero-suppress below ``threshold_sigma``.

    ``normals`` has the image's shape (pre-drawn N(0,1)).
    """
    if sigma <= 0:
        return image
    noisy = image + sigma * normals
    noisy[np.abs(noisy) < threshold_sigma * sigma] = 0.0
    return noisy


def zero_suppress(image: np.ndarray, threshold: float) -> np.ndarray:
    """Per-cell readout threshold (GeV): cells below ``threshold`` read 0 (their energy is dropped).

    Applied after lateral spreading (and noise), as a calorimeter's zero suppression acts on the
    cells it reads out; ``threshold`` 0 returns ``image`` untouched (paper mode).
    """
    if threshold <= 0:
        return image
    image[image < threshold] = 0.0
    return image
