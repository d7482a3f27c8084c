"""Pythia 8 jet sample: seeds, the move to (0, 0), species from PDG id, end-to-end injection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.errors import ConfigError
from pfgraph.sim import showers
from pfgraph.sim.detector import CHARGED_HADRON, ELECTRON, EM_NEUTRAL, MUON, NEUTRAL_HADRON, JetConfig
from pfgraph.sim.jets import (
    PYTHIA_SEED_MAX,
    JetEvent,
    eta_phi_pt,
    final_state,
    generate_jets,
    jet_particles,
    leading_jet,
    make_pythia,
    move_to_origin,
    pythia_seed,
    rapidity,
    species_from_pdg,
)

try:
    from tests.conftest import make_events
except ImportError:  # tests/ on sys.path rather than the repository root
    from conftest import make_events  # type: ignore[no-redef]

CFG = JetConfig(enabled=True)


def assert_same(a: list[JetEvent], b: list[JetEvent]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for name in ("pdg", "energy", "eta", "phi", "charge", "species", "pt"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
        for name in ("jet_pt", "jet_eta", "jet_phi", "jet_e", "n_jet_particles"):
            assert getattr(x, name) == getattr(y, name)


@pytest.fixture(scope="module")
def jets5() -> list[JetEvent]:
    return generate_jets(5, 1, CFG)


# --- no Pythia needed ---------------------------------------------------------------------------


def test_species_from_pdg() -> None:
    pdg = np.array([22, 11, -11, 13, -13, 211, -211, 2212, -2212, 2112, 130, 12, -14, 16, 321, -321, 3312])
    species, charge, keep = species_from_pdg(pdg)
    exp_species = [EM_NEUTRAL, ELECTRON, ELECTRON, MUON, MUON, CHARGED_HADRON, CHARGED_HADRON, CHARGED_HADRON,
                   CHARGED_HADRON, NEUTRAL_HADRON, NEUTRAL_HADRON, None, None, None, CHARGED_HADRON, CHARGED_HADRON,
                   CHARGED_HADRON]
    exp_charge = [0, -1, 1, -1, 1, 1, -1, 1, -1, 0, 0, 0, 0, 0, 1, -1, -1]
    exp_keep = [s is not None for s in exp_species]
    np.testing.assert_array_equal(keep, exp_keep)
    np.testing.assert_array_equal(species[keep], [s for s in exp_species if s is not None])
    np.testing.assert_array_equal(charge, exp_charge)
    assert species.dtype == np.int8 and charge.dtype == np.int8


def test_pythia_seed_range() -> None:
    seeds = [pythia_seed(s) for s in range(200)]
    assert all(1 <= s <= PYTHIA_SEED_MAX for s in seeds)
    assert len(set(seeds)) == len(seeds)
    assert pythia_seed(7) == pythia_seed(7)


def test_move_keeps_pt_and_puts_the_jet_at_origin() -> None:
    rng = np.random.default_rng(5)
    n = 40
    pt = rng.exponential(10.0, n) + 0.5
    y = 1.7 + 0.2 * rng.standard_normal(n)
    phi = 2.9 + 0.2 * rng.standard_normal(n)
    m = rng.choice([0.0, 0.13957, 0.938272], n)
    mt = np.hypot(pt, m)
    p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y)], axis=1)
    jet = p4.sum(axis=0)
    y_jet, phi_jet = rapidity(jet), float(np.arctan2(jet[1], jet[0]))
    moved = move_to_origin(p4, y_jet, phi_jet)
    eta2, phi2, pt2 = eta_phi_pt(moved)
    np.testing.assert_allclose(pt2, pt, rtol=1e-12)
    # rapidity of every constituent shifted by -y_jet, azimuth by -phi_jet (wrapped)
    y2 = 0.5 * np.log((moved[:, 3] + moved[:, 2]) / (moved[:, 3] - moved[:, 2]))
    np.testing.assert_allclose(y2, y - y_jet, atol=1e-9)
    np.testing.assert_allclose(phi2, np.mod(phi - phi_jet + np.pi, 2 * np.pi) - np.pi, atol=1e-12)
    # masses unchanged, massless ones: eta == y
    np.testing.assert_allclose(moved[:, 3] ** 2 - np.sum(moved[:, :3] ** 2, axis=1), m**2, atol=1e-8)
    np.testing.assert_allclose(eta2[m == 0], y2[m == 0], atol=1e-9)
    # the jet four-vector: pz = 0 and py = 0, i.e. (eta, phi) = (0, 0) exactly
    s = moved.sum(axis=0)
    assert abs(s[2]) < 1e-9 * s[3] and abs(s[1]) < 1e-9 * s[3] and s[0] > 0


def test_jet_particles_record() -> None:
    jet = JetEvent(pdg=np.array([22, 211, -11, 13], dtype=np.int32), energy=np.array([10.0, 20.0, 5.0, 3.0]),
                   eta=np.array([0.01, -0.02, 0.1, 0.0]), phi=np.array([0.0, 0.05, -0.1, 0.2]),
                   charge=np.array([0, 1, 1, -1], dtype=np.int8),
                   species=np.array([EM_NEUTRAL, CHARGED_HADRON, ELECTRON, MUON], dtype=np.int8),
                   pt=np.array([10.0, 20.0, 5.0, 3.0]), jet_pt=38.0, jet_e=38.0, n_jet_particles=4)
    p = jet_particles(jet, 3, np.random.default_rng(11))
    assert len(p) == 4
    assert (p.event == 3).all() and p.event.dtype == np.int64
    assert p.is_jet.all() and p.in_truth.all()
    np.testing.assert_array_equal(p.energy, jet.energy)
    np.testing.assert_array_equal(p.species, jet.species)
    np.testing.assert_array_equal(p.charge, jet.charge)
    g = np.random.default_rng(11).standard_normal((3, 4))
    np.testing.assert_array_equal(np.stack([p.n_trk, p.n_ecal, p.n_hcal]), g)


# --- Pythia ------------------------------------------------------------------------------------


@pytest.mark.pythia
def test_seeds_reproduce_and_differ(jets5: list[JetEvent]) -> None:
    assert_same(jets5, generate_jets(5, 1, CFG))
    assert_same(jets5[:3], generate_jets(3, 1, CFG))  # the first k jets do not depend on n_events
    other = generate_jets(5, 2, CFG)
    assert not any(np.array_equal(a.energy, b.energy) for a, b in zip(jets5, other, strict=True))


@pytest.mark.pythia
def test_jet_events_are_at_origin(jets5: list[JetEvent]) -> None:
    from particle import Particle

    assert np.median([j.jet_pt for j in jets5]) > 100.0
    for j in jets5:
        assert j.n_jet_particles == len(j.energy) > 0
        assert not np.isin(np.abs(j.pdg), [12, 14, 16]).any()
        assert j.jet_e == pytest.approx(j.energy.sum())
        # pT-weighted axis of the injected constituents near (0, 0)
        assert abs(np.average(j.eta, weights=j.pt)) < 0.05
        assert abs(np.average(j.phi, weights=j.pt)) < 0.05
        # energies consistent with (pt, eta, PDG mass); Pythia masses differ from PDG by < 1e-4
        m = np.array([Particle.from_pdgid(int(i)).mass or 0.0 for i in j.pdg]) / 1000.0
        np.testing.assert_allclose(j.energy, np.sqrt((j.pt * np.cosh(j.eta)) ** 2 + m**2), rtol=1e-4)
        species, charge, _ = species_from_pdg(j.pdg)
        np.testing.assert_array_equal(species, j.species)
        np.testing.assert_array_equal(charge, j.charge)


@pytest.mark.pythia
def test_move_on_pythia_events_recluster_at_origin() -> None:
    pythia = make_pythia(4, CFG)
    done = 0
    while done < 4:
        if not pythia.next():
            continue
        for q in pythia.event.particles():  # PDG charges agree with Pythia's
            if q.isFinal():
                assert np.sign(species_from_pdg(np.array([q.id()]))[1][0]) == np.sign(q.charge())
        pdg, p4 = final_state(pythia.event)
        idx, jet = leading_jet(p4, 0.4)
        eta_j, phi_j, pt_j = eta_phi_pt(jet[None, :])
        moved = move_to_origin(p4[idx], rapidity(jet), float(phi_j[0]))
        np.testing.assert_allclose(eta_phi_pt(moved)[2], eta_phi_pt(p4[idx])[2], rtol=1e-12)
        idx2, jet2 = leading_jet(moved, 0.4)
        eta2, phi2, pt2 = eta_phi_pt(jet2[None, :])
        if len(idx2) == len(idx):  # all constituents recluster into one jet: the same jet exactly
            assert abs(eta2[0]) < 1e-9 and abs(phi2[0]) < 1e-9
            assert pt2[0] == pytest.approx(pt_j[0], rel=1e-9)
        assert abs(eta2[0]) < 0.05 and abs(phi2[0]) < 0.05
        done += 1


@pytest.mark.pythia
def test_bad_pythia_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NoSuch:thing"):
        make_pythia(1, JetConfig(enabled=True, settings=["NoSuch:thing = 3"]))


@pytest.mark.pythia
def test_end_to_end_jet_file(tmp_path: Path) -> None:
    import uproot

    from pfgraph.config import load_config, resolve_config_path
    from pfgraph.sim.detector import SimConfig

    path = make_events(tmp_path / "jet.root", 6, "gauss_b050_jet")
    cfg = load_config(SimConfig, resolve_config_path("gauss_b050_jet", "sim"), ["events=6"])
    jets = generate_jets(6, cfg.seed, cfg.jets)
    with uproot.open(path) as f:
        t = f["events"]
        jet_img = t["jet"].array(library="np").astype(np.float64)
        truth = t["truth"].array(library="np").astype(np.float64)
        jet_e = t["jet_e"].array(library="np")
        n_jet = t["n_jet_particles"].array(library="np")
    assert jet_img.shape == (6, geometry.IMSIZE, geometry.IMSIZE)
    for b, j in enumerate(jets):
        pix = showers.flat_pixel(j.eta, j.phi)
        inside = pix >= 0
        expected = np.bincount(pix[inside], weights=j.energy[inside], minlength=geometry.IMSIZE**2)
        np.testing.assert_allclose(jet_img[b].ravel(), expected, rtol=1e-6, atol=1e-5)
        assert jet_img[b].sum() == pytest.approx(j.energy[inside].sum(), rel=1e-6)
        assert jet_e[b] == pytest.approx(j.jet_e) and n_jet[b] == j.n_jet_particles
        # concentrated around the pixel corner (27.5, 27.5): eta = 0, phi = 0
        w = jet_img[b]
        ie, ip = np.indices(w.shape)
        assert abs(np.average(ie, weights=w) - 27.5) < 1.5 and abs(np.average(ip, weights=w) - 27.5) < 1.5
        assert w[23:33, 23:33].sum() > 0.8 * w.sum()
    assert (truth >= jet_img - 1e-4).all()
    # a worker process simulating into shared memory writes the same file as in-process
    from pfgraph.sim.generate import generate

    (tmp_path / "w1").mkdir()
    generate(load_config(SimConfig, resolve_config_path("gauss_b050_jet", "sim"), ["events=6", "output.chunk=50"]),
             tmp_path / "w1" / "jet.root", workers=1)
    assert (tmp_path / "w1" / "jet.root").read_bytes() == path.read_bytes()
