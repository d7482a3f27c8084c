"""The detector in one place: the (eta, phi) grid, its input layers and the paper-mode response constants.

Every part of pfgraph that needs the grid (the simulator, the file contract in
:mod:`pfgraph.io.schema`, the representations, the models, the evaluation and the report)
imports it from here; this module imports nothing of pfgraph, so any layer may use it.

Grid: a :class:`Grid` value, ``size`` bins in eta over ``[-MAX_ETA, MAX_ETA]`` (axis 1 of an image,
rows) times ``size`` bins in phi over ``[-pi, pi]`` (axis 2, columns); a flat pixel index is
``ieta * size + iphi``. The size is the detector config's ``detector.grid`` (default
:data:`PAPER_GRID_SIZE`, the paper's; :data:`GRID_SIZES` allowed), stored in every file's meta
(``imsize``); every stage takes the grid from the data (:func:`grid_of_meta`, :func:`grid_of_shape`).

:data:`DETECTOR_DEFAULTS` are the paper's Table 1 detector-response constants with every
extension off ("paper mode", DESIGN §2): the defaults of :class:`pfgraph.sim.detector.DetectorConfig`
and what a model that inverts the response assumes until the data's own config (stored in
every events file) says otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

#: The grid covers eta in [-MAX_ETA, MAX_ETA]; phi covers [-pi, pi] (the same at every grid size).
MAX_ETA = 2.5
#: The paper's grid size (Table 1): the default of ``detector.grid``. The one definition of it.
PAPER_GRID_SIZE = 56
#: Grid sizes ``detector.grid`` accepts: the paper's and three finer ones (2x, 4x and 8x finer cells).
GRID_SIZES: tuple[int, ...] = tuple(PAPER_GRID_SIZE * k for k in (1, 2, 4, 8))


@dataclass(frozen=True)
class Grid:
    """One (eta, phi) grid: ``size`` x ``size`` pixels over eta in [-max_eta, max_eta] (axis 1, rows)
    and phi in [-pi, pi] (axis 2, columns); a flat pixel index is ``ieta * size + iphi``.

    A value: every stage takes it from the data (``detector.grid`` of the config, ``imsize`` of a
    file's meta, the last axis of an image), never from a module constant. :func:`grid` returns
    the shared instance of a size.
    """

    size: int
    max_eta: float = MAX_ETA
    eta_edges: np.ndarray = field(init=False, repr=False, compare=False)
    phi_edges: np.ndarray = field(init=False, repr=False, compare=False)
    eta_centres: np.ndarray = field(init=False, repr=False, compare=False)
    phi_centres: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ValueError(f"grid size {self.size!r}: expected a positive integer")
        eta_edges = np.linspace(-self.max_eta, self.max_eta, self.size + 1)
        phi_edges = np.linspace(-np.pi, np.pi, self.size + 1)
        for name, value in (("eta_edges", eta_edges), ("phi_edges", phi_edges),
                            ("eta_centres", 0.5 * (eta_edges[:-1] + eta_edges[1:])),
                            ("phi_centres", 0.5 * (phi_edges[:-1] + phi_edges[1:]))):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def eta_pixel(self) -> float:
        """Pixel size in eta."""
        return 2 * self.max_eta / self.size

    @property
    def phi_pixel(self) -> float:
        """Pixel size in phi (rad)."""
        return 2 * np.pi / self.size

    @property
    def npix(self) -> int:
        """Number of pixels, ``size * size``."""
        return self.size * self.size

    @property
    def shape(self) -> tuple[int, int]:
        """``(size, size)``: the shape of one image."""
        return (self.size, self.size)

    def pixel_centres(self, ieta: np.ndarray, iphi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(eta, phi) of the centres of pixels (ieta, iphi)."""
        return self.eta_centres[ieta], self.phi_centres[iphi]

    def cone_offsets(self, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Pixel offsets (deta, dphi, in pixels) of a cone of ``radius`` in eta-phi: the pixels whose
        centres lie within ``radius`` of the centre pixel's (the evaluation's cones and the cone-sum loss)."""
        reta, rphi = int(radius / self.eta_pixel), int(radius / self.phi_pixel)
        de, dp = np.meshgrid(np.arange(-reta, reta + 1), np.arange(-rphi, rphi + 1), indexing="ij")
        inside = (de * self.eta_pixel) ** 2 + (dp * self.phi_pixel) ** 2 <= radius * radius * (1 + 1e-12)
        return de[inside], dp[inside]


@functools.cache
def grid(size: int = PAPER_GRID_SIZE) -> Grid:
    """The shared :class:`Grid` of ``size`` pixels a side (default: the paper's)."""
    return Grid(int(size))


def check_grid_size(size: object, what: str = "detector.grid") -> int:
    """``size`` as an int if it is one of :data:`GRID_SIZES`; ValueError naming ``what`` otherwise."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) not in GRID_SIZES:
        raise ValueError(f"{what} = {size!r}: expected one of {', '.join(map(str, GRID_SIZES))}")
    return int(size)


def grid_of_meta(meta: Mapping[str, object] | None) -> Grid:
    """The grid of a file from its ``pfgraph_meta`` (``imsize``; files without it are on the paper's grid)."""
    size = (meta or {}).get("imsize", PAPER_GRID_SIZE)
    return grid(check_grid_size(size, "imsize"))


def grid_of_shape(shape: Sequence[int]) -> Grid:
    """The grid of an image array of ``shape`` (..., G, G): its last axis; ValueError if not square."""
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"shape {tuple(shape)} is not an image on a square grid (..., G, G)")
    return grid(int(shape[-1]))


#: The paper's grid, ``grid(PAPER_GRID_SIZE)``. The module constants below are this grid's, kept
#: for callers outside pfgraph's stages (tests, scripts); pfgraph's stages take the grid from the data.
PAPER_GRID = grid(PAPER_GRID_SIZE)
#: Paper default: grid size.
IMSIZE = PAPER_GRID.size
#: Paper default: bin edges (IMSIZE + 1) and centres (IMSIZE) in eta and phi.
ETA_EDGES = PAPER_GRID.eta_edges
PHI_EDGES = PAPER_GRID.phi_edges
ETA_CENTRES = PAPER_GRID.eta_centres
PHI_CENTRES = PAPER_GRID.phi_centres
#: Paper default: pixel sizes in eta and phi (rad).
ETA_PIXEL = PAPER_GRID.eta_pixel
PHI_PIXEL = PAPER_GRID.phi_pixel
#: Paper default: number of pixels.
NPIX = PAPER_GRID.npix

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
    "shower_width_emcal": 0.0,
    "shower_width_hcal": 0.0,
    "noise_emcal": 0.0,
    "noise_hcal": 0.0,
    "noise_threshold_sigma": 3.0,
    "cell_threshold_emcal": 0.0,
    "cell_threshold_hcal": 0.0,
    "grid": PAPER_GRID_SIZE,
})


def pixel_centres(ieta: np.ndarray, iphi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eta, phi) of the centres of pixels (ieta, iphi) of the paper's grid (:meth:`Grid.pixel_centres` for any)."""
    return PAPER_GRID.pixel_centres(ieta, iphi)

