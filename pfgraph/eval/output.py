"""``predictions.root``: model predictions and jets on the truth grid, readable without pfgraph.

Tree ``predictions`` (one entry per event; the contract's ``PREDICTION_BRANCHES`` plus
``model``, ``pix_ieta``, ``pix_iphi``):

==============  =====================  ===============================================
``event_id``    int64                  the event's id in the data file
``model``       int32                  model number; names in meta ``model_names``
``pred``        float32[G][G]          prediction, GeV (eta along axis 1, phi axis 2)
``truth``       float32[G][G]          truth, GeV
``npix``, ``pix_ieta``, ``pix_iphi``, ``pix_pred``   graph models only: the per-point
                                       prediction (GeV) at the event file's points
==============  =====================  ===============================================

Tree ``jets`` (jet-sample files only, one entry per event; the contract's ``JET_BRANCHES``
plus ``rap`` and the matching scalars): ``event_id``; all inclusive anti-kt jets of the truth
image (``ntruth_jet`` + ``truth_jet_<f>``) and of the prediction (``npred_jet`` +
``pred_jet_<f>``), ``f`` in pt, energy (GeV), eta, phi (rad, [-pi, pi)), ceta, cphi (axis in
fractional pixels, pixel k's centre at k), nconst (constituent pixels) and rap (FastJet's
rapidity). **The selected jet comes first** (truth: the jet nearest the injected axis (0, 0);
prediction: the jet nearest that truth jet), the others follow in decreasing pT, so
``truth_jet_pt[0]`` is the evaluated jet. Scalars: ``truth_rank``, ``pred_rank`` (pT rank of
the selected jets, -1 when an image has none), ``matched`` (prediction jet within R),
``d_jet``, ``deta_pix``, ``dphi_pix`` (pixels), ``de_jet`` (GeV, summed over the truth jet's
pixels), ``de_jet_norm`` (/ S), ``de_jet_rel`` (/ truth jet energy), ``truth_energy``,
``truth_pt``, ``de_match_rel`` ((E_pred_jet - E_truth_jet) / E_truth_jet of the selected jets'
own energies; NaN without a prediction jet; absent from files written before metrics schema 3).

The clustering settings (R, threshold, backend, tie-break), S, model and data set are in the
``pfgraph_meta`` JSON string of the file. Strings are not stored per entry: ``model`` is a
number whose name is ``meta["model_names"][model]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from pfgraph import geometry
from pfgraph.errors import DataError
from pfgraph.eval.jets import MATCH_FIELDS, JetTable
from pfgraph.io import schema
from pfgraph.io.root import RootWriter, check_tree, corrupt, migration_for, open_root, read_meta, reason, tree_names

PREDICTIONS_KIND = "predictions"
_JET_DTYPES = {"pt": "float32", "energy": "float32", "eta": "float32", "phi": "float32", "ceta": "float32",
               "cphi": "float32", "nconst": "int32", "rap": "float32"}
_MATCH_DTYPES = {"truth_rank": np.int32, "pred_rank": np.int32, "matched": np.bool_, "d_jet": np.float32,
                 "deta_pix": np.float32, "dphi_pix": np.float32, "de_jet": np.float32, "de_jet_norm": np.float32,
                 "de_jet_rel": np.float32, "truth_energy": np.float32, "truth_pt": np.float32,
                 "de_match_rel": np.float32}


def _record_type(fields: Mapping[str, str]) -> Any:
    inner = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return ak.types.from_datashape(f"var * {{{inner}}}", highlevel=False)


def _jagged(counts: np.ndarray, fields: Mapping[str, np.ndarray], dtypes: Mapping[str, str]) -> ak.Array:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    contents = [ak.contents.NumpyArray(np.ascontiguousarray(np.asarray(fields[k], dtype=dtypes[k]))) for k in dtypes]
    record = ak.contents.RecordArray(contents, list(dtypes), length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


class PredictionWriter:
    """Writes ``predictions.root`` atomically: nothing appears under ``path`` unless it completes.

    ``with PredictionWriter(path, meta, graph=..., jets=...) as w: w.write(...)``; ``format="rntuple"``
    writes RNTuples with the same column names (see :class:`~pfgraph.io.root.RootWriter`).
    """

    def __init__(self, path: str | os.PathLike[str], meta: Mapping[str, Any], graph: bool = False, jets: bool = False,
                 compression: str | None = "zstd:1", format: str = "ttree", truth: bool = True) -> None:
        self.graph, self.jets, self.truth = graph, jets, truth
        self._writer = RootWriter(path, meta, compression, format)

    def __enter__(self) -> PredictionWriter:
        self._writer.__enter__()
        try:
            size = geometry.grid_of_meta(self._writer.meta).size  # the meta's imsize: the evaluated data's grid
            img = np.dtype((np.float32, (size, size)))
            types: dict[str, Any] = {"event_id": np.int64, "model": np.int32, "pred": img}
            if self.truth:  # pfgraph predict's files (truth=False) have no truth branch
                types["truth"] = img
            if self.graph:
                types["pix"] = _record_type({"ieta": "int16", "iphi": "int16", "pred": "float32"})
            self._writer.tree(schema.PREDICTIONS_TREE, types)
            if self.jets:
                jtypes: dict[str, Any] = {"event_id": np.int64,
                                          "truth_jet": _record_type(_JET_DTYPES), "pred_jet": _record_type(_JET_DTYPES)}
                jtypes.update(_MATCH_DTYPES)
                self._writer.tree(schema.JETS_TREE, jtypes)
        except BaseException as exc:
            self._writer.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def write(self, event_id: np.ndarray, pred: np.ndarray, truth: np.ndarray | None, model_id: int = 0,
              pix: tuple[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[np.ndarray]] | None = None) -> None:
        """Append a batch to ``predictions``; ``pix`` = per-event (ieta, iphi, pred) lists for graph models
        (``truth`` None for a writer without truth)."""
        ev = np.asarray(event_id, dtype=np.int64)
        data: dict[str, Any] = {"event_id": ev, "model": np.full(len(ev), model_id, np.int32),
                                "pred": np.ascontiguousarray(pred, dtype=np.float32)}
        if self.truth:
            if truth is None:
                raise DataError("this predictions file has a truth branch: give the truth images")
            data["truth"] = np.ascontiguousarray(truth, dtype=np.float32)
        if self.graph:
            if pix is None:
                raise DataError("graph-model predictions need per-point values (pix_pred)")
            ieta, iphi, pp = pix
            counts = np.array([len(x) for x in pp], dtype=np.int64)
            flat = {"ieta": np.concatenate(ieta) if len(ieta) else np.zeros(0),
                    "iphi": np.concatenate(iphi) if len(iphi) else np.zeros(0),
                    "pred": np.concatenate(pp) if len(pp) else np.zeros(0)}
            data["pix"] = _jagged(counts, flat, {"ieta": "int16", "iphi": "int16", "pred": "float32"})
        self._writer.extend(schema.PREDICTIONS_TREE, data)

    def write_jets(self, event_id: np.ndarray, truth: JetTable, pred: JetTable, match: Mapping[str, np.ndarray]) -> None:
        """Append a batch to ``jets``."""
        data: dict[str, Any] = {"event_id": np.asarray(event_id, dtype=np.int64),
                                "truth_jet": _jagged(truth.counts, truth.fields, _JET_DTYPES),
                                "pred_jet": _jagged(pred.counts, pred.fields, _JET_DTYPES)}
        for k in MATCH_FIELDS:
            data[k] = np.asarray(match[k]).astype(_MATCH_DTYPES[k])
        self._writer.extend(schema.JETS_TREE, data)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return self._writer.__exit__(exc_type, exc, tb)


def read_predictions(path: str | os.PathLike[str], max_events: int | None = None) -> dict[str, Any]:
    """Read and check a predictions file: ``meta``, ``event_id``, ``pred``, ``truth`` (numpy).

    TTree or RNTuple. One :class:`DataError` line for anything else: not ROOT, no meta, another
    kind, another grid size (meta or branch shapes), missing branches, wrong dtypes, NaN/Inf.
    """
    p = Path(path)
    f = open_root(p)
    meta = read_meta(f, p)  # schema version and the grid size recorded in the meta
    if meta.get("kind") != PREDICTIONS_KIND:
        raise DataError(f"{p}: a '{meta.get('kind')}' file, expected a predictions file")
    if schema.PREDICTIONS_TREE not in tree_names(f):
        raise DataError(f"{p}: tree '{schema.PREDICTIONS_TREE}' missing")
    tree = f[schema.PREDICTIONS_TREE]
    if "truth" not in tree:
        who = "written by pfgraph predict, " if meta.get("created_by") == "pfgraph predict" else ""
        raise DataError(f"{p}: {who}no 'truth' branch to evaluate against; evaluate the run folder on a "
                        "file with truth instead")
    try:
        check_tree(tree, p, schema.PREDICTION_BRANCHES, migration_for(int(meta["schema_version"]), p),
                   size=geometry.grid_of_meta(meta).size)
    except DataError as exc:
        raise DataError(f"{exc} (a prediction file of another grid size or layout?)") from None
    try:
        arrays = tree.arrays(["event_id", "pred", "truth"], entry_stop=max_events, library="ak")
    except Exception as exc:
        raise corrupt(p, f"tree '{schema.PREDICTIONS_TREE}': {reason(exc)}") from None
    out: dict[str, Any] = {"meta": meta, "event_id": ak.to_numpy(arrays["event_id"]).astype(np.int64)}
    for name in ("pred", "truth"):
        a = np.asarray(ak.to_numpy(arrays[name]), dtype=np.float32)
        size = geometry.grid_of_meta(meta).size
        if a.shape[1:] != (size, size):
            raise DataError(f"{p}: branch '{name}' has shape {list(a.shape[1:])}, expected "
                            f"[{size}][{size}], the grid of its meta (a prediction file of another grid size)")
        if not np.isfinite(a).all():
            bad = int(np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(1))[0])
            raise DataError(f"{p}: event {bad}, branch '{name}': NaN or Inf value, expected finite numbers")
        out[name] = a
    return out
