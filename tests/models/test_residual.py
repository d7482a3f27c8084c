"""The residual models: analytic inversion + an unbounded learned correction, in both representations."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pfgraph.models.analytic import build_analytic
from pfgraph.models.registry import get
from pfgraph.models.residual import build_residual_cnn, build_residual_gnn
from pfgraph.repr.base import Normalisation

NORM = Normalisation([12.0, 14.0, 14.0, 15.0], 20.0)  # S = 20 GeV
META = {"config": {"detector": {"b_field": 0.5}}}
#: Small widths for speed: the same code paths as the presets.
SMALL_CNN = {"channels": 8, "dilations": [1, 2], "pointwise": 1}
SMALL_GNN = {"width": 8, "blocks": 2, "pointwise": 1}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _configured(model: torch.nn.Module) -> torch.nn.Module:
    model.configure_from_data(META, NORM)
    return model


def _inputs(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, 4, 56, 56, generator=g) * (torch.rand(3, 4, 56, 56, generator=g) < 0.3)


def _graph_batch(events_file: Path):  # noqa: ANN202
    from pfgraph.io.root import EventFiles
    from pfgraph.repr.graph import load_points

    return load_points(EventFiles(events_file), [0, 1, 2], NORM).batch([0, 1, 2])


def _run_gnn(model: torch.nn.Module, batch) -> torch.Tensor:  # noqa: ANN001
    from pfgraph.repr.graph import point_features, point_positions

    return model(point_features(batch.x, batch.pix, 56), point_positions(batch.pix, 56), batch.batch, nbr=batch.nbr)


def _analytic_at_points(batch) -> torch.Tensor:  # noqa: ANN001
    from pfgraph.repr.graph import split_pixel

    ana = _configured(build_analytic({}))
    dense = torch.zeros(3, 4, 56, 56)
    ieta, iphi = split_pixel(batch.pix.long(), 56)
    dense[batch.batch.long(), :, ieta, iphi] = batch.x
    return ana(dense)[batch.batch.long(), 0, ieta, iphi]


def test_untrained_image_model_is_the_analytic_inversion_bit_for_bit() -> None:
    torch.manual_seed(0)
    res = _configured(build_residual_cnn({}))
    x = _inputs(1)
    assert torch.equal(res(x), _configured(build_analytic({}))(x))  # exact: relu(A * exp(0) + 0) = A
    assert get("residual_cnn").description.endswith("(improved)") and get("residual_cnn").repr == "image"


def test_untrained_graph_model_is_the_analytic_inversion_bit_for_bit(events_file: Path) -> None:
    batch = _graph_batch(events_file)
    torch.manual_seed(0)
    res = _configured(build_residual_gnn({}))
    out = _run_gnn(res, batch)
    assert out.shape == (batch.x.size(0),) and torch.equal(out, _analytic_at_points(batch))
    assert get("residual_gnn").description.endswith("(improved)") and get("residual_gnn").repr == "graph"
    with pytest.raises(ValueError, match="neighbour table"):
        from pfgraph.repr.graph import point_features, point_positions

        res(point_features(batch.x, batch.pix, 56), point_positions(batch.pix, 56), batch.batch)


def _set_head(model: torch.nn.Module, a: float, b: float) -> None:
    with torch.no_grad():
        model.head.out.weight.zero_()
        model.head.out.bias.copy_(torch.tensor([a, a, a, b]))


def test_a_pixel_can_go_to_zero_and_exceed_s() -> None:
    """The head is unbounded: a = log 30 takes every estimated pixel to 30 x A (far above S for the
    larger ones); b = -100 (x 1 GeV) takes every pixel to exactly zero."""
    torch.manual_seed(0)
    res = _configured(build_residual_cnn(SMALL_CNN))
    x = _inputs(2) * 2.0
    est = res.analytic(x)
    _set_head(res, float(torch.log(torch.tensor(30.0))), 0.0)
    up = res(x)
    assert torch.allclose(up, 30.0 * est, rtol=1e-5)
    assert up.max() > 1.0  # normalised by S: above the training range, no sigmoid x S cap
    _set_head(res, 0.0, -100.0)
    assert torch.count_nonzero(res(x)) == 0 and torch.count_nonzero(est) > 0


def test_energy_where_the_formula_leaves_none() -> None:
    """b > 0 puts b x add_scale GeV into pixels whose analytic estimate is empty (they were missed)."""
    res = _configured(build_residual_cnn({**SMALL_CNN, "add_scale": 0.5}))
    x = _inputs(3)
    est = res.analytic(x)
    _set_head(res, 0.0, 2.0)
    out = res(x)
    empty = est == 0
    assert empty.any() and torch.allclose(out[empty], torch.full_like(out[empty], 2.0 * 0.5 / 20.0))


def test_graph_head_is_the_same_head(events_file: Path) -> None:
    batch = _graph_batch(events_file)
    res = _configured(build_residual_gnn(SMALL_GNN))
    _set_head(res, float(torch.log(torch.tensor(30.0))), 0.0)
    est = _analytic_at_points(batch)
    assert torch.allclose(_run_gnn(res, batch), 30.0 * est, rtol=1e-5)
    _set_head(res, 0.0, -100.0)
    assert torch.count_nonzero(_run_gnn(res, batch)) == 0
    cnn = build_residual_cnn(SMALL_CNN)
    assert type(res.head) is type(cnn.head)  # one head class for both representations


def test_zeroed_pixels_get_upward_gradients_only() -> None:
    """Below zero the relu passes ``leak`` x the upward part of the gradient: a loss that wants the
    pixel back raises its pre-activation, one that wants it lower does nothing."""
    res = _configured(build_residual_cnn({**SMALL_CNN, "leak": 0.1}))
    x = _inputs(4)
    _set_head(res, 0.0, -100.0)
    (-res(x).sum()).backward()  # wants every pixel higher
    assert res.head.out.bias.grad[3] < 0  # gradient descent raises b
    res.zero_grad()
    res(x).sum().backward()  # wants every pixel lower: nothing flows below zero
    assert float(res.head.out.bias.grad.abs().sum()) == 0.0


def test_only_the_network_learns_and_bad_configs_are_refused() -> None:
    res = _configured(build_residual_cnn(SMALL_CNN))
    res(_inputs(5)).sum().backward()
    assert res.head.out.weight.grad is not None and res.head.out.weight.grad.abs().sum() > 0
    assert not list(res.analytic.parameters())
    with pytest.raises(ValueError, match="add_scale > 0"):
        build_residual_cnn({"add_scale": 0.0})
    with pytest.raises(ValueError, match="blocks >= 1"):
        build_residual_gnn({"blocks": 0})


@pytest.mark.parametrize("model", ["residual_cnn", "residual_gnn"])
def test_trains_and_evaluates_through_the_cli_and_the_api(model: str, events_file: Path, tmp_path: Path) -> None:
    import yaml

    import pfgraph
    from pfgraph.cli import main
    from pfgraph.eval.metrics import read_metrics

    small = [f"model.{k}={v}".replace(" ", "") for k, v in (SMALL_CNN if model == "residual_cnn" else SMALL_GNN).items()]
    common = ["train.threads=1", "train.batch_size=16", "data.max_events=60", *small]
    run = tmp_path / "cli_run"
    assert main(["train", "--model", model, "--data", str(events_file), "--out", str(run), "--epochs", "1",
                 *common]) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["loss"] == "rel_huber"  # the model preset's own train default
    assert main(["evaluate", str(run), "--data", str(events_file), "--out", str(tmp_path / "cli_eval"),
                 "--max-events", "20", "--bootstrap", "0", "--no-plots"]) == 0
    assert read_metrics(tmp_path / "cli_eval" / "metrics.json")["model"]["name"] == model

    api = pfgraph.train(model, tmp_path / "api_run", events_file, epochs=1, overrides=[*common, "train.loss=mse"])
    assert api.best_epoch >= 0
    assert yaml.safe_load((tmp_path / "api_run" / "config.yaml").read_text())["train"]["loss"] == "mse"  # override wins
    ev = pfgraph.evaluate(tmp_path / "api_run", events_file, tmp_path / "api_eval", max_events=20, bootstrap=0,
                          plots=False)
    assert ev.metrics["headline"]["figures"]["residual_half_width_68"]["value"] is not None


def test_the_head_weighs_the_inversion_pieces_separately() -> None:
    """a_had = log 2 doubles only the neutral-hadron energy the formula found: C + 2 H + M."""
    res = _configured(build_residual_cnn(SMALL_CNN))
    x = _inputs(6) * 2.0
    parts = res.analytic.parts(x)
    with torch.no_grad():
        res.head.out.weight.zero_()
        res.head.out.bias.copy_(torch.tensor([0.0, float(torch.log(torch.tensor(2.0))), 0.0, 0.0]))
    expected = (parts["charged"] + 2.0 * parts["e_had"] + parts["e_em"]) / 20.0
    assert float(parts["e_had"].max()) > 0
    torch.testing.assert_close(res(x)[:, 0], expected.float(), rtol=1e-5, atol=1e-7)


def test_a_pixel_beyond_the_training_range_keeps_the_weights_of_its_edge() -> None:
    """cap_features: a pixel whose energies exceed S is seen as the same mixture at S, so its learned
    weights exp(a) and additive term b stop changing with its energy (the prediction follows the
    inversion's pieces); without the cap the network extrapolates them. Untrained, either is the
    analytic inversion."""
    x = torch.zeros(1, 4, 56, 56)
    x[0, :, 20, 30] = torch.tensor([2.0, 3.0, 0.0, 0.0])  # a neutral pixel (ECAL, HCAL; no track to bend)
    heads, models = {}, {}
    for cap in (True, False):
        torch.manual_seed(4)
        res = models[cap] = _configured(build_residual_cnn({**SMALL_CNN, "cap_features": cap}))
        assert res.cap_features is cap
        assert torch.equal(res(x), _configured(build_analytic({}))(x))  # head at zero: the formula
        with torch.no_grad():
            res.head.out.weight.normal_(0.0, 0.3)
        parts = res.analytic.parts(x)
        assert max(float(p[0, 20, 30]) for p in parts.values()) > 2 * float(res.analytic.target_scale)  # beyond S
        seen: list[torch.Tensor] = []
        hook = res.head.out.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o[0, 20, 30].detach()))
        for k in (1.0, 2.0, 3.0):
            res(k * x)
        hook.remove()
        heads[cap] = torch.stack(seen)  # (a_c, a_had, a_em, b) at the pixel for each energy
    # capped, the pixel's weights move only as far as its mixture does (the inversion's non-linearity
    # changes the ratios a little); free, the network extrapolates them with the energy
    moved = {cap: float((h[1:] - h[0]).abs().max()) for cap, h in heads.items()}
    assert moved[True] < 0.01 and moved[False] > 10 * moved[True], moved
    # the features themselves: energies in proportion are the same mixture, capped at S exactly
    capped = models[True]
    pieces = {n: torch.tensor([1.0 + i]) for i, n in enumerate(("charged", "e_em", "e_had", "ecal_sub", "hcal_sub",
                                                                "hcal_at_bend"))}
    inputs = torch.tensor([[1.0, 2.0, 0.0, 0.5]])
    f = [capped.features(k * inputs, {n: k * p for n, p in pieces.items()}) for k in (20.0, 40.0)]
    assert torch.allclose(f[0], f[1], rtol=1e-6)
    edge = float(torch.log1p(capped.analytic.target_scale / capped.log_e0))
    assert float(f[0].max()) == pytest.approx(edge, rel=1e-6)
    assert build_residual_gnn({"cap_features": True}).cap_features and not build_residual_gnn({}).cap_features


@pytest.mark.parametrize("model", ["residual_cnn", "residual_gnn"])
def test_the_cone_sum_term_trains_on_both_representations(model: str, events_file: Path, tmp_path: Path) -> None:
    """train.cone_weight adds the cone-sum term on the grid (point clouds scattered to it): the run
    records it, trains to a finite loss, and its validation loss carries the term."""
    import csv

    import yaml

    import pfgraph

    small = [f"model.{k}={v}".replace(" ", "") for k, v in (SMALL_CNN if model == "residual_cnn" else SMALL_GNN).items()]
    common = ["train.threads=1", "train.batch_size=16", "data.max_events=60", *small]
    val = {}
    for w in (0.0, 1.0):
        out = tmp_path / f"run_{w:g}"
        pfgraph.train(model, out, events_file, epochs=1, overrides=[*common, f"train.cone_weight={w}"])
        assert yaml.safe_load((out / "config.yaml").read_text())["train"]["cone_weight"] == w
        rows = list(csv.DictReader((out / "metrics.csv").open()))
        val[w] = float(rows[-1]["val_loss"])
        assert math.isfinite(val[w])
    assert val[1.0] != val[0.0]


def test_a_residual_run_resumes_with_the_train_preset_named_again(events_file: Path, tmp_path: Path) -> None:
    """A study names its train preset on every attempt (``--config default``): a resumed residual
    run gets the model's own train defaults over it again (loss rel_huber, batch 16), as its first
    attempt did, instead of being refused for a changed batch size."""
    from pfgraph.cli import main

    common = ["--config", "default", "train.threads=1", "data.max_events=60",
              *[f"model.{k}={v}".replace(" ", "") for k, v in SMALL_CNN.items()]]
    run = tmp_path / "run"
    assert main(["train", "--model", "residual_cnn", "--data", str(events_file), "--out", str(run), "--epochs", "1",
                 *common]) == 0
    assert main(["train", "--model", "residual_cnn", "--data", str(events_file), "--out", str(run), "--epochs", "2",
                 *common]) == 0
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["batch_size"] == 16 and cfg["train"]["loss"] == "rel_huber" and cfg["train"]["epochs"] == 2
