"""Neural network kinetics (NNK): the on-lattice voxel encoding of a vacancy and its jump paths.

Xing, Rupert, Pan, Cao, Nat. Commun. 15, 3879 (2024). A vacancy and its
neighbourhood (a cutoff ball) become a cubic grid of voxels of edge s = a/2,
each holding a digit: 0 = vacancy or empty, 1..S = species. Every jump path k
(``dbkmc.core.lattice.NN_VECTORS[kind][k]``) gets its own copy of the grid, turned by
a cubic symmetry operation M_k so that the jump vector points along one
reference direction (bcc: +[111]; fcc: +[110]). A plain network maps each
aligned grid to that path's barrier.

Because the lattice is ideal and M_k is a lattice symmetry, voxel m of path k
holds exactly the site at half-coordinate offset ``M_k^T g_m`` from the vacancy
(g_m: the voxel's grid coordinate, in units of a/2), or nothing. The encoder
stores these integer offsets once per lattice; the grids are then integer
gathers from the occupation array (no neighbour search at run time).

Voxel order is the published one: index ``grid**2 * n_y + grid * n_x + n_z``
(y slowest, then x, then z).
"""

from __future__ import annotations

import numpy as np
import torch

from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.core.sampling import VACANCY

REFERENCE_DIRECTION = {"bcc": np.array([1, 1, 1]), "fcc": np.array([1, 1, 0])}
"""Every jump vector is turned onto this direction (units of a/2)."""


# --------------------------------------------------------------------------- alignment

def _rotation_z(x: int, y: int) -> np.ndarray:
    """Rotation about z by theta chosen from the signs of (x, y); it brings (x, y) into x>=0, y>=0.

    x>=0,y>=0: 0; x>=0,y<0: +pi/2; x<0,y>=0: -pi/2; x<0,y<0: pi, with the
    matrix [[cos, -sin], [sin, cos]] acting on (x, y).
    """
    if x >= 0 and y >= 0:
        c, s = 1, 0
    elif x >= 0:
        c, s = 0, 1
    elif y >= 0:
        c, s = 0, -1
    else:
        c, s = -1, 0
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.int64)


_CYCLE_ZXY = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=np.int64)  # (x, y, z) -> (z, x, y)
_CYCLE_YZX = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.int64)  # (x, y, z) -> (y, z, x)


def alignment_operation(kind: str, vector) -> np.ndarray:
    """Integer 3x3 cubic symmetry operation M with ``M @ vector`` on the reference direction.

    bcc (the published recipe): rotate about z by a multiple of pi/2 chosen from
    the signs of (x, y), then mirror z if z < 0; every <111> lands on +[111].
    fcc: a cyclic permutation of the axes first brings the vector's zero
    component to z ((x,0,z) -> (z,x,0); (0,y,z) -> (y,z,0)), then the same
    rotation about z; every <110> lands on +[110].
    """
    v = np.asarray(vector, dtype=np.int64)
    if kind == "bcc":
        m = _rotation_z(int(v[0]), int(v[1]))
        if v[2] < 0:
            m = np.diag([1, 1, -1]) @ m
    elif kind == "fcc":
        if v[2] == 0:
            p = np.eye(3, dtype=np.int64)
        elif v[1] == 0:
            p = _CYCLE_ZXY
        else:
            p = _CYCLE_YZX
        w = p @ v
        m = _rotation_z(int(w[0]), int(w[1])) @ p
    else:
        raise ValueError(f"lattice: unknown kind {kind!r} (fcc or bcc)")
    ref = REFERENCE_DIRECTION[kind]
    if not np.array_equal(m @ v, ref * np.abs(v).max()):
        raise AssertionError(f"alignment of {v.tolist()} failed: got {(m @ v).tolist()}")
    return m


def _is_site_offset(kind: str, h: np.ndarray) -> np.ndarray:
    """Whether integer half-coordinate offsets are lattice vectors of the (infinite) lattice."""
    if kind == "bcc":
        return (h[..., 0] % 2 == h[..., 1] % 2) & (h[..., 1] % 2 == h[..., 2] % 2)
    return h.sum(axis=-1) % 2 == 0


def voxel_coordinates(grid: int) -> np.ndarray:
    """(grid**3, 3) integer grid coordinates (x, y, z) of each voxel, centre 0, published order."""
    c = (grid - 1) // 2
    m = np.arange(grid**3)
    n_y, n_x, n_z = m // grid**2, (m // grid) % grid, m % grid
    return np.stack([n_x - c, n_y - c, n_z - c], axis=1)


