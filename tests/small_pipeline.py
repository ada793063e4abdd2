"""One small pipeline run shared by the cluster, rerun, provenance and report tests.

The config makes a two-event NEB dataset (``cuni``, one shard), trains tiny
ensembles on a 60-event slice of the reference dataset (``reference``, imported)
and runs a short Cu-Ni aging kMC with them.
The session fixture ``small_runs`` starts, at the same time,

- the local run of the whole DAG, from a copy of the workflow (so a test may edit
  a workflow script without touching the repository);
- when a one-node SLURM can be started here (``tests/mini_slurm.py``): the same
  config's stage 1 through ``profiles/slurm``, and a run whose potential file is
  broken, so that its first rule fails on the cluster.

Tests wait only for the run they look at.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

import mini_slurm
from snakemake_helpers import REPO, SNAKEMAKE, write_config

RUN = "small"
COMPOSITIONS = {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}, "Cu25Ni75": {"Cu": 0.25, "Ni": 0.75},
                "Cu75Ni25": {"Cu": 0.75, "Ni": 0.25}}
CUNI = {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
        "files": {"table": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}
EVENTS_PER_COMPOSITION = 20


def small_config(reference_source: Path) -> dict:
    return {
        "run": RUN,
        "potentials": {"cuni_eam": CUNI},
        "datasets": {
            "cuni": {"potential": "cuni_eam", "lattice": "fcc", "supercell": 3, "mode": "pairs", "n_events": 2,
                     "seed": 11, "compositions": {"Cu50Ni50": COMPOSITIONS["Cu50Ni50"]}},
            "reference": {"potential": "cuni_eam", "lattice": "fcc", "compositions": COMPOSITIONS,
                          "source": str(reference_source)},
        },
        "neb": {"shards": 1},
        "models": {"dataset": "reference", "n_members": 2, "hidden": [8], "max_epochs": 2, "patience": 1,
                   "batch_size": 256, "sas_lambdas": [0.0, 1.0], "learning_curve_fractions": [0.25, 0.5],
                   "device": "cpu"},
        # a short Cu-Ni aging run with this run's M_KOL and KRA ensembles
        "kmc": {"device": "cpu", "runs": {"aging": {
            "structure": {"species": ["Cu", "Ni"], "lattice": "fcc", "n": 3, "a": 3.5675,
                          "composition": {"Cu": 0.5, "Ni": 0.5}},
            "rate_model": {"kind": "detailed_balance", "kol": "results/{run}/models/M_KOL",
                           "kra": "results/{run}/models/KRA"},  # {run}: the failing run renames it
            "temperatures": [500, 1000], "n_jumps": 200, "seed": 1,
            "record": {"first": 10, "per_decade": 2, "linear": 5},
            "analysis": {"order_pair": ["Cu", "Ni"]},
        }}},
    }


# Stage 1 of the generated dataset: what the SLURM run makes.
STAGE1_TARGETS = [f"results/{RUN}/datasets/cuni/{f}" for f in
                  ("events.parquet", "rejects.parquet", "qc_summary.json", "structures.extxyz", "dataset.json")]
# Wall-clock seconds are the one field that legitimately differs between two runs.
TIMING_COLUMNS = ("wall_time_s",)


def commit_of(describe: str) -> str | None:
    """The full commit id that a ``git describe --always --dirty --tags`` string names, or None.

    ``abc1234``, ``abc1234-dirty`` and ``v1.0-3-gabc1234`` all name commit abc1234, which
    must exist in this repository.
    """
    m = re.fullmatch(r"(?:.+-g)?([0-9a-f]{7,40})(?:-dirty)?|(.+?)(?:-dirty)?", describe)
    ref = m.group(1) or m.group(2)
    out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=REPO,
                         capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return out.stdout.strip()


def reference_slice(dest: Path) -> Path:
    """The first events of each composition of data/reference_cuni, as a dataset source folder."""
    src = REPO / "data" / "reference_cuni"
    events = pd.read_parquet(src / "events.parquet")
    part = events.groupby("composition", sort=False).head(EVENTS_PER_COMPOSITION).reset_index(drop=True)
    dest.mkdir(parents=True)
    part.to_parquet(dest / "events.parquet", index=False)
    meta = json.loads((src / "dataset.json").read_text())
    meta["counts"] = {"n_events": len(part), "n_accepted": len(part), "n_rejected": 0}
    meta["subset_of"] = {"path": str(src), "first_events_per_composition": EVENTS_PER_COMPOSITION}
    (dest / "dataset.json").write_text(json.dumps(meta, indent=2))
    return dest


def copy_workflow(dest: Path) -> Path:
    """Snakefile, rules, scripts, report captions, schema, envs and profiles (not src/, results/)."""
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for sub in ("workflow", "envs", "profiles", "config"):
        shutil.copytree(REPO / sub, dest / sub, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@dataclass
class Run:
    """A snakemake process started in the background; ``result()`` waits for it."""

    name: str
    cmd: list[str]
    cwd: Path
    env: dict | None = None
    log: Path | None = None
    started: float = 0.0
    elapsed: float | None = None  # wall seconds from start to exit
    returncode: int | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _waiter: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> Run:
        self.log = self.cwd / f"{self.name}.snakemake.log"
        self.started = time.monotonic()
        with open(self.log, "w") as fh:
            self._proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=fh,
                                          stderr=subprocess.STDOUT, text=True)
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()
        return self

    def _wait(self) -> None:
        code = self._proc.wait()
        self.elapsed = time.monotonic() - self.started
        self.returncode = code

    def result(self, timeout: float = 900) -> Run:
        self._waiter.join(timeout)
        if self._waiter.is_alive():
            raise TimeoutError(f"{self.name}: still running after {timeout} s")
        return self

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


@dataclass
class SmallRuns:
    root: Path
    config: dict
    configfile: Path
    local_dir: Path
    local: Run
    cluster: mini_slurm.MiniSlurm | None = None
    slurm_skip: str | None = None
    slurm: Run | None = None
    slurm_fail: Run | None = None

    def local_done(self) -> Path:
        run = self.local.result()
        assert run.returncode == 0, run.output[-5000:]
        return self.local_dir / "results" / RUN

    def snakemake_local(self, configfile: Path, *args: str) -> subprocess.CompletedProcess:
        """Another snakemake call (e.g. a dry run) on the finished local run's folder."""
        self.local_done()
        cmd = [str(SNAKEMAKE), "-s", str(self.local_dir / "Snakefile"), "--directory", str(self.local_dir),
               "--configfile", str(configfile), "--cores", "2", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=self.local_dir)


