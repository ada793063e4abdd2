"""Relaxed LAMMPS energies of lattice configurations (digits), at a fixed box.

A configuration is a vector of kMC *digits* on an ideal
:class:`~dbkmc.core.lattice.Lattice` (``0`` = vacancy, ``1..S`` = species). Its energy
here is the potential energy after relaxing the atoms from their ideal sites at a fixed
cell (CG, then FIRE, to a maximum atomic force ``ftol``): the E(S) the NEB dataset
labels as ``E_A``. Every configuration is relaxed from the ideal lattice, so the energy
is a function of the configuration alone (no memory of earlier relaxations).

One :class:`RelaxedLatticeEnergy` keeps one LAMMPS instance per number of vacancies, so
repeated calls (a swap Monte Carlo with one relaxation per trial) reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dbkmc.core.lattice import Lattice
from dbkmc.neb.cell import LammpsCell
from dbkmc.neb.potentials import Potential


class RelaxedLatticeEnergy:
    """``energy(digits [..., n_sites]) -> [...]`` relaxed potential energies (eV), fixed box."""

    def __init__(self, potential: Potential, species: Sequence[str], lattice: Lattice,
                 ftol: float = 1e-3, max_iter: int = 2000) -> None:
        self.potential = potential
        self.species = tuple(species)
        self.lattice = lattice
        self.ftol = float(ftol)
        self.max_iter = int(max_iter)
        self._cells: dict[int, LammpsCell] = {}
        self.n_calls = 0
        self.n_unconverged = 0

    def _cell(self, types: np.ndarray, positions: np.ndarray) -> LammpsCell:
        cell = self._cells.get(len(types))
        if cell is None:
            cell = LammpsCell(self.potential, self.species, self.lattice.box, types, positions)
            self._cells[len(types)] = cell
        else:
            cell.reset(types, positions)
        return cell

    def one(self, digits: np.ndarray) -> float:
        """Relaxed energy of one configuration (eV)."""
        d = np.asarray(digits)
        if d.shape != (self.lattice.n_sites,):
            raise ValueError(f"digits: expected [{self.lattice.n_sites}], got {list(d.shape)}")
        atoms = np.nonzero(d > 0)[0]
        types = d[atoms].astype(np.int64)
        positions = self.lattice.positions[atoms]
        relax = self._cell(types, positions).minimize(positions, self.ftol, self.max_iter)
        self.n_calls += 1
        self.n_unconverged += int(not relax.converged)
        return float(relax.energy)

    def __call__(self, digits: np.ndarray) -> np.ndarray:
        d = np.asarray(digits)
        flat = d.reshape(-1, d.shape[-1])
        return np.array([self.one(row) for row in flat], dtype=np.float64).reshape(d.shape[:-1])

    def close(self) -> None:
        for cell in self._cells.values():
            cell.close()
        self._cells.clear()
