"""The seven paper image models and their improved variants: shapes, gradients, overfitting,
pinned parameter counts, configs and the physics-aware input features."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pfgraph import presets
from pfgraph.config import read_yaml
from pfgraph.errors import ConfigError
from pfgraph.geometry import PHI_PIXEL
from pfgraph.io.root import EventFiles
from pfgraph.models.common import InputConfig, InputFeatures, SelfAttention2d, shift_tracks
from pfgraph.models.registry import get
from pfgraph.repr.base import Normalisation, fit_normalisation
from pfgraph.repr.image import ImageRepresentation
from pfgraph.training.config import load_model_section

PAPER = ("mlp", "cnn", "cnn_attn", "cnn3d", "unet", "unet_attn", "rnn")
VARIANTS = ("unet_attn_plus", "cnn_attn_code", "cnn_attn_plus", "mlp_plus")

#: Parameter counts of the preset configs: change deliberately, together with the config.
PINNED = {
    "mlp": 1_055_745, "cnn": 91_543, "cnn_attn": 95_647, "cnn_attn_code": 823_169, "cnn3d": 94_281, "unet": 1_798_273,
    "unet_attn": 461_505, "rnn": 1_222_200,
    "unet_attn_plus": 462_082, "cnn_attn_plus": 898_178, "mlp_plus": 1_057_793,
}

#: Small versions of every architecture for the fast tests (same code paths).
SMALL = {
    "mlp": {"hidden": [32, 32]},
    "cnn": {"encoder": [8, 16], "decoder": [8]},
    "cnn3d": {"encoder": [8, 16], "decoder": [8]},
    "cnn_attn": {"encoder": [8, 16], "decoder": [8], "attention": {"key_channels": 4}},
    "unet": {"channels": [8, 16, 32]},
    "unet_attn": {"channels": [8, 16, 32], "attention": {"key_channels": 8}},
    "rnn": {"hidden": 64},
}
PLUS = {"inputs": {"log": True, "track_shift": True}}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine run much faster (and steadier) on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _build(name: str, extra: dict | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    params = dict(SMALL[name])
    params.update(extra or {})
    return get(name, "image").builder(params)


@pytest.fixture(scope="module")
def batch(events_file_b0: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real B=0 events, normalised (inputs, target)."""
    files = EventFiles(events_file_b0)
    norm = fit_normalisation(files, np.arange(8))
    rep = ImageRepresentation()
    b = rep.collate(rep.make_dataset(files, np.arange(2), norm).__getitems__([0, 1]))
    return b.x, b.y


@pytest.mark.parametrize("name", PAPER)
def test_registered_as_image_models(name: str) -> None:
    entry = get(name, "image")
    assert entry.repr == "image" and entry.trainable and entry.description