# The SLURM runs use the repository's profiles/slurm unchanged. The command line adds
# only what this accounting-free test cluster needs (squeue instead of sacct) and
# short status-poll intervals, so that the test takes seconds rather than minutes.
SLURM_ARGS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
              "--seconds-between-status-checks", "1")
SLURM_TIMEOUT_S = 240  # snakemake ignores SIGTERM while it waits on jobs, hence `timeout -s INT`


def slurm_command(workdir: Path, configfile: Path, *targets: str) -> list[str]:
    return ["timeout", "-s", "INT", str(SLURM_TIMEOUT_S), str(SNAKEMAKE), "--profile", str(REPO / "profiles" / "slurm"),
            "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(configfile),
            *SLURM_ARGS, *targets]


@pytest.fixture(scope="session")
def small_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("small_pipeline")
    config = small_config(reference_slice(root / "reference_slice"))
    configfile = write_config(root / "small.yaml", config)
    local_dir = copy_workflow(root / "local")
    local = Run("local", [str(SNAKEMAKE), "-s", str(local_dir / "Snakefile"), "--directory", str(local_dir),
                          "--configfile", str(configfile), "--cores", "2"], local_dir).start()
    runs = SmallRuns(root, config, configfile, local_dir, local)
    try:
        runs.cluster = mini_slurm.start(root / "slurm")
    except mini_slurm.SlurmUnavailable as err:
        runs.slurm_skip = f"no one-node SLURM here: {err}"
    if runs.cluster is not None:
        slurm_dir = root / "on_slurm"
        slurm_dir.mkdir()
        runs.slurm = Run("slurm", slurm_command(slurm_dir, configfile, *STAGE1_TARGETS), slurm_dir,
                         env=runs.cluster.env).start()
        fail_dir = root / "on_slurm_failing"
        fail_dir.mkdir()
        broken = fail_dir / "broken.eam.alloy"
        broken.write_text("this is not an EAM file\n")
        failing = small_config(root / "reference_slice")
        failing["run"] = "failing"
        failing["potentials"]["cuni_eam"] = {**CUNI, "files": {"table": str(broken)}}
        fail_cfg = write_config(fail_dir / "failing.yaml", failing)
        runs.slurm_fail = Run("slurm_fail", slurm_command(fail_dir, fail_cfg, *[t.replace(RUN, "failing", 1)
                                                                                for t in STAGE1_TARGETS]),
                              fail_dir, env=runs.cluster.env).start()
    try:
        yield runs
    finally:
        for run in (runs.slurm, runs.slurm_fail):
            if run is not None:
                try:
                    run.result(timeout=SLURM_TIMEOUT_S + 30)
                except TimeoutError:
                    pass
                finally:
                    run.stop()
        local.stop()
        if runs.cluster is not None:
            runs.cluster.stop()
