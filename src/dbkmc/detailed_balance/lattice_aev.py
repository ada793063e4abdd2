r"""Ideal-lattice AEVs as precomputed tensor contractions of the occupation.

On the ideal lattice, the neighbours of a fingerprint centre (a vacancy site or
a jump midpoint) sit at fixed offsets, so every geometric factor of the ANI
AEV (:mod:`dbkmc.detailed_balance.aev`) is a constant of the lattice. With ``e_X[j]``
the one-hot occupation (1 if window site ``j`` holds element X, 0 for another
element or a vacancy):

- radial, a LINEAR map:  ``G^R_m(X) = sum_j e_X[j] R[j, m]`` with
  ``R[j, m] = exp(-eta_R (R_j - R_s,m)^2) f_C(R_j)``;
- angular, a BILINEAR map: with the symmetric pair table ``W[j, k, q]`` (zero
  diagonal; ``q`` runs over ``R_s`` x ``theta_s``),
  ``G^A_q(X, Y) = sum_{j != k} e_X[j] e_Y[k] W[j, k, q]`` for X != Y and half
  of it for X = Y (each unordered neighbour pair once, as ANI does).

:class:`LatticeAEV` builds ``R`` and ``W`` once per lattice and
:class:`~dbkmc.detailed_balance.aev.AEVParams`: one table for the Kolmogorov window and
one for the transition-wise window. The z jump paths share it: path k's window
is path 0's turned by a cubic symmetry operation, so its slots are listed in
the turned order and distances and angles stay those of path 0. Integer offset
tables map every slot onto a site index. A fingerprint then costs a gather of
the occupation on the window's sites and two matrix products; no neighbour
search. State B of a jump differs from A on two sites only, so its
transition-wise angular map is A's plus a rank-2 update.

The windows (:mod:`dbkmc.detailed_balance.windows`: the jump-midpoint centre,
the excluded centre and the per-path union) are exactly those of
:func:`dbkmc.detailed_balance.fingerprints.featurize_events`, and the geometric
factors come from the same terms (:mod:`dbkmc.detailed_balance.aev.terms`) and
pair table, so both give the same numbers
up to the order of summation (``tests/test_lattice_aev.py``).

Occupation convention: a site holds species ``first_species + X`` for element
X = 0..S-1; any other value is a hole (no atom). With ``first_species=0`` that
is the repository's occupation arrays (``-1`` = vacancy), with ``first_species=1``
the kMC engine's digits (``0`` = vacancy), used as they are. Several vacancies
are allowed; each is a hole in every window that contains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations, product

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.detailed_balance.aev import AEVParams, AngularTerms, RadialTerms, angular_pair_table, distances
from dbkmc.detailed_balance.windows import lattice_windows

_CHUNK_ELEMENTS = 1 << 22  # rough budget of intermediate tensor elements per contraction chunk


def cubic_operations() -> np.ndarray:
    """The 48 integer 3x3 operations of the cubic point group (signed permutation matrices)."""
    ops = []
    for perm in permutations(range(3)):
        for signs in product((1, -1), repeat=3):
            m = np.zeros((3, 3), dtype=np.int64)
            m[np.arange(3), perm] = signs
            ops.append(m)
    return np.stack(ops)


@dataclass(frozen=True)
class WindowTables:
    """One window geometry and where its slots fall for each of P orientations.

    ``offsets`` (P, M, 3): integer offsets (units of a/2) of the window slots
    from the anchor site (the vacancy of state A), one row per orientation
    (P = 1 for the Kolmogorov window, z jump paths for the transition-wise
    one); ``radial`` (M, n_R); ``ang_index`` (M_A,): the slots inside the
    angular cutoff; ``angular`` (M_A, M_A * n_A): the pair table W flattened
    over (k, q).
    """

    offsets: Tensor
    radial: Tensor
    ang_index: Tensor
    angular: Tensor

    @property
    def n_slots(self) -> int:
        return self.offsets.shape[1]


def _window_tables(offsets: np.ndarray, positions: np.ndarray, p: AEVParams,
                   device: torch.device, dtype: torch.dtype) -> WindowTables:
    """Tables of one geometry: ``positions`` (M, 3) Å from the centre; ``offsets`` (P, M, 3) in half units."""
    # float64 on the CPU with the very terms and pair table of aev.aev (shared geometry), then cast
    rel = torch.as_tensor(positions, dtype=torch.float64)
    d = distances(rel)
    ang, w = angular_pair_table(rel, d, AngularTerms.from_params(p))
    return WindowTables(
        offsets=torch.as_tensor(np.asarray(offsets), dtype=torch.long, device=device),
        radial=RadialTerms.from_params(p)(d).to(device=device, dtype=dtype),
        ang_index=ang.to(device),
        angular=w.to(device=device, dtype=dtype),
    )


def _turned_tw_offsets(kind: str, tw_offsets: np.ndarray) -> np.ndarray:
    """Per path k, the transition-wise slots of path 0 turned onto path k (half units, from the vacancy).

    Slot j of path k sits at ``R_k q_j`` from the jump midpoint, where ``q_j``
    is slot j of path 0 and ``R_k`` a cubic operation with ``R_k jump_0 =
    jump_k``. Distances and angles are those of path 0, so one geometric table
    serves every path.
    """
    nn = NN_VECTORS[kind]
    q0 = 2 * tw_offsets[0] - nn[0]                          # quarter units (a/4), from the midpoint
    ops = cubic_operations()
    out = []
    for k, jump in enumerate(nn):
        rot = ops[int(np.flatnonzero((ops @ nn[0] == jump).all(1))[0])]
        qk = q0 @ rot.T
        own = 2 * tw_offsets[k] - jump                     # path k's own window, as a set
        if {tuple(v) for v in qk} != {tuple(v) for v in own}:
            raise RuntimeError(f"lattice_aev: the window of path {k} is not path 0's, turned")
        out.append((qk + jump) // 2)
    return np.stack(out)


class LatticeAEV:
    """Precomputed AEV maps of one lattice: Kolmogorov and transition-wise fingerprints by contraction.

    Args:
        lattice: the periodic supercell.
        params: AEV hyper-parameters.
        n_species: number of elements S.
        device, dtype: where and in which precision the tables live and the
            fingerprints are computed.
        first_species: the occupation code of element 0 (0: occupation arrays
            with -1 for a vacancy; 1: kMC digits with 0 for a vacancy).
    """

    def __init__(self, lattice: Lattice, params: AEVParams, n_species: int, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 first_species: int = 0) -> None:
        if n_species < 1:
            raise ValueError(f"lattice_aev: need n_species >= 1, got {n_species}")
        self.lattice, self.params, self.n_species = lattice, params, int(n_species)
        self.device, self.dtype = torch.device(device), dtype
        tables = lattice_windows(lattice.kind, lattice.a, params.r_cut)
        self.kol = _window_tables(tables.kol_offsets[None], tables.kol_positions, params, self.device, dtype)
        turned = _turned_tw_offsets(lattice.kind, tables.tw_offsets)
        self.tw = _window_tables(turned, tables.tw_positions[0], params, self.device, dtype)
        nn = NN_VECTORS[lattice.kind]
        self.period = 2 * lattice.n
        # slots of the transition-wise window that hold the two jump sites (the same for every path)
        at_jump = [np.flatnonzero((np.mod(turned[k], self.period) == 0).all(1)
                                  | (np.mod(turned[k] - nn[k], self.period) == 0).all(1)) for k in range(len(nn))]
        if any(not np.array_equal(c, at_jump[0]) for c in at_jump):
            raise RuntimeError("lattice_aev: the jump sites fall on different slots for different paths")
        ang = self.tw.ang_index.cpu().numpy()
        self._tw_changed = torch.as_tensor(np.flatnonzero(np.isin(ang, at_jump[0])), device=self.device)
        self._tw_angular_changed = self.tw.angular[self._tw_changed].contiguous()      # W[:, C], the rank update
        self.jumps = torch.as_tensor(nn, dtype=torch.long, device=self.device)
        self.half = torch.as_tensor(lattice.half_coords, dtype=torch.long, device=self.device)
        self.grid = torch.as_tensor(lattice.index_grid, dtype=torch.long, device=self.device)
        x, y = torch.triu_indices(self.n_species, self.n_species, device=self.device)
        self._pair_x, self._pair_y = x, y
        self._pair_half = torch.where(x == y, 0.5, 1.0).to(dtype).view(1, -1, 1)
        self.first_species = int(first_species)
        self._classes = (torch.arange(self.n_species, device=self.device) + self.first_species).view(1, -1, 1)

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
        """(...,) vacancy sites -> (..., z, M_T) transition-wise window sites of every path (turned slot order)."""
        return self.site_at(self.half[vacancies][..., None, None, :] + self.tw.offsets)

    # ---- contractions
    def _onehot(self, species: Tensor) -> Tensor:
        """(N, M) occupation codes -> (N, S, M) element indicator; holes are all zero."""
        return (species.unsqueeze(1) == self._classes).to(self.dtype)

    def _assemble(self, e: Tensor, e_ang: Tensor, inner: Tensor, tables: WindowTables) -> Tensor:
        g_r = e @ tables.radial                                                 # (n, S, n_R)
        g = torch.einsum("nxj,nyjq->nxyq", e_ang, inner)                       # ordered element pairs
        g_a = g[:, self._pair_x, self._pair_y] * self._pair_half
        return torch.cat([g_r.flatten(1), g_a.flatten(1)], dim=1)

    def _inner(self, e_ang: Tensor, tables: WindowTables) -> Tensor:
        n, s, n_ang = e_ang.shape
        return (e_ang.reshape(n * s, n_ang) @ tables.angular).reshape(n, s, n_ang, -1)

    def _step(self, tables: WindowTables) -> int:
        """Windows per chunk: the (S, M_A * n_A) intermediates of A and B stay within the budget."""
        return max(1, _CHUNK_ELEMENTS // (2 * self.n_species * max(1, tables.angular.shape[1])))

    def features(self, species: Tensor, tables: WindowTables) -> Tensor:
        """AEVs (N, D) of N windows of ``tables``' geometry from the occupation codes on their slots (N, M)."""
        if species.dim() != 2 or species.shape[1] != tables.n_slots:
            raise ValueError(f"lattice_aev: species shape {tuple(species.shape)} does not fit "
                             f"a window of {tables.n_slots} slots")
        out = []
        for start in range(0, species.shape[0], self._step(tables)):
            e = self._onehot(species[start:start + self._step(tables)])
            e_ang = e[:, :, tables.ang_index]
            out.append(self._assemble(e, e_ang, self._inner(e_ang, tables), tables))
        return torch.cat(out) if out else torch.zeros((0, self.dim), dtype=self.dtype, device=species.device)

    def _transition_features(self, spec_a: Tensor, spec_b: Tensor) -> tuple[Tensor, Tensor]:
        """TW fingerprints of A and B (N, D) each; B differs from A only on the jump slots.

        B's angular map is A's plus a rank-update on those slots:
        ``W e_B = W e_A + W[:, C] (e_B - e_A)[C]``; A and B then share one assembly.
        """
        tables, changed = self.tw, self._tw_changed
        out = []
        step = self._step(tables)
        for start in range(0, spec_a.shape[0], step):
            a, b = spec_a[start:start + step], spec_b[start:start + step]
            n = a.shape[0]
            e = self._onehot(torch.cat([a, b]))                                     # (2n, S, M): A rows, then B
            ang = e[:, :, tables.ang_index]
            inner_a = self._inner(ang[:n], tables)
            s = e.shape[1]
            delta = (ang[n:, :, changed] - ang[:n, :, changed]).reshape(n * s, -1)
            inner_b = inner_a + (delta @ self._tw_angular_changed).reshape(inner_a.shape)
            out.append(self._assemble(e, ang, torch.cat([inner_a, inner_b]), tables).view(2, n, -1))
        if not out:
            empty = torch.zeros((0, self.dim), dtype=self.dtype, device=spec_a.device)
            return empty, empty
        both = torch.cat(out, 1)
        return both[0], both[1]

    # ---- fingerprints of configurations
    def kolmogorov(self, occupation: Tensor, centres: Tensor) -> Tensor:
        """F^KOL of the vacancies ``centres`` (T, V) in the configurations ``occupation`` (T, n_sites) -> (T, V, D)."""
        t, v = centres.shape
        species = gather_sites(occupation, self.kol_sites(centres))                    # (T, V, M_K)
        return self.features(species.reshape(t * v, -1), self.kol).reshape(t, v, -1)

    def jump_fingerprints(self, occupation: Tensor, vacancies: Tensor) -> dict[str, Tensor]:
        """The four fingerprints of every jump of every vacancy.

        ``occupation`` (T, n_sites) in the codes of ``first_species``;
        ``vacancies`` (T, V) the vacancy sites of state A. Returns
        ``KOL_A`` (T, V, D), and ``KOL_B``, ``TW_A``, ``TW_B`` (T, V, z, D) for
        the jump along path k (``NN_VECTORS[kind][k]``) of vacancy v; state B
        is A with the vacancy and the atom on the hop site exchanged.
        """
        t, v = vacancies.shape
        z, dim = self.z, self.dim
        hops = self.hop_sites(vacancies)                                        # (T, V, z)
        moving = gather_sites(occupation, hops)                                        # species of the jumping atom
        vac_b, hop_b, mov_b = vacancies[..., None, None], hops[..., None], moving[..., None]
        # Kolmogorov windows: A centred on the vacancy, B on each hop site (in B's occupation), one batch
        sites = self.kol_sites(hops)                                            # (T, V, z, M_K)
        spec_b = species_in_b(gather_sites(occupation, sites), sites, vac_b, hop_b, mov_b)
        spec_a = gather_sites(occupation, self.kol_sites(vacancies))                   # (T, V, M_K)
        kol = self.features(torch.cat([spec_a.reshape(t * v, -1), spec_b.reshape(t * v * z, -1)]), self.kol)
        out = {"KOL_A": kol[: t * v].reshape(t, v, dim), "KOL_B": kol[t * v:].reshape(t, v, z, dim)}
        out["TW_A"], out["TW_B"] = self.transition_fingerprints(occupation, vacancies, hops, moving)
        return out

    def transition_fingerprints(self, occupation: Tensor, vacancies: Tensor, hops: Tensor | None = None,
                                moving: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(TW_A, TW_B)``, each (T, V, z, D): the transition-wise fingerprints (windows centred on the jump
        midpoints) of every path of ``vacancies`` (T, V); ``hops``/``moving`` may pass the hop sites and their
        species when the caller has them."""
        t, v = vacancies.shape
        z, dim = self.z, self.dim
        if hops is None:
            hops = self.hop_sites(vacancies)
        if moving is None:
            moving = gather_sites(occupation, hops)
        sites = self.tw_sites(vacancies)                                        # (T, V, z, M_T)
        spec_a = gather_sites(occupation, sites)
        spec_b = species_in_b(spec_a, sites, vacancies[..., None, None], hops[..., None], moving[..., None])
        tw_a, tw_b = self._transition_features(spec_a.reshape(t * v * z, -1), spec_b.reshape(t * v * z, -1))
        return tw_a.reshape(t, v, z, dim), tw_b.reshape(t, v, z, dim)


def gather_sites(occupation: Tensor, sites: Tensor) -> Tensor:
    """occupation (T, n_sites), sites (T, ...) -> (T, ...) species on those sites."""
    t = occupation.shape[0]
    return torch.gather(occupation, 1, sites.reshape(t, -1)).reshape(sites.shape)


def species_in_b(species: Tensor, sites: Tensor, vacancy: Tensor, hop: Tensor, moving: Tensor) -> Tensor:
    """Codes of window sites in state B: the vacancy site gets the jumping atom, the hop site a hole (-1)."""
    out = torch.where(sites == vacancy, moving, species)
    return torch.where(sites == hop, torch.full_like(out, -1), out)