@pytest.mark.parametrize("name", PAPER)
@pytest.mark.parametrize("plus", [False, True], ids=["paper", "plus-inputs"])
def test_forward_shape_and_gradient_reaches_every_parameter(name: str, plus: bool,
                                                            batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    model = _build(name, PLUS if plus else None)
    out = model(x)
    assert out.shape == (2, 1, 56, 56) and out.dtype == torch.float32
    ((out - y) ** 2).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"


@pytest.mark.parametrize("name", PAPER)
def test_overfits_a_tiny_fixed_batch(name: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Loss falls 10x and ends below the best constant prediction (the target variance)."""
    x, y = batch
    model = _build(name)
    steps = {"rnn": 150}.get(name, 100)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    variance = float(((y - y.mean()) ** 2).mean())
    assert losses[-1] < losses[0] / 10, f"{name}: {losses[0]:.3g} -> {losses[-1]:.3g}"
    assert losses[-1] < variance, f"{name}: final loss {losses[-1]:.3g} not below the target variance {variance:.3g}"


@pytest.mark.parametrize("name", [*PAPER, *VARIANTS])
def test_parameter_count_of_the_preset_is_pinned(name: str) -> None:
    section = load_model_section(name, "image")
    model = get(section.arch, "image").builder(section.params)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == PINNED[name]


def test_models_command_lists_every_preset_with_its_count(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from pfgraph.models.cmd import model_table, run

    rows = {r["name"]: r for r in model_table()}
    for name, count in PINNED.items():
        assert rows[name]["params"] == count and rows[name]["repr"] == "image"
    assert rows["unet_attn_plus"]["arch"] == "unet_attn"
    assert run(argparse.Namespace(json=False)) == 0
    out = capsys.readouterr().out
    assert "unet_attn_plus" in out and "1,055,745" in out and "variant of unet_attn" in out


@pytest.mark.parametrize("name", PAPER)
def test_presets_follow_the_paper_and_differ_from_the_variants(name: str) -> None:
    data = read_yaml(presets.find("model", name))
    assert data.get("name") == name
    assert "inputs" not in data  # paper configs use the plain normalised inputs
    attention = data.get("attention")
    if attention is not None:
        assert attention["scaled"] is False and attention["residual"] is False


def test_paper_architecture_details() -> None:
    mlp = get("mlp").builder({})
    linears = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 1024), (1024, 1024), (1024, 1)]
    cnn = get("cnn").builder({})
    assert [c.kernel_size for c in (b[0] for b in cnn.stem)] == [(3, 3), (5, 5), (7, 7)]
    assert all(b[0].out_channels == 2 for b in cnn.stem)
    enc = [m for m in cnn.body.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert enc[-1].out_channels == 64 and enc[-1].kernel_size == (5, 5)
    c3 = get("cnn3d").builder({})
    kernels = sorted({b[0].kernel_size for stack in c3.stem for b in stack})
    assert kernels == [(3, 3, 3), (3, 5, 5), (3, 7, 7)] and c3.stacks == [[0, 1, 2], [0, 1, 3]]
    rnn = get("rnn").builder({})
    assert rnn.encoder.input_size == 224 and rnn.encoder.num_layers == 2 and rnn.decoder.num_layers == 2
    assert rnn.head[0].in_features == 224 and rnn.head[0].out_features == 56
    ua = get("unet_attn").builder({})
    assert len(ua.down) == 3 and list(ua.attn) == ["2"]
    attn = get("cnn_attn").builder({})  # the paper's text: the cnn, attention in place of the SE block
    assert attn.body.attention.query.kernel_size == (1, 1) and attn.body.attention.value.in_channels == 64
    assert isinstance(attn.body.se, torch.nn.Identity) and len(attn.stem) == 3
    code = get("cnn_attn_code").builder({})  # the authors' code
    assert code.attention.query.kernel_size == (1, 1) and code.attention.value.in_channels == 256


def test_mlp_skipping_empty_pixels_is_exact(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = batch
    model = _build("mlp")
    with torch.no_grad():
        fast = model(x)
        model.skip_empty = False
        slow = model(x)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_rnn_treats_eta_rows_as_steps() -> None:
    """Changing the last eta row cannot change the encoder outputs of earlier rows, so the
    decoder's first rows only change through the shared final state."""
    model = _build("rnn")
    x = torch.rand(1, 4, 56, 56)
    f = model.features(x)
    seq = f.permute(0, 2, 1, 3).reshape(1, 56, 224)
    torch.testing.assert_close(seq[0, 7, :56], x[0, 0, 7])  # step 7 = eta row 7, emcal first
    torch.testing.assert_close(seq[0, 7, 168:], x[0, 3, 7])  # then trk_pos


def test_attention_rows_are_a_softmax_and_residual_gate_starts_small() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 4)
    paper = SelfAttention2d(8, 4)
    out = paper(x)
    assert out.shape == x.shape
    # A constant value map is reproduced exactly by a row-stochastic attention.
    with torch.no_grad():
        paper.value.weight.zero_()
        paper.value.bias.fill_(2.0)
    torch.testing.assert_close(paper(x), torch.full_like(x, 2.0))
    plus = SelfAttention2d(8, 4, scaled=True, residual=True, gamma_init=0.0)
    torch.testing.assert_close(plus(x), x)


def test_unknown_hyper_parameter_is_one_clear_config_error() -> None:
    with pytest.raises(ConfigError, match=r"model 'unet'.*unknown config key 'chanels'.*did you mean 'channels'"):
        get("unet").builder({"chanels": [8, 16]})
    with pytest.raises(ConfigError, match="halve evenly"):
        get("unet").builder({"channels": [8, 16, 32, 64, 128]})
    with pytest.raises(ConfigError, match="odd positive"):
        get("cnn").builder({"stem_kernels": [2, 4]})
    with pytest.raises(ConfigError, match="output"):
        get("rnn").builder({"output": "tanh"})


def test_track_shift_moves_tracks_by_the_b_field_bend() -> None:
    """A 10 GeV positive track at column 20 in B=0.5 bends by 0.05 rad = 0.446 pixels: its
    energy is shared 55.4/44.6 % between columns 20 and 21; a negative one the other way."""
    trk = torch.zeros(1, 56, 56)
    trk[0, 5, 20] = 1.0
    energy = trk * 10.0
    b = torch.tensor(0.5)
    shift = 0.5 / 10.0 / PHI_PIXEL
    pos = shift_tracks(trk, energy, 1.0, b)
    assert pos[0, 5, 20].item() == pytest.approx(1 - shift, abs=1e-6)
    assert pos[0, 5, 21].item() == pytest.approx(shift, abs=1e-6)
    neg = shift_tracks(trk, energy, -1.0, b)
    assert neg[0, 5, 19].item() == pytest.approx(shift, abs=1e-6)
    assert neg[0, 5, 20].item() == pytest.approx(1 - shift, abs=1e-6)
    assert float(neg.sum()) == pytest.approx(1.0)
    # Bent out of the phi range: lost, as in the simulator's paper mode.
    edge = torch.zeros(1, 56, 56)
    edge[0, 0, 55] = 1.0
    assert float(shift_tracks(edge, edge * 0.2, 1.0, b).sum()) == 0.0
    assert torch.equal(shift_tracks(trk, energy, 1.0, torch.tensor(0.0)), trk)


def test_input_features_take_scales_and_b_field_from_the_data() -> None:
    feats = InputFeatures(InputConfig(log=True, log_e0=1.0, track_shift=True))
    feats.configure_from_data({"config": {"detector": {"b_field": 0.5}}}, Normalisation([2.0, 3.0, 4.0, 5.0], 7.0))
    assert feats.b_field.item() == 0.5 and feats.input_scale.tolist() == [2.0, 3.0, 4.0, 5.0]
    x = torch.zeros(1, 4, 56, 56)
    x[0, 0, 3, 3] = 0.5  # 1 GeV of emcal
    out = feats(x)
    assert out.shape == (1, 6, 56, 56)
    assert out[0, 0, 3, 3].item() == pytest.approx(np.log1p(1.0) / np.log1p(2.0))
    assert float(out[:, 1:].abs().sum()) == 0.0
    state = feats.state_dict()  # travels with the checkpoint
    assert set(state) == {"input_scale", "b_field"}


@pytest.mark.parametrize("name", ["cnn", "cnn3d", "cnn_attn", "unet", "unet_attn"])
def test_sigmoid_presets_start_at_the_scale_of_the_target(name: str) -> None:
    """``output_bias: -3`` starts sigmoid models near the mean normalised target (~0.05), not 0.5."""
    section = load_model_section(name, "image")
    assert section.params["output"] == "sigmoid" and section.params["output_bias"] == -3.0
    model = get(name, "image").builder({**section.params, **SMALL[name]}).eval()
    with torch.no_grad():
        mean = float(model(torch.zeros(1, 4, 56, 56)).mean())
    assert mean == pytest.approx(1 / (1 + np.exp(3.0)), abs=0.01)
    with pytest.raises(ConfigError, match="output_bias"):
        get(name, "image").builder({"output_bias": "high"})
