"""Jet metrics on the jet test sample (DESIGN §5): position and energy of the injected jet.

Per event, both images (truth and prediction) are clustered with anti-kt (R = 0.4 by
default, E-scheme) over the pixels above a threshold (the same for both), every pixel a
massless pseudojet at its centre (:mod:`pfgraph.eval.antikt`):

* the **truth jet** is the truth-image jet nearest (in eta-phi) to the injected jet axis
  (0, 0); the **prediction jet** is the predicted jet nearest to the truth jet;
* **position deviation** ``D_jet``: distance of the two axes in pixel units,
  ``sqrt((deta / eta_pixel)^2 + (dphi / phi_pixel)^2)``, dphi wrapped to [-pi, pi];
* **energy deviation** ``dE_jet = sum over the truth jet's pixels of (E_pred - E_true)``,
  reported ``/ S`` (the paper's normalised form, ``energy_norm``) and ``/ E_truth_jet``
  (``energy_rel``, branch ``de_jet_rel``);
* **matched-jet energy deviation** ``(E_pred_jet - E_truth_jet) / E_truth_jet`` of the two
  selected jets' own four-momenta (``energy_match_rel``, branch ``de_match_rel``): it also sees
  predicted energy the prediction jet gathers outside the truth jet's pixels;
* **efficiency**: the fraction of events with a truth jet whose prediction jet lies within R.

Positions use the jets' pseudorapidity eta (the grid's axis 1) and azimuth moved to the
grid's [-pi, pi); jet centres are given in fractional pixel coordinates, pixel k's centre at k
(``ceta``, ``cphi``). FastJet's rapidity is kept as ``rap``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pfgraph import geometry
from pfgraph.errors import PfgraphError
from pfgraph.eval.antikt import TIE_BREAK, ImageJets, cluster_images, resolve_backend
from pfgraph.eval.energy import gaussian_summary, robust_stats

DEFAULT_RADIUS = 0.4
#: Pixels with E above this (GeV) enter the clustering, for truth and prediction alike.
DEFAULT_THRESHOLD = 0.1
#: Per-jet fields written to the ``jets`` tree (``truth_jet_<field>``, ``pred_jet_<field>``): the
#: data contract's (pfgraph.io.schema.JET_BRANCHES) plus ``rap``.
JET_FIELDS = ("pt", "energy", "eta", "phi", "ceta", "cphi", "nconst", "rap")
#: Per-event scalars of the ``jets`` tree: pT rank of the selected jets (-1: none), whether the
#: prediction jet lies within R, deviations.
MATCH_FIELDS = ("truth_rank", "pred_rank", "matched", "d_jet", "deta_pix", "dphi_pix", "de_jet", "de_jet_norm",
                "de_jet_rel", "truth_energy", "truth_pt", "de_match_rel")


def _wrap(dphi: np.ndarray) -> np.ndarray:
    """Azimuth differences into [-pi, pi)."""
    return (dphi + math.pi) % (2 * math.pi) - math.pi


@dataclass
class JetTable:
    """All jets of a batch as flat numpy arrays (jagged by ``counts``), plus per-event matching."""

    counts: np.ndarray  # (B,) int64
    fields: dict[str, np.ndarray]  # flat per-jet arrays, keys JET_FIELDS

    def event(self, k: int) -> dict[str, np.ndarray]:
        """The jets of event ``k``."""
        start = int(self.counts[:k].sum())
        return {f: v[start:start + int(self.counts[k])] for f, v in self.fields.items()}


def jet_table(ij: ImageJets) -> JetTable:
    """Flatten :class:`ImageJets` into per-jet arrays in grid conventions (phi in [-pi, pi))."""
    jets = ij.jets
    mask = jets.mask.cpu().numpy()
    pt = jets.pt.cpu().numpy()[mask]
    rap = jets.rap.cpu().numpy()[mask]
    phi = _wrap(jets.phi.cpu().numpy()[mask])
    eta = jets.eta.cpu().numpy()[mask]
    e = jets.e.cpu().numpy()[mask]
    nconst = jets.n_constituents.cpu().numpy()[mask]
    g = geometry.grid(ij.grid_size)
    fields = {
        "pt": pt, "energy": e, "eta": eta, "phi": phi,
        "ceta": (eta + g.max_eta) / g.eta_pixel - 0.5,
        "cphi": (phi + math.pi) / g.phi_pixel - 0.5,
        "nconst": nconst.astype(np.int32), "rap": rap,
    }
    return JetTable(jets.n_jets.cpu().numpy().astype(np.int64), fields)


def _selected_first(table: JetTable, rank: np.ndarray) -> JetTable:
    """Per event, the jet at pT rank ``rank`` moved to the front (the others keep pT order)."""
    off = np.concatenate([[0], np.cumsum(table.counts)])
    order = np.arange(int(off[-1]))
    for k in np.flatnonzero(rank > 0):
        lo, r = int(off[k]), int(rank[k])
        order[lo:lo + r + 1] = np.concatenate([[lo + r], np.arange(lo, lo + r)])
    return JetTable(table.counts, {f: v[order] for f, v in table.fields.items()})


def match_jets(truth: ImageJets, pred: ImageJets, pred_img: np.ndarray, truth_img: np.ndarray,
               radius: float, target_scale: float | None,
               axis: tuple[float, float] = (0.0, 0.0)) -> tuple[JetTable, JetTable, dict[str, np.ndarray]]:
    """Truth jet nearest ``axis`` (eta, phi), prediction jet nearest the truth jet, deviations.

    Returns both jet tables with the selected jet of each event first (then the others in
    decreasing pT) and the per-event :data:`MATCH_FIELDS` (``truth_rank``/``pred_rank``: the
    selected jets' pT ranks, -1 when an image has no jet).
    """
    tt, pt_ = jet_table(truth), jet_table(pred)
    grid = geometry.grid(truth.grid_size)
    b = len(tt.counts)
    out: dict[str, np.ndarray] = {k: np.full(b, np.nan) for k in MATCH_FIELDS}
    out["truth_rank"] = np.full(b, -1, np.int32)
    out["pred_rank"] = np.full(b, -1, np.int32)
    out["matched"] = np.zeros(b, bool)
    pix_jet = truth.pixel_jet().cpu().numpy()  # (B, G * G)
    diff = (np.asarray(pred_img, np.float64) - np.asarray(truth_img, np.float64)).reshape(b, -1)
    t_off = np.concatenate([[0], np.cumsum(tt.counts)])
    p_off = np.concatenate([[0], np.cumsum(pt_.counts)])
    for k in range(b):
        if tt.counts[k] == 0:
            continue
        t_eta = tt.fields["eta"][t_off[k]:t_off[k + 1]]
        t_phi = tt.fields["phi"][t_off[k]:t_off[k + 1]]
        ti = int(np.argmin((t_eta - axis[0]) ** 2 + _wrap(t_phi - axis[1]) ** 2))
        out["truth_rank"][k] = ti
        eta0, phi0 = t_eta[ti], t_phi[ti]
        te = float(tt.fields["energy"][t_off[k] + ti])
        out["truth_energy"][k] = te
        out["truth_pt"][k] = tt.fields["pt"][t_off[k] + ti]
        de = float(diff[k][pix_jet[k] == ti].sum())
        out["de_jet"][k] = de
        out["de_jet_norm"][k] = de / target_scale if target_scale else np.nan
        out["de_jet_rel"][k] = de / te if te > 0 else np.nan
        if pt_.counts[k] == 0:
            continue
        deta = pt_.fields["eta"][p_off[k]:p_off[k + 1]] - eta0
        dphi = _wrap(pt_.fields["phi"][p_off[k]:p_off[k + 1]] - phi0)
        pi_ = int(np.argmin(deta * deta + dphi * dphi))
        out["pred_rank"][k] = pi_
        out["matched"][k] = deta[pi_] ** 2 + dphi[pi_] ** 2 < radius * radius
        out["deta_pix"][k] = deta[pi_] / grid.eta_pixel
        out["dphi_pix"][k] = dphi[pi_] / grid.phi_pixel
        out["d_jet"][k] = math.hypot(out["deta_pix"][k], out["dphi_pix"][k])
        pe = float(pt_.fields["energy"][p_off[k] + pi_])
        out["de_match_rel"][k] = (pe - te) / te if te > 0 else np.nan
    return _selected_first(tt, out["truth_rank"]), _selected_first(pt_, out["pred_rank"]), out


class JetAccumulator:
    """Clusters truth and prediction batch by batch; :meth:`result` gives the ``jets`` metrics."""

    def __init__(self, radius: float = DEFAULT_RADIUS, threshold: float = DEFAULT_THRESHOLD, backend: str = "auto",
                 device: str | torch.device = "cpu", target_scale: float | None = None,
                 tie_break: float = TIE_BREAK) -> None:
        if not (math.isfinite(radius) and radius > 0):
            raise PfgraphError(f"jet radius R = {radius}: expected R > 0")
        if not (math.isfinite(threshold) and threshold >= 0):
            raise PfgraphError(f"jet threshold {threshold}: expected a non-negative energy in GeV")
        self.radius, self.threshold, self.device = float(radius), float(threshold), device
        self.backend = resolve_backend(backend, device)
        self.target_scale, self.tie_break = target_scale, tie_break
        self.parts: list[dict[str, np.ndarray]] = []
        self.seconds = 0.0
        self.n_events = 0

    def update(self, pred: np.ndarray, truth: np.ndarray) -> tuple[JetTable, JetTable, dict[str, np.ndarray]]:
        """Cluster a batch of (B, G, G) images; returns both jet tables and the matching."""
        import time

        t0 = time.perf_counter()
        tj = cluster_images(truth, self.radius, self.threshold, self.backend, self.device, self.tie_break)
        pj = cluster_images(pred, self.radius, self.threshold, self.backend, self.device, self.tie_break)
        self.seconds += time.perf_counter() - t0
        tt, pt_, match = match_jets(tj, pj, pred, truth, self.radius, self.target_scale)
        self.parts.append(match)
        self.n_events += len(tt.counts)
        return tt, pt_, match

    def result(self) -> dict[str, Any]:
        """The ``jets`` section of metrics.json."""
        out = empty_jet_metrics(self.radius, self.threshold, self.backend, self.tie_break)
        out["available"] = True
        out["reason"] = None
        m = {k: np.concatenate([p[k] for p in self.parts]) if self.parts else np.zeros(0) for k in MATCH_FIELDS}
        has_truth = m["truth_rank"] >= 0
        has_pred = m["pred_rank"] >= 0
        n_truth = int(has_truth.sum())
        out["n_events"] = self.n_events
        out["n_truth_jets"] = n_truth
        out["efficiency"] = float(m["matched"][has_truth].mean()) if n_truth else None
        out["seconds"] = self.seconds
        out["events_per_s"] = self.n_events / self.seconds if self.seconds > 0 else None
        sel = has_truth & has_pred
        out["position"] = gaussian_summary(m["d_jet"][sel], 1.0)
        out["position_deta"] = gaussian_summary(m["deta_pix"][sel], 1.0)
        out["position_dphi"] = gaussian_summary(m["dphi_pix"][sel], 1.0)
        out["energy_norm"] = gaussian_summary(m["de_jet_norm"][has_truth], None) if self.target_scale else \
            empty_jet_metrics(self.radius, self.threshold, self.backend, self.tie_break)["energy_norm"]
        out["energy_rel"] = gaussian_summary(m["de_jet_rel"][has_truth], 0.5)
        out["energy_match_rel"] = gaussian_summary(m["de_match_rel"][sel], 0.5)
        out["truth_jet"] = {"energy": robust_stats(m["truth_energy"][has_truth], None),
                            "pt": robust_stats(m["truth_pt"][has_truth], None)}
        return out

    def matches(self) -> dict[str, np.ndarray]:
        """All per-event matching results so far (for plots)."""
        return {k: np.concatenate([p[k] for p in self.parts]) if self.parts else np.zeros(0) for k in MATCH_FIELDS}


def empty_jet_metrics(radius: float | None, threshold: float | None, backend: str | None,
                      tie_break: float | None, reason: str | None = None) -> dict[str, Any]:
    """The ``jets`` section with every key present and null values (no jet image, or a template)."""
    none_summary = {"fit": gaussian_summary(np.zeros(0))["fit"], "robust": robust_stats(np.zeros(0), None)}

    def summ(cut: float | None) -> dict[str, Any]:
        return {"fit": dict(none_summary["fit"]), "robust": robust_stats(np.zeros(0), cut)}

    return {
        "available": False, "reason": reason, "radius": radius, "threshold_gev": threshold, "backend": backend,
        "tie_break_pixels": tie_break, "recombination": "E_scheme", "algorithm": "antikt",
        "n_events": None, "n_truth_jets": None, "efficiency": None, "seconds": None, "events_per_s": None,
        "position": summ(1.0), "position_deta": summ(1.0), "position_dphi": summ(1.0),
        "energy_norm": summ(None), "energy_rel": summ(0.5), "energy_match_rel": summ(0.5),
        "truth_jet": {"energy": robust_stats(np.zeros(0), None), "pt": robust_stats(np.zeros(0), None)},
    }


def synthetic_jet_images(n_events: int, seed: int = 0, n_background: int = 1600, n_jet: int = 50,
                         jet_energy: tuple[float, float] = (150.0, 400.0), jet_width: float = 0.1,
                         size: int = geometry.PAPER_GRID_SIZE) -> np.ndarray:
    """Jet-like truth images for tests and benchmarks when no Pythia jet file is at hand.

    Each event: ``n_background`` particles uniform in (eta, phi) with the paper's energy
    spectrum ``|N(0,1) + N(0,2)|``, plus about ``n_jet`` (Poisson) jet particles sharing a
    uniform ``jet_energy`` (Dirichlet(0.3) fractions) spread as a Gaussian of ``jet_width``
    around (0, 0). Energy-weighted histograms on the ``size`` x ``size`` grid, float32 GeV.
    """
    rng = np.random.default_rng(seed)
    g = geometry.grid(size)
    npix = g.npix
    out = np.zeros((n_events, npix), np.float64)
    for k in range(n_events):
        e = np.abs(rng.normal(0.0, 1.0, n_background) + rng.normal(0.0, 2.0, n_background))
        eta = rng.uniform(-geometry.MAX_ETA, geometry.MAX_ETA, n_background)
        phi = rng.uniform(-math.pi, math.pi, n_background)
        nj = max(1, int(rng.poisson(n_jet)))
        ej = rng.dirichlet(np.full(nj, 0.3)) * rng.uniform(*jet_energy)
        r, a = np.abs(rng.normal(0.0, jet_width, nj)), rng.uniform(0.0, 2 * math.pi, nj)
        eta = np.concatenate([eta, r * np.cos(a)])
        phi = np.concatenate([phi, r * np.sin(a)])
        e = np.concatenate([e, ej])
        ie = np.floor((eta + g.max_eta) / g.eta_pixel).astype(np.int64)
        ip = np.floor((phi + math.pi) / g.phi_pixel).astype(np.int64)
        ok = (ie >= 0) & (ie < g.size) & (ip >= 0) & (ip < g.size)
        out[k] = np.bincount(ie[ok] * g.size + ip[ok], weights=e[ok], minlength=npix)
    return out.reshape(n_events, g.size, g.size).astype(np.float32)
