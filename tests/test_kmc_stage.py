"""The kMC stage end to end on the published NbMoTa network: outputs, kill-and-rerun, analyses, config errors."""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dbkmc.core.config import ConfigError, validate_config

sys.path.insert(0, str(Path(__file__).parent))

from conftest import NNK_NBMOTA as SHARED  # noqa: E402

RUN = {
    "structure": {"dump": str(SHARED / "nbmota_1024.dump"), "species": ["Nb", "Mo", "Ta"]},
    "rate_model": {"kind": "nnk_published", "weights": str(SHARED / "weights.npy"), "species": ["Nb", "Mo", "Ta"]},
    "temperatures": [500, 2500],
    "n_jumps": 1500,
    "seed": 3,
    "record": {"first": 100, "per_decade": 4, "linear": 3},
    "snapshots": {"count": 3, "spacing": "linear"},
    "checkpoint_every": 500,
    "analysis": {"order_pair": ["Mo", "Ta"], "randomness": True, "randomness_temperatures": [500],
                 "b2": {"a": "Mo", "b": "Ta"}},
}


def config_with(run: dict) -> dict:
    return {
        "potentials": {"p": {"pair_style": "eam/alloy", "pair_coeff": "* * {t} {elements}",
                             "files": {"t": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}},
        "datasets": {"d": {"potential": "p", "lattice": "fcc", "compositions": {"c": {"Cu": 1.0}}}},
        "kmc": {"device": "cpu", "runs": {"small": run}},
    }


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run_cfg():
    return validate_config(config_with(copy.deepcopy(RUN)))["kmc"]["runs"]["small"]


def outputs(folder: Path) -> dict:
    return {"timeseries": folder / "timeseries.parquet", "final": folder / "final.npz",
            "snapshots": folder / "snapshots", "summary": folder / "summary.json"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, run_cfg):
    from dbkmc.stages.kmc import kmc_step

    folder = tmp_path_factory.mktemp("ref")
    kmc_step("small", run_cfg, "cpu", False, outputs(folder), folder / "work")
    return folder


def test_outputs_of_a_run(uninterrupted):
    ts = pd.read_parquet(uninterrupted / "timeseries.parquet")
    assert {"trajectory", "temperature", "replica", "jumps", "time_s", "delta_MoTa", "alpha_MoTa"} <= set(ts)
    assert "energy_eV" not in ts  # the NNK defines no state energy
    for _, g in ts.groupby("trajectory"):
        assert g["jumps"].is_monotonic_increasing and np.all(np.diff(g["time_s"]) > 0)
        assert g["jumps"].iloc[0] == 0 and g["jumps"].iloc[-1] == 1500
    final = np.load(uninterrupted / "final.npz")
    assert final["digits"].shape == (2, 1024) and int(final["jumps"]) == 1500
    assert [int((row == 0).sum()) for row in final["digits"]] == [1, 1]
    index = pd.read_csv(uninterrupted / "snapshots" / "index.csv")
    assert sorted(index["jumps"].unique()) == [500, 1000, 1500] and len(index) == 6
    ase_io = pytest.importorskip("ase.io")
    atoms = ase_io.read(uninterrupted / "snapshots" / index["file"].iloc[-1], format="lammps-dump-text")
    assert len(atoms) == 1023 and set(atoms.get_chemical_symbols()) == {"Nb", "Mo", "Ta"}
    summary = json.loads((uninterrupted / "summary.json").read_text())
    assert summary["engine_path"].startswith("local MLP") and summary["trajectories"] == 2
    assert "kind" not in summary["rate_model_spec"] and summary["cache_hits"] >= 0
    assert not (uninterrupted / "work").exists()  # checkpoint folder removed after success


def test_killed_run_resumes_to_the_same_outputs(tmp_path, uninterrupted, run_cfg):
    from dbkmc.stages.kmc import kmc_step

    with pytest.raises(KeyboardInterrupt):
        kmc_step("small", run_cfg, "cpu", False, outputs(tmp_path), tmp_path / "work", stop_after=600)
    assert (tmp_path / "work" / "checkpoint.pt").is_file()
    assert not (tmp_path / "timeseries.parquet").exists()
    kmc_step("small", run_cfg, "cpu", False, outputs(tmp_path), tmp_path / "work")  # the rerun
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "timeseries.parquet"),
                                  pd.read_parquet(uninterrupted / "timeseries.parquet"))
    a, b = np.load(tmp_path / "final.npz"), np.load(uninterrupted / "final.npz")
    for key in ("digits", "vacancies", "time_s"):
        assert np.array_equal(a[key], b[key]), key
    for f in sorted((uninterrupted / "snapshots").glob("*.dump")):
        assert (tmp_path / "snapshots" / f.name).read_bytes() == f.read_bytes()


