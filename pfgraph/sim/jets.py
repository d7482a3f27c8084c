"""Pythia 8 jet events injected into the detector (the jet test sample, DESIGN §2).

For each event of a jet dataset:

1. Pythia 8 (``pythia8mc``) generates a pp event with the reference card
   (``Beams:eCM``, ``HardQCD:all = on``, ``PhaseSpace:pTHatMin``, ``Tune:pp``,
   ``Print:quiet = on``), seeded from the dataset's master seed.
2. All final-state particles (``isFinal``, neutrinos included) are clustered with anti-kt,
   radius ``R`` (FastJet, E-scheme recombination); the leading (highest pT) jet is kept.
3. Its constituents are moved so that the jet axis sits at (eta, phi) = (0, 0):

   * a **longitudinal Lorentz boost** along z with the jet's rapidity ``y_jet``:
     ``E' = E cosh y_jet - pz sinh y_jet``, ``pz' = pz cosh y_jet - E sinh y_jet``,
     px and py unchanged. Every constituent keeps its pT exactly and its rapidity shifts by
     ``-y_jet`` (for massless constituents that is the pseudorapidity; for massive ones the
     pseudorapidity is recomputed from the boosted four-vector). The boosted jet four-vector
     (the sum of the boosted constituents) has ``pz = 0``, so its rapidity and pseudorapidity
     are both exactly 0. (Shifting by the jet's *pseudo*\\ rapidity instead would leave a
     massive jet slightly off 0.) The energy is recomputed from the boosted four-vector.
   * a **rotation about z** by ``-phi_jet`` (px, py rotated; the constituents' phi is
     ``atan2(py', px')`` in (-pi, pi]), which puts the jet axis at phi = 0.

4. Species from the PDG id (charges from the ``particle`` package): photons -> EM neutral,
   e+- -> electron (track + EM calorimeter response), mu+- -> muon (track only), neutrinos
   dropped, any other neutral -> neutral hadron, any other charged -> charged hadron with the
   sign of its PDG charge.

The constituents then enter :func:`pfgraph.sim.showers.respond` as ordinary particles (with
``is_jet`` set, so the ``jet`` image holds their true energy) on top of the usual background.

The jets of a dataset come from one Pythia run seeded from the master seed, so the list is a
deterministic function of ``(n_events, seed, cfg)``; the first ``k`` jets do not depend on
``n_events``. Event ``i`` of the dataset takes jet ``i``, whatever the sharding.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from pfgraph.errors import ConfigError, PfgraphError
from pfgraph.sim.detector import CHARGED_HADRON, ELECTRON, EM_NEUTRAL, MUON, NEUTRAL_HADRON, JetConfig
from pfgraph.sim.particles import STREAM_PYTHIA, Particles

#: Pythia's allowed ``Random:seed`` range is 0..900 000 000; 0 means "seed from the clock".
PYTHIA_SEED_MAX = 900_000_000

#: |PDG id| of the neutrinos (nu_e, nu_mu, nu_tau, nu_tau'): dropped at injection.
NEUTRINOS = (12, 14, 16, 18)


@dataclass
class JetEvent:
    """The leading jet of one Pythia event, moved to (eta, phi) = (0, 0).

    Per-constituent arrays hold the injected particles only (neutrinos dropped) after the
    boost and rotation; ``pt`` is unchanged by the move. ``jet_pt``, ``jet_eta``, ``jet_phi``
    describe the original leading jet (all its constituents, before the move); ``jet_e`` is
    the sum of the injected constituents' boosted energies.
    """

    pdg: np.ndarray  # int32
    energy: np.ndarray  # float64, GeV, after the boost
    eta: np.ndarray  # float64, after the boost
    phi: np.ndarray  # float64, after the rotation, in (-pi, pi]
    charge: np.ndarray  # int8, -1/0/+1
    species: np.ndarray  # int8, detector species codes
    pt: np.ndarray  # float64, GeV, same before and after the move
    jet_pt: float = 0.0
    jet_eta: float = 0.0
    jet_phi: float = 0.0
    jet_e: float = 0.0
    n_jet_particles: int = 0
    jet_y: float = 0.0  # rapidity of the original jet: the boost applied
    jet_m: float = 0.0  # invariant mass of the original jet, GeV

    def __len__(self) -> int:
        return len(self.energy)


# ---------------------------------------------------------------------------------------------
# Species from PDG id


@functools.lru_cache(maxsize=4096)
def pdg_charge(pdg: int) -> float:
    """Electric charge (units of e) of PDG id ``pdg`` from the ``particle`` package."""
    from particle.pdgid import charge

    q = charge(int(pdg))
    if q is None:
        raise PfgraphError(f"PDG id {pdg}: not a valid particle id (no charge known)")
    return float(q)


def species_from_pdg(pdg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detector species, charge sign and keep-mask for PDG ids ``pdg``.

    Returns ``(species int8, charge int8 in {-1, 0, +1}, keep bool)``; ``keep`` is False for
    neutrinos (their species/charge entries are meaningless). Photons -> EM neutral, e+- ->
    electron, mu+- -> muon, other neutral -> neutral hadron, other charged -> charged hadron.
    """
    pdg = np.asarray(pdg, dtype=np.int64)
    ids, inverse = np.unique(pdg, return_inverse=True)
    q = np.sign(np.array([pdg_charge(int(i)) for i in ids], dtype=np.float64))[inverse].astype(np.int8)
    a = np.abs(pdg)
    species = np.where(q != 0, CHARGED_HADRON, NEUTRAL_HADRON).astype(np.int8)
    species[a == 22] = EM_NEUTRAL
    species[a == 11] = ELECTRON
    species[a == 13] = MUON
    keep = ~np.isin(a, NEUTRINOS)
    return species, q.reshape(pdg.shape), keep


