"""``train.loss=mixed_mse`` (pfgraph/training/paper_losses.py): the paper's v2 loss, weighted MSE + SSIM
as the authors' code defines it, checked against an independent per-pixel reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pfgraph.errors import ConfigError
from pfgraph.training.config import TrainConfig
from pfgraph.training.paper_losses import MixedMSELoss, gaussian_window, ssim_per_image, weighted_mse_per_image
from pfgraph.training.trainer import make_loss
from tests.training._helpers import cli, train_args


def _reference_ssim(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """The authors' SSIM of one (H, W) image, written out pixel by pixel: zero padding size // 2 on both
    axes, a 1 x size Gaussian window along the last axis, the map over (H + 2p) x W entries."""
    p = size // 2
    x = np.arange(size) - p
    g = np.exp(-x * x / (2 * sigma * sigma))
    g /= g.sum()
    pa, pb = np.pad(a, p), np.pad(b, p)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    h, w = a.shape
    vals = []
    for i in range(h + 2 * p):
        for j in range(w):
            wa, wb = pa[i, j:j + size], pb[i, j:j + size]
            ma, mb = float(g @ wa), float(g @ wb)
            va, vb = float(g @ (wa * wa)) - ma * ma, float(g @ (wb * wb)) - mb * mb
            cov = float(g @ (wa * wb)) - ma * mb
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_weighted_mse_by_hand() -> None:
    """Truth [1, 0, 3], prediction [0.5, 2, 3]: only truth pixels count, weighted by the truth energy."""
    pred = torch.tensor([[[[0.5, 2.0, 3.0]]]])
    truth = torch.tensor([[[[1.0, 0.0, 3.0]]]])
    want = (1.0 * 0.25 + 0.0 * 4.0 + 3.0 * 0.0) / (4.0 + 1e-8)
    assert float(weighted_mse_per_image(pred, truth)[0]) == pytest.approx(want, rel=1e-6)
    # an empty event costs nothing in the weighted term (0 / 1e-8), whatever is predicted
    assert float(weighted_mse_per_image(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))[0]) == 0.0


def test_ssim_equals_the_reference_formula() -> None:
    rng = np.random.default_rng(4)
    a = (rng.random((2, 4, 7)) * (rng.random((2, 4, 7)) < 0.5)).astype(np.float32)
    b = (a + 0.1 * rng.standard_normal(a.shape)).clip(0).astype(np.float32)
    got = ssim_per_image(torch.from_numpy(a), torch.from_numpy(b))  # (B, H, W) as the authors' images
    want = [_reference_ssim(a[k].astype(np.float64), b[k].astype(np.float64)) for k in range(2)]
    assert got.tolist() == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert gaussian_window().shape == (1, 1, 1, 11) and float(gaussian_window().sum()) == pytest.approx(1.0)


def test_ssim_of_identical_images_is_one() -> None:
    img = torch.rand(3, 1, 9, 9) * (torch.rand(3, 1, 9, 9) < 0.3)
    assert ssim_per_image(img, img.clone()).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    loss = MixedMSELoss(1.0, 0.05)
    assert float(loss(img, img.clone())) == pytest.approx(0.0, abs=1e-6)


def test_the_mixed_loss_is_the_stated_combination_and_sum_matches_mean() -> None:
    rng = np.random.default_rng(7)
    truth = torch.from_numpy((rng.random((3, 1, 5, 6)) * (rng.random((3, 1, 5, 6)) < 0.4)).astype(np.float32))
    pred = (truth + 0.05 * torch.from_numpy(rng.standard_normal((3, 1, 5, 6)).astype(np.float32))).clamp(min=0)
    wmse = weighted_mse_per_image(pred, truth)
    ssim = torch.tensor([_reference_ssim(pred[k, 0].double().numpy(), truth[k, 0].double().numpy())
                         for k in range(3)])
    want = float((2.0 * wmse.double() + 0.3 * (1.0 - ssim)).mean())
    assert float(MixedMSELoss(2.0, 0.3)(pred, truth)) == pytest.approx(want, rel=1e-4)
    cfg = TrainConfig(loss="mixed_mse", wmse_weight=2.0, ssim_weight=0.3)
    mean, total = make_loss(cfg)(pred, truth), make_loss(cfg, "sum")(pred, truth)
    assert float(total) / truth.numel() == pytest.approx(float(mean), rel=1e-5)  # the trainer's validation mean


def test_gradients_are_finite_on_sparse_and_empty_images() -> None:
    truth = torch.zeros(2, 1, 8, 8)
    truth[0, 0, 3, 4] = 0.9  # one deposit; event 2 is empty
    pred = torch.zeros(2, 1, 8, 8, requires_grad=True)
    loss = MixedMSELoss()(pred, truth)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and bool(torch.isfinite(pred.grad).all())
    assert float(pred.grad[0, 0, 3, 4]) < 0  # the missed deposit pulls its pixel up


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reweight"):
        TrainConfig(loss="mixed_mse", reweight="flat_log").validate()
    with pytest.raises(ConfigError, match="ssim_weight"):
        TrainConfig(ssim_weight=-0.1).validate()
    with pytest.raises(ValueError, match="image targets"):
        MixedMSELoss()(torch.zeros(5, 1), torch.zeros(5, 1))  # a point cloud's per-point targets
    from pfgraph.training.config import resolve_run_config

    cfg = resolve_run_config("cnn", train_config="paper_v2")
    assert (cfg.train.loss, cfg.train.wmse_weight, cfg.train.ssim_weight) == ("mixed_mse", 1.0, 0.05)
    with pytest.raises(ConfigError, match="needs images: model 'pfn'"):
        resolve_run_config("pfn", train_config="paper_v2")


def test_a_cnn_trains_with_the_paper_v2_preset(events_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc, _, err = cli(capsys, *train_args(events_file, run, "--config", "paper_v2", "--epochs", "1"))
    assert rc == 0, err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["train"]["loss"], config["train"]["ssim_weight"]) == ("mixed_mse", 0.05)
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    val = float(rows[1].split(",")[header.index("val_loss")])
    assert math.isfinite(val) and 0.0 < val < 1.05  # w_wmse x wmse (< 1 on [0, 1] images) + 0.05 x (1 - SSIM <= 2)
