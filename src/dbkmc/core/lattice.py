"""Ideal cubic lattices (fcc, bcc) as periodic n x n x n supercells.

Sites are stored on an integer grid in units of a/2, so first-neighbour lookup
is exact integer arithmetic. Site ``s`` in conventional cell ``(i, j, k)`` with
basis atom ``b`` has index ``((i * n + j) * n + k) * n_basis + b``.

The first-neighbour vectors are ordered once per lattice kind; path index ``k``
of a jump always means ``NN_VECTORS[kind][k]`` (in units of a/2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import permutations, product

import numpy as np

BASIS_HALF = {
    "fcc": np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [0, 1, 1]]),
    "bcc": np.array([[0, 0, 0], [1, 1, 1]]),
}


def _fcc_vectors() -> np.ndarray:
    vecs = {p for s in product((1, -1), repeat=2) for p in permutations((s[0], s[1], 0))}
    return np.array(sorted(vecs, reverse=True))


def _bcc_vectors() -> np.ndarray:
    return np.array(sorted(product((1, -1), repeat=3), reverse=True))


NN_VECTORS = {"fcc": _fcc_vectors(), "bcc": _bcc_vectors()}
"""First-neighbour vectors in units of a/2: 12 for fcc, 8 for bcc."""

COORDINATION = {kind: len(v) for kind, v in NN_VECTORS.items()}


@dataclass(frozen=True)
class Lattice:
    """An n x n x n periodic supercell of conventional cubic cells."""

    kind: str
    n: int
    a: float

    def __post_init__(self) -> None:
        if self.kind not in BASIS_HALF:
            raise ValueError(f"lattice: unknown kind {self.kind!r} (fcc or bcc)")
        if self.n < 2:
            raise ValueError(f"supercell: need n >= 2, got {self.n}")
        if not self.a > 0:
            raise ValueError(f"lattice parameter: need a > 0, got {self.a}")

    @property
    def n_sites(self) -> int:
        return self.n**3 * len(BASIS_HALF[self.kind])

    @property
    def box(self) -> np.ndarray:
        return np.full(3, self.n * self.a)

    @cached_property
    def half_coords(self) -> np.ndarray:
        """(n_sites, 3) integer coordinates in units of a/2."""
        cells = np.array(list(product(range(self.n), repeat=3))) * 2
        basis = BASIS_HALF[self.kind]
        return (cells[:, None, :] + basis[None, :, :]).reshape(-1, 3)

    @cached_property
    def positions(self) -> np.ndarray:
        """(n_sites, 3) Cartesian positions in Angstrom."""
        return self.half_coords * (self.a / 2.0)

    @cached_property
    def index_grid(self) -> np.ndarray:
        """Site index at each integer half-coordinate of the cell, ``-1`` where no site sits."""
        m = 2 * self.n
        grid = np.full((m, m, m), -1, dtype=np.int64)
        hc = self.half_coords
        grid[hc[:, 0], hc[:, 1], hc[:, 2]] = np.arange(self.n_sites)
        return grid

    def site_at(self, half: np.ndarray) -> np.ndarray:
        """Site indices at integer half-coordinates (periodic)."""
        h = np.mod(np.asarray(half), 2 * self.n)
        idx = self.index_grid[h[..., 0], h[..., 1], h[..., 2]]
        if np.any(idx < 0):
            raise ValueError("half-coordinates do not fall on lattice sites")
        return idx

    @cached_property
    def neighbors(self) -> np.ndarray:
        """(n_sites, z): ``neighbors[s, k]`` is the site at ``s + NN_VECTORS[k]``."""
        vecs = NN_VECTORS[self.kind]
        return self.site_at(self.half_coords[:, None, :] + vecs[None, :, :])

    def jump_vector(self, path: int) -> np.ndarray:
        """Cartesian vector of first-neighbour path ``path`` (Angstrom)."""
        return NN_VECTORS[self.kind][path] * (self.a / 2.0)

    def minimum_image(self, d: np.ndarray) -> np.ndarray:
        box = self.box
        return d - box * np.round(d / box)
