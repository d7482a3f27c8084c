"""``edgeconv``: the DGCNN passes the same model tests as the image models, and trains from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pfgraph.cli import main
from pfgraph.config import CONFIG_DIR
from pfgraph.errors import ConfigError
from pfgraph.io.root import EventFiles
from pfgraph.models.edgeconv import EdgeConvConfig, EdgeConvNet, SortedMaxAggregation, build_edgeconv
from pfgraph.models.registry import get
from pfgraph.repr.base import Normalisation
from pfgraph.repr.graph import N_FEATURES, GraphRepresentation, load_points, point_features, point_positions

NORM = Normalisation([12.0, 14.0, 14.0, 15.0], 20.0)
PRESET = yaml.safe_load((CONFIG_DIR / "model" / "edgeconv.yaml").read_text())

#: Pinned so that an architecture change is deliberate (default preset).
PARAMS = 13_729


@pytest.fixture(scope="module")
def batch(events_file: Path):  # noqa: ANN201
    return load_points(EventFiles(events_file), [0, 1, 2], NORM).batch([0, 1, 2])


def small_cloud(batch, max_ieta: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Features, positions, event vector and target of the points with ieta < max_ieta (a few hundred)."""
    keep = (batch.pix.long() // 56) < max_ieta
    return (point_features(batch.x, batch.pix)[keep], point_positions(batch.pix)[keep], batch.batch[keep],
            batch.y[keep])


def test_preset_is_the_default_config_and_parameter_count_is_pinned() -> None:
    from pfgraph.models.edgeconv import edgeconv_config

    assert edgeconv_config(PRESET) == EdgeConvConfig()
    model = build_edgeconv(PRESET)
    assert sum(p.numel() for p in model.parameters()) == PARAMS
    entry = get("edgeconv", "graph")
    assert entry.repr == "graph" and entry.builder is build_edgeconv


def test_forward_shape(batch) -> None:  # noqa: ANN001
    model = build_edgeconv(PRESET).eval()
    with torch.no_grad():
        out = GraphRepresentation().forward(model, batch)
    assert out.shape == (batch.x.shape[0],) and bool(torch.isfinite(out).all())
    assert GraphRepresentation().to_grid(out, batch).shape == (3, 56, 56)


def test_gradient_reaches_every_parameter(batch) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_edgeconv(PRESET)
    x, pos, ev, y = small_cloud(batch)
    ((model(x, pos, ev) - y) ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_overfits_a_tiny_batch(batch) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_edgeconv(PRESET)
    x, pos, ev, y = small_cloud(batch, 6)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = ((model(x, pos, ev) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = float(((model(x, pos, ev) - y) ** 2).mean())
    assert final < losses[0] / 10, (losses[0], final)


def test_backends_give_the_same_predictions(batch) -> None:  # noqa: ANN001
    pytest.importorskip("torch_cluster", reason="torch-cluster is not installed: parity needs both backends")
    torch.manual_seed(0)
    a = build_edgeconv(dict(PRESET, knn_backend="torch_cluster")).eval()
    b = build_edgeconv(dict(PRESET, knn_backend="torch")).eval()
    b.load_state_dict(a.state_dict())
    x, pos, ev, _ = small_cloud(batch, 20)
    with torch.no_grad():
        assert torch.equal(a(x, pos, ev), b(x, pos, ev))


def test_sorted_max_aggregation_is_the_max(batch) -> None:  # noqa: ANN001
    from torch_geometric.nn import EdgeConv

    torch.manual_seed(0)
    model = build_edgeconv(dict(PRESET, loop=False))
    x, _, ev, _ = small_cloud(batch)
    ev = torch.cat([ev, torch.tensor([3])])  # an event of one point: no edge without self loops
    x = torch.cat([x, torch.randn(1, x.shape[1])]).requires_grad_(True)
    edges = model.graph(x, ev)
    mlp = torch.nn.Sequential(torch.nn.Linear(2 * N_FEATURES, 8), torch.nn.Tanh())
    conv_ref, conv = EdgeConv(mlp, aggr="max"), EdgeConv(mlp, aggr=SortedMaxAggregation())  # same MLP weights
    ref, out = conv_ref(x, edges.as_tensor()), conv(x, edges)
    assert torch.equal(out, ref) and bool((out[-1] == 0).all())
    g_ref = torch.autograd.grad(ref.square().sum(), x)[0]
    g_out = torch.autograd.grad(out.square().sum(), x)[0]
    assert torch.equal(g_out, g_ref)


def test_variants_build_and_run(batch) -> None:  # noqa: ANN001
    x, pos, ev, _ = small_cloud(batch, 6)
    for cfg in ({"first_graph": "features", "widths": [8, 8], "edge_depth": 2, "head": []},
                {"output": "softplus", "batch_norm": False, "dropout": 0.1, "k": 3}):
        model = build_edgeconv(cfg).eval()
        assert len(model.convs) == len(cfg.get("widths", [32, 32, 32]))
        out = model(x, pos, ev)
        assert out.shape == (x.shape[0],)
    assert bool((build_edgeconv({"output": "softplus"}).eval()(x, pos, ev) > 0).all())
    empty = build_edgeconv({}).eval()(torch.zeros(0, 8), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0,)


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'model.widht'.*did you mean 'width"):
        build_edgeconv({"widht": [8]})
    with pytest.raises(ConfigError, match="model.k must be >= 1"):
        build_edgeconv({"k": 0})
    with pytest.raises(ConfigError, match="model.widths must be a non-empty list"):
        build_edgeconv({"widths": []})
    with pytest.raises(ConfigError, match="knn_backend"):
        build_edgeconv({"knn_backend": "faiss"})
    with pytest.raises(ValueError, match=r"expects \(N, 8\) point features"):
        EdgeConvNet(EdgeConvConfig())(torch.zeros(4, 5), torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))


def test_trains_from_the_command_line(events_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["train", "--repr", "graph", "--model", "edgeconv", "--data", str(events_file), "--out", str(out),
            "--epochs", "1", "--max-events", "30", "--batch-size", "8"]
    assert main(argv) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["repr"] == "graph" and summary["params"] == PARAMS and summary["epochs"] == 1
    assert np.isfinite(summary["best_val_loss"])
    ckpt = torch.load(out / "checkpoint_best.pt", weights_only=True)
    model = build_edgeconv(PRESET)
    model.load_state_dict(ckpt["model_state"])
    assert ckpt["repr"] == "graph" and Normalisation.from_dict(ckpt["normalisation"]).target == "truth"
