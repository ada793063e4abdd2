# dbkmc: machine-learned vacancy kinetics in concentrated alloys.
# Run with `snakemake --cores N` (or `make run`); on a cluster with
# `snakemake --profile profiles/slurm`. See README.md.

# dbkmc is an installed package (`make .venv`: editable, into .venv), imported like any other.
# Jobs find it too: a SLURM job reruns this Python, and a rule's script, in a conda env as
# well, gets Snakemake's search path (the sys.path of the Python running Snakemake).

import sys
from pathlib import Path

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
include: "workflow/rules/dataset.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/loops.smk"
include: "workflow/rules/far_field.smk"
include: "workflow/rules/nnk.smk"
include: "workflow/rules/kmc.smk"
include: "workflow/rules/kmc_aging.smk"
include: "workflow/rules/balance_audit.smk"
include: "workflow/rules/equilibrium.smk"
include: "workflow/rules/hessians.smk"
include: "workflow/rules/prefactors.smk"


rule all:
    input:
        dataset_targets(),
        model_targets(),
        loop_targets(),
        far_field_targets(),
        nnk_targets(),
        kmc_targets(),
        kmc_aging_targets(),
        audit_targets(),
        equilibrium_targets(),
        hessians_targets(),
        prefactor_targets(),
    default_target: True