def test_analyses_and_figures_from_the_outputs(tmp_path, uninterrupted, run_cfg, caplog):
    from dbkmc.stages.kmc_report import b2_report_step, order_report_step, randomness_figures_step
    from dbkmc.stages.kmc import randomness_rule_step

    order_report_step(uninterrupted / "timeseries.parquet", ["Mo", "Ta"], 0.5, "small", tmp_path / "order.csv",
                      tmp_path / "order.json", tmp_path / "f3a.png", tmp_path / "f3b.png")
    order = json.loads((tmp_path / "order.json").read_text())
    table = pd.read_csv(tmp_path / "order.csv")
    assert table.columns[0] == "temperature_K"  # units in the header
    assert order["pair"] == "delta_MoTa" and order["peak_temperature_K"] in (500.0, 2500.0)
    assert order["peak_value"] == pytest.approx(table["delta_MoTa"].max())
    with caplog.at_level(logging.INFO, logger="dbkmc.stages.kmc"):
        randomness_rule_step("small", run_cfg, "cpu", uninterrupted / "final.npz", tmp_path / "r.parquet",
                             tmp_path / "r.csv", tmp_path / "r.json")
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("randomness ")]
    assert [p.split(":")[0] for p in progress] == [f"randomness {i}/4" for i in (1, 2, 3, 4)]  # a line per configuration
    assert "final configuration of trajectory" in progress[0] and "1015 sites" in progress[0]
    per_site = pd.read_parquet(tmp_path / "r.parquet")
    # vacancy and its neighbours left out; the starting configuration at both temperatures too
    assert per_site.groupby(["configuration", "temperature"]).size().tolist() == [1023 - 8] * 4
    assert per_site["R"].between(0, 1).all()
    per_t = pd.read_csv(tmp_path / "r.csv").set_index(["configuration", "temperature_K"])
    assert per_t.loc[("final", 500.0), "mean_R"] < per_t.loc[("final", 2500.0), "mean_R"]  # hotter: more random
    summary = json.loads((tmp_path / "r.json").read_text())
    assert {"peak_temperature_K", "initial_peak_temperature_K"} <= set(summary)
    # R of the starting configuration computed here equals a direct evaluation at one site
    from dbkmc.kmc import analysis
    from dbkmc.stages.kmc import build_structure, insert_vacancies, site_barriers
    from dbkmc.kmc.rates.base import build_rate_model

    lat, digits, species = build_structure(run_cfg["structure"], run_cfg["seed"])
    start = insert_vacancies(digits, 1, run_cfg["seed"])
    model = build_rate_model(run_cfg["rate_model"], lat, species)
    e, usable = site_barriers(model, start)
    site = int(np.flatnonzero(usable)[17])
    row = per_site[(per_site.configuration == "initial") & (per_site.temperature == 500.0) & (per_site.site == site)]
    assert row["R"].item() == pytest.approx(analysis.jump_randomness(e[site], 500.0))
    randomness_figures_step(tmp_path / "r.parquet", tmp_path / "r.csv", tmp_path / "r.json", [500], "small",
                            tmp_path / "f4b.png", tmp_path / "f4c.png")
    b2_report_step(uninterrupted / "snapshots", uninterrupted / "final.npz", {"a": "Mo", "b": "Ta", "fraction": 0.75},
                   "small", tmp_path / "c.csv", tmp_path / "s.csv", tmp_path / "f5.png")
    snaps = pd.read_csv(tmp_path / "s.csv")
    assert "temperature_K" in snaps and "temperature_K" in pd.read_csv(tmp_path / "c.csv")
    assert len(snaps) == 6 and (snaps["units"] > 0).all()
    for f in ("f3a", "f3b", "f4b", "f4c", "f5"):
        assert (tmp_path / f"{f}.png").stat().st_size > 10_000


@pytest.mark.parametrize(("change", "key"), [
    (lambda r: r["analysis"].update(order_pair=["Mo", "W"]), "kmc.runs.small.analysis.order_pair"),
    (lambda r: r["rate_model"].update(weights="/nonexistent/w.npy"), "kmc.runs.small.rate_model.weights"),
    (lambda r: r["rate_model"].update(species=["Mo", "Nb", "Ta"]), "kmc.runs.small.rate_model.species"),
    (lambda r: r.update(temperatures=[-5]), "kmc.runs.small.temperatures.0"),
    (lambda r: r["structure"].update(dump=None), "kmc.runs.small.structure.lattice"),
    (lambda r: r.update(nu="fast"), "kmc.runs.small.nu"),
])
def test_a_wrong_kmc_value_names_its_key(change, key):
    run = copy.deepcopy(RUN)
    change(run)
    with pytest.raises(ConfigError, match=f"config error at {key.replace('.', '[.]')}"):
        validate_config(config_with(run))


def test_paper_config_plans_the_study(tmp_path):
    """config/paper_nbmota.yaml validates and plans both runs with their analyses (dry run)."""
    from snakemake_helpers import REPO, planned_jobs, snakemake

    (tmp_path / "data").symlink_to(REPO / "data")  # the config's placeholder dataset is a relative source
    targets = [f"results/paper_nbmota/figures/kmc/{f}" for f in (
        "nbmota_sweep_fig3a_delta_vs_T.png", "nbmota_sweep_fig4b_R_distributions.png",
        "nbmota_b2_fig5_b2_clusters.png")]
    result = snakemake(tmp_path, REPO / "config" / "paper_nbmota.yaml", *targets, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs == {"kmc": 2, "kmc_order": 1, "kmc_randomness": 1, "kmc_randomness_figures": 1, "kmc_b2": 1}, jobs