# ---------------------------------------------------------------------------------------------
# Kinematics


def wrap_phi(phi: np.ndarray | float) -> np.ndarray:
    """Map phi into [-pi, pi)."""
    return np.mod(np.asarray(phi) + np.pi, 2 * np.pi) - np.pi


def rapidity(p4: np.ndarray) -> float:
    """Rapidity ``0.5 ln((E + pz) / (E - pz))`` of one four-vector (px, py, pz, E)."""
    pz, e = float(p4[2]), float(p4[3])
    return 0.5 * float(np.log((e + pz) / (e - pz)))


def move_to_origin(p4: np.ndarray, y_jet: float, phi_jet: float) -> np.ndarray:
    """Boost four-vectors ``p4`` (n, 4: px, py, pz, E) along z by ``-y_jet``, rotate by ``-phi_jet``.

    The longitudinal boost keeps px, py (so pT) and shifts every rapidity by ``-y_jet``;
    the rotation about z keeps pT and pz and shifts every azimuth by ``-phi_jet``. Returns the
    moved four-vectors (n, 4).
    """
    p4 = np.asarray(p4, dtype=np.float64)
    px, py, pz, e = p4.T
    ch, sh = np.cosh(y_jet), np.sinh(y_jet)
    e_b = e * ch - pz * sh
    pz_b = pz * ch - e * sh
    c, s = np.cos(phi_jet), np.sin(phi_jet)
    px_r = px * c + py * s
    py_r = py * c - px * s
    return np.stack([px_r, py_r, pz_b, e_b], axis=1)


