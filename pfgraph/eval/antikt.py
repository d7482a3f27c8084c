"""Batched anti-kt jet clustering in torch (same code on CPU and CUDA), FastJet as reference.

The algorithm is FastJet's sequential anti-kt with E-scheme recombination, run for many events
at once in lock-step (one clustering step per event per iteration):

* distances as FastJet computes them: ``d_iB = 1/pT_i^2`` and
  ``d_ij = min(1/pT_i^2, 1/pT_j^2) * dR_ij^2 / R^2`` with ``dR^2 = dy^2 + dphi^2`` in rapidity
  and azimuth (``dphi`` wrapped to [0, pi]); rapidity and azimuth follow FastJet's
  ``PseudoJet::_set_rap_phi`` formulas, everything in float64;
* FastJet's geometric nearest-neighbour (NN) formulation: each pseudojet keeps its nearest
  neighbour within R (strictly closer than R, as FastJet) and ``diJ = dR^2 * min(kt2, kt2_NN)``
  (``R^2 * kt2`` without neighbour); the smallest ``diJ`` of an event is the next step: a merge
  with its neighbour, or the pseudojet becomes a jet ("beam");
* FastJet's tiling: the (y, phi) plane is cut into tiles at least R wide, so every pair closer
  than R lies in the same or adjacent tiles and every nearest-neighbour search visits 3 x 3
  tiles (phi tiles wrap around). A pseudojet can be the nearest neighbour of at most six others
  in the plane, so a merge invalidates only a handful of cached neighbours; those are found by
  scanning the 3 x 3 tiles around the two merged pseudojets. Those the merged pseudojet is
  strictly closer to than their old neighbour was take it as their neighbour (nothing else came
  closer); only the others are searched again;
* two-level minimum: each tile keeps the minimum ``diJ`` of its members, so finding the next
  step is a scan over tiles plus one tile, and only tiles touched by a step are refreshed.

Events are sorted by multiplicity, so the events still clustering at iteration ``s`` are a
prefix of the batch (finished events drop out for free). Tiles hold up to the largest
occupancy + 1 members; a tile that fills up grows every tile by a few places, and every
``REPACK_EVERY`` iterations the tiles are re-packed (shrunk) to the current largest occupancy.
State is flat (global slot numbers, 1-D gathers); one iteration is ~100 torch operations.

Results agree with FastJet's up to rounding: identical merging sequences give identical sums;
rapidity and azimuth go through ``log``/``atan2`` whose last bit may differ between libm and
torch (so a pair exactly at dR = R to the last bit may be decided differently). Exactly equal
distances make any sequential clustering depend on visiting order (FastJet's own strategies
then disagree with each other); :func:`pixel_positions` therefore moves the pixel pseudojets by
fixed offsets of at most 1e-6 pixel, after which both implementations give identical jets: on
the 1000-event Pythia jet set every jet has the same constituents and bit-identical pT and E
(docs/BENCHMARKS.md, ``## Anti-kt``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pfgraph import geometry
from pfgraph.errors import PfgraphError

#: FastJet's ``MaxRap``: rapidity given to massless particles along the beam.
MAX_RAP = 1e5
TWOPI = 2.0 * math.pi
#: Tiles are re-packed every this many iterations.
REPACK_EVERY = 64
#: Rapidity of the dummy slot (far from everything, so never anyone's neighbour).
_FAR = 1e30
#: Events clustered together at most (memory: ~110 bytes per pseudojet slot). On the CPU batches
#: of 250-1000 events run equally fast (larger ones leave the cache); on a GPU every iteration
#: costs ~100 kernel launches whatever the batch, so it takes many more events at once.
DEFAULT_MAX_BATCH = 512
DEFAULT_MAX_BATCH_CUDA = 8192


@dataclass
class Jets:
    """Inclusive anti-kt jets of a batch of events, padded to the largest jet count.

    Jets are ordered by decreasing pT within each event. ``constituent_jet`` maps every input
    pseudojet to the index of its jet (-1 for padding/masked inputs).
    """

    px: torch.Tensor  # (B, J) float64
    py: torch.Tensor
    pz: torch.Tensor
    e: torch.Tensor
    n_jets: torch.Tensor  # (B,) int64
    constituent_jet: torch.Tensor  # (B, N) int64

    @property
    def mask(self) -> torch.Tensor:
        """(B, J) True for real jets."""
        j = torch.arange(self.px.shape[1], device=self.px.device)
        return j[None, :] < self.n_jets[:, None]

    @property
    def pt(self) -> torch.Tensor:
        """Transverse momentum."""
        return torch.sqrt(self.px * self.px + self.py * self.py)

    @property
    def rap(self) -> torch.Tensor:
        """Rapidity (FastJet's definition)."""
        return rap_phi_kt2(self.px, self.py, self.pz, self.e)[0]

    @property
    def phi(self) -> torch.Tensor:
        """Azimuth in [0, 2 pi) (FastJet's convention)."""
        return rap_phi_kt2(self.px, self.py, self.pz, self.e)[1]

    @property
    def eta(self) -> torch.Tensor:
        """Pseudorapidity."""
        pt = self.pt
        return torch.asinh(torch.where(pt > 0, self.pz / torch.where(pt > 0, pt, 1.0), 0.0))

    @property
    def n_constituents(self) -> torch.Tensor:
        """(B, J) number of constituents of each jet."""
        b, j = self.px.shape
        counts = torch.zeros(b, j + 1, dtype=torch.int64, device=self.px.device)
        idx = torch.where(self.constituent_jet >= 0, self.constituent_jet, j)
        counts.scatter_add_(1, idx, torch.ones_like(idx))
        return counts[:, :j]


def rap_phi_kt2(px: torch.Tensor, py: torch.Tensor, pz: torch.Tensor,
                e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rapidity, azimuth in [0, 2 pi) and pT^2, exactly as FastJet's ``PseudoJet`` computes them."""
    kt2 = px * px + py * py
    phi = torch.where(kt2 == 0, torch.zeros_like(px), torch.atan2(py, px))
    phi = torch.where(phi < 0, phi + TWOPI, phi)
    phi = torch.where(phi >= TWOPI, phi - TWOPI, phi)
    m2 = (e + pz) * (e - pz) - kt2
    e_plus_pz = e + pz.abs()
    num = kt2 + torch.clamp(m2, min=0.0)
    rap = 0.5 * torch.log(num / (e_plus_pz * e_plus_pz))
    rap = torch.where(pz > 0, -rap, rap)
    along_beam = (e == pz.abs()) & (kt2 == 0)
    beam_rap = torch.where(pz >= 0, MAX_RAP + pz.abs(), -(MAX_RAP + pz.abs()))
    rap = torch.where(along_beam, beam_rap, rap)
    return rap, phi, kt2


def _pair_dist(y1: torch.Tensor, phi1: torch.Tensor, y2: torch.Tensor, phi2: torch.Tensor) -> torch.Tensor:
    """FastJet's ``_bj_dist``: dphi^2 + dy^2 with dphi wrapped to [0, pi]."""
    dphi = (phi1 - phi2).abs()
    dphi = torch.where(dphi > math.pi, TWOPI - dphi, dphi)
    deta = y1 - y2
    return dphi * dphi + deta * deta


class _Tiling:
    """Tile geometry: at least R wide in rapidity and azimuth, phi tiles wrap around."""

    def __init__(self, ymin: float, ymax: float, radius: float, device: torch.device) -> None:
        self.ymin = ymin
        span = max(ymax - ymin, 0.0)
        self.n_y = max(1, int(span / radius))
        self.w_y = max(span / self.n_y, radius) if span > 0 else radius
        # guard against span / n_y rounding just below R
        while self.n_y > 1 and span / self.n_y < radius:
            self.n_y -= 1
            self.w_y = span / self.n_y
        self.n_phi = max(1, int(TWOPI / radius))
        while self.n_phi > 1 and TWOPI / self.n_phi < radius:
            self.n_phi -= 1
        self.w_phi = TWOPI / self.n_phi
        self.n_tiles = self.n_y * self.n_phi
        table = np.full((self.n_tiles + 1, 9), self.n_tiles, dtype=np.int64)
        for ty in range(self.n_y):
            for tp in range(self.n_phi):
                seen: list[int] = []
                for a in (-1, 0, 1):
                    if not 0 <= ty + a < self.n_y:
                        continue
                    for b in (-1, 0, 1):
                        t = (ty + a) * self.n_phi + (tp + b) % self.n_phi
                        if t not in seen:
                            seen.append(t)
                table[ty * self.n_phi + tp, : len(seen)] = seen
        self.neighbours = torch.as_tensor(table, device=device)

    def tile_of(self, y: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """Tile index of positions (y, phi)."""
        ty = torch.clamp(torch.floor((y - self.ymin) / self.w_y), 0, self.n_y - 1).to(torch.int64)
        tp = torch.clamp(torch.floor(phi / self.w_phi), 0, self.n_phi - 1).to(torch.int64)
        return ty * self.n_phi + tp


class _State:
    """Clustering state of a batch, stored flat with global slot numbers for fast 1-D gathers.

    Event ``r`` owns slots ``r * S .. r * S + N`` (``S = N + 1``); slot ``r * S + N`` is the
    event's dummy: never active, far away, and the "no neighbour" / "free place" marker of the
    event. Per-slot tensors: four-momenta ``p4`` (G, 4), positions ``pos`` (G, 2) = (y, phi),
    ``scale`` (1/kt2), ``active``, ``tile`` (local tile number), ``nn`` (global slot of the
    nearest neighbour within R), ``nnd`` (its distance^2, R^2 without one), ``dij``, and the
    history ``parent`` / ``beamed``. Tiles: ``TT = T + 1`` per event (the last a dummy, always
    empty); ``members`` is (B * TT, C) of global slot numbers, ``tmin`` the per-tile minimum diJ.
    """

    def __init__(self, px: torch.Tensor, py: torch.Tensor, pz: torch.Tensor, e: torch.Tensor,
                 valid: torch.Tensor, radius: float) -> None:
        dev = px.device
        b, n = px.shape
        s = n + 1
        self.b, self.n, self.s, self.r2 = b, n, s, radius * radius
        pad = (0, 1)
        self.p4 = torch.stack([torch.nn.functional.pad(a, pad).reshape(-1) for a in (px, py, pz, e)], 1)
        self.active = torch.nn.functional.pad(valid, pad).reshape(-1)
        y, phi, kt2 = rap_phi_kt2(self.p4[:, 0], self.p4[:, 1], self.p4[:, 2], self.p4[:, 3])
        y = torch.where(self.active, y, torch.full_like(y, _FAR))
        phi = torch.where(self.active, phi, torch.zeros_like(phi))
        self.pos = torch.stack([y, phi], 1)
        self.scale = torch.where(self.active, _antikt_scale(kt2), torch.full_like(kt2, math.inf))
        if bool(valid.any()):
            ymin, ymax = float(y[self.active].min()), float(y[self.active].max())
        else:
            ymin = ymax = 0.0
        self.tiling = _Tiling(ymin, ymax, radius, dev)
        self.tt = tt = self.tiling.n_tiles + 1
        self.nbr = self.tiling.neighbours
        rows = torch.arange(b, device=dev)
        self.rs, self.rt = rows * s, rows * tt
        self.dummy = self.rs + n
        self.tile = torch.where(self.active, self.tiling.tile_of(y, phi), torch.full_like(y, tt - 1, dtype=torch.int64))
        g = b * s
        self.parent = torch.full((g,), -1, dtype=torch.int64, device=dev)
        self.beamed = torch.zeros(g, dtype=torch.bool, device=dev)
        self.nn = self.dummy.repeat_interleave(s)
        self.nnd = torch.full((g,), self.r2, dtype=torch.float64, device=dev)
        self.dij = torch.full((g,), math.inf, dtype=torch.float64, device=dev)
        self.flag = torch.zeros(g, dtype=torch.bool, device=dev)  # scratch, all False between uses
        self._build_members()
        self.tmin = torch.full((b * tt,), math.inf, dtype=torch.float64, device=dev)
        self._initial_nn()
        self._refresh_dij(torch.nonzero(self.active).reshape(-1))
        self._refresh_tiles(torch.arange(b * tt, device=dev))

    def _initial_nn(self) -> None:
        """Nearest neighbours of every pseudojet.

        Per group of events, the candidates of every tile (its 3x3 tiles' members) and their
        positions are gathered once; each pseudojet then reads its tile's block. Work is done in
        chunks of ~1000 pseudojets so that temporaries stay cache-sized (several times faster
        than one big pass on a CPU).
        """
        b, s, tt = self.b, self.s, self.tt
        c9 = 9 * self.members.shape[1]
        per_group = max(1, (1 << 18) // (tt * c9))
        active = self.active.view(b, s)
        for r0 in range(0, b, per_group):
            r1 = min(b, r0 + per_group)
            gt = torch.arange(r0 * tt, r1 * tt, device=self.p4.device)
            rows = self._rows_of_tiles(gt)
            cand = self._candidates(self.nbr.index_select(0, gt - rows * tt) + (rows * tt)[:, None])  # (K, 9C)
            pc = self.pos.index_select(0, cand.view(-1)).view(cand.shape[0], c9, 2)
            g = torch.nonzero(active[r0:r1].reshape(-1)).view(-1) + r0 * s
            for lo in range(0, g.numel(), 1024):
                gg = g[lo:lo + 1024]
                block = torch.div(gg, s, rounding_mode="floor") * tt + self.tile.index_select(0, gg) - r0 * tt
                cc, pp = cand.index_select(0, block), pc.index_select(0, block)
                pg = self.pos.index_select(0, gg)
                d = _pair_dist(pg[:, None, 0], pg[:, None, 1], pp[..., 0], pp[..., 1])
                d = torch.where(cc == gg[:, None], math.inf, d)
                dmin, at = d.min(1)
                near = dmin < self.r2
                dummy = torch.div(gg, s, rounding_mode="floor") * s + self.n
                self.nn.index_copy_(0, gg, torch.where(near, cc.gather(1, at[:, None])[:, 0], dummy))
                self.nnd.index_copy_(0, gg, torch.where(near, dmin, self.r2))

    # ------------------------------------------------------------------ tiles
    def _build_members(self) -> None:
        """Member table from ``self.tile`` with capacity = maximum occupancy + 1."""
        b, s, tt = self.b, self.s, self.tt
        dev = self.p4.device
        gt = (self.rt[:, None] + self.tile.view(b, s)).reshape(-1)
        occ = torch.zeros(b * tt, dtype=torch.int64, device=dev)
        occ.index_add_(0, gt, self.active.to(torch.int64))
        cap = int(occ.max()) + 1 if occ.numel() else 1
        key = torch.where(self.active, gt, b * tt)
        order = torch.argsort(key, stable=True)
        skey = key[order]
        ok = skey < b * tt
        order, skey = order[ok], skey[ok]
        start = torch.cumsum(occ, 0) - occ
        rank = torch.arange(order.numel(), device=dev) - start[skey]
        members = self.dummy.repeat_interleave(tt)[:, None].repeat(1, cap)
        members.view(-1).index_copy_(0, skey * cap + rank, order)
        self.members = members

    def repack(self, alive: int) -> None:
        """Re-pack the tiles of the first ``alive`` events to capacity = max occupancy + 1."""
        m = self.members[: alive * self.tt]
        free = m == self.dummy[:alive].repeat_interleave(self.tt)[:, None]
        occ = int((~free).sum(1).max()) if m.numel() else 0
        packed = m.gather(1, torch.argsort(free.to(torch.int8), dim=1, stable=True))
        self.members = packed[:, : occ + 1].contiguous()

    def _rows_of_tiles(self, gt: torch.Tensor) -> torch.Tensor:
        return torch.div(gt, self.tt, rounding_mode="floor")

    def _remove(self, gt: torch.Tensor, g: torch.Tensor, dummy: torch.Tensor) -> None:
        """Take global slots ``g`` out of global tiles ``gt`` (one per row; rows distinct)."""
        row = self.members.index_select(0, gt)
        self.members.index_copy_(0, gt, torch.where(row == g[:, None], dummy[:, None], row))

    def _insert(self, gt: torch.Tensor, g: torch.Tensor, dummy: torch.Tensor) -> None:
        """Put global slots ``g`` into the first free place of global tiles ``gt`` (rows distinct)."""
        row = self.members.index_select(0, gt)
        free = row == dummy[:, None]
        if not bool(free.any(1).all()):  # a full tile: grow every tile by a few places
            self.members = torch.cat([self.members, self.dummy.repeat_interleave(self.tt)[: self.members.shape[0], None]
                                      .expand(-1, 4)], 1)
            row = self.members.index_select(0, gt)
            free = row == dummy[:, None]
        pos = free.to(torch.int8).argmax(1)
        self.members.view(-1).index_copy_(0, gt * self.members.shape[1] + pos, g)

    def _candidates(self, gt9: torch.Tensor) -> torch.Tensor:
        """Global slots in the global tiles ``gt9`` (M, K): (M, K * C)."""
        c = self.members.shape[1]
        return self.members.index_select(0, gt9.reshape(-1)).view(gt9.shape[0], gt9.shape[1] * c)

    def _recompute_nn(self, g: torch.Tensor) -> None:
        """Full nearest-neighbour search (within R) for global slots ``g``."""
        if g.numel() == 0:
            return
        rows = torch.div(g, self.s, rounding_mode="floor")
        cand = self._candidates(self.nbr.index_select(0, self.tile.index_select(0, g)) + (rows * self.tt)[:, None])
        pc = self.pos.index_select(0, cand.view(-1)).view(cand.shape[0], cand.shape[1], 2)
        pg = self.pos.index_select(0, g)
        d = _pair_dist(pg[:, None, 0], pg[:, None, 1], pc[..., 0], pc[..., 1])
        d = torch.where(cand == g[:, None], math.inf, d)
        dmin, at = d.min(1)
        near = dmin < self.r2
        self.nn.index_copy_(0, g, torch.where(near, cand.gather(1, at[:, None])[:, 0], rows * self.s + self.n))
        self.nnd.index_copy_(0, g, torch.where(near, dmin, self.r2))

    def _refresh_dij(self, g: torch.Tensor) -> None:
        """diJ = NN_dist * min(scale, scale_NN) of global slots ``g``; inf when inactive."""
        sc = torch.minimum(self.scale.index_select(0, g), self.scale.index_select(0, self.nn.index_select(0, g)))
        val = torch.where(self.active.index_select(0, g), self.nnd.index_select(0, g) * sc, math.inf)
        self.dij.index_copy_(0, g, val)

    def _refresh_tiles(self, gt: torch.Tensor) -> None:
        """Recompute the minimum diJ of global tiles ``gt``."""
        gt = gt.reshape(-1)
        mem = self.members.index_select(0, gt)
        vals = self.dij.index_select(0, mem.view(-1)).view(mem.shape).amin(1)
        self.tmin.index_copy_(0, gt, vals)

    # ------------------------------------------------------------------ one iteration
    def step(self, alive: int) -> None:
        """One clustering step (a merge or a jet) for each of the first ``alive`` events."""
        tt, nbr = self.tt, self.nbr
        rt, dm = self.rt[:alive], self.dummy[:alive]
        c = self.members.shape[1]
        # 1. the smallest diJ: best tile, then its best member
        t = self.tmin.view(-1, tt)[:alive].argmin(1)
        mem = self.members.index_select(0, rt + t)
        at = self.dij.index_select(0, mem.view(-1)).view(alive, c).argmin(1)
        gi = mem.gather(1, at[:, None])[:, 0]
        gj = self.nn.index_select(0, gi)
        merge = gj != dm
        ti, tj = self.tile.index_select(0, gi), self.tile.index_select(0, gj)  # tj: the dummy tile for beams
        # 2. pseudojets whose neighbour is i or j, found before anything changes (i and j may be
        #    among them: recomputing them too is harmless)
        nbi, nbj = nbr.index_select(0, ti), nbr.index_select(0, tj)
        nbj = torch.where((nbj[:, :, None] == nbi[:, None, :]).any(-1), tt - 1, nbj)
        cand = self._candidates(torch.cat([nbi, nbj], 1) + rt[:, None])
        cnn = self.nn.index_select(0, cand.view(-1)).view(cand.shape)
        jc = torch.where(merge, gj, -1)
        aff = cand[(cnn == gi[:, None]) | (cnn == jc[:, None])]
        # 3. apply: the dead slot (j, or i for a jet) leaves
        gdead = torch.where(merge, gj, gi)
        self._remove(rt + torch.where(merge, tj, ti), gdead, dm)
        self.active.index_fill_(0, gdead, False)
        self.dij.index_fill_(0, gdead, math.inf)
        mpos = torch.nonzero(merge).view(-1)
        bpos = torch.nonzero(~merge).view(-1)
        self.beamed.index_fill_(0, gi.index_select(0, bpos), True)
        mgi, mgj = gi.index_select(0, mpos), gj.index_select(0, mpos)
        mrt, mdm = rt.index_select(0, mpos), dm.index_select(0, mpos)
        self.parent.index_copy_(0, mgj, mgi)
        p4 = self.p4.index_select(0, mgi) + self.p4.index_select(0, mgj)  # E-scheme
        self.p4.index_copy_(0, mgi, p4)
        y, phi, kt2 = rap_phi_kt2(p4[:, 0], p4[:, 1], p4[:, 2], p4[:, 3])
        self.pos.index_copy_(0, mgi, torch.stack([y, phi], 1))
        self.scale.index_copy_(0, mgi, _antikt_scale(kt2))
        tm = self.tiling.tile_of(y, phi)
        self._remove(mrt + ti.index_select(0, mpos), mgi, mdm)
        self._insert(mrt + tm, mgi, mdm)
        self.tile.index_copy_(0, mgi, tm)
        # 4. the new pseudojet: its own neighbour, and the pseudojets it is now closest to
        gt_m = nbr.index_select(0, tm) + mrt[:, None]
        mc = self._candidates(gt_m)
        pc = self.pos.index_select(0, mc.view(-1)).view(mc.shape[0], mc.shape[1], 2)
        d = _pair_dist(y[:, None], phi[:, None], pc[..., 0], pc[..., 1])
        d = torch.where(mc == mgi[:, None], math.inf, d)
        closer = d < self.nnd.index_select(0, mc.view(-1)).view(mc.shape)
        cr, cc = torch.nonzero(closer, as_tuple=True)
        moved = mc[cr, cc]  # their neighbour is now the new pseudojet
        self.nn.index_copy_(0, moved, mgi.index_select(0, cr))
        self.nnd.index_copy_(0, moved, d[cr, cc])
        dmin, at = d.min(1)
        near = dmin < self.r2
        self.nn.index_copy_(0, mgi, torch.where(near, mc.gather(1, at[:, None])[:, 0], mdm))
        self.nnd.index_copy_(0, mgi, torch.where(near, dmin, self.r2))
        # 5. full search for the live pseudojets whose neighbour was i or j, except the new one
        #    (done above) and those it is strictly closer to than their old neighbour was (nothing
        #    else came closer, so it is their neighbour now)
        self.flag.index_fill_(0, moved, True)
        self.flag.index_fill_(0, mgi, True)
        aff = aff[self.active.index_select(0, aff) & ~self.flag.index_select(0, aff)]
        self.flag.index_fill_(0, moved, False)
        self.flag.index_fill_(0, mgi, False)
        self._recompute_nn(aff)
        # 6. diJ of everything that changed, then the minima of the tiles they (and the dead) are in
        changed = torch.cat([mgi, moved, aff])  # (aff: those searched again)
        self._refresh_dij(changed)
        changed_t = torch.div(changed, self.s, rounding_mode="floor") * tt + self.tile.index_select(0, changed)
        self._refresh_tiles(torch.cat([changed_t, mrt + ti.index_select(0, mpos), mrt + tj.index_select(0, mpos),
                                       rt.index_select(0, bpos) + ti.index_select(0, bpos)]))


def _antikt_scale(kt2: torch.Tensor) -> torch.Tensor:
    """FastJet's ``jet_scale_for_algorithm`` for anti-kt: 1/kt2 (1e300 for kt2 <= 1e-300)."""
    return torch.where(kt2 > 1e-300, 1.0 / torch.where(kt2 > 1e-300, kt2, 1.0), torch.full_like(kt2, 1e300))


def _roots(parent: torch.Tensor) -> torch.Tensor:
    """Follow merge pointers to the slot that became a jet (pointer jumping)."""
    idx = torch.arange(parent.shape[1], device=parent.device)[None, :].expand_as(parent)
    root = torch.where(parent >= 0, parent, idx)
    while True:
        nxt = root.gather(1, root)
        if torch.equal(nxt, root):
            return root
        root = nxt


@contextlib.contextmanager
def _cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Temporarily limit torch's intra-op CPU threads (no-op on CUDA or for ``None``)."""
    if n is None or device.type != "cpu" or torch.get_num_threads() == n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def cluster(px: torch.Tensor, py: torch.Tensor, pz: torch.Tensor, e: torch.Tensor,
            mask: torch.Tensor | None = None, radius: float = 0.4, max_batch: int | None = None,
            cpu_threads: int | None = 1) -> Jets:
    """Inclusive anti-kt jets (E-scheme, all jets, no pT cut) of a padded batch of events.

    ``px, py, pz, e``: (B, N) four-momenta (converted to float64); ``mask``: (B, N) True for
    real pseudojets (default: all). Runs on the inputs' device; returns :class:`Jets`.
    ``max_batch`` events are clustered together (default 512 on the CPU, 8192 on CUDA).
    On the CPU the loop runs with ``cpu_threads`` intra-op threads (default 1: its operations
    are small, and OpenMP barriers cost more than they give, several times more on a loaded
    machine); ``None`` keeps torch's setting.
    """
    device = torch.as_tensor(px).device
    if max_batch is None:
        max_batch = DEFAULT_MAX_BATCH_CUDA if device.type == "cuda" else DEFAULT_MAX_BATCH
    if max_batch <= 0:
        raise PfgraphError(f"anti-kt batch size {max_batch}: expected a positive number of events")
    with _cpu_threads(cpu_threads, device):
        return _cluster(px, py, pz, e, mask, radius, max_batch)


def _cluster(px: torch.Tensor, py: torch.Tensor, pz: torch.Tensor, e: torch.Tensor,
             mask: torch.Tensor | None, radius: float, max_batch: int) -> Jets:
    if not radius > 0:
        raise PfgraphError(f"anti-kt radius R = {radius}: expected R > 0")
    px, py, pz, e = (torch.as_tensor(a).to(torch.float64) for a in (px, py, pz, e))
    if px.dim() != 2 or not (px.shape == py.shape == pz.shape == e.shape):
        raise PfgraphError(f"cluster expects four (B, N) arrays of one shape, got {tuple(px.shape)}")
    b, n = px.shape
    mask = torch.ones_like(px, dtype=torch.bool) if mask is None else torch.as_tensor(mask, device=px.device).bool()
    if b > max_batch:
        parts = [_cluster(px[s:s + max_batch], py[s:s + max_batch], pz[s:s + max_batch], e[s:s + max_batch],
                          mask[s:s + max_batch], radius, max_batch) for s in range(0, b, max_batch)]
        return _concat_jets(parts)
    counts = mask.sum(1)
    order = torch.argsort(counts, descending=True, stable=True)
    inv = torch.empty_like(order)
    inv[order] = torch.arange(b, device=px.device)
    # compact each event's pseudojets to the front (keeping their order) so N = max count
    sub = [a[order] for a in (px, py, pz, e)]
    m = mask[order]
    pos = torch.argsort((~m).to(torch.int8), dim=1, stable=True)
    nmax = int(counts.max()) if b > 0 else 0
    pos = pos[:, :nmax]
    sub = [a.gather(1, pos) for a in sub]
    valid = m.gather(1, pos)
    state = _State(*sub, valid, radius)
    steps = counts[order].cpu().numpy()
    for s in range(int(steps[0]) if b > 0 else 0):
        if s % REPACK_EVERY == 0 and s > 0:
            state.repack(int(np.count_nonzero(steps > s)))
        alive = int(np.count_nonzero(steps > s))
        state.step(alive)
    return _collect(state, pos, valid, inv, mask.shape)


def _collect(state: _State, pos: torch.Tensor, valid: torch.Tensor, inv: torch.Tensor,
             shape: Sequence[int]) -> Jets:
    """Jets in pT order and each input's jet index, back in the caller's event and slot order."""
    n, s = state.n, state.s
    beamed = state.beamed.view(-1, s)[:, :n]
    px, py, pz, e = (state.p4[:, k].reshape(-1, s)[:, :n] for k in range(4))
    parent = state.parent.view(-1, s)[:, :n]
    root = _roots(torch.where(parent >= 0, parent - state.rs[:, None], parent))
    pt2 = px * px + py * py
    key = torch.where(beamed, pt2, torch.full_like(pt2, -1.0))
    order = torch.argsort(key, dim=1, descending=True, stable=True)
    n_jets = beamed.sum(1)
    jmax = int(n_jets.max()) if n_jets.numel() else 0
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=px.device)[None, :].expand_as(order))
    sel = order[:, :jmax]
    jet_of_slot = torch.where(valid, rank.gather(1, root), -1)
    b, n_in = shape
    sorted_const = torch.full((b, n_in), -1, dtype=torch.int64, device=px.device)
    sorted_const.scatter_(1, pos, jet_of_slot)
    const = sorted_const[inv]
    jets = [a.gather(1, sel)[inv] for a in (px, py, pz, e)]
    return Jets(*jets, n_jets[inv], const)


def _concat_jets(parts: Sequence[Jets]) -> Jets:
    jmax = max(p.px.shape[1] for p in parts)
    nmax = max(p.constituent_jet.shape[1] for p in parts)

    def padj(t: torch.Tensor, width: int, value: Any = 0.0) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return Jets(
        torch.cat([padj(p.px, jmax) for p in parts]), torch.cat([padj(p.py, jmax) for p in parts]),
        torch.cat([padj(p.pz, jmax) for p in parts]), torch.cat([padj(p.e, jmax) for p in parts]),
        torch.cat([p.n_jets for p in parts]),
        torch.cat([padj(p.constituent_jet, nmax, -1) for p in parts]),
    )


# ----------------------------------------------------------------------------------- pixels

#: Default tie-break amplitude (fraction of a pixel), see :func:`pixel_positions`.
TIE_BREAK = 1e-6
#: Seed of the fixed tie-break offset table (numpy PCG64, stable across numpy versions).
TIE_BREAK_SEED = 20_240_531
#: Backends accepted by :func:`cluster_images`.
BACKENDS = ("torch", "fastjet", "auto")


def pixel_positions(tie_break: float = TIE_BREAK, size: int = geometry.PAPER_GRID_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(eta, phi) of the G x G pixel pseudojets of the ``size`` grid, float64, shape (G, G) each.

    Pixel centres, each moved by a fixed offset of at most ``tie_break / 2`` pixel per axis
    (``numpy.random.default_rng(TIE_BREAK_SEED).uniform(-0.5, 0.5, (2, G, G))`` times
    ``tie_break`` pixel sizes). On an exact grid many pixel pairs are exactly equally far
    apart, and sequential clustering then depends on the order in which ties are visited:
    FastJet's own strategies disagree with each other on such events. The offsets (1e-6 pixel
    by default, far below any physics scale) make every distance unique, so every exact
    implementation gives the same jets. ``tie_break=0`` gives the exact centres.
    """
    g = geometry.grid(size)
    eta = np.broadcast_to(g.eta_centres[:, None], g.shape).astype(np.float64)
    phi = np.broadcast_to(g.phi_centres[None, :], g.shape).astype(np.float64)
    if tie_break:
        off = np.random.default_rng(TIE_BREAK_SEED).uniform(-0.5, 0.5, (2, *g.shape))
        eta = eta + tie_break * g.eta_pixel * off[0]
        phi = phi + tie_break * g.phi_pixel * off[1]
    return eta, phi


def pixel_momenta(images: torch.Tensor | np.ndarray, threshold: float = 0.0, tie_break: float = TIE_BREAK,
                  device: str | torch.device | None = None) -> tuple[torch.Tensor, ...]:
    """Pixels with E > ``threshold`` as massless pseudojets: ``(px, py, pz, e, mask, pixel)``.

    ``images``: (B, G, G) energies in GeV. Returns (B, N) float64 four-momenta with
    ``pT = E / cosh(eta)`` at the pixel positions of :func:`pixel_positions`, the (B, N) mask and
    the flat pixel index ``ieta * G + iphi`` of every pseudojet (-1 for padding), pixels in
    row-major order, N the largest count in the batch.
    """
    img = torch.as_tensor(images)
    if device is not None:
        img = img.to(device)
    if img.dim() != 3 or img.shape[1] != img.shape[2] or img.shape[1] not in geometry.GRID_SIZES:
        raise PfgraphError(f"jet clustering expects (B, G, G) images (G one of "
                           f"{', '.join(map(str, geometry.GRID_SIZES))}), got {tuple(img.shape)}")
    dev = img.device
    b = img.shape[0]
    flat = img.reshape(b, -1).to(torch.float64)
    mask = flat > threshold
    counts = mask.sum(1)
    n = int(counts.max()) if b > 0 else 0
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :n]
    e = flat.gather(1, order)
    valid = mask.gather(1, order)
    e = torch.where(valid, e, 0.0)
    eta, phi = pixel_positions(tie_break, int(img.shape[1]))
    cosh = torch.as_tensor(np.cosh(eta).reshape(-1), device=dev)
    sinh = torch.as_tensor(np.sinh(eta).reshape(-1), device=dev)
    cos = torch.as_tensor(np.cos(phi).reshape(-1), device=dev)
    sin = torch.as_tensor(np.sin(phi).reshape(-1), device=dev)
    pt = e / cosh[order]
    px, py, pz = pt * cos[order], pt * sin[order], pt * sinh[order]
    pixel = torch.where(valid, order, -1)
    return px, py, pz, e, valid, pixel


def cluster_fastjet(px: torch.Tensor | np.ndarray, py: torch.Tensor | np.ndarray, pz: torch.Tensor | np.ndarray,
                    e: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray | None = None,
                    radius: float = 0.4) -> Jets:
    """The same as :func:`cluster` with FastJet (anti-kt, E-scheme, multi-event API) on the CPU."""
    import awkward as ak

    from pfgraph.utils.optional import optional_import

    fastjet = optional_import("fastjet")
    if not radius > 0:
        raise PfgraphError(f"anti-kt radius R = {radius}: expected R > 0")
    arrs = [torch.as_tensor(a).detach().to("cpu", torch.float64).numpy() for a in (px, py, pz, e)]
    b, n = arrs[0].shape
    m = np.ones((b, n), bool) if mask is None else torch.as_tensor(mask).cpu().numpy().astype(bool)
    counts = m.sum(1)
    flat = [a[m] for a in arrs]
    events = ak.unflatten(ak.zip({"px": flat[0], "py": flat[1], "pz": flat[2], "E": flat[3]}, with_name="Momentum4D"),
                          counts)
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, float(radius))
    seq = fastjet.ClusterSequence(events, jetdef)
    jets = seq.inclusive_jets()
    cidx = seq.constituent_index()
    n_jets = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    jmax = int(n_jets.max()) if b > 0 else 0
    out = np.zeros((4, b, jmax))
    comps = [ak.to_numpy(ak.flatten(getattr(jets, c))) for c in ("px", "py", "pz", "E")]
    jet_event = np.repeat(np.arange(b), n_jets)
    jet_pos = np.arange(len(jet_event)) - np.repeat(np.cumsum(n_jets) - n_jets, n_jets)
    # pT order within each event (stable)
    pt2 = comps[0] ** 2 + comps[1] ** 2
    order = np.lexsort((jet_pos, -pt2, jet_event))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order)) - np.repeat(np.cumsum(n_jets) - n_jets, n_jets)
    for k in range(4):
        out[k, jet_event, rank] = comps[k]
    # constituents: per jet, indices into the event's compacted input list
    per_jet = ak.num(cidx, axis=2)
    const_flat = ak.to_numpy(ak.flatten(cidx, axis=None)).astype(np.int64)
    jet_of_const = np.repeat(rank, ak.to_numpy(ak.flatten(per_jet)))
    ev_of_const = np.repeat(jet_event, ak.to_numpy(ak.flatten(per_jet)))
    cols = np.flatnonzero(m.reshape(-1))  # positions of real inputs, flattened (b * n)
    starts = np.cumsum(counts) - counts
    const = np.full(b * n, -1, dtype=np.int64)
    const[cols[starts[ev_of_const] + const_flat]] = jet_of_const
    t = [torch.as_tensor(out[k]) for k in range(4)]
    return Jets(*t, torch.as_tensor(n_jets), torch.as_tensor(const.reshape(b, n)))


@dataclass
class ImageJets:
    """Jets of a batch of images plus the pixel of every pseudojet (``pixel``, (B, N), -1 padding)."""

    jets: Jets
    pixel: torch.Tensor
    #: G of the clustered G x G images.
    grid_size: int

    def pixel_jet(self) -> torch.Tensor:
        """(B, G * G) jet index of every pixel (-1: below threshold)."""
        b = self.pixel.shape[0]
        npix = self.grid_size * self.grid_size
        out = torch.full((b, npix + 1), -1, dtype=torch.int64, device=self.pixel.device)
        idx = torch.where(self.pixel >= 0, self.pixel, npix)
        out.scatter_(1, idx, self.jets.constituent_jet.to(self.pixel.device))
        return out[:, :-1]


def resolve_backend(backend: str, device: str | torch.device = "cpu") -> str:
    """``auto`` -> torch on CUDA, FastJet on CPU (torch where FastJet is not installed)."""
    if backend not in BACKENDS:
        raise PfgraphError(f"jet backend '{backend}': expected one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if torch.device(device).type == "cuda":
        return "torch"
    from pfgraph.utils.optional import has_module

    return "fastjet" if has_module("fastjet") else "torch"


def cluster_images(images: torch.Tensor | np.ndarray, radius: float = 0.4, threshold: float = 0.0,
                   backend: str = "auto", device: str | torch.device = "cpu",
                   tie_break: float = TIE_BREAK) -> ImageJets:
    """Anti-kt jets of (B, G, G) energy images: pixels with E > ``threshold`` as pseudojets.

    ``backend``: ``torch`` (this module, on ``device``), ``fastjet`` or ``auto``
    (:func:`resolve_backend`). Both give the same jets; results are on ``device``.
    """
    if not threshold >= 0:
        raise PfgraphError(f"jet threshold {threshold}: expected a non-negative energy in GeV")
    which = resolve_backend(backend, device)
    px, py, pz, e, mask, pixel = pixel_momenta(images, threshold, tie_break, device)
    if which == "torch":
        jets = cluster(px, py, pz, e, mask, radius)
    else:
        jets = cluster_fastjet(px, py, pz, e, mask, radius)
        dev = px.device
        jets = Jets(*(a.to(dev) for a in (jets.px, jets.py, jets.pz, jets.e, jets.n_jets, jets.constituent_jet)))
    return ImageJets(jets, pixel, int(torch.as_tensor(images).shape[1]))
