"""Simulation configuration: geometry, particle spectra, detector response and extensions.

The defaults are the paper's Table 1 ("paper mode", DESIGN §2). Extensions beyond the paper
(lateral shower spreading, per-pixel noise, pile-up, phi wrap-around) are off by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pfgraph import geometry
from pfgraph.errors import ConfigError

#: Species codes used throughout the simulator.
EM_NEUTRAL, NEUTRAL_HADRON, CHARGED_HADRON, ELECTRON, MUON = 0, 1, 2, 3, 4
SPECIES_NAMES = ("em_neutral", "neutral_hadron", "charged_hadron", "electron", "muon")


def _positive(value: float, name: str, strict: bool = False) -> None:
    if value < 0 or (strict and value == 0) or not np.isfinite(value):
        raise ConfigError(f"{name} = {value!r}: expected a {'positive' if strict else 'non-negative'} number")


@dataclass
class ParticleConfig:
    """Background particles per event (DESIGN §2, steps 1-3)."""

    multiplicity: int = 1600
    neutral_pi_frac: float = 0.25
    neutral_had_frac: float = 0.5
    g1_sigma: float = 1.0
    g2_sigma: float = 2.0
    charged_acceptance: float = 1.0
    #: Hard tail of the energy spectrum (not in the paper; 0 = off): this fraction of the
    #: particles takes its energy from a power law E^-hard_tail_index between hard_tail_min and
    #: hard_tail_max GeV instead of |N(0, sigma)|, so a training set reaches the energies a jet
    #: puts into one pixel without using jets (index 1: flat in log E).
    hard_tail_fraction: float = 0.0
    hard_tail_index: float = 1.0
    hard_tail_min: float = 5.0
    hard_tail_max: float = 300.0

    def validate(self) -> None:
        """Reject impossible values."""
        if not 0 <= self.hard_tail_fraction <= 1:
            raise ConfigError(f"particles.hard_tail_fraction = {self.hard_tail_fraction}: expected 0 <= value <= 1")
        if not 0 < self.hard_tail_min < self.hard_tail_max < float("inf"):
            raise ConfigError(f"particles.hard_tail_min = {self.hard_tail_min}, hard_tail_max = {self.hard_tail_max}: "
                              "expected 0 < min < max")
        if not 0 <= self.hard_tail_index < float("inf"):
            raise ConfigError(f"particles.hard_tail_index = {self.hard_tail_index}: expected a finite index >= 0")
        if self.multiplicity < 0:
            raise ConfigError(f"particles.multiplicity = {self.multiplicity}: expected >= 0")
        if not 0 <= self.neutral_pi_frac <= self.neutral_had_frac <= 1:
            raise ConfigError("particles: need 0 <= neutral_pi_frac <= neutral_had_frac <= 1")
        _positive(self.g1_sigma, "particles.g1_sigma")
        _positive(self.g2_sigma, "particles.g2_sigma")
        if not 0 < self.charged_acceptance <= 1:
            raise ConfigError(f"particles.charged_acceptance = {self.charged_acceptance}: expected 0 < value <= 1")


_D = geometry.DETECTOR_DEFAULTS
#: The largest magnetic field (T) a config may ask for: above any magnet built (45 T), where the
#: track curvature overflows.
MAX_B_FIELD = 50.0


@dataclass
class DetectorConfig:
    """Detector response (DESIGN §2, steps 4-8) and its optional extensions.

    Defaults: paper mode, :data:`pfgraph.geometry.DETECTOR_DEFAULTS` (their one definition).
    """

    res_scale: float = _D["res_scale"]
    trk_res: float = _D["trk_res"]
    emc_res: float = _D["emc_res"]
    hcal_res: float = _D["hcal_res"]
    nonlin: float = _D["nonlin"]
    b_field: float = _D["b_field"]
    trk_threshold: float = _D["trk_threshold"]
    ecal_threshold: float = _D["ecal_threshold"]
    hcal_threshold: float = _D["hcal_threshold"]
    em_ecal_fraction: float = _D["em_ecal_fraction"]
    had_ecal_fraction: float = _D["had_ecal_fraction"]
    hcal_fraction: float = _D["hcal_fraction"]
    phi_wrap: bool = _D["phi_wrap"]
    shower_sigma_emcal: float = _D["shower_sigma_emcal"]
    shower_sigma_hcal: float = _D["shower_sigma_hcal"]
    #: Lateral shower width (Gaussian sigma) in eta-phi units (eta, and rad in phi): a physical size,
    #: so it covers more cells on a finer grid. ``shower_sigma_*`` (the older option) are in pixels of
    #: the paper's grid (PAPER_GRID_SIZE), scaled with the grid (see :meth:`shower_sigma_pixels`).
    shower_width_emcal: float = _D["shower_width_emcal"]
    shower_width_hcal: float = _D["shower_width_hcal"]
    noise_emcal: float = _D["noise_emcal"]
    noise_hcal: float = _D["noise_hcal"]
    noise_threshold_sigma: float = _D["noise_threshold_sigma"]
    #: Per-cell readout threshold (zero suppression, GeV) of each calorimeter, applied to every cell
    #: after lateral spreading (and noise): a cell below it reads 0 and its energy is dropped (not
    #: moved elsewhere). 0 = off (paper mode).
    cell_threshold_emcal: float = _D["cell_threshold_emcal"]
    cell_threshold_hcal: float = _D["cell_threshold_hcal"]
    #: Grid size: ``grid`` x ``grid`` pixels over the fixed eta/phi extent (pfgraph.geometry.GRID_SIZES).
    grid: int = _D["grid"]

    def validate(self) -> None:
        """Reject impossible values."""
        for name in ("res_scale", "trk_res", "emc_res", "hcal_res", "nonlin", "trk_threshold",
                     "ecal_threshold", "hcal_threshold", "shower_sigma_emcal", "shower_sigma_hcal",
                     "shower_width_emcal", "shower_width_hcal", "noise_emcal", "noise_hcal", "noise_threshold_sigma",
                     "cell_threshold_emcal", "cell_threshold_hcal"):
            _positive(getattr(self, name), f"detector.{name}")
        for name in ("em_ecal_fraction", "had_ecal_fraction", "hcal_fraction"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ConfigError(f"detector.{name} = {v}: expected a fraction in [0, 1]")
        if not np.isfinite(self.b_field) or abs(self.b_field) > MAX_B_FIELD:
            raise ConfigError(f"detector.b_field = {self.b_field:g}: expected a field in tesla, |B| <= {MAX_B_FIELD:g} "
                              "(the strongest magnets built)")
        try:
            geometry.check_grid_size(self.grid)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for layer in ("emcal", "hcal"):
            if getattr(self, f"shower_sigma_{layer}") and getattr(self, f"shower_width_{layer}"):
                raise ConfigError(f"detector.shower_sigma_{layer} and detector.shower_width_{layer} are both set: "
                                  "give the lateral width once (shower_width_*, in eta-phi units)")

    @property
    def pixel_grid(self) -> geometry.Grid:
        """The :class:`pfgraph.geometry.Grid` of ``grid`` pixels a side."""
        return geometry.grid(self.grid)

    def shower_sigma_pixels(self, layer: str) -> tuple[float, float]:
        """Gaussian shower sigma of ``layer`` ('emcal' | 'hcal') in pixels (eta, phi) of this grid.

        ``shower_width_<layer>`` (eta-phi units) divided by the pixel sizes; the older
        ``shower_sigma_<layer>`` (pixels of the paper's grid) scaled by ``grid / PAPER_GRID_SIZE``, so
        either covers the same eta-phi area at every grid size (exactly the configured pixels on the paper's grid).
        """
        width = float(getattr(self, f"shower_width_{layer}"))
        if width > 0:
            g = self.pixel_grid
            return width / g.eta_pixel, width / g.phi_pixel
        sigma = float(getattr(self, f"shower_sigma_{layer}")) * (self.grid / geometry.PAPER_GRID_SIZE)
        return sigma, sigma

    @property
    def paper_mode(self) -> bool:
        """True when no extension beyond the paper is switched on."""
        return not (self.phi_wrap or self.shower_sigma_emcal or self.shower_sigma_hcal
                    or self.shower_width_emcal or self.shower_width_hcal
                    or self.noise_emcal or self.noise_hcal
                    or self.cell_threshold_emcal or self.cell_threshold_hcal)


@dataclass
class PileupConfig:
    """Pile-up: Poisson(mu) extra soft particles per event that hit the detector but not truth."""

    mu: float = 0.0
    energy_scale: float = 0.5

    def validate(self) -> None:
        """Reject impossible values."""
        _positive(self.mu, "pileup.mu")
        _positive(self.energy_scale, "pileup.energy_scale")


@dataclass
class JetConfig:
    """Pythia 8 jet injection (jet test sample, DESIGN §2)."""

    enabled: bool = False
    e_cm: float = 7000.0
    pthat_min: float = 120.0
    tune: int = 14
    radius: float = 0.4
    settings: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Reject impossible values."""
        _positive(self.e_cm, "jets.e_cm", strict=True)
        _positive(self.pthat_min, "jets.pthat_min")
        if not 0 < self.radius <= 2 * geometry.MAX_ETA:
            raise ConfigError(f"jets.radius = {self.radius}: expected 0 < R <= {2 * geometry.MAX_ETA}")


#: ``output.dense_images: auto`` writes dense image branches up to this grid size (the paper's) and the
#: sparse-first layout above it: at 112 x 112 and finer the images are mostly zeros (docs/BENCHMARKS.md,
#: "Granularity": bytes per event of both layouts).
DENSE_UP_TO = geometry.PAPER_GRID_SIZE


@dataclass
class OutputConfig:
    """How files are written."""

    compression: str = "lz4:1"
    chunk: int = 500
    format: Literal["ttree", "rntuple"] = "ttree"
    #: Also write the ``oracle`` image (and ``pix_oracle``): every truth particle's energy estimated
    #: from its own track and calorimeter measurements alone, at its production pixel (the measured
    #: floor of a reconstruction, docs/METRICS.md). Off: files without it, as before.
    oracle: bool = False
    #: Whether the events tree holds the dense ``float[G][G]`` image branches: ``always``, ``never``
    #: (the sparse-first layout: the point cloud and the sparse truth are the data; readers rebuild the
    #: images from them, docs/SCHEMA.md), or ``auto``: dense on the paper's grid only
    #: (:data:`DENSE_UP_TO` pixels a side), sparse-first on every finer grid.
    dense_images: Literal["auto", "always", "never"] = "auto"

    def validate(self) -> None:
        """Reject impossible values."""
        if self.chunk <= 0:
            raise ConfigError(f"output.chunk = {self.chunk}: expected a positive number of events")
        from pfgraph.io.root import parse_compression

        try:
            parse_compression(self.compression)
        except Exception as exc:
            raise ConfigError(f"output.compression: {exc}") from None


@dataclass
class SimConfig:
    """A whole dataset: size, master seed, physics and output settings."""

    name: str = "gauss"
    events: int = 10000
    seed: int = 1
    particles: ParticleConfig = field(default_factory=ParticleConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    pileup: PileupConfig = field(default_factory=PileupConfig)
    jets: JetConfig = field(default_factory=JetConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def dense_layout(self) -> bool:
        """True when the files hold the dense image branches (``output.dense_images``, :data:`DENSE_UP_TO`)."""
        mode = self.output.dense_images
        return mode == "always" or (mode == "auto" and self.detector.grid <= DENSE_UP_TO)

    def validate(self) -> None:
        """Reject impossible values."""
        if self.events < 0:
            raise ConfigError(f"events = {self.events}: expected a non-negative number of events")
        if self.seed < 0:
            raise ConfigError(f"seed = {self.seed}: expected a non-negative integer")
