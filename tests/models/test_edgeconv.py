"""``edgeconv``: the DGCNN passes the same model tests as the image models, its node-cost blocks equal
torch-geometric's EdgeConv, and it trains from the CLI."""

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
from pfgraph.models.edgeconv import (
    EdgeConvConfig,
    EdgeConvNet,
    NodeEdgeConv,
    SortedMaxAggregation,
    build_edgeconv,
    full_table,
    gather_max,
)
from pfgraph.models.registry import get
from pfgraph.repr.base import Normalisation
from pfgraph.repr.graph import N_FEATURES, GraphRepresentation, load_points, point_features, point_positions
from pfgraph.repr.knn import table_to_edges

NORM = Normalisation([12.0, 14.0, 14.0, 15.0], 20.0)
PRESET = yaml.safe_load(presets.find("model", "edgeconv").read_text())

#: Pinned so that an architecture change is deliberate (default preset).
PARAMS = 68_545
#: The former default (today's baseline: `impl: pyg`, kept for the benchmark).
BASELINE = {"impl": "pyg", "widths": [32, 32, 32], "dynamic_from": 1,
            "head": [64, 32]}


@pytest.fixture(scope="module")
def batch(events_file: Path):  # noqa: ANN201
    return load_points(EventFiles(events_file), [0, 1, 2], NORM).batch([0, 1, 2])


def small_cloud(batch, max_ieta: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Features, positions, event vector and target of the points with ieta < max_ieta (a few hundred)."""
    keep = (batch.pix.long() // 56) < max_ieta
    return (point_features(batch.x, batch.pix, 56)[keep], point_positions(batch.pix, 56)[keep], batch.batch[keep],
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
    dynamic = dict(PRESET, dynamic_from=1)
    a = build_edgeconv(dict(dynamic, knn_backend="torch_cluster")).eval()
    b = build_edgeconv(dict(dynamic, knn_backend="torch")).eval()
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
    for cfg in ({"dynamic_from": 0, "widths": [8, 8], "edge_depth": 2, "head": [], "impl": "split"},
                {"output": "softplus", "batch_norm": False, "dropout": 0.1, "k": 3},
                {"dynamic_from": 1, "widths": [8, 8], "loop": False, "k": 15},
                BASELINE, dict(BASELINE, edge_depth=2)):
        model = build_edgeconv(cfg).eval()
        assert len(model.convs) == len(cfg.get("widths", PRESET["widths"]))
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
    with pytest.raises(ConfigError, match="model.dynamic_from must be >= 0"):
        build_edgeconv({"dynamic_from": -1})
    with pytest.raises(ConfigError, match="needs 17 stored neighbours"):
        build_edgeconv({"k": 16, "loop": False})
    with pytest.raises(ConfigError, match="gather_max needs model.edge_depth = 1"):
        build_edgeconv({"edge_depth": 2})
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


def test_stored_static_graph_equals_the_one_built_from_positions(batch) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_edgeconv(PRESET).eval()
    x, pos = point_features(batch.x, batch.pix, 56), point_positions(batch.pix, 56)
    with torch.no_grad():
        assert torch.equal(model(x, pos, batch.batch, nbr=batch.nbr), model(x, pos, batch.batch))
        assert torch.equal(GraphRepresentation().forward(model, batch), model(x, pos, batch.batch))


def _pyg_pair(width_in: int, width: int, batch_norm: bool) -> tuple[torch.nn.Module, NodeEdgeConv]:
    """torch-geometric EdgeConv (Linear [+ BatchNorm] + LeakyReLU, max) and a node-cost block with its weights."""
    from torch_geometric.nn import EdgeConv

    layers = [torch.nn.Linear(2 * width_in, width, bias=not batch_norm)]
    if batch_norm:
        layers.append(torch.nn.BatchNorm1d(width))
    layers.append(torch.nn.LeakyReLU(0.2))
    ref = EdgeConv(torch.nn.Sequential(*layers), aggr="max")
    cfg = EdgeConvConfig(batch_norm=batch_norm, widths=[width])
    block = NodeEdgeConv(width_in, width, cfg, gather=not batch_norm)
    block.load_edgeconv_linear(layers[0])
    if batch_norm:
        block.post[0].load_state_dict(layers[1].state_dict())
    return ref, block


@pytest.mark.parametrize("impl", ["split", "gather_max"])
def test_node_cost_blocks_equal_torch_geometric_edgeconv(batch, impl: str) -> None:  # noqa: ANN001
    """Forward and gradients (input and weights) equal PyG's EdgeConv with the same weights: the per-node
    split of the first Linear exactly (BatchNorm over edges), the gather-max form without normalisation
    (LeakyReLU is monotone, so max and activation commute)."""
    torch.manual_seed(1)
    x, pos, ev, _ = small_cloud(batch, 16)
    x = x.clone().requires_grad_(True)
    table = build_edgeconv(PRESET).position_table(pos, ev, None)
    edges = table_to_edges(table)
    ref, block = _pyg_pair(x.shape[1], 24, batch_norm=impl == "split")
    ref.train(), block.train()
    out_ref, out = ref(x, edges), block(x, table)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    w = torch.randn_like(out)  # a loss with every output in play
    g_ref = torch.autograd.grad((out_ref * w).sum(), [x, *ref.parameters()])
    g = torch.autograd.grad((out * w).sum(), [x, *block.parameters()])
    torch.testing.assert_close(g[0], g_ref[0], rtol=1e-4, atol=1e-5)
    # PyG's W = [Theta | Phi]; the block holds lin_i = Theta - Phi and lin_j = Phi
    c = x.shape[1]
    named = dict(zip([n for n, _ in block.named_parameters()], g[1:]))
    g_w = g_ref[1]
    torch.testing.assert_close(named["lin_i.weight"], g_w[:, :c], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(named["lin_j.weight"], g_w[:, :c] + g_w[:, c:], rtol=1e-4, atol=1e-5)
    for name, g_p in zip([n for n, _ in ref.named_parameters()][1:], g_ref[2:]):
        mine = {"nn.0.bias": "lin_i.bias", "nn.1.weight": "post.0.weight", "nn.1.bias": "post.0.bias"}[name]
        torch.testing.assert_close(named[mine], g_p, rtol=1e-4, atol=1e-5)


def test_gather_max_gradient_goes_to_the_maximum() -> None:
    c = torch.tensor([[1.0, 5.0], [3.0, 2.0], [0.0, 4.0]], requires_grad=True)
    nbr = torch.tensor([[0, 1], [1, 2], [2, 2]])
    out = gather_max(c, nbr)
    assert out.tolist() == [[3.0, 5.0], [3.0, 4.0], [0.0, 4.0]]
    (g,) = torch.autograd.grad((out * torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])).sum(), c)
    assert g.tolist() == [[0.0, 2.0], [4.0, 0.0], [5.0, 10.0]]
    assert torch.equal(full_table(torch.tensor([[0, 2, -1], [-1, -1, -1]])), torch.tensor([[0, 2, 0], [1, 1, 1]]))
