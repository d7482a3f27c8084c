"""The one data contract: tree and branch names, dtypes, shapes, units and the schema version.

Everything that reads or writes pfgraph files takes names from here. ``pfgraph schema`` and
``docs/SCHEMA.md`` are generated from these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Version of the file layout. Readers refuse files from a newer version.
SCHEMA_VERSION = 1

#: Grid: 56 bins in eta over [-2.5, 2.5] (axis 1, rows) x 56 bins in phi over [-pi, pi] (axis 2).
IMSIZE = 56
MAX_ETA = 2.5
ETA_EDGES = np.linspace(-MAX_ETA, MAX_ETA, IMSIZE + 1)
PHI_EDGES = np.linspace(-np.pi, np.pi, IMSIZE + 1)
ETA_CENTRES = 0.5 * (ETA_EDGES[:-1] + ETA_EDGES[1:])
PHI_CENTRES = 0.5 * (PHI_EDGES[:-1] + PHI_EDGES[1:])
ETA_PIXEL = 2 * MAX_ETA / IMSIZE
PHI_PIXEL = 2 * np.pi / IMSIZE

#: Tree names.
EVENTS_TREE = "events"
PREDICTIONS_TREE = "predictions"
JETS_TREE = "jets"
#: Name of the TObjString holding the JSON metadata (config, schema version, package version).
META_KEY = "pfgraph_meta"

#: Model inputs, in channel order.
INPUT_CHANNELS = ("emcal", "hcal", "trk_neg", "trk_pos")
#: Targets.
TARGET_CHANNELS = ("truth", "truth_neutral")
#: All dense images of an event file (``jet`` only in jet-sample files).
IMAGE_CHANNELS = INPUT_CHANNELS + TARGET_CHANNELS
JET_IMAGE = "jet"

#: Jagged point-cloud branches share the counter ``npix`` (uproot's ``n<name>`` convention).
POINT_PREFIX = "pix"
POINT_COUNTER = "npix"


@dataclass(frozen=True)
class Branch:
    """One branch of a tree: name, numpy dtype, per-entry shape, unit and meaning."""

    name: str
    dtype: str
    kind: str  # "scalar" | "image" | "jagged" | "counter"
    unit: str
    doc: str
    shape: tuple[int, ...] = ()
    optional: bool = False

    @property
    def np_dtype(self) -> np.dtype:
        """The numpy dtype of one element."""
        return np.dtype(self.dtype)

    @property
    def root_type(self) -> str:
        """The C++ leaf type as ROOT shows it."""
        base = {"float32": "float", "float64": "double", "int16": "short", "int32": "int",
                "int64": "long", "bool": "bool", "uint8": "unsigned char"}[self.dtype]
        if self.kind == "image":
            return f"{base}[{IMSIZE}][{IMSIZE}]"
        if self.kind == "jagged":
            return f"{base}[{POINT_COUNTER}]" if self.name.startswith(POINT_PREFIX) else f"{base}[n]"
        return base


_IMAGE_DOCS = {
    "emcal": "EM calorimeter energy at the (B-deflected) position",
    "hcal": "hadronic calorimeter energy at the (B-deflected) position",
    "trk_neg": "tracker: smeared energy of negative tracks at the production position",
    "trk_pos": "tracker: smeared energy of positive tracks at the production position",
    "truth": "true energy of every particle at its production position (training target)",
    "truth_neutral": "true energy of neutral particles only",
    "jet": "jet-sample files only: true energy of the injected Pythia jet constituents",
}

EVENT_BRANCHES: tuple[Branch, ...] = (
    Branch("event_id", "int64", "scalar", "", "unique event number within the dataset"),
    *(Branch(c, "float32", "image", "GeV", _IMAGE_DOCS[c], (IMSIZE, IMSIZE)) for c in IMAGE_CHANNELS),
    Branch(JET_IMAGE, "float32", "image", "GeV", _IMAGE_DOCS[JET_IMAGE], (IMSIZE, IMSIZE), optional=True),
    Branch(POINT_COUNTER, "int32", "counter", "", "number of points: pixels where any input channel is non-zero"),
    Branch("pix_ieta", "int16", "jagged", "pixel", "eta pixel index (row, 0..55)"),
    Branch("pix_iphi", "int16", "jagged", "pixel", "phi pixel index (column, 0..55)"),
    Branch("pix_eta", "float32", "jagged", "", "eta of the pixel centre"),
    Branch("pix_phi", "float32", "jagged", "rad", "phi of the pixel centre"),
    *(Branch(f"pix_{c}", "float32", "jagged", "GeV", f"{c} at the point") for c in IMAGE_CHANNELS),
    Branch("n_particles", "int32", "scalar", "", "number of generated particles (background + jet)"),
    Branch("n_charged", "int32", "scalar", "", "number of charged particles"),
    Branch("e_total", "float32", "scalar", "GeV", "sum of the truth image"),
    Branch("e_lost", "float32", "scalar", "GeV", "energy of charged particles deflected out of the phi range"),
    Branch("jet_pt", "float32", "scalar", "GeV", "jet files: leading Pythia jet pT", optional=True),
    Branch("jet_eta", "float32", "scalar", "", "jet files: leading jet eta before the move to (0,0)", optional=True),
    Branch("jet_phi", "float32", "scalar", "rad", "jet files: leading jet phi before the move to (0,0)", optional=True),
    Branch("jet_e", "float32", "scalar", "GeV", "jet files: injected jet energy after the boost", optional=True),
    Branch("n_jet_particles", "int32", "scalar", "", "jet files: number of injected constituents", optional=True),
)

POINT_CHANNEL_BRANCHES = tuple(f"pix_{c}" for c in IMAGE_CHANNELS)
POINT_BRANCHES = ("pix_ieta", "pix_iphi", "pix_eta", "pix_phi", *POINT_CHANNEL_BRANCHES)

EVENT_BRANCH_MAP = {b.name: b for b in EVENT_BRANCHES}
REQUIRED_EVENT_BRANCHES = tuple(b.name for b in EVENT_BRANCHES if not b.optional)


def pixel_centres(ieta: np.ndarray, iphi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eta, phi) of the centres of pixels (ieta, iphi)."""
    return ETA_CENTRES[ieta], PHI_CENTRES[iphi]
