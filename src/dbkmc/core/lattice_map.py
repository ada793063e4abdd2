"""Atoms on the ideal sites of a cubic supercell, vacancies allowed: positions -> kMC digits.

The structure is an orthogonal cubic box holding ``n_atoms`` atoms on the sites of an n x n x n fcc or
bcc supercell; every site without an atom is a vacancy. n is the smallest supercell with at least
``n_atoms`` sites, a = box edge / n. The lattice may be translated in the box (measured from the first
atom). Every atom must sit within ``tol`` of a distinct ideal site; an error names the atom otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dbkmc.core.lattice import BASIS_HALF, Lattice


def supercell_of(n_atoms: int, kind: str) -> int:
    """The smallest n whose n x n x n ``kind`` supercell has at least ``n_atoms`` sites."""
    if kind not in BASIS_HALF:
        raise ValueError(f"lattice: unknown kind {kind!r} (fcc or bcc)")
    if n_atoms < 1:
        raise ValueError("the structure has no atoms")
    n = max(2, int(np.ceil((n_atoms / len(BASIS_HALF[kind])) ** (1 / 3) - 1e-9)))
    return n


def map_onto_lattice(positions: np.ndarray, box_length: Sequence[float], kind: str, names: Sequence[str] | None = None,
                     tol: float = 0.01) -> tuple[Lattice, np.ndarray]:
    """The lattice and the site of every atom (N,). ``names`` label the atoms in errors (default: 1-based index)."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    length = np.asarray(box_length, dtype=np.float64)
    label = (lambda j: names[j]) if names is not None else (lambda j: f"atom {j + 1}")
    if not np.allclose(length, length[0], rtol=1e-9, atol=1e-9) or not length[0] > 0:
        raise ValueError(f"box is not cubic: edge lengths {length.tolist()}")
    finite = np.isfinite(pos).all(axis=1)
    if not finite.all():
        j = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{label(j)} has a non-finite position {pos[j].tolist()}")
    n = supercell_of(len(pos), kind)
    lattice = Lattice(kind, n, float(length[0]) / n)
    half = lattice.a / 2.0
    rel = (pos - pos[0]) / half
    h = np.rint(rel)
    off = np.abs(rel - h).max(axis=1) * half
    h = np.mod(h.astype(np.int64), 2 * n)
    site = lattice.index_grid[h[:, 0], h[:, 1], h[:, 2]]
    bad = (off > tol) | (site < 0)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{label(j)} at {pos[j].round(4).tolist()} is not on an ideal site of a {kind} "
                         f"{n}x{n}x{n} supercell (a = {lattice.a:.4f} A, tolerance {tol} A)")
    counts = np.bincount(site, minlength=lattice.n_sites)
    if counts.max() > 1:
        dup = np.flatnonzero(site == int(np.argmax(counts)))
        raise ValueError(f"{', '.join(label(int(j)) for j in dup)} share one lattice site")
    return lattice, site
