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
        self._rad = self._pad(rad_entries, 3)                       # (z, E_r, 3): slot, shell column, is_v
        self._tri = self._pad(tri_entries, 12) if desc.triplet_shells else None
        # (z, E_t, 12): slot, class base, j offset (3), l offset (3), j is v, j is h, l is v, l is h

    def _pad(self, entries: list[list[tuple]], width: int) -> Tensor:
        """Per-path entry lists -> (z, E, width) with the slot of padded rows set to -1."""
        e = max(len(x) for x in entries)
        out = np.zeros((self.z, e, width), dtype=np.int64)
        out[:, :, 0] = -1
        for k, rows in enumerate(entries):
            if rows:
                out[k, : len(rows)] = np.asarray(rows, dtype=np.int64)
        return torch.as_tensor(out, device=self.device)

    def _sites_at(self, half: Tensor) -> Tensor:
        h = torch.remainder(half, self._period)
        return self._grid[h[..., 0], h[..., 1], h[..., 2]]

    def delta(self, digits: Tensor, vacancies: Tensor, dtype: torch.dtype) -> Tensor:
        """``G(B) - G(A)`` ``[T, m, z, M, D]`` on the window of every path of ``vacancies`` ``[T, m]``.

        ``digits`` ``[T, n_sites]`` is state A (0 = vacancy); B swaps the vacancy and its k-th neighbour."""
        t, m = vacancies.shape
        z, big_m, dim = self.z, self.window_size, self.n_features
        hop_sites = self._sites_at(self._hc[vacancies].unsqueeze(-2) + torch.as_tensor(
            NN_VECTORS[self.desc.lattice.kind], device=self.device))                           # (T, m, z)
        moving = torch.gather(digits, 1, hop_sites.reshape(t, -1)).reshape(t, m, z, 1)      # species that jumps
        out = torch.zeros(t, m, z, big_m * dim + 1, dtype=dtype, device=self.device)      # +1: a sink for padding
        # radial: the shell holding v gains the jumping species and loses a vacancy; the one holding h the reverse
        slot, col, is_v = self._rad[..., 0], self._rad[..., 1], self._rad[..., 2]
        base = torch.where(slot >= 0, slot * dim + col, big_m * dim).expand(t, m, z, -1)
        gain = base + torch.where(is_v == 1, moving, torch.zeros_like(moving))
        loss = base + torch.where(is_v == 1, torch.zeros_like(moving), moving)
        ones = torch.where(slot >= 0, 1.0, 0.0).to(dtype).expand(t, m, z, -1)
        out.scatter_add_(-1, gain, ones).scatter_add_(-1, loss, -ones)
        if self._tri is not None:
            tri = self._tri
            slot = tri[..., 0]
            v_half = self._hc[vacancies][:, :, None, None, :]                                  # (T, m, 1, 1, 3)
            ch_j = torch.gather(digits, 1, self._sites_at(v_half + tri[..., 2:5]).reshape(t, -1)).view(t, m, z, -1)
            ch_l = torch.gather(digits, 1, self._sites_at(v_half + tri[..., 5:8]).reshape(t, -1)).view(t, m, z, -1)
            jv, jh, lv, lh = (tri[..., i].bool() for i in range(8, 12))
            b_j = torch.where(jv, moving, torch.where(jh, 0, ch_j))
            b_l = torch.where(lv, moving, torch.where(lh, 0, ch_l))
            c = self.c
            sink = torch.full_like(ch_j, big_m * dim)
            valid = (slot >= 0).expand_as(ch_j)
            row = (slot * dim).expand_as(ch_j)
            col_a = torch.where(valid, row + self._colmap[tri[..., 1] + ch_j * c + ch_l], sink)
            col_b = torch.where(valid, row + self._colmap[tri[..., 1] + b_j * c + b_l], sink)
            ones = valid.to(dtype)
            out.scatter_add_(-1, col_b, ones).scatter_add_(-1, col_a, -ones)
        return out[..., :-1].view(t, m, z, big_m, dim)
