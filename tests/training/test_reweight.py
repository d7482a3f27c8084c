"""``train.reweight = flat_log``: loss weights that flatten the training targets' spectrum in log E."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pfgraph.config import to_dict
from pfgraph.errors import ConfigError, PfgraphError
from pfgraph.training.config import resolve_run_config
from pfgraph.training.reweight import LOG10_RANGE, TargetWeights
from pfgraph.training.run_folder import LAST, read_checkpoint
from pfgraph.training.trainer import make_loss
from tests.training._helpers import cli, train_args


def _steep(n: int, seed: int = 0) -> torch.Tensor:
    """Targets like the paper's pixels: a steeply falling spectrum, 60 % empty."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, generator=g).abs() * 0.05
    return t * (torch.rand(n, generator=g) < 0.4)


def test_every_decade_of_the_targets_carries_the_same_weight() -> None:
    t = _steep(400_000)
    w = TargetWeights.flat_log([t[:150_000], t[150_000:]], bins_per_decade=10, max_weight=1e9)
    x = t[t > 0]
    wx = w(x)
    assert float(wx.mean()) == pytest.approx(1.0, rel=1e-6)  # uncapped: mean 1 over the non-zero targets
    edges = np.linspace(*LOG10_RANGE, 10 * (LOG10_RANGE[1] - LOG10_RANGE[0]) + 1)
    logs = np.clip(np.log10(x.double().numpy()), edges[0], edges[-1] - 1e-9)
    per_bin, _ = np.histogram(logs, bins=edges, weights=wx.double().numpy())
    filled = per_bin[per_bin > 0]
    assert len(filled) > 20 and np.allclose(filled, filled[0], rtol=1e-3)  # flat in log E
    # the falling spectrum: a large target weighs far more than a typical one
    assert float(w(torch.tensor([0.2]))) > 50 * float(w(torch.tensor([0.03])))


def test_cap_empty_targets_and_values_beyond_the_training_range() -> None:
    t = _steep(100_000, seed=1)
    w = TargetWeights.flat_log([t], bins_per_decade=5, max_weight=20.0)
    assert float(w.weights.max()) <= 20.0 and float(w.weights.min()) > 0
    assert torch.equal(w(torch.zeros(3)), torch.ones(3))  # empty targets weigh 1
    top = float(w(t.max().reshape(1)))
    assert float(w(torch.tensor([5.0]))) == top  # above the training range: the last filled bin's weight
    bottom = float(w(t[t > 0].min().reshape(1)))
    assert float(w(torch.tensor([1e-9]))) == bottom
    with pytest.raises(PfgraphError, match="no non-zero value"):
        TargetWeights.flat_log([torch.zeros(10)])


def test_weighted_loss_is_the_elementwise_loss_times_the_weight() -> None:
    from pfgraph.training.config import TrainConfig

    t = _steep(5000, seed=2).reshape(5, 1000)
    pred = t * 1.1 + 0.001
    w = TargetWeights.flat_log([t])
    for loss in ("mse", "l1", "huber", "log_mse"):
        cfg = TrainConfig(loss=loss)
        plain = make_loss(cfg, reduction="none")(pred, t)
        assert float(make_loss(cfg, "sum", w)(pred, t)) == pytest.approx(float((plain * w(t)).sum()), rel=1e-5)
        assert float(make_loss(cfg, "mean", w)(pred, t)) == pytest.approx(float((plain * w(t)).mean()), rel=1e-5)


def test_bad_settings_are_one_line() -> None:
    for override, word in (("train.reweight=flat", "reweight"), ("train.reweight_max=0.5", "reweight_max"),
                           ("train.reweight_bins_per_decade=0", "reweight_bins_per_decade")):
        with pytest.raises(ConfigError, match=word):
            resolve_run_config("cnn", overrides=[override])


def test_a_run_trains_with_the_weights_and_resumes_a_run_made_before_the_setting(
        tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "rw"
    rc, out, err = cli(capsys, *train_args(events_file, run, "--epochs", "1", "train.reweight=flat_log"))
    assert rc == 0, err
    assert "train.reweight = flat_log: 70 bins" in out
    plain = tmp_path / "plain"
    assert cli(capsys, *train_args(events_file, plain, "--epochs", "1"))[0] == 0
    val = [float(np.genfromtxt(r / "metrics.csv", delimiter=",", names=True)["val_loss"]) for r in (run, plain)]
    assert val[0] != pytest.approx(val[1], rel=1e-3)  # the weighted validation loss is another number

    # a checkpoint written before train.reweight existed resumes (the setting keeps its default) ...
    ckpt = read_checkpoint(plain / LAST)
    old = copy.deepcopy(ckpt["config"])
    for key in ("reweight", "reweight_bins_per_decade", "reweight_max"):
        del old["train"][key]
    cfg = resolve_run_config("cnn", resume={**ckpt, "config": old}, where=plain)
    assert to_dict(cfg)["train"]["reweight"] == "none"
    # ... and refuses to switch it on halfway
    with pytest.raises(ConfigError, match="cannot resume with train.reweight='flat_log'"):
        resolve_run_config("cnn", resume={**ckpt, "config": old}, where=plain, overrides=["train.reweight=flat_log"])
