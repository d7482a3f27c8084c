"""Batched torch anti-kt against FastJet: same constituents, same kinematics, every event."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pfgraph import geometry
from pfgraph.errors import PfgraphError
from pfgraph.eval.antikt import (
    ImageJets,
    Jets,
    cluster,
    cluster_fastjet,
    cluster_images,
    pixel_momenta,
    pixel_positions,
    rap_phi_kt2,
    resolve_backend,
)
from pfgraph.eval.jets import synthetic_jet_images
from pfgraph.io.root import EventFiles

pytest.importorskip("fastjet")


def assert_same_jets(a: Jets, b: Jets, rtol: float = 1e-12) -> None:
    """Same jet count, same constituents (as jet index per input), kinematics within rtol."""
    assert torch.equal(a.n_jets.cpu(), b.n_jets.cpu())
    ca, cb = a.constituent_jet.cpu(), b.constituent_jet.cpu()
    width = max(ca.shape[1], cb.shape[1])
    ca = torch.nn.functional.pad(ca, (0, width - ca.shape[1]), value=-1)
    cb = torch.nn.functional.pad(cb, (0, width - cb.shape[1]), value=-1)
    bad = (ca != cb).any(1).nonzero().flatten().tolist()
    assert not bad, f"constituents differ in events {bad}"
    m = a.mask.cpu()
    for name in ("pt", "rap", "phi", "e"):
        x, y = getattr(a, name).cpu()[m], getattr(b, name).cpu()[m]
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=rtol, atol=1e-12, err_msg=name)


def assert_same_image_jets(a: ImageJets, b: ImageJets) -> None:
    assert torch.equal(a.pixel.cpu(), b.pixel.cpu())
    assert_same_jets(a.jets, b.jets)


def random_images(n: int, occupancy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.exponential(2.0, (n, geometry.IMSIZE, geometry.IMSIZE))
    img *= rng.random(img.shape) < occupancy
    return img.astype(np.float32)


def massless(rows: list[tuple[float, float, float]]) -> list[torch.Tensor]:
    """(pt, y, phi) -> one event of four-momenta as (1, N) tensors."""
    comps = [[pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(y), pt * math.cosh(y)] for pt, y, phi in rows]
    return [torch.tensor([[c[k] for c in comps]], dtype=torch.float64) for k in range(4)]


def test_random_pixel_images_match_fastjet() -> None:
    img = random_images(6, 0.25, seed=1)
    for radius in (0.4, 0.8):
        assert_same_image_jets(cluster_images(img, radius, 0.0, "torch"), cluster_images(img, radius, 0.0, "fastjet"))


def test_jet_like_events_match_fastjet() -> None:
    img = synthetic_jet_images(4, seed=7)
    t = cluster_images(img, 0.4, 0.0, "torch")
    f = cluster_images(img, 0.4, 0.0, "fastjet")
    assert t.pixel.shape[1] > 1000  # dense events
    assert_same_image_jets(t, f)
    # the leading jet is the injected one, at the origin
    assert float(t.jets.pt[:, 0].min()) > 100
    assert float(t.jets.rap[:, 0].abs().max()) < 0.2


def test_simulated_events_match_fastjet(events_file) -> None:
    data = EventFiles(events_file).read(["truth"], 0, 5)
    for threshold in (0.0, 0.5):
        assert_same_image_jets(cluster_images(data["truth"], 0.4, threshold, "torch"),
                               cluster_images(data["truth"], 0.4, threshold, "fastjet"))


def test_result_does_not_depend_on_the_batch() -> None:
    img = random_images(5, 0.12, seed=3)
    img[2, 10:20, 10:20] *= 20.0  # one harder event
    whole = cluster_images(img, 0.4, 0.0, "torch")
    for k in (0, 2, 4):
        alone = cluster_images(img[k:k + 1], 0.4, 0.0, "torch")
        nj = int(alone.jets.n_jets[0])
        assert int(whole.jets.n_jets[k]) == nj
        assert torch.equal(whole.pixel_jet()[k], alone.pixel_jet()[0])
        assert torch.equal(whole.jets.px[k, :nj], alone.jets.px[0, :nj])


def test_empty_and_single_pixel_events() -> None:
    img = np.zeros((4, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    img[1, 20, 30] = 5.0  # one pixel
    img[2, 0, 0] = 0.05  # below the threshold: empty
    img[3, 10, 10], img[3, 40, 50] = 1.0, 2.0  # two far apart
    t = cluster_images(img, 0.4, 0.1, "torch")
    f = cluster_images(img, 0.4, 0.1, "fastjet")
    assert_same_image_jets(t, f)
    assert t.jets.n_jets.tolist() == [0, 1, 0, 2]
    np.testing.assert_allclose(float(t.jets.e[1, 0]), 5.0)
    np.testing.assert_allclose(float(t.jets.e[3, 0]), 2.0)
    pj = t.pixel_jet()
    assert int(pj[1, 20 * geometry.IMSIZE + 30]) == 0 and int((pj[1] >= 0).sum()) == 1
    # all-empty batch
    none = cluster_images(np.zeros((2, geometry.IMSIZE, geometry.IMSIZE), np.float32), 0.4, 0.0, "torch")
    assert none.jets.n_jets.tolist() == [0, 0] and none.jets.px.shape == (2, 0)


@pytest.mark.parametrize(("phi2", "radius"), [(math.pi / 2, math.pi / 2), (math.pi, math.pi)])
def test_two_pseudojets_at_exactly_r_stay_apart(phi2: float, radius: float) -> None:
    """dR == R exactly (both at y = 0; phi 0 and pi/2 or pi are exact in atan2): FastJet keeps them apart."""
    p = massless([(10.0, 0.0, 0.0), (5.0, 0.0, phi2)])
    y, phi, _ = rap_phi_kt2(*(a[0] for a in p))
    assert y.tolist() == [0.0, 0.0] and float(phi[1] - phi[0]) == radius
    exact_t, exact_f = cluster(*p, radius=radius), cluster_fastjet(*p, radius=radius)
    assert exact_t.n_jets.tolist() == exact_f.n_jets.tolist() == [2]
    assert_same_jets(exact_t, exact_f)
    wider = math.nextafter(radius, math.inf)
    assert cluster(*p, radius=wider).n_jets.tolist() == cluster_fastjet(*p, radius=wider).n_jets.tolist() == [1]


def test_phi_wrap_around() -> None:
    img = np.zeros((2, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    img[0, 28, 0], img[0, 28, geometry.IMSIZE - 1] = 10.0, 3.0  # neighbours across phi = +-pi
    img[1, 28, 1], img[1, 28, geometry.IMSIZE - 2], img[1, 30, 0] = 4.0, 6.0, 1.0
    t = cluster_images(img, 0.4, 0.0, "torch")
    assert t.jets.n_jets.tolist() == [1, 1]
    assert_same_image_jets(t, cluster_images(img, 0.4, 0.0, "fastjet"))
    phi = float(t.jets.phi[0, 0])
    assert abs(phi - math.pi) < 0.1  # the merged axis sits at phi ~ pi


def test_generic_particles_match_fastjet() -> None:
    """Massive and massless particles anywhere (not on the grid), padded events of different sizes."""
    rng = np.random.default_rng(5)
    b, n = 5, 300
    pt = rng.exponential(5.0, (b, n)) + 0.1
    y, phi = rng.uniform(-3, 3, (b, n)), rng.uniform(-math.pi, math.pi, (b, n))
    m = rng.exponential(0.3, (b, n)) * (rng.random((b, n)) < 0.5)
    mt = np.sqrt(pt * pt + m * m)
    mom = [torch.tensor(a) for a in (pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y))]
    mask = torch.tensor(np.arange(n)[None, :] < np.array([300, 1, 0, 150, 299])[:, None])
    assert_same_jets(cluster(*mom, mask, radius=0.6), cluster_fastjet(*mom, mask, radius=0.6))


def test_tie_break_offsets() -> None:
    eta, phi = pixel_positions(0.0)
    np.testing.assert_array_equal(eta[:, 0], geometry.ETA_CENTRES)
    np.testing.assert_array_equal(phi[0], geometry.PHI_CENTRES)
    eta1, phi1 = pixel_positions()
    assert 0 < np.abs(eta1 - eta).max() <= 0.5e-6 * geometry.ETA_PIXEL
    assert 0 < np.abs(phi1 - phi).max() <= 0.5e-6 * geometry.PHI_PIXEL
    np.testing.assert_array_equal(pixel_positions()[0], eta1)  # fixed table
    img = np.zeros((1, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    img[0, 3, 5] = 2.0
    px, py, pz, e, mask, pixel = pixel_momenta(img, 0.0, 0.0)
    assert pixel.tolist() == [[3 * geometry.IMSIZE + 5]] and mask.tolist() == [[True]]
    np.testing.assert_allclose(float(torch.sqrt(px**2 + py**2 + pz**2)), 2.0)


def test_bad_arguments() -> None:
    img = np.zeros((1, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    with pytest.raises(PfgraphError, match="R > 0"):
        cluster_images(img, 0.0)
    with pytest.raises(PfgraphError, match="backend"):
        cluster_images(img, 0.4, backend="cgal")
    with pytest.raises(PfgraphError, match="non-negative"):
        cluster_images(img, 0.4, threshold=-1.0)
    with pytest.raises(PfgraphError, match="images"):
        cluster_images(np.zeros((1, 28, 28), np.float32))
    assert resolve_backend("auto", "cpu") == "fastjet"
    assert resolve_backend("auto", "cuda") == "torch"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_fastjet_and_cpu() -> None:
    img = np.concatenate([synthetic_jet_images(6, seed=11), random_images(4, 0.3, seed=12)])
    gpu = cluster_images(img, 0.4, 0.0, "torch", device="cuda")
    assert gpu.jets.px.device.type == "cuda"
    assert_same_image_jets(gpu, cluster_images(img, 0.4, 0.0, "fastjet"))
    assert_same_image_jets(gpu, cluster_images(img, 0.4, 0.0, "torch", device="cpu"))


@pytest.mark.pythia
def test_pythia_jet_events_match_fastjet(tmp_path) -> None:
    """Real Pythia 8 jets injected into the detector (a small jet sample simulated here)."""
    pytest.importorskip("pythia8mc")
    from tests.conftest import make_events

    path = make_events(tmp_path / "jets.root", 4, "gauss_b050_jet")
    data = EventFiles(path).read(["truth", "jet"])
    for image in ("truth", "jet"):
        t = cluster_images(data[image], 0.4, 0.1, "torch")
        assert_same_image_jets(t, cluster_images(data[image], 0.4, 0.1, "fastjet"))
    assert float(t.jets.pt[:, 0].min()) > 50  # the injected jet image clusters into a hard jet


@pytest.mark.slow
def test_many_events_match_fastjet(events_file) -> None:
    """64 dense simulated events plus 64 jet-like ones, all pixels (threshold 0), two radii."""
    truth = EventFiles(events_file).read(["truth"], 0, 64)["truth"]
    img = np.concatenate([truth, synthetic_jet_images(64, seed=21)])
    for radius in (0.4, 1.0):
        assert_same_image_jets(cluster_images(img, radius, 0.0, "torch"), cluster_images(img, radius, 0.0, "fastjet"))
