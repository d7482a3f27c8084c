"""``pfgraph/models/cnn3d.py``: detector layers as depth, one 3D stack per track charge."""

from __future__ import annotations

import pytest
import torch

from pfgraph.errors import ConfigError
from pfgraph.models.cnn3d import DepthCNN
from pfgraph.models.registry import get


def test_cnn3d_is_the_paper_architecture() -> None:
    c3 = get("cnn3d").builder({})
    assert isinstance(c3, DepthCNN)
    kernels = sorted({b[0].kernel_size for stack in c3.stem for b in stack})
    assert kernels == [(3, 3, 3), (3, 5, 5), (3, 7, 7)]
    assert c3.stacks == [[0, 1, 2], [0, 1, 3]]  # [emcal, hcal, trk_neg] and [emcal, hcal, trk_pos]


def test_each_stack_sees_only_its_own_charge() -> None:
    """A negative track reaches the first stack's 3D convolutions and never the second's."""
    c3 = get("cnn3d").builder({"encoder": [4], "decoder": [4]}).eval()
    x = torch.zeros(1, 4, 12, 12)
    x[0, 2, 6, 6] = 1.0  # trk_neg only
    with torch.no_grad():
        f = c3.features(x)
        outs = [[conv(f[:, stack].unsqueeze(1)) - conv(torch.zeros_like(f[:, stack]).unsqueeze(1)) for conv in convs]
                for stack, convs in zip(c3.stacks, c3.stem)]
    assert all(o.abs().sum() > 0 for o in outs[0]) and all(o.abs().sum() == 0 for o in outs[1])


def test_depth_kernel_cannot_exceed_the_stack() -> None:
    with pytest.raises(ConfigError, match="depth_kernel = 4"):
        get("cnn3d").builder({"depth_kernel": 4})
    with pytest.raises(ConfigError, match="depth_kernel = 0"):
        get("cnn3d").builder({"depth_kernel": 0})


def test_the_large_preset_is_the_v2_paper_s_25m_parameter_3d_cnn() -> None:
    """cnn3d_large: the cnn3d builder with wider layers, ~25M parameters (the v2 paper's size), in the
    GPU study only."""
    from pfgraph.models.registry import resolve
    from pfgraph.study.config import load_study

    choice = resolve("cnn3d_large", "image")
    assert choice.arch == "cnn3d"
    model = get(choice.arch).builder(choice.params)
    assert isinstance(model, DepthCNN)
    assert sum(p.numel() for p in model.parameters()) == 25_578_353
    models = {m.label for m in load_study("paper")[0].models}
    assert {"cnn3d_large", "cnn3d_large_b000"} <= models
    assert "cnn3d_large" not in {m.label for m in load_study("cpu_paper")[0].models}
