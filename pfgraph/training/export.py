"""``pfgraph export``: a trained run as an ONNX file that takes and gives GeV, and runs in onnxruntime.

    from pfgraph import export
    result = export("runs/edgeconv", "edgeconv.onnx")     # -> ExportResult(out, model, opset, ...)

What the file computes (normalisation inside the graph, so no pfgraph is needed to use it):

* image models (``repr`` image): input ``image`` float32 (B, 4, G, G), the detector channels
  [emcal, hcal, trk_neg, trk_pos] in GeV; output ``pred`` float32 (B, G, G) GeV on the truth grid
  (G: the training data's grid size, the metadata's ``grid``).
* graph models (``repr`` graph): inputs ``energy`` float32 (N, 4) GeV per point (same channel
  order), ``ieta``, ``iphi`` int64 (N,) pixel indices, ``npix`` int64 (B,) points per event (the
  events' points one after the other, as the ``pix_*`` branches of an events file) and ``nbr``
  int64 (N, 16) the static neighbour table (:mod:`pfgraph.repr.static_graph`, plain numpy);
  outputs ``pred_points`` float32 (N,) GeV per point and ``pred`` float32 (B, G, G) GeV (0 where
  an event has no point).

B and N are dynamic axes. The file's ``metadata_props`` record the pfgraph version, the model,
its config hash, the checkpoint's hash, the normalisation, the training data's identity and
detector config, the inputs and outputs with their units, the opset and the exporter.

Exporter: torch's TorchScript-based ONNX exporter (``torch.onnx.export(..., dynamo=False)``),
opset :data:`OPSET` (ScatterElements with max reduction needs 18). Every export is checked
before it is written: onnxruntime and torch run the same two synthetic batches of different
sizes and must agree to 1e-5 of the output scale, else nothing is written. A configuration that
cannot be exported (a model's ``export_refusal()``: dynamic kNN graphs, KD-tree edges) is
refused with one line.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pfgraph import __version__, geometry
from pfgraph.errors import DataError, PfgraphError
from pfgraph.utils.optional import optional_import

#: The ONNX opset of exported files.
OPSET = 18
#: What exported the graph (recorded in the file).
EXPORTER = f"torch.onnx.export(dynamo=False) TorchScript exporter, torch {torch.__version__.split('+')[0]}"
#: Parity tolerance: max |onnxruntime - torch| <= PARITY_RTOL x max(|torch output|, target scale).
PARITY_RTOL = 1e-5
CHANNELS = ", ".join(geometry.INPUT_CHANNELS)

IMAGE_INPUTS = [{"name": "image", "dtype": "float32", "shape": ["B", 4, "G", "G"], "unit": "GeV",
                 "doc": f"detector channels [{CHANNELS}] on the G x G grid (G: the metadata's grid)"}]
IMAGE_OUTPUTS = [{"name": "pred", "dtype": "float32", "shape": ["B", "G", "G"], "unit": "GeV",
                  "doc": "predicted energy per truth-grid pixel"}]
GRAPH_INPUTS = [
    {"name": "energy", "dtype": "float32", "shape": ["N", 4], "unit": "GeV", "doc": f"per point [{CHANNELS}]"},
    {"name": "ieta", "dtype": "int64", "shape": ["N"], "unit": "pixel", "doc": "eta pixel index 0..G-1"},
    {"name": "iphi", "dtype": "int64", "shape": ["N"], "unit": "pixel", "doc": "phi pixel index 0..G-1"},
    {"name": "npix", "dtype": "int64", "shape": ["B"], "unit": "", "doc": "points per event, events in row order"},
    {"name": "nbr", "dtype": "int64", "shape": ["N", 16], "unit": "",
     "doc": "static (eta, phi) neighbour table, global row indices, -1 padded (pfgraph/repr/static_graph.py)"},
]
GRAPH_OUTPUTS = [
    {"name": "pred_points", "dtype": "float32", "shape": ["N"], "unit": "GeV", "doc": "predicted energy per point"},
    {"name": "pred", "dtype": "float32", "shape": ["B", "G", "G"], "unit": "GeV",
     "doc": "per-point predictions on the truth grid, 0 where an event has no point"},
]


class ImageExport(nn.Module):
    """GeV images in, GeV grid out: the checkpoint's normalisation around an image model."""

    def __init__(self, model: nn.Module, input_scale: list[float], target_scale: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("inv_scale", 1.0 / torch.tensor(input_scale, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("target_scale", torch.tensor(float(target_scale), dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 4, G, G) GeV -> (B, G, G) GeV."""
        from pfgraph.repr.grid import image_to_grid

        return image_to_grid(self.model(image * self.inv_scale)) * self.target_scale


class GraphExport(nn.Module):
    """GeV points in, GeV per point and on the grid out: features, positions and the event vector
    are built inside the graph exactly as :mod:`pfgraph.repr.graph` builds them."""

    def __init__(self, model: nn.Module, input_scale: list[float], target_scale: float, size: int) -> None:
        super().__init__()
        self.model = model
        self.size = size  # the grid size G of the training data
        self.register_buffer("inv_scale", 1.0 / torch.tensor(input_scale, dtype=torch.float32).view(1, -1))
        self.register_buffer("target_scale", torch.tensor(float(target_scale), dtype=torch.float32))

    def forward(self, energy: torch.Tensor, ieta: torch.Tensor, iphi: torch.Tensor, npix: torch.Tensor,
                nbr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See the module docstring for the inputs; returns (pred_points (N,), pred (B, G, G))."""
        from pfgraph.repr.graph import point_features, point_positions

        n_side, npix_all = self.size, self.size * self.size
        pix = ieta * n_side + iphi
        # event index of every point: +1 at each event's end, cumulated (empty events included)
        ends = torch.cumsum(npix, 0)
        marks = torch.zeros_like(pix[:1]).expand(pix.size(0) + 1).clone()
        marks = marks.scatter_add(0, ends.clamp(max=pix.size(0)), torch.ones_like(ends))
        batch = torch.cumsum(marks, 0)[:-1]
        x = energy * self.inv_scale
        out = self.model(point_features(x, pix, n_side), point_positions(pix, n_side), batch, nbr=nbr).reshape(-1)
        points = out * self.target_scale
        grid = torch.zeros_like(points[:1]).expand(npix.size(0) * npix_all).clone()
        grid = grid.scatter_add(0, batch * npix_all + pix, points)
        return points, grid.reshape(-1, n_side, n_side)


def _onnx() -> tuple[Any, Any]:
    return optional_import("onnx"), optional_import("onnxruntime")


def session_options(ort: Any) -> Any:
    """onnxruntime session options: errors only in the log (its shape-annotation notices are not for users)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return opts


def export_refusal(model: nn.Module) -> str | None:
    """Why ``model`` cannot be exported to ONNX (its ``export_refusal()``), or None."""
    refuse = getattr(model, "export_refusal", None)
    return refuse() if callable(refuse) else None


def wrap(run: Any) -> nn.Module:
    """The GeV-in, GeV-out module of a loaded run (:func:`pfgraph.training.predict.load_run`), on the CPU."""
    model = run.model.to("cpu").eval()
    if run.repr.name == "graph":
        return GraphExport(model, list(run.norm.input_scale), float(run.norm.target_scale), run.grid_size).eval()
    if run.repr.name == "image":
        return ImageExport(model, list(run.norm.input_scale), float(run.norm.target_scale)).eval()
    raise PfgraphError(f"model '{run.model_name}': representation '{run.repr.name}' has no ONNX export")


def sample_inputs(repr_name: str, events: int, seed: int = 0, points: tuple[int, int] = (20, 60),
                  size: int = geometry.PAPER_GRID_SIZE) -> dict[str, np.ndarray]:
    """Synthetic GeV inputs of ``events`` events on the ``size`` grid for an exported model (tracing and checks).

    Graph events get between ``points[0]`` and ``points[1]`` points on distinct random pixels."""
    from pfgraph.repr.static_graph import neighbour_table

    rng = np.random.default_rng(seed)
    if repr_name == "image":
        image = rng.exponential(2.0, size=(events, 4, size, size)).astype(np.float32)
        image *= rng.random(image.shape) < 0.1
        return {"image": image}
    npix = rng.integers(points[0], points[1] + 1, size=events)
    cells = [rng.choice(size * size, size=int(n), replace=False) for n in npix]
    pix = np.concatenate(cells) if cells else np.zeros(0, np.int64)
    ieta, iphi = pix // size, pix % size
    energy = rng.exponential(2.0, size=(len(pix), 4)).astype(np.float32) * (rng.random((len(pix), 4)) < 0.6)
    return {"energy": energy, "ieta": ieta.astype(np.int64), "iphi": iphi.astype(np.int64),
            "npix": npix.astype(np.int64), "nbr": neighbour_table(ieta, iphi, npix, size=size)}


def torch_outputs(module: nn.Module, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run the wrapper in torch on numpy inputs; its outputs as numpy arrays."""
    with torch.no_grad():
        out = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()))
    outs = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in outs]


def _metadata(run: Any, meta_inputs: list[dict[str, Any]], meta_outputs: list[dict[str, Any]]) -> dict[str, str]:
    from pfgraph.io.identity import config_hash

    data = dict(run.training_data or {})
    return {
        "pfgraph_version": __version__, "model": run.model_name, "arch": str(run.entry.name), "repr": run.repr.name,
        "config_sha256": str(config_hash(run.config)), "checkpoint_sha256": run.checkpoint_sha256,
        "epoch": str(run.epoch), "normalisation": json.dumps(run.norm.to_dict()),
        "inputs": json.dumps(meta_inputs), "outputs": json.dumps(meta_outputs),
        "input_names": ",".join(m["name"] for m in meta_inputs), "output_names": ",".join(m["name"] for m in meta_outputs),
        "units": "inputs and outputs in GeV (normalisation inside the graph)",
        "training_data": json.dumps(data, default=str), "opset": str(OPSET), "exporter": EXPORTER,
        "grid": str(run.grid_size),
        "neighbour_table": (f"nbr: pfgraph/repr/static_graph.py neighbour_table(ieta, iphi, npix, size={run.grid_size})"
                            if run.repr.name == "graph" else ""),
    }


def export_bytes(run: Any) -> tuple[bytes, dict[str, str]]:
    """The ONNX file of a loaded run, checked against torch; (bytes, metadata). One PfgraphError
    line when the model cannot be exported or the exported graph disagrees with torch."""
    onnx, ort = _onnx()
    why = export_refusal(run.model)
    if why:
        raise PfgraphError(f"model '{run.model_name}' cannot be exported to ONNX: {why}")
    module = wrap(run)
    graph = run.repr.name == "graph"
    meta_in, meta_out = (GRAPH_INPUTS, GRAPH_OUTPUTS) if graph else (IMAGE_INPUTS, IMAGE_OUTPUTS)
    names_in = [m["name"] for m in meta_in]
    names_out = [m["name"] for m in meta_out]
    axes = {"image": {0: "B"}, "energy": {0: "N"}, "ieta": {0: "N"}, "iphi": {0: "N"}, "npix": {0: "B"},
            "nbr": {0: "N"}, "pred": {0: "B"}, "pred_points": {0: "N"}}
    example = sample_inputs(run.repr.name, 3, seed=1, points=(2, 40), size=run.grid_size)  # events with fewer points than neighbours
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's notices (TracerWarning on shape checks, deprecation)
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, tuple(torch.from_numpy(v) for v in example.values()), buf, dynamo=False,
                              opset_version=OPSET, input_names=names_in, output_names=names_out,
                              dynamic_axes={n: axes[n] for n in [*names_in, *names_out]}, do_constant_folding=True)
        except Exception as exc:  # an operator without ONNX form: one line
            msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise PfgraphError(f"model '{run.model_name}' cannot be exported to ONNX: {msg}") from None
    proto = onnx.load_from_string(buf.getvalue())
    used = {i.name for i in proto.graph.input}  # the exporter drops inputs a model does not read (pfn: nbr)
    meta_in = [m for m in meta_in if m["name"] in used]
    meta = _metadata(run, meta_in, meta_out)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "pfgraph"
    proto.producer_version = __version__
    data = proto.SerializeToString()
    session = ort.InferenceSession(data, session_options(ort), providers=["CPUExecutionProvider"])
    for seed, events, points in ((2, 2, (1, 5)), (3, 5, (20, 80))):  # other batch sizes and point counts
        inputs = sample_inputs(run.repr.name, events, seed=seed, points=points, size=run.grid_size)
        want = torch_outputs(module, inputs)
        got = session.run(names_out, {k: v for k, v in inputs.items() if k in used})
        worst = parity_error(want, got, float(run.norm.target_scale))
        if worst > PARITY_RTOL:
            raise PfgraphError(f"model '{run.model_name}': the exported ONNX graph disagrees with torch "
                               f"(max |diff| = {worst:.2g} x output scale on {events} events); not written")
    return data, meta


