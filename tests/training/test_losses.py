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
