"""The analytic baseline: per-pixel inversion of the detector response, no training.

From the simulator's own formulas (DESIGN §2): each track pixel's energy is taken as the
charged energy there; its expected calorimeter response (a charged hadron: 0.1 E in the ECAL,
0.9 (0.9 E - k sqrt(0.9 E)) in the HCAL) is subtracted at the pixel the B field bends it to
(phi + q B / E, split between the two pixels it can reach); what remains in the calorimeters is inverted as neutral
energy (HCAL as a neutral hadron, the ECAL remainder as EM). Every learned model has this
physics baseline to beat in the report (the measured floor is the simulator's ``oracle`` image, docs/METRICS.md).

The model works on normalised inputs like every other image model and carries the scales and
detector constants as buffers; :meth:`AnalyticInversion.configure_from_data` sets them from the
training data (normalisation and the file's simulation config) before the checkpoint is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pfgraph import geometry
from pfgraph.models.registry import register

_DETECTOR_KEYS = ("b_field", "nonlin", "trk_threshold", "ecal_threshold", "hcal_threshold",
                  "em_ecal_fraction", "had_ecal_fraction", "hcal_fraction")


#: Residual deposits below this (GeV) are rounding left over from a subtraction, not energy:
#: the inverse of x - k sqrt(x) maps any positive deposit to at least k^2 (0.09 GeV).
MIN_DEPOSIT = 1e-3


def invert_response(deposit: torch.Tensor, fraction: float, nonlin: float) -> torch.Tensor:
    """Solve ``fraction * (x - nonlin * sqrt(x)) = deposit`` for x (0 where deposit < MIN_DEPOSIT)."""
    d = torch.clamp(deposit, min=0.0) / fraction
    root = 0.5 * (nonlin + torch.sqrt(nonlin * nonlin + 4.0 * d))
    return torch.where(deposit >= MIN_DEPOSIT, root * root, torch.zeros_like(deposit))


class AnalyticInversion(nn.Module):
    """Per-pixel inversion of the paper's detector response (see module docstring)."""

    def __init__(self, detector: Mapping[str, float]) -> None:
        super().__init__()
        self.detector = {k: float(detector[k]) for k in _DETECTOR_KEYS}
        self.register_buffer("input_scale", torch.ones(4))
        self.register_buffer("target_scale", torch.ones(()))
        self.register_buffer("constants", torch.tensor([self.detector[k] for k in _DETECTOR_KEYS], dtype=torch.float64))

    def configure_from_data(self, meta: Mapping[str, Any], norm: Any) -> None:
        """Take scales from the fitted normalisation and detector constants from the file's config."""
        self.input_scale.copy_(torch.as_tensor(norm.input_scale, dtype=self.input_scale.dtype))
        self.target_scale.fill_(float(norm.target_scale))
        det = dict((meta.get("config") or {}).get("detector") or {})
        for k in _DETECTOR_KEYS:
            if k in det:
                self.detector[k] = float(det[k])
        self.constants.copy_(torch.tensor([self.detector[k] for k in _DETECTOR_KEYS], dtype=torch.float64))

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.detector = dict(zip(_DETECTOR_KEYS, self.constants.tolist()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, G, G) normalised [emcal, hcal, trk_neg, trk_pos] -> (B, 1, G, G) normalised truth."""
        return (self.parts(x)["truth"] / self.target_scale.double()).to(x.dtype).unsqueeze(1)

    def parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The inversion's pieces, (B, G, G) float64 maps in GeV, from (B, 4, G, G) normalised inputs.

        ``truth`` (the estimate, = ``charged + e_em + e_had``), ``charged`` (the track energy of the
        pixel), ``e_em`` and ``e_had`` (the neutral energy inverted from what the tracks' expected
        deposits left), ``ecal_sub`` and ``hcal_sub`` (the expected charged-hadron deposits subtracted
        at the pixel: the deposits the formula explained away there), and ``hcal_at_bend`` (for each
        track pixel, the HCAL deposit measured where its bent shower lands, the likely pixel of
        each charge summed: the calorimeter's own measurement of that track's energy, in the same
        pixel as the track). The residual models take them as features.
        """
        d = self.detector
        e = (x.double() * self.input_scale.double().view(1, 4, 1, 1))
        emcal, hcal, trk_neg, trk_pos = e[:, 0], e[:, 1], e[:, 2], e[:, 3]
        B, H, W = emcal.shape
        rows = torch.arange(H, device=x.device).view(1, H, 1).expand(B, H, W)
        events = torch.arange(B, device=x.device).view(B, 1, 1).expand(B, H, W)
        cols = torch.arange(W, device=x.device, dtype=e.dtype).view(1, 1, W)
        # Expected charged-hadron calorimeter response of every track pixel, and the two pixels
        # its bent deposit can reach: the track starts uniformly inside its pixel, so a shift of
        # k + f pixels lands k pixels away with probability 1 - f and k + 1 with probability f.
        tracks = []
        for charge, trk in ((-1.0, trk_neg), (1.0, trk_pos)):
            has = trk > 0
            energy = torch.where(has, trk, torch.ones_like(trk))
            above = energy > d["ecal_threshold"]
            ecal_c = torch.where(has & above, d["had_ecal_fraction"] * energy, torch.zeros_like(energy))
            kept = torch.where(above, (1 - d["had_ecal_fraction"]) * energy, energy)
            hcal_c = torch.where(has & (kept > d["hcal_threshold"]),
                                 d["hcal_fraction"] * (kept - d["nonlin"] * torch.sqrt(kept)), torch.zeros_like(kept))
            shift = charge * d["b_field"] / energy / geometry.grid(W).phi_pixel
            k = torch.floor(shift)
            f = shift - k
            likely = torch.where(f < 0.5, k, k + 1.0)
            other = torch.where(f < 0.5, k + 1.0, k)
            tracks.append((ecal_c, hcal_c, cols + likely, cols + other))
        # Explain the deposits away: subtract at the likely pixel first (as much as is there),
        # then send each track's unexplained share to its other pixel.
        ecal_left, hcal_left = emcal.clone(), hcal.clone()
        pending = [(ec, hc) for ec, hc, _, _ in tracks]
        for stage in (2, 3):
            for left, which in ((ecal_left, 0), (hcal_left, 1)):
                want = torch.zeros_like(left)
                targets = []
                for t, (exp_e, exp_h) in zip(tracks, pending):
                    col = t[stage]
                    amount = exp_e if which == 0 else exp_h
                    inside = (amount > 0) & (col >= 0) & (col < W)
                    flat = events * H * W + rows * W + col.clamp(0, W - 1).long()
                    want = want.reshape(-1).scatter_add(0, flat[inside], amount[inside]).view_as(left)
                    targets.append((flat, inside))
                taken = torch.minimum(want, left.clamp(min=0))
                left = left - taken
                if which == 0:
                    ecal_left = left
                else:
                    hcal_left = left
                frac = torch.where(want > 0, taken / want.clamp(min=1e-30), torch.zeros_like(want)).view(-1)
                for j, (flat, inside) in enumerate(targets):
                    exp_e, exp_h = pending[j]
                    served = torch.where(inside, frac[flat], torch.zeros_like(exp_e))
                    if which == 0:
                        pending[j] = (exp_e * (1 - served), exp_h)
                    else:
                        pending[j] = (exp_e, exp_h * (1 - served))
        # Neutral energy from what is left: the ECAL is EM energy plus 10 % of hadrons, the HCAL
        # hadron energy plus the EM showers' leakage; a few fixed-point steps separate the two.
        e_had = torch.zeros_like(hcal_left)
        for _ in range(4):
            e_em = invert_response(ecal_left - d["had_ecal_fraction"] * e_had, d["em_ecal_fraction"], d["nonlin"])
            leak = (1 - d["em_ecal_fraction"]) * e_em
            leak_dep = torch.where(leak > d["hcal_threshold"],
                                   d["hcal_fraction"] * (leak - d["nonlin"] * torch.sqrt(leak)), torch.zeros_like(leak))
            e_had = invert_response(hcal_left - leak_dep, d["hcal_fraction"], d["nonlin"]) / (1 - d["had_ecal_fraction"])
        flat_hcal = hcal.reshape(-1)
        at_bend = torch.zeros_like(hcal)
        for (_, _, likely, _), trk in zip(tracks, (trk_neg, trk_pos)):
            col = likely.expand(B, H, W)
            inside = (trk > 0) & (col >= 0) & (col < W)
            flat = events * H * W + rows * W + col.clamp(0, W - 1).long()
            at_bend = at_bend + torch.where(inside, flat_hcal[flat.reshape(-1)].view_as(hcal), torch.zeros_like(hcal))
        charged = trk_neg + trk_pos
        return {"truth": charged + e_had + e_em, "charged": charged, "e_em": e_em, "e_had": e_had,
                "ecal_sub": emcal - ecal_left, "hcal_sub": hcal - hcal_left, "hcal_at_bend": at_bend}


def analytic_from_config(config: Mapping[str, Any]) -> dict[str, float]:
    """Detector constants for the inversion: the config's, else paper mode (:data:`pfgraph.geometry.DETECTOR_DEFAULTS`).

    The training data's own detector config (every events file stores it) replaces them before the
    checkpoint is saved (:meth:`AnalyticInversion.configure_from_data`, called by the trainer), so B and
    the response constants a model uses are those of the data it was fitted to.
    """
    return {k: float(config.get(k, geometry.DETECTOR_DEFAULTS[k])) for k in _DETECTOR_KEYS}


@register("analytic", repr="image", trainable=False,
          description="physics baseline: per-pixel inversion of the detector response (no training)")
def build_analytic(config: Mapping[str, Any]) -> AnalyticInversion:
    """Build the analytic baseline; detector constants default to paper mode, B from the data."""
    return AnalyticInversion(analytic_from_config(config))