class NNKEncoder:
    """Per-path voxel images of vacancies on one lattice, by precomputed integer gathers.

    ``cutoff`` (Angstrom): atoms farther than this from the vacancy are left out
    (their voxels are empty). ``grid``: voxels per axis (odd); by default the
    smallest grid holding every lattice site of the cutoff ball (9 for bcc with
    a = 3.24 A and 7.5 A). Voxel edge s = a/2.

    Periodic images: voxel offsets are taken modulo the supercell, so a ball
    larger than half the box sees the periodic crystal; a voxel that lands back
    on the vacancy's own site is left empty (-1).
    """

    def __init__(self, lattice: Lattice, cutoff: float = 7.5, grid: int | None = None, device="cpu"):
        if not cutoff > 0:
            raise ValueError(f"cutoff: need > 0, got {cutoff}")
        self.lattice = lattice
        self.kind = lattice.kind
        self.cutoff = float(cutoff)
        self.device = torch.device(device)
        reach = int(np.floor(self.cutoff / (lattice.a / 2.0) + 1e-9))
        full = voxel_coordinates(2 * reach + 1)
        inside = self._inside(full)
        needed = 2 * int(np.abs(full[inside]).max()) + 1 if inside.any() else 1
        if grid is None:
            grid = needed
        if grid % 2 != 1:
            raise ValueError(f"grid: need an odd number of voxels per axis, got {grid}")
        if grid < needed:
            raise ValueError(f"grid: {grid} voxels per axis do not cover the {cutoff} A cutoff ball (need {needed})")
        self.grid = int(grid)
        self.n_voxels = self.grid**3
        vecs = NN_VECTORS[self.kind]
        self.z = len(vecs)
        self.operations = np.stack([alignment_operation(self.kind, v) for v in vecs])  # (z, 3, 3)
        g = voxel_coordinates(self.grid)  # (V, 3)
        self.voxel_valid = self._inside(g)  # (V,) same for every path: M_k is orthogonal
        # voxel m of path k holds the site at offset h = M_k^{-1} g = M_k^T g, i.e. h_row = g_row @ M_k
        self.offsets = np.einsum("vi,kij->kvj", g, self.operations)  # (z, V, 3)
        # Gather table: the lattice's (2n)^3 half-coordinate index grid, padded periodically by
        # R = the largest offset component, so a voxel's site is one flat add and one gather.
        m = 2 * lattice.n
        reach_off = int(np.abs(self.offsets[:, self.voxel_valid]).max()) if self.voxel_valid.any() else 0
        ext = m + 2 * reach_off
        wrap = np.mod(np.arange(ext) - reach_off, m)
        padded = lattice.index_grid[np.ix_(wrap, wrap, wrap)]
        off = np.where(self.voxel_valid[None, :, None], self.offsets, 0)  # empty voxels point at the vacancy
        self._ext = ext
        self._reach = reach_off
        self._flat_off = torch.as_tensor((off[..., 0] * ext + off[..., 1]) * ext + off[..., 2],
                                         dtype=torch.long, device=self.device)  # (z, V)
        self._padded = torch.as_tensor(padded.reshape(-1), dtype=torch.long, device=self.device)
        hc = lattice.half_coords + reach_off
        self._base = torch.as_tensor((hc[:, 0] * ext + hc[:, 1]) * ext + hc[:, 2], dtype=torch.long,
                                     device=self.device)  # (n_sites,)

    def _inside(self, g: np.ndarray) -> np.ndarray:
        r2 = (g**2).sum(axis=-1) * (self.lattice.a / 2.0) ** 2
        nonzero = np.abs(g).sum(axis=-1) > 0
        return nonzero & _is_site_offset(self.kind, g) & (r2 <= self.cutoff**2 * (1 + 1e-12))

    def sites(self, vacancies) -> torch.Tensor:
        """Site in each voxel: LongTensor[..., z, n_voxels]; -1 = empty voxel or the vacancy itself."""
        vac = torch.as_tensor(vacancies, dtype=torch.long, device=self.device)
        idx = self._padded[self._base[vac][..., None, None] + self._flat_off]  # (..., z, V)
        return idx.masked_fill(idx == vac[..., None, None], -1)

    def images(self, digits, vacancies, dtype=torch.float32) -> torch.Tensor:
        """Digit of the occupant of every voxel: Tensor[..., n_vac, z, n_voxels].

        ``digits`` (..., n_sites): 0 = vacancy, 1..S = species (see
        :func:`digits_from_occupation`). ``vacancies`` (..., n_vac). Leading dims
        broadcast (e.g. digits (T, n_sites) with vacancies (T, n_vac)).
        """
        d = torch.as_tensor(digits, device=self.device)
        vac = torch.as_tensor(vacancies, dtype=torch.long, device=self.device)
        if d.shape[-1] != self.lattice.n_sites:
            raise ValueError(f"digits: last axis has {d.shape[-1]} sites, the lattice {self.lattice.n_sites}")
        if vac.ndim == 0:
            raise ValueError("vacancies: need at least one axis (..., n_vac)")
        lead = torch.broadcast_shapes(d.shape[:-1], vac.shape[:-1])
        d = d.expand(*lead, d.shape[-1]).reshape(-1, d.shape[-1])
        n_vac = vac.shape[-1]
        vac = vac.expand(*lead, n_vac).reshape(-1, n_vac)
        idx = self.sites(vac)  # (B, n_vac, z, V)
        empty = idx < 0
        got = torch.gather(d, 1, idx.clamp_min(0).reshape(d.shape[0], -1)).reshape(idx.shape)
        got = got.masked_fill(empty, 0).to(dtype)
        return got.reshape(*lead, n_vac, self.z, self.n_voxels)


def digits_from_occupation(occ):
    """Digits from an occupation array: species index i -> i + 1, VACANCY (-1) -> 0."""
    t = torch.as_tensor(occ)
    if torch.any((t < 0) & (t != VACANCY)):
        raise ValueError(f"occupation: negative value other than VACANCY ({VACANCY})")
    return torch.where(t == VACANCY, torch.zeros_like(t), t + 1)
