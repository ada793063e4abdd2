r"""The one-trajectory CPU path of the M_EXT rate model: one kMC step as compiled loops plus the GEMMs.

:class:`ExtensiveRateModel` (:mod:`dbkmc.kmc.rates.extensive_db`) uses :class:`CompiledStep` when it is asked
for the barriers of one vacancy in one trajectory on the CPU, the case of a single long kMC trajectory. The
step is the tensor path's, in the same order and on the same caches (the mirror of the digits, G and eps of
every site), with the index work in :mod:`dbkmc.kmc.rates.extensive_kernels`:

1. write back the path that was taken since the last call (its G(B) and eps(B));
2. compare the digits with the mirror on every site the barriers read, describe afresh (compiled) the sites
   around any other difference and evaluate their site energies;
3. G(B) = G(A) + delta on every window, grouped by species, then one call of each species' network (torch);
4. the transition-wise fingerprints of the z paths (compiled), then the KRA networks (torch).

The caches are numpy views of the model's tensors, so the two paths can alternate (each clears the other's
record of its last call, and the mirror check repairs the rest). The numbers agree with the tensor path up
to the order of float summation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import NN_VECTORS
from dbkmc.kmc.rates import extensive_kernels as kern

if TYPE_CHECKING:
    from dbkmc.kmc.rates.extensive_db import ExtensiveRateModel

_HASH_SEED = 0x517E_2026
"""Seed of the hash words of the site-energy table (fixed: a run is reproducible)."""
SITE_CACHE = 1 << 20
"""Entries of the site-energy table (a power of two; 24 MB)."""


def _np(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


class CompiledStep:
    """Barrier terms of one vacancy of one trajectory, on the CPU (see the module docstring)."""

    def __init__(self, model: ExtensiveRateModel, site_cache: int = SITE_CACHE) -> None:
        if site_cache < 1 or site_cache & (site_cache - 1):
            raise ValueError(f"site_cache: need a power of two, got {site_cache}")
        self.model = model
        lat, desc, hops, aev = model.lattice, model.desc, model.hops, model.aev
        self.hc = np.ascontiguousarray(lat.half_coords, dtype=np.int64)
        self.grid = np.ascontiguousarray(lat.index_grid, dtype=np.int64)
        self.period = 2 * lat.n
        self.n_species = len(model.species)
        self.c = desc.n_channels
        self.z, self.big_m, self.dim = hops.z, desc.window_size, desc.n_features
        # descriptors afresh (SiteDescriptors.describe)
        self.rad_off, self.rad_code = _np(desc._rad_offsets), _np(desc._rad_code)
        if desc.n_triplet:
            self.tri_off, self.pm, self.pl = _np(desc._tri_offsets), _np(desc._pm), _np(desc._pl)
            self.tri_base, self.colmap = _np(desc._tri_base), _np(desc._colmap)
        else:
            self.tri_off = np.zeros((0, 3), np.int64)
            self.pm = self.pl = self.tri_base = self.colmap = np.zeros(0, np.int64)
        # G(B) - G(A) on the windows (HopDescriptors)
        self.win_rel = _np(desc._window_rel)
        self.offsets, self.u_hop = _np(hops._offsets), _np(hops._u_hop)
        self.rad_col, self.rad_v, self.rad_on = _np(hops._rad_col), _np(hops._rad_v), _np(hops._rad_on)
        self.tri_row, self.tri_tbase = _np(hops._tri_row), _np(hops._tri_base)
        self.j_u, self.l_u, self.tri_on = _np(hops._j_u), _np(hops._l_u), _np(hops._tri_on)
        self.hop_colmap = _np(hops._colmap) if desc.n_triplet else np.zeros(0, np.int64)
        self.region, self.ball = _np(model._region), _np(model._ball)
        # transition-wise fingerprints (LatticeAEV)
        tw = aev.tw
        n_a = tw.angular.shape[1] // max(1, tw.angular.shape[0])
        self.tw_off, self.jumps = _np(tw.offsets), np.ascontiguousarray(NN_VECTORS[lat.kind], dtype=np.int64)
        self.tw_radial, self.ang_index = _np(tw.radial), _np(tw.ang_index)
        self.n_a = n_a
        self.w = tw.angular.contiguous()                                    # (M_A, M_A n_A), torch
        self.tw_changed = _np(aev._tw_changed)
        self.w_changed = aev._tw_angular_changed
        self.x_dtype = np.float64 if model.site_energy.dtype == torch.float64 else np.float32
        self.f_dtype = _np(tw.angular).dtype
        self.keys = np.zeros((site_cache, 2), np.uint64)
        self.vals = np.zeros(site_cache, np.float64)
        self.words = np.random.default_rng(_HASH_SEED).integers(0, 2**63, (2, self.dim), dtype=np.uint64) * 2 + 1
        self.counts = np.zeros(self.n_species, np.int64)
        self.changed = np.zeros(len(self.region), np.int64)
        self.around = np.zeros(len(self.region) * len(self.ball), np.int64)
        self.mark = np.zeros(lat.n_sites, np.bool_)
        self.g_new = np.zeros((len(self.around), self.dim), np.float32)
        self.rows_seen = self.rows_evaluated = 0
        self._allocate(1)

    def _allocate(self, t: int) -> None:
        """Buffers for ``t`` trajectories (the windows of the last call stay per trajectory: the write-back)."""
        z, m, d, s, m_a = self.z, self.big_m, self.dim, self.n_species, len(self.ang_index)
        self.n_traj = t
        self.stash = np.full(t, -1, np.int64)
        self.wins = np.zeros((t, z, m), np.int64)
        self.g_b = np.zeros((t, z, m, d), np.float32)
        self.spec_b = np.zeros((t, z, m), np.int64)
        self.eps_a = np.zeros((t, z), np.float64)
        self.eps_b = np.zeros((t, z, m), np.float64)
        self.d_e = np.zeros((t, z), np.float64)
        n = max(t * z * m, len(self.around))
        self.x = np.zeros((n, d), self.x_dtype)
        self.order = np.zeros(n, np.int64)
        self.hashes = np.zeros((n, 2), np.uint64)
        self.slots = np.arange(t * z * m, dtype=np.int64).reshape(t, z * m)
        self.xa, self.xb = np.zeros((t * z, m_a), np.int64), np.zeros((t * z, m_a), np.int64)
        self.e_a = np.zeros((t * z * s, m_a), self.f_dtype)
        self.d_c = np.zeros((t * z * s, len(self.tw_changed)), self.f_dtype)
        dim = self.model.aev.dim
        self.f_a, self.f_b = np.zeros((t * z, dim), self.f_dtype), np.zeros((t * z, dim), self.f_dtype)
        self.x_kra = np.zeros((t * z, 2 * dim), self.f_dtype)

    def forget(self) -> None:
        """Drop the record of the last call (the tensor path ran in between)."""
        self.stash[:] = -1

    def terms(self, digits: Tensor, vacancies: Tensor, rows: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """``(E_KRA, dE)``, each (R, z), of the one vacancy (``vacancies`` (T, 1)) of the trajectories ``rows``
        (default all T) in the states ``digits`` (T, n_sites)."""
        model = self.model
        if model._mirror is None or model._mirror.shape != digits.shape:
            model.reset(digits)
        if self.n_traj != digits.shape[0]:
            self._allocate(digits.shape[0])
        model._stash = None
        rows = np.arange(digits.shape[0], dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        d = digits.numpy()
        vacs = vacancies.numpy()[rows, 0].astype(np.int64)
        mirror, g, eps = model._mirror.numpy(), model._g.numpy(), model._eps.numpy()
        kern.write_back(d, mirror, g, eps, self.wins, self.g_b, self.eps_b, self.stash)
        for t, v in zip(rows.tolist(), vacs.tolist()):
            n = kern.sync_region(d[t], mirror[t], v, self.hc, self.grid, self.period, self.region, self.changed)
            if n:
                self._refresh(mirror[t], g[t], eps[t], n)
        kern.window_inputs(d, rows, vacs, g, eps, self.hc, self.grid, self.period, self.win_rel, self.offsets,
                           self.u_hop, self.rad_col, self.rad_v, self.rad_on, self.tri_row, self.tri_tbase, self.j_u,
                           self.l_u, self.tri_on, self.hop_colmap, self.c, self.wins, self.g_b, self.spec_b,
                           self.eps_a)
        self._site_energies(self.g_b.reshape(-1, self.dim), self.spec_b.reshape(-1), self.slots[rows].reshape(-1),
                            self.eps_b.reshape(-1))
        kern.energy_changes(rows, self.eps_a, self.eps_b, self.d_e)
        self.stash[rows] = vacs
        e_kra = model._kra_energy(torch.from_numpy(self._kra_inputs(d, rows, vacs)))
        d_e = torch.from_numpy(self.d_e[rows]).to(model.dtype)
        return e_kra.view(len(rows), self.z), d_e

    def _kra_inputs(self, d: np.ndarray, rows: np.ndarray, vacs: np.ndarray) -> np.ndarray:
        """``[(TW_A + TW_B)/2, |TW_A - TW_B|/2]`` (R z, 2 D): occupations compiled, the angular map one GEMM,
        B's as A's plus the rank update on the jump slots (as ``LatticeAEV``)."""
        kern.tw_occupations(d, rows, vacs, self.hc, self.grid, self.period, self.tw_off, self.jumps, self.tw_radial,
                            self.ang_index, self.tw_changed, self.n_species, self.xa, self.xb, self.e_a, self.d_c,
                            self.f_a, self.f_b)
        n = len(rows) * self.z
        ns = n * self.n_species
        inner_a = torch.mm(torch.from_numpy(self.e_a[:ns]), self.w)
        inner_b = torch.addmm(inner_a, torch.from_numpy(self.d_c[:ns]), self.w_changed)
        shape = (ns, len(self.ang_index), self.n_a)
        kern.tw_assemble(self.xa[:n], self.xb[:n], inner_a.numpy().reshape(shape), inner_b.numpy().reshape(shape),
                         self.n_species, self.f_a[:n], self.f_b[:n], self.x_kra[:n])
        return self.x_kra[:n]

    def _site_energies(self, rows: np.ndarray, spec: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
        """eps (float64) of the G ``rows`` listed in ``idx`` (digits ``spec``) into ``out``: from the site-energy
        table, the rest by one call of each species' network (then remembered)."""
        n_eval = kern.lookup_rows(rows, spec, idx, self.words, self.keys, self.vals, self.n_species, self.x,
                                  self.order, self.counts, self.hashes, out)
        self.rows_seen += int((spec[idx] > 0).sum())
        if not n_eval:
            return
        self.rows_evaluated += int(n_eval)
        xt = torch.from_numpy(self.x)
        parts, start = [], 0
        for s, c in enumerate(self.counts.tolist()):
            if c:
                parts.append(self.model.site_energy._one(s, xt[start:start + c]))
            start += c
        y = torch.cat(parts).to(torch.float64).numpy()
        kern.store_rows(y, self.order, int(n_eval), self.hashes, self.keys, self.vals, out)

    def _refresh(self, mirror: np.ndarray, g: np.ndarray, eps: np.ndarray, n_changed: int) -> None:
        """G and eps of every site around the ``n_changed`` digits just copied into the mirror, afresh."""
        n = kern.sites_around(self.changed, n_changed, self.hc, self.grid, self.period, self.ball, self.mark,
                              self.around)
        sites = self.around[:n]
        kern.describe(mirror, sites, n, self.hc, self.grid, self.period, self.rad_off, self.rad_code, self.tri_off,
                      self.pm, self.pl, self.tri_base, self.colmap, self.model.desc.n_radial, self.c, self.g_new)
        g[sites] = self.g_new[:n]
        e = np.zeros(n, np.float64)
        self._site_energies(self.g_new[:n], mirror[sites], np.arange(n), e)
        eps[sites] = e
