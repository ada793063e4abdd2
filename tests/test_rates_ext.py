"""Detailed-balance rates with M_EXT energies (dbkmc.kmc.rates.extensive_db): exact incremental dE, detailed balance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.rates.base import RateModel
from dbkmc.kmc.rates.extensive_db import ExtensiveRateModel, load_extensive
from kmc_models import random_ensemble

P = AEVParams(r_cut=4.0, eta_R=4.0, eta_A=2.0, zeta=8.0, R_s=(1.0, 2.0, 3.0), R_s_angular=(1.5, 3.0),
              theta_s=(0.3, 1.2, 2.2, 3.0))
LATTICES = {"fcc": Lattice("fcc", 5, 3.6), "bcc": Lattice("bcc", 6, 2.87)}
SPECIES = ("Cu", "Ni")


def make_model(kind: str, radial_shells: int = 3, triplet_shells: int = 2, compiled: bool = True
               ) -> ExtensiveRateModel:
    """Untrained float64 M_EXT + KRA ensembles; ``compiled``: the compiled one-vacancy CPU path on (the default)
    or only the tensor path."""
    lat = LATTICES[kind]
    desc = SiteDescriptors(lat, len(SPECIES), radial_shells, triplet_shells)
    energy = random_ensemble("M_EXT", len(SPECIES) + desc.n_features, 1, n_species=len(SPECIES))
    kra = random_ensemble("KRA", P.dim(len(SPECIES)), 2)
    return ExtensiveRateModel(energy, desc, kra, P, lat, SPECIES, compiled=compiled)


def random_digits(lat: Lattice, t: int, n_vac: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    d = rng.integers(1, 3, size=(t, lat.n_sites))
    for row in d:
        row[rng.choice(lat.n_sites, n_vac, replace=False)] = 0
    return torch.as_tensor(d)


def reverse_path(kind: str, k: int) -> int:
    nn = NN_VECTORS[kind]
    return int(np.flatnonzero((nn == -nn[k]).all(1))[0])


@pytest.mark.parametrize("kind,n_vac,shells", [("fcc", 1, (3, 2)), ("fcc", 3, (2, 2)), ("bcc", 2, (3, 2)),
                                               ("bcc", 1, (4, 0))])
def test_incremental_dE_equals_scratch_after_many_jumps(kind: str, n_vac: int, shells: tuple[int, int]) -> None:
    """After sixty jumps (and one foreign edit) the cached dE equal a fresh model's, and E(B) - E(A), to 1e-10.

    Sixty jumps per trajectory (was 120, test time): a missed or wrong cache update is an O(0.01 eV) error, not
    a drift that grows with the number of jumps (float64 round-off stays ~1e-14), so the 1e-10 checks after
    the first half, after the foreign edit and at the end catch the same bugs; each step costs one
    energy_changes call, the whole cost of this test.
    """
    lat = LATTICES[kind]
    model = make_model(kind, *shells)
    assert isinstance(model, RateModel)
    digits = random_digits(lat, 2, n_vac, seed=n_vac)
    rng = np.random.default_rng(5)
    for step in range(60):
        vac = torch.stack([torch.nonzero(row == 0)[:, 0] for row in digits])
        d_e = model.energy_changes(digits, vac)
        if step in (30, 59):
            fresh = make_model(kind, *shells)
            torch.testing.assert_close(d_e, fresh.energy_changes(digits, vac), rtol=0, atol=1e-10)
        if step == 40:          # a change that is no jump (e.g. another caller): found and repaired
            site = int(torch.nonzero(digits[0] != 0)[0, 0])
            digits[0, site] = 3 - digits[0, site]
            continue
        for t in range(2):       # each trajectory makes one random jump of a random vacancy
            i = int(rng.integers(n_vac))
            v = int(vac[t, i])
            k = int(rng.integers(model.z))
            h = int(lat.neighbors[v, k])
            if digits[t, h] != 0:
                digits[t, v], digits[t, h] = digits[t, h], 0
    vac = torch.stack([torch.nonzero(row == 0)[:, 0] for row in digits])
    d_e = model.energy_changes(digits, vac)
    e_a = model.energy(digits)
    for k in range(model.z):
        v, h = int(vac[0, 0]), int(lat.neighbors[int(vac[0, 0]), k])
        if digits[0, h] == 0:
            continue
        after = digits[:1].clone()
        after[0, v], after[0, h] = digits[0, h], 0
        torch.testing.assert_close(d_e[0, 0, k], (model.energy(after) - e_a[0])[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_detailed_balance_exact(kind: str) -> None:
    """E_b(A->B) - E_b(B->A) == E(B) - E(A) for every jump, two vacancies."""
    lat = LATTICES[kind]
    model = make_model(kind)
    digits = random_digits(lat, 1, 2, seed=9)[0]
    vac = torch.nonzero(digits == 0)[:, 0]
    forward = model.barriers(digits[None], vac[None])[0]
    e_a = model.energy(digits[None])[0]
    for i, v in enumerate(vac.tolist()):
        other = int(vac[1 - i])
        for k, h in enumerate(lat.neighbors[v].tolist()):
            if digits[h] == 0:
                continue
            after = digits.clone()
            after[v], after[h] = digits[h], 0
            back = model.barriers(after[None], torch.tensor([[h, other]]))[0, 0, reverse_path(kind, k)]
            d_e = model.energy(after[None])[0] - e_a
            torch.testing.assert_close(forward[i, k] - back, d_e, rtol=0, atol=1e-10)
            assert abs(float(d_e)) > 1e-6


def ill_conditioned_float32_model(compiled: bool) -> ExtensiveRateModel:
    """float32 members whose KRA standardises its inputs by stds at float32 resolution (as trained ensembles
    did, on the tiny |TW_A - TW_B| components): rounding-level input differences move E_KRA by meV."""
    lat = LATTICES["fcc"]
    desc = SiteDescriptors(lat, len(SPECIES), 3, 2)
    energy = random_ensemble("M_EXT", len(SPECIES) + desc.n_features, 1, n_species=len(SPECIES)).astype(torch.float32)
    kra = random_ensemble("KRA", P.dim(len(SPECIES)), 2)
    kra.buffers["energy.x_std"] = torch.full_like(kra.buffers["energy.x_std"], 1e-8)
    return ExtensiveRateModel(energy, desc, kra.astype(torch.float32), P, lat, SPECIES, compiled=compiled)


@pytest.mark.parametrize("compiled", [True, False])
def test_detailed_balance_survives_float32_members(compiled: bool) -> None:
    """E_KRA(A->B) == E_KRA(B->A) bit for bit, jumps across the periodic boundary included: TW_B of the reverse
    jump is formed from the other state, so the fingerprints are contracted in float64 and rounded to the
    members' dtype before the symmetric input (a float32 contraction broke this by up to 20 meV)."""
    lat = LATTICES["fcc"]
    digits = random_digits(lat, 1, 1, seed=3)[0]
    digits[int(torch.nonzero(digits == 0)[0, 0])] = 1
    v = 5                                                        # a corner site: paths wrap around the cell
    digits[v] = 0
    model = ill_conditioned_float32_model(compiled)
    kra_f, d_e = model.terms(digits[None], torch.tensor([[v]]))
    assert float(kra_f.std()) > 1e-3                              # the KRA term is not a constant
    for k, h in enumerate(lat.neighbors[v].tolist()):
        after = digits.clone()
        after[v], after[h] = digits[h], 0
        kra_b, d_e_b = ill_conditioned_float32_model(compiled).terms(after[None], torch.tensor([[h]]))
        assert float(kra_f[0, 0, k]) == float(kra_b[0, 0, reverse_path("fcc", k)]), k
        assert abs(float(d_e[0, 0, k] + d_e_b[0, 0, reverse_path("fcc", k)])) < 1e-6   # float32 sums