def parity_error(want: list[np.ndarray], got: list[np.ndarray], target_scale: float) -> float:
    """max |got - want| over all outputs, in units of the output scale (max(|want|), at least the
    target scale's 1e-3 so an all-zero output does not divide by zero)."""
    worst = 0.0
    for w, g in zip(want, got):
        if w.shape != np.shape(g):
            return float("inf")
        if w.size == 0:
            continue
        scale = max(float(np.abs(w).max()), 1e-3 * target_scale)
        worst = max(worst, float(np.abs(np.asarray(g, dtype=np.float64) - w).max()) / scale)
    return worst


@dataclass
class ExportResult:
    """What :func:`export` wrote: the file, the model and the opset."""

    out: Path
    model: str
    repr: str
    opset: int
    metadata: dict[str, str]


def _onnx_is_ours(path: Path) -> bool:
    """Whether ``path`` is an ONNX file pfgraph export wrote (its metadata names a pfgraph version)."""
    onnx, _ = _onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False
    return any(p.key == "pfgraph_version" for p in model.metadata_props)


def export(run: str | Path, out: str | Path, format: str = "onnx", which: str = "best",
           force: bool = False) -> ExportResult:
    """Export the run folder ``run`` (its best or last checkpoint) to ``out`` (written atomically).
    An existing ``out`` is replaced only if pfgraph export wrote it, or with ``force``."""
    from pfgraph.training.predict import load_run
    from pfgraph.utils.atomic import atomic_write_bytes
    from pfgraph.utils.ownership import check_replaceable

    if format != "onnx":
        raise PfgraphError(f"--format {format}: expected onnx")
    out = Path(out)
    if out.suffix != ".onnx":
        raise PfgraphError(f"{out}: an ONNX file name ends in .onnx")
    if out.is_dir():
        raise PfgraphError(f"{out}: is a folder; --out expects a file name")
    _onnx()  # the install hint before any work
    check_replaceable(out, force, owned=_onnx_is_ours)
    loaded = load_run(run, "cpu", which)
    data, meta = export_bytes(loaded)
    atomic_write_bytes(out, data)
    return ExportResult(out=out, model=loaded.model_name, repr=loaded.repr.name, opset=OPSET, metadata=meta)


