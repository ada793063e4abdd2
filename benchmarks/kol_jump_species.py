#!/usr/bin/env python3
"""What a Kolmogorov state energy cannot hold: the species of the jumping atom (issue 3).

M_KOL predicts ``dE = M_E(F_B^KOL) - M_E(F_A^KOL)``: a difference of one function
of the vacancy's window, evaluated in each state. The true dE is a difference of
total energies, and the total energy holds the bonds of the whole cell. With an
effective first-neighbour bond energy ``w/2 = J_CuNi - (J_CuCu + J_NiNi)/2`` the
jump of atom X from alpha to beta changes the number of Cu-Ni bonds by

    Delta N_CuNi = s_X (n_Ni(shell of beta in A) - n_Ni(shell of alpha in B)),

with ``s_X = +1`` for a Cu jump and ``-1`` for a Ni jump. The sign depends on which
first neighbour jumps, and a function of one state's window does not know that. This
term is the same size as the error of the trained M_KOL ensembles.

Two figures, printed (and optionally written into ``benchmarks/RESULTS.md``):

bond energy
    Static LAMMPS energies of random Cu50Ni50 cells (4x4x4 fcc, no vacancy, ideal
    lattice) regressed on their first-neighbour Cu-Ni bond count: the slope is the
    effective bond energy of the reference potential (CuNi.eam.alloy).
ridge fits
    On the reference dataset (default AEV fingerprints, both directions, the split of
    ``kol_floor.py``): ridge of dE on ``F_B^KOL - F_A^KOL`` (a state-function
    difference, what M_KOL can express linearly) against ridge on the same features
    plus ``s_X (F_B^KOL - F_A^KOL)``. The second model is still exactly antisymmetric
    on every hop (like M_HAS), but it is not a difference of state energies.

Run with dbkmc importable::

    python benchmarks/kol_jump_species.py             # ~2 minutes on 2 cores
    python benchmarks/kol_jump_species.py --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from kol_floor import REFERENCE, cuni_potential, ridge_rmse
from results_md import write_dated_section

from dbkmc.core.composition import vegard_lattice_parameter
from dbkmc.neb.cell import LammpsCell
from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events
from dbkmc.core.lattice import Lattice
from dbkmc.neb.lattice_constants import measure_end_members


def bond_energy(n_cells: int, seed: int) -> tuple[float, float, float]:
    """Slope dE/dN_CuNi (eV per bond), its standard error, and the std of N_CuNi over the cells."""
    species = ["Cu", "Ni"]
    potential = cuni_potential()
    a = vegard_lattice_parameter({"Cu": 0.5, "Ni": 0.5}, measure_end_members(potential, species, "fcc"))
    lattice = Lattice("fcc", 4, a)
    nbr = np.asarray(lattice.neighbors)
    rng = np.random.default_rng(seed)
    types = np.repeat([1, 2], lattice.n_sites // 2)
    cell = None
    energies, bonds = [], []
    try:
        for _ in range(n_cells):
            rng.shuffle(types)
            if cell is None:
                cell = LammpsCell(potential, species, lattice.box, types, lattice.positions)
            else:
                cell.reset(types, lattice.positions)
            energies.append(cell.energy_forces(lattice.positions)[0])
            bonds.append(float((types[:, None] != types[nbr]).sum()) / 2)
    finally:
        if cell is not None:
            cell.close()
    x, e = np.asarray(bonds), np.asarray(energies)
    design = np.c_[np.ones_like(x), x]
    coef, *_ = np.linalg.lstsq(design, e, rcond=None)
    resid = e - design @ coef
    se = np.sqrt(resid.var(ddof=2) / ((x - x.mean()) ** 2).sum())
    return float(coef[1]), float(se), float(x.std())


def directed(x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of the events ``rows``: B -> A has features -x and target -y."""
    return np.r_[x[rows], -x[rows]], np.r_[y[rows], -y[rows]]


def fit_both_directions(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    xt, yt = directed(x, y, train)
    xs, ys = directed(x, y, test)
    xx, yy = np.r_[xt, xs], np.r_[yt, ys]
    n = len(yt)
    return ridge_rmse(xx, yy, np.arange(n), np.arange(n, len(yy)), 1e-3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=Path, default=REFERENCE)
    p.add_argument("--cells", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-md", type=Path, default=None)
    args = p.parse_args(argv)

    slope, slope_se, bond_std = bond_energy(args.cells, args.seed)

    events = pd.read_parquet(args.events)
    events = events[events["status"] == "accepted"] if "status" in events else events
    y = events["dE"].to_numpy(np.float64)
    order = np.random.default_rng(args.seed).permutation(len(y))
    n_test = len(y) // 6
    test, train = order[:n_test], order[n_test:]
    species = events["species"].iloc[0].split(",")
    if species != ["Cu", "Ni"]:
        raise ValueError(f"--events: a Cu,Ni dataset is needed, got species {species}")
    fps = {k: v.numpy().astype(np.float64) for k, v in featurize_events(events, AEVParams(), species=species).items()}
    d_kol = fps["KOL_B"] - fps["KOL_A"]
    s_x = np.where(events["hop_species"].to_numpy() == "Cu", 1.0, -1.0)[:, None]
    fits = {
        "F_B^KOL - F_A^KOL (a state-function difference)": fit_both_directions(d_kol, y, train, test),
        "the same and s_X (F_B^KOL - F_A^KOL) (knows the jump species)":
            fit_both_directions(np.c_[d_kol, s_x * d_kol], y, train, test),
    }

    lines = [f"Effective first-neighbour bond energy of CuNi.eam.alloy ({args.cells} random Cu50Ni50 4x4x4 cells, "
             f"static): dE/dN_CuNi = {1e3 * slope:.1f} ± {1e3 * slope_se:.1f} meV per Cu-Ni bond.", "",
             f"Ridge of dE on the reference dataset ({len(y)} events, both directions; {len(train)} train / "
             f"{len(test)} test events; default AEVs, D = {d_kol.shape[1]}):", "",
             "| features | train RMSE dE [meV] | test RMSE dE [meV] |", "|---|---:|---:|"]
    lines += [f"| {name} | {tr:.1f} | {te:.1f} |" for name, (tr, te) in fits.items()]
    text = "\n".join(lines)
    print(text)
    if args.results_md:
        write_dated_section(args.results_md, "kol_jump_species", "What M_KOL cannot hold: the jump species", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