@pytest.mark.parametrize("n_vac", [1, 2])
def test_engine_run_keeps_the_cache_exact(n_vac: int) -> None:
    """The kMC engine (a batch of 3 temperatures) with the incremental model: its barriers equal a fresh model's."""
    lat = LATTICES["fcc"]
    model = make_model("fcc")
    digits = random_digits(lat, 1, n_vac, seed=2)[0]
    kmc = KMC(model, digits, [600.0, 900.0, 1200.0], seed=1)
    kmc.run(50)  # 50 steps (was 100, test time): a stale cache entry shows at 1e-10 after any step, not only late
    fresh = make_model("fcc", compiled=False)
    torch.testing.assert_close(kmc.barriers, fresh.barriers(kmc.digits, kmc.vacancies), rtol=0, atol=1e-10)


def test_build_from_checkpoints(tmp_path) -> None:
    """kmc.rate_model {kind: detailed_balance, energy, kra} loads M_EXT + KRA folders through the registry."""
    from dbkmc.detailed_balance.training import save_ensemble
    from dbkmc.kmc.rates.base import build_rate_model

    ref = make_model("fcc", 2, 2)
    save_ensemble(tmp_path / "M_EXT", ref.energy_ensemble, P, list(SPECIES),
                  extra={"lattice": "fcc", "ext_shells": {"radial_shells": 2, "triplet_shells": 2}})
    save_ensemble(tmp_path / "KRA", ref.kra, P, list(SPECIES))
    spec = {"kind": "detailed_balance", "energy": str(tmp_path / "M_EXT"), "kra": str(tmp_path / "KRA"), "kol": None}
    model = build_rate_model(spec, LATTICES["fcc"], SPECIES)
    assert isinstance(model, ExtensiveRateModel)
    digits = random_digits(LATTICES["fcc"], 2, 1, seed=1)
    vac = torch.nonzero(digits == 0)[:, 1].reshape(-1, 1)
    # float32 site energies by default (the members' training precision); float64 on request
    torch.testing.assert_close(model.barriers(digits, vac), ref.barriers(digits, vac), rtol=0, atol=1e-5)
    exact = load_extensive(spec["energy"], spec["kra"], LATTICES["fcc"], SPECIES, dtype=torch.float64)
    torch.testing.assert_close(exact.barriers(digits, vac), ref.barriers(digits, vac), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="kmc.rate_model.energy"):
        build_rate_model({**spec, "kol": str(tmp_path / "M_EXT")}, LATTICES["fcc"], SPECIES)
    with pytest.raises(ValueError, match="kmc.rate_model.energy"):
        build_rate_model(spec, LATTICES["fcc"], ("Ni", "Cu"))


