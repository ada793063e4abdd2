"""Equilibrium checks (issue 14): swap MC vs time-weighted kMC, block errors, M_EXT far from training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.equilibrium import (BondEnergy, EnergyRateModel, block_average, kmc_samples, random_cell,
                                   swap_monte_carlo)
from dbkmc.stages.equilibrium import alpha_1, comparisons, ordered_cells, summarise

SPECIES = ("Cu", "Ni")


@pytest.fixture(scope="module")
def lattice():
    return Lattice("fcc", 3, 3.567502)


def test_block_average_of_equal_weights_is_the_standard_error_of_block_means():
    x = np.random.default_rng(0).normal(size=(1000, 2))
    mean, se, n = block_average(x, n_blocks=10, discard=0.2)
    blocks = x[200:].reshape(10, 80, 2).mean(1).ravel()
    assert n == 20
    assert mean == pytest.approx(blocks.mean())
    assert se == pytest.approx(blocks.std(ddof=1) / np.sqrt(20))


def test_swap_mc_keeps_the_composition_and_moves_the_vacancy(lattice):
    rng = np.random.default_rng(1)
    start = np.stack([random_cell(lattice, [54, 53], 1, rng) for _ in range(3)])
    run = swap_monte_carlo(BondEnergy(lattice, 0.0), start, 1000.0, 500, seed=2, record_every=50)
    counts = np.stack([np.bincount(d, minlength=3) for d in run.digits.reshape(-1, lattice.n_sites)])
    assert (counts == [1, 54, 53]).all()
    assert run.acceptance == 1.0  # E = 0: every trial accepted
    assert len({int(np.argmin(d)) for d in run.digits[:, 0]}) > 1


def test_time_weighted_kmc_samples_the_boltzmann_distribution_of_its_energy(lattice):
    """Detailed-balance kMC with E = J N_CuNi (ordering) against swap MC: alpha_1 and <E> within 3 SE."""
    rng = np.random.default_rng(0)
    start = np.stack([random_cell(lattice, [54, 53], 1, rng) for _ in range(4)])
    energy = BondEnergy(lattice, -0.02)
    mc = swap_monte_carlo(energy, start, 600.0, 1500, seed=1, record_every=5)
    km = kmc_samples(KMC(EnergyRateModel(energy, lattice, SPECIES), start, [600.0] * 4, seed=3), energy, 3000, 3)
    table = pd.DataFrame([summarise(mc, "swap MC, M_EXT", 600.0, lattice, SPECIES, False, 0.0),
                          summarise(km, "kMC (time-weighted), M_EXT + KRA", 600.0, lattice, SPECIES, True, 0.0)])
    comp = comparisons(table)
    assert len(comp) == 2
    assert (comp["z"].abs() < 3.0).all(), comp
    assert table["alpha_1"].max() < -0.05  # ordered: fewer like bonds than random
    assert np.isfinite(alpha_1(mc, lattice, SPECIES)).all()


def test_ordered_cells_are_ordered_or_clustered():
    big = Lattice("fcc", 4, 3.567502)
    cells = ordered_cells(big, [128, 127], 4, seed=0)
    from dbkmc.kmc.analysis import warren_cowley
    alpha = warren_cowley(cells, big, SPECIES)["alpha_CuNi"]
    assert alpha[0] < -0.2 and alpha[1] > 0.3  # J < 0: order; J > 0: clusters
    assert ((cells == 0).sum(1) == 1).all()


def test_swap_energy_is_the_whole_cell_difference_and_the_stage_rows_run():
    """Random M_EXT: the cached local dE of the swap MC sums to the whole-cell E; the three samplers' rows."""
    from test_rates_ext import P, random_ensemble

    from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
    from dbkmc.kmc.rates.extensive_db import ExtensiveRateModel
    from dbkmc.kmc.swap_energy import SwapEnergy
    from dbkmc.stages.equilibrium import sampling_rows

    lat = Lattice("fcc", 4, 3.567502)
    desc = SiteDescriptors(lat, 2, 3, 2)
    model = ExtensiveRateModel(random_ensemble("M_EXT", 2 + desc.n_features, 1, n_species=2), desc,
                               random_ensemble("KRA", P.dim(2), 2), P, lat, SPECIES)
    rng = np.random.default_rng(0)
    start = np.stack([random_cell(lat, [128, 127], 1, rng) for _ in range(2)])
    run = swap_monte_carlo(SwapEnergy(model), start, 800.0, 100, seed=1, record_every=50)
    whole = model.energy(torch.as_tensor(run.digits[-1].astype(np.int64))).double().numpy()
    np.testing.assert_allclose(run.energies[-1], whole, rtol=0, atol=1e-9)
    cfg = {"seed": 0, "temperatures": [800.0], "n_chains": 2, "n_sweeps": 3, "kmc_jumps": 30, "lammps_trials": 0,
           "lammps_chains": 1}
    rows = pd.DataFrame(sampling_rows(model, None, lat, SPECIES, [128, 127], cfg))
    assert list(rows["method"]) == ["swap MC, M_EXT", "kMC (time-weighted), M_EXT + KRA"]
    assert np.isfinite(rows[["alpha_1", "alpha_1_se", "energy_mean", "energy_se"]].to_numpy()).all()
    # several independent "LAMMPS" chains (a bond energy stands in for the relaxed potential here): with 4 or
    # more, each chain's mean is one block of the standard error
    cfg.update(lammps_trials=40, lammps_chains=4)
    rows = pd.DataFrame(sampling_rows(model, BondEnergy(lat, 0.02), lat, SPECIES, [128, 127], cfg))
    lammps = rows.set_index("method").loc["swap MC, LAMMPS relaxed"]
    assert lammps["n_chains"] == 4 and lammps["n_blocks"] == 4 and np.isfinite(lammps["alpha_1_se"])


