"""The ``oracle`` image (``output.oracle``): vectorised simulator against the per-particle loop, its
physics (exact without smearing, inverse-variance weights) and how it reaches the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.config import load_config, resolve_config_path
from pfgraph.io import schema
from pfgraph.io.root import EventFiles
from pfgraph.sim import showers
from pfgraph.sim.detector import CHARGED_HADRON, ELECTRON, EM_NEUTRAL, MUON, NEUTRAL_HADRON, DetectorConfig, SimConfig
from pfgraph.sim.generate import generate
from pfgraph.sim.particles import Particles, sample_event
from tests.sim.oracle import oracle_particles
from tests.sim.test_simulator import particles

#: The vectorised and the loop versions combine the same numbers in a different order (a division
#: by the kept share against a multiplication by E / kept): equal to this relative tolerance.
RTOL = 1e-12


def cfg_of(preset: str, *overrides: str) -> SimConfig:
    return load_config(SimConfig, resolve_config_path(preset, "sim"), list(overrides))


@pytest.mark.parametrize("preset", ["gauss_b000", "gauss_b050"])
def test_vectorised_oracle_equals_per_particle_loop(preset: str) -> None:
    cfg = cfg_of(preset)
    p = Particles.concatenate([sample_event(cfg.seed, eid, b, cfg.particles, cfg.pileup)[0]
                               for b, eid in enumerate([0, 3, 11])])
    fast = showers.respond(p, 3, cfg.detector, oracle=True)["oracle"]
    slow = oracle_particles(p, 3, cfg.detector)
    np.testing.assert_allclose(fast, slow, rtol=RTOL, atol=1e-12)
    truth = showers.respond(p, 3, cfg.detector)["truth"]
    assert fast.sum() == pytest.approx(truth.sum(), rel=0.02)  # every particle measured, most of them well
    assert np.count_nonzero(fast) > 0.9 * np.count_nonzero(truth)


def test_oracle_loop_parity_on_every_species_and_edge_case() -> None:
    rng = np.random.default_rng(7)
    n = 500
    p = particles(
        energy=np.concatenate([rng.exponential(2.0, n - 5), [0.0, 0.15, 0.25, 0.05, 3.0]]),
        eta=np.concatenate([rng.uniform(-2.6, 2.6, n - 5), [0.0, 2.5, -2.5, 1.0, 0.3]]),
        phi=np.concatenate([rng.uniform(-3.2, 3.2, n - 5), [np.pi, -np.pi, 3.1, 0.0, 3.14]]),
        species=rng.integers(0, 5, n), charge=rng.choice([-1, 0, 1], n),
        n_trk=rng.standard_normal(n), n_ecal=rng.standard_normal(n), n_hcal=rng.standard_normal(n),
        in_truth=rng.random(n) < 0.9,
    )
    for det in (DetectorConfig(b_field=0.5), DetectorConfig(b_field=0.0, nonlin=0.0), DetectorConfig(res_scale=2.0)):
        fast = showers.respond(p, 1, det, oracle=True)["oracle"]
        np.testing.assert_allclose(fast, oracle_particles(p, 1, det), rtol=RTOL, atol=1e-12)


def test_without_smearing_the_oracle_is_the_truth() -> None:
    """res_scale = 0: every measurement inverts exactly, so each measured particle gets its energy back."""
    det = DetectorConfig(res_scale=0.0, b_field=0.5)
    phis = geometry.PHI_CENTRES[[5, 15, 25, 35, 45]]
    p = particles(energy=[5.0, 3.0, 4.0, 7.0, 2.0], phi=list(phis),
                  species=[EM_NEUTRAL, NEUTRAL_HADRON, CHARGED_HADRON, ELECTRON, MUON], charge=[0, 0, 1, -1, 1],
                  n_trk=[1.0] * 5, n_ecal=[1.0] * 5, n_hcal=[1.0] * 5)
    out = showers.respond(p, 1, det, oracle=True)
    np.testing.assert_allclose(out["oracle"], out["truth"], rtol=1e-12, atol=1e-12)


def test_inverse_variance_weights() -> None:
    """A neutral hadron measured by ECAL (5 %) and HCAL (10 %): weights 4:1 on the two estimates."""
    det = DetectorConfig(nonlin=0.0)
    p = particles(energy=[10.0], species=[NEUTRAL_HADRON], n_ecal=[1.0], n_hcal=[-1.0])
    got = float(showers.respond(p, 1, det, oracle=True)["oracle"].sum())
    e_ecal, e_hcal = 10.0 * 1.05, 10.0 * 0.90  # each deposit inverted on its own (no non-linearity here)
    assert got == pytest.approx((400.0 * e_ecal + 100.0 * e_hcal) / 500.0, rel=1e-12)


def test_oracle_reaches_the_file_only_when_asked(tmp_path: Path) -> None:
    cfg = cfg_of("gauss_b050", "events=6", "particles.multiplicity=200")
    plain = generate(cfg, tmp_path / "plain.root", workers=0)[0]
    cfg.output.oracle = True
    with_oracle = generate(cfg, tmp_path / "oracle.root", workers=0)[0]
    a, b = EventFiles(plain), EventFiles(with_oracle)
    assert not a.has_oracle and b.has_oracle
    data = b.read([schema.ORACLE_IMAGE, "pix_oracle", "pix_ieta", "pix_iphi", "truth", "emcal"])
    same = a.read(["truth", "emcal"])
    np.testing.assert_array_equal(data["truth"], same["truth"])  # the oracle changes no other branch
    np.testing.assert_array_equal(data["emcal"], same["emcal"])
    img = data[schema.ORACLE_IMAGE]
    assert img.shape == (6, 56, 56) and img.sum() > 0
    for e in range(6):  # the point field is the image at the points
        ie, ip = np.asarray(data["pix_ieta"][e]), np.asarray(data["pix_iphi"][e])
        np.testing.assert_array_equal(np.asarray(data["pix_oracle"][e]), img[e][ie, ip])
