"""The fingerprint windows of the ideal lattice: which sites a Kolmogorov or transition-wise fingerprint sees.

- Kolmogorov window: the lattice sites within ``r_cut`` of a vacancy, the
  vacancy itself excluded, centred on the vacancy.
- Transition-wise window of jump path k: the union of the sites within
  ``r_cut`` of either end of the jump, centred on the jump midpoint; union
  sites farther than ``r_cut`` from the midpoint are dropped (their ``f_C`` is 0).

Neighbours are listed in a canonical order of their offsets from the centre
(by length, then x, y, z), so a jump and its reverse list the same positions in
the same order. Offsets are integer multiples of a/2 (half units) from the
vacancy of state A; periodic images follow from taking them modulo the supercell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dbkmc.core.lattice import BASIS_HALF, NN_VECTORS


def canonical_order(v: np.ndarray) -> np.ndarray:
    """Rows sorted by (|v|^2, v_x, v_y, v_z): the canonical neighbour order."""
    return v[np.lexsort((v[:, 2], v[:, 1], v[:, 0], (v * v).sum(1)))]


@dataclass(frozen=True)
class LatticeWindows:
    """Neighbour offsets of one lattice (kind, a, r_cut), in integer half-lattice units."""

    kol_offsets: np.ndarray    # (M_K, 3): sites within r_cut of a vacancy, centre excluded
    kol_positions: np.ndarray  # (M_K, 3) Angstrom, relative to the vacancy
    tw_offsets: np.ndarray     # (z, M_T, 3): per path, from vacancy_site; union ∩ ball(midpoint, r_cut)
    tw_positions: np.ndarray   # (z, M_T, 3) Angstrom, relative to the jump midpoint
    tw_group: np.ndarray       # (z,): min(path, reverse path); both share tw_positions


@lru_cache(maxsize=64)
def lattice_windows(kind: str, a: float, r_cut: float) -> LatticeWindows:
    """The Kolmogorov and transition-wise windows of an fcc or bcc lattice of parameter ``a`` (cached)."""
    h = a / 2.0
    c = int(math.ceil(r_cut / h)) + 2
    g = np.arange(-c, c + 1)
    cube = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    parities = {tuple(b % 2) for b in BASIS_HALF[kind]}
    vecs = cube[[tuple(v) in parities for v in cube % 2]]     # all lattice vectors in the cube
    rc2 = r_cut * r_cut
    r2 = (vecs * vecs).sum(1) * (h * h)
    kol = canonical_order(vecs[(r2 <= rc2) & (r2 > 0)])
    nn = NN_VECTORS[kind]
    offsets, quarter = [], []
    for jump in nn:
        union = vecs[(r2 <= rc2) | (((vecs - jump) ** 2).sum(1) * (h * h) <= rc2)]
        q = 2 * union - jump                                  # offset from the midpoint, units of a/4
        q = canonical_order(q[(q * q).sum(1) * (a / 4.0) ** 2 <= rc2])  # beyond r_cut: f_C = 0
        quarter.append(q)
        offsets.append((q + jump) // 2)
    if len({len(q) for q in quarter}) != 1:
        raise RuntimeError("fingerprints: jump paths have different neighbour counts")
    reverse = np.array([int(np.flatnonzero((nn == -j).all(1))[0]) for j in nn])
    group = np.minimum(np.arange(len(nn)), reverse)
    for k, r in enumerate(reverse):
        assert np.array_equal(quarter[k], quarter[r]), "reverse jumps must share the midpoint table"
    return LatticeWindows(kol, kol * h, np.stack(offsets), np.stack(quarter) * (a / 4.0), group)
