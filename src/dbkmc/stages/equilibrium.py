"""Stage equilibrium: is the kMC's equilibrium the Boltzmann distribution of M_EXT, and is that the potential's?

Rule ``equilibrium_check`` (config block ``equilibrium``), on one small fcc cell with one vacancy:

1. swap Monte Carlo with the M_EXT whole-cell energy E(S) (``n_chains`` chains of
   ``n_sweeps * n_sites`` trials) against the time-weighted kMC with M_EXT + KRA rates
   (``n_chains`` trajectories of ``kmc_jumps`` jumps, started from the swap-MC chains' last
   states): alpha_1 and the mean energy must agree within two combined standard errors; the swap
   MC evaluates only the sites a swap changes (:class:`~dbkmc.kmc.swap_energy.SwapEnergy`), with
   the site energies of the kMC rate model itself, so both sample the same E(S);
2. swap Monte Carlo with relaxed LAMMPS energies (fixed box, one relaxation per trial,
   ``lammps_chains`` independent chains of ``lammps_trials`` trials, started from the M_EXT swap-MC
   chains' last states): alpha_1 of M_EXT against the LAMMPS one;
3. far from the training data: ``far_cells`` ordered / clustered cells (swap MC with a bond
   energy of either sign at low temperature), relaxed with LAMMPS: Pearson r of the M_EXT and
   LAMMPS energy differences to the first cell at fixed composition.

Standard errors: :func:`dbkmc.kmc.equilibrium.block_average` with the first 20 % of each chain
dropped. With 4 or more chains (swap MC and kMC with M_EXT) each chain's mean is one block: the
chains are independent, and the kMC trajectories start from independent equilibrium states, so
this holds however long the correlation time within a chain is; the same holds for 4 or more
LAMMPS chains. Fewer chains are each cut into 10 blocks (about one sweep of trials or more each),
which assumes a correlation time shorter than a block: a single LAMMPS chain of 3,000 trials moved
between two runs by 4-5 of the standard errors this gives (docs/extensive.md), so use 4 or more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from dbkmc.core.composition import exact_counts
from dbkmc.core.lattice import Lattice
from dbkmc.figures.equilibrium import equilibrium_figure
from dbkmc.kmc.analysis import warren_cowley
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.equilibrium import (BondEnergy, Samples, agreement, block_average, kmc_samples, random_cell,
                                   swap_monte_carlo)
from dbkmc.kmc.rates.base import build_rate_model
from dbkmc.kmc.swap_energy import SwapEnergy
from dbkmc.neb.lattice_energy import RelaxedLatticeEnergy
from dbkmc.neb.potentials import Potential

log = logging.getLogger(__name__)

EnergyFn = Callable[[np.ndarray], np.ndarray]


def model_energy(rate_model, chunk: int = 64) -> EnergyFn:
    """The kMC rate model's whole-cell energy E(S) (M_EXT ensemble mean) as ``energy(digits [C, n]) -> [C]``."""

    def energy(digits: np.ndarray) -> np.ndarray:
        d = torch.as_tensor(np.asarray(digits, dtype=np.int64))
        parts = [rate_model.energy(d[i : i + chunk]) for i in range(0, len(d), chunk)]
        return torch.cat(parts).double().cpu().numpy()

    return energy


def alpha_1(samples: Samples, lattice: Lattice, species: Sequence[str]) -> np.ndarray:
    """Warren-Cowley alpha_1 of the first two species for every record, ``[R, C]``."""
    d = samples.digits.reshape(-1, lattice.n_sites).astype(np.int64)
    key = f"alpha_{species[0]}{species[1]}"
    return warren_cowley(d, lattice, species)[key].reshape(samples.energies.shape)


def summarise(samples: Samples, method: str, temperature: float, lattice: Lattice, species: Sequence[str],
              weighted: bool, seconds: float) -> dict[str, Any]:
    w = samples.weights if weighted else None
    per_chain = 1 if samples.energies.shape[1] >= 4 else 10  # independent chains: the chain means are the blocks
    a, a_se, n_blocks = block_average(alpha_1(samples, lattice, species), w, n_blocks=per_chain)
    e, e_se, _ = block_average(samples.energies, w, n_blocks=per_chain)
    return {"temperature": temperature, "method": method, "n_chains": samples.energies.shape[1],
            "n_trials_per_chain": samples.n_trials, "acceptance": samples.acceptance, "n_blocks": n_blocks,
            "alpha_1": a, "alpha_1_se": a_se, "energy_mean": e, "energy_se": e_se, "wall_s": seconds}


