"""``pfn``: the Particle Flow Network passes the model tests and runs train -> evaluate -> report from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pfgraph import presets
from pfgraph.cli import main
from pfgraph.errors import ConfigError
from pfgraph.io.root import EventFiles
from pfgraph.models.pfn import PFN, PFNConfig, build_pfn, pfn_config
from pfgraph.models.registry import get
from pfgraph.repr.base import Normalisation
from pfgraph.repr.graph import GraphRepresentation, load_points, point_features, point_positions

NORM = Normalisation([12.0, 14.0, 14.0, 15.0], 20.0)
PRESET = yaml.safe_load(presets.find("model", "pfn").read_text())
#: Pinned so that an architecture change is deliberate (default preset).
PARAMS = 84_545


@pytest.fixture(scope="module")
def batch(events_file: Path):  # noqa: ANN201
    return load_points(EventFiles(events_file), [0, 1, 2], NORM).batch([0, 1, 2])


def inputs(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    return point_features(batch.x, batch.pix, 56), point_positions(batch.pix, 56), batch.batch


def test_preset_registry_and_parameter_count() -> None:
    assert pfn_config(PRESET) == PFNConfig()
    assert sum(p.numel() for p in build_pfn(PRESET).parameters()) == PARAMS
    entry = get("pfn", "graph")
    assert entry.repr == "graph" and entry.builder is build_pfn


def test_per_point_output_and_event_context(batch) -> None:  # noqa: ANN001
    """One output per point; permuting an event's points permutes its outputs; an event's outputs
    depend on its own points only (pooling is per event)."""
    torch.manual_seed(0)
    model = build_pfn(PRESET).eval()
    x, pos, ev = inputs(batch)
    with torch.no_grad():
        out = model(x, pos, ev)
        assert out.shape == (x.shape[0],) and bool(torch.isfinite(out).all())
        assert torch.equal(GraphRepresentation().forward(model, batch), out)
        a, b = int(batch.ptr[1]), int(batch.ptr[2])
        perm = torch.cat([torch.randperm(a), torch.arange(a, x.shape[0])])
        torch.testing.assert_close(model(x[perm], pos[perm], ev), out[perm], rtol=1e-5, atol=1e-6)
        changed = x.clone()
        changed[a:b, :4] *= 3.0  # event 1 only
        other = model(changed, pos, ev)
        torch.testing.assert_close(other[:a], out[:a], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(other[b:], out[b:], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(other[a:b], out[a:b])
        assert model(torch.zeros(0, 8), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)).shape == (0,)
    assert GraphRepresentation().to_grid(out, batch).shape == (3, 56, 56)


def test_gradients_and_overfit(batch) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_pfn(dict(PRESET, pool=["mean", "max", "sum"]))
    x, pos, ev = inputs(batch)
    keep = (batch.pix.long() // 56) < 8
    x, pos, ev, y = x[keep], pos[keep], ev[keep], batch.y[keep]
    ((model(x, pos, ev) - y) ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = ((model(x, pos, ev) - y) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert float(((model(x, pos, ev) - y) ** 2).mean()) < first / 10


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'model.encodr'"):
        build_pfn({"encodr": [8]})
    with pytest.raises(ConfigError, match="model.encoder must be a non-empty list"):
        build_pfn({"encoder": []})
    with pytest.raises(ConfigError, match="model.pool must list distinct"):
        build_pfn({"pool": ["mean", "mean"]})
    with pytest.raises(ConfigError, match="pool"):
        build_pfn({"pool": ["median"]})
    with pytest.raises(ValueError, match=r"expects \(N, 8\) point features"):
        PFN(PFNConfig())(torch.zeros(4, 5), torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))


def test_train_evaluate_report_from_the_command_line(events_file: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run, ev, rep = tmp_path / "run", tmp_path / "eval", tmp_path / "report"
    assert main(["train", "--repr", "graph", "--model", "pfn", "--data", str(events_file), "--out", str(run),
                 "--epochs", "1", "--max-events", "30", "--batch-size", "8", "model.encoder=[16,16]",
                 "model.decoder=[16]"]) == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["repr"] == "graph" and summary["model"] == "pfn" and np.isfinite(summary["best_val_loss"])
    assert main(["evaluate", str(run), "--data", str(events_file), "--out", str(ev), "--device", "cpu",
                 "--max-events", "6", "--no-plots"]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["model"]["repr"] == "graph" and metrics["model"]["name"] == "pfn"
    assert main(["report", str(ev), "--out", str(rep)]) == 0
    assert any(rep.iterdir())
    capsys.readouterr()
