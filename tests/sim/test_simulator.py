"""Simulator physics: oracle parity, conservation, symmetry, B-field, seeds and sharding."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.config import load_config, resolve_config_path
from pfgraph.errors import ConfigError
from pfgraph.io.root import EventFiles
from pfgraph.sim import showers
from pfgraph.sim.detector import CHARGED_HADRON, ELECTRON, EM_NEUTRAL, MUON, NEUTRAL_HADRON, DetectorConfig, SimConfig
from pfgraph.sim.generate import generate, simulate_batch
from pfgraph.sim.particles import Particles, event_rng, sample_event
from tests.sim.oracle import simulate_particles


def cfg_of(preset: str = "gauss_b050", *overrides: str) -> SimConfig:
    return load_config(SimConfig, resolve_config_path(preset, "sim"), list(overrides))


def particles(**cols: list) -> Particles:
    """Hand-made particles; unspecified smearing normals are 0 (no smearing)."""
    n = len(cols["energy"])
    base = dict(event=[0] * n, eta=[0.05] * n, phi=[0.05] * n, species=[EM_NEUTRAL] * n, charge=[0] * n,
                in_truth=[True] * n, is_jet=[False] * n, n_trk=[0.0] * n, n_ecal=[0.0] * n, n_hcal=[0.0] * n)
    base.update(cols)
    dtypes = dict(event=np.int64, species=np.int8, charge=np.int8, in_truth=bool, is_jet=bool)
    return Particles(**{k: np.asarray(v, dtype=dtypes.get(k, np.float64)) for k, v in base.items()})


@pytest.mark.parametrize("preset", ["gauss_b000", "gauss_b050"])
def test_vectorised_equals_per_particle_oracle(preset: str) -> None:
    cfg = cfg_of(preset)
    parts = [sample_event(cfg.seed, eid, b, cfg.particles, cfg.pileup)[0] for b, eid in enumerate([0, 7])]
    p = Particles.concatenate(parts)
    fast = showers.respond(p, 2, cfg.detector)
    slow = simulate_particles(p, 2, cfg.detector)
    for ch in slow:
        assert np.array_equal(fast[ch], slow[ch]), ch


def test_oracle_parity_for_every_species_and_edge_cases() -> None:
    det = DetectorConfig(b_field=0.5)
    rng = np.random.default_rng(5)
    n = 400
    p = particles(
        energy=np.concatenate([rng.exponential(2.0, n - 6), [0.0, 0.15, 0.25, 0.05, 1e-3, 3.0]]),
        eta=np.concatenate([rng.uniform(-2.6, 2.6, n - 6), [0.0, 2.5, -2.5, 1.0, 0.3, 0.0]]),
        phi=np.concatenate([rng.uniform(-3.2, 3.2, n - 6), [np.pi, -np.pi, 3.1, 0.0, 3.14, geometry.PHI_EDGES[10]]]),
        species=rng.integers(0, 5, n), charge=rng.choice([-1, 0, 1], n),
        n_trk=rng.standard_normal(n), n_ecal=rng.standard_normal(n), n_hcal=rng.standard_normal(n),
        is_jet=rng.random(n) < 0.2, in_truth=rng.random(n) < 0.9,
    )
    fast = showers.respond(p, 1, det)
    slow = simulate_particles(p, 1, det)
    for ch in slow:
        assert np.array_equal(fast[ch], slow[ch]), ch


def test_bin_index_matches_histogram2d_on_edges() -> None:
    values = np.concatenate([geometry.PHI_EDGES, np.nextafter(geometry.PHI_EDGES, 10), np.nextafter(geometry.PHI_EDGES, -10),
                             np.random.default_rng(1).uniform(-4, 4, 5000)])
    idx = showers.bin_index(values, geometry.PHI_EDGES)
    for v, i in zip(values, idx):
        h, _ = np.histogram([v], bins=geometry.IMSIZE, range=(-np.pi, np.pi))
        expect = int(np.argmax(h)) if h.sum() else -1
        assert i == expect, v


def test_energy_bookkeeping_per_species() -> None:
    det = DetectorConfig()
    E = 10.0
    for species, charge, ecal, hcal in [
        (EM_NEUTRAL, 0, 0.9 * (E - 0.3 * np.sqrt(E)), 0.9 * (0.1 * E - 0.3 * np.sqrt(0.1 * E))),
        (NEUTRAL_HADRON, 0, 0.1 * E, 0.9 * (0.9 * E - 0.3 * np.sqrt(0.9 * E))),
        (CHARGED_HADRON, 1, 0.1 * E, 0.9 * (0.9 * E - 0.3 * np.sqrt(0.9 * E))),
        (ELECTRON, -1, 0.9 * (E - 0.3 * np.sqrt(E)), 0.9 * (0.1 * E - 0.3 * np.sqrt(0.1 * E))),
        (MUON, 1, 0.0, 0.0),
    ]:
        out = showers.respond(particles(energy=[E], species=[species], charge=[charge]), 1, det)
        assert out["emcal"].sum() == pytest.approx(ecal)
        assert out["hcal"].sum() == pytest.approx(hcal)
        assert out["truth"].sum() == pytest.approx(E)
        trk = out["trk_pos"].sum() + out["trk_neg"].sum()
        assert trk == pytest.approx(E if charge else 0.0)
        assert out["truth_neutral"].sum() == pytest.approx(0.0 if charge else E)


def test_thresholds() -> None:
    det = DetectorConfig()
    out = showers.respond(particles(energy=[0.09, 0.19, 0.31], species=[CHARGED_HADRON] * 3, charge=[1] * 3,
                                    eta=[-1.0, 0.0, 1.0]), 1, det)
    assert np.count_nonzero(out["trk_pos"]) == 2  # 0.09 is below the tracker threshold
    assert np.count_nonzero(out["emcal"]) == 1  # only 0.31 > 0.2
    assert np.count_nonzero(out["hcal"]) == 0  # kept 0.9 * 0.31 = 0.279 < 0.3
    assert out["truth"].sum() == pytest.approx(0.59)


def test_paper_sanity_figures() -> None:
    """Mean per-event sums of DESIGN §2 (within the statistical error of 150 events)."""
    b0 = simulate_batch(cfg_of("gauss_b000"), range(150))
    b5 = simulate_batch(cfg_of("gauss_b050"), range(150))
    mean = {k: float(b0[k].sum(axis=(1, 2)).mean()) for k in ("truth", "emcal", "hcal", "trk_neg", "trk_pos")}
    assert mean["truth"] == pytest.approx(2855, rel=0.01)
    assert mean["emcal"] == pytest.approx(722, rel=0.015)
    assert mean["hcal"] == pytest.approx(1364, rel=0.015)
    assert mean["trk_neg"] == pytest.approx(713, rel=0.03)
    assert mean["trk_pos"] == pytest.approx(713, rel=0.03)
    assert float(b5["emcal"].sum(axis=(1, 2)).mean()) == pytest.approx(716, rel=0.015)
    assert float(b5["hcal"].sum(axis=(1, 2)).mean()) == pytest.approx(1331, rel=0.015)
    truth = b0["truth"] > 0
    inputs = (b0["emcal"] + b0["hcal"] + b0["trk_neg"] + b0["trk_pos"]) > 0
    assert truth.mean() == pytest.approx(0.40, abs=0.03)
    # Out of reach at B=0, analytically: pixel occupancy lambda = 1600/3136; a particle leaves
    # nothing if neutral with E <= 0.2 or charged with E <= 0.1 (p = 0.0535), so
    # e^-l (e^(l p) - 1) / (1 - e^-l) = 4.2 % of truth pixels.
    assert (truth & ~inputs).sum() / truth.sum() == pytest.approx(0.042, abs=0.006)
    # At B=0.5 deflected deposits fill some of them: DESIGN's "about 3 %" (0.1 % of the energy).
    truth5 = b5["truth"] > 0
    inputs5 = (b5["emcal"] + b5["hcal"] + b5["trk_neg"] + b5["trk_pos"]) > 0
    assert (truth5 & ~inputs5).sum() / truth5.sum() == pytest.approx(0.034, abs=0.006)
    assert (b5["truth"] * ~inputs5).sum() / b5["truth"].sum() == pytest.approx(0.0013, abs=0.0005)


def test_truth_is_neutral_plus_charged() -> None:
    cfg = cfg_of("gauss_b050")
    p, _ = sample_event(cfg.seed, 3, 0, cfg.particles, cfg.pileup)
    full = showers.respond(p, 1, cfg.detector)
    charged = showers.respond(p.select(p.charge != 0), 1, cfg.detector)
    neutral = showers.respond(p.select(p.charge == 0), 1, cfg.detector)
    np.testing.assert_allclose(full["truth"], charged["truth"] + neutral["truth"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(full["truth_neutral"], neutral["truth"], rtol=1e-12, atol=1e-12)
    assert charged["truth_neutral"].sum() == 0


def test_b0_charged_deposits_sit_in_track_pixels() -> None:
    cfg = cfg_of("gauss_b000", "particles.neutral_pi_frac=0.0", "particles.neutral_had_frac=0.0")
    b = simulate_batch(cfg, range(5))
    calo = (b["emcal"] > 0) | (b["hcal"] > 0)
    tracks = (b["trk_neg"] > 0) | (b["trk_pos"] > 0)
    assert calo.any()
    assert not (calo & ~tracks).any()


def test_b_field_bends_positive_up_and_negative_down_in_phi() -> None:
    det = DetectorConfig(b_field=0.5)
    for q in (1, -1):
        out = showers.respond(particles(energy=[2.0], species=[CHARGED_HADRON], charge=[q], phi=[0.0]), 1, det)
        trk = out["trk_pos" if q > 0 else "trk_neg"][0]
        calo = out["emcal"][0] + out["hcal"][0]
        shift = np.argwhere(calo > 0)[0][1] - np.argwhere(trk > 0)[0][1]
        expected_pixels = np.floor((0.25) / geometry.PHI_PIXEL)  # kick = 0.5 / 2 GeV = 0.25 rad
        assert shift == q * expected_pixels or shift == q * (expected_pixels + 1)
    # statistically, on simulated events: positive tracks' calorimeter energy sits at larger phi
    cfg = cfg_of("gauss_b050", "particles.neutral_pi_frac=0.0", "particles.neutral_had_frac=0.0")
    p, _ = sample_event(cfg.seed, 0, 0, cfg.particles, cfg.pileup)
    for q, sign in ((1, 1), (-1, -1)):
        sel = p.select((p.charge == q) & (np.abs(p.phi) < 2.5))
        out = showers.respond(sel, 1, cfg.detector)
        trk = out["trk_pos" if q > 0 else "trk_neg"][0]
        calo = out["emcal"][0] + out["hcal"][0]
        phi_trk = (trk.sum(axis=0) * geometry.PHI_CENTRES).sum() / trk.sum()
        phi_calo = (calo.sum(axis=0) * geometry.PHI_CENTRES).sum() / calo.sum()
        assert sign * (phi_calo - phi_trk) > 0.05


def test_b_field_losses_and_phi_wrap() -> None:
    b = simulate_batch(cfg_of("gauss_b050"), range(20))
    w = simulate_batch(cfg_of("gauss_b050", "detector.phi_wrap=true"), range(20))
    assert (b["e_lost"] > 0).all()
    assert (w["e_lost"] == 0).all()
    assert w["emcal"].sum() > b["emcal"].sum()
    np.testing.assert_array_equal(w["truth"], b["truth"])


def test_phi_symmetry_of_the_b0_detector() -> None:
    """Mirroring phi -> -phi mirrors every image (B = 0, pixel-centred particles)."""
    rng = np.random.default_rng(3)
    n = 300
    eta = geometry.ETA_CENTRES[rng.integers(0, 56, n)]
    iphi = rng.integers(0, 56, n)
    common = dict(energy=rng.exponential(3.0, n), eta=eta, species=rng.integers(0, 5, n),
                  charge=rng.choice([-1, 0, 1], n), n_trk=rng.standard_normal(n), n_ecal=rng.standard_normal(n),
                  n_hcal=rng.standard_normal(n))
    det = DetectorConfig()
    a = showers.respond(particles(phi=geometry.PHI_CENTRES[iphi], **common), 1, det)
    b = showers.respond(particles(phi=geometry.PHI_CENTRES[55 - iphi], **common), 1, det)
    for ch in ("truth", "emcal", "hcal", "trk_neg", "trk_pos"):
        np.testing.assert_allclose(a[ch][0], b[ch][0][:, ::-1], rtol=1e-12)


def test_event_seeds_are_independent_of_batching() -> None:
    cfg = cfg_of("gauss_b050")
    whole = simulate_batch(cfg, range(6))
    part = simulate_batch(cfg, [4, 5])
    for ch in ("truth", "emcal", "hcal", "trk_pos"):
        np.testing.assert_array_equal(whole[ch][4:], part[ch])
    a = event_rng(1, 5).random(3)
    assert not np.array_equal(a, event_rng(2, 5).random(3))
    assert not np.array_equal(a, event_rng(1, 6).random(3))


def test_seeds_reproduce_bit_identical_files_and_shards_match(tmp_path) -> None:
    # 8 chunks through 3-4 shared-memory slots: slots are reused while workers run ahead
    cfg = cfg_of("gauss_b050", "events=40", "output.chunk=5")
    for sub, workers in (("a", 0), ("b", 1), ("c", 2)):
        (tmp_path / sub).mkdir()
        generate(cfg, tmp_path / sub / "d.root", workers=workers)
    digest = {hashlib.sha256((tmp_path / x / "d.root").read_bytes()).hexdigest() for x in "abc"}
    assert len(digest) == 1
    shards = generate(cfg, tmp_path / "s.root", shards=3, workers=0)
    assert len(shards) == 3 and all(p.exists() for p in shards)
    whole = EventFiles(tmp_path / "a" / "d.root").read(["event_id", "emcal", "truth", "pix_hcal"])
    sharded = EventFiles(shards).read(["event_id", "emcal", "truth", "pix_hcal"])
    np.testing.assert_array_equal(whole["event_id"], sharded["event_id"])
    np.testing.assert_array_equal(whole["emcal"], sharded["emcal"])
    np.testing.assert_array_equal(whole["truth"], sharded["truth"])
    assert whole["pix_hcal"].tolist() == sharded["pix_hcal"].tolist()
    other = generate(cfg_of("gauss_b050", "events=40", "seed=99"), tmp_path / "o.root", workers=0)[0]
    assert not np.array_equal(EventFiles(other).read(["emcal"])["emcal"], whole["emcal"])


def test_shower_spreading_conserves_energy_away_from_edges() -> None:
    img = np.zeros((1, 56, 56))
    img[0, 28, 28] = 10.0
    spread = showers.spread_showers(img, 1.5, phi_wrap=False)
    assert spread.sum() == pytest.approx(10.0, rel=1e-9)
    assert spread.max() < 10.0 and np.count_nonzero(spread) > 9
    edge = np.zeros((1, 56, 56))
    edge[0, 28, 0] = 10.0
    assert showers.spread_showers(edge, 1.5, phi_wrap=True).sum() == pytest.approx(10.0, rel=1e-9)
    assert showers.spread_showers(edge, 1.5, phi_wrap=False).sum() < 10.0
    cfg = cfg_of("gauss_b000", "detector.shower_sigma_emcal=1.0", "detector.shower_sigma_hcal=1.5")
    assert not cfg.detector.paper_mode
    b = simulate_batch(cfg, range(3))
    ref = simulate_batch(cfg_of("gauss_b000"), range(3))
    np.testing.assert_array_equal(b["truth"], ref["truth"])
    # energy only leaks out through the grid edges: a few percent, never a gain
    assert 0.95 * ref["emcal"].sum() < b["emcal"].sum() < ref["emcal"].sum()
    assert np.count_nonzero(b["emcal"]) > np.count_nonzero(ref["emcal"])


def test_finer_grids_histogram_the_same_particles_and_store_the_grid(tmp_path) -> None:
    """detector.grid bins the same particles finer over the same extent: rebinning a 112 x 112 image
    2 x 2 gives the 56 x 56 one (float64 sums reordered: to rounding), and the file's meta and
    branch shapes carry the grid."""
    coarse = simulate_batch(cfg_of("gauss_b050"), range(4))
    fine = simulate_batch(cfg_of("gauss_b050", "detector.grid=112"), range(4))
    assert fine["truth"].shape == (4, 112, 112)
    for ch in ("truth", "trk_pos", "emcal", "hcal"):
        rebinned = fine[ch].reshape(4, 56, 2, 56, 2).sum(axis=(2, 4))
        np.testing.assert_allclose(rebinned, coarse[ch], rtol=1e-5, atol=1e-5)
    assert np.count_nonzero(fine["truth"]) > np.count_nonzero(coarse["truth"])
    path = generate(cfg_of("gauss_b050", "events=5", "detector.grid=224"), tmp_path / "g.root", workers=0)[0]
    files = EventFiles(path)
    assert files.meta["imsize"] == 224 and files.meta["config"]["detector"]["grid"] == 224
    assert files.grid.size == 224 and files.read(["hcal"])["hcal"].shape == (5, 224, 224)
    with pytest.raises(ConfigError, match="detector.grid = 100: expected one of 56, 112, 224, 448"):
        cfg_of("gauss_b050", "detector.grid=100")


def test_shower_widths_are_physical_and_the_pixel_sigma_scales_with_the_grid() -> None:
    """shower_width_* (eta-phi units) cover the same eta-phi area, so more cells, on finer grids; the
    older shower_sigma_* (pixels of the paper's grid) too; both set is an error."""
    for size in geometry.GRID_SIZES:
        det = DetectorConfig(grid=size, shower_width_emcal=0.05, shower_sigma_hcal=1.5)
        g = geometry.grid(size)
        assert det.shower_sigma_pixels("emcal") == pytest.approx((0.05 / g.eta_pixel, 0.05 / g.phi_pixel))
        assert det.shower_sigma_pixels("hcal") == (1.5 * size / 56, 1.5 * size / 56)
        assert not det.paper_mode
    assert DetectorConfig(shower_sigma_emcal=1.5).shower_sigma_pixels("emcal") == (1.5, 1.5)  # as before at 56
    with pytest.raises(ConfigError, match="both set"):
        cfg_of("gauss_b050", "detector.shower_sigma_emcal=1.0", "detector.shower_width_emcal=0.02")
    cells, bare = [], []
    for size in (56, 112, 224):
        b = simulate_batch(cfg_of("gauss_b000", f"detector.grid={size}", "detector.shower_width_hcal=0.045",
                                  "particles.multiplicity=20"), range(2))
        ref = simulate_batch(cfg_of("gauss_b000", f"detector.grid={size}", "particles.multiplicity=20"), range(2))
        assert 0.9 * ref["hcal"].sum() < b["hcal"].sum() <= ref["hcal"].sum() * (1 + 1e-9)
        cells.append(np.count_nonzero(b["hcal"] > 0.01 * b["hcal"].max()))  # the showers' cores
        bare.append(np.count_nonzero(ref["hcal"]))
    # the same physical showers cover ~4x more cells per halving of the cell size (1.9 sigma at 56 is
    # still coarse: 4x from 112 on); without spreading a particle stays one cell
    assert 3.0 < cells[1] / cells[0] < 5.0 and 3.5 < cells[2] / cells[1] < 4.5
    assert bare[0] <= bare[1] <= bare[2] <= 1.1 * bare[0]


def test_gauss_b050_grid_presets() -> None:
    for size in (112, 224, 448):
        cfg = cfg_of(f"gauss_b050_g{size}")
        assert cfg.detector.grid == size and cfg.detector.b_field == 0.5
        assert (cfg.detector.shower_width_emcal, cfg.detector.shower_width_hcal) == (0.008, 0.045)
        assert (cfg.detector.cell_threshold_emcal, cfg.detector.cell_threshold_hcal) == (0.05, 0.01)
    assert cfg_of("gauss_b050").detector.paper_mode and cfg_of("gauss_b050").detector.grid == 56


def test_cell_thresholds_drop_the_cells_below_them_after_spreading() -> None:
    """detector.cell_threshold_*: 0 (the default) changes nothing; above 0 a calorimeter cell below its
    threshold reads 0 and every other cell keeps its spread value exactly (energy dropped, not moved),
    the other channels are untouched, and the point cloud shrinks."""
    from pfgraph.io.writing import point_cloud

    base = ("detector.grid=224", "particles.multiplicity=300")
    assert not DetectorConfig(cell_threshold_hcal=0.01).paper_mode and DetectorConfig().cell_threshold_emcal == 0.0
    paper = simulate_batch(cfg_of("gauss_b050"), range(2))
    zero = simulate_batch(cfg_of("gauss_b050", "detector.cell_threshold_emcal=0", "detector.cell_threshold_hcal=0"),
                          range(2))
    for k in paper:
        assert np.array_equal(paper[k], zero[k]), k
    spread = ("detector.shower_width_emcal=0.008", "detector.shower_width_hcal=0.045")
    ref = simulate_batch(cfg_of("gauss_b050", *base, *spread), range(2))
    cut = simulate_batch(cfg_of("gauss_b050", *base, *spread, "detector.cell_threshold_emcal=0.05",
                                "detector.cell_threshold_hcal=0.01"), range(2))
    for ch, thr in (("emcal", 0.05), ("hcal", 0.01)):
        kept = cut[ch] != 0
        assert np.all(cut[ch][kept] >= np.float32(thr)) and np.array_equal(cut[ch][kept], ref[ch][kept])
        assert np.all(ref[ch][~kept] < thr) and (ref[ch][~kept] > 0).any()
    for k in ("truth", "truth_neutral", "trk_neg", "trk_pos", "e_total"):
        assert np.array_equal(cut[k], ref[k]), k
    n_ref, n_cut = point_cloud(ref)[0], point_cloud(cut)[0]
    assert np.all(n_cut < 0.7 * n_ref) and np.all(n_cut > 300)
    with pytest.raises(ConfigError, match="cell_threshold_hcal"):
        cfg_of("gauss_b050", "detector.cell_threshold_hcal=-1")


def test_noise_is_zero_suppressed_and_pileup_leaves_truth_alone() -> None:
    cfg = cfg_of("gauss_b000", "detector.noise_emcal=0.05", "particles.multiplicity=50")
    b = simulate_batch(cfg, range(3))
    ref = simulate_batch(cfg_of("gauss_b000", "particles.multiplicity=50"), range(3))
    noise_only = (ref["emcal"] == 0) & (b["emcal"] != 0)
    assert noise_only.any()
    assert (np.abs(b["emcal"][noise_only]) >= 3 * 0.05 - 1e-6).all()
    pu = simulate_batch(cfg_of("gauss_b000", "pileup.mu=200"), range(3))
    nopu = simulate_batch(cfg_of("gauss_b000"), range(3))
    np.testing.assert_array_equal(pu["truth"], nopu["truth"])
    assert pu["emcal"].sum() > nopu["emcal"].sum()
    assert (pu["n_particles"] > nopu["n_particles"]).all()


def test_charged_acceptance_shrinks_charged_ranges() -> None:
    cfg = cfg_of("gauss_b000", "particles.charged_acceptance=0.9")
    p, _ = sample_event(cfg.seed, 0, 0, cfg.particles, cfg.pileup)
    ch = p.charge != 0
    assert np.abs(p.eta[ch]).max() <= 2.25 and np.abs(p.phi[ch]).max() <= 0.9 * np.pi
    assert np.abs(p.eta[~ch]).max() > 2.3


@pytest.mark.parametrize("override, message", [
    ("particles.multiplcity=3", "did you mean 'multiplicity'"),
    ("events=-1", "non-negative"),
    ("detector.b_feild=0.5", "did you mean 'b_field'"),
    ("detector.emc_res=-0.1", "non-negative"),
    ("detector.hcal_fraction=1.5", "fraction"),
    ("particles.charged_acceptance=0", "0 < value"),
    ("output.compression=gzip:3", "unknown compression"),
    ("jets.radius=0", "R <="),
    ("events=ten", "expected an integer"),
])
def test_bad_config_is_one_clear_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        cfg_of("gauss_b050", override)
    assert "\n" not in str(err.value)
