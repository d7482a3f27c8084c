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


@pytest.mark.parametrize("charge", [1, -1])
def test_parts_line_a_track_up_with_its_own_bent_hcal_deposit(charge: int) -> None:
    """``parts``: the pieces sum to the estimate, and a lone charged hadron's track pixel carries the
    HCAL deposit measured where the B field bent its shower (a different column at 5 GeV, B = 0.5)."""
    det = DetectorConfig(b_field=0.5, trk_res=0.0, emc_res=0.0, hcal_res=0.0)
    out = showers.respond(particles(energy=[5.0], species=[CHARGED_HADRON], charge=[charge], phi=[0.05]), 1, det)
    m = _model(0.5)
    scales = np.array([2.0, 3.0, 4.0, 5.0], dtype=np.float32).reshape(1, 4, 1, 1)
    x = torch.from_numpy(np.stack([out[c] for c in ("emcal", "hcal", "trk_neg", "trk_pos")], axis=1).astype(np.float32) / scales)
    parts = m.parts(x)
    assert torch.equal(parts["truth"], parts["charged"] + parts["e_had"] + parts["e_em"])
    assert torch.equal((parts["truth"] / 7.0).to(x.dtype), m(x)[:, 0])
    trk = (out["trk_pos"] if charge > 0 else out["trk_neg"])[0]
    track_pixel = np.unravel_index(np.argmax(trk), trk.shape)
    hcal = out["hcal"][0]
    deposit_pixel = np.unravel_index(np.argmax(hcal), hcal.shape)
    assert deposit_pixel != track_pixel  # bent away from its track
    at_bend = parts["hcal_at_bend"][0].numpy()
    np.testing.assert_allclose(at_bend[track_pixel], hcal[deposit_pixel], rtol=1e-5)
    assert np.count_nonzero(at_bend) == 1
    # the expected charged deposit was explained away where it landed: no neutral energy is left
    np.testing.assert_allclose(parts["hcal_sub"][0].numpy()[deposit_pixel], hcal[deposit_pixel], rtol=1e-4)
    assert float(parts["e_had"].abs().max()) < 1e-3 and float(parts["e_em"].abs().max()) < 1e-3