def test_config_energy_field() -> None:
    """kmc.rate_model.energy: {run} expands; exactly one of kol / energy; an M_KOL folder is refused as energy."""
    import copy

    import yaml

    from dbkmc.core.config import ConfigError, validate_config
    from snakemake_helpers import REPO

    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    name = next(n for n, r in demo["kmc"]["runs"].items() if r["rate_model"]["kind"] == "detailed_balance")
    cfg = copy.deepcopy(demo)
    cfg["kmc"]["runs"][name]["rate_model"] = {"kind": "detailed_balance", "energy": "results/{run}/models/M_EXT",
                                              "kra": "results/{run}/models/KRA"}
    rm = validate_config(cfg)["kmc"]["runs"][name]["rate_model"]
    assert rm["energy"] == f"results/{demo['run']}/models/M_EXT" and rm["kol"] is None
    both = copy.deepcopy(cfg)
    both["kmc"]["runs"][name]["rate_model"]["kol"] = "results/{run}/models/M_KOL"
    with pytest.raises(ConfigError, match="exactly one source of state energies"):
        validate_config(both)
    wrong = copy.deepcopy(cfg)
    wrong["kmc"]["runs"][name]["rate_model"]["energy"] = "results/{run}/models/M_KOL"
    with pytest.raises(ConfigError, match="energy needs M_EXT"):
        validate_config(wrong)


def test_dry_run_trains_m_ext_before_kmc(tmp_path) -> None:
    """Snakemake's DAG: a kMC run with energy: results/{run}/models/M_EXT needs that run's M_EXT and KRA members."""
    import subprocess

    import yaml

    from snakemake_helpers import REPO, SNAKEMAKE, planned_jobs

    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    name = next(n for n, r in demo["kmc"]["runs"].items() if r["rate_model"]["kind"] == "detailed_balance")
    demo["kmc"]["runs"][name]["rate_model"] = {"kind": "detailed_balance", "energy": "results/{run}/models/M_EXT",
                                               "kra": "results/{run}/models/KRA"}
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(REPO / "data")
    configfile = tmp_path / "ext.yaml"
    configfile.write_text(yaml.safe_dump(demo, sort_keys=False))
    target = f"results/{demo['run']}/kmc/{name}/timeseries.parquet"
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
                           str(configfile), "--cores", "2", "-n", "--", target],
                          capture_output=True, text=True, timeout=300, cwd=work)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = planned_jobs(out)
    assert jobs.get("train") == 2 and jobs.get("kmc") == 1, jobs        # M_EXT and KRA, then the kMC run
    assert f"results/{demo['run']}/models/M_EXT/member_0.pt" in out and "models/M_KOL/member_0.pt" not in out
