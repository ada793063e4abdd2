"""Rule prefactor_events: the prefactor table of rule hessians as a model events table."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.prefactors import events_step

log_to_file(snakemake.log[0])
events_step(snakemake.input.table, snakemake.input.dataset, snakemake.output.events, snakemake.output.dataset)
