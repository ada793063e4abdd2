"""Far-field noise floor (dbkmc.detailed_balance.far_field): the redrawn cells, the statistics, and the run through the NEB stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from dbkmc.detailed_balance.far_field import FAR_FIELD_DATASET, far_field_events, frozen_sites, noise_floor
from dbkmc.core.lattice import Lattice
from dbkmc.core.sampling import occupation_from_str
from snakemake_helpers import REPO, planned_jobs, snakemake, write_config

HALF = {"Cu": 0.5, "Ni": 0.5}


def _cells(r_cuts=(3.2, 5.0), n_samples=4, seed=11, n=4):
    return far_field_events(lattice_kind="fcc", supercell=n, a=3.6, label="Cu50Ni50", fractions=HALF,
                            species=["Cu", "Ni"], r_cuts=r_cuts, n_samples=n_samples, seed=seed)


def test_the_near_field_is_frozen_and_the_far_field_redrawn():
    cells = _cells()
    lattice = Lattice("fcc", 4, 3.6)
    assert len(cells) == 8
    assert len({(c["vacancy_site"], c["hop_site"], c["path"]) for c in cells}) == 1   # one transition
    vac, hop = cells[0]["vacancy_site"], cells[0]["hop_site"]
    assert hop in lattice.neighbors[vac]
    occ = {c["event_id"]: occupation_from_str(c["occupation"]) for c in cells}
    for r_cut in (3.2, 5.0):
        mine = [occ[c["event_id"]] for c in cells if c["r_cut"] == r_cut]
        frozen = frozen_sites(lattice, vac, hop, r_cut)
        assert {c["n_frozen"] for c in cells if c["r_cut"] == r_cut} == {int(frozen.sum())}
        for o in mine:
            assert np.array_equal(o[frozen], mine[0][frozen])                 # near field identical
            assert np.bincount(o[o >= 0], minlength=2).tolist() == [128, 127]  # exact counts (tie to Cu) kept
        far_differs = [not np.array_equal(o[~frozen], mine[0][~frozen]) for o in mine[1:]]
        assert all(far_differs)                                                # far field redrawn
    # at 3.2 Å: both sites and their first shells, 13 + 13 minus the 6 they share (the two sites and
    # their 4 common neighbours); at 5 Å the second and third shells join
    assert cells[0]["n_frozen"] == 20 < cells[-1]["n_frozen"]
    assert len({c["event_id"] for c in cells}) == 8 and all(c["event_id"].startswith(FAR_FIELD_DATASET) for c in cells)


def test_redraws_are_reproducible_and_more_samples_keep_the_old_ones():
    few, more = _cells(n_samples=2), _cells(n_samples=5)
    by_id = {c["event_id"]: c for c in more}
    assert all(by_id[c["event_id"]] == c for c in few)
    assert _cells(seed=12)[0]["occupation"] != few[0]["occupation"]
    with pytest.raises(ValueError, match=r"far_field\.r_cuts: \[8\.0\]"):
        _cells(r_cuts=(3.2, 8.0))   # half the 4x4x4 box is 7.2 Å


def test_noise_floor_counts_every_cell_and_refuses_missing_ones():
    sampled = pd.DataFrame({"event_id": [f"e{i}" for i in range(7)], "r_cut": [3.2] * 4 + [6.0] * 3,
                            "n_frozen": [22] * 4 + [80] * 3})
    acc = sampled.iloc[[0, 1, 2, 4, 5, 6]].assign(dE=[0.1, 0.2, 0.4, 0.0, 0.01, 0.02],
                                                   E_KRA=[0.7, 0.8, 0.9, 0.75, 0.75, 0.76])
    rej = sampled.iloc[[3]].assign(reject_reason="neb_not_converged")
    table = noise_floor(sampled, acc, rej).set_index("r_cut_angstrom")
    assert table.loc[3.2, "n_accepted"] == 3 and table.loc[3.2, "n_rejected"] == 1
    assert np.isclose(table.loc[3.2, "std_dE_eV"], np.std([0.1, 0.2, 0.4], ddof=1))
    assert np.isclose(table.loc[6.0, "std_E_KRA_eV"], np.std([0.75, 0.75, 0.76], ddof=1))
    assert np.isclose(table.loc[6.0, "std_dE_se_eV"], table.loc[6.0, "std_dE_eV"] / 2.0)
    with pytest.raises(ValueError, match="neither accepted nor rejected"):
        noise_floor(sampled, acc.iloc[1:], rej)


def test_far_field_table_adds_the_prefactor_floor_when_the_cells_have_prefactors(tmp_path):
    """Rule far_field with the hessians of the far-field cells: the spread of ln nu_AB, S_KRA and dS per r_cut,
    counting the cells that the NEB or the Hessian QC rejected."""
    from dbkmc.core.sampling import write_events
    from dbkmc.stages.far_field import far_field_step

    ids = [f"e{i}" for i in range(8)]
    sampled = [{"event_id": e, "r_cut": 4.0 if i < 4 else 6.0, "n_frozen": 30 if i < 4 else 80} for i, e in enumerate(ids)]
    write_events(sampled, tmp_path / "sampled.jsonl")
    frame = pd.DataFrame(sampled)
    events = frame.iloc[:7].assign(dE=np.linspace(0, 0.06, 7), E_KRA=np.linspace(0.7, 0.76, 7))
    events.to_parquet(tmp_path / "events.parquet")
    frame.iloc[[7]].assign(reject_reason="neb_not_converged").to_parquet(tmp_path / "rejects.parquet")
    ln_nu = [29.3, 29.5, 29.4, 29.45, 29.40, 29.44]
    pre = events.iloc[[0, 1, 2, 3, 5, 6]].assign(ln_nu_AB=ln_nu, S_KRA=[-v for v in ln_nu], dS=0.0)
    pre.to_parquet(tmp_path / "prefactors.parquet")
    events.iloc[[4]].assign(reject_reason="saddle_modes").to_parquet(tmp_path / "pre_rejects.parquet")
    out = tmp_path / "far_field.csv"
    table = far_field_step(tmp_path / "sampled.jsonl", tmp_path / "events.parquet", tmp_path / "rejects.parquet", {},
                           None, out, tmp_path / "fig11.png", tmp_path / "prefactors.parquet",
                           tmp_path / "pre_rejects.parquet").set_index("r_cut_angstrom")
    assert list(table["n_prefactors"]) == [4, 2] and list(table["n_accepted"]) == [4, 3]
    assert np.isclose(table.loc[4.0, "std_ln_nu_AB"], np.std(ln_nu[:4], ddof=1))
    assert np.isclose(table.loc[6.0, "std_S_KRA"], np.std(ln_nu[4:], ddof=1))
    assert table.loc[6.0, "std_dS"] == 0.0
    assert (tmp_path / "fig11.png").stat().st_size > 0 and "std_ln_nu_AB_se" in pd.read_csv(out).columns
    with pytest.raises(ValueError, match="neither accepted nor rejected"):   # a cell lost between NEB and Hessians
        far_field_step(tmp_path / "sampled.jsonl", tmp_path / "events.parquet", tmp_path / "rejects.parquet", {},
                       None, out, tmp_path / "fig11.png", tmp_path / "prefactors.parquet", None)


CUNI = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["potentials"]
FAR = {
    "run": "far",
    "potentials": CUNI,
    "datasets": {"reference": {"potential": "cuni_eam", "lattice": "fcc", "compositions": {"Cu50Ni50": HALF},
                               "source": str(REPO / "data" / "reference_cuni")}},
    "neb": {"shards": 2},
    "far_field": {"enabled": True, "supercell": 3, "r_cuts": [2.6, 4.0], "n_samples": 2},
}


def test_far_field_runs_through_the_dataset_stage_neb(tmp_path):
    cfg = write_config(tmp_path / "far.yaml", FAR)
    target = "results/far/tables/far_field.csv"
    dry = snakemake(tmp_path, cfg, target, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout + dry.stderr)
    assert jobs == {"lattice_constants": 1, "far_field_events": 1, "neb": 2, "collect_dataset": 1, "far_field": 1}
    run = snakemake(tmp_path, cfg, target)
    assert run.returncode == 0, run.stderr[-4000:]
    out = tmp_path / "results" / "far"
    table = pd.read_csv(out / "tables" / "far_field.csv")
    assert table["r_cut_angstrom"].tolist() == [2.6, 4.0]
    assert (table["n_accepted"] + table["n_rejected"] == 2).all()
    assert (out / "figures" / "fig11_far_field.png").stat().st_size > 0
    ds = out / "datasets" / FAR_FIELD_DATASET
    events = pd.read_parquet(ds / "events.parquet")
    assert {"r_cut", "far_field_sample", "dE", "E_KRA", "neb_iterations"} <= set(events.columns)
    assert (ds / "dataset.json").is_file() and (ds / "qc_summary.json").is_file()
