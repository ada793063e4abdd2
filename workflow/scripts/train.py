"""Rule train: one voting ensemble, members trained together."""

from pathlib import Path

from dbkmc.core.logs import log_to_file
from dbkmc.stages.models import train_step

log_to_file(snakemake.log[0])
train_step(snakemake.wildcards.model, snakemake.input.events, snakemake.input.fingerprints,
           snakemake.params.models, Path(snakemake.output.record).parent,
           sas_lambda_json=snakemake.input.sas_lambda or None)
