"""Snakemake integration of the dataset stage on a 6-event config (real LAMMPS)."""

import copy
import json

import ase.io
import pandas as pd
import pytest
import yaml

from snakemake_helpers import REPO, planned_jobs, snakemake, write_config

SIX_EVENTS = {
    "run": "six",
    "potentials": yaml.safe_load((REPO / "config" / "config.yaml").read_text())["potentials"],
    "datasets": {
        "cuni": {
            "potential": "cuni_eam", "lattice": "fcc", "supercell": 3, "mode": "pairs", "n_events": 2, "seed": 5,
            "compositions": {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}, "Cu25Ni75": {"Cu": 0.25, "Ni": 0.75},
                             "Cu75Ni25": {"Cu": 0.75, "Ni": 0.25}},
        }
    },
    "neb": {"shards": 2},
}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    work = tmp_path_factory.mktemp("stage1")
    cfg = write_config(work / "six.yaml", SIX_EVENTS)
    first = snakemake(work, cfg)
    assert first.returncode == 0, first.stderr[-4000:]
    return work, cfg


def test_stage1_outputs(stage1):
    work, _ = stage1
    ds = work / "results" / "six" / "datasets" / "cuni"
    events = pd.read_parquet(ds / "events.parquet")
    rejects = pd.read_parquet(ds / "rejects.parquet")
    summary = json.loads((ds / "qc_summary.json").read_text())
    assert len(events) + len(rejects) == 6 == summary["n_events"]
    assert summary["n_accepted"] == len(events)
    for col in ("E_A", "E_B", "E_saddle", "dE", "E_KRA", "barrier_forward", "barrier_backward",
                "image_energies", "climb_index", "neb_iterations", "wall_time_s", "composition", "event_id"):
        assert col in events.columns
    frames = ase.io.read(ds / "structures.extxyz", index=":")
    assert {f.info["frame"] for f in frames} == {"A_ideal", "B_ideal", "A_relaxed", "B_relaxed", "saddle"}
    assert len(frames[0]) == 107
    # the relaxed end states and the saddle carry their energies (eV), as ASE reads them
    energy = {(f.info["event_id"], f.info["frame"]): f.info.get("energy_eV") for f in frames}
    assert len(events) and len(energy) == len(frames)
    for ev in events.itertuples():
        assert energy[ev.event_id, "A_relaxed"] == pytest.approx(ev.E_A, abs=1e-9)
        assert energy[ev.event_id, "B_relaxed"] == pytest.approx(ev.E_B, abs=1e-9)
        assert energy[ev.event_id, "saddle"] == pytest.approx(ev.E_saddle, abs=1e-9)
        assert energy[ev.event_id, "A_ideal"] is None and energy[ev.event_id, "B_ideal"] is None
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["potential"]["files"]["table"]["name"] == "CuNi.eam.alloy"
    assert len(meta["potential"]["files"]["table"]["sha256"]) == 64
    assert meta["lammps_version"] and meta["parameters"]["neb"]["ftol"] == 0.01
    assert meta["counts"]["n_events"] == 6


def test_second_run_does_nothing(stage1):
    work, cfg = stage1
    again = snakemake(work, cfg)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_changing_neb_tolerance_reruns_neb_not_sampling(stage1):
    work, _ = stage1
    changed = copy.deepcopy(SIX_EVENTS)
    changed["neb"]["ftol"] = 0.005
    cfg = write_config(work / "six_ftol.yaml", changed)
    dry = snakemake(work, cfg, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout + dry.stderr)
    assert jobs.get("neb") == 2 and jobs.get("collect_dataset") == 1
    assert "sample_events" not in jobs and "lattice_constants" not in jobs


@pytest.mark.parametrize("change,message", [
    (lambda c: c["datasets"]["cuni"].update(supercell="3"), "datasets.cuni.supercell"),
    (lambda c: c["datasets"]["cuni"]["compositions"]["Cu50Ni50"].update(Ni=0.4), "datasets.cuni.compositions.Cu50Ni50"),
    (lambda c: c["datasets"]["cuni"]["compositions"]["Cu50Ni50"].update(Fe=0.0), "Fe"),
    (lambda c: c["potentials"]["cuni_eam"]["files"].update(table="missing.eam.alloy"), "potentials.cuni_eam.files.table"),
    (lambda c: c["neb"].update(tolerance=0.01), "neb.tolerance"),
])
def test_bad_config_stops_before_any_job(tmp_path, change, message):
    cfg = copy.deepcopy(SIX_EVENTS)
    change(cfg)
    out = snakemake(tmp_path, write_config(tmp_path / "bad.yaml", cfg), "-n")
    assert out.returncode != 0
    assert message in out.stderr + out.stdout
    assert not (tmp_path / "results").exists()


def test_dataset_made_elsewhere_is_used_instead_of_neb(stage1, tmp_path):
    work, _ = stage1
    source = work / "results" / "six" / "datasets" / "cuni"
    cfg = copy.deepcopy(SIX_EVENTS)
    cfg["run"] = "imported"
    cfg["datasets"]["cuni"]["source"] = str(source)
    out = snakemake(tmp_path, write_config(tmp_path / "imported.yaml", cfg))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rule neb" not in out.stdout + out.stderr
    imported = pd.read_parquet(tmp_path / "results" / "imported" / "datasets" / "cuni" / "events.parquet")
    pd.testing.assert_frame_equal(imported, pd.read_parquet(source / "events.parquet"))
