"""Small hand-made pfgraph files for the I/O tests: events (with empty point clouds),
predictions and jets, and deliberately broken variants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from pfgraph import geometry
from pfgraph.io import schema
from pfgraph.io.root import EventWriter, RootWriter, jagged_record, make_meta

IMG = np.dtype((np.float32, (geometry.IMSIZE, geometry.IMSIZE)))
JET_FIELDS = ("pt", "energy", "eta", "phi", "ceta", "cphi", "nconst")


def synthetic_batch(n: int, seed: int = 0, empty: Iterable[int] = (), with_jet: bool = False,
                    first_id: int = 0) -> dict[str, np.ndarray]:
    """``n`` events of sparse random images (a few % occupancy) and bookkeeping scalars.

    Events listed in ``empty`` have no input energy at all (an empty point cloud) but keep a
    few truth-only pixels (energy out of reach of the point cloud).
    """
    rng = np.random.default_rng(seed)
    shape = (n, geometry.IMSIZE, geometry.IMSIZE)
    batch: dict[str, np.ndarray] = {"event_id": np.arange(first_id, first_id + n, dtype=np.int64)}
    for ch in schema.IMAGE_CHANNELS:
        occupied = rng.random(shape) < 0.04
        batch[ch] = np.where(occupied, rng.exponential(2.0, shape), 0).astype(np.float32)
    for i in empty:
        for ch in schema.INPUT_CHANNELS:
            batch[ch][i] = 0
    if with_jet:
        batch[schema.JET_IMAGE] = np.where(rng.random(shape) < 0.01, rng.exponential(5.0, shape), 0).astype(np.float32)
        for name in ("jet_pt", "jet_eta", "jet_phi", "jet_e"):
            batch[name] = rng.normal(50, 10, n).astype(np.float32)
        batch["n_jet_particles"] = rng.integers(1, 40, n).astype(np.int32)
    batch["n_particles"] = rng.integers(0, 2000, n).astype(np.int32)
    batch["n_charged"] = (batch["n_particles"] // 2).astype(np.int32)
    batch["e_total"] = batch["truth"].sum(axis=(1, 2), dtype=np.float64).astype(np.float32)
    batch["e_lost"] = rng.exponential(10.0, n).astype(np.float32)
    return batch


def write_events(path: Path, batch: Mapping[str, np.ndarray], fmt: str = "ttree", chunk: int = 4,
                 meta: Mapping[str, Any] | None = None, compression: str = "lz4:1", dense: bool = True) -> Path:
    """Write ``batch`` with :class:`EventWriter` in chunks of ``chunk`` events (``dense=False``: sparse-first)."""
    with_jet = schema.JET_IMAGE in batch
    m = make_meta("events", {"name": "synthetic"}, seed=0) if meta is None else dict(meta)
    n = len(batch["event_id"])
    with EventWriter(path, m, with_jet=with_jet, format=fmt, compression=compression,
                     with_oracle=schema.ORACLE_IMAGE in batch, dense=dense) as w:
        for a in range(0, n, chunk):
            w.write({k: v[a:a + chunk] for k, v in batch.items()})
    return path


def write_tree(path: Path, types: Mapping[str, Any], data: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
               tree: str = schema.EVENTS_TREE, fmt: str = "ttree") -> Path:
    """One tree with arbitrary branch types (for malformed files)."""
    with RootWriter(path, make_meta("events") if meta is None else meta, format=fmt) as w:
        w.tree(tree, types)
        w.extend(tree, data)
    return path


def event_types_and_data(batch: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The events tree's mktree types and one chunk of data for ``batch`` (to tamper with)."""
    from pfgraph.io.root import event_branch_types, point_cloud

    types = event_branch_types(schema.JET_IMAGE in batch, batch["truth"].shape[-1])
    npix, fields = point_cloud(batch)
    data: dict[str, Any] = {k: v for k, v in batch.items() if k in types}
    data[schema.POINT_PREFIX] = jagged_record(npix, fields)
    return types, data


def jets_record(rng: np.random.Generator, counts: np.ndarray) -> ak.Array:
    """Jagged jet records with every field of the schema's jets tree."""
    total = int(counts.sum())
    fields = {f: rng.uniform(5, 150, total).astype(np.float32) for f in ("pt", "energy")}
    fields["eta"] = rng.uniform(-2.5, 2.5, total).astype(np.float32)
    fields["phi"] = rng.uniform(-np.pi, np.pi, total).astype(np.float32)
    fields["ceta"] = ((fields["eta"] + geometry.MAX_ETA) / geometry.ETA_PIXEL - 0.5).astype(np.float32)
    fields["cphi"] = ((fields["phi"] + np.pi) / geometry.PHI_PIXEL - 0.5).astype(np.float32)
    fields["nconst"] = rng.integers(1, 300, total).astype(np.int32)
    return jagged_record(counts.astype(np.int32), fields)


def write_predictions(path: Path, events: Mapping[str, Any], fmt: str = "ttree", graph: bool = True,
                      jets: bool = True, seed: int = 0, noise: float = 0.1) -> Path:
    """A ``predictions.root`` laid out as :data:`schema.PREDICTION_BRANCHES` / :data:`schema.JET_BRANCHES`.

    ``events`` holds ``event_id``, ``truth`` and (for ``graph``) ``npix``; predictions are
    truth * (1 + noise * N(0,1)); jet counts vary from 0 to 3 per event.
    """
    rng = np.random.default_rng(seed)
    truth = np.asarray(events["truth"], dtype=np.float32)
    n = len(truth)
    pred = (truth * (1 + noise * rng.standard_normal(truth.shape))).astype(np.float32)
    types: dict[str, Any] = {"event_id": np.int64, "pred": IMG, "truth": IMG}
    data: dict[str, Any] = {"event_id": np.asarray(events["event_id"], dtype=np.int64), "pred": pred, "truth": truth}
    if graph:
        npix = np.asarray(events["npix"], dtype=np.int32)
        types["pix"] = ak.types.from_datashape("var * {pred: float32}", highlevel=False)
        data["pix"] = jagged_record(npix, {"pred": rng.exponential(1.0, int(npix.sum())).astype(np.float32)})
    with RootWriter(path, make_meta("predictions", model="synthetic", dataset="synthetic"), format=fmt) as w:
        w.tree(schema.PREDICTIONS_TREE, types)
        w.extend(schema.PREDICTIONS_TREE, data)
        if jets:
            dshape = ", ".join(f"{f}: {'int32' if f == 'nconst' else 'float32'}" for f in JET_FIELDS)
            jet_type = ak.types.from_datashape(f"var * {{{dshape}}}", highlevel=False)
            w.tree(schema.JETS_TREE, {"event_id": np.int64, "truth_jet": jet_type, "pred_jet": jet_type})
            counts_t = rng.integers(0, 4, n)
            counts_p = rng.integers(0, 4, n)
            w.extend(schema.JETS_TREE, {"event_id": data["event_id"], "truth_jet": jets_record(rng, counts_t),
                                        "pred_jet": jets_record(rng, counts_p)})
    return path


def rebuild_images(counts: np.ndarray, ieta: np.ndarray, iphi: np.ndarray,
                   values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dense (n, 56, 56) images from flat point arrays (scatter by event, ieta, iphi)."""
    n = len(counts)
    event = np.repeat(np.arange(n), counts)
    out = {}
    for name, v in values.items():
        img = np.zeros((n, geometry.IMSIZE, geometry.IMSIZE), dtype=np.float32)
        img[event, ieta, iphi] = v
        out[name] = img
    return out
