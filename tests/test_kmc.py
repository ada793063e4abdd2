"""The kMC engine (dbkmc.kmc.engine): sampling, clock, numerics, batching, several vacancies, restarts."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dbkmc.core.constants import KB_EV
from dbkmc.kmc.driver import RunHooks, Schedule, simulate
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.rng import signed as _signed, trajectory_key, uniform_reference, uniforms
from dbkmc.core.lattice import NN_VECTORS, Lattice

sys.path.insert(0, str(Path(__file__).parent))
from kmc_models import PairBondModel, pair_model  # noqa: E402

from conftest import NNK_NBMOTA as SHARED  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: one torch thread (several threads only fight over a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class FixedBarriers:
    """Barrier of path k is ``e[k]`` whatever the configuration (a clock and selection check)."""

    has_energy = False

    def __init__(self, lattice: Lattice, e):
        self.lattice, self.species, self.reach = lattice, ("A",), 1.0
        self.e = torch.as_tensor(e, dtype=torch.float64)

    @property
    def z(self):
        return len(self.e)

    def barriers(self, digits, vacancies):
        return self.e.expand(*vacancies.shape, len(self.e)).clone()


def test_uniforms_match_the_python_reference():
    keys = [trajectory_key(7, i) for i in (0, 1, 5)]
    u = uniforms(torch.tensor([_signed(k) for k in keys]), 1000, 4)
    for t, key in enumerate(keys):
        for s in range(4):
            for j in range(2):
                assert u[t, s, j].item() == uniform_reference(key, 1000 + s, j)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert trajectory_key(7, 0) != trajectory_key(8, 0) != trajectory_key(7, 1)


@pytest.mark.parametrize("temperature", [100.0, 3000.0])
def test_event_choice_and_clock_follow_the_rates(temperature):
    """One step of 4000 independent trajectories: path frequencies and mean dt against the exact rates.

    At 100 K the barriers (5.9 to 6.6 eV) give exp(-E/kT) ~ 1e-298 and below: zero in
    the network's float32 and near the float64 limit, while the clock reaches 1e284 s.
    The engine forms the weights after subtracting E_min, so they lie in (0, 1].
    """
    lat = Lattice("bcc", 2, 3.0)
    e = np.array([5.9, 5.905, 5.91, 5.95, 6.0, 6.2, 6.4, 6.6]) if temperature == 100.0 else \
        np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    if temperature == 100.0:
        assert torch.exp(torch.tensor(-e.min() / (KB_EV * temperature), dtype=torch.float32)) == 0.0
    model = FixedBarriers(lat, e)
    digits = np.ones(lat.n_sites, dtype=np.int64)
    digits[0] = 0
    n = 4000
    eng = KMC(model, digits, [temperature] * n, seed=11)
    eng.run(1)
    vac = eng.vacancies[:, 0].numpy()
    paths = np.array([np.flatnonzero(lat.neighbors[0] == v)[0] for v in vac])
    beta = 1.0 / (KB_EV * temperature)
    logw = -(e - e.min()) * beta
    p = np.exp(logw) / np.exp(logw).sum()
    counts = np.bincount(paths, minlength=8)
    expected = n * p
    big = expected > 5
    chi2 = (((counts - expected) ** 2 / expected)[big]).sum()
    assert chi2 < 30.0, (counts, expected)  # ~ chi2 with <= 7 dof: p < 1e-4
    assert counts[~big].sum() <= 5 + 5 * math.sqrt(max(expected[~big].sum(), 1.0))
    # mean residence time 1/R with R = nu sum exp(-E/kT), computed in log space
    log_r = math.log(1e13) - e.min() * beta + math.log(np.exp(logw).sum())
    mean_dt = eng.time.mean().item()
    assert np.all(np.isfinite(eng.time.numpy())) and eng.time.min().item() >= 0.0
    assert abs(math.log(mean_dt) + log_r) < 5.0 / math.sqrt(n)


def _all_states(lat: Lattice, n_b: int) -> np.ndarray:
    """Every arrangement of one vacancy and ``n_b`` B atoms (digit 2) among A atoms (digit 1)."""
    n = lat.n_sites
    states = []
    for v in range(n):
        rest = [s for s in range(n) if s != v]
        for b_sites in itertools.combinations(rest, n_b):
            d = np.ones(n, dtype=np.int64)
            d[v] = 0
            d[list(b_sites)] = 2
            states.append(d)
    return np.array(states)


def test_detailed_balance_model_samples_the_boltzmann_distribution():
    """Residence-time averages of a detailed-balance model equal exact Boltzmann averages.

    3x3x3 bcc (54 sites), one vacancy, two B atoms: 74412 states enumerated exactly.
    The 128 trajectories start from states drawn from the Boltzmann distribution, so
    any bias would come from the dynamics (event choice, clock, swap), not a burn-in.
    """
    lat = Lattice("bcc", 3, 3.0)
    model = pair_model(lat, n_species=2, seed=3, scale=0.02)
    temperature = 600.0
    states = _all_states(lat, 2)
    energies = model.energy(torch.as_tensor(states)).numpy()

    def boltzmann(t):
        w = np.exp(-(energies - energies.min()) / (KB_EV * t))
        return w / w.sum()

    exact = float((energies * boltzmann(temperature)).sum())
    n_traj, n_steps = 128, 800
    start = states[np.random.default_rng(5).choice(len(states), n_traj, p=boltzmann(temperature))]
    eng = KMC(model, start, [temperature] * n_traj, seed=5)
    acc_e = torch.zeros(n_traj, dtype=torch.float64)
    acc_t = torch.zeros(n_traj, dtype=torch.float64)
    for _ in range(n_steps):
        e_now = model.energy(eng.digits)
        t0 = eng.time.clone()
        eng.run(1)
        dt = eng.time - t0
        acc_e += e_now * dt
        acc_t += dt
    per_traj = (acc_e / acc_t).numpy()
    mean, sem = per_traj.mean(), per_traj.std(ddof=1) / math.sqrt(n_traj)
    assert abs(mean - exact) < 4 * sem, (mean, exact, sem)
    # the check can tell temperatures apart
    assert abs(float((energies * boltzmann(2 * temperature)).sum()) - exact) > 5 * sem


def test_same_seed_same_trajectory_independent_of_the_batch():
    lat = Lattice("bcc", 4, 3.2)
    model = pair_model(lat, n_species=3, seed=1)
    rng = np.random.default_rng(0)
    d = rng.integers(1, 4, lat.n_sites)
    d[[0, 9]] = 0
    batch = KMC(model, d, [400.0, 900.0, 1500.0], seed=42)
    batch.run(300)
    again = KMC(model, d, [400.0, 900.0, 1500.0], seed=42)
    again.run(300)
    assert torch.equal(batch.digits, again.digits) and torch.equal(batch.time, again.time)
    alone = KMC(model, d, [900.0], seed=42, trajectory_ids=[1])
    alone.run(300)
    assert torch.equal(alone.digits[0], batch.digits[1]) and torch.equal(alone.time[0], batch.time[1])
    other = KMC(model, d, [900.0], seed=43, trajectory_ids=[1])
    other.run(300)
    assert not torch.equal(other.digits[0], batch.digits[1])


def test_several_vacancies_update_only_changed_barriers_exactly():
    lat = Lattice("bcc", 5, 3.2)
    model = pair_model(lat, n_species=3, seed=2)
    rng = np.random.default_rng(4)
    d = rng.integers(1, 4, lat.n_sites)
    d[rng.choice(lat.n_sites, 4, replace=False)] = 0
    eng = KMC(model, d, [600.0, 2500.0], seed=1, block=64)
    counts0 = [np.bincount(d, minlength=4)] * 2
    calls0, evaluated0 = model.calls, model.evaluated
    eng.run(300)
    calls, evaluated = model.calls - calls0, model.evaluated - evaluated0
    # the cached barriers equal a from-scratch evaluation of every vacancy
    assert torch.equal(eng.barriers, model.barriers(eng.digits, eng.vacancies))
    # atoms are conserved and no atom ever jumped into a vacancy-vacancy path
    for t in range(2):
        assert np.array_equal(np.bincount(eng.digits[t].numpy(), minlength=4), counts0[t])
        assert set(torch.nonzero(eng.digits[t] == 0)[:, 0].tolist()) == set(eng.vacancies[t].tolist())
    # one model call per step, for the moved vacancy and those within reach of the swap only
    assert calls == 300 and eng.path == "several vacancies"
    assert 300 * 2 <= evaluated < 300 * 2 * 4


def test_a_vacancy_surrounded_by_vacancies_cannot_jump_into_them():
    lat = Lattice("bcc", 3, 3.2)
    model = pair_model(lat, n_species=1, seed=0)
    d = np.ones(lat.n_sites, dtype=np.int64)
    d[0] = 0
    d[lat.neighbors[0][:7]] = 0  # 7 of the 8 neighbours of site 0 are vacancies
    eng = KMC(model, d, [1000.0], seed=0)
    eng.run(1)
    moved = set(np.flatnonzero(eng.digits[0].numpy() == 0)) ^ set(np.flatnonzero(d == 0))
    assert len(moved) == 2  # one atom moved into one vacancy
    (new_atom_site,) = [s for s in moved if eng.digits[0, s] != 0]
    assert new_atom_site in set(np.flatnonzero(d == 0))


@pytest.mark.parametrize("n_vac", [1, 2])
def test_checkpoint_resume_ends_in_the_uninterrupted_state(tmp_path, n_vac):
    lat = Lattice("bcc", 4, 3.2)
    model = pair_model(lat, n_species=3, seed=5)
    rng = np.random.default_rng(1)
    d = rng.integers(1, 4, lat.n_sites)
    d[rng.choice(lat.n_sites, n_vac, replace=False)] = 0
    sched = Schedule(n_jumps=1000, record=[0, 150, 500, 1000], snapshots=[], checkpoint_every=300)

    def hooks():
        return RunHooks(record=lambda e: [{"jumps": e.step, "time": e.time.tolist(),
                                           "digits": e.digits.sum().item()}])

    ref = KMC(model, d, [500.0, 2000.0], seed=9, block=128)
    rows_ref = simulate(ref, sched, hooks(), progress=False)

    ck = tmp_path / "ck.pt"
    first = KMC(model, d, [500.0, 2000.0], seed=9, block=128)
    with pytest.raises(KeyboardInterrupt):
        simulate(first, sched, hooks(), checkpoint=ck, fingerprint="x", progress=False, stop_after=500)
    assert ck.is_file() and first.step == 600
    second = KMC(model, d, [500.0, 2000.0], seed=9, block=128)
    rows = simulate(second, sched, hooks(), checkpoint=ck, fingerprint="x", progress=False)
    assert torch.equal(second.digits, ref.digits)
    assert torch.equal(second.time, ref.time)
    assert torch.equal(second.barriers, ref.barriers)
    assert rows == rows_ref
    # a checkpoint of another run is not resumed
    third = KMC(model, d, [500.0, 2000.0], seed=9, block=128)
    simulate(third, sched, hooks(), checkpoint=ck, fingerprint="other", progress=False)
    assert torch.equal(third.digits, ref.digits)


def test_pair_model_local_path_matches_the_neighbour_list():
    """The stand-in model is right: its barrier is E_KRA + dE/2 with dE from an explicit swap."""
    lat = Lattice("fcc", 3, 3.6)
    model = pair_model(lat, n_species=2, seed=8)
    rng = np.random.default_rng(2)
    d = rng.integers(1, 3, lat.n_sites)
    d[5] = 0
    e = model.barriers(torch.as_tensor(d)[None], torch.tensor([[5]]))[0, 0].numpy()
    for k in range(12):
        t = lat.neighbors[5, k]
        after = d.copy()
        after[5], after[t] = d[t], 0
        de = (model.energy(torch.as_tensor(after)[None]) - model.energy(torch.as_tensor(d)[None])).item()
        assert e[k] == pytest.approx(model.e_kra[d[t]].item() + de / 2, abs=1e-12)
    assert len(NN_VECTORS["fcc"]) == 12


# --- NNK rate model on the engine ---------------------------------------------------


@pytest.fixture(scope="module")
def nnk_1024():
    from dbkmc.neb.dump import read_dump, to_lattice
    from dbkmc.kmc.rates.base import build_rate_model

    st = to_lattice(read_dump(SHARED / "nbmota_1024.dump"))
    spec = {"kind": "nnk_published", "weights": str(SHARED / "weights.npy"), "species": ["Nb", "Mo", "Ta"]}
    return st, build_rate_model(spec, st.lattice, ["Nb", "Mo", "Ta"])


def test_nnk_local_path_matches_the_published_encoder(nnk_1024):
    st, model = nnk_1024
    from dbkmc.core.stencil import Stencil

    sites = torch.arange(0, 1024, 7)
    digits = torch.as_tensor(st.types).repeat(len(sites), 1)
    digits[torch.arange(len(sites)), sites] = 0
    ref = model.barriers(digits, sites[:, None])[:, 0]  # dbkmc.nnk.networks encoder + network as published
    local = digits.gather(1, Stencil(st.lattice, model.stencil_offsets).sites(sites))
    fast = model.barriers_local(local)
    assert ref.shape == fast.shape == (len(sites), 8)
    assert torch.allclose(fast.double(), ref.double(), atol=2e-6, rtol=0)
    assert 1.0 < float(ref.min()) and float(ref.max()) < 3.0


def test_nnk_fused_loop_equals_the_python_loop(nnk_1024):
    st, model = nnk_1024
    d = st.types.copy()
    d[100] = 0
    fused = KMC(model, d, [300.0, 1100.0, 3000.0], seed=3, fused=True)
    plain = KMC(model, d, [300.0, 1100.0, 3000.0], seed=3, fused=False)
    assert "TorchScript" in fused.path and "Python" in plain.path
    fused.run(600)
    plain.run(600)
    assert torch.equal(fused.digits, plain.digits)
    assert torch.equal(fused.time, plain.time)
    assert torch.equal(fused.barriers, plain.barriers)
    # barriers of the state equal a fresh evaluation through the published encoder
    ref = model.barriers(fused.digits, fused.vacancies)
    assert torch.allclose(fused.barriers.double(), ref.double(), atol=2e-6, rtol=0)


def test_nnk_exact_barrier_cache(nnk_1024, tmp_path):
    st, model = nnk_1024
    d = st.types.copy()
    d[100] = 0
    temps = [300.0, 1100.0, 3000.0]
    cached = KMC(model, d, temps, seed=3, cache=8)
    cached_py = KMC(model, d, temps, seed=3, cache=8, fused=False)
    plain = KMC(model, d, temps, seed=3)
    for eng in (cached, cached_py, plain):
        eng.run(600)
    assert cached.cache_hits == cached_py.cache_hits > 600  # the vacancy revisits states, most at 300 K
    assert torch.equal(cached.digits, cached_py.digits) and torch.equal(cached.time, cached_py.time)
    # a hit returns what the network gave for that neighbourhood: same jumps as without the cache
    assert torch.equal(cached.digits, plain.digits)
    assert torch.allclose(cached.time, plain.time, rtol=1e-5, atol=0)
    assert torch.allclose(cached.barriers.double(), model.barriers(cached.digits, cached.vacancies).double(),
                          atol=2e-6, rtol=0)
    # checkpoint/resume carries the cache: the resumed run equals the uninterrupted one bit for bit
    sched = Schedule(n_jumps=900, record=[900], snapshots=[], checkpoint_every=300)
    hooks = RunHooks(record=lambda e: [])
    ref = KMC(model, d, temps, seed=3, cache=8)
    simulate(ref, sched, hooks, progress=False)
    ck = tmp_path / "ck.pt"
    with pytest.raises(KeyboardInterrupt):
        simulate(KMC(model, d, temps, seed=3, cache=8), sched, hooks, checkpoint=ck, fingerprint="c",
                 progress=False, stop_after=300)
    resumed = KMC(model, d, temps, seed=3, cache=8)
    simulate(resumed, sched, hooks, checkpoint=ck, fingerprint="c", progress=False)
    assert torch.equal(resumed.digits, ref.digits) and torch.equal(resumed.time, ref.time)
    assert resumed.cache_hits == ref.cache_hits


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_our_trained_nnk_checkpoints_drive_the_engine(tmp_path, arch):
    """An fcc network saved by the NNK training code: folded local path equals the encoder path."""
    from dbkmc.nnk import networks as nnk
    from dbkmc.nnk.training import NNKBarrierModel, NNKTrainConfig, build_network, save_nnk
    from dbkmc.kmc.rates.base import build_rate_model

    lat = Lattice("fcc", 4, 3.6)
    cutoff = 5.2
    grid = nnk.NNKEncoder(lat, cutoff=cutoff).grid
    cfg = NNKTrainConfig(arch=arch, mlp_hidden=(32, 16), cnn_channels=(4, 4), cnn_dense=8)
    torch.manual_seed(0)
    net = build_network(arch, grid, cfg)
    with torch.no_grad():  # non-trivial batch-norm statistics, so the folding is exercised
        for mod in net.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm3d)):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    model = NNKBarrierModel(net, target_mean=0.9, target_std=0.2).eval()
    path = tmp_path / "model.pt"
    save_nnk(model, path, arch=arch, grid=grid, cutoff=cutoff, kind="fcc", species=["Cu", "Ni"], config=cfg)
    rm = build_rate_model({"kind": "nnk_trained", "checkpoint": str(path)}, lat, ["Cu", "Ni"])
    rng = np.random.default_rng(1)
    d = rng.integers(1, 3, lat.n_sites)
    d[7] = 0
    ref = rm.barriers(torch.as_tensor(d)[None], torch.tensor([[7]]))  # encoder + network as trained
    assert ref.shape == (1, 1, 12)
    eng = KMC(rm, d, [900.0], seed=2)
    assert torch.allclose(eng.barriers.double(), ref.double(), atol=1e-5, rtol=0)
    assert ("local MLP" in eng.path) == (arch == "mlp")
    eng.run(50)
    assert torch.allclose(eng.barriers.double(), rm.barriers(eng.digits, eng.vacancies).double(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="species"):
        build_rate_model({"kind": "nnk_trained", "checkpoint": str(path)}, lat, ["Ni", "Cu"])


def test_time_series_rows_carry_energy_where_the_model_defines_it():
    from dbkmc.stages.kmc import observables, trajectories

    lat = Lattice("bcc", 3, 3.2)
    model = pair_model(lat, n_species=2, seed=1)
    d = np.random.default_rng(0).integers(1, 3, lat.n_sites)
    d[3] = 0
    eng = KMC(model, d, [700.0, 1400.0], seed=1)
    eng.run(40)
    rows = observables(eng, trajectories([700.0, 1400.0], 1), lat, ["X0", "X1"], model)
    energy = model.energy(eng.digits).numpy()
    assert [r["energy_eV"] for r in rows] == pytest.approx(energy.tolist())
    assert [r["jumps"] for r in rows] == [40, 40] and rows[1]["time_s"] == eng.time[1].item()
    assert {"delta_X0X1", "alpha_X0X1"} <= set(rows[0])
