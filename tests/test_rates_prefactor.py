"""Vibrational prefactors in kMC rates (dbkmc.kmc.rates.prefactor): exact detailed balance, engine unchanged without."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dbkmc.core.constants import KB_EV
from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.rates.base import PrefactorRates, RateModel, build_rate_model, effective_barriers
from dbkmc.kmc.rates.extensive_db import ExtensiveRateModel
from dbkmc.kmc.rates.prefactor import PrefactorRateModel
from kmc_models import random_ensemble

P = AEVParams(r_cut=4.0, eta_R=4.0, eta_A=2.0, zeta=8.0, R_s=(1.0, 2.0, 3.0), R_s_angular=(1.5, 3.0),
              theta_s=(0.3, 1.2, 2.2, 3.0))
LAT = Lattice("fcc", 4, 3.6)
SPECIES = ("Cu", "Ni")
SHELLS = (2, 2)


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread is fastest (and fair on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ext_model(seed: int, kra_shift: float = 0.0) -> ExtensiveRateModel:
    desc = SiteDescriptors(LAT, len(SPECIES), *SHELLS)
    energy = random_ensemble("M_EXT", len(SPECIES) + desc.n_features, seed, n_species=len(SPECIES))
    kra = random_ensemble("KRA", P.dim(len(SPECIES)), seed + 1, shift=kra_shift)
    return ExtensiveRateModel(energy, desc, kra, P, LAT, SPECIES)


def make_models() -> tuple[ExtensiveRateModel, PrefactorRateModel]:
    """The barrier model alone, and the same barriers with prefactors (S_KRA around -30: nu ~ 1e13 Hz)."""
    return ext_model(1), PrefactorRateModel(ext_model(1), ext_model(3, kra_shift=-30.0))


def random_digits(t: int, n_vac: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    d = rng.integers(1, 3, size=(t, LAT.n_sites))
    for row in d:
        row[rng.choice(LAT.n_sites, n_vac, replace=False)] = 0
    return torch.as_tensor(d)


def reverse_path(k: int) -> int:
    nn = NN_VECTORS["fcc"]
    return int(np.flatnonzero((nn == -nn[k]).all(1))[0])


def log_rates(model: PrefactorRateModel, digits: torch.Tensor, vac: torch.Tensor, temperature: float,
              nu_ref: float = 1e13) -> torch.Tensor:
    """ln k of every path, through the engine's effective barriers: ln nu_ref - E_eff / k_B T."""
    e_b, ln_nu = model.rate_terms(digits, vac)
    beta = torch.full((digits.shape[0], 1), 1.0 / (KB_EV * temperature), dtype=torch.float64)
    return math.log(nu_ref) - effective_barriers(e_b, ln_nu, beta, math.log(nu_ref)) * beta.unsqueeze(2)


@pytest.mark.parametrize("seed", [4])
def test_rate_ratio_is_boltzmann_times_vibrational_weight(seed: int) -> None:
    """k_AB / k_BA == exp(-(E_B - E_A)/kT - (S_B - S_A)) to 1e-10 for every path, with E and S_vib of whole cells."""
    _, model = make_models()
    assert isinstance(model, RateModel) and isinstance(model, PrefactorRates)
    temperature = 700.0
    digits = random_digits(1, 2, seed)[0]
    vac = torch.nonzero(digits == 0)[:, 0]
    forward = log_rates(model, digits[None], vac[None], temperature)[0]
    e_a, s_a = model.energy(digits[None])[0], model.vibrational_term(digits[None])[0]
    spread = []
    for i, v in enumerate(vac.tolist()):
        other = int(vac[1 - i])
        for k, h in enumerate(LAT.neighbors[v].tolist()):
            if digits[h] == 0:
                continue
            after = digits.clone()
            after[v], after[h] = digits[h], 0
            back = log_rates(model, after[None], torch.tensor([[h, other]]), temperature)[0, 0, reverse_path(k)]
            d_e = float(model.energy(after[None])[0] - e_a)
            d_s = float(model.vibrational_term(after[None])[0] - s_a)
            assert abs(d_s) > 1e-6
            assert float(forward[i, k] - back) == pytest.approx(-d_e / (KB_EV * temperature) - d_s, rel=0, abs=1e-10)
            spread.append(float(model.log_prefactors(digits[None], vac[None])[0, i, k]))
    assert np.ptp(spread) > 1e-3 and 25 < np.mean(spread) < 35          # the prefactors vary from path to path


