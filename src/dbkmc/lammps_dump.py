"""LAMMPS text dumps: read one frame and map it exactly onto an ideal cubic lattice.

Only orthogonal boxes are read. Positions may be given as ``x y z`` (or the
unwrapped ``xu yu zu``) or as scaled ``xs ys zs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dbkmc.lattice import BASIS_HALF, Lattice


@dataclass(frozen=True)
class DumpFrame:
    """One frame of a LAMMPS text dump, atoms in file order."""

    timestep: int
    ids: np.ndarray        # (N,) int64
    types: np.ndarray      # (N,) int64, LAMMPS types 1..S
    positions: np.ndarray  # (N, 3) Angstrom
    box_lo: np.ndarray     # (3,)
    box_hi: np.ndarray     # (3,)


def read_dump(path: str | Path) -> DumpFrame:
    """Read the first frame of a LAMMPS text dump (``dump atom`` or ``dump custom``)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()

    def find(item: str, start: int = 0) -> int:
        for i in range(start, len(lines)):
            if lines[i].startswith("ITEM: " + item):
                return i
        raise ValueError(f"{path}: no 'ITEM: {item}' line")

    timestep = int(lines[find("TIMESTEP") + 1].split()[0])
    n_atoms = int(lines[find("NUMBER OF ATOMS") + 1].split()[0])
    ib = find("BOX BOUNDS")
    if any(t in lines[ib].split() for t in ("xy", "xz", "yz")):
        raise ValueError(f"{path}: triclinic box; only orthogonal boxes are supported")
    bounds = np.array([[float(v) for v in lines[ib + 1 + d].split()[:2]] for d in range(3)])
    ia = find("ATOMS")
    columns = lines[ia].split()[2:]
    rows = lines[ia + 1 : ia + 1 + n_atoms]
    if len(rows) != n_atoms:
        raise ValueError(f"{path}: NUMBER OF ATOMS is {n_atoms} but {len(rows)} atom lines follow")
    table = np.array([r.split() for r in rows], dtype=float)
    if table.shape[1] != len(columns):
        raise ValueError(f"{path}: atom lines have {table.shape[1]} fields, header names {len(columns)}")
    col = {name: j for j, name in enumerate(columns)}
    for need in ("id", "type"):
        if need not in col:
            raise ValueError(f"{path}: the ATOMS columns lack {need!r} (have {columns})")
    lo, hi = bounds[:, 0], bounds[:, 1]
    if all(c in col for c in ("x", "y", "z")):
        pos = table[:, [col["x"], col["y"], col["z"]]]
    elif all(c in col for c in ("xu", "yu", "zu")):
        pos = table[:, [col["xu"], col["yu"], col["zu"]]]
    elif all(c in col for c in ("xs", "ys", "zs")):
        pos = lo + table[:, [col["xs"], col["ys"], col["zs"]]] * (hi - lo)
    else:
        raise ValueError(f"{path}: the ATOMS columns hold no positions (x y z, xu yu zu or xs ys zs): {columns}")
    ids = table[:, col["id"]].astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{path}: atom ids are not unique")
    return DumpFrame(timestep, ids, table[:, col["type"]].astype(np.int64), pos, lo, hi)


@dataclass(frozen=True)
class LatticeStructure:
    """A dump mapped onto a :class:`Lattice`: the atom on every site."""

    lattice: Lattice
    ids: np.ndarray    # (n_sites,) dump id of the atom on each site
    types: np.ndarray  # (n_sites,) its LAMMPS type

    def sites_of_ids(self, ids) -> np.ndarray:
        """Site index of each dump id; an unknown id is an error."""
        order = np.argsort(self.ids)
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids[order], ids)
        pos = np.minimum(pos, len(order) - 1)
        bad = self.ids[order][pos] != ids
        if np.any(bad):
            raise ValueError(f"atom id(s) {ids[bad].tolist()} not in the structure")
        return order[pos]


def _infer_kind(n_atoms: int) -> tuple[str, int]:
    for kind, basis in BASIS_HALF.items():
        n = round((n_atoms / len(basis)) ** (1 / 3))
        if n >= 2 and len(basis) * n**3 == n_atoms:
            return kind, n
    raise ValueError(f"{n_atoms} atoms is not a full n x n x n fcc (4 n^3) or bcc (2 n^3) supercell")


def to_lattice(frame: DumpFrame, kind: str | None = None, tol: float = 0.01) -> LatticeStructure:
    """Map every atom of a fully occupied cubic supercell onto its ideal lattice site.

    ``kind`` (fcc/bcc) is inferred from the atom count when not given (4 n^3 and
    2 n^3 never coincide). The lattice parameter is box length / n. Every atom must
    lie within ``tol`` (Angstrom) of a distinct ideal site, else a ValueError says
    which atom is off.
    """
    length = frame.box_hi - frame.box_lo
    if not np.allclose(length, length[0], rtol=1e-9, atol=1e-9):
        raise ValueError(f"box is not cubic: edge lengths {length.tolist()}")
    if kind is None:
        kind, n = _infer_kind(len(frame.ids))
    else:
        n = round((len(frame.ids) / len(BASIS_HALF[kind])) ** (1 / 3))
        if len(BASIS_HALF[kind]) * n**3 != len(frame.ids):
            raise ValueError(f"{len(frame.ids)} atoms is not a full n x n x n {kind} supercell")
    lattice = Lattice(kind, n, float(length[0]) / n)
    half = lattice.a / 2.0
    # The lattice may be translated in the box: measure from the first atom.
    rel = (frame.positions - frame.positions[0]) / half
    h = np.rint(rel)
    off = np.abs(rel - h).max(axis=1) * half
    if np.any(off > tol):
        j = int(np.argmax(off))
        raise ValueError(
            f"atom id {frame.ids[j]} lies {off[j]:.4f} A from the nearest ideal {kind} site (tolerance {tol} A)"
        )
    h = np.mod(h.astype(np.int64), 2 * n)
    site = lattice._index_grid[h[:, 0], h[:, 1], h[:, 2]]
    if np.any(site < 0):
        j = int(np.flatnonzero(site < 0)[0])
        raise ValueError(f"atom id {frame.ids[j]} sits on a grid point that is not a {kind} lattice site")
    if len(np.unique(site)) != lattice.n_sites:
        counts = np.bincount(site, minlength=lattice.n_sites)
        dup = int(np.flatnonzero(counts > 1)[0])
        raise ValueError(f"atoms {frame.ids[site == dup].tolist()} share one lattice site")
    ids = np.empty(lattice.n_sites, dtype=np.int64)
    types = np.empty(lattice.n_sites, dtype=np.int64)
    ids[site] = frame.ids
    types[site] = frame.types
    return LatticeStructure(lattice, ids, types)
