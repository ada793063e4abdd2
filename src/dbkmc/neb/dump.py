"""LAMMPS text dumps: read one frame and map it exactly onto an ideal cubic lattice.

Only orthogonal boxes are read. Positions may be given as ``x y z`` (or the
unwrapped ``xu yu zu``) or as scaled ``xs ys zs``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dbkmc.core.lattice import BASIS_HALF, Lattice


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
    return next(read_dump_frames(path))


def read_dump_frames(path: str | Path) -> Iterator[DumpFrame]:
    """Every frame of a LAMMPS text dump, in file order.

    Each frame is ``ITEM:`` sections in LAMMPS' order: TIMESTEP, NUMBER OF ATOMS,
    BOX BOUNDS and ATOMS (other items, such as UNITS or TIME, are skipped). A
    malformed file raises a ValueError naming the line (1-based) and what is wrong;
    a NaN or infinite coordinate names the atom id and its line.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    i = 0
    found = False
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        frame, i = _parse_frame(lines, i, str(path))
        found = True
        yield frame
    if not found:
        raise ValueError(f"{path}: no frame (the file is empty)")


def _parse_frame(lines: list[str], i: int, path: str) -> tuple[DumpFrame, int]:
    """The frame whose first ITEM line is ``lines[i]``, and the index of the line after it."""

    def fail(k: int, msg: str) -> ValueError:
        return ValueError(f"{path}: line {k + 1}: {msg}")

    def value_line(k: int, what: str) -> list[str]:
        if k >= len(lines) or not lines[k].split() or lines[k].startswith("ITEM:"):
            raise fail(min(k, len(lines) - 1), f"expected the {what} after line {k}")
        return lines[k].split()

    timestep = n_atoms = None
    bounds = None
    while True:
        if i >= len(lines):
            raise fail(len(lines) - 1, "the file ends before the frame's 'ITEM: ATOMS' section")
        head = lines[i]
        if not head.startswith("ITEM: "):
            raise fail(i, f"expected an 'ITEM:' line, got {head[:60]!r}")
        item = head[6:].strip()
        if item.startswith("TIMESTEP"):
            timestep = _int(value_line(i + 1, "timestep")[0], lambda m: fail(i + 1, f"timestep {m}"))
            i += 2
        elif item.startswith("NUMBER OF ATOMS"):
            n_atoms = _int(value_line(i + 1, "number of atoms")[0], lambda m: fail(i + 1, f"number of atoms {m}"))
            if n_atoms < 0:
                raise fail(i + 1, f"number of atoms is negative ({n_atoms})")
            i += 2
        elif item.startswith("BOX BOUNDS"):
            if any(t in item.split() for t in ("xy", "xz", "yz")):
                raise fail(i, "triclinic box; only orthogonal boxes are supported")
            bounds = np.empty((3, 2))
            for d in range(3):
                k = i + 1 + d
                fields = value_line(k, f"{'xyz'[d]} bounds")
                try:
                    bounds[d] = [float(v) for v in fields[:2]]
                except ValueError:
                    raise fail(k, f"{'xyz'[d]} bounds: expected two numbers 'lo hi', got {lines[k]!r}") from None
                if len(fields) < 2 or not np.all(np.isfinite(bounds[d])) or bounds[d, 1] <= bounds[d, 0]:
                    raise fail(k, f"{'xyz'[d]} bounds: expected two finite numbers lo < hi, got {lines[k]!r}")
            i += 4
        elif item.startswith("ATOMS"):
            break
        else:  # UNITS, TIME, ...: one value line
            i += 2
    ia = i
    for name, val in (("TIMESTEP", timestep), ("NUMBER OF ATOMS", n_atoms), ("BOX BOUNDS", bounds)):
        if val is None:
            raise fail(ia, f"'ITEM: ATOMS' before any 'ITEM: {name}' in this frame")
    columns = lines[ia].split()[2:]
    col = {name: j for j, name in enumerate(columns)}
    for need in ("id", "type"):
        if need not in col:
            raise fail(ia, f"the ATOMS columns lack {need!r} (have {columns})")
    lo, hi = bounds[:, 0], bounds[:, 1]
    for names in (("x", "y", "z"), ("xu", "yu", "zu"), ("xs", "ys", "zs")):
        if all(c in col for c in names):
            break
    else:
        raise fail(ia, f"the ATOMS columns hold no positions (x y z, xu yu zu or xs ys zs): {columns}")
    rows = lines[ia + 1 : ia + 1 + n_atoms]
    use = [col["id"], col["type"], *(col[c] for c in names)]
    table = _atom_table(rows, n_atoms, ia + 1, len(columns), use, fail)
    ids_f, types_f, pos = table[:, 0], table[:, 1], table[:, 2:]
    for what, v, j in (("id", ids_f, 0), ("type", types_f, 1)):
        bad = np.flatnonzero(~np.isfinite(v) | (v != np.rint(v)))
        if len(bad):
            k = int(bad[0])
            raise fail(ia + 1 + k, f"atom {what} {rows[k].split()[use[j]]!r} is not an integer")
    ids = ids_f.astype(np.int64)
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if len(bad):
        k = int(bad[0])
        raise fail(ia + 1 + k, f"atom id {ids[k]} has a non-finite coordinate ({' '.join(names)} = "
                               f"{' '.join(rows[k].split()[col[c]] for c in names)})")
    if names[0] == "xs":
        pos = lo + pos * (hi - lo)
    if len(np.unique(ids)) != len(ids):
        first: dict[int, int] = {}
        for k, a in enumerate(ids.tolist()):
            if a in first:
                raise fail(ia + 1 + k, f"atom id {a} appears again (first on line {ia + 2 + first[a]})")
            first[a] = k
    frame = DumpFrame(timestep, ids, types_f.astype(np.int64), pos, lo.copy(), hi.copy())
    return frame, ia + 1 + n_atoms


def _int(text: str, error) -> int:
    try:
        return int(text)
    except ValueError:
        raise error(f"{text!r} is not an integer") from None


def _atom_table(rows: list[str], n_atoms: int, first_line: int, n_columns: int, use: list[int],
                fail) -> np.ndarray:
    """The columns ``use`` of the atom lines as floats ``[N, len(use)]``; ``first_line`` is rows[0]'s index."""
    n = len(rows)
    if n == 0 and n_atoms == 0:
        return np.zeros((0, len(use)))
    if n == n_atoms and len("\n".join(rows).split()) == n * n_columns:
        try:
            return np.loadtxt(rows, dtype=np.float64, usecols=use, ndmin=2, comments=None)
        except ValueError:
            pass  # the line-by-line pass below names the line
    # slow path: find the first bad line and say what is wrong with it
    for k, r in enumerate(rows):
        fields = r.split()
        if r.startswith("ITEM:"):
            raise fail(first_line + k, f"NUMBER OF ATOMS is {n_atoms}, but an ITEM line follows after "
                                       f"{k} atom lines")
        if len(fields) != n_columns:
            raise fail(first_line + k, f"atom line has {len(fields)} fields, the ATOMS header names {n_columns}")
        for j in use:
            try:
                float(fields[j])
            except ValueError:
                raise fail(first_line + k, f"field {j + 1} ({fields[j]!r}) is not a number") from None
    raise fail(first_line + n - 1, f"the file ends after {n} atom lines; NUMBER OF ATOMS is {n_atoms}")


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
    finite = np.isfinite(frame.positions).all(axis=1)
    if not finite.all():
        j = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"atom id {frame.ids[j]} has a non-finite position {frame.positions[j].tolist()}")
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
    site = lattice.index_grid[h[:, 0], h[:, 1], h[:, 2]]
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
