"""Fixed neighbourhoods ("stencils") of lattice sites, gathered by one integer index.

A stencil is a list of integer half-coordinate offsets (units of a/2). For a site
``v`` the stencil sites are the sites at ``half_coords[v] + offset`` (periodic). On
an ideal lattice they come from a periodically padded index grid: with the grid
flattened, site ``v`` sits at flat position ``P[v]`` and offset ``o`` at the fixed
shift ``S[o]``, so ``sites = G[P[v] + S]`` -- three tensor operations per lookup,
whatever the cell size, and memory linear in the number of sites.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import BASIS_HALF, Lattice


def ball_offsets(lattice: Lattice, radius: float, include_centre: bool = False, *, nearest_first: bool = False,
                 periodic: bool = False, rtol: float = 1e-12) -> np.ndarray:
    """Half-coordinate offsets (units of a/2) of the lattice sites within ``radius`` (Angstrom) of a site.

    By default every vector of the infinite lattice with ``|r|**2 <= radius**2 (1 + rtol)``,
    in lexicographic order, the centre left out unless ``include_centre``.
    ``nearest_first`` sorts them by length (stable: lexicographic among equal lengths).
    ``periodic`` keeps one offset per distinct site of the periodic cell (the first met in
    that order) and, without ``include_centre``, leaves out every periodic image of the centre.
    """
    half = lattice.a / 2.0
    h = int(np.ceil(radius * np.sqrt(1.0 + rtol) / half)) + 1
    rng = range(-h, h + 1)
    g = np.array(list(product(rng, rng, rng)), dtype=np.int64)
    on = np.zeros(len(g), dtype=bool)
    for b in BASIS_HALF[lattice.kind]:
        on |= np.all(np.mod(g - b, 2) == 0, axis=1)
    r2 = (g**2).sum(1) * half**2
    keep = on & (r2 <= radius**2 * (1 + rtol))
    if not include_centre:
        keep &= np.abs(g).sum(1) > 0
    g = g[keep]
    if nearest_first:
        g = g[np.argsort((g**2).sum(1), kind="stable")]
    if periodic:
        period = 2 * lattice.n
        _, first = np.unique(np.mod(g, period), axis=0, return_index=True)
        g = g[np.sort(first)]
        if not include_centre:
            g = g[np.any(np.mod(g, period) != 0, axis=1)]
    return g


class Stencil:
    """Sites at fixed half-coordinate offsets from any site, by a padded-grid gather."""

    def __init__(self, lattice: Lattice, offsets: np.ndarray, device: str | torch.device = "cpu") -> None:
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 3)
        self.lattice = lattice
        self.offsets = offsets
        self.size = len(offsets)
        m = 2 * lattice.n
        pad = int(np.abs(offsets).max()) if len(offsets) else 0
        big = m + 2 * pad
        coords = np.arange(big) - pad  # padded coordinate -> periodic coordinate
        c = np.mod(coords, m)
        grid = lattice.index_grid[np.ix_(c, c, c)]  # (big, big, big), -1 off-lattice
        hc = lattice.half_coords + pad
        self._grid = torch.as_tensor(grid.reshape(-1), dtype=torch.long, device=device)
        self._pos = torch.as_tensor((hc[:, 0] * big + hc[:, 1]) * big + hc[:, 2], dtype=torch.long, device=device)
        shift = (offsets[:, 0] * big + offsets[:, 1]) * big + offsets[:, 2]
        self._shift = torch.as_tensor(shift, dtype=torch.long, device=device)
        if len(offsets) and (grid.reshape(-1)[(hc[:1, 0] * big + hc[:1, 1]) * big + hc[:1, 2] + shift] < 0).any():
            raise ValueError("stencil: an offset does not lead to a lattice site")

    @property
    def grid(self) -> Tensor:
        """``G``: the flattened, periodically padded index grid (site index, -1 off-lattice)."""
        return self._grid

    @property
    def grid_positions(self) -> Tensor:
        """``P``: the flat position of every site in :attr:`grid`."""
        return self._pos

    @property
    def grid_shifts(self) -> Tensor:
        """``S``: the flat shift of every offset, so the stencil sites of ``v`` are ``grid[P[v] + S]``."""
        return self._shift

    def sites(self, centres: Tensor) -> Tensor:
        """``LongTensor[..., L]``: the stencil sites of each centre site."""
        return self._grid[self._pos[centres].unsqueeze(-1) + self._shift]
