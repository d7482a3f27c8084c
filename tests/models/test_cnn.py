"""``pfgraph/models/cnn.py``: the paper's multi-scale SE-CNN and the checks its family shares."""

from __future__ import annotations

import pytest
import torch

from pfgraph.errors import ConfigError
from pfgraph.models.cnn import MultiScaleCNN, check_kernels, check_widths
from pfgraph.models.common import SEBlock
from pfgraph.models.registry import get


def test_cnn_is_the_paper_architecture() -> None:
    cnn = get("cnn").builder({})
    assert isinstance(cnn, MultiScaleCNN)
    assert [b[0].kernel_size for b in cnn.stem] == [(3, 3), (5, 5), (7, 7)] and all(b[0].out_channels == 2 for b in cnn.stem)
    assert any(isinstance(m, SEBlock) for m in cnn.body.modules())  # the paper's text: cnn has its SE block


def test_each_stem_branch_sees_its_own_scale() -> None:
    """A single hit reaches k // 2 pixels through a k x k stem branch: the 7x7 branch's response
    spreads further than the 3x3 branch's."""
    cnn = get("cnn").builder({"encoder": [4], "decoder": [4]}).eval()
    x = torch.zeros(1, 4, 16, 16)
    x[0, 0, 8, 8] = 1.0
    with torch.no_grad():
        f = cnn.features(x)
        zero = torch.zeros_like(f)
        reach = [int(((b[0](f) - b[0](zero)).abs().sum(1)[0] > 0).any(0).sum()) for b in cnn.stem]
    assert reach[0] < reach[1] < reach[2]


@pytest.mark.parametrize("kernels", [[], [4], [3, 0], [-3]])
def test_kernel_sizes_must_be_odd_and_positive(kernels: list[int]) -> None:
    with pytest.raises(ConfigError, match="stem_kernels"):
        check_kernels(kernels, "stem_kernels")


def test_widths_must_be_positive() -> None:
    check_widths([], "decoder", allow_empty=True)
    for bad in ([], [8, 0]):
        with pytest.raises(ConfigError, match="encoder"):
            check_widths(bad, "encoder")
    with pytest.raises(ConfigError, match="stem_kernels"):
        get("cnn").builder({"stem_kernels": [2, 4]})
