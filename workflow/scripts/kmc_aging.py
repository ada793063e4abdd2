"""Rule kmc_aging: delta_ij and the state energy against simulated time (detailed-balance runs)."""

from dbkmc.kmc.aging import aging_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
aging_step(snakemake.input.timeseries, snakemake.params.pair, snakemake.wildcards.kmc_run,
           snakemake.output.table, snakemake.output.figure)
