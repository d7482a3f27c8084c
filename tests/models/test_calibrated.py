"""The calibrated analytic model: an untrained one is the analytic inversion; its weights are bounded."""

from __future__ import annotations

import math

import pytest
import torch

from pfgraph.models.analytic import build_analytic
from pfgraph.models.calibrated import build_calibrated
from pfgraph.models.registry import get


def _inputs(seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 4, 56, 56, generator=g) * (torch.rand(3, 4, 56, 56, generator=g) < 0.3)
    return x * scale


def _configured(model: torch.nn.Module) -> torch.nn.Module:
    class Norm:
        input_scale = [20.0, 30.0, 15.0, 15.0]
        target_scale = 25.0

    model.configure_from_data({"config": {"detector": {"b_field": 0.5}}}, Norm())
    return model


def test_untrained_calibrated_model_is_the_analytic_inversion() -> None:
    torch.manual_seed(0)
    cal = _configured(build_calibrated({}))
    ana = _configured(build_analytic({}))
    x = _inputs(1)
    assert torch.equal(cal(x), ana(x))
    assert get("calibrated").description.endswith("(improved)")


def test_weights_are_bounded_and_zero_estimates_stay_zero() -> None:
    torch.manual_seed(0)
    cal = _configured(build_calibrated({"alpha": math.log(2.0)}))
    torch.nn.init.normal_(cal.head.weight, std=10.0)  # a wildly trained head
    x = _inputs(2, scale=5.0)  # far beyond the training scales: the output still follows the estimate
    est = cal.analytic(x)
    out = cal(x)
    ratio = out[est > 0] / est[est > 0]
    assert ratio.min() >= 0.5 - 1e-6 and ratio.max() <= 2.0 + 1e-6
    assert torch.all(out[est == 0] == 0)
    assert ratio.std() > 0.05  # the weights really vary per pixel


def test_only_the_network_learns() -> None:
    torch.manual_seed(0)
    cal = _configured(build_calibrated({}))
    x = _inputs(3)
    cal(x).sum().backward()
    assert cal.head.weight.grad is not None and cal.head.weight.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in cal.analytic.parameters())
    assert sum(p.numel() for p in cal.parameters() if p.requires_grad) == 19_313  # pfgraph/presets/model/calibrated.yaml


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="alpha > 0"):
        build_calibrated({"alpha": 0.0})


def test_untrained_graph_model_is_the_analytic_inversion_at_the_points(events_file) -> None:  # noqa: ANN001
    from pfgraph.io.root import EventFiles
    from pfgraph.models.calibrated import build_calibrated_gnn
    from pfgraph.repr.base import Normalisation
    from pfgraph.repr.graph import load_points, point_features, point_positions, split_pixel

    norm = Normalisation([12.0, 14.0, 14.0, 15.0], 20.0)
    batch = load_points(EventFiles(events_file), [0, 1, 2], norm).batch([0, 1, 2])
    torch.manual_seed(0)
    gnn = build_calibrated_gnn({})
    ana = build_analytic({})
    for m in (gnn, ana):
        m.configure_from_data({"config": {"detector": {"b_field": 0.5}}}, norm)
    out = gnn(point_features(batch.x, batch.pix, 56), point_positions(batch.pix, 56), batch.batch, nbr=batch.nbr)
    # the same events as dense images through the image analytic inversion, read at the points
    dense = torch.zeros(3, 4, 56, 56)
    ieta, iphi = split_pixel(batch.pix.long(), 56)
    dense[batch.batch.long(), :, ieta, iphi] = batch.x
    want = ana(dense)[batch.batch.long(), 0, ieta, iphi]
    assert out.shape == (batch.x.size(0),) and torch.allclose(out, want)
    assert get("calibrated_gnn", "graph").description.endswith("(improved)")
    with pytest.raises(ValueError, match="neighbour table"):
        gnn(point_features(batch.x, batch.pix, 56), point_positions(batch.pix, 56), batch.batch)


def test_node_block_takes_the_max_over_valid_neighbours_and_its_gradient_goes_to_the_winner() -> None:
    """The neighbour max (winner found without gradient, then gathered) equals the plain gather-max
    (-1 entries are no neighbour; a point without any gets 0), and so does its gradient."""
    from pfgraph.models.calibrated import _NodeBlock

    torch.manual_seed(0)
    block = _NodeBlock(5, 0.01).eval()
    h = torch.randn(40, 5, requires_grad=True)
    nbr = torch.randint(0, 40, (40, 6))
    nbr[::3, 2:] = -1
    nbr[7] = -1
    m = block.nbr_lin(h)
    ref = m[nbr.clamp(min=0)].masked_fill((nbr < 0).unsqueeze(-1), float("-inf")).amax(dim=1)
    ref = torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref))
    expected = h + block.act(block.norm(block.self_lin(h) + ref))
    (g_ref,) = torch.autograd.grad(expected.square().sum(), h)
    out = block(h, nbr)
    (g_out,) = torch.autograd.grad(out.square().sum(), h)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(g_out, g_ref)
