"""``cnn_attn`` as the paper's text builds it (the ``cnn`` with self-attention over all 56x56
positions in place of its SE block) and ``cnn_attn_code`` as the authors' code does: the
attention against a naive softmax(QK^T)V, parameter counts from the formula, output range,
one training step through the command line, and old ``cnn_attn`` checkpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pfgraph.errors import ConfigError
from pfgraph.io.root import EventFiles
from pfgraph.models.cnn_attn import AttentionCNN, AttentionCNNCode, SDPSelfAttention2d, checkpoint_arch
from pfgraph.models.common import SelfAttention2d
from pfgraph.models.registry import get
from pfgraph.repr.base import fit_normalisation
from pfgraph.training.config import load_model_section
from tests.training._helpers import cli


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small models on a shared 2-core machine run faster (and steadier) on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def naive_attention(m: SelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T * scale) V written out with the full N x N matrix (the textbook form)."""
    b, c, h, w = x.shape
    q = m.query(x).flatten(2).transpose(1, 2)  # (B, N, Ck)
    k = m.key(x).flatten(2).transpose(1, 2)
    v = m.value(x).flatten(2).transpose(1, 2)  # (B, N, C)
    scores = torch.einsum("bnk,bmk->bnm", q, k) * m.scale
    out = torch.einsum("bnm,bmc->bnc", torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, c, h, w)
    return x + m.gamma * out if m.gamma is not None else out


@pytest.mark.parametrize(("channels", "key_channels", "scaled", "residual"),
                         [(8, 2, False, False), (8, 8, False, False), (6, 3, True, True)])
def test_sdpa_attention_equals_the_naive_softmax_form(channels: int, key_channels: int, scaled: bool,
                                                      residual: bool) -> None:
    torch.manual_seed(0)
    m = SDPSelfAttention2d(channels, key_channels, scaled, residual, gamma_init=0.7)
    x = torch.randn(2, channels, 5, 7, requires_grad=True)
    fast = m(x)
    slow = naive_attention(m, x)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast, SelfAttention2d.forward(m, x), rtol=1e-5, atol=1e-5)  # the shared module's form
    # Gradients agree too (the padded keys and queries change nothing).
    g_fast = torch.autograd.grad(fast.square().sum(), [x, m.query.weight])
    g_slow = torch.autograd.grad(slow.square().sum(), [x, m.query.weight])
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _conv_block(cin: int, cout: int, k: int) -> int:
    """Conv without bias (batch norm follows) + batch norm's scale and shift."""
    return cin * cout * k * k + 2 * cout


def paper_cnn_attn_parameters(cin: int = 4, stem: tuple[int, ...] = (3, 5, 7), stem_channels: int = 2,
                              encoder: tuple[int, ...] = (16, 32, 64), ek: int = 5, key: int = 8,
                              decoder: tuple[int, ...] = (32, 16), dk: int = 3) -> int:
    """The paper-text cnn_attn's parameter count, layer by layer."""
    n = sum(cin * stem_channels * k * k + stem_channels for k in stem)  # stem convs (with bias)
    width = stem_channels * len(stem)
    for w in encoder:
        n += _conv_block(width, w, ek)
        width = w
    n += 2 * (width * key + key) + width * width + width  # 1x1 Q, K (key channels) and V (width)
    for w in decoder:
        n += _conv_block(width, w, dk)
        width = w
    return n + width + 1  # 1x1 head


def code_cnn_attn_parameters(cin: int = 4, encoder: tuple[int, ...] = (64, 128, 256), k: int = 3,
                             key: int = 32) -> int:
    """The authors'-code cnn_attn's parameter count, layer by layer."""
    n, width = 0, cin
    for w in encoder:
        n += _conv_block(width, w, k)
        width = w
    n += 2 * (width * key + key) + width * width + width
    for w in reversed(encoder[:-1]):
        n += _conv_block(width, w, k)
        width = w
    return n + width + 1


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_parameter_counts_follow_the_formula() -> None:
    paper = load_model_section("cnn_attn", "image")
    assert paper.arch == "cnn_attn"
    model = get("cnn_attn").builder(paper.params)
    assert _count(model) == paper_cnn_attn_parameters() == 95_647
    # The cnn with its SE block (64 -> 8 -> 64) swapped for the attention (Q, K 64 -> 8; V 64 -> 64).
    assert _count(model) - _count(get("cnn").builder(load_model_section("cnn", "image").params)) == (
        (2 * (64 * 8 + 8) + 64 * 64 + 64) - (64 * 8 + 8 + 8 * 64 + 64))
    small = {"encoder": [8, 12], "decoder": [6], "attention": {"key_channels": 3}, "stem_kernels": [3, 5]}
    assert _count(get("cnn_attn").builder(small)) == paper_cnn_attn_parameters(
        stem=(3, 5), encoder=(8, 12), key=3, decoder=(6,))
    code = load_model_section("cnn_attn_code", "image")
    assert code.arch == "cnn_attn_code"
    assert _count(get("cnn_attn_code").builder(code.params)) == code_cnn_attn_parameters() == 823_169


