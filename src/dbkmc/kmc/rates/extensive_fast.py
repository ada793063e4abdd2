r"""The compiled CPU path of the M_EXT rate model: one kMC step as compiled loops plus the networks' GEMMs.

:class:`ExtensiveRateModel` (:mod:`dbkmc.kmc.rates.extensive_db`) uses :class:`CompiledStep` on the CPU for the
barriers of one vacancy per trajectory (one long trajectory, or a batch, or the subset of a batch that the
engine's state memo does not know). The step is the tensor path's, on the same caches (the mirror of the
digits, G and eps of every site), with the index work in :mod:`dbkmc.kmc.rates.extensive_kernels`:

1. write back the path that was taken since the last call (G(B) = G(A) + delta in place, its eps(B));
2. compare the digits with the mirror on every site the barriers read; describe afresh the sites around any
   other difference (the engine's memo skips states, other callers edit cells) and evaluate them;
3. dE: the site energies of G(B) on every window. eps is a function of (species, G), and a vacancy that
   wanders meets the same environments again and again (about 85 % of the window sites at 500 K), so a
   direct-mapped table keyed by two 64-bit hashes of (species, G) serves them; only the others' G(B) rows are
   formed and go through the species' networks (torch). The hash of G is a linear sum of random words, so
   that of G(B) follows from the cached hash of G(A) and the jump's delta terms without forming G(B);
4. E_KRA: a function of the digits on the path's transition-wise slots in A and B, so a second table keyed
   by their hash serves the paths seen before; the others get their TW fingerprints (one-hot rows of the
   pair table summed, compiled) and the KRA networks (torch).

Both tables return exactly what the networks gave for that input the first time (two independent 64-bit
hashes: a false match needs a 2^-128 coincidence). The numbers agree with the tensor path up to the order of
float summation (``tests/test_rates_ext_fast.py``); the caches are numpy views of the model's tensors, so the
two paths can alternate (each drops the other's record of its last call; the mirror check repairs the rest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import NN_VECTORS
from dbkmc.detailed_balance.models import KRAModel
from dbkmc.kmc.rates import extensive_kernels as kern
from dbkmc.kmc.rates import transition_kernels as tw_kern

if TYPE_CHECKING:
    from dbkmc.kmc.rates.extensive_db import ExtensiveRateModel

_HASH_SEED = 0x517E_2026
"""Seed of the hash words of the site-energy table (fixed: a run is reproducible)."""
SITE_CACHE = 1 << 20
"""Entries of the site-energy table (a power of two; 24 MB)."""


def _np(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


def _by_slot(slot: np.ndarray, on: np.ndarray, n_slots: int, *columns: np.ndarray
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per path, the terms that are on, sorted by slot: offsets (z, n_slots + 1) and the sorted ``columns``."""
    z, n = slot.shape
    ptr = np.zeros((z, n_slots + 1), np.int64)
    out = [np.zeros_like(col) for col in columns]
    for k in range(z):
        keep = np.flatnonzero(on[k] == 1)
        order = keep[np.argsort(slot[k, keep], kind="stable")]
        ptr[k, 1:] = np.cumsum(np.bincount(slot[k, order], minlength=n_slots))
        for dst, col in zip(out, columns):
            dst[k, :len(order)] = col[k, order]
    return ptr, out


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
        rad_col, tri_row = _np(hops._rad_col), _np(hops._tri_row)       # flat slot * D + column
        self.rad_slot, self.rad_c0 = rad_col // self.dim, rad_col % self.dim
        self.rad_v, self.rad_on = _np(hops._rad_v), _np(hops._rad_on)
        self.tri_slot, self.tri_tbase = tri_row // self.dim, _np(hops._tri_base)
        self.j_u, self.l_u, self.tri_on = _np(hops._j_u), _np(hops._l_u), _np(hops._tri_on)
        self.hop_colmap = _np(hops._colmap) if desc.n_triplet else np.zeros(0, np.int64)
        # the same terms sorted by slot, with per-(path, slot) offsets (G(B) of single slots)
        self.rad_ptr, (self.srad_c0, self.srad_v) = _by_slot(self.rad_slot, self.rad_on, self.big_m,
                                                            self.rad_c0, self.rad_v)
        self.tri_ptr, (self.stri_base, self.sj_u, self.sl_u) = _by_slot(self.tri_slot, self.tri_on, self.big_m,
                                                                        self.tri_tbase, self.j_u, self.l_u)
        self.region, self.ball = _np(model._region), _np(model._ball)
        # transition-wise fingerprints (LatticeAEV)
        tw = aev.tw
        n_a = tw.angular.shape[1] // max(1, tw.angular.shape[0])
        self.tw_off, self.jumps = _np(tw.offsets), np.ascontiguousarray(NN_VECTORS[lat.kind], dtype=np.int64)
        self.tw_radial, self.ang_index = _np(tw.radial), _np(tw.ang_index)
        self.n_a = n_a
        w3 = tw.angular.double().reshape(tw.angular.shape[0], tw.angular.shape[0], n_a)
        self.w3 = _np(w3.to(tw.angular.dtype))                              # (M_A, M_A, n_A), symmetric in i, j
        self.w_col = _np(w3.sum(0).to(tw.angular.dtype))                    # column sums (M_A, n_A)
        self.w_all = _np(w3.sum((0, 1)).to(tw.angular.dtype))               # (n_A,)
        self.x_dtype = np.float64 if model.site_energy.dtype == torch.float64 else np.float32
        self.energy_np_dtype = torch.empty(0, dtype=model.dtype).numpy().dtype
        self.kra_np_dtype = torch.empty(0, dtype=model._kra_energy.dtype).numpy().dtype
        self.f_dtype = _np(tw.angular).dtype
        self.keys = np.zeros((site_cache, 2), np.uint64)
        self.vals = np.zeros(site_cache, np.float64)
        rng = np.random.default_rng(_HASH_SEED)
        self.words = rng.integers(0, 2**63, (2, self.dim), dtype=np.uint64) * 2 + 1
        # E_KRA of the paths seen, keyed by the digits on their transition-wise slots in A and B
        self.kra_keys = np.zeros((site_cache, 2), np.uint64)
        self.kra_vals = np.zeros(site_cache, np.float64)
        self.kra_words = rng.integers(0, 2**63, (2, 2, self.tw_off.shape[1]), dtype=np.uint64) * 2 + 1
        self.paths_seen = self.paths_evaluated = 0
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
        self.all_rows = np.arange(t, dtype=np.int64)
        self.wins = np.zeros((t, z, m), np.int64)
        self.r_b = np.zeros((t, z, m, 2), np.uint64)
        self.hs = np.zeros((t, self.model.lattice.n_sites, 2), np.uint64)
        self.hs_valid = False
        self.spec_b = np.zeros((t, z, m), np.int64)
        self.eps_a = np.zeros((t, z), np.float64)
        self.eps_b = np.zeros((t, z, m), np.float64)
        self.d_e = np.zeros((t, z), np.float64)
        n = max(t * z * m, len(self.around))
        self.x = np.zeros((n, d), self.x_dtype)
        self.order = np.zeros(n, np.int64)
        self.y = np.zeros(n, np.float64)
        self.hashes = np.zeros((n, 2), np.uint64)
        self.slots = np.arange(t * z * m, dtype=np.int64).reshape(t, z * m)
        self.xa, self.xb = np.zeros((t * z, m_a), np.int64), np.zeros((t * z, m_a), np.int64)
        dim = self.model.aev.dim
        self.f_a, self.f_b = np.zeros((t * z, dim), self.f_dtype), np.zeros((t * z, dim), self.f_dtype)
        self.x_kra = np.zeros((t * z, 2 * dim), self.f_dtype)
        self.e_kra = np.zeros(t * z, np.float64)
        self.kra_idx = np.zeros(t * z, np.int64)
        self.kra_hashes = np.zeros((t * z, 2), np.uint64)

    def forget(self) -> None:
        """Drop the record of the last call and the descriptor hashes (the tensor path ran in between)."""
        self.stash[:] = -1
        self.hs_valid = False

    def terms(self, digits: Tensor, vacancies: Tensor, rows: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """``(E_KRA, dE)``, each (R, z), of the one vacancy (``vacancies`` (T, 1)) of the trajectories ``rows``
        (default all T) in the states ``digits`` (T, n_sites), in the KRA and the M_EXT members' dtypes."""
        e_kra, d_e = self._evaluate_rows(digits, vacancies, rows)
        return (torch.from_numpy(e_kra).to(self.model._kra_energy.dtype),
                torch.from_numpy(d_e).to(self.model.dtype))

    def barriers(self, digits: Tensor, vacancies: Tensor, rows: np.ndarray | None = None) -> Tensor:
        """``E_b = E_KRA + dE/2`` (R, 1, z), as :meth:`terms` gives them and in the same precision."""
        e_kra, d_e = self._evaluate_rows(digits, vacancies, rows)
        e_b = e_kra.astype(self.kra_np_dtype) + 0.5 * d_e.astype(self.energy_np_dtype)
        return torch.from_numpy(e_b).view(len(e_b), 1, self.z)

    def _evaluate_rows(self, digits: Tensor, vacancies: Tensor, rows: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(E_KRA, dE) (R, z) float64 of the trajectories ``rows`` (see :meth:`terms`)."""
        model = self.model
        if model._mirror is None or model._mirror.shape != digits.shape:
            model.reset(digits)
        if self.n_traj != digits.shape[0]:
            self._allocate(digits.shape[0])
        model._stash = None
        rows = self.all_rows if rows is None else np.asarray(rows, dtype=np.int64)
        d = digits.numpy()
        vacs = vacancies.numpy()[rows, 0].astype(np.int64)
        mirror, g, eps = model._mirror.numpy(), model._g.numpy(), model._eps.numpy()
        if not self.hs_valid:                             # hash sums of every cached G
            flat = g.reshape(-1, self.dim)
            kern.row_hashes(flat, len(flat), self.words, self.hs.reshape(-1, 2))
            self.hs_valid = True
        kern.write_back(d, mirror, g, self.hs, eps, self.stash, self.wins, self.r_b, self.eps_b, self.hc, self.grid,
                        self.period, self.offsets, self.u_hop, self.rad_slot, self.rad_c0, self.rad_v, self.rad_on,
                        self.tri_slot, self.tri_tbase, self.j_u, self.l_u, self.tri_on, self.hop_colmap, self.c)
        for t, v in zip(rows.tolist(), vacs.tolist()):
            n = kern.sync_region(d[t], mirror[t], v, self.hc, self.grid, self.period, self.region, self.changed)
            if n:
                self._refresh(mirror[t], g[t], self.hs[t], eps[t], n)
        kern.window_keys(d, rows, vacs, self.hs, eps, self.hc, self.grid, self.period, self.win_rel, self.offsets,
                         self.u_hop, self.rad_slot, self.rad_c0, self.rad_v, self.rad_on, self.tri_slot,
                         self.tri_tbase, self.j_u, self.l_u, self.tri_on, self.hop_colmap, self.c, self.words,
                         self.wins, self.spec_b, self.r_b, self.eps_a)
        spec, out, idx = self.spec_b.reshape(-1), self.eps_b.reshape(-1), self.slots[rows].reshape(-1)
        n_eval, occupied = kern.lookup_keys(self.r_b.reshape(-1, 2), spec, idx, self.keys, self.vals,
                                            self.n_species, self.counts, self.hashes, out)
        self.rows_seen += occupied
        if n_eval:
            kern.window_rows(d, rows, vacs, g, self.hc, self.grid, self.period, self.offsets, self.u_hop,
                             self.rad_ptr, self.srad_c0, self.srad_v, self.tri_ptr, self.stri_base, self.sj_u,
                             self.sl_u, self.hop_colmap, self.c, self.n_species, self.wins, self.spec_b, self.hashes,
                             self.counts, self.x, self.order)
            self._evaluate(int(n_eval), out)
        kern.energy_changes(rows, self.eps_a, self.eps_b, self.d_e)
        self.stash[rows] = vacs
        return self._kra_energies(d, rows, vacs).reshape(len(rows), self.z), self.d_e[rows]

    def _kra_energies(self, d: np.ndarray, rows: np.ndarray, vacs: np.ndarray) -> np.ndarray:
        """E_KRA (R z,) of every path: from the E_KRA table, the rest from the KRA networks on
        ``[(TW_A + TW_B)/2, |TW_A - TW_B|/2]`` (occupations, the angular maps as sums of rows of W, B's as A's
        plus the rank update on the jump slots, as ``LatticeAEV``; all compiled)."""
        n = len(rows) * self.z
        out = self.e_kra[:n]
        m = tw_kern.tw_occupations(d, rows, vacs, self.hc, self.grid, self.period, self.tw_off, self.jumps,
                                self.tw_radial, self.ang_index, self.n_species, self.kra_words,
                                self.kra_keys, self.kra_vals, out, self.kra_idx, self.kra_hashes, self.xa, self.xb,
                                self.f_a, self.f_b)
        self.paths_seen += n
        if not m:
            return out
        self.paths_evaluated += m
        tw_kern.tw_features(self.xa, self.xb, m, self.w3, self.w_col, self.w_all, self.n_species, self.f_a, self.f_b,
                         self.x_kra)
        dtype = self.model._kra_energy.dtype      # float64 fingerprints rounded, then combined (ExtensiveRateModel)
        x = KRAModel.symmetric_input(torch.from_numpy(self.f_a[:m]).to(dtype), torch.from_numpy(self.f_b[:m]).to(dtype))
        y = self.model._kra_energy(x).numpy().astype(np.float64)
        kern.store_rows(y, self.kra_idx, m, self.kra_hashes, self.kra_keys, self.kra_vals, out)
        return out

    def _evaluate(self, n_eval: int, out: np.ndarray) -> None:
        """eps of the first ``n_eval`` rows of ``self.x`` (grouped by species, ``self.counts``) by one call of each
        species' network, into ``out`` (at ``self.order``) and into the site-energy table."""
        self.rows_evaluated += n_eval
        xt = torch.from_numpy(self.x)
        y = self.y[:n_eval]
        start = 0
        for s, c in enumerate(self.counts.tolist()):
            if c:
                y[start:start + c] = self.model.site_energy._one(s, xt[start:start + c]).numpy()
            start += c
        kern.store_rows(y, self.order, n_eval, self.hashes, self.keys, self.vals, out)

    def _refresh(self, mirror: np.ndarray, g: np.ndarray, hs: np.ndarray, eps: np.ndarray, n_changed: int) -> None:
        """G, its hash sums and eps of every site around the ``n_changed`` digits just copied into the mirror,
        afresh."""
        n = kern.sites_around(self.changed, n_changed, self.hc, self.grid, self.period, self.ball, self.mark,
                              self.around)
        sites = self.around[:n]
        kern.describe(mirror, sites, n, self.hc, self.grid, self.period, self.rad_off, self.rad_code, self.tri_off,
                      self.pm, self.pl, self.tri_base, self.colmap, self.model.desc.n_radial, self.c, self.g_new)
        g[sites] = self.g_new[:n]
        r = np.zeros((n, 2), np.uint64)
        kern.row_hashes(self.g_new, n, self.words, r)
        hs[sites] = r
        e = np.zeros(n, np.float64)
        spec, idx = mirror[sites], np.arange(n)
        n_eval, occupied = kern.lookup_keys(r, spec, idx, self.keys, self.vals, self.n_species, self.counts,
                                            self.hashes, e)
        self.rows_seen += occupied
        if n_eval:
            kern.gather_rows(self.g_new, spec, idx, self.hashes, self.counts, self.n_species, self.x, self.order)
            self._evaluate(int(n_eval), e)
        eps[sites] = e
