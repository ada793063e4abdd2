r"""Ideal-lattice AEVs as precomputed tensor contractions of the occupation.

On the ideal lattice, the neighbours of a fingerprint centre (a vacancy site or
a jump midpoint) sit at fixed offsets, so every geometric factor of the ANI
AEV (:mod:`dbkmc.fingerprints`) is a constant of the lattice. With ``e_X[j]``
the one-hot occupation (1 if window site ``j`` holds element X, 0 for another
element or a vacancy):

- radial, a LINEAR map:  ``G^R_m(X) = sum_j e_X[j] R[j, m]`` with
  ``R[j, m] = exp(-eta_R (R_j - R_s,m)^2) f_C(R_j)``;
- angular, a BILINEAR map: with the symmetric pair table ``W[j, k, q]`` (zero
  diagonal; ``q`` runs over ``R_s`` x ``theta_s``),
  ``G^A_q(X, Y) = sum_{j != k} e_X[j] e_Y[k] W[j, k, q]`` for X != Y and half
  of it for X = Y (each unordered neighbour pair once, as ANI does).

:class:`LatticeAEV` builds ``R`` and ``W`` once per lattice and
:class:`~dbkmc.fingerprints.AEVParams` (one table for the Kolmogorov window,
one per jump path for the transition-wise windows), and an integer table that
maps a window's offsets onto site indices. A fingerprint then costs a gather
of the occupation on the window's sites and two matrix products; no neighbour
search. The windows, their canonical order, the jump-midpoint centre, the
excluded centre and the per-path union are exactly those of
:func:`dbkmc.fingerprints.featurize_events`, and the geometric factors come from
the same functions, so both give the same numbers (``tests/test_lattice_aev.py``).

Occupation convention here: species index ``0..S-1`` per site, ``-1`` for a
vacancy (the repository's occupation arrays). Several vacancies are allowed;
each is a hole in every window that contains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dbkmc.fingerprints import AEVParams, _angular_terms, _distances, _lattice_tables, _radial_terms
from dbkmc.lattice import NN_VECTORS, Lattice

_CHUNK_ELEMENTS = 1 << 25  # rough budget of tensor elements per contraction chunk


@dataclass(frozen=True)
class WindowTables:
    """Geometric tables of P window geometries (P = 1 for Kolmogorov, z paths for transition-wise).

    ``offsets`` (P, M, 3): integer offsets (units of a/2) of the window sites
    from the window's anchor site (the vacancy of state A); ``radial`` (P, M,
    n_R); ``ang_index`` (P, M_A): the window slots inside the angular cutoff;
    ``angular`` (P, M_A, M_A * n_A): the pair table W, flattened over (k, q).
    """

    offsets: Tensor
    radial: Tensor
    ang_index: Tensor
    angular: Tensor

    @property
    def n_sites(self) -> int:
        return self.offsets.shape[1]


def _window_tables(offsets: np.ndarray, positions: np.ndarray, p: AEVParams,
                   device: torch.device, dtype: torch.dtype) -> WindowTables:
    """Tables for P geometries: ``offsets`` (P, M, 3) half units, ``positions`` (P, M, 3) Å from the centre."""
    radial, ang_index, angular = [], [], []
    for pos in positions:
        # float64 on the CPU, the same operations as fingerprints._aev_shared, then cast
        rel = torch.as_tensor(pos, dtype=torch.float64)
        d = _distances(rel)
        radial.append(_radial_terms(d, p))
        ang = torch.nonzero(d < p.r_cut_angular).flatten()
        n_ang = len(ang)
        r_a, d_a = rel[ang], d[ang]
        pj, pk = torch.triu_indices(n_ang, n_ang, offset=1)
        w_pairs = _angular_terms(r_a[pj], r_a[pk], d_a[pj], d_a[pk], p)
        w = rel.new_zeros((n_ang, n_ang, p.n_angular))
        w[pj, pk] = w_pairs
        w[pk, pj] = w_pairs
        ang_index.append(ang)
        angular.append(w.reshape(n_ang, n_ang * p.n_angular))
    if len({len(a) for a in ang_index}) != 1:
        raise RuntimeError("lattice_aev: window geometries differ in their number of angular neighbours")
    return WindowTables(
        offsets=torch.as_tensor(np.asarray(offsets), dtype=torch.long, device=device),
        radial=torch.stack(radial).to(device=device, dtype=dtype),
        ang_index=torch.stack(ang_index).to(device),
        angular=torch.stack(angular).to(device=device, dtype=dtype),
    )


class LatticeAEV:
    """Precomputed AEV maps of one lattice: Kolmogorov and transition-wise fingerprints by contraction.

    Args:
        lattice: the periodic supercell.
        params: AEV hyper-parameters.
        n_species: number of elements S (species indices ``0..S-1``).
        device, dtype: where and in which precision the tables live and the
            fingerprints are computed.
    """

    def __init__(self, lattice: Lattice, params: AEVParams, n_species: int, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        if n_species < 1:
            raise ValueError(f"lattice_aev: need n_species >= 1, got {n_species}")
        self.lattice, self.params, self.n_species = lattice, params, int(n_species)
        self.device, self.dtype = torch.device(device), dtype
        tables = _lattice_tables(lattice.kind, lattice.a, params.r_cut)
        self.kol = _window_tables(tables.kol_offsets[None], tables.kol_positions[None], params, self.device, dtype)
        self.tw = _window_tables(tables.tw_offsets, tables.tw_positions, params, self.device, dtype)
        self.jumps = torch.as_tensor(NN_VECTORS[lattice.kind], dtype=torch.long, device=self.device)
        self.half = torch.as_tensor(lattice.half_coords, dtype=torch.long, device=self.device)
        self.grid = torch.as_tensor(lattice._index_grid, dtype=torch.long, device=self.device)
        self.period = 2 * lattice.n
        x, y = torch.triu_indices(self.n_species, self.n_species, device=self.device)
        self._pair_x, self._pair_y = x, y
        self._pair_half = torch.where(x == y, 0.5, 1.0).to(dtype)

    # ---- sizes
    @property
    def dim(self) -> int:
        """Fingerprint length D."""
        return self.params.dim(self.n_species)

    @property
    def z(self) -> int:
        """Number of jump paths (first neighbours)."""
        return self.jumps.shape[0]

    # ---- geometry
    def site_at(self, half: Tensor) -> Tensor:
        """Site indices at integer half-coordinates ``half`` (..., 3), periodic."""
        h = torch.remainder(half, self.period)
        return self.grid[h[..., 0], h[..., 1], h[..., 2]]

    def hop_sites(self, vacancies: Tensor) -> Tensor:
        """(...,) vacancy sites -> (..., z) first-neighbour sites in path order (NN_VECTORS)."""
        return self.site_at(self.half[vacancies].unsqueeze(-2) + self.jumps)

    def kol_sites(self, centres: Tensor) -> Tensor:
        """(...,) centre sites -> (..., M_K) Kolmogorov window sites, canonical order."""
        return self.site_at(self.half[centres].unsqueeze(-2) + self.kol.offsets[0])

    def tw_sites(self, vacancies: Tensor) -> Tensor:
        """(...,) vacancy sites -> (..., z, M_T) transition-wise window sites of every path."""
        return self.site_at(self.half[vacancies][..., None, None, :] + self.tw.offsets)

    # ---- contractions
    def features(self, species: Tensor, tables: WindowTables) -> Tensor:
        """AEVs of windows from the species on their sites.

        ``species``: (P, N, M) element index per window slot (-1 = no atom),
        where P is 1 or the number of geometries of ``tables`` (row p uses
        geometry p). Returns (P, N, D).
        """
        n_geom, n_rows, n_slots = species.shape
        if n_geom != tables.radial.shape[0] or n_slots != tables.n_sites:
            raise ValueError(f"lattice_aev: species shape {tuple(species.shape)} does not fit tables "
                             f"({tables.radial.shape[0]} geometries x {tables.n_sites} sites)")
        s, n_ang = self.n_species, tables.ang_index.shape[1]
        per_row = n_geom * s * (n_ang * tables.angular.shape[2] + n_slots)
        step = max(1, _CHUNK_ELEMENTS // max(per_row, 1))
        classes = torch.arange(s, device=species.device).view(1, 1, s, 1)
        ang = tables.ang_index[:, None, None, :]                                # (P, 1, 1, M_A)
        out = []
        for start in range(0, n_rows, step):
            sp = species[:, start:start + step]
            n = sp.shape[1]
            e = (sp.unsqueeze(2) == classes).to(self.dtype)                    # (P, n, S, M), vacancy/-1 -> 0
            g_r = torch.matmul(e, tables.radial.unsqueeze(1))                   # (P, n, S, n_R)
            e_a = torch.gather(e, 3, ang.expand(-1, n, s, -1))                     # (P, n, S, M_A)
            inner = torch.bmm(e_a.reshape(n_geom, n * s, n_ang), tables.angular)  # (P, n*S, M_A*n_A)
            inner = inner.reshape(n_geom, n, s, n_ang, -1)
            g = torch.einsum("pnxj,pnyjq->pnxyq", e_a, inner)                  # ordered element pairs
            g_a = g[:, :, self._pair_x, self._pair_y] * self._pair_half.view(1, 1, -1, 1)
            out.append(torch.cat([g_r.flatten(2), g_a.flatten(2)], dim=2))
        if not out:
            return species.new_zeros((n_geom, 0, self.dim), dtype=self.dtype)
        return torch.cat(out, dim=1)

    # ---- fingerprints of configurations
    def kolmogorov(self, occupation: Tensor, centres: Tensor) -> Tensor:
        """F^KOL of the vacancies ``centres`` (T, V) in the configurations ``occupation`` (T, n_sites) -> (T, V, D)."""
        t, v = centres.shape
        sites = self.kol_sites(centres)                                         # (T, V, M_K)
        species = _take(occupation, sites)
        return self.features(species.reshape(1, t * v, -1), self.kol)[0].reshape(t, v, -1)

    def jump_fingerprints(self, occupation: Tensor, vacancies: Tensor) -> dict[str, Tensor]:
        """The four fingerprints of every jump of every vacancy.

        ``occupation`` (T, n_sites), species ``0..S-1`` and -1 for vacancies;
        ``vacancies`` (T, V) the vacancy sites of state A. Returns
        ``KOL_A`` (T, V, D), and ``KOL_B``, ``TW_A``, ``TW_B`` (T, V, z, D) for
        the jump along path k (``NN_VECTORS[kind][k]``) of vacancy v; state B
        is A with the vacancy and the atom on the hop site exchanged.
        """
        t, v = vacancies.shape
        z, dim = self.z, self.dim
        hops = self.hop_sites(vacancies)                                        # (T, V, z)
        moving = _take(occupation, hops)                                        # species of the jumping atom
        out = {"KOL_A": self.kolmogorov(occupation, vacancies)}
        # Kolmogorov windows of B: centred on the hop site, in B's occupation
        sites = self.kol_sites(hops)                                            # (T, V, z, M_K)
        spec = _swapped(_take(occupation, sites), sites, vacancies[..., None, None], hops[..., None], moving[..., None])
        out["KOL_B"] = self.features(spec.reshape(1, t * v * z, -1), self.kol)[0].reshape(t, v, z, dim)
        # transition-wise windows (the union of both), one geometry per path
        sites = self.tw_sites(vacancies)                                        # (T, V, z, M_T)
        spec_a = _take(occupation, sites)
        spec_b = _swapped(spec_a, sites, vacancies[..., None, None], hops[..., None], moving[..., None])
        both = torch.stack([spec_a, spec_b]).permute(3, 0, 1, 2, 4).reshape(z, 2 * t * v, -1)
        res = self.features(both, self.tw).reshape(z, 2, t, v, dim).permute(1, 2, 3, 0, 4)
        out["TW_A"], out["TW_B"] = res[0], res[1]
        return out


def _take(occupation: Tensor, sites: Tensor) -> Tensor:
    """occupation (T, n_sites), sites (T, ...) -> (T, ...) species on those sites."""
    t = occupation.shape[0]
    flat = sites.reshape(t, -1)
    return torch.gather(occupation, 1, flat).reshape(sites.shape)


def _swapped(species: Tensor, sites: Tensor, vacancy: Tensor, hop: Tensor, moving: Tensor) -> Tensor:
    """Species of window sites in state B: the vacancy site gets the jumping atom, the hop site is empty."""
    out = torch.where(sites == vacancy, moving, species)
    return torch.where(sites == hop, torch.full_like(species, -1), out)