def sampling_rows(rate_model, lammps: EnergyFn | None, lattice: Lattice, species: Sequence[str],
                  counts: Sequence[int], cfg: Mapping[str, Any]) -> list[dict]:
    """Rows of the three samplers at every temperature.

    The swap MC chains start from random cells; the kMC trajectories and the LAMMPS chain start from
    the swap-MC chains' last states (equilibrated, so that the costly samplers need no burn-in; the
    block average still drops their first 20 %)."""
    rng = np.random.default_rng(cfg["seed"])
    n = lattice.n_sites
    energy = model_energy(rate_model)
    rows = []
    for k, T in enumerate(cfg["temperatures"]):
        start = np.stack([random_cell(lattice, counts, 1, rng) for _ in range(cfg["n_chains"])])
        t0 = time.time()
        mc = swap_monte_carlo(SwapEnergy(rate_model), start, T, cfg["n_sweeps"] * n, seed=cfg["seed"] + k,
                              record_every=max(1, n // 4))
        rows.append(summarise(mc, "swap MC, M_EXT", T, lattice, species, False, time.time() - t0))
        log.info("%s", rows[-1])
        equilibrated = mc.digits[-1].astype(np.int64)
        t0 = time.time()
        engine = KMC(rate_model, equilibrated, [T] * len(equilibrated), seed=cfg["seed"] + 100 + k)
        km = kmc_samples(engine, energy, cfg["kmc_jumps"], record_every=max(1, cfg["kmc_jumps"] // 500))
        rows.append(summarise(km, "kMC (time-weighted), M_EXT + KRA", T, lattice, species, True, time.time() - t0))
        log.info("%s", rows[-1])
        if lammps is not None and cfg["lammps_trials"] > 0:
            t0 = time.time()
            starts = equilibrated[np.arange(cfg["lammps_chains"]) % len(equilibrated)]
            lm = swap_monte_carlo(lammps, starts, T, cfg["lammps_trials"], seed=cfg["seed"] + 200 + k)
            rows.append(summarise(lm, "swap MC, LAMMPS relaxed", T, lattice, species, False, time.time() - t0))
            log.info("%s", rows[-1])
    return rows


def comparisons(table: pd.DataFrame) -> pd.DataFrame:
    """kMC vs swap MC (alpha_1, energy) and M_EXT vs LAMMPS swap MC (alpha_1), per temperature."""
    out = []
    pairs = [("kMC (time-weighted), M_EXT + KRA", "swap MC, M_EXT", ("alpha_1", "energy")),
             ("swap MC, M_EXT", "swap MC, LAMMPS relaxed", ("alpha_1",))]
    for T, group in table.groupby("temperature"):
        by = group.set_index("method")
        for a, b, quantities in pairs:
            if a not in by.index or b not in by.index:
                continue
            for q in quantities:
                col = "alpha_1" if q == "alpha_1" else "energy_mean"
                se = "alpha_1_se" if q == "alpha_1" else "energy_se"
                diff, comb, ok = agreement((by.at[a, col], by.at[a, se]), (by.at[b, col], by.at[b, se]))
                out.append({"temperature": T, "comparison": f"{a} - {b}", "quantity": q, "difference": diff,
                            "combined_se": comb, "z": diff / comb if comb > 0 else np.inf,
                            "within_2se": ok})
    return pd.DataFrame(out)


def ordered_cells(lattice: Lattice, counts: Sequence[int], n_cells: int, seed: int, sweeps: int = 100) -> np.ndarray:
    """``n_cells`` Cu-Ni cells with one vacancy, ordered (J < 0) or clustered (J > 0) by swap MC.

    Bond energies J = -/+ 20, 40, 80 meV per A-B bond at 300-1200 K: from weak to strong
    short-range order and from small clusters to a slab, all far from the random training cells.
    """
    rng = np.random.default_rng(seed)
    cells = []
    Js = [-0.08, 0.08, -0.04, 0.04, -0.02, 0.02]
    temps = [300.0, 1200.0, 600.0]
    for c in range(n_cells):
        J, T = Js[c % len(Js)], temps[(c // len(Js)) % len(temps)]
        start = random_cell(lattice, counts, 1, rng)[None]
        run = swap_monte_carlo(BondEnergy(lattice, J), start, T, sweeps * lattice.n_sites, seed=seed + c,
                               record_every=sweeps * lattice.n_sites, vacancy_swaps=False)
        cells.append(run.digits[-1, 0].astype(np.int64))
    return np.stack(cells)


def far_from_training(energy: EnergyFn, lammps: EnergyFn, lattice: Lattice, species: Sequence[str],
                      counts: Sequence[int], n_cells: int, seed: int, sweeps: int = 100) -> tuple[pd.DataFrame, dict]:
    """Table of M_EXT and LAMMPS energy differences to cell 0 on ordered / clustered cells, and its statistics.

    Statistics over cells 1..: Pearson r, the least-squares slope of dE_model on dE_lammps, the RMSE
    of dE_model - dE_lammps (eV per cell), and r within the ordered cells (alpha_1 < 0) alone."""
    cells = ordered_cells(lattice, counts, n_cells, seed, sweeps)
    e_model = energy(cells)
    e_true = lammps(cells)
    alpha = warren_cowley(cells, lattice, species)[f"alpha_{species[0]}{species[1]}"]
    df = pd.DataFrame({"cell": np.arange(n_cells), "alpha_1": alpha, "E_lammps": e_true, "E_model": e_model,
                       "dE_lammps": e_true - e_true[0], "dE_model": e_model - e_model[0]})
    x, y = df.dE_lammps.to_numpy()[1:], df.dE_model.to_numpy()[1:]
    ordered = df.alpha_1.to_numpy()[1:] < 0
    stats = {"pearson_r": float(np.corrcoef(x, y)[0, 1]) if len(x) > 1 else float("nan"),
             "slope": float((x * y).sum() / (x * x).sum()) if len(x) else float("nan"),
             "rmse_eV": float(np.sqrt(np.mean((y - x) ** 2))) if len(x) else float("nan"),
             "pearson_r_ordered": float(np.corrcoef(x[ordered], y[ordered])[0, 1]) if ordered.sum() > 2
             else float("nan"), "n_cells": int(n_cells)}
    return df, stats


def markdown(table: pd.DataFrame, comp: pd.DataFrame, far: pd.DataFrame | None, stats: dict | None) -> str:
    text = ["# Equilibrium check of M_EXT", "", table.to_markdown(index=False, floatfmt=".5g"), ""]
    if len(comp):
        text += ["## Agreement (|difference| <= 2 combined SE)", "", comp.to_markdown(index=False, floatfmt=".4g"), ""]
    if far is not None:
        text += ["## Far from the training data: M_EXT vs relaxed LAMMPS, dE to cell 0 at fixed composition", "",
                 ", ".join(f"{k} = {v:.4g}" for k, v in stats.items()), "",
                 far.to_markdown(index=False, floatfmt=".5g"), ""]
    return "\n".join(text)


def equilibrium_check_step(cfg: Mapping[str, Any], potential_cfg: Mapping[str, Any], potential_name: str,
                           run: str, table_csv: str, table_md: str, far_csv: str, figure: str) -> None:
    """Rule equilibrium_check: the three samplers, the comparisons, the far-from-training cells."""
    torch.set_num_threads(1)
    species = tuple(cfg["species"])
    potential = Potential.from_config(potential_name, potential_cfg)
    lattice = Lattice("fcc", cfg["supercell"], cfg["a"])
    counts = exact_counts(cfg["composition"], species, lattice.n_sites - 1)
    folders = {"energy": cfg["energy"].format(run=run), "kra": cfg["kra"].format(run=run)}
    rate_model = build_rate_model({"kind": "detailed_balance", **folders}, lattice, species, key="equilibrium")
    lammps = RelaxedLatticeEnergy(potential, species, lattice)
    table = pd.DataFrame(sampling_rows(rate_model, lammps, lattice, species, counts, cfg))
    comp = comparisons(table)
    far, stats = None, None
    if cfg["far_cells"] > 0:
        big = Lattice("fcc", cfg["far_supercell"], cfg["a"])
        big_model = rate_model if big == lattice else build_rate_model(
            {"kind": "detailed_balance", **folders}, big, species, key="equilibrium")
        far, stats = far_from_training(model_energy(big_model), RelaxedLatticeEnergy(potential, species, big), big,
                                   species, exact_counts(cfg["composition"], species, big.n_sites - 1),
                                   cfg["far_cells"], cfg["seed"])
        far.to_csv(far_csv, index=False)
        log.info("far from training: %s", stats)
    else:
        pd.DataFrame().to_csv(far_csv, index=False)
    table.to_csv(table_csv, index=False)
    with open(table_md, "w") as fh:
        fh.write(markdown(table, comp, far, stats))
    equilibrium_figure(table, comp, far, None if stats is None else stats["pearson_r"], figure)
