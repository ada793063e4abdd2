"""Stage 1 through profiles/slurm on a real one-node SLURM (tests/mini_slurm.py).

The cluster is started by the ``small_runs`` fixture (tests/small_pipeline.py) next
to the local run of the same config. These tests run in ``make test`` wherever
slurmctld can be installed and started (`.ci/run` installs slurm-wlm and munge),
and are skipped with the reason otherwise.
"""

import json
import re

import pandas as pd
import pytest

from small_pipeline import RUN, SLURM_TIMEOUT_S, TIMING_COLUMNS, commit_of

pytestmark = pytest.mark.slurm

JOBID = re.compile(r"SLURM jobid (\d+)")


@pytest.fixture(scope="module")
def on_slurm(small_runs):
    if small_runs.slurm is None:
        pytest.skip(small_runs.slurm_skip)
    return small_runs


def test_stage1_jobs_go_through_sbatch(on_slurm):
    run = on_slurm.slurm.result()
    out = run.output
    assert run.returncode == 0, out[-6000:] + on_slurm.cluster.log_tail()
    ids = set(JOBID.findall(out))
    # prepare (lattice_constants + sample_events), the one NEB shard, collect_dataset
    assert len(ids) == 3, out[-4000:]
    assert ids <= on_slurm.cluster.known_job_ids()
    assert "SLURM run ID" in out
    for rule in ("lattice_constants", "sample_events", "neb", "collect_dataset"):
        assert re.search(rf"rule {rule}\b", out), rule


def _frames_equal(a, b, drop=()):
    a, b = (f.drop(columns=list(drop), errors="ignore") for f in (a, b))
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_slurm_outputs_equal_local_run(on_slurm):
    assert on_slurm.slurm.result().returncode == 0, on_slurm.slurm.output[-4000:]
    on_slurm.local.result()  # stage 1 of the local run; its later stages do not matter here
    local = on_slurm.local_dir / "results" / RUN / "datasets" / "cuni"
    assert (local / "dataset.json").exists(), on_slurm.local.output[-4000:]
    remote = on_slurm.slurm.cwd / "results" / RUN / "datasets" / "cuni"
    events_l, events_r = pd.read_parquet(local / "events.parquet"), pd.read_parquet(remote / "events.parquet")
    assert len(events_l) + len(pd.read_parquet(local / "rejects.parquet")) == 2
    _frames_equal(events_l, events_r, drop=TIMING_COLUMNS)
    _frames_equal(pd.read_parquet(local / "rejects.parquet"), pd.read_parquet(remote / "rejects.parquet"),
                  drop=TIMING_COLUMNS)
    for name in ("events_sampled.jsonl", "structures.extxyz", "qc_summary.json"):
        assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    lattice = "potentials/cuni_eam/lattice_fcc_Cu-Ni.json"
    assert (local.parents[1] / lattice).read_bytes() == (remote.parents[1] / lattice).read_bytes()
    meta_l, meta_r = (json.loads((d / "dataset.json").read_text()) for d in (local, remote))
    # `git describe` is read when each run writes the file, and the checkout may change in
    # between (a commit, an edit: "-dirty"); both must name a commit of this repository.
    # Everything else, library versions included, must agree.
    for meta in (meta_l, meta_r):
        assert commit_of(meta["code"].pop("git"))
    assert meta_l == meta_r


def test_failing_rule_is_reported_and_run_exits_nonzero(on_slurm):
    run = on_slurm.slurm_fail.result()
    out = run.output
    assert run.returncode not in (0, 124), out[-4000:]  # 124: killed by the timeout
    assert run.elapsed < SLURM_TIMEOUT_S
    assert JOBID.search(out), "the failing job never reached the cluster:\n" + out[-4000:]
    assert "Error in group prepare" in out and "Error in rule lattice_constants" in out, out[-4000:]
    # it failed for the reason we gave it: LAMMPS could not read the potential file
    slurm_log = re.search(r"log: (\S+/slurm_logs/\S+\.log)", out)
    assert slurm_log, out[-4000:]
    assert "eam/alloy potential file" in open(slurm_log.group(1)).read()
    made = [p for p in (run.cwd / "results" / "failing").rglob("*")
            if p.is_file() and not {"logs", "benchmarks"} & set(p.parts)]
    assert made == [], "a failed job left outputs behind"