@pytest.mark.slow  # trains a model: about 40 s on one free core
def test_quickly_trained_m_ext_ranks_cells_far_from_training_like_lammps(tmp_path):
    """M_EXT (1 member, 6 epochs on the reference Cu50Ni50 events) vs relaxed LAMMPS on ordered and
    clustered 4x4x4 cells (swap MC with a bond energy): the energy differences to cell 0 correlate, r >= 0.95."""
    from dbkmc.detailed_balance.aev import AEVParams
    from dbkmc.detailed_balance.ext_fingerprints import featurize_ext_events
    from dbkmc.detailed_balance.extensive import load_energy_model
    from dbkmc.detailed_balance.training import EventData, TrainConfig, save_ensemble, split_events, train_model
    from dbkmc.neb.lattice_energy import RelaxedLatticeEnergy
    from dbkmc.neb.potentials import Potential
    from dbkmc.stages.equilibrium import far_from_training

    torch.manual_seed(0)
    events = pd.read_parquet("data/reference_cuni/events.parquet")
    events = events[events.composition == "Cu50Ni50"].reset_index(drop=True)
    targets = ("dE", "E_KRA", "barrier_forward", "barrier_backward")
    data = EventData(featurize_ext_events(events, list(SPECIES)),
                     {t: torch.tensor(events[t].to_numpy(), dtype=torch.float32) for t in targets},
                     list(events.event_id), list(events.composition), AEVParams(), list(SPECIES))
    cfg = TrainConfig(n_members=1, per_kind={"M_EXT": {"hidden": [32, 32], "dropout": 0.0, "lr": 2e-3,
                                                       "lr_final": 5e-4, "max_epochs": 6, "batch_size": 64}})
    fit = train_model("M_EXT", data, split_events(data.event_id, data.composition), cfg)
    save_ensemble(tmp_path / "M_EXT", fit.ensemble, AEVParams(), list(SPECIES), extra={"lattice": "fcc"})
    model = load_energy_model(tmp_path / "M_EXT")
    lat = Lattice("fcc", 4, 3.567502)
    potential = Potential.from_config("cuni_eam", {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
                                                   "files": {"table": "CuNi.eam.alloy"}, "elements": list(SPECIES)})
    energy = lambda d: model.lattice_energy(torch.as_tensor(d), lat)[0].double().numpy()  # noqa: E731
    table, stats = far_from_training(energy, RelaxedLatticeEnergy(potential, SPECIES, lat), lat, SPECIES,
                                     [128, 127], 4, seed=14, sweeps=30)
    assert (table.alpha_1[1::2] > 0.3).all() and (table.alpha_1[::2] < -0.1).all()  # clustered and ordered
    assert stats["pearson_r"] >= 0.95, table
