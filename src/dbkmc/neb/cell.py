"""LAMMPS as an energy/force engine for one periodic cell.

A :class:`LammpsCell` keeps one serial LAMMPS instance alive. Positions are
written straight into LAMMPS' coordinate array and forces read back, so a force
call costs a fraction of a millisecond for a few hundred EAM atoms and no
neighbour list is rebuilt unless atoms moved more than half the skin.
The instance is reused across events of the same cell size: only types and
positions change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dbkmc.neb.lammps_env import new_lammps
from dbkmc.neb.potentials import Potential


@dataclass
class Relaxation:
    energy: float
    positions: np.ndarray
    max_force: float
    n_iter: int
    converged: bool


def wrap(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    return np.mod(positions, box)


def unwrap_like(positions: np.ndarray, reference: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Shift each atom by box vectors to lie nearest its reference position."""
    d = positions - reference
    return reference + d - box * np.round(d / box)


def max_atom_force(forces: np.ndarray) -> float:
    return float(np.sqrt((forces**2).sum(axis=-1)).max())


class LammpsCell:
    """One orthogonal periodic cell with fixed atom count, species and potential."""

    def __init__(self, potential: Potential, species: Sequence[str], box: np.ndarray,
                 types: np.ndarray, positions: np.ndarray, skin: float = 1.0):
        self.box = np.asarray(box, dtype=float)
        self.n_atoms = len(types)
        self.lmp = new_lammps()
        lx, ly, lz = (float(v) for v in self.box)
        for cmd in ("units metal", "atom_style atomic", "atom_modify map array sort 0 0",
                    "boundary p p p", f"region cell block 0 {lx!r} 0 {ly!r} 0 {lz!r} units box",
                    f"create_box {len(species)} cell"):
            self.lmp.command(cmd)
        ids = list(range(1, self.n_atoms + 1))
        x = wrap(np.asarray(positions, dtype=float), self.box).ravel().tolist()
        self.lmp.create_atoms(self.n_atoms, ids, [int(t) for t in types], x)
        for cmd in (*potential.commands(species), f"neighbor {skin} bin",
                    "neigh_modify every 1 delay 0 check yes", "thermo_style custom pe",
                    "thermo_modify norm no", "min_modify norm max"):
            self.lmp.command(cmd)
        if not np.array_equal(self.lmp.numpy.extract_atom("id")[: self.n_atoms], np.arange(1, self.n_atoms + 1)):
            raise RuntimeError("LAMMPS reordered atoms; engine needs id order")
        self._ready = False

    def close(self) -> None:
        self.lmp.close()

    def reset(self, types: np.ndarray, positions: np.ndarray) -> None:
        """Same atom count, new species and positions (full neighbour rebuild)."""
        if len(types) != self.n_atoms:
            raise ValueError(f"types: expected {self.n_atoms} atoms, got {len(types)}")
        self.lmp.numpy.extract_atom("type")[: self.n_atoms] = np.asarray(types, dtype=np.int32)
        self._write(positions)
        self._ready = False

    def _write(self, positions: np.ndarray) -> None:
        self.lmp.numpy.extract_atom("x")[: self.n_atoms] = wrap(positions, self.box)

    def _read(self) -> tuple[float, np.ndarray]:
        energy = float(self.lmp.get_thermo("pe"))
        forces = np.array(self.lmp.numpy.extract_atom("f")[: self.n_atoms], dtype=float)
        return energy, forces

    def energy_forces(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Potential energy (eV) and forces (eV/A) at ``positions``."""
        self._write(positions)
        self.lmp.command("run 1 pre no post no" if self._ready else "run 0 post no")
        self._ready = True
        return self._read()

    def minimize(self, positions: np.ndarray, ftol: float, max_iter: int) -> Relaxation:
        """Relax at fixed cell to max atomic force < ``ftol`` (CG, then FIRE if CG stalls)."""
        reference = np.asarray(positions, dtype=float)
        self._write(reference)
        n_iter = 0
        max_force = np.inf
        for style in ("cg", "fire"):
            start = int(self.lmp.extract_global("ntimestep"))
            self.lmp.command(f"min_style {style}")
            self.lmp.command(f"minimize 0.0 {ftol!r} {max_iter} {10 * max_iter}")
            n_iter += int(self.lmp.extract_global("ntimestep")) - start
            energy, forces = self._read()
            max_force = max_atom_force(forces)
            if max_force < ftol:
                break
        self._ready = False
        relaxed = unwrap_like(np.array(self.lmp.numpy.extract_atom("x")[: self.n_atoms]), reference, self.box)
        return Relaxation(energy, relaxed, max_force, n_iter, bool(max_force < ftol))


class EnginePool:
    """The LAMMPS cells one NEB worker needs: one for relaxations, one per image."""

    def __init__(self, potential: Potential, species: Sequence[str], n_images: int):
        self.potential = potential
        self.species = tuple(species)
        self.n_images = n_images
        self._cells: list[LammpsCell] = []
        self._shape: tuple | None = None

    def cells(self, box: np.ndarray, types: np.ndarray, positions: np.ndarray) -> list[LammpsCell]:
        """``n_images + 1`` cells holding ``types``; rebuilt only if box or size change."""
        shape = (tuple(np.round(box, 9)), len(types))
        if shape != self._shape:
            self.close()
            self._cells = [LammpsCell(self.potential, self.species, box, types, positions)
                           for _ in range(self.n_images + 1)]
            self._shape = shape
        else:
            for cell in self._cells:
                cell.reset(types, positions)
        return self._cells

    def close(self) -> None:
        for cell in self._cells:
            cell.close()
        self._cells = []
        self._shape = None
