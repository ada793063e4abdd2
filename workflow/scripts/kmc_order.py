"""Rule kmc_order: delta_ij against T (Fig 3a) and against jumps (Fig 3b)."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.kmc_report import order_report_step

log_to_file(snakemake.log[0])
analysis = snakemake.params.analysis
order_report_step(snakemake.input.timeseries, analysis["order_pair"], analysis["average_fraction"],
                  snakemake.wildcards.kmc_run, snakemake.output.table, snakemake.output.summary,
                  snakemake.output.fig3a, snakemake.output.fig3b)
