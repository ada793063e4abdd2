"""Rule kmc_randomness_figures: R distributions (Fig 4b) and Var(R) against T (Fig 4c)."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.kmc_report import randomness_figures_step

log_to_file(snakemake.log[0])
randomness_figures_step(snakemake.input.per_site, snakemake.input.per_t, snakemake.input.summary,
                        snakemake.params.analysis["randomness_temperatures"], snakemake.wildcards.kmc_run,
                        snakemake.output.fig4b, snakemake.output.fig4c)
