"""The exact state memo of the kMC engine (dbkmc.kmc.memo): same trajectory, fewer model calls."""

from __future__ import annotations

import numpy as np
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.equilibrium import BondEnergy, EnergyRateModel, random_cell
from dbkmc.kmc.memo import StateMemo

SPECIES = ("Cu", "Ni")


class CountingModel(EnergyRateModel):
    """A float64 detailed-balance model (bond energy, E_KRA 0.7 eV) that counts its barrier calls."""

    def __init__(self, lattice: Lattice, J: float) -> None:
        super().__init__(BondEnergy(lattice, J), lattice, SPECIES)
        self.calls = 0

    def barriers(self, digits, vacancies):
        self.calls += 1
        return super().barriers(digits, vacancies)


def start(lattice: Lattice, seed: int = 0) -> np.ndarray:
    return random_cell(lattice, [lattice.n_sites // 2, lattice.n_sites - 1 - lattice.n_sites // 2], 1,
                       np.random.default_rng(seed))


def test_memo_gives_the_same_trajectory_with_fewer_model_calls():
    lat = Lattice("fcc", 3, 3.6)
    runs = {}
    for cache in (0, 256):
        model = CountingModel(lat, -0.05)
        kmc = KMC(model, start(lat), [400.0], seed=7, cache=cache)
        kmc.run(600)
        runs[cache] = (kmc.digits.clone(), kmc.vacancies.clone(), kmc.time.clone(), model.calls, kmc.cache_hits,
                       kmc.path)
    plain, memo = runs[0], runs[256]
    assert torch.equal(plain[0], memo[0]) and torch.equal(plain[1], memo[1]) and torch.equal(plain[2], memo[2])
    assert "state memo" in memo[5] and "state memo" not in plain[5]
    assert memo[4] > 100                      # a vacancy at 400 K with J = -50 meV revisits states often
    assert memo[3] + memo[4] == plain[3]      # every hit is one model call saved


def test_memo_keys_follow_the_state_and_a_resumed_run_continues_exactly():
    lat = Lattice("fcc", 3, 3.6)
    kmc = KMC(CountingModel(lat, -0.05), start(lat, 1), [500.0], seed=3, cache=64, block=50)
    kmc.run(120)
    fresh = StateMemo(1, lat.n_sites, 3)
    fresh._words = kmc._memo._words
    fresh.reset(kmc.digits)
    np.testing.assert_array_equal(fresh._keys, kmc._memo._keys)     # incremental key == key of the state
    assert len(kmc._memo._tables[0]) <= 64
    saved = kmc.state_dict()
    kmc.run(200)
    again = KMC(CountingModel(lat, -0.05), start(lat, 1), [500.0], seed=3, cache=64, block=50)
    again.load_state_dict(saved)
    again.run(200)
    assert torch.equal(kmc.digits, again.digits) and torch.equal(kmc.time, again.time)


def test_memo_is_for_one_trajectory_unless_the_model_evaluates_rows():
    lat = Lattice("fcc", 3, 3.6)
    kmc = KMC(CountingModel(lat, -0.05), start(lat), [500.0, 600.0], seed=3, cache=64)
    assert kmc._memo is None and "memo" not in kmc.path
