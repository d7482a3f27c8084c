"""The one data contract: tree and branch names, dtypes, shapes, units and the schema version.

Everything that reads or writes pfgraph files takes names from here. ``pfgraph schema`` and
``docs/SCHEMA.md`` are generated from these definitions. The grid the images live on (size,
eta/phi ranges, pixel sizes) is the detector's, defined in :mod:`pfgraph.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pfgraph.geometry import INPUT_CHANNELS

#: Version of the file layout. Readers refuse files from a newer version.
SCHEMA_VERSION = 3

#: Tree names.
EVENTS_TREE = "events"
PREDICTIONS_TREE = "predictions"
JETS_TREE = "jets"
#: Name of the TObjString holding the JSON metadata (config, schema version, package version).
META_KEY = "pfgraph_meta"

# Model inputs, in channel order: INPUT_CHANNELS, the detector's layers (pfgraph.geometry).
#: Targets.
TARGET_CHANNELS = ("truth", "truth_neutral")
#: All dense images of an event file (``jet`` only in jet-sample files).
IMAGE_CHANNELS = INPUT_CHANNELS + TARGET_CHANNELS
JET_IMAGE = "jet"
#: The measured floor (optional, ``output.oracle``): every truth particle's energy estimated from its own
#: measurements alone, at its production pixel (docs/METRICS.md).
ORACLE_IMAGE = "oracle"

#: Jagged point-cloud branches share the counter ``npix`` (uproot's ``n<name>`` convention).
POINT_PREFIX = "pix"
POINT_COUNTER = "npix"
#: The sparse truth of sparse-first files: every pixel where any truth-side image (``truth``,
#: ``truth_neutral``, ``oracle``, ``jet``) is non-zero, jagged with the counter ``ntpix``.
TRUTH_PREFIX = "tpix"
TRUTH_COUNTER = "ntpix"

#: Event-file layouts (``layout`` of the meta; files without it are dense): ``dense`` holds the
#: G x G images as branches, ``sparse`` (sparse-first) holds none; its point cloud and sparse truth
#: are the data, and readers rebuild any image from them (:func:`sparse_source`).
LAYOUTS = ("dense", "sparse")


@dataclass(frozen=True)
class Branch:
    """One branch of a tree: name, numpy dtype, per-entry shape, unit and meaning.

    Images (``kind == "image"``) are ``G x G`` on the file's grid (``imsize`` of its meta):
    their ``shape`` is empty here and :meth:`shape_for` gives it for a grid size; ``root_type``
    and ``rntuple_type`` spell the grid size ``G``.
    """

    name: str
    dtype: str
    kind: str  # "scalar" | "image" | "jagged" | "counter"
    unit: str
    doc: str
    shape: tuple[int, ...] = ()
    optional: bool = False
    #: For jagged branches: the name of their counter branch (default ``npix``).
    counter: str = ""

    @property
    def np_dtype(self) -> np.dtype:
        """The numpy dtype of one element."""
        return np.dtype(self.dtype)

    def shape_for(self, size: int) -> tuple[int, ...]:
        """Per-entry shape on the ``size`` x ``size`` grid (``(size, size)`` for images)."""
        return (size, size) if self.kind == "image" else self.shape

    @property
    def root_type(self) -> str:
        """The C++ leaf type as ROOT shows it (images: ``G`` for the grid size)."""
        return self.root_type_for("G")

    def root_type_for(self, size: int | str) -> str:
        """The C++ leaf type as ROOT shows it on the ``size`` grid."""
        base = {"float32": "float", "float64": "double", "int16": "short", "int32": "int",
                "int64": "long", "bool": "bool", "uint8": "unsigned char"}[self.dtype]
        if self.kind == "image":
            return f"{base}[{size}][{size}]"
        if self.kind == "jagged":
            return f"{base}[{self.counter_name}]"
        return base

    @property
    def counter_name(self) -> str:
        """The counter branch of a jagged branch (``npix`` for the point cloud)."""
        return self.counter or (POINT_COUNTER if self.name.startswith(POINT_PREFIX) else "n")

    @property
    def rntuple_type(self) -> str:
        """The RNTuple field type as ROOT and uproot name it (``--format rntuple`` files; images: ``G``)."""
        return self.rntuple_type_for("G")

    def rntuple_type_for(self, size: int | str) -> str:
        """The RNTuple field type on the ``size`` grid."""
        base = {"float32": "float", "float64": "double", "int16": "std::int16_t", "int32": "std::int32_t",
                "int64": "std::int64_t", "bool": "bool", "uint8": "std::uint8_t"}[self.dtype]
        if self.kind == "image":
            return f"std::array<std::array<{base},{size}>,{size}>"
        if self.kind == "jagged":
            return f"std::vector<{base}>"
        return base


_IMAGE_DOCS = {
    "emcal": "EM calorimeter energy at the (B-deflected) position",
    "hcal": "hadronic calorimeter energy at the (B-deflected) position",
    "trk_neg": "tracker: smeared energy of negative tracks at the production position",
    "trk_pos": "tracker: smeared energy of positive tracks at the production position",
    "truth": "true energy of every particle at its production position (training target)",
    "truth_neutral": "true energy of neutral particles only",
    "jet": "jet-sample files only: true energy of the injected Pythia jet constituents",
    "oracle": "files simulated with output.oracle only: every truth particle's energy estimated from its own "
              "track, ECAL and HCAL measurements (inverse-variance combination, docs/METRICS.md) at its "
              "production position",
}

EVENT_BRANCHES: tuple[Branch, ...] = (
    Branch("event_id", "int64", "scalar", "", "unique event number within the dataset"),
    *(Branch(c, "float32", "image", "GeV", _IMAGE_DOCS[c]) for c in IMAGE_CHANNELS),
    Branch(JET_IMAGE, "float32", "image", "GeV", _IMAGE_DOCS[JET_IMAGE], optional=True),
    Branch(POINT_COUNTER, "int32", "counter", "", "number of points: pixels where any input channel is non-zero"),
    Branch("pix_ieta", "int16", "jagged", "pixel", "eta pixel index (row, 0..G-1)"),
    Branch("pix_iphi", "int16", "jagged", "pixel", "phi pixel index (column, 0..G-1)"),
    Branch("pix_eta", "float32", "jagged", "", "eta of the pixel centre"),
    Branch("pix_phi", "float32", "jagged", "rad", "phi of the pixel centre"),
    *(Branch(f"pix_{c}", "float32", "jagged", "GeV", f"{c} at the point") for c in IMAGE_CHANNELS),
    Branch(ORACLE_IMAGE, "float32", "image", "GeV", _IMAGE_DOCS[ORACLE_IMAGE], optional=True),
    Branch(f"{POINT_PREFIX}_{ORACLE_IMAGE}", "float32", "jagged", "GeV", "oracle at the point (files with the "
           "oracle image)", optional=True),
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

#: The sparse truth (sparse-first files only): the truth-side images at every pixel where any of them
#: is non-zero, in row-major (ieta, iphi) order.
TRUTH_SIDE_IMAGES = (*TARGET_CHANNELS, ORACLE_IMAGE, JET_IMAGE)
SPARSE_TRUTH_BRANCHES: tuple[Branch, ...] = (
    Branch(TRUTH_COUNTER, "int32", "counter", "", "sparse-first files: number of truth cells (pixels where "
           "truth, truth_neutral, oracle or jet is non-zero)", optional=True),
    Branch(f"{TRUTH_PREFIX}_ieta", "int16", "jagged", "pixel", "sparse-first files: eta pixel index of the "
           "truth cell", optional=True, counter=TRUTH_COUNTER),
    Branch(f"{TRUTH_PREFIX}_iphi", "int16", "jagged", "pixel", "sparse-first files: phi pixel index of the "
           "truth cell", optional=True, counter=TRUTH_COUNTER),
    *(Branch(f"{TRUTH_PREFIX}_{c}", "float32", "jagged", "GeV", f"sparse-first files: {c} at the truth cell"
             + (" (files with the oracle image)" if c == ORACLE_IMAGE else " (jet samples)" if c == JET_IMAGE else ""),
             optional=True, counter=TRUTH_COUNTER) for c in TRUTH_SIDE_IMAGES),
)
EVENT_BRANCHES = EVENT_BRANCHES + SPARSE_TRUTH_BRANCHES

POINT_CHANNEL_BRANCHES = tuple(f"pix_{c}" for c in IMAGE_CHANNELS)
POINT_BRANCHES = ("pix_ieta", "pix_iphi", "pix_eta", "pix_phi", *POINT_CHANNEL_BRANCHES)

EVENT_BRANCH_MAP = {b.name: b for b in EVENT_BRANCHES}
REQUIRED_EVENT_BRANCHES = tuple(b.name for b in EVENT_BRANCHES if not b.optional)
#: The required branches of a sparse-first file: no image, the sparse truth instead.
REQUIRED_SPARSE_BRANCHES = (
    *(n for n in REQUIRED_EVENT_BRANCHES if EVENT_BRANCH_MAP[n].kind != "image"),
    TRUTH_COUNTER, f"{TRUTH_PREFIX}_ieta", f"{TRUTH_PREFIX}_iphi", *(f"{TRUTH_PREFIX}_{c}" for c in TARGET_CHANNELS),
)


def required_event_branches(layout: str = "dense") -> tuple[str, ...]:
    """The branches every events file of ``layout`` (:data:`LAYOUTS`) has."""
    return REQUIRED_SPARSE_BRANCHES if layout == "sparse" else REQUIRED_EVENT_BRANCHES


def sparse_source(image: str) -> tuple[str, str, str, str] | None:
    """Where a sparse-first file holds image ``image``: ``(counter, ieta, iphi, values)`` branch names
    (the point cloud for the inputs, the sparse truth for the truth-side images); None for a name that
    is not an image. The image is zero at every other pixel: exact, by the definition of both sets."""
    if image in INPUT_CHANNELS:
        return POINT_COUNTER, f"{POINT_PREFIX}_ieta", f"{POINT_PREFIX}_iphi", f"{POINT_PREFIX}_{image}"
    if image in TRUTH_SIDE_IMAGES:
        return TRUTH_COUNTER, f"{TRUTH_PREFIX}_ieta", f"{TRUTH_PREFIX}_iphi", f"{TRUTH_PREFIX}_{image}"
    return None


def file_layout(meta: dict | None) -> str:
    """The layout of an events file from its meta (``layout``; files without it are dense)."""
    return str((meta or {}).get("layout", "dense"))

# ------------------------------------------------------------------ input-only files

#: The minimal input layout: an ``events`` tree that ``pfgraph predict`` can read without truth
#: (events from another simulation, or real data). ``event_id`` plus the four detector channels,
#: dense (what image models read) and/or as the point cloud (what graph models read), with the
#: dtypes and shapes of :data:`EVENT_BRANCHES`; ``pfgraph_meta`` needs ``schema_version`` and
#: ``kind: "events"``, and should carry the detector config as ``config.detector`` (the keys of
#: ``pfgraph simulate``'s ``detector`` section), which predict compares with the training data's.
INPUT_DENSE_BRANCHES = ("event_id", *INPUT_CHANNELS)
INPUT_POINT_BRANCHES = ("event_id", POINT_COUNTER, "pix_ieta", "pix_iphi", *(f"pix_{c}" for c in INPUT_CHANNELS))
#: The layouts by the representation that reads them.
INPUT_LAYOUTS = {"image": INPUT_DENSE_BRANCHES, "graph": INPUT_POINT_BRANCHES}


# ------------------------------------------------------------------ evaluation outputs

_JET_FIELDS: tuple[tuple[str, str, str, str, bool], ...] = (
    # (field, dtype, unit, meaning, optional)
    ("pt", "float32", "GeV", "transverse momentum (E-scheme sum of massless pixel pseudojets)", False),
    ("energy", "float32", "GeV", "energy", False),
    ("eta", "float32", "", "axis eta", False),
    ("phi", "float32", "rad", "axis phi", False),
    ("ceta", "float32", "pixel", "axis as a fractional eta pixel index (row)", True),
    ("cphi", "float32", "pixel", "axis as a fractional phi pixel index (column)", True),
    ("nconst", "int32", "", "number of constituent pixels", True),
)

#: The ``predictions`` tree of ``pfgraph evaluate``'s ``predictions.root`` (one entry per event).
PREDICTION_BRANCHES: tuple[Branch, ...] = (
    Branch("event_id", "int64", "scalar", "", "event_id of the evaluated events file"),
    Branch("pred", "float32", "image", "GeV", "predicted energy per truth-grid pixel (after to_grid, de-normalised)"),
    Branch("truth", "float32", "image", "GeV", "true energy per pixel (the evaluated target image; "
           "absent from pfgraph predict's files)", optional=True),
    Branch(POINT_COUNTER, "int32", "counter", "", "graph models: number of points (as in the events file)",
           optional=True),
    Branch("pix_pred", "float32", "jagged", "GeV", "graph models: predicted energy per point, aligned with the "
           "events file's pix_* branches", optional=True),
)

#: The ``jets`` tree of ``predictions.root`` (jet-sample evaluations; one entry per event):
#: anti-kt R=0.4 jets of the truth image and of the prediction, jagged with their own counters.
JET_BRANCHES: tuple[Branch, ...] = (
    Branch("event_id", "int64", "scalar", "", "event_id of the evaluated events file"),
    *(b for side, what in (("truth", "truth image"), ("pred", "predicted image")) for b in (
        Branch(f"n{side}_jet", "int32", "counter", "", f"number of jets of the {what}"),
        *(Branch(f"{side}_jet_{f}", dt, "jagged", unit, f"{what} jets: {doc}", optional=opt, counter=f"n{side}_jet")
          for f, dt, unit, doc, opt in _JET_FIELDS),
    )),
    # per-event matching and deviations, as the evaluation computed and summarised them (metrics.json `jets`)
    Branch("truth_rank", "int32", "scalar", "", "pT rank of the selected truth jet (nearest the injected axis); -1: none",
           optional=True),
    Branch("pred_rank", "int32", "scalar", "", "pT rank of the selected prediction jet (nearest the truth jet); -1: none",
           optional=True),
    Branch("matched", "bool", "scalar", "", "the prediction jet lies within R of the truth jet", optional=True),
    Branch("d_jet", "float32", "scalar", "pixel", "jet position deviation D_jet (metrics: jets.position)",
           optional=True),
    Branch("deta_pix", "float32", "scalar", "pixel", "eta deviation of the jet axes", optional=True),
    Branch("dphi_pix", "float32", "scalar", "pixel", "phi deviation of the jet axes (wrapped)", optional=True),
    Branch("de_jet", "float32", "scalar", "GeV", "sum over the truth jet's pixels of (E_pred - E_true)", optional=True),
    Branch("de_jet_norm", "float32", "scalar", "", "de_jet / S, the paper's normalised form (metrics: jets.energy_norm)",
           optional=True),
    Branch("de_jet_rel", "float32", "scalar", "", "de_jet / E_truth_jet: truth-jet-pixel definition "
           "(metrics: jets.energy_rel)", optional=True),
    Branch("truth_energy", "float32", "scalar", "GeV", "energy of the selected truth jet", optional=True),
    Branch("truth_pt", "float32", "scalar", "GeV", "pT of the selected truth jet", optional=True),
    Branch("de_match_rel", "float32", "scalar", "", "(E_pred_jet - E_truth_jet) / E_truth_jet of the selected jets' own "
           "energies: matched-jet definition (metrics: jets.energy_match_rel)", optional=True),
)

PREDICTION_BRANCH_MAP = {b.name: b for b in PREDICTION_BRANCHES}
JET_BRANCH_MAP = {b.name: b for b in JET_BRANCHES}


@dataclass(frozen=True)
class TreeSpec:
    """One tree of the data contract: name, which file holds it, its branches and meaning."""

    name: str
    file: str
    doc: str
    branches: tuple[Branch, ...]


TREES: tuple[TreeSpec, ...] = (
    TreeSpec(EVENTS_TREE, "pfgraph simulate output (data/*.root)",
             "one entry per event: dense G x G images (dense layout) or the sparse truth (sparse-first layout), "
             "the sparse point cloud and bookkeeping scalars",
             EVENT_BRANCHES),
    TreeSpec(PREDICTIONS_TREE, "pfgraph evaluate output (evals/*/predictions.root) and pfgraph predict output",
             "one entry per evaluated event: the model's prediction and the truth on the file's G x G grid (pfgraph "
             "predict: no truth, one entry per input event in the input's order, a friend of its events tree)",
             PREDICTION_BRANCHES),
    TreeSpec(JETS_TREE, "pfgraph evaluate output on jet samples (evals/*/predictions.root)",
             "one entry per evaluated event: anti-kt jets of the truth and of the prediction",
             JET_BRANCHES),
)
TREE_MAP = {t.name: t for t in TREES}

#: Keys of the ``pfgraph_meta`` JSON string (others may be present).
META_FIELDS: tuple[tuple[str, str], ...] = (
    ("schema_version", "integer version of this layout (see the history below)"),
    ("pfgraph_version", "version of the pfgraph package that wrote the file"),
    ("kind", "'events' or 'predictions'"),
    ("imsize", "grid size G: images are G x G (detector.grid; the paper's by default)"),
    ("max_eta", "eta range of the grid is [-max_eta, max_eta] (2.5); phi is [-pi, pi]"),
    ("config", "events files: the full resolved generation config"),
    ("seed", "events files: master seed; event i depends only on (seed, i)"),
    ("events, first_event, shard, shards", "events files: this shard's event range"),
    ("with_jet", "events files: true for jet samples (the jet branches exist)"),
    ("layout", "events files: 'sparse' for sparse-first files (no image branches; output.dense_images); "
     "absent or 'dense': the images are branches"),
    ("model, dataset, ...", "predictions files: the evaluated model and data (see pfgraph evaluate)"),
    ("created_by, backend, normalisation, training_data", "pfgraph predict files: 'pfgraph predict', torch or "
     "onnxruntime, the checkpoint's normalisation, the training data's identity and detector config"),
    ("detector_check, detector_differences, allow_config_mismatch", "pfgraph predict files: 'same', 'mismatch "
     "allowed' (with the differing keys), 'no detector config' or 'training config unknown'"),
)

#: Oldest schema version a reader of this pfgraph accepts (with :data:`MIGRATIONS` applied).
MIN_SCHEMA_VERSION = 1

#: What each schema version changed. Bump :data:`SCHEMA_VERSION` for any change a reader
#: must know about, add a line here and, where old files can still be read, a :class:`Migration`.
SCHEMA_HISTORY: dict[int, str] = {
    1: "first version: events, predictions and jets trees as described here",
    2: "optional oracle image and pix_oracle point branch (files simulated with output.oracle); "
       "version 1 files are read as they are (they have no oracle)",
    3: "sparse-first events files (meta layout 'sparse', output.dense_images): no image branches, the point "
       "cloud and the sparse truth (ntpix, tpix_*) are the data; the images of dense files become required "
       "only in the dense layout; files of versions 1-2 are dense and read as they are",
}


@dataclass(frozen=True)
class Migration:
    """How a reader at version ``to_version`` reads a file written at ``to_version - 1``.

    ``renamed`` maps a branch's name at ``to_version`` to its name in the older file;
    ``added`` gives the constant a scalar branch new at ``to_version`` takes in older files.
    """

    to_version: int
    note: str
    renamed: tuple[tuple[str, str], ...] = ()
    added: tuple[tuple[str, float], ...] = ()


#: The migrations the reader applies, one per version step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "optional oracle branches added; nothing renamed, no constant needed"),
    Migration(3, "sparse-first layout added; older files are dense: nothing renamed, no constant needed"),
)
