"""Per-atom descriptors G_i on the ideal lattice: the lattice form of ANI radial and angular AEVs (M_EXT).

A state is a vector of kMC *digits* (0 = vacancy, 1..S = species index + 1). Each site ``i`` gets

* radial counts: the number of sites of each channel (vacancy, species 1..S) in its neighbour shells
  1..``radial_shells``. A Gaussian radial AEV at the ideal distances is a fixed linear map of them;
* triplet counts: for every ordered pair (j, l) of neighbours of ``i`` within shells 1..``triplet_shells``,
  the count by channel pair (c_j, c_l) and triangle class (shell_ij, shell_il, shell_jl). Pairs are kept
  with shell_ij <= shell_il; in the classes with shell_ij == shell_il both orders are present, so the
  (a, b) and (b, a) columns are equal and only a <= b is kept. An ANI angular AEV is a linear map of these.

The vacancy is a channel of its own (it helps the triplet terms). Shells are the distinct neighbour
distances of the infinite lattice, so the same code serves fcc and bcc.

When the occupations of a vacancy ``v`` and a neighbour ``h`` swap (one jump), only the descriptors of
sites within ``reach_shell`` of ``v`` or ``h`` change: :meth:`SiteDescriptors.window` lists them, so the
energy change of an extensive model E(S) = sum_i eps(G_i) is an exact sum over that window.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import BASIS_HALF, NN_VECTORS, Lattice


def shell_offsets(kind: str, n_shells: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-coordinate offsets of neighbour shells 1..``n_shells`` of the infinite lattice, ordered by
    shell (lexicographic inside a shell), and the 0-based shell of each."""
    basis = BASIS_HALF[kind]
    h = 2 * n_shells + 2
    g = np.array(list(product(range(-h, h + 1), repeat=3)), dtype=np.int64)
    on = np.zeros(len(g), dtype=bool)
    for b in basis:
        on |= np.all(np.mod(g - b, 2) == 0, axis=1)
    g = g[on & (np.abs(g).sum(1) > 0)]
    q = (g**2).sum(1)
    levels = np.unique(q)[:n_shells]
    keep = np.isin(q, levels)
    g, q = g[keep], q[keep]
    order = np.lexsort((g[:, 2], g[:, 1], g[:, 0], q))
    g, q = g[order], q[order]
    return g, np.searchsorted(levels, q)