def eta_phi_pt(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pseudorapidity, azimuth in (-pi, pi] and pT of four-vectors (n, 4)."""
    px, py, pz = p4[:, 0], p4[:, 1], p4[:, 2]
    pt = np.hypot(px, py)
    return np.arcsinh(pz / pt), np.arctan2(py, px), pt


def leading_jet(p4: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Anti-kt (E-scheme) clustering of ``p4`` (n, 4) with FastJet; the leading jet.

    Returns ``(constituent indices into p4, sorted; jet four-vector (px, py, pz, E))``, or
    None when no jet is found.
    """
    import fastjet

    pjs = []
    for i, (px, py, pz, e) in enumerate(p4.tolist()):
        pj = fastjet.PseudoJet(px, py, pz, e)
        pj.set_user_index(i)
        pjs.append(pj)
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, float(radius), fastjet.E_scheme)
    cs = fastjet.ClusterSequence(pjs, jet_def)
    jets = fastjet.sorted_by_pt(cs.inclusive_jets())
    if not jets:
        return None
    lead = jets[0]
    idx = np.sort(np.array([c.user_index() for c in lead.constituents()], dtype=np.int64))
    return idx, np.array([lead.px(), lead.py(), lead.pz(), lead.e()], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Pythia


def pythia_seed(seed: int) -> int:
    """``Random:seed`` for dataset master seed ``seed``: in 1..900 000 000 (0 would mean the clock)."""
    state = np.random.SeedSequence([int(seed), STREAM_PYTHIA]).generate_state(1, dtype=np.uint32)[0]
    return 1 + int(state) % PYTHIA_SEED_MAX


def pythia_card(seed: int, cfg: JetConfig) -> list[str]:
    """The Pythia settings of a jet dataset: the reference card, the seed, then ``cfg.settings``."""
    return [
        f"Beams:eCM = {float(cfg.e_cm)!r}",
        "HardQCD:all = on",
        f"PhaseSpace:pTHatMin = {float(cfg.pthat_min)!r}",
        f"Tune:pp = {int(cfg.tune)}",
        "Print:quiet = on",
        "Random:setSeed = on",
        f"Random:seed = {pythia_seed(seed)}",
        *cfg.settings,
    ]


@contextlib.contextmanager
def captured_stdout() -> Iterator[list[str]]:
    """Send C-level stdout (fd 1) to a temporary file; the text lands in the yielded list.

    Pythia writes its messages with C++ ``cout``; this keeps them off the terminal while still
    letting the caller report them on failure. Python's own ``sys.stdout`` is flushed first.
    """
    out: list[str] = []
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real fd (e.g. some notebooks): do nothing
        yield out
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), fd)
            yield out
        finally:
            _flush_c_stdout()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def _flush_c_stdout() -> None:
    """Flush the C library's stdout buffer (where C++ ``cout`` ends up) before fd 1 moves back."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def make_pythia(seed: int, cfg: JetConfig):  # noqa: ANN201 (pythia8mc.Pythia, imported lazily)
    """An initialised ``pythia8mc.Pythia`` for a jet dataset (no banner, output captured)."""
    try:
        import pythia8mc
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise PfgraphError(f"jet sample needs pythia8mc: {exc}") from exc
    with captured_stdout() as log:
        pythia = pythia8mc.Pythia("", False)
        bad = [s for s in pythia_card(seed, cfg) if not pythia.readString(s)]
        ok = not bad and pythia.init()
    if bad:
        raise ConfigError(f"jets.settings: Pythia rejected {bad!r}{_tail(log)}")
    if not ok:
        raise PfgraphError(f"Pythia initialisation failed for card {pythia_card(seed, cfg)!r}{_tail(log)}")
    return pythia


def _tail(log: list[str], n: int = 400) -> str:
    text = " ".join("".join(log).split())
    return f" (Pythia: ...{text[-n:]})" if text else ""


def final_state(event) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 (pythia8mc.Event)
    """PDG ids (int32) and four-vectors (n, 4: px, py, pz, E) of the final-state particles."""
    rows = [(q.id(), q.px(), q.py(), q.pz(), q.e()) for q in event.particles() if q.isFinal()]
    if not rows:
        return np.zeros(0, dtype=np.int32), np.zeros((0, 4))
    arr = np.array(rows, dtype=np.float64)
    return arr[:, 0].astype(np.int32), np.ascontiguousarray(arr[:, 1:])


def jet_event(pdg: np.ndarray, p4: np.ndarray, radius: float) -> JetEvent | None:
    """Cluster one event's final state, move its leading jet to (0, 0); None if no jet."""
    if len(pdg) == 0:
        return None
    lead = leading_jet(p4, radius)
    if lead is None:
        return None
    idx, jet_p4 = lead
    species, charge, keep = species_from_pdg(pdg[idx])
    idx, species, charge = idx[keep], species[keep], charge[keep]
    if len(idx) == 0:
        return None
    jet_eta_phi_pt = eta_phi_pt(jet_p4[None, :])
    y_jet = rapidity(jet_p4)
    phi_jet = float(jet_eta_phi_pt[1][0])
    moved = move_to_origin(p4[idx], y_jet, phi_jet)
    eta, phi, pt = eta_phi_pt(moved)
    energy = moved[:, 3]
    return JetEvent(
        pdg=pdg[idx].astype(np.int32), energy=energy, eta=eta, phi=phi, charge=charge, species=species, pt=pt,
        jet_pt=float(jet_eta_phi_pt[2][0]), jet_eta=float(jet_eta_phi_pt[0][0]), jet_phi=phi_jet,
        jet_e=float(energy.sum()), n_jet_particles=int(len(idx)),
        jet_y=y_jet, jet_m=float(np.sqrt(max(jet_p4[3] ** 2 - float(np.sum(jet_p4[:3] ** 2)), 0.0))),
    )


