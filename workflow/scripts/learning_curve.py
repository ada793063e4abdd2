"""Rule learning_curve: Fig 8c, d."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.models import learning_curve_step

log_to_file(snakemake.log[0])
learning_curve_step(snakemake.input.events, snakemake.input.fingerprints, snakemake.params.models,
                    snakemake.input.sas_lambda, snakemake.output.table, snakemake.output.figure)
