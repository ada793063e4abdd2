"""kMC files: LAMMPS text dump snapshots and the time-series table.

Snapshots are LAMMPS text dumps (``ITEM: ATOMS id type element x y z``, periodic
orthogonal box) that OVITO and ``ase.io.read(path, index=":")`` open. Only atoms are
written; vacant sites are left out. An atom's ``id`` is its lattice site index + 1
(sites are fixed, atoms move between them), ``type`` its digit (1..S) and
``element`` its species name. One file per trajectory holds one frame per snapshot;
the TIMESTEP field is the number of jumps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from dbkmc.neb import dump as lammps_dump
from dbkmc.core.lattice import Lattice


def write_dump_frame(fh: TextIO, lattice: Lattice, digits: np.ndarray, species: Sequence[str], jumps: int) -> None:
    """Append one frame (atoms only) to an open text file."""
    digits = np.asarray(digits)
    if digits.shape != (lattice.n_sites,):
        raise ValueError(f"digits: expected shape ({lattice.n_sites},), got {digits.shape}")
    sites = np.flatnonzero(digits > 0)
    pos = lattice.positions[sites]
    length = lattice.n * lattice.a
    names = np.asarray(species, dtype=object)[digits[sites] - 1]
    fh.write(f"ITEM: TIMESTEP\n{int(jumps)}\nITEM: NUMBER OF ATOMS\n{len(sites)}\n")
    fh.write("ITEM: BOX BOUNDS pp pp pp\n" + f"0.0 {length:.10g}\n" * 3)
    fh.write("ITEM: ATOMS id type element x y z\n")
    lines = [f"{s + 1} {d} {e} {x:.6f} {y:.6f} {z:.6f}"
             for s, d, e, (x, y, z) in zip(sites, digits[sites], names, pos, strict=True)]
    fh.write("\n".join(lines) + "\n")


def read_dump_frames(path: str | Path, lattice: Lattice) -> Iterator[tuple[int, np.ndarray]]:
    """``(jumps, digits)`` of every frame of a snapshot file written by :func:`write_dump_frame`.

    Parsed by :func:`dbkmc.neb.dump.read_dump_frames` (errors name the line); an
    atom id is its site index + 1.
    """
    for frame in lammps_dump.read_dump_frames(path):
        sites = frame.ids - 1
        if np.any((sites < 0) | (sites >= lattice.n_sites)):
            raise ValueError(f"{path}: frame at jumps {frame.timestep}: ids outside 1..{lattice.n_sites}")
        digits = np.zeros(lattice.n_sites, dtype=np.int64)
        digits[sites] = frame.types
        yield frame.timestep, digits


def load_final(path: str | Path) -> dict[str, Any]:
    """The final configurations of a kMC run (``final.npz``), with its Lattice and species list."""
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    data["lattice"] = Lattice(str(data["lattice_kind"]), int(data["lattice_n"]), float(data["lattice_a"]))
    data["species"] = [str(s) for s in data["species"]]
    return data
