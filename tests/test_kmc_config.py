"""The default config is the whole chain; the kMC runs' file paths: the {run} placeholder and the ensemble checks."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbkmc.core.config import ConfigError, validate_config
from snakemake_helpers import REPO, SNAKEMAKE, planned_jobs

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture
def demo() -> dict[str, Any]:
    return copy.deepcopy(DEMO)


def _db_runs(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in cfg["kmc"]["runs"].items() if r["rate_model"]["kind"] == "detailed_balance"}


def test_demo_has_a_detailed_balance_run_on_this_runs_models(demo) -> None:
    runs = _db_runs(validate_config(demo))
    assert runs, "config/config.yaml needs a kMC run with detailed-balance rates"
    for run in runs.values():
        assert run["rate_model"]["kol"] == "results/demo/models/M_KOL"
        assert run["rate_model"]["kra"] == "results/demo/models/KRA"


def test_renaming_the_run_moves_the_model_paths(demo) -> None:
    demo["run"] = "renamed-1.x"
    cfg = validate_config(demo)
    for run in _db_runs(cfg).values():
        assert run["rate_model"]["kol"] == "results/renamed-1.x/models/M_KOL"
        assert run["rate_model"]["kra"] == "results/renamed-1.x/models/KRA"
    # expanded paths hold no placeholder, so a validated config validates to itself
    assert validate_config(cfg) == cfg


def test_run_placeholder_in_every_path_field(demo, tmp_path) -> None:
    demo["run"] = "r2"
    demo["kmc"]["runs"] = {"nnk": {
        "structure": {"species": ["Cu", "Ni"], "lattice": "fcc", "n": 3, "a": 3.6, "composition": {"Cu": 0.5, "Ni": 0.5}},
        "rate_model": {"kind": "nnk_trained", "checkpoint": "results/{run}/nnk/cuni/mlp/model.pt"},
        "temperatures": [500], "n_jumps": 10}}
    demo["balance_audit"]["runs"] = ["nnk"]          # the audit may only name runs that exist
    rm = validate_config(demo)["kmc"]["runs"]["nnk"]["rate_model"]
    assert rm["checkpoint"] == "results/r2/nnk/cuni/mlp/model.pt"


@pytest.mark.parametrize("path,reason", [
    ("results/{runs}/models/M_KOL", "unknown placeholder {runs} in 'results/{runs}/models/M_KOL' (known: {run})"),
    ("results/{}/models/M_KOL", "unknown placeholder {} in"),
    ("results/{run/models/M_KOL", "unmatched brace in 'results/{run/models/M_KOL'"),
    ("results/{run}}/models/M_KOL", "unmatched brace"),
])
def test_bad_placeholder_names_the_field(demo, path, reason) -> None:
    name = next(iter(_db_runs(demo)))
    demo["kmc"]["runs"][name]["rate_model"]["kol"] = path
    with pytest.raises(ConfigError) as err:
        validate_config(demo)
    assert f"config error at kmc.runs.{name}.rate_model.kol: {reason}" in str(err.value)


def test_this_runs_models_need_the_model_stage(demo) -> None:
    demo["models"]["dataset"] = None
    demo["loops"]["enabled"] = False
    name = next(iter(_db_runs(demo)))
    with pytest.raises(ConfigError, match=rf"kmc\.runs\.{name}\.rate_model\.kol: results/demo/models/M_KOL is this "
                                          r"run's model-stage output, but the model stage is off"):
        validate_config(demo)


def test_wrong_ensemble_and_missing_folder(demo, tmp_path) -> None:
    name = next(iter(_db_runs(demo)))
    rm = demo["kmc"]["runs"][name]["rate_model"]
    rm["kol"] = "results/{run}/models/M_HAS"
    rm["kra"] = str(tmp_path / "nowhere" / "ensemble")
    with pytest.raises(ConfigError) as err:
        validate_config(demo)
    msg = str(err.value)
    assert f"kmc.runs.{name}.rate_model.kol: results/demo/models/M_HAS is a M_HAS ensemble; kol needs M_KOL" in msg
    assert f"kmc.runs.{name}.rate_model.kra: no folder {tmp_path / 'nowhere' / 'ensemble'}" in msg
    # an ensemble folder made elsewhere (another run, another machine) is taken when it exists
    (tmp_path / "M_KOL").mkdir()
    (tmp_path / "KRA").mkdir()
    rm["kol"], rm["kra"] = str(tmp_path / "M_KOL"), str(tmp_path / "KRA")
    assert validate_config(demo)["kmc"]["runs"][name]["rate_model"]["kol"] == str(tmp_path / "M_KOL")


def test_db_nnk_ensembles_of_this_run_need_the_db_architecture(demo) -> None:
    """A detailed-balance run may take this run's DB-NNK ensembles (rule train_nnk_db), when a set trains db."""
    name = next(iter(_db_runs(demo)))
    rm = demo["kmc"]["runs"][name]["rate_model"]
    rm.update(kol=None, energy="results/{run}/nnk/cuni/db/M_EXT", kra="results/{run}/nnk/cuni/db/KRA")
    demo["nnk"]["architectures"] = ["mlp", "db"]
    assert validate_config(copy.deepcopy(demo))["kmc"]["runs"][name]["rate_model"]["energy"] == \
        "results/demo/nnk/cuni/db/M_EXT"
    demo["nnk"]["architectures"] = ["mlp"]
    with pytest.raises(ConfigError, match=rf"kmc\.runs\.{name}\.rate_model\.energy: results/demo/nnk/cuni/db/M_EXT "
                                          r"is this run's DB-NNK output, but no NNK set 'cuni' trains architecture db"):
        validate_config(demo)