def generate_jets(n_events: int, seed: int, cfg: JetConfig,
                  progress: Callable[[int], None] | None = None) -> list[JetEvent]:
    """``n_events`` leading Pythia jets of a dataset with master seed ``seed``, moved to (0, 0).

    One Pythia run seeded by :func:`pythia_seed`; events that fail to generate or yield no jet
    are skipped (the next event is taken). ``progress(1)`` is called per accepted jet.
    Deterministic in ``(n_events, seed, cfg)``.
    """
    if n_events < 0:
        raise ConfigError(f"events = {n_events}: expected >= 0")
    if n_events == 0:
        return []
    pythia = make_pythia(seed, cfg)
    jets: list[JetEvent] = []
    failures, max_failures = 0, 100 + n_events
    log: list[str] = []
    while len(jets) < n_events:
        with captured_stdout() as out:  # per event, so a progress callback may still print
            jet = jet_event(*final_state(pythia.event), cfg.radius) if pythia.next() else None
        log = (log + out)[-3:]
        if jet is None:
            failures += 1
            if failures > max_failures:
                break
            continue
        jets.append(jet)
        if progress is not None:
            progress(1)
    if len(jets) < n_events:
        raise PfgraphError(f"Pythia produced only {len(jets)} of {n_events} jet events "
                           f"({failures} failed or jet-less events){_tail(log)}")
    return jets


def jet_particles(jet: JetEvent, batch_index: int, rng: np.random.Generator) -> Particles:
    """The constituents of ``jet`` as :class:`Particles` of event ``batch_index`` of a batch.

    ``is_jet`` and ``in_truth`` are set; the three smearing normals (tracker, ECAL, HCAL) are
    drawn from ``rng`` (the event's generator, after its background): ``rng.standard_normal((3, n))``.
    """
    n = len(jet.energy)
    g = rng.standard_normal((3, n))
    return Particles(
        event=np.full(n, batch_index, dtype=np.int64),
        energy=np.asarray(jet.energy, dtype=np.float64).copy(),
        eta=np.asarray(jet.eta, dtype=np.float64).copy(),
        phi=np.asarray(jet.phi, dtype=np.float64).copy(),
        species=np.asarray(jet.species, dtype=np.int8).copy(),
        charge=np.asarray(jet.charge, dtype=np.int8).copy(),
        in_truth=np.ones(n, dtype=bool),
        is_jet=np.ones(n, dtype=bool),
        n_trk=g[0], n_ecal=g[1], n_hcal=g[2],
    )