def test_effective_barriers_give_the_prefactor_rates() -> None:
    """nu_ref exp(-E_eff/kT) == exp(ln nu) exp(-E_b/kT) per trajectory temperature (a batch of two)."""
    rng = np.random.default_rng(0)
    e = torch.as_tensor(rng.uniform(0.2, 1.5, (2, 3, 12)))
    ln_nu = torch.as_tensor(rng.uniform(27.0, 33.0, (2, 3, 12)))
    beta = 1.0 / (KB_EV * torch.tensor([[400.0], [1500.0]], dtype=torch.float64))
    e_eff = effective_barriers(e, ln_nu, beta, math.log(1e13))
    want = ln_nu - e * beta.unsqueeze(2)
    torch.testing.assert_close(math.log(1e13) - e_eff * beta.unsqueeze(2), want, rtol=1e-14, atol=1e-12)


def test_without_prefactor_engine_is_bit_identical() -> None:
    """Without prefactors the builder gives the plain model: barriers and a trajectory are bit-identical."""
    plain, _ = make_models()
    digits = random_digits(1, 1, 2)[0]
    runs = []
    for model in (plain, ext_model(1)):
        assert not isinstance(model, PrefactorRates)
        kmc = KMC(model, digits, [600.0, 1200.0], seed=1)
        kmc.run(30)
        runs.append((kmc.digits.clone(), kmc.time.clone(), kmc.barriers.clone()))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


class ConstantPrefactor:
    """The barriers of ``inner`` with one prefactor ``nu`` on every path (a PrefactorRates test double)."""

    def __init__(self, inner: RateModel, nu: float) -> None:
        self.inner, self.log_nu = inner, math.log(nu)
        self.lattice, self.species, self.reach, self.has_energy = inner.lattice, inner.species, inner.reach, True

    @property
    def z(self) -> int:
        return self.inner.z

    def barriers(self, digits, vacancies):
        return self.inner.barriers(digits, vacancies)

    def energy(self, digits):
        return self.inner.energy(digits)

    def rate_terms(self, digits, vacancies):
        e = self.inner.barriers(digits, vacancies)
        return e, torch.full_like(e, self.log_nu, dtype=torch.float64)


@pytest.mark.parametrize("n_vac", [1, 2])
def test_engine_uses_the_prefactors(n_vac: int) -> None:
    """A prefactor of 10 nu_ref on every path: the same jumps, the clock 10x slower; random prefactors: the engine's
    barriers are the effective barriers of a fresh model at each trajectory's temperature."""
    plain, model = make_models()
    digits = random_digits(1, n_vac, 5)[0]
    ref = KMC(plain, digits, [600.0, 1200.0], seed=3)
    ten = KMC(ConstantPrefactor(ext_model(1), 1e14), digits, [600.0, 1200.0], seed=3)
    ref.run(20)
    ten.run(20)
    assert torch.equal(ref.digits, ten.digits)
    torch.testing.assert_close(ten.time * 10.0, ref.time, rtol=1e-12, atol=0)
    kmc = KMC(model, digits, [600.0, 1200.0], seed=3)
    kmc.run(20)
    _, fresh = make_models()
    e_b, ln_nu = fresh.rate_terms(kmc.digits, kmc.vacancies)
    torch.testing.assert_close(kmc.barriers, effective_barriers(e_b, ln_nu, kmc.beta, kmc.log_nu),
                               rtol=0, atol=1e-10)


def test_build_from_folder_and_errors(tmp_path) -> None:
    """rate_model.prefactor loads PRE_S + PRE_KRA through the registry; a wrong folder names the key."""
    from dbkmc.detailed_balance.training import save_ensemble

    plain, ref = make_models()
    extra = {"lattice": "fcc", "ext_shells": {"radial_shells": SHELLS[0], "triplet_shells": SHELLS[1]}}
    save_ensemble(tmp_path / "M_EXT", plain.energy_ensemble, P, list(SPECIES), extra=extra)
    save_ensemble(tmp_path / "KRA", plain.kra, P, list(SPECIES))
    pre = tmp_path / "prefactors"
    save_ensemble(pre / "PRE_S", ref.prefactor.energy_ensemble, P, list(SPECIES), extra=extra)
    save_ensemble(pre / "PRE_KRA", ref.prefactor.kra, P, list(SPECIES))
    spec = {"kind": "detailed_balance", "energy": str(tmp_path / "M_EXT"), "kra": str(tmp_path / "KRA"),
            "kol": None, "prefactor": str(pre)}
    model = build_rate_model(spec, LAT, SPECIES)
    assert isinstance(model, PrefactorRateModel)
    assert not isinstance(build_rate_model({**spec, "prefactor": None}, LAT, SPECIES), PrefactorRates)
    digits = random_digits(2, 1, 1)
    vac = torch.nonzero(digits == 0)[:, 1].reshape(-1, 1)
    torch.testing.assert_close(model.log_prefactors(digits, vac), ref.log_prefactors(digits, vac), rtol=0, atol=1e-4)
    for bad, match in ((tmp_path / "nowhere", "no folder"), (tmp_path / "KRA", "no PRE_S or PRE_KRA"),
                       (tmp_path, "no PRE_S or PRE_KRA")):
        with pytest.raises(ValueError, match=f"kmc.rate_model.prefactor: .*{match}"):
            build_rate_model({**spec, "prefactor": str(bad)}, LAT, SPECIES)
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    (swapped / "PRE_S").symlink_to(pre / "PRE_KRA")
    (swapped / "PRE_KRA").symlink_to(pre / "PRE_S")
    with pytest.raises(ValueError, match="kmc.rate_model.prefactor: .*a KRA ensemble; PRE_S needs M_EXT"):
        build_rate_model({**spec, "prefactor": str(swapped)}, LAT, SPECIES)
    with pytest.raises(ValueError, match="kmc.runs.x.rate_model.prefactor"):
        build_rate_model({**spec, "prefactor": str(tmp_path / "nowhere")}, LAT, SPECIES, key="kmc.runs.x.rate_model")


