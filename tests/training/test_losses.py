"""``train.loss=rel_huber``: Huber on the log ratio of energies in GeV, empty pixels penalised as stated."""

from __future__ import annotations

import math

import pytest
import torch

from pfgraph.errors import PfgraphError
from pfgraph.training.config import TrainConfig
from pfgraph.training.losses import RelativeHuberLoss
from pfgraph.training.trainer import make_loss


def _huber(d: float, delta: float) -> float:
    return 0.5 * d * d if abs(d) < delta else delta * (abs(d) - 0.5 * delta)


def test_value_on_truth_and_empty_pixels() -> None:
    S, eps, delta = 20.0, 0.02, 0.1
    loss = RelativeHuberLoss(eps, delta, empty_weight=2.0, target_scale=S, reduction="none")
    truth = torch.tensor([10.0, 1.0, 0.0, 0.0]) / S
    pred = torch.tensor([11.0, 0.5, 0.0, 0.3]) / S
    got = loss(pred, truth)
    want = [_huber(math.log(11.02 / 10.02), delta), _huber(math.log(0.52 / 1.02), delta), 0.0,
            2.0 * _huber(math.log(0.32 / 0.02), delta)]  # the fake 0.3 GeV: log(1 + E/eps), weighted
    assert got.tolist() == pytest.approx(want, rel=1e-5)


def test_scale_aware_relative_and_mean_sum() -> None:
    """The same energies in GeV give the same loss for every S; a 10 % error costs alike at 1 and 100 GeV."""
    pred_gev, truth_gev = torch.tensor([1.1, 110.0, 0.5]), torch.tensor([1.0, 100.0, 0.0])
    a = RelativeHuberLoss(1e-6, 0.5, 1.0, 20.0, "none")(pred_gev / 20.0, truth_gev / 20.0)
    b = RelativeHuberLoss(1e-6, 0.5, 1.0, 400.0, "none")(pred_gev / 400.0, truth_gev / 400.0)
    assert torch.allclose(a, b, rtol=1e-4) and float(a[0]) == pytest.approx(float(a[1]), rel=1e-4)
    cfg = TrainConfig(loss="rel_huber")
    elements = make_loss(cfg, "none", target_scale=20.0)(pred_gev / 20.0, truth_gev / 20.0)
    assert float(make_loss(cfg, "sum", target_scale=20.0)(pred_gev / 20.0, truth_gev / 20.0)) == pytest.approx(
        float(elements.sum()))
    assert float(make_loss(cfg, target_scale=20.0)(pred_gev / 20.0, truth_gev / 20.0)) == pytest.approx(
        float(elements.mean()))
    with pytest.raises(PfgraphError, match="target scale"):
        make_loss(cfg)


def test_gradient_pulls_towards_the_truth_and_away_from_fakes() -> None:
    loss = RelativeHuberLoss(0.02, 0.1, 1.0, 20.0)
    pred = torch.tensor([0.5, 0.7, 0.1], requires_grad=True)
    loss(pred, torch.tensor([0.6, 0.6, 0.0])).backward()
    g = pred.grad.tolist()
    assert g[0] < 0 and g[1] > 0 and g[2] > 0  # low -> up, high -> down, fake -> down


def test_bad_settings_are_refused() -> None:
    from pfgraph.errors import ConfigError

    with pytest.raises(ConfigError, match="rel_eps_gev"):
        TrainConfig(loss="rel_huber", rel_eps_gev=0.0).validate()
    with pytest.raises(ConfigError, match="empty_weight"):
        TrainConfig(empty_weight=-1.0).validate()


def test_cone_kernel_and_sums_are_the_grid_s_cones_with_phi_wrapping() -> None:
    """The kernel holds the pixel offsets within R in eta-phi (about pi R^2 / pixel area of them);
    cone sums equal a brute-force loop over the pixels, phi wrapping round, nothing beyond eta's edges."""
    from pfgraph import geometry
    from pfgraph.training.losses import cone_kernel, cone_sums

    g = geometry.grid(56)
    k = cone_kernel(g, 0.4)
    assert torch.equal(k, k.flip(0)) and torch.equal(k, k.flip(1)) and k[k.shape[0] // 2, k.shape[1] // 2] == 1
    area = math.pi * 0.4 ** 2 / (g.eta_pixel * g.phi_pixel)
    assert abs(float(k.sum()) - area) < 0.1 * area
    img = torch.rand(2, 56, 56, generator=torch.Generator().manual_seed(1)) * (torch.rand(2, 56, 56) < 0.2)
    sums = cone_sums(img, k)
    for b, i, j in ((0, 0, 0), (1, 27, 55), (0, 55, 3), (1, 10, 30)):
        want = sum(float(img[b, ii, jj % 56]) for ii in range(56) for jj in range(j - 10, j + 11)
                   if ((ii - i) * g.eta_pixel) ** 2 + ((jj - j) * g.phi_pixel) ** 2 <= 0.16 * (1 + 1e-9))
        assert float(sums[b, i, j]) == pytest.approx(want, rel=1e-5)


def test_cone_term_is_zero_on_the_truth_and_pulls_the_cone_sum_towards_it() -> None:
    from pfgraph import geometry
    from pfgraph.training.losses import ConeSumLoss

    S = 20.0
    cone = ConeSumLoss(geometry.grid(56), 0.4, min_gev=5.0, eps_gev=0.02, delta=0.1, target_scale=S)
    truth = torch.zeros(1, 56, 56)
    truth[0, 20, 20], truth[0, 21, 22] = 30.0 / S, 4.0 / S
    assert float(cone(truth, truth)) == 0.0
    pred = (truth * 0.8).requires_grad_()
    loss = cone(pred, truth)
    loss.backward()
    assert float(loss.detach()) > 0 and float(pred.grad[0, 20, 20]) < 0 and float(pred.grad[0, 21, 22]) < 0  # raise both
    assert float(pred.grad[0, 40, 40]) == 0.0  # outside every counted cone
    quiet = torch.zeros(1, 56, 56)
    quiet[0, 5, 5] = 1.0 / S  # no cone reaches 5 GeV: the term is 0 and keeps the graph
    p = quiet.clone().requires_grad_()
    out = cone(p, quiet)
    out.backward()
    assert float(out.detach()) == 0.0 and p.grad is not None
    with pytest.raises(ValueError, match="cone loss"):
        ConeSumLoss(geometry.grid(56), 0.0, 5.0, 0.02, 0.1, S)
