"""pfgraph export: every registered trainable model exports to ONNX, and onnxruntime gives torch's
outputs (max |diff| <= 1e-5 x the output scale) on the same events, graph models at several point
counts; configurations that cannot be exported are refused with one line.

Refused configurations (documented here and in the README): edgeconv with ``dynamic_from`` set
(feature-space kNN: no ONNX kNN operator) or ``impl: pyg`` (KD-tree edges). The point-cloud models
that build the analytic estimate on their events' grids (calibrated_gnn, residual_gnn) export with
the number of events dynamic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pfgraph.errors import PfgraphError
from pfgraph.models.registry import available
from pfgraph.repr.base import Normalisation
from pfgraph.repr.registry import get_representation
from pfgraph.training.predict import LoadedRun

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pfgraph.training import export as ex  # noqa: E402

#: Small configurations per model (any registered model missing here runs with its defaults).
SMALL: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": [16, 16]},
    "cnn": {"encoder": [4, 8], "decoder": [4]},
    "cnn3d": {"encoder": [4, 8], "decoder": [4]},
    "cnn_attn": {"encoder": [4, 8], "decoder": [4], "attention": {"key_channels": 2}},
    "cnn_attn_code": {"encoder": [4, 8, 8], "attention": {"key_channels": 2}},
    "unet": {"channels": [4, 8]},
    "unet_attn": {"channels": [4, 8], "attention": {"key_channels": 2}},
    "rnn": {"hidden": 16, "encoder_layers": 1, "decoder_layers": 1},
    "calibrated": {"channels": 4, "dilations": [1, 2]},
    "edgeconv": {"widths": [8, 8], "head": [8]},
    "edgeconv_split": {"widths": [8, 8], "head": [8], "impl": "split", "edge_depth": 2},
    "pfn": {"encoder": [8, 8], "decoder": [8], "pool": ["mean", "max", "sum"]},
    "calibrated_gnn": {"width": 8, "blocks": 1},
    "residual_cnn": {}, "residual_gnn": {},
}
#: Configurations pfgraph export refuses, and a word of the reason each refusal names.
REFUSED = {"edgeconv_dynamic": ({"widths": [8, 8], "head": [8], "dynamic_from": 1}, "kNN"),
           "edgeconv_pyg": ({"widths": [8, 8], "head": [8], "impl": "pyg"}, "KD-tree")}
#: Graph models are compared at these (min, max) points per event: fewer points than neighbours,
#: typical, and large events (an empty event is added to each batch).
POINT_RANGES = ((1, 3), (10, 40), (300, 700))
NORM = Normalisation(input_scale=[40.0, 60.0, 80.0, 80.0], target_scale=120.0)


def trainable() -> list[str]:
    return sorted(name for name, e in available().items() if e.trainable)


def loaded(name: str, params: dict[str, Any], events_file: Path | None = None) -> LoadedRun:
    """A LoadedRun of model ``name`` with ``params`` (BatchNorm statistics moved off their defaults)."""
    arch = {"edgeconv_split": "edgeconv", "edgeconv_dynamic": "edgeconv", "edgeconv_pyg": "edgeconv"}.get(name, name)
    entry = available()[arch]
    torch.manual_seed(0)
    model = entry.builder(dict(params))
    configure = getattr(model, "configure_from_data", None)
    if callable(configure) and events_file is not None:
        from pfgraph.io.root import EventFiles

        configure(EventFiles(events_file).meta, NORM)
    run = LoadedRun(run_dir=Path("."), checkpoint=Path("x.pt"), checkpoint_sha256="0" * 64, model_name=name,
                    model=model, entry=entry, repr=get_representation(entry.repr), norm=NORM,
                    config={"model": {"name": name, "params": params}}, epoch=0, device=torch.device("cpu"),
                    training_data={"identity": None, "detector": {"b_field": 0.5}})
    if ex.export_refusal(model) is None:  # a few training-mode passes: non-trivial BatchNorm statistics
        module = ex.wrap(run).train()
        with torch.no_grad():
            for seed in range(3):
                inputs = ex.sample_inputs(run.repr.name, 4, seed=10 + seed)
                module(*(torch.from_numpy(v) for v in inputs.values()))
        model.eval()
    return run


def compare(run: LoadedRun, data: bytes, inputs: dict[str, np.ndarray]) -> float:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    outs = [o.name for o in session.get_outputs()]
    got = session.run(outs, {k: v for k, v in inputs.items() if k in names})
    want = ex.torch_outputs(ex.wrap(run), inputs)
    return ex.parity_error(want, got, NORM.target_scale)


#: Compared in the default suite (an image CNN, the attention U-Net, both point-cloud families);
#: every other model is marked slow (about 10 s each on a shared 2-core CPU).
FAST = {"cnn", "unet_attn", "edgeconv", "pfn"}


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
                                  for n in [*trainable(), "edgeconv_split"]])
def test_export_parity(name: str, events_file: Path) -> None:
    if name in REFUSED:
        pytest.skip(f"{name}: refused by design (test_refused)")
    run = loaded(name, SMALL.get(name, {}), events_file)
    data, meta = ex.export_bytes(run)
    if run.repr.name == "image":
        cases = [ex.sample_inputs("image", b, seed=20 + b) for b in (1, 3, 7)]
    else:
        cases = []
        for k, points in enumerate(POINT_RANGES):
            c = ex.sample_inputs("graph", 4, seed=30 + k, points=points)
            c["npix"] = np.insert(c["npix"], 2, 0)  # an empty event between others
            cases.append(c)
    for inputs in cases:
        assert compare(run, data, inputs) <= ex.PARITY_RTOL
    assert meta["model"] == name and meta["repr"] == run.repr.name and meta["opset"] == str(ex.OPSET)
    props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert props == meta
    for key in ("pfgraph_version", "config_sha256", "input_names", "output_names", "units", "normalisation"):
        assert props[key]
    assert [m["unit"] for m in json.loads(props["outputs"])] == ["GeV"] * len(json.loads(props["outputs"]))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name: str, events_file: Path) -> None:
    params, word = REFUSED[name]
    arch = name.split("_")[0] if name.startswith("edgeconv") else name
    if arch not in available():
        pytest.skip(f"{arch} not registered")
    run = loaded(name, params, events_file)
    with pytest.raises(PfgraphError, match=word) as err:
        ex.export_bytes(run)
    assert "cannot be exported to ONNX" in str(err.value) and "\n" not in str(err.value)


def test_parity_check_catches_a_wrong_graph(events_file: Path) -> None:
    """The export's own check fails when onnxruntime disagrees: a traced data-dependent constant."""

    class Constant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1] * float(x.shape[0])  # the batch size becomes a constant of the trace

    run = loaded("cnn", SMALL["cnn"])
    run.model = Constant()
    with pytest.raises(PfgraphError, match="disagrees with torch"):
        ex.export_bytes(run)


def test_missing_onnxruntime_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(PfgraphError, match=r"pip install 'pfgraph\[onnx\]'") as err:
        ex.export_bytes(loaded("cnn", SMALL["cnn"]))
    assert "\n" not in str(err.value)
