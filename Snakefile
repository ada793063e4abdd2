# dbkmc: machine-learned vacancy kinetics in concentrated alloys.
# Run with `snakemake --cores N` (or `make run`); on a cluster with
# `snakemake --profile profiles/slurm`. See README.md.

import os
import sys
from pathlib import Path

# The library lives in src/: importable here and in every job (local, conda or SLURM).
_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)

from snakemake.utils import min_version

min_version("9.0")

from dbkmc.core.config import ConfigError, validate_config


# The demo config is the default; a --configfile replaces it (it is not merged into it).
if not config:

    configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


# Validate against workflow/schemas/config.schema.yaml (filling defaults) before any job starts.
try:
    _validated = validate_config(config)
except ConfigError as err:
    sys.exit(f"dbkmc: {err}")
config.clear()
config.update(_validated)

RUN = config["run"]
OUT = f"results/{RUN}"


include: "workflow/rules/common.smk"
include: "workflow/rules/far_field.smk"  # registers the far-field pseudo-dataset: before dataset.smk
include: "workflow/rules/dataset.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/loops.smk"
include: "workflow/rules/nnk.smk"
include: "workflow/rules/kmc.smk"
include: "workflow/rules/kmc_aging.smk"


rule all:
    input:
        dataset_targets(),
        model_targets(),
        loop_targets(),
        far_field_targets(),
        nnk_targets(),
        kmc_targets(),
        kmc_aging_targets(),
    default_target: True
