"""Rule sas_sweep: M_SAS lambda sweep, lambda chosen on the validation set."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.models import sas_sweep_step

log_to_file(snakemake.log[0])
out = snakemake.output
sas_sweep_step(snakemake.input.events, snakemake.input.fingerprints, snakemake.params.models,
               out.table, out.figure, out.chosen)