def test_paper_model_shape_range_and_full_resolution_attention() -> None:
    section = load_model_section("cnn_attn", "image")
    model = get("cnn_attn").builder(section.params)
    assert isinstance(model, AttentionCNN) and isinstance(model.body.attention, SDPSelfAttention2d)
    seen: list[tuple[int, ...]] = []
    model.body.attention.register_forward_hook(lambda _m, inp, _out: seen.append(tuple(inp[0].shape)))
    torch.manual_seed(1)
    x = torch.rand(3, 4, 56, 56) * 5
    with torch.no_grad():
        out = model.eval()(x)
    assert out.shape == (3, 1, 56, 56)
    assert seen == [(3, 64, 56, 56)]  # attention over all 3136 positions of the 64-channel map
    assert float(out.min()) > 0.0 and float(out.max()) < 1.0  # the paper's sigmoid
    assert model.body.attention.gamma is None and model.body.attention.scale == 1.0  # replaces, unscaled


def test_code_variant_keeps_the_old_architecture() -> None:
    model = get("cnn_attn_code").builder(load_model_section("cnn_attn_code", "image").params)
    assert isinstance(model, AttentionCNNCode)
    seen: list[tuple[int, ...]] = []
    model.attention.register_forward_hook(lambda _m, inp, _out: seen.append(tuple(inp[0].shape)))
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 4, 56, 56)).shape == (1, 1, 56, 56)
    assert seen == [(1, 256, 14, 14)]
    plus = load_model_section("cnn_attn_plus", "image")
    assert plus.arch == "cnn_attn_code" and plus.params["full_res_skip"] is True


def test_model_trains_one_step_through_the_command_line(tmp_path: Path, events_file: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc, out, err = cli(capsys, "train", "--model", "cnn_attn", "--data", str(events_file), "--out", str(run),
                       "--epochs", "1", "model.encoder=[4,8]", "model.decoder=[4]", "model.attention.key_channels=4",
                       "train.threads=1", "train.batch_size=16", "data.max_events=40")
    assert rc == 0, err
    assert "train: cnn_attn (image," in out and "1/1 epochs" in out
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["arch"] == "cnn_attn" and summary["epochs"] == 1
    assert np.isfinite(summary["best_val_loss"])


def test_old_style_cnn_attn_config_is_refused_with_a_pointer_to_the_code_variant() -> None:
    old = {"encoder": [64, 128, 256], "kernel": 3, "attention": {"key_channels": 32}}
    with pytest.raises(ConfigError, match="cnn_attn_code"):
        get("cnn_attn").builder(old)
    assert checkpoint_arch("cnn_attn", old) == "cnn_attn_code"
    assert checkpoint_arch("cnn_attn", {"encoder": [16, 32, 64]}) == "cnn_attn"
    assert checkpoint_arch("cnn_attn", {"full_res_skip": True}) == "cnn_attn_code"
    assert checkpoint_arch("cnn", {"kernel": 3}) == "cnn"


def test_a_checkpoint_of_the_old_cnn_attn_loads_as_the_code_variant(tmp_path: Path, events_file: Path) -> None:
    """A checkpoint written when ``cnn_attn`` was the authors'-code model (arch and config say
    ``cnn_attn``) loads as ``cnn_attn_code`` with its weights, never into the paper-text model."""
    from pfgraph.training.predict import load_run
    from pfgraph.training.trainer import BEST, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint

    params = {"encoder": [4, 8], "kernel": 3, "batch_norm": True, "activation": "relu",
              "attention": {"key_channels": 2, "scaled": False, "residual": False},
              "output": "sigmoid", "output_bias": -3.0}
    torch.manual_seed(3)
    old = get("cnn_attn_code").builder(params).eval()
    norm = fit_normalisation(EventFiles(events_file), np.arange(8))
    run = tmp_path / "old_run"
    run.mkdir()
    save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model_name": "cnn_attn",
                     "arch": "cnn_attn", "repr": "image", "params": _count(old),
                     "model_state": old.state_dict(), "normalisation": norm.to_dict(), "epoch": 2,
                     "config": {"model": {"name": "cnn_attn", "arch": "cnn_attn", "repr": "image", "params": params}}},
                    run / BEST)
    loaded = load_run(run)
    assert isinstance(loaded.model, AttentionCNNCode) and loaded.entry.name == "cnn_attn_code"
    x = torch.rand(2, 4, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), old(x))
