"""Rule kmc_aging: delta_ij and the state energy against simulated time (detailed-balance runs)."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.kmc_report import aging_step

log_to_file(snakemake.log[0])
aging_step(snakemake.input.timeseries, snakemake.params.pair, snakemake.wildcards.kmc_run,
           snakemake.output.table, snakemake.output.figure, energy_model=snakemake.params.energy)