def test_config_prefactor_field(tmp_path) -> None:
    """kmc.rate_model.prefactor: {run} expands; a missing folder or one without PRE_S/PRE_KRA is refused."""
    import copy

    import yaml

    from dbkmc.core.config import ConfigError, validate_config
    from snakemake_helpers import REPO

    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    name = next(n for n, r in demo["kmc"]["runs"].items() if r["rate_model"]["kind"] == "detailed_balance")
    cfg = copy.deepcopy(demo)
    cfg["kmc"]["runs"][name]["rate_model"]["prefactor"] = "results/{run}/models/prefactors"
    rm = validate_config(cfg)["kmc"]["runs"][name]["rate_model"]
    assert rm["prefactor"] == f"results/{demo['run']}/models/prefactors"
    for folder, match in ((tmp_path / "nowhere", "no folder"), (tmp_path, "no PRE_S/ and PRE_KRA/")):
        bad = copy.deepcopy(demo)
        bad["kmc"]["runs"][name]["rate_model"]["prefactor"] = str(folder)
        with pytest.raises(ConfigError, match=f"prefactor.*{match}"):
            validate_config(bad)


def test_aging_comparison() -> None:
    """Time per jump and the half-ordering point of two aging tables (a run twice as fast in time, same in jumps)."""
    import pandas as pd

    from dbkmc.kmc.aging import aging_comparison

    jumps = np.array([0, 100, 200, 400, 800])
    ref = pd.DataFrame({"temperature_K": 500.0, "jumps": jumps, "time_s": jumps * 1e-6,
                        "delta": [0.0, 1.0, 4.0, 7.0, 8.0]})
    fast = ref.assign(time_s=ref["time_s"] / 2)
    out = aging_comparison(ref, fast).iloc[0]
    assert out["time_ratio"] == pytest.approx(0.5) and out["t_half_ratio"] == pytest.approx(0.5)
    assert out["jumps_half_ref"] == 200 and out["delta_final_other"] == 8.0      # 4 >= 8 / 2 first at 200


def test_meyer_neldel_prefactors_equal_a_temperature_shift() -> None:
    """PRE_S = c M_EXT and PRE_KRA = c KRA + s0 give ln nu = -s0 - c E_b (a Meyer-Neldel law for c < 0): the kMC at
    T with these prefactors makes the jumps of the plain kMC at 1/kT_eff = 1/kT + c, with nu' = e^{-s0}."""
    c, s0 = -2.0, -28.0

    def scaled(seed: int) -> ExtensiveRateModel:
        desc = SiteDescriptors(LAT, len(SPECIES), *SHELLS)
        energy = random_ensemble("M_EXT", len(SPECIES) + desc.n_features, seed, n_species=len(SPECIES))
        kra = random_ensemble("KRA", P.dim(len(SPECIES)), seed + 1)
        energy.buffers["e_scale"].mul_(c)
        energy.params["mu"].data.mul_(c)
        kra.buffers["energy.y_scale"].mul_(c)
        kra.buffers["energy.y_shift"].mul_(c).add_(s0)
        return ExtensiveRateModel(energy, desc, kra, P, LAT, SPECIES)

    model = PrefactorRateModel(ext_model(1), scaled(1))
    digits = random_digits(1, 1, 7)[0]
    temps = [500.0, 1000.0]
    with_pre = KMC(model, digits, temps, seed=2)
    shifted = KMC(ext_model(1), digits, [1.0 / (1.0 / t + c * KB_EV) for t in temps], nu=math.exp(-s0), seed=2)
    with_pre.run(25)
    shifted.run(25)
    assert torch.equal(with_pre.digits, shifted.digits)
    torch.testing.assert_close(with_pre.time, shifted.time, rtol=1e-10, atol=0)
