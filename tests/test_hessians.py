"""Rule hessians with real LAMMPS: local Hessians, Vineyard prefactors, QC and rejects on a 3x3x3 Cu-Ni cell."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from dbkmc.core.config import ConfigError, validate_config
from dbkmc.core.sampling import VACANCY_CHAR, sample_events
from dbkmc.neb.cell import EnginePool
from dbkmc.neb.cineb import NEBSettings
from dbkmc.neb.event_prefactors import HessianSettings, Modes, event_prefactors, mode_problems
from dbkmc.neb.events import EventSettings, run_event
from dbkmc.neb.hessian import N_ZERO_FULL, normal_modes
from dbkmc.neb.potentials import Potential
from dbkmc.stages.hessians import hessians_collect_step, hessians_shard_step, select_events

POTENTIAL = {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
             "files": {"table": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}
NEB = {"n_images": 5, "spring": 5.0, "ftol": 0.01, "max_iter": 2000, "climb": True, "relax_ftol": 0.001,
       "relax_max_iter": 10000}
SETTINGS = EventSettings(neb=NEBSettings(**{k: NEB[k] for k in ("n_images", "spring", "ftol", "max_iter", "climb")}),
                         relax_ftol=NEB["relax_ftol"], relax_max_iter=NEB["relax_max_iter"])


def _settings(radius):
    return HessianSettings(event=SETTINGS, radius=radius, displacement=0.01, negative_tolerance=1e-3,
                           energy_tolerance=5e-3, entropy_temperature=1000.0)


@pytest.fixture(scope="module")
def pool():
    p = EnginePool(Potential.from_config("cuni_eam", POTENTIAL), ["Cu", "Ni"], NEB["n_images"])
    yield p
    p.close()


@pytest.fixture(scope="module")
def event(pool):
    """One 3x3x3 fcc Cu50Ni50 jump (107 atoms) with its NEB energies, as a dataset row."""
    ev = sample_events("t", lattice_kind="fcc", supercell=3, mode="pairs", compositions={"C": {"Cu": 0.5, "Ni": 0.5}},
                       n_events=1, seed=7, species=["Cu", "Ni"], lattice_parameters={"C": 3.5675})[0]
    row, _ = run_event(ev, pool, SETTINGS)
    assert row["status"] == "accepted"
    return row


@pytest.fixture(scope="module")
def local_row(event, pool):
    row, configs = event_prefactors(event, pool, _settings(3.0), full_check=True)
    assert row["status"] == "accepted", row["reject_reason"]
    return row


def test_minima_stable_saddle_one_unstable_mode(local_row):
    assert local_row["n_negative_A"] == 0 and local_row["n_negative_B"] == 0
    assert local_row["n_negative_saddle"] == 1
    assert local_row["min_eig_A"] > 0 and local_row["min_eig_B"] > 0 and local_row["min_eig_saddle"] < -1e-3
    assert local_row["full_status"] == "ok"
    assert local_row["max_zero_mode_full"] < 1e-6          # translations of the periodic cell
    assert 0 < local_row["n_hessian_atoms"] < 107


def test_prefactor_in_physical_range(local_row):
    for key in ("ln_nu_AB", "ln_nu_BA", "ln_nu_AB_full"):
        assert 12.0 < local_row[key] / math.log(10) < 14.0, (key, local_row[key])
    assert 0.5 < local_row["nu_unstable_THz"] < 10
    assert abs(local_row["ln_nu_AB"] - local_row["ln_nu_AB_full"]) < 1.0    # the local Hessian misses little


def test_detailed_balance_and_reverse_jump(local_row, event, pool):
    r = local_row
    assert r["ln_nu_AB"] - r["ln_nu_BA"] == pytest.approx(r["S_A"] - r["S_B"], abs=1e-9)
    assert r["dS"] == pytest.approx(r["S_B"] - r["S_A"], abs=1e-9)
    assert -(r["S_KRA"] + r["dS"] / 2) == pytest.approx(r["ln_nu_AB"], abs=1e-9)
    # the reverse jump B -> A (same region: both sites) has ln nu equal to the forward's ln nu_BA
    occ = list(event["occupation"])
    vac, hop = event["vacancy_site"], event["hop_site"]
    occ[vac], occ[hop] = occ[hop], VACANCY_CHAR
    reverse = dict(event, occupation="".join(occ), vacancy_site=hop, hop_site=vac,
                   E_A=event["E_B"], E_B=event["E_A"], event_id="t:reverse")
    back, _ = event_prefactors(reverse, pool, _settings(3.0))
    assert back["status"] == "accepted", back["reject_reason"]
    assert back["ln_nu_AB"] == pytest.approx(r["ln_nu_BA"], abs=0.02)
    assert back["ln_nu_BA"] == pytest.approx(r["ln_nu_AB"], abs=0.02)


def test_radius_covering_the_cell_is_the_full_hessian(local_row, event, pool):
    row, _ = event_prefactors(event, pool, _settings(50.0))
    assert row["n_hessian_atoms"] == 107
    for key in ("ln_nu_AB", "ln_nu_BA", "S_KRA"):
        assert row[key] == pytest.approx(local_row[f"{key}_full"], abs=1e-6)


def test_normal_modes_drop_the_zero_modes():
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    h = q @ np.diag([0.0, 0.0, 0.0, 1.0, 2.0, 3.0]) @ q.T
    modes = normal_modes(h, np.ones(2), N_ZERO_FULL, 1e-3)
    assert modes.eigenvalues == pytest.approx([1.0, 2.0, 3.0])
    assert np.abs(modes.zero_modes).max() < 1e-12
    assert len(normal_modes(h, np.ones(2), 0, 1e-3).eigenvalues) == 6


def test_mode_problems_name_the_state():
    ok, two = Modes(np.array([0.1, 0.2]), np.array([]), 1e-3), Modes(np.array([-0.1, -0.05, 0.2]), np.array([]), 1e-3)
    assert mode_problems({"A": ok, "B": ok, "saddle": two}) == ["hessian: saddle (needs exactly 1, has 2 unstable modes)"]
    assert "hessian: A" in mode_problems({"A": two, "B": ok, "saddle": Modes(np.array([-0.1, 0.2]), np.array([]), 1e-3)})[0]


def test_corrupted_events_go_to_rejects(tmp_path, event):
    not_neighbour = dict(event, event_id="t:bad_hop", hop_site=next(
        s for s in range(len(event["occupation"])) if s != event["vacancy_site"]
        and s not in _neighbours(event)))
    events = pd.DataFrame([event, not_neighbour, dict(event, event_id="t:nan", E_saddle=float("nan")),
                           dict(event, event_id="t:shifted", E_saddle=event["E_saddle"] + 0.1)])
    events.to_parquet(tmp_path / "events.parquet")
    cfg = {"dataset": "t", "n_events": 4, "radius": 3.0, "displacement": 0.01, "n_shards": 1, "full_check": 0,
           "entropy_temperature": 1000, "negative_tolerance": 1e-3, "energy_tolerance": 5e-3}
    hessians_shard_step(tmp_path / "events.parquet", None, 0, cfg, NEB, {"max_displacement": 1.0}, "cuni_eam",
                        POTENTIAL, tmp_path / "shard_0.parquet")
    out = {k: tmp_path / k for k in ("prefactors.parquet", "rejects.parquet", "qc_summary.json", "lvf.csv")}
    summary = hessians_collect_step([tmp_path / "shard_0.parquet"], cfg, *out.values())
    rejects = pd.read_parquet(out["rejects.parquet"]).set_index("event_id")
    assert set(rejects.index) == {"t:bad_hop", "t:nan", "t:shifted"}
    assert re.match(r"input: .*hop_site", rejects.loc["t:bad_hop", "reason"])
    assert rejects.loc["t:nan", "reason"] == "input: stored E_saddle is not finite"
    assert rejects.loc["t:shifted", "check"] == "neb" and "E_saddle" in rejects.loc["t:shifted", "reason"]
    accepted = pd.read_parquet(out["prefactors.parquet"])
    assert list(accepted["event_id"]) == [event["event_id"]]
    numeric = accepted.select_dtypes("number")
    assert np.isfinite(numeric.to_numpy(float)).all()
    assert len(accepted["sna_A"][0]) == 60 and np.isfinite(np.stack(accepted["aev_saddle"])).all()
    assert summary["checks"] == {"input": 2, "neb": 1, "hessian": 0, "non_finite": 0}


def _neighbours(event):
    from dbkmc.core.lattice import Lattice

    return set(Lattice(event["lattice"], event["supercell"], event["a"]).neighbors[event["vacancy_site"]])


def test_select_events_round_robin_over_compositions():
    ev = pd.DataFrame({"event_id": [f"{c}{i}" for c in "ab" for i in range(3)], "composition_key": list("aaabbb"),
                       "status": ["accepted"] * 6})
    assert list(select_events(ev, 4)["event_id"]) == ["a0", "b0", "a1", "b1"]


@pytest.mark.parametrize(("block", "key", "reason"), [
    ({"radius": 0}, "hessians.radius", "0"),
    ({"radius": -1.0}, "hessians.radius", "-1"),
    ({"dataset": "nope"}, "hessians.dataset", "unknown dataset 'nope'"),
    ({"full_check": 50, "n_events": 10}, "hessians.full_check", "exceeds n_events"),
])
def test_config_checks_name_the_key(block, key, reason):
    cfg = yaml.safe_load(open("config/prefactors_cuni.yaml"))
    cfg["hessians"].update(block)
    with pytest.raises(ConfigError, match=re.escape(f"config error at {key}: ") + ".*" + re.escape(reason)):
        validate_config(cfg)


def test_far_field_pseudo_dataset_is_a_hessians_dataset_when_switched_on():
    """config/prefactors_far_field.yaml: the far-field cells of Fig 11 get prefactors too; without far_field.enabled
    the name is unknown."""
    cfg = yaml.safe_load(open("config/prefactors_far_field.yaml"))
    assert validate_config(copy.deepcopy(cfg))["hessians"]["dataset"] == "far-field"
    cfg["far_field"]["enabled"] = False
    with pytest.raises(ConfigError, match=re.escape("config error at hessians.dataset: unknown dataset 'far-field'")):
        validate_config(cfg)


def test_shards_of_different_code_versions_are_refused(tmp_path):
    """A shard written before a column was added would leave NaN in the merged table: refuse it by name."""
    base = {"event_id": "a", "status": "accepted", "reject_reason": "", "ln_nu_AB": 29.4}
    pd.DataFrame([base]).to_parquet(tmp_path / "old.parquet")
    pd.DataFrame([dict(base, event_id="b", event_cpu_s=0.7)]).to_parquet(tmp_path / "new.parquet")
    out = [tmp_path / k for k in ("p.parquet", "r.parquet", "s.json", "l.csv")]
    with pytest.raises(ValueError, match=r"hessians: the shards do not hold the same columns \(event_cpu_s\)"):
        hessians_collect_step([tmp_path / "old.parquet", tmp_path / "new.parquet"], {}, *out)
