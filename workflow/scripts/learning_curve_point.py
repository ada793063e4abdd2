"""Rule learning_curve_point: one (dE model, training fraction) point of Fig 8."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.learning_curve import point_step

log_to_file(snakemake.log[0])
point_step(snakemake.wildcards.model, float(snakemake.wildcards.fraction), snakemake.input.events,
           snakemake.input.fingerprints, snakemake.params.models, snakemake.input.sas_lambda,
           snakemake.output.point, snakemake.output.predictions)
