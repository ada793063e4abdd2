"""End-member lattice parameters measured with the chosen potential.

Each pure element is built on the dataset's lattice (fcc or bcc) and its cell
relaxed isotropically to zero pressure with LAMMPS (``fix box/relax iso``).
"""

from __future__ import annotations

from collections.abc import Sequence

from dbkmc.neb.lammps_env import new_lammps
from dbkmc.neb.potentials import Potential

GUESS = {"fcc": 3.6, "bcc": 3.0}


def relaxed_lattice_parameter(potential: Potential, species: Sequence[str], element: str, kind: str,
                              n: int = 3, ftol: float = 1e-6, guess: float | None = None) -> float:
    """Zero-pressure cubic lattice parameter (A) of pure ``element`` on lattice ``kind``.

    All ``species`` are declared as types (some pair styles, such as eam/cd,
    insist on every element being mapped); only ``element`` is placed.
    """
    a0 = guess or GUESS[kind]
    lmp = new_lammps()
    try:
        for cmd in ("units metal", "atom_style atomic", "boundary p p p",
                    f"lattice {kind} {a0}", f"region cell block 0 {n} 0 {n} 0 {n}",
                    f"create_box {len(species)} cell", f"create_atoms {list(species).index(element) + 1} box",
                    *potential.commands(species),
                    "neighbor 1.0 bin", "fix relax all box/relax iso 0.0 vmax 0.01",
                    "min_style cg", "min_modify line quadratic",
                    f"minimize 0.0 {ftol!r} 10000 100000", "unfix relax",
                    # second pass from the relaxed cell removes the residual box strain
                    "fix relax all box/relax iso 0.0 vmax 0.001",
                    f"minimize 0.0 {ftol!r} 10000 100000"):
            lmp.command(cmd)
        boxlo, boxhi, *_ = lmp.extract_box()
        return (boxhi[0] - boxlo[0]) / n
    finally:
        lmp.close()


def measure_end_members(potential: Potential, species: Sequence[str], kind: str, ftol: float = 1e-6) -> dict[str, float]:
    """Lattice parameter of each pure element of ``species`` on lattice ``kind``."""
    return {e: relaxed_lattice_parameter(potential, species, e, kind, ftol=ftol) for e in species}