def triplet_table(kind: str, n_shells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ordered neighbour pairs (m, l) within shells 1..``n_shells`` with shell_m <= shell_l.

    Returns ``(pm, pl, cls, sym)``: the pair's offset indices, its triangle class id, and per class
    whether shell_m == shell_l (species pair unordered there)."""
    offs, shell = shell_offsets(kind, n_shells)
    d2 = ((offs[:, None, :] - offs[None, :, :]) ** 2).sum(-1)
    m, l = np.nonzero((shell[:, None] <= shell[None, :]) & ~np.eye(len(offs), dtype=bool))
    keys = np.stack([shell[m], shell[l], d2[m, l]], 1)
    uniq, cls = np.unique(keys, axis=0, return_inverse=True)
    return m, l, cls.reshape(-1), uniq[:, 0] == uniq[:, 1]


class SiteDescriptors:
    """Radial + triplet shell counts of every site of an ideal lattice (fcc or bcc, any vacancies).

    ``describe(digits, sites)`` gives G for the listed sites; ``window(vacancy, hop)`` the sites whose
    G can change when the two swap. Feature order: radial (shell-major, channel-minor), then triplets
    (class-major, channel pair a <= b in symmetric classes)."""

    def __init__(self, lattice: Lattice, n_species: int, radial_shells: int = 3, triplet_shells: int = 2,
                 device: str | torch.device = "cpu") -> None:
        if radial_shells < 1 or triplet_shells < 0:
            raise ValueError("site descriptors: need radial_shells >= 1 and triplet_shells >= 0")
        self.lattice, self.n_species = lattice, int(n_species)
        self.radial_shells, self.triplet_shells = int(radial_shells), int(triplet_shells)
        self.reach_shell = max(self.radial_shells, self.triplet_shells)
        self.n_channels = c = self.n_species + 1
        self.device = torch.device(device)
        offs, shell = shell_offsets(lattice.kind, self.reach_shell)
        hc = torch.as_tensor(lattice.half_coords, dtype=torch.long, device=self.device)
        self._hc, self._period = hc, 2 * lattice.n
        self._grid = torch.as_tensor(lattice.index_grid, dtype=torch.long, device=self.device)
        radial = shell < self.radial_shells
        self._rad_offsets = torch.as_tensor(offs[radial], device=self.device)
        self._rad_code = torch.as_tensor(shell[radial] * c, device=self.device)
        self.n_radial = self.radial_shells * c
        if self.triplet_shells:
            t_offs, _ = shell_offsets(lattice.kind, self.triplet_shells)
            pm, pl, cls, sym = triplet_table(lattice.kind, self.triplet_shells)
            colmap = np.full((len(sym), c, c), -1, dtype=np.int64)
            col = 0
            for t in range(len(sym)):
                for a in range(c):
                    for b in range(c):
                        if sym[t] and b < a:
                            colmap[t, a, b] = colmap[t, b, a]
                        else:
                            colmap[t, a, b] = col
                            col += 1
            self._tri_offsets = torch.as_tensor(t_offs, device=self.device)
            self._pm = torch.as_tensor(pm, device=self.device)
            self._pl = torch.as_tensor(pl, device=self.device)
            self._tri_base = torch.as_tensor(cls * c * c, device=self.device)
            self._colmap = torch.as_tensor(colmap.reshape(-1), device=self.device)
            self.n_triplet = col
        else:
            self.n_triplet = 0
        self.n_features = self.n_radial + self.n_triplet
        self._window_rel = self._window_offsets(offs)

    def _window_offsets(self, offs: np.ndarray) -> Tensor:
        """(z, M, 3): for each first-neighbour path, the offsets (from v) of the window; v first, h second.

        In a small periodic cell several offsets can land on one site (the descriptors then count the
        periodic images, as the infinite periodic crystal does); the window keeps each site once. The
        lattice is a Bravais lattice, so the offsets found from site 0 serve every site."""
        rel = []
        half = self.lattice.half_coords[0]
        for hv in NN_VECTORS[self.lattice.kind]:
            pts = {tuple(x) for x in -offs} | {tuple(hv - x) for x in offs}
            pts -= {(0, 0, 0), tuple(hv)}
            cand = np.array([(0, 0, 0), tuple(hv)] + sorted(pts), dtype=np.int64)
            _, first = np.unique(self.lattice.site_at(half + cand), return_index=True)
            rel.append(cand[np.sort(first)])
        if len({len(r) for r in rel}) != 1:
            raise ValueError(f"site descriptors: windows of different sizes on a {self.lattice.kind} "
                             f"{self.lattice.n}^3 cell")
        return torch.as_tensor(np.stack(rel), device=self.device)

    @property
    def window_size(self) -> int:
        """M: the number of sites in the window of one jump."""
        return self._window_rel.shape[1]

    def _sites_at(self, half: Tensor) -> Tensor:
        h = torch.remainder(half, self._period)
        return self._grid[h[..., 0], h[..., 1], h[..., 2]]

    def path_of(self, vacancy: Tensor | int, hop: Tensor | int) -> Tensor:
        """First-neighbour path index k with ``hop = vacancy + NN_VECTORS[k]``; an error otherwise."""
        v = torch.as_tensor(vacancy, dtype=torch.long, device=self.device)
        h = torch.as_tensor(hop, dtype=torch.long, device=self.device)
        d = torch.remainder(self._hc[h] - self._hc[v] + self.lattice.n, self._period) - self.lattice.n
        nn = self._window_rel[:, 1]                                       # (z, 3)
        match = (d.unsqueeze(-2) == nn).all(-1)                           # (..., z)
        if not bool(match.any(-1).all()):
            raise ValueError("site descriptors: a hop site is not a first neighbour of its vacancy")
        return match.long().argmax(-1)

    def window(self, vacancy: Tensor | int, hop: Tensor | int) -> Tensor:
        """``LongTensor[..., M]``: the sites whose descriptor can change when ``vacancy`` and ``hop`` swap
        (every site within ``reach_shell`` of either); ``[..., 0]`` is the vacancy, ``[..., 1]`` the hop site."""
        v = torch.as_tensor(vacancy, dtype=torch.long, device=self.device)
        k = self.path_of(v, hop)
        return self._sites_at(self._hc[v].unsqueeze(-2) + self._window_rel[k])

    def path_windows(self, vacancy: Tensor | int) -> Tensor:
        """``LongTensor[..., z, M]``: the window of every first-neighbour path of ``vacancy``."""
        v = torch.as_tensor(vacancy, dtype=torch.long, device=self.device)
        return self._sites_at(self._hc[v][..., None, None, :] + self._window_rel)

    def _channels(self, digits: Tensor, sites: Tensor, offsets: Tensor) -> Tensor:
        """Channel (digit) of every neighbour ``sites + offsets``: [..., M, P]."""
        nb = self._sites_at(self._hc[sites].unsqueeze(-2) + offsets)      # [..., M, P]
        batch = torch.broadcast_shapes(digits.shape[:-1], nb.shape[:-2])
        d = digits.expand(*batch, digits.shape[-1])
        nb = nb.expand(*batch, *nb.shape[-2:])
        return torch.gather(d, -1, nb.reshape(*batch, -1)).reshape(nb.shape)

    def describe(self, digits: Tensor, sites: Tensor | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
        """``Tensor[..., M, D]``: G of ``sites`` [..., M] (default every site) in states ``digits`` [..., n_sites]."""
        digits = torch.as_tensor(digits, device=self.device).long()
        if sites is None:
            sites = torch.arange(self.lattice.n_sites, device=self.device)
        sites = torch.as_tensor(sites, dtype=torch.long, device=self.device)
        c = self.n_channels
        ch = self._channels(digits, sites, self._rad_offsets)
        code = self._rad_code + ch                                        # [..., M, P_r]
        rad = torch.zeros(*code.shape[:-1], self.n_radial, dtype=dtype, device=self.device)
        rad.scatter_add_(-1, code, torch.ones_like(code, dtype=dtype))
        if not self.n_triplet:
            return rad
        ch = self._channels(digits, sites, self._tri_offsets)            # [..., M, P_t]
        col = self._colmap[self._tri_base + ch[..., self._pm] * c + ch[..., self._pl]]
        tri = torch.zeros(*col.shape[:-1], self.n_triplet, dtype=dtype, device=self.device)
        tri.scatter_add_(-1, col, torch.ones_like(col, dtype=dtype))
        return torch.cat([rad, tri], -1)
