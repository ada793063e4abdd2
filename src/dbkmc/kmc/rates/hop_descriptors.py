r"""Descriptors G_i of the window sites after a hop, as an incremental update of the current ones (M_EXT kMC).

When a vacancy ``v`` and the atom on its neighbour ``h`` swap, the descriptor
(:class:`dbkmc.detailed_balance.site_descriptors.SiteDescriptors`) of a window site ``i`` changes only in
the terms that involve ``v`` or ``h``:

* radial counts: the shell of ``i`` holding ``v`` loses a vacancy and gains the jumping species, the shell
  holding ``h`` the reverse;
* triplet counts: every ordered neighbour pair (j, l) of ``i`` with ``j`` or ``l`` in {v, h} moves from the
  column of its channels in A to the column of its channels in B (the partner's channel is read from the
  state; it does not change).

So ``G_i(B) = G_i(A) + delta`` with ``delta`` a scatter of +-1 over at most a few dozen terms per site.
The terms depend only on the path ``k`` and the window slot, not on where ``v`` is: they are integer
tables built once per lattice (:class:`HopDescriptors`). Everything is tensor code (CPU or CUDA).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import NN_VECTORS
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors, shell_offsets, triplet_table


def triplet_columns(n_classes_sym: np.ndarray, n_channels: int) -> np.ndarray:
    """(classes, c, c) -> triplet column, the layout of ``SiteDescriptors`` (class-major, a <= b where symmetric)."""
    c = n_channels
    colmap = np.full((len(n_classes_sym), c, c), -1, dtype=np.int64)
    col = 0
    for t, sym in enumerate(n_classes_sym):
        for a in range(c):
            for b in range(c):
                if sym and b < a:
                    colmap[t, a, b] = colmap[t, b, a]
                else:
                    colmap[t, a, b] = col
                    col += 1
    return colmap


class HopDescriptors:
    """Integer tables for ``G(B) - G(A)`` on the window of every first-neighbour path (see the module docstring).

    ``descriptors``: the lattice's :class:`SiteDescriptors`; windows are its ``path_windows``.
    """

    def __init__(self, descriptors: SiteDescriptors) -> None:
        self.desc = desc = descriptors
        lat = desc.lattice
        self.device = desc.device
        self.z = len(NN_VECTORS[lat.kind])
        self.n_features = desc.n_features
        self.c = c = desc.n_channels
        n = lat.n
        hc = np.asarray(lat.half_coords, dtype=np.int64)
        self._hc = torch.as_tensor(hc, device=self.device)
        self._grid = torch.as_tensor(lat.index_grid, dtype=torch.long, device=self.device)
        self._period = 2 * n
        win = desc.path_windows(torch.tensor(0, device=self.device)).cpu().numpy()           # (z, M)
        rel = np.mod(hc[win] - hc[0] + n, 2 * n) - n                                          # (z, M, 3) from v
        self.window_size = rel.shape[1]
        nn = NN_VECTORS[lat.kind]
        rad_offs, rad_shell = shell_offsets(lat.kind, desc.radial_shells)
        rad_entries: list[list[tuple[int, int, int]]] = []        # per path: (slot, column of the vacancy, is_v)
        tri_entries: list[list[tuple]] = []
        if desc.triplet_shells:
            t_offs, _ = shell_offsets(lat.kind, desc.triplet_shells)
            pm, pl, cls, sym = triplet_table(lat.kind, desc.triplet_shells)
            colmap = triplet_columns(sym, c)
            self._colmap = torch.as_tensor(colmap.reshape(-1) + desc.n_radial, device=self.device)
        for k in range(self.z):
            hv = nn[k]
            rad_k, tri_k = [], []
            for r, x in enumerate(rel[k]):
                for who, target in ((1, np.zeros(3, np.int64)), (0, hv)):
                    hit = np.flatnonzero((rad_offs == target - x).all(1))
                    if len(hit):
                        rad_k.append((r, int(rad_shell[hit[0]]) * c, who))
                if desc.triplet_shells:
                    j_rel, l_rel = x + t_offs[pm], x + t_offs[pl]                            # (P, 3) from v
                    flags = [(j_rel == 0).all(1), (j_rel == hv).all(1), (l_rel == 0).all(1), (l_rel == hv).all(1)]
                    for p in np.flatnonzero(flags[0] | flags[1] | flags[2] | flags[3]):
                        tri_k.append((r, int(cls[p]) * c * c, *j_rel[p], *l_rel[p], *(int(f[p]) for f in flags)))
            rad_entries.append(rad_k)
            tri_entries.append(tri_k)
        self._compile(rad_entries, tri_entries, nn)
        self._check_cell()

    def _check_cell(self) -> None:
        """The tables identify window sites by their offsets from the vacancy. In a cell so small that a window
        reads a periodic image of one of its own sites, that identification fails: compare G(A) + delta with G(B)
        described afresh on one random state and refuse such a cell, naming the size that works."""
        lat, desc = self.desc.lattice, self.desc
        rng = np.random.default_rng(0)
        digits = torch.as_tensor(rng.integers(1, desc.n_species + 1, lat.n_sites), device=self.device)
        digits[0] = 0
        vac = torch.zeros(1, 1, dtype=torch.long, device=self.device)
        win = desc.path_windows(vac)[0, 0]                                                   # (z, M)
        after = digits.repeat(self.z, 1)
        rows = torch.arange(self.z, device=self.device)
        after[rows, 0], after[rows, win[:, 1]] = digits[win[:, 1]], 0
        g_a = desc.describe(digits, win)
        g_b = desc.describe(after.unsqueeze(1), win.unsqueeze(1)).squeeze(1)
        try:
            exact = torch.equal(g_a + self.delta(digits[None], vac, g_a.dtype)[0, 0], g_b)
        except RuntimeError:                 # an offset table that runs past the window: the same failure
            exact = False
        if not exact:
            raise ValueError(f"structure.n: a {lat.kind} {lat.n}x{lat.n}x{lat.n} cell is too small for the M_EXT "
                             f"rate model (its descriptors reach shell {desc.reach_shell}, and a jump's window "
                             f"reads periodic images of its own sites); use a larger cell")

    def _compile(self, rad_entries: list[list[tuple]], tri_entries: list[list[tuple]], nn: np.ndarray) -> None:
        """Flat index tables: every term is one +-1 at (slot, column); the channels it reads are looked up
        among the distinct offsets U (from v) that any term reads (v first)."""
        dim, big_m, c = self.n_features, self.window_size, self.c
        sink = big_m * dim
        offsets = {(0, 0, 0): 0}
        for k in range(self.z):
            offsets.setdefault(tuple(int(x) for x in nn[k]), len(offsets))
        for rows in tri_entries:
            for e in rows:
                offsets.setdefault(tuple(e[2:5]), len(offsets))
                offsets.setdefault(tuple(e[5:8]), len(offsets))
        self._offsets = torch.as_tensor(np.array(list(offsets), dtype=np.int64), device=self.device)   # (U, 3)
        self._u_hop = torch.as_tensor([offsets[tuple(int(x) for x in nn[k])] for k in range(self.z)],
                                      device=self.device)
        n_r = max(len(r) for r in rad_entries)
        rad_col = np.full((self.z, n_r), sink, dtype=np.int64)
        rad_v = np.zeros((self.z, n_r), dtype=np.int64)
        for k, rows in enumerate(rad_entries):
            for i, (slot, col, is_v) in enumerate(rows):
                rad_col[k, i], rad_v[k, i] = slot * dim + col, is_v
        rad_on = (rad_col < sink).astype(np.int64)
        n_t = max((len(r) for r in tri_entries), default=0)
        tri_row = np.full((self.z, n_t), sink, dtype=np.int64)
        tri_base = np.zeros((self.z, n_t), dtype=np.int64)
        j_u = np.zeros((self.z, n_t), dtype=np.int64)
        l_u = np.zeros((self.z, n_t), dtype=np.int64)
        for k, rows in enumerate(tri_entries):
            for i, e in enumerate(rows):
                tri_row[k, i], tri_base[k, i] = e[0] * dim, e[1]
                j_u[k, i], l_u[k, i] = offsets[tuple(e[2:5])], offsets[tuple(e[5:8])]
        tri_on = (tri_row < sink).astype(np.int64)
        as_t = lambda x: torch.as_tensor(x, device=self.device)  # noqa: E731
        self._rad_col, self._rad_v, self._rad_on = as_t(rad_col), as_t(rad_v), as_t(rad_on)
        self._tri_row, self._tri_base, self._j_u, self._l_u = as_t(tri_row), as_t(tri_base), as_t(j_u), as_t(l_u)
        self._tri_sink = as_t(np.where(tri_on == 1, 0, sink))
        self._tri_on = as_t(tri_on)
        self._signs = as_t(np.concatenate([rad_on, -rad_on, tri_on, -tri_on], 1))            # (z, 2 E_r + 2 E_t)

    def _sites_at(self, half: Tensor) -> Tensor:
        h = torch.remainder(half, self._period)
        return self._grid[h[..., 0], h[..., 1], h[..., 2]]

    def delta(self, digits: Tensor, vacancies: Tensor, dtype: torch.dtype) -> Tensor:
        """``G(B) - G(A)`` ``[T, m, z, M, D]`` on the window of every path of ``vacancies`` ``[T, m]``.

        ``digits`` ``[T, n_sites]`` is state A (0 = vacancy); B swaps the vacancy and its k-th neighbour."""
        t, m = vacancies.shape
        z, big_m, dim, c = self.z, self.window_size, self.n_features, self.c
        sites = self._sites_at(self._hc[vacancies].unsqueeze(-2) + self._offsets)               # (T, m, U)
        ch_a = torch.gather(digits, 1, sites.reshape(t, -1)).view(t, m, 1, -1)
        moving = ch_a[..., self._u_hop].view(t, m, z, 1)                                     # the jumping species
        ch_b = ch_a.expand(t, m, z, -1).clone()
        ch_b[..., 0] = moving[..., 0]
        ch_b.scatter_(-1, self._u_hop.view(1, 1, z, 1).expand(t, m, z, 1), 0)
        # radial: the shell holding v gains the jumping species and loses a vacancy; the one holding h the reverse
        gain = self._rad_col + self._rad_v * moving
        loss = self._rad_col + (1 - self._rad_v) * moving
        parts = [gain, loss]
        if self.desc.triplet_shells:
            ch_a = ch_a.expand(t, m, z, -1)
            j_u, l_u = (u.expand(t, m, z, -1) for u in (self._j_u, self._l_u))
            code_a = self._tri_base + torch.gather(ch_a, -1, j_u) * c + torch.gather(ch_a, -1, l_u)
            code_b = self._tri_base + torch.gather(ch_b, -1, j_u) * c + torch.gather(ch_b, -1, l_u)
            parts += [self._tri_row + self._colmap[code_b] * self._tri_on + self._tri_sink,
                      self._tri_row + self._colmap[code_a] * self._tri_on + self._tri_sink]
        index = torch.cat(parts, -1)
        out = torch.zeros(t, m, z, big_m * dim + 1, dtype=dtype, device=self.device)        # +1: a sink for padding
        out.scatter_add_(-1, index, self._signs.to(dtype).expand(t, m, z, -1))
        return out[..., :-1].view(t, m, z, big_m, dim)