class OnnxModel:
    """An exported file run by onnxruntime: ``OnnxModel(path)(batch)`` for :func:`pfgraph.training.predict.predict`
    (batches built with unit input scales, so in GeV); ``metadata`` holds the file's metadata_props."""

    def __init__(self, source: str | Path | bytes, threads: int | None = None) -> None:
        _, ort = _onnx()
        opts = session_options(ort)
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(source if isinstance(source, bytes) else str(source), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise PfgraphError(f"{source if not isinstance(source, bytes) else 'ONNX model'}: onnxruntime cannot load "
                               f"it ({str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: Any) -> torch.Tensor:
        """The native output of a batch in GeV: (B, G, G) for image models, (N,) per point for graph models."""
        if self.inputs == ["image"]:
            (pred,) = self.session.run(["pred"], {"image": np.ascontiguousarray(batch.x.cpu().numpy())})
            return torch.from_numpy(pred)
        from pfgraph.repr.grid import split_pixel

        ieta, iphi = (t.cpu().numpy() for t in split_pixel(batch.pix, int(batch.grid_size)))
        feeds = {"energy": np.ascontiguousarray(batch.x.cpu().numpy()), "ieta": ieta, "iphi": iphi,
                 "npix": np.diff(batch.ptr.cpu().numpy()).astype(np.int64),
                 "nbr": batch.nbr.cpu().numpy().astype(np.int64)}
        (points,) = self.session.run(["pred_points"], {k: v for k, v in feeds.items() if k in self.inputs})
        return torch.from_numpy(points)


def load_onnx_run(path: Path) -> tuple[Any, Any]:
    """(a LoadedRun-like record, the engine) of an exported ONNX file (what ``pfgraph predict`` runs)."""
    from pfgraph.repr.base import Normalisation
    from pfgraph.repr.registry import get_representation
    from pfgraph.training.predict import LoadedRun
    from pfgraph.utils.atomic import file_sha256

    engine = OnnxModel(path)
    meta = engine.metadata
    missing = [k for k in ("model", "repr", "normalisation") if k not in meta]
    if missing:
        raise DataError(f"{path}: no '{missing[0]}' in its metadata: not exported by pfgraph export")
    norm = Normalisation.from_dict(json.loads(meta["normalisation"]))
    run = LoadedRun(run_dir=path.parent, checkpoint=path, checkpoint_sha256=file_sha256(path), model_name=meta["model"],
                    model=None, entry=None, repr=get_representation(meta["repr"]), norm=norm,  # type: ignore[arg-type]
                    config={}, epoch=int(meta.get("epoch", 0)), device=__import__("torch").device("cpu"),
                    training_data=json.loads(meta.get("training_data") or "{}"))
    return run, engine
