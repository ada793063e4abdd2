"""Vibrational prefactor models (dbkmc.detailed_balance.prefactors), without LAMMPS.

A synthetic prefactor table from real reference events (an extensive state term and a symmetric saddle
term, :mod:`dbkmc.detailed_balance.prefactors.synthetic`) stands in for the rule hessians. The exactness
properties hold for any weights, so they are checked on random ensembles (as tests/test_extensive_loops.py
does for M_EXT); one small training run goes through the stage's steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.aev import AEVParams
from dbkmc.detailed_balance.ext_fingerprints import DEFAULT_SHELLS
from dbkmc.detailed_balance.markov import enumerate_states
from dbkmc.detailed_balance.models import Ensemble, build_model
from dbkmc.detailed_balance.prefactors.markov import prefactor_markov_check
from dbkmc.detailed_balance.prefactors.metrics import meyer_neldel_fit, regression_metrics
from dbkmc.detailed_balance.prefactors.model import PrefactorModel, direct_ln_nu, load_prefactor_model
from dbkmc.detailed_balance.prefactors.surrogate import descriptor_matrix, fit_surrogate
from dbkmc.detailed_balance.prefactors.synthetic import synthetic_prefactors
from dbkmc.detailed_balance.prefactors.targets import as_model_events, check_prefactors
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
from dbkmc.detailed_balance.training import LoadedModel, split_events

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference_cuni"
SPECIES = ["Cu", "Ni"]
AEV = AEVParams(r_cut=4.2, R_s=(1.0, 2.0, 3.0, 4.0), R_s_angular=(1.5, 3.0), theta_s=(0.4, 1.2, 2.0, 2.8))


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    """60 reference events per composition (4x4x4 fcc Cu-Ni)."""
    e = pd.read_parquet(REFERENCE / "events.parquet")
    return e.groupby("composition", group_keys=False).head(60).reset_index(drop=True)


@pytest.fixture(scope="module")
def table(events) -> pd.DataFrame:
    return synthetic_prefactors(events, seed=3)


def random_pre_s(n_members: int = 2) -> LoadedModel:
    """An untrained PRE_S (M_EXT) with site terms of order one (dS of a few units, like ln nu sums)."""
    d = SiteDescriptors(Lattice("fcc", 4, 3.6), 2).n_features
    members = []
    for k in range(n_members):
        torch.manual_seed(10 + k)
        m = build_model("M_EXT", 2 + d, hidden=(16, 16), dropout=0.0, n_species=2)
        with torch.no_grad():
            m.x_std.fill_(20.0)
            m.e_scale.fill_(20.0)
        members.append(m.eval())
    return LoadedModel(Ensemble(members), AEV, SPECIES, {"lattice": "fcc", "ext_shells": dict(DEFAULT_SHELLS)})


def random_tw(kind: str, shift: float, scale: float, seed: int) -> LoadedModel:
    """An untrained KRA or M_NC ensemble on TW fingerprints, output ``shift + scale * net``."""
    torch.manual_seed(seed)
    m = build_model(kind, AEV.dim(2), hidden=(8,), dropout=0.0)
    with torch.no_grad():
        m.energy.y_shift.fill_(shift)
        m.energy.y_scale.fill_(scale)
        m.energy.x_std.fill_(5.0)
    return LoadedModel(Ensemble([m.eval()]), AEV, SPECIES, {})


def test_synthetic_table_is_consistent_and_renamed_columns_follow_the_contract(table):
    check_prefactors(table)
    renamed = as_model_events(table)
    np.testing.assert_array_equal(renamed["dE"], table["dS"])
    np.testing.assert_array_equal(renamed["E_KRA"], table["S_KRA"])
    np.testing.assert_array_equal(renamed["barrier_forward"], -table["ln_nu_AB"])
    np.testing.assert_array_equal(renamed["barrier_backward"], -table["ln_nu_BA"])
    np.testing.assert_array_equal(renamed["energy_dE"], table["dE"])
    np.testing.assert_allclose(table["ln_nu_AB"] - table["ln_nu_BA"], table["S_A"] - table["S_B"], atol=1e-9)
    broken = table.assign(ln_nu_AB=table["ln_nu_AB"] + 0.1)
    with pytest.raises(ValueError, match="ln_nu_AB = S_A - S_saddle"):
        check_prefactors(broken)


def test_renaming_keeps_the_training_split_of_the_dE_models(events, table):
    renamed = as_model_events(table)
    for seed in (0, 7):
        a = split_events(list(events["event_id"]), list(events["composition"]), (0.75, 0.15, 0.10), seed)
        b = split_events(list(renamed["event_id"]), list(renamed["composition"]), (0.75, 0.15, 0.10), seed)
        for part in ("train", "val", "test"):
            np.testing.assert_array_equal(a[part], b[part])


def test_db_model_ln_nu_ab_minus_ba_is_minus_dS_for_every_event(events):
    pre = PrefactorModel(random_pre_s(), random_tw("KRA", -29.9, 0.3, 5))
    ln = pre.ln_nu(events)
    assert np.std(ln.dS) > 0.1                                    # a real test: dS is not ~0
    np.testing.assert_allclose(ln.ln_nu_AB - ln.ln_nu_BA, -ln.dS, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ln.ln_nu_AB, -(ln.S_KRA + 0.5 * ln.dS), rtol=0, atol=1e-12)
    direct = direct_ln_nu(random_tw("M_NC", 29.9, 0.5, 6), events)
    assert np.max(np.abs((direct.ln_nu_AB - direct.ln_nu_BA) + ln.dS)) > 1e-3    # no such tie


def test_markov_chain_with_db_prefactors_balances_and_the_direct_model_does_not():
    lattice = Lattice("fcc", 2, 3.6)
    start = np.zeros(lattice.n_sites, dtype=np.int8)
    start[0], start[1] = -1, 1
    space = enumerate_states(lattice, start)
    ext = random_pre_s(1)
    kra = random_tw("KRA", 0.7, 0.1, 7)
    pre = PrefactorModel(random_pre_s(1), random_tw("KRA", -29.9, 0.3, 8))
    table = prefactor_markov_check(ext, kra, pre, random_tw("M_NC", 29.9, 0.5, 9), lattice, space, 1000.0)
    rows = table.set_index("prefactor_model")
    db = rows.loc["PRE_S+PRE_KRA"]
    assert db["max_rel_flux_imbalance"] <= 1e-10
    assert db["vib_boltzmann_max_rel_dev"] <= 1e-10            # pi ∝ exp(-E/kT - S_vib)
    assert db["max_abs_ln_nu_defect"] <= 1e-10
    assert db["boltzmann_max_rel_dev"] > 1e-3                  # the prefactors do move pi
    assert db["ln_nu_std"] > 0.01
    assert rows.loc["PRE_DIRECT", "max_rel_flux_imbalance"] > 1e-6
    assert not rows.loc["PRE_DIRECT", "detailed_balance_1e-10"]
    assert rows.loc["nu=1e+13", "boltzmann_max_rel_dev"] <= 1e-10


def test_meyer_neldel_fit_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    e_b = rng.uniform(0.5, 1.2, 2000)
    ln_nu = 28.0 + e_b / 0.4 + 0.05 * rng.standard_normal(2000)
    mn = meyer_neldel_fit(ln_nu, e_b)
    assert mn.slope_per_eV == pytest.approx(2.5, abs=0.02)
    assert mn.E_MN_eV == pytest.approx(0.4, abs=0.005)
    assert mn.ln_nu0 == pytest.approx(28.0, abs=0.02)
    assert mn.r > 0.99 and mn.slope_stderr < 0.01


def test_ridge_surrogate_beats_the_mean_on_a_linear_signal():
    rng = np.random.default_rng(1)
    n = 400
    table = pd.DataFrame({"event_id": [f"e{i:04d}" for i in range(n)], "composition": ["Cu50Ni50"] * n})
    table["sna_A"] = list(rng.standard_normal((n, 8)))
    table["sna_saddle"] = list(rng.standard_normal((n, 8)))
    x = descriptor_matrix(table, "sna")
    y = 29.9 + x @ rng.normal(0, 0.3, 16) + 0.05 * rng.standard_normal(n)
    split = split_events(list(table["event_id"]), list(table["composition"]), (0.75, 0.15, 0.10), 0)
    fit = fit_surrogate(x, y, split, (1e-3, 1.0, 1e3), "sna")
    test = fit.metrics["test"]
    assert test["r2"] > 0.9 and test["rmse_over_std"] < 0.3
    mean_only = regression_metrics(y[split.test], np.full(len(split.test), y[split.train].mean()))
    assert test["rmse"] < 0.3 * mean_only["rmse"]
    assert fit.model.alpha in (1e-3, 1.0)


def test_stage_trains_pre_s_pre_kra_and_direct_on_the_renamed_table(tmp_path, events):
    from dbkmc.stages.models import fingerprints_step, train_step
    from dbkmc.stages.prefactors import direct_train_step, evaluate_step_all

    small = events.groupby("composition", group_keys=False).head(30).reset_index(drop=True)
    synthetic_prefactors(small, seed=2).to_parquet(tmp_path / "prefactors.parquet")
    from dbkmc.stages.prefactors import events_step

    events_step(tmp_path / "prefactors.parquet", REFERENCE / "dataset.json", tmp_path / "events.parquet",
                tmp_path / "dataset.json")
    fingerprints_step(tmp_path / "events.parquet", AEV.to_dict(), tmp_path / "fps.pt")
    cfg = {"hidden": [16], "dropout": 0.0, "lr": 3e-3, "weight_decay": 0.0, "batch_size": 64, "max_epochs": 3,
           "patience": 3, "n_members": 2, "seed": 0, "split": [0.6, 0.2, 0.2], "device": "cpu",
           "per_kind": {"M_EXT": {"hidden": [8], "lr_final": 1e-3}}}
    dirs = {m: tmp_path / "prefactors" / m for m in ("PRE_S", "PRE_KRA", "PRE_DIRECT")}
    train_step("M_EXT", tmp_path / "events.parquet", tmp_path / "fps.pt", cfg, dirs["PRE_S"])
    train_step("KRA", tmp_path / "events.parquet", tmp_path / "fps.pt", cfg, dirs["PRE_KRA"])
    direct_train_step(tmp_path / "events.parquet", tmp_path / "fps.pt", cfg, dirs["PRE_DIRECT"])
    metrics = {m: tmp_path / f"{m}.json" for m in dirs}
    pred = evaluate_step_all(tmp_path / "events.parquet", tmp_path / "fps.pt", dirs, cfg, metrics,
                             tmp_path / "pred.parquet")
    pre_s = json.loads(metrics["PRE_S"].read_text())
    assert {"dE", "E_KRA", "barrier_forward", "barrier_backward"} <= set(pre_s["test"])   # -ln nu as "barrier"
    assert set(pred["split"]) == {"train", "val", "test"} and len(pred) == 2 * len(small)
    pre = load_prefactor_model(tmp_path / "prefactors")
    ln = pre.ln_nu(small)
    np.testing.assert_allclose(ln.ln_nu_AB - ln.ln_nu_BA, -ln.dS, rtol=0, atol=1e-12)
    fwd = pred[pred["direction"] == "forward"].set_index("event_id").loc[[str(e) for e in small["event_id"]]]
    np.testing.assert_allclose(fwd["PRE_DB"], ln.ln_nu_AB, atol=1e-3)   # float32 evaluation vs float64
