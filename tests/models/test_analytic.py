"""The analytic baseline inverts the simulator's own response."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pfgraph.config import load_config, resolve_config_path, to_dict
from pfgraph.models.analytic import build_analytic, invert_response
from pfgraph.models.registry import get
from pfgraph.repr.base import Normalisation
from pfgraph.sim import showers
from pfgraph.sim.detector import CHARGED_HADRON, EM_NEUTRAL, NEUTRAL_HADRON, DetectorConfig, SimConfig
from pfgraph.sim.generate import simulate_batch
from tests.sim.test_simulator import particles


def _model(b_field: float) -> torch.nn.Module:
    m = build_analytic({})
    m.configure_from_data({"config": {"detector": {"b_field": b_field}}}, Normalisation([2.0, 3.0, 4.0, 5.0], 7.0))
    return m


def _predict(m: torch.nn.Module, out: dict) -> np.ndarray:
    scales = np.array([2.0, 3.0, 4.0, 5.0], dtype=np.float32).reshape(1, 4, 1, 1)
    x = np.stack([out[c] for c in ("emcal", "hcal", "trk_neg", "trk_pos")], axis=1).astype(np.float32) / scales
    return m(torch.from_numpy(x))[:, 0].double().numpy() * 7.0


def test_registered_as_untrainable_image_model() -> None:
    entry = get("analytic", "image")
    assert not entry.trainable


def test_invert_response_solves_the_nonlinearity() -> None:
    x = torch.tensor([0.5, 3.0, 40.0], dtype=torch.float64)
    dep = 0.9 * (x - 0.3 * torch.sqrt(x))
    torch.testing.assert_close(invert_response(dep, 0.9, 0.3), x)
    assert invert_response(torch.tensor([-1.0, 0.0]), 0.9, 0.3).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("b_field", [0.0, 0.5])
@pytest.mark.parametrize("species, charge", [(EM_NEUTRAL, 0), (NEUTRAL_HADRON, 0), (CHARGED_HADRON, 1), (CHARGED_HADRON, -1)])
def test_single_particles_without_smearing_are_recovered_exactly(b_field: float, species: int, charge: int) -> None:
    det = DetectorConfig(b_field=b_field, trk_res=0.0, emc_res=0.0, hcal_res=0.0)
    for phi in (0.01, 0.1):  # the bent deposit lands in either of its two reachable pixels
        out = showers.respond(particles(energy=[10.0], species=[species], charge=[charge], phi=[phi]), 1, det)
        pred = _predict(_model(b_field), out)
        np.testing.assert_allclose(pred, out["truth"], atol=1e-4)


def test_beats_the_raw_calorimeter_sum_on_simulated_events() -> None:
    cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"))
    b = simulate_batch(cfg, range(20))
    m = build_analytic({})
    m.configure_from_data({"config": to_dict(cfg)}, Normalisation([1.0] * 4, 1.0))
    x = torch.from_numpy(np.stack([b[c] for c in ("emcal", "hcal", "trk_neg", "trk_pos")], axis=1))
    pred = m(x)[:, 0].numpy()
    t = b["truth"]
    sel = t > 0
    r = (pred[sel] - t[sel]) / t[sel]
    raw = b["emcal"] + b["hcal"]
    r_raw = (raw[sel] - t[sel]) / t[sel]
    width = np.subtract(*np.percentile(r, [84, 16])) / 2
    assert abs(np.median(r)) < 0.05 and width < 0.15
    assert abs(np.median(r)) < abs(np.median(r_raw))
    assert pred.sum() / t.sum() == pytest.approx(1.0, abs=0.1)
