"""The detector in one place: the (eta, phi) grid, its input layers and the paper-mode response constants.

Every part of pfgraph that needs the grid (the simulator, the file contract in
:mod:`pfgraph.io.schema`, the representations, the models, the evaluation and the report)
imports it from here; this module imports nothing of pfgraph, so any layer may use it.

Grid: :data:`IMSIZE` bins in eta over ``[-MAX_ETA, MAX_ETA]`` (axis 1 of an image, rows) times
:data:`IMSIZE` bins in phi over ``[-pi, pi]`` (axis 2, columns). A flat pixel index is
``ieta * IMSIZE + iphi``.

:data:`DETECTOR_DEFAULTS` are the paper's Table 1 detector-response constants with every
extension off ("paper mode", DESIGN §2): the defaults of :class:`pfgraph.sim.detector.DetectorConfig`
and what a model that inverts the response assumes until the data's own config (stored in
every events file) says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

#: Grid size: IMSIZE x IMSIZE pixels.
IMSIZE = 56
#: The grid covers eta in [-MAX_ETA, MAX_ETA]; phi covers [-pi, pi].
MAX_ETA = 2.5
#: Bin edges (IMSIZE + 1) and centres (IMSIZE) in eta and phi.
ETA_EDGES = np.linspace(-MAX_ETA, MAX_ETA, IMSIZE + 1)
PHI_EDGES = np.linspace(-np.pi, np.pi, IMSIZE + 1)
ETA_CENTRES = 0.5 * (ETA_EDGES[:-1] + ETA_EDGES[1:])
PHI_CENTRES = 0.5 * (PHI_EDGES[:-1] + PHI_EDGES[1:])
#: Pixel sizes in eta and phi (rad).
ETA_PIXEL = 2 * MAX_ETA / IMSIZE
PHI_PIXEL = 2 * np.pi / IMSIZE
#: Number of pixels of the grid.
NPIX = IMSIZE * IMSIZE

#: The detector's measured layers, in model-input channel order (branch names of the events files).
INPUT_CHANNELS: tuple[str, ...] = ("emcal", "hcal", "trk_neg", "trk_pos")

#: Paper-mode detector response (DESIGN §2, Table 1) with every extension off: the one definition
#: of these defaults (``DetectorConfig`` and the models' inversion read them from here).
DETECTOR_DEFAULTS: Mapping[str, float | bool] = MappingProxyType({
    "res_scale": 1.0,
    "trk_res": 0.05,
    "emc_res": 0.05,
    "hcal_res": 0.10,
    "nonlin": 0.3,
    "b_field": 0.0,
    "trk_threshold": 0.1,
    "ecal_threshold": 0.2,
    "hcal_threshold": 0.3,
    "em_ecal_fraction": 0.9,
    "had_ecal_fraction": 0.1,
    "hcal_fraction": 0.9,
    "phi_wrap": False,
    "shower_sigma_emcal": 0.0,
    "shower_sigma_hcal": 0.0,
    "noise_emcal": 0.0,
    "noise_hcal": 0.0,
    "noise_threshold_sigma": 3.0,
})


def pixel_centres(ieta: np.ndarray, iphi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eta, phi) of the centres of pixels (ieta, iphi)."""
    return ETA_CENTRES[ieta], PHI_CENTRES[iphi]