def test_audit_markov_cells_name_audited_runs(demo) -> None:
    demo["balance_audit"]["markov_supercells"] = {"no_such_run": 4}
    with pytest.raises(ConfigError, match=r"balance_audit\.markov_supercells\.no_such_run: 'no_such_run' is not an "
                                          r"audited run"):
        validate_config(demo)


def test_renamed_run_dry_run_trains_the_models_before_kmc(demo, tmp_path) -> None:
    """Snakemake's DAG: the detailed-balance kMC run of a renamed run needs that run's M_KOL and KRA."""
    demo["run"] = "other_name"
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(REPO / "data")  # the config's relative data/ paths
    configfile = tmp_path / "renamed.yaml"
    configfile.write_text(yaml.safe_dump(demo, sort_keys=False))
    name = next(iter(_db_runs(demo)))
    target = f"results/other_name/kmc/{name}/timeseries.parquet"
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
                           str(configfile), "--cores", "2", "-n", "--quiet", "rules", "--", target],
                          capture_output=True, text=True, timeout=300, cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert jobs == {"import_dataset": 1, "fingerprints": 1, "train": 2, "kmc": 1}, jobs
    assert not Path(work / "results").exists()


def test_make_run_config_runs_every_rule(tmp_path) -> None:
    """`make run` is the whole chain: a dry run of config/config.yaml alone plans every rule of the workflow,
    and among its outputs are Table 2, the loop drift table, the Markov check and a detailed-balance kMC series."""
    rules = {m for f in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]
             for m in re.findall(r"^rule\s+(\w+)\s*:", f.read_text(), flags=re.M)}
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(REPO / "data")
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
                           str(REPO / "config" / "config.yaml"), "--cores", "2", "-n", "--forceall"],
                          capture_output=True, text=True, timeout=300, cwd=work)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert set(planned_jobs(out)) == rules, sorted(rules ^ set(planned_jobs(out)))
    db_run = next(iter(_db_runs(DEMO)))
    for target in ("tables/table2.md", "tables/loop_drift.csv", "tables/markov_check.md",
                   f"kmc/{db_run}/timeseries.parquet"):
        assert f"results/demo/{target}" in out, target


@pytest.mark.parametrize("cutoff", [5.1, 8.0])
def test_published_network_refuses_another_cutoff(demo, cutoff) -> None:
    """The published NNK network only knows images of a 7.5 A ball: another cutoff is a config error."""
    cfg = copy.deepcopy(demo)
    run = next(r for r in cfg["kmc"]["runs"].values() if r["rate_model"]["kind"] == "nnk_published")
    run["rate_model"]["cutoff"] = cutoff
    with pytest.raises(ConfigError, match=r"rate_model\.cutoff: the published network was trained with a 7\.5 A cutoff"):
        validate_config(cfg)
    run["rate_model"]["cutoff"] = 7.5
    validate_config(cfg)
